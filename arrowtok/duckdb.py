"""DuckDB SQL functions over arrowtok, as vectorised Arrow UDFs.

    import duckdb, arrowtok.duckdb
    con = duckdb.connect()
    arrowtok.duckdb.register(con)                                   # cl100k_base
    arrowtok.duckdb.register(con, "o200k_base", prefix="o200k_")    # o200k_tokenize(...), ...
    con.sql("SELECT sum(count_tokens(text)) FROM read_parquet('corpus/*.parquet')")
    con.sql("COPY (SELECT id, tokenize(text) AS tokens FROM docs) TO 'out.parquet'")

Functions (names get `prefix` in front):
    tokenize(VARCHAR) -> INTEGER[]      token ids
    count_tokens(VARCHAR) -> INTEGER    token count (ids never materialised)
    detokenize(INTEGER[]) -> VARCHAR    text (bytes that are not UTF-8 become U+FFFD)
NULL in gives NULL out; '' gives [] / 0. DuckDB calls each function with one vector (up to 2048 rows)
at a time, from any of its threads; each call releases the GIL and splits its rows over Zig threads
(`threads`, default all cores) -- when several DuckDB threads call at once, the later calls run on
their own thread instead of waiting for the pool.

Functions belong to the connection they are registered on (and its `cursor()`s); register them on
every `duckdb.connect(...)` that needs them.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Union

import duckdb
import pyarrow as pa

try:  # duckdb >= 1.4
    from duckdb.func import FunctionNullHandling, PythonUDFType
except ImportError:  # pragma: no cover - older duckdb
    from duckdb.functional import FunctionNullHandling, PythonUDFType  # type: ignore[no-redef]

from arrowtok.encoding import ArrowtokError, Encoding, get_encoding, list_encoding_names

__all__ = ["FUNCTIONS", "register", "unregister"]

EncodingLike = Union[str, Encoding]

FUNCTIONS = ("tokenize", "count_tokens", "detokenize")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _default_connection() -> duckdb.DuckDBPyConnection:
    dc = duckdb.default_connection
    return dc() if callable(dc) else dc  # a function in duckdb >= 1.3, an attribute before


def _snippet(col, row: int | None) -> str:
    if row is None:
        return ""
    try:
        v = col[row].as_py()
    except Exception:  # pragma: no cover - defensive: the message must not fail
        return ""
    r = repr(v)
    return "; value: " + (r if len(r) <= 80 else r[:77] + "...")


def _wrap(sql_name: str, fn: Callable[[pa.ChunkedArray], Any]) -> Callable[..., Any]:
    def udf(col: pa.ChunkedArray) -> Any:
        try:
            return fn(col)
        except ArrowtokError as e:
            # The row number counts from the start of DuckDB's vector, which means nothing to the
            # query's author; show the value instead.
            msg = re.sub(r"^\w+: row \d+: ", "", str(e))
            raise ArrowtokError(f"{sql_name}: {msg}{_snippet(col, e.row)}", None, e.byte_offset) from None

    udf.__name__ = sql_name
    return udf


def _existing(con: duckdb.DuckDBPyConnection, names: list[str]) -> list[str]:
    rows = con.execute(
        "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_name IN ("
        + ", ".join("?" * len(names)) + ")", names).fetchall()
    return sorted(r[0] for r in rows)


def register(con: duckdb.DuckDBPyConnection | None = None, encoding: EncodingLike = "cl100k_base", *,
             prefix: str = "", threads: int | None = None, replace: bool = False) -> duckdb.DuckDBPyConnection:
    """Add `<prefix>tokenize`, `<prefix>count_tokens` and `<prefix>detokenize` to `con` (default: DuckDB's
    default connection, the one `duckdb.sql` uses) and return `con`.

    `encoding`: a name ("cl100k_base", "o200k_base") or an `arrowtok.Encoding`. `threads`: Zig threads
    per call (default: all cores, or ARROWTOK_NUM_THREADS). If functions of these names exist already,
    raises ValueError unless `replace=True`, which drops them first.
    """
    if con is None:
        con = _default_connection()
    if isinstance(encoding, str):
        if encoding not in list_encoding_names():
            raise ValueError(f"Unknown encoding {encoding!r}. Known encodings: {', '.join(list_encoding_names())}")
        enc = get_encoding(encoding)
    elif isinstance(encoding, Encoding):
        enc = encoding
    else:
        raise TypeError(f"encoding must be a name or an arrowtok.Encoding, got {type(encoding).__name__}")
    if not isinstance(prefix, str) or not _IDENT.match(prefix + "x"):
        raise ValueError(f"prefix must be empty or an SQL identifier prefix ([A-Za-z_][A-Za-z0-9_]*), got {prefix!r}")
    if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
        raise ValueError(f"threads must be >= 1 or None, got {threads!r}")

    names = [prefix + f for f in FUNCTIONS]
    existing = _existing(con, names)
    if existing:
        if not replace:
            raise ValueError(f"functions {existing} already exist on this connection; pass replace=True to "
                             "replace them, or a different prefix")
        for name in existing:
            con.remove_function(name)

    def tokenize(col):
        return enc.encode_arrow(col, threads=threads)

    def count_tokens(col):
        return enc.count_tokens_arrow(col, threads=threads).cast(pa.int32())

    def detokenize(col):
        return enc.decode_arrow(col)

    # null_handling="special": the functions see NULL rows and keep them NULL themselves, so DuckDB
    # does not have to filter each vector before the call and scatter the results after it.
    varchar = duckdb.sqltype("VARCHAR")
    int_list = duckdb.list_type(duckdb.sqltype("INTEGER"))
    specs = [
        (names[0], tokenize, varchar, int_list),
        (names[1], count_tokens, varchar, duckdb.sqltype("INTEGER")),
        (names[2], detokenize, int_list, varchar),
    ]
    done: list[str] = []
    try:
        for name, fn, arg, ret in specs:
            con.create_function(name, _wrap(name, fn), [arg], ret, type=PythonUDFType.ARROW,
                                null_handling=FunctionNullHandling.SPECIAL, side_effects=False)
            done.append(name)
    except BaseException:
        for name in done:
            con.remove_function(name)
        raise
    return con


def unregister(con: duckdb.DuckDBPyConnection | None = None, *, prefix: str = "") -> duckdb.DuckDBPyConnection:
    """Remove the functions `register(con, prefix=prefix)` added (those that exist)."""
    if con is None:
        con = _default_connection()
    for name in _existing(con, [prefix + f for f in FUNCTIONS]):
        con.remove_function(name)
    return con
