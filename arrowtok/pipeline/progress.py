"""A one-line progress display for terminals; silent in CI and when stderr is not a terminal."""
from __future__ import annotations

import os
import sys
import threading
import time


def progress_wanted(stream=None) -> bool:
    """True when stderr is a terminal and no CI environment variable is set."""
    stream = stream or sys.stderr
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def human_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


def hms(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Counts rows, text bytes and tokens; draws `rows | MB/s | tokens/s | % | ETA` at most every
    `interval` seconds when enabled. Thread-safe; `update` is called by the writer thread."""

    def __init__(self, *, total_input_bytes: float, total_files: int, enabled: bool, stream=None,
                 interval: float = 0.25):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.total_input_bytes = max(float(total_input_bytes), 1.0)
        self.total_files = total_files
        self.interval = interval
        self.rows = self.text_bytes = self.tokens = 0
        self.input_bytes = 0.0
        self.files_done = 0
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._lock = threading.Lock()
        self._drawn = False

    def update(self, *, rows=0, text_bytes=0, tokens=0, input_bytes=0.0, files_done=0) -> None:
        with self._lock:
            self.rows += rows
            self.text_bytes += text_bytes
            self.tokens += tokens
            self.input_bytes += input_bytes
            self.files_done += files_done
            if self.enabled:
                now = time.perf_counter()
                if now - self._last >= self.interval or files_done:
                    self._last = now
                    self._draw(now)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def _draw(self, now: float) -> None:
        dt = max(now - self.t0, 1e-9)
        frac = min(self.input_bytes / self.total_input_bytes, 1.0)
        eta = dt * (1 - frac) / frac if frac > 0 else None
        line = (f"[{self.files_done}/{self.total_files} files] {self.rows:,} rows | "
                f"{self.text_bytes / dt / 1e6:,.1f} MB/s | {human_count(self.tokens / dt)} tok/s | "
                f"{frac * 100:3.0f}% | ETA {hms(eta) if eta is not None else '?'}")
        self.stream.write("\r" + line.ljust(78)[:120])
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        with self._lock:
            if self.enabled and self._drawn:
                self.stream.write("\r" + " " * 100 + "\r")
                self.stream.flush()
