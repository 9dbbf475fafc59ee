"""`arrowtok stats` / `arrowtok.pipeline.stats.corpus_stats` against a direct computation."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arrowtok.pipeline import tokenize_corpus
from arrowtok.pipeline.stats import corpus_stats
from oracle import oracle

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "arrowtok", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ, CI="1"), timeout=300)


@pytest.fixture(scope="module")
def docs() -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(SAMPLE.glob("docs-*.parquet"))])


def expected(texts, groups=None, name="cl100k_base", extra_tokens=0):
    """Direct computation: tiktoken counts, Python byte lengths, numpy percentiles."""
    ref = oracle(name)

    def metrics(ts):
        docs_ = [t for t in ts if t is not None]
        n = np.array([len(ref.encode_ordinary(t)) + extra_tokens for t in docs_], dtype=np.int64)
        b = sum(len(t.encode("utf-8")) for t in docs_)
        return {
            "documents": len(docs_), "null_rows": len(ts) - len(docs_), "bytes": b, "tokens": int(n.sum()),
            "bytes_per_token": b / n.sum() if n.sum() else None,
            "tokens_mean": float(n.mean()) if n.size else None,
            "tokens_p50": float(np.percentile(n, 50)) if n.size else None,
            "tokens_p90": float(np.percentile(n, 90)) if n.size else None,
            "tokens_p99": float(np.percentile(n, 99)) if n.size else None,
            "tokens_max": int(n.max()) if n.size else None,
        }

    total = metrics(texts)
    by = {}
    if groups is not None:
        for g in set(groups):
            by[g] = metrics([t for t, k in zip(texts, groups) if k == g])
    return total, by


def assert_close(got: dict, want: dict):
    for k, v in want.items():
        if isinstance(v, float):
            assert got[k] == pytest.approx(v, rel=1e-12), k
        else:
            assert got[k] == v, k


def test_stats_text_column_by_lang_cli(tmp_path, docs):
    out = tmp_path / "stats.json"
    r = cli("stats", SAMPLE, "--by", "lang", "--json", out, "--top", "5")
    assert r.returncode == 0, r.stderr
    assert "total" in r.stdout and "p99" in r.stdout and "more groups" in r.stdout
    data = json.loads(out.read_text())
    texts, langs = docs["text"].to_pylist(), docs["lang"].to_pylist()
    total, by = expected(texts, langs)
    assert_close(data["total"], total)
    assert {g["group"] for g in data["groups"]} == set(by)
    for g in data["groups"]:
        assert_close(g, by[g["group"]])
    toks = [g["tokens"] for g in data["groups"]]
    assert toks == sorted(toks, reverse=True)


def test_stats_on_job_output_tokens_column(tmp_path, docs):
    tokenize_corpus([SAMPLE], tmp_path / "out", keep=["lang"], append_eot=True, encoding="o200k_base")
    st = corpus_stats([tmp_path / "out"], tokens_column="tokens", by="lang")
    assert st.encoding == "o200k_base"  # from the file's metadata
    texts, langs = docs["text"].to_pylist(), docs["lang"].to_pylist()
    total, by = expected(texts, langs, name="o200k_base", extra_tokens=1)  # the appended eot is a token
    assert_close(st.total, total)  # ...but not bytes: bytes equal the source text's
    for g in st.groups:
        assert_close(g, by[g["group"]])
    r = cli("stats", tmp_path / "out", "--tokens-column", "tokens", "--encoding", "cl100k_base")
    assert r.returncode == 1 and "o200k_base" in r.stderr


def test_stats_nulls_empties_and_null_groups(tmp_path):
    texts = ["hello world", None, "", "a much longer document, with several words in it", None, "x"]
    groups = ["a", "a", None, "b", None, "b"]
    pq.write_table(pa.table({"text": texts, "g": groups}), tmp_path / "t.parquet")
    st = corpus_stats([tmp_path / "t.parquet"], by="g")
    total, _ = expected(texts)
    assert_close(st.total, total)
    assert st.total["null_rows"] == 2 and st.total["documents"] == 4
    rows = {g["group"]: g for g in st.groups}
    assert rows[None]["documents"] == 1 and rows[None]["null_rows"] == 1 and rows[None]["tokens"] == 0
    assert rows["a"]["documents"] == 1 and rows["a"]["null_rows"] == 1
    assert "(null)" in st.table()


def test_stats_jsonl_and_empty_corpus(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "one two three"}\n{"text": "four"}\n')
    st = corpus_stats([tmp_path / "a.jsonl"])
    assert_close(st.total, expected(["one two three", "four"])[0])
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "e.parquet")
    st = corpus_stats([tmp_path / "e.parquet"])
    assert st.total["documents"] == 0 and st.total["tokens_p50"] is None
    assert "total" in st.table()


def test_stats_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "hist.png"
    r = cli("stats", SAMPLE, "--by", "lang", "--plot", png)
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stats_bad_inputs(tmp_path):
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "a.parquet")
    r = cli("stats", tmp_path / "a.parquet")
    assert r.returncode == 1 and "a.parquet: no column 'text'" in r.stderr
    r = cli("stats", tmp_path / "a.parquet", "--tokens-column", "body")
    assert r.returncode == 1 and "expected list<int32>" in r.stderr
    pq.write_table(pa.table({"text": pa.array([b"ok", b"\xff"], pa.binary())}), tmp_path / "b.parquet")
    r = cli("stats", tmp_path / "b.parquet")
    assert r.returncode == 1 and "b.parquet: row 1" in r.stderr and "invalid UTF-8" in r.stderr
    r = cli("stats", tmp_path / "b.parquet", "--errors", "replace")
    assert r.returncode == 0, r.stderr
    r = cli("stats", tmp_path / "a.parquet", "--column", "body", "--tokens-column", "t")
    assert r.returncode == 2
