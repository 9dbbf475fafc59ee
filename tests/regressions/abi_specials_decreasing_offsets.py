# status: fixed
# at_encode_column / at_encode_text with Options.special_offs not increasing: Specials.init
# slices data[offs[k]..offs[k+1]] unchecked. ReleaseSafe: "panic: start index 5 is larger than end
# index 1"; ReleaseFast: undefined behaviour (returned 0 here). Expected: status 1.
from _probe import C, N, encode_column, expect, np

blob = C.create_string_buffer(b"abcdef")
so, sid = np.array([5, 1], np.uint32), np.array([7], np.uint32)
opts = N.Options(threads=1, n_special=1, special_data=C.cast(blob, C.c_void_p), special_offs=so.ctypes.data,
                 special_ids=sid.ctypes.data)
offs, data = np.array([0, 2], np.int32), np.frombuffer(b"ab", np.uint8).copy()
expect(encode_column(N.Input(layout=0, offsets=offs.ctypes.data, data=data.ctypes.data, n_rows=1, offsets_len=offs.nbytes, data_len=data.nbytes), opts), {1},
       "special offsets 5 > 1")
