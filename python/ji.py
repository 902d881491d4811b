"""The platform's Python judge API (ev_sdk ``src/ji.py``) over ``libji.so`` (ji-rs).

A judge run with ``AUTO_TEST_USE_JI_PYTHON_API=1`` imports this file from the submission tree
and calls::

    handle = init()
    json_string = process_image(handle, input_image, args=None)

``input_image`` is what ``cv2.imread`` gives: a BGR ``uint8`` array of shape ``(H, W, 3)``.
``process_image`` returns exactly the JSON string that ``ji_calc_frame`` puts in
``event->json`` for that frame: the result, or, when the library refuses the frame or fails,
its error object (``{"algorithm_data": ..., "model_data": null, "error": {"code", "kind",
"message"}}``). ``release(handle)`` frees the model for hosts that clean up.

Where things are: this file sits in ``<tree>/src/``; it loads ``<tree>/lib/libji.so`` and the
config named by ``$EV_SDK_CONFIG``, else ``<tree>/config/algo_config.json``. It reads the
environment and never changes it.

Standard library and numpy only (ctypes). It never imports torch: ``libji.so`` brings its own
libtorch. Do not import torch in the judge's process as well: the dynamic loader keeps one
``libtorch_cpu.so`` per process (the first one loaded), so a host torch of another version
would run against the wrong library and fail or crash. The syntax is Python 3.6's, for the
platform's old images.

Threads: ``process_image`` may be called from several threads at once on one handle (ctypes
releases the GIL during the call; the calls run in parallel in libji.so).
"""

import ctypes
import json
import os
import threading

import numpy as np

__all__ = ["init", "process_image", "release", "Handle", "LIB_PATH", "DEFAULT_CONFIG"]

# <tree>/src/ji.py -> <tree>. The real path, so that a link to this file still finds its tree.
TREE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
LIB_PATH = os.path.join(TREE, "lib", "libji.so")
DEFAULT_CONFIG = os.path.join(TREE, "config", "algo_config.json")

# The frame API (JI_CV_FRAME) holds sizes in a C int.
_INT_MAX = 2 ** 31 - 1

_EXPECTED = (
    "input_image must be a uint8 numpy array: HxWx3 BGR (as cv2.imread gives), "
    "HxW gray or HxWx4 BGRA"
)

_lib = None
_lib_lock = threading.Lock()


def _load():
    """Loads libji.so once and declares the functions this file calls."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        try:
            lib = ctypes.CDLL(LIB_PATH)
        except OSError as e:
            raise RuntimeError("ji: cannot load %s: %s" % (LIB_PATH, e))
        c_int, c_void_p, c_char_p = ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
        try:
            lib.evsdk_init.argtypes = [c_char_p, ctypes.POINTER(c_void_p)]
            lib.evsdk_init.restype = c_int
            lib.evsdk_calc_frame.argtypes = [
                c_void_p,  # handle
                c_void_p,  # pixels
                ctypes.c_uint32,  # width
                ctypes.c_uint32,  # height
                ctypes.c_size_t,  # stride_bytes
                ctypes.c_uint32,  # channels
                c_char_p,  # args
                ctypes.POINTER(c_void_p),  # out_json
            ]
            lib.evsdk_calc_frame.restype = c_int
            lib.evsdk_free_string.argtypes = [c_void_p]
            lib.evsdk_free_string.restype = None
            lib.evsdk_release.argtypes = [c_void_p]
            lib.evsdk_release.restype = None
            lib.evsdk_last_error.argtypes = []
            lib.evsdk_last_error.restype = c_char_p
        except AttributeError as e:
            raise RuntimeError(
                "ji: %s is older than this ji.py (%s); install both from one build" % (LIB_PATH, e)
            )
        _lib = lib
        return lib


class Handle(object):
    """What ``init()`` returns: one loaded model. Pass it to ``process_image``; ``release``
    frees it (also when the last reference goes). Calls from several threads may share it."""

    __slots__ = ("config_path", "_lib", "_ptr", "_lock", "_busy", "_closing")

    def __init__(self, lib, ptr, config_path):
        self.config_path = config_path
        self._lib = lib
        self._ptr = ptr
        self._lock = threading.Lock()
        self._busy = 0
        self._closing = False

    def __repr__(self):
        state = "released" if self._ptr is None or self._closing else "open"
        return "<ji.Handle %s, config %r>" % (state, self.config_path)

    def _enter(self):
        with self._lock:
            if self._ptr is None or self._closing:
                raise ValueError("ji: this handle was released; call init() for a new one")
            self._busy += 1
            return self._ptr

    def _leave(self):
        with self._lock:
            self._busy -= 1
            last = self._closing and self._busy == 0
        if last:
            self._free()

    def _free(self):
        with self._lock:
            ptr, self._ptr = self._ptr, None
        if ptr is not None:
            self._lib.evsdk_release(ptr)

    def release(self):
        """Frees the model now, or, while calls are still running on other threads, when the
        last of them returns. Later calls raise ValueError. Releasing twice is harmless."""
        with self._lock:
            if self._ptr is None or self._closing:
                return
            self._closing = True
            idle = self._busy == 0
        if idle:
            self._free()

    def __del__(self):
        # At interpreter exit the attributes may already be gone: nothing left to free then.
        try:
            self.release()
        except Exception:
            pass


def init(config_path=None):
    """Loads the model: ``config_path``, else ``$EV_SDK_CONFIG``, else the tree's
    ``config/algo_config.json``. Returns a ``Handle``; raises ``RuntimeError`` with the
    library's reason when the config or model cannot be loaded."""
    lib = _load()
    path = config_path or os.environ.get("EV_SDK_CONFIG") or DEFAULT_CONFIG
    ptr = ctypes.c_void_p()
    rc = lib.evsdk_init(os.fsencode(path), ctypes.byref(ptr))
    if rc != 0:
        reason = (lib.evsdk_last_error() or b"").decode("utf-8", "replace")
        raise RuntimeError("ji.init: %s (code %d, config %s)" % (reason, rc, path))
    return Handle(lib, ptr.value, path)


def release(handle):
    """Frees what ``init()`` loaded (see ``Handle.release``)."""
    _check_handle(handle)
    handle.release()


def process_image(handle, input_image, args=None):
    """Classifies one frame and returns the JSON string ``ji_calc_frame`` gives for it.

    ``input_image``: a ``uint8`` numpy array, ``HxWx3`` BGR (``cv2.imread``), ``HxW`` (or
    ``HxWx1``) gray, or ``HxWx4`` BGRA (alpha ignored). Views are read in place when their
    rows are ``>= W * channels`` bytes apart (positive) and their pixels packed (a crop of a
    larger image); other layouts (flipped, subsampled, Fortran-ordered) are copied first.
    Anything else raises ``ValueError`` saying what was expected.

    ``args``: ``None``, a JSON object as a string, or a dict (``{"topk": 5}``); per-call
    ``thresh``, ``topk``, ``confidence_decimals``, other keys ignored. Invalid JSON gives the
    library's error JSON, as ``ji_calc_frame`` does.
    """
    _check_handle(handle)
    pixels, height, width, stride, channels = _frame(input_image)
    args_c = _args(args)
    out = ctypes.c_void_p()
    lib = handle._lib
    ptr = handle._enter()
    try:
        lib.evsdk_calc_frame(
            ptr, pixels.ctypes.data, width, height, stride, channels, args_c, ctypes.byref(out)
        )
    finally:
        handle._leave()
    if not out.value:  # only a NULL out_json is left unwritten, and this one is not NULL
        raise RuntimeError("ji: libji.so returned no JSON")
    try:
        return ctypes.string_at(out.value).decode("utf-8")
    finally:
        lib.evsdk_free_string(out)


def _check_handle(handle):
    if not isinstance(handle, Handle):
        raise ValueError(
            "ji: handle must be what init() returned, got %s" % type(handle).__name__
        )


def _frame(image):
    """Checks a frame and returns (array to read, height, width, row stride, channels): the
    input itself when the library can read it in place, else a packed copy."""
    if not isinstance(image, np.ndarray):
        raise ValueError("%s; got %s" % (_EXPECTED, type(image).__name__))
    if image.dtype != np.uint8:
        raise ValueError("%s; got a %s array" % (_EXPECTED, image.dtype))
    shape = image.shape
    if len(shape) == 2:
        channels = 1
    elif len(shape) == 3 and shape[2] in (1, 3, 4):
        channels = shape[2]
    else:
        raise ValueError("%s; got shape %s" % (_EXPECTED, shape))
    height, width = shape[0], shape[1]
    if height == 0 or width == 0:
        raise ValueError("%s; got an empty array of shape %s" % (_EXPECTED, shape))
    if height > _INT_MAX or width > _INT_MAX:
        raise ValueError("ji: a frame of %dx%d pixels is too large for the frame API" % (width, height))
    row = width * channels
    strides = image.strides
    packed = (
        (width == 1 or strides[1] == channels)
        and (channels == 1 or strides[2] == 1)
        and (height == 1 or strides[0] >= row)
    )
    if packed:
        return image, height, width, (strides[0] if height > 1 else row), channels
    return np.ascontiguousarray(image), height, width, row, channels


def _json_default(value):
    # numpy scalars (np.float32(0.5), np.int64(3)) as their Python values.
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError("%s is not JSON serialisable" % type(value).__name__)


def _args(args):
    """``args`` as the NUL-terminated UTF-8 bytes the library takes (None for none)."""
    if args is None:
        return None
    if isinstance(args, dict):
        try:
            args = json.dumps(args, ensure_ascii=False, default=_json_default)
        except (TypeError, ValueError) as e:
            raise ValueError("ji: args cannot be written as JSON: %s" % e)
    if isinstance(args, str):
        args = args.encode("utf-8")
    if not isinstance(args, bytes):
        raise ValueError(
            "ji: args must be None, a JSON object string or a dict, got %s" % type(args).__name__
        )
    if b"\0" in args:
        raise ValueError("ji: args contains a NUL character")
    return args
