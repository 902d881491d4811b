#!/usr/bin/env python3
"""Exports a trained PyTorch classifier to TorchScript (the model file libji.so loads), with
its class names and preprocessing embedded so the model file describes itself.

Usage:
    export_torchscript.py --arch resnet50 --num-classes 146 --weights best.pth \
        --classes class.txt --resize-mode shorter_side --resize-size 256 --crop-size 224 \
        --out model.pt
    export_torchscript.py --arch repvgg.py:create_RepVGG_A0 --arch-kwargs '{"num_classes": 146}' \
        --weights ck.pth --config algo_config.json --out model.pt
    export_torchscript.py --pickled whole_model.pth --classes class.txt --out model.pt
    export_torchscript.py --arch timm:efficientnet_b0 --num-classes 146 --weights ck.pth ...

Building the model:
    --arch NAME          a torchvision classification architecture (resnet50, resnext50_32x4d,
                         efficientnet_b0, ...), timm:NAME when timm is installed, or
                         path/to/file.py:factory for your own code (a function or class in
                         that file; its folder is put on the import path so its own imports
                         work). --num-classes N is passed as num_classes=N when the factory
                         takes it.
    --arch-kwargs JSON   keyword arguments for the factory / torchvision / timm builder
                         ('{"num_classes": 146, "deploy": false}')
    --num-classes N      outputs of the classifier head
    --weights FILE       a state dict, or a checkpoint dict holding one under "state_dict",
                         "model_state_dict", "model" or "net"; a "module." prefix (DataParallel /
                         DistributedDataParallel) is stripped. Without it the model keeps its
                         random initialisation (seed 0): only useful for tests.
    --pickled FILE       instead of --arch/--weights: a whole pickled model (torch.save(model)).
                         Its classes are imported by module name: the file's folder and the
                         current folder are put on the import path, --import-path DIR adds
                         more. Unpickling runs code from the file: only for files you trust.
    --import-path DIR    another folder to import model code from (repeatable)
    --trust-checkpoint   allow --weights files that hold Python objects besides tensors
                         (argparse Namespace, numpy scalars...): loaded with full unpickling
    --size N | H,W       input size for tracing (default: crop_size, else resize_size, else 224)
    --out FILE           where to write the TorchScript model (default model.pt)

Re-parameterisation (RepVGG, MobileOne, timm's repvgg/mobileone/fastvit...): when the model
offers it (timm's reparameterize_model, modules with switch_to_deploy() or reparameterize()),
the deploy form is exported by default: its outputs are checked against the training form
(max abs diff <= 1e-3, same top-1) and the measured speed-up is printed.
    --no-reparam         export the model as it is

What the model file says about itself (a TorchScript extra file, ji_metadata.json, that
libji.so and tools/reference_predict.py read; a config may then be {"model_path": "model.pt"}).
The test-time preprocessing must be given, as options or with --config (or at least --size,
which states the input size and leaves libji's defaults): a model exported without any would
run with libji's defaults whatever the validation code did, so the export refuses it.
    --classes FILE       class names in any form libji reads (the training code's
                         {'name': 0, ...} dict, JSON, one per line); stored as UTF-8 JSON
    --config FILE        take class_names_path and the preprocessing keys from an
                         algo_config.json (options given here win)
    --resize-mode M      stretch | shorter_side | letterbox | pad_square
    --resize-size N|H,W  --crop-size N|H,W|none   --mean A,B,C   --std A,B,C
    --pillow-compat 13|12   --exif-transpose true|false
    --model-output logits|probabilities|auto   (auto, the default: probabilities when the
                         model's outputs on the check inputs are distributions; logits is
                         refused for such a model, probabilities for one that outputs logits)
Only what is given is stored (libji's defaults apply to the rest), except the output kind.

The model is put in eval mode and traced with torch.jit.trace on a seeded random input
[1, 3, H, W]; the saved file is loaded back and compared with the eager model on 3 seeded random
inputs (batch 1, 2, 4): the max abs output difference is printed, and the export fails if it is
above 1e-4 or the output is not [N, num_classes]. The file is written atomically.
"""
import argparse
import copy
import importlib.util
import inspect
import json
import os
import sys
import time
import zipfile

import torch

TOL = 1e-4
REPARAM_TOL = 1e-3
STATE_KEYS = ("state_dict", "model_state_dict", "model", "net")
METADATA_NAME = "ji_metadata.json"
METADATA_VERSION = 1
HERE = os.path.dirname(os.path.abspath(__file__))


def fail(msg, code=1):
    print("export_torchscript: error: " + msg, file=sys.stderr)
    sys.exit(code)


# The preprocessing options (the metadata keys libji's PREPROCESSING_KEYS lists) and libji's
# defaults written out as options.
PREPROCESSING_KEYS = ("resize_mode", "resize_size", "crop_size", "mean", "std", "pillow_compat",
                      "exif_transpose")
DEFAULT_PREPROCESSING = ["--resize-mode", "stretch", "--resize-size", "224", "--crop-size", "224",
                         "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]


def this_command(extra=(), drop=()):
    """This run's command line, runnable as written from the same folder (the interpreter as
    a path relative to it when it lies below it), with the options in `drop` (and their
    values) left out and `extra` appended."""
    import shlex
    py = sys.executable
    rel = os.path.relpath(py)
    if not rel.startswith(".."):
        py = rel
    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in drop:
            skip = "=" not in a
            continue
        args.append(a)
    return shlex.join([py, sys.argv[0]] + args + list(extra))


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


def size_option(s):
    """N, H,W or none -> config value (an int, [h, w] or None)."""
    if s.strip().lower() in ("none", "null"):
        return None
    nums = parse_size(s)
    return nums[0] if "," not in s and "x" not in s else nums


def floats_option(s):
    try:
        vals = [float(p) for p in s.replace("[", "").replace("]", "").split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected numbers separated by commas, got %r" % s)
    if len(vals) not in (1, 3):
        raise argparse.ArgumentTypeError("expected 1 or 3 numbers, got %r" % s)
    return vals


def bool_option(s):
    if s.lower() in ("true", "1", "yes"):
        return True
    if s.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError("expected true or false, got %r" % s)


# ---------------------------------------------------------------------------- building


def add_import_path(d, why):
    d = os.path.abspath(d)
    if d not in sys.path:
        sys.path.insert(0, d)
        print("import path: + %s (%s)" % (d, why))


def load_factory(spec):
    """path/to/file.py:name -> the callable `name` defined in that file."""
    path, _, name = spec.rpartition(":")
    if not os.path.isfile(path):
        fail("--arch %s: no such file: %s" % (spec, path))
    if not name.isidentifier():
        fail("--arch %s: %r is not a Python name (expected path/to/file.py:factory)" % (spec, name))
    add_import_path(os.path.dirname(path) or ".", "the folder of %s" % path)
    mod_name = os.path.splitext(os.path.basename(path))[0]
    modspec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(modspec)
    # Registered under its own name, so torch.save/pickle of its classes refers to it.
    sys.modules.setdefault(mod_name, module)
    try:
        modspec.loader.exec_module(module)
    except ModuleNotFoundError as e:
        fail("%s imports %r, which is not importable here (%s); add the folder that holds it "
             "with --import-path DIR, or pip install it" % (path, e.name, e))
    except Exception as e:  # noqa: BLE001
        fail("running %s failed: %s: %s" % (path, type(e).__name__, e))
    factory = getattr(module, name, None)
    if not callable(factory):
        known = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
        fail("%s has no function or class %r (it defines: %s)" % (path, name, ", ".join(known)))
    return factory


def takes_kwarg(fn, name):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == name or p.kind == p.VAR_KEYWORD for p in params)


def build_arch(arch, num_classes, kwargs):
    kwargs = dict(kwargs)
    if num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)
    if arch.endswith(".py") or ".py:" in arch:
        if ":" not in arch or arch.endswith(":"):
            fail("--arch %s: name the factory too: %s:create_model" % (arch, arch.rstrip(":")))
        factory = load_factory(arch)
        if "num_classes" in kwargs and not takes_kwarg(factory, "num_classes"):
            print("note: %s takes no num_classes argument; not passing it" % arch)
            kwargs.pop("num_classes")
        try:
            model = factory(**kwargs)
        except Exception as e:  # noqa: BLE001
            fail("%s(**%s) failed: %s: %s" % (arch, kwargs, type(e).__name__, e))
        if not isinstance(model, torch.nn.Module):
            fail("%s returned a %s, not a torch.nn.Module" % (arch, type(model).__name__))
        return model
    if arch.startswith("timm:"):
        try:
            import timm
        except ImportError:
            fail("--arch %s needs the timm package, which is not installed here "
                 "(pip install timm, or use a torchvision architecture name)" % arch, 2)
        name = arch[len("timm:"):]
        try:
            return timm.create_model(name, pretrained=False, **kwargs)
        except Exception as e:  # noqa: BLE001
            fail("timm cannot build %r: %s" % (name, e))
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        fail("unknown torchvision classification architecture %r; known: %s (or give your own "
             "code as path/to/file.py:factory)" % (arch, ", ".join(names)))
    return torchvision.models.get_model(arch, weights=None, **kwargs)


def load_file(path, full_unpickle):
    if not os.path.isfile(path):
        fail("no such file: %s" % path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not full_unpickle)
    except (ModuleNotFoundError, AttributeError) as e:
        if not full_unpickle:
            raise
        fail("cannot unpickle %s: %s. A pickled model stores its classes by module name, so "
             "the code that defined them must be importable here; searched first: %s. Add the "
             "folder that holds that module with --import-path DIR (or set PYTHONPATH), or "
             "export from the weights with --arch path/to/file.py:factory --weights %s"
             % (path, e, ", ".join(sys.path[:3]), path))
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


# ---------------------------------------------------------------------------- re-parameterisation


def reparameterize(model):
    """The deploy form of a re-parameterisable model (a copy) and how many modules changed;
    (None, 0) when the model offers no re-parameterisation."""
    deploy = copy.deepcopy(model)
    count = 0
    if type(model).__module__.startswith("timm."):
        try:
            from timm.utils.model import reparameterize_model
        except ImportError:
            reparameterize_model = None
        if reparameterize_model is not None:
            before = sum(1 for _ in deploy.modules())
            deploy = reparameterize_model(deploy)
            after = sum(1 for _ in deploy.modules())
            if before != after:
                return deploy.eval(), before - after
    # RepVGG / MobileOne / DBB style: each block switches itself (children first, as those
    # repos' own conversion scripts walk model.modules()).
    for m in list(deploy.modules()):
        for name in ("switch_to_deploy", "reparameterize"):
            fn = getattr(m, name, None)
            if callable(fn) and m is not deploy:
                fn()
                count += 1
                break
    if count == 0 and callable(getattr(deploy, "switch_to_deploy", None)):
        deploy.switch_to_deploy()
        count = 1
    return (deploy.eval(), count) if count else (None, 0)


def forward_ms(module, size):
    """Median time of a batch-1 forward (ms), after warm-up (TorchScript's profiling executor
    optimises during the first runs)."""
    x = torch.randn(1, 3, size[0], size[1], generator=torch.Generator().manual_seed(2))
    times = []
    with torch.no_grad():
        for _ in range(5):
            module(x)
        start = time.perf_counter()
        while len(times) < 5 or (len(times) < 50 and time.perf_counter() - start < 2.0):
            t0 = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e3


def check_reparam(model, deploy, size):
    """Max abs output difference between the two forms on seeded inputs; fails on top-1."""
    g = torch.Generator().manual_seed(3)
    worst = 0.0
    with torch.no_grad():
        for n in (1, 4):
            x = torch.randn(n, 3, size[0], size[1], generator=g)
            a, b = tensors(model(x))[0].float(), tensors(deploy(x))[0].float()
            if a.shape != b.shape:
                fail("the re-parameterised model's output shape %s differs from %s: rerun with "
                     "--no-reparam" % (list(b.shape), list(a.shape)))
            worst = max(worst, (a - b).abs().max().item())
            if not torch.equal(a.argmax(1), b.argmax(1)):
                fail("the re-parameterised model changes top-1 predictions: rerun with "
                     "--no-reparam")
    return worst


# ---------------------------------------------------------------------------- checking


def tensors(out):
    """The output's tensors in order (a tensor, or a tuple/list/dict of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in tensors(o)]
    if isinstance(out, dict):
        if "logits" in out:
            return tensors(out["logits"]) + [t for k in sorted(out) if k != "logits"
                                              for t in tensors(out[k])]
        return [t for k in sorted(out) for t in tensors(out[k])]
    fail("model returned a %s, expected tensors" % type(out).__name__)


def compare(scripted, eager, size, num_classes):
    """Max abs diff of TorchScript vs eager; also whether every output row was a probability
    distribution (for --model-output auto)."""
    g = torch.Generator().manual_seed(1)
    worst = 0.0
    distribution = True
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
            h = head.float()
            distribution = distribution and head.shape[1] > 1 and bool(
                (h >= -1e-6).all() and (h <= 1 + 1e-6).all()
                and ((h.sum(1) - 1).abs() <= 1e-4).all())
            print("  batch %d: output %s, max abs diff so far %.3g" % (n, list(head.shape), worst))
    return worst, distribution


# ---------------------------------------------------------------------------- metadata


def reference():
    sys.path.insert(0, HERE)
    import reference_predict
    return reference_predict


def gather_metadata(args):
    """(class names or None, {config key: value}) from --config and the options."""
    ref = reference()
    keys = {}
    classes = args.classes
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, ValueError) as e:
            fail("cannot read --config %s: %s" % (args.config, e))
        if not isinstance(raw, dict):
            fail("--config %s: top level must be a JSON object" % args.config)
        for k in ref.METADATA_KEYS:
            if k in raw:
                keys[k] = raw[k]
        if classes is None and isinstance(raw.get("class_names_path"), str):
            classes = os.path.join(os.path.dirname(os.path.abspath(args.config)),
                                   raw["class_names_path"])
    for k, v in (("resize_mode", args.resize_mode), ("resize_size", args.resize_size),
                 ("crop_size", args.crop_size), ("mean", args.mean), ("std", args.std),
                 ("pillow_compat", args.pillow_compat), ("exif_transpose", args.exif_transpose)):
        if v is not None:
            keys[k] = None if v == "none" else v
    try:
        ref.validate_keys(keys)
    except ref.ConfigError as e:
        fail(str(e))
    names = None
    if classes is not None:
        try:
            names = ref.load_class_names(classes)
        except ref.ConfigError as e:
            fail(str(e))
    return names, keys


def trace_size(args, keys):
    """The model's input size: --size, else what the preprocessing produces (libji's default
    crop is 224), else 224."""
    if args.size:
        return args.size
    crop = keys.get("crop_size", [224, 224])
    if crop is None:
        crop = keys.get("resize_size", [224, 224])
        if keys.get("resize_mode") == "shorter_side":
            crop = [224, 224]
    return [crop, crop] if isinstance(crop, int) else list(crop)


def read_metadata(path):
    """The metadata embedded in an exported file (None when there is none)."""
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            if n.endswith("/extra/" + METADATA_NAME):
                return json.loads(z.read(n).decode("utf-8"))
    return None


# ---------------------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--arch")
    ap.add_argument("--arch-kwargs", default="{}")
    ap.add_argument("--num-classes", type=int)
    ap.add_argument("--weights")
    ap.add_argument("--pickled")
    ap.add_argument("--import-path", action="append", default=[])
    ap.add_argument("--trust-checkpoint", action="store_true")
    ap.add_argument("--size", type=parse_size)
    ap.add_argument("--out", default="model.pt")
    ap.add_argument("--no-reparam", action="store_true")
    ap.add_argument("--classes")
    ap.add_argument("--config")
    ap.add_argument("--resize-mode", choices=["stretch", "shorter_side", "letterbox", "pad_square"])
    ap.add_argument("--resize-size", type=size_option)
    ap.add_argument("--crop-size", type=lambda s: "none" if s.strip().lower() in ("none", "null")
                    else size_option(s))
    ap.add_argument("--mean", type=floats_option)
    ap.add_argument("--std", type=floats_option)
    ap.add_argument("--pillow-compat", choices=["13", "12"])
    ap.add_argument("--exif-transpose", type=bool_option)
    ap.add_argument("--model-output", choices=["logits", "probabilities", "auto"], default="auto")
    args = ap.parse_args(argv)
    try:
        arch_kwargs = json.loads(args.arch_kwargs)
    except ValueError as e:
        ap.error("--arch-kwargs is not valid JSON: %s" % e)
    if not isinstance(arch_kwargs, dict):
        ap.error("--arch-kwargs must be a JSON object")

    names, keys = gather_metadata(args)
    size = trace_size(args, keys)
    for d in args.import_path:
        add_import_path(d, "--import-path")

    torch.manual_seed(0)
    if args.pickled:
        if args.arch or args.weights:
            ap.error("--pickled replaces --arch/--weights")
        add_import_path(".", "the current folder")
        add_import_path(os.path.dirname(os.path.abspath(args.pickled)),
                        "the folder of %s" % args.pickled)
        obj = load_file(args.pickled, full_unpickle=True)
        if isinstance(obj, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            obj = obj.module
        if isinstance(obj, dict):
            for k in STATE_KEYS:
                if isinstance(obj.get(k), torch.nn.Module):
                    print("using checkpoint key %r of %s" % (k, args.pickled))
                    obj = obj[k]
                    break
        if not isinstance(obj, torch.nn.Module):
            fail("%s holds a %s, not a model: for a state dict or checkpoint use --arch with "
                 "--weights" % (args.pickled, type(obj).__name__))
        model = obj
        source = args.pickled
    else:
        if not args.arch:
            ap.error("give --arch (with --num-classes) or --pickled")
        if args.num_classes is None and "num_classes" not in arch_kwargs and (
                not (args.arch.endswith(".py") or ".py:" in args.arch)):
            ap.error("--arch needs --num-classes N (N > 0)")
        if args.num_classes is not None and args.num_classes <= 0:
            ap.error("--num-classes must be > 0")
        model = build_arch(args.arch, args.num_classes, arch_kwargs)
        if args.weights:
            sd = extract_state_dict(load_file(args.weights, args.trust_checkpoint), args.weights)
            load_weights(model, sd, args.weights)
            source = "%s + %s" % (args.arch, args.weights)
        else:
            print("warning: no --weights: exporting randomly initialised weights (seed 0)")
            source = "%s (random init)" % args.arch
    # Checked once the model is built, so mistakes in --arch/--weights are reported first.
    if not any(k in keys for k in PREPROCESSING_KEYS):
        if not args.size:
            fail("no test-time preprocessing given%s: libji would resize, crop and normalise with "
                 "its defaults (stretch to 224x224, ImageNet mean and std) whatever your "
                 "validation code does. Give the preprocessing your validation code uses, with "
                 "--resize-mode, --resize-size, --crop-size, --mean and --std (or --config "
                 "algo_config.json); with libji's defaults written out, that is:\n    %s\n"
                 "(--size N alone states the input size and keeps libji's defaults)"
                 % (" (--config %s sets none)" % args.config if args.config else "",
                    this_command(DEFAULT_PREPROCESSING)))
        print("note: no preprocessing stored (--size only): libji will apply its defaults "
              "(stretch to 224x224, crop 224, ImageNet mean and std) unless the config sets them")
    model = model.cpu().float().eval()
    params = sum(p.numel() for p in model.parameters())
    print("model: %s, %.2fM parameters, input [N, 3, %d, %d]"
          % (source, params / 1e6, size[0], size[1]))
    num_classes = args.num_classes or arch_kwargs.get("num_classes")
    if names is not None:
        if num_classes is not None and num_classes != len(names):
            fail("--num-classes is %d but the class file lists %d names" % (num_classes, len(names)))
        num_classes = len(names)

    example = torch.randn(1, 3, size[0], size[1], generator=torch.Generator().manual_seed(0))
    if isinstance(model, torch.jit.ScriptModule):
        print("already TorchScript: saving it as it is")
        scripted = model
    else:
        if not args.no_reparam:
            deploy, count = reparameterize(model)
            if deploy is not None:
                diff = check_reparam(model, deploy, size)
                print("re-parameterised %d module(s) to the deploy form: outputs equal to the "
                      "training form within %.3g (limit %g), same top-1" % (count, diff, REPARAM_TOL))
                if diff > REPARAM_TOL:
                    fail("the re-parameterised model differs from the training form by %.3g "
                         "(> %g): rerun with --no-reparam" % (diff, REPARAM_TOL))
                with torch.no_grad():
                    before = forward_ms(torch.jit.trace(model, example), size)
                    after = forward_ms(torch.jit.trace(deploy, example), size)
                print("speed: %.2f ms -> %.2f ms per image (batch 1, CPU, here): %.2fx faster "
                      "(--no-reparam keeps the training form)" % (before, after, before / after))
                model = deploy
        with torch.no_grad():
            scripted = torch.jit.trace(model, example)

    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".tmp"
    try:
        scripted.save(tmp)
        loaded = torch.jit.load(tmp, map_location="cpu").eval()
        print("TorchScript (reloaded) vs eager on 3 seeded random inputs:")
        diff, distribution = compare(loaded, model, size, num_classes)
        print("max abs diff: %.3g (limit %g)" % (diff, TOL))
        if diff > TOL:
            fail("the traced model does not reproduce the eager one (diff %.3g > %g); the "
                 "model may have data-dependent control flow: script it instead" % (diff, TOL))
        output = args.model_output
        source = "--model-output"
        if output == "auto":
            output = keys.get("model_output", "auto")
            source = '"model_output" in --config %s' % args.config
        if output == "logits" and distribution:
            fail("%s is logits, but the model's outputs are already probabilities (every output "
                 "row on the check inputs sums to 1: it ends in softmax), so libji would apply "
                 "softmax a second time and flatten the confidences. Export without it:\n    %s"
                 % (source, this_command(drop=("--model-output",)) if source == "--model-output"
                    else this_command(("--model-output", "probabilities"))))
        if output == "auto":
            output = "probabilities" if distribution else "logits"
            print("model output: %s (%s)" % (output, "every output row is a distribution"
                                             if distribution else "rows are not distributions"))
        elif output == "probabilities" and not distribution:
            fail("%s is probabilities, but the model's outputs are not probability "
                 "distributions (they are logits). Export without it:\n    %s"
                 % (source, this_command(drop=("--model-output",)) if source == "--model-output"
                    else this_command(("--model-output", "logits"))))
        keys["model_output"] = output
        meta = {"version": METADATA_VERSION, "exported_by": "tools/export_torchscript.py",
                "source": source, "config": keys}
        if names is not None:
            meta["class_names"] = names
        text = json.dumps(meta, ensure_ascii=False, indent=1)
        # Saved again, now with the metadata: torch.jit.load ignores extra files it is not
        # asked for, libji.so and reference_predict.py read it.
        loaded.save(tmp, _extra_files={METADATA_NAME: text.encode("utf-8")})
        if read_metadata(tmp) != json.loads(text):
            fail("the metadata did not survive saving")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print("metadata: %s; %s" % (
        "%d class names" % len(names) if names is not None else "no class names (give --classes)",
        ", ".join("%s=%s" % (k, json.dumps(v)) for k, v in keys.items())))
    print("wrote %s (%.1f MB)" % (args.out, os.path.getsize(out) / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
