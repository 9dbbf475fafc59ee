"""Build Hugging Face tokenizer.json files from the shipped .tiktoken vocabularies, one per model
family, for tests and benchmarks (no model hub is reachable here).

    python tools/make_hf_tokenizers.py OUT_DIR [FAMILY ...]

Vocab: every token's bytes through GPT-2's byte-to-unicode map. Merges: for each token (in rank
order) run tiktoken's BPE over its bytes using only lower ranks; when that ends in exactly two
parts, those two parts are the token's merge (priority = the token's rank order). Tokens that do
not end in two parts get no merge (reachable only as whole pieces under ignore_merges).

Families (pattern, normalizer, flags as the real models have them):
  gpt2         cl100k ranks, ByteLevel(use_regex=true): GPT-2's pattern; "a b" merges
  gpt2_prefix  the same with add_prefix_space=true
  llama3       cl100k ranks, Split(Llama 3 pattern) + ByteLevel(use_regex=false), ignore_merges; [a, b] merges
  cl100k       cl100k ranks, Split(tiktoken 0.14's cl100k pattern), ignore_merges
  qwen2        cl100k ranks, Split(Qwen2 pattern: single digits), NFC, non-special added tokens
  o200k        o200k ranks, Split(o200k pattern), ignore_merges; [a, b] merges
"""
from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arrowtok.encoding import DATA_DIR, KNOWN  # noqa: E402
from arrowtok.hf import (GPT2_PATTERN, CL100K_PATTERN, LLAMA3_PATTERN, O200K_PATTERN, QWEN2_PATTERN,  # noqa: E402
                         bytes_to_unicode)

B2U = bytes_to_unicode()


def load_ranks(name: str) -> dict[bytes, int]:
    ranks = {}
    for line in (DATA_DIR / KNOWN[name]["file"]).read_bytes().splitlines():
        if line:
            tok, r = line.split()
            ranks[base64.b64decode(tok)] = int(r)
    return ranks


def derive_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """(left, right) merges in priority order, from tiktoken ranks."""
    merges = []
    for tok, r in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) < 2:
            continue
        parts = [tok[i:i + 1] for i in range(len(tok))]
        while len(parts) > 2:
            best, bi = r, -1
            for i in range(len(parts) - 1):
                pr = ranks.get(parts[i] + parts[i + 1], r)
                if pr < best:
                    best, bi = pr, i
            if bi < 0:
                break
            parts[bi:bi + 2] = [parts[bi] + parts[bi + 1]]
        if len(parts) == 2 and ranks.get(parts[0], r) < r and ranks.get(parts[1], r) < r:
            merges.append((parts[0], parts[1]))
    return merges


def u(b: bytes) -> str:
    return "".join(B2U[x] for x in b)


def _added(content: str, tid: int, special: bool = True) -> dict:
    return {"id": tid, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": not special, "special": special}


def _split(pattern: str) -> dict:
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}


FAMILIES = {
    # family: (vocab, pre_tokenizer, normalizer, ignore_merges, merges as lists, extra added tokens)
    "gpt2": ("cl100k_base", {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
             None, False, False, []),
    "gpt2_prefix": ("cl100k_base", {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
                    None, False, False, []),
    "llama3": ("cl100k_base", _split(LLAMA3_PATTERN), None, True, True, []),
    "cl100k": ("cl100k_base", _split(CL100K_PATTERN), None, True, False, []),
    "qwen2": ("cl100k_base", _split(QWEN2_PATTERN), {"type": "NFC"}, False, False, ["<tool_call>", "</tool_call>"]),
    "o200k": ("o200k_base", _split(O200K_PATTERN), None, True, True, []),
}

_cache: dict[str, tuple[dict[bytes, int], list]] = {}


def build(family: str) -> dict:
    vocab_name, pre, norm, ignore_merges, list_merges, extra = FAMILIES[family]
    if vocab_name not in _cache:
        ranks = load_ranks(vocab_name)
        _cache[vocab_name] = (ranks, derive_merges(ranks))
    ranks, merges = _cache[vocab_name]
    # Added tokens take the ids after the vocab, in order, as tokenizers assigns them when it loads
    # a file (it ignores the ids written there): cl100k's <|endoftext|> is 100256 here, not 100257.
    names = list(KNOWN[vocab_name]["special_tokens"]) + extra
    added = [_added(s, len(ranks) + k, special=s not in extra) for k, s in enumerate(names)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": norm,
        "pre_tokenizer": pre,
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
            "vocab": {u(t): r for t, r in ranks.items()},
            "merges": [[u(a), u(b)] if list_merges else f"{u(a)} {u(b)}" for a, b in merges],
        },
    }


def write(out_dir: Path, families=None) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fam in families or FAMILIES:
        p = out_dir / fam / "tokenizer.json"
        if not p.is_file():
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(".tmp")
            tmp.write_text(json.dumps(build(fam), ensure_ascii=False))
            tmp.replace(p)
        paths[fam] = p
    return paths


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for fam, p in write(Path(sys.argv[1]), sys.argv[2:] or None).items():
        print(fam, p)
