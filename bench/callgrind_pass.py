"""Instructions and mispredicted branches of one steady-state `encode_arrow` pass, by function.

callgrind (valgrind, `--branch-sim=yes`) runs the same column `--calls` and `--calls + 2` times in
two processes, collecting inside the encoder only (`--toggle-collect=encode.encodeOrdinary*`); the
difference of the two profiles, halved, is what one pass costs once the piece tables hold the
column (the first pass's merges drop out). Figures are printed per pass and per piece (pieces
counted with tiktoken's regex), each function with its own cost (exclusive; code inlined into it
counts as its own).

valgrind does not run AVX-512 code: build an x86-64-v3 library first and pass it with --lib, e.g.

    python -m ziglang build-lib zig/root.zig -dynamic -OReleaseFast -lc -target x86_64-linux-gnu.2.17 \\
        -mcpu x86_64_v3 --name v3 -femit-bin=/tmp/v3.so
    python bench/callgrind_pass.py --lib /tmp/v3.so --corpus lines --encoding o200k_base

Each valgrind run takes about a minute for the 200k lines (most of it loading the vocabulary).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import sys
sys.path.insert(0, {bench!r})
import pyarrow as pa
import arrowtok
from bench import load_corpus
rows = load_corpus({corpus!r}, {max_mb!r}, None)["rows"]
col = pa.array(rows)
enc = arrowtok.get_encoding({encoding!r})
for _ in range({calls}):
    enc.encode_arrow(col, threads=1)
"""

LINE = re.compile(r"\s*([\d,]+) \([^)]*\)\s+([\d,]+|\.)\s*(?:\([^)]*\))?\s+(\S.*)$")


def run(lib: str, a, calls: int, out: Path) -> None:
    code = CHILD.format(bench=str(HERE), corpus=a.corpus, max_mb=a.max_mb or None,
                        encoding=a.encoding, calls=calls)
    env = dict(os.environ, ARROWTOK_LIB=lib, OPENBLAS_NUM_THREADS="1")
    cmd = ["valgrind", "--tool=callgrind", "--branch-sim=yes", "--dump-instr=no",
           "--toggle-collect=encode.encodeOrdinary*", f"--callgrind-out-file={out}",
           sys.executable, "-c", code]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0 or not out.exists():
        sys.exit(f"valgrind failed ({r.returncode}):\n{r.stderr[-3000:]}")


def functions(path: Path) -> dict[str, tuple[int, int]]:
    """{function: (instructions, mispredicted conditional branches)}, exclusive, from
    callgrind_annotate; a function's lines from every source file (inlined code) add up."""
    r = subprocess.run(["callgrind_annotate", "--show=Ir,Bcm", "--inclusive=no", "--auto=no", str(path)],
                       capture_output=True, text=True, check=True)
    out: dict[str, tuple[int, int]] = {}
    table = False
    for line in r.stdout.splitlines():
        if "file:function" in line:
            table = True
            continue
        m = LINE.match(line) if table else None
        if m and "PROGRAM TOTALS" not in line:
            bcm = 0 if m.group(2) == "." else int(m.group(2).replace(",", ""))
            name = re.sub(r"\s*\[[^\]]*\]$", "", m.group(3)).strip().split(":", 1)[-1]
            ir, b = out.get(name, (0, 0))
            out[name] = (ir + int(m.group(1).replace(",", "")), b + bcm)
    return out


def pieces(corpus: str, max_mb, encoding: str) -> int:
    """Pieces of the corpus's rows under the encoding's regex (as tiktoken splits them)."""
    import regex

    sys.path.insert(0, str(HERE))
    from bench import load_corpus
    from peers import PATTERNS

    pat = regex.compile(PATTERNS[encoding])
    return sum(len(pat.findall(r)) for r in load_corpus(corpus, max_mb, None)["rows"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True, help="an x86-64-v3 (or older) build of the library")
    ap.add_argument("--corpus", default="lines", help="a corpus name of bench.py")
    ap.add_argument("--encoding", default="o200k_base")
    ap.add_argument("--max-mb", type=float, default=2.0, help="as bench.py (0 = whole files)")
    ap.add_argument("--calls", type=int, default=4, help="passes in the shorter run (the other runs two more)")
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    for tool in ("valgrind", "callgrind_annotate"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found")
    with tempfile.TemporaryDirectory() as d:
        short, long_ = Path(d) / "a.out", Path(d) / "b.out"
        run(a.lib, a, a.calls, short)
        run(a.lib, a, a.calls + 2, long_)
        n_pieces = pieces(a.corpus, a.max_mb or None, a.encoding)
        print(f"{a.corpus}, {a.encoding}, one steady pass ({n_pieces:,} pieces), {a.lib}")
        s, l = functions(short), functions(long_)
        rows = []
        for k, (ir, b) in l.items():
            ir0, b0 = s.get(k, (0, 0))
            rows.append(((ir - ir0) / 2, (b - b0) / 2, k))
        rows.sort(reverse=True)
        ir_t = sum(r[0] for r in rows)
        b_t = sum(r[1] for r in rows)
        print(f"total: {ir_t / 1e6:.1f}M instructions ({ir_t / n_pieces:.0f} a piece), "
              f"{b_t / 1e6:.2f}M mispredicted branches ({b_t / n_pieces:.2f} a piece)")
        print("\nexclusive: instructions a pass (a piece), mispredictions a pass (a piece)")
        for ir, b, k in rows[:a.top]:
            if ir > 0:
                print(f"  {ir / 1e6:8.1f}M ({ir / n_pieces:6.1f})  {b / 1e3:7.0f}k ({b / n_pieces:.3f})  {k}")


if __name__ == "__main__":
    main()
