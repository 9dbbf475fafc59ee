"""Encodings: loading vocabularies, the tiktoken-shaped API, and the Arrow column API."""
from __future__ import annotations

import array
import ctypes as C
import functools
import gc
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import AbstractSet, Collection, Literal, Sequence

import numpy as np
import pyarrow as pa

from . import _native as N
from ._arrow import decode_list_column, encode_string_column

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"

# Pattern ids understood by the Zig scanners (zig/pretok.zig).
PATTERNS = {"cl100k_base": 0, "o200k_base": 1}

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/"

# Known encodings: vocabulary file, its sha256 (as tiktoken checks it), pattern, special tokens.
KNOWN: dict[str, dict] = {
    "cl100k_base": {
        "file": "cl100k_base.tiktoken",
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "pattern": "cl100k_base",
        "special_tokens": {ENDOFTEXT: 100257, FIM_PREFIX: 100258, FIM_MIDDLE: 100259, FIM_SUFFIX: 100260, ENDOFPROMPT: 100276},
    },
    "o200k_base": {
        "file": "o200k_base.tiktoken",
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "pattern": "o200k_base",
        "special_tokens": {ENDOFTEXT: 199999, ENDOFPROMPT: 200018},
    },
}

DATA_DIR = Path(__file__).resolve().parent / "data"


class ArrowtokError(ValueError):
    """A row could not be encoded or decoded. `row` is its index in the column (or None)."""

    def __init__(self, message: str, row: int | None = None, byte_offset: int | None = None):
        super().__init__(message)
        self.row = row
        self.byte_offset = byte_offset


def list_encoding_names() -> list[str]:
    return sorted(KNOWN)


def _tiktoken_cache_dirs() -> list[Path]:
    dirs = []
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        v = os.environ.get(var)
        if v:
            dirs.append(Path(v))
    return dirs


def _vocab_bytes(name: str, *, use_embedded: bool = True) -> bytes:
    """The verified .tiktoken bytes of a known encoding: embedded copy first, then tiktoken's cache."""
    spec = KNOWN[name]
    tried = []
    candidates = []
    if use_embedded:
        candidates.append(DATA_DIR / spec["file"])
    key = hashlib.sha1((_BLOB + spec["file"]).encode()).hexdigest()
    candidates += [d / key for d in _tiktoken_cache_dirs()]
    for path in candidates:
        if not path.is_file():
            tried.append(f"{path} (missing)")
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != spec["sha256"]:
            tried.append(f"{path} (sha256 {digest[:12]}... does not match {spec['sha256'][:12]}...)")
            continue
        return data
    raise FileNotFoundError(
        f"no valid vocabulary for {name!r}; looked in: " + "; ".join(tried)
        + ". Reinstall arrowtok, or set TIKTOKEN_CACHE_DIR to a tiktoken cache that holds it."
    )


class _Vocab:
    """Owns the Zig vocabulary handle."""

    def __init__(self, data: bytes, pattern: str, special_tokens: dict[str, int]):
        if pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {pattern!r}; arrowtok has scanners for {sorted(PATTERNS)}")
        h = C.c_void_p()
        bad_line = C.c_uint64()
        buf = C.create_string_buffer(data, len(data))
        st = N.lib.at_vocab_load_tiktoken(buf, len(data), PATTERNS[pattern], C.byref(h), C.byref(bad_line))
        if st != N.OK:
            where = f" at line {bad_line.value}" if bad_line.value else ""
            raise ValueError(
                f"could not load the vocabulary: {N.STATUS.get(st, st)}{where} (a .tiktoken file holds lines "
                "'base64(token) rank', with every single byte present and no duplicates)"
            )
        self.handle = h.value
        names = list(special_tokens)
        blob = b"".join(s.encode() for s in names)
        offs = np.zeros(len(names) + 1, np.uint32)
        offs[1:] = np.cumsum([len(s.encode()) for s in names]) if names else []
        ids = np.array([special_tokens[s] for s in names], np.uint32)
        self._blob = C.create_string_buffer(blob, max(len(blob), 1))
        st = N.lib.at_vocab_set_specials(self.handle, self._blob, offs.ctypes.data, ids.ctypes.data, len(names))
        if st != N.OK:
            raise MemoryError("arrowtok: could not store special tokens")
        self.n_ids = N.lib.at_vocab_n_ids(self.handle)

    def __del__(self, _free=N.lib.at_vocab_free):
        # _free is bound at definition time: at interpreter shutdown module globals may be gone.
        h, self.handle = getattr(self, "handle", None), None
        if h:
            _free(h)


_local = threading.local()


def _tls():
    """Per-thread scratch for the single-string path: an output buffer and out-parameters,
    reused across calls (no allocation per call)."""
    tl = getattr(_local, "s", None)
    if tl is None:
        tl = _local.s = type("_Scratch", (), {})()
        tl.cap = 4096
        tl.buf = (C.c_uint32 * tl.cap)()
        tl.buf_addr = C.addressof(tl.buf)
        tl.np = None  # numpy view of buf (encode_to_numpy)
        tl.blk = N.TextCall()
        tl.blk_ref = C.byref(tl.blk)
    return tl


# A 4-byte unsigned array.array type code (converting a list of ids checks each one's range),
# or None where the platform has none (then every decode takes the numpy path).
_U32_CODE = next((c for c in "IL" if array.array(c).itemsize == 4), None)


class _Fast:
    """One thread's prepared call block for one encoding's short texts (`Encoding._fast_run`):
    vocab, options (no specials, strict, one thread) and output buffer are written
    into the block once, so a call passes only the text and its length (`at_encode_small`, no
    argtypes). The buffer is an array.array where the platform has a 4-byte code: slicing one
    and `.tolist()` costs ~130 ns for a few ids against ~210 ns through a memoryview."""

    __slots__ = ("blk", "ref", "cap", "buf", "ids", "np", "n")

    def __init__(self, vocab: int, opts: int):
        self.blk = N.TextCall()
        self.blk.vocab = vocab
        self.blk.opts = opts
        self.ref = C.byref(self.blk)
        self.cap = 0
        self.n = 0  # ids of the last text
        self.grow(4096)

    def grow(self, n: int) -> None:
        """Room for at least n ids (a text of n bytes never needs more). A new buffer each time
        (the numpy view pins the old one, which is never resized in place)."""
        self.cap = max(n, 2 * self.cap)
        if _U32_CODE is not None:
            self.buf = array.array(_U32_CODE, bytes(4 * self.cap))
            self.blk.out = self.buf.buffer_info()[0]
            self.ids = self.buf
        else:  # pragma: no cover - no 4-byte array code on this platform
            self.buf = (C.c_uint32 * self.cap)()
            self.blk.out = C.addressof(self.buf)
            self.ids = memoryview(self.buf).cast("B").cast("I")
        self.blk.cap = self.cap
        self.np = np.frombuffer(self.buf, dtype=np.uint32)


class _FastDecode:
    """One thread's prepared at_decode_blk block for one encoding (vocab and output buffer set
    once): a short list of ids costs two field stores and one foreign call."""

    __slots__ = ("blk", "ref", "buf", "mv")

    def __init__(self, vocab: int):
        self.blk = N.DecodeCall()
        self.blk.vocab = vocab
        self.ref = C.byref(self.blk)
        self.grow(1 << 14)

    def grow(self, n: int) -> None:
        """Room for at least n bytes of output."""
        cap = max(n, 2 * self.blk.cap)
        self.buf = (C.c_uint8 * cap)()
        self.blk.out = C.addressof(self.buf)
        self.blk.cap = cap
        self.mv = memoryview(self.buf)


# decode_bytes: lists of up to this many ids go through the thread's block and buffer.
_DECODE_VIA_TLS = 1 << 14


# Single texts at least this long are encoded on the pool (Zig cuts them at line starts and
# between words, and a long piece into segments: zig/encode.zig, zig/longpar.zig).
_PARALLEL_MIN = 256 << 10
# encode_to_numpy: texts up to this many bytes go through the thread's reusable buffer.
_NUMPY_VIA_TLS = 64 << 10
# Texts at least this long reach Zig through the str's own UTF-8 (PyUnicode_AsUTF8AndSize: no
# copy for ASCII, and for other text a conversion CPython caches on the str, as PyO3 tools such
# as tiktoken get it) instead of a bytes copy per call. Shorter ones: .encode() costs less than
# the extra foreign call (~50 ns against ~300 ns).
_VIEW_MIN = 64 << 10
_encode_small = N.lib.at_encode_small  # no argtypes: see zig/root.zig
_as_utf8 = getattr(getattr(C, "pythonapi", None), "PyUnicode_AsUTF8AndSize", None)  # CPython only
if _as_utf8 is not None:
    _as_utf8.restype = C.c_void_p
    _as_utf8.argtypes = [C.py_object, C.POINTER(C.c_ssize_t)]


_cpus_seen = (0.0, 1)  # (time.monotonic() of the last look, usable CPUs then)


def default_threads() -> int:
    """ARROWTOK_NUM_THREADS, else the CPUs this process may run on. The CPU set is looked up
    at most once a second (a system call: ~2.4 us of a ~12 us `encode_arrow` of one short row,
    called with threads=None); the variable is read on every call."""
    global _cpus_seen
    env = os.environ.get("ARROWTOK_NUM_THREADS")
    if env:
        return max(1, int(env))
    now = time.monotonic()
    seen, n = _cpus_seen
    if now - seen < 1.0 and seen:
        return n
    try:
        n = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        n = max(1, os.cpu_count() or 1)
    _cpus_seen = (now, n)
    return n


class _SpecialSet:
    """Special tokens to recognise, packed for the Zig call."""

    def __init__(self, tokens: dict[str, int]):
        names = sorted(tokens)
        enc = [s.encode() for s in names]
        self.n = len(names)
        self.blob = C.create_string_buffer(b"".join(enc), max(1, sum(map(len, enc))))
        self.offs = np.zeros(self.n + 1, np.uint32)
        if self.n:
            self.offs[1:] = np.cumsum([len(e) for e in enc])
        self.ids = np.array([tokens[s] for s in names], np.uint32)

    def fill(self, opts: N.Options) -> None:
        opts.n_special = self.n
        if self.n:
            opts.special_data = C.cast(self.blob, C.c_void_p)
            opts.special_offs = self.offs.ctypes.data
            opts.special_ids = self.ids.ctypes.data


class Encoding:
    """A BPE encoding. tiktoken's API for strings, plus `encode_arrow` & co. for Arrow columns."""

    def __init__(self, name: str, *, vocab_data: bytes, pattern: str, special_tokens: dict[str, int]):
        self.name = name
        self.pattern = pattern
        self._special_tokens = dict(special_tokens)
        self._vocab = _Vocab(vocab_data, pattern, self._special_tokens)
        self.max_token_value = max(self._vocab.n_ids - 1, max(self._special_tokens.values(), default=0))
        self._special_token_values = set(self._special_tokens.values())
        self._special_cache: dict[frozenset, _SpecialSet] = {}
        self._opts_cache: dict = {}
        self._lock = threading.Lock()
        self._fast_local = threading.local()
        self._token_bytes: dict[int, bytes] = {}

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def from_tiktoken_file(cls, path: str | os.PathLike, *, pattern: str, name: str | None = None,
                           special_tokens: dict[str, int] | None = None) -> "Encoding":
        """Load any .tiktoken file whose split pattern is one arrowtok knows (`cl100k_base`, `o200k_base`)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"vocabulary file not found: {p}")
        if special_tokens is None:
            special_tokens = dict(KNOWN[pattern]["special_tokens"]) if pattern in KNOWN else {}
        return cls(name or p.stem, vocab_data=p.read_bytes(), pattern=pattern, special_tokens=special_tokens)

    @classmethod
    def from_tokenizer_json(cls, path, *, name: str | None = None) -> "Encoding":
        """Load a Hugging Face tokenizer.json (byte-level BPE: GPT-2, Llama 3, Qwen2, ...); see arrowtok.hf."""
        from .hf import from_tokenizer_json

        return from_tokenizer_json(path, name=name)

    def __repr__(self) -> str:
        return f"<arrowtok.Encoding {self.name!r}>"

    def __reduce__(self):
        if self.name in KNOWN and _registry.get(self.name) is self:
            return (get_encoding, (self.name,))
        raise TypeError("only encodings from arrowtok.get_encoding can be pickled")

    # ---- properties ---------------------------------------------------------------------

    @property
    def eot_token(self) -> int:
        return self._special_tokens[ENDOFTEXT]

    @functools.cached_property
    def special_tokens_set(self) -> set[str]:
        return set(self._special_tokens)

    @property
    def n_vocab(self) -> int:
        return self.max_token_value + 1

    def is_special_token(self, token: int) -> bool:
        return token in self._special_token_values

    # ---- special-token policy (tiktoken's rules) ----------------------------------------------

    def _allowed(self, allowed_special) -> dict[str, int]:
        if allowed_special == "all":
            return self._special_tokens
        if not allowed_special:
            return {}
        unknown = set(allowed_special) - self.special_tokens_set
        if unknown:
            raise ValueError(f"not special tokens of {self.name}: {sorted(unknown)}")
        return {s: self._special_tokens[s] for s in allowed_special}

    def _special_set(self, allowed: dict[str, int]) -> _SpecialSet | None:
        if not allowed:
            return None
        key = frozenset(allowed)
        s = self._special_cache.get(key)
        if s is None:
            s = self._special_cache.setdefault(key, _SpecialSet(allowed))
        return s

    def _specials_in(self, text: str, allowed_special, disallowed_special) -> dict[str, int]:
        """The special tokens to recognise in `text` (`encode`'s arguments; `_allowed` decides,
        which HFEncoding extends with its always-on added tokens); raises tiktoken's ValueError
        when `text` holds a disallowed one."""
        allowed = self._allowed(allowed_special)
        if not allowed and disallowed_special == "all":
            # The default: every special token disallowed (one or two substring tests rule
            # most texts out: `_may_hold`).
            self._check_disallowed(text, self._all_specials)
            return allowed
        if disallowed_special:
            disallowed = self._disallowed(allowed, disallowed_special)
            if disallowed:
                self._check_disallowed(text, disallowed)
        return allowed

    def _disallowed(self, allowed: dict[str, int], disallowed_special) -> frozenset[str]:
        if disallowed_special == "all":
            if not allowed:  # the default: every special token (one set per encoding, not per call)
                return self._all_specials
            return frozenset(self.special_tokens_set - set(allowed))
        return frozenset(disallowed_special)

    @functools.cached_property
    def _all_specials(self) -> frozenset[str]:
        return frozenset(self.special_tokens_set)

    @staticmethod
    def _check_disallowed(text: str, disallowed: frozenset[str]) -> None:
        p1, p2 = _prefixes(disallowed)
        if not _may_hold(text, p1, p2):
            return
        hits = [(text.find(t), t) for t in disallowed if t in text]
        if hits:
            pos = min(p for p, _ in hits)
            token = max((t for p, t in hits if p == pos), key=len)
            raise ValueError(
                f"Encountered text corresponding to disallowed special token {token!r}.\n"
                "If you want this text to be encoded as a special token, "
                f"pass it to `allowed_special`, e.g. `allowed_special={{{token!r}, ...}}`.\n"
                f"If you want this text to be encoded as normal text, disable the check for this token "
                f"by passing `disallowed_special=(enc.special_tokens_set - {{{token!r}}})`.\n"
                "To disable this check for all special tokens, pass `disallowed_special=()`.\n"
            )

    # ---- single strings ---------------------------------------------------------------------

    def _encode_utf8(self, data: bytes | int, specials: _SpecialSet | None, errors: str = "strict", n: int | None = None) -> list[int]:
        """data: bytes, or the address of n bytes (a view from `_utf8_ref`)."""
        if n is None:
            n = len(data)
        if n == 0:
            return []
        cap = n * 3 if errors == "replace" else n
        tl = _tls()
        if cap > tl.cap:
            tl.cap = max(cap, 2 * tl.cap)
            tl.buf = (C.c_uint32 * tl.cap)()
            tl.buf_addr = C.addressof(tl.buf)
            tl.np = None
        got = self._encode_into(data, specials, errors, tl.buf_addr, tl.cap, tl, n)
        return tl.buf[:got]

    def _opts(self, specials: _SpecialSet | None, replace: bool, threads: int) -> tuple:
        """(N.Options, its address) for these settings; read-only for Zig, so one per (specials,
        errors, threads) serves every thread."""
        key = (specials, replace, threads)
        opts = self._opts_cache.get(key)
        if opts is None:
            o = N.Options(threads=threads, errors_replace=int(replace))
            if specials is not None:
                specials.fill(o)
            opts = self._opts_cache.setdefault(key, (o, C.addressof(o)))
        return opts

    def _encode_into(self, data: bytes | int, specials: _SpecialSet | None, errors: str, buf_addr: int, cap: int, tl,
                     n: int | None = None) -> int:
        """One native call encoding `data` into the ids buffer at `buf_addr` (room for `cap`);
        texts of 256 KiB and more are cut at line starts and between words, and pieces of 256 KiB
        and more into segments, and encoded on the pool (same ids).
        The arguments travel in the thread's TextCall block: two foreign-call arguments instead
        of eight, which is most of the cost of a short text."""
        replace = errors == "replace"
        if n is None:
            n = len(data)
        threads = default_threads() if n >= _PARALLEL_MIN else 1
        opts = self._opts(specials, replace, threads)
        blk = tl.blk
        blk.vocab = self._vocab.handle
        blk.opts = opts[1]
        blk.out = buf_addr
        blk.cap = cap
        blk.len = n
        st = N.lib.at_encode_text_blk(tl.blk_ref, data)
        if st != N.OK:
            if st == N.INVALID_UTF8:
                bad = blk.bad_offset
                raise ArrowtokError(f"invalid UTF-8 at byte offset {bad}", None, bad)
            raise ArrowtokError(f"encode failed: {N.STATUS.get(st, st)}")
        return blk.got

    # Short texts with no special tokens to recognise go through `_fast` (one prepared block per
    # thread, one foreign call without argtypes conversion): ~2 us -> ~1 us a call on this
    # machine. HFEncoding's own `_encode_utf8` (normalizers, added tokens) turns it off.
    _fast_text = True

    def _fast_block(self) -> _Fast:
        fb = self._fast_local.b = _Fast(self._vocab.handle, self._opts(None, False, 1)[1])
        return fb

    # The single-text fast path (`_fast_run`, called straight from each public method: no
    # helper between, no tuple): ~1.1 -> ~0.9 us for `encode_ordinary` of a 33-byte text,
    # ~1.5 -> ~1.2 us for `encode`. It serves texts under _VIEW_MIN characters (so under _PARALLEL_MIN bytes: one thread)
    # with no special tokens to recognise; None sends the text down the general path (long
    # texts, lone surrogates, HFEncoding: `_fast_text` is False where `_allowed` of an empty set
    # is not empty or the text goes through other steps).

    def _fast_run(self, text: str) -> _Fast | None:
        """Encodes `text` into this thread's block: the block (its ids in `ids[:n]` / `np[:n]`),
        or None for the general path."""
        if not self._fast_text or len(text) >= _VIEW_MIN:
            return None
        try:
            data = text.encode()
        except UnicodeEncodeError:
            return None
        try:
            fb = self._fast_local.b
        except AttributeError:
            fb = self._fast_block()
        n = len(data)
        if n > fb.cap:
            fb.grow(n)
        got = _encode_small(fb.ref, data, n)
        if got < 0:
            raise ArrowtokError(f"encode failed: {N.STATUS.get(-got, -got)}")
        fb.n = got
        return fb

    def _no_specials_apply(self, text: str, allowed_special, disallowed_special) -> bool:
        """True when `encode`'s special-token arguments cannot matter for `text`: each is "all"
        or empty (the specials themselves, not arbitrary strings as a custom disallowed set may
        hold) and the text surely holds none of the specials (`_may_hold`): nothing to
        recognise, nothing to raise."""
        if not allowed_special:
            if not disallowed_special:  # encode_ordinary's arguments: whatever the text
                return True
        elif allowed_special != "all":
            return False
        if not (disallowed_special == "all" or not disallowed_special):
            return False
        p1, p2 = self._special_prefixes
        return not _may_hold(text, p1, p2)

    @functools.cached_property
    def _special_prefixes(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return _prefixes(self._all_specials)

    def encode_to_numpy(self, text: str, *, allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
                        disallowed_special: Literal["all"] | Collection[str] = "all") -> np.ndarray:
        """`encode`, returning a uint32 numpy array (tiktoken's `encode_to_numpy`): no Python int
        per token, so large documents stay fast."""
        if self._no_specials_apply(text, allowed_special, disallowed_special):
            if (fb := self._fast_run(text)) is not None:
                return fb.np[:fb.n].copy()
        allowed = self._specials_in(text, allowed_special, disallowed_special)
        if not allowed and (fb := self._fast_run(text)) is not None:
            return fb.np[:fb.n].copy()
        data, n = self._utf8_ref(text)  # `text` outlives the call: a view of it stays valid
        tl = _tls()
        if n <= _NUMPY_VIA_TLS:  # small: through the thread's buffer, then one copy
            if n > tl.cap:
                tl.cap = max(n, 2 * tl.cap)
                tl.buf = (C.c_uint32 * tl.cap)()
                tl.buf_addr = C.addressof(tl.buf)
                tl.np = None
            if tl.np is None:
                tl.np = np.frombuffer(tl.buf, dtype=np.uint32)
            got = self._encode_into(data, self._special_set(allowed), "strict", tl.buf_addr, tl.cap, tl, n) if n else 0
            return tl.np[:got].copy()
        out = np.empty(n, dtype=np.uint32)
        got = self._encode_into(data, self._special_set(allowed), "strict", out.ctypes.data, n, tl, n)
        out.resize(got, refcheck=False)  # shrinks in place
        return out

    # HFEncoding decodes the bytes again on some paths: it takes copies.
    _utf8_views = True

    def _utf8_ref(self, text: str) -> tuple[bytes | int, int]:
        """(bytes, length), or for a long text (address of the str's own UTF-8, length); the
        address is valid while `text` lives. Lone surrogates take the copying path."""
        if len(text) >= _VIEW_MIN and self._utf8_views and _as_utf8 is not None:
            size = C.c_ssize_t()
            try:
                return _as_utf8(text, C.byref(size)), size.value
            except UnicodeEncodeError:
                pass
        data = self._utf8(text)
        return data, len(data)

    @staticmethod
    def _utf8(text: str) -> bytes:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates: the same fix-up tiktoken applies (each becomes U+FFFD).
            return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode, treating special-token text as ordinary text (tiktoken's `encode_ordinary`)."""
        if (fb := self._fast_run(text)) is not None:
            return fb.ids[:fb.n].tolist()
        data, n = self._utf8_ref(text)
        return self._encode_utf8(data, None, "strict", n)

    def encode(self, text: str, *, allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
               disallowed_special: Literal["all"] | Collection[str] = "all") -> list[int]:
        """Encode like tiktoken's `Encoding.encode` (same defaults: special-token text raises ValueError)."""
        if self._no_specials_apply(text, allowed_special, disallowed_special):
            if (fb := self._fast_run(text)) is not None:
                return fb.ids[:fb.n].tolist()
        allowed = self._specials_in(text, allowed_special, disallowed_special)
        if not allowed and (fb := self._fast_run(text)) is not None:
            return fb.ids[:fb.n].tolist()
        data, n = self._utf8_ref(text)
        return self._encode_utf8(data, self._special_set(allowed), "strict", n)

    def count_tokens(self, text: str, *, allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
                     disallowed_special: Literal["all"] | Collection[str] = "all") -> int:
        """`len(encode(text, ...))` (same arguments, same ValueError on disallowed special-token
        text) without building the ids: a short text costs one native call, a long one is counted
        on the pool without an id array (a one-row column through `count_tokens_arrow`)."""
        if self._no_specials_apply(text, allowed_special, disallowed_special):
            if (fb := self._fast_run(text)) is not None:
                return fb.n
        allowed = self._specials_in(text, allowed_special, disallowed_special)
        if not allowed and (fb := self._fast_run(text)) is not None:
            return fb.n
        if not self._fast_text:  # HFEncoding: its own steps (normalizers, added tokens) first
            return len(self.encode_to_numpy(text, allowed_special=allowed_special,
                                            disallowed_special=disallowed_special))
        col = pa.array([self._utf8(text)], type=pa.large_binary())
        return int(self.count_tokens_arrow(col, allowed_special=frozenset(allowed))[0].as_py())

    def encode_bytes(self, data: bytes, *, errors: str = "strict") -> list[int]:
        """Encode UTF-8 bytes. errors='replace' substitutes U+FFFD like bytes.decode('utf-8', 'replace')."""
        return self._encode_utf8(bytes(data), None, errors)

    def encode_ordinary_batch(self, texts: Sequence[str], *, num_threads: int | None = None) -> list[list[int]]:
        return self.encode_batch(texts, num_threads=num_threads, disallowed_special=())

    def encode_batch(self, texts: Sequence[str], *, num_threads: int | None = None,
                     allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
                     disallowed_special: Literal["all"] | Collection[str] = "all") -> list[list[int]]:
        """Encode many strings in one native call (threads inside Zig); tiktoken's `encode_batch`."""
        allowed = self._allowed(allowed_special)
        texts = list(texts)
        disallowed = self._disallowed(allowed, disallowed_special)
        if disallowed:
            for t in texts:
                self._check_disallowed(t, disallowed)
        try:
            col = pa.array(texts, type=pa.large_string())
        except (UnicodeEncodeError, pa.ArrowInvalid):
            col = pa.array([self._utf8(t) for t in texts], type=pa.large_binary())
        res = self.encode_arrow(col, threads=num_threads, allowed_special=allowed or frozenset())
        return _list_column_to_lists(res)

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        b = text_or_bytes.encode("utf-8") if isinstance(text_or_bytes, str) else bytes(text_or_bytes)
        r = N.lib.at_vocab_rank(self._vocab.handle, b, len(b))
        if r >= 0:
            return int(r)
        try:
            s = b.decode("utf-8")
        except UnicodeDecodeError:
            s = None
        if s is not None and s in self._special_tokens:
            return self._special_tokens[s]
        raise KeyError(b)

    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        if type(tokens) is list and len(tokens) <= _DECODE_VIA_TLS and _U32_CODE is not None:
            try:
                arr = array.array(_U32_CODE, tokens)
            except (TypeError, OverflowError):
                pass  # the numpy path below names the bad id and its position
            else:
                fd = getattr(self._fast_local, "d", None)
                if fd is None:
                    fd = self._fast_local.d = _FastDecode(self._vocab.handle)
                blk = fd.blk
                blk.ids, blk.n = arr.buffer_info()
                st = N.lib.at_decode_blk(fd.ref)
                if st == N.BUFFER_TOO_SMALL:
                    fd.grow(blk.needed)
                    st = N.lib.at_decode_blk(fd.ref)
                if st == N.OK:
                    return fd.mv[:blk.needed].tobytes()
                # an unknown id: the numpy path below raises it with its position
        ids = np.asarray(tokens, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() > 0xFFFFFFFF):
            bad = int(np.flatnonzero((ids < 0) | (ids > 0xFFFFFFFF))[0])
            raise KeyError(f"invalid token id {int(ids[bad])} at position {bad}")
        ids = ids.astype(np.uint32)
        cap = max(16, ids.size * 8)
        while True:
            out = C.create_string_buffer(cap)
            needed = C.c_uint64()
            bad = C.c_int64()
            st = N.lib.at_decode_tokens(self._vocab.handle, ids.ctypes.data, ids.size, out, cap,
                                        C.byref(needed), C.byref(bad))
            if st == N.OK:
                return out.raw[: needed.value]
            if st == N.BUFFER_TOO_SMALL:
                cap = int(needed.value)
                continue
            if st == N.UNKNOWN_TOKEN:
                raise KeyError(f"invalid token id {int(ids[bad.value])} at position {bad.value}")
            raise ArrowtokError(f"decode failed: {N.STATUS.get(st, st)}")

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        return self.decode_bytes(tokens).decode("utf-8", errors=errors)

    def decode_single_token_bytes(self, token: int) -> bytes:
        # Kept per id once asked for (at most the vocabulary: tiktoken holds all of it as a dict).
        b = self._token_bytes.get(token)
        if b is None:
            b = self.decode_bytes([token])
            if type(token) is int:
                self._token_bytes[token] = b
        return b

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]:
        return [self.decode_single_token_bytes(t) for t in tokens]

    def decode_batch(self, batch: Sequence[Sequence[int]], *, errors: str = "replace", num_threads: int | None = None) -> list[str]:
        if errors == "replace":
            col = pa.array(list(batch), type=pa.list_(pa.int32()))
            return self.decode_arrow(col).to_pylist()
        return [self.decode(t, errors=errors) for t in batch]

    # ---- Arrow columns ----------------------------------------------------------------------

    def polars(self, **kwargs):
        """A Polars tokenizer for this encoding: `enc.polars()(pl.col("text"))` (see arrowtok.polars)."""
        from .polars import Tokenizer

        return Tokenizer(self, **kwargs)

    def encode_arrow(self, column, *, threads: int | None = None,
                     allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
                     errors: Literal["strict", "replace"] = "strict", _max_chunk_values: int = 0):
        """Encode an Arrow string column into a `list<int32>` column of token ids.

        Accepts pyarrow string / large_string / string_view (and binary kinds, validated as UTF-8)
        arrays, chunked arrays, and anything with `__arrow_c_array__` / `__arrow_c_stream__`
        (Polars Series, DuckDB results, nanoarrow). Nulls stay null; "" gives []. Special-token text
        is ordinary text unless `allowed_special` ("all" or a set) says otherwise. Invalid UTF-8
        raises ArrowtokError naming the row and byte offset, or with errors="replace" becomes U+FFFD.
        """
        return encode_string_column(self, column, threads=_threads(threads), count_only=False,
                                    specials=self._special_set(self._allowed(allowed_special)),
                                    errors=errors, max_chunk_values=_max_chunk_values)

    def count_tokens_arrow(self, column, *, threads: int | None = None,
                           allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
                           errors: Literal["strict", "replace"] = "strict"):
        """Token count per row (`uint32`, nulls stay null), without materialising the ids."""
        return encode_string_column(self, column, threads=_threads(threads), count_only=True,
                                    specials=self._special_set(self._allowed(allowed_special)),
                                    errors=errors, max_chunk_values=0)

    def decode_arrow(self, column):
        """Decode a `list<int32>` (or list of any integer) column back into a `large_string` column.
        Bytes that are not valid UTF-8 become U+FFFD (tiktoken's `decode` default)."""
        return decode_list_column(self, column)


@functools.lru_cache(maxsize=64)
def _prefixes(tokens: frozenset[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The distinct first characters and first two characters of `tokens` (see `_may_hold`)."""
    return tuple({t[:1] for t in tokens}), tuple({t[:2] for t in tokens})


def _may_hold(text: str, p1: tuple[str, ...], p2: tuple[str, ...]) -> bool:
    """False when `text` surely holds none of the tokens whose `_prefixes` are p1, p2: first one substring test per distinct
    first character ("<" for every special token of the known encodings; a one-character needle
    is a memchr-like scan, 10-25 us per MB, while a longer needle costs ~0.2 ms per MB of
    non-ASCII text), then, only where one is there, one per distinct two-character prefix
    ("<|": code and HTML hold "<" often, "<|" rarely; 2.2 -> 1.3 us for `encode_to_numpy` of a
    short line of C with the default arguments)."""
    for c in p1:
        if c in text:
            break
    else:
        return False
    for c in p2:
        if c in text:
            return True
    return False


def _threads(threads: int | None) -> int:
    if threads is None:
        return default_threads()
    t = int(threads)
    if t < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return t


def _list_column_to_lists(res) -> list[list[int]]:
    """A list<int32> column as Python lists. The cyclic GC is off while they are made (and back
    as it was after): lists of ints hold no cycles, but each new list counts toward a collection,
    and the older generations' passes walk every list made so far. 200k short rows (2.6M ids):
    375-395 ms -> ~120 ms, most of `encode_batch` on them."""
    chunks = res.chunks if isinstance(res, pa.ChunkedArray) else [res]
    out: list[list[int]] = []
    was_on = gc.isenabled()
    if was_on:
        gc.disable()
    try:
        for ch in chunks:
            offs = np.frombuffer(ch.buffers()[1], np.int32)[ch.offset: ch.offset + len(ch) + 1]
            vals = ch.values.to_numpy(zero_copy_only=False).tolist()
            o = offs.tolist()
            out.extend(vals[o[i]:o[i + 1]] for i in range(len(ch)))
    finally:
        if was_on:
            gc.enable()
    return out


_registry: dict[str, Encoding] = {}
_registry_lock = threading.Lock()


def get_encoding(name: str) -> Encoding:
    """The encoding called `name` (`cl100k_base`, `o200k_base`), loaded once per process."""
    enc = _registry.get(name)
    if enc is not None:
        return enc
    if name not in KNOWN:
        raise ValueError(f"Unknown encoding {name!r}. Known encodings: {', '.join(list_encoding_names())}")
    with _registry_lock:
        enc = _registry.get(name)
        if enc is None:
            spec = KNOWN[name]
            enc = Encoding(name, vocab_data=_vocab_bytes(name), pattern=spec["pattern"],
                           special_tokens=spec["special_tokens"])
            _registry[name] = enc
    return enc
