"""Benchmark: the corpus job on a local Ray cluster (`arrowtok tokenize --engine ray`) vs the local job.

    python bench/bench_ray.py [--mb 60] [--files 2] [--rounds 2] [--cpus N] [--num-cpus 1] [--actors N]

Builds a parquet corpus of about --mb MB of text (the `text` column of
../shared/corpora/sample_docs.jsonl, or of sample_data/*.parquet without it, repeated; columns id,
text; --files files), starts a local Ray cluster with --cpus CPUs (default: all cores), then times,
interleaved over --rounds rounds, on the same input:

* local: `arrowtok.pipeline.tokenize_corpus(files, out, keep=["id"], threads=--cpus)`;
* ray:   `arrowtok.ray.tokenize_corpus_ray(files, out, keep=["id"], num_cpus=--num-cpus,
         concurrency=--actors)` on the running cluster (its start-up is timed separately; each input
         file is one Ray Data execution, whose actor start-up is inside the timing).

Both outputs are compared (equal tables) before timing. Prints MB/s of UTF-8 text per round and the
medians.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DOCS = ROOT.parent / "shared" / "corpora" / "sample_docs.jsonl"


def build_corpus(d: Path, mb: float, n_files: int) -> tuple[list[Path], int]:
    if SAMPLE_DOCS.exists():
        base = pj.read_json(SAMPLE_DOCS).select(["id", "text"])
    else:
        base = pa.concat_tables([pq.read_table(p, columns=["id", "text"])
                                 for p in sorted((ROOT / "sample_data").glob("*.parquet"))])
    base_bytes = pc.sum(pc.binary_length(base["text"])).as_py()
    d.mkdir(parents=True, exist_ok=True)
    reps = max(n_files, round(mb * 1e6 / base_bytes))
    files, total = [], 0
    for i in range(n_files):
        k = reps // n_files + (i < reps % n_files)
        p = d / f"part-{i:03d}.parquet"
        with pq.ParquetWriter(p, base.schema, compression="zstd") as w:
            for _ in range(k):
                w.write_table(base, row_group_size=16384)
        files.append(p)
        total += k * base_bytes
    return files, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=60)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray cluster and local-job threads")
    ap.add_argument("--num-cpus", type=float, default=1, help="CPUs (= Zig threads) per Ray actor")
    ap.add_argument("--actors", type=int, default=None, help="Ray actors (default: autoscale)")
    ap.add_argument("--encoding", default="cl100k_base")
    ap.add_argument("--tmp", default=None, help="folder for the corpus and outputs (default: a temporary one)")
    a = ap.parse_args()

    import ray

    import arrowtok
    from arrowtok.encoding import default_threads
    from arrowtok.pipeline import tokenize_corpus
    from arrowtok.ray import tokenize_corpus_ray

    cpus = a.cpus or default_threads()
    tmp = Path(tempfile.mkdtemp(prefix="arrowtok-bench-ray-", dir=a.tmp))
    try:
        t0 = time.perf_counter()
        files, text_bytes = build_corpus(tmp / "in", a.mb, a.files)
        print(f"corpus: {len(files)} parquet files, {text_bytes / 1e6:,.1f} MB of text "
              f"({sum(f.stat().st_size for f in files) / 1e6:,.1f} MB on disk), built in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        print(f"ray {ray.__version__}: local cluster with {cpus} CPUs started in {time.perf_counter() - t0:.1f} s; "
              f"arrowtok {arrowtok.__version__}, pyarrow {pa.__version__}, {a.encoding}, "
              f"actors: {a.actors or 'autoscale'} x {a.num_cpus:g} CPU; local job: {cpus} threads; "
              f"{os.cpu_count()} CPUs on the machine")

        def run_local(out):
            return tokenize_corpus(files, out, keep=["id"], encoding=a.encoding, threads=cpus, progress=False)

        def run_ray(out):
            return tokenize_corpus_ray(files, out, keep=["id"], encoding=a.encoding, num_cpus=a.num_cpus,
                                       concurrency=a.actors, progress=False)

        cases = {"local job": run_local, "ray job": run_ray}
        times: dict[str, list[float]] = {k: [] for k in cases}
        for r in range(a.rounds):
            for name, fn in cases.items():
                out = tmp / f"out-{name.split()[0]}-{r}"
                t = time.perf_counter()
                fn(out)
                dt = time.perf_counter() - t
                times[name].append(dt)
                print(f"round {r + 1}: {name:9s} {dt:7.2f} s  {text_bytes / dt / 1e6:8.1f} MB/s", flush=True)
            if r == 0:
                for f in files:
                    lo = pq.read_table(tmp / "out-local-0" / f.name)
                    ro = pq.read_table(tmp / "out-ray-0" / f.name)
                    assert ro.equals(lo), f"outputs differ: {f.name}"
                print("outputs equal (every file, every column)")
            for name in cases:
                shutil.rmtree(tmp / f"out-{name.split()[0]}-{r}", ignore_errors=True) if r else None
        print()
        print(f"| job | median s | MB/s ({text_bytes / 1e6:,.1f} MB of text, {len(files)} files) |")
        print("|---|---:|---:|")
        med = {k: statistics.median(v) for k, v in times.items()}
        for name, m in med.items():
            print(f"| {name} | {m:.2f} | {text_bytes / m / 1e6:,.1f} |")
        print(f"\nray / local throughput: {med['local job'] / med['ray job']:.2f}x")
    finally:
        try:
            ray.shutdown()
        except Exception:
            pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
