"""Build sample_data/*.parquet: a small real multilingual corpus for the README's first command.

    python pipelines/make_sample_data.py [--source ../shared/corpora/sample_docs.jsonl]

Draws ROWS documents without replacement (numpy default_rng(SEED)) from sample_docs.jsonl (20,047
documents from the public sources listed in ../shared/corpora/README.md), keeps the fields id, lang,
text unchanged, keeps the source's row order, and writes them as NFILES parquet files (zstd, row
groups of 1,000 rows). Deterministic: rerunning gives the same rows.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SEED = 20250505
ROWS = 4000
NFILES = 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=str(ROOT.parent / "shared" / "corpora" / "sample_docs.jsonl"))
    ap.add_argument("--out", default=str(ROOT / "sample_data"))
    a = ap.parse_args()
    table = pj.read_json(a.source).select(["id", "lang", "text"])
    rng = np.random.default_rng(SEED)
    rows = np.sort(rng.choice(table.num_rows, size=ROWS, replace=False))
    sample = table.take(pa.array(rows))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    per = -(-ROWS // NFILES)
    for i in range(NFILES):
        part = sample.slice(i * per, per)
        path = out / f"docs-{i:03d}.parquet"
        pq.write_table(part, path, compression="zstd", row_group_size=1000)
        print(f"{path}: {part.num_rows} rows, {path.stat().st_size:,} bytes, "
              f"{pa.compute.sum(pa.compute.binary_length(part['text'])).as_py():,} text bytes")
    langs = pa.compute.value_counts(sample["lang"])
    print(f"{len(langs)} distinct lang values")


if __name__ == "__main__":
    main()
