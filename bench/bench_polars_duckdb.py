"""Benchmark: arrowtok's Polars expressions and DuckDB functions against tiktoken used the usual ways.

    python bench/bench_polars_duckdb.py [--repeat N] [--rounds R] [--min-mb M]

One frame for everything: the `text` column of ../shared/corpora/sample_docs.jsonl (or, without it,
the repo's sample_data/text paragraphs), repeated until it holds --min-mb MB (or --repeat times).
Cases run interleaved (each round runs every case once, in a rotated order); the tables give medians,
MB/s of UTF-8 text, and speed relative to the tiktoken baseline of the same section. Every case's
output is checked against the others before timing. polars-tokenizer is used when it is installed
(`pip install polars-tokenizer`); when it is not, the table says so.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import duckdb
import polars as pl
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import arrowtok  # noqa: E402
import arrowtok.duckdb as atduck  # noqa: E402
from arrowtok.polars import tokenizer  # noqa: E402

SAMPLE_DOCS = ROOT.parent / "shared" / "corpora" / "sample_docs.jsonl"


def tiktoken_encoding(name: str):
    """tiktoken's own Encoding: from its cache if it has one, else built offline from arrowtok's files."""
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except Exception:
        from oracle import oracle  # tests/oracle.py: tiktoken built from the same vocabulary files

        return oracle(name)


def load_texts() -> tuple[list[str], str]:
    if SAMPLE_DOCS.is_file():
        rows = [json.loads(x)["text"] for x in SAMPLE_DOCS.read_text(encoding="utf-8").split("\n") if x.strip()]
        return rows, str(SAMPLE_DOCS.name)
    texts = []
    for p in sorted((ROOT / "sample_data" / "text").glob("*.txt")):
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        texts += ["".join(lines[i:i + 5]) for i in range(0, len(lines), 5)]
    return texts, "sample_data/text paragraphs"


def run_interleaved(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in cases}
    names = list(cases)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for k in order:
            t0 = time.perf_counter()
            cases[k]()
            times[k].append(time.perf_counter() - t0)
    return times


def table(title: str, times: dict[str, list[float]], mb: float, baseline: str, notes: dict[str, str]) -> str:
    base = statistics.median(times[baseline]) if baseline in times else None
    out = [f"### {title}", "", "| case | median s | MB/s | vs baseline |", "|---|---:|---:|---:|"]
    for k, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{base / med:.1f}x" if base else "-"
        out.append(f"| {k} | {med:.3f} | {mb / med:.1f} | {ratio} |")
    for k, why in notes.items():
        out.append(f"| {k} | n/a | n/a | {why} |")
    out.append("")
    out.append(f"baseline: {baseline}; {len(next(iter(times.values())))} interleaved rounds, medians")
    return "\n".join(out)


def median_ms(f: Callable[[], object], k: int = 7) -> float:
    ts = []
    for _ in range(k):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=0, help="repeat the corpus N times (default: until --min-mb)")
    ap.add_argument("--min-mb", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--encoding", default="cl100k_base")
    args = ap.parse_args()

    texts, source = load_texts()
    mb1 = sum(len(t.encode()) for t in texts) / 1e6
    reps = args.repeat or max(1, int(-(-args.min_mb // mb1)))
    texts = texts * reps
    df = pl.DataFrame({"text": texts}, schema={"text": pl.String}).rechunk()
    mb = mb1 * reps
    name = args.encoding
    at = tokenizer(name)
    enc = arrowtok.get_encoding(name)
    tt = tiktoken_encoding(name)
    threads = arrowtok.encoding.default_threads()
    print(f"# arrowtok Polars/DuckDB benchmark\n\ncorpus: {source} x{reps} = {len(texts)} rows, {mb:.1f} MB UTF-8; "
          f"encoding {name}; arrowtok threads {threads}; cpus {os.cpu_count()}; polars {pl.__version__}, "
          f"duckdb {duckdb.__version__}, pyarrow {pa.__version__}\n")

    # ---- Polars ------------------------------------------------------------------------------
    try:
        import polars_tokenizer as ptk  # type: ignore[import-not-found]
        pt_note = None
    except Exception as e:  # not installable / not installed: say so, do not drop it silently
        ptk, pt_note = None, f"polars-tokenizer not available ({type(e).__name__}: {e})"

    def tt_batch(s: pl.Series) -> pl.Series:
        return pl.Series(s.name, tt.encode_ordinary_batch(s.to_list()), dtype=pl.List(pl.Int32))

    ids_cases: dict[str, Callable[[], pl.DataFrame]] = {
        "tiktoken map_elements(encode_ordinary)": lambda: df.with_columns(
            pl.col("text").map_elements(tt.encode_ordinary, return_dtype=pl.List(pl.Int32)).alias("text_tokens")),
        "tiktoken map_batches(encode_ordinary_batch)": lambda: df.with_columns(
            pl.col("text").map_batches(tt_batch, return_dtype=pl.List(pl.Int32), is_elementwise=True).alias("text_tokens")),
        "arrowtok with_columns(tok(...))": lambda: df.with_columns(at(pl.col("text"))),
        "arrowtok lazy streaming tok(...)": lambda: df.lazy().with_columns(at(pl.col("text"))).collect(engine="streaming"),
    }
    count_cases: dict[str, Callable[[], pl.DataFrame]] = {
        "tiktoken map_elements(len(encode_ordinary))": lambda: df.with_columns(
            pl.col("text").map_elements(lambda s: len(tt.encode_ordinary(s)), return_dtype=pl.UInt32).alias("n")),
        "arrowtok with_columns(tok.count(...))": lambda: df.with_columns(at.count("text")),
    }
    if ptk is not None:
        count_cases["polars-tokenizer count(...)"] = lambda: df.with_columns(ptk.count("text", name).alias("n"))

    # correctness first
    ref_ids = ids_cases["arrowtok with_columns(tok(...))"]()["text_tokens"]
    for k, f in ids_cases.items():
        assert f()["text_tokens"].equals(ref_ids), k
    ref_n = ref_ids.list.len().cast(pl.UInt32)
    for k, f in count_cases.items():
        col = f().get_column("n" if "arrowtok" not in k else "text_n_tokens")
        assert col.cast(pl.UInt32).equals(ref_n.alias(col.name)), k

    polars_ids = run_interleaved(ids_cases, args.rounds)
    polars_counts = run_interleaved(count_cases, args.rounds)
    print(table("Polars: token ids (List(Int32))", polars_ids, mb, "tiktoken map_elements(encode_ordinary)", {}))
    print()
    print(table("Polars: token counts (UInt32)", polars_counts, mb, "tiktoken map_elements(len(encode_ordinary))",
                {"polars-tokenizer count(...)": pt_note} if pt_note else {}))
    print()

    # ---- DuckDB ------------------------------------------------------------------------------
    con = duckdb.connect()
    atduck.register(con, name)
    arrow_docs = df.to_arrow()
    con.execute("CREATE TABLE docs AS SELECT text FROM arrow_docs")

    def tt_count_arrow(col: pa.ChunkedArray) -> pa.Array:
        return pa.array([len(x) for x in tt.encode_ordinary_batch(col.to_pylist())], pa.int32())

    con.create_function("tt_count", lambda s: len(tt.encode_ordinary(s)), ["VARCHAR"], "INTEGER")
    con.create_function("tt_count_arrow", tt_count_arrow, ["VARCHAR"], "INTEGER", type="arrow")
    duck_cases = {
        "tiktoken Python UDF (row at a time)": "SELECT sum(tt_count(text)) FROM docs",
        "tiktoken Arrow UDF (encode_ordinary_batch)": "SELECT sum(tt_count_arrow(text)) FROM docs",
        "arrowtok count_tokens": "SELECT sum(count_tokens(text)) FROM docs",
        "arrowtok tokenize (sum of len)": "SELECT sum(len(tokenize(text))) FROM docs",
    }
    want_total = int(ref_n.sum())
    for k, q in duck_cases.items():
        got = con.execute(q).fetchone()[0]
        assert got == want_total, (k, got, want_total)
    duck = run_interleaved({k: (lambda q=q: con.execute(q).fetchone()) for k, q in duck_cases.items()}, args.rounds)
    print(table(f"DuckDB: sum over {len(texts)} rows", duck, mb, "tiktoken Python UDF (row at a time)", {}))
    print()

    # ---- conversion costs left around the Zig calls --------------------------------------------
    s = df["text"]
    view = pa.chunked_array(s)
    ids = enc.encode_arrow(view)
    ids_pl = pl.Series("t", ids)
    ids_back = pa.chunked_array(ids_pl)
    dec = enc.decode_arrow(ids_back)
    counts = enc.count_tokens_arrow(view)
    rows = [
        ("Polars String -> Arrow (PyCapsule, string_view)", median_ms(lambda: pa.chunked_array(s)), f"type {view.type}"),
        ("Polars String -> Arrow large_string (to_arrow(), for comparison)", median_ms(lambda: s.to_arrow()), "a copy"),
        ("Zig encode_arrow on the string_view column", median_ms(lambda: enc.encode_arrow(view), 3), "the work itself"),
        ("Arrow list<int32> -> Polars List(Int32)", median_ms(lambda: pl.Series("t", ids)), "Polars keeps int64 offsets: n+1 offsets converted, ids not copied"),
        ("Arrow uint32 -> Polars UInt32", median_ms(lambda: pl.Series("t", counts)), ""),
        ("Polars List(Int32) -> Arrow (PyCapsule)", median_ms(lambda: pa.chunked_array(ids_pl)), f"type {ids_back.type}"),
        ("Zig decode_arrow", median_ms(lambda: enc.decode_arrow(ids_back), 3), "the work itself"),
        ("Arrow large_string -> Polars String", median_ms(lambda: pl.Series("t", dec)), "views built over the buffer"),
        ("whole expression: with_columns(tok(...))", median_ms(lambda: df.with_columns(at(pl.col("text"))), 3), ""),
    ]
    print(f"### Conversion costs ({mb:.1f} MB, {len(texts)} rows; medians)\n")
    print("| step | ms | note |\n|---|---:|---|")
    for step, ms, note in rows:
        print(f"| {step} | {ms:.2f} | {note} |")


if __name__ == "__main__":
    main()
