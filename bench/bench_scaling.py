#!/usr/bin/env python
"""Thread scaling of arrowtok's column calls on one machine, in one process (issue 3: 2 threads
>= 1.8x one on 2 cores, 16 threads >= 10x one on 16).

    python bench/bench_scaling.py                       # 1, 2, 4, ... all cores; 40 MB columns
    python bench/bench_scaling.py --threads 1,16 --mb 80 --memory

For each encoding and corpus (bench.py's corpora, whole files) it builds one column of at least
--mb MB (the corpus's rows repeated), checks that every thread count gives the ids of one
thread, then times encode_arrow and count_tokens_arrow at every thread count interleaved, round
after round (wall time, medians). Columns this size keep per-call costs out of the ratio; bench.py's
table uses the corpora as they are (5-10 MB), where a 16-thread call lasts a few milliseconds.

The machine's own ceiling is measured too, the same way bench.py's probe does it (sha256 on N
threads at once vs one after the other): once over a 24 MB buffer per pass (memory traffic, as
bench.py), once over a 256 KiB buffer hashed 96 times per pass (in each core's L2). Turbo clocks
that drop with more busy cores, shared cores, or a noisy host all show up there first.

--memory also runs bench.py's peak-memory check (a ~100 MB column, fresh subprocess) at the highest
thread count.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench as B  # noqa: E402


def timed(fn, col, t) -> float:
    return B._timed(lambda: fn(col, threads=t), collect=False)


def column(name: str, mb: float):
    import pyarrow as pa

    rows = B.repeat_rows(B.load_corpus(name, None, None)["rows"], mb)
    return pa.array(rows, pa.string()), B.utf8_len(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    default_threads = sorted({1, cpus} | {t for t in (2, 4, 8, 16, 32, 64) if t < cpus})
    ap.add_argument("--threads", default=",".join(map(str, default_threads)))
    ap.add_argument("--mb", type=float, default=40.0, help="column size per corpus in MB (rows repeated)")
    ap.add_argument("--corpora", default="english,code,multilingual,dictionary,docs,lines")
    ap.add_argument("--encodings", default="cl100k_base,o200k_base")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--memory", action="store_true", help="also bench.py's 100 MB peak-memory check")
    ap.add_argument("--out", default=None, help="also write the Markdown here")
    a = ap.parse_args(argv)
    threads = [int(t) for t in a.threads.split(",") if t.strip()]
    if 1 not in threads:
        threads.insert(0, 1)
    top = max(threads)

    import arrowtok
    import arrowtok._native  # noqa: F401  (the library's file name)

    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    p_mem = B.cpu_probe(top)
    p_l2 = B.cpu_probe(top, size=256 << 10, passes=96)
    say(f"# arrowtok thread scaling: {B.machine()['cpu']}, {cpus} CPUs usable, arrowtok "
        f"{arrowtok.__version__}, library {Path(arrowtok._native.lib._name).name}")
    say()
    say(f"Machine ceiling (sha256, {top} threads at once vs one after the other): 24 MB buffers "
        f"{p_mem:.2f}x, 256 KiB buffers {p_l2:.2f}x.")
    say()
    say(f"Columns of at least {a.mb:g} MB (each corpus's rows repeated); wall-time medians of "
        f"{a.rounds} interleaved rounds; ratio = MB/s at N threads / MB/s at 1 thread.")
    say()
    head = "| corpus | encoding | call | " + " | ".join(f"{t} thr MB/s" for t in threads) + " | " + \
        " | ".join(f"x{t}" for t in threads if t != 1) + " |"
    say(head)
    say("|" + "---|" * (3 + len(threads) + len(threads) - 1))
    # Each thread count calls from a Python thread of its own: a thread's piece tables follow the
    # text it encodes, so the thread that runs one-thread calls over the whole column must not
    # also be the caller (range 0) of the 16-thread calls, whose aging would trim its tables to
    # that range (measured on 16 cores: one-thread English 118-136 MB/s that way, ~260 alone).
    callers = {t: ThreadPoolExecutor(max_workers=1) for t in threads}
    t_start = time.perf_counter()
    for enc_name in [e.strip() for e in a.encodings.split(",") if e.strip()]:
        enc = arrowtok.get_encoding(enc_name)
        for name in [c.strip() for c in a.corpora.split(",") if c.strip()]:
            col, nbytes = column(name, a.mb)
            for t in threads:  # each caller thread's tables warm for its own share of the column
                callers[t].submit(timed, enc.encode_arrow, col, t).result()
            want = enc.encode_arrow(col, threads=1)
            want_n = enc.count_tokens_arrow(col, threads=1)
            for t in threads[1:]:
                got = enc.encode_arrow(col, threads=t)
                if not got.equals(want) or not enc.count_tokens_arrow(col, threads=t).equals(want_n):
                    say(f"| {name} | {enc_name} | MISMATCH at {t} threads |")
                    return 1
            del want, got, want_n
            times = {(c, t): [] for c in ("encode", "count") for t in threads}
            for _ in range(a.rounds):
                for t in threads:
                    for c, fn in (("encode", enc.encode_arrow), ("count", enc.count_tokens_arrow)):
                        times[(c, t)].append(callers[t].submit(timed, fn, col, t).result())
            for c in ("encode", "count"):
                mbps = {t: nbytes / statistics.median(times[(c, t)]) / 1e6 for t in threads}
                say(f"| {name} | {enc_name.split('_')[0]} | {c} | " + " | ".join(f"{mbps[t]:.0f}" for t in threads)
                    + " | " + " | ".join(f"{mbps[t] / mbps[1]:.2f}" for t in threads if t != 1) + " |")
            del col
    say()
    say(f"Wall {time.perf_counter() - t_start:.0f} s.")
    if a.memory:
        cfg = {"memory_mb": 100, "encodings": [e.strip() for e in a.encodings.split(",") if e.strip()],
               "threads_max": top}
        res = B.run_sub("memory", cfg, top)
        say()
        say(f"Peak memory, ~100 MB column, {top} threads (bench.py's check, fresh subprocess):")
        say()
        if "error" in res:
            say(f"error: {res['error']}")
        else:
            say(f"input {res['input_bytes'] / 2**20:.1f} MiB")
            for r in res["runs"].values():
                say(f"- {r['encoding']} {r['call']}: {r['mbps']:.0f} MB/s, output {r['output_bytes'] / 2**20:.1f} MiB, "
                    f"beyond output {r['overhead_beyond_output'] / 2**20:.1f} MiB ({r['peak_measure']})")
    if a.out:
        Path(a.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
