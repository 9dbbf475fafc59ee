"""Robustness (issue 8): kept crash inputs, hostile C ABI calls, the suite under a ReleaseSafe
(safety-checked) build, leaks over 10,000 calls of every entry point, limits (chunked output, a row
over the per-chunk limit, a row over 2 GiB, an output that does not fit memory), and bad rows
reported with their index.

Anything that could take the interpreter down runs in a child process, so a crash fails one test
instead of killing pytest.
"""
from __future__ import annotations

import ctypes as C
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import arrowtok
from arrowtok import _native as N

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
REGRESSIONS = sorted(p for p in (TESTS / "regressions").glob("*.py") if not p.name.startswith("_"))
IN_SAFETY_CHILD = os.environ.get("ARROWTOK_SAFETY_CHILD") == "1"


def run_child(code: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=str(TESTS))


# ---------------------------------------------------------------------------------------------
# Kept crash inputs


@pytest.mark.parametrize("script", REGRESSIONS, ids=lambda p: p.stem)
def test_regression_script(script):
    status = script.read_text().splitlines()[0].strip()
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=str(script.parent))
    out = (p.stdout + p.stderr)[-2000:]
    if p.returncode != 0:
        how = f"signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
        if status == "# status: open":
            pytest.xfail(f"open bug (reported, zig/ owner): {how}: {out.strip().splitlines()[-1] if out.strip() else ''}")
        pytest.fail(f"{script.name}: {how}\n{out}")


# ---------------------------------------------------------------------------------------------
# Hostile C ABI arguments that must give a status (never a crash). More in test_fuzz.py (c).

_PROBES = r"""
import ctypes as C, json, sys
import numpy as np
import arrowtok
from arrowtok import _native as N
lib = N.lib
V = arrowtok.get_encoding("cl100k_base")._vocab.handle
res = {}

def col(inp, opts=None, out=True, v=V):
    o = N.Output()
    st = lib.at_encode_column(v, None if inp is None else C.byref(inp), None if opts is False else C.byref(opts or N.Options(threads=1)),
                              C.byref(o) if out else None)
    if st == 0:
        lib.at_result_free(o.handle)
    return st

def probe(name, f):
    print("PROBE", name, flush=True)
    res[name] = f()

offs = np.array([0, 5, 5], np.int32); data = np.frombuffer(b"hello", np.uint8).copy()
good = lambda **kw: N.Input(layout=0, offsets=offs.ctypes.data, data=data.ctypes.data, n_rows=2, offsets_len=offs.nbytes, data_len=data.nbytes, **kw)
probe("zero rows, all NULL", lambda: col(N.Input(layout=0, n_rows=0)))
probe("zero rows, view layout, all NULL", lambda: col(N.Input(layout=2, n_rows=0)))
probe("NULL vocab", lambda: col(good(), v=None))
probe("NULL input", lambda: col(None))
probe("NULL options", lambda: col(good(), opts=False))
probe("NULL output", lambda: col(good(), out=False))
for n in (1, 2**31, 2**40, 2**62, 2**63 - 1):
    probe(f"n_rows {n}, NULL buffers", lambda: col(N.Input(layout=0, n_rows=n)))
    probe(f"n_rows {n}, NULL buffers, view layout", lambda: col(N.Input(layout=2, n_rows=n)))
    probe(f"n_rows {n}, NULL buffers, large", lambda: col(N.Input(layout=1, n_rows=n, arr_offset=n)))
for n in (-1, -(2**31), -(2**63)):
    probe(f"n_rows {n}", lambda: col(good(n_rows=n) if False else N.Input(layout=0, offsets=offs.ctypes.data, data=data.ctypes.data, n_rows=n, offsets_len=offs.nbytes, data_len=data.nbytes)))
    probe(f"arr_offset {n}", lambda: col(N.Input(layout=0, offsets=offs.ctypes.data, data=data.ctypes.data, n_rows=2, arr_offset=n, offsets_len=offs.nbytes, data_len=data.nbytes)))
for lay in (3, 4, 255, 2**31, 2**32 - 1):
    probe(f"layout {lay}", lambda: col(N.Input(layout=lay, offsets=offs.ctypes.data, data=data.ctypes.data, n_rows=2, offsets_len=offs.nbytes, data_len=data.nbytes)))
probe("threads 2**32-1", lambda: col(good(), N.Options(threads=2**32 - 1)))
probe("max_chunk_values -1", lambda: col(good(), N.Options(threads=1, max_chunk_values=-1)))
probe("max_chunk_values 2**63-1", lambda: col(good(), N.Options(threads=1, max_chunk_values=2**63 - 1)))
probe("n_special 5, NULL pointers", lambda: col(good(), N.Options(threads=1, n_special=5)))
probe("count_only 7, errors_replace 9", lambda: col(good(), N.Options(threads=1, count_only=7, errors_replace=9)))

out = np.empty(64, np.uint32); got = C.c_int64(); bad = C.c_int64(); opts = N.Options(threads=1)
text = lambda d, n, dst, cap, v=V: lib.at_encode_text(v, d, n, C.byref(opts), dst, cap, C.byref(got), C.byref(bad))
probe("encode_text len 0, NULL data and out", lambda: text(None, 0, None, 0))
probe("encode_text NULL data, len 5", lambda: text(None, 5, out.ctypes.data, 64))
probe("encode_text NULL out, cap 64", lambda: text(b"hello", 5, None, 64))
probe("encode_text cap 0", lambda: text(b"hello", 5, out.ctypes.data, 0))
probe("encode_text huge cap", lambda: text(b"hello", 5, out.ctypes.data, 2**64 - 1))
probe("encode_text NULL vocab", lambda: text(b"hello", 5, out.ctypes.data, 64, v=None))

ids = np.array([9906, 1917], np.uint32); buf = C.create_string_buffer(64); need = C.c_uint64()
dt = lambda p, n, o, cap, v=V: lib.at_decode_tokens(v, p, n, o, cap, C.byref(need), C.byref(bad))
probe("decode_tokens n 0, NULL ids", lambda: dt(None, 0, None, 0))
probe("decode_tokens NULL ids, n 2", lambda: dt(None, 2, buf, 64))
probe("decode_tokens NULL ids, n 2**64-1", lambda: dt(None, 2**64 - 1, buf, 64))
probe("decode_tokens NULL out, cap 0", lambda: dt(ids.ctypes.data, 2, None, 0))
probe("decode_tokens NULL out, huge cap", lambda: dt(ids.ctypes.data, 2, None, 2**64 - 1))
probe("decode_tokens huge cap", lambda: dt(ids.ctypes.data, 2, buf, 2**64 - 1))
probe("decode_tokens NULL vocab", lambda: dt(ids.ctypes.data, 2, buf, 64, v=None))

def dcol(li, out=True, v=V):
    o = N.DecodeOutput()
    st = lib.at_decode_column(v, None if li is None else C.byref(li), C.byref(o) if out else None)
    if st == 0:
        lib.at_result_free(o.handle)
    return st
loffs = np.array([0, 2, 2], np.int32)
probe("decode_column zero rows, NULL", lambda: dcol(N.ListInput(n_rows=0)))
probe("decode_column NULL input / output / vocab", lambda: [dcol(None), dcol(N.ListInput(n_rows=0), out=False), dcol(N.ListInput(n_rows=0), v=None)])
for n in (1, 2**40, 2**63 - 1, -1):
    probe(f"decode_column n_rows {n}, NULL buffers", lambda: dcol(N.ListInput(n_rows=n)))
probe("decode_column NULL values, non-empty list", lambda: dcol(N.ListInput(offsets=loffs.ctypes.data, n_rows=2, offsets_len=loffs.nbytes)))
probe("decode_column NULL values, empty lists", lambda: dcol(N.ListInput(offsets=np.zeros(3, np.int32).ctypes.data, n_rows=2, offsets_len=12)))
probe("decode_column arr_offset -1", lambda: dcol(N.ListInput(offsets=loffs.ctypes.data, values=ids.ctypes.data, n_rows=2, arr_offset=-1)))

db = N.DecodeCall(vocab=V, ids=ids.ctypes.data, n=2, out=C.addressof(buf), cap=64)
dblk = lambda **kw: lib.at_decode_blk(C.byref(N.DecodeCall(**{**dict(vocab=V, ids=ids.ctypes.data, n=2, out=C.addressof(buf), cap=64), **kw})))
probe("decode_blk NULL block", lambda: lib.at_decode_blk(None))
probe("decode_blk NULL vocab / ids / out", lambda: [dblk(vocab=None), dblk(ids=None), dblk(out=None)])
probe("decode_blk n 2**64-1, NULL ids", lambda: dblk(ids=None, n=2**64 - 1))
probe("decode_blk cap 0 / 1 / huge", lambda: [dblk(cap=0), dblk(cap=1), dblk(cap=2**64 - 1)])
probe("decode_blk good", lambda: [dblk(), db.needed if lib.at_decode_blk(C.byref(db)) == 0 else -1])
tb = lambda **kw: N.TextCall(**{**dict(vocab=V, opts=C.addressof(opts), out=out.ctypes.data, cap=64), **kw})
small = lambda blk, d, n: lib.at_encode_small(C.byref(blk) if blk is not None else None, d, n)
probe("encode_small NULL block", lambda: small(None, b"hi", 2))
probe("encode_small len -1 / -2**31", lambda: [small(tb(), b"hi", -1), small(tb(), b"hi", -(2**31))])
probe("encode_small NULL data, len 5 / len 0", lambda: [small(tb(), None, 5), small(tb(), None, 0)])
probe("encode_small NULL vocab / opts / out", lambda: [small(tb(vocab=None), b"hi", 2), small(tb(opts=None), b"hi", 2), small(tb(out=None), b"hi", 2)])
probe("encode_small cap 0 / huge", lambda: [small(tb(cap=0), b"hello", 5), small(tb(cap=2**64 - 1), b"hello", 5)])
probe("encode_small invalid UTF-8", lambda: small(tb(), b"ab\xff", 3))
probe("vocab_rank NULL data, len 3", lambda: lib.at_vocab_rank(V, None, 3))
probe("vocab_rank len 0", lambda: lib.at_vocab_rank(V, b"", 0))
probe("vocab_rank NULL vocab", lambda: lib.at_vocab_rank(None, b"a", 1))
h = C.c_void_p(); line = C.c_uint64()
probe("vocab_load NULL data, len 9", lambda: lib.at_vocab_load_tiktoken(None, 9, 0, C.byref(h), C.byref(line)))
probe("vocab_load len 0", lambda: lib.at_vocab_load_tiktoken(b"", 0, 0, C.byref(h), C.byref(line)))
probe("vocab_load pattern 2**32-1", lambda: lib.at_vocab_load_tiktoken(b"YQ== 0", 6, 2**32 - 1, C.byref(h), C.byref(line)))
probe("set_specials NULL vocab", lambda: lib.at_vocab_set_specials(None, None, None, None, 0))
probe("set_specials n 3, NULL pointers", lambda: lib.at_vocab_set_specials(V, None, None, None, 3))
probe("n_ids / max_token_len / free / result_free of NULL", lambda: [lib.at_vocab_n_ids(None), lib.at_vocab_max_token_len(None), lib.at_vocab_free(None), lib.at_result_free(None)])
print("RESULTS " + json.dumps(res), flush=True)
"""

_EXPECT = {
    "zero rows, all NULL": 0, "zero rows, view layout, all NULL": 0, "NULL vocab": 1, "NULL input": 1,
    "NULL options": 1, "NULL output": 1, "threads 2**32-1": 0, "max_chunk_values -1": 0,
    "max_chunk_values 2**63-1": 0, "n_special 5, NULL pointers": 1, "count_only 7, errors_replace 9": 0,
    "encode_text len 0, NULL data and out": 0, "encode_text NULL data, len 5": 1, "encode_text NULL out, cap 64": 1,
    "encode_text cap 0": 7, "encode_text huge cap": 0, "encode_text NULL vocab": 1,
    "decode_tokens n 0, NULL ids": 0, "decode_tokens NULL ids, n 2": 1, "decode_tokens NULL ids, n 2**64-1": 1,
    "decode_tokens NULL out, cap 0": 7, "decode_tokens NULL out, huge cap": 1, "decode_tokens huge cap": 0,
    "decode_tokens NULL vocab": 1, "decode_column zero rows, NULL": 0,
    "decode_column NULL input / output / vocab": [1, 1, 1], "decode_column NULL values, non-empty list": 1,
    "decode_column NULL values, empty lists": 0, "decode_column arr_offset -1": 1,
    "vocab_rank NULL data, len 3": -1, "vocab_rank len 0": -1, "vocab_rank NULL vocab": -1,
    "vocab_load NULL data, len 9": 1, "vocab_load len 0": 6, "vocab_load pattern 2**32-1": 1,
    "set_specials NULL vocab": 1, "set_specials n 3, NULL pointers": 1,
    "n_ids / max_token_len / free / result_free of NULL": [0, 0, None, None],
    "decode_blk NULL block": 1, "decode_blk NULL vocab / ids / out": [1, 1, 1],
    "decode_blk n 2**64-1, NULL ids": 1, "decode_blk cap 0 / 1 / huge": [7, 7, 0], "decode_blk good": [0, 11],
    "encode_small NULL block": -1, "encode_small len -1 / -2**31": [-1, -1],
    "encode_small NULL data, len 5 / len 0": [-1, 0], "encode_small NULL vocab / opts / out": [-1, -1, -1],
    "encode_small cap 0 / huge": [-7, 1], "encode_small invalid UTF-8": -3,
}
for _n in (1, 2**31, 2**40, 2**62, 2**63 - 1):
    _EXPECT[f"n_rows {_n}, NULL buffers"] = 1
    _EXPECT[f"n_rows {_n}, NULL buffers, view layout"] = 1
    _EXPECT[f"n_rows {_n}, NULL buffers, large"] = 1
for _n in (-1, -(2**31), -(2**63)):
    _EXPECT[f"n_rows {_n}"] = 1
    _EXPECT[f"arr_offset {_n}"] = 1
for _lay in (3, 4, 255, 2**31, 2**32 - 1):
    _EXPECT[f"layout {_lay}"] = 1
for _n in (1, 2**40, 2**63 - 1, -1):
    _EXPECT[f"decode_column n_rows {_n}, NULL buffers"] = 1


def test_abi_hostile_calls_return_a_status():
    p = run_child(_PROBES)
    probes = [ln[6:] for ln in p.stdout.splitlines() if ln.startswith("PROBE ")]
    results = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULTS ")]
    assert p.returncode == 0 and results, (
        f"crashed (exit {p.returncode}) in probe {probes[-1] if probes else '?'!r}:\n{p.stderr[-2000:]}")
    got = json.loads(results[0][8:])
    assert got == _EXPECT


# ---------------------------------------------------------------------------------------------
# Buffers that end at an unmapped page: the encoder loads past a row (16-byte keys, 64-byte
# blocks) only inside the buffer the row lies in.

_GUARD_PAGE = r"""
import ctypes as C, mmap, sys
import numpy as np, pyarrow as pa
import arrowtok
from oracle import oracle
libc = C.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [C.c_void_p, C.c_size_t, C.c_int]
PAGE = mmap.PAGESIZE
keep = []

def at_page_end(data: bytes):
    # data's last byte is the last readable byte: the next page is PROT_NONE
    n = (len(data) + PAGE - 1) // PAGE + 1
    m = mmap.mmap(-1, n * PAGE)
    base = C.addressof(C.c_char.from_buffer(m))
    assert libc.mprotect(base + (n - 1) * PAGE, PAGE, 0) == 0
    off = (n - 1) * PAGE - len(data)
    m[off:off + len(data)] = data
    keep.append(m)
    return pa.foreign_buffer(base + off, len(data), base=None)

rows = ["a", "hello world", "x" * 70, "naïve café ", "東京", " 12345", "", "Hello, world! It's 2024 \r\n x",
        "word " * 13 + "end", "z"]
for name in ("cl100k_base", "o200k_base"):
    enc, ref = arrowtok.get_encoding(name), oracle(name)
    want = [ref.encode_ordinary(r) for r in rows]
    for k in range(len(rows)):
        part = rows[k:] + rows[:k]  # every row once the last one, ending at the page
        data = "".join(part).encode()
        offs = np.cumsum([0] + [len(r.encode()) for r in part]).astype(np.int32)
        arr = pa.Array.from_buffers(pa.string(), len(part), [None, pa.py_buffer(offs.tobytes()), at_page_end(data)])
        w = want[k:] + want[:k]
        for t in (1, 2):
            assert arr.to_pylist() == part
            assert enc.encode_arrow(arr, threads=t).to_pylist() == w, (name, k, t)
            assert enc.count_tokens_arrow(arr, threads=t).to_pylist() == [len(x) for x in w]
        # string_view: the views buffer ends at the page (the last row inline, <= 12 bytes)
        sv = pa.array(part, pa.string_view())
        bufs = sv.buffers()
        views = at_page_end(bufs[1].to_pybytes())
        sv2 = pa.Array.from_buffers(pa.string_view(), len(part), [None, views] + bufs[2:])
        assert enc.encode_arrow(sv2, threads=1).to_pylist() == w, (name, k, "view")
print("ok")
"""


def test_no_load_past_a_buffer_that_ends_at_an_unmapped_page():
    p = run_child(_GUARD_PAGE, timeout=300)
    assert p.returncode == 0 and p.stdout.split()[-1:] == ["ok"], (p.returncode, (p.stdout + p.stderr)[-2000:])


# ---------------------------------------------------------------------------------------------
# Safety-checked build: the fast part of the suite against a ReleaseSafe library


def build_safe_library(out_dir: Path, opt: str = "ReleaseSafe") -> Path:
    """Builds zig/root.zig like hatch_build.py's build_library, with Zig's safety checks on."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        target, cpu = "x86_64-linux-gnu.2.17", os.environ.get("ARROWTOK_ZIG_CPU", "x86_64_v2")
    elif machine in ("aarch64", "arm64"):
        target, cpu = "aarch64-linux-gnu.2.17", os.environ.get("ARROWTOK_ZIG_CPU", "baseline")
    else:
        pytest.skip(f"no Zig target for {machine}")
    out = out_dir / "libarrowtok.so"
    cache = Path(tempfile.gettempdir()) / "arrowtok-zig-cache"
    cmd = [sys.executable, "-m", "ziglang", "build-lib", "zig/root.zig", "-dynamic", f"-O{opt}", "-lc",
           "-target", target, "-mcpu", cpu, "--name", "arrowtok", "--cache-dir", str(cache), f"-femit-bin={out}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


SAFE_SUBSET = ["tests/test_arrow.py", "tests/test_api.py", "tests/test_fuzz.py", "tests/test_robust.py",
               "tests/test_concurrency.py"]


@pytest.mark.skipif(IN_SAFETY_CHILD, reason="already inside the safety-checked run")
def test_safety_checked_build_runs_suite(tmp_path):
    pytest.importorskip("ziglang")
    t0 = time.time()
    lib = build_safe_library(tmp_path)
    built = time.time() - t0
    env = dict(os.environ, ARROWTOK_LIB=str(lib), ARROWTOK_SAFETY_CHILD="1",
               ARROWTOK_FUZZ_TEXT_EXAMPLES="60", ARROWTOK_FUZZ_COLUMN_EXAMPLES="80", ARROWTOK_FUZZ_ABI_CASES="1500",
               ARROWTOK_LEAK_CALLS="1000")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SAFE_SUBSET,
                        "-k", "not test_vocab_load_time and not test_rss_stable"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = (r.stdout + r.stderr)[-4000:]
    print(f"ReleaseSafe build {built:.1f} s, suite subset {time.time() - t0 - built:.1f} s\n{tail[-600:]}")
    assert r.returncode == 0, tail
    assert "passed" in tail and "panic" not in tail


# ---------------------------------------------------------------------------------------------
# Leaks: 10,000 calls of every entry point, RSS flat after warm-up

_LEAK = r"""
import gc, json, os, sys
import pyarrow as pa
import arrowtok

def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

enc = arrowtok.get_encoding("cl100k_base")
col = pa.array(["some text to encode, again 😀", None, "", "東京 tower 123"] * 8)
bad_col = pa.array([b"fine", b"broken \xff here"] * 4, pa.binary())
lists = enc.encode_arrow(col)
bad_lists = pa.array([[1, 2], [2**31 - 1]], pa.list_(pa.int32()))
big = pa.array(["A longer row of ordinary English text, with punctuation! " * 40] * 160, pa.large_string())

def expect_error(f, *exc):
    try:
        f()
    except exc:
        return
    raise AssertionError("no error")

calls = {
    "encode": lambda: enc.encode("hello world <|endoftext|>", allowed_special="all"),
    "encode(disallowed special raises)": lambda: expect_error(lambda: enc.encode("x <|endoftext|>"), ValueError),
    "encode_ordinary": lambda: enc.encode_ordinary("hello world, ordinary 123"),
    "encode_bytes(strict error)": lambda: expect_error(lambda: enc.encode_bytes(b"ok \xff"), arrowtok.ArrowtokError),
    "encode_bytes(replace)": lambda: enc.encode_bytes(b"ok \xff\xe2\x82", errors="replace"),
    "encode_batch": lambda: enc.encode_batch(["a b", "c d e"], num_threads=2),
    "encode_arrow": lambda: enc.encode_arrow(col, threads=1),
    "encode_arrow(threads=2, chunked output)": lambda: enc.encode_arrow(col, threads=2, _max_chunk_values=7),
    "encode_arrow(strict error)": lambda: expect_error(lambda: enc.encode_arrow(bad_col), arrowtok.ArrowtokError),
    "encode_arrow(replace)": lambda: enc.encode_arrow(bad_col, errors="replace"),
    "encode_arrow(row over chunk limit)": lambda: expect_error(lambda: enc.encode_arrow(col, _max_chunk_values=2), arrowtok.ArrowtokError),
    "count_tokens_arrow": lambda: enc.count_tokens_arrow(col),
    "count_tokens_arrow(strict error)": lambda: expect_error(lambda: enc.count_tokens_arrow(bad_col), arrowtok.ArrowtokError),
    "decode_arrow": lambda: enc.decode_arrow(lists),
    "decode_arrow(unknown id)": lambda: expect_error(lambda: enc.decode_arrow(bad_lists), arrowtok.ArrowtokError),
    "decode_bytes": lambda: enc.decode_bytes([9906, 1917, 100257]),
    "decode_bytes(unknown id)": lambda: expect_error(lambda: enc.decode_bytes([1, 2**31]), KeyError),
    "decode": lambda: enc.decode([9906, 1917]),
    "encode_single_token": lambda: enc.encode_single_token("hello"),
    "encode_single_token(KeyError)": lambda: expect_error(lambda: enc.encode_single_token("not one token"), KeyError),
}
n = int(os.environ.get("ARROWTOK_LEAK_CALLS", "10000"))
report = {}
for name, f in calls.items():
    for _ in range(min(1000, n)):
        f()
    gc.collect()
    before = rss_kb()
    for _ in range(n):
        f()
    gc.collect()
    report[name] = [before, rss_kb()]
# the thread pool with multi-task columns (300 KB each)
for _ in range(300):  # the worker threads' malloc arenas settle after a few hundred calls
    enc.encode_arrow(big, threads=2); enc.count_tokens_arrow(big, threads=2)
gc.collect()
before = rss_kb()
for _ in range(max(1, n // 20)):
    enc.encode_arrow(big, threads=2)
    enc.count_tokens_arrow(big, threads=2)
gc.collect()
report["encode_arrow+count(threads=2, 370 KB column)"] = [before, rss_kb()]
print("LEAK " + json.dumps({"calls": n, "rss_kb": report}), flush=True)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_rss_flat_over_10000_calls_of_every_entry_point():
    p = run_child(_LEAK, timeout=600)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("LEAK ")]
    assert p.returncode == 0 and lines, p.stdout[-2000:] + p.stderr[-3000:]
    rep = json.loads(lines[0][5:])
    print(f"RSS over {rep['calls']} calls each (kB before -> after, growth):")
    worst = 0
    for name, (a, b) in rep["rss_kb"].items():
        print(f"  {name:48s} {a:8d} -> {b:8d}  {b - a:+6d}")
        worst = max(worst, b - a)
    # a leak of even 1 byte per call would show as >= 10 kB per entry point; allow allocator noise
    assert worst < 4096, f"RSS grew by {worst} kB over {rep['calls']} calls"


# ---------------------------------------------------------------------------------------------
# Limits


def test_chunked_output_when_values_exceed_the_per_chunk_limit(enc, ref):
    rows = ["word " * (i % 13) for i in range(200)] + [None, ""]
    want = [None if r is None else ref.encode_ordinary(r) for r in rows]
    limit = 50
    res = enc.encode_arrow(pa.array(rows), _max_chunk_values=limit)
    assert isinstance(res, pa.ChunkedArray) and res.num_chunks > 1
    for ch in res.chunks:
        ch.validate(full=True)
        assert ch.type == pa.list_(pa.int32())
        o = ch.offsets.to_numpy()
        assert o[-1] - o[0] <= limit
    assert res.to_pylist() == want
    assert sum(len(c) for c in res.chunks) == len(rows)
    assert enc.decode_arrow(res).to_pylist() == [None if r is None else r for r in rows]
    # a row exactly at the limit fits
    exact = "x" + " x" * (limit - 1)
    assert len(ref.encode_ordinary(exact)) == limit
    assert enc.encode_arrow(pa.array([exact]), _max_chunk_values=limit).to_pylist() == [ref.encode_ordinary(exact)]


def test_single_row_over_the_limit_names_the_row(enc, ref):
    rows = ["short"] * 5 + ["many words " * 40] + ["short"]
    with pytest.raises(arrowtok.ArrowtokError) as e:
        enc.encode_arrow(pa.array(rows), _max_chunk_values=50)
    assert e.value.row == 5 and "row 5" in str(e.value) and "limit 50" in str(e.value)
    # in the second chunk of a chunked column: the row index is the column's
    col = pa.chunked_array([pa.array(["a"] * 7), pa.array(rows)])
    with pytest.raises(arrowtok.ArrowtokError) as e:
        enc.encode_arrow(col, _max_chunk_values=50)
    assert e.value.row == 12 and "row 12" in str(e.value)
    # counting has no per-chunk limit
    assert enc.count_tokens_arrow(col).to_pylist()[12] == len(ref.encode_ordinary(rows[5]))


@pytest.mark.parametrize("threads", [1, 2])
def test_the_first_bad_row_is_reported_whatever_the_kind(enc, threads):
    """A row over the per-chunk limit before an invalid UTF-8 row is the error (and the other
    way round), in one array, in small chunks (encoded together as one group) and in chunks
    over the group size (one call each). Found by hypothesis: two small chunks grouped into one
    call reported the later UTF-8 row."""
    limit = 1000
    over = b"x " * 2000  # ~2000 tokens
    bad = b"\x80"
    pad = [b"word " * 200] * 300  # 300 KB of rows of 200 tokens: a chunk of its own
    for first, second, what in [(over, bad, "do not fit"), (bad, over, "invalid UTF-8")]:
        layouts = {
            "array": (pa.array([b"ok", first, b"ok", second], pa.binary()), 1),
            "small chunks": (pa.chunked_array([pa.array([r], pa.binary()) for r in (b"ok", first, b"ok", second)]), 1),
            "big chunks": (pa.chunked_array([pa.array(pad + [first], pa.binary()), pa.array(pad + [second], pa.binary())]), 300),
        }
        for name, (col, row) in layouts.items():
            with pytest.raises(arrowtok.ArrowtokError) as e:
                enc.encode_arrow(col, threads=threads, _max_chunk_values=limit)
            assert e.value.row == row and what in str(e.value), (name, what, str(e.value))


_BIG = r"""
import sys, time
import numpy as np, pyarrow as pa
import arrowtok
sys.path.insert(0, ".")
from oracle import oracle

def rss_peak_gb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20

enc, ref = arrowtok.get_encoding("cl100k_base"), oracle("cl100k_base")
n = 1_100_000_000  # 'a ' * n: 2.2 GB of text in one large_string row
unit = "a "
total = len(unit) * n
assert total > 2**31
col = pa.Array.from_buffers(pa.large_string(), 1, [None, pa.py_buffer(np.array([0, total], np.int64)),
                                                     pa.py_buffer(unit.encode() * n)])
want = ref.encode_ordinary(unit * 5)  # "a", " a" x 4, " ": the row has n + 1 tokens
t0 = time.time()
counts = enc.count_tokens_arrow(col, threads=2)
assert counts.to_pylist() == [n + 1], counts
print(f"BIG count_tokens_arrow: {n + 1} tokens in {time.time() - t0:.1f} s, peak RSS {rss_peak_gb():.1f} GB", flush=True)
t0 = time.time()
try:
    res = enc.encode_arrow(col, threads=2)
except MemoryError as e:
    print(f"BIG encode_arrow: MemoryError {e}", flush=True)
    raise SystemExit(0)
ch = res.chunk(0) if isinstance(res, pa.ChunkedArray) else res
assert len(res) == 1 and ch.offsets.to_pylist() == [0, n + 1]
vals = ch.values.to_numpy()
assert len(vals) == n + 1 and vals[0] == want[0] and vals[-1] == want[-1]
step = 50_000_000
for a in range(1, n, step):  # in slices: one comparison over all would need another 1 GB
    assert (vals[a:min(a + step, n)] == want[1]).all()
print(f"BIG encode_arrow: one list of {n + 1} ids in {time.time() - t0:.1f} s, peak RSS {rss_peak_gb():.1f} GB", flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ARROWTOK_BIG_TESTS") != "1", reason="set ARROWTOK_BIG_TESTS=1 (~12 GB RAM, minutes)")
def test_row_over_2_gib():
    # In a child process: if the kernel kills it for memory, this test fails and pytest survives.
    p = run_child(_BIG, timeout=1800)
    print(p.stdout)
    assert p.returncode == 0 and "BIG encode_arrow" in p.stdout, (p.returncode, p.stdout[-2000:], p.stderr[-3000:])


_OOM = r"""
import resource, sys
import numpy as np, pyarrow as pa
import arrowtok

def vm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1])

enc = arrowtok.get_encoding("cl100k_base")
enc.encode_arrow(pa.array(["warm up"]), threads=2)
rows = pa.array(["a " * 1_000_000] * 128, pa.large_string())  # 256 MB of text; ids need ~1 GB+
limit = (vm_kb() + 400_000) * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for threads in (1, 2):
    for what in ("encode_arrow", "count_tokens_arrow"):
        try:
            r = getattr(enc, what)(rows, threads=threads)
            print("RESULT", what, threads, "ok", len(r), flush=True)
        except MemoryError as e:
            print("RESULT", what, threads, "MemoryError", e, flush=True)
# still usable afterwards
assert enc.encode_arrow(pa.array(["hello world"])).to_pylist() == [[15339, 1917]]
print("ALIVE", flush=True)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_output_that_does_not_fit_memory_is_a_memory_error():
    p = run_child(_OOM, timeout=300)
    out = p.stdout
    print(out)
    assert p.returncode == 0 and "ALIVE" in out, out[-2000:] + p.stderr[-2000:]
    results = [ln.split(" ", 4)[1:] for ln in out.splitlines() if ln.startswith("RESULT")]
    enc_res = [r for r in results if r[0] == "encode_arrow"]
    assert all(r[2] == "MemoryError" for r in enc_res), results
    # counting does not materialise ids: it fits
    assert all(r[2] == "ok" for r in results if r[0] == "count_tokens_arrow"), results


# ---------------------------------------------------------------------------------------------
# Nothing lost: every bad row is reported, with its index in the column


def _bad_rows_python(rows):
    bad = []
    for i, r in enumerate(rows):
        if r is None:
            continue
        try:
            r.decode("utf-8")
        except UnicodeDecodeError as e:
            bad.append((i, e.start))
    return bad


@pytest.mark.parametrize("threads", [1, 2])
def test_every_bad_row_is_reported_with_its_index(enc, ref, threads):
    rng = np.random.default_rng(5)
    rows = []
    for i in range(4000):  # ~400 KB: several tasks when threads=2
        r = ("row %d: " % i + "text " * int(rng.integers(0, 40))).encode()
        if rng.random() < 0.004:
            cut = int(rng.integers(0, len(r) + 1))
            r = r[:cut] + rng.choice([b"\xff", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80"]) + r[cut:]
        rows.append(None if rng.random() < 0.01 else r)
    rows[3999] = b"\x80 last row"
    want_bad = _bad_rows_python(rows)
    assert len(want_bad) >= 5
    # chunks of uneven sizes; find every bad row by encoding, reporting, and dropping the row
    bounds = [0, 1, 700, 701, 2500, 4000]
    pending = list(range(len(rows)))
    found = []
    for _ in range(len(want_bad) + 1):
        chunks = [pa.array([rows[i] for i in pending if a <= i < b], pa.binary()) for a, b in zip(bounds, bounds[1:])]
        col = pa.chunked_array(chunks, type=pa.binary())
        try:
            res = enc.encode_arrow(col, threads=threads)
        except arrowtok.ArrowtokError as e:
            orig = pending[e.row]
            found.append((orig, e.byte_offset))
            assert f"row {e.row}:" in str(e)
            pending.remove(orig)
            continue
        assert len(res) == len(pending)
        break
    assert found == want_bad
    # errors="replace": every row comes back, in order, none dropped or merged
    res = enc.encode_arrow(pa.array(rows, pa.binary()), threads=threads, errors="replace")
    assert len(res) == len(rows)
    want = [None if r is None else ref.encode_ordinary(r.decode("utf-8", "replace")) for r in rows]
    assert res.to_pylist() == want
    counts = enc.count_tokens_arrow(pa.array(rows, pa.binary()), threads=threads, errors="replace")
    assert counts.to_pylist() == [None if w is None else len(w) for w in want]
