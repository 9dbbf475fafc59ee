"""A/B of two or more builds of the native library over the corpus stream, in one process.

The stream is `bench_cold.py --corpora stream`'s corpus job: every paragraph of every corpus file
plus the 20k documents (~33 MB, ~91k rows), shuffled, in batches of 4,000 rows. Every build is
loaded into this process (one import of the package per build, each bound to its library through
ARROWTOK_LIB, each with its own thread-local piece tables), and the builds take turns batch by
batch, so a first pass is compared with a first pass under the same neighbours. Prints MB per
CPU-second of each build for each pass and its ratio to the first build; outputs are compared
on every fifth batch of the first pass.

    python bench/ab_stream.py --libs /tmp/a.so,/tmp/b.so --encoding o200k_base --passes 3

Both builds' tables live in one process (twice the memory, more cache pressure than a job has
alone): read the ratios, not the MB/s.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--libs", required=True, help="comma-separated paths of library builds")
    ap.add_argument("--encoding", default="cl100k_base")
    ap.add_argument("--passes", type=int, default=2)
    a = ap.parse_args()

    import pyarrow as pa

    from ab_builds import load_builds
    from bench_cold import STREAM_BATCH, stream_rows

    rows = stream_rows()
    batches = [pa.array(rows[i:i + STREAM_BATCH], type=pa.string()) for i in range(0, len(rows), STREAM_BATCH)]
    nbytes = sum(len(r.encode("utf-8")) for r in rows)
    libs = [str(Path(p).resolve()) for p in a.libs.split(",")]
    calls = {lib: enc.encode_arrow for lib, enc in load_builds(libs, a.encoding).items()}
    print(f"stream {a.encoding}: {nbytes / 1e6:.1f} MB, {len(batches)} batches, 1 thread")
    for p in range(a.passes):
        cpu = {lib: 0.0 for lib in libs}
        order = libs if p % 2 == 0 else libs[::-1]
        for k, b in enumerate(batches):
            outs = []
            for lib in (order if k % 2 == 0 else order[::-1]):
                t0 = time.process_time()
                outs.append(calls[lib](b, threads=1))
                cpu[lib] += time.process_time() - t0
            if p == 0 and k % 5 == 0 and not all(o.equals(outs[0]) for o in outs):
                sys.exit(f"batch {k}: outputs differ")
            del outs
        base = cpu[libs[0]]
        print(f"  pass {p}: " + "  ".join(f"{nbytes / cpu[lib] / 1e6:6.1f} MB/s x{base / cpu[lib]:.3f} {lib}" for lib in libs))


if __name__ == "__main__":
    main()
