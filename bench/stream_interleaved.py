"""arrowtok and peers over the corpus stream, batch by batch in one process.

The stream is `bench_cold.py --corpora stream`'s corpus job (every corpus paragraph plus the 20k
documents, ~33 MB, shuffled, in 4,000-row batches). `bench_cold.py` times each tool's first pass in
a fresh process of its own, one tool after the other, so a busy neighbour can favour one of them;
here every tool is loaded in this process and they take turns on each batch (the order alternating
batch by batch), for `--passes` passes: pass 0 is every tool's first pass under the same
neighbours, the later ones run from what each tool keeps. The tools share this process's caches,
so each slows the others a little: read the ratios. Ids are checked against tiktoken on every
tenth batch of the first pass.

    python bench/stream_interleaved.py --encoding cl100k_base --passes 3
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoding", default="cl100k_base")
    ap.add_argument("--tools", default="arrowtok,gigatoken", help="comma list of bench.py tool names")
    ap.add_argument("--passes", type=int, default=3)
    a = ap.parse_args()
    os.environ.setdefault("RAYON_NUM_THREADS", "1")

    import pyarrow as pa

    from bench_cold import STREAM_BATCH, stream_rows
    from peers import PEERS

    rows = stream_rows()
    batches = [pa.array(rows[i:i + STREAM_BATCH], type=pa.string()) for i in range(0, len(rows), STREAM_BATCH)]
    nbytes = sum(len(r.encode("utf-8")) for r in rows)
    names = a.tools.split(",")
    tools = {}
    for name in names:
        peer = PEERS[name](a.encoding, 1)
        peer.load()
        tools[name] = peer
    ref = PEERS["tiktoken"](a.encoding, 1)
    ref.load()
    print(f"stream {a.encoding}: {nbytes / 1e6:.1f} MB, {len(batches)} batches of {STREAM_BATCH} rows, 1 thread")
    for p in range(a.passes):
        took = {n: 0.0 for n in names}
        for k, b in enumerate(batches):
            order = names if (k + p) % 2 == 0 else names[::-1]
            outs = {}
            for n in order:
                t0 = time.perf_counter()
                outs[n] = tools[n].encode_column(b)
                took[n] += time.perf_counter() - t0
            if p == 0 and k % 10 == 0:
                want = ref.encode_column(b).to_pylist()
                for n, out in outs.items():
                    if out.to_pylist() != want:
                        sys.exit(f"batch {k}: {n} differs from tiktoken")
        base = took[names[0]]
        label = "first pass" if p == 0 else f"pass {p}"
        print(f"  {label:10s} " + "  ".join(
            f"{n} {nbytes / took[n] / 1e6:6.1f} MB/s" + ("" if n == names[0] else f" ({base / took[n]:.2f}x {names[0]})")
            for n in names))


if __name__ == "__main__":
    main()
