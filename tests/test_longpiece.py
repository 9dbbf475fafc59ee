"""Long pieces: the backtracking encoder (zig/longpiece.zig) vs the tiktoken oracle and vs the heap
merge it replaced, on hypothesis-made pieces, corpus words run together, and 1-10 MB runs.

The pieces go straight to BPE through the library's test hook `at_debug_encode_piece` (algo 0: the
library's own path with its caches, 1: the heap merge, 2: the backtracking encoder), so a piece is
exactly what the merge sees, whatever the pretokenizer would make of it. The oracle for one piece
is tiktoken's `_encode_single_piece`."""
from __future__ import annotations

import ctypes as C
import os
import random
import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arrowtok
import arrowtok._native as N
from oracle import SHARED_CORPORA, oracle

LIBRARY, HEAP, LONG = 0, 1, 2
NAMES = ["cl100k_base", "o200k_base"]
MAX_EXAMPLES = int(os.environ.get("ARROWTOK_MAX_EXAMPLES", "60"))

_hook = getattr(N.lib, "at_debug_encode_piece", None)
pytestmark = pytest.mark.skipif(_hook is None, reason="library built without the long-piece test hook")
if _hook is not None:
    _hook.argtypes = [C.c_void_p, C.c_char_p, C.c_size_t, C.c_uint32, C.c_void_p, C.c_size_t,
                      C.POINTER(C.c_int64)]
    _hook.restype = C.c_int32
    N.lib.at_debug_check_long.argtypes = [C.c_void_p]
    N.lib.at_debug_check_long.restype = C.c_int64


def encode_piece(name: str, data: bytes, algo: int) -> list[int]:
    enc = arrowtok.get_encoding(name)
    out = np.empty(max(len(data), 1), np.uint32)
    n = C.c_int64()
    st_ = _hook(enc._vocab.handle, data, len(data), algo, out.ctypes.data, out.size, C.byref(n))
    assert st_ == 0, f"at_debug_encode_piece({algo}) -> {st_}"
    return out[: n.value].tolist()


def first_diff(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def check(name: str, data: bytes, *, oracle_too: bool = True) -> None:
    long_ = encode_piece(name, data, LONG)
    heap = encode_piece(name, data, HEAP)
    if long_ != heap:
        i = first_diff(long_, heap)
        pytest.fail(f"{name}: {len(data)} B {data[:40]!r}...: backtracking vs heap differ at token {i}: "
                    f"{long_[max(0, i - 3):i + 3]} vs {heap[max(0, i - 3):i + 3]}")
    assert encode_piece(name, data, LIBRARY) == heap
    if oracle_too:
        assert heap == oracle(name)._encode_single_piece(data), f"{name}: heap vs tiktoken on {data[:40]!r}"


@pytest.mark.parametrize("name", NAMES)
def test_every_split_is_the_merge_loops_last_merge(name):
    """The load-time split table (from pair-table candidates) equals a merge run per token."""
    assert N.lib.at_debug_check_long(arrowtok.get_encoding(name)._vocab.handle) == 0


# Pieces. Long enough to take the backtracking encoder (33+ bytes), short enough for the oracle.
ALPHABETS = ["ab", "abc", "aeiou", "xyz", "a ", " \n", "0123456789", "abcdefghijklmnopqrstuvwxyz",
             "é中a", "жзи", "ا ب", "日本語", "🙂a", "\t ", "!=-", "ab\u0301"]


@st.composite
def small_alphabet(draw):
    alphabet = draw(st.sampled_from(ALPHABETS))
    return draw(st.text(alphabet=alphabet, min_size=40, max_size=2500)).encode()


@st.composite
def repeated_pattern(draw):
    unit = draw(st.text(min_size=1, max_size=8))
    reps = draw(st.integers(min_value=1, max_value=400))
    tail = draw(st.text(max_size=3))
    return (unit * max(reps, 40 // max(len(unit.encode()), 1) + 1) + tail).encode("utf-8", "surrogatepass")


cjk = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=12,
              max_size=900).map(str.encode)
letters_and_marks = st.text(alphabet=st.characters(categories=["L", "M"]), min_size=12,
                            max_size=900).map(str.encode)
whitespace = st.text(alphabet=st.sampled_from([" ", "\n", "\t", "\r", "\u3000", "\xa0"]), min_size=33,
                     max_size=3000).map(str.encode)
raw_bytes = st.binary(min_size=33, max_size=2500)
pieces = st.one_of(small_alphabet(), repeated_pattern(), cjk, letters_and_marks, whitespace, raw_bytes)


@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(NAMES), pieces)
def test_hypothesis_long_pieces(name, data):
    check(name, data)


def _random_piece(rng: random.Random) -> bytes:
    n = rng.randrange(100, 16_000)
    kind = rng.randrange(8)
    if kind == 7:  # runs of punctuation between letters: back-ups come and go
        parts = []
        while sum(map(len, parts)) < n:
            parts.append(rng.choice("-=_*#~.") * rng.randrange(1, 3000))
            parts.append("".join(rng.choice("abcxyz-=") for _ in range(rng.randrange(0, 300))))
        return "".join(parts).encode()[:n]
    if kind == 0:  # a small alphabet
        alphabet = rng.choice(ALPHABETS)
        return "".join(rng.choice(alphabet) for _ in range(n)).encode()
    if kind == 1:  # a repeated unit with some noise
        unit = "".join(rng.choice("abcde \n日é") for _ in range(rng.randrange(1, 7)))
        s = list(unit * (n // len(unit)))
        for _ in range(rng.randrange(4)):
            s[rng.randrange(len(s))] = rng.choice("xyz")
        return "".join(s).encode()
    if kind == 2:  # CJK
        return "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(n // 3)).encode()
    if kind == 3:  # letters from several scripts
        blocks = [(0x41, 0x5A), (0x61, 0x7A), (0x400, 0x44F), (0x3B1, 0x3C9), (0x627, 0x64A), (0x905, 0x939),
                  (0xAC00, 0xD7A3), (0x3041, 0x3096)]
        return "".join(chr(rng.randint(*rng.choice(blocks))) for _ in range(n // 2)).encode()
    if kind == 4:  # whitespace runs
        return "".join(rng.choice([" ", " ", " ", "\n", "\t", "\r\n"]) for _ in range(n)).encode()
    if kind == 5:  # random UTF-8 letters (valid multi-byte sequences)
        return "".join(chr(rng.choice([rng.randint(0x80, 0x7FF), rng.randint(0x800, 0xFFFF) & 0xCFFF | 0x1000,
                                       rng.randint(0x10000, 0x10FFFF)])) for _ in range(n // 3)
                       ).encode("utf-8", "surrogatepass")
    return rng.randbytes(n)


@pytest.mark.parametrize("name", NAMES)
def test_random_long_pieces(name):
    rng = random.Random(99 + NAMES.index(name))
    for _ in range(70):
        check(name, _random_piece(rng))


def _words() -> list[str]:
    words: list[str] = []
    for f in ["en_gutenberg_moby_dick.txt", "fr_gutenberg_candide.txt", "ru_debian_faq.txt",
              "ko_debian_faq.txt", "ml_udhr_core.txt", "code_python_stdlib.txt"]:
        p = SHARED_CORPORA / f
        if p.exists():
            words += re.findall(r"\w+", p.read_text(encoding="utf-8")[:300_000])
    return words


@pytest.mark.parametrize("name", NAMES)
def test_corpus_words_run_together(name):
    words = _words()
    if not words:
        pytest.skip("shared corpora not present")
    rng = random.Random(2024)
    ref = oracle(name)
    for _ in range(60):
        k = rng.randrange(5, 400)
        start = rng.randrange(max(1, len(words) - k))
        text = "".join(words[start:start + k])
        check(name, text.encode())
    # through the public API: words without spaces are one long letter piece each
    text = "".join(words[:20_000])[:60_000]
    assert arrowtok.get_encoding(name).encode_ordinary(text) == ref.encode_ordinary(text)


def _cut_pieces(name: str, rng: random.Random) -> list[bytes]:
    """Long pieces of the kind that cut where no token can cross (vocab.zig `mergeCut`): random
    ideographs, kana, Hangul, Thai, such scripts mixed with Latin letters, and runs of the
    vocabulary's own multi-character CJK tokens (which do join across code points)."""
    blocks = {"cjk": [(0x4E00, 0x9FA5)], "kana": [(0x3041, 0x3096), (0x30A1, 0x30FA)],
              "hangul": [(0xAC00, 0xD7A3)], "thai": [(0x0E01, 0x0E3A), (0x0E40, 0x0E4E)],
              "mixed": [(0x4E00, 0x9FA5), (0x3041, 0x3096), (0x61, 0x7A), (0x430, 0x44F), (0xAC00, 0xD7A3)]}
    pieces = []
    for kind, ranges in blocks.items():
        for _ in range(12):
            n = rng.choice([12, 40, 200, 1500, 6000])
            pieces.append("".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(n)).encode())
    ref = oracle(name)
    multi = []
    for i in range(ref.n_vocab):
        try:
            t = ref.decode_single_token_bytes(i).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            continue
        if len(t) >= 2 and all(0x3040 <= ord(c) <= 0x9FFF for c in t):
            multi.append(t)
    for _ in range(30):
        k = rng.choice([3, 20, 100, 600])
        pieces.append("".join(rng.choice(multi) if rng.random() < 0.6 else chr(rng.randint(0x4E00, 0x9FA5))
                              for _ in range(k)).encode())
    return pieces


@pytest.mark.parametrize("name", NAMES)
def test_pieces_cut_where_no_token_crosses(name):
    """Long pieces of CJK and other scripts are cut where no token of the vocabulary can cross
    and their parts encoded on their own (code points through a table, words through the piece
    tables): the library path equals the heap merge and tiktoken, cold and after its tables have
    met the parts as pieces of their own; and through the public API."""
    rng = random.Random(31 + NAMES.index(name))
    enc = arrowtok.get_encoding(name)
    ref = oracle(name)
    pieces = _cut_pieces(name, rng)
    for data in pieces:
        if len(data) >= 33:
            check(name, data, oracle_too=len(data) <= 6000)
    # The parts as pieces of their own first (digits between them: a digit ends a letter piece
    # and starts none), so that the tables hold them.
    for data in pieces[-10:]:
        text = data.decode()
        spaced = "7".join(text[i:i + rng.randint(1, 3)] for i in range(0, len(text), 2))
        assert enc.encode_ordinary(spaced) == ref.encode_ordinary(spaced)
        assert encode_piece(name, data, LIBRARY) == ref._encode_single_piece(data)
        assert enc.encode_ordinary(text) == ref.encode_ordinary(text)


def _pathological() -> dict[str, bytes]:
    rng = random.Random(1234)
    mb = 1_000_000
    return {
        "a": b"a" * mb,
        "spaces": b" " * mb,
        "newlines": b"\n" * mb,
        "random letters": bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(mb)),
        "cjk": "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(mb // 3)).encode(),
        "abc": bytes(rng.choice(b"abc") for _ in range(mb)),
        "ab repeated": b"ab" * (mb // 2),
        # runs whose longest tokens are wrong at every step (the guess mode's case)
        "dashes": b"-" * mb,
        "equals": b"=" * mb,
    }


@pytest.mark.parametrize("name", NAMES)
def test_pathological_megabyte_pieces(name):
    ref = oracle(name)
    for kind, data in _pathological().items():
        check(name, data, oracle_too=False)
        head = data[:12_000]  # the oracle's merge is quadratic: a prefix
        assert encode_piece(name, head, LONG) == ref._encode_single_piece(head), kind


@pytest.mark.parametrize("name", NAMES)
def test_pathological_text_through_the_public_api(name, monkeypatch):
    """encode_ordinary of the 1 MB inputs equals the heap merge applied to the same pieces, on
    1 to 5 threads (a long piece on several threads is cut into segments joined at compatible
    token boundaries, zig/longpar.zig; a text is cut at line starts and between words)."""
    enc = arrowtok.get_encoding(name)
    rng = random.Random(99)
    inputs = _pathological()
    inputs["dna"] = bytes(rng.choice(b"ACGT") for _ in range(700_000))
    inputs["mixed case"] = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(600_000))
    inputs["cyrillic"] = "".join(chr(rng.randint(0x0400, 0x04FF)) for _ in range(200_000)).encode()
    for kind, data in inputs.items():
        want: list[int] = []
        start = 0
        for end in piece_ends(name, data):
            p = data[start:end]
            rank = N.lib.at_vocab_rank(enc._vocab.handle, p, len(p))
            want += [rank] if rank >= 0 else encode_piece(name, p, HEAP)
            start = end
        text = data.decode()
        for threads in (1, 2, 3, 5):
            monkeypatch.setenv("ARROWTOK_NUM_THREADS", str(threads))
            assert enc.encode_ordinary(text) == want, (kind, threads)
            assert enc.encode_to_numpy(text, disallowed_special=()).tolist() == want, (kind, threads)


def piece_ends(name: str, data: bytes) -> list[int]:
    """The pretokenizer's piece ends (at_pretokenize: 0 cl100k, 1 o200k)."""
    f = N.lib.at_pretokenize
    f.argtypes = [C.c_uint32, C.c_char_p, C.c_size_t, C.c_void_p, C.c_size_t]
    f.restype = C.c_int64
    ends = np.empty(len(data) + 1, np.uint64)
    n = f(NAMES.index(name), data, len(data), ends.ctypes.data, ends.size)
    assert n >= 0
    return ends[:n].tolist()


@pytest.mark.parametrize("name", NAMES)
def test_ten_megabytes_of_one_letter_is_linear(name):
    small, big = b"a" * 1_000_000, b"a" * 10_000_000

    def best(data: bytes) -> float:
        ts = []
        for _ in range(3):
            t0 = time.process_time()
            out = encode_piece(name, data, LIBRARY)
            ts.append(time.process_time() - t0)
        return min(ts), out

    t_small, _ = best(small)
    t_big, out = best(big)
    assert out == encode_piece(name, big, HEAP)
    # linear: 10x the bytes, about 10x the time (generous bound for a shared machine)
    assert t_big < 40 * t_small + 0.05, (t_small, t_big)
