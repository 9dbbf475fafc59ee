"""Tests for zig/pretok.zig (the pretokenizer) and zig/unicode_tables.zig.

The scanners must split text exactly like tiktoken 0.14.0 does with the cl100k_base and o200k_base
patterns. Two oracles:

* `regex` (the PyPI package): same regex syntax and backtracking semantics as fancy-regex, but it
  implements Unicode 17.0 while tiktoken's regex-syntax 0.8.11 implements 16.0. The oracle pattern
  therefore has every `\\p{..}` / `\\s` replaced by an explicit class of the code points that
  *tiktoken* puts in that class (probed from tiktoken itself), which makes it exact.
* tiktoken itself, as the final word: an Encoding with tiktoken's own pattern whose vocabulary holds
  the 256 bytes, every piece we produced and every concatenation of two adjacent pieces. tiktoken
  emits a piece's token directly when the whole regex match is in the vocabulary, so it returns
  exactly our token list when its matches equal our pieces; a piece that is too long, or one that
  tiktoken would have joined with its neighbour, changes the token list.

The library under test is built from zig/pretok.zig by a session fixture, in ReleaseFast (what
ships) and ReleaseSafe (bounds-checked; used for the random tests so that an out-of-bounds read
aborts loudly).
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import regex
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
PAT_IDS = {"cl100k": 0, "o200k": 1}
MAX_CP = 0x110000


# ---------------------------------------------------------------------------------------------
# tiktoken's patterns and character classes


@lru_cache(maxsize=None)
def tiktoken_patterns() -> dict[str, str]:
    """The exact pat_str of each encoding, read from tiktoken_ext without loading any vocabulary."""
    import tiktoken_ext.openai_public as op

    with mock.patch.object(op, "load_tiktoken_bpe", lambda *a, **k: {}):
        return {"cl100k": op.cl100k_base()["pat_str"], "o200k": op.o200k_base()["pat_str"]}


@lru_cache(maxsize=None)
def all_code_points() -> str:
    return "".join(chr(c) for c in range(MAX_CP) if not (0xD800 <= c < 0xE000))


BYTE_RANKS = {bytes([i]): i for i in range(256)}


@lru_cache(maxsize=None)
def tiktoken_set(cls: str) -> frozenset[int]:
    """Code points that tiktoken's regex engine matches with `cls` (unmatched text is dropped)."""
    enc = tiktoken.Encoding(name="probe", pat_str=f"(?:{cls})+", mergeable_ranks=BYTE_RANKS, special_tokens={})
    kept = bytes(enc.encode_ordinary(all_code_points())).decode("utf-8")
    return frozenset(map(ord, kept))


CLASSES = ["L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "N"]


def class_ranges(cps) -> str:
    out = []
    it = sorted(cps)
    i = 0
    while i < len(it):
        j = i
        while j + 1 < len(it) and it[j + 1] == it[j] + 1:
            j += 1
        out.append(f"\\U{it[i]:08x}" if i == j else f"\\U{it[i]:08x}-\\U{it[j]:08x}")
        i = j + 1
    return "".join(out)


@lru_cache(maxsize=None)
def oracle_regex(name: str) -> regex.Pattern:
    """tiktoken's pattern with every Unicode class spelled out as tiktoken's own code point set."""
    pat = tiktoken_patterns()[name]
    body = {r"\s": class_ranges(tiktoken_set(r"\s"))}
    for c in CLASSES:
        body[rf"\p{{{c}}}"] = class_ranges(tiktoken_set(rf"\p{{{c}}}"))
    out, i, in_class = [], 0, False
    while i < len(pat):
        ch = pat[i]
        if ch == "\\":
            tok = None
            for k in sorted(body, key=len, reverse=True):
                if pat.startswith(k, i):
                    tok = k
                    break
            if tok is not None:
                out.append(body[tok] if in_class else f"[{body[tok]}]")
                i += len(tok)
                continue
            if pat.startswith(r"\S", i):
                assert not in_class
                out.append(f"[^{body[chr(92) + 's']}]")
                i += 2
                continue
            assert pat[i + 1] in "rn", pat[i : i + 4]
            out.append(pat[i : i + 2])
            i += 2
            continue
        if ch == "[":
            assert not in_class
            in_class = True
        elif ch == "]":
            in_class = False
        out.append(ch)
        i += 1
    return regex.compile("".join(out))


@lru_cache(maxsize=None)
def version_skew() -> frozenset[int]:
    """Code points whose membership in some class differs between `regex` and tiktoken."""
    cps = all_code_points()
    skew: set[int] = set()
    for cls in [r"\s"] + [rf"\p{{{c}}}" for c in CLASSES]:
        ours = {ord(ch) for run in regex.findall(f"(?:{cls})+", cps) for ch in run}
        skew |= ours ^ set(tiktoken_set(cls))
    return frozenset(skew)


@lru_cache(maxsize=None)
def skew_regex() -> regex.Pattern:
    return regex.compile(f"[{class_ranges(version_skew())}]")


@lru_cache(maxsize=None)
def plain_regex(name: str) -> regex.Pattern:
    return regex.compile(tiktoken_patterns()[name])


def oracle_for(name: str, text: str) -> regex.Pattern:
    """tiktoken's own pattern string when no code point of `text` is classified differently by
    `regex` (Unicode 17) and tiktoken (Unicode 16); else the class-substituted pattern, which is
    exact everywhere but ~30x slower. Both give tiktoken's pieces for such a text."""
    return oracle_regex(name) if skew_regex().search(text) else plain_regex(name)


def oracle_ends(name: str, text: str) -> list[int]:
    """Byte end offsets of the oracle's pieces."""
    lens = [len(p.encode("utf-8")) for p in oracle_for(name, text).findall(text)]
    return np.cumsum(np.array(lens, dtype=np.int64)).tolist() if lens else []


def oracle_ends_fast(name: str, text: str) -> np.ndarray:
    """Same as oracle_ends, for large texts (character ends mapped to byte ends with numpy)."""
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    blen = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
    byte_end = np.concatenate([[0], np.cumsum(blen, dtype=np.int64)])
    char_ends = np.fromiter((m.end() for m in oracle_for(name, text).finditer(text)), dtype=np.int64)
    return byte_end[char_ends]


def tiktoken_confirms(name: str, datas: list[bytes], ends_list: list[list[int]]) -> None:
    """Final word: tiktoken's own regex produces exactly these pieces (see module docstring)."""
    vocab = dict(BYTE_RANKS)
    expected = []
    for data, ends in zip(datas, ends_list):
        starts = [0] + list(ends[:-1])
        pieces = [data[s:e] for s, e in zip(starts, ends)]
        for p in pieces:
            vocab.setdefault(p, len(vocab))
        expected.append([vocab[p] for p in pieces])
        for a, b in zip(pieces, pieces[1:]):
            vocab.setdefault(a + b, len(vocab))
    enc = tiktoken.Encoding(
        name=f"confirm_{name}", pat_str=tiktoken_patterns()[name], mergeable_ranks=vocab, special_tokens={}
    )
    for data, want in zip(datas, expected):
        got = enc.encode_ordinary(data.decode("utf-8"))
        if got != want:
            inv = {v: k for k, v in vocab.items()}
            pytest.fail(
                f"tiktoken disagrees on {data[:200]!r}:\n ours     {[inv[t] for t in want][:40]}\n"
                f" tiktoken {[inv[t] for t in got][:40]}"
            )


# ---------------------------------------------------------------------------------------------
# The library under test


def _build(out_dir: Path, mode: str) -> subprocess.Popen:
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "ziglang", "build-lib", str(ROOT / "zig" / "pretok.zig"), "-dynamic",
        f"-O{mode}", "-lc", "--name", "pretok", f"-femit-bin={out_dir / 'libpretok.so'}",
    ]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


class Pretok:
    def __init__(self, path: Path):
        self.lib = ctypes.CDLL(str(path))
        f = self.lib.at_pretokenize
        f.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
        f.restype = ctypes.c_int64
        self.f = f

    def raw(self, pattern: int, data: bytes, cap: int) -> tuple[int, np.ndarray]:
        out = np.zeros(max(cap, 1), dtype=np.uint64)
        n = self.f(pattern, data, len(data), out.ctypes.data, cap)
        return n, out

    def ends(self, name: str, data: bytes) -> np.ndarray:
        n, out = self.raw(PAT_IDS[name], data, len(data))  # at most one piece per byte
        assert n >= 0, n
        return out[:n].astype(np.int64)


@pytest.fixture(scope="session")
def libs(tmp_path_factory) -> dict[str, Pretok]:
    base = tmp_path_factory.mktemp("pretok")
    procs = {mode: _build(base / mode, mode) for mode in ("ReleaseFast", "ReleaseSafe")}
    out = {}
    for mode, p in procs.items():
        log, _ = p.communicate(timeout=600)
        assert p.returncode == 0, log.decode()
        out[mode] = Pretok(base / mode / "libpretok.so")
    return out


@pytest.fixture(scope="session")
def lib(libs) -> Pretok:
    return libs["ReleaseFast"]


@pytest.fixture(scope="session")
def safe_lib(libs) -> Pretok:
    return libs["ReleaseSafe"]


def check(lib: Pretok, name: str, text: str, confirm: bool = True) -> None:
    data = text.encode("utf-8")
    got = lib.ends(name, data).tolist()
    want = oracle_ends(name, text)
    if got != want:
        starts_g = [0] + got[:-1]
        starts_w = [0] + want[:-1]
        pytest.fail(
            f"{name} {text[:200]!r}\n ours   {[data[s:e] for s, e in zip(starts_g, got)][:40]}\n"
            f" oracle {[data[s:e] for s, e in zip(starts_w, want)][:40]}"
        )
    if confirm and data:
        tiktoken_confirms(name, [data], [got])


# ---------------------------------------------------------------------------------------------
# Unicode tables


def zig_tables() -> bytearray:
    """Property byte of every code point, decoded from the generated zig/unicode_tables.zig."""
    src = (ROOT / "zig" / "unicode_tables.zig").read_text()

    def literal(name: str) -> bytes:
        m = re.search(rf"pub const {name}: \*const \[(\d+)\]u8 = (.*?);\n", src, re.S)
        assert m, name
        data = bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-f]{2})", m.group(2)))
        assert len(data) == int(m.group(1))
        return data

    shift = int(re.search(r"pub const block_shift = (\d+);", src).group(1))
    stage1, stage2 = literal("stage1"), literal("stage2")
    props = bytearray(MAX_CP)
    for cp in range(MAX_CP):
        props[cp] = stage2[(stage1[cp >> shift] << shift) | (cp & ((1 << shift) - 1))]
    return props


BIT = {"Lu": 0x01, "Ll": 0x02, "Lt": 0x04, "Lm": 0x08, "Lo": 0x10, "M": 0x20, "N": 0x40, "WS": 0x80}
BIT["L"] = BIT["Lu"] | BIT["Ll"] | BIT["Lt"] | BIT["Lm"] | BIT["Lo"]


def test_tables_equal_tiktoken_classes_on_all_code_points():
    props = zig_tables()
    src = (ROOT / "zig" / "unicode_tables.zig").read_text()
    for name, bit in [(k, v) for k, v in BIT.items() if k != "L"]:
        assert f"pub const {name}: u8 = 0x{bit:02x};" in src
    for name, bit in BIT.items():
        cls = r"\s" if name == "WS" else rf"\p{{{name}}}"
        ours = {cp for cp in range(MAX_CP) if props[cp] & bit}
        theirs = set(tiktoken_set(cls))
        assert ours == theirs, (name, sorted(ours ^ theirs)[:20])
    assert not any(props[0xD800:0xE000])


def test_tables_are_unicode_16_and_generator_is_current():
    src = (ROOT / "zig" / "unicode_tables.zig").read_text()
    assert 'pub const unicode_version = "16.0.0";' in src
    assert tiktoken.__version__ == "0.14.0"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_unicode.py"), "--check"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()


def test_contraction_letter_folds_match_tiktoken():
    # pretok.zig hard-codes: the contraction letters fold only to their ASCII pair, plus U+017F for s.
    expected = {c: {c, c.upper()} for c in "sdmtlver"}
    expected["s"].add("\u017f")
    for c, want in expected.items():
        got = {chr(cp) for cp in tiktoken_set(f"(?i:{c})")}
        assert got == want, (c, got)
    # and the Python regex oracle folds the same way
    for c, want in expected.items():
        assert set(regex.findall(f"(?i:{c})", all_code_points())) == want


def test_version_skew_is_what_we_think():
    """`regex` is ahead of tiktoken (Unicode 17 vs 16): the skew is a few thousand code points."""
    skew = version_skew()
    assert 0 < len(skew) < 40_000
    assert 0x323B0 in skew and 0x0295 in skew and ord("a") not in skew


def test_oracle_equals_plain_regex_where_unicode_versions_agree():
    """The class-substituted oracle is the same regex as tiktoken's pattern where versions agree."""
    agree = [chr(c) for c in range(0, 0x3400)]  # BMP start: letters, marks, digits, spaces, symbols
    diff = set()
    for c in CLASSES:
        rx = {ord(x) for x in regex.findall(rf"\p{{{c}}}", "".join(agree))}
        diff |= rx ^ (set(tiktoken_set(rf"\p{{{c}}}")) & set(range(0x3400)))
    alphabet = [ch for ch in agree if ord(ch) not in diff and not 0xD800 <= ord(ch) < 0xE000]
    rng = random.Random(7)
    for name, pat in tiktoken_patterns().items():
        for _ in range(300):
            text = "".join(rng.choice(alphabet if rng.random() < 0.3 else TRICKY) for _ in range(rng.randint(0, 40)))
            assert regex.findall(pat, text) == oracle_regex(name).findall(text)


# ---------------------------------------------------------------------------------------------
# Fixed cases

CASES = [
    "",
    "Hello, world! I'm fine, aren't you? You'LL SEE. We'Re 'sd 'd'",
    "don't DON'T Don'T ſ 'ſ x'ſ K'K \u212a's",
    "12345678 1,234.56 ٣٤٥ ½⅓ Ⅻ 𝟘𝟙𝟚",
    "a  \n\n b  \t\tc\r\n\r\n   \n",
    "   ",
    " \n",
    "\n",
    "x \u00a0y\u3000z\u2028w",
    "HTTPServer camelCase ABCdef ǅungla ʰABC d Aʰ Ǆǅǆ",
    "\u0301's \u0301A \u0301a a\u0301\u0301b A\u0301B",
    "!!! ?? ... // /x \n/ !/\r\n/ ,\r\n",
    "'s's 's 'S ''s '",
    "\x00\x01 \x00a \x1f\x1c",
    "中文字符 日本語のテキスト 한국어",
    "👋🏽 hello 👨‍👩‍👧 🇺🇸",
    "\ufeffThe Project\r\n",
    "a\u0301\u0302\u0303" * 3,
    " ?abc ?123 ?\n",
    "end with spaces   ",
    "end with newline spaces \n  ",
    "\r\r\n\n\r",
]


@pytest.mark.parametrize("name", ["cl100k", "o200k"])
@pytest.mark.parametrize("text", CASES)
def test_cases(libs, name, text):
    for lib in libs.values():
        check(lib, name, text)


@pytest.mark.parametrize("name", ["cl100k", "o200k"])
def test_every_code_point_in_context(lib, name):
    """Each code point alone and next to the characters the alternatives care about."""
    skew = version_skew()
    # Code points classified alike by `regex` and tiktoken are checked with the fast plain
    # oracle; the few thousand that differ (new in Unicode 17) get texts of their own.
    contexts = []
    for cps in ("".join(c for c in all_code_points() if ord(c) not in skew), "".join(map(chr, sorted(skew)))):
        contexts += [
            cps,
            "".join(f" {c}a" for c in cps[0::4]),
            "".join(f"'{c}e" for c in cps[1::4]),
            "".join(f"A{c}'s\n" for c in cps[2::4]),
            "".join(f"{c}1 " for c in cps[3::4]),
        ]
    for text in contexts:
        data = text.encode("utf-8")
        got = lib.ends(name, data)
        want = oracle_ends_fast(name, text)
        assert np.array_equal(got, want), name


def test_interface_errors(lib):
    assert lib.raw(0, b"", 0)[0] == 0
    n, out = lib.raw(0, b"a b c", 3)
    assert n == 3 and out.tolist() == [1, 3, 5]
    assert lib.raw(0, b"a b c", 2)[0] == -1
    assert lib.raw(1, b"a b c", 0)[0] == -1
    assert lib.raw(3, b"abc", 3)[0] == -2  # 3 is reserved (2 is GPT-2, 4 Qwen2)
    assert lib.raw(5, b"abc", 3)[0] == -2
    assert lib.raw(1, b"a\xffb", 3)[0] == -3
    assert lib.raw(0, b"\xed\xa0\x80", 3)[0] == -3  # surrogate


# ---------------------------------------------------------------------------------------------
# Corpora: every file in the shared corpora directory, plus generated text


def corpora_dir() -> Path | None:
    for d in (os.environ.get("ARROWTOK_CORPORA"), ROOT.parent / "shared" / "corpora", "/work/shared/corpora"):
        if d and Path(d).is_dir():
            return Path(d)
    return None


CORPORA = sorted(p for p in corpora_dir().iterdir() if p.is_file()) if corpora_dir() else []


@pytest.mark.parametrize("path", CORPORA, ids=[p.name for p in CORPORA])
def test_corpus_file(lib, path):
    text = path.read_bytes().decode("utf-8")
    data = text.encode("utf-8")
    for name in ("cl100k", "o200k"):
        got = lib.ends(name, data)
        want = oracle_ends_fast(name, text)
        if not np.array_equal(got, want):
            k = int(np.argmax(got[: min(len(got), len(want))] != want[: min(len(got), len(want))]))
            pytest.fail(f"{name} {path.name}: first difference at piece {k}: ours {got[k]} oracle {want[k]}; "
                        f"context {data[max(0, int(want[k]) - 40):int(want[k]) + 40]!r}")
        if len(data) <= 1_000_000:
            tiktoken_confirms(name, [data], [got.tolist()])


def test_corpora_present_or_skipped():
    if not CORPORA:
        pytest.skip("no shared corpora directory; the generated-text tests still run")


def generated_text(seed: int, n: int) -> str:
    """Mixed-script text with the constructs the patterns distinguish."""
    rng = random.Random(seed)
    words = ["the", "The", "THE", "don't", "WON'T", "it'ſ", "we'Re", "camelCase", "HTTPServer", "naïve",
             "Ǆemal", "ʰello", "中文", "日本語", "한국어", "Привет", "مرحبا", "שלום", "नमस्ते", "ไทย",
             "12345", "3.14", "٣٤", "Ⅻ", "½", "e\u0301", "\u0301x", "👋🏽", "👨‍👩‍👧", "...", "!?", "//", "/*",
             "#", "@@", "'", "''", "'s", "'LL", "\u00a0", "\u3000", "\u2028", "\u0085", "\x00"]
    seps = [" ", "  ", "   ", "\n", "\r\n", "\n\n", " \n", "\t", "\t\t", "", "", "", " ", " ", "\u00a0", " \r\n "]
    return "".join(rng.choice(words) + rng.choice(seps) for _ in range(n))


@pytest.mark.parametrize("name", ["cl100k", "o200k"])
@pytest.mark.parametrize("seed", range(4))
def test_generated_text(libs, name, seed):
    text = generated_text(seed, 20_000)
    for lib in libs.values():
        data = text.encode("utf-8")
        got = lib.ends(name, data)
        assert np.array_equal(got, oracle_ends_fast(name, text))
    tiktoken_confirms(name, [data], [got.tolist()])


@pytest.mark.parametrize("name", ["cl100k", "o200k"])
def test_many_short_random_strings_confirmed_by_tiktoken(safe_lib, name):
    rng = random.Random(11)
    datas, ends_list = [], []
    for _ in range(3000):
        text = "".join(rng.choice(TRICKY) for _ in range(rng.randint(1, 16)))
        data = text.encode("utf-8")
        ends = safe_lib.ends(name, data).tolist()
        assert ends == oracle_ends(name, text), text
        datas.append(data)
        ends_list.append(ends)
    tiktoken_confirms(name, datas, ends_list)


# ---------------------------------------------------------------------------------------------
# Property tests

TRICKY = list("' sStTdDmMlLvVeErR") + ["ſ", "\u212a", "\r", "\n", "\t", " ", "\u00a0", "\u3000", "/", "1", "a", "A",
                                         "ǅ", "ʰ", "中", "\u0301", "◌", ".", "!", "\x00", "٣", "Ⅻ", "\u2028", "k", "K"]

any_char = st.characters(codec="utf-8")  # every category, unassigned code points included
tricky_char = st.sampled_from(TRICKY)
chunks = st.sampled_from([
    "'s", "'S", "'ſ", "'ll", "'LL", "'lL", "'ve", "'VE", "'re", "'Re", "'m", "'d", "'t", "'x", "''",
    "  ", "   ", " \n", "\r\n", "\n\n", "\t ", " \u00a0", "123", "1234567", "abc", "ABC", "AbC", "aBC",
    "ǅa", "ʰA", "A\u0301", "\u0301\u0301", "//", "/\n", "!/", " !", " 1", " a", " A", "中文",
])
text_any = st.text(alphabet=any_char, max_size=40)
text_tricky = st.text(alphabet=tricky_char, max_size=40)
text_mixed = st.lists(st.one_of(any_char, tricky_char, chunks), max_size=30).map("".join)

# PRETOK_MAX_EXAMPLES=50000 for a long soak run.
SETTINGS = settings(max_examples=int(os.environ.get("PRETOK_MAX_EXAMPLES", "2000")), deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)


@pytest.mark.parametrize("name", ["cl100k", "o200k"])
@SETTINGS
@given(text=text_any)
def test_property_any_unicode(safe_lib, name, text):
    check(safe_lib, name, text)


@pytest.mark.parametrize("name", ["cl100k", "o200k"])
@SETTINGS
@given(text=text_tricky)
def test_property_tricky_alphabet(safe_lib, name, text):
    check(safe_lib, name, text)


@pytest.mark.parametrize("name", ["cl100k", "o200k"])
@SETTINGS
@given(text=text_mixed)
def test_property_mixed_chunks(safe_lib, name, text):
    check(safe_lib, name, text)


@pytest.mark.parametrize("name", ["cl100k", "o200k"])
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=text_mixed, cut=st.integers(0, 1000))
def test_property_next_piece_starts_anywhere(safe_lib, name, text, cut):
    """Splitting the suffix that starts at any of our piece boundaries gives the same pieces."""
    data = text.encode("utf-8")
    ends = safe_lib.ends(name, data).tolist()
    if not ends:
        return
    start = ([0] + ends)[cut % len(ends)]
    rest = safe_lib.ends(name, data[start:]).tolist()
    assert [e + start for e in rest] == [e for e in ends if e > start]


# ---------------------------------------------------------------------------------------------
# Pathological inputs (linear by construction; these check that they finish and are right)

MB = 1 << 20
PATHOLOGICAL = {
    "letter": "a" * MB,
    "upper": "A" * MB,
    "spaces": " " * MB,
    "spaces_then_x": " " * MB + "x",
    "newlines": "\n" * MB,
    "digits": "7" * MB,
    "random_word": "".join(random.Random(1).choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                           for _ in range(MB)),
    "marks": "a" + "\u0301" * 10_000,
    "marks_alone": "\u0301" * 10_000 + "A",
    "both_then_upper": "ʰ" + "A" * (MB // 2) + " ",
    "space_newline": " \n" * (MB // 2),
    "apostrophes": "'" * MB,
    "apostrophe_s": "'s" * (MB // 2),
    "tabs_then_letter": "\t" * MB + "a",
    "nbsp": "\u00a0" * (MB // 2) + "!",
}


@pytest.mark.parametrize("name", ["cl100k", "o200k"])
@pytest.mark.parametrize("case", sorted(PATHOLOGICAL))
def test_pathological(lib, name, case):
    text = PATHOLOGICAL[case]
    got = lib.ends(name, text.encode("utf-8"))
    assert np.array_equal(got, oracle_ends_fast(name, text))
