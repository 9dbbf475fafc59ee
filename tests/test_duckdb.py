"""arrowtok.duckdb against real DuckDB: SQL over parquet files, COPY ... TO parquet, NULLs, vector
boundaries, several connections and threads, and error messages."""
from __future__ import annotations

import json
import random
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

duckdb = pytest.importorskip("duckdb")

import arrowtok  # noqa: E402
import arrowtok.duckdb as ad  # noqa: E402
from oracle import SHARED_CORPORA, SAMPLE_DATA, oracle  # noqa: E402

SAMPLE_DOCS = SHARED_CORPORA / "sample_docs.jsonl"
ENCODINGS = ["cl100k_base", "o200k_base"]


# ---- data ------------------------------------------------------------------------------------

def repo_texts() -> list[str]:
    out: list[str] = []
    for p in sorted((SAMPLE_DATA / "text").glob("*.txt")):
        lines = p.read_bytes().decode("utf-8", errors="replace").splitlines(keepends=True)
        out += ["".join(lines[i:i + 5]) for i in range(0, len(lines), 5)]
    return out


_FRAGMENTS = ["hello", " world", "\n\n", "  ", "\t", "2024", " ünïcödé", "日本語の", "🙂", "👍🏽", "'s", " <|endoftext|>",
              "x" * 30, " ", "\r\n", "Ωμέγα", "مرحبا", "e\u0301"]


def generated_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(0, 20))) for _ in range(n)]


def want_ids(name: str, texts: list) -> list:
    got = iter(oracle(name).encode_ordinary_batch([t for t in texts if t is not None]))
    return [None if t is None else next(got) for t in texts]


def write_parquet_files(dirpath, texts: list, n_files: int = 3, row_group_size: int = 1000) -> None:
    """texts split over n_files parquet files with several row groups each; ids are row numbers."""
    dirpath.mkdir(parents=True, exist_ok=True)
    per = (len(texts) + n_files - 1) // n_files
    for f in range(n_files):
        lo, hi = f * per, min(len(texts), (f + 1) * per)
        table = pa.table({"id": pa.array(range(lo, hi), pa.int64()), "text": pa.array(texts[lo:hi], pa.string())})
        pq.write_table(table, dirpath / f"part-{f}.parquet", row_group_size=row_group_size)


@pytest.fixture(scope="module")
def local_texts() -> list:
    texts: list = repo_texts() + generated_texts(6000, seed=2)
    for i in range(0, len(texts), 997):  # NULLs and empties across vector boundaries
        texts[i] = None
    texts[2047] = ""
    texts[2048] = None
    return texts


@pytest.fixture(scope="module")
def sample_texts() -> list:
    if not SAMPLE_DOCS.is_file():
        pytest.skip(f"{SAMPLE_DOCS} not present")
    return [json.loads(line)["text"] for line in SAMPLE_DOCS.read_text(encoding="utf-8").split("\n") if line.strip()]


@pytest.fixture
def con():
    c = duckdb.connect()
    ad.register(c)
    yield c
    c.close()


# ---- exactness over parquet ---------------------------------------------------------------------

def _check_sql_over_parquet(con, tmp_path, texts, name, prefix=""):
    write_parquet_files(tmp_path / "corpus", texts)
    glob = str(tmp_path / "corpus" / "*.parquet")
    rows = con.execute(
        f"SELECT id, {prefix}tokenize(text), {prefix}count_tokens(text), {prefix}detokenize({prefix}tokenize(text)) "
        f"FROM read_parquet('{glob}') ORDER BY id").fetchall()
    want = want_ids(name, texts)
    assert [r[0] for r in rows] == list(range(len(texts)))
    assert [r[1] for r in rows] == want
    assert [r[2] for r in rows] == [None if w is None else len(w) for w in want]
    assert [r[3] for r in rows] == texts
    total = con.execute(f"SELECT sum({prefix}count_tokens(text)) FROM read_parquet('{glob}')").fetchone()[0]
    assert total == sum(len(w) for w in want if w is not None)


@pytest.mark.parametrize("name", ENCODINGS)
def test_sample_docs_sql_over_parquet(sample_texts, tmp_path, name):
    c = duckdb.connect()
    ad.register(c, name, prefix="x_")
    _check_sql_over_parquet(c, tmp_path, sample_texts, name, prefix="x_")


@pytest.mark.parametrize("name", ENCODINGS)
def test_repo_and_generated_texts_sql_over_parquet(local_texts, tmp_path, name):
    c = duckdb.connect()
    ad.register(c, name)
    assert len(repo_texts()) > 100, "sample_data/text is missing from the repository"
    _check_sql_over_parquet(c, tmp_path, local_texts, name)


def test_copy_to_parquet(con, local_texts, tmp_path):
    write_parquet_files(tmp_path / "corpus", local_texts)
    out = tmp_path / "out.parquet"
    con.execute(f"COPY (SELECT id, tokenize(text) AS tokens, count_tokens(text) AS n FROM "
                f"read_parquet('{tmp_path / 'corpus' / '*.parquet'}') ORDER BY id) TO '{out}' (FORMAT parquet)")
    table = pq.read_table(out)
    assert table.schema.field("tokens").type == pa.list_(pa.int32())
    assert table.schema.field("n").type == pa.int32()
    want = want_ids("cl100k_base", local_texts)
    assert table.column("tokens").to_pylist() == want
    assert table.column("n").to_pylist() == [None if w is None else len(w) for w in want]


# ---- NULLs, empties, vector boundaries, threads ------------------------------------------------

def test_null_in_null_out(con):
    rows = con.execute("SELECT tokenize(x), count_tokens(x), detokenize(tokenize(x)) FROM "
                       "(VALUES ('hello world'), (NULL), (''), (NULL)) t(x)").fetchall()
    assert rows == [([15339, 1917], 2, "hello world"), (None, None, None), ([], 0, ""), (None, None, None)]
    assert con.execute("SELECT tokenize(NULL), count_tokens(NULL), detokenize(NULL), detokenize([])").fetchone() \
        == (None, None, None, "")
    with pytest.raises(duckdb.Error, match="must not contain null ids"):
        con.execute("SELECT detokenize([15339, NULL]::INTEGER[])").fetchall()


def test_many_vectors_in_order(con):
    n = 10_000  # five DuckDB vectors and more
    rows = con.execute(
        "SELECT i, tokenize(CASE WHEN i % 7 = 3 THEN NULL ELSE 'row ' || i::VARCHAR || repeat(' ab', i % 5) END) "
        f"FROM range({n}) t(i) ORDER BY i").fetchall()
    ref = oracle("cl100k_base")
    for i, ids in rows:
        assert ids == (None if i % 7 == 3 else ref.encode_ordinary(f"row {i}" + " ab" * (i % 5)))


def test_parallel_duckdb_threads(local_texts, tmp_path):
    c = duckdb.connect(config={"threads": 4})
    ad.register(c, threads=2)
    write_parquet_files(tmp_path / "corpus", local_texts * 3, n_files=6, row_group_size=700)
    got = c.execute(f"SELECT id, count_tokens(text) FROM read_parquet('{tmp_path / 'corpus' / '*.parquet'}') "
                    "ORDER BY id").fetchall()
    want = [None if w is None else len(w) for w in want_ids("cl100k_base", local_texts)] * 3
    assert [r[1] for r in got] == want


# ---- several connections ----------------------------------------------------------------------

def test_several_connections():
    a, b, plain = duckdb.connect(), duckdb.connect(), duckdb.connect()
    ad.register(a)
    ad.register(b, "o200k_base")
    text = "hello world, naïve café"
    assert a.execute("SELECT tokenize(?)", [text]).fetchone()[0] == oracle("cl100k_base").encode_ordinary(text)
    assert b.execute("SELECT tokenize(?)", [text]).fetchone()[0] == oracle("o200k_base").encode_ordinary(text)
    with pytest.raises(duckdb.CatalogException):
        plain.execute("SELECT tokenize('x')")
    # a cursor is a connection to the same database and sees the functions
    assert a.cursor().execute("SELECT count_tokens('a b c')").fetchone()[0] == 3
    # both encodings side by side on one connection
    ad.register(a, "o200k_base", prefix="o200k_")
    assert a.execute("SELECT o200k_tokenize(?), tokenize(?)", [text, text]).fetchone() == (
        oracle("o200k_base").encode_ordinary(text), oracle("cl100k_base").encode_ordinary(text))


def test_connections_used_from_threads(local_texts):
    texts = [t for t in local_texts if t is not None][:3000]
    want = [len(w) for w in want_ids("cl100k_base", texts)]
    table = pa.table({"i": pa.array(range(len(texts))), "text": pa.array(texts)})
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            c = ad.register(duckdb.connect())
            c.register("docs", table)
            results[k] = [r[0] for r in c.execute("SELECT count_tokens(text) FROM docs ORDER BY i").fetchall()]
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(results[k] == want for k in range(4))


def test_default_connection_and_replace_and_unregister():
    c = duckdb.default_connection()
    ad.register(prefix="dflt_", replace=True)
    assert duckdb.sql("SELECT dflt_count_tokens('hello world')").fetchall() == [(2,)]
    ad.unregister(prefix="dflt_")
    with pytest.raises(duckdb.CatalogException):
        c.execute("SELECT dflt_count_tokens('x')")


# ---- errors ------------------------------------------------------------------------------------

def test_errors(con):
    with pytest.raises(ValueError, match=r"already exist on this connection; pass replace=True"):
        ad.register(con)
    ad.register(con, "o200k_base", replace=True)
    assert con.execute("SELECT tokenize('hello world')").fetchone()[0] == oracle("o200k_base").encode_ordinary("hello world")
    with pytest.raises(duckdb.BinderException, match=r"tokenize\(VARCHAR\)"):
        con.execute("SELECT tokenize(42)")
    with pytest.raises(duckdb.BinderException, match=r"detokenize\(INTEGER\[\]\)"):
        con.execute("SELECT detokenize(x) FROM (VALUES ('abc')) t(x)")
    with pytest.raises(duckdb.Error, match=r"detokenize: unknown token id 999999999 at position 1; value: \[1, 999999999\]"):
        con.execute("SELECT detokenize(x) FROM (VALUES ([15339]), ([1, 999999999])) t(x)").fetchall()
    with pytest.raises(duckdb.Error, match=r"unknown token id -5 at position 0; value: \[-5\]"):
        con.execute("SELECT detokenize([-5])").fetchall()
    with pytest.raises(ValueError, match="Unknown encoding 'gpt2'"):
        ad.register(duckdb.connect(), "gpt2")
    with pytest.raises(ValueError, match="prefix must be"):
        ad.register(duckdb.connect(), prefix="bad prefix; DROP")
    with pytest.raises(TypeError, match="encoding must be"):
        ad.register(duckdb.connect(), 42)  # type: ignore[arg-type]


def test_encoding_object(tmp_path):
    enc = arrowtok.get_encoding("o200k_base")
    c = ad.register(duckdb.connect(), enc, prefix="e_")
    assert c.execute("SELECT e_count_tokens('hello world')").fetchone()[0] == 2


def test_repo_sample_docs_parquet(con):
    files = sorted(SAMPLE_DATA.glob("docs-*.parquet"))
    if not files:
        pytest.skip("sample_data/docs-*.parquet not in this checkout")
    glob = str(SAMPLE_DATA / "docs-*.parquet")
    rows = con.execute(f"SELECT text, tokenize(text) FROM read_parquet('{glob}')").fetchall()
    assert [r[1] for r in rows] == want_ids("cl100k_base", [r[0] for r in rows])
    total = con.execute(f"SELECT sum(count_tokens(text)) FROM read_parquet('{glob}')").fetchone()[0]
    assert total == sum(len(r[1]) for r in rows)
