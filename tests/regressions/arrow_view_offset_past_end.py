# status: fixed
# Public API: a string_view entry pointing 1 GiB past the end of its 64-byte data buffer
# (pyarrow's validate() accepts it). SIGSEGV in ReleaseFast and ReleaseSafe: the ABI passes no
# buffer sizes, so zig/encode.zig cannot check offset + length. Expected: ArrowtokError naming row 0.
from _probe import arrowtok, enc, expect_clean_error, pa, view

a = pa.Array.from_buffers(pa.string_view(), 1, [None, pa.py_buffer(view(20, b"xxxx", 0, 1 << 30)), pa.py_buffer(b"x" * 64)])
a.validate()
expect_clean_error(lambda: enc.encode_arrow(a), "view offset past the buffer", (arrowtok.ArrowtokError,))
