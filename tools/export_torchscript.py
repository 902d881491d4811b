#!/usr/bin/env python3
"""Exports a trained PyTorch classifier to TorchScript (the model file libji.so loads).

Usage:
    export_torchscript.py --arch resnet50 --num-classes 146 --weights best.pth --out model.pt
    export_torchscript.py --pickled whole_model.pth --out model.pt [--size 288]
    export_torchscript.py --arch timm:efficientnet_b0 --num-classes 146 --weights ck.pth ...

Options:
    --arch NAME          a torchvision classification architecture (resnet50, resnext50_32x4d,
                         efficientnet_b0, ...), or timm:NAME when timm is installed
    --num-classes N      outputs of the classifier head (required with --arch)
    --weights FILE       a state dict, or a checkpoint dict holding one under "state_dict",
                         "model_state_dict", "model" or "net"; a "module." prefix (DataParallel /
                         DistributedDataParallel) is stripped. Without it the model keeps its
                         random initialisation (seed 0): only useful for tests.
    --pickled FILE       instead of --arch/--weights: a whole pickled model (torch.save(model));
                         its classes must be importable here. Unpickling runs code from the file:
                         only for files you trust.
    --trust-checkpoint   allow --weights files that hold Python objects besides tensors
                         (argparse Namespace, numpy scalars...): loaded with full unpickling
    --size N | H,W       input size for tracing (default 224)
    --out FILE           where to write the TorchScript model (default model.pt)

The model is put in eval mode and traced with torch.jit.trace on a seeded random input
[1, 3, H, W]; the saved file is loaded back and compared with the eager model on 3 seeded random
inputs (batch 1, 2, 4): the max abs output difference is printed, and the export fails if it is
above 1e-4 or the output is not [N, num_classes]. The file is written atomically.
"""
import argparse
import os
import sys

import torch

TOL = 1e-4
STATE_KEYS = ("state_dict", "model_state_dict", "model", "net")


def fail(msg, code=1):
    print("export_torchscript: error: " + msg, file=sys.stderr)
    sys.exit(code)


def parse_size(s):
    parts = [p for p in s.replace("x", ",").split(",") if p.strip()]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) <= 0:
        raise argparse.ArgumentTypeError("expected N or H,W, got %r" % s)
    return nums


# ---------------------------------------------------------------------------- building


def build_arch(arch, num_classes):
    if arch.startswith("timm:"):
        try:
            import timm
        except ImportError:
            fail("--arch %s needs the timm package, which is not installed here "
                 "(pip install timm, or use a torchvision architecture name)" % arch, 2)
        name = arch[len("timm:"):]
        try:
            return timm.create_model(name, pretrained=False, num_classes=num_classes)
        except Exception as e:  # noqa: BLE001
            fail("timm cannot build %r: %s" % (name, e))
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        fail("unknown torchvision classification architecture %r; known: %s"
             % (arch, ", ".join(names)))
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)


def load_file(path, full_unpickle):
    if not os.path.isfile(path):
        fail("no such file: %s" % path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not full_unpickle)
    except Exception as e:  # noqa: BLE001
        text = str(e)
        if full_unpickle or "Weights only load failed" not in text:
            first = text.strip().splitlines()[0][:300] if text.strip() else ""
            fail("cannot load %s: %s: %s" % (path, type(e).__name__, first))
        why = [ln.strip() for ln in text.splitlines() if "Unsupported global" in ln]
        fail("%s holds Python objects besides tensors%s.\nIf you trust the file, rerun with "
             "--trust-checkpoint (full unpickling runs code from the file)."
             % (path, " (" + why[0].split(" was not")[0] + ")" if why else ""))


def extract_state_dict(obj, path):
    """A {name: tensor} dict out of a state dict or a training checkpoint."""
    if isinstance(obj, torch.nn.Module):
        obj = obj.module if isinstance(obj, (torch.nn.DataParallel,
                                             torch.nn.parallel.DistributedDataParallel)) else obj
        return obj.state_dict()
    if not isinstance(obj, dict):
        fail("%s holds a %s, not a state dict or checkpoint" % (path, type(obj).__name__))
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd = obj
    else:
        for k in STATE_KEYS:
            if k in obj and isinstance(obj[k], (dict, torch.nn.Module)):
                print("using checkpoint key %r of %s" % (k, path))
                return extract_state_dict(obj[k], path)
        fail("%s is a dict without tensors at the top or under any of %s (its keys: %s)"
             % (path, ", ".join(STATE_KEYS), ", ".join(map(str, list(obj)[:20]))))
    if sd and all(k.startswith("module.") for k in sd):
        print("stripping the 'module.' prefix (DataParallel)")
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_weights(model, sd, path):
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shape = [(k, tuple(sd[k].shape), tuple(own[k].shape))
             for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shape:
        lines = ["%s does not fit the architecture:" % path]
        if missing:
            lines.append("  missing (%d): %s" % (len(missing), ", ".join(missing[:8])))
        if unexpected:
            lines.append("  unexpected (%d): %s" % (len(unexpected), ", ".join(unexpected[:8])))
        for k, got, want in shape[:8]:
            lines.append("  %s: file has %s, model has %s" % (k, got, want))
        if shape:
            lines.append("  (is --num-classes right?)")
        fail("\n".join(lines))
    model.load_state_dict(sd, strict=True)


# ---------------------------------------------------------------------------- checking


def tensors(out):
    """The output's tensors in order (a tensor, or a tuple/list/dict of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in tensors(o)]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in tensors(out[k])]
    fail("model returned a %s, expected tensors" % type(out).__name__)


def compare(scripted, eager, size, num_classes):
    g = torch.Generator().manual_seed(1)
    worst = 0.0
    with torch.no_grad():
        for n in (1, 2, 4):
            x = torch.randn(n, 3, size[0], size[1], generator=g)
            a, b = tensors(scripted(x)), tensors(eager(x))
            if len(a) != len(b):
                fail("TorchScript returns %d tensors, eager %d" % (len(a), len(b)))
            head = a[0]
            if head.dim() != 2 or head.shape[0] != n or (
                    num_classes is not None and head.shape[1] != num_classes):
                fail("output shape %s for a batch of %d, expected [%d, %s]"
                     % (list(head.shape), n, n, num_classes or "C"))
            for s, e in zip(a, b):
                worst = max(worst, (s.float() - e.float()).abs().max().item())
            print("  batch %d: output %s, max abs diff so far %.3g" % (n, list(head.shape), worst))
    return worst


# ---------------------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--arch")
    ap.add_argument("--num-classes", type=int)
    ap.add_argument("--weights")
    ap.add_argument("--pickled")
    ap.add_argument("--trust-checkpoint", action="store_true")
    ap.add_argument("--size", type=parse_size, default=[224, 224])
    ap.add_argument("--out", default="model.pt")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    if args.pickled:
        if args.arch or args.weights:
            ap.error("--pickled replaces --arch/--weights")
        obj = load_file(args.pickled, full_unpickle=True)
        if isinstance(obj, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            obj = obj.module
        if not isinstance(obj, torch.nn.Module):
            fail("%s holds a %s, not a model: for a state dict or checkpoint use --arch with "
                 "--weights" % (args.pickled, type(obj).__name__))
        model = obj
        source = args.pickled
    else:
        if not args.arch:
            ap.error("give --arch (with --num-classes) or --pickled")
        if args.num_classes is None or args.num_classes <= 0:
            ap.error("--arch needs --num-classes N (N > 0)")
        model = build_arch(args.arch, args.num_classes)
        if args.weights:
            sd = extract_state_dict(load_file(args.weights, args.trust_checkpoint), args.weights)
            load_weights(model, sd, args.weights)
            source = "%s + %s" % (args.arch, args.weights)
        else:
            print("warning: no --weights: exporting randomly initialised weights (seed 0)")
            source = "%s (random init)" % args.arch
    model = model.cpu().float().eval()
    params = sum(p.numel() for p in model.parameters())
    print("model: %s, %.2fM parameters, input [N, 3, %d, %d]"
          % (source, params / 1e6, args.size[0], args.size[1]))

    if isinstance(model, torch.jit.ScriptModule):
        print("already TorchScript: saving it as it is")
        scripted = model
    else:
        example = torch.randn(1, 3, args.size[0], args.size[1],
                              generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            scripted = torch.jit.trace(model, example)

    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".tmp"
    try:
        scripted.save(tmp)
        loaded = torch.jit.load(tmp, map_location="cpu").eval()
        print("TorchScript (reloaded) vs eager on 3 seeded random inputs:")
        diff = compare(loaded, model, args.size, args.num_classes)
        print("max abs diff: %.3g (limit %g)" % (diff, TOL))
        if diff > TOL:
            fail("the traced model does not reproduce the eager one (diff %.3g > %g); the "
                 "model may have data-dependent control flow: script it instead" % (diff, TOL))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print("wrote %s (%.1f MB)" % (args.out, os.path.getsize(out) / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
