"""Hugging Face `tokenizer.json` byte-level BPE models (GPT-2, Llama 3, Qwen2, DeepSeek and kin).

    enc = arrowtok.Encoding.from_tokenizer_json("tokenizer.json")   # or arrowtok.hf.from_tokenizer_json
    enc.encode(text, allowed_special="all")    # == tokenizers' encode(text, add_special_tokens=False).ids
    enc.encode_arrow(column)                   # list<int32> column

What is read from the file
--------------------------
* model: type BPE; vocab strings are GPT-2 byte-to-unicode escapes, mapped back to bytes; merges
  in either form ("a b" strings or [a, b] lists) become (left id, right id) pairs in priority
  order; `ignore_merges`. Rejected (ValueError): dropout, a continuing-subword prefix or
  end-of-word suffix, vocabularies that are not byte-level (no ByteLevel pre-tokenizer).
* normalizer: null, NFC / NFD / NFKC / NFKD, or a Sequence of these (columns:
  `pyarrow.compute.utf8_normalize`; strings: `unicodedata.normalize`). Anything else: ValueError.
* pre_tokenizer: ByteLevel (`use_regex`, `add_prefix_space`), Split (Regex or String pattern,
  behavior Isolated, invert false), Digits, and Sequences of these. Anything else: ValueError.
* added_tokens: split out of the text before normalization and pre-tokenization, leftmost-longest
  like tokenizers does; `lstrip` / `rstrip` are honoured; `single_word` is rejected.

Special and added tokens
------------------------
Tokens with `special: false` in `added_tokens` are always split out (tokenizers does so in every
encode). Tokens with `special: true` follow arrowtok's (tiktoken's) rules: `encode` raises on
their text unless `allowed_special` / `disallowed_special` say otherwise, `encode_ordinary` and the
column calls (`encode_arrow`, `count_tokens_arrow`, the Polars / DuckDB paths) treat their text as
ordinary text unless `allowed_special` is given. tokenizers' `encode(text, add_special_tokens=False)`
equals `enc.encode(text, allowed_special="all")`; with `tok.encode_special_tokens = True` it equals
`enc.encode_ordinary(text)` and the default column path.

Fast and slow paths
-------------------
When the pre-tokenizer is a single regex that one of the Zig scanners implements (the cl100k_base
pattern, in tiktoken's or Llama 3's spelling; the o200k_base pattern; and any scanner that
zig/pretok.zig adds, found at run time and checked on a probe text), encoding runs entirely in Zig,
multi-threaded, like a tiktoken encoding. Any other pre-tokenizer (GPT-2's ByteLevel regex,
DeepSeek's three Splits, ...) takes a correct slower path: the `regex` package splits each row
into pieces in Python and Zig does the BPE (`at_encode_pieces`); a warning says so when the
encoding is loaded. `enc.fast_path` tells which one an encoding takes, `enc.slow_reason` why.
"""
from __future__ import annotations

import ctypes as C
import functools
import hashlib
import json
import os
import threading
import unicodedata
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import regex

from . import _native as N
from ._arrow import LIST_INT32, as_chunks
from .encoding import ENDOFTEXT, ArrowtokError, Encoding, _SpecialSet, _Vocab

__all__ = ["HFEncoding", "from_tokenizer_json", "bytes_to_unicode", "GPT2_PATTERN", "SlowPathWarning"]


class SlowPathWarning(UserWarning):
    """The tokenizer's pre-tokenizer has no Zig scanner: the slower regex path is used."""


# ---- GPT-2's byte <-> unicode table ----------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map of the 256 bytes to printable code points (byte-level BPE vocab strings)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


_B2U = bytes_to_unicode()
_U2B = {c: b for b, c in _B2U.items()}


def _token_bytes(s: str) -> bytes | None:
    try:
        return bytes(_U2B[c] for c in s)
    except KeyError:
        return None


# ---- pre-tokenizer patterns ----------------------------------------------------------------

# ByteLevel(use_regex=true) in tokenizers.
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
CL100K_PATTERN = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"
# cl100k_base as tiktoken spelled it before 0.7, and as Llama 3's tokenizer.json spells it.
LLAMA3_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
O200K_PATTERN = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"\s*[\r\n]+",
    r"\s+(?!\S)",
    r"\s+",
])
# Qwen2: Llama 3's pattern with single digits.
QWEN2_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
R50K_PATTERN = r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"

# Scanner name -> (id in zig/pretok.zig's Pattern enum, spellings of its regex). cl100k and o200k
# exist; gpt2 / llama3 / qwen2 are the ids a colleague may add: each is used only if the library
# accepts the id and the scanner splits the probe text exactly as the regex does.
SCANNERS: dict[str, tuple[int, tuple[str, ...]]] = {
    # Not CL100K_PATTERN: in tokenizers (Oniguruma, Ruby syntax) its `\s++$` means end of *line*,
    # so that spelling splits differently there than in tiktoken (see tests/test_hf.py).
    "cl100k": (0, (LLAMA3_PATTERN,)),
    "o200k": (1, (O200K_PATTERN,)),
    "gpt2": (2, (GPT2_PATTERN,)),
    "qwen2": (4, (QWEN2_PATTERN,)),
}

_PROBE = ("Hello world's THE'LL 12345 6 x1y2 ab-cd  \n\n \t  foo\r\nbar!!! ?? (a)b \u00e9\u0301 Ünïcode "
          "日本語テキスト 한국어 مرحبا 😀👍🏽 ...\n  \n'S 'Ll don't I'M  9/11 ab/cd a\u0300b   ")


def _norm_pattern(p: str) -> str:
    return p.strip()


_INTERVAL_PLUS = regex.compile(r"\{\d+(?:,\d*)?\}\+")


def _atom_start(p: str, end: int) -> int:
    """Start of the regex atom that ends just before p[end] (a class, group, \\p{..}, escape or char)."""
    j = end - 1
    c = p[j]
    if c == "]":
        k = j - 1
        while k >= 0:
            if p[k] == "[" and (k == 0 or p[k - 1] != "\\") and p[k:k + 2] != "[:":
                depth = p.count("[", k, j) - p.count("\\[", k, j)
                closes = p.count("]", k, j + 1) - p.count("\\]", k, j + 1)
                if depth == closes:
                    return k
            k -= 1
        raise ValueError(f"cannot parse the pattern {p!r}")
    if c == ")":
        depth = 0
        for k in range(j, -1, -1):
            if p[k] in "()" and (k == 0 or p[k - 1] != "\\"):
                depth += 1 if p[k] == ")" else -1
                if depth == 0:
                    return k
        raise ValueError(f"cannot parse the pattern {p!r}")
    if c == "}":
        m = regex.search(r"\\[pP]\{[^{}]*\}$", p[:end])
        if m:
            return m.start()
    if j >= 1 and p[j - 1] == "\\":
        return j - 1
    return j


def onig_to_python(p: str) -> str:
    """Rewrite Oniguruma (Ruby syntax) constructs that mean something else in the `regex` package:
    `X{n,m}+` is a greedy repeat of `X{n,m}` there (not possessive): `(?:X{n,m})+`."""
    while True:
        m = _INTERVAL_PLUS.search(p)
        if not m:
            return p
        a = _atom_start(p, m.start())
        p = p[:a] + "(?:" + p[a:m.end() - 1] + ")+" + p[m.end():]


@functools.lru_cache(maxsize=None)
def _scanner_for(pattern: str) -> int | None:
    """The Zig scanner id that splits exactly like `pattern`, or None."""
    p = _norm_pattern(pattern)
    for _name, (sid, spellings) in SCANNERS.items():
        if p in spellings and _scanner_agrees(sid, p):
            return sid
    return None


def _scanner_agrees(sid: int, pattern: str) -> bool:
    data = _PROBE.encode()
    ends = np.zeros(len(data) + 1, np.uint64)
    n = N.lib.at_pretokenize(sid, data, len(data), ends.ctypes.data, len(ends))
    if n < 0:
        return False
    want = []
    pos = 0
    for m in regex.finditer(pattern, _PROBE):
        if m.start() != pos:  # a gap: isolated pieces tile the text
            want.append(len(_PROBE[:m.start()].encode()))
        want.append(len(_PROBE[:m.end()].encode()))
        pos = m.end()
    if pos != len(_PROBE):
        want.append(len(data))
    return ends[:n].tolist() == want


# ---- ctypes signatures of the merge-list entry points ----------------------------------------

_P = C.c_void_p
N.lib.at_vocab_load_merges.argtypes = [_P, _P, _P, C.c_size_t, _P, C.c_size_t, C.c_uint32, C.c_uint32,
                                       C.POINTER(_P), C.POINTER(C.c_uint64)]
N.lib.at_vocab_load_merges.restype = C.c_int32
N.lib.at_encode_pieces.argtypes = [_P, _P, _P, C.c_size_t, _P, C.c_size_t, C.POINTER(C.c_int64)]
N.lib.at_encode_pieces.restype = C.c_int32


def _load_vocab(tokens: list[bytes], ids: list[int], merges: np.ndarray, pattern: int,
                ignore_merges: bool, added: dict[str, int]) -> _Vocab:
    blob = b"".join(tokens)
    offs = np.zeros(len(tokens) + 1, np.uint32)
    offs[1:] = np.cumsum([len(t) for t in tokens])
    ida = np.asarray(ids, np.uint32)
    m = np.ascontiguousarray(merges, np.uint32).reshape(-1)
    h = C.c_void_p()
    bad = C.c_uint64()
    buf = C.create_string_buffer(blob, max(1, len(blob)))
    st = N.lib.at_vocab_load_merges(buf, offs.ctypes.data, ida.ctypes.data, len(tokens), m.ctypes.data if m.size else None,
                                    m.size // 2, pattern, int(ignore_merges), C.byref(h), C.byref(bad))
    if st != N.OK:
        what = N.STATUS.get(st, st)
        if st == N.BAD_VOCAB and bad.value and merges.size:
            k = bad.value - 1
            if k < len(merges):
                what += f" (merge #{k}: ids {int(merges[k][0])}, {int(merges[k][1])} do not make a token of the vocab)"
        elif st == N.TOO_LARGE:
            what += " (ids and merges must be < 2**20)"
        elif st == N.BAD_VOCAB:
            what += " (duplicate tokens, or a single byte missing: byte-level BPE needs all 256)"
        raise ValueError(f"could not load the tokenizer.json vocabulary: {what}")
    v = object.__new__(_Vocab)
    v.handle = h.value
    names = list(added)
    enc_names = [s.encode() for s in names]
    v._blob = C.create_string_buffer(b"".join(enc_names), max(1, sum(map(len, enc_names))))
    soffs = np.zeros(len(names) + 1, np.uint32)
    if names:
        soffs[1:] = np.cumsum([len(e) for e in enc_names])
    sids = np.array([added[s] for s in names], np.uint32)
    st = N.lib.at_vocab_set_specials(v.handle, v._blob, soffs.ctypes.data, sids.ctypes.data, len(names))
    if st != N.OK:
        raise MemoryError("arrowtok: could not store added tokens")
    v.n_ids = N.lib.at_vocab_n_ids(v.handle)
    return v


# ---- tokenizer.json parsing --------------------------------------------------------------------

_NORM_FORMS = {"NFC", "NFD", "NFKC", "NFKD"}


def _normalizers(cfg: dict | None) -> list[str]:
    if cfg is None:
        return []
    t = cfg.get("type")
    if t in _NORM_FORMS:
        return [t]
    if t == "Sequence":
        out: list[str] = []
        for sub in cfg.get("normalizers", []):
            out += _normalizers(sub)
        return out
    raise ValueError(f"tokenizer.json: normalizer {t!r} is not supported by arrowtok "
                     f"(supported: {sorted(_NORM_FORMS)} and Sequence of them)")


def _stages(cfg: dict | None, out: list, seen_bytelevel: list) -> None:
    """Pre-tokenizer stages: ("split", compiled regex) or ("prefix",)."""
    if cfg is None:
        return
    t = cfg.get("type")
    if t == "Sequence":
        for sub in cfg.get("pretokenizers", []):
            _stages(sub, out, seen_bytelevel)
    elif t == "ByteLevel":
        seen_bytelevel.append(True)
        if cfg.get("add_prefix_space", True):
            out.append(("prefix", None))
        if cfg.get("use_regex", True):
            out.append(("split", GPT2_PATTERN))
    elif t == "Split":
        pat = cfg.get("pattern", {})
        if "Regex" in pat:
            p = pat["Regex"]
        elif "String" in pat:
            p = regex.escape(pat["String"])
        else:
            raise ValueError(f"tokenizer.json: Split pattern {pat!r} is not supported")
        if cfg.get("behavior", "Isolated") != "Isolated" or cfg.get("invert", False):
            raise ValueError(f"tokenizer.json: Split with behavior {cfg.get('behavior')!r}, invert "
                             f"{cfg.get('invert')!r} is not supported (only Isolated, invert false)")
        out.append(("split", p))
    elif t == "Digits":
        out.append(("split", r"\p{N}" if cfg.get("individual_digits", False) else r"\p{N}+"))
    else:
        raise ValueError(f"tokenizer.json: pre_tokenizer {t!r} is not supported by arrowtok "
                         "(supported: ByteLevel, Split, Digits, Sequence)")


def _read_json(source) -> tuple[dict, str | None, str]:
    if isinstance(source, dict):
        text = json.dumps(source)
        return source, None, text
    p = Path(source)
    if not p.is_file():
        raise FileNotFoundError(f"tokenizer.json not found: {p}")
    raw = p.read_bytes()
    if p.suffix == ".xz":
        import lzma
        raw = lzma.decompress(raw)
    elif p.suffix == ".gz":
        import gzip
        raw = gzip.decompress(raw)
    return json.loads(raw), str(p), raw.decode()


# ---- the encoding ----------------------------------------------------------------------------


class HFEncoding(Encoding):
    """An `arrowtok.Encoding` loaded from a Hugging Face tokenizer.json (byte-level BPE)."""

    _utf8_views = False  # _encode_utf8 below may decode its input again: it needs bytes
    _fast_text = False  # and it adds normalizers and added tokens: every text goes through it

    def __init__(self, source, *, name: str | None = None, warn: bool = True):
        cfg, path, text = _read_json(source)
        self._source = path if path is not None else text
        self.source_path = path  # None when loaded from a dict
        self.sha256 = hashlib.sha256(text.encode()).hexdigest()
        self.name = name or (Path(path).parent.name + "/" + Path(path).name if path else "tokenizer.json")
        model = cfg.get("model") or {}
        if model.get("type", "BPE") != "BPE":
            raise ValueError(f"tokenizer.json: model type {model.get('type')!r}; arrowtok loads byte-level BPE models")
        if model.get("dropout") not in (None, 0, 0.0):
            raise ValueError("tokenizer.json: BPE dropout is not supported (it is random)")
        for key in ("continuing_subword_prefix", "end_of_word_suffix"):
            if model.get(key):
                raise ValueError(f"tokenizer.json: BPE {key}={model[key]!r} is not supported")

        self._norms = _normalizers(cfg.get("normalizer"))
        stages: list = []
        seen_bl: list = []
        _stages(cfg.get("pre_tokenizer"), stages, seen_bl)
        if not seen_bl:
            raise ValueError("tokenizer.json: no ByteLevel pre-tokenizer, so not a byte-level BPE model "
                             "(SentencePiece-style BPE such as Llama 2's is not supported)")
        # tokenizers compiles Split patterns with Oniguruma's Ruby syntax, where ^ and $ match at
        # line boundaries: regex.MULTILINE gives the same.
        # `X{n,m}+` is not possessive there either (onig_to_python).
        self._stages = [(k, regex.compile(onig_to_python(p), regex.MULTILINE) if p is not None else None)
                        for k, p in stages]
        splits = [p for k, p in stages if k == "split"]
        has_prefix = any(k == "prefix" for k, _ in stages)
        scanner = _scanner_for(splits[0]) if len(splits) == 1 and not has_prefix else None
        if has_prefix:
            self.slow_reason = "ByteLevel add_prefix_space=true (no scanner prepends the space)"
        elif len(splits) != 1:
            self.slow_reason = f"{len(splits)} split stages" + (": " + " then ".join(map(repr, splits)) if splits else "")
        elif scanner is None:
            self.slow_reason = f"the split pattern {splits[0]!r} has no Zig scanner"
        else:
            self.slow_reason = None
        self.fast_path = scanner is not None
        self.pattern = next((n for n, (sid, _) in SCANNERS.items() if sid == scanner), None) if scanner is not None else None

        # vocabulary
        vocab: dict[str, int] = model.get("vocab") or {}
        tokens: list[bytes] = []
        ids: list[int] = []
        skipped: dict[str, int] = {}
        for s, i in vocab.items():
            b = _token_bytes(s)
            if b is None or not b:
                skipped[s] = i
                continue
            tokens.append(b)
            ids.append(int(i))
        merges_cfg = model.get("merges") or []
        merges = np.zeros((len(merges_cfg), 2), np.uint32)
        for k, m in enumerate(merges_cfg):
            parts = m.split(" ") if isinstance(m, str) else m
            if len(parts) != 2:
                raise ValueError(f"tokenizer.json: merge #{k} {m!r} is not a pair")
            a, b = vocab.get(parts[0]), vocab.get(parts[1])
            if a is None or b is None or parts[0] in skipped or parts[1] in skipped:
                raise ValueError(f"tokenizer.json: merge #{k} {m!r} names a token that is not a byte-level vocab entry")
            merges[k] = (a, b)
        self.ignore_merges = bool(model.get("ignore_merges", False))

        # added tokens
        self._added_cfg: dict[str, dict] = {}
        specials: dict[str, int] = {}
        always: dict[str, int] = {}
        # tokenizers ignores the ids written in added_tokens: a token of the model vocab keeps its
        # vocab id, any other gets the next id after the vocab (or after the largest added id).
        # Files written by tokenizers agree with that; a file that does not gets a warning and
        # tokenizers' ids.
        vocab_size = len(vocab)
        given: dict[str, int] = {}
        moved: list[str] = []
        for t in cfg.get("added_tokens") or []:
            content = t["content"]
            if content in given:
                continue
            if content in vocab:
                tid = int(vocab[content])
            elif given:
                mx = max(given.values())
                tid = mx + 1 if mx >= vocab_size else vocab_size
            else:
                tid = vocab_size
            given[content] = tid
            if tid != int(t["id"]):
                moved.append(f"{content!r} {t['id']} -> {tid}")
        if moved:
            warnings.warn(f"tokenizer.json: {len(moved)} added token ids in the file differ from the ids tokenizers "
                          f"assigns when it loads it; using tokenizers' ids: {', '.join(moved[:5])}"
                          + (" ..." if len(moved) > 5 else ""), stacklevel=3)
        for t in cfg.get("added_tokens") or []:
            content, tid = t["content"], given[t["content"]]
            if t.get("single_word"):
                raise ValueError(f"tokenizer.json: added token {content!r} has single_word=true, which arrowtok does not support")
            self._added_cfg[content] = t
            (specials if t.get("special") else always)[content] = tid
        # Vocab entries that are not byte-level strings are only reachable as added tokens.
        for s, i in skipped.items():
            if s not in specials and s not in always:
                warnings.warn(f"tokenizer.json: vocab entry {s!r} (id {i}) is not a byte-level string; it is never produced",
                              stacklevel=3)
        self._always = always
        self._special_tokens = specials
        self._added = {**always, **specials}
        self._vocab = _load_vocab(tokens, ids, merges, scanner if scanner is not None else 0, self.ignore_merges, self._added)
        self.max_token_value = max(self._vocab.n_ids - 1, max(self._added.values(), default=0))
        self._special_token_values = set(specials.values())
        self._special_cache: dict = {}
        self._opts_cache: dict = {}
        self._lock = threading.Lock()
        _fill_base_attributes(self)
        self._eos = self._find_eos(path)
        # Added tokens whose matching cannot be done by the Zig splitter on raw text.
        self._python_split_tokens = {s for s, t in self._added_cfg.items()
                                     if t.get("lstrip") or t.get("rstrip")
                                     or (self._norms and t.get("normalized") and self._normalize(s) != s)}
        if warn and not self.fast_path:
            warnings.warn(f"arrowtok: {self.name}: {self.slow_reason}; the slow path is used "
                          "(regex package in Python per row, BPE in Zig)", SlowPathWarning, stacklevel=3)

    # ---- misc ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<arrowtok.HFEncoding {self.name!r} ({'scanner ' + self.pattern if self.fast_path else 'slow path'})>"

    def __reduce__(self):
        return (_unpickle, (self._source, self.name))

    def _find_eos(self, path: str | None) -> int | None:
        if path:
            cfgp = Path(path).with_name("tokenizer_config.json")
            if cfgp.is_file():
                try:
                    eos = json.loads(cfgp.read_text()).get("eos_token")
                    if isinstance(eos, dict):
                        eos = eos.get("content")
                    if eos in self._added:
                        return self._added[eos]
                except (ValueError, OSError):
                    pass
        for s in (ENDOFTEXT, "<|end_of_text|>", "</s>", "<EOT>", "<｜end▁of▁sentence｜>"):
            if s in self._added:
                return self._added[s]
        return None

    @property
    def eot_token(self) -> int:
        if self._eos is None:
            raise ValueError(f"{self.name}: no end-of-text token known (put tokenizer_config.json with eos_token beside it)")
        return self._eos

    @functools.cached_property
    def special_tokens_set(self) -> set[str]:
        return set(self._special_tokens)

    def encode_single_token(self, text_or_bytes) -> int:
        if isinstance(text_or_bytes, str) and text_or_bytes in self._added:
            return self._added[text_or_bytes]
        return super().encode_single_token(text_or_bytes)

    # ---- special-token policy: non-special added tokens are always split out -----------------

    def _allowed(self, allowed_special) -> dict[str, int]:
        if allowed_special != "all" and allowed_special:
            allowed_special = set(allowed_special) - set(self._always)
        return {**self._always, **super()._allowed(allowed_special)}

    def _special_set(self, allowed: dict[str, int]):
        if not allowed:
            return None
        key = frozenset(allowed)
        s = self._special_cache.get(key)
        if s is None:
            s = _SpecialSet(allowed)
            s.tokens = dict(allowed)
            s = self._special_cache.setdefault(key, s)
        return s

    # ---- normalization and the slow path ------------------------------------------------------

    @functools.cached_property
    def _hf_normalizer(self):
        # tokenizers normalizes with its own (older) Unicode tables: U+1FBF0 SEGMENTED DIGIT ZERO
        # (Unicode 13) stays as it is under its NFKC, Python's and pyarrow's make it "0". Use
        # tokenizers' own normalizer when it is installed; else unicodedata (differs only for
        # characters newer than tokenizers' tables).
        if not self._norms:
            return None
        try:
            from tokenizers import normalizers as tn
        except ImportError:
            return None
        return tn.Sequence([getattr(tn, f)() for f in self._norms])

    def _normalize(self, s: str) -> str:
        if self._hf_normalizer is not None:
            return self._hf_normalizer.normalize_str(s)
        for form in self._norms:
            s = unicodedata.normalize(form, s)
        return s

    @functools.cached_property
    def _split_cache(self) -> dict:
        return {}

    def _added_regexes(self, active: dict[str, int]):
        """(raw-text regex, normalized-text regex) over the active added tokens, leftmost-longest."""
        key = frozenset(active)
        r = self._split_cache.get(key)
        if r is None:
            raw = [s for s in active if not (self._norms and self._added_cfg.get(s, {}).get("normalized"))]
            norm = [s for s in active if s not in raw]

            def build(names, f):
                if not names:
                    return None
                alts = sorted({f(s) for s in names}, key=len, reverse=True)
                return regex.compile("|".join(regex.escape(a) for a in alts))

            r = (build(raw, lambda s: s), build(norm, self._normalize),
                 {self._normalize(s) if s in norm else s: s for s in active})
            self._split_cache[key] = r
        return r

    def _split_added(self, text: str, rx, back: dict) -> list:
        """Segments: str for text, int for an added token's id (lstrip/rstrip honoured)."""
        if rx is None:
            return [text]
        out: list = []
        pos = 0
        for m in rx.finditer(text):
            s, e = m.start(), m.end()
            if s < pos:
                continue
            cfg = self._added_cfg.get(back[m.group()], {})
            if cfg.get("lstrip"):
                while s > pos and text[s - 1].isspace():
                    s -= 1
            if cfg.get("rstrip"):
                while e < len(text) and text[e].isspace():
                    e += 1
            if s > pos:
                out.append(text[pos:s])
            out.append(self._added[back[m.group()]])
            pos = e
        if pos < len(text):
            out.append(text[pos:])
        return out

    def _pieces(self, seg: str) -> list[str]:
        pieces = [seg]
        for kind, rx in self._stages:
            nxt: list[str] = []
            if kind == "prefix":
                nxt = [p if p.startswith(" ") else " " + p for p in pieces]
            else:
                for p in pieces:
                    pos = 0
                    for m in rx.finditer(p):
                        if m.start() > pos:
                            nxt.append(p[pos:m.start()])
                        if m.end() > m.start():
                            nxt.append(m.group())
                        pos = m.end()
                    if pos < len(p):
                        nxt.append(p[pos:])
            pieces = nxt
        return pieces

    def _bpe_text(self, seg: str, out: list[int]) -> None:
        if not seg:
            return
        if self.fast_path and not self._stages_prefix:
            out += Encoding._encode_utf8(self, self._utf8(seg), None)
            return
        bs = [p.encode("utf-8", "surrogatepass") for p in self._pieces(seg)]
        data = b"".join(bs)
        if not data:
            return
        ends = np.cumsum([len(b) for b in bs], dtype=np.uint64)
        toks = np.empty(len(data), np.uint32)
        got = C.c_int64()
        st = N.lib.at_encode_pieces(self._vocab.handle, data, ends.ctypes.data, len(bs), toks.ctypes.data, len(toks), C.byref(got))
        if st != N.OK:
            raise ArrowtokError(f"encode failed: {N.STATUS.get(st, st)}")
        out += toks[: got.value].tolist()

    @functools.cached_property
    def _stages_prefix(self) -> bool:
        return any(k == "prefix" for k, _ in self._stages)

    def _encode_str_slow(self, text: str, active: dict[str, int]) -> list[int]:
        raw_rx, norm_rx, back = self._added_regexes(active)
        out: list[int] = []
        for seg in self._split_added(text, raw_rx, back):
            if isinstance(seg, int):
                out.append(seg)
                continue
            seg = self._normalize(seg)
            for sub in self._split_added(seg, norm_rx, back):
                if isinstance(sub, int):
                    out.append(sub)
                else:
                    self._bpe_text(sub, out)
        return out

    def _needs_python(self, active: dict[str, int]) -> bool:
        """Whether text with these added tokens active must go through the Python splitter."""
        return not self.fast_path or bool(self._python_split_tokens & set(active))

    def _encode_utf8(self, data: bytes, specials, errors: str = "strict", n: int | None = None) -> list[int]:
        # (data is always bytes here: _utf8_views is off; n, when given, is len(data))
        if specials is None:
            specials = self._special_set(self._always)
        active = specials.tokens if specials is not None else {}
        if not self._needs_python(active) and not self._norms:
            return super()._encode_utf8(data, specials, errors)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            if errors != "replace":
                raise ArrowtokError(f"invalid UTF-8 at byte offset {e.start}", None, e.start) from None
            text = data.decode("utf-8", "replace")
        if not self._needs_python(active):
            if not self._norms:
                return super()._encode_utf8(text.encode(), specials)
            normed = self._normalize(text)
            if not active or normed == text:
                return super()._encode_utf8(normed.encode(), specials)
        return self._encode_str_slow(text, active)

    # ---- columns -------------------------------------------------------------------------

    def encode_arrow(self, column, *, threads=None, allowed_special=frozenset(), errors="strict", _max_chunk_values=0):
        return self._column(column, threads, allowed_special, errors, _max_chunk_values, count_only=False)

    def count_tokens_arrow(self, column, *, threads=None, allowed_special=frozenset(), errors="strict"):
        return self._column(column, threads, allowed_special, errors, 0, count_only=True)

    def _column(self, column, threads, allowed_special, errors, max_chunk, count_only):
        if errors not in ("strict", "replace"):
            raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
        active = self._allowed(allowed_special)
        base = Encoding.count_tokens_arrow if count_only else Encoding.encode_arrow
        kw = {} if count_only else {"_max_chunk_values": max_chunk}
        if not self._needs_python(active) and not self._norms:
            return base(self, column, threads=threads, allowed_special=allowed_special, errors=errors, **kw)
        chunks, single = as_chunks(column, "encode_arrow")
        texts = [self._text_chunk(a, errors, column) for a in chunks]
        out = []
        for arr in texts:
            if self._needs_python(active):
                res = self._slow_chunk(arr, active)
            else:
                normed = arr
                for form in self._norms:
                    normed = pc.utf8_normalize(normed, form)
                res = Encoding.encode_arrow(self, normed, threads=threads, allowed_special=allowed_special,
                                            _max_chunk_values=max_chunk)
                # Rows that normalization changes are encoded again one by one (exact): added
                # tokens split before normalization, and tokenizers' Unicode tables are older
                # than pyarrow's (see _hf_normalizer). A row pyarrow leaves alone, tokenizers
                # leaves alone too (normalization is stable for assigned characters).
                changed = pc.fill_null(pc.not_equal(normed, arr), False)
                rows = np.flatnonzero(changed.to_numpy(zero_copy_only=False))
                if rows.size:
                    res = self._patch(res, arr, rows, active)
            if count_only:
                res = pc.cast(pc.list_value_length(res), pa.uint32())
            out.append(res)
        if single and len(out) == 1:
            return out[0]
        typ = pa.uint32() if count_only else LIST_INT32
        return pa.chunked_array(out, type=typ)

    def _text_chunk(self, arr: pa.Array, errors: str, original) -> pa.Array:
        if isinstance(arr, pa.DictionaryArray):
            arr = arr.dictionary_decode()
        t = arr.type
        if t == pa.null():
            return pa.nulls(len(arr), pa.large_string())
        if t in (pa.string(), pa.large_string()):
            return arr
        if t == pa.string_view():
            return arr.cast(pa.large_string())
        if t in (pa.binary(), pa.large_binary(), pa.binary_view()):
            try:
                return arr.cast(pa.large_string())
            except pa.ArrowInvalid:
                if errors != "replace":
                    Encoding.encode_arrow(self, original)  # raises the error that names the row
                    raise
                return pa.array([None if b is None else b.decode("utf-8", "replace") for b in arr.to_pylist()],
                                pa.large_string())
        raise TypeError(f"encode_arrow: expected a string column (string, large_string, string_view, or binary "
                        f"kinds holding UTF-8), got Arrow type {t}")

    def _slow_chunk(self, arr: pa.Array, active: dict[str, int]) -> pa.Array:
        rows = arr.to_pylist()
        offs = np.zeros(len(rows) + 1, np.int64)
        vals: list[int] = []
        for i, t in enumerate(rows):
            if t is not None:
                vals += self._encode_str_slow(t, active)
            offs[i + 1] = len(vals)
        mask = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
        return pa.ListArray.from_arrays(pa.array(offs.astype(np.int32)), pa.array(np.asarray(vals, np.int32), pa.int32()),
                                        mask=pa.array(mask) if mask is not None else None)

    def _patch(self, res, arr: pa.Array, rows: np.ndarray, active: dict[str, int]):
        if isinstance(res, pa.ChunkedArray):
            res = res.combine_chunks()
        parts = []
        prev = 0
        for r in rows.tolist():
            if r > prev:
                parts.append(res.slice(prev, r - prev))
            parts.append(pa.array([self._encode_str_slow(arr[r].as_py(), active)], LIST_INT32))
            prev = r + 1
        if prev < len(res):
            parts.append(res.slice(prev))
        return pa.concat_arrays(parts)


_PROTO_KEYS: dict | None = None


def _fill_base_attributes(enc: "HFEncoding") -> None:
    """Encoding.__init__ (which HFEncoding does not call: it loads .tiktoken data) may gain
    per-instance caches; give this instance fresh ones of the same kinds, found on a tiny
    prototype Encoding, so a new cache in encoding.py cannot break HFEncoding."""
    global _PROTO_KEYS
    if _PROTO_KEYS is None:
        import base64

        data = b"".join(base64.b64encode(bytes([b])) + b" %d\n" % b for b in range(256))
        proto = Encoding("proto", vocab_data=data, pattern="cl100k_base", special_tokens={})
        _PROTO_KEYS = dict(proto.__dict__)
    lock_type = type(threading.Lock())
    for k, v in _PROTO_KEYS.items():
        if k in enc.__dict__:
            continue
        if isinstance(v, (dict, set, list)):
            setattr(enc, k, type(v)())
        elif isinstance(v, lock_type):
            setattr(enc, k, threading.Lock())
        elif isinstance(v, threading.local):
            setattr(enc, k, threading.local())
        elif v is None or isinstance(v, (bool, int, float, str)):
            setattr(enc, k, v)
        else:
            raise TypeError(f"arrowtok.hf: Encoding has a new attribute {k!r} ({type(v).__name__}) that "
                            "HFEncoding does not know how to set; update arrowtok/hf.py")


def _unpickle(source, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        if isinstance(source, str) and source.lstrip().startswith("{"):
            return HFEncoding(json.loads(source), name=name)
        return HFEncoding(source, name=name)


def from_tokenizer_json(path: str | os.PathLike | dict[str, Any], *, name: str | None = None) -> HFEncoding:
    """Load a Hugging Face tokenizer.json (byte-level BPE: GPT-2, Llama 3, Qwen2, DeepSeek, ...).
    `path` may also be a .json.gz / .json.xz file, or the parsed JSON as a dict."""
    return HFEncoding(path, name=name)


# Attach to Encoding unless encoding.py defines it (as a classmethod that imports this module).
if "from_tokenizer_json" not in Encoding.__dict__:
    Encoding.from_tokenizer_json = staticmethod(from_tokenizer_json)
