"""Polars expressions over arrowtok: token ids, token counts and decoding as vectorised Polars UDFs.

    import polars as pl
    from arrowtok.polars import tok, tokenizer

    df.with_columns(tok(pl.col("text")))               # adds "text_tokens": List(Int32), cl100k_base
    df.with_columns(tok.count("text"))                 # adds "text_n_tokens": UInt32
    o200k = tokenizer("o200k_base")
    df.with_columns(o200k("text"), o200k.count("text"))
    df.with_columns(o200k.decode("text_tokens"))       # adds "text_tokens_decoded": String

    # the expression namespace (registered when arrowtok.polars is imported):
    df.with_columns(pl.col("text").tok.encode("o200k_base"), pl.col("text").tok.count())

Output names: every expression built here renames its output by appending a suffix to the input's
name -- "_tokens" (encode), "_n_tokens" (count), "_decoded" (decode) -- so `with_columns` adds a
column next to the text instead of replacing it. Pass `suffix=""` to keep the input's name, or call
`.alias(...)` on the expression (an alias given afterwards wins).

Each expression is `Expr.map_batches(..., is_elementwise=True)` with a fixed `return_dtype`, so it works
in `select`, `with_columns`, `group_by().agg`, LazyFrames, and stays in the streaming engine
(`collect(engine="streaming")`, `sink_parquet`), which then hands it one morsel at a time. Polars
String columns reach Zig without a copy (they are exported as Arrow `string_view` through the Arrow
PyCapsule interface); the token lists and counts come back to Polars without copying the ids.
"""
from __future__ import annotations

import re
from typing import AbstractSet, Literal, Union, overload

import polars as pl

from arrowtok.encoding import ArrowtokError, Encoding, get_encoding, list_encoding_names

__all__ = [
    "COUNT_SUFFIX", "DECODE_SUFFIX", "ENCODE_SUFFIX", "EncodingLike", "TokExprNamespace",
    "TokSeriesNamespace", "Tokenizer", "tok", "tokenizer",
]

EncodingLike = Union[str, Encoding]
ColumnLike = Union[str, pl.Expr]
AllowedSpecial = Union[Literal["all"], AbstractSet[str]]
Errors = Literal["strict", "replace"]

ENCODE_SUFFIX = "_tokens"
COUNT_SUFFIX = "_n_tokens"
DECODE_SUFFIX = "_decoded"

_KINDS = ("encode", "count", "decode")


# ---- the UDF -----------------------------------------------------------------------------------

def _resolve(encoding: EncodingLike) -> Encoding:
    return encoding if isinstance(encoding, Encoding) else get_encoding(encoding)


def _value_snippet(s: pl.Series, row: int | None) -> str:
    if row is None or not 0 <= row < len(s):
        return ""
    v = s[row]
    r = repr(v)
    if len(r) > 80:
        r = r[:77] + "..."
    return f"; value: {r}"


class _Udf:
    """The function Polars calls with one Series (a whole column, a group_by's flattened values, or a
    streaming morsel). A plain class, not a closure, so that Polars can pickle plans that hold it."""

    __slots__ = ("kind", "encoding", "threads", "allowed_special", "errors")

    def __init__(self, kind: str, encoding: EncodingLike, threads: int | None,
                 allowed_special: AllowedSpecial, errors: Errors) -> None:
        self.kind = kind
        self.encoding = encoding
        self.threads = threads
        self.allowed_special = allowed_special
        self.errors = errors

    def __getstate__(self) -> tuple:
        return (self.kind, self.encoding, self.threads, self.allowed_special, self.errors)

    def __setstate__(self, state: tuple) -> None:
        self.kind, self.encoding, self.threads, self.allowed_special, self.errors = state

    def __repr__(self) -> str:
        name = self.encoding if isinstance(self.encoding, str) else self.encoding.name
        return f"arrowtok.polars.{self.kind}({name!r})"

    def __call__(self, s: pl.Series) -> pl.Series:
        enc = _resolve(self.encoding)
        if self.kind == "decode":
            return self._decode(enc, s)
        col = _string_input(s, self.kind)
        try:
            if self.kind == "count":
                res = enc.count_tokens_arrow(col, threads=self.threads, allowed_special=self.allowed_special,
                                             errors=self.errors)
            else:
                res = enc.encode_arrow(col, threads=self.threads, allowed_special=self.allowed_special,
                                       errors=self.errors)
        except ArrowtokError as e:
            raise _batch_error(e, s, self.kind) from None
        return pl.Series(s.name, res)

    def _decode(self, enc: Encoding, s: pl.Series) -> pl.Series:
        dt = s.dtype
        if dt == pl.Null:
            return pl.Series(s.name, [None] * len(s), dtype=pl.String)
        if isinstance(dt, pl.Array) and dt.inner is not None and dt.inner.is_integer():
            s = s.cast(pl.List(dt.inner))
        elif not (isinstance(dt, pl.List) and dt.inner is not None and dt.inner.is_integer()):
            raise TypeError(
                f"arrowtok.polars decode: column {s.name!r} has dtype {dt}; expected token ids as "
                "List(Int32) (any integer List or Array works)")
        try:
            res = enc.decode_arrow(s)
        except ArrowtokError as e:
            raise _batch_error(e, s, "decode") from None
        return pl.Series(s.name, res)


def _string_input(s: pl.Series, kind: str) -> object:
    """What to hand to encode_arrow for this Series (without copying strings where Polars allows)."""
    dt = s.dtype
    if dt == pl.String or dt == pl.Binary or dt == pl.Null:
        # String/Binary export as string_view/binary_view: Zig reads Polars' buffers in place.
        # Binary is validated as UTF-8 (errors="replace" substitutes U+FFFD).
        return s
    if isinstance(dt, pl.Categorical):
        # Exported as a dictionary array holding only the categories the column uses: each distinct
        # value is encoded once, then gathered.
        return s
    if isinstance(dt, pl.Enum):
        # Exported with the Enum's whole category list; when that is longer than the column,
        # materialising the strings is cheaper than encoding every category.
        return s if len(dt.categories) <= len(s) else s.cast(pl.String)
    raise TypeError(
        f"arrowtok.polars {kind}: column {s.name!r} has dtype {dt}; expected String (or Categorical, Enum, "
        f"or Binary holding UTF-8). Cast it first, e.g. pl.col({s.name!r}).cast(pl.String)")


def _batch_error(e: ArrowtokError, s: pl.Series, kind: str) -> ArrowtokError:
    where = (f" (row {e.row} of the {len(s)}-row batch Polars passed for column {s.name!r}; in lazy, "
             f"group_by and streaming queries a batch may be a slice of the column"
             f"{_value_snippet(s, e.row)})") if e.row is not None else f" (column {s.name!r})"
    msg = re.sub(r"^(encode_arrow|count_tokens_arrow|decode_arrow): ", "", str(e))
    # Polars re-raises a UDF's exception as a new one of the same class built from the message alone,
    # so `.row` does not survive a query: the message carries the row and the value.
    return ArrowtokError(f"arrowtok.polars {kind}: {msg}{where}", e.row, e.byte_offset)


# ---- expressions ---------------------------------------------------------------------------------

def _as_expr(column: ColumnLike) -> pl.Expr:
    if isinstance(column, str):
        return pl.col(column)
    if isinstance(column, pl.Expr):
        return column
    raise TypeError(f"expected a column name or a Polars expression, got {type(column).__name__}")


_RETURN_DTYPES: dict[str, pl.DataType] = {
    "encode": pl.List(pl.Int32()), "count": pl.UInt32(), "decode": pl.String(),
}


def _check_options(encoding: EncodingLike, threads: int | None, allowed_special: AllowedSpecial,
                   errors: str) -> None:
    if isinstance(encoding, str):
        if encoding not in list_encoding_names():
            raise ValueError(f"Unknown encoding {encoding!r}. Known encodings: {', '.join(list_encoding_names())}")
    elif not isinstance(encoding, Encoding):
        raise TypeError(f"encoding must be a name or an arrowtok.Encoding, got {type(encoding).__name__}")
    if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
        raise ValueError(f"threads must be >= 1 or None, got {threads!r}")
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
    if allowed_special:
        _resolve(encoding)._allowed(allowed_special)  # raises on names that are not special tokens


def _build(kind: str, column: ColumnLike, encoding: EncodingLike, *, suffix: str, threads: int | None,
           allowed_special: AllowedSpecial, errors: Errors) -> pl.Expr:
    udf = _Udf(kind, encoding, threads, allowed_special, errors)
    expr = _as_expr(column).map_batches(udf, return_dtype=_RETURN_DTYPES[kind], is_elementwise=True)
    return expr.name.suffix(suffix) if suffix else expr


def _run(kind: str, s: pl.Series, encoding: EncodingLike, *, suffix: str, threads: int | None,
         allowed_special: AllowedSpecial, errors: Errors) -> pl.Series:
    out = _Udf(kind, encoding, threads, allowed_special, errors)(s)
    return out.rename(s.name + suffix) if suffix else out


class Tokenizer:
    """Polars expressions for one encoding. `tok = Tokenizer("cl100k_base")`; `tok(col)` is `tok.encode(col)`.

    Arguments of the methods: a column name, a Polars expression (returns an expression), or a
    Series (returns the evaluated Series). Output names get `suffix` appended (see the module doc).
    `threads` (default: all cores, or ARROWTOK_NUM_THREADS) is per call; `allowed_special` and
    `errors` are those of `Encoding.encode_arrow`. The vocabulary loads on first use.
    """

    def __init__(self, encoding: EncodingLike = "cl100k_base", *, threads: int | None = None,
                 allowed_special: AllowedSpecial = frozenset(), errors: Errors = "strict") -> None:
        _check_options(encoding, threads, allowed_special, errors)
        self._encoding = encoding
        self.threads = threads
        self.allowed_special = allowed_special
        self.errors: Errors = errors

    @property
    def encoding(self) -> Encoding:
        return _resolve(self._encoding)

    @property
    def name(self) -> str:
        return self._encoding if isinstance(self._encoding, str) else self._encoding.name

    def __repr__(self) -> str:
        return f"arrowtok.polars.Tokenizer({self.name!r})"

    def _opts(self) -> dict:
        return {"threads": self.threads, "allowed_special": self.allowed_special, "errors": self.errors}

    @overload
    def __call__(self, column: pl.Series, *, suffix: str = ENCODE_SUFFIX) -> pl.Series: ...
    @overload
    def __call__(self, column: ColumnLike, *, suffix: str = ENCODE_SUFFIX) -> pl.Expr: ...

    def __call__(self, column: ColumnLike | pl.Series, *, suffix: str = ENCODE_SUFFIX) -> pl.Expr | pl.Series:
        """Token ids, `List(Int32)`; output named `<input>_tokens` unless `suffix` says otherwise."""
        return self.encode(column, suffix=suffix)

    @overload
    def encode(self, column: pl.Series, *, suffix: str = ENCODE_SUFFIX) -> pl.Series: ...
    @overload
    def encode(self, column: ColumnLike, *, suffix: str = ENCODE_SUFFIX) -> pl.Expr: ...

    def encode(self, column: ColumnLike | pl.Series, *, suffix: str = ENCODE_SUFFIX) -> pl.Expr | pl.Series:
        """Token ids, `List(Int32)`; nulls stay null, "" gives []. Output named `<input>_tokens`."""
        if isinstance(column, pl.Series):
            return _run("encode", column, self._encoding, suffix=suffix, **self._opts())
        return _build("encode", column, self._encoding, suffix=suffix, **self._opts())

    @overload
    def count(self, column: pl.Series, *, suffix: str = COUNT_SUFFIX) -> pl.Series: ...
    @overload
    def count(self, column: ColumnLike, *, suffix: str = COUNT_SUFFIX) -> pl.Expr: ...

    def count(self, column: ColumnLike | pl.Series, *, suffix: str = COUNT_SUFFIX) -> pl.Expr | pl.Series:
        """Token counts, `UInt32` (ids are never materialised). Output named `<input>_n_tokens`."""
        if isinstance(column, pl.Series):
            return _run("count", column, self._encoding, suffix=suffix, **self._opts())
        return _build("count", column, self._encoding, suffix=suffix, **self._opts())

    @overload
    def decode(self, column: pl.Series, *, suffix: str = DECODE_SUFFIX) -> pl.Series: ...
    @overload
    def decode(self, column: ColumnLike, *, suffix: str = DECODE_SUFFIX) -> pl.Expr: ...

    def decode(self, column: ColumnLike | pl.Series, *, suffix: str = DECODE_SUFFIX) -> pl.Expr | pl.Series:
        """Text from token ids (`List` of integers) as `String`; bytes that are not UTF-8 become U+FFFD.
        Output named `<input>_decoded`."""
        if isinstance(column, pl.Series):
            return _run("decode", column, self._encoding, suffix=suffix, **self._opts())
        return _build("decode", column, self._encoding, suffix=suffix, **self._opts())


def tokenizer(encoding: EncodingLike = "cl100k_base", *, threads: int | None = None,
              allowed_special: AllowedSpecial = frozenset(), errors: Errors = "strict") -> Tokenizer:
    """A `Tokenizer` for `encoding` (a name such as "o200k_base", or an `arrowtok.Encoding`)."""
    return Tokenizer(encoding, threads=threads, allowed_special=allowed_special, errors=errors)


tok: Tokenizer = Tokenizer("cl100k_base")
"""cl100k_base expressions: `tok(pl.col("text"))`, `tok.count("text")`, `tok.decode("text_tokens")`."""


# ---- namespaces: pl.col("text").tok.encode(...), series.tok.count(...) --------------------------

@pl.api.register_expr_namespace("tok")
class TokExprNamespace:
    """`pl.col("text").tok.encode("o200k_base")`, `.tok.count()`, `.tok.decode()`.

    The namespace is attached to `pl.Expr` at runtime, which static checkers cannot see; for checked
    code use `tok`/`tokenizer(...)`, or `TokExprNamespace(pl.col("text")).encode(...)`, which are typed.
    """

    def __init__(self, expr: pl.Expr) -> None:
        self._expr = expr

    def encode(self, encoding: EncodingLike = "cl100k_base", *, suffix: str = ENCODE_SUFFIX,
               threads: int | None = None, allowed_special: AllowedSpecial = frozenset(),
               errors: Errors = "strict") -> pl.Expr:
        """Token ids, `List(Int32)`; output named `<input>_tokens` (pass suffix="" to keep the name)."""
        _check_options(encoding, threads, allowed_special, errors)
        return _build("encode", self._expr, encoding, suffix=suffix, threads=threads,
                      allowed_special=allowed_special, errors=errors)

    def count(self, encoding: EncodingLike = "cl100k_base", *, suffix: str = COUNT_SUFFIX,
              threads: int | None = None, allowed_special: AllowedSpecial = frozenset(),
              errors: Errors = "strict") -> pl.Expr:
        """Token counts, `UInt32`; output named `<input>_n_tokens`."""
        _check_options(encoding, threads, allowed_special, errors)
        return _build("count", self._expr, encoding, suffix=suffix, threads=threads,
                      allowed_special=allowed_special, errors=errors)

    def decode(self, encoding: EncodingLike = "cl100k_base", *, suffix: str = DECODE_SUFFIX) -> pl.Expr:
        """Text from token ids, `String`; output named `<input>_decoded`."""
        _check_options(encoding, None, frozenset(), "strict")
        return _build("decode", self._expr, encoding, suffix=suffix, threads=None,
                      allowed_special=frozenset(), errors="strict")


@pl.api.register_series_namespace("tok")
class TokSeriesNamespace:
    """`series.tok.encode(...)`, `.tok.count(...)`, `.tok.decode(...)`: the same, evaluated eagerly."""

    def __init__(self, series: pl.Series) -> None:
        self._s = series

    def encode(self, encoding: EncodingLike = "cl100k_base", *, suffix: str = ENCODE_SUFFIX,
               threads: int | None = None, allowed_special: AllowedSpecial = frozenset(),
               errors: Errors = "strict") -> pl.Series:
        _check_options(encoding, threads, allowed_special, errors)
        return _run("encode", self._s, encoding, suffix=suffix, threads=threads,
                    allowed_special=allowed_special, errors=errors)

    def count(self, encoding: EncodingLike = "cl100k_base", *, suffix: str = COUNT_SUFFIX,
              threads: int | None = None, allowed_special: AllowedSpecial = frozenset(),
              errors: Errors = "strict") -> pl.Series:
        _check_options(encoding, threads, allowed_special, errors)
        return _run("count", self._s, encoding, suffix=suffix, threads=threads,
                    allowed_special=allowed_special, errors=errors)

    def decode(self, encoding: EncodingLike = "cl100k_base", *, suffix: str = DECODE_SUFFIX) -> pl.Series:
        _check_options(encoding, None, frozenset(), "strict")
        return _run("decode", self._s, encoding, suffix=suffix, threads=None,
                    allowed_special=frozenset(), errors="strict")
