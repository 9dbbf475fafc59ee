# status: fixed
# at_decode_column with a negative list offset: `@intCast` to usize in zig/decode.zig
# decodeColumn. ReleaseSafe: "panic: integer does not fit in destination type"; ReleaseFast:
# returns 0 with an empty row (undefined behaviour). Expected: status 1.
from _probe import C, N, V, expect, lib, np

offs, vals = np.array([-3, 1], np.int32), np.array([1, 2, 3], np.uint32)
li = N.ListInput(large=0, offsets=offs.ctypes.data, values=vals.ctypes.data, n_rows=1, offsets_len=offs.nbytes, n_values=len(vals))
out = N.DecodeOutput()
st = lib.at_decode_column(V, C.byref(li), C.byref(out))
if st == 0:
    lib.at_result_free(out.handle)
expect(st, {1}, "negative list offset")
