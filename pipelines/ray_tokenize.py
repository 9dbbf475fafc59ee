"""Tokenize a corpus in an object store with arrowtok on a Ray cluster (Ray Data end to end).

    python pipelines/ray_tokenize.py s3://bucket/corpus/ s3://bucket/tokens/ \
        [--address auto] [--column text] [--keep id,url] [--encoding cl100k_base] [--append-eot] \
        [--num-cpus 4] [--actors 8] [--batch-size 4096]

Reads parquet (or --json lines) from any path Ray Data reads (s3://, gs://, abfs://, local/NFS),
tokenizes with `arrowtok.ray.tokenize_dataset` and writes parquet with Ray's `write_parquet`: the
`--keep` columns, then `tokens: list<int32>` and `n_tokens: uint32`, as `arrowtok tokenize` does.
Unlike `arrowtok tokenize --engine ray`, output files follow Ray's naming (one or more per block,
no per-input names, no manifest/resume): this is the shape for object-store outputs, where a
rename is not atomic. Sizing: each actor reserves --num-cpus CPUs and runs that many Zig threads;
--actors actors (default: an autoscaling pool; a fixed pool must leave CPUs free for the
read and write tasks, or the job stalls).
"""
from __future__ import annotations

import argparse
import time

import ray

from arrowtok.ray import DEFAULT_BATCH_SIZE, tokenize_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--address", default=None, help="Ray cluster (auto, ray://head:10001; default: RAY_ADDRESS or local)")
    ap.add_argument("--json", action="store_true", help="input is JSON lines, not parquet")
    ap.add_argument("--column", default="text")
    ap.add_argument("--keep", default="", help="comma-separated columns to carry over")
    ap.add_argument("--encoding", default="cl100k_base")
    ap.add_argument("--append-eot", action="store_true")
    ap.add_argument("--errors", default="strict", choices=["strict", "replace"])
    ap.add_argument("--num-cpus", type=float, default=1, help="CPUs = Zig threads per actor")
    ap.add_argument("--actors", type=int, default=None, help="actor count (default: autoscale)")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="rows per batch")
    a = ap.parse_args()

    ray.init(address=a.address)
    t0 = time.perf_counter()
    ds = ray.data.read_json(a.input) if a.json else ray.data.read_parquet(a.input)
    keep = [k for k in a.keep.split(",") if k]
    ds = tokenize_dataset(ds, a.column, a.encoding, keep=keep, append_eot=a.append_eot, errors=a.errors,
                          num_cpus=a.num_cpus, concurrency=a.actors, batch_size=a.batch_size)
    ds.write_parquet(a.output, compression="zstd")
    print(f"wrote {a.output} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
