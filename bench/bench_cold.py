"""First pass vs repeated passes: how much of each tool's column speed comes from having seen the
text before.

`bench/bench.py` times each tool several times over the same column, so tools that keep a table
of every piece they have encoded (arrowtok, gigatoken) run from that table after the first
repeat. A corpus job sees each document once. This script times, for each tool in a fresh
subprocess, the first `encode_column` over a corpus (tokenizer just loaded, nothing cached), then
the median of the next passes, after checking the first pass's ids against tiktoken.

    python bench/bench_cold.py                       # english, docs, multilingual; cl100k_base
    python bench/bench_cold.py --corpora docs --encodings o200k_base --tools arrowtok,gigatoken
    python bench/bench_cold.py --corpora stream --encodings cl100k_base,o200k_base

`stream` is a corpus job's shape: every paragraph of every file in ../shared/corpora and every
document of sample_docs.jsonl (~33 MB, ~91k rows), shuffled (fixed seed), encoded in batches of
4,000 rows, each batch once; "later passes" there is one more pass over all the batches.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


STREAM_BATCH = 4000


def stream_rows() -> list[str]:
    """Every paragraph of the shared corpora's text files and every sample_docs document, shuffled."""
    import random

    from bench import SHARED_CORPORA, _paragraphs

    rows: list[str] = []
    for p in sorted(SHARED_CORPORA.iterdir()):
        if p.suffix == ".txt" and p.is_file():
            rows += [r for r in _paragraphs(p.read_text(encoding="utf-8")) if r]
        elif p.suffix == ".jsonl":
            with open(p, encoding="utf-8") as fh:
                rows += [json.loads(line)["text"] for line in fh if line.strip()]
    random.Random(5).shuffle(rows)
    return rows


def child_stream(tool: str, encoding: str) -> dict:
    import pyarrow as pa

    import peers as P

    rows = stream_rows()
    batches = [pa.array(rows[i:i + STREAM_BATCH], type=pa.string()) for i in range(0, len(rows), STREAM_BATCH)]
    nbytes = sum(len(r.encode("utf-8")) for r in rows)
    t = P.PEERS[tool](encoding, 1)
    t.load()
    # Each batch's result is dropped right away, as a job that writes it out does (kept, every
    # tool's outputs would pile up to ~30 MB and each batch would fault in fresh pages).
    t0 = time.perf_counter()
    for b in batches:
        t.encode_column(b)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b in batches:
        t.encode_column(b)
    later = time.perf_counter() - t0
    ref = P.PEERS["tiktoken"](encoding, 1)
    ref.load()
    exact = all(t.encode_column(b).to_pylist() == ref.encode_column(b).to_pylist() for b in batches)
    return {"tool": tool, "encoding": encoding, "corpus": "stream", "mb": nbytes / 1e6, "exact": exact,
            "first_mbps": nbytes / first / 1e6, "later_mbps": nbytes / later / 1e6}


def child(tool: str, encoding: str, corpus: str, repeats: int) -> dict:
    import pyarrow as pa

    import peers as P
    from bench import load_corpus

    if corpus == "stream":
        return child_stream(tool, encoding)
    c = load_corpus(corpus, 2.0, None)
    col = pa.array(c["rows"], type=pa.string())
    nbytes = sum(len(r.encode("utf-8")) for r in c["rows"])
    ref = P.PEERS["tiktoken"](encoding, 1)
    ref.load()
    want = ref.encode_column(col).to_pylist()
    t = P.PEERS[tool](encoding, 1)
    t.load()
    t0 = time.perf_counter()
    out = t.encode_column(col)
    first = time.perf_counter() - t0
    exact = out.to_pylist() == want
    del out
    later = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = t.encode_column(col)
        later.append(time.perf_counter() - t0)
        del out
    return {"tool": tool, "encoding": encoding, "corpus": corpus, "mb": nbytes / 1e6, "exact": exact,
            "first_mbps": nbytes / first / 1e6, "later_mbps": nbytes / statistics.median(later) / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tools", default="arrowtok,gigatoken,fastokens,toktok,tiktoken")
    ap.add_argument("--encodings", default="cl100k_base")
    ap.add_argument("--corpora", default="english,docs,multilingual")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._child:
        print(json.dumps(child(a._child[0], a._child[1], a._child[2], int(a._child[3]))))
        return
    env = dict(os.environ, RAYON_NUM_THREADS="1", RAYON_RS_NUM_THREADS="1", FASTOKENS_BPE_THREADS="1",
               ARROWTOK_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    rows = []
    for enc in a.encodings.split(","):
        for corpus in a.corpora.split(","):
            for tool in a.tools.split(","):
                r = subprocess.run([sys.executable, __file__, "--_child", tool, enc, corpus, str(a.repeats)],
                                   capture_output=True, text=True, env=env)
                if r.returncode != 0:
                    rows.append({"tool": tool, "encoding": enc, "corpus": corpus, "error": r.stderr.strip()[-300:]})
                else:
                    rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(rows[-1], file=sys.stderr, flush=True)
    print("| corpus | encoding | tool | first pass MB/s | later passes MB/s | later / first | exact |")
    print("|---|---|---|---:|---:|---:|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['corpus']} | {r['encoding']} | {r['tool']} | err | err | | {r['error'][:60]} |")
            continue
        print(f"| {r['corpus']} | {r['encoding']} | {r['tool']} | {r['first_mbps']:.1f} | {r['later_mbps']:.1f} | "
              f"{r['later_mbps'] / r['first_mbps']:.1f}x | {'yes' if r['exact'] else 'NO'} |")


if __name__ == "__main__":
    main()
