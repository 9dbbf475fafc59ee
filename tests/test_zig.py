"""Runs the Zig unit tests (`zig test`, Debug: safety checks on) with the pinned ziglang."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_zig_unit_tests(tmp_path):
    pytest.importorskip("ziglang")
    # -fllvm: the LLVM backend in Debug too (utf8.zig's vector check calls LLVM intrinsics).
    r = subprocess.run([sys.executable, "-m", "ziglang", "test", "-lc", "-fllvm", "zig/root.zig",
                        "--cache-dir", str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("cpu", ["x86_64_v2", "x86_64_v3"])
def test_zig_utf8_vector_widths(tmp_path, cpu):
    """utf8.zig's vector check at both lookup widths (16 lanes with SSSE3, 32 with AVX2)."""
    pytest.importorskip("ziglang")
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86-64 only: other CPUs use the byte-by-byte check")
    r = subprocess.run([sys.executable, "-m", "ziglang", "test", "-lc", "-fllvm", "-OReleaseSafe", "-mcpu", cpu,
                        "zig/utf8.zig", "--cache-dir", str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
