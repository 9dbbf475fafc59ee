# status: fixed
# at_vocab_load_tiktoken with NULL `out` / `bad_line` (non-optional pointers, written first thing
# in zig/root.zig at_vocab_load_tiktoken): SIGSEGV. Expected: status 1.
from _probe import C, expect, lib

h, line = C.c_void_p(), C.c_uint64()
expect(lib.at_vocab_load_tiktoken(b"YQ== 0\n", 7, 0, None, C.byref(line)), {1}, "NULL out")
expect(lib.at_vocab_load_tiktoken(b"YQ== 0\n", 7, 0, C.byref(h), None), {1}, "NULL bad_line")
