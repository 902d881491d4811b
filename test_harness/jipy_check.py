"""Checks an installed tree's src/ji.py (the platform's Python judge API) against the C API.

    python3 jipy_check.py --tree TREE --frames DIR [--pythonpath DIR]

Runs with the standard library and numpy only, in the interpreter that runs it:
test_harness/jipy_check.sh runs it in a private mount namespace where the build's .venv and
target/ are hidden (a Python without torch; numpy copied beside it, named by --pythonpath), and
the same script can run inside another root (a Debian 11 chroot with python3-numpy) given the
tree and the frames. The frames are `*.npy` arrays made outside by cv2.imread
(test_harness/jipy_frames.py): this script never needs OpenCV.

Every result of ji.process_image is compared, as a string, with what ji_calc_frame (the
ji_* C API of the same libji.so, called here through ctypes) puts in event->json for the same
array. Also: torch is never imported (and cannot be), the host's environment is unchanged,
views give their copies' answers (read in place when rows are positive-strided and pixels
packed, copied otherwise), every bad input raises ValueError, library failures give the C
API's error JSON, a failing init raises RuntimeError, 4 threads x 50 calls, release.
EV_SDK_CONFIG must be unset when it starts (init() must find the tree's config itself).
"""

import argparse
import ast
import ctypes
import glob
import json
import os
import sys
import threading

ap = argparse.ArgumentParser()
ap.add_argument("--tree", required=True)
ap.add_argument("--frames", required=True)
ap.add_argument("--pythonpath", help="a folder holding numpy, put first on sys.path")
ap.add_argument("--threads", type=int, default=4)
ap.add_argument("--calls", type=int, default=50, help="calls per thread")
a = ap.parse_args()
if a.pythonpath:
    sys.path.insert(0, a.pythonpath)
import numpy as np  # noqa: E402  (after --pythonpath)

TREE = os.path.abspath(a.tree)
CONFIG = os.path.join(TREE, "config", "algo_config.json")
passed = 0
failed = 0


def ok(name):
    global passed
    passed += 1
    print("ok   " + name)


def bad(name, detail=""):
    global failed
    failed += 1
    print("FAIL " + name)
    for line in str(detail).splitlines()[:30]:
        print("    " + line)


def check(cond, name, detail=""):
    if cond:
        ok(name)
    else:
        bad(name, detail)
    return cond


# --- ji.py's source: Python 3.6 syntax ------------------------------------------------------
JI_PY = os.path.join(TREE, "src", "ji.py")
source = open(JI_PY, encoding="utf-8").read()
if sys.version_info >= (3, 8):
    try:
        ast.parse(source, filename=JI_PY, feature_version=(3, 6))
        ok("src/ji.py parses as Python 3.6")
    except SyntaxError as e:
        bad("src/ji.py parses as Python 3.6", e)
else:
    print("skip Python 3.6 syntax check (ast.parse's feature_version needs Python 3.8)")

# --- import and init from the tree, environment untouched -----------------------------------
if os.environ.get("EV_SDK_CONFIG"):
    sys.exit("jipy_check: unset EV_SDK_CONFIG first (init() must find the tree's config)")
env_before = dict(os.environ)
sys.path.insert(0, os.path.join(TREE, "src"))
import ji  # noqa: E402

check(os.path.realpath(ji.__file__) == os.path.realpath(JI_PY), "imports the tree's ji.py", ji.__file__)
h = ji.init()
check(
    os.path.realpath(h.config_path) == os.path.realpath(CONFIG),
    "init() with EV_SDK_CONFIG unset reads the tree's config/algo_config.json",
    h.config_path,
)
check(dict(os.environ) == env_before, "init() leaves the environment unchanged")
maps = open("/proc/self/maps").read()
libs = sorted({ln.split()[-1] for ln in maps.splitlines() if "libtorch_cpu.so" in ln or "libji.so" in ln})
check(
    libs and all(p.startswith(os.path.realpath(TREE) + "/lib/") for p in libs),
    "libji.so and libtorch_cpu.so are loaded from the tree's lib/",
    "\n".join(libs),
)

# --- the C API's answer for the same array: ji_calc_frame through ctypes ---------------------
clib = ctypes.CDLL(os.path.join(TREE, "lib", "libji.so"))


class JI_CV_FRAME(ctypes.Structure):
    _fields_ = [
        ("rows", ctypes.c_int),
        ("cols", ctypes.c_int),
        ("type", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("step", ctypes.c_int),
    ]


class JI_EVENT(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("json", ctypes.c_char_p)]


clib.ji_create_predictor.restype = ctypes.c_void_p
clib.ji_create_predictor.argtypes = [ctypes.c_int]
clib.ji_calc_frame.restype = ctypes.c_int
clib.ji_calc_frame.argtypes = [
    ctypes.c_void_p,
    ctypes.POINTER(JI_CV_FRAME),
    ctypes.c_char_p,
    ctypes.c_void_p,
    ctypes.POINTER(JI_EVENT),
]
clib.ji_destroy_predictor.argtypes = [ctypes.c_void_p]
clib.evsdk_last_error.restype = ctypes.c_char_p


def predictor(config):
    """ji_create_predictor reads $EV_SDK_CONFIG: set for the call, then restored."""
    os.environ["EV_SDK_CONFIG"] = config
    try:
        p = clib.ji_create_predictor(0)
    finally:
        del os.environ["EV_SDK_CONFIG"]
    if not p:
        sys.exit("jipy_check: ji_create_predictor(%s): %s" % (config, clib.evsdk_last_error()))
    return p


CV_TYPE = {1: 0, 3: 16, 4: 24}  # CV_8UC1, CV_8UC3, CV_8UC4


def calc_frame(pred, arr, args=None):
    """ji_calc_frame on `arr` as it lies in memory (its row step) when its pixels are packed,
    else on a packed copy: the JSON of event->json."""
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    packed = arr.strides[1:] == ((channels, 1) if arr.ndim == 3 else (1,)) and arr.strides[0] > 0
    if not packed:
        arr = np.ascontiguousarray(arr)
    f = JI_CV_FRAME(arr.shape[0], arr.shape[1], CV_TYPE[channels], arr.ctypes.data, arr.strides[0])
    ev = JI_EVENT()
    if isinstance(args, str):
        args = args.encode("utf-8")
    clib.ji_calc_frame(pred, ctypes.byref(f), args, None, ctypes.byref(ev))
    return ev.json.decode("utf-8")


pred = predictor(CONFIG)

# --- cv2.imread frames: ji.py equals ji_calc_frame, string for string ------------------------
paths = sorted(glob.glob(os.path.join(a.frames, "*.npy")))
frames = [(os.path.basename(p)[:-4], np.load(p)) for p in paths]
if not frames:
    sys.exit("jipy_check: no *.npy frames in " + a.frames)
kinds = {}
for name, f in frames:
    kinds[f.shape[2] if f.ndim == 3 else 1] = True
mismatch = []
results = {}
for name, f in frames:
    for args in (None, '{"topk": 5}', {"topk": 3, "thresh": 0.0}):
        got = ji.process_image(h, f, args)
        want = calc_frame(pred, f, json.dumps(args) if isinstance(args, dict) else args)
        if got != want:
            mismatch.append("%s args=%r:\n  ji.py  %s\n  C API  %s" % (name, args, got, want))
        results[(name, json.dumps(args))] = got
check(
    not mismatch and sorted(kinds) == [1, 3, 4],
    "%d cv2.imread frames (BGR, gray, BGRA) x 3 args: ji.py's JSON equals ji_calc_frame's" % len(frames),
    "\n".join(mismatch) or "frame kinds: %s" % sorted(kinds),
)
one = json.loads(results[(frames[0][0], json.dumps('{"topk": 5}'))])
check(
    len(one["model_data"]["topk"]) == 5 and "class" in one and "error" not in one,
    "results are the platform's JSON (topk honoured, class names as UTF-8)",
    one,
)

# --- views: in place when packed, copied otherwise; same answer as the copy ------------------
bgr = next(f for _, f in frames if f.ndim == 3 and f.shape[2] == 3)
gray = next(f for _, f in frames if f.ndim == 2)
bgra = next(f for _, f in frames if f.ndim == 3 and f.shape[2] == 4)
H, W = bgr.shape[:2]
padded = np.zeros((H, W * 3 + 13), np.uint8)
padded[:, : W * 3] = bgr.reshape(H, W * 3)
padded_view = np.lib.stride_tricks.as_strided(padded, (H, W, 3), (W * 3 + 13, 3, 1))
in_place = {
    "crop": bgr[11:-7, 13:-5],
    "cv::Mat with a padded step": padded_view,
    "gray crop": gray[3:-3, 5:],
    "gray HxWx1": gray[:, :, None],
    "BGRA crop": bgra[2:, :-9],
    "one row": bgr[5:6],
    "one column": bgr[:, 7:8],
    "1x1": bgr[3:4, 4:5],
    "read-only": np.frombuffer(bgr.tobytes(), np.uint8).reshape(bgr.shape),
}
copied = {
    "flipped rows": bgr[::-1],
    "mirrored columns": bgr[:, ::-1],
    "RGB (reversed channels)": bgr[:, :, ::-1],
    "every 2nd row, 3rd column": bgr[::2, ::3],
    "Fortran order": np.asfortranarray(bgr),
    "transposed": bgr.transpose(1, 0, 2),
    "BGR slice of BGRA": bgra[:, :, :3],
    "broadcast row (row stride 0)": np.broadcast_to(bgr[H // 2], (40, W, 3)),
    "gray column-major": np.asfortranarray(gray),
}
for group, views, want_copy in (("read in place", in_place, False), ("copied", copied, True)):
    problems = []
    for name, v in views.items():
        arr = ji._frame(v)[0]
        if (arr is not v) != want_copy:
            problems.append("%s: %s" % (name, "copied" if arr is not v else "not copied"))
        c = np.ascontiguousarray(v)
        got, of_copy, want = ji.process_image(h, v), ji.process_image(h, c), calc_frame(pred, c)
        if not (got == of_copy == want):
            problems.append("%s:\n  view  %s\n  copy  %s\n  C API %s" % (name, got, of_copy, want))
    check(
        not problems,
        "%d views %s (%s) give their copy's JSON" % (len(views), group, ", ".join(views)),
        "\n".join(problems),
    )
check(np.array_equal(padded_view, bgr), "the padded-step view holds the frame's pixels")

# --- bad inputs: ValueError naming what was expected, the interpreter survives ---------------
bad_inputs = {
    "float32": bgr.astype(np.float32),
    "float64 (from / 255)": bgr / 255.0,
    "int16": bgr.astype(np.int16),
    "uint16": bgr.astype(np.uint16),
    "int8": bgr.view(np.int8),
    "bool": bgr > 0,
    "2 channels": bgr[:, :, :2],
    "5 channels": np.zeros((8, 8, 5), np.uint8),
    "4-D batch": bgr[None],
    "1-D": bgr.reshape(-1),
    "0-D": np.array(7, np.uint8),
    "empty 0x0x3": np.zeros((0, 0, 3), np.uint8),
    "empty 0xWx3": bgr[:0],
    "empty Hx0": gray[:, :0],
    "None": None,
    "a list": bgr.tolist()[:2],
    "a path string": "image.jpg",
    "bytes": bgr.tobytes()[:100],
}
problems = []
for name, v in bad_inputs.items():
    try:
        ji.process_image(h, v)
        problems.append("%s: no error" % name)
    except ValueError as e:
        if "uint8 numpy array" not in str(e) or "HxWx3 BGR" not in str(e):
            problems.append("%s: the message does not say what was expected: %s" % (name, e))
    except Exception as e:  # noqa: BLE001 (any other exception is a failure)
        problems.append("%s: %s instead of ValueError: %s" % (name, type(e).__name__, e))
check(not problems, "%d bad inputs raise ValueError naming what was expected" % len(bad_inputs), "\n".join(problems))
problems = []
for name, call in (
    ("handle None", lambda: ji.process_image(None, bgr)),
    ("handle from elsewhere", lambda: ji.process_image(object(), bgr)),
    ("args a list", lambda: ji.process_image(h, bgr, [1, 2])),
    ("args a number", lambda: ji.process_image(h, bgr, 5)),
    ("args with a NUL", lambda: ji.process_image(h, bgr, '{"topk": 2}\0')),
    ("args dict not JSON-able", lambda: ji.process_image(h, bgr, {"topk": object()})),
):
    try:
        call()
        problems.append("%s: no error" % name)
    except ValueError as e:
        if "ji:" not in str(e):
            problems.append("%s: %s" % (name, e))
    except Exception as e:  # noqa: BLE001
        problems.append("%s: %s instead of ValueError: %s" % (name, type(e).__name__, e))
check(not problems, "a foreign handle and args of the wrong type raise ValueError", "\n".join(problems))
got = ji.process_image(h, bgr, {"topk": np.int64(4), "thresh": np.float32(0.5)})
check(
    got == calc_frame(pred, bgr, '{"topk": 4, "thresh": 0.5}'),
    "args dict with numpy scalars equals the C API with the same JSON",
    got,
)

# --- library failures: the C API's error JSON, not an exception -------------------------------
problems = []
for args in ("{not json", "[1, 2]", '{"topk": "five"}', '{"topk": 0}'):
    got, want = ji.process_image(h, bgr, args), calc_frame(pred, bgr, args)
    err = json.loads(got).get("error") or {}
    if got != want or err.get("code") != -3 or err.get("kind") != "invalid_argument":
        problems.append("args %r:\n  ji.py  %s\n  C API  %s" % (args, got, want))
check(not problems, "bad args give ji_calc_frame's error JSON (code -3)", "\n".join(problems))
small_cfg = os.path.join(a.frames, "small_limit.json")
cfg = json.load(open(CONFIG, encoding="utf-8"))
for key in ("model_path", "class_names_path"):
    if key in cfg:
        cfg[key] = os.path.join(TREE, "config", cfg[key])
cfg["max_image_pixels"] = 100000  # above the model input (224x224), below the 1080p frame
json.dump(cfg, open(small_cfg, "w", encoding="utf-8"), ensure_ascii=False)
h_small, pred_small = ji.init(small_cfg), predictor(small_cfg)
got, want = ji.process_image(h_small, bgr), calc_frame(pred_small, bgr)
check(
    got == want and json.loads(got)["error"]["kind"] == "image_too_large",
    "a frame over max_image_pixels gives ji_calc_frame's error JSON",
    "ji.py  %s\nC API  %s" % (got, want),
)
got, want = ji.process_image(h_small, bgr[:20, :20]), calc_frame(pred_small, bgr[:20, :20])
check(got == want and "error" not in json.loads(got), "the same handle still classifies a small frame", got)
ji.release(h_small)
clib.ji_destroy_predictor(pred_small)

# --- init failures: RuntimeError with the library's reason -----------------------------------
problems = []
missing = os.path.join(a.frames, "no_such_config.json")
broken = os.path.join(a.frames, "broken_config.json")
with open(broken, "w") as fh:
    fh.write('{"model_path": "nowhere.pt"')
for name, call, want in (
    ("a missing config file", lambda: ji.init(missing), "cannot read config file " + missing),
    ("malformed JSON", lambda: ji.init(broken), broken),
):
    try:
        call()
        problems.append("%s: init() succeeded" % name)
    except RuntimeError as e:
        if want not in str(e):
            problems.append("%s: %r does not say %r" % (name, str(e), want))
os.environ["EV_SDK_CONFIG"] = missing
try:
    ji.init()
    problems.append("EV_SDK_CONFIG: init() succeeded")
except RuntimeError as e:
    if missing not in str(e):
        problems.append("EV_SDK_CONFIG is not what init() read: %s" % e)
finally:
    del os.environ["EV_SDK_CONFIG"]
check(not problems, "a failing init() raises RuntimeError with the library's reason; EV_SDK_CONFIG is honoured", "\n".join(problems))

# --- threads: 4 x 50 calls on one handle, each the sequential answer --------------------------
work = [(name, f, args) for name, f in frames for args in (None, '{"topk": 5}')]
expected = [results[(name, json.dumps(args))] for name, f, args in work]
errors = []


def worker(t):
    for i in range(a.calls):
        k = (t * 7 + i) % len(work)
        name, f, args = work[k]
        got = ji.process_image(h, f, args)
        if got != expected[k]:
            errors.append("thread %d call %d (%s): %s" % (t, i, name, got))


threads = [threading.Thread(target=worker, args=(t,)) for t in range(a.threads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
check(not errors, "%d threads x %d calls on one handle give the sequential results" % (a.threads, a.calls), "\n".join(errors[:10]))

# --- release ---------------------------------------------------------------------------------
h2 = ji.init()
stop = []


def busy():
    try:
        while True:
            ji.process_image(h2, gray)
    except ValueError as e:
        stop.append(str(e))


t = threading.Thread(target=busy)
t.start()
ji.process_image(h2, bgr)
ji.release(h2)
t.join()
try:
    ji.process_image(h2, bgr)
    after = "no error"
except ValueError as e:
    after = str(e)
ji.release(h2)  # twice: harmless
check(
    stop and "released" in stop[0] and "released" in after,
    "release() while another thread calls: that thread gets ValueError, later calls too",
    "%s / %s" % (stop, after),
)
ji.release(h)
clib.ji_destroy_predictor(pred)

# --- torch: never imported, and not importable here --------------------------------------------
import importlib.util  # noqa: E402

check("torch" not in sys.modules, "torch was never imported", sorted(m for m in sys.modules if "torch" in m))
check(importlib.util.find_spec("torch") is None, "torch cannot be imported in this interpreter", importlib.util.find_spec("torch"))

print("jipy-check (Python %s, numpy %s): %d passed, %d failed" % (sys.version.split()[0], np.__version__, passed, failed))
sys.exit(1 if failed else 0)
