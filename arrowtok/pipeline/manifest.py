"""The job manifest: which outputs are complete, made from which input, with which options.

``<output>/_arrowtok_manifest.json`` (written atomically: temporary file, fsync, rename)::

    {"manifest_version": 1,
     "options": {"encoding": "cl100k_base", "column": "text", "keep": ["id"], "append_eot": false,
                 "format": "parquet", "errors": "strict", "token_dtype": null, "arrowtok_version": "0.1.0"},
     "files": {"part-0": {"input": "data/part-0.parquet", "input_size": 123, "input_mtime_ns": 1700000000000000000,
                          "outputs": {"part-0.parquet": 4567}, "rows": 10, "null_rows": 0,
                          "text_bytes": 999, "tokens": 250}}}

An entry is written only after its output files were renamed to their final names, so an entry
always describes complete files. A file is skipped on a rerun when its entry's input path, size and
mtime match and its outputs exist with the recorded sizes; otherwise it is redone.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .inputs import JobError

MANIFEST_NAME = "_arrowtok_manifest.json"
LOCK_NAME = "_arrowtok.lock"
MANIFEST_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".arrowtok-tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class Manifest:
    def __init__(self, path: Path, options: dict, files: dict | None = None):
        self.path = path
        self.options = options
        self.files: dict[str, dict] = files or {}

    @classmethod
    def open(cls, outdir: Path, options: dict, *, overwrite: bool,
             will_write: list[str]) -> tuple["Manifest", list[str]]:
        """Load (or start) the manifest of `outdir`. Returns it and the output files that a
        previous manifest listed and --overwrite made stale (to delete).

        Refuses (JobError) when the manifest was written with other options, or when there is no
        manifest but files this job would write already exist, unless `overwrite`."""
        path = outdir / MANIFEST_NAME
        stale: list[str] = []
        if path.exists():
            try:
                data = json.loads(path.read_text("utf-8"))
                if data.get("manifest_version") != MANIFEST_VERSION or not isinstance(data.get("files"), dict):
                    raise ValueError(f"unknown manifest_version {data.get('manifest_version')!r}")
            except (ValueError, OSError) as e:
                if not overwrite:
                    raise JobError(f"{path}: unreadable manifest ({e}); pass --overwrite to start again") from None
                return cls(path, options), stale
            old = data.get("options", {})
            if old != options:
                if not overwrite:
                    diffs = [f"{k}: {old.get(k)!r} -> {options.get(k)!r}"
                             for k in sorted(set(old) | set(options)) if old.get(k) != options.get(k)]
                    raise JobError(
                        f"{outdir} holds output made with other options ({'; '.join(diffs)}). "
                        "Rerun with the same options to resume, choose another --output, "
                        "or pass --overwrite to redo everything with the new options.")
                stale = [name for entry in data["files"].values() for name in entry.get("outputs", {})]
                return cls(path, options), stale
            if overwrite:
                stale = [name for entry in data["files"].values() for name in entry.get("outputs", {})]
                return cls(path, options), stale
            return cls(path, options, data["files"]), stale
        if not overwrite:
            clash = [n for n in will_write if (outdir / n).exists()]
            if clash:
                raise JobError(
                    f"{outdir} already holds {clash[0]}" + (f" and {len(clash) - 1} more" if len(clash) > 1 else "")
                    + " but no arrowtok manifest: pass --overwrite to replace them, or choose an empty --output")
        return cls(path, options), stale

    def is_done(self, key: str, outdir: Path, *, input_display: str, input_size: int, input_mtime_ns: int) -> bool:
        e = self.files.get(key)
        if not e:
            return False
        if (e.get("input"), e.get("input_size"), e.get("input_mtime_ns")) != (input_display, input_size, input_mtime_ns):
            return False
        for name, size in e.get("outputs", {}).items():
            p = outdir / name
            if not p.is_file() or p.stat().st_size != size:
                return False
        return True

    def record(self, key: str, entry: dict) -> None:
        self.files[key] = entry
        self.save()

    def save(self) -> None:
        data = {"manifest_version": MANIFEST_VERSION, "options": self.options,
                "files": dict(sorted(self.files.items()))}
        atomic_write_bytes(self.path, (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


class DirLock:
    """An exclusive advisory lock on the output directory (so two jobs never write one directory).
    Released by the OS if the process dies."""

    def __init__(self, outdir: Path):
        self.path = outdir / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no locking
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise JobError(f"{self.path.parent}: another arrowtok job is writing to this directory") from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        return False
