"""Tokenize a corpus into training token files and sample a batch the nanoGPT way.

    python pipelines/pretrain_bin.py [INPUT ...] [--output out_bin/] [--block 256] [--batch 4]

Writes `<stem>.bin` / `<stem>.idx` per input with an end-of-text token after every document
(`arrowtok tokenize --format bin --append-eot`), then memory-maps one `.bin` and draws `--batch`
random windows of `--block` tokens (x) with their next-token targets (y), as nanoGPT's `get_batch` does.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import arrowtok
from arrowtok.pipeline import tokenize_corpus

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", nargs="*", default=[str(ROOT / "sample_data")])
    ap.add_argument("--output", default="out_bin")
    ap.add_argument("--encoding", default="cl100k_base")
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    a = ap.parse_args()
    res = tokenize_corpus(a.inputs, a.output, encoding=a.encoding, format="bin", append_eot=True)
    print(res.summary())
    enc = arrowtok.get_encoding(a.encoding)
    dtype = np.uint16 if enc.n_vocab <= 65536 else np.uint32
    first = Path(a.output) / sorted(n for n in res.outputs if n.endswith(".bin"))[0]
    data = np.memmap(first, dtype=dtype, mode="r")
    rng = np.random.default_rng(0)
    ix = rng.integers(0, len(data) - a.block - 1, size=a.batch)
    x = np.stack([data[i:i + a.block].astype(np.int64) for i in ix])
    y = np.stack([data[i + 1:i + 1 + a.block].astype(np.int64) for i in ix])
    print(f"{first}: {len(data):,} tokens; batch x{tuple(x.shape)} y{tuple(y.shape)}")
    print("x[0] starts:", repr(enc.decode(x[0, :24].tolist())))


if __name__ == "__main__":
    main()
