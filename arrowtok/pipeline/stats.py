"""Token-count statistics over a corpus: `arrowtok stats`.

Per group (and in total): documents (non-null rows), null rows, bytes (UTF-8 bytes of the text),
tokens, bytes per token, and tokens per document: mean, p50, p90, p99 (linear interpolation between
order statistics, numpy's default `percentile` method) and max.

Two sources:
* a text column (``column``): counted on the fly with ``count_tokens_arrow`` (ids never materialised);
* a token-id column (``tokens_column``, e.g. the job's ``tokens``): tokens are list lengths, bytes are
  the UTF-8 length of the decoded ids. When the file was written by ``arrowtok tokenize`` the parquet
  metadata gives the encoding, and with ``append_eot`` the appended end-of-text token is counted
  as a token (it is in the data) but its text is not counted as bytes.

Batches stream through pyarrow; per document only (group, tokens, bytes) is kept (about 16 bytes
plus the group key); one numpy sort by (group, tokens) then gives every aggregate exactly, with no
Python loop over rows (only over groups).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..encoding import ArrowtokError, ENDOFTEXT, get_encoding
from .inputs import JobError, iter_batches, resolve_inputs
from .job import resolve_encoding
from .job import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, META_KEY, _row_error

METRICS = ("documents", "null_rows", "bytes", "tokens", "bytes_per_token",
           "tokens_mean", "tokens_p50", "tokens_p90", "tokens_p99", "tokens_max")


@dataclass
class Stats:
    inputs: list[str]
    source: str                  # "text" or "tokens"
    column: str
    encoding: str | None
    by: str | None
    total: dict
    groups: list[dict] = field(default_factory=list)   # sorted by tokens, descending
    counts: np.ndarray | None = field(default=None, repr=False)  # tokens per document (non-null)
    group_keys: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"inputs": self.inputs, "source": self.source, "column": self.column,
                "encoding": self.encoding, "by": self.by, "total": self.total, "groups": self.groups}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def table(self, top: int | None = 30) -> str:
        """A fixed-width text table: one line per group (the `top` largest by tokens) and a total."""
        head = [self.by or "", "docs", "nulls", "bytes", "tokens", "B/tok", "mean", "p50", "p90", "p99", "max"]
        rows = []
        shown = self.groups if top is None else self.groups[:top]
        for g in shown:
            rows.append([_key(g["group"])] + _cells(g))
        if self.by and top is not None and len(self.groups) > top:
            rows.append([f"({len(self.groups) - top} more groups)"] + [""] * 10)
        rows.append(["total"] + _cells(self.total))
        widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
        fmt = lambda r: "  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r))
        sep = "  ".join("-" * w for w in widths)
        return "\n".join([fmt(head), sep] + [fmt(r) for r in rows[:-1]] + ([sep] if self.by else []) + [fmt(rows[-1])])


def _key(v) -> str:
    return "(null)" if v is None else str(v)


def _num(v, digits=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def _cells(d: dict) -> list[str]:
    return [_num(d["documents"]), _num(d["null_rows"]), _num(d["bytes"]), _num(d["tokens"]),
            _num(d["bytes_per_token"], 2), _num(d["tokens_mean"]), _num(d["tokens_p50"]), _num(d["tokens_p90"]),
            _num(d["tokens_p99"]), _num(d["tokens_max"])]


def _file_meta(schema: pa.Schema | None) -> dict:
    if schema is None or not schema.metadata or META_KEY not in schema.metadata:
        return {}
    try:
        return json.loads(schema.metadata[META_KEY])
    except ValueError:
        return {}


def corpus_stats(inputs: str | os.PathLike | Iterable[str | os.PathLike], *, column: str | None = None,
                 tokens_column: str | None = None, encoding: str | None = None, by: str | None = None,
                 threads: int | None = None, errors: str = "strict", batch_rows: int = DEFAULT_BATCH_ROWS,
                 batch_bytes: int = DEFAULT_BATCH_BYTES) -> Stats:
    """Statistics of `column` (text, tokenized on the fly; default "text") or `tokens_column`
    (token ids), optionally grouped by the column `by`."""
    if column and tokens_column:
        raise JobError("give either a text column or a tokens column, not both")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [os.fspath(i) for i in inputs]
    source = "tokens" if tokens_column else "text"
    col = tokens_column or column or "text"
    files = resolve_inputs(inputs)
    parts: list[pa.Table] = []
    used_encoding = encoding
    cols = [col] + ([by] if by and by != col else [])
    for f in files:
        box: list = []
        enc = None
        eot_len = 0
        for b in iter_batches(f, cols, text_column=col if source == "text" else None,
                              list_column=col if source == "tokens" else None,
                              batch_rows=batch_rows, batch_bytes=batch_bytes, schema_out=box):
            if enc is None:
                meta = _file_meta(box[0])
                name = encoding or meta.get("encoding") or "cl100k_base"
                if encoding and meta.get("encoding") and meta["encoding"] != encoding:
                    raise JobError(f"{f.display}: tokens were made with {meta['encoding']}, not --encoding {encoding}",
                                   f.display)
                if used_encoding and used_encoding != name:
                    raise JobError(f"{f.display}: encoding {name} differs from {used_encoding} of earlier files",
                                   f.display)
                used_encoding = name
                enc = resolve_encoding(name)
                if source == "tokens" and meta.get("append_eot"):
                    eot_len = len(ENDOFTEXT.encode())
            arr = b.data.column(col)
            if source == "text":
                try:
                    counts = enc.count_tokens_arrow(arr, threads=threads, errors=errors)
                except ArrowtokError as e:
                    raise _row_error(f, b.row_base, e, col) from None
                nbytes = pc.binary_length(arr.cast(arr.type.value_type) if pa.types.is_dictionary(arr.type) else arr)
            else:
                counts = pc.list_value_length(arr)
                try:
                    nbytes = pc.binary_length(enc.decode_arrow(arr))
                except (ArrowtokError, KeyError) as e:
                    raise JobError(f"{f.display}: column {col!r}: cannot decode token ids: {e}", f.display) from None
                if eot_len:
                    nbytes = pc.subtract(nbytes.cast(pa.int64()), eot_len)
            cols_out = {"tokens": counts.cast(pa.int64()), "bytes": nbytes.cast(pa.int64())}
            if by:
                g = b.data.column(by)
                if pa.types.is_dictionary(g.type):
                    g = g.cast(g.type.value_type)
                if pa.types.is_string(g.type) or pa.types.is_string_view(g.type) or pa.types.is_large_string(g.type):
                    g = g.cast(pa.large_string())
                cols_out = {"group": g, **cols_out}
            parts.append(pa.table(cols_out))
    if parts:
        table = pa.concat_tables(parts, promote_options="permissive")
    else:
        table = pa.table({"tokens": pa.array([], pa.int64()), "bytes": pa.array([], pa.int64())})
        if by:
            table = table.add_column(0, "group", pa.array([], pa.large_string()))
    tokens = table.column("tokens")
    valid = tokens.is_valid().to_numpy(zero_copy_only=False) if tokens.null_count else np.ones(len(tokens), bool)
    t = tokens.fill_null(0).to_numpy().astype(np.int64, copy=False)
    nb = table.column("bytes").fill_null(0).to_numpy().astype(np.int64, copy=False)
    if by:
        denc = pc.dictionary_encode(table.column("group").combine_chunks(), null_encoding="encode")
        keys = denc.dictionary.to_pylist()
        codes = denc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        keys = [None]
        codes = np.zeros(len(t), np.int64)
    agg = _aggregate(codes, len(keys), t, nb, valid)
    total = _aggregate(np.zeros(len(t), np.int64), 1, t, nb, valid)[0]
    groups = []
    if by:
        groups = [{"group": k, **a} for k, a in zip(keys, agg)]
        groups.sort(key=lambda g: (-(g["tokens"] or 0), g["group"] is None, str(g["group"])))
    return Stats(inputs=inputs, source=source, column=col, encoding=used_encoding, by=by, total=total,
                 groups=groups, counts=t[valid],
                 group_keys=np.array(keys, dtype=object)[codes[valid]] if by else None)


def _aggregate(codes: np.ndarray, n_groups: int, tokens: np.ndarray, nbytes: np.ndarray,
               valid: np.ndarray) -> list[dict]:
    """Per-group metrics, vectorised: one sort by (group, tokens), then reductions at group starts
    and quantiles by indexing (numpy's 'linear' percentile method)."""
    G = n_groups
    null_rows = np.bincount(codes[~valid], minlength=G)
    c, t, b = codes[valid], tokens[valid], nbytes[valid]
    order = np.lexsort((t, c))
    c, t, b = c[order], t[order], b[order]
    docs = np.bincount(c, minlength=G)
    starts = np.zeros(G, np.int64)
    np.cumsum(docs[:-1], out=starts[1:])
    nz = docs > 0
    tok_sum = np.zeros(G, np.int64)
    byte_sum = np.zeros(G, np.int64)
    if nz.any():
        tok_sum[nz] = np.add.reduceat(t, starts[nz])
        byte_sum[nz] = np.add.reduceat(b, starts[nz])

    def quantile(q):
        out = np.full(G, np.nan)
        pos = starts[nz] + q * (docs[nz] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.ceil(pos).astype(np.int64)
        out[nz] = t[lo] + (t[hi] - t[lo]) * (pos - lo)
        return out

    p50, p90, p99 = quantile(0.5), quantile(0.9), quantile(0.99)
    res = []
    for g in range(G):
        n = int(docs[g])
        res.append({
            "documents": n,
            "null_rows": int(null_rows[g]),
            "bytes": int(byte_sum[g]),
            "tokens": int(tok_sum[g]),
            "bytes_per_token": float(byte_sum[g] / tok_sum[g]) if tok_sum[g] else None,
            "tokens_mean": float(tok_sum[g] / n) if n else None,
            "tokens_p50": float(p50[g]) if n else None,
            "tokens_p90": float(p90[g]) if n else None,
            "tokens_p99": float(p99[g]) if n else None,
            "tokens_max": int(t[starts[g] + n - 1]) if n else None,
        })
    return res


def plot_histogram(stats: Stats, path: str | os.PathLike, *, top_groups: int = 6) -> None:
    """Save a histogram of tokens per document (log-spaced bins) as a PNG; with groups, the
    `top_groups` largest are overlaid. Needs matplotlib (`pip install matplotlib`)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise JobError("--plot needs matplotlib: pip install matplotlib") from None
    counts = stats.counts if stats.counts is not None else np.zeros(0)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    hi = max(int(counts.max()) if counts.size else 1, 1)
    bins = np.unique(np.concatenate([[0, 1], np.geomspace(1, hi + 1, 60)]).round())
    ax.hist(counts, bins=bins, color="#4c72b0", alpha=0.55 if stats.by else 0.9, label="all documents")
    if stats.by and stats.group_keys is not None:
        for g in stats.groups[:top_groups]:
            sel = counts[stats.group_keys == g["group"]] if g["group"] is not None else counts[
                np.array([k is None for k in stats.group_keys], dtype=bool)]
            ax.hist(sel, bins=bins, histtype="step", linewidth=1.4, label=f"{stats.by}={_key(g['group'])}")
        ax.legend(fontsize=8)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel(f"tokens per document ({stats.encoding})")
    ax.set_ylabel("documents")
    t = stats.total
    ax.set_title(f"{t['documents']:,} documents, {t['tokens'] or 0:,} tokens; p50 {_num(t['tokens_p50'])}, "
                 f"p90 {_num(t['tokens_p90'])}, p99 {_num(t['tokens_p99'])}", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
    plt.close(fig)
