#!/usr/bin/env python3
"""Lays out the tree the judge expects (/usr/local/ev_sdk by default) from a built libji.so.

    tools/install.py --prefix DIR --libtorch cpu|cuda|none [--model M.pt] [--classes class.txt]
                     [--config algo_config.json] [--lib target/release/libji.so]
                     [--torch-dir .venv/libtorch]

    DIR/lib/libji.so       the release build without debug info; RUNPATH is `$ORIGIN` only
    DIR/lib/*.so*          the libtorch / CUDA libraries of the profile, flat beside it
    DIR/include/           ji.h (+ ji_types.h, ji_error.h: the platform's 4.x header names)
    DIR/config/algo_config.json   the given config (or the template), model paths -> ../model/
    DIR/model/             the given model and class names; without --model, the files the
                           config names (its model_path, or every member of its "models"
                           ensemble, and its class_names_path), resolved against its folder
    DIR/src/ji.py          the platform's Python judge API over lib/libji.so (python/ji.py)

Profiles (what lib/ holds besides libji.so):
    cpu   what libji.so needs to load and run on the CPU: libtorch_cpu, libc10, libgomp and the
          two small CUDA runtime libraries the PyPI torch wheel's libtorch_cpu.so itself links
          (libcudart, libcupti; they load without a GPU or driver). "device": "auto" runs on the
          CPU; "cuda" is a config error naming libtorch_cuda.so.
    cuda  cpu + libtorch_cuda.so and every CUDA library it needs or loads at run time (cuDNN's
          engine libraries, NVRTC, cuBLAS, cuSOLVER via libtorch_cuda_linalg, NCCL, ...), taken
          from the wheel's nvidia/*/lib folders. Only the NVIDIA driver must come from the host.
    none  libji.so alone: the host provides torch 2.11's lib/ (LD_LIBRARY_PATH or ld.so.conf).

Libraries are chosen by following DT_NEEDED from the roots, so what is never loaded
(libtorch_python.so, libshm, ...) stays out. Every library of the wheel finds its
dependencies through `$ORIGIN`, so the flat lib/ folder needs no other change. The loader's
view of the tree is checked afterwards (test_harness/install_check.sh).

It prints the tree's floors, the newest GLIBC_, GLIBCXX_ and CXXABI_ symbol versions its
libraries need, and compares them with the ceilings of tools/floors.tsv; --check-floors (the
portable `make install`) makes a library above them an error.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Loaded with dlopen (not DT_NEEDED) by the CUDA libraries: cuDNN 9's sub-libraries, NVRTC's
# builtins; libtorch loads libtorch_cuda_linalg.so and libcaffe2_nvrtc.so lazily.
CUDA_EXTRA_ROOTS = [
    r"libtorch_cuda\.so",
    r"libtorch_cuda_linalg\.so",
    r"libcaffe2_nvrtc\.so",
    r"libcudnn.*\.so\.\d+",
    r"libnvrtc-builtins\.so\.[\d.]+",
]


def readelf_dynamic(path: Path):
    out = subprocess.run(["readelf", "-d", str(path)], check=True, capture_output=True, text=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)
    runpath = re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.+?)\]", out)
    return needed, runpath


FLOOR_KINDS = ("GLIBC", "GLIBCXX", "CXXABI")


def version(text: str) -> tuple:
    return tuple(int(p) for p in text.split("."))


def needed_versions(path: Path) -> list:
    """(kind, version, symbol) for every GLIBC_/GLIBCXX_/CXXABI_ versioned symbol a file uses."""
    out = subprocess.run(["objdump", "-T", str(path)], check=True, capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        m = re.search(r"\((GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)+)\)\s+(\S+)", line)
        if m and "*UND*" in line:
            found.append((m.group(1), version(m.group(2)), m.group(3)))
    return found


def floors(path: Path) -> dict:
    """Kind -> the newest version of that kind the file needs."""
    f = {}
    for kind, v, _ in needed_versions(path):
        f[kind] = max(f.get(kind, v), v)
    return f


def merge(a: dict, b: dict) -> dict:
    return {k: max(x for x in (a.get(k), b.get(k)) if x is not None) for k in set(a) | set(b)}


def describe(f: dict) -> str:
    """'GLIBC_2.28, GLIBCXX_3.4.26 and CXXABI_1.3.9' (the words the README and the check use)."""
    parts = [f"{k}_{'.'.join(map(str, f[k]))}" for k in FLOOR_KINDS if k in f]
    return " and ".join([", ".join(parts[:-1]), parts[-1]]) if len(parts) > 1 else (parts or ["nothing"])[0]


def read_ceilings(path: Path) -> dict:
    """tools/floors.tsv: file name (or '*') -> kind -> the newest version allowed."""
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, *vs = line.split("\t")
            table[name] = {k: version(v) for k, v in zip(FLOOR_KINDS, vs) if v != "-"}
    return table


def above_ceilings(path: Path, table: dict) -> list:
    """The symbols of a file whose version is newer than its row of the table allows."""
    row = table.get(path.name, table.get("*", {}))
    return [f"{sym}@{kind}_{'.'.join(map(str, v))}" for kind, v, sym in needed_versions(path)
            if kind in row and v > row[kind]]


def library_index(torch_dir: Path) -> dict:
    """File name -> path, for every shared library of the torch wheel and its nvidia packages."""
    dirs = [torch_dir / "lib"] + sorted((torch_dir.parent / "nvidia").glob("*/lib"))
    index = {}
    for d in dirs:
        for f in sorted(d.iterdir()) if d.is_dir() else []:
            if ".so" in f.name and f.is_file():
                index.setdefault(f.name, f)
    return index


def closure(roots, index):
    """Follows DT_NEEDED inside the wheel; returns (libraries to ship, system libraries used)."""
    ship, system, todo = {}, set(), list(roots)
    while todo:
        path = todo.pop()
        needed, _ = readelf_dynamic(path)
        for name in needed:
            if name in index:
                if name not in ship:
                    ship[name] = index[name]
                    todo.append(index[name])
            else:
                system.add(name)
    return ship, system


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True, type=Path)
    ap.add_argument("--libtorch", choices=["cpu", "cuda", "none"], required=True)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--classes", type=Path)
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "algo_config.json")
    ap.add_argument("--lib", type=Path, default=ROOT / "target" / "release" / "libji.so")
    ap.add_argument("--torch-dir", type=Path, default=ROOT / ".venv" / "libtorch")
    ap.add_argument("--floors", type=Path, default=ROOT / "tools" / "floors.tsv",
                    help="the ceilings the tree's symbol versions are compared with")
    ap.add_argument("--check-floors", action="store_true",
                    help="fail when a library of the tree needs a newer version than --floors allows")
    a = ap.parse_args()

    if not a.lib.is_file():
        sys.exit(f"install: {a.lib} does not exist (run `make build` first)")
    # An input that is already an installed libji.so (RUNPATH $ORIGIN, no debug info) can be
    # installed again where patchelf is missing (tools/gpu_check.sh does so on the GPU machine).
    _, rpath = readelf_dynamic(a.lib)
    reinstall = rpath == ["$ORIGIN"]
    if shutil.which("patchelf") is None and not reinstall:
        sys.exit("install: patchelf is missing (tools/setup.sh installs it: apt-get install patchelf)")
    table = read_ceilings(a.floors)
    table_name = os.path.relpath(a.floors, ROOT) if a.floors.resolve().is_relative_to(ROOT) else str(a.floors)
    if a.check_floors and (above := above_ceilings(a.lib, table)):
        sys.exit(f"install: {a.lib} needs symbol versions above {table_name}'s ceilings: {' '.join(above)}")
    prefix = a.prefix
    lib = prefix / "lib"
    for d in ("lib", "include", "config", "model"):
        (prefix / d).mkdir(parents=True, exist_ok=True)

    # libji.so: no debug info (80 MB -> a few MB), and no build-machine path in its RUNPATH.
    ji = lib / "libji.so"
    tmp = lib / ".libji.so.tmp"
    if reinstall:
        shutil.copy2(a.lib, tmp)
    else:
        subprocess.run(["strip", "--strip-debug", "-o", str(tmp), str(a.lib)], check=True)
        subprocess.run(["patchelf", "--set-rpath", "$ORIGIN", str(tmp)], check=True)
    os.replace(tmp, ji)

    shipped = {}
    system = set()
    torch_dir = a.torch_dir.resolve()
    index = library_index(torch_dir) if (torch_dir / "lib").is_dir() else {}
    if a.libtorch != "none":
        if "libtorch_cpu.so" not in index:
            sys.exit(f"install: no libtorch_cpu.so under {torch_dir}/lib")
        roots = [ji]
        if a.libtorch == "cuda":
            pats = [re.compile(p) for p in CUDA_EXTRA_ROOTS]
            extra = [p for n, p in index.items() if any(r.fullmatch(n) for r in pats)]
            if not any(p.name == "libtorch_cuda.so" for p in extra):
                sys.exit(f"install: no libtorch_cuda.so under {torch_dir}/lib (a CPU-only torch?)")
            roots += extra
            shipped.update({p.name: p for p in extra})
        found, system = closure(roots, index)
        shipped.update(found)
        for name, src in sorted(shipped.items()):
            dst = lib / name
            if not dst.exists() or dst.stat().st_size != src.stat().st_size:
                shutil.copy2(src, dst)
    # A previous install of a bigger profile must not leave the wheel's libraries behind
    # (anything else in lib/ is the user's and stays).
    for f in lib.iterdir():
        if f.name in index and f.name not in shipped:
            f.unlink()

    for h in ("ji.h", "ji_types.h", "ji_error.h"):
        shutil.copy2(ROOT / "include" / h, prefix / "include" / h)
    # The platform's Python judge API: a judge run with AUTO_TEST_USE_JI_PYTHON_API=1 imports
    # src/ji.py, which loads ../lib/libji.so (python/ji.py; README, "Python judges").
    (prefix / "src").mkdir(exist_ok=True)
    shutil.copy2(ROOT / "python" / "ji.py", prefix / "src" / "ji.py")
    cfg = json.loads(a.config.read_text(encoding="utf-8"))
    if "models" in cfg and a.model is not None:
        sys.exit(f"install: {a.config} lists its models in \"models\" (an ensemble): leave out "
                 "--model (MODEL=), every member is installed")
    placed = {}  # name in model/ -> the file copied there

    def place(given, config_value):
        """Copies a file into model/ (the given one, else the config's, resolved against the
        config's folder) and returns its path for the installed config."""
        src = given if given is not None else (a.config.parent / config_value)
        name = Path(config_value if given is None else given.name).name
        if src.is_file():
            src = src.resolve()
            stem = name
            n = 1
            while name in placed and placed[name] != src:  # another file of the same name
                name = f"{n}_{stem}"
                n += 1
            if name not in placed:
                shutil.copy2(src, prefix / "model" / name)
                placed[name] = src
        elif given is None:
            print(f"install: warning: {src} (named by {a.config}) does not exist: put it in "
                  f"{prefix / 'model'} yourself", file=sys.stderr)
        else:
            sys.exit(f"install: {src} does not exist")
        return "../model/" + name

    if "models" in cfg:
        for m in cfg["models"]:
            m["model_path"] = place(None, m["model_path"])
    else:
        cfg["model_path"] = place(a.model, cfg.get("model_path", "model.pt"))
    # A model that carries its class names (tools/export_torchscript.py) needs no class file.
    if a.classes is not None or cfg.get("class_names_path"):
        cfg["class_names_path"] = place(a.classes, cfg.get("class_names_path"))
    (prefix / "config" / "algo_config.json").write_text(
        json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )

    total = sum(f.stat().st_size for f in lib.iterdir())
    print(f"installed into {prefix} (LIBTORCH={a.libtorch}): lib/ holds {len(shipped) + 1} libraries, {human(total)}")
    # The floors: what the judge's glibc and libstdc++ must provide (README, "Install").
    files = [ji] + [lib / n for n in sorted(shipped)]
    tree = {}
    for f in files:
        tree = merge(tree, floors(f))
    above = {f.name: s for f in files if (s := above_ceilings(f, table))}
    print(f"  libji.so needs {describe(floors(ji))}")
    if shipped:
        print(f"  lib/ as a whole needs {describe(tree)}")
    if not above:
        print(f"  within the ceilings of {table_name} (Debian 11, Ubuntu 20.04 and later)")
    else:
        detail = "; ".join(f"{n}: {' '.join(s[:4])}{' ...' if len(s) > 4 else ''}" for n, s in above.items())
        if a.check_floors:
            sys.exit(f"install: above the ceilings of {table_name}: {detail}")
        print(f"  above the ceilings of {table_name} ({detail}): this machine's floors; "
              "the portable build (`make install`, PORTABLE=1) stays within them")
    if system:
        print("  from the host: " + " ".join(sorted(system)) + (" and the NVIDIA driver (libcuda.so.1)"
                                                              if a.libtorch == "cuda" else ""))


if __name__ == "__main__":
    main()
