"""The columnar API: layouts, nulls, slices, chunks, capsules, threads, chunked output, errors."""
from __future__ import annotations

import ctypes
import gc
import os

import numpy as np
import pyarrow as pa
import pytest

import arrowtok
from arrowtok import _arrow
from arrowtok import _native as N

ROWS = ["hello world", None, "", "  two  spaces\n\nand lines", "日本語のテキスト", None, "<|endoftext|>", "x" * 5000, "émoji 😀👍🏽"]


def want_rows(ref, rows):
    return [None if r is None else ref.encode_ordinary(r) for r in rows]


@pytest.mark.parametrize("typ", [pa.string(), pa.large_string(), pa.string_view(), pa.binary(), pa.large_binary(), pa.binary_view()])
def test_layouts(enc, ref, typ):
    rows = [None if r is None else (r.encode() if pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or typ == pa.binary_view() else r) for r in ROWS]
    arr = pa.array(rows, typ)
    res = enc.encode_arrow(arr)
    assert res.type == pa.list_(pa.int32())
    res.validate(full=True)
    assert res.to_pylist() == want_rows(ref, ROWS)
    assert res.null_count == 2
    cnt = enc.count_tokens_arrow(arr)
    assert cnt.type == pa.uint32()
    assert cnt.to_pylist() == [None if r is None else len(ref.encode_ordinary(r)) for r in ROWS]


def test_counts_of_pieces_found_in_the_tables(enc, ref):
    """Counting reads a piece's count from the thread's tables without its ids (pieces of more
    than 3 ids, short and long, live in the arena table): counts made before and after the
    pieces were encoded, and again, all equal the reference's lengths."""
    words = ["Привет", " мир", " Ελληνικά", " שָׁלוֹם", "ÅngströmÅngström", " réalisation", " 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
             " Donaudampfschifffahrtsgesellschaft", " 日本語のテキスト", " x" * 3, " 😀👍🏽🎉"]
    rows = ["".join(words[(i * 7 + k) % len(words)] for k in range(1 + i % 5)) for i in range(300)]
    arr = pa.array(rows)
    want = [len(ref.encode_ordinary(r)) for r in rows]
    assert any(len(ref.encode_ordinary(w)) > 3 and len(w.encode()) <= 16 for w in words)
    assert any(len(ref.encode_ordinary(w)) > 3 and len(w.encode()) > 16 for w in words)
    for threads in (1, 2):
        assert enc.count_tokens_arrow(arr, threads=threads).to_pylist() == want
        assert [len(x) for x in enc.encode_arrow(arr, threads=threads).to_pylist()] == want
        assert enc.count_tokens_arrow(arr, threads=threads).to_pylist() == want
        assert enc.count_tokens_arrow(arr, threads=threads).to_pylist() == want


def test_string_view_long_and_inline():
    enc = arrowtok.get_encoding("cl100k_base")
    rows = ["short", "exactly12byt", "thirteen byte", "a much longer string that lives in a data buffer" * 3]
    arr = pa.array(rows, pa.string_view())
    assert enc.encode_arrow(arr).to_pylist() == [enc.encode_ordinary(r) for r in rows]


def test_empty_and_zero_rows(enc):
    assert enc.encode_arrow(pa.array([], pa.string())).to_pylist() == []
    assert enc.encode_arrow(pa.array(["", ""], pa.string())).to_pylist() == [[], []]
    assert enc.encode_arrow(pa.array([None, None], pa.string())).to_pylist() == [None, None]
    assert enc.encode_arrow(pa.nulls(3)).to_pylist() == [None] * 3
    assert enc.count_tokens_arrow(pa.array([], pa.large_string())).to_pylist() == []


@pytest.mark.parametrize("start,length", [(0, 9), (1, 3), (2, 7), (5, 0), (8, 1)])
def test_slices(enc, ref, start, length):
    arr = pa.array(ROWS).slice(start, length)
    assert enc.encode_arrow(arr).to_pylist() == want_rows(ref, ROWS[start:start + length])
    assert enc.count_tokens_arrow(arr).to_pylist() == [None if r is None else len(ref.encode_ordinary(r)) for r in ROWS[start:start + length]]


def test_chunked_and_sliced_chunks(enc, ref):
    ch = pa.chunked_array([pa.array(ROWS[:4]), pa.array(ROWS[4:], pa.large_string()).cast(pa.string()), pa.array([], pa.string())])
    res = enc.encode_arrow(ch)
    assert isinstance(res, pa.ChunkedArray) and res.type == pa.list_(pa.int32())
    assert res.to_pylist() == want_rows(ref, ROWS)
    assert enc.encode_arrow(ch.slice(2, 5)).to_pylist() == want_rows(ref, ROWS[2:7])


@pytest.mark.parametrize("threads", [1, 2])
def test_many_small_chunks(enc, ref, threads):
    """Small chunks are encoded in groups (one native call each, `_arrow._coalesce`): ids, counts,
    nulls and the row numbers of errors are those of the whole column."""
    rows = [f"row {i}: some text, ünïcödé 日本語 😀" if i % 7 else ("" if i % 14 else None) for i in range(600)]
    big = pa.array(rows * 50)
    chunks, at = [], 0
    for k in range(150):
        n = k % 9  # empty chunks too
        # every fifth chunk a slice of a big array: its buffers are big, so it keeps its own call
        chunks.append(big.slice(at, n) if k % 5 == 4 else pa.array(rows[at:at + n], pa.string()))
        at += n
    col = pa.chunked_array(chunks, pa.string())
    res = enc.encode_arrow(col, threads=threads)
    assert isinstance(res, pa.ChunkedArray) and 1 < res.num_chunks < col.num_chunks
    assert res.to_pylist() == want_rows(ref, rows[:at])
    assert enc.count_tokens_arrow(col, threads=threads).to_pylist() == [None if r is None else len(ref.encode_ordinary(r)) for r in rows[:at]]
    # Chunks of other kinds between them (another layout, a dictionary, a null chunk) end a group.
    kinds = [pa.array(rows[:5], pa.string()), pa.array(rows[5:9], pa.large_string()), pa.array(rows[9:12], pa.string()),
             pa.array(rows[12:20], pa.string()), pa.array(rows[20:25], pa.string()).dictionary_encode(), pa.nulls(3),
             pa.array(rows[25:30], pa.string_view()), pa.array(rows[30:33], pa.string_view())]
    grouped = _arrow._coalesce(kinds)
    assert [len(c) for c in grouped] == [5, 4, 11, 5, 3, 8]
    got = [r for c in grouped for r in enc.encode_arrow(c, threads=threads).to_pylist()]
    assert got == want_rows(ref, rows[:25] + [None] * 3 + rows[25:33])
    # decode_arrow groups small list chunks the same way (other integer types in between)
    small = [res.combine_chunks().slice(i, 5) for i in range(0, at, 5)]
    small = [pa.concat_arrays([c]) for c in small]  # own (small) buffers, not slices of a big one
    small[7] = small[7].cast(pa.large_list(pa.int64()))
    dec = enc.decode_arrow(pa.chunked_array(small[:7]))
    assert dec.to_pylist() == rows[:35] and dec.num_chunks == 1
    assert [r for c in small for r in enc.decode_arrow(c).to_pylist()] == rows[:at]
    assert len(_arrow._coalesce(small, _arrow._groupable_lists)) == 3
    ids = [pa.array([[1, 2], [3]] * 2, pa.list_(pa.int32())) for _ in range(30)]
    ids[21] = pa.array([[1], [2], [3, 10**9], [4]], pa.list_(pa.int32()))
    with pytest.raises(arrowtok.ArrowtokError, match="row 86.*unknown token id"):
        enc.decode_arrow(pa.chunked_array(ids))
    # An ill-formed row in a late small chunk: its row number counts from the column's start.
    bad = [pa.array([b"ok %d" % i for i in range(3)], pa.binary()) for _ in range(40)]
    bad[29] = pa.array([b"fine", b"bad \xff", b"fine"], pa.binary())
    with pytest.raises(arrowtok.ArrowtokError) as ei:
        enc.encode_arrow(pa.chunked_array(bad), threads=threads)
    assert (ei.value.row, ei.value.byte_offset) == (29 * 3 + 1, 4)


def test_dictionary_column(enc, ref):
    arr = pa.array(["a b", "c", None, "a b", "c"]).dictionary_encode()
    assert enc.encode_arrow(arr).to_pylist() == want_rows(ref, ["a b", "c", None, "a b", "c"])


def test_capsule_objects(enc, ref):
    pl = pytest.importorskip("polars")
    s = pl.Series("text", ROWS)
    assert enc.encode_arrow(s).to_pylist() == want_rows(ref, ROWS)

    class OnlyArrayCapsule:
        def __init__(self, a):
            self.a = a

        def __arrow_c_array__(self, requested_schema=None):
            return self.a.__arrow_c_array__(requested_schema)

    assert enc.encode_arrow(OnlyArrayCapsule(pa.array(ROWS))).to_pylist() == want_rows(ref, ROWS)
    duckdb = pytest.importorskip("duckdb")
    rel = duckdb.sql("select * from (values ('hello world'), (NULL), ('')) t(text)")
    assert enc.encode_arrow(rel).to_pylist() == want_rows(ref, ["hello world", None, ""])


def test_wrong_types(enc):
    with pytest.raises(TypeError, match="int64"):
        enc.encode_arrow(pa.array([1, 2, 3]))
    with pytest.raises(TypeError, match="list<item: int32>"):
        enc.count_tokens_arrow(pa.array([[1]], pa.list_(pa.int32())))
    with pytest.raises(TypeError, match="dict"):
        enc.encode_arrow({"a": 1})
    with pytest.raises(TypeError, match="columns"):
        enc.encode_arrow(pa.table({"a": ["x"], "b": ["y"]}))
    with pytest.raises(TypeError, match="list<int32>"):
        enc.decode_arrow(pa.array(["x"]))
    with pytest.raises(ValueError, match="threads"):
        enc.encode_arrow(pa.array(["x"]), threads=0)


def test_invalid_utf8_names_row_and_offset(enc, ref):
    rows = [b"fine", None, b"also fine", b"bad \xff here", b"\xe2\x82"]
    arr = pa.array(rows, pa.binary())
    with pytest.raises(arrowtok.ArrowtokError) as e:
        enc.encode_arrow(arr, threads=2)
    assert e.value.row == 3 and e.value.byte_offset == 4
    assert "row 3" in str(e.value) and "byte offset 4" in str(e.value) and "errors='replace'" in str(e.value)
    # In a later chunk, the row number counts from the start of the whole column.
    ch = pa.chunked_array([pa.array([b"a", b"b"]), arr])
    with pytest.raises(arrowtok.ArrowtokError) as e:
        enc.count_tokens_arrow(ch)
    assert e.value.row == 5
    res = enc.encode_arrow(arr, errors="replace").to_pylist()
    assert res == [None if r is None else ref.encode_ordinary(r.decode("utf-8", "replace")) for r in rows]


def test_big_rows_on_all_threads(enc, ref):
    """Rows of 256 KiB and more (and at least a task's share) are encoded on all threads after
    the other rows: cut at line starts and between words, or a long piece into segments. Ids,
    counts, nulls and errors are as on one thread."""
    import random
    rng = random.Random(11)
    words = ["alpha", "beta", "gamma", "delta", "it's", "Ünïcode", "日本語", "x2", "..."]
    prose = " ".join(rng.choice(words) for _ in range(60_000))  # ~400 KB, no newline
    lines = "\r\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(4_000))
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(300_000))
    rows = ["small", prose, None, "", word, lines, "tail row"]
    arr = pa.array(rows)
    want = want_rows(ref, rows)
    for t in (1, 2, 3, 5):
        assert enc.encode_arrow(arr, threads=t).to_pylist() == want, t
        assert enc.count_tokens_arrow(arr, threads=t).to_pylist() == [None if w is None else len(w) for w in want], t
    assert enc.encode_arrow(pa.array([word]), threads=2).to_pylist() == [ref.encode_ordinary(word)]
    # errors in a big row: its number and offset; errors="replace" as one thread would
    bad = [b"ok", prose.encode()[:200_000] + b"\xff" + prose.encode()[200_000:], b"\xe2\x82"]
    barr = pa.array(bad, pa.binary())
    with pytest.raises(UnicodeDecodeError) as py:
        bad[1].decode()
    for t in (1, 3):
        with pytest.raises(arrowtok.ArrowtokError) as e:
            enc.encode_arrow(barr, threads=t)
        assert e.value.row == 1 and e.value.byte_offset == py.value.start
        got = enc.encode_arrow(barr, threads=t, errors="replace").to_pylist()
        assert got == [ref.encode_ordinary(b.decode("utf-8", "replace")) for b in bad]


def test_threads_identical(enc):
    rows = [("word " * (i % 50)) + str(i) + " 😀" * (i % 3) for i in range(20000)]
    arr = pa.array(rows)
    one = enc.encode_arrow(arr, threads=1)
    for t in (2, 3, 8):
        assert enc.encode_arrow(arr, threads=t).equals(one)
        assert enc.count_tokens_arrow(arr, threads=t).equals(enc.count_tokens_arrow(arr, threads=1))


def test_worker_arenas_of_a_multi_task_column(enc, ref):
    """A column of several tasks (and at most 32 MiB) is encoded into one buffer a worker (its
    'arena', mapped for twice its share of the worst case, one id a byte) and copied into the
    output: ids, counts, nulls, the row cut on all threads, errors and errors='replace' are as
    on one thread. Rows of one id a byte (rare supplementary-plane letters) fill an arena as
    fast as anything can, so a worker that runs more than twice its share of the tasks (16
    threads on a small machine) grows its arena. (Checked by mutation: with arenas mapped for one
    id, every task grows one and this passes; a copy from the wrong offset fails it.)"""
    import random
    rng = random.Random(5)
    words = ["alpha", "beta", "it's", "Ünïcode", "日本語", "x2", "...", "\n"]
    rare = [chr(c) for c in range(0x20000, 0x2A6DF, 37)]  # CJK Ext. B: ~1 id a byte
    rows = []
    for i in range(6000):
        k = i % 7
        if k == 0:
            rows.append(None)
        elif k == 1:
            rows.append("")
        elif k == 2:
            rows.append("".join(rng.choice(rare) for _ in range(rng.randrange(20, 200))))
        else:
            rows.append(" ".join(rng.choice(words) for _ in range(rng.randrange(1, 60))))
    rows.insert(3000, " ".join(rng.choice(words) for _ in range(70_000)))  # ~300 KB: cut on all threads
    arr = pa.array(rows)
    assert 1 << 20 < arr.nbytes < 32 << 20
    want = want_rows(ref, rows)
    one = enc.encode_arrow(arr, threads=1)
    assert one.to_pylist() == want
    for t in (2, 3, 16):
        for _ in range(2):  # the second call takes the arenas the first one kept
            got = enc.encode_arrow(arr, threads=t)
            got.validate(full=True)
            assert got.equals(one), t
        assert enc.count_tokens_arrow(arr, threads=t).to_pylist() == [None if w is None else len(w) for w in want], t
    # the first bad row of the column, whichever worker ran it; replaced as on one thread
    bad = [r.encode() if r is not None else None for r in rows]
    bad[4100] = b"late \xff"
    bad[2500] = b"early \xc3"
    barr = pa.array(bad, pa.binary())
    for t in (2, 16):
        with pytest.raises(arrowtok.ArrowtokError) as e:
            enc.encode_arrow(barr, threads=t)
        assert e.value.row == 2500 and e.value.byte_offset == 6, t
        assert enc.encode_arrow(barr, threads=t, errors="replace").equals(enc.encode_arrow(barr, threads=1, errors="replace")), t


def test_output_chunks_when_offsets_would_overflow(enc, ref):
    # The int32-offset limit is 2**31-1 values per chunk; a test hook lowers it to force chunking.
    rows = ["one two three", None, "", "four five six seven", "eight"] * 7
    arr = pa.array(rows)
    res = enc.encode_arrow(arr, _max_chunk_values=5)
    assert isinstance(res, pa.ChunkedArray) and res.num_chunks > 1
    assert res.type == pa.list_(pa.int32())
    for c in res.chunks:
        c.validate(full=True)
        assert len(c.values) <= 5 or len(c) == 1
    assert res.to_pylist() == want_rows(ref, rows)
    with pytest.raises(arrowtok.ArrowtokError, match="row 0"):
        enc.encode_arrow(pa.array(["a b c d e f g h"]), _max_chunk_values=3)


def test_allowed_special_in_columns(enc, ref):
    rows = ["a<|endoftext|>b", None, "<|endofprompt|>"]
    assert enc.encode_arrow(pa.array(rows)).to_pylist() == [ref.encode_ordinary(rows[0]), None, ref.encode_ordinary(rows[2])]
    got = enc.encode_arrow(pa.array(rows), allowed_special="all").to_pylist()
    assert got == [ref.encode(rows[0], allowed_special="all"), None, ref.encode(rows[2], allowed_special="all")]
    got = enc.encode_arrow(pa.array(rows), allowed_special={"<|endoftext|>"}).to_pylist()
    assert got[0] == ref.encode(rows[0], allowed_special={"<|endoftext|>"})
    assert got[2] == ref.encode_ordinary(rows[2])
    with pytest.raises(ValueError, match="not special tokens"):
        enc.encode_arrow(pa.array(rows), allowed_special={"<|nope|>"})


def test_decode_arrow(enc, ref):
    rows = ["hello", None, "", "日本 😀", "<|endoftext|>"]
    toks = enc.encode_arrow(pa.array(rows), allowed_special="all")
    out = enc.decode_arrow(toks)
    assert out.type == pa.large_string() and out.to_pylist() == rows
    assert enc.decode_arrow(toks.slice(1, 3)).to_pylist() == rows[1:4]
    # other integer list types; partial characters are replaced like tiktoken's decode
    part = ref.encode_ordinary("😀")[:1]
    assert enc.decode_arrow(pa.array([part], pa.large_list(pa.int64()))).to_pylist() == [ref.decode(part)]
    with pytest.raises(arrowtok.ArrowtokError, match="row 1.*unknown token id"):
        enc.decode_arrow(pa.array([[1], [2, 10**9]], pa.list_(pa.int64())))
    with pytest.raises(arrowtok.ArrowtokError, match="out of range"):
        enc.decode_arrow(pa.array([[2**40]], pa.list_(pa.int64())))


def test_results_outlive_and_free(enc):
    # Buffers are owned by Zig until the last Arrow reference goes; views keep them alive.
    res = enc.encode_arrow(pa.array(["alpha beta"] * 1000))
    values = res.values
    del res
    gc.collect()
    assert values.to_pylist()[:2] == enc.encode_ordinary("alpha beta")


def _rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_rss_stable_over_repeated_calls(enc):
    arr = pa.array(["some text to encode, again and again 😀"] * 2000 + [None])
    lists = enc.encode_arrow(arr)
    for _ in range(100):  # warm up allocator and caches
        enc.encode_arrow(arr), enc.count_tokens_arrow(arr), enc.decode_arrow(lists), enc.encode("x y z")
    gc.collect()
    before = _rss_kb()
    for _ in range(1000):
        enc.encode_arrow(arr)
        enc.count_tokens_arrow(arr)
        enc.decode_arrow(lists)
        enc.encode("hello world")
        enc.decode_bytes([1, 2, 3])
    gc.collect()
    grown = _rss_kb() - before
    assert grown < 20_000, f"RSS grew by {grown} kB over 1000 calls"


def test_abi_rejects_bad_arguments(enc):
    lib = N.lib
    out = N.Output()
    opts = N.Options(threads=1)
    inp = N.Input(layout=0, n_rows=3)  # no offsets buffer
    assert lib.at_encode_column(enc._vocab.handle, ctypes.byref(inp), ctypes.byref(opts), ctypes.byref(out)) == N.INVALID_ARGUMENT
    assert lib.at_encode_column(None, ctypes.byref(inp), ctypes.byref(opts), ctypes.byref(out)) == N.INVALID_ARGUMENT
    inp = N.Input(layout=9, n_rows=0)
    assert lib.at_encode_column(enc._vocab.handle, ctypes.byref(inp), ctypes.byref(opts), ctypes.byref(out)) == N.INVALID_ARGUMENT
    inp = N.Input(layout=0, n_rows=-1)
    assert lib.at_encode_column(enc._vocab.handle, ctypes.byref(inp), ctypes.byref(opts), ctypes.byref(out)) == N.INVALID_ARGUMENT
    h = ctypes.c_void_p()
    line = ctypes.c_uint64()
    assert lib.at_vocab_load_tiktoken(None, 0, 0, ctypes.byref(h), ctypes.byref(line)) == N.INVALID_ARGUMENT
    assert lib.at_vocab_load_tiktoken(b"abc", 3, 7, ctypes.byref(h), ctypes.byref(line)) == N.INVALID_ARGUMENT
    assert lib.at_vocab_load_tiktoken(b"@@@ 1\n", 6, 0, ctypes.byref(h), ctypes.byref(line)) == N.BAD_VOCAB and line.value == 1
    needed = ctypes.c_uint64()
    bad = ctypes.c_int64()
    ids = np.array([1, 2], np.uint32)
    assert lib.at_decode_tokens(enc._vocab.handle, ids.ctypes.data, 2, None, 0, ctypes.byref(needed), ctypes.byref(bad)) == N.BUFFER_TOO_SMALL
    assert needed.value == len(enc.decode_bytes([1, 2]))
    lib.at_result_free(None)
    lib.at_vocab_free(None)
    got = ctypes.c_int64()
    assert lib.at_encode_text(None, b"x", 1, ctypes.byref(opts), None, 0, ctypes.byref(got), ctypes.byref(bad)) == N.INVALID_ARGUMENT
    buf = np.empty(1, np.uint32)
    assert lib.at_encode_text(enc._vocab.handle, b"hello world", 11, ctypes.byref(opts), buf.ctypes.data, 1,
                              ctypes.byref(got), ctypes.byref(bad)) == N.BUFFER_TOO_SMALL
    assert lib.at_encode_text_blk(None, b"x") == N.INVALID_ARGUMENT
    blk = N.TextCall(vocab=None, opts=ctypes.addressof(opts), out=buf.ctypes.data, cap=1, len=1)
    assert lib.at_encode_text_blk(ctypes.byref(blk), b"x") == N.INVALID_ARGUMENT  # no vocabulary
    blk.vocab, blk.len = enc._vocab.handle, 11
    assert lib.at_encode_text_blk(ctypes.byref(blk), b"hello world") == N.BUFFER_TOO_SMALL
    blk.opts = None
    assert lib.at_encode_text_blk(ctypes.byref(blk), b"hello world") == N.INVALID_ARGUMENT
    # at_encode_small: minus the status, or the number of ids
    assert lib.at_encode_small(None, b"x", 1) == -N.INVALID_ARGUMENT
    assert lib.at_encode_small(ctypes.byref(blk), b"x", -1) == -N.INVALID_ARGUMENT
    assert lib.at_encode_small(ctypes.byref(blk), b"hello world", 11) == -N.INVALID_ARGUMENT  # no options
    blk.opts = ctypes.addressof(opts)
    assert lib.at_encode_small(ctypes.byref(blk), b"hello world", 11) == -N.BUFFER_TOO_SMALL
    assert lib.at_encode_small(ctypes.byref(blk), b"\xff", 1) == -N.INVALID_UTF8 and blk.bad_offset == 0
    big = np.empty(16, np.uint32)
    blk.out, blk.cap = big.ctypes.data, 16
    assert lib.at_encode_small(ctypes.byref(blk), b"hello world", 11) == 2 == blk.got
    assert big[:2].tolist() == enc.encode_ordinary("hello world")


def _from_bytes(typ, rows, validity=None):
    data = b"".join(rows)
    width = np.int64 if typ in (pa.large_string(), pa.large_binary()) else np.int32
    offs = np.cumsum([0] + [len(r) for r in rows]).astype(width)
    return pa.Array.from_buffers(typ, len(rows), [validity, pa.py_buffer(offs.tobytes()), pa.py_buffer(data)])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("typ", [pa.string(), pa.large_binary()])
def test_code_point_split_between_rows(enc, ref, typ, threads):
    """Rows whose bytes together are well-formed UTF-8 but that cut a code point between them
    (a check over the data buffer instead of each row would pass them): the error names the
    first row and its offset."""
    euro, four = "€".encode(), "😀".encode()
    for ch in (euro, four):
        for cut in range(1, len(ch)):
            for lead in (b"", b"ab", b"x" * 70):
                rows = [b"hello world"] * 5 + [lead + ch[:cut], ch[cut:] + b" tail"] + [b"more text"] * 5
                col = _from_bytes(typ, rows)
                with pytest.raises(arrowtok.ArrowtokError) as ei:
                    enc.encode_arrow(col, threads=threads)
                assert (ei.value.row, ei.value.byte_offset) == (5, len(lead)), str(ei.value)
                with pytest.raises(arrowtok.ArrowtokError) as ei:
                    enc.count_tokens_arrow(col, threads=threads)
                assert (ei.value.row, ei.value.byte_offset) == (5, len(lead)), str(ei.value)
                got = enc.encode_arrow(col, threads=threads, errors="replace").to_pylist()
                assert got == [ref.encode_ordinary(r.decode("utf-8", "replace")) for r in rows]


def test_invalid_row_late_in_a_run(enc, ref):
    """An ill-formed row first, second, in the middle or last of 3000 good ones: that row and
    its offset are reported, and with errors='replace' every row is encoded."""
    good = [("row %d: plain text, ünïcödé, 日本語" % i).encode() for i in range(3000)]
    for bad_at in (0, 1, 1500, 2999):
        rows = list(good)
        rows[bad_at] = rows[bad_at][:7] + b"\xff" + rows[bad_at][7:]
        col = _from_bytes(pa.string(), rows)
        with pytest.raises(arrowtok.ArrowtokError) as ei:
            enc.encode_arrow(col)
        assert (ei.value.row, ei.value.byte_offset) == (bad_at, 7)
        got = enc.encode_arrow(col, errors="replace").to_pylist()
        assert got == [ref.encode_ordinary(r.decode("utf-8", "replace")) for r in rows]


def test_a_column_stream_is_not_walked(enc, ref):
    """An object with a dtype that exports an Arrow stream (a Polars Series) is taken as a column
    at once, not first handed to pa.schema, which walks an iterable's items (all of a Series'
    values) before it gives up."""
    class Col:
        dtype = "string"

        def __init__(self, arr):
            self.arr = arr
            self.walked = 0

        def __arrow_c_stream__(self, requested_schema=None):
            return pa.chunked_array([self.arr]).__arrow_c_stream__(requested_schema)

        def __iter__(self):
            self.walked += 1
            return iter(self.arr.to_pylist())

    c = Col(pa.array(["hello world", "x"]))
    assert enc.encode_arrow(c).to_pylist() == [ref.encode_ordinary("hello world"), ref.encode_ordinary("x")]
    assert enc.count_tokens_arrow(c).to_pylist() == [2, 1]
    assert c.walked == 0
