"""arrowtok: exact tiktoken-compatible BPE over Arrow columns, with a Zig core.

    import arrowtok
    enc = arrowtok.get_encoding("cl100k_base")
    enc.encode("hello world")                 # tiktoken's API
    enc.encode_arrow(pa_string_column)        # list<int32> column, threads inside Zig
    enc.count_tokens_arrow(column)            # uint32 counts, ids never materialised
"""
from .encoding import ArrowtokError, Encoding, get_encoding, list_encoding_names

__all__ = ["ArrowtokError", "Encoding", "get_encoding", "list_encoding_names"]
__version__ = "0.1.0"
