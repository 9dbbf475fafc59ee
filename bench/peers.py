"""Adapters for every tokenizer the benchmark compares, all loaded offline from local vocab files.

Each adapter exposes the same small surface:

    load(encoding, threads)       build the tokenizer (raises on failure; the benchmark reports why)
    encode_one(text) -> ids       the tool's own single-string encode (tiktoken's encode_ordinary shape)
    encode_batch(texts) -> lists  the tool's own batch API over a Python list of str
    encode_column(col) -> pa list<int32>
                                  end to end from a pyarrow string column to a pyarrow list<int32>
                                  array, including every conversion the tool needs (to Python str,
                                  to awkward, back from numpy/lists/awkward)
    count_column(col) -> pa uint32 (only where the tool counts without ids: arrowtok)

Thread control: the benchmark runs each thread count in its own process with RAYON_NUM_THREADS,
FASTOKENS_BPE_THREADS and TOKENIZERS_PARALLELISM set (rayon sizes its global pool once per process),
and also passes the count to every API that takes one; `threads_how` says what each tool gets.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
VOCAB_DIRS = [REPO.parent / "shared" / "vocab", REPO / "arrowtok" / "data"]
CACHE_DIR = Path(os.environ.get("ARROWTOK_BENCH_CACHE", Path.home() / ".cache" / "arrowtok-bench"))

# tiktoken 0.14.0's split patterns (tiktoken_ext/openai_public.py); check_patterns() compares them
# with the installed tiktoken_ext source so a drift is reported instead of silently mis-measured.
PATTERNS = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
        r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    "o200k_base": "|".join([
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]),
}
SPECIAL_TOKENS = {
    "cl100k_base": {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                    "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}
SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
LIST_INT32 = pa.list_(pa.int32())


def vocab_path(encoding: str) -> Path:
    """The verified local .tiktoken file for an encoding (never the network)."""
    for d in VOCAB_DIRS:
        p = d / f"{encoding}.tiktoken"
        if p.is_file():
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            if digest != SHA256[encoding]:
                raise RuntimeError(f"{p}: sha256 {digest} != expected {SHA256[encoding]}")
            return p
    raise FileNotFoundError(f"no local {encoding}.tiktoken in {', '.join(map(str, VOCAB_DIRS))}")


def check_patterns() -> list[str]:
    """Differences between PATTERNS and the installed tiktoken_ext source (empty when equal)."""
    import inspect
    import re

    from tiktoken_ext import openai_public as op

    problems = []
    for name, ours in PATTERNS.items():
        src = inspect.getsource(getattr(op, name))
        raw = re.findall(r'(r""".*?""")', src, re.S)
        theirs = "|".join(eval(r) for r in raw)  # literal raw strings from tiktoken's own source
        if theirs != ours:
            problems.append(f"{name}: bench pattern differs from tiktoken_ext's")
    return problems


def read_ranks(encoding: str) -> dict[bytes, int]:
    import base64

    ranks = {}
    for line in vocab_path(encoding).read_bytes().splitlines():
        if line:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    return ranks


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


# ---------------------------------------------------------------------------------------------
# Arrow helpers shared by the adapters (their cost is part of each tool's column time)
# ---------------------------------------------------------------------------------------------

def flat_to_list_array(ids: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """(flat ids, n+1 offsets) from a tool -> pyarrow list<int32> (values reinterpreted, no copy
    when already 32-bit; offsets narrowed to int32 as list<int32> requires)."""
    ids = np.asarray(ids)
    if ids.dtype != np.int32:
        ids = ids.view(np.int32) if ids.dtype == np.uint32 else ids.astype(np.int32)
    offsets = np.asarray(offsets)
    if offsets.dtype != np.int32:
        offsets = offsets.astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids))


def lists_to_list_array(lists) -> pa.Array:
    return pa.array(lists, type=LIST_INT32)


def column_to_pylist(col) -> list[str]:
    return col.to_pylist()


# ---------------------------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------------------------

class Peer:
    name = "?"
    dist = "?"            # distribution name for the version line
    module = "?"
    threads_how = ""
    column_how = ""
    has_count = False
    doc_mode = True       # False: its single-string encode is another adapter's (no extra doc row)

    def __init__(self, encoding: str, threads: int):
        self.encoding = encoding
        self.threads = threads

    def load(self) -> None:
        raise NotImplementedError

    def encode_one(self, text: str):
        raise NotImplementedError

    def encode_batch(self, texts: list[str]):
        raise NotImplementedError

    def encode_column(self, col: pa.Array) -> pa.Array:
        return lists_to_list_array(self.encode_batch(column_to_pylist(col)))

    def count_column(self, col: pa.Array) -> pa.Array:
        raise NotImplementedError


class Arrowtok(Peer):
    name, dist, module = "arrowtok", "arrowtok", "arrowtok"
    threads_how = "threads= passed to encode_arrow/count_tokens_arrow (Zig pool, GIL released)"
    column_how = "encode_arrow(pa.StringArray, threads=T): Arrow buffers in, list<int32> out"
    has_count = True

    def load(self):
        import arrowtok

        self.enc = arrowtok.get_encoding(self.encoding)

    def encode_one(self, text):
        # numpy out, like gigatoken's encode (no Python int per id); texts >= 256 KiB are cut at
        # line starts and run on ARROWTOK_NUM_THREADS (= the row's thread count) threads.
        return self.enc.encode_to_numpy(text, disallowed_special=())

    def encode_batch(self, texts):
        return self.enc.encode_ordinary_batch(texts, num_threads=self.threads)

    def encode_column(self, col):
        return self.enc.encode_arrow(col, threads=self.threads)

    def count_column(self, col):
        return self.enc.count_tokens_arrow(col, threads=self.threads)


class Tiktoken(Peer):
    name, dist, module = "tiktoken", "tiktoken", "tiktoken"
    threads_how = ("T=1: a loop of encode_ordinary (faster than its one-worker pool); T>1: "
                   "encode_ordinary_batch(num_threads=T) (ThreadPoolExecutor, GIL released in Rust)")
    column_how = "to_pylist -> encode_ordinary (T=1) / encode_ordinary_batch (T>1) -> pa.array(list<int32>)"

    def load(self):
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        ranks = load_tiktoken_bpe(str(vocab_path(self.encoding)), expected_hash=SHA256[self.encoding])
        self.enc = tiktoken.Encoding(name=f"bench_{self.encoding}", pat_str=PATTERNS[self.encoding],
                                     mergeable_ranks=ranks, special_tokens=SPECIAL_TOKENS[self.encoding])

    def encode_one(self, text):
        return self.enc.encode_ordinary(text)

    def encode_batch(self, texts):
        if self.threads <= 1:
            enc = self.enc.encode_ordinary
            return [enc(t) for t in texts]
        return self.enc.encode_ordinary_batch(texts, num_threads=self.threads)


class Gigatoken(Peer):
    name, dist, module = "gigatoken", "gigatoken", "gigatoken"
    threads_how = "encode_batch(parallel=T>1) on rayon's global pool sized by RAYON_NUM_THREADS=T"
    column_how = ("large_string cast -> ak.from_arrow -> encode_batch(awkward) -> "
                  "awkward offsets/content as numpy -> pa list<int32>")

    def load(self):
        import awkward  # noqa: F401  (its Arrow path needs it)
        import gigatoken as gt

        # No special tokens: '<|endoftext|>' in the text stays ordinary text, as in encode_ordinary.
        self.tok = gt.Tokenizer.from_tiktoken(str(vocab_path(self.encoding)), special_tokens={})
        self.backend = self.tok.backend

    def encode_one(self, text):
        return self.backend.encode(text)

    def encode_batch(self, texts):
        return self.backend.encode_batch_list(texts, parallel=self.threads > 1)

    def encode_column(self, col):
        import awkward as ak

        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        # gigatoken's awkward input wants 64-bit string offsets
        arr = ak.from_arrow(col.cast(pa.large_string()), highlevel=True)
        out = self.backend.encode_batch(arr, parallel=self.threads > 1)
        layout = out.layout
        return flat_to_list_array(np.asarray(layout.content.data), np.asarray(layout.offsets.data))


class GigatokenList(Gigatoken):
    """gigatoken's list-of-str batch path (to compare against its awkward path)."""
    name = "gigatoken-list"
    doc_mode = False
    column_how = "to_pylist -> encode_batch(list[str]) -> awkward offsets/content -> pa list<int32>"

    def encode_column(self, col):
        out = self.backend.encode_batch(column_to_pylist(col), parallel=self.threads > 1)
        layout = out.layout
        return flat_to_list_array(np.asarray(layout.content.data), np.asarray(layout.offsets.data))


class Fastokens(Peer):
    name, dist, module = "fastokens", "fastokens", "fastokens"
    threads_how = "encode_batch_flat on its own pool sized by FASTOKENS_BPE_THREADS=T / RAYON_NUM_THREADS=T"
    column_how = "to_pylist -> encode_batch_flat -> numpy.frombuffer ids/offsets -> pa list<int32>"

    def load(self):
        import fastokens

        self.tok = fastokens.Tokenizer.from_tiktoken(str(vocab_path(self.encoding)),
                                                     pattern=PATTERNS[self.encoding], special_tokens={})

    def encode_one(self, text):
        return self.tok.encode_ordinary(text).ids

    def encode_batch(self, texts):
        return [e.ids for e in self.tok.encode_batch(texts)]

    def encode_column(self, col):
        ids, offsets = self.tok.encode_batch_flat(column_to_pylist(col))
        return flat_to_list_array(np.frombuffer(ids, dtype="<u4"), np.frombuffer(offsets, dtype="<u8"))


class Toktok(Peer):
    name, dist, module = "toktok", "toktok-rs", "toktok"
    threads_how = "encode_batch_to_numpy(threads=T)"
    column_how = "to_pylist -> encode_batch_to_numpy -> pa list<int32>"

    def load(self):
        import toktok

        # toktok compiles its vocabularies into the extension (no files, no network).
        self.tok = toktok._Tokenizer(self.encoding, "")

    def encode_one(self, text):
        return self.tok.encode_ordinary(text)

    def encode_batch(self, texts):
        ids, offs = self.tok.encode_batch_to_numpy(texts, threads=self.threads)
        return [ids[offs[i]:offs[i + 1]].tolist() for i in range(len(texts))]

    def encode_column(self, col):
        ids, offs = self.tok.encode_batch_to_numpy(column_to_pylist(col), threads=self.threads)
        return flat_to_list_array(ids, offs)


class Quicktok(Peer):
    name, dist, module = "quicktok", "quicktok-v1", "quicktok"
    threads_how = "encode_batch(texts, threads=T)"
    column_how = "to_pylist -> encode_batch -> (ids, offsets) numpy -> pa list<int32>"

    def load(self):
        import quicktok

        # bundled data files inside the wheel (quicktok/data), loaded from disk
        self.tok = quicktok.get_encoding(self.encoding)

    def encode_one(self, text):
        return self.tok.encode_ordinary(text)

    def encode_batch(self, texts):
        ids, offs = self.tok.encode_batch(texts, self.threads, False)
        return [list(ids[offs[i]:offs[i + 1]]) for i in range(len(texts))]

    def encode_column(self, col):
        ids, offs = self.tok.encode_batch(column_to_pylist(col), self.threads, False)
        return flat_to_list_array(np.asarray(ids), np.asarray(offs))


class BpeOpenai(Peer):
    name, dist, module = "bpe-openai", "bpe-openai", "bpe_openai"
    threads_how = "no batch API in the Rust binding: a loop for T=1, ThreadPoolExecutor(T) for T>1"
    column_how = "to_pylist -> per-row backend encode -> pa.array(list<int32>)"

    def load(self):
        from bpe_openai import _bindings

        # The Rust tokenizer directly (its Python wrapper adds a per-call regex/size check);
        # the vocabulary ships inside the wheel.
        self.tok = _bindings.tokenizer_for_encoding(self.encoding)

    def encode_one(self, text):
        return self.tok.encode(text)

    def encode_batch(self, texts):
        enc = self.tok.encode
        if self.threads <= 1:
            return [enc(t) for t in texts]
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            return list(pool.map(enc, texts, chunksize=256))


class HfTokenizers(Peer):
    name, dist, module = "hf-tokenizers", "tokenizers", "tokenizers"
    threads_how = "encode_batch_fast on rayon's pool (RAYON_NUM_THREADS=T; TOKENIZERS_PARALLELISM=false for T=1)"
    column_how = "to_pylist -> encode_batch_fast -> [e.ids] -> pa.array(list<int32>)"

    def load(self):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_str(hf_tokenizer_json(self.encoding))

    def encode_one(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts):
        return [e.ids for e in self.tok.encode_batch_fast(texts, add_special_tokens=False)]


class HfTokenizersLiteral(HfTokenizers):
    """Same tokenizer.json, but with the encoding's split regex passed verbatim (not exact)."""
    name = "hf-literal"

    def load(self):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_str(hf_tokenizer_json(self.encoding, literal=True))


PEERS: dict[str, type[Peer]] = {c.name: c for c in
                                (Arrowtok, Tiktoken, Gigatoken, GigatokenList, Fastokens, Toktok,
                                 Quicktok, BpeOpenai, HfTokenizers, HfTokenizersLiteral)}
DEFAULT_TOOLS = [n for n in PEERS if n != "hf-literal"]


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizer.json built from the .tiktoken ranks
# ---------------------------------------------------------------------------------------------

def gpt2_byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _split_with_lower_ranks(ranks: dict[bytes, int], token: bytes) -> list[bytes]:
    """BPE over a token's bytes using only merges ranked below the token itself."""
    limit = ranks[token]
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < limit and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    return parts


def hf_pattern(encoding: str) -> str:
    """The split regex as Hugging Face's engine (Oniguruma) must be given it.

    Oniguruma reads `X{1,3}+` as `(X{1,3})+` (a repeated group), not as a possessive `{1,3}`, so
    cl100k's literal `\\p{N}{1,3}+` would glue every run of digits into one piece ("6221541" instead
    of "622", "154", "1"). The possessive adds nothing there (nothing after it in that alternative
    can backtrack into it), so plain `{1,3}` is the same pattern for a backtracking engine.
    `--tools hf-literal` measures the literal pattern to show the difference."""
    pat = PATTERNS[encoding]
    return pat.replace("{1,3}+", "{1,3}")


def build_hf_tokenizer_json(encoding: str, literal: bool = False) -> str:
    ranks = read_ranks(encoding)
    b2u = gpt2_byte_to_unicode()

    def show(bs: bytes) -> str:
        return "".join(b2u[b] for b in bs)

    vocab = {show(tok): rank for tok, rank in ranks.items()}
    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) < 2:
            continue
        parts = _split_with_lower_ranks(ranks, tok)
        if len(parts) != 2:
            raise RuntimeError(f"{encoding}: token {tok!r} (rank {rank}) is not one merge of lower ranks: {parts}")
        merges.append([show(parts[0]), show(parts[1])])
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": PATTERNS[encoding] if literal else hf_pattern(encoding)},
                 "behavior": "Isolated",
                 "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": True, "vocab": vocab, "merges": merges,
        },
    }
    return json.dumps(spec, ensure_ascii=False)


def hf_tokenizer_json(encoding: str, literal: bool = False) -> str:
    """The tokenizer.json for an encoding, built once and cached on disk by vocab hash."""
    kind = "literal" if literal else "onig"
    path = CACHE_DIR / f"hf_{encoding}_{SHA256[encoding][:16]}_{kind}_v2.json"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    t0 = time.perf_counter()
    data = build_hf_tokenizer_json(encoding, literal)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(data, encoding="utf-8")
    tmp.replace(path)
    print(f"[bench] built {path.name} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return data
