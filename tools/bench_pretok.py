#!/usr/bin/env python3
"""Throughput of the pretokenizer (zig/pretok.zig, through at_pretokenize), in MB/s, one core.

Builds zig/pretok.zig twice as a standalone ReleaseFast library (native CPU unless --cpu is given):
as written ("checked": at_pretokenize validates UTF-8 first), and from a temporary copy with
`export_validates_utf8 = false` ("scan": the scanners alone, which is what the main library pays,
since it validates once for all its stages). Times whole corpus files; reports the best of --repeat
runs, interleaving the two builds; time is the calling thread's CPU time (time.thread_time), which
is steadier than wall time on a shared, loaded machine.

Usage: python tools/bench_pretok.py [--cpu x86_64_v2] [--repeat 9] [files...]
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILES = [
    "en_gutenberg_moby_dick.txt",
    "code_python_stdlib.txt",
    "code_c_sqlite3.txt",
    "ml_udhr_all.txt",
    "ja_aozora_wagahai_neko.txt",
]


def corpora_dir() -> Path:
    for d in (ROOT.parent / "shared" / "corpora", Path("/work/shared/corpora")):
        if d.is_dir():
            return d
    sys.exit("no corpora directory found")


def build(src_dir: Path, out: Path, cpu: str | None):
    cmd = [sys.executable, "-m", "ziglang", "build-lib", str(src_dir / "pretok.zig"), "-dynamic",
           "-OReleaseFast", "-lc", "--name", "pretok", f"-femit-bin={out}"]
    if cpu:
        cmd += ["-mcpu", cpu]
    subprocess.run(cmd, cwd=ROOT, check=True)
    f = ctypes.CDLL(str(out)).at_pretokenize
    f.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
    f.restype = ctypes.c_int64
    return f


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*")
    ap.add_argument("--cpu", default=None)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    scan_src = tmp / "scan"
    scan_src.mkdir()
    shutil.copy(ROOT / "zig" / "unicode_tables.zig", scan_src)
    src = (ROOT / "zig" / "pretok.zig").read_text()
    flag = "const export_validates_utf8 = true;"
    assert flag in src, "pretok.zig no longer has the validation flag"
    (scan_src / "pretok.zig").write_text(src.replace(flag, "const export_validates_utf8 = false;"))
    fns = {"checked": build(ROOT / "zig", tmp / "checked.so", args.cpu),
           "scan": build(scan_src, tmp / "scan.so", args.cpu)}
    files = [Path(p) for p in args.files] or [corpora_dir() / n for n in DEFAULT_FILES]
    print(f"{'file':<28} {'MB':>5}  {'cl100k scan':>11} {'checked':>8}  {'o200k scan':>10} {'checked':>8}"
          f"  {'bytes/piece cl/o':>16}")
    for path in files:
        data = path.read_bytes()
        out = np.empty(len(data) + 1, dtype=np.uint64)
        cells, per_piece = [], []
        for pat in (0, 1):
            best = {k: float("inf") for k in fns}
            for _ in range(args.repeat):
                for k, f in fns.items():
                    t0 = time.thread_time()
                    n = f(pat, data, len(data), out.ctypes.data, out.size)
                    best[k] = min(best[k], time.thread_time() - t0)
                    assert n > 0, n
            cells += [len(data) / best["scan"] / 1e6, len(data) / best["checked"] / 1e6]
            per_piece.append(len(data) / n)
        print(f"{path.name[:28]:<28} {len(data) / 1e6:>5.2f}  {cells[0]:>11.0f} {cells[1]:>8.0f}  "
              f"{cells[2]:>10.0f} {cells[3]:>8.0f}  {per_piece[0]:>8.2f}/{per_piece[1]:<7.2f}")


if __name__ == "__main__":
    main()
