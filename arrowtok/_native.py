"""ctypes binding of libarrowtok (the Zig core). Structures mirror zig/encode.zig and zig/decode.zig."""
from __future__ import annotations

import ctypes as C
import os
from pathlib import Path

P = C.c_void_p

STATUS = {
    0: "ok",
    1: "invalid argument",
    2: "out of memory",
    3: "invalid UTF-8",
    4: "too large",
    5: "unknown token id",
    6: "bad vocabulary file",
    7: "buffer too small",
}
OK, INVALID_ARGUMENT, OUT_OF_MEMORY, INVALID_UTF8, TOO_LARGE, UNKNOWN_TOKEN, BAD_VOCAB, BUFFER_TOO_SMALL = range(8)


class Input(C.Structure):
    _fields_ = [
        ("layout", C.c_uint32),
        ("_pad", C.c_uint32),
        ("offsets", P),
        ("data", P),
        ("validity", P),
        ("view_buffers", P),
        ("n_view_buffers", C.c_int64),
        ("arr_offset", C.c_int64),
        ("n_rows", C.c_int64),
        ("offsets_len", C.c_int64),
        ("data_len", C.c_int64),
        ("validity_len", C.c_int64),
        ("view_buffer_lens", P),
    ]


class Options(C.Structure):
    _fields_ = [
        ("threads", C.c_uint32),
        ("count_only", C.c_uint32),
        ("errors_replace", C.c_uint32),
        ("n_special", C.c_uint32),
        ("max_chunk_values", C.c_int64),
        ("special_data", P),
        ("special_offs", P),
        ("special_ids", P),
    ]


class TextCall(C.Structure):
    """Arguments of at_encode_text_blk (one block per thread, reused)."""
    _fields_ = [
        ("vocab", P),
        ("opts", P),
        ("out", P),
        ("cap", C.c_uint64),
        ("len", C.c_uint64),
        ("got", C.c_int64),
        ("bad_offset", C.c_int64),
    ]


class DecodeCall(C.Structure):
    """Arguments of at_decode_blk (one block per thread and encoding, reused)."""
    _fields_ = [
        ("vocab", P),
        ("ids", P),
        ("n", C.c_uint64),
        ("out", P),
        ("cap", C.c_uint64),
        ("needed", C.c_uint64),
        ("bad_index", C.c_int64),
    ]


class Output(C.Structure):
    _fields_ = [
        ("handle", P),
        ("offsets", P),
        ("values", P),
        ("n_values", C.c_int64),
        ("validity", P),
        ("null_count", C.c_int64),
        ("chunk_rows", P),
        ("chunk_values", P),
        ("n_chunks", C.c_int64),
        ("counts", P),
        ("total_tokens", C.c_int64),
        ("err_row", C.c_int64),
        ("err_offset", C.c_int64),
        ("err_msg", C.c_char * 256),
    ]


class ListInput(C.Structure):
    _fields_ = [
        ("large", C.c_uint32),
        ("_pad", C.c_uint32),
        ("offsets", P),
        ("values", P),
        ("validity", P),
        ("arr_offset", C.c_int64),
        ("n_rows", C.c_int64),
        ("offsets_len", C.c_int64),
        ("n_values", C.c_int64),
        ("validity_len", C.c_int64),
    ]


class DecodeOutput(C.Structure):
    _fields_ = [
        ("handle", P),
        ("offsets", P),
        ("data", P),
        ("n_bytes", C.c_int64),
        ("validity", P),
        ("null_count", C.c_int64),
        ("err_row", C.c_int64),
        ("err_offset", C.c_int64),
        ("err_msg", C.c_char * 256),
    ]


ABI_VERSION = 4


# x86-64-v3 = AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT, MOVBE (plus v2's SSE4.2, POPCNT).
_V3_FLAGS = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "sse4_2", "popcnt"}
# x86-64-v4 = v3 plus AVX-512 F, BW, CD, DQ, VL.
_V4_FLAGS = _V3_FLAGS | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _find_library() -> Path:
    """The library to load: ARROWTOK_LIB if set; else the newest build whose features this CPU
    has all of (runtime dispatch: x86-64-v4, then -v3, then the portable baseline).
    ARROWTOK_CPU=v3 or baseline caps the choice there (auto or v4: no cap)."""
    env = os.environ.get("ARROWTOK_LIB")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    cap = os.environ.get("ARROWTOK_CPU", "auto")
    if cap not in ("auto", "v4", "v3", "baseline"):
        raise ImportError(f"arrowtok: ARROWTOK_CPU={cap!r}: expected auto, v4, v3 or baseline")
    flags = _cpu_flags()
    for name, need, allowed in (("libarrowtok_v4.so", _V4_FLAGS, cap in ("auto", "v4")),
                                ("libarrowtok_v3.so", _V3_FLAGS, cap in ("auto", "v4", "v3"))):
        lib = here / name
        if allowed and lib.exists() and need <= flags:
            return lib
    return here / "libarrowtok.so"


def _load() -> C.CDLL:
    path = LIB_PATH
    if not path.exists():
        raise ImportError(
            f"arrowtok: native library not found at {path}. Install the package with "
            "`pip install .` (or `pip install -e .`), which compiles it with the pinned ziglang, "
            "or run `python hatch_build.py` in a source checkout."
        )
    lib = C.CDLL(str(path))  # CDLL: the GIL is released during every call
    sig = {
        "at_abi_version": ([], C.c_uint32),
        "at_cpu_name": ([], C.c_char_p),
        "at_vocab_load_tiktoken": ([P, C.c_size_t, C.c_uint32, C.POINTER(P), C.POINTER(C.c_uint64)], C.c_int32),
        "at_vocab_set_specials": ([P, P, P, P, C.c_uint32], C.c_int32),
        "at_vocab_free": ([P], None),
        "at_vocab_n_ids": ([P], C.c_uint32),
        "at_vocab_max_token_len": ([P], C.c_uint64),
        "at_vocab_rank": ([P, P, C.c_size_t], C.c_int64),
        "at_encode_text": ([P, P, C.c_size_t, C.POINTER(Options), P, C.c_size_t, C.POINTER(C.c_int64), C.POINTER(C.c_int64)], C.c_int32),
        "at_encode_text_blk": ([C.POINTER(TextCall), C.c_void_p], C.c_int32),  # bytes or an address
        "at_encode_column": ([P, C.POINTER(Input), C.POINTER(Options), C.POINTER(Output)], C.c_int32),
        "at_decode_column": ([P, C.POINTER(ListInput), C.POINTER(DecodeOutput)], C.c_int32),
        "at_decode_tokens": ([P, P, C.c_size_t, P, C.c_size_t, C.POINTER(C.c_uint64), C.POINTER(C.c_int64)], C.c_int32),
        "at_result_free": ([P], None),
        "at_after_fork_child": ([], None),
        "at_pretokenize": ([C.c_uint32, P, C.c_size_t, P, C.c_size_t], C.c_int64),
    }
    for name, (args, res) in sig.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    # No argtypes on purpose (see at_encode_small in zig/root.zig): called only with a byref of
    # a TextCall, a bytes object and an int below 2^31; restype stays the default C int.
    lib.at_encode_small.restype = C.c_int
    lib.at_decode_blk.restype = C.c_int  # (a byref of a DecodeCall)
    got = lib.at_abi_version()
    if got != ABI_VERSION:
        raise ImportError(f"arrowtok: {path} has ABI version {got}, this package needs {ABI_VERSION}; rebuild it")
    if hasattr(os, "register_at_fork"):
        # The Zig thread pool's threads do not survive fork(); the child starts a fresh pool.
        os.register_at_fork(after_in_child=lib.at_after_fork_child)
    return lib


LIB_PATH = _find_library()
lib = _load()
CPU = lib.at_cpu_name().decode()  # the CPU model the loaded library was compiled for


class _Owner:
    """Owns one Zig result; frees it when the last Arrow buffer that views it is gone."""

    __slots__ = ("handle",)

    def __init__(self, handle: int):
        self.handle = handle

    def __del__(self, _free=lib.at_result_free):
        h, self.handle = self.handle, None
        if h:
            _free(h)
