# status: fixed
# Public API: a string array whose offsets decrease (pa.Array.from_buffers does not check that;
# pyarrow's validate() accepts it, only validate(full=True) rejects it). ReleaseFast: MemoryError
# "encode_arrow: out of memory" (b - a wraps to a huge size); ReleaseSafe: "panic: start index 5 is
# larger than end index 2" (zig/encode.zig Input.row). Expected: ArrowtokError naming row 1.
from _probe import arrowtok, enc, expect_clean_error, np, pa

a = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(np.array([0, 5, 2], np.int32)), pa.py_buffer(b"abcdefgh")])
a.validate()
expect_clean_error(lambda: enc.encode_arrow(a), "decreasing offsets", (arrowtok.ArrowtokError,))
