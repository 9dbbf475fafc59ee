"""Shared set-up for the regression scripts in this folder. Each script is run in its own
process by tests/test_robust.py::test_regression_script: exit status 0 means the library handled
the input (a status code or a clean Python exception); a crash or a wrong answer is non-zero.
A script whose first line is `# status: open` documents a bug that is reported but not fixed yet
(the test is then an expected failure); change it to `# status: fixed` once the fix lands."""
import ctypes as C
import sys
from pathlib import Path

import numpy as np  # noqa: F401
import pyarrow as pa  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import arrowtok  # noqa: E402
from arrowtok import _native as N  # noqa: E402

lib = N.lib
enc = arrowtok.get_encoding("cl100k_base")
V = enc._vocab.handle


def expect(got, allowed, what):
    if got not in allowed:
        print(f"FAIL {what}: got {got!r}, expected one of {sorted(allowed)!r}")
        sys.exit(1)
    print(f"ok {what}: {got!r}")


def expect_clean_error(fn, what, allowed=(arrowtok.ArrowtokError, ValueError, TypeError)):
    try:
        fn()
    except allowed as e:
        print(f"ok {what}: {type(e).__name__}: {e}")
        return
    except BaseException as e:  # noqa: BLE001
        print(f"FAIL {what}: {type(e).__name__}: {e}")
        sys.exit(1)
    print(f"FAIL {what}: no error")
    sys.exit(1)


def encode_column(inp, opts=None):
    out = N.Output()
    st = lib.at_encode_column(V, C.byref(inp), C.byref(opts or N.Options(threads=1)), C.byref(out))
    if st == 0:
        lib.at_result_free(out.handle)
    return st


def view(n, body=b"", buf=0, off=0):
    """One 16-byte string_view entry."""
    h = n.to_bytes(4, "little", signed=True)
    if 0 <= n <= 12:
        return h + (body + bytes(12))[:12]
    return h + (body + bytes(4))[:4] + buf.to_bytes(4, "little", signed=True) + off.to_bytes(4, "little", signed=True)
