"""Build hook: compile zig/root.zig into arrowtok/libarrowtok.so with the pinned ziglang.

`zig build-lib` is used rather than `zig build` (no 90 s build-runner compile on a cold cache).
ARROWTOK_ZIG_CPU picks the CPU baseline (default x86_64_v2, portable); ARROWTOK_ZIG_OPT the mode
(default ReleaseFast; ReleaseSafe turns Zig's safety checks on for the sanitizer-style test run).
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def zig_target() -> tuple[str, str, str]:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64-linux-gnu.2.17", os.environ.get("ARROWTOK_ZIG_CPU", "x86_64_v2"), "manylinux_2_17_x86_64"
    if machine in ("aarch64", "arm64"):
        return "aarch64-linux-gnu.2.17", os.environ.get("ARROWTOK_ZIG_CPU", "baseline"), "manylinux_2_17_aarch64"
    raise RuntimeError(f"arrowtok: unsupported machine {machine!r}")


def build_library(root: Path, out: Path) -> None:
    target, cpu, _ = zig_target()
    opt = os.environ.get("ARROWTOK_ZIG_OPT", "ReleaseFast")
    cache = Path(tempfile.gettempdir()) / "arrowtok-zig-cache"
    cmd = [sys.executable, "-m", "ziglang", "build-lib", "zig/root.zig", "-dynamic", f"-O{opt}", "-lc",
           "-target", target, "-mcpu", cpu, "--name", "arrowtok", "--cache-dir", str(cache),
           f"-femit-bin={out}"]
    if opt != "Debug":
        cmd.insert(6, "-fstrip")
    subprocess.run(cmd, cwd=root, check=True)


class ZigBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        root = Path(self.root)
        tmp = Path(tempfile.mkdtemp())
        out = tmp / "libarrowtok.so"
        build_library(root, out)
        if version == "editable":
            shutil.copy2(out, root / "arrowtok" / "libarrowtok.so")
        else:
            build_data["force_include"][str(out)] = "arrowtok/libarrowtok.so"
        build_data["pure_python"] = False
        build_data["tag"] = f"py3-none-{zig_target()[2]}"


if __name__ == "__main__":  # python hatch_build.py: rebuild the in-tree library (development)
    here = Path(__file__).resolve().parent
    build_library(here, here / "arrowtok" / "libarrowtok.so")
