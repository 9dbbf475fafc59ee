# status: fixed
# Public API: a string_view entry naming data buffer 5 of 1 (pyarrow's validate() accepts it).
# SIGSEGV in ReleaseFast and ReleaseSafe: zig/encode.zig Input.row reads view_buffers[5] past the
# n_view_buffers pointers it was given. Expected: ArrowtokError naming row 0.
from _probe import arrowtok, enc, expect_clean_error, pa, view

a = pa.Array.from_buffers(pa.string_view(), 1, [None, pa.py_buffer(view(20, b"xxxx", 5, 0)), pa.py_buffer(b"x" * 64)])
a.validate()
expect_clean_error(lambda: enc.encode_arrow(a), "view buffer index 5 of 1", (arrowtok.ArrowtokError,))
