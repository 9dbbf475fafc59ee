"""Hugging Face tokenizer.json (arrowtok.hf) vs the `tokenizers` package.

Tokenizers under test: families generated from the shipped cl100k/o200k ranks by
tools/make_hf_tokenizers.py (GPT-2, GPT-2 with add_prefix_space, Llama 3, cl100k in tiktoken
0.14's spelling, Qwen2 with NFC, o200k), plus two real files from the litellm wheel
(tests/data/hf: Anthropic's Claude 2 tokenizer, NFKC + GPT-2 regex; DeepSeek's, three Splits).

Corpora: sample_data/text/*.txt and ../shared/corpora/*.txt (skipped if missing). Each file is
checked whole (one document) and line by line (a column). By default only the first
ARROWTOK_HF_BYTES (100000) bytes of each shared corpus file; ARROWTOK_HF_BYTES=0 for everything.
"""
from __future__ import annotations

import functools
import json
import lzma
import os
import pickle
import sys
import warnings
from pathlib import Path

import pyarrow as pa
import pytest

tokenizers = pytest.importorskip("tokenizers")

import arrowtok  # noqa: E402
from arrowtok import hf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_hf_tokenizers as mk  # noqa: E402

REAL = {"anthropic": ROOT / "tests/data/hf/anthropic_claude2.tokenizer.json.xz",
        "deepseek": ROOT / "tests/data/hf/deepseek.tokenizer.json.xz"}
GENERATED = list(mk.FAMILIES)
FAMILIES = GENERATED + list(REAL)
# Which take the Zig scanner path (more may as scanners are added to zig/pretok.zig).
FAST = {"llama3", "o200k"}

SHARED = ROOT.parent / "shared" / "corpora"
LIMIT = int(os.environ.get("ARROWTOK_HF_BYTES", "100000"))


def _corpus_files():
    files = sorted((ROOT / "sample_data/text").glob("*.txt"))
    if SHARED.is_dir():
        files += sorted(SHARED.glob("*.txt"))
    return files


CORPUS = _corpus_files()


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory):
    d = Path(os.environ["ARROWTOK_HF_DIR"]) if os.environ.get("ARROWTOK_HF_DIR") else tmp_path_factory.mktemp("hf")
    mk.write(d)
    for name, p in REAL.items():
        out = d / name / "tokenizer.json"
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(lzma.decompress(p.read_bytes()))
    return d


_cache: dict = {}


def _pair(tok_dir, family):
    if family not in _cache:
        path = tok_dir / family / "tokenizer.json"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hf.SlowPathWarning)
            enc = arrowtok.Encoding.from_tokenizer_json(path)
        _cache[family] = (enc, tokenizers.Tokenizer.from_file(str(path)), path)
    return _cache[family]


def _hf_ids(tok, texts, *, specials: bool):
    tok.encode_special_tokens = not specials
    try:
        return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
    finally:
        tok.encode_special_tokens = False


def _read(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if LIMIT and path.parent == SHARED and len(text) > LIMIT:
        text = text[:LIMIT]
    return text


# ---- the paths each family takes ------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_path_choice(tok_dir, family):
    enc, _, path = _pair(tok_dir, family)
    if family in FAST:
        assert enc.fast_path and enc.slow_reason is None
    else:
        # Families whose split regex has a scanner (gpt2, qwen2; anthropic uses GPT-2's regex)
        # take the fast path; exactness is checked on the corpora by the tests below either way.
        if family in ("gpt2", "qwen2", "anthropic") and enc.fast_path:
            return
        assert not enc.fast_path and enc.slow_reason
        with pytest.warns(hf.SlowPathWarning, match="slow path"):
            arrowtok.Encoding.from_tokenizer_json(path)


def test_slow_warning_names_the_pattern(tok_dir):
    with pytest.warns(hf.SlowPathWarning, match=r"no Zig scanner"):
        arrowtok.Encoding.from_tokenizer_json(tok_dir / "cl100k" / "tokenizer.json")


# ---- exactness on the corpora -----------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_exact(tok_dir, family, path):
    enc, tok, _ = _pair(tok_dir, family)
    text = _read(path)
    docs = [text] + text.splitlines(keepends=True)
    want_all = _hf_ids(tok, docs, specials=True)
    want_plain = _hf_ids(tok, docs, specials=False)
    # Single strings, the tiktoken-shaped API.
    assert enc.encode(text, allowed_special="all") == want_all[0]
    assert enc.encode_ordinary(text) == want_plain[0]
    # Columns: special-token text is ordinary text unless allowed_special is given.
    col = pa.array(docs, pa.large_string())
    assert enc.encode_arrow(col).to_pylist() == want_plain
    assert enc.encode_arrow(col, allowed_special="all").to_pylist() == want_all
    assert enc.count_tokens_arrow(col).to_pylist() == [len(x) for x in want_plain]
    assert enc.encode_batch(docs[:200], allowed_special="all") == want_all[:200]


@pytest.mark.parametrize("family", FAMILIES)
def test_decode_roundtrip(tok_dir, family):
    enc, tok, _ = _pair(tok_dir, family)
    text = (ROOT / "sample_data/text/ru_debian_faq.txt").read_text(encoding="utf-8")[:20000]
    lines = text.splitlines(keepends=True)
    ids = enc.encode_arrow(pa.array(lines))
    back = enc.decode_arrow(ids).to_pylist()
    norm = [enc._normalize(x) for x in lines]
    if family == "gpt2_prefix":
        norm = [x if x.startswith(" ") or not x else " " + x for x in norm]
    assert back == norm
    assert enc.decode(enc.encode(text, allowed_special="all")) == tok.decode(tok.encode(text, add_special_tokens=False).ids,
                                                                             skip_special_tokens=False)


# ---- special and added tokens -------------------------------------------------------------------

EDGE = [
    "",
    " ",
    "hello<|endoftext|>world",
    "<|endoftext|><|endoftext|> <|endoftext|>\n",
    "a<|endoftext|>\u0338b",           # NFC would compose '>' + U+0338 across the token boundary
    "<|endoftext|\u226f x",            # U+226F (the composed form): not the token
    "x <tool_call>{\"a\": 1}</tool_call> y<|endofprompt|>",
    "e\u0301 \u1100\u1161 \u212b Ω \u2126 \ufb01 \u00bd",
    "  leading and trailing  \n\n",
    "don't I'LL 123456789 1,000,000.5",
    "\r\n\r\n  \t x\u3000y\u00a0z\u2028w\u0085v",
    "日本語のテキスト、한국어 텍스트, مرحبا بالعالم",
    "👍🏽👨‍👩‍👧 flags 🇫🇷🇩🇪",
]


@pytest.mark.parametrize("family", FAMILIES)
def test_edge_strings(tok_dir, family):
    enc, tok, _ = _pair(tok_dir, family)
    want_all = _hf_ids(tok, EDGE, specials=True)
    want_plain = _hf_ids(tok, EDGE, specials=False)
    for t, a, p in zip(EDGE, want_all, want_plain):
        assert enc.encode(t, allowed_special="all") == a, t
        assert enc.encode_ordinary(t) == p, t
    col = pa.array(EDGE + [None])
    assert enc.encode_arrow(col).to_pylist() == want_plain + [None]
    assert enc.encode_arrow(col, allowed_special="all").to_pylist() == want_all + [None]


def test_special_policy(tok_dir):
    enc, tok, _ = _pair(tok_dir, "qwen2")
    with pytest.raises(ValueError, match="disallowed special token"):
        enc.encode("a<|endoftext|>b")
    assert enc.encode("a<|endoftext|>b", allowed_special={"<|endoftext|>"}) == \
        tok.encode("a<|endoftext|>b", add_special_tokens=False).ids
    # Non-special added tokens are always split out (tokenizers does so in every encode).
    ids = enc.encode_ordinary("<tool_call>")
    assert ids == [enc.encode_single_token("<tool_call>")] == tok.encode("<tool_call>", add_special_tokens=False).ids
    assert "<tool_call>" not in enc.special_tokens_set and "<|endoftext|>" in enc.special_tokens_set
    assert enc.is_special_token(enc.encode_single_token("<|endoftext|>"))
    assert enc.eot_token == 100256 == tok.token_to_id("<|endoftext|>")


def _variant(tok_dir, family, edit):
    cfg = json.loads((tok_dir / family / "tokenizer.json").read_text())
    edit(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hf.SlowPathWarning)
        enc = arrowtok.Encoding.from_tokenizer_json(cfg)
    return enc, tokenizers.Tokenizer.from_str(json.dumps(cfg))


@pytest.mark.parametrize("family", ["llama3", "gpt2"])
def test_lstrip_rstrip(tok_dir, family):
    def edit(cfg):
        for t in cfg["added_tokens"]:
            if t["content"] == "<|endoftext|>":
                t["lstrip"] = True
            if t["content"] == "<|fim_prefix|>":
                t["rstrip"] = True
    enc, tok = _variant(tok_dir, family, edit)
    texts = ["a  <|endoftext|>  b", "x\n\t<|fim_prefix|> \n y<|endoftext|>", " <|endoftext|><|fim_prefix|>  "]
    for t in texts:
        assert enc.encode(t, allowed_special="all") == tok.encode(t, add_special_tokens=False).ids, t
    assert enc.encode_arrow(texts, allowed_special="all").to_pylist() == _hf_ids(tok, texts, specials=True)


@pytest.mark.parametrize("family", ["llama3", "gpt2"])
def test_always_on_added_tokens_in_every_single_text_call(tok_dir, family):
    """Non-special added tokens are split out whatever allowed_special says, by encode,
    encode_ordinary and encode_to_numpy alike (encode_to_numpy once lost them when its default
    arguments skipped HFEncoding._allowed)."""
    def edit(cfg):
        for t in cfg["added_tokens"]:
            t["special"] = False
    enc, tok = _variant(tok_dir, family, edit)
    assert enc._always
    texts = ["a <|endoftext|> b", "x<|fim_prefix|>y", "plain text"]
    for t in texts:
        want = tok.encode(t, add_special_tokens=False).ids
        assert enc.encode(t) == want, t
        assert enc.encode_ordinary(t) == want, t
        assert enc.encode_to_numpy(t).tolist() == want, t
        assert enc.encode_to_numpy(t, disallowed_special=()).tolist() == want, t
        assert enc.count_tokens(t) == len(want), t
        assert enc.count_tokens(t, disallowed_special=()) == len(want), t


def test_merges_string_and_list_forms_agree(tok_dir):
    def to_strings(cfg):
        cfg["model"]["merges"] = [" ".join(m) for m in cfg["model"]["merges"]]
    enc_s, _ = _variant(tok_dir, "llama3", to_strings)
    enc_l, _, _ = _pair(tok_dir, "llama3")
    text = (ROOT / "sample_data/text/en_wikipedia_taylorswift.txt").read_text(encoding="utf-8")
    assert enc_s.encode_ordinary(text) == enc_l.encode_ordinary(text)


@pytest.mark.parametrize("ignore", [True, False])
def test_ignore_merges(tok_dir, ignore):
    # Drop the merges that make a few whole words: with ignore_merges they are still one token
    # (looked up whole), without it they are not.
    words = ["Ġconflicting", "Ġinformation", "ĠHello"]

    def edit(cfg):
        cfg["model"]["ignore_merges"] = ignore
        cfg["model"]["merges"] = [m for m in cfg["model"]["merges"] if "".join(m) not in words]
    enc, tok = _variant(tok_dir, "llama3", edit)
    texts = [w.replace("Ġ", " ") for w in words] + ["Hello conflicting information!"]
    got = enc.encode_batch(texts)
    assert got == _hf_ids(tok, texts, specials=True)
    assert all((len(x) == 1) == ignore for x in got[:3])
    text = (ROOT / "sample_data/text/code_python_stdlib.txt").read_text(encoding="utf-8")
    assert enc.encode_ordinary(text) == tok.encode(text, add_special_tokens=False).ids


# ---- Oniguruma vs the regex package ----------------------------------------------------------


def test_onig_rewrite():
    assert hf.onig_to_python(r"\p{N}{1,3}+") == r"(?:\p{N}{1,3})+"
    assert hf.onig_to_python(r"[a\]]{2}+|(x|y){1,}+z") == r"(?:[a\]]{2})+|(?:(x|y){1,})+z"
    assert hf.onig_to_python(hf.LLAMA3_PATTERN) == hf.LLAMA3_PATTERN


def test_cl100k_tiktoken_spelling_differs_in_tokenizers(tok_dir):
    """tiktoken 0.14 spells cl100k with `\\p{N}{1,3}+` and `\\s++$`; in tokenizers (Ruby syntax)
    the first is a greedy repeat (any number of digits in one piece) and `$` is end of line. The
    slow path reproduces tokenizers, and the scanner (tiktoken's meaning) is not used for it."""
    enc, tok, _ = _pair(tok_dir, "cl100k")
    assert not enc.fast_path
    t = "RFC 3986 and 1234567\n"
    assert enc.encode_ordinary(t) == tok.encode(t, add_special_tokens=False).ids
    assert enc.encode_ordinary(t) != arrowtok.get_encoding("cl100k_base").encode_ordinary(t)


def test_scanner_probe():
    assert hf._scanner_agrees(0, hf.LLAMA3_PATTERN)
    assert hf._scanner_agrees(1, hf.O200K_PATTERN)
    assert not hf._scanner_agrees(1, hf.LLAMA3_PATTERN)
    assert not hf._scanner_agrees(0, hf.QWEN2_PATTERN)
    assert not hf._scanner_agrees(250, hf.LLAMA3_PATTERN)


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(normalizer={"type": "Lowercase"}), "normalizer 'Lowercase'"),
    (lambda c: c.update(normalizer={"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Strip"}]}), "'Strip'"),
    (lambda c: c.update(pre_tokenizer={"type": "Metaspace", "replacement": "▁"}), "'Metaspace'"),
    (lambda c: c.update(pre_tokenizer={"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Removed"}), "Isolated"),
    (lambda c: c.update(pre_tokenizer=None), "not a byte-level"),
    (lambda c: c["model"].update(type="WordPiece"), "WordPiece"),
    (lambda c: c["model"].update(dropout=0.1), "dropout"),
    (lambda c: c["model"].update(continuing_subword_prefix="##"), "continuing_subword_prefix"),
    (lambda c: c["added_tokens"][0].update(single_word=True), "single_word"),
    (lambda c: c["model"]["merges"].insert(5, "Ġt zzzz"), "merge #5"),
    (lambda c: c["model"]["merges"].insert(7, "Ġ Ġ Ġ"), "merge #7"),
    (lambda c: c["model"]["merges"].insert(3, "Ċ q"), "merge #3: ids 198, 80 do not make a token"),
])
def test_unsupported_is_an_error(tok_dir, edit, match):
    cfg = json.loads((tok_dir / "gpt2" / "tokenizer.json").read_text())
    edit(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hf.SlowPathWarning)
        with pytest.raises(ValueError, match=match):
            arrowtok.Encoding.from_tokenizer_json(cfg)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        arrowtok.Encoding.from_tokenizer_json("/nonexistent/tokenizer.json")


# ---- same API downstream ---------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama3", "deepseek"])
def test_polars_duckdb_pickle(tok_dir, family):
    pl = pytest.importorskip("polars")
    import arrowtok.polars as apl

    enc, tok, _ = _pair(tok_dir, family)
    texts = ["Hello world", "日本語 1234567", None, "x<|endoftext|>y"]
    want = [None if t is None else x for t, x in zip(texts, _hf_ids(tok, [t or "" for t in texts], specials=False))]
    df = pl.DataFrame({"text": texts})
    t = apl.tokenizer(enc)
    out = df.select(t.encode("text")).to_series().to_list()
    assert [None if x is None else list(x) for x in out] == want
    assert df.select(t.count("text")).to_series().to_list() == [None if w is None else len(w) for w in want]

    duckdb = pytest.importorskip("duckdb")
    import arrowtok.duckdb as adb

    con = duckdb.connect()
    adb.register(con, enc)
    con.execute("create table t(text varchar)")
    con.executemany("insert into t values (?)", [[x] for x in texts])
    got = con.execute("select tokenize(text) from t").fetchall()
    assert sorted(map(str, [r[0] for r in got])) == sorted(map(str, want))

    enc2 = pickle.loads(pickle.dumps(enc))
    assert enc2.encode_ordinary("Hello world 12345") == enc.encode_ordinary("Hello world 12345")


def test_errors_replace_and_binary(tok_dir):
    for family in ("llama3", "qwen2", "gpt2"):
        enc, tok, _ = _pair(tok_dir, family)
        bad = pa.array([b"ok \xff x", None, "e\u0301".encode()], pa.binary())
        with pytest.raises(arrowtok.ArrowtokError, match="row 0"):
            enc.encode_arrow(bad)
        got = enc.encode_arrow(bad, errors="replace").to_pylist()
        assert got == [tok.encode("ok \ufffd x", add_special_tokens=False).ids, None,
                       tok.encode("e\u0301", add_special_tokens=False).ids]
        assert enc.encode_bytes(b"ok \xff x", errors="replace") == got[0]


def test_added_token_ids_as_tokenizers_assigns_them(tok_dir):
    # cl100k's real special ids (100257, ... 100276) leave gaps; tokenizers renumbers them on load.
    def gappy(cfg):
        for t, i in zip(cfg["added_tokens"], [100257, 100258, 100259, 100260, 100276, 100277, 100278]):
            t["id"] = i
    with pytest.warns(UserWarning, match="using tokenizers. ids: .<|endoftext|>. 100257 -> 100256"):
        enc, tok = _variant(tok_dir, "qwen2", gappy)
    for t in json.loads((tok_dir / "qwen2" / "tokenizer.json").read_text())["added_tokens"]:
        assert enc.encode_single_token(t["content"]) == tok.token_to_id(t["content"])
    t = "a<|endofprompt|>b<tool_call>"
    assert enc.encode(t, allowed_special="all") == tok.encode(t, add_special_tokens=False).ids


def test_corpus_job_accepts_it(tok_dir, tmp_path, monkeypatch):
    """The job takes an encoding *name*; with get_encoding resolving the name to an HFEncoding (the
    patch the job needs, see the hf report) it runs unchanged, eot included."""
    import pyarrow.parquet as pq
    from arrowtok.pipeline import job

    enc, tok, _ = _pair(tok_dir, "qwen2")
    texts = ["Hello world", "e\u0301 12345 <tool_call>", None, "日本語"]
    pq.write_table(pa.table({"text": texts}), tmp_path / "in.parquet")
    monkeypatch.setattr(job, "get_encoding", lambda name: enc)
    job.tokenize_corpus([tmp_path / "in.parquet"], tmp_path / "out", encoding="qwen2-test", append_eot=True,
                        progress=False)
    got = pq.read_table(tmp_path / "out" / "in.parquet").column("tokens").to_pylist()
    want = [None if t is None else ids + [enc.eot_token] for t, ids in zip(texts, _hf_ids(tok, [t or "" for t in texts], specials=False))]
    assert got == want


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_ALPHABET = st.sampled_from(list("aZ0 9'sStT\n\r\t.,!/-_") + ["\u00a0", "\u3000", "\u2028", "\u0085", "e\u0301", "\u0301",
                            "\u0338", "\u212b", "\u1100\u1161", "日", "本", "한", "ß", "İ", "ǅ", "\u0663", "Ⅻ", "½",
                            "😀", "👍🏽", "\u200d", "<|endoftext|>", "<tool_call>", "<|endofprompt|>", "  ", "\n\n"])


@pytest.mark.parametrize("family", ["llama3", "qwen2", "o200k", "gpt2_prefix"])
@settings(max_examples=int(os.environ.get("ARROWTOK_HF_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_ALPHABET, max_size=40))
def test_random_vs_tokenizers(tok_dir, family, parts):
    enc, tok, _ = _pair(tok_dir, family)
    text = "".join(parts)
    assert enc.encode(text, allowed_special="all") == _hf_ids(tok, [text], specials=True)[0]
    assert enc.encode_ordinary(text) == _hf_ids(tok, [text], specials=False)[0]


def test_has_every_attribute_of_an_encoding(tok_dir):
    enc, _, _ = _pair(tok_dir, "llama3")
    plain = arrowtok.get_encoding("cl100k_base")
    lazy = {k for k, v in vars(arrowtok.Encoding).items() if isinstance(v, functools.cached_property)}
    assert set(plain.__dict__) - lazy <= set(enc.__dict__)
    assert isinstance(enc, arrowtok.Encoding)


NEWER_UNICODE = ["('\U0001fbf0', '\U0001fbf9')", "('\ua7f2', '\ua801')", "('\uab5c', '\uab69')", "x \U00010785 \ufb01 \u00bd"]


@pytest.mark.parametrize("family", ["anthropic", "llama3_nfkc"])
def test_normalizer_uses_tokenizers_tables(tok_dir, family):
    """Found on ../shared/corpora/code_rust_regex_syntax.txt: tokenizers' NFKC tables are older
    than Python's / pyarrow's (U+1FBF0 SEGMENTED DIGIT ZERO, Unicode 13, stays; unicodedata makes
    it '0'). arrowtok normalizes with tokenizers' own normalizer, and re-encodes column rows that
    pyarrow's normalization changes."""
    if family == "llama3_nfkc":
        enc, tok = _variant(tok_dir, "llama3", lambda c: c.update(normalizer={"type": "NFKC"}))
        assert enc.fast_path
    else:
        enc, tok, _ = _pair(tok_dir, family)
    texts = NEWER_UNICODE + ["plain ascii", "e\u0301 <|endoftext|>\u0338"]
    for t in texts:
        assert enc.encode(t, allowed_special="all") == tok.encode(t, add_special_tokens=False).ids, t
    assert enc.encode_arrow(texts, allowed_special="all").to_pylist() == _hf_ids(tok, texts, specials=True)
    assert enc.encode_arrow(texts).to_pylist() == _hf_ids(tok, texts, specials=False)
    assert enc.count_tokens_arrow(pa.chunked_array([texts[:2], texts[2:]])).to_pylist() == \
        [len(x) for x in _hf_ids(tok, texts, specials=False)]
