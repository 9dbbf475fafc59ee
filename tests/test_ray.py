"""arrowtok on Ray Data (issue 6): a local 2-CPU Ray cluster, outputs compared with the local job's.

Needs Ray Data (`pip install "arrowtok[ray]"`); the module is skipped without it."""
from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'arrowtok[ray]' to run the Ray tests")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'arrowtok[ray]'")

import arrowtok  # noqa: E402
import arrowtok.ray as ar  # noqa: E402
from arrowtok.cli import build_parser  # noqa: E402
from arrowtok.pipeline import JobError, tokenize_corpus  # noqa: E402

TEXTS = ["Hello, world!", None, "", "naïve café — 東京 🚀\n\n  tabs\tand  spaces", "<|endoftext|> is text here",
         "x" * 5000, None, "It's 2024; we're 'testing' contractions."]


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield
    ray.shutdown()


def run_with_timeout(fn, timeout=150):
    """Run fn in a thread; fail (not hang) if it does not finish within `timeout` seconds."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"the Ray job did not finish within {timeout} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def make_corpus(root: Path) -> Path:
    """Two inputs: a parquet file (nulls, empty, specials, several row groups) and a gzipped JSON-lines
    file in a sub-folder (so output names keep the sub-folder)."""
    src = root / "in"
    (src / "sub").mkdir(parents=True)
    n = 3000
    texts = [TEXTS[i % len(TEXTS)] for i in range(n)]
    texts = [f"document {i}: {t * 2}" if t is not None and i % 7 == 0 else t for i, t in enumerate(texts)]
    tbl = pa.table({"id": pa.array(range(n), pa.int64()), "lang": ["en", "fr", "ja"] * (n // 3), "text": texts})
    pq.write_table(tbl, src / "a.parquet", row_group_size=700)
    with gzip.open(src / "sub" / "b.jsonl.gz", "wt", encoding="utf-8") as f:
        for i in range(500):
            f.write(json.dumps({"id": 10_000 + i, "lang": "xx", "text": TEXTS[i % len(TEXTS)]}) + "\n")
    return src


def read_outputs(d: Path) -> dict[str, pa.Table]:
    return {str(p.relative_to(d)): pq.read_table(p) for p in sorted(d.rglob("*.parquet"))}


def test_cli_ray_job_equals_local_job(cluster, tmp_path):
    src = make_corpus(tmp_path)
    local = tokenize_corpus([src], tmp_path / "local", keep=["id", "lang"], append_eot=True, progress=False)
    args = build_parser().parse_args(["tokenize", str(src), "--output", str(tmp_path / "ray"), "--keep", "id,lang",
                                      "--append-eot", "--no-progress"])
    args.address = None  # what `--address` will set: None joins this process's cluster
    assert run_with_timeout(lambda: ar.run_cli_ray(args)) == 0

    lo, ro = read_outputs(tmp_path / "local"), read_outputs(tmp_path / "ray")
    assert sorted(ro) == sorted(lo) == ["a.parquet", "sub/b.parquet"]
    for name in lo:
        assert ro[name].schema.equals(lo[name].schema, check_metadata=True), name
        assert ro[name].num_rows == lo[name].num_rows, name
        # Same rows with the same ids; Ray Data does not guarantee row order within a file (a
        # rotated order was seen once in a few runs, despite preserve_order), so compare by id.
        r_sorted, l_sorted = ro[name].sort_by("id"), lo[name].sort_by("id")
        for col in lo[name].column_names:
            assert r_sorted.column(col).equals(l_sorted.column(col)), (name, col)
    a = ro["a.parquet"]
    assert a.schema.field("tokens").type == pa.list_(pa.int32()) and a.schema.field("n_tokens").type == pa.uint32()
    assert a.column("tokens").null_count == a.column("n_tokens").null_count > 0  # nulls stay null
    enc = arrowtok.get_encoding("cl100k_base")
    rows = a.to_pylist()
    assert all(r["tokens"] is None or r["tokens"][-1] == enc.eot_token for r in rows)
    assert [r["tokens"] for r in rows if r["tokens"] == [enc.eot_token]]  # "" -> [eot]
    # Ray's manifest is the local job's: same options, same outputs; so a rerun of either engine resumes.
    lm = json.loads((tmp_path / "local" / "_arrowtok_manifest.json").read_text())
    rm = json.loads((tmp_path / "ray" / "_arrowtok_manifest.json").read_text())
    assert rm["options"] == lm["options"]
    for k in lm["files"]:
        for f in ("rows", "null_rows", "text_bytes", "tokens"):
            assert rm["files"][k][f] == lm["files"][k][f], (k, f)
    assert not list((tmp_path / "ray").rglob("*.arrowtok-tmp")) and not (tmp_path / "ray" / ar.RAY_TMP_DIR).exists()
    res = tokenize_corpus([src], tmp_path / "ray", keep=["id", "lang"], append_eot=True, progress=False)
    assert res.files_skipped == 2 and res.files_written == 0


def test_tokenize_dataset_without_eot_and_thread_sizing(cluster):
    enc = arrowtok.get_encoding("o200k_base")
    tbl = pa.table({"doc": list(range(len(TEXTS) * 50)), "text": TEXTS * 50})
    ds = ray.data.from_arrow(tbl).repartition(4)
    tok = ar.tokenize_dataset(ds, "text", "o200k_base", concurrency=1, batch_size=64)
    out = run_with_timeout(lambda: pa.concat_tables(list(tok.iter_batches(batch_format="pyarrow", batch_size=None))))
    assert out.column_names == ["doc", "text", "tokens", "n_tokens"]  # keep=None keeps every column
    assert out.schema.field("tokens").type == pa.list_(pa.int32())
    out = out.sort_by("doc")
    want = enc.encode_arrow(tbl.column("text"))
    assert out.column("tokens").to_pylist() == want.to_pylist()
    assert out.column("n_tokens").to_pylist() == [None if t is None else len(t) for t in want.to_pylist()]

    @ray.remote
    def threads_of_actor():
        return ar.TokenizeBatch().threads

    assert ray.get(threads_of_actor.options(num_cpus=1).remote(), timeout=60) == 1
    assert ray.get(threads_of_actor.options(num_cpus=2).remote(), timeout=60) == 2
    assert ar.TokenizeBatch(threads=3).threads == 3


def test_invalid_utf8_fails_clearly(cluster, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    pq.write_table(pa.table({"text": pa.array([b"fine", b"also fine", b"bad \xff byte", None], pa.binary())}),
                   src / "bad.parquet")
    # The same rows with errors="replace" equal the local job's. (Run first: on this 2-CPU test
    # cluster a job started right after a failed one can wait a long time for the failed
    # execution's actor to give its CPU back; see the README's notes on Ray.)
    rep = tmp_path / "replaced"
    run_with_timeout(lambda: ar.tokenize_corpus_ray([src], rep, errors="replace", progress=False))
    tokenize_corpus([src], tmp_path / "local", errors="replace", progress=False)
    assert pq.read_table(rep / "bad.parquet").equals(pq.read_table(tmp_path / "local" / "bad.parquet"))
    out = tmp_path / "out"
    with pytest.raises(JobError) as ei:
        run_with_timeout(lambda: ar.tokenize_corpus_ray([src], out, progress=False, batch_size=2))
    msg = str(ei.value)
    assert "bad.parquet" in msg and "UTF-8" in msg and "--errors replace" in msg and "row 0 of a 2-row" in msg
    assert ei.value.byte_offset == 4
    assert not (out / "bad.parquet").exists() and not (out / ar.RAY_TMP_DIR).exists()


def test_actor_pool_leaves_a_cpu_for_reads_and_writes(cluster):
    assert ar._corpus_actors(None, 1) == (1, 1)  # a 2-CPU cluster: one 1-CPU actor at most
    with pytest.raises(JobError, match="would stall"):
        ar._corpus_actors(2, 1)


def test_refused_options(tmp_path):
    src = tmp_path / "x.parquet"
    pq.write_table(pa.table({"text": ["a"]}), src)
    with pytest.raises(JobError, match="--format bin is not supported with --engine ray"):
        ar.tokenize_corpus_ray([src], tmp_path / "o", format="bin")
    with pytest.raises(JobError, match="output must be a local"):
        ar.tokenize_corpus_ray([src], "s3://bucket/out")
    with pytest.raises(JobError, match="'tokens' is the name of an output column"):
        ar.tokenize_corpus_ray([src], tmp_path / "o", keep="id,tokens")
    with pytest.raises(JobError, match="no column 'body'"):  # checked before Ray starts
        ar.tokenize_corpus_ray([src], tmp_path / "o", column="body")
