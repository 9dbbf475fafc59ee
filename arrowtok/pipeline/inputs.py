"""Finding input files and streaming record batches out of them with a bounded memory budget.

Inputs are local paths, directories (walked recursively), globs (``*``, ``?``, ``[..]``, ``**``) and
URIs that ``pyarrow.fs.FileSystem.from_uri`` understands. Formats are chosen by file suffix:
``.parquet``/``.pq`` (parquet) and ``.jsonl``/``.ndjson``/``.json`` (newline-delimited JSON, optionally
compressed: ``.gz``, ``.bz2``, ``.zst``, ``.lz4``). Under a directory, files and folders whose name
starts with ``.`` or ``_`` are skipped (the convention of Spark, pyarrow.dataset and arrowtok's own
manifest), and so are files with other suffixes.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.json as pj
import pyarrow.parquet as pq

from ..encoding import ArrowtokError

DATA_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "json", ".ndjson": "json", ".json": "json"}
COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
_GLOB_CHARS = re.compile(r"[*?\[]")


class JobError(ArrowtokError):
    """A corpus job failed on an input. `path` names the file, `row` the row within it (or None)."""

    def __init__(self, message: str, path: str | None = None, row: int | None = None,
                 byte_offset: int | None = None):
        super().__init__(message, row, byte_offset)
        self.path = path


@dataclass(frozen=True)
class InputFile:
    fs: pafs.FileSystem
    path: str            # path inside `fs`
    display: str         # how the user named it (local path or URI)
    rel: str             # posix path relative to the input argument's root: decides the output name
    format: str          # "parquet" or "json"
    compression: str | None
    size: int
    mtime_ns: int

    @property
    def stem(self) -> str:
        """`rel` without its data and compression suffixes: `sub/part-0.jsonl.gz` -> `sub/part-0`."""
        return split_suffixes(self.rel)[0]


def split_suffixes(name: str) -> tuple[str, str | None, str | None]:
    """(stem, format, compression) from a file name; format None when the suffix is not a data one."""
    stem, ext = os.path.splitext(name)
    compression = COMPRESSION_SUFFIXES.get(ext.lower())
    if compression:
        stem, ext = os.path.splitext(stem)
    fmt = DATA_SUFFIXES.get(ext.lower())
    if fmt is None or (compression and fmt != "json"):
        return name, None, None
    return stem, fmt, compression


def _glob_regex(pattern: str) -> re.Pattern:
    """Translate a glob (relative, '/'-separated) to a regex: `*` and `?` never cross '/', `**/`
    matches any number of folders (including none)."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _split_fs(spec: str) -> tuple[pafs.FileSystem, str, bool]:
    """(filesystem, path inside it, is_local)."""
    if "://" in spec:
        fs, path = pafs.FileSystem.from_uri(spec)
        return fs, path, isinstance(fs, pafs.LocalFileSystem)
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(spec)).replace(os.sep, "/"), True


def _hidden(rel: str) -> bool:
    return any(part.startswith((".", "_")) for part in rel.split("/"))


def _info(fs, path, display) -> pafs.FileInfo:
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise JobError(f"{display}: input not found", display)
    return info


def resolve_inputs(specs: Sequence[str], *, exclude: str | None = None) -> list[InputFile]:
    """Expand input arguments into a de-duplicated list of data files (each argument's files in
    sorted order). `exclude` is a local directory (the job's output) never taken as input."""
    if not specs:
        raise JobError("no inputs given")
    exclude_abs = os.path.abspath(exclude).replace(os.sep, "/").rstrip("/") + "/" if exclude else None
    found: list[InputFile] = []
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        spec = os.fspath(spec)
        if "://" not in spec and not _GLOB_CHARS.search(spec):
            fs, path, _ = _split_fs(spec)
            info = _info(fs, path, spec)
            if info.type == pafs.FileType.Directory:
                candidates = _walk(fs, path, spec)
            else:
                candidates = [(fs, info, os.path.basename(path), spec, True)]
        else:
            candidates = _expand(spec)
        matched = 0
        for fs, info, rel, display, explicit in candidates:
            if exclude_abs and isinstance(fs, pafs.LocalFileSystem) and info.path.startswith(exclude_abs):
                continue
            _, fmt, compression = split_suffixes(rel)
            if fmt is None:
                if explicit:
                    raise JobError(f"{display}: unsupported input format (expected one of "
                                   f"{', '.join(sorted(DATA_SUFFIXES))}, optionally JSON compressed with "
                                   f"{', '.join(sorted(COMPRESSION_SUFFIXES))})", display)
                continue
            matched += 1
            key = (type(fs).__name__, info.path)
            if key in seen:
                continue
            seen.add(key)
            found.append(InputFile(fs=fs, path=info.path, display=display, rel=rel, format=fmt,
                                   compression=compression, size=int(info.size or 0),
                                   mtime_ns=int(info.mtime_ns or 0)))
        if not matched:
            raise JobError(f"{spec}: no input files found (looked for {', '.join(sorted(DATA_SUFFIXES))})", spec)
    return found


def _walk(fs, root: str, display_root: str):
    sel = pafs.FileSelector(root, recursive=True)
    out = []
    base = root.rstrip("/") + "/"
    for info in fs.get_file_info(sel):
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(base):] if info.path.startswith(base) else os.path.basename(info.path)
        if _hidden(rel):
            continue
        out.append((fs, info, rel, display_root.rstrip("/") + "/" + rel, False))
    out.sort(key=lambda t: t[2])
    return out


def _glob_base(spec: str) -> tuple[str, str]:
    """Split a glob into (folder prefix without wildcards, pattern relative to it)."""
    m = _GLOB_CHARS.search(spec)
    if m is None:
        return spec, ""
    cut = spec.rfind("/", 0, m.start())
    if cut < 0:
        return "", spec
    return spec[:cut] or "/", spec[cut + 1:]


def _expand(spec: str):
    base, pattern = _glob_base(spec)
    if not pattern:  # a URI without wildcards
        fs, path, _ = _split_fs(spec)
        info = _info(fs, path, spec)
        if info.type == pafs.FileType.Directory:
            return _walk(fs, path, spec)
        return [(fs, info, os.path.basename(path), spec, True)]
    fs, root, _ = _split_fs(base or ".")
    info = _info(fs, root, base or ".")
    if info.type != pafs.FileType.Directory:
        raise JobError(f"{spec}: {base} is not a directory", spec)
    rx = _glob_regex(pattern)
    out = []
    prefix = root.rstrip("/") + "/"
    for fi in fs.get_file_info(pafs.FileSelector(root, recursive="**" in pattern or "/" in pattern)):
        if fi.type != pafs.FileType.File:
            continue
        rel = fi.path[len(prefix):]
        if rx.match(rel) and not _hidden(rel):
            shown = (base.rstrip("/") + "/" if base else "") + rel
            out.append((fs, fi, rel, shown, False))
    out.sort(key=lambda t: t[2])
    return out


# ---- reading ------------------------------------------------------------------------------------

TEXT_TYPES = (pa.string(), pa.large_string(), pa.string_view(), pa.binary(), pa.large_binary(), pa.binary_view())


def is_text_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return t.value_type in TEXT_TYPES
    return t in TEXT_TYPES or t == pa.null()


def check_schema(inp: InputFile, schema: pa.Schema, text_column: str | None, other: Sequence[str],
                 *, list_column: str | None = None) -> None:
    names = schema.names
    for col in ([text_column] if text_column else []) + ([list_column] if list_column else []) + list(other):
        if col not in names:
            raise JobError(f"{inp.display}: no column {col!r} (columns: {', '.join(names) or 'none'})", inp.display)
    if text_column:
        t = schema.field(text_column).type
        if not is_text_type(t):
            raise JobError(f"{inp.display}: column {text_column!r} has type {t}; expected a string column "
                           "(string, large_string, string_view, or binary holding UTF-8)", inp.display)
    if list_column:
        t = schema.field(list_column).type
        if not ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type)):
            raise JobError(f"{inp.display}: column {list_column!r} has type {t}; expected list<int32> token ids",
                           inp.display)


@dataclass
class Batch:
    data: pa.RecordBatch
    row_base: int        # index of the batch's first row within its file
    input_bytes: float   # share of the file's on-disk size this batch stands for (for ETA)


def _text_len(arr: pa.Array) -> np.ndarray:
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if arr.type == pa.null():
        return np.zeros(len(arr), np.int64)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):  # token ids: 4 bytes each
        return pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64) * 4
    return pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def split_batch(batch: pa.RecordBatch, measure: str | None, max_rows: int, max_bytes: int) -> Iterator[pa.RecordBatch]:
    """Zero-copy slices of `batch` with at most `max_rows` rows and about `max_bytes` bytes of the
    `measure` column each (a single larger row still makes a slice of its own)."""
    n = batch.num_rows
    if n == 0:
        return
    if measure is None:
        for s in range(0, n, max_rows):
            yield batch.slice(s, max_rows)
        return
    csum = np.cumsum(_text_len(batch.column(measure)))
    if csum[-1] <= max_bytes and n <= max_rows:
        yield batch
        return
    start = 0
    while start < n:
        base = csum[start - 1] if start else 0
        end = int(np.searchsorted(csum, base + max_bytes, side="right"))
        end = min(max(end, start + 1), start + max_rows, n)
        yield batch.slice(start, end - start)
        start = end


def iter_batches(inp: InputFile, columns: Sequence[str], *, text_column: str | None, batch_rows: int,
                 batch_bytes: int, list_column: str | None = None,
                 schema_out: list | None = None) -> Iterator[Batch]:
    """Stream `columns` of `inp` as record batches of at most `batch_rows` rows and about
    `batch_bytes` bytes of `text_column`. The file's (selected) schema is appended to `schema_out`
    before the first batch, so empty files still have one."""
    columns = list(dict.fromkeys(columns))
    measure = text_column or list_column
    if inp.format == "parquet":
        yield from _parquet_batches(inp, columns, text_column, list_column, measure, batch_rows, batch_bytes, schema_out)
    else:
        yield from _json_batches(inp, columns, text_column, list_column, measure, batch_rows, batch_bytes, schema_out)


def _read_error(inp: InputFile, what: str, e: Exception) -> JobError:
    return JobError(f"{inp.display}: cannot read {what}: {e}", inp.display)


def _parquet_batches(inp, columns, text_column, list_column, measure, batch_rows, batch_bytes, schema_out):
    try:
        f = inp.fs.open_input_file(inp.path)
        pf = pq.ParquetFile(f, buffer_size=1 << 20, pre_buffer=False)
        schema = pf.schema_arrow
    except (OSError, pa.ArrowException) as e:
        raise _read_error(inp, "parquet file", e) from None
    check_schema(inp, schema, text_column, [c for c in columns if c not in (text_column, list_column)],
                 list_column=list_column)
    md = pf.metadata
    total_rows = md.num_rows
    if schema_out is not None:
        schema_out.append(pa.schema([schema.field(c) for c in columns], metadata=schema.metadata))
    if total_rows == 0:
        return
    # Rows per read from the column's uncompressed size, so one read is about `batch_bytes`.
    est = 0
    try:
        idx = pf.schema_arrow.get_field_index(measure) if measure else -1
        if idx >= 0:
            leaf = [i for i in range(md.num_columns) if md.schema.column(i).path.split(".")[0] == measure]
            for rg in range(md.num_row_groups):
                g = md.row_group(rg)
                est += sum(g.column(i).total_uncompressed_size for i in leaf)
    except Exception:  # statistics are only a hint
        est = 0
    per_row = max(1, est // max(1, total_rows))
    read_rows = int(max(1, min(batch_rows, batch_bytes // per_row)))
    row = 0
    try:
        for rb in pf.iter_batches(batch_size=read_rows, columns=columns, use_threads=True):
            for piece in split_batch(rb, measure, batch_rows, batch_bytes):
                yield Batch(piece, row, inp.size * piece.num_rows / total_rows)
                row += piece.num_rows
    except (OSError, pa.ArrowException) as e:
        raise JobError(f"{inp.display}: cannot read parquet file after row {row}: {e}", inp.display, row) from None
    finally:
        f.close()


def _json_batches(inp, columns, text_column, list_column, measure, batch_rows, batch_bytes, schema_out):
    block = int(min(max(batch_bytes, 1 << 20), 1 << 30))
    row = 0
    try:
        stream = inp.fs.open_input_stream(inp.path, compression=inp.compression)
    except (OSError, pa.ArrowException) as e:
        raise _read_error(inp, "JSON file", e) from None
    try:
        try:
            reader = pj.open_json(stream, read_options=pj.ReadOptions(block_size=block, use_threads=True))
        except pa.ArrowInvalid as e:
            if "Empty JSON" in str(e):
                if schema_out is not None:
                    schema_out.append(None)  # no rows, no schema
                return
            raise
        schema = reader.schema
        check_schema(inp, schema, text_column, [c for c in columns if c not in (text_column, list_column)],
                     list_column=list_column)
        if schema_out is not None:
            schema_out.append(pa.schema([schema.field(c) for c in columns]))
        while True:
            try:
                rb = reader.read_next_batch()
            except StopIteration:
                break
            rb = rb.select(columns)
            for piece in split_batch(rb, measure, batch_rows, batch_bytes):
                share = float(_text_len(piece.column(measure)).sum()) if measure else 0.0
                yield Batch(piece, row, min(share, inp.size))
                row += piece.num_rows
    except JobError:
        raise
    except (OSError, pa.ArrowException) as e:
        hint = ""
        if "straddling" in str(e).lower() or "block" in str(e).lower():
            hint = " (a JSON line longer than the read block? raise --batch-bytes)"
        raise JobError(f"{inp.display}: cannot read JSON lines after row {row}: {e}{hint}", inp.display, row) from None
    finally:
        stream.close()
