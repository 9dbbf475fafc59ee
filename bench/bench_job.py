"""Benchmark: the corpus job (`arrowtok tokenize`) against the same job written with tiktoken.

    python bench/bench_job.py [--mb 300] [--files 8] [--rounds 3] [--threads N] [--encoding cl100k_base]

Builds a parquet corpus of about --mb MB of text in a temporary folder (the `text` column of
../shared/corpora/sample_docs.jsonl, or of sample_data/*.parquet without it, repeated; columns id,
text; --files files), then times, interleaved over --rounds rounds:

* arrowtok: `tokenize_corpus(files, out, keep=["id"])`, i.e. the CLI's job (reader thread, Zig encode
  with the GIL released, writer thread, manifest, atomic renames);
* tiktoken: the same job written the usual way: for each file, `ParquetFile.iter_batches` with the
  same batch budget, `encode_ordinary_batch(texts, num_threads=N)`, `pa.array(ids, list<int32>)`,
  `n_tokens`, the same ParquetWriter settings, temporary name + rename.

Both outputs are compared (identical token ids) before timing. Prints MB/s of UTF-8 text per round,
medians and the ratio.
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
sys.path.insert(0, str(ROOT / "tests"))

import arrowtok  # noqa: E402
from arrowtok.encoding import default_threads  # noqa: E402
from arrowtok.pipeline import tokenize_corpus  # noqa: E402
from arrowtok.pipeline.job import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS  # noqa: E402

SAMPLE_DOCS = ROOT.parent / "shared" / "corpora" / "sample_docs.jsonl"


def tiktoken_encoding(name: str):
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except Exception:  # no network / cache: the same vocabulary, built offline
        from oracle import oracle

        return oracle(name)


def build_corpus(d: Path, mb: float, n_files: int) -> tuple[list[Path], int]:
    if SAMPLE_DOCS.exists():
        base = pj.read_json(SAMPLE_DOCS).select(["id", "text"])
    else:
        base = pa.concat_tables([pq.read_table(p, columns=["id", "text"]) for p in sorted((ROOT / "sample_data").glob("*.parquet"))])
    base_bytes = pc.sum(pc.binary_length(base["text"])).as_py()
    d.mkdir(parents=True, exist_ok=True)
    reps = max(1, round(mb * 1e6 / base_bytes))
    per_file = -(-reps // n_files)
    files, total, left = [], 0, reps
    for i in range(n_files):
        k = min(per_file, left)
        if k <= 0:
            break
        p = d / f"part-{i:03d}.parquet"
        w = pq.ParquetWriter(p, base.schema, compression="zstd")
        for _ in range(k):
            w.write_table(base, row_group_size=16384)
        w.close()
        files.append(p)
        total += k * base_bytes
        left -= k
    return files, total


def tiktoken_job(files: list[Path], out: Path, tk, threads: int, batch_rows: int, batch_bytes: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        pf = pq.ParquetFile(f)
        per_row = max(1, sum(pf.metadata.row_group(i).column(1).total_uncompressed_size
                             for i in range(pf.metadata.num_row_groups)) // max(1, pf.metadata.num_rows))
        rows = max(1, min(batch_rows, batch_bytes // per_row))
        schema = pa.schema([("id", pa.string()), ("tokens", pa.list_(pa.int32())), ("n_tokens", pa.uint32())])
        final = out / f.name
        tmp = out / f".{f.name}.tmp"
        w = pq.ParquetWriter(tmp, schema, compression="zstd", use_dictionary=["id"], write_statistics=["id", "n_tokens"])
        for b in pf.iter_batches(batch_size=rows, columns=["id", "text"]):
            ids = tk.encode_ordinary_batch(b.column(1).to_pylist(), num_threads=threads)
            tokens = pa.array(ids, pa.list_(pa.int32()))
            n = pc.list_value_length(tokens).cast(pa.uint32())
            w.write_batch(pa.record_batch([b.column(0), tokens, n], schema=schema))
        w.close()
        os.replace(tmp, final)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=300)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--encoding", default="cl100k_base")
    ap.add_argument("--tmp", default=None, help="folder for the corpus and outputs (default: a temporary one)")
    a = ap.parse_args()
    threads = a.threads or default_threads()
    tk = tiktoken_encoding(a.encoding)
    import tiktoken

    tmp = Path(tempfile.mkdtemp(prefix="arrowtok-bench-job-", dir=a.tmp))
    try:
        t0 = time.perf_counter()
        files, text_bytes = build_corpus(tmp / "in", a.mb, a.files)
        print(f"corpus: {len(files)} parquet files, {text_bytes / 1e6:,.0f} MB of text "
              f"({sum(f.stat().st_size for f in files) / 1e6:,.0f} MB on disk), built in {time.perf_counter() - t0:.1f} s")
        print(f"arrowtok {arrowtok.__version__}, tiktoken {tiktoken.__version__}, pyarrow {pa.__version__}, "
              f"{a.encoding}, {threads} threads, {os.cpu_count()} CPUs")

        def run_arrowtok(out):
            tokenize_corpus(files, out, keep=["id"], encoding=a.encoding, threads=threads, progress=False)

        def run_tiktoken(out):
            tiktoken_job(files, out, tk, threads, DEFAULT_BATCH_ROWS, DEFAULT_BATCH_BYTES)

        cases = {"arrowtok tokenize": run_arrowtok, "tiktoken job": run_tiktoken}
        # Check: identical ids on the first file.
        check = files[:1]
        run = {}
        for name, fn in cases.items():
            out = tmp / ("check-" + name.split()[0])
            if name.startswith("arrowtok"):
                tokenize_corpus(check, out, keep=["id"], encoding=a.encoding, threads=threads, progress=False)
            else:
                tiktoken_job(check, out, tk, threads, DEFAULT_BATCH_ROWS, DEFAULT_BATCH_BYTES)
            run[name] = pq.read_table(out / check[0].name, columns=["tokens"])["tokens"]
        a_ids, t_ids = run.values()
        assert a_ids.equals(t_ids), "arrowtok and tiktoken outputs differ"
        print(f"check: identical token ids on {check[0].name} ({len(a_ids):,} rows)")

        times: dict[str, list[float]] = {n: [] for n in cases}
        names = list(cases)
        for r in range(a.rounds):
            order = names[r % 2:] + names[: r % 2]
            for n in order:
                out = tmp / "out"
                shutil.rmtree(out, ignore_errors=True)
                t = time.perf_counter()
                cases[n](out)
                dt = time.perf_counter() - t
                times[n].append(dt)
                print(f"round {r + 1}: {n:<18} {dt:7.2f} s  {text_bytes / dt / 1e6:8.1f} MB/s", flush=True)
        print()
        print(f"{'case':<20}{'median s':>10}{'MB/s':>10}{'vs tiktoken':>13}")
        base = statistics.median(times["tiktoken job"])
        for n in names:
            m = statistics.median(times[n])
            print(f"{n:<20}{m:>10.2f}{text_bytes / m / 1e6:>10.1f}{base / m:>12.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
