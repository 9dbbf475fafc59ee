# status: fixed
# at_encode_column, layout 0/1 with data == NULL. encodeColumn means to allow it when every
# non-null row is empty ("An all-empty column may have no data buffer") and reject it otherwise,
# but the check calls Input.rowLen -> Input.row, which does `in.data.?[a..b]`:
# ReleaseSafe panics ("attempt to use null value") in both cases; ReleaseFast works only because
# `.?` on NULL happens to give a zero pointer (undefined behaviour).
# Expected: [] for the empty rows (status 0), status 1 for a non-empty row.
from _probe import N, encode_column, expect, np

for layout, dt in ((0, np.int32), (1, np.int64)):
    empty = np.zeros(3, dt)
    expect(encode_column(N.Input(layout=layout, offsets=empty.ctypes.data, data=None, n_rows=2, offsets_len=empty.nbytes)), {0},
           f"layout {layout}: empty rows, NULL data")
    offs = np.array([0, 2], dt)
    expect(encode_column(N.Input(layout=layout, offsets=offs.ctypes.data, data=None, n_rows=1, offsets_len=offs.nbytes)), {1},
           f"layout {layout}: non-empty row, NULL data")
