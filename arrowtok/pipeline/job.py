"""The corpus tokenization job: input files in, token files out, streaming, resumable.

    from arrowtok.pipeline import tokenize_corpus
    res = tokenize_corpus(["data/"], "out/", column="text", keep=["id", "lang"], append_eot=True)
    print(res.summary())

How it runs
-----------
Three stages overlap: a reader thread streams record batches of at most ``batch_rows`` rows and
about ``batch_bytes`` bytes of text out of each input (parquet via ``ParquetFile.iter_batches``,
JSON lines via ``pyarrow.json.open_json``); the calling thread encodes each batch with
``Encoding.encode_arrow`` (Zig threads, GIL released); a writer thread writes the output. Each hand-off
is a queue of 2 batches, so memory is bounded by a few batches (plus one parquet row group of
input), whatever the corpus size.

Outputs (one per input file, named after the input's path relative to the input argument)
-----------------------------------------------------------------------------------------
``--format parquet`` (default): ``<stem>.parquet`` with the ``keep`` columns as read, then
``tokens: list<int32>`` (token ids) and ``n_tokens: uint32`` (ids in the row, including an appended
end-of-text token). uint32 because token counts are never negative and ``count_tokens_arrow`` returns
uint32; cast to int64 in SQL when summing billions. A null text gives null ``tokens`` and ``n_tokens``
(an empty text gives ``[]``, or ``[eot]`` with ``append_eot``). Row order and count equal the input's.
The schema metadata key ``arrowtok`` holds the job options as JSON. Compression: zstd.

``--format bin``: ``<stem>.bin`` and ``<stem>.idx``, the Megatron-LM ``IndexedDataset`` layout
(also a nanoGPT-style flat token file):

* ``.bin``: every document's token ids, concatenated in row order, little-endian ``uint16`` when the
  encoding's ``n_vocab`` <= 65536, else ``uint32`` (cl100k_base and o200k_base: uint32). No header.
  ``np.memmap(path, dtype=np.uint32, mode="r")`` reads it.
* ``.idx``, little-endian::

      9 bytes   b"MMIDIDX\\x00\\x00"           magic
      u64       1                              version
      u8        dtype code: 8 = uint16, 4 = int32 (uint32 ids are < 2**31, so int32 reads them unchanged)
      u64       N                              number of sequences (= input rows)
      u64       N + 1                          number of document-index entries
      i32[N]    tokens in sequence i
      i64[N]    byte offset of sequence i in .bin
      i64[N+1]  document index: 0, 1, ..., N (one document per sequence)

  Sequence i is input row i: a null text is a sequence of length 0 (rows are never dropped, so the
  index lines up with the input), ``append_eot`` ends every non-null row with ``eot_token``.

Safety
------
Each output is written under a temporary name (``.<name>.arrowtok-tmp`` in the same folder), fsynced
and renamed into place when complete; then ``_arrowtok_manifest.json`` records it (see
``manifest.py``). A rerun (``resume=True``, the default) skips inputs whose manifest entry matches
(path, size, mtime, output sizes), deletes leftover temporary files and redoes the rest, so output after
a kill equals an uninterrupted run's byte for byte. A final name never holds a partial file. Options
that differ from the manifest's are refused unless ``overwrite=True``. A lock file
(``_arrowtok.lock``) keeps two jobs out of one directory. The output must be a local directory
(inputs may be on any pyarrow filesystem).
"""
from __future__ import annotations

import json
import os
import queue
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import __version__
from ..encoding import ArrowtokError, Encoding, get_encoding
from .inputs import Batch, InputFile, JobError, _text_len, iter_batches, resolve_inputs
from .manifest import DirLock, Manifest, fsync_dir
from .progress import Progress, human_bytes, human_count, progress_wanted

DEFAULT_BATCH_ROWS = 65536
DEFAULT_BATCH_BYTES = 16 << 20
TMP_SUFFIX = ".arrowtok-tmp"
META_KEY = b"arrowtok"
IDX_MAGIC = b"MMIDIDX\x00\x00"
IDX_DTYPE_CODE = {"uint16": 8, "uint32": 4}
LIST_INT32 = pa.list_(pa.int32())
_QUEUE_DEPTH = 2


@dataclass
class JobResult:
    output: Path
    files_total: int = 0
    files_written: int = 0
    files_skipped: int = 0
    rows: int = 0
    null_rows: int = 0
    text_bytes: int = 0
    tokens: int = 0
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)

    def summary(self) -> str:
        dt = max(self.seconds, 1e-9)
        skipped = f" ({self.files_skipped} already done, skipped)" if self.files_skipped else ""
        return (f"arrowtok tokenize: {self.files_written} of {self.files_total} files written{skipped}; "
                f"{self.rows:,} rows ({self.null_rows:,} null), {human_bytes(self.text_bytes)} text, "
                f"{self.tokens:,} tokens in {self.seconds:.1f} s "
                f"({self.text_bytes / dt / 1e6:,.1f} MB/s, {human_count(self.tokens / dt)} tokens/s) -> {self.output}")


@dataclass
class _Unit:
    inp: InputFile
    key: str
    outputs: list[str]


@dataclass
class _Encoded:
    batch: pa.RecordBatch | None   # parquet: the output rows
    tokens: pa.ListArray           # bin: the ids
    rows: int
    null_rows: int
    text_bytes: int
    tokens_total: int
    input_bytes: float


class _Stop(Exception):
    pass


def append_token(lists: pa.ListArray, token: int) -> pa.ListArray:
    """`lists` with `token` appended to every non-null row (vectorised; nulls stay null)."""
    n = len(lists)
    offs = lists.offsets.to_numpy().astype(np.int64)
    start, stop = int(offs[0]), int(offs[-1])
    vals = lists.values.slice(start, stop - start).to_numpy(zero_copy_only=False)
    if lists.null_count:
        valid = lists.is_valid().to_numpy(zero_copy_only=False)
    else:
        valid = np.ones(n, dtype=bool)
    add = np.zeros(n + 1, np.int64)
    np.cumsum(valid, out=add[1:])
    new_offs = offs - start + add
    if new_offs[-1] > np.iinfo(np.int32).max:
        raise ArrowtokError("batch has too many tokens for list<int32>; lower --batch-bytes")
    out = np.empty(int(new_offs[-1]), np.int32)
    eot_pos = new_offs[1:][valid] - 1
    keep = np.ones(out.size, dtype=bool)
    keep[eot_pos] = False
    out[keep] = vals
    out[eot_pos] = token
    mask = pa.array(~valid) if lists.null_count else None
    return pa.ListArray.from_arrays(pa.array(new_offs.astype(np.int32)), pa.array(out, pa.int32()), mask=mask)


def _row_error(inp: InputFile, row_base: int, e: ArrowtokError, column: str) -> JobError:
    msg = str(e)
    if e.row is None:
        return JobError(f"{inp.display}: column {column!r}: {msg}", inp.display)
    row = row_base + e.row
    detail = msg.split(": ", 2)[-1] if msg.startswith("encode_arrow: row ") else msg
    detail = detail.replace(" (pass errors='replace' to substitute U+FFFD)", "")
    hint = "; pass --errors replace (errors='replace') to substitute U+FFFD" if "UTF-8" in detail else ""
    return JobError(f"{inp.display}: row {row} (column {column!r}): {detail}{hint}", inp.display, row, e.byte_offset)


def _encode(enc: Encoding, u: _Unit, b: Batch, *, column: str, keep: Sequence[str], out_schema, append_eot: bool,
            errors: str, threads: int | None) -> _Encoded:
    text = b.data.column(column)
    try:
        tokens = enc.encode_arrow(text, threads=threads, errors=errors)
    except ArrowtokError as e:
        raise _row_error(u.inp, b.row_base, e, column) from None
    except TypeError as e:
        raise JobError(f"{u.inp.display}: column {column!r}: {e}", u.inp.display) from None
    if isinstance(tokens, pa.ChunkedArray):
        tokens = tokens.combine_chunks()
    if append_eot:
        tokens = append_token(tokens, enc.eot_token)
    n_tokens = pc.list_value_length(tokens).cast(pa.uint32())
    total = pc.sum(n_tokens).as_py() or 0
    out = None
    if out_schema is not None:
        cols = [b.data.column(k) for k in keep] + [tokens, n_tokens]
        out = pa.RecordBatch.from_arrays(cols, schema=out_schema)
    return _Encoded(out, tokens, b.data.num_rows, text.null_count, int(_text_len(text).sum()), int(total), b.input_bytes)


class _ParquetSink:
    def __init__(self, outdir: Path, name: str, schema: pa.Schema, keep: Sequence[str]):
        self.name = name
        self.final = outdir / name
        self.tmp = self.final.parent / f".{self.final.name}{TMP_SUFFIX}"
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(str(self.tmp), schema, compression="zstd",
                                       use_dictionary=list(keep) or False,
                                       write_statistics=list(keep) + ["n_tokens"])

    def write(self, e: _Encoded) -> None:
        self.writer.write_batch(e.batch)

    def commit(self) -> dict[str, int]:
        self.writer.close()
        self.writer = None
        _fsync_file(self.tmp)
        os.replace(self.tmp, self.final)
        fsync_dir(self.final.parent)
        return {self.name: self.final.stat().st_size}

    def abort(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:
                pass
        _unlink(self.tmp)


class _BinSink:
    def __init__(self, outdir: Path, stem: str, dtype: str):
        self.names = (stem + ".bin", stem + ".idx")
        self.bin = outdir / self.names[0]
        self.idx = outdir / self.names[1]
        self.bin.parent.mkdir(parents=True, exist_ok=True)
        d = self.bin.parent
        self.tmp_bin = d / f".{self.bin.name}{TMP_SUFFIX}"
        self.tmp_idx = d / f".{self.idx.name}{TMP_SUFFIX}"
        self.tmp_lens = d / f".{self.bin.name}.lens{TMP_SUFFIX}"
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.code = IDX_DTYPE_CODE[dtype]
        self.fbin = open(self.tmp_bin, "wb")
        self.flens = open(self.tmp_lens, "wb+")
        self.n_seq = 0

    def write(self, e: _Encoded) -> None:
        lens = pc.list_value_length(e.tokens).fill_null(0).to_numpy(zero_copy_only=False).astype("<i4")
        flat = e.tokens.flatten().to_numpy(zero_copy_only=False)
        self.fbin.write(flat.astype(self.dtype, copy=False).tobytes() if self.dtype.itemsize != 4
                        else flat.view("<u4").tobytes())
        self.flens.write(lens.tobytes())
        self.n_seq += len(lens)

    def commit(self) -> dict[str, int]:
        self.fbin.flush()
        os.fsync(self.fbin.fileno())
        self.fbin.close()
        self.flens.flush()
        n = self.n_seq
        step = 1 << 20
        with open(self.tmp_idx, "wb") as f:
            f.write(IDX_MAGIC + struct.pack("<Q", 1) + struct.pack("<B", self.code)
                    + struct.pack("<Q", n) + struct.pack("<Q", n + 1))
            for chunk in self._lens_chunks(step):
                f.write(chunk.tobytes())
            pos = 0
            for chunk in self._lens_chunks(step):
                ptr = np.empty(len(chunk), "<i8")
                ptr[0] = pos
                np.cumsum(chunk[:-1].astype(np.int64) * self.dtype.itemsize, out=ptr[1:])
                ptr[1:] += pos
                pos = int(ptr[-1]) + int(chunk[-1]) * self.dtype.itemsize
                f.write(ptr.tobytes())
            for s in range(0, n + 1, step):
                f.write(np.arange(s, min(s + step, n + 1), dtype="<i8").tobytes())
            f.flush()
            os.fsync(f.fileno())
        self.flens.close()
        _unlink(self.tmp_lens)
        os.replace(self.tmp_bin, self.bin)
        os.replace(self.tmp_idx, self.idx)
        fsync_dir(self.bin.parent)
        return {self.names[0]: self.bin.stat().st_size, self.names[1]: self.idx.stat().st_size}

    def _lens_chunks(self, step: int):
        self.flens.seek(0)
        while True:
            raw = self.flens.read(4 * step)
            if not raw:
                return
            yield np.frombuffer(raw, "<i4")

    def abort(self) -> None:
        for f in (self.fbin, self.flens):
            try:
                f.close()
            except Exception:
                pass
        for p in (self.tmp_bin, self.tmp_idx, self.tmp_lens):
            _unlink(p)


def _fsync_file(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(p: Path) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


def _output_schema(in_schema: pa.Schema | None, keep: Sequence[str], options: dict) -> pa.Schema:
    fields = [in_schema.field(k) if in_schema is not None else pa.field(k, pa.null()) for k in keep]
    fields = [f.remove_metadata() for f in fields]
    fields += [pa.field("tokens", LIST_INT32), pa.field("n_tokens", pa.uint32())]
    return pa.schema(fields, metadata={META_KEY: json.dumps(options, sort_keys=True).encode()})


def _parse_keep(keep) -> list[str]:
    if keep is None:
        return []
    if isinstance(keep, str):
        keep = keep.split(",")
    out = [k.strip() for k in keep if k and k.strip()]
    return list(dict.fromkeys(out))


def output_keys(files: Sequence[InputFile]) -> list[tuple[InputFile, str]]:
    """(input, output stem) for each input; two inputs that would write the same stem are refused."""
    by_key: dict[str, InputFile] = {}
    for f in files:
        key = f.stem
        if key in by_key:
            raise JobError(f"{by_key[key].display} and {f.display} would both write {key}.*: "
                           "rename one, or tokenize them into different --output folders")
        by_key[key] = f
    return [(f, k) for k, f in by_key.items()]


def resolve_encoding(encoding) -> Encoding:
    """An Encoding, a known name, or a tokenizer.json path (file or folder holding one)."""
    if isinstance(encoding, Encoding):
        return encoding
    p = Path(os.fspath(encoding))
    if p.is_dir() and (p / "tokenizer.json").is_file():
        p = p / "tokenizer.json"
    if p.name.endswith((".json", ".json.gz", ".json.xz")) and p.is_file():
        from ..hf import from_tokenizer_json

        return from_tokenizer_json(p)
    return get_encoding(os.fspath(encoding))


def tokenize_corpus(inputs: str | os.PathLike | Iterable[str | os.PathLike], output: str | os.PathLike, *,
                    column: str = "text", encoding: "str | os.PathLike | Encoding" = "cl100k_base", keep: Sequence[str] | str | None = (),
                    append_eot: bool = False, format: str = "parquet", threads: int | None = None,
                    batch_rows: int = DEFAULT_BATCH_ROWS, batch_bytes: int = DEFAULT_BATCH_BYTES,
                    errors: str = "strict", resume: bool = True, overwrite: bool = False,
                    progress: bool | None = None) -> JobResult:
    """Tokenize every row of `column` in `inputs` (files, folders, globs, URIs) into `output`.

    See the module docstring for the output layouts and the resume rules. Raises JobError (an
    ArrowtokError/ValueError) naming the file and row on bad input; nothing is dropped silently.
    `progress`: None draws a progress line only on a terminal outside CI."""
    t0 = time.perf_counter()
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [os.fspath(i) for i in inputs]
    keep = _parse_keep(keep)
    if format not in ("parquet", "bin"):
        raise JobError(f"format must be 'parquet' or 'bin', got {format!r}")
    if errors not in ("strict", "replace"):
        raise JobError(f"errors must be 'strict' or 'replace', got {errors!r}")
    if format == "bin" and keep:
        raise JobError("--keep applies to --format parquet (a .bin file holds token ids only)")
    for reserved in ("tokens", "n_tokens"):
        if reserved in keep:
            raise JobError(f"--keep: {reserved!r} is the name of an output column; rename the input column")
    if batch_rows < 1 or batch_bytes < 1:
        raise JobError("batch_rows and batch_bytes must be >= 1")
    if threads is not None and threads < 1:
        raise JobError("threads must be >= 1")
    out_s = os.fspath(output)
    if "://" in out_s and not out_s.startswith("file://"):
        raise JobError(f"{out_s}: the output must be a local directory (atomic renames)")
    outdir = Path(out_s.removeprefix("file://")).expanduser().resolve()
    enc = resolve_encoding(encoding)
    encoding = encoding if isinstance(encoding, str) else (getattr(enc, "source_path", None) or enc.name)
    token_dtype = ("uint16" if enc.n_vocab <= 65536 else "uint32") if format == "bin" else None
    options = {"encoding": encoding, "column": column, "keep": keep, "append_eot": bool(append_eot),
               "format": format, "errors": errors, "token_dtype": token_dtype}

    files = resolve_inputs(inputs, exclude=str(outdir))
    units: list[_Unit] = []
    for f, key in output_keys(files):
        outs = [key + ".parquet"] if format == "parquet" else [key + ".bin", key + ".idx"]
        units.append(_Unit(f, key, outs))

    outdir.mkdir(parents=True, exist_ok=True)
    result = JobResult(output=outdir, files_total=len(units), outputs=[n for u in units for n in u.outputs])
    with DirLock(outdir):
        manifest, stale = Manifest.open(outdir, options, overwrite=overwrite,
                                        will_write=[n for u in units for n in u.outputs])
        for name in stale:
            _unlink(outdir / name)
        for tmp in outdir.rglob(f".*{TMP_SUFFIX}"):
            _unlink(tmp)
        manifest.save()
        todo = []
        for u in units:
            if resume and manifest.is_done(u.key, outdir, input_display=u.inp.display,
                                           input_size=u.inp.size, input_mtime_ns=u.inp.mtime_ns):
                result.files_skipped += 1
            else:
                todo.append(u)
        prog = Progress(total_input_bytes=sum(u.inp.size for u in todo), total_files=len(todo),
                        enabled=progress_wanted() if progress is None else bool(progress))
        try:
            _run(todo, enc, outdir, manifest, prog, result, column=column, keep=keep, options=options,
                 append_eot=append_eot, format=format, errors=errors, threads=threads,
                 batch_rows=batch_rows, batch_bytes=batch_bytes, token_dtype=token_dtype)
        finally:
            prog.close()
    result.seconds = time.perf_counter() - t0
    return result


def _run(todo: list[_Unit], enc: Encoding, outdir: Path, manifest: Manifest, prog: Progress, result: JobResult, *,
         column, keep, options, append_eot, format, errors, threads, batch_rows, batch_bytes, token_dtype) -> None:
    if not todo:
        return
    stop = threading.Event()
    q_in: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH)
    q_out: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH)
    failures: list[BaseException] = []
    delay = float(os.environ.get("ARROWTOK_TEST_WRITE_DELAY", "0") or 0)  # test hook: slow the writer down
    columns = [column] + [k for k in keep if k != column]

    def put(q, item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def get(q):
        while True:
            if stop.is_set():
                raise _Stop
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                pass

    def reader():
        try:
            for i, u in enumerate(todo):
                box: list = []
                began = False
                for b in iter_batches(u.inp, columns, text_column=column, batch_rows=batch_rows,
                                      batch_bytes=batch_bytes, schema_out=box):
                    if not began:
                        began = put(q_in, ("begin", i, box[0]))
                    if not put(q_in, ("batch", i, b)):
                        return
                if not began and not put(q_in, ("begin", i, box[0] if box else None)):
                    return
                if not put(q_in, ("end", i, None)):
                    return
            put(q_in, ("done", -1, None))
        except BaseException as e:  # handed to the main thread, which raises it
            put(q_in, ("error", -1, e))

    def writer():
        sink = None
        unit_stats = None
        try:
            while True:
                kind, i, payload = get(q_out)
                if kind == "begin":
                    u = todo[i]
                    if format == "parquet":
                        sink = _ParquetSink(outdir, u.outputs[0], payload, keep)
                    else:
                        sink = _BinSink(outdir, u.key, token_dtype)
                    unit_stats = {"rows": 0, "null_rows": 0, "text_bytes": 0, "tokens": 0, "input_bytes": 0.0}
                elif kind == "batch":
                    sink.write(payload)
                    for k, v in (("rows", payload.rows), ("null_rows", payload.null_rows),
                                 ("text_bytes", payload.text_bytes), ("tokens", payload.tokens_total),
                                 ("input_bytes", payload.input_bytes)):
                        unit_stats[k] += v
                    prog.update(rows=payload.rows, text_bytes=payload.text_bytes, tokens=payload.tokens_total,
                                input_bytes=payload.input_bytes)
                    if delay:
                        time.sleep(delay)
                elif kind == "end":
                    u = todo[i]
                    outputs = sink.commit()
                    sink = None
                    ib = unit_stats.pop("input_bytes")
                    manifest.record(u.key, {"input": u.inp.display, "input_size": u.inp.size,
                                            "input_mtime_ns": u.inp.mtime_ns, "outputs": outputs, **unit_stats})
                    result.files_written += 1
                    for k in ("rows", "null_rows", "text_bytes", "tokens"):
                        setattr(result, k, getattr(result, k) + unit_stats[k])
                    prog.update(files_done=1, input_bytes=max(u.inp.size - ib, 0))
                elif kind == "done":
                    return
        except _Stop:
            pass
        except BaseException as e:
            failures.append(e)
            stop.set()
        finally:
            if sink is not None:
                sink.abort()

    rt = threading.Thread(target=reader, name="arrowtok-reader", daemon=True)
    wt = threading.Thread(target=writer, name="arrowtok-writer", daemon=True)
    rt.start()
    wt.start()
    out_schema = None
    try:
        while True:
            kind, i, payload = get(q_in)
            if kind == "batch":
                enc_batch = _encode(enc, todo[i], payload, column=column, keep=keep, out_schema=out_schema,
                                    append_eot=append_eot, errors=errors, threads=threads)
                put(q_out, ("batch", i, enc_batch))
            elif kind == "begin":
                if format == "parquet":
                    out_schema = _output_schema(payload, keep, options)
                    payload = out_schema
                put(q_out, (kind, i, payload))
            elif kind == "end":
                put(q_out, (kind, i, payload))
            elif kind == "error":
                raise payload
            else:
                put(q_out, ("done", -1, None))
                break
        wt.join()
    except _Stop:
        pass
    except BaseException:
        stop.set()
        raise
    finally:
        if failures or stop.is_set() or wt.is_alive():
            stop.set()
        wt.join()
        rt.join(timeout=60)
    if failures:
        raise failures[0]
