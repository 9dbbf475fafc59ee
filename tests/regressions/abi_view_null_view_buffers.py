# status: fixed
# at_encode_column, layout 2 (string_view), an out-of-line view (length > 12) and
# view_buffers == NULL: zig/encode.zig Input.row `.view` branch does `in.view_buffers.?[bi]`
# with no check. ReleaseFast: SIGSEGV; ReleaseSafe: "panic: attempt to use null value".
# Expected: status 1 (and a view buffer index >= n_view_buffers should be status 1 too).
from _probe import N, encode_column, expect, np, view

views = np.frombuffer(view(20, b"aaaa", 0, 0), np.uint8).copy()
inp = N.Input(layout=2, offsets=views.ctypes.data, n_rows=1, view_buffers=None, n_view_buffers=0)
expect(encode_column(inp), {1}, "long view, NULL view_buffers")
