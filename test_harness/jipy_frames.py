"""Frames for test_harness/jipy_check.py, read as the judge reads them: cv2.imread.

    .venv/bin/python test_harness/jipy_frames.py OUT_DIR IMAGE...

Writes OUT_DIR/<name>.npy for every image (cv2.imread: BGR, HxWx3), and for the first image
also <name>_gray.npy (IMREAD_GRAYSCALE, HxW) and <name>_bgra.npy (HxWx4, alpha a gradient
the library must ignore). OpenCV is opencv-python-headless, pinned in tools/requirements.txt.
"""

import os
import sys

import cv2
import numpy as np

out, images = sys.argv[1], sys.argv[2:]
if not images:
    sys.exit(__doc__)
os.makedirs(out, exist_ok=True)
for i, path in enumerate(images):
    name = "%02d_%s" % (i, os.path.splitext(os.path.basename(path))[0])
    bgr = cv2.imread(path)
    if bgr is None:
        sys.exit("jipy_frames: cv2.imread cannot read %s" % path)
    np.save(os.path.join(out, name + ".npy"), bgr)
    if i == 0:
        np.save(os.path.join(out, name + "_gray.npy"), cv2.imread(path, cv2.IMREAD_GRAYSCALE))
        bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
        bgra[:, :, 3] = np.arange(bgra.shape[1], dtype=np.uint8)[None, :]
        np.save(os.path.join(out, name + "_bgra.npy"), bgra)
print("jipy_frames: %d images -> %s (OpenCV %s)" % (len(images), out, cv2.__version__))
