"""Build hook: compile zig/root.zig into arrowtok/libarrowtok.so with the pinned ziglang.

`zig build-lib` is used rather than `zig build` (no 90 s build-runner compile on a cold cache).
On x86-64 three libraries are built from the same source: `libarrowtok.so` for the portable
x86-64-v2 baseline, `libarrowtok_v3.so` for x86-64-v3 (AVX2, BMI2: 32-byte vectors in the
scanners and UTF-8 checks) and `libarrowtok_v4.so` for x86-64-v4 (AVX-512: the block scanner's
64-byte compares straight into mask registers); arrowtok/_native.py picks one at import from the
CPU's flags (runtime dispatch; ARROWTOK_CPU=baseline or v3 forces that build).
ARROWTOK_ZIG_CPU overrides the baseline CPU; ARROWTOK_ZIG_OPT the mode (default ReleaseFast;
ReleaseSafe turns Zig's safety checks on for the sanitizer-style test run).
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


def build_library(root: Path, out: Path, cpu: str | None = None) -> None:
    target, default_cpu, _ = zig_target()
    cpu = cpu or default_cpu
    opt = os.environ.get("ARROWTOK_ZIG_OPT", "ReleaseFast")
    cache = Path(tempfile.gettempdir()) / "arrowtok-zig-cache"
    cmd = [sys.executable, "-m", "ziglang", "build-lib", "zig/root.zig", "-dynamic", f"-O{opt}", "-lc",
           "-target", target, "-mcpu", cpu, "--name", out.stem.removeprefix("lib"), "--cache-dir", str(cache),
           f"-femit-bin={out}"]
    if opt != "Debug":
        cmd.insert(6, "-fstrip")
    subprocess.run(cmd, cwd=root, check=True)


def variants(folder: Path) -> list[tuple[Path, str | None]]:
    """(library path, cpu) pairs to build: the baseline, plus x86-64-v3 and -v4 on x86-64."""
    out = [(folder / "libarrowtok.so", None)]
    if zig_target()[0].startswith("x86_64") and not os.environ.get("ARROWTOK_ZIG_CPU"):
        out.append((folder / "libarrowtok_v3.so", "x86_64_v3"))
        out.append((folder / "libarrowtok_v4.so", "x86_64_v4"))
    return out


class ZigBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        root = Path(self.root)
        tmp = Path(tempfile.mkdtemp())
        for out, cpu in variants(tmp):
            build_library(root, out, cpu)
            if version == "editable":
                shutil.copy2(out, root / "arrowtok" / out.name)
            else:
                build_data["force_include"][str(out)] = f"arrowtok/{out.name}"
        build_data["pure_python"] = False
        build_data["tag"] = f"py3-none-{zig_target()[2]}"


if __name__ == "__main__":  # python hatch_build.py: rebuild the in-tree library (development)
    here = Path(__file__).resolve().parent
    for out, cpu in variants(here / "arrowtok"):
        build_library(here, out, cpu)
