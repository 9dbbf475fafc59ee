"""arrowtok vs Hugging Face tokenizers vs gigatoken on one tokenizer.json, same file, same column.

    python bench/bench_hf.py [--family llama3,gpt2,...] [--tokenizer PATH ...] [--file F] [--threads T]
                             [--repeats R] [--rows-per-doc N] [--json OUT]

Families are generated from the shipped vocabularies by tools/make_hf_tokenizers.py (cached in
--cache-dir); --tokenizer adds any tokenizer.json (or .json.xz) path. The input is FILE's lines
grouped N at a time into rows (default 20 lines a row), as a pyarrow large_string column.

What each tool does per run (all end to end from the column to token ids; ids checked equal once):
  arrowtok         enc.encode_arrow(col, allowed_special="all") -> pyarrow list<int32> (Zig threads)
  arrowtok+pylist  the same, then .to_pylist() (Python lists, like the next three)
  hf-tokenizers    col.to_pylist() -> Tokenizer.encode_batch(add_special_tokens=False) -> [e.ids]
                   (rayon, TOKENIZERS_PARALLELISM / RAYON_NUM_THREADS = T)
  gigatoken        col.to_pylist() -> Tokenizer(path).encode_batch(parallel=T>1) -> awkward array
  gigatoken-list   col.to_pylist() -> Tokenizer(path).encode_batch_list(parallel=T>1) -> Python lists
Runs are interleaved (tool A, B, C, A, B, C, ...) and the median of the repeats is reported, as
MB/s of UTF-8 input and as a ratio to hf-tokenizers.
"""
from __future__ import annotations

import argparse
import json
import lzma
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="llama3,o200k,qwen2,gpt2", help="generated families (comma list; '' = none)")
    ap.add_argument("--tokenizer", action="append", default=[], help="a tokenizer.json path (repeatable)")
    ap.add_argument("--real", action="store_true", help="also the real files in tests/data/hf")
    shared = REPO.parent / "shared/corpora/en_gutenberg_moby_dick.txt"
    ap.add_argument("--file", default=str(shared if shared.is_file() else REPO / "sample_data/text/en_gutenberg_alice.txt"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rows-per-doc", type=int, default=20)
    ap.add_argument("--cache-dir", default=os.environ.get("ARROWTOK_HF_DIR", str(Path.home() / ".cache/arrowtok-hf")))
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    T = a.threads
    os.environ["RAYON_NUM_THREADS"] = str(T)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if T > 1 else "false"

    import pyarrow as pa
    import tokenizers

    import arrowtok
    import arrowtok.hf as hf

    sys.path.insert(0, str(REPO / "tools"))
    import make_hf_tokenizers as mk

    paths: dict[str, Path] = {}
    fams = [f for f in a.family.split(",") if f]
    if fams:
        paths.update(mk.write(Path(a.cache_dir), fams))
    if a.real:
        for p in sorted((REPO / "tests/data/hf").glob("*.json.xz")):
            out = Path(a.cache_dir) / p.name.split(".")[0] / "tokenizer.json"
            if not out.is_file():
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(lzma.decompress(p.read_bytes()))
            paths[p.name.split(".")[0]] = out
    for t in a.tokenizer:
        paths[Path(t).parent.name or Path(t).stem] = Path(t)

    lines = Path(a.file).read_text(encoding="utf-8").splitlines(keepends=True)
    rows = ["".join(lines[i:i + a.rows_per_doc]) for i in range(0, len(lines), a.rows_per_doc)]
    col = pa.array(rows, pa.large_string())
    nbytes = sum(len(r.encode()) for r in rows)
    print(f"file {a.file}: {nbytes / 1e6:.2f} MB, {len(rows)} rows; threads {T}; repeats {a.repeats}; "
          f"arrowtok {arrowtok.__version__} ({arrowtok._native.CPU}), tokenizers {tokenizers.__version__}", flush=True)
    results = []
    for name, path in paths.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hf.SlowPathWarning)
            enc = arrowtok.Encoding.from_tokenizer_json(path)
        htok = tokenizers.Tokenizer.from_file(str(path))
        # (timed call, its output -> list of id lists for the one-off equality check)
        tools = {
            "arrowtok": (lambda: enc.encode_arrow(col, threads=T, allowed_special="all"), lambda r: r.to_pylist()),
            "arrowtok+pylist": (lambda: enc.encode_arrow(col, threads=T, allowed_special="all").to_pylist(), list),
            "hf-tokenizers": (lambda: [e.ids for e in htok.encode_batch(col.to_pylist(), add_special_tokens=False)], list),
        }
        try:
            import gigatoken as gt

            g = gt.Tokenizer(str(path))
            tools["gigatoken"] = (lambda: g.encode_batch(col.to_pylist(), parallel=T > 1), lambda r: r.to_list())
            tools["gigatoken-list"] = (lambda: g.encode_batch_list(col.to_pylist(), parallel=T > 1), list)
        except Exception as e:  # noqa: BLE001 - report why the peer is missing
            print(f"  gigatoken: not loaded ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
        ref = None
        same = {}
        for tname, (fn, conv) in tools.items():
            try:
                out = [list(x) for x in conv(fn())]
            except Exception as e:  # noqa: BLE001
                print(f"  {tname}: failed ({type(e).__name__}: {str(e)[:120]})")
                same[tname] = None
                continue
            if ref is None:
                ref = out
            same[tname] = out == ref
        tools = {k: v for k, v in tools.items() if same.get(k) is not None}
        times: dict[str, list[float]] = {k: [] for k in tools}
        for _ in range(a.repeats):
            for tname, (fn, _conv) in tools.items():
                t0 = time.perf_counter()
                fn()
                times[tname].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med.get("hf-tokenizers")
        path_kind = f"scanner {enc.pattern}" if enc.fast_path else "slow path"
        print(f"{name} ({path_kind}):")
        for tname, m in med.items():
            ratio = f"{base / m:5.2f}x hf" if base else ""
            print(f"  {tname:14s} {nbytes / m / 1e6:8.1f} MB/s  median {m * 1e3:8.1f} ms  {ratio}  "
                  f"ids equal to arrowtok: {same[tname]}", flush=True)
            results.append({"tokenizer": name, "path": path_kind, "tool": tname, "median_s": m,
                            "mb_s": nbytes / m / 1e6, "vs_hf": (base / m) if base else None, "equal": same[tname],
                            "threads": T, "file": a.file, "bytes": nbytes})
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
