"""arrowtok on Ray Data: tokenize a Ray Dataset, or run the corpus job (`arrowtok tokenize`) on a cluster.

    import ray, arrowtok.ray
    ds = ray.data.read_parquet("s3://bucket/corpus/")
    ds = arrowtok.ray.tokenize_dataset(ds, "text", "cl100k_base", keep=["id"], append_eot=True,
                                       num_cpus=4, concurrency=8)
    ds.write_parquet("s3://bucket/tokens/")

Needs Ray Data: ``pip install "arrowtok[ray]"`` (``ray[data]>=2.40``).

The map step
------------
`TokenizeBatch` is a `map_batches` callable class: each Ray actor loads the encoding once, takes
``batch_format="pyarrow"`` batches (tables; passed with ``zero_copy_batch=True``) and hands the text
column's Arrow buffers straight to `Encoding.encode_arrow` (no Python object per row, GIL released
while Zig runs). Zig threads per actor = the CPUs Ray assigned to the actor (``num_cpus``), so
``concurrency`` actors x ``num_cpus`` threads never oversubscribe what Ray reserved. Output columns
are those of the local job: the kept columns, then ``tokens: list<int32>`` and ``n_tokens: uint32``
(a null text gives null ``tokens``/``n_tokens``; ``append_eot`` ends every non-null row with
``<|endoftext|>``).

The corpus job
--------------
`tokenize_corpus_ray` takes the options of `arrowtok.pipeline.tokenize_corpus` and writes the same
output folder: one ``<stem>.parquet`` per input file (same names, columns, types, schema metadata,
row order, ids), the same ``_arrowtok_manifest.json`` (a Ray run resumes a local run's folder and
vice versa), the same lock. Each input file is one Ray Data pipeline, ``read -> map_batches(
TokenizeBatch) -> write_parquet`` into a hidden temporary folder in the output directory, after
which the driver renames the single written file to its final name: a final name never holds a
partial file. Input files are processed one after the other (each one in parallel over the cluster);
the actor pool is started again for each file, which costs a second or two per file.

Differences from the local job: ``--format bin`` is refused (a .bin/.idx pair is one sequential
stream per input; write parquet on Ray, or use the local engine); batches are cut by rows
(``batch_size``, derived from ``batch_rows``/``batch_bytes`` and the file's average row size);
the output directory must be visible at the same path from the driver and from every Ray node (a
shared filesystem; one machine needs nothing); an encoding error names the file and the row within
its Ray batch (Ray does not tell a batch where it starts in the file); each file's write is one Ray
task that starts when the file's last batch is tokenized (so the whole file's tokens sit in the
object store, spilling to disk if needed); the actor pool is capped to leave one CPU of the cluster
to Ray's read and write tasks (a pool holding every CPU stalls the job).
"""
from __future__ import annotations

import gc
import os
import re
import shutil
import time
import uuid
import warnings
from pathlib import Path
from typing import AbstractSet, Iterable, Literal, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

try:
    import ray
    import ray.data
except ImportError as _e:  # pragma: no cover - exercised only without ray
    raise ImportError("arrowtok.ray needs Ray Data: pip install 'arrowtok[ray]' (ray[data]>=2.40)") from _e

from .encoding import ArrowtokError, default_threads, get_encoding
from .pipeline.inputs import InputFile, JobError, iter_batches, resolve_inputs
from .pipeline.job import (DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, JobResult, _fsync_file, _output_schema, output_keys,
                           _parse_keep, _ParquetSink, _unlink, append_token)
from .pipeline.manifest import DirLock, Manifest, fsync_dir

__all__ = ["TokenizeBatch", "tokenize_dataset", "tokenize_corpus_ray", "run_cli_ray", "DEFAULT_BATCH_SIZE"]

DEFAULT_BATCH_SIZE = 4096          # rows per map_batches batch when nothing better is known
RAY_TMP_DIR = ".arrowtok-ray-tmp"  # under the output folder; hidden, so never taken as input
_RESERVED = ("tokens", "n_tokens")


def _assigned_cpus() -> int | None:
    """CPUs Ray reserved for the current actor/task (None outside a Ray worker)."""
    try:
        if not ray.is_initialized():
            return None
        res = ray.get_runtime_context().get_assigned_resources()
    except Exception:
        return None
    cpus = res.get("CPU")
    return max(1, int(cpus)) if cpus else None


def _text_bytes(col) -> int:
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    total = 0
    for ch in chunks:
        if pa.types.is_dictionary(ch.type):
            ch = ch.cast(ch.type.value_type)
        if ch.type == pa.null() or len(ch) == 0:
            continue
        total += int(pc.sum(pc.binary_length(ch)).as_py() or 0)
    return total


class TokenizeBatch:
    """A `Dataset.map_batches` callable class (use ``batch_format="pyarrow"``): pyarrow Table in,
    Table out with the `keep` columns then ``tokens: list<int32>`` and ``n_tokens: uint32``.

    keep: None keeps every input column (in input order); a list keeps those (``[]``: only the
    token columns). threads: Zig threads per call; None = the CPUs Ray assigned to this actor
    (``num_cpus``), or all cores outside Ray. schema: optional output schema to cast to (the corpus
    job passes the local job's, so files are identical in type and metadata). source: a name for
    error messages (the input file). tally: optional Ray actor handle with ``add(rows, null_rows,
    text_bytes, tokens)``, called once per batch (the corpus job's statistics)."""

    def __init__(self, column: str = "text", encoding: str = "cl100k_base", *, append_eot: bool = False,
                 keep: Sequence[str] | None = None, threads: int | None = None, errors: str = "strict",
                 allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
                 schema: pa.Schema | None = None, source: str | None = None, tally=None):
        if errors not in ("strict", "replace"):
            raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
        self.column = column
        self.enc = get_encoding(encoding)
        self.append_eot = bool(append_eot)
        self.keep = None if keep is None else _parse_keep(keep)
        for reserved in _RESERVED:
            if self.keep and reserved in self.keep:
                raise ValueError(f"keep: {reserved!r} is the name of an output column; rename the input column")
        self.threads = int(threads) if threads else (_assigned_cpus() or default_threads())
        if self.threads < 1:
            raise ValueError("threads must be >= 1")
        self.errors = errors
        self.allowed_special = allowed_special
        self.schema = schema
        self.source = source
        self.tally = tally

    def __call__(self, batch: pa.Table) -> pa.Table:
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        if not isinstance(batch, pa.Table):
            raise TypeError(f"arrowtok.ray.TokenizeBatch wants pyarrow batches (map_batches(..., "
                            f"batch_format='pyarrow')), got {type(batch).__name__}")
        where = f"{self.source}: " if self.source else ""
        names = batch.column_names
        if self.column not in names:
            raise JobError(f"{where}no column {self.column!r} (columns: {', '.join(names) or 'none'})", self.source)
        keep = [n for n in names if n not in _RESERVED] if self.keep is None else self.keep
        if self.keep is None:
            clash = [n for n in names if n in _RESERVED]
            if clash:
                raise JobError(f"{where}input already has a column {clash[0]!r}; pass keep=[...] without it", self.source)
        missing = [k for k in keep if k not in names]
        if missing:
            raise JobError(f"{where}no column {missing[0]!r} to keep (columns: {', '.join(names)})", self.source)
        text = batch.column(self.column)  # a ChunkedArray over Ray's buffers: no copy
        try:
            tokens = self.enc.encode_arrow(text, threads=self.threads, errors=self.errors,
                                           allowed_special=self.allowed_special)
        except ArrowtokError as e:
            raise self._error(e, batch.num_rows) from None
        except TypeError as e:
            raise JobError(f"{where}column {self.column!r}: {e}", self.source) from None
        chunks = tokens.chunks if isinstance(tokens, pa.ChunkedArray) else [tokens]
        if self.append_eot:
            chunks = [append_token(c, self.enc.eot_token) for c in chunks]
        tokens = pa.chunked_array(chunks, type=pa.list_(pa.int32()))
        n_tokens = pc.list_value_length(tokens).cast(pa.uint32())
        cols = [batch.column(k) for k in keep] + [tokens, n_tokens]
        if self.schema is not None:
            cols = [c if c.type == f.type else c.cast(f.type) for c, f in zip(cols, self.schema)]
            out = pa.Table.from_arrays(cols, schema=self.schema)
        else:
            out = pa.Table.from_arrays(cols, names=list(keep) + list(_RESERVED))
        if self.tally is not None:
            ray.get(self.tally.add.remote(batch.num_rows, text.null_count, _text_bytes(text),
                                  int(pc.sum(n_tokens).as_py() or 0)))  # waited on: counted before the write ends
        return out

    def _error(self, e: ArrowtokError, n: int) -> JobError:
        msg = str(e)
        where = f"{self.source}: " if self.source else ""
        if e.row is None:
            return JobError(f"{where}column {self.column!r}: {msg}", self.source)
        detail = msg.split(": ", 2)[-1] if msg.startswith("encode_arrow: row ") else msg
        detail = detail.replace(" (pass errors='replace' to substitute U+FFFD)", "")
        hint = "; pass --errors replace (errors='replace') to substitute U+FFFD" if "UTF-8" in detail else ""
        return JobError(f"{where}row {e.row} of a {n}-row Ray batch (column {self.column!r}): {detail}{hint}",
                        self.source, None, e.byte_offset)


def _compute(concurrency):
    if concurrency is None:
        return ray.data.ActorPoolStrategy(min_size=1, max_size=None)
    if isinstance(concurrency, int):
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        return ray.data.ActorPoolStrategy(size=concurrency)
    lo, hi = concurrency
    return ray.data.ActorPoolStrategy(min_size=lo, max_size=hi)


def tokenize_dataset(ds: "ray.data.Dataset", column: str = "text", encoding: str = "cl100k_base", *,
                     append_eot: bool = False, keep: Sequence[str] | None = None, threads: int | None = None,
                     errors: str = "strict", allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
                     concurrency: int | tuple[int, int] | None = None, num_cpus: float = 1,
                     batch_size: int | None = DEFAULT_BATCH_SIZE, schema: pa.Schema | None = None,
                     source: str | None = None, _tally=None, **ray_remote_args) -> "ray.data.Dataset":
    """`ds` with `column` tokenized (lazy; nothing runs until you consume or write it).

    Output columns: the `keep` columns (None: all input columns), then ``tokens: list<int32>`` and
    ``n_tokens: uint32``, as in the local corpus job. Sizing: `num_cpus` CPUs per actor, and that
    many Zig threads in each (unless `threads` says otherwise); `concurrency` actors (an int for a
    fixed pool, ``(min, max)`` for an autoscaling one, None for 1..as many as fit); `batch_size` rows
    per call. Extra keyword arguments go to `map_batches` (e.g. ``memory=``)."""
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
    if num_cpus is None or num_cpus <= 0:
        raise ValueError("num_cpus must be > 0 (it sizes the Zig threads of each actor)")
    get_encoding(encoding)  # fail here, not inside an actor, on an unknown name
    kwargs = dict(column=column, encoding=encoding, append_eot=append_eot, keep=None if keep is None else _parse_keep(keep),
                  threads=threads, errors=errors, allowed_special=allowed_special, schema=schema, source=source,
                  tally=_tally)
    return ds.map_batches(TokenizeBatch, fn_constructor_kwargs=kwargs, batch_format="pyarrow", zero_copy_batch=True,
                          batch_size=batch_size, compute=_compute(concurrency), num_cpus=num_cpus, **ray_remote_args)


# ---- the corpus job ---------------------------------------------------------------------------------


@ray.remote(num_cpus=0)
class _Tally:
    def __init__(self):
        self.v = [0, 0, 0, 0]

    def add(self, rows, null_rows, text_bytes, tokens):
        for i, x in enumerate((rows, null_rows, text_bytes, tokens)):
            self.v[i] += int(x)

    def take(self):
        v, self.v = self.v, [0, 0, 0, 0]
        return v


_REMOTE_ERROR = re.compile(r"^arrowtok\.(?:pipeline\.inputs\.JobError|encoding\.ArrowtokError): (.+)$", re.M)


def _find_job_error(e: BaseException) -> BaseException | None:
    """The arrowtok error inside a Ray exception chain (RayTaskError, UserCodeException, ...). Ray
    Data (2.60) keeps only the remote traceback's text of a UDF error, so that is parsed last."""
    seen = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, ArrowtokError) and type(x) in (ArrowtokError, JobError):
            return x
        cause = getattr(x, "cause", None)
        if isinstance(cause, BaseException):
            stack.append(cause)
        stack += [x.__cause__, x.__context__]
    m = _REMOTE_ERROR.search(str(e))
    if m:
        off = re.search(r"byte offset (\d+)", m.group(1))
        return JobError(m.group(1), None, None, int(off.group(1)) if off else None)
    return None


def _ensure_ray(address: str | None, progress: bool) -> bool:
    """Connect to (or start) Ray. Returns True when this call started it (and should shut it down)."""
    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, log_to_driver=bool(progress), logging_level="ERROR",
             configure_logging=True)
    return True


def _batch_size(inp: InputFile, column: str, batch_rows: int, batch_bytes: int) -> int:
    """Rows per Ray batch: the local job's budget (batch_rows rows, about batch_bytes of text)."""
    per_row = 2048  # JSON lines: no statistics; a typical document
    if inp.format == "parquet":
        try:
            with inp.fs.open_input_file(inp.path) as f:
                md = pq.ParquetFile(f).metadata
                leaf = [i for i in range(md.num_columns) if md.schema.column(i).path.split(".")[0] == column]
                est = sum(md.row_group(g).column(i).total_uncompressed_size
                          for g in range(md.num_row_groups) for i in leaf)
                if md.num_rows:
                    per_row = max(1, est // md.num_rows)
        except Exception:  # statistics are only a hint
            pass
    return int(max(1, min(batch_rows, batch_bytes // per_row)))


def _read(inp: InputFile, columns: list[str]) -> "ray.data.Dataset":
    if inp.format == "parquet":
        with warnings.catch_warnings():  # `columns=` pushes the projection down on every Ray >= 2.40
            warnings.simplefilter("ignore", DeprecationWarning)
            return ray.data.read_parquet(inp.path, filesystem=inp.fs, columns=columns)
    # pyarrow's JSON reader (newline-delimited), as the local job; not lines=True (pandas: NaN for null)
    args = {"compression": inp.compression} if inp.compression else None
    return ray.data.read_json(inp.path, filesystem=inp.fs, arrow_open_stream_args=args, file_extensions=None)


def _first_schema(inp: InputFile, columns: list[str], column: str):
    """The file's (selected) schema as the local job sees it, after the same schema checks."""
    box: list = []
    gen = iter_batches(inp, columns, text_column=column, batch_rows=1, batch_bytes=1, schema_out=box)
    try:
        next(gen, None)
    finally:
        gen.close()
    return box[0] if box else None


def tokenize_corpus_ray(inputs: str | os.PathLike | Iterable[str | os.PathLike], output: str | os.PathLike, *,
                        column: str = "text", encoding: str = "cl100k_base", keep: Sequence[str] | str | None = (),
                        append_eot: bool = False, format: str = "parquet", threads: int | None = None,
                        batch_rows: int = DEFAULT_BATCH_ROWS, batch_bytes: int = DEFAULT_BATCH_BYTES,
                        errors: str = "strict", resume: bool = True, overwrite: bool = False,
                        progress: bool | None = None, address: str | None = None,
                        concurrency: int | tuple[int, int] | None = None, num_cpus: float | None = None,
                        batch_size: int | None = None) -> JobResult:
    """`arrowtok.pipeline.tokenize_corpus` on Ray Data: same inputs, options and output folder.

    address: the Ray cluster (None: the one already initialised in this process, else RAY_ADDRESS,
    else a local one; "auto": the running cluster). threads: Zig threads per actor, and the CPUs
    each actor reserves (default: num_cpus, default 1). concurrency: actors (int, (min, max) or None:
    autoscale). batch_size: rows per Ray batch (default: from batch_rows/batch_bytes and the file)."""
    t0 = time.perf_counter()
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [os.fspath(i) for i in inputs]
    keep = _parse_keep(keep)
    if format == "bin":
        raise JobError("--format bin is not supported with --engine ray (a .bin/.idx pair is one sequential "
                       "stream per input file): use --format parquet on Ray, or --engine local for .bin")
    if format != "parquet":
        raise JobError(f"format must be 'parquet' or 'bin', got {format!r}")
    if errors not in ("strict", "replace"):
        raise JobError(f"errors must be 'strict' or 'replace', got {errors!r}")
    for reserved in _RESERVED:
        if reserved in keep:
            raise JobError(f"--keep: {reserved!r} is the name of an output column; rename the input column")
    if batch_rows < 1 or batch_bytes < 1 or (batch_size is not None and batch_size < 1):
        raise JobError("batch_rows, batch_bytes and batch_size must be >= 1")
    if threads is not None and threads < 1:
        raise JobError("threads must be >= 1")
    if num_cpus is None:
        num_cpus = threads or 1
    out_s = os.fspath(output)
    if "://" in out_s and not out_s.startswith("file://"):
        raise JobError(f"{out_s}: the output must be a local (or shared, e.g. NFS) directory (atomic renames); "
                       "for object stores use arrowtok.ray.tokenize_dataset(...).write_parquet(...)")
    outdir = Path(out_s.removeprefix("file://")).expanduser().resolve()
    get_encoding(encoding)
    # The local job's options, so either engine resumes the other's folder.
    options = {"encoding": encoding, "column": column, "keep": keep, "append_eot": bool(append_eot),
               "format": format, "errors": errors, "token_dtype": None}

    units = output_keys(resolve_inputs(inputs, exclude=str(outdir)))

    outdir.mkdir(parents=True, exist_ok=True)
    result = JobResult(output=outdir, files_total=len(units), outputs=[k + ".parquet" for _, k in units])
    show = bool(progress)
    with DirLock(outdir):
        manifest, stale = Manifest.open(outdir, options, overwrite=overwrite,
                                        will_write=[k + ".parquet" for _, k in units])
        for name in stale:
            _unlink(outdir / name)
        for tmp in outdir.rglob(".*.arrowtok-tmp"):
            if tmp.is_file():
                _unlink(tmp)
        shutil.rmtree(outdir / RAY_TMP_DIR, ignore_errors=True)
        manifest.save()
        todo = []
        for inp, key in units:
            if resume and manifest.is_done(key, outdir, input_display=inp.display, input_size=inp.size,
                                           input_mtime_ns=inp.mtime_ns):
                result.files_skipped += 1
            else:
                todo.append((inp, key))
        # Schema checks of every file first (footers; a JSON file's first block): fail before Ray starts.
        schemas = {key: _output_schema(_first_schema(inp, list(dict.fromkeys([column] + keep)), column), keep, options)
                   for inp, key in todo}
        if todo:
            started = _ensure_ray(address, show)
            concurrency = _corpus_actors(concurrency, num_cpus)
            ctx = ray.data.DataContext.get_current()
            saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
            ctx.execution_options.preserve_order = True  # rows keep the input's order
            ctx.enable_progress_bars = show
            tally = _Tally.remote()
            try:
                for inp, key in todo:
                    _one_file(inp, key, outdir, manifest, result, tally, schemas[key], column=column, keep=keep,
                              encoding=encoding, append_eot=append_eot, errors=errors, threads=threads,
                              num_cpus=num_cpus, concurrency=concurrency,
                              batch_size=batch_size or _batch_size(inp, column, batch_rows, batch_bytes))
                    if show:
                        print(f"arrowtok tokenize (ray): {inp.display} -> {key}.parquet", flush=True)
            finally:
                ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
                shutil.rmtree(outdir / RAY_TMP_DIR, ignore_errors=True)
                try:
                    ray.kill(tally)
                except Exception:
                    pass
                if started:
                    ray.shutdown()
    result.seconds = time.perf_counter() - t0
    return result


def _corpus_actors(concurrency, num_cpus: float):
    """Actor pool bounds that leave one CPU of the cluster to Ray's read and write tasks: actors
    holding every CPU starve those tasks and the job never finishes."""
    total = float(ray.cluster_resources().get("CPU", 0))
    most = max(1, int((total - 1) // num_cpus)) if total else None
    if concurrency is None:
        return (1, most) if most else None
    hi = concurrency if isinstance(concurrency, int) else concurrency[1]
    if most is not None and hi * num_cpus > total - 1:
        raise JobError(f"{hi} actors x {num_cpus:g} CPUs leave none of the cluster's {total:g} CPUs to Ray's read "
                       f"and write tasks, and the job would stall: use at most {most} actors or fewer CPUs each")
    return concurrency


def _one_file(inp: InputFile, key: str, outdir: Path, manifest: Manifest, result: JobResult, tally, schema, *,
              column, keep, encoding, append_eot, errors, threads, num_cpus, concurrency, batch_size) -> None:
    columns = list(dict.fromkeys([column] + keep))
    final = outdir / (key + ".parquet")
    tmpdir = outdir / RAY_TMP_DIR / uuid.uuid4().hex
    ray.get(tally.take.remote())
    ds = _read(inp, columns)
    ds = tokenize_dataset(ds, column, encoding, append_eot=append_eot, keep=keep, threads=threads or None,
                          errors=errors, concurrency=concurrency, num_cpus=num_cpus, batch_size=batch_size,
                          schema=schema, source=inp.display, _tally=tally)
    failure = None
    err = None
    try:
        # One write task for the whole file (min_rows_per_file bundles every block), so one file.
        ds.write_parquet(str(tmpdir), min_rows_per_file=(1 << 31) - 1, row_group_size=batch_size, compression="zstd",
                         use_dictionary=list(keep) or False, write_statistics=list(keep) + ["n_tokens"])
    except Exception as e:
        err = _find_job_error(e)
        if err is not None:
            failure = JobError(str(err), getattr(err, "path", None) or inp.display, getattr(err, "row", None),
                               getattr(err, "byte_offset", None))
        else:
            failure = JobError(f"{inp.display}: Ray job failed: {type(e).__name__}: {e}", inp.display)
    if failure is not None:
        # The failed execution's actors (and their CPUs) are freed only when nothing refers to the
        # dataset any more: drop it (and the Ray exception's frames) now, so the next job can start.
        # `err` carries the Ray exception's traceback, whose frames hold the executor: drop it too.
        if err is not None:
            err.__traceback__ = None
            err.__context__ = err.__cause__ = None
        del ds, err
        gc.collect()
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise failure
    written = sorted(tmpdir.rglob("*.parquet")) if tmpdir.exists() else []
    final.parent.mkdir(parents=True, exist_ok=True)
    if not written:  # Ray writes no file for an empty dataset; the local job writes an empty one
        sink = _ParquetSink(outdir, key + ".parquet", schema, keep)
        sizes = sink.commit()
    elif len(written) == 1:
        _fsync_file(written[0])
        os.replace(written[0], final)
        fsync_dir(final.parent)
        sizes = {key + ".parquet": final.stat().st_size}
    else:  # not expected (min_rows_per_file is a hint): concatenate the parts in order
        sink = _ParquetSink(outdir, key + ".parquet", schema, keep)
        try:
            for p in sorted(written, key=lambda p: p.name):
                for rb in pq.ParquetFile(p).iter_batches(batch_size=65536):
                    sink.writer.write_batch(pa.RecordBatch.from_arrays(rb.columns, schema=schema))
            sizes = sink.commit()
        except BaseException:
            sink.abort()
            raise
    shutil.rmtree(tmpdir, ignore_errors=True)
    rows, null_rows, text_bytes, tokens = ray.get(tally.take.remote())
    md = pq.ParquetFile(final).metadata
    if md.num_rows != rows:  # the tally is statistics only, the file is the truth
        rows = md.num_rows
    manifest.record(key, {"input": inp.display, "input_size": inp.size, "input_mtime_ns": inp.mtime_ns,
                          "outputs": sizes, "rows": rows, "null_rows": null_rows, "text_bytes": text_bytes,
                          "tokens": tokens})
    result.files_written += 1
    result.rows += rows
    result.null_rows += null_rows
    result.text_bytes += text_bytes
    result.tokens += tokens


def run_cli_ray(a) -> int:
    """`arrowtok tokenize --engine ray`: the parsed arguments of `arrowtok.cli` in, exit status out."""
    res = tokenize_corpus_ray(a.inputs, a.output, column=a.column, encoding=a.encoding, keep=a.keep,
                              append_eot=a.append_eot, format=a.format, threads=a.threads, batch_rows=a.batch_rows,
                              batch_bytes=a.batch_bytes, errors=a.errors, resume=a.resume, overwrite=a.overwrite,
                              progress=a.progress, address=getattr(a, "address", None),
                              concurrency=getattr(a, "ray_actors", None))
    print(res.summary().replace("arrowtok tokenize:", "arrowtok tokenize (ray):", 1), flush=True)
    return 0
