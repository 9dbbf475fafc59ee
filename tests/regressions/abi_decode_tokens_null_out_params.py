# status: fixed
# at_decode_tokens with NULL `needed` / `bad_index` (non-optional `*u64` / `*i64` in
# zig/root.zig at_decode_tokens): SIGSEGV. Expected: status 1.
from _probe import C, V, expect, lib, np

ids = np.array([1, 2], np.uint32)
needed, bad = C.c_uint64(), C.c_int64()
expect(lib.at_decode_tokens(V, ids.ctypes.data, 2, None, 0, None, C.byref(bad)), {1}, "NULL needed")
expect(lib.at_decode_tokens(V, ids.ctypes.data, 2, None, 0, C.byref(needed), None), {1}, "NULL bad_index")
