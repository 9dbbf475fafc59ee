"""The `arrowtok` command line (also `python -m arrowtok`).

    arrowtok tokenize INPUT... --output DIR [--column text] [--encoding cl100k_base] [--keep id,lang]
                      [--append-eot] [--format parquet|bin] [--threads N] [--batch-rows N]
                      [--batch-bytes SIZE] [--errors strict|replace] [--no-resume] [--overwrite]
                      [--engine local|ray] [--address ADDR]
    arrowtok stats INPUT... [--column text | --tokens-column tokens] [--encoding NAME] [--by COL]
                   [--json FILE] [--plot FILE.png] [--top N]

Exit status: 0 success, 1 bad input or failed job (message on stderr names the file and row),
2 bad command line, 130 interrupted.
"""
from __future__ import annotations

import argparse
import re
import sys

from . import __version__
from .encoding import ArrowtokError, list_encoding_names

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 2**10, "ki": 2**10, "m": 1e6, "mb": 1e6, "mib": 2**20,
          "mi": 2**20, "g": 1e9, "gb": 1e9, "gib": 2**30, "gi": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40, "ti": 2**40}


def _size(text: str) -> int:
    m = _SIZE.match(text)
    if not m or (m.group(2) or "").lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 16MiB, 64MB, 1000000)")
    n = int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1 byte")
    return n


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def build_parser() -> argparse.ArgumentParser:
    from .pipeline.job import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS

    p = argparse.ArgumentParser(prog="arrowtok", description="tiktoken-exact tokenization of Arrow/parquet corpora")
    p.add_argument("--version", action="version", version=f"arrowtok {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("tokenize", help="tokenize a corpus into parquet or .bin/.idx token files",
                       description="Tokenize the text column of parquet / JSON-lines files (paths, folders, globs, "
                                   "URIs) into one output file per input, resumably.")
    t.add_argument("inputs", nargs="+", metavar="INPUT", help="parquet or .jsonl files, folders, globs, URIs")
    t.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder (local)")
    t.add_argument("--column", default="text", help="text column (default: text)")
    t.add_argument("--encoding", default="cl100k_base", metavar="NAME|tokenizer.json",
                   help=f"{', '.join(list_encoding_names())}, or a Hugging Face tokenizer.json (file or folder)")
    t.add_argument("--keep", default="", metavar="COLS", help="comma-separated input columns to copy to the output")
    t.add_argument("--append-eot", action="store_true", help="end every document with the <|endoftext|> token")
    t.add_argument("--format", default="parquet", choices=["parquet", "bin"],
                   help="parquet (tokens + n_tokens columns) or bin (Megatron/nanoGPT .bin + .idx)")
    t.add_argument("--threads", type=_positive, default=None, help="encoder threads (default: all cores)")
    t.add_argument("--batch-rows", type=_positive, default=DEFAULT_BATCH_ROWS, help=f"rows per batch (default {DEFAULT_BATCH_ROWS})")
    t.add_argument("--batch-bytes", type=_size, default=DEFAULT_BATCH_BYTES,
                   help=f"text bytes per batch, e.g. 16MiB (default {DEFAULT_BATCH_BYTES >> 20}MiB)")
    t.add_argument("--errors", default="strict", choices=["strict", "replace"],
                   help="invalid UTF-8: strict fails naming file and row; replace substitutes U+FFFD")
    t.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip inputs the manifest says are done (default: on)")
    t.add_argument("--overwrite", action="store_true",
                   help="redo everything even if the output folder holds output made with other options")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress line (default: only on a terminal outside CI)")
    t.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local (this machine) or ray (Ray Data on a cluster; pip install 'arrowtok[ray]')")
    t.add_argument("--address", default=None, metavar="ADDR",
                   help="--engine ray: the Ray cluster (e.g. auto, ray://head:10001; default: RAY_ADDRESS or a local one)")

    s = sub.add_parser("stats", help="token-count statistics of a corpus",
                       description="Documents, bytes, tokens, bytes/token and tokens per document (mean, p50, p90, "
                                   "p99, max), optionally per group.")
    s.add_argument("inputs", nargs="+", metavar="INPUT")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--column", default=None, help="text column to tokenize on the fly (default: text)")
    src.add_argument("--tokens-column", default=None, metavar="COL", help="a list<int32> column of token ids")
    s.add_argument("--encoding", default=None, metavar="NAME|tokenizer.json",
                   help="default: the one recorded by arrowtok tokenize, else cl100k_base")
    s.add_argument("--by", default=None, metavar="COL", help="group by this column")
    s.add_argument("--json", default=None, metavar="FILE", help="also write the statistics as JSON")
    s.add_argument("--plot", default=None, metavar="FILE.png", help="save a histogram of tokens per document (matplotlib)")
    s.add_argument("--top", type=_positive, default=30, help="groups shown in the table (default 30; JSON has all)")
    s.add_argument("--threads", type=_positive, default=None)
    s.add_argument("--errors", default="strict", choices=["strict", "replace"])
    return p


def _tokenize(a) -> int:
    if a.engine == "ray":
        try:
            from .ray import run_cli_ray
        except ImportError as e:
            raise ArrowtokError(str(e)) from None
        return run_cli_ray(a)
    if a.address:
        raise ArrowtokError("--address needs --engine ray")
    from .pipeline.job import tokenize_corpus

    res = tokenize_corpus(a.inputs, a.output, column=a.column, encoding=a.encoding, keep=a.keep,
                          append_eot=a.append_eot, format=a.format, threads=a.threads, batch_rows=a.batch_rows,
                          batch_bytes=a.batch_bytes, errors=a.errors, resume=a.resume, overwrite=a.overwrite,
                          progress=a.progress)
    print(res.summary(), flush=True)
    return 0


def _stats(a) -> int:
    from .pipeline.stats import corpus_stats, plot_histogram

    if a.plot:
        try:
            import matplotlib  # noqa: F401  (fail before the work, not after)
        except ImportError:
            print("arrowtok stats: error: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return 1
    st = corpus_stats(a.inputs, column=a.column, tokens_column=a.tokens_column, encoding=a.encoding, by=a.by,
                      threads=a.threads, errors=a.errors)
    print(f"{', '.join(a.inputs)}: {st.source} column {st.column!r}, {st.encoding}")
    print(st.table(a.top))
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            f.write(st.to_json() + "\n")
        print(f"wrote {a.json}")
    if a.plot:
        plot_histogram(st, a.plot)
        print(f"wrote {a.plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _tokenize(args) if args.command == "tokenize" else _stats(args)
    except KeyboardInterrupt:
        print(f"\narrowtok {args.command}: interrupted (finished files are kept; rerun to resume)", file=sys.stderr)
        return 130
    except (ArrowtokError, ValueError, TypeError, OSError) as e:
        print(f"arrowtok {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
