"""arrowtok.polars against real Polars: exact ids (tiktoken oracle), lazy and streaming plans,
group_by, nulls, layouts, naming, the namespaces, and error messages."""
from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import pyarrow as pa
import pytest

pl = pytest.importorskip("polars")

import arrowtok  # noqa: E402
import arrowtok.polars as ap  # noqa: E402
from arrowtok.polars import tok, tokenizer  # noqa: E402
from oracle import SHARED_CORPORA, SAMPLE_DATA, oracle  # noqa: E402

SAMPLE_DOCS = SHARED_CORPORA / "sample_docs.jsonl"
ENCODINGS = ["cl100k_base", "o200k_base"]


# ---- data ------------------------------------------------------------------------------------

def repo_texts() -> list[str]:
    """Paragraphs of the repo's own sample_data/text files (present in a clean clone)."""
    out: list[str] = []
    for p in sorted((SAMPLE_DATA / "text").glob("*.txt")):
        text = p.read_bytes().decode("utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        for i in range(0, len(lines), 7):
            out.append("".join(lines[i:i + 7]))
    return out


_FRAGMENTS = ["hello", " world", "\n\n", "  ", "\t", "123456789", " ünïcödé", "日本語の", "🙂", "👍🏽", "'s", "'LL",
              " <|endoftext|>", "ABC", "x" * 40, " ", "\r\n", "...", "Ωμέγα", "مرحبا", "   \n", "é", "e\u0301", "😀😀"]


def generated_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(0, 30))) for _ in range(n)]


def want_ids(name: str, texts: list[str | None]) -> list[list[int] | None]:
    ref = oracle(name)
    got = ref.encode_ordinary_batch([t for t in texts if t is not None])
    it = iter(got)
    return [None if t is None else next(it) for t in texts]


@pytest.fixture(scope="module")
def sample_docs() -> "pl.DataFrame":
    if not SAMPLE_DOCS.is_file():
        pytest.skip(f"{SAMPLE_DOCS} not present")
    rows = [json.loads(line) for line in SAMPLE_DOCS.read_text(encoding="utf-8").split("\n") if line.strip()]
    return pl.DataFrame({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]})


@pytest.fixture(scope="module")
def local_df() -> "pl.DataFrame":
    texts: list[str | None] = repo_texts() + generated_texts(3000, seed=1)
    texts[5] = None
    texts[17] = ""
    return pl.DataFrame({"id": list(range(len(texts))), "text": texts}, schema={"id": pl.Int64, "text": pl.String})


# ---- exactness --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ENCODINGS)
def test_sample_docs_exact(sample_docs, name):
    t = tokenizer(name)
    out = sample_docs.with_columns(t("text"), t.count("text"))
    assert out.schema["text_tokens"] == pl.List(pl.Int32)
    assert out.schema["text_n_tokens"] == pl.UInt32
    want = want_ids(name, sample_docs["text"].to_list())
    assert out["text_tokens"].to_list() == want
    assert out["text_n_tokens"].to_list() == [len(w) for w in want]
    back = out.select(t.decode("text_tokens"))["text_tokens_decoded"]
    assert back.to_list() == sample_docs["text"].to_list()


@pytest.mark.parametrize("name", ENCODINGS)
def test_repo_and_generated_texts_exact(local_df, name):
    t = tokenizer(name)
    assert len(repo_texts()) > 100, "sample_data/text is missing from the repository"
    out = local_df.with_columns(t("text"), t.count("text"), t.decode(t("text"), suffix="_back"))
    want = want_ids(name, local_df["text"].to_list())
    assert out["text_tokens"].to_list() == want
    assert out["text_n_tokens"].to_list() == [None if w is None else len(w) for w in want]
    assert out["text_tokens_back"].to_list() == local_df["text"].to_list()


def test_default_tok_is_cl100k_and_one_thread_matches(local_df):
    a = local_df.select(tok("text"))
    b = local_df.select(tokenizer("cl100k_base", threads=1)("text"))
    assert a.equals(b)
    assert a["text_tokens"].to_list() == want_ids("cl100k_base", local_df["text"].to_list())


# ---- lazy, streaming, group_by ---------------------------------------------------------------

def test_lazy_matches_eager(local_df):
    lf = local_df.lazy().with_columns(tok("text"), tok.count("text")).filter(pl.col("id") % 2 == 0)
    assert lf.collect_schema()["text_tokens"] == pl.List(pl.Int32)  # schema known without running
    eager = local_df.with_columns(tok("text"), tok.count("text")).filter(pl.col("id") % 2 == 0)
    assert lf.collect().equals(eager)


def _spy_batches(monkeypatch) -> list[int]:
    seen: list[int] = []
    orig = ap._Udf.__call__

    def spy(self, s):
        seen.append(len(s))
        return orig(self, s)

    monkeypatch.setattr(ap._Udf, "__call__", spy)
    return seen


def test_streaming_scan_parquet_stays_streaming(local_df, tmp_path, monkeypatch):
    src = tmp_path / "docs.parquet"
    big = pl.concat([local_df] * 4).with_row_index("row")
    big.write_parquet(src, row_group_size=1000)
    seen = _spy_batches(monkeypatch)
    out = (pl.scan_parquet(src).with_columns(tok("text"), tok.count("text"))
           .collect(engine="streaming").sort("row"))
    # The streaming engine hands the UDF morsels, not the whole column: it did not fall back to
    # materialising the input.
    assert len(seen) > 2 and max(seen) < big.height
    want = want_ids("cl100k_base", local_df["text"].to_list()) * 4
    assert out["text_tokens"].to_list() == want
    assert out["text_n_tokens"].to_list() == [None if w is None else len(w) for w in want]


def test_streaming_sink_parquet(local_df, tmp_path):
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    local_df.write_parquet(src, row_group_size=500)
    pl.scan_parquet(src).select("id", tok("text")).sink_parquet(dst)
    got = pl.read_parquet(dst).sort("id")
    assert got.schema["text_tokens"] == pl.List(pl.Int32)
    assert got["text_tokens"].to_list() == want_ids("cl100k_base", local_df["text"].to_list())


def test_group_by_agg(local_df):
    df = local_df.with_columns(g=pl.col("id") % 3)
    out = (df.group_by("g", maintain_order=True)
           .agg(tok("text"), tok.count("text").sum().alias("total"), pl.col("text"))
           .sort("g"))
    assert out.schema["text_tokens"] == pl.List(pl.List(pl.Int32))
    for row in out.iter_rows(named=True):
        want = want_ids("cl100k_base", row["text"])
        assert row["text_tokens"] == want
        assert row["total"] == sum(len(w) for w in want if w is not None)


# ---- nulls, empty, layouts ---------------------------------------------------------------------

def test_nulls_and_empty():
    df = pl.DataFrame({"text": [None, "", "hello world", None, ""]})
    out = df.with_columns(tok("text"), tok.count("text"))
    assert out["text_tokens"].to_list() == [None, [], [15339, 1917], None, []]
    assert out["text_n_tokens"].to_list() == [None, 0, 2, None, 0]
    back = out.select(tok.decode("text_tokens"))["text_tokens_decoded"]
    assert back.to_list() == [None, "", "hello world", None, ""]


def test_all_null_and_zero_rows():
    df = pl.DataFrame({"text": pl.Series([None, None], dtype=pl.String), "nul": [None, None]})
    out = df.select(tok("text"), tok("nul"), tok.count("nul"))
    assert out["text_tokens"].to_list() == [None, None]
    assert out["nul_tokens"].to_list() == [None, None]
    assert out.schema["nul_n_tokens"] == pl.UInt32
    empty = pl.DataFrame({"text": pl.Series([], dtype=pl.String)})
    out = empty.with_columns(tok("text"), tok.count("text"))
    assert out.height == 0 and out.schema["text_tokens"] == pl.List(pl.Int32)
    assert empty.lazy().select(tok("text")).collect(engine="streaming").height == 0


def test_string_view_and_large_string_inputs(local_df):
    s = local_df["text"]
    # Polars exports its String columns as string_view: that is what reaches Zig, in place.
    assert pa.chunked_array(s).type == pa.string_view()
    large = s.to_arrow()  # Polars' default compat level gives large_string (a copy)
    assert large.type == pa.large_string()
    enc = arrowtok.get_encoding("cl100k_base")
    via_polars = tok(s, suffix="")
    via_large = enc.encode_arrow(large)
    via_view = enc.encode_arrow(pa.chunked_array(s))
    assert via_polars.to_list() == via_large.to_pylist() == via_view.to_pylist()
    # A frame built from large_string / string Arrow data gives the same ids.
    for typ in (pa.large_string(), pa.string(), pa.string_view()):
        df = pl.from_arrow(pa.table({"text": pa.array(s.to_list(), typ)}))
        assert df.select(tok("text"))["text_tokens"].to_list() == via_large.to_pylist()


def test_multi_chunk_input_and_output(local_df):
    s = local_df["text"]
    chunked = pl.concat([s[:100], s[100:1000], s[1000:]], rechunk=False)
    assert chunked.n_chunks() == 3
    assert tok(chunked).to_list() == tok(s).to_list()
    # Zig may split one input into several output chunks (offsets past int32): Polars takes them.
    enc = arrowtok.get_encoding("cl100k_base")
    split = enc.encode_arrow(pa.chunked_array(s), _max_chunk_values=5000)
    assert split.num_chunks > 2
    assert pl.Series(split).to_list() == tok(s).to_list()


def test_categorical_enum_binary_inputs():
    vals = ["a b", "c", None, "a b", ""]
    cat = pl.Series("c", vals, dtype=pl.Categorical)
    enum = pl.Series("e", vals, dtype=pl.Enum(["c", "a b", "", "unused"]))
    big_enum = pl.Series("e", vals, dtype=pl.Enum(["c", "a b", ""] + [f"x{i}" for i in range(100)]))
    binary = pl.Series("b", [None if v is None else v.encode() for v in vals], dtype=pl.Binary)
    want = want_ids("cl100k_base", vals)
    for s in (cat, enum, big_enum, binary):
        assert tok(s).to_list() == want, s.dtype
        assert tok.count(s).to_list() == [None if w is None else len(w) for w in want]


def test_allowed_special_and_errors_replace():
    df = pl.DataFrame({"text": ["a <|endoftext|> b"], "b": [b"ok \x80 ok"]})
    assert df.select(tok("text"))["text_tokens"][0].to_list() == oracle("cl100k_base").encode_ordinary("a <|endoftext|> b")
    special = tokenizer("cl100k_base", allowed_special="all")
    assert 100257 in df.select(special("text"))["text_tokens"][0].to_list()
    repl = df.select(tokenizer(errors="replace")("b"))["b_tokens"][0].to_list()
    assert repl == oracle("cl100k_base").encode_ordinary("ok \ufffd ok")


# ---- naming ------------------------------------------------------------------------------------

def test_output_names_do_not_overwrite_the_input():
    df = pl.DataFrame({"text": ["hi"], "title": ["yo"]})
    out = df.with_columns(tok("text"), tok.count("text"), tok.decode(tok("text")))
    assert out.columns == ["text", "title", "text_tokens", "text_n_tokens", "text_tokens_decoded"]
    assert out["text"].to_list() == ["hi"]
    # several columns at once, each named after its input
    assert df.select(tok(pl.col("text", "title"))).columns == ["text_tokens", "title_tokens"]
    # suffix="" keeps the name (replaces the column in with_columns); a later alias wins
    assert df.with_columns(tok("text", suffix="")).schema["text"] == pl.List(pl.Int32)
    assert df.select(tok("text").alias("ids")).columns == ["ids"]
    assert df.select(pl.col("text").tok.count(suffix="_len")).columns == ["text_len"]
    assert tok(df["text"]).name == "text_tokens"


# ---- namespaces and factories ------------------------------------------------------------------

def test_expr_and_series_namespaces(local_df):
    o200k = tokenizer("o200k_base")
    out = local_df.select(
        pl.col("text").tok.encode("o200k_base"),
        pl.col("text").tok.count("o200k_base"),
        o200k("text").alias("ref"),
    )
    assert out["text_tokens"].to_list() == out["ref"].to_list() == want_ids("o200k_base", local_df["text"].to_list())
    assert out["text_n_tokens"].to_list() == o200k.count(local_df["text"]).to_list()
    back = out.select(pl.col("text_tokens").tok.decode("o200k_base"))["text_tokens_decoded"]
    assert back.to_list() == local_df["text"].to_list()
    s = local_df["text"]
    assert s.tok.encode().to_list() == tok(s).to_list()
    assert s.tok.count("o200k_base").name == "text_n_tokens"
    assert s.tok.encode().tok.decode().to_list() == s.to_list()
    # the typed spelling of the namespace
    typed = local_df.select(ap.TokExprNamespace(pl.col("text")).encode())
    assert typed.equals(local_df.select(tok("text")))


def test_encoding_object_and_repr_and_pickle():
    enc = arrowtok.get_encoding("o200k_base")
    t = tokenizer(enc)
    assert t.name == "o200k_base" and t.encoding is enc and "o200k_base" in repr(t)
    df = pl.DataFrame({"text": ["hello world"]})
    assert df.select(t("text"))["text_tokens"].to_list() == [oracle("o200k_base").encode_ordinary("hello world")]
    udf = ap._Udf("count", enc, None, frozenset(), "strict")
    back = pickle.loads(pickle.dumps(udf))
    assert back(df["text"]).to_list() == [2]


def test_decode_integer_kinds():
    ids = [[15339, 1917], None, []]
    for dtype in (pl.List(pl.Int32), pl.List(pl.Int64), pl.List(pl.UInt32), pl.List(pl.UInt16)):
        s = pl.Series("t", ids if dtype != pl.List(pl.UInt16) else [[1, 2], None, []], dtype=dtype)
        got = tok.decode(s).to_list()
        assert got[1:] == [None, ""]
    arr = pl.Series("t", [[15339, 1917]], dtype=pl.Array(pl.Int32, 2))
    assert tok.decode(arr).to_list() == ["hello world"]


# ---- errors ------------------------------------------------------------------------------------

def test_non_string_column_error_names_the_type():
    df = pl.DataFrame({"n": [1, 2], "l": [[1], [2]]})
    with pytest.raises(TypeError, match=r"column 'n' has dtype Int64; expected String"):
        df.select(tok("n"))
    with pytest.raises(TypeError, match=r"column 'n' has dtype Int64"):
        df.lazy().select(tok.count("n")).collect(engine="streaming")
    with pytest.raises(TypeError, match=r"column 'l' has dtype List\(Int64\)"):
        df.select(pl.col("l").tok.encode())
    with pytest.raises(TypeError, match=r"decode: column 'n' has dtype Int64; expected token ids as List\(Int32\)"):
        df.select(tok.decode("n"))
    with pytest.raises(TypeError, match="column name or a Polars expression"):
        tok(42)  # type: ignore[call-overload]


def test_invalid_input_errors():
    df = pl.DataFrame({"b": [b"fine", b"also fine", b"bad \xff byte"]})
    with pytest.raises(arrowtok.ArrowtokError, match=r"invalid UTF-8.*row 2 of the 3-row batch.*column 'b'") as ei:
        df.select(tok("b"))
    assert "b'bad \\xff byte'" in str(ei.value)
    with pytest.raises(arrowtok.ArrowtokError) as ei:
        tok(df["b"])  # eager on a Series: the exception reaches the caller as raised
    assert ei.value.row == 2 and ei.value.byte_offset == 4
    ids = pl.DataFrame({"t": [[15339], [1, 10**9]]}, schema={"t": pl.List(pl.Int64)})
    with pytest.raises(arrowtok.ArrowtokError, match="(unknown token id|out of range)"):
        ids.select(tok.decode("t"))
    with pytest.raises(ValueError, match="Unknown encoding 'nope'"):
        tokenizer("nope")
    with pytest.raises(ValueError, match="Unknown encoding"):
        pl.col("text").tok.encode("gpt2")
    with pytest.raises(ValueError, match="not special tokens"):
        tokenizer(allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="errors must be"):
        tokenizer(errors="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        tokenizer(threads=0)


def test_repo_sample_docs_parquet_streaming():
    files = sorted(SAMPLE_DATA.glob("docs-*.parquet"))
    if not files:
        pytest.skip("sample_data/docs-*.parquet not in this checkout")
    out = (pl.scan_parquet(files).with_columns(tok("text"), tok.count("text"))
           .collect(engine="streaming"))
    want = want_ids("cl100k_base", out["text"].to_list())
    assert out["text_tokens"].to_list() == want
    assert out["text_n_tokens"].to_list() == [len(w) for w in want]
