"""The corpus job (`arrowtok tokenize` / `arrowtok.pipeline.tokenize_corpus`), end to end on tmp dirs."""
from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import arrowtok
from arrowtok.pipeline import JobError, tokenize_corpus
from arrowtok.pipeline.job import _BinSink, _Encoded
from oracle import oracle

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def cli(*args, env=None, cwd=None, timeout=300):
    e = dict(os.environ, CI="1")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "arrowtok", *map(str, args)], capture_output=True, text=True,
                          env=e, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def docs() -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(SAMPLE.glob("docs-*.parquet"))])


def read_dir(d: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(d.rglob("*.parquet"))])


def out_files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and p.name != "_arrowtok.lock"}


def read_idx(path: Path):
    raw = path.read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    version, code, n, ndoc = struct.unpack_from("<QBQQ", raw, 9)
    off = 9 + 8 + 1 + 8 + 8
    lens = np.frombuffer(raw, "<i4", n, off)
    ptrs = np.frombuffer(raw, "<i8", n, off + 4 * n)
    docidx = np.frombuffer(raw, "<i8", ndoc, off + 12 * n)
    assert off + 12 * n + 8 * ndoc == len(raw)
    return version, code, lens, ptrs, docidx


def write_parquet_parts(table: pa.Table, d: Path, n_files: int, **kw) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    per = -(-table.num_rows // n_files)
    paths = []
    for i in range(n_files):
        p = d / f"part-{i:03d}.parquet"
        pq.write_table(table.slice(i * per, per), p, **kw)
        paths.append(p)
    return paths


# ---- correctness --------------------------------------------------------------------------------

def test_cli_sample_data_matches_oracle(tmp_path, docs):
    out = tmp_path / "out"
    r = cli("tokenize", SAMPLE, "--output", out, "--keep", "id,lang")
    assert r.returncode == 0, r.stderr
    assert "2 of 2 files written" in r.stdout and "tokens" in r.stdout
    assert r.stderr == ""  # no progress bar outside a terminal / in CI
    assert sorted(p.name for p in out.glob("*.parquet")) == ["docs-000.parquet", "docs-001.parquet"]
    got = read_dir(out)
    assert got.schema.names == ["id", "lang", "tokens", "n_tokens"]
    assert got.schema.field("tokens").type == pa.list_(pa.int32())
    assert got.schema.field("n_tokens").type == pa.uint32()
    assert got["id"].to_pylist() == docs["id"].to_pylist()
    assert got["lang"].to_pylist() == docs["lang"].to_pylist()
    want = oracle("cl100k_base").encode_ordinary_batch(docs["text"].to_pylist())
    assert got["tokens"].to_pylist() == want
    assert got["n_tokens"].to_pylist() == [len(w) for w in want]
    meta = json.loads(pq.read_schema(out / "docs-000.parquet").metadata[b"arrowtok"])
    assert meta["encoding"] == "cl100k_base" and meta["append_eot"] is False


def _edge_rows():
    ids = ["a", "b", "c", "d", "e", "f", "g"]
    texts = ["Hello world", None, "", "<|endoftext|> is ordinary text here", "日本語のテキスト 🙂", "  \n\n", "x" * 5000]
    return ids, texts


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_function_jsonl_gz_append_eot_nulls_empties(tmp_path, name):
    ids, texts = _edge_rows()
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    lines = [json.dumps({"id": i, "text": t}) for i, t in zip(ids, texts)]
    lines.insert(2, json.dumps({"id": "h"}))  # a missing key is a null text
    (src / "plain.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with gzip.open(src / "sub" / "packed.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    res = tokenize_corpus([src], tmp_path / "out", encoding=name, keep=["id"], append_eot=True, batch_rows=3)
    assert res.files_written == 2 and res.rows == 16 and res.null_rows == 4
    enc = arrowtok.get_encoding(name)
    texts_all = texts[:2] + [None] + texts[2:]
    want = [None if t is None else oracle(name).encode_ordinary(t) + [enc.eot_token] for t in texts_all]
    for rel in ("plain.parquet", "sub/packed.parquet"):
        t = pq.read_table(tmp_path / "out" / rel)
        assert t["id"].to_pylist() == ids[:2] + ["h"] + ids[2:]
        assert t["tokens"].to_pylist() == want
        assert t["n_tokens"].to_pylist() == [None if w is None else len(w) for w in want]
    assert res.tokens == 2 * sum(len(w) for w in want if w is not None)


def test_bin_format_round_trips(tmp_path, docs):
    src = tmp_path / "in"
    src.mkdir()
    small = docs.slice(0, 700)
    texts = small["text"].to_pylist()
    texts[5] = None
    texts[6] = ""
    pq.write_table(pa.table({"text": texts}), src / "a.parquet")
    r = cli("tokenize", src, "-o", tmp_path / "out", "--format", "bin", "--append-eot", "--batch-rows", "100")
    assert r.returncode == 0, r.stderr
    enc = arrowtok.get_encoding("cl100k_base")
    version, code, lens, ptrs, docidx = read_idx(tmp_path / "out" / "a.idx")
    assert version == 1 and code == 4  # int32 (= uint32 for ids < 2**31)
    assert len(lens) == len(texts) and list(docidx) == list(range(len(texts) + 1))
    ids = np.fromfile(tmp_path / "out" / "a.bin", dtype="<u4")
    assert ids.size == lens.sum() and list(ptrs) == list(np.concatenate([[0], np.cumsum(lens)[:-1]]) * 4)
    ref = oracle("cl100k_base")
    for i, t in enumerate(texts):
        seq = ids[ptrs[i] // 4: ptrs[i] // 4 + lens[i]].tolist()
        if t is None:
            assert seq == []
        else:
            assert seq == ref.encode_ordinary(t) + [enc.eot_token]
            assert enc.decode(seq) == t + "<|endoftext|>"


def test_bin_sink_uint16(tmp_path):
    sink = _BinSink(tmp_path, "small", "uint16")
    lists = pa.array([[1, 2, 3], None, [], [65535]], pa.list_(pa.int32()))
    sink.write(_Encoded(None, lists, 4, 1, 0, 4, 0.0))
    sink.write(_Encoded(None, pa.array([[7]], pa.list_(pa.int32())), 1, 0, 0, 1, 0.0))
    sink.commit()
    version, code, lens, ptrs, docidx = read_idx(tmp_path / "small.idx")
    assert code == 8 and lens.tolist() == [3, 0, 0, 1, 1] and ptrs.tolist() == [0, 6, 6, 6, 8]
    assert np.fromfile(tmp_path / "small.bin", "<u2").tolist() == [1, 2, 3, 65535, 7]
    assert not list(tmp_path.glob(".*arrowtok-tmp"))


def test_globs_dirs_and_output_names(tmp_path, docs):
    src = tmp_path / "in"
    write_parquet_parts(docs.slice(0, 300), src / "x", 2)
    write_parquet_parts(docs.slice(300, 300), src / "y" / "z", 1)
    (src / "_ignored.parquet").write_bytes(b"not parquet")   # hidden by the '_' convention
    (src / "notes.txt").write_text("not an input")
    res = tokenize_corpus([str(src / "**" / "*.parquet")], tmp_path / "o1")
    assert sorted(res.outputs) == ["x/part-000.parquet", "x/part-001.parquet", "y/z/part-000.parquet"]
    with pytest.raises(JobError, match="would both write part-000"):  # x/part-000 and z/part-000
        tokenize_corpus([src / "x", src / "y" / "z" / "part-000.parquet"], tmp_path / "o2")
    res2 = tokenize_corpus([src / "x", src / "y"], tmp_path / "o2")
    assert sorted(res2.outputs) == ["part-000.parquet", "part-001.parquet", "z/part-000.parquet"]
    # rows are all there, in order
    assert read_dir(tmp_path / "o1").num_rows == 600


def test_name_collision_refused(tmp_path, docs):
    src = tmp_path / "in"
    src.mkdir()
    pq.write_table(docs.slice(0, 10), src / "a.parquet")
    with open(src / "a.jsonl", "w") as f:
        f.write('{"text": "hi"}\n')
    r = cli("tokenize", src, "-o", tmp_path / "out")
    assert r.returncode == 1 and "would both write a" in r.stderr


# ---- resume, kill, options -----------------------------------------------------------------------

def test_rerun_skips_finished_and_redoes_changed(tmp_path, docs):
    src = tmp_path / "in"
    paths = write_parquet_parts(docs.slice(0, 900), src, 3)
    out = tmp_path / "out"
    r1 = tokenize_corpus([src], out)
    assert r1.files_written == 3
    before = out_files(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    r2 = tokenize_corpus([src], out)
    assert (r2.files_written, r2.files_skipped) == (0, 3)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.parquet")} == mtimes
    pq.write_table(docs.slice(2000, 50), paths[1])  # an input changed: only it is redone
    r3 = tokenize_corpus([src], out)
    assert (r3.files_written, r3.files_skipped) == (1, 2)
    assert pq.read_table(out / "part-001.parquet")["tokens"].to_pylist() == \
        oracle("cl100k_base").encode_ordinary_batch(docs.slice(2000, 50)["text"].to_pylist())
    r4 = tokenize_corpus([src], out, resume=False)
    assert r4.files_written == 3
    (out / "part-000.parquet").unlink()  # a deleted output is redone
    assert tokenize_corpus([src], out).files_written == 1
    assert out_files(out)["part-002.parquet"] == before["part-002.parquet"]


@pytest.mark.parametrize("fmt", ["parquet", "bin"])
def test_sigkill_then_resume_is_byte_identical(tmp_path, docs, fmt):
    src = tmp_path / "in"
    n_files = 12
    write_parquet_parts(docs, src, n_files, row_group_size=100)
    args = ["tokenize", src, "--format", fmt, "--append-eot", "--batch-rows", "100", "--threads", "1"]
    if fmt == "parquet":
        args += ["--keep", "id,lang"]
    ref = tmp_path / "ref"
    r = cli(*args, "-o", ref)
    assert r.returncode == 0, r.stderr

    out = tmp_path / "out"
    manifest = out / "_arrowtok_manifest.json"
    e = dict(os.environ, CI="1", ARROWTOK_TEST_WRITE_DELAY="0.03")
    proc = subprocess.Popen([sys.executable, "-m", "arrowtok", *map(str, args), "-o", str(out)], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline:
        if manifest.exists():
            try:
                done = len(json.loads(manifest.read_text())["files"])
            except ValueError:
                done = 0
        if done >= 2 and list(out.glob(".*arrowtok-tmp")):  # midway through a file
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= done < n_files, "the job should have been killed midway"
    assert list(out.glob(".*arrowtok-tmp")), "the kill should interrupt a file in progress"
    # Nothing partial under a final name: every final file equals the reference.
    ref_files = out_files(ref)
    for name, data in out_files(out).items():
        if name != "_arrowtok_manifest.json" and not name.endswith("arrowtok-tmp"):
            assert data == ref_files[name], name
    r = cli(*args, "-o", out)
    assert r.returncode == 0, r.stderr
    assert f"({done} already done, skipped)" in r.stdout or f"({done + 1} already done, skipped)" in r.stdout
    assert not list(out.glob(".*arrowtok-tmp"))
    assert out_files(out) == ref_files


def test_changed_options_refused_unless_overwrite(tmp_path, docs):
    src = tmp_path / "in"
    write_parquet_parts(docs.slice(0, 200), src, 2)
    out = tmp_path / "out"
    assert cli("tokenize", src, "-o", out).returncode == 0
    r = cli("tokenize", src, "-o", out, "--append-eot")
    assert r.returncode == 1
    assert "other options" in r.stderr and "append_eot: False -> True" in r.stderr and "--overwrite" in r.stderr
    r = cli("tokenize", src, "-o", out, "--append-eot", "--overwrite")
    assert r.returncode == 0, r.stderr
    eot = arrowtok.get_encoding("cl100k_base").eot_token
    assert all(t[-1] == eot for t in read_dir(out)["tokens"].to_pylist())
    # format change with --overwrite removes the old outputs
    r = cli("tokenize", src, "-o", out, "--format", "bin", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert not list(out.glob("*.parquet")) and len(list(out.glob("*.bin"))) == 2


def test_foreign_files_in_output_refused(tmp_path, docs):
    src = tmp_path / "in"
    write_parquet_parts(docs.slice(0, 20), src, 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-000.parquet").write_bytes(b"someone else's file")
    r = cli("tokenize", src, "-o", out)
    assert r.returncode == 1 and "no arrowtok manifest" in r.stderr
    assert (out / "part-000.parquet").read_bytes() == b"someone else's file"


def test_second_job_on_same_output_refused(tmp_path):
    from arrowtok.pipeline.manifest import DirLock

    with DirLock(tmp_path):
        with pytest.raises(JobError, match="another arrowtok job"):
            with DirLock(tmp_path):
                pass


# ---- bad input -----------------------------------------------------------------------------------

def _assert_failed(r, *needles):
    assert r.returncode == 1, (r.stdout, r.stderr)
    for n in needles:
        assert n in r.stderr, (n, r.stderr)
    assert "Traceback" not in r.stderr


def _bad_utf8_table(n=2500, bad_row=2345, kind="binary"):
    vals = [f"row {i} ok".encode() for i in range(n)]
    vals[bad_row] = b"bad \xff\xfe here"
    arr = pa.array(vals, pa.binary())
    if kind == "string":
        arr = arr.view(pa.string())
    return pa.table({"id": list(range(n)), "text": arr})


def test_missing_column(tmp_path, docs):
    src = tmp_path / "in"
    write_parquet_parts(docs.slice(0, 10).rename_columns(["id", "lang", "body"]), src, 1)
    r = cli("tokenize", src, "-o", tmp_path / "out")
    _assert_failed(r, "part-000.parquet", "no column 'text'", "body")
    r = cli("tokenize", src, "-o", tmp_path / "out2", "--column", "body", "--keep", "nope")
    _assert_failed(r, "part-000.parquet", "no column 'nope'")


def test_non_string_column(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    pq.write_table(pa.table({"text": [1, 2, 3]}), src / "ints.parquet")
    _assert_failed(cli("tokenize", src, "-o", tmp_path / "out"), "ints.parquet", "column 'text' has type int64")
    (src / "ints.parquet").unlink()
    (src / "nums.jsonl").write_text('{"text": 1}\n{"text": 2}\n')
    _assert_failed(cli("tokenize", src, "-o", tmp_path / "out2"), "nums.jsonl", "column 'text' has type int64")


@pytest.mark.parametrize("kind", ["binary", "string"])
def test_invalid_utf8_strict_names_file_and_row(tmp_path, kind):
    src = tmp_path / "in"
    src.mkdir()
    pq.write_table(pa.table({"text": ["fine"] * 10}), src / "a-good.parquet")
    pq.write_table(_bad_utf8_table(kind=kind), src / "b-bad.parquet")
    out = tmp_path / "out"
    r = cli("tokenize", src, "-o", out, "--batch-rows", "1000")
    _assert_failed(r, "b-bad.parquet: row 2345", "invalid UTF-8 at byte offset 4", "--errors replace")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("_")) == ["a-good.parquet"]
    files = json.loads((out / "_arrowtok_manifest.json").read_text())["files"]
    assert list(files) == ["a-good"]
    # --errors replace: U+FFFD, as bytes.decode('utf-8', 'replace') then tiktoken
    r = cli("tokenize", src, "-o", tmp_path / "out2", "--errors", "replace")
    assert r.returncode == 0, r.stderr
    got = pq.read_table(tmp_path / "out2" / "b-bad.parquet")["tokens"].to_pylist()
    assert got[2345] == oracle("cl100k_base").encode_ordinary(b"bad \xff\xfe here".decode("utf-8", "replace"))
    assert got[0] == oracle("cl100k_base").encode_ordinary("row 0 ok")


def test_invalid_utf8_in_jsonl(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "x.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "ok"}\n{"text": "bad \xff"}\n')
    _assert_failed(cli("tokenize", src, "-o", tmp_path / "out"), "x.jsonl: row 2", "invalid UTF-8")


def test_corrupt_and_unreadable_inputs(tmp_path, docs):
    src = tmp_path / "in"
    write_parquet_parts(docs.slice(0, 100), src, 1)
    (src / "broken.parquet").write_bytes(b"PAR1 this is not a parquet file")
    _assert_failed(cli("tokenize", src, "-o", tmp_path / "o1"), "broken.parquet", "cannot read parquet")
    (src / "broken.parquet").unlink()
    good = (src / "part-000.parquet").read_bytes()
    (src / "truncated.parquet").write_bytes(good[: len(good) // 2])
    _assert_failed(cli("tokenize", src, "-o", tmp_path / "o2"), "truncated.parquet")
    (src / "truncated.parquet").unlink()
    (src / "bad.jsonl").write_text('{"text": "a"}\n{"text": \n')
    _assert_failed(cli("tokenize", src, "-o", tmp_path / "o3"), "bad.jsonl")
    _assert_failed(cli("tokenize", tmp_path / "missing", "-o", tmp_path / "o4"), "missing: input not found")
    (tmp_path / "data.csv").write_text("text\nhi\n")
    _assert_failed(cli("tokenize", tmp_path / "data.csv", "-o", tmp_path / "o5"), "unsupported input format")
    (tmp_path / "empty").mkdir()
    _assert_failed(cli("tokenize", tmp_path / "empty", "-o", tmp_path / "o6"), "no input files found")
    for d in ("o1", "o2", "o3"):
        assert not list((tmp_path / d).glob(".*arrowtok-tmp"))


def test_unreadable_file_permission(tmp_path, docs):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    src = tmp_path / "in"
    (p,) = write_parquet_parts(docs.slice(0, 10), src, 1)
    p.chmod(0)
    _assert_failed(cli("tokenize", src, "-o", tmp_path / "out"), "part-000.parquet")


def test_empty_inputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), src / "e.parquet")
    (src / "e2.jsonl").write_bytes(b"")
    res = tokenize_corpus([src], tmp_path / "out", keep="id")
    assert res.files_written == 2 and res.rows == 0
    t = pq.read_table(tmp_path / "out" / "e.parquet")
    assert t.num_rows == 0 and t.schema.names == ["id", "tokens", "n_tokens"]


def test_usage_errors():
    r = cli("tokenize", "x")
    assert r.returncode == 2 and "--output" in r.stderr
    r = cli("tokenize", "x", "-o", "y", "--batch-bytes", "lots")
    assert r.returncode == 2 and "not a size" in r.stderr
    r = cli("tokenize", "x", "-o", "y", "--format", "bin", "--keep", "id")
    assert r.returncode == 1 and "--keep applies to --format parquet" in r.stderr


# ---- progress ------------------------------------------------------------------------------------

def test_progress_line_only_when_wanted(tmp_path, monkeypatch, docs):
    from arrowtok.pipeline.progress import progress_wanted

    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    assert progress_wanted(Tty()) is True
    monkeypatch.setenv("CI", "true")
    assert progress_wanted(Tty()) is False
    monkeypatch.delenv("CI")
    assert progress_wanted(open(os.devnull, "w")) is False
    src = tmp_path / "in"
    write_parquet_parts(docs.slice(0, 300), src, 2)
    r = cli("tokenize", src, "-o", tmp_path / "out", "--progress", "--batch-rows", "50")
    assert r.returncode == 0
    assert "tok/s" in r.stderr and "MB/s" in r.stderr and "ETA" in r.stderr and "rows" in r.stderr
    assert "files written" in r.stdout


# ---- memory --------------------------------------------------------------------------------------

_HWM = """
import resource, sys
from arrowtok.cli import main
rc = main(sys.argv[1:])
print("HWM_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(rc)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
def test_peak_rss_does_not_grow_with_corpus(tmp_path, docs):
    """Peak RSS for a corpus 4x larger (both far above the 2 MiB batch budget) grows by less than
    half the extra text, and by less than 16 budgets; holding the corpus (let alone its ids) would add
    more than the extra text."""
    budget = 2 << 20
    text = docs.select(["id", "text"])
    text_bytes = pc.sum(pc.binary_length(text["text"])).as_py()
    peaks = {}
    extra = {}
    for name, mult in (("small", 24), ("big", 96)):
        d = tmp_path / name
        d.mkdir()
        w = pq.ParquetWriter(d / "corpus.parquet", text.schema, compression="zstd")
        for _ in range(mult):
            w.write_table(text, row_group_size=4000)
        w.close()
        extra[name] = mult * text_bytes
        r = subprocess.run([sys.executable, "-c", _HWM, "tokenize", str(d), "-o", str(tmp_path / f"o_{name}"),
                            "--keep", "id", "--batch-bytes", str(budget)], capture_output=True, text=True,
                           env=dict(os.environ, CI="1"), timeout=600)
        assert r.returncode == 0, r.stderr
        peaks[name] = int(r.stdout.split("HWM_KB")[1]) * 1024
    grown = peaks["big"] - peaks["small"]
    corpus_growth = extra["big"] - extra["small"]   # ~ 22 MB vs ~ 88 MB of text (and as much again in ids)
    print(f"peak RSS small {peaks['small'] / 2**20:.0f} MiB, big {peaks['big'] / 2**20:.0f} MiB, "
          f"text {extra['small'] / 1e6:.0f} MB vs {extra['big'] / 1e6:.0f} MB")
    assert grown < min(16 * budget, corpus_growth / 2), (peaks, corpus_growth)
