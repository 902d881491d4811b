#!/usr/bin/env python3
"""Generates the models that tests/tta.rs ensembles with the pipeline fixtures' ResNet-18
(tools/make_pipeline_fixtures.py): members that differ from it in everything a member may
differ in.

Usage: make_ensemble_fixtures.py [OUT_DIR]   (default tests/fixtures/generated/ensemble)

* model/resnet18_softmax.pt: another ResNet-18 (seed 1, final layer scaled) ending in
  softmax, with embedded metadata as tools/export_torchscript.py writes it: the pipeline's 146
  class names, letterbox to [240, 320], crop [224, 288] (another input size),
  "model_output": "probabilities".
* model/tiny_other_names.pt: a small CNN with 146 outputs whose metadata names other classes.
* model/tiny_10.pt: a small CNN with 10 outputs and 10 embedded class names.
Deterministic; nothing is downloaded. Writes to a temp dir, then renames into place.
"""
import json
import os
import shutil
import sys
import tempfile

import torch
import torchvision

METADATA_NAME = "ji_metadata.json"
STAMP = "version-1"
CLASSES = 146
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def pipeline_names(n=CLASSES):
    # tools/make_pipeline_fixtures.py's class.txt, in index order.
    return ["类别_%03d" % i for i in range(n)]


def save(model, path, example, names, config):
    model.eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    meta = {"version": 1, "exported_by": "tools/make_ensemble_fixtures.py", "config": config,
            "class_names": names}
    traced.save(path, _extra_files={METADATA_NAME: json.dumps(meta, ensure_ascii=False)})


def tiny(classes, seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(8, classes))


def main(out):
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".ensemble-", dir=parent)
    os.makedirs(os.path.join(tmp, "model"))
    torch.manual_seed(1)
    net = torchvision.models.resnet18(num_classes=CLASSES)
    with torch.no_grad():
        net.fc.weight.mul_(4.0)  # peaked predictions, as the pipeline's model
    save(torch.nn.Sequential(net, torch.nn.Softmax(dim=1)),
         os.path.join(tmp, "model", "resnet18_softmax.pt"), torch.randn(1, 3, 224, 288),
         pipeline_names(),
         {"resize_mode": "letterbox", "resize_size": [240, 320], "crop_size": [224, 288],
          "mean": MEAN, "std": STD, "model_output": "probabilities"})
    small = {"resize_mode": "stretch", "resize_size": [64, 64], "crop_size": [64, 64],
             "mean": MEAN, "std": STD, "model_output": "logits"}
    save(tiny(CLASSES, 2), os.path.join(tmp, "model", "tiny_other_names.pt"),
         torch.randn(1, 3, 64, 64), ["other_%03d" % i for i in range(CLASSES)], small)
    save(tiny(10, 3), os.path.join(tmp, "model", "tiny_10.pt"), torch.randn(1, 3, 64, 64),
         ["类别_%03d" % i for i in range(10)], small)
    open(os.path.join(tmp, STAMP), "w").close()
    if os.path.isdir(out):
        shutil.rmtree(out, ignore_errors=True)
    try:
        os.rename(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ensemble fixtures: 3 models in %s" % out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/generated/ensemble")
