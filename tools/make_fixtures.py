#!/usr/bin/env python3
"""Generates the test fixtures (tiny TorchScript models, class files, configs, images).

Usage: make_fixtures.py OUT_DIR

Everything is made here, deterministically; nothing is downloaded. The "colour" model's
answer is known by construction: it scores each class by one channel's mean of the
normalised input, so a red image is class 0, green 1, blue 2. Writes into a temp folder
and renames it into place, so concurrent test binaries never see a half-written set.
"""
import json
import os
import shutil
import sys
import tempfile

import torch
from PIL import Image

NAMES = ["有害垃圾_杀虫剂", "可回收物_塑料瓶", "厨余垃圾_果皮"]


class ColourNet(torch.nn.Module):
    """logits[c] = 10 * mean of channel c (after normalisation)."""

    def forward(self, x):
        return x.mean(dim=(2, 3)) * 10.0


class ProbNet(torch.nn.Module):
    """Outputs probabilities directly (for model_output = probabilities)."""

    def forward(self, x):
        return torch.softmax(x.mean(dim=(2, 3)) * 10.0, dim=1)


class TupleNet(torch.nn.Module):
    """Returns (logits, aux) like models with auxiliary heads."""

    def forward(self, x):
        m = x.mean(dim=(2, 3)) * 10.0
        return m, m * 0.0


class DictNet(torch.nn.Module):
    """Returns {"aux": ..., "logits": ...} like Hugging Face style heads."""

    def forward(self, x):
        m = x.mean(dim=(2, 3)) * 10.0
        return {"aux": m * 0.0, "logits": m}


class WideNet(torch.nn.Module):
    """Five outputs: does not match a three-class file."""

    def forward(self, x):
        return torch.cat([x.mean(dim=(2, 3)), x.mean(dim=(2, 3))[:, :2]], dim=1)


class ThrowNet(torch.nn.Module):
    """Fails at forward time unless the input is the 224x224 probe size... always fails."""

    def forward(self, x):
        if x.shape[1] == 3:
            raise RuntimeError("this model always fails")
        return x


class MoodyNet(torch.nn.Module):
    """Works at init (the probe input is zeros) but fails at forward on bright images."""

    def forward(self, x):
        if bool(x.mean() > 0.9):
            raise RuntimeError("too bright for this model")
        return x.mean(dim=(2, 3)) * 10.0


class ConvNet(torch.nn.Module):
    """A small real CNN (random weights, seeded): exercises conv/bn/pool paths."""

    def __init__(self, classes):
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
        )
        self.fc = torch.nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def save_script(module, path):
    module.eval()
    torch.jit.script(module).save(path)


def solid(colour, size=(64, 48)):
    return Image.new("RGB", size, colour)


STAMP = "version-2"


def main(out):
    parent = os.path.dirname(os.path.abspath(out)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".fixtures-", dir=parent)
    j = lambda *p: os.path.join(tmp, *p)
    os.makedirs(j("model"))
    os.makedirs(j("images"))

    save_script(ColourNet(), j("model", "colour.pt"))
    save_script(ProbNet(), j("model", "prob.pt"))
    save_script(TupleNet(), j("model", "tuple.pt"))
    save_script(DictNet(), j("model", "dict.pt"))
    save_script(WideNet(), j("model", "wide.pt"))
    save_script(ThrowNet(), j("model", "throw.pt"))
    save_script(ConvNet(len(NAMES)), j("model", "conv.pt"))
    save_script(MoodyNet(), j("model", "moody.pt"))
    # Saved after .half() / .double(), as contestants sometimes do: must still run on fp32 input.
    save_script(ConvNet(len(NAMES)).half(), j("model", "conv_half.pt"))
    save_script(ConvNet(len(NAMES)).double(), j("model", "conv_double.pt"))
    with open(j("model", "not_a_model.pt"), "wb") as f:
        f.write(b"this is not a TorchScript archive\n")

    # The training code's own format: a Python dict literal, single quotes, not in index order.
    with open(j("model", "class.txt"), "w", encoding="utf-8") as f:
        f.write("{'%s': 1, '%s': 0, '%s': 2}\n" % (NAMES[1], NAMES[0], NAMES[2]))
    with open(j("model", "class_dup.txt"), "w", encoding="utf-8") as f:
        f.write("{'a': 0, 'b': 0, 'c': 2}\n")
    with open(j("model", "class_gap.txt"), "w", encoding="utf-8") as f:
        f.write("{'a': 0, 'b': 1, 'c': 3}\n")

    base = {
        "model_path": "model/colour.pt",
        "class_names_path": "model/class.txt",
        "device": "cpu",
        "resize_mode": "stretch",
        "resize_size": [32, 32],
        "crop_size": [32, 32],
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
    }
    configs = {
        "colour.json": base,
        "prob.json": dict(base, model_path="model/prob.pt", model_output="probabilities"),
        "tuple.json": dict(base, model_path="model/tuple.pt"),
        "dict.json": dict(base, model_path="model/dict.pt"),
        "conv.json": dict(base, model_path="model/conv.pt", resize_size=256, crop_size=224,
                          resize_mode="shorter_side"),
        "letterbox.json": dict(base, resize_mode="letterbox", resize_size=[36, 36]),
        "conv_optimized.json": dict(base, model_path="model/conv.pt", resize_size=256, crop_size=224,
                                    resize_mode="shorter_side", optimize=True),
        "conv_half.json": dict(base, model_path="model/conv_half.pt", resize_size=256, crop_size=224,
                               resize_mode="shorter_side"),
        "conv_double.json": dict(base, model_path="model/conv_double.pt", resize_size=256, crop_size=224,
                                 resize_mode="shorter_side"),
        "conv_half_optimized.json": dict(base, model_path="model/conv_half.pt", resize_size=256, crop_size=224,
                                         resize_mode="shorter_side", optimize=True),
        "wide.json": dict(base, model_path="model/wide.pt"),
        "moody.json": dict(base, model_path="model/moody.pt"),
        "small_limit.json": dict(base, max_image_pixels=10000),
        "throw.json": dict(base, model_path="model/throw.pt"),
        "not_a_model.json": dict(base, model_path="model/not_a_model.pt"),
        "missing_model.json": dict(base, model_path="model/nope.pt"),
        "class_dup.json": dict(base, class_names_path="model/class_dup.txt"),
        "class_gap.json": dict(base, class_names_path="model/class_gap.txt"),
        "cuda.json": dict(base, device="cuda"),
        "unknown_key.json": dict(base, resize_mod="stretch"),
        "wrong_type.json": dict(base, topk="five"),
    }
    for name, cfg in configs.items():
        with open(j(name), "w", encoding="utf-8") as f:
            json.dump(cfg, f, ensure_ascii=False, indent=1)
    with open(j("invalid.json"), "w") as f:
        f.write('{"model_path": "model/colour.pt",')
    open(j("empty.json"), "w").close()

    colours = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
    for cname, rgb in colours.items():
        img = solid(rgb)
        img.save(j("images", cname + ".jpg"), quality=95)
        img.save(j("images", cname + ".png"))
        img.save(j("images", cname + ".bmp"))
        # Raw BGR with a padded stride (4 extra bytes per row) for the raw-frame API.
        w, h = img.size
        row_pad = 4
        with open(j("images", cname + ".bgr"), "wb") as f:
            for y in range(h):
                for x in range(w):
                    r, g, b = img.getpixel((x, y))
                    f.write(bytes((b, g, r)))
                f.write(b"\x00" * row_pad)
    with open(j("images", "not_an_image.jpg"), "w") as f:
        f.write("hello, I am text\n")
    jpeg = open(j("images", "red.jpg"), "rb").read()
    with open(j("images", "truncated.jpg"), "wb") as f:
        f.write(jpeg[: len(jpeg) // 3])
    # Odd but valid files: 1x1, 1xN, 16-bit PNG, an animated GIF (first frame counts), white.
    solid((200, 30, 30), (1, 1)).save(j("images", "one_pixel.png"))
    solid((30, 30, 200), (1, 500)).save(j("images", "one_by_500.jpg"))
    Image.new("I;16", (20, 10), 40000).save(j("images", "gray16.png"))
    frames = [solid((30, 200, 30), (16, 16)), solid((200, 30, 30), (16, 16))]
    frames[0].save(j("images", "animated.gif"), save_all=True, append_images=frames[1:], duration=50, loop=0)
    solid((255, 255, 255), (32, 32)).save(j("images", "white.png"))
    # A labelled folder (ImageFolder layout) for the harness: class folder -> images.
    for i, cname in enumerate(colours):
        d = j("val", NAMES[i])
        os.makedirs(d)
        for k in range(3):
            shade = 20 * k
            rgb = tuple(max(0, min(255, c + shade)) for c in colours[cname])
            solid(rgb, (40 + 7 * k, 30 + 5 * k)).save(os.path.join(d, "%s_%d.jpg" % (cname, k)))

    # The Makefile regenerates the set when this stamp is missing (bump it when they change).
    open(j(STAMP), "w").close()
    if os.path.isdir(out):
        shutil.rmtree(out, ignore_errors=True)
    try:
        os.rename(tmp, out)
    except OSError:
        # Another process won the race and made the same files.
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/generated/core")
