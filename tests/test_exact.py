"""Exact ids vs the tiktoken oracle: real corpora (whole files and line columns), the 20k-document
table, hypothesis over all of Unicode, and pathological inputs."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import SHARED_CORPORA, corpus_files

FILES = corpus_files()


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def assert_same(got, want, what):
    if got != want:
        i = first_diff(got, want)
        pytest.fail(f"{what}: {len(got)} vs {len(want)} tokens, first difference at {i}: "
                    f"arrowtok {got[max(0, i - 3):i + 3]} tiktoken {want[max(0, i - 3):i + 3]}")


def test_there_is_real_text():
    assert len(FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_file_whole(enc, ref, path):
    text = path.read_text(encoding="utf-8")
    assert_same(enc.encode_ordinary(text), ref.encode_ordinary(text), path.name)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_file_lines_as_column(enc, ref, path):
    lines = path.read_text(encoding="utf-8").split("\n")
    got = enc.encode_arrow(pa.array(lines), threads=2).to_pylist()
    want = ref.encode_ordinary_batch(lines)
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert len(got) == len(want) and not bad, f"{path.name}: rows {bad[:10]} differ"
    counts = enc.count_tokens_arrow(pa.array(lines), threads=2).to_pylist()
    assert counts == [len(w) for w in want]


@pytest.mark.skipif(not (SHARED_CORPORA / "sample_docs.jsonl").exists(), reason="shared corpora not present")
def test_sample_docs_table(enc, ref):
    import pyarrow.json as pj

    table = pj.read_json(SHARED_CORPORA / "sample_docs.jsonl")
    col = table.column("text")
    got = enc.encode_arrow(col, threads=2)
    want = ref.encode_ordinary_batch(col.to_pylist())
    assert got.to_pylist() == want
    assert enc.count_tokens_arrow(col).to_pylist() == [len(w) for w in want]


def test_sample_docs_from_repo(enc, ref):
    # The same shape from the repo alone: lines of every sample_data text as short documents.
    texts = []
    for p in FILES:
        if p.parent.name == "text":
            texts += [t for t in p.read_text(encoding="utf-8").split("\n\n")]
    assert len(texts) > 100
    assert enc.encode_arrow(pa.array(texts, pa.large_string())).to_pylist() == ref.encode_ordinary_batch(texts)


# ---- hypothesis over all of Unicode ------------------------------------------------------------

# Every code point a str can carry to UTF-8 (no surrogates), all categories incl. unassigned.
any_char = st.characters(codec="utf-8")
tricky = st.sampled_from(list("'sStTdDmMlLvVeErRkK\u017f\u212a \r\n\t\u00a0\u3000\u2028\u0085/123aAǅʰ中\u0301.!?-_<|>")
                         + ["\r\n", "  ", "\n\n", "'s", "'LL", "'Re", "\u0300\u0301", "😀", "👍🏽", "\U000e0061", "<|endoftext|>"])
texts = st.one_of(
    st.text(any_char, max_size=200),
    st.lists(tricky, max_size=60).map("".join),
    st.lists(st.one_of(tricky, any_char), max_size=80).map("".join),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_hypothesis_cl100k(text):
    from arrowtok import get_encoding
    from oracle import oracle

    assert get_encoding("cl100k_base").encode_ordinary(text) == oracle("cl100k_base").encode_ordinary(text)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_hypothesis_o200k(text):
    from arrowtok import get_encoding
    from oracle import oracle

    assert get_encoding("o200k_base").encode_ordinary(text) == oracle("o200k_base").encode_ordinary(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), texts), max_size=30), st.integers(1, 4))
def test_hypothesis_columns(rows, threads):
    from arrowtok import get_encoding
    from oracle import oracle

    for name in ("cl100k_base", "o200k_base"):
        got = get_encoding(name).encode_arrow(pa.array(rows, pa.string()), threads=threads).to_pylist()
        want = [None if r is None else oracle(name).encode_ordinary(r) for r in rows]
        assert got == want


def test_random_bytes_documents(enc, ref):
    # Seeded random mixtures of scripts, whitespace and punctuation, as a column.
    rng = random.Random(7)
    pool = [chr(c) for c in list(range(0x20, 0x7F)) * 4 + list(range(0xA0, 0x2000, 7)) + list(range(0x3000, 0x3100))
            + list(range(0x1F300, 0x1F650, 3)) + [0x0, 0xD, 0xA, 0x9, 0x85, 0x2028, 0xFEFF, 0x10FFFF]]
    docs = ["".join(rng.choice(pool) for _ in range(rng.randrange(0, 300))) for _ in range(3000)]
    assert enc.encode_arrow(pa.array(docs)).to_pylist() == ref.encode_ordinary_batch(docs)


# ---- pathological inputs ----------------------------------------------------------------------

def piecewise_oracle(ref, text):
    """tiktoken's own per-piece BPE over the pattern's pieces from `regex` (for inputs where
    tiktoken's full encoder overflows its stack)."""
    out = []
    for piece in regex.findall(ref._pat_str, text):
        out += ref._encode_single_piece(piece.encode("utf-8"))
    return out


def _random_word(n, seed=1):
    rng = random.Random(seed)
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))


PATHOLOGICAL = {
    "1MB_a": lambda: "a" * (1 << 20),
    "1MB_spaces": lambda: " " * (1 << 20),
    "1MB_newlines": lambda: "\n" * (1 << 20),
    "1MB_digits": lambda: "7" * (1 << 20),
    "1MB_random_word": lambda: _random_word(1 << 20),
    "combining_10000": lambda: "a" + "\u0301" * 10000,
    "1MB_cjk": lambda: "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(350_000)),
    "1MB_apostrophes": lambda: "'" * (1 << 20),
    "space_newline_mix": lambda: " \n" * (1 << 19),
}


@pytest.mark.parametrize("case", sorted(PATHOLOGICAL))
def test_pathological(enc, ref, case):
    text = PATHOLOGICAL[case]()
    got = enc.encode_ordinary(text)
    assert_same(got, piecewise_oracle(ref, text), case)
    col = enc.encode_arrow(pa.array([text, "x", text[:1000]]), threads=2).to_pylist()
    assert col[0] == got and col[2] == enc.encode_ordinary(text[:1000])


def test_oracle_agrees_with_tiktoken_where_it_can(ref):
    # The piecewise oracle is the same function as tiktoken's encoder on inputs tiktoken handles.
    text = (FILES[0].read_text(encoding="utf-8"))[:20000]
    assert piecewise_oracle(ref, text) == ref.encode_ordinary(text)


def test_jsonl_documents_sample(enc, ref):
    path = SHARED_CORPORA / "sample_docs.jsonl"
    if not path.exists():
        pytest.skip("shared corpora not present")
    docs = [json.loads(l)["text"] for l in path.read_text(encoding="utf-8").splitlines()[:3000]]
    for d in docs[:500]:
        assert enc.encode_ordinary(d) == ref.encode_ordinary(d)


_CACHE_CHILD = r"""
import sys, json, hashlib
sys.path.insert(0, sys.argv[2])
import pyarrow as pa, arrowtok
from oracle import oracle, corpus_files
name = sys.argv[1]
enc, ref = arrowtok.get_encoding(name), oracle(name)
lines = [l for p in corpus_files() for l in p.read_text(encoding="utf-8")[:300_000].split("\n")]
want = ref.encode_ordinary_batch(lines)
col = pa.array(lines)
for rnd in range(3):  # round 0 fills the piece caches, later rounds read them back
    got = enc.encode_arrow(col, threads=2).to_pylist()
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert len(got) == len(want) and not bad, f"round {rnd}: rows {bad[:5]} differ"
    assert enc.count_tokens_arrow(col, threads=1).to_pylist() == [len(w) for w in want], rnd
print("ok", len(lines))
"""


@pytest.mark.parametrize("budget_mb", ["1", "32"])
def test_piece_cache_rounds_and_budget(name, budget_mb):
    """Every corpus line, encoded three times in one process: ids equal tiktoken's whether they come
    from the BPE, the thread's piece caches, or a cache that the 1 MiB budget keeps emptying."""
    env = dict(os.environ, ARROWTOK_CACHE_MB=budget_mb)
    r = subprocess.run([sys.executable, "-c", _CACHE_CHILD, name, str(Path(__file__).parent)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-3000:]


_CHUNK_ALPHABET = ["\n", "\n", "\r\n", " ", "  ", "\t", "a", "Z", "q", "é", "日本", "7", "42", ".", "!", "'s", "//",
                   "<|endoftext|>", "x\n", ".\n", " \n", "\nA", "\n b", "\n\nC", "-\n", "Й",
                   "word ", " x", "'t ", "A b", ".\r\nB", "x\r\ny", " \r\nz", "\u0301 a", "a \u0301",
                   "123", "4567", "0", "\u0663", "\u00b2", "  9"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_CHUNK_ALPHABET), min_size=20, max_size=200), st.integers(0, 2**32 - 1))
def test_big_text_cut_at_line_starts(enc, ref, parts, seed):
    """Texts of >= 256 KiB are cut at line starts (after LF or CRLF) and between words and
    encoded on the pool: the ids must equal tiktoken's for texts dense in newlines, spaces before
    newlines and letters after them, and combining marks next to spaces."""
    rng = random.Random(seed)
    chunks, size = [], 0
    while size < 300_000:
        piece = "".join(rng.choice(parts) for _ in range(64))
        chunks.append(piece)
        size += len(piece.encode("utf-8"))
    text = "".join(chunks)
    want = ref.encode_ordinary(text)
    assert_same(enc.encode_ordinary(text), want, "encode_ordinary")
    assert_same(enc.encode_to_numpy(text, disallowed_special=()).tolist(), want, "encode_to_numpy")


def test_big_text_in_rounds_with_long_pieces(enc, ref, monkeypatch):
    """A 5 MB text on the pool runs in several rounds of chunks, with chunks that find no cut
    (a 600 KB word, 300 KB of CJK, a base64 blob) encoded in their turn with their long pieces
    cut into segments: the ids equal one thread's, and tiktoken's on the ordinary parts."""
    import numpy as np
    rng = random.Random(21)
    files = [f for f in FILES if f.suffix == ".txt" and f.stat().st_size > 200_000][:4]
    if not files:
        pytest.skip("shared corpora not present")
    prose = [f.read_text(encoding="utf-8")[:900_000] for f in files]
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(600_000))
    cjk = "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(100_000))
    blob = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(400_000))
    parts = [prose[0], " " + word + " ", prose[1 % len(prose)], "\n" + cjk + "\n", prose[2 % len(prose)], blob, prose[3 % len(prose)]]
    text = "".join(parts)
    outs = {}
    for threads in (1, 2, 3, 7):
        monkeypatch.setenv("ARROWTOK_NUM_THREADS", str(threads))
        outs[threads] = enc.encode_to_numpy(text, disallowed_special=())
        col = pa.array([text, "tail"])
        assert enc.encode_arrow(col, threads=threads).to_pylist()[0] == outs[threads].tolist(), threads
        assert enc.count_tokens_arrow(col, threads=threads).to_pylist()[0] == len(outs[threads]), threads
    for threads, got in outs.items():
        assert np.array_equal(got, outs[1]), threads
    # the prose parts on their own against tiktoken (each starts and ends at a piece boundary
    # only by luck, so compare the first one, which starts the text)
    head = prose[0][:200_000]
    assert outs[1][:len(ref.encode_ordinary(head)) - 5].tolist() == ref.encode_ordinary(head)[:-5]


def test_encode_to_numpy_matches(enc, ref):
    for text in ["", "hello world", "x" * 10, "日本語 text\nwith lines\n" * 20_000]:
        got = enc.encode_to_numpy(text)
        assert got.dtype.name == "uint32" and got.tolist() == ref.encode(text)
    with pytest.raises(ValueError):
        enc.encode_to_numpy("a <|endoftext|>")
    assert enc.encode_to_numpy("a <|endoftext|>", allowed_special="all").tolist() == \
        ref.encode("a <|endoftext|>", allowed_special="all")


def test_big_text_cut_inside_digit_runs(enc, ref, monkeypatch):
    """Runs of ASCII digits are cut every third digit past their first (cl100k and o200k split
    digits into threes and nothing else takes one): 1 MB of digits, and digit runs after spaces,
    letters, a non-ASCII digit (which belongs to the run) or a superscript, on 1, 2, 3 and 7
    threads, against tiktoken."""
    rng = random.Random(33)
    digits = "".join(rng.choice("0123456789") for _ in range(1_000_000))
    runs = []
    size = 0
    while size < 600_000:
        run = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40_000)))
        runs.append(rng.choice([" ", "  ", "x", "\n", "\u0663", "\u00b2", "-", ""]) + run)
        size += len(run)
    # short runs after two spaces: cuts often land on a run's first digit, where a cut would
    # change how the spaces split (`\s+(?!\S)`)
    short = "".join("  " + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 4)))
                    for _ in range(150_000))
    for text in (digits, "".join(runs), short):
        want = ref.encode_ordinary(text)
        for threads in (1, 2, 3, 7):
            monkeypatch.setenv("ARROWTOK_NUM_THREADS", str(threads))
            assert_same(enc.encode_to_numpy(text, disallowed_special=()).tolist(), want, f"threads={threads}")
            col = pa.array([text])
            assert enc.count_tokens_arrow(col, threads=threads).to_pylist() == [len(want)], threads


_PREFETCH_SCRIPT = r"""
import random, sys, ctypes as C
import pyarrow as pa, arrowtok
from arrowtok import _native as N
from oracle import oracle, SHARED_CORPORA
slots = N.lib.at_debug_short_slots
slots.argtypes = [C.c_void_p]
slots.restype = C.c_int64
N.lib.at_debug_prefetch_min_slots.restype = C.c_int64
need = N.lib.at_debug_prefetch_min_slots()
rnd = random.Random(7)
letters = "abcdefghijklmnopqrstuvwxyzäöüéñ"
fill = pa.array([" ".join("".join(rnd.choice(letters) for _ in range(rnd.randrange(3, 10))) for _ in range(25))
                 for _ in range(16000)])
text = (SHARED_CORPORA / "en_gutenberg_alice.txt").read_text(encoding="utf-8")
text += (SHARED_CORPORA / "ml_udhr_all.txt").read_text(encoding="utf-8")[:400000]
rows = [l for l in text.splitlines() if l] + [text[i:i + 3000] for i in range(0, len(text), 3000)]
col = pa.array(rows)
for name in ("cl100k_base", "o200k_base"):
    enc = arrowtok.get_encoding(name)
    before = slots(enc._vocab.handle)
    enc.count_tokens_arrow(fill, threads=1)  # ~200k distinct short pieces into this thread's table
    after = slots(enc._vocab.handle)
    assert after >= need > before, (name, before, after, need)
    want = oracle(name).encode_ordinary_batch(rows)
    got = enc.encode_arrow(col, threads=1).to_pylist()
    bad = [i for i, (a, b) in enumerate(zip(got, want)) if a != b]
    assert not bad, (name, bad[:5])
    assert enc.count_tokens_arrow(col, threads=1).to_pylist() == [len(w) for w in want]
    assert slots(enc._vocab.handle) >= need
    print(name, before, after)
"""


def test_big_short_table_prefetch_path_exact():
    """Once a thread's short table outgrows the core's L2 (`prefetch_min_slots`), the encode loop
    scans one block ahead and prefetches that block's slots (encode.zig `prefetchBlock`), reusing
    the look-ahead's piece starts. Fill the table past that size with ~200k distinct words, then
    encode real English and multilingual text as lines and 3,000-character rows on that thread:
    ids equal the oracle's. (A process of its own: fresh tables, the default budget.)"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")]))
    env.pop("ARROWTOK_CACHE_MB", None)
    r = subprocess.run([sys.executable, "-c", _PREFETCH_SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [line.split()[0] for line in r.stdout.splitlines()] == ["cl100k_base", "o200k_base"], r.stdout
