"""Corpus jobs on top of the Arrow API: `tokenize_corpus` (files in, token files out; streaming,
resumable) and `corpus_stats` (token-count statistics). The `arrowtok` command line wraps both."""
from .inputs import JobError, resolve_inputs
from .job import JobResult, append_token, tokenize_corpus

__all__ = ["JobError", "JobResult", "append_token", "corpus_stats", "resolve_inputs", "tokenize_corpus"]


def __getattr__(name):
    if name in ("corpus_stats", "Stats"):
        from . import stats
        return getattr(stats, name)
    raise AttributeError(name)
