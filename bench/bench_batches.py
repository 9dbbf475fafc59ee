#!/usr/bin/env python
"""Back-to-back batches on the pool: what a streaming job that calls encode_arrow batch after batch
sees, at one thread and at several, with the pool's polling window on and off.

    python bench/bench_batches.py                         # 64 KB .. 4 MB batches, 1 and all threads
    python bench/bench_batches.py --kb 300,1000 --threads 2 --rounds 5

After a job the pool's workers poll for the next one for ARROWTOK_POOL_SPIN_US (default 300)
microseconds before they sleep, and the calling thread polls for the workers' end (zig/pool.zig).
Each configuration runs in a fresh process (the window is read once per process), the processes
alternate round by round, and each one times `--calls` back-to-back calls per batch size and
thread count (wall time, medians). Prints MB/s and the multi-thread speed over one thread's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def child(kbs: list[int], threads: list[int], calls: int, corpus: str, encoding: str) -> dict:
    import gc
    import time

    import pyarrow as pa

    import arrowtok
    from bench import load_corpus

    enc = arrowtok.get_encoding(encoding)
    rows = load_corpus(corpus, 8.0, None)["rows"]
    out = {}
    gc.disable()
    for kb in kbs:
        acc, n = [], 0
        for r in rows:
            acc.append(r)
            n += len(r.encode("utf-8"))
            if n >= kb * 1000:
                break
        col = pa.array(acc, pa.string())
        for t in threads:
            enc.encode_arrow(col, threads=t)
            times = []
            for _ in range(calls):
                t0 = time.perf_counter()
                enc.encode_arrow(col, threads=t)
                times.append(time.perf_counter() - t0)
            out[f"{kb}:{t}"] = n / statistics.median(times) / 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ap.add_argument("--kb", default="64,300,1000,4000", help="batch sizes in KB")
    ap.add_argument("--threads", default=str(cpus), help="thread counts besides 1")
    ap.add_argument("--spins", default="0,300", help="ARROWTOK_POOL_SPIN_US values to compare")
    ap.add_argument("--rounds", type=int, default=3, help="processes per configuration, alternated")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--corpus", default="english")
    ap.add_argument("--encoding", default="cl100k_base")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    kbs = [int(x) for x in a.kb.split(",")]
    threads = sorted({1} | {int(x) for x in a.threads.split(",")})
    if a._child:
        print(json.dumps(child(kbs, threads, a.calls, a.corpus, a.encoding)))
        return
    spins = a.spins.split(",")
    res: dict[str, list[dict]] = {s: [] for s in spins}
    for _ in range(a.rounds):
        for s in spins:
            env = dict(os.environ, ARROWTOK_POOL_SPIN_US=s, OPENBLAS_NUM_THREADS="1")
            r = subprocess.run([sys.executable, __file__, "--_child", "1", "--kb", a.kb, "--threads", a.threads,
                                "--calls", str(a.calls), "--corpus", a.corpus, "--encoding", a.encoding],
                               env=env, capture_output=True, text=True, check=True)
            res[s].append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"# back-to-back encode_arrow batches: {a.corpus}, {a.encoding}, {cpus} CPUs, {a.calls} calls per "
          f"point, medians over {a.rounds} processes per configuration\n")
    print("| batch KB | ARROWTOK_POOL_SPIN_US | " + " | ".join(f"{t} thr MB/s" for t in threads)
          + " | " + " | ".join(f"{t} thr ÷ 1" for t in threads if t > 1) + " |")
    print("|---|---|" + "---:|" * (2 * len(threads) - 1))
    for kb in kbs:
        for s in spins:
            mbps = {t: statistics.median(d[f"{kb}:{t}"] for d in res[s]) for t in threads}
            cells = [f"{mbps[t]:.0f}" for t in threads] + [f"{mbps[t] / mbps[1]:.2f}x" for t in threads if t > 1]
            print(f"| {kb} | {s} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
