"""Runs the Zig unit tests (`zig test`, Debug: safety checks on) with the pinned ziglang."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_zig_unit_tests(tmp_path):
    pytest.importorskip("ziglang")
    r = subprocess.run([sys.executable, "-m", "ziglang", "test", "-lc", "zig/root.zig",
                        "--cache-dir", str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
