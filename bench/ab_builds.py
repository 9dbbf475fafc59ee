"""A/B two or more builds of the native library in one process, interleaved.

On a shared machine, separate processes run minutes apart see different neighbours; here every
build is loaded into the same process (the arrowtok package is imported once per build, each copy
bound to its own library through ARROWTOK_LIB), their outputs are checked to be identical, and
their encode_arrow (or count_tokens_arrow) calls alternate round by round. Prints the median MB/s
per build (CPU time of the call; wall time with --threads above 1) and its ratio to the first build.

    # build a variant next to the default (see zig-notes / hatch_build.py for the flags)
    python -m ziglang build-lib zig/root.zig -dynamic -OReleaseFast -lc -mcpu x86_64_v3 \\
        --name arrowtok_b -femit-bin=/tmp/b.so
    python bench/ab_builds.py --libs arrowtok/libarrowtok_v3.so,/tmp/b.so --corpus docs

--history english:doc,english,code:doc,code,... makes every build first encode what the benchmark's
process encodes before a row (three times each; ":doc" = one encode_to_numpy call per document), for
effects that depend on what the piece tables already hold.

--cold sums a 48 MB buffer before each timed call, evicting the piece tables from the CPU caches
(the benchmark's interleaving of many tools does much the same); without it each build runs right
after its own untimed call.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def load_builds(libs: list[str], encoding: str) -> dict:
    """`encoding` from each build in `libs`, all in this process: the package is imported once per
    build, each copy bound to its library through ARROWTOK_LIB (and so with piece tables of its own)."""
    encs = {}
    for lib in libs:
        for name in [m for m in sys.modules if m == "arrowtok" or m.startswith("arrowtok.")]:
            del sys.modules[name]
        os.environ["ARROWTOK_LIB"] = lib
        encs[lib] = importlib.import_module("arrowtok").get_encoding(encoding)
    return encs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--libs", required=True, help="comma-separated paths of library builds")
    ap.add_argument("--corpus", default="english", help="a corpus name of bench.py (english, code, docs, ...), "
                    "or pathological:<name> for one of its 1 MB inputs as one row (e.g. pathological:random)")
    ap.add_argument("--encoding", default="cl100k_base")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--max-mb", type=float, default=2.0, help="cap per file corpus in MB, as bench.py (0 = whole files)")
    ap.add_argument("--repeat-mb", type=float, default=0.0,
                    help="repeat the corpus's rows up to a column of this many MB (0: as loaded)")
    ap.add_argument("--count", action="store_true", help="time count_tokens_arrow instead of encode_arrow")
    ap.add_argument("--cold", action="store_true", help="evict the CPU caches before each timed call")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads= of each call; above 1 the wall time is timed, not CPU time")
    ap.add_argument("--first-rows", type=int, default=0,
                    help="keep only the corpus's first N rows (with --repeat-mb: a small working set of pieces)")
    ap.add_argument("--no-check", action="store_true",
                    help="time builds whose ids differ (timing-only experiments, e.g. a lookup left out to "
                         "bound its cost); prints how many rows differ instead of stopping")
    ap.add_argument("--history", default="",
                    help="corpora each build encodes first, in order, three times each (as the benchmark's "
                         "process does before a row): e.g. english:doc,english,code:doc,code (:doc = one "
                         "encode_to_numpy call per document instead of one column)")
    a = ap.parse_args()

    import numpy as np
    import pyarrow as pa
    from bench import load_corpus, repeat_rows

    if a.corpus.startswith("pathological:"):
        from bench import pathological_inputs
        inputs = pathological_inputs()
        key = a.corpus.split(":", 1)[1]
        match = [k for k in inputs if key in k]
        if len(match) != 1:
            sys.exit(f"--corpus pathological:<part of one of {list(inputs)}>")
        rows = [inputs[match[0]]]
    else:
        rows = load_corpus(a.corpus, a.max_mb or None, None)["rows"]
        if a.first_rows:
            rows = rows[:a.first_rows]
        if a.repeat_mb:
            rows = repeat_rows(rows, a.repeat_mb)
    col = pa.array(rows, pa.string())
    mb = sum(len(r.encode("utf-8")) for r in rows) / 1e6
    libs = [str(Path(p).resolve()) for p in a.libs.split(",")]
    encs = load_builds(libs, a.encoding)
    calls = {lib: enc.count_tokens_arrow if a.count else enc.encode_arrow for lib, enc in encs.items()}
    # The history: what the benchmark's process encoded before this row (each build's caches are
    # its own, so every build replays it).
    for item in [h for h in a.history.split(",") if h]:
        name, _, how = item.partition(":")
        c = load_corpus(name, a.max_mb or None, None)
        hcol = pa.array(c["rows"], pa.string())
        for lib in libs:
            for _ in range(3):
                if how == "doc":
                    for d in c["docs"]:
                        encs[lib].encode_to_numpy(d, disallowed_special=())
                else:
                    calls[lib](hcol, threads=a.threads)
    ref = None
    for lib, f in calls.items():
        out = f(col, threads=a.threads)
        if ref is None:
            ref = out
        elif not out.equals(ref):
            if not a.no_check:
                sys.exit(f"{lib}: output differs from {libs[0]}")
            differ = sum(1 for x, y in zip(out.to_pylist(), ref.to_pylist()) if x != y)
            print(f"  (--no-check) {lib}: {differ} of {len(ref)} rows differ from {libs[0]}; timing only")
    evict = np.ones(48 << 20, np.uint8) if a.cold else None
    times = {lib: [] for lib in libs}
    clock = time.process_time if a.threads == 1 else time.perf_counter
    for _ in range(a.rounds):
        for lib, f in calls.items():
            f(col, threads=a.threads)
            gc.collect()
            if evict is not None:
                evict.sum()
            t0 = clock()
            f(col, threads=a.threads)
            times[lib].append(clock() - t0)
    base = statistics.median(times[libs[0]])
    print(f"{a.corpus} {a.encoding} {'count' if a.count else 'encode'} ({mb:.2f} MB, {a.rounds} rounds, {a.threads} thread(s)"
          f"{', cold' if a.cold else ''})")
    for lib in libs:
        med = statistics.median(times[lib])
        print(f"  {mb / med:7.1f} MB/s  x{base / med:.3f}  {lib}")


if __name__ == "__main__":
    main()
