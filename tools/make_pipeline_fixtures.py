#!/usr/bin/env python3
"""Generates the end-to-end preprocessing parity fixtures (torchvision tensors and model
predictions) that tests/parity_pipeline.rs compares libji.so against.

Usage: make_pipeline_fixtures.py [OUT_DIR]   (default tests/fixtures/generated/pipeline)

* images/: real photos from scikit-image's wheel plus generated images of awkward sizes,
  formats and modes (odd, tiny, 1xN, large, gray, CMYK JPEG, RGBA PNG).
* For every image and every preprocessing mode below: the float32 CHW tensor that
  PIL + torchvision build (tools/reference_predict.py's transform), as raw .f32 files.
* A TorchScript ResNet-18 with 146 classes (seeded random weights, final layer scaled
  so predictions are peaked) and, for the photos, the Python pipeline's top-5 predictions in
  each mode (reference_predict.predict), to compare through the C API.
Deterministic; nothing is downloaded. Writes to a temp dir, then renames into place.
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_predict  # noqa: E402  (the Python pipeline under test)

MODES = {
    # name: config keys (the preprocessing part of algo_config.json)
    "stretch": {"resize_mode": "stretch", "resize_size": [224, 224], "crop_size": [224, 224]},
    "shorter_side": {"resize_mode": "shorter_side", "resize_size": 256, "crop_size": 224},
    "letterbox": {"resize_mode": "letterbox", "resize_size": [256, 256], "crop_size": 224},
    "letterbox_rect": {"resize_mode": "letterbox", "resize_size": [240, 320], "crop_size": [224, 288]},
    "pad_square": {"resize_mode": "pad_square", "resize_size": [256, 256], "crop_size": 224},
    "pad_square_rect": {"resize_mode": "pad_square", "resize_size": [240, 320], "crop_size": None},
    "crop_pads": {"resize_mode": "stretch", "resize_size": [100, 120], "crop_size": [128, 136]},
    "no_crop": {"resize_mode": "stretch", "resize_size": [64, 48], "crop_size": None},
}
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
PHOTO_MODES = ["stretch", "shorter_side", "letterbox", "pad_square"]
# Bumped whenever what this script writes changes: the Makefile and tests/parity_pipeline.rs
# regenerate a folder that lacks this file (CI starts fresh, developers' trees do not).
STAMP = "version-2"


def skimage_photo(name):
    import skimage
    return Image.open(os.path.join(os.path.dirname(skimage.__file__), "data", name)).convert("RGB")


def make_images(d):
    rng = np.random.default_rng(7)
    photos = {}
    photos["chelsea.png"] = skimage_photo("chelsea.png")
    photos["coffee.jpg"] = skimage_photo("coffee.png")
    photos["rocket.jpg"] = skimage_photo("rocket.jpg")
    photos["astronaut_1080p.jpg"] = skimage_photo("astronaut.png").resize((1920, 1080), Image.BICUBIC)
    os.makedirs(os.path.join(d, "photos"))
    for name, img in photos.items():
        img.save(os.path.join(d, "photos", name), quality=90)
    others = {}
    noise = lambda w, h: Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    smooth = lambda w, h: skimage_photo("coffee.png").resize((w, h), Image.BILINEAR)
    others["odd_333x517.jpg"] = (smooth(333, 517), {"quality": 85})
    others["tall_101x300.png"] = (noise(101, 300), {})
    others["tiny_1x1.png"] = (noise(1, 1), {})
    others["line_3x700.png"] = (noise(3, 700), {})
    others["wide_700x5.jpg"] = (smooth(700, 5), {"quality": 95})
    others["gray_50x20.png"] = (smooth(50, 20).convert("L"), {})
    others["cmyk_120x90.jpg"] = (smooth(120, 90).convert("CMYK"), {"quality": 90})
    others["rgba_77x66.png"] = (Image.merge("RGBA", (*smooth(77, 66).split(), noise(77, 66).getchannel(0))), {})
    others["p420_641x479.jpg"] = (smooth(641, 479), {"quality": 75, "subsampling": 2})
    os.makedirs(os.path.join(d, "images"))
    for name, (img, kw) in others.items():
        img.save(os.path.join(d, "images", name), **kw)
    for name in photos:
        shutil.copy(os.path.join(d, "photos", name), os.path.join(d, "images", name))
    return sorted(os.listdir(os.path.join(d, "images")))


def make_model(d, classes=146):
    torch.manual_seed(0)
    # ResNet-18: random-init MobileNets output near-constant logits, which would test nothing.
    model = torchvision.models.resnet18(num_classes=classes)
    with torch.no_grad():
        model.fc.weight.mul_(4.0)  # peaked predictions: a clear top-1
    model.eval()
    traced = torch.jit.trace(model, torch.randn(1, 3, 224, 224))
    os.makedirs(os.path.join(d, "model"))
    traced.save(os.path.join(d, "model", "resnet18_146.pt"))
    names = {"类别_%03d" % i: i for i in range(classes)}
    with open(os.path.join(d, "model", "class.txt"), "w", encoding="utf-8") as f:
        f.write(repr(names))


def main(out):
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".pipeline-", dir=parent)
    images = make_images(tmp)
    make_model(tmp)
    manifest = {"modes": {}, "images": images, "cases": [], "photo_modes": PHOTO_MODES}
    os.makedirs(os.path.join(tmp, "tensors"))
    for mode, keys in MODES.items():
        cfg = dict(keys, model_path="model/resnet18_146.pt", class_names_path="model/class.txt",
                   device="cpu", mean=MEAN, std=STD, confidence_decimals=None, topk=5)
        cfg_path = os.path.join(tmp, "config_%s.json" % mode)
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        manifest["modes"][mode] = "config_%s.json" % mode
        transform = reference_predict.make_transform(reference_predict.load_config(cfg_path))
        for name in images:
            img = reference_predict.load_image(os.path.join(tmp, "images", name), False)
            t = transform(img).contiguous().numpy().astype(np.float32)
            fname = "%s__%s.f32" % (mode, name)
            t.tofile(os.path.join(tmp, "tensors", fname))
            manifest["cases"].append({"mode": mode, "image": name, "tensor": fname, "shape": list(t.shape)})
        if mode in PHOTO_MODES:
            ref = reference_predict.predict(cfg_path, os.path.join(tmp, "photos"), topk=5,
                                            decode="pil")
            with open(os.path.join(tmp, "reference_%s.json" % mode), "w", encoding="utf-8") as f:
                json.dump(ref, f, ensure_ascii=False, indent=1)
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    open(os.path.join(tmp, STAMP), "w").close()
    if os.path.isdir(out):
        shutil.rmtree(out, ignore_errors=True)
    try:
        os.rename(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    print("pipeline fixtures: %d images x %d modes in %s" % (len(images), len(MODES), out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/generated/pipeline")
