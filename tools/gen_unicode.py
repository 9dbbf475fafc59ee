#!/usr/bin/env python3
"""Generate zig/unicode_tables.zig: per-code-point property bits for the pretokenizer.

Unicode version: **16.0.0**, pinned.

Why 16.0.0: the pretokenizer must split text exactly like tiktoken 0.14.0, whose Rust extension
(`tiktoken/_tiktoken*.so`) is built with fancy-regex 0.19.0 on top of regex-automata 0.4.18 and
regex-syntax 0.8.11 (the crate paths are visible with `strings` on the .so). regex-syntax 0.8.11
carries Unicode 16.0.0 tables. This was confirmed empirically on the installed wheel:
  * scripts new in 16.0 (Garay U+10D4A, Todhri U+105C0, Tulu-Tigalari U+11380, Kirat Rai U+16D43,
    Ol Onal U+1E5D0) are `\\p{L}` for tiktoken;
  * letters new in 17.0 (CJK Ext. J U+323B0, Sidetic U+10940, Beria Erfe U+16EA0) are not;
  * U+0295 LATIN LETTER PHARYNGEAL VOICED FRICATIVE is still `\\p{Ll}` (it became Lo in 17.0).
The Python `regex` package installed next to it (2026.11.19) implements Unicode 17.0 and has no
Age property, and CPython 3.11's `unicodedata` is 14.0, so neither can give 16.0 data directly.

Data source: tiktoken itself. tiktoken drops the text that its pattern does not match, so an
`Encoding` whose pattern is `\\p{Lu}+` and whose ranks are the 256 single bytes, applied to a
string of every code point (surrogates excluded), returns exactly the UTF-8 bytes of the code
points tiktoken's regex engine considers `\\p{Lu}`. This is exact by construction. The sentinel
checks below refuse to generate anything if the installed tiktoken is not the pinned engine.
tests/test_pretok.py re-derives every class the same way and compares it with the generated tables
over all code points.

Output layout: one byte of property bits per code point (bit names below), stored in a two-level
table with 256-entry blocks: `stage1[cp >> 8]` is a block number, `stage2[block * 256 + (cp & 255)]`
is the byte. Identical blocks are stored once. Both tables are `\\xNN` string literals, which the
Zig compiler parses much faster than array literals.

Usage: python tools/gen_unicode.py [--out zig/unicode_tables.zig] [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PINNED_UNICODE = "16.0.0"
PINNED_TIKTOKEN = "0.14.0"

# Bit assignment (one byte per code point). General categories are disjoint; White_Space code
# points are all Zs/Zl/Zp/Cc, so the WS bit never shares a byte with a GC bit.
BITS = [
    ("Lu", 0x01, r"\p{Lu}"),
    ("Ll", 0x02, r"\p{Ll}"),
    ("Lt", 0x04, r"\p{Lt}"),
    ("Lm", 0x08, r"\p{Lm}"),
    ("Lo", 0x10, r"\p{Lo}"),
    ("M", 0x20, r"\p{M}"),
    ("N", 0x40, r"\p{N}"),
    ("WS", 0x80, r"\s"),
]

MAX_CP = 0x110000
BLOCK_SHIFT = 8
BLOCK = 1 << BLOCK_SHIFT


def all_code_points_text() -> str:
    return "".join(chr(c) for c in range(MAX_CP) if not (0xD800 <= c < 0xE000))


def tiktoken_class_set(cls: str, text: str | None = None) -> set[int]:
    """Code points that tiktoken's regex engine puts in `cls` (a single-class regex)."""
    import tiktoken

    text = all_code_points_text() if text is None else text
    ranks = {bytes([i]): i for i in range(256)}
    enc = tiktoken.Encoding(name="probe", pat_str=f"(?:{cls})+", mergeable_ranks=ranks, special_tokens={})
    kept = bytes(enc.encode_ordinary(text)).decode("utf-8")
    return {ord(c) for c in kept}


def check_pinned_engine() -> None:
    import tiktoken

    if tiktoken.__version__ != PINNED_TIKTOKEN:
        sys.exit(f"gen_unicode: tiktoken {tiktoken.__version__} installed, pinned {PINNED_TIKTOKEN}")
    probe = "".join(map(chr, [0x10D4A, 0x105C0, 0x11380, 0x16D43, 0x1E5D0, 0x323B0, 0x10940, 0x16EA0]))
    letters = tiktoken_class_set(r"\p{L}", probe)
    new_in_16 = {0x10D4A, 0x105C0, 0x11380, 0x16D43, 0x1E5D0}
    new_in_17 = {0x323B0, 0x10940, 0x16EA0}
    if not new_in_16 <= letters or letters & new_in_17:
        sys.exit("gen_unicode: tiktoken's regex engine is not Unicode " + PINNED_UNICODE)
    if tiktoken_class_set(r"\p{Ll}", "\u0295") != {0x295}:
        sys.exit("gen_unicode: U+0295 is not Ll: not Unicode " + PINNED_UNICODE)


def build_props() -> bytearray:
    text = all_code_points_text()
    props = bytearray(MAX_CP)
    for name, bit, cls in BITS:
        for cp in tiktoken_class_set(cls, text):
            if props[cp] & ~0x80 and bit != 0x80:
                sys.exit(f"gen_unicode: U+{cp:04X} in two general categories ({name})")
            props[cp] |= bit
    return props


def two_level(props: bytearray) -> tuple[bytes, bytes]:
    blocks: dict[bytes, int] = {}
    stage1 = bytearray()
    stage2 = bytearray()
    for start in range(0, MAX_CP, BLOCK):
        blk = bytes(props[start : start + BLOCK])
        if blk not in blocks:
            blocks[blk] = len(blocks)
            stage2 += blk
        stage1.append(blocks[blk])  # fails loudly (ValueError) past 256 distinct blocks
    return bytes(stage1), bytes(stage2)


def zig_string(data: bytes, per_line: int = 256) -> str:
    """Zig string literal `"\\xNN..."`, split into `++`-joined lines of per_line bytes."""
    lines = []
    for i in range(0, len(data), per_line):
        lines.append('"' + "".join(f"\\x{b:02x}" for b in data[i : i + per_line]) + '"')
    return "\n    ++ ".join(lines)


def render(props: bytearray) -> str:
    stage1, stage2 = two_level(props)
    bit_decls = "\n".join(f"pub const {name}: u8 = 0x{bit:02x}; // {cls}" for name, bit, cls in BITS)
    counts = "\n".join(
        f"//!   {name:<3} {sum(1 for p in props if p & bit):>7}" for name, bit, _ in BITS
    )
    return f"""//! GENERATED by tools/gen_unicode.py; do not edit by hand.
//! Unicode {PINNED_UNICODE} property bits as seen by tiktoken {PINNED_TIKTOKEN}'s regex engine
//! (regex-syntax 0.8.11); see the generator's docstring for why and how this was verified.
//! Code points per bit:
{counts}
//! Lookup: `props(cp)`; two-level table, {BLOCK}-entry blocks, {len(stage2) // BLOCK} distinct blocks,
//! {len(stage1) + len(stage2)} bytes in all.

pub const unicode_version = "{PINNED_UNICODE}";

{bit_decls}

pub const block_shift = {BLOCK_SHIFT};
pub const block_mask: u21 = {BLOCK - 1};
pub const block_count = {len(stage2) // BLOCK};

/// Block number of each {BLOCK}-code-point block (index: cp >> block_shift).
pub const stage1: *const [{len(stage1)}]u8 = {zig_string(stage1)};

/// The distinct blocks, {BLOCK} property bytes each.
pub const stage2: *const [{len(stage2)}]u8 = {zig_string(stage2)};

/// Property bits of code point `cp` (cp <= 0x10FFFF).
pub inline fn props(cp: u21) u8 {{
    const blk: u32 = stage1[cp >> block_shift];
    return stage2[(blk << block_shift) | (cp & block_mask)];
}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parent.parent
    ap.add_argument("--out", type=Path, default=root / "zig" / "unicode_tables.zig")
    ap.add_argument("--check", action="store_true", help="fail if --out differs from a fresh generation")
    args = ap.parse_args()
    check_pinned_engine()
    src = render(build_props())
    if args.check:
        if args.out.read_text() != src:
            sys.exit(f"{args.out} is stale; rerun tools/gen_unicode.py")
        print(f"{args.out} is up to date")
        return
    args.out.write_text(src)
    print(f"wrote {args.out} ({len(src)} chars)")


if __name__ == "__main__":
    main()
