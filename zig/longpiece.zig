//! BPE of long pieces (hundreds of bytes to many MB) by backtracking over token boundaries,
//! exactly equal to tiktoken's merge loop, in time linear in the piece length.
//!
//! Idea (after the `bpe` crate of github/rust-gems; this is a separate implementation): BPE's
//! output for a piece is the only token sequence t1..tk that spells the piece and in which every
//! adjacent pair is *compatible*: BPE(bytes(ti) ++ bytes(ti+1)) == [ti, ti+1]. (If a merge ever
//! crossed the boundary between ti and ti+1 in the whole-piece run, the first such merge would
//! also be the lowest pair of the two-token run at that moment, and that run never crosses.)
//! So: take the longest token that starts at the current position, keep it if it is compatible
//! with the previous token, else try the next shorter token that is a prefix of it; when none
//! fits, the position is a dead end (mark it: any compatible path reaches a position with the
//! same tokens, namely the BPE of the text before it, so a dead end stays dead) and the previous
//! token is replaced by its next shorter prefix. Each position is explored once and tries each
//! token that starts there at most once: O(n * tokens per position * check cost).
//!
//! Compatibility without running BPE: each token's own BPE run ends with one merge (left, right)
//! (its split). Walking the two split trees down their facing spines replays, newest first, the
//! states the boundary went through; the boundary pair (x, y) merges first iff its rank is below
//! the rank of the merge that ended that state: the one that made x's parent (ties go to that
//! merge: it sits to the left) or y's parent (ties go to the boundary pair). The newer of the two
//! parents is the one of higher rank, which holds when every token's own merge run applies its
//! merges in non-decreasing rank order ("monotone"; then the two-token run is a sorted
//! interleaving, and the last merge of a state's window is its largest). Load checks that every
//! token is monotone; a vocabulary with a non-monotone token keeps the heap merge. Tokens whose
//! own bytes do not BPE to themselves never occur inside a merge run, so they are left out of
//! the prefix search (cl100k_base and o200k_base have neither kind). The first state (the two
//! bytes at the boundary, ended by the lower of the two lowest spine merges) is checked first,
//! from the 64K byte-pair table: most failing checks fail there.
//!
//! Tables (per vocabulary, built at load by `build`; empty = the heap merge is used):
//! - `info`: one 24-byte record per id (split, next shorter usable prefix, length, edge bytes,
//!   lowest spine merges). Splits come from the pair table's candidates for each token,
//!   shortest tokens first (the one candidate compatible below the top pair), checked against a
//!   merge run per token by `at_debug_check_long` in the tests.
//! - the trie of every token prefix, breadth-first (8 B per node + 1 label byte), built from the
//!   tokens in lexicographic order; `start2` (the node of every 2-byte prefix) and `has3` (a bit
//!   per 3-byte prefix) answer the first two steps of every walk from L1/L2.
//! - `pair_filter`: a 512 KB blocked Bloom filter of the pair table's keys.
//! - the tables that say where no token can cross (`noTokenCrosses`: four 8 KiB bitmaps and a
//!   512 KiB Bloom filter) and `char3` (512 KiB), for vocab.zig's `mergeCut`, which cuts a long
//!   piece there before this search sees it (session 34: random CJK).
//! Memory: cl100k_base 7.1 MB, o200k_base 11.4 MB, plus 1.06 MB for the cut tables (the
//! vocabulary's other tables: ~7.4 and ~14.5 MB). Load (at_vocab_load_tiktoken alone, median of
//! interleaved runs): cl100k_base 37 -> 55 ms, o200k_base 90 -> 130 ms.
//! Per call (Scratch): two bits per position (dead end, guess) and an 8K-entry table (answers,
//! guesses: 64 KB); the token stack is the caller's output buffer. Worst case
//! O(n * tokens per position * check depth); past one back-up per byte the piece goes to the
//! heap merge instead. 10 MB takes 9.6-10.4x the time of 1 MB ('a', spaces, random letters,
//! CJK; tested for 'a').
//!
//! Guess mode: in a run such as 1 MB of '-', BPE gives 64-byte tokens but the longest match is
//! 96 or 112 bytes, and every longer candidate that is compatible with the token before it is
//! pushed and then undone from a dead end (one back-up per push). When back-ups pass half the
//! pushes, the search first tries the token that last followed the previous one (kept if it
//! was followed in turn, forgotten when undone); a guess that is undone makes the walk's
//! candidates follow, so the search stays complete. The plain loop and the guessing loop are
//! two copies of one function: the plain one only pays in its back-up path.
//!
//! Performance notes. 1 thread, this 2-core machine shared with other work, so every figure is
//! an A/B ratio from one process that alternates two builds of the library, on 1 MB pieces
//! (random letters, random CJK, others as named), cl100k / o200k:
//! - Before (binary heap of (rank, pos) + linked list, vocab.mergeHeap): 'a' 115/118 ms,
//!   spaces 145/146, newlines 152/145, random letters 203/218, CJK 61/89, "ab"* 87/122.
//! - First backtracking version (hashed trie of (node, byte) edges, split table, dead-end
//!   bits): 'a' 6/7, spaces 5.5/5.4, newlines 4/4, random letters 53/65, CJK 23/29. Exact.
//! - One 16-byte record per token instead of three arrays, plus start2: random 0.88x, CJK
//!   0.73-0.82x.
//! - The Bloom filter in front of pair lookups (most lookups of a check are misses): random
//!   0.57x, CJK 0.47x ("ab"* 1.3x: its pairs exist, so they pay the filter too).
//! - An answer table per call (4K entries): "ab"* 0.55x, 'a' 0.73x, random/CJK +-5%; 64K entries
//!   no better, 16K 1.07-1.14x slower; later used only for pairs of 8+ bytes (short pairs have
//!   short descents): random 0.93-0.95x, CJK 0.8-0.9x, "abab" 1.2-1.3x (still ~70 MB/s).
//! - First state checked first, from the byte-pair table: random 0.87-0.90x.
//! - has3: random 0.82-0.87x, CJK 0.69-0.78x (most walks over random text end at byte 3).
//! - Breadth-first packed trie (children contiguous, a 16-byte vector compare of their labels)
//!   instead of the hashed edge table: random 0.77x, CJK 0.86x, half the memory.
//! - The walk returns the token's length, and prefetches each token's record: 2-8%, 'a' 0.55x.
//! - Did not pay: prefetching the next walk's third-byte edge during the check (+-0); running
//!   the next walk before the check so their misses overlap (1.4x slower: the walks of failed
//!   candidates are wasted); 16-slot edge windows per node in the hashed trie (+-0 / 0.91x,
//!   superseded); switching the answer table off when its hit rate is low (+-4%, "ab"* 1.27x);
//!   carrying the first-state fields of every token on the walk's path in 16-byte trie nodes
//!   (+-2% random, CJK 1.07-1.12x: bigger nodes); a has3 check before the Bloom filter inside
//!   the descent (+-3%); a Bloom filter of 4-byte prefixes to end walks (+-0); the thread's pair
//!   cache first and the Bloom filter only on its misses (1.2-1.6x slower); prefetching the
//!   next shorter candidate's record (+-0).
//! - Guess mode: 300 KB of '-' 76/150 ms -> 0.5-2 ms; the same code in a single loop cost
//!   random letters and CJK 5-18% (bookkeeping on every push and failure), two copies +-1%.
//!   A sweep of 300 run-heavy 200 KB inputs (runs of punctuation, spaces, newlines, letters,
//!   'é', random short alphabets): median 10 ms/MB, worst 37/51 ms/MB (1 MB of English with
//!   its piece cache: ~12 ms through encode_ordinary).
//! - Load: splits by a merge run per token cost 45 ms on o200k; from pair-table candidates,
//!   ~22 ms. The trie through a hash table and a breadth-first renumbering cost ~30-38 ms on
//!   o200k; from the lexicographic order, ~14 ms.
//! - Threshold (`min_len`): measured against the scan merge, uncached, below. Multilingual
//!   column (sample_docs, count_tokens_arrow, 1 thread): cold 45-48 / 34-38 MB/s before and
//!   after (cl100k / o200k), warm 173-188 both: the piece caches hide it.
//! - bench/bench.py pathological section (encode_ordinary, time / 1 MB English at ~10.5 ms),
//!   cl100k / o200k: 'a' 11x -> 0.45x, spaces 13x -> 0.5x, newlines 13x -> 0.4x, random-letter
//!   word 19x -> 2.85x / 3.3x, CJK 5.5x / 7.7x -> 1.7x. About 10 ms of a random-letter run is
//!   Python building the 520K-int list (English: 230K).
//! - descend's choice of spine (x's or y's parent) by selects instead of a branch (callgrind:
//!   0.7M of its 1.6M mispredictions on 300 KB of random letters are that branch): random
//!   letters 0.93x, CJK 0.94-0.96x (bench/ab_builds.py --corpus pathological:random); the
//!   branch lets the next records' loads start early, the selects wait for them.
//! - Smaller pair Bloom filters (256 KB / 128 KB instead of 512 KB, to stay in L2; more false
//!   positives): random letters cl100k 0.93x / 0.93x, o200k 1.01x / 1.02x. Counted on 1 MB of
//!   random letters, cl100k, per output token: 1.3 pushes, 1.85 checks (28% fail the first
//!   state), 2.25 descent steps, 0.18 pair probes past the filter, 0.3 dead ends.
//! - Where random letters still go (perf, o200k): Bloom filter and pair-table misses ~20%,
//!   record loads of candidates ~10%, the walk ~20%, the rest control flow whose branches
//!   (keep / shorter / back up) are random on random text.
//! - Session 9, random letters (1 MB, cl100k, at_debug_encode_piece, medians of 11-15): the
//!   whole search 17.4-18.3 ms (540k tokens); the greedy walk alone (longest match at each
//!   position, no check) 4.8 ms; walk + the first state of each greedy pair 5.4 ms; walk + the
//!   whole check 10.7-11.3 ms. So the check past its first state costs ~12 ns a pair, and a
//!   filter that answers "no pair" for free (wrong ids, timing only) takes 4.8 ms off the
//!   search: Bloom filter and pair-table probes are a quarter of it, the walk another quarter.
//!   Not kept: the descent's spines inline (each token's first 4 right and left spine ids in a
//!   32-byte record, prefetched with its info, so the descent loads no child records): 1.10-
//!   1.13x slower (the spine children are short, hot tokens whose records are in cache anyway;
//!   the extra line per candidate is not).
//! - Session 23: the longest match at *every* position up front (so that the search could read
//!   its candidates from an array and prefetch their records ahead) costs 8.9 ms (cl100k) /
//!   10.5 ms (o200k) per MB of random letters, against 23.6 / 31.3 ms for the whole search on the
//!   same (busy) machine and ~5 ms for the walks the search does make: more than it could save.
//!   Not built.
//! - Session 24, not kept: tiktoken's merge loop over 64-byte windows overlapping by 16 bytes,
//!   each window's result joined to the next at a common boundary whose two tokens are
//!   compatible (longpar.zig's argument, so exact: identical ids on 1 MB of random letters,
//!   random CJK, DNA and base64, both encodings; 8-byte overlaps often found no join on random
//!   letters and DNA). The window's ranks in a 64-lane vector (minimum by a reduce, the leftmost
//!   by a compare mask), its parts as a bit mask of their starts. Per 1 MB (at_debug_encode_piece,
//!   interleaved with this search), cl100k / o200k: random letters 24.3 / 29.6 ms against
//!   23.1 / 30.9; CJK 11.4 / 19.6 against 8.1 / 9.3; DNA 22.5 / 23.2 against 16.1 / 16.9; base64
//!   16.2 / 19.9 against 15.9 / 19.7. A first version with the ranks in memory (reloaded as a
//!   vector after scalar stores) took 41 ms on random letters. Two windows (the piece's two
//!   halves) merged in one interleaved loop: +-0; each window merged twice (the second run with
//!   every lookup in L1) cost nearly double: the loop is bound by its own instructions (~145
//!   cycles a merge: the reduce, the lane selects, the 128-bit mask shifts), not by the misses.
//! - Session 24, not kept: two searches over the piece's two halves (4 KiB overlap, joined as in
//!   longpar.zig) on one thread, each loop stepped 1 / 2 / 4 / 16 iterations at a time in turn,
//!   so that one search's misses could overlap the other's work: exact, and slower at every
//!   step count (random letters cl100k 39.9 / 37.0 / 33.9 / 30.8 ms against 24.7 for one
//!   search; CJK 15.3 / 12.7 / 11.4 / 10.1 against 8.0; DNA and base64 alike): each hand-over
//!   spills and reloads the search's state, and two searches' tables share the core's caches.
//! - Session 24, counted (an instrumented build, 1 MB of random letters, per output token,
//!   cl100k / o200k): output tokens 26 / 23% one byte, 63 / 63% two, 10 / 13% three; checks
//!   1.85 / 1.97, of which 0.53 / 0.59 fail in the first state, 0.02 / 0.06 reach the top pair's
//!   table, 0.04 / 0.05 fail in the descent; descent steps 0.99 / 1.19 (0.18 / 0.29 past the
//!   filter); walks = pushes 1.29 / 1.33; dead ends 0.29 / 0.33; shorter candidates 0.57 / 0.66.
//!   75% of checks are between two tokens of at most two bytes each. So a perfect choice of
//!   candidate would save at most ~0.3 walks and ~0.85 checks a token (about 1.5x); the 3x-of-
//!   English target (~2.2x from here) needs cheaper walks and checks as well.
//!   1 MB of random CJK, counted the same way: 1.00 checks and 1.00 walks a token (the longest
//!   match is nearly always right), output 74% / 50% single bytes. Not kept: a check of two
//!   single bytes answered by the first state alone (no top-pair probe): CJK cl100k 1.064x /
//!   1.085x, o200k 0.98x / 1.015x, random letters 0.98x / 0.97x (bench/ab_builds.py, 15-21 rounds).
//! - Session 24, kept: the top pair of a check skipped when the token before was the walk's
//!   longest match where it starts (then bytes(a) ++ bytes(b), which starts there too, is no
//!   token; a flag for the token on top of the stack, cleared by a back-up). In-process A/B
//!   (bench/ab_builds.py, 21-31 rounds, against the build before): 1 MB of CJK 1.067x (cl100k) /
//!   1.088x (o200k), random letters o200k 1.062x, cl100k 0.971x, 1.000x, 0.926x over three runs
//!   (noise around 1); English and the 20k documents 0.997x / 1.005x. A first version kept the
//!   flag of every stacked token in a bit set (the lookup skipped after back-ups too): CJK
//!   1.00-1.07x, random letters cl100k 0.98x (the bit set's upkeep on every push).
//!   Then the descent's states (a, y) too (a ++ y, y a prefix of b, starts where a does): against
//!   the step before, CJK 1.075x / 1.047x (cl100k, two runs), 1.021x / 1.020x (o200k), random
//!   letters 1.021x / 1.025x (cl100k), 1.028x / 1.012x (o200k). The bench's pathological section
//!   on the first step alone: CJK 2.50x / 2.65x English (cl100k / o200k; 2.78x / 3.09x in the full
//!   run before it), random letters 6.8x / 8.2x.
//!   Not kept: the same for a shorter candidate (the walk's longest length at a's start kept
//!   with it, a lookup skipped where a ++ y is longer): 0.94-1.03x against that, noise.
//! - Session 25, not kept: answers for pairs of short tokens (one or two bytes: 4,086 / 4,909 of
//!   them, numbered in byte order) in a dense table of two bits a pair (known, compatible),
//!   filled as checks met the pairs and shared by the threads (atomic OR), mapped (4.2 / 6.0 MB,
//!   touched only where text goes; 75% of random-letter checks are such pairs). Random letters
//!   0.93-1.01x (cl100k, three runs), 0.96x (o200k), CJK cl100k 1.05x; at_debug_encode_piece,
//!   1 MB of random letters: 25.1-26.0 ms against 23.9. perf: the table's load (13.6% of the
//!   samples) stalls as long as the first state and the filter did: the answers the check
//!   computes were not its cost; the search's own control flow and loads are.
//! - Session 25, not kept: the search replaced by the last token of every prefix (a forward
//!   pass: last[i] is the one token t ending at i that is compatible with last[i - len(t)], by
//!   the uniqueness argument above; the tokens starting at each position pushed to their ends;
//!   the output read back from last[n]). Exact on 1 MB of random letters (identical ids, both
//!   encodings), and branch-poor, but it checks every token that starts at every position (2.1
//!   checks a byte, 3.9 a token, against 1.85 a token here) and walks the trie at every
//!   position (~9 ms a MB on its own): 39.4 / 51.1 ms against 26.1 / 32.2 (cl100k / o200k);
//!   with the dense pair table above 31.2 / 43.4 against 21.9 / 29.1. Its chain (last[p] ->
//!   the pair's answer -> last[p + 1]) costs a load's latency a byte even when every answer
//!   is in a table, so it cannot reach the ~10 ms a MB that 3x English asks for either.
//!   Then a prototype built for speed (a scratch file, not kept; ids identical to this search on
//!   1 MB of random letters, both encodings): candidates from tables (a 64K table of two-byte
//!   tokens, a hash of three-byte tokens, a filter of four-byte prefixes before the trie), the
//!   answers for pairs of tokens of up to three bytes (16K tokens in cl100k) in a dense two-bit
//!   table filled as met and kept across calls, numbered by id: 50.1 / 77.1 ms against 24.9 /
//!   32.9 (cl100k / o200k); numbered in byte order (the letters' rows and columns together):
//!   33.4 / 47.9 against 23.7 / 30.4, bound by the chain through the table's L3-resident
//!   answers. Eight segments stepped in turn on one thread, so that the chains overlap (each
//!   started 2 KiB early from scratch and joined to the one before where the two agree on
//!   max_token_len consecutive positions, after which they agree to the end): 47.4 / 60.1; with
//!   the next position's answers prefetched at the end of each step: 45.3 / 44.9 against 30.0 /
//!   29.8 (a busier moment). perf then: the candidate tables (three-byte hash, four-byte filter:
//!   512 KB each, missing L2) ~20%, general checks for pairs with a token of four or more bytes
//!   8%, and the eight steps' branches: the core's window holds two or three of them, and each
//!   misprediction drops the loads of the steps behind it. Candidates from the trie instead of
//!   the tables: 45.1 / 51.2 against 24.3 / 29.4. A forward pass would need branch-free steps
//!   (all candidates looked up, dummy answers for missing ones) and L2-resident candidate and
//!   answer tables to reach the ~30 cycles a byte that 3x English allows; it is at ~135.
const std = @import("std");
const vocab = @import("vocab.zig");
const Vocab = vocab.Vocab;
const no_rank = vocab.no_rank;

/// Pieces of at least this many bytes take the backtracking encoder (when the vocabulary has its
/// tables); shorter ones keep vocab.zig's scan merge. Session 22, the corpus stream's first pass
/// (bench/ab_stream.py, where new pieces are merged): 17 -> 0.989x, 9 -> 0.896x of 33. Measured, uncached, pieces cut from
/// concatenated English words / Chinese text / random letters, time vs the scan merge:
/// 16 B: 0.96-1.10 / 0.41 / 0.65-0.72; 24 B: 0.79-0.92 / 0.33 / 0.56-0.63; 32 B: 0.71-0.85 /
/// 0.28 / 0.53-0.58; 96 B: 0.55-0.64 / 0.19 / 0.41-0.44 (cl100k-o200k).
pub const min_len = 33;

const none: u32 = std.math.maxInt(u32);
const empty: u64 = std.math.maxInt(u64);

/// What the encoder needs of one token, in one 24-byte record (one cache miss per token).
pub const Info = extern struct {
    /// The last merge of BPE over the token's own bytes (left = none: a single byte, or an
    /// unusable token, which the encoder never meets).
    left: u32,
    right: u32,
    /// The longest usable token that is a proper prefix of this one, or none.
    shorter: u32,
    len: u16,
    first: u8,
    last: u8,
    /// The lowest merges on the left and right spines of the split tree (the ones that took in
    /// the first and the last byte), or none for a single byte: they end the boundary's first
    /// state, the one that fails most checks.
    low_left: u32,
    low_right: u32,
};

/// A trie node. Breadth-first numbering puts each node's children next to each other, in byte
/// order: they are nodes kids .. (next node's kids - 1). tok: the usable token whose bytes are
/// this node's prefix, or none.
pub const Node = extern struct { kids: u32, tok: u32 };

pub const Tables = struct {
    info: []Info = &.{},
    /// start2[b0 << 8 | b1]: the trie node of the two bytes, or none (saves the first probe).
    start2: []u32 = &.{},
    /// Bit b0 << 16 | b1 << 8 | b2: the three bytes begin a token. Most walks over random
    /// text end at the third byte; this answers them from 32 bytes per two-byte prefix
    /// instead of a probe of the (cache-missing) trie table.
    has3: []u64 = &.{},
    /// The trie of every token prefix in breadth-first order (see Node); labels[k]: the last
    /// byte of node k's prefix, so a node's children's bytes are contiguous (padded by 16).
    nodes: []Node = &.{},
    labels: []u8 = &.{},
    /// A blocked Bloom filter over the pair table's keys (2 bits in one word): most pair
    /// lookups of the compatibility check are misses, and this answers them from L2.
    pair_filter: []u64 = &.{},
    filter_shift: u6 = 63,
    /// Every token's own bytes BPE to that token (cl100k_base, o200k_base): a piece that is a
    /// whole token comes out of the merge as that token, with no lookup of the whole piece.
    all_usable: bool = false,
    /// Where no token can cross (`noTokenCrosses`): bit b0 | b1 << 8 of `tok2` is set when the
    /// two bytes are a token; `cross_filter` is a blocked Bloom filter (two bits in one word) of
    /// every token's first three bytes, last four bytes and five consecutive bytes (three
    /// kinds of key; a false positive only keeps a cut out).
    tok2: []u64 = &.{},
    /// Bitmaps over two bytes b0 | b1 << 8 (1024 words each): some token of two or more
    /// (`pre2`), of three or more (`pre2of3`) bytes begins with them.
    pre2: []u64 = &.{},
    pre2of3: []u64 = &.{},
    /// A bitmap over the three-byte sequences E0..EF 80..BF 80..BF (their 16 payload bits):
    /// some token holds the sequence with a byte after it. Where the three bytes before a
    /// position are such a sequence and its bit is clear, no token that starts three or more
    /// bytes back reaches past the position (the common answer between CJK ideographs, from L1).
    followed: []u64 = &.{},
    cross_filter: []u64 = &.{},
    /// BPE of every three-byte sequence E0..EF 80..BF 80..BF (every three-byte code point), at
    /// its 16 payload bits, packed as a short-table answer (`vocab.unpack`): built by vocab.zig
    /// where `all_usable`, for the parts of one code point that cut pieces of CJK text leave.
    char3: []u64 = &.{},

    pub fn ready(t: *const Tables) bool {
        return t.nodes.len != 0;
    }

    pub fn deinit(t: *Tables, gpa: std.mem.Allocator) void {
        gpa.free(t.info);
        gpa.free(t.start2);
        gpa.free(t.has3);
        gpa.free(t.pair_filter);
        gpa.free(t.nodes);
        gpa.free(t.labels);
        gpa.free(t.tok2);
        gpa.free(t.cross_filter);
        gpa.free(t.pre2);
        gpa.free(t.pre2of3);
        gpa.free(t.followed);
        gpa.free(t.char3);
        t.* = .{};
    }

    /// A `cross_filter` key: up to five bytes (little-endian in `bytes`) and their kind.
    inline fn crossBits(kind: u64, bytes: u64) struct { usize, u64 } {
        const h = (bytes | kind << 56) *% 0x9E3779B97F4A7C15;
        const bits = (@as(u64, 1) << @intCast((h >> 20) & 63)) | (@as(u64, 1) << @intCast((h >> 26) & 63));
        return .{ @intCast(h >> (64 - cross_words_log2)), bits };
    }

    fn addCross(t: *Tables, kind: u64, b: []const u8) void {
        var k: u64 = 0;
        for (b, 0..) |c, i| k |= @as(u64, c) << @intCast(8 * i);
        const wb = crossBits(kind, k);
        t.cross_filter[wb[0]] |= wb[1];
    }

    inline fn bit(words: []const u64, k: u64) bool {
        return words[@intCast(k >> 6)] >> @intCast(k & 63) & 1 != 0;
    }

    inline fn mayCross(t: *const Tables, kind: u64, bytes: u64) bool {
        const wb = crossBits(kind, bytes);
        return t.cross_filter[wb[0]] & wb[1] == wb[1];
    }

    /// True when no token of the vocabulary occurs in s across position p (0 < p < s.len):
    /// then no merge of BPE over s ever joins s[p - 1] and s[p] (every symbol of a merge run is
    /// a token), and BPE(s) = BPE(s[0..p]) ++ BPE(s[p..]). A token across p starts at p - 1 (it
    /// is s[p - 1..p + 1], or begins with s[p - 1..p + 2]), at p - 2 (it begins with
    /// s[p - 2..p + 1]) or before (it ends with s[p - 3..p + 1], or holds s[p - 3..p + 2]).
    /// Conservative: a false answer may be wrong (a filter's false positive), a true one is not.
    /// On random CJK ideographs 99.8% of the boundaries between two of them are found (cl100k
    /// and o200k; checked against the vocabularies, without the filters' false positives), where
    /// a filter of every token's three consecutive bytes instead found 98% / 79%.
    pub inline fn noTokenCrosses(t: *const Tables, s: []const u8, p: usize) bool {
        const b1: u64 = s[p - 1];
        const b2: u64 = s[p];
        const k2 = b1 | b2 << 8;
        if (bit(t.tok2, k2)) return false;
        const has_next = p + 2 <= s.len;
        const b3: u64 = if (has_next) s[p + 1] else 0;
        if (has_next and bit(t.pre2, k2) and t.mayCross(cross_pre3, k2 | b3 << 16)) return false;
        if (p < 2) return true;
        const b0: u64 = s[p - 2];
        if (bit(t.pre2of3, b0 | b1 << 8) and t.mayCross(cross_pre3, b0 | k2 << 8)) return false;
        if (p < 3) return true;
        const a: u64 = s[p - 3];
        if (a & 0xF0 == 0xE0 and b0 & 0xC0 == 0x80 and b1 & 0xC0 == 0x80 and
            !bit(t.followed, (a & 0x0F) << 12 | (b0 & 0x3F) << 6 | (b1 & 0x3F))) return true;
        const four = a | b0 << 8 | k2 << 16;
        if (t.mayCross(cross_suf4, four)) return false;
        if (has_next and t.mayCross(cross_sub5, four | b3 << 32)) return false;
        return true;
    }

    /// The child of node u along byte c, or none: a 16-byte vector compare over the sorted
    /// bytes of u's children (one or two cache lines; the hot part of the trie stays small).
    inline fn child(t: *const Tables, u: u32, c: u8) u32 {
        const lo: usize = t.nodes[u].kids;
        const hi: usize = t.nodes[u + 1].kids;
        var j = lo;
        while (j < hi) : (j += 16) {
            const chunk: @Vector(16, u8) = t.labels[j..][0..16].*;
            const hits: u16 = @bitCast(chunk == @as(@Vector(16, u8), @splat(c)));
            if (hits != 0) {
                const k = j + @ctz(hits);
                return if (k < hi) @intCast(k) else none;
            }
        }
        return none;
    }

    inline fn filterBits(t: *const Tables, key: u64) struct { usize, u64 } {
        const h = key *% 0xD6E8FEB86659FD93;
        const bits = (@as(u64, 1) << @intCast((h >> 20) & 63)) | (@as(u64, 1) << @intCast((h >> 26) & 63));
        return .{ @intCast(h >> t.filter_shift), bits };
    }

    /// False: (a, b) is surely not in the pair table.
    pub inline fn mayPair(t: *const Tables, a: u32, b: u32) bool {
        const wb = t.filterBits((@as(u64, a) << 20) | b);
        return t.pair_filter[wb[0]] & wb[1] == wb[1];
    }
};

/// Builds `v.long` for a tiktoken vocabulary (pair table present, rank == id). Leaves it empty
/// (long pieces keep the heap merge) when a token's own merge run is not monotone or the trie
/// would not fit 24-bit node numbers.
pub fn build(v: *Vocab) error{OutOfMemory}!void {
    const gpa = v.gpa;
    const n_ids = v.n_ids;
    if (v.pair_slots.len == 0 or v.merge_result.len != 0) return;
    if (v.max_token_len > std.math.maxInt(u16)) return;
    var t: Tables = .{};
    errdefer t.deinit(gpa);
    t.info = try gpa.alloc(Info, n_ids);
    for (t.info, 0..) |*e, id| {
        const tb = v.tokenBytes(@intCast(id));
        e.* = .{ .left = none, .right = none, .shorter = none, .len = @intCast(tb.len), .first = if (tb.len > 0) tb[0] else 0, .last = if (tb.len > 0) tb[tb.len - 1] else 0, .low_left = none, .low_right = none };
    }
    // usable[id]: a token whose own bytes BPE to itself (unused ids: false).
    const usable = try gpa.alloc(bool, n_ids);
    defer gpa.free(usable);
    const order = try lengthOrder(v);
    defer gpa.free(order);
    try buildFilter(v, &t);
    if (!try computeSplits(v, &t, order, usable) or !try buildTrie(v, &t, order, usable)) {
        t.deinit(gpa);
        return;
    }
    t.all_usable = true;
    for (usable, 0..) |u, id| {
        if (!u and v.tokenBytes(@intCast(id)).len > 0) t.all_usable = false;
    }
    try buildCuts(v, &t);
    v.long = t;
}

const cross_pre3: u64 = 1;
const cross_suf4: u64 = 2;
const cross_sub5: u64 = 3;
/// `cross_filter`: 512 KiB, about 113k / 227k keys (cl100k / o200k), ~3.5 a word.
const cross_words_log2 = 16;

/// `tok2` and `cross_filter` (see `Tables`).
fn buildCuts(v: *const Vocab, t: *Tables) error{OutOfMemory}!void {
    const zeroed = struct {
        fn f(gpa: std.mem.Allocator, words: usize) error{OutOfMemory}![]u64 {
            const w = try gpa.alloc(u64, words);
            @memset(w, 0);
            return w;
        }
    }.f;
    t.tok2 = try zeroed(v.gpa, 1024);
    t.cross_filter = try zeroed(v.gpa, 1 << cross_words_log2);
    t.pre2 = try zeroed(v.gpa, 1024);
    t.pre2of3 = try zeroed(v.gpa, 1024);
    t.followed = try zeroed(v.gpa, 1024);
    const set = struct {
        fn f(words: []u64, k: usize) void {
            words[k >> 6] |= @as(u64, 1) << @intCast(k & 63);
        }
    }.f;
    var id: u32 = 0;
    while (id < v.n_ids) : (id += 1) {
        const b = v.tokenBytes(id);
        if (b.len >= 2) {
            const k2 = @as(usize, b[0]) | @as(usize, b[1]) << 8;
            if (b.len == 2) set(t.tok2, k2);
            set(t.pre2, k2);
            if (b.len >= 3) set(t.pre2of3, k2);
        }
        if (b.len >= 4) for (0..b.len - 3) |i| {
            if (b[i] & 0xF0 == 0xE0 and b[i + 1] & 0xC0 == 0x80 and b[i + 2] & 0xC0 == 0x80)
                set(t.followed, @as(usize, b[i] & 0x0F) << 12 | @as(usize, b[i + 1] & 0x3F) << 6 | (b[i + 2] & 0x3F));
        };
        if (b.len >= 3) t.addCross(cross_pre3, b[0..3]);
        if (b.len >= 4) t.addCross(cross_suf4, b[b.len - 4 ..]);
        if (b.len >= 5) for (0..b.len - 4) |i| t.addCross(cross_sub5, b[i..][0..5]);
    }
}

fn buildFilter(v: *const Vocab, t: *Tables) error{OutOfMemory}!void {
    var entries: usize = 0;
    for (v.pair_slots) |e| entries += @intFromBool(e != empty);
    // About 8 bits per entry, at least 512 KB.
    var bits: u6 = 16;
    while ((@as(usize, 1) << bits) * 8 < entries) bits += 1;
    t.pair_filter = try v.gpa.alloc(u64, @as(usize, 1) << bits);
    @memset(t.pair_filter, 0);
    t.filter_shift = @intCast(64 - @as(u7, bits));
    for (v.pair_slots) |e| {
        if (e == empty) continue;
        const wb = t.filterBits(e >> 20);
        t.pair_filter[wb[0]] |= wb[1];
    }
}

/// Ids sorted by token length (counting sort; unused ids, of length 0, first).
fn lengthOrder(v: *const Vocab) error{OutOfMemory}![]u32 {
    const gpa = v.gpa;
    const starts = try gpa.alloc(u32, v.max_token_len + 2);
    defer gpa.free(starts);
    @memset(starts, 0);
    var id: u32 = 0;
    while (id < v.n_ids) : (id += 1) starts[v.tokenBytes(id).len + 1] += 1;
    for (1..starts.len) |k| starts[k] += starts[k - 1];
    const order = try gpa.alloc(u32, v.n_ids);
    id = 0;
    while (id < v.n_ids) : (id += 1) {
        const l = v.tokenBytes(id).len;
        order[starts[l]] = id;
        starts[l] += 1;
    }
    return order;
}

/// split[] and usable[] for every token, shortest first. A token's BPE run, up to its last
/// merge, is the run of the vocabulary without it, so its last merge is the one two-token split
/// (left, right) (from the pair table) whose tokens are usable and compatible below the top
/// pair; none means the token does not BPE to itself. Its run is monotone iff its parts' runs
/// are and its rank is >= theirs. False: a usable token is not monotone (no fast path).
fn computeSplits(v: *const Vocab, t: *Tables, order: []const u32, usable: []bool) error{OutOfMemory}!bool {
    const gpa = v.gpa;
    const n_ids = v.n_ids;
    // Every (left, right) -> id entry of the pair table, grouped by id.
    const cstart = try gpa.alloc(u32, n_ids + 1);
    defer gpa.free(cstart);
    @memset(cstart, 0);
    for (v.pair_slots) |e| {
        if (e != empty) cstart[@as(usize, @intCast(e & 0xFFFFF)) + 1] += 1;
    }
    for (1..cstart.len) |k| cstart[k] += cstart[k - 1];
    const cand = try gpa.alloc(u64, cstart[n_ids]);
    defer gpa.free(cand);
    const fill = try gpa.dupe(u32, cstart[0..n_ids]);
    defer gpa.free(fill);
    for (v.pair_slots) |e| {
        if (e == empty) continue;
        const id: usize = @intCast(e & 0xFFFFF);
        cand[fill[id]] = e >> 20;
        fill[id] += 1;
    }
    @memset(usable, false);
    for (order) |id| {
        const tb = v.tokenBytes(id);
        if (tb.len <= 1) {
            usable[id] = tb.len == 1 and v.byte_rank[tb[0]] == id;
            continue;
        }
        // Parts of lower rank first: the split of a monotone token is one of them (usually
        // the only one), so most tokens need one check.
        const cs = cand[cstart[id]..cstart[id + 1]];
        const found = findSplit(v, t, usable, id, cs, true) orelse findSplit(v, t, usable, id, cs, false);
        const k = found orelse continue;
        const a: u32 = @intCast(k >> 20);
        const b: u32 = @intCast(k & 0xFFFFF);
        const ia = &t.info[a];
        const ib = &t.info[b];
        if (id < (if (ia.left == none) 0 else a) or id < (if (ib.left == none) 0 else b)) return false;
        usable[id] = true;
        const e = &t.info[id];
        e.left = a;
        e.right = b;
        e.low_left = if (ia.left == none) id else ia.low_left;
        e.low_right = if (ib.left == none) id else ib.low_right;
    }
    return true;
}

/// The candidate (left << 20 | right) of token `id` whose parts are usable and compatible below
/// the top pair, among those with both parts below `id` (`low`) or the others.
fn findSplit(v: *const Vocab, t: *const Tables, usable: []const bool, id: u32, cs: []const u64, low: bool) ?u64 {
    for (cs) |k| {
        const a: u32 = @intCast(k >> 20);
        const b: u32 = @intCast(k & 0xFFFFF);
        if ((a < id and b < id) != low or !usable[a] or !usable[b]) continue;
        // (The first state is the top one when both are single bytes: not checked here.)
        const bytes = t.info[a].left == none and t.info[b].left == none;
        if (bytes or (firstStateHolds(v, t, a, b) and descend(t, VocabPairs{ .v = v }, a, b, false))) return k;
    }
    return null;
}

/// The trie of every token prefix, breadth-first (see Node), built from the tokens in
/// lexicographic order: each token adds the nodes below its common prefix with the one before
/// it, and every depth's nodes come out in prefix order, which is breadth-first order within
/// the depth. shorter[] on the way. False: too many nodes for u32 numbers.
fn buildTrie(v: *const Vocab, t: *Tables, order: []const u32, usable: []const bool) error{OutOfMemory}!bool {
    const gpa = v.gpa;
    const lex = try lexOrder(v, order);
    defer gpa.free(lex);
    const max_len = v.max_token_len;
    // Pass 1: common prefix with the previous token, and how many nodes each depth has.
    const lcps = try gpa.alloc(u16, lex.len);
    defer gpa.free(lcps);
    const base = try gpa.alloc(u64, max_len + 2); // first node number of each depth
    defer gpa.free(base);
    @memset(base, 0);
    var prev: []const u8 = "";
    for (lex, lcps) |id, *l| {
        const tb = v.tokenBytes(id);
        l.* = @intCast(commonPrefix(prev, tb));
        // new nodes at depths l+1 .. len (counted as a difference array, summed below)
        base[@as(usize, l.*) + 1] +%= 1;
        base[tb.len + 1] -%= 1;
        prev = tb;
    }
    var per_depth: u64 = 0;
    var next: u64 = 1; // node 0 is the root
    for (1..max_len + 1) |d| {
        per_depth +%= base[d];
        base[d] = next;
        next += per_depth;
    }
    base[max_len + 1] = next;
    if (next >= std.math.maxInt(u32)) return false;
    const total: u32 = @intCast(next);
    t.nodes = try gpa.alloc(Node, @as(usize, total) + 1);
    t.labels = try gpa.alloc(u8, @as(usize, total) + 16);
    @memset(t.labels, 0);
    @memset(t.nodes, .{ .kids = 0, .tok = none }); // kids counts children until the last loop
    // Pass 2: number the nodes (each depth in order) and count every node's children.
    const path = try gpa.alloc(u32, max_len + 1);
    defer gpa.free(path);
    const best = try gpa.alloc(u32, max_len + 1); // longest usable token on the path so far
    defer gpa.free(best);
    path[0] = 0;
    best[0] = none;
    for (lex, lcps) |id, l| {
        const tb = v.tokenBytes(id);
        for (@as(usize, l) + 1..tb.len + 1) |d| {
            const u: u32 = @intCast(base[d]);
            base[d] += 1;
            path[d] = u;
            t.labels[u] = tb[d - 1];
            t.nodes[path[d - 1]].kids += 1;
            best[d] = best[d - 1];
        }
        t.info[id].shorter = best[tb.len - 1];
        if (usable[id]) {
            t.nodes[path[tb.len]].tok = id;
            best[tb.len] = id;
        }
    }
    // Children counts -> first child numbers (breadth-first: the running sum).
    var acc: u32 = 1;
    for (t.nodes[0..total]) |*nd| {
        const c = nd.kids;
        nd.kids = acc;
        acc += c;
    }
    t.nodes[total] = .{ .kids = acc, .tok = none };
    try buildStarts(v, t, order);
    return true;
}

/// start2 and has3, from the trie and the tokens.
fn buildStarts(v: *const Vocab, t: *Tables, order: []const u32) error{OutOfMemory}!void {
    const gpa = v.gpa;
    t.start2 = try gpa.alloc(u32, 1 << 16);
    for (0..1 << 16) |k| t.start2[k] = t.child(@intCast(1 + (k >> 8)), @truncate(k));
    t.has3 = try gpa.alloc(u64, 1 << 18);
    @memset(t.has3, 0);
    for (order) |tid| {
        const tb = v.tokenBytes(tid);
        if (tb.len < 3) continue;
        const k = @as(usize, tb[0]) << 16 | @as(usize, tb[1]) << 8 | tb[2];
        t.has3[k >> 6] |= @as(u64, 1) << @intCast(k & 63);
    }
}

fn commonPrefix(a: []const u8, b: []const u8) usize {
    const n = @min(a.len, b.len);
    var i: usize = 0;
    while (i < n and a[i] == b[i]) i += 1;
    return i;
}

/// Ids of all tokens (not unused ids) in byte-lexicographic order, a prefix before its
/// extensions: LSD radix sort on the first 8 bytes (big-endian, zero-padded), then each run of
/// equal keys (tokens sharing 8 bytes, such as runs of spaces) by full comparison.
fn lexOrder(v: *const Vocab, order: []const u32) error{OutOfMemory}![]u32 {
    const gpa = v.gpa;
    var first: usize = 0; // `order` is by length: unused ids (length 0) first
    while (first < order.len and v.tokenBytes(order[first]).len == 0) first += 1;
    const n = order.len - first;
    const keys = try gpa.alloc(u64, 2 * n);
    defer gpa.free(keys);
    const ids = try gpa.alloc(u32, 2 * n);
    defer gpa.free(ids);
    for (order[first..], keys[0..n], ids[0..n]) |id, *k, *i| {
        const tb = v.tokenBytes(id);
        var buf: [8]u8 = @splat(0);
        const m = @min(tb.len, 8);
        @memcpy(buf[0..m], tb[0..m]);
        k.* = std.mem.readInt(u64, &buf, .big);
        i.* = id;
    }
    var src: usize = 0; // halves of keys/ids: src and 1 - src
    for (0..8) |pass| {
        const shift: u6 = @intCast(pass * 8);
        const sk = keys[src * n ..][0..n];
        const si = ids[src * n ..][0..n];
        const dk = keys[(1 - src) * n ..][0..n];
        const di = ids[(1 - src) * n ..][0..n];
        var count: [257]u32 = @splat(0);
        for (sk) |k| count[@as(usize, @intCast((k >> shift) & 0xFF)) + 1] += 1;
        for (1..257) |b| count[b] += count[b - 1];
        for (sk, si) |k, id| {
            const b: usize = @intCast((k >> shift) & 0xFF);
            dk[count[b]] = k;
            di[count[b]] = id;
            count[b] += 1;
        }
        src = 1 - src;
    }
    const sk = keys[src * n ..][0..n];
    const si = ids[src * n ..][0..n];
    var i: usize = 0;
    while (i < n) {
        var j = i + 1;
        while (j < n and sk[j] == sk[i]) j += 1;
        if (j - i > 1) std.sort.pdq(u32, si[i..j], v, lessBytes);
        i = j;
    }
    return gpa.dupe(u32, si);
}

fn lessBytes(v: *const Vocab, a: u32, b: u32) bool {
    return std.mem.lessThan(u8, v.tokenBytes(a), v.tokenBytes(b));
}

const SelfMerge = union(enum) { split: u64, not_self, not_monotone };

/// tiktoken's merge loop over a token's own bytes (`vocab.mergeParts`): its last merge, or that
/// it does not end in the token, or that its merge ranks ever decrease. (Built only for
/// tiktoken vocabularies, where a merge's rank is its merged id.)
fn selfMerge(v: *const Vocab, tb: []const u8, work: []u32) SelfMerge {
    const Seen = struct {
        last_rank: u32 = 0,
        monotone: bool = true,
        last: u64 = 0,
        pub inline fn merged(s: *@This(), r: u32, left: u32, right: u32) void {
            if (r < s.last_rank) s.monotone = false;
            s.last_rank = r;
            s.last = (@as(u64, left) << 32) | right;
        }
    };
    var seen: Seen = .{};
    const n = vocab.mergeParts(v, tb, work[0..tb.len], work[tb.len .. 2 * tb.len], VocabPairs{ .v = v }, &seen);
    if (n > 1) return .not_self;
    return if (seen.monotone) .{ .split = seen.last } else .not_monotone;
}


/// The longest usable token that is a prefix of `s` (never none: every byte is a token).
inline fn longestPrefix(v: *const Vocab, t: *const Tables, s: []const u8) Match {
    const byte: Match = .{ .tok = v.byte_rank[s[0]], .len = 1 };
    if (s.len == 1) return byte;
    var node = t.start2[@as(usize, s[0]) << 8 | s[1]];
    if (node == none) return byte;
    var best: Match = if (t.nodes[node].tok != none) .{ .tok = t.nodes[node].tok, .len = 2 } else byte;
    @prefetch(&t.info[best.tok], .{});
    if (s.len == 2) return best;
    const k = @as(usize, s[0]) << 16 | @as(usize, s[1]) << 8 | s[2];
    if ((t.has3[k >> 6] >> @intCast(k & 63)) & 1 == 0) return best;
    const lim = @min(s.len, v.max_token_len);
    var i: usize = 2;
    while (i < lim) : (i += 1) {
        node = t.child(node, s[i]);
        if (node == none) break;
        const tok = t.nodes[node].tok;
        if (tok != none) {
            best = .{ .tok = tok, .len = i + 1 };
            @prefetch(&t.info[tok], .{}); // overlaps the walk's last (failing) step
        }
    }
    return best;
}

/// A token and its length (the walk knows it: no record load before the next position).
const Match = struct { tok: u32, len: usize };

/// Whether BPE(bytes(a) ++ bytes(b)) == [a, b], for usable tokens a, b (see the file comment),
/// past the first state (`firstStateHolds`): the top pair, then the states between.
/// `pairs` answers pair ranks (the vocabulary, or a thread's cache in front of it).
/// `a_longest`: as in `memoCompatible` (no lookup of the top pair, nor of the states (a, y)).
inline fn restHolds(t: *const Tables, pairs: anytype, a: u32, b: u32, comptime a_longest: bool) bool {
    return (a_longest or !t.mayPair(a, b) or pairs.rank(a, b) == no_rank) and descend(t, pairs, a, b, a_longest);
}

/// The first state, the boundary's two bytes, checked first from the byte-pair table: it ends
/// with the earlier of the two lowest spine merges (the left one on equal ranks).
inline fn firstStateHolds(v: *const Vocab, t: *const Tables, a: u32, b: u32) bool {
    const ia = &t.info[a];
    const ib = &t.info[b];
    const x1 = ia.low_right;
    const y1 = ib.low_left;
    const limit = if (y1 == none) x1 else if (x1 <= y1) x1 else y1 + 1;
    return v.byte_pair[@as(usize, ia.last) << 8 | ib.first] >= limit;
}

/// The states between the top pair and the first one: walk the facing spines newest merge
/// first; the boundary pair of a state merges first iff its rank is below the merge that ended
/// the state.
/// `a_longest`: as in `memoCompatible`; then no state (a, y) needs a lookup either (a ++ y, for y
/// a prefix of b, starts where a does and is longer).
inline fn descend(t: *const Tables, pairs: anytype, a: u32, b: u32, comptime a_longest: bool) bool {
    var x = a;
    var y = b;
    while (true) {
        const ix = &t.info[x];
        const iy = &t.info[y];
        var limit: u32 = undefined;
        if (ix.left != none and (iy.left == none or x > y)) {
            // x's parent merge is the newer one: it (to the left of the boundary) wins ties.
            limit = x;
            x = ix.right;
        } else if (iy.left != none) {
            // y's parent merge is newer: the boundary pair, to its left, wins ties.
            limit = y + 1;
            y = iy.left;
        } else return true;
        if (t.info[x].left == none and t.info[y].left == none) return true; // the first state
        if (a_longest and x == a) continue;
        if (t.mayPair(x, y) and pairs.rank(x, y) < limit) return false;
    }
}

/// Whether a and b are compatible: the first state, then the rest through a direct-mapped table
/// of answers (entry = (a << 20 | b) << 1 | answer) for pairs of long tokens.
/// `a_longest`: a is the longest token that starts where it starts (and every token is usable,
/// so the walk saw them all), so bytes(a) ++ bytes(b), which starts there too, is no token and
/// the top pair needs no lookup.
inline fn memoCompatible(v: *const Vocab, t: *const Tables, pairs: anytype, memo: []u64, shift: u6, a: u32, b: u32, a_longest: bool) bool {
    // The first state (cheap, and where most failures show) before the table.
    if (!firstStateHolds(v, t, a, b)) return false;
    // Short tokens have short descents, cheaper than the table, which only pays when pairs
    // repeat (random letters 0.93-0.95x, CJK 0.8-0.9x without it; "abab..." 1.2-1.3x).
    if (t.info[a].len + t.info[b].len < memo_min_len) {
        return if (a_longest) restHolds(t, pairs, a, b, true) else restHolds(t, pairs, a, b, false);
    }
    const key = (@as(u64, a) << 20) | b;
    const slot = &memo[@intCast((key *% 0x9E3779B97F4A7C15) >> shift)];
    if (slot.* >> 1 == key) return slot.* & 1 != 0;
    const ok = restHolds(t, pairs, a, b, false);
    slot.* = (key << 1) | @intFromBool(ok);
    return ok;
}

const memo_min_len = 8;

/// Whether BPE(bytes(a) ++ bytes(b)) == [a, b], for usable tokens a, b (longpar.zig's joins).
pub fn compatible(v: *const Vocab, a: u32, b: u32) bool {
    const t = &v.long;
    return firstStateHolds(v, t, a, b) and restHolds(t, VocabPairs{ .v = v }, a, b, false);
}

/// Words of `encode`'s `bits` for a piece of `len` bytes.
pub fn bitWords(len: usize) usize {
    return 2 * (len / 64 + 1);
}

/// BPE of `piece` into `out` (room for piece.len tokens); `bits` holds bitWords(piece.len)
/// words, `memo` a power of two >= 4.
/// Returns the token count, or null if the search failed (impossible for a vocabulary that
/// passed `build`) or backed up more than once per byte; the caller then uses the heap merge.
pub fn encode(v: *const Vocab, piece: []const u8, out: []u32, bits: []u64, memo: []u64, pairs: anytype) ?usize {
    const n = piece.len;
    // bits: dead ends in the first half; in the second, the start of each stacked token that
    // was a preferred guess (backing up over it must try the walk's candidates, longest first).
    const words = n / 64 + 1;
    @memset(bits[0 .. 2 * words], 0);
    @memset(memo, empty);
    // memo: answers in the first half, the preferred next token (see `run`) in the second.
    const half = memo.len / 2;
    var sr: Search(@TypeOf(pairs)) = .{
        .v = v,
        .t = &v.long,
        .pairs = pairs,
        .piece = piece,
        .out = out,
        .dead = bits[0..words],
        .guess = bits[words .. 2 * words],
        .answers = memo[0..half],
        .prefs = memo[half..],
        .shift = @intCast(@as(u7, 64) - std.math.log2_int(usize, half)),
    };
    const first = longestPrefix(v, sr.t, piece);
    sr.cand = first.tok;
    sr.cand_len = first.len;
    sr.cand_longest = true;
    // Two copies of the loop: without guesses (no cost on text that rarely backs up) and with.
    while (true) {
        switch (if (sr.mode.on) sr.run(true) else sr.run(false)) {
            .done => return sr.cnt,
            .failed => return null,
            .switched => {},
        }
    }
}

fn Search(comptime Pairs: type) type {
    return struct {
        v: *const Vocab,
        t: *const Tables,
        pairs: Pairs,
        piece: []const u8,
        out: []u32,
        dead: []u64,
        guess: []u64,
        answers: []u64,
        prefs: []u64,
        shift: u6,
        cnt: usize = 0,
        pos: usize = 0,
        cand: u32 = 0,
        cand_len: usize = 0,
        cand_longest: bool = false, // cand is the walk's longest match at pos
        top_longest: bool = false, // so was the token on top of the stack (false after a back-up)
        walk_pending: bool = false, // cand is a guess; the walk's candidates come after it
        mode: GuessMode = .{},

        const Self = @This();

        /// The search loop (see the file comment), until done, failed, or the guess mode flips.
        fn run(sr: *Self, comptime guessing: bool) enum { done, failed, switched } {
            // Everything in locals: stores to `out` could alias the struct otherwise.
            const v = sr.v;
            const t = sr.t;
            const pairs = sr.pairs;
            const piece = sr.piece;
            const n = piece.len;
            const out = sr.out;
            const dead = sr.dead;
            const guess = sr.guess;
            // (A token that is not usable is not in the trie: the longest match says nothing of it.)
            const all_usable = t.all_usable;
            const answers = sr.answers;
            const prefs = sr.prefs;
            const shift = sr.shift;
            var cnt = sr.cnt;
            var pos = sr.pos;
            var cand = sr.cand;
            var cand_len = sr.cand_len;
            var cand_longest = sr.cand_longest;
            var top_longest = sr.top_longest;
            var walk_pending = sr.walk_pending;
            var mode = sr.mode;
            defer {
                sr.cnt = cnt;
                sr.pos = pos;
                sr.cand = cand;
                sr.cand_len = cand_len;
                sr.cand_longest = cand_longest;
                sr.top_longest = top_longest;
                sr.walk_pending = walk_pending;
                sr.mode = mode;
            }
            while (true) {
                const end = pos + cand_len;
                const end_dead = (dead[end >> 6] >> @intCast(end & 63)) & 1 != 0;
                if (!end_dead and (cnt == 0 or memoCompatible(v, t, pairs, answers, shift, out[cnt - 1], cand, all_usable and top_longest))) {
                    out[cnt] = cand;
                    top_longest = cand_longest;
                    cnt += 1;
                    pos = end;
                    if (pos == n) return .done;
                    if (guessing) {
                        if (walk_pending) mode.pushedGuess();
                        walk_pending = false;
                        if (!mode.on) {
                            const next = longestPrefix(v, t, piece[pos..]);
                            cand = next.tok;
                            cand_len = next.len;
                            cand_longest = true;
                            return .switched;
                        }
                        // The token after cand: first the one that followed cand last time,
                        // if that one was itself followed and starts here too. Runs such as
                        // 1 MB of '-' otherwise try every longer run token and back up from each.
                        if (cnt >= 2) prefs[slotOf(out[cnt - 2], shift)] = (@as(u64, out[cnt - 2]) << 32) | cand;
                        const e = prefs[slotOf(cand, shift)];
                        const x: u32 = @truncate(e);
                        if (e >> 32 == cand and startsWith(piece[pos..], v.tokenBytes(x))) {
                            cand = x;
                            cand_len = v.tokenBytes(x).len;
                            cand_longest = false;
                            walk_pending = true;
                            mode.guessed = true;
                            guess[pos >> 6] |= @as(u64, 1) << @intCast(pos & 63);
                            continue;
                        }
                    }
                    const next = longestPrefix(v, t, piece[pos..]);
                    cand = next.tok;
                    cand_len = next.len;
                    cand_longest = true;
                    continue;
                }
                if (guessing and walk_pending) {
                    walk_pending = false;
                    mode.missed();
                    guess[pos >> 6] &= ~(@as(u64, 1) << @intCast(pos & 63));
                    const next = longestPrefix(v, t, piece[pos..]);
                    cand = next.tok;
                    cand_len = next.len;
                    cand_longest = true;
                    continue;
                }
                const s = t.info[cand].shorter;
                if (s != none) {
                    cand = s;
                    cand_len = t.info[s].len;
                    cand_longest = false;
                    continue;
                }
                // No token fits at pos: a dead end. Retry the previous token's shorter prefixes
                // (it ends here, so the loop's dead check sends it straight to them).
                dead[pos >> 6] |= @as(u64, 1) << @intCast(pos & 63);
                if (cnt == 0) return .failed;
                const was_on = mode.on;
                mode.popped(cnt);
                // A safety net for back-up-heavy text the guesses do not fix: the heap merge
                // (random letters back up about once per 8 bytes; this allows one per byte).
                if (mode.pops > n + 4096) return .failed;
                cnt -= 1;
                top_longest = false; // (not known for the token now on top: the lookup stays)
                cand = out[cnt];
                cand_len = t.info[cand].len;
                cand_longest = false;
                pos -= cand_len;
                if (mode.guessed) {
                    // Undone: no longer the token to guess after the one before it.
                    if (cnt > 0) {
                        const slot = &prefs[slotOf(out[cnt - 1], shift)];
                        if (slot.* == (@as(u64, out[cnt - 1]) << 32) | cand) slot.* = empty;
                    }
                    // A guess: its end is dead now, so the walk's candidates (it among them)
                    // follow.
                    if ((guess[pos >> 6] >> @intCast(pos & 63)) & 1 != 0) {
                        guess[pos >> 6] &= ~(@as(u64, 1) << @intCast(pos & 63));
                        mode.missed();
                        const next = longestPrefix(v, t, piece[pos..]);
                        cand = next.tok;
                        cand_len = next.len;
                        cand_longest = true;
                    }
                }
                if (mode.on != was_on) return .switched;
            }
        }
    };
}

/// Whether to try preferred guesses: switched on when 64 back-ups came within fewer than 128
/// pushes (random letters: about 1 back-up per 4 pushes; 1 MB of '-': one per push), off again
/// when fewer than 3 in 4 of 128 guesses stood. Pushes are counted as stack size + back-ups, so a push costs
/// nothing here while guessing is off.
const GuessMode = struct {
    on: bool = false,
    guessed: bool = false, // a guess was ever stacked (then backing up must look at the bits)
    pops: usize = 0,
    window_pops: u32 = 0,
    window_start: usize = 0, // pushes when the window began
    tried: u32 = 0,
    hits: u32 = 0,

    inline fn pushedGuess(m: *GuessMode) void {
        m.tried += 1;
        m.hits += 1;
        if (m.tried >= 128) m.judge();
    }
    inline fn missed(m: *GuessMode) void {
        m.tried += 1;
        if (m.tried >= 128) m.judge();
    }
    inline fn popped(m: *GuessMode, stack: usize) void {
        m.pops += 1;
        if (m.on) return;
        m.window_pops += 1;
        if (m.window_pops < 64) return;
        const pushes = stack + 1 + m.pops - m.window_start; // (stack before this pop)
        m.on = pushes < 128;
        m.window_pops = 0;
        m.window_start = stack + 1 + m.pops;
    }
    fn judge(m: *GuessMode) void {
        m.on = m.hits * 4 >= m.tried * 3;
        m.tried = 0;
        m.hits = 0;
    }
};

fn startsWith(s: []const u8, prefix: []const u8) bool {
    return prefix.len <= s.len and std.mem.eql(u8, s[0..prefix.len], prefix);
}

inline fn slotOf(tok: u32, shift: u6) usize {
    return @intCast((@as(u64, tok) *% 0x9E3779B97F4A7C15) >> shift);
}

/// Pair ranks straight from the vocabulary's table.
pub const VocabPairs = struct {
    v: *const Vocab,
    pub inline fn rank(p: VocabPairs, a: u32, b: u32) u32 {
        return p.v.pairRank(a, b);
    }
};

/// Test and benchmark hook: BPE of one piece by a chosen algorithm (0: the library's path with
/// the thread's caches, 1: the heap merge, 2: the backtracking encoder; 2 answers -2 when the
/// vocabulary has no long-piece tables). out_tokens holds cap >= len ids.
export fn at_debug_encode_piece(v_in: ?*const Vocab, data: ?[*]const u8, len: usize, algo: u32, out_tokens: ?[*]u32, cap: usize, out_n: ?*i64) i32 {
    const v = v_in orelse return -1;
    const n_out = out_n orelse return -1;
    const out = out_tokens orelse return -1;
    const d = data orelse return -1;
    if (len == 0 or cap < len) return -1;
    const gpa = std.heap.c_allocator;
    var scratch = vocab.Scratch.init(gpa);
    defer scratch.deinit();
    scratch.bind(v, 1);
    const piece = d[0..len];
    const n = switch (algo) {
        0 => vocab.encodePiece(v, piece, out[0..cap], &scratch) catch return -3,
        1 => vocab.mergeHeap(v, piece, out[0..cap], &scratch) catch return -3,
        2 => blk: {
            if (!v.long.ready()) return -2;
            const dead = gpa.alloc(u64, bitWords(len)) catch return -3;
            defer gpa.free(dead);
            const memo = gpa.alloc(u64, 1 << 13) catch return -3;
            defer gpa.free(memo);
            break :blk encode(v, piece, out[0..cap], dead, memo, VocabPairs{ .v = v }) orelse return -4;
        },
        else => return -1,
    };
    n_out.* = @intCast(n);
    return 0;
}

/// Test hook: checks every token's split and usability against tiktoken's merge loop over its
/// own bytes. Returns the number of disagreeing tokens, or -1 without long-piece tables.
export fn at_debug_check_long(v_in: ?*const Vocab) i64 {
    const v = v_in orelse return -1;
    if (!v.long.ready()) return -1;
    return checkSplits(v, std.heap.c_allocator) catch -1;
}

fn checkSplits(v: *const Vocab, gpa: std.mem.Allocator) error{OutOfMemory}!i64 {
    const work = try gpa.alloc(u32, 2 * @max(v.max_token_len, 2));
    defer gpa.free(work);
    var bad: i64 = 0;
    var id: u32 = 0;
    while (id < v.n_ids) : (id += 1) {
        const tb = v.tokenBytes(id);
        if (tb.len < 2) continue;
        const e = v.long.info[id];
        const got: ?u64 = if (e.left == none) null else (@as(u64, e.left) << 32) | e.right;
        const want: ?u64 = switch (selfMerge(v, tb, work)) {
            .split => |sp| sp,
            .not_self => null,
            .not_monotone => unreachable, // build would have refused the vocabulary
        };
        if (got != want) bad += 1;
    }
    return bad;
}

// ---------------------------------------------------------------------------------------------
// Tests: the backtracking encoder against the heap merge on trained and hand-made vocabularies.

/// A tiktoken-format vocabulary: the 256 bytes, then `extra` tokens in rank order.
pub fn vocabFrom(gpa: std.mem.Allocator, extra: []const []const u8) !*Vocab {
    var text: std.ArrayList(u8) = .empty;
    defer text.deinit(gpa);
    var b64: [512]u8 = undefined;
    var rank: usize = 0;
    while (rank < 256) : (rank += 1) {
        const one = [_]u8{@intCast(rank)};
        try text.print(gpa, "{s} {d}\n", .{ std.base64.standard.Encoder.encode(&b64, &one), rank });
    }
    for (extra) |t| {
        try text.print(gpa, "{s} {d}\n", .{ std.base64.standard.Encoder.encode(&b64, t), rank });
        rank += 1;
    }
    var bad: u64 = 0;
    return vocab.loadTiktoken(gpa, .cl100k, text.items, &bad);
}

/// BPE training on `corpus` (most frequent adjacent pair, first seen on ties), `n_merges`
/// times: a vocabulary like the real ones (every token made of two earlier ones).
pub fn trainedTokens(gpa: std.mem.Allocator, arena: std.mem.Allocator, corpus: []const u8, n_merges: usize) !std.ArrayList([]const u8) {
    var toks: std.ArrayList([]const u8) = .empty;
    var seq: std.ArrayList([]const u8) = .empty;
    defer seq.deinit(gpa);
    for (corpus, 0..) |_, i| try seq.append(gpa, corpus[i .. i + 1]);
    var counts: std.StringHashMapUnmanaged(u32) = .empty;
    defer counts.deinit(gpa);
    var m: usize = 0;
    while (m < n_merges and seq.items.len > 1) : (m += 1) {
        counts.clearRetainingCapacity();
        var best: []const u8 = "";
        var best_n: u32 = 0;
        for (0..seq.items.len - 1) |i| {
            const a = seq.items[i];
            const b = seq.items[i + 1];
            // pieces are slices of the corpus, so adjacent ones join without copying
            const j = a.ptr[0 .. a.len + b.len];
            const g = try counts.getOrPut(gpa, j);
            if (!g.found_existing) g.value_ptr.* = 0;
            g.value_ptr.* += 1;
            if (g.value_ptr.* > best_n and !contains(toks.items, j)) {
                best_n = g.value_ptr.*;
                best = j;
            }
        }
        if (best_n < 2) break;
        try toks.append(arena, best);
        var w: usize = 0;
        var i: usize = 0;
        while (i < seq.items.len) : (w += 1) {
            const a = seq.items[i];
            if (i + 1 < seq.items.len and std.mem.eql(u8, a.ptr[0 .. a.len + seq.items[i + 1].len], best)) {
                seq.items[w] = a.ptr[0..best.len];
                i += 2;
            } else {
                seq.items[w] = a;
                i += 1;
            }
        }
        seq.items.len = w;
    }
    return toks;
}

fn contains(list: []const []const u8, s: []const u8) bool {
    for (list) |x| if (std.mem.eql(u8, x, s)) return true;
    return false;
}

fn expectSameAsHeap(v: *const Vocab, piece: []const u8, scratch: *vocab.Scratch) !void {
    const gpa = std.testing.allocator;
    const a = try gpa.alloc(u32, piece.len);
    defer gpa.free(a);
    const b = try gpa.alloc(u32, piece.len);
    defer gpa.free(b);
    const dead = try gpa.alloc(u64, bitWords(piece.len));
    defer gpa.free(dead);
    var memo: [64]u64 = undefined;
    const na = try vocab.mergeHeap(v, piece, a, scratch);
    const nb = encode(v, piece, b, dead, &memo, VocabPairs{ .v = v }) orelse return error.SearchFailed;
    try std.testing.expectEqualSlices(u32, a[0..na], b[0..nb]);
}

/// Random text: runs from a few "words" with noise, so trained tokens get long.
pub fn randomText(r: std.Random, buf: []u8, alphabet: []const u8) []u8 {
    const words = [_][]const u8{ "abcab", "bcd", "aaaa", "dcba", "abab", "cc" };
    var n: usize = 0;
    while (n < buf.len) {
        if (r.boolean()) {
            const w = words[r.uintLessThan(usize, words.len)];
            const k = @min(w.len, buf.len - n);
            @memcpy(buf[n .. n + k], w[0..k]);
            n += k;
        } else {
            buf[n] = alphabet[r.uintLessThan(usize, alphabet.len)];
            n += 1;
        }
    }
    return buf;
}

test "backtracking equals the heap merge on trained vocabularies" {
    const gpa = std.testing.allocator;
    var arena_state = std.heap.ArenaAllocator.init(gpa);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    var prng = std.Random.DefaultPrng.init(7);
    const r = prng.random();
    var corpus_buf: [3000]u8 = undefined;
    var piece_buf: [700]u8 = undefined;
    var scratch = vocab.Scratch.init(gpa);
    defer scratch.deinit();
    for (0..4) |round| {
        const corpus = randomText(r, &corpus_buf, "abcd");
        const toks = try trainedTokens(gpa, arena, corpus, 40 + 40 * round);
        const v = try vocabFrom(gpa, toks.items);
        defer v.deinit();
        try std.testing.expect(v.long.ready());
        try std.testing.expectEqual(@as(i64, 0), try checkSplits(v, gpa));
        for (0..150) |_| {
            const n = r.intRangeAtMost(usize, 2, piece_buf.len);
            try expectSameAsHeap(v, randomText(r, piece_buf[0..n], "abcd"), &scratch);
        }
    }
}

test "tokens that do not BPE to themselves are never produced" {
    const gpa = std.testing.allocator;
    // "abcd": its own bytes merge "bc" first, and neither "abc" nor "bcd" is a token.
    const v = try vocabFrom(gpa, &.{ "bc", "ab", "cd", "abcd", "abcdabcd" });
    defer v.deinit();
    try std.testing.expect(v.long.ready());
    try std.testing.expectEqual(@as(i64, 0), try checkSplits(v, gpa));
    try std.testing.expectEqual(none, v.long.info[256 + 3].left);
    var scratch = vocab.Scratch.init(gpa);
    defer scratch.deinit();
    var prng = std.Random.DefaultPrng.init(3);
    const r = prng.random();
    var buf: [300]u8 = undefined;
    for (0..300) |_| {
        const n = r.intRangeAtMost(usize, 2, buf.len);
        for (buf[0..n]) |*c| c.* = "abcd"[r.uintLessThan(usize, 4)];
        try expectSameAsHeap(v, buf[0..n], &scratch);
    }
    try expectSameAsHeap(v, "abcdabcdabcdabcd", &scratch);
    // tiktoken looks a whole piece up first: "abcd" alone is that token, which the merge would
    // not give, so this vocabulary keeps the whole-piece lookup.
    try std.testing.expect(!v.long.all_usable);
    var out: [4]u32 = undefined;
    try std.testing.expectEqual(@as(usize, 1), try vocab.encodePiece(v, "abcd", &out, &scratch));
    try std.testing.expectEqual(@as(u32, 256 + 3), out[0]);
    // Where every token merges back into itself, the merge answers whole pieces alone.
    const w = try vocabFrom(gpa, &.{ "ab", "cd", "abcd", "abab" });
    defer w.deinit();
    try std.testing.expect(w.long.all_usable);
    try std.testing.expectEqual(@as(usize, 1), try vocab.encodePiece(w, "abcd", &out, &scratch));
    try std.testing.expectEqual(@as(u32, 256 + 2), out[0]);
}

test "a vocabulary with a non-monotone token keeps the heap merge" {
    const gpa = std.testing.allocator;
    // "abc" (rank 256) is made last from "a" + "bc" (rank 257): ranks go down in its own run.
    const v = try vocabFrom(gpa, &.{ "abc", "bc" });
    defer v.deinit();
    try std.testing.expect(!v.long.ready());
}

test "ties: equal ranks on both sides of the boundary" {
    const gpa = std.testing.allocator;
    const v = try vocabFrom(gpa, &.{ "aa", "aaaa", "ab", "ba", "aab", "baa", "abab" });
    defer v.deinit();
    try std.testing.expect(v.long.ready());
    var scratch = vocab.Scratch.init(gpa);
    defer scratch.deinit();
    var prng = std.Random.DefaultPrng.init(11);
    const r = prng.random();
    var buf: [400]u8 = undefined;
    for (0..400) |_| {
        const n = r.intRangeAtMost(usize, 2, buf.len);
        for (buf[0..n]) |*c| c.* = "aab"[r.uintLessThan(usize, 3)];
        try expectSameAsHeap(v, buf[0..n], &scratch);
    }
}

test "runs where the longest token is wrong at every step (guess mode)" {
    const gpa = std.testing.allocator;
    const lens = [_]usize{ 2, 4, 8, 16, 32, 64, 3, 5, 6, 7, 12, 48, 70, 80, 96 };
    var run: [200]u8 = @splat('-');
    var extra: [lens.len][]const u8 = undefined;
    for (lens, 0..) |l, i| extra[i] = run[0..l];
    const v = try vocabFrom(gpa, &extra);
    defer v.deinit();
    try std.testing.expect(v.long.ready());
    var scratch = vocab.Scratch.init(gpa);
    defer scratch.deinit();
    const buf = try gpa.alloc(u8, 20_000);
    defer gpa.free(buf);
    @memset(buf, '-');
    for ([_]usize{ 1, 2, 63, 64, 65, 97, 1000, 4321, 20_000 }) |n| try expectSameAsHeap(v, buf[0..n], &scratch);
    // runs broken by other bytes: guessing switches on and off
    var prng = std.Random.DefaultPrng.init(5);
    const r = prng.random();
    for (0..30) |_| {
        var i: usize = 0;
        while (i < buf.len) {
            const k = @min(buf.len - i, r.uintLessThan(usize, 3000));
            @memset(buf[i .. i + k], '-');
            i += k;
            if (i < buf.len) {
                buf[i] = "ab-"[r.uintLessThan(usize, 3)];
                i += 1;
            }
        }
        try expectSameAsHeap(v, buf, &scratch);
    }
}

/// Text of whole units (ASCII letters, CJK ideographs, kana), so that trained tokens hold
/// ideographs, pieces of them and runs of both.
fn unitText(r: std.Random, buf: []u8, units: []const []const u8) []u8 {
    var n: usize = 0;
    while (true) {
        const u = units[r.uintLessThan(usize, units.len)];
        if (n + u.len > buf.len) break;
        @memcpy(buf[n .. n + u.len], u);
        n += u.len;
    }
    return buf[0..n];
}

test "cuts: no token crosses a position noTokenCrosses passes, and cut pieces equal the heap merge" {
    const gpa = std.testing.allocator;
    var arena_state = std.heap.ArenaAllocator.init(gpa);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    var prng = std.Random.DefaultPrng.init(11);
    const r = prng.random();
    var corpus_buf: [4000]u8 = undefined;
    var piece_buf: [900]u8 = undefined;
    var scratch = vocab.Scratch.init(gpa);
    defer scratch.deinit();
    const unit_sets = [_][]const []const u8{
        &.{ "\u{4E2D}", "\u{6587}", "\u{5B57}", "\u{3042}", "a" },
        &.{ "\u{4E2D}", "\u{6587}", "\u{5B57}", "\u{5927}", "\u{5C0F}", "\u{5C71}", "\u{6C34}", "\u{3042}", "\u{3044}" },
        &.{ "ab", "c", "\u{4E2D}\u{6587}", "\u{5B57}", "\u{00E9}" },
    };
    var cut_seen: usize = 0;
    for (unit_sets, 0..) |units, round| {
        const corpus = unitText(r, &corpus_buf, units);
        const toks = try trainedTokens(gpa, arena, corpus, 60 + 60 * round);
        const v = try vocabFrom(gpa, toks.items);
        defer v.deinit();
        try std.testing.expect(v.long.ready() and v.long.all_usable);
        scratch.bind(v, 1);
        const out = try gpa.alloc(u32, piece_buf.len);
        defer gpa.free(out);
        const want = try gpa.alloc(u32, piece_buf.len);
        defer gpa.free(want);
        for (0..120) |_| {
            const n = r.intRangeAtMost(usize, 33, piece_buf.len);
            // Pieces of units unseen in training too: their bytes meet few tokens, and cut often.
            const piece = if (r.boolean()) unitText(r, piece_buf[0..n], units) else unitText(r, piece_buf[0..n], &.{ "\u{4E2D}", "\u{9F8D}", "\u{7A7A}", "\u{3042}", "z", "\u{6587}" });
            if (piece.len < 33) continue;
            for (1..piece.len) |p| {
                if (!v.long.noTokenCrosses(piece, p)) continue;
                cut_seen += 1;
                // Brute force: no token occurs across p.
                const lo = p -| v.max_token_len;
                for (lo..p) |i| for (p + 1..@min(piece.len, i + v.max_token_len) + 1) |j| {
                    try std.testing.expect(v.rank(piece[i..j]) == vocab.no_rank);
                };
            }
            const k = try vocab.encodePiece(v, piece, out, &scratch);
            const m = try vocab.mergeHeap(v, piece, want, &scratch);
            try std.testing.expectEqualSlices(u32, want[0..m], out[0..k]);
        }
    }
    try std.testing.expect(cut_seen > 1000);
}
