# status: fixed
# at_pretokenize (test helper) with NULL data and len > 0, or NULL out_ends and cap > 0
# (zig/pretok.zig at_pretokenize takes non-optional `[*]const u8` / `[*]u64`): SIGSEGV.
# Expected: a negative code (-2 like a bad pattern id, or a new one).
from _probe import C, lib

fn = lib.at_pretokenize
fn.argtypes = [C.c_uint32, C.c_void_p, C.c_size_t, C.c_void_p, C.c_size_t]
fn.restype = C.c_int64
r = fn(0, None, 5, None, 4)
print("at_pretokenize(NULL data) =", r)
raise SystemExit(0 if r < 0 else 1)
