"""The test oracle: tiktoken 0.14.0 built offline from the same vocabulary files arrowtok embeds."""
from __future__ import annotations

import functools
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe

import arrowtok.encoding as E

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPORA = ROOT.parent / "shared" / "corpora"
SAMPLE_DATA = ROOT / "sample_data"

# tiktoken 0.14.0's patterns (tiktoken_ext/openai_public.py), read from the installed package so
# the oracle cannot drift from the tiktoken under test.
def _pat(name: str) -> str:
    import inspect
    import re

    from tiktoken_ext import openai_public as op

    src = inspect.getsource(getattr(op, name))
    if name == "cl100k_base":
        m = re.search(r'"pat_str": (r""".*?""")', src, re.S)
        return eval(m.group(1))
    parts = re.findall(r'(r""".*?""")', src, re.S)
    return "|".join(eval(p) for p in parts)


@functools.cache
def oracle(name: str) -> tiktoken.Encoding:
    spec = E.KNOWN[name]
    ranks = load_tiktoken_bpe(str(E.DATA_DIR / spec["file"]), expected_hash=spec["sha256"])
    return tiktoken.Encoding(name=f"oracle_{name}", pat_str=_pat(name), mergeable_ranks=ranks,
                             special_tokens=spec["special_tokens"])


def corpus_files() -> list[Path]:
    """Real text: ../shared/corpora when present, and always the repo's own sample_data/ texts."""
    files = []
    if SHARED_CORPORA.is_dir():
        files += sorted(p for p in SHARED_CORPORA.iterdir() if p.suffix in (".txt", ".md", ".jsonl") and p.is_file())
    files += sorted(p for p in (SAMPLE_DATA / "text").glob("*.txt")) if (SAMPLE_DATA / "text").is_dir() else []
    return files
