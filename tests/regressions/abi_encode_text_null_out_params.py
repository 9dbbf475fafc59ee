# status: fixed
# at_encode_text with NULL `opts`, `out_n` or `err_offset` (declared non-optional `*T` in
# zig/root.zig at_encode_text): SIGSEGV in ReleaseFast and ReleaseSafe. Expected: status 1.
from _probe import C, N, V, expect, lib, np

out = np.empty(16, np.uint32)
got, bad = C.c_int64(), C.c_int64()
opts = N.Options(threads=1)
expect(lib.at_encode_text(V, b"hi", 2, C.byref(opts), out.ctypes.data, 16, None, C.byref(bad)), {1}, "NULL out_n")
expect(lib.at_encode_text(V, b"hi", 2, C.byref(opts), out.ctypes.data, 16, C.byref(got), None), {1}, "NULL err_offset")
expect(lib.at_encode_text(V, b"hi", 2, None, out.ctypes.data, 16, C.byref(got), C.byref(bad)), {1}, "NULL opts")
