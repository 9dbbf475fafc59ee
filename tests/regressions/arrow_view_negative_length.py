# status: fixed
# Public API: a string_view entry with a negative length (pyarrow's validate() accepts it).
# ReleaseFast: MemoryError; ReleaseSafe: "panic: integer does not fit in destination type"
# (zig/encode.zig Input.row `.view`). Expected: ArrowtokError naming row 0.
from _probe import arrowtok, enc, expect_clean_error, pa, view

a = pa.Array.from_buffers(pa.string_view(), 1, [None, pa.py_buffer(view(-5)), pa.py_buffer(b"x" * 64)])
a.validate()
expect_clean_error(lambda: enc.encode_arrow(a), "negative view length", (arrowtok.ArrowtokError,))
