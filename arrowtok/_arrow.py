"""Arrow adapters: normalise what users pass into arrays of buffers, hand the buffers to Zig, and
wrap the buffers Zig fills as pyarrow arrays (zero-copy; `_native._Owner` frees them)."""
from __future__ import annotations

import ctypes as C

import pyarrow as pa
import pyarrow.compute as pc

from . import _native as N

_STRING_LAYOUT = {
    pa.string(): 0, pa.binary(): 0,
    pa.large_string(): 1, pa.large_binary(): 1,
    pa.string_view(): 2, pa.binary_view(): 2,
}
LIST_INT32 = pa.list_(pa.int32())


def as_chunks(column, what: str = "column") -> tuple[list[pa.Array], bool]:
    """(chunks, was_single_array). Accepts pyarrow arrays/chunked arrays, Arrow PyCapsule objects
    (Polars Series, DuckDB results, nanoarrow), and Python sequences of str/bytes."""
    if isinstance(column, pa.ChunkedArray):
        return list(column.chunks), False
    if isinstance(column, pa.Array):
        return [column], True
    if isinstance(column, (pa.Table, pa.RecordBatch)):
        if column.num_columns != 1:
            raise TypeError(f"{what}: expected one column, got a table with columns {column.column_names}; select one")
        return as_chunks(column.column(0), what)
    if hasattr(column, "__arrow_c_stream__"):
        data = pa.chunked_array(column) if not _is_table_stream(column) else pa.table(column)
        return as_chunks(data, what)
    if hasattr(column, "__arrow_c_array__"):
        arr = pa.array(column)
        if isinstance(arr, pa.StructArray) and arr.type.num_fields == 1:
            arr = arr.field(0)
        return [arr], True
    if isinstance(column, (list, tuple)):
        return [pa.array(column)], True
    raise TypeError(
        f"{what}: expected an Arrow string column (pyarrow Array/ChunkedArray, Polars Series, "
        f"DuckDB result, or an object with __arrow_c_array__/__arrow_c_stream__), got {type(column).__name__}"
    )


def _is_table_stream(obj) -> bool:
    # A stream of record batches (DuckDB relation, Polars DataFrame) exports a struct schema.
    # A column (a Polars Series: it has a dtype) never is, and is answered first: pa.schema() of
    # a Series walks its values as if they were fields before it fails (1.2 ms for 200k rows,
    # once per call and per Polars batch).
    if hasattr(obj, "dtype"):
        return False
    try:
        schema = pa.schema(obj)  # objects that also expose __arrow_c_schema__
        return isinstance(schema, pa.Schema) and len(schema) >= 1
    except Exception:
        return True


def _layout(arr: pa.Array, what: str) -> int:
    t = arr.type
    layout = _STRING_LAYOUT.get(t)
    if layout is None:
        raise TypeError(f"{what}: expected a string column (string, large_string, string_view, or binary "
                        f"kinds holding UTF-8), got Arrow type {t}")
    return layout


def _buf_addr(b) -> int | None:
    return None if b is None else b.address


def _buf_len(b) -> int:
    return 0 if b is None else b.size


def _fill_input(arr: pa.Array, inp: N.Input, keep: list) -> None:
    """Buffer addresses and sizes; Zig checks every offset/view against the sizes before use."""
    layout = _layout(arr, "encode")
    bufs = arr.buffers()
    inp.layout = layout
    inp.validity = _buf_addr(bufs[0]) if arr.null_count else None
    inp.validity_len = _buf_len(bufs[0]) if arr.null_count else 0
    inp.arr_offset = arr.offset
    inp.n_rows = len(arr)
    inp.offsets = _buf_addr(bufs[1])
    inp.offsets_len = _buf_len(bufs[1])
    if layout == 2:
        data = bufs[2:]
        ptrs = (C.c_void_p * max(1, len(data)))(*[_buf_addr(b) for b in data])
        lens = (C.c_int64 * max(1, len(data)))(*[_buf_len(b) for b in data])
        keep += [ptrs, lens]
        inp.view_buffers = C.cast(ptrs, C.c_void_p)
        inp.view_buffer_lens = C.cast(lens, C.c_void_p)
        inp.n_view_buffers = len(data)
    else:
        inp.data = _buf_addr(bufs[2])
        inp.data_len = _buf_len(bufs[2])


def _error(st: int, out, row_base: int, what: str) -> Exception:
    from .encoding import ArrowtokError

    msg = out.err_msg.decode(errors="replace")
    row = out.err_row + row_base if out.err_row >= 0 else None
    if row is not None and msg.startswith("row "):
        # Re-number the row from the chunk to the whole column.
        msg = f"row {row}" + msg[msg.index(":"):]
    if st == N.INVALID_UTF8:
        msg += " (pass errors='replace' to substitute U+FFFD)"
    if st == N.OUT_OF_MEMORY:
        return MemoryError(f"{what}: out of memory")
    return ArrowtokError(f"{what}: {msg or N.STATUS.get(st, st)}", row, out.err_offset if out.err_offset >= 0 else None)


def encode_string_column(enc, column, *, threads: int, count_only: bool, specials, errors: str,
                         max_chunk_values: int):
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
    chunks, single = as_chunks(column, "encode_arrow")
    if len(chunks) > 1:
        chunks = _coalesce(chunks, _groupable_text)
    out_chunks: list[pa.Array] = []
    row_base = 0
    for arr in chunks:
        if isinstance(arr, pa.DictionaryArray):
            # Encode each distinct value once, then gather.
            dict_res = encode_string_column(enc, arr.dictionary, threads=threads, count_only=count_only,
                                            specials=specials, errors=errors, max_chunk_values=0)
            out_chunks.append(pc.take(dict_res, arr.indices))
            row_base += len(arr)
            continue
        if arr.type == pa.null():
            typ = pa.uint32() if count_only else LIST_INT32
            out_chunks.append(pa.nulls(len(arr), typ))
            row_base += len(arr)
            continue
        _layout(arr, "encode_arrow")
        keep: list = []
        inp = N.Input()
        _fill_input(arr, inp, keep)
        opts = N.Options(threads=threads, count_only=int(count_only), errors_replace=int(errors == "replace"),
                         max_chunk_values=max_chunk_values)
        if specials is not None:
            specials.fill(opts)
        out = N.Output()
        st = N.lib.at_encode_column(enc._vocab.handle, C.byref(inp), C.byref(opts), C.byref(out))
        if st != N.OK:
            if out.handle:
                N.lib.at_result_free(out.handle)
            raise _error(st, out, row_base, "encode_arrow" if not count_only else "count_tokens_arrow")
        owner = N._Owner(out.handle)
        n = len(arr)
        validity = pa.foreign_buffer(out.validity, (n + 7) // 8, base=owner) if out.validity else None
        if count_only:
            counts = pa.foreign_buffer(out.counts, 4 * n, base=owner) if n else None
            out_chunks.append(pa.Array.from_buffers(pa.uint32(), n, [validity, counts], null_count=out.null_count))
        else:
            out_chunks.extend(_wrap_lists(out, owner, n, validity))
        row_base += n
    if single and len(out_chunks) == 1:
        return out_chunks[0]
    typ = pa.uint32() if count_only else LIST_INT32
    return pa.chunked_array(out_chunks, type=typ)


# Chunks under _COALESCE_BYTES are encoded (or decoded) together with their neighbours of the same
# type, in groups of up to _GROUP_BYTES (one copy of their bytes, bounded by the group): each native
# call costs ~10 us on one thread and ~50 us on the pool, which dominated columns of many small chunks
# (a Polars frame concatenated from 5,000 four-row frames, the 20k documents: 0.27 s for encode_arrow
# against 0.03 s for the same rows in one chunk). Rows keep their order, so row numbers in errors hold.
_COALESCE_BYTES = 256 << 10
_GROUP_BYTES = 8 << 20


def _groupable_text(arr: pa.Array) -> bool:
    return not isinstance(arr, pa.DictionaryArray) and arr.type in _STRING_LAYOUT


def _groupable_lists(arr: pa.Array) -> bool:
    t = arr.type
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type)


def _coalesce(chunks: list[pa.Array], groupable=_groupable_text) -> list[pa.Array]:
    out: list[pa.Array] = []
    group: list[pa.Array] = []
    size = 0
    for arr in chunks + [None]:
        # Sizes from the buffers' lengths (a slice of a big array counts as big: it keeps its own
        # call); `nbytes` would measure a slice but costs ~2 us a chunk.
        nb = 0 if arr is None else arr.get_total_buffer_size()
        small = arr is not None and nb < _COALESCE_BYTES and groupable(arr)
        if small and group and arr.type == group[0].type and size + nb <= _GROUP_BYTES:
            group.append(arr)
            size += nb
            continue
        if group:
            out.append(group[0] if len(group) == 1 else pa.concat_arrays(group))
        group, size = ([arr], nb) if small else ([], 0)
        if arr is not None and not small:
            out.append(arr)
    return out


def _wrap_lists(out, owner, n: int, validity) -> list[pa.Array]:
    n_chunks = out.n_chunks
    rows = (C.c_int64 * (n_chunks + 1)).from_address(out.chunk_rows)
    vals = (C.c_int64 * (n_chunks + 1)).from_address(out.chunk_values)
    res = []
    for c in range(n_chunks):
        r0, r1 = rows[c], rows[c + 1]
        v0, v1 = vals[c], vals[c + 1]
        # Chunk c's offsets start at index r0 + c of the shared offsets buffer; with array offset
        # r0 the buffer must start c entries in.
        offs = pa.foreign_buffer(out.offsets + 4 * c, 4 * (n + n_chunks - c), base=owner)
        values_buf = pa.foreign_buffer(out.values + 4 * v0, max(4 * (v1 - v0), 0), base=owner)
        child = pa.Array.from_buffers(pa.int32(), v1 - v0, [None, values_buf])
        nulls = -1 if validity is not None else 0
        res.append(pa.Array.from_buffers(LIST_INT32, r1 - r0, [validity, offs], null_count=nulls,
                                         offset=r0, children=[child]))
    return res


def decode_list_column(enc, column):
    from .encoding import ArrowtokError

    chunks, single = as_chunks(column, "decode_arrow")
    if len(chunks) > 1:
        chunks = _coalesce(chunks, _groupable_lists)
    out_chunks = []
    row_base = 0
    for arr in chunks:
        t = arr.type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)) or not pa.types.is_integer(t.value_type):
            raise TypeError(f"decode_arrow: expected a list<int32> column of token ids, got Arrow type {t}")
        if t.value_type != pa.int32() and t.value_type != pa.uint32():
            target = pa.large_list(pa.int32()) if pa.types.is_large_list(t) else LIST_INT32
            try:
                arr = arr.cast(target)
            except pa.ArrowInvalid as e:
                raise ArrowtokError(f"decode_arrow: token ids out of range: {e}") from None
        values = arr.values
        if values.null_count:
            raise ArrowtokError("decode_arrow: token lists must not contain null ids")
        inp = N.ListInput()
        inp.large = int(pa.types.is_large_list(arr.type))
        bufs = arr.buffers()
        inp.offsets = _buf_addr(bufs[1])
        vb = values.buffers()[1]
        inp.values = (vb.address + 4 * values.offset) if vb is not None else None
        inp.validity = _buf_addr(bufs[0]) if arr.null_count else None
        inp.arr_offset = arr.offset
        inp.n_rows = len(arr)
        inp.offsets_len = _buf_len(bufs[1])
        inp.validity_len = _buf_len(bufs[0]) if arr.null_count else 0
        inp.n_values = (vb.size // 4 - values.offset) if vb is not None else 0
        out = N.DecodeOutput()
        st = N.lib.at_decode_column(enc._vocab.handle, C.byref(inp), C.byref(out))
        if st != N.OK:
            if out.handle:
                N.lib.at_result_free(out.handle)
            raise _error(st, out, row_base, "decode_arrow")
        owner = N._Owner(out.handle)
        n = len(arr)
        validity = pa.foreign_buffer(out.validity, (n + 7) // 8, base=owner) if out.validity else None
        offs = pa.foreign_buffer(out.offsets, 8 * (n + 1), base=owner)
        data = pa.foreign_buffer(out.data, out.n_bytes, base=owner) if out.n_bytes else pa.py_buffer(b"")
        out_chunks.append(pa.Array.from_buffers(pa.large_string(), n, [validity, offs, data], null_count=out.null_count))
        row_base += n
    if single and len(out_chunks) == 1:
        return out_chunks[0]
    return pa.chunked_array(out_chunks, type=pa.large_string())
