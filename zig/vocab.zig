//! Vocabulary (token bytes <-> rank) and tiktoken's byte-pair merge.
//!
//! The vocabulary is immutable after `load`, so any number of threads may encode with it at once.
//! Ranks are token ids (true for every tiktoken file). Lookups go through an open-addressing table
//! of (hash tag, id) words keyed by the token bytes, which live once in one contiguous buffer.
//!
//! Merge rule (tiktoken `_byte_pair_merge`): start from single bytes; repeatedly merge the adjacent
//! pair whose concatenation has the lowest rank, the leftmost one on ties; stop when no adjacent
//! pair is a token. Short pieces use tiktoken's O(n^2) scan over a small stack array (fast for the
//! common case). Pieces of `longpiece.min_len` bytes and more, with a tiktoken vocabulary, take
//! longpiece.zig's backtracking encoder (linear; its file has its own performance notes). The
//! rest (merge-list vocabularies, long pieces) use a binary heap of (rank, start) plus a linked
//! list, O(n log n), which yields the same merges because the pair order (rank, then start
//! offset) is a total order that the scan also follows.
//!
//! Performance notes (1 thread, cl100k_base, count_tokens_arrow over Arrow columns; this 2-core
//! machine is noisy, so each figure is an A/B pair measured in one run):
//! - Baseline, bytes-keyed open-addressing table, tiktoken's scan merge: English lines 105 MB/s,
//!   sample_docs (multilingual, 20k docs) 32 MB/s. perf: ~45% in the table probes (two cache
//!   misses per piece: slot, then the token bytes to compare).
//! - Thread-local piece cache (direct mapped, key = piece zero-padded to 16 bytes, up to 3 ids):
//!   8K entries: 105 -> 123 MB/s; 16K: 133; 64K (2 MB): 166-176; 128K: 172 (no gain). Kept 64K.
//!   A first version that built the key with a variable-length memcpy was *slower* than no cache
//!   (85 MB/s): the padded key is now built from two overlapping loads.
//! - Merging on token ids through a (left id, right id) -> id table of every two-token split
//!   (233K entries cl100k, 446K o200k) instead of hashing byte slices: sample_docs 32 -> 55 MB/s.
//! - A direct 64K byte-pair table for the first merge level (no hashing for the n-1 initial
//!   pairs): small gain, within noise on this machine.
//! - (Superseded by `Big` below.) A second cache level for 17-64-byte pieces: helps repeated long words
//!   (Cyrillic, Indic, German compounds); in sample_docs most such pieces are distinct, so the
//!   gain there is small. A per-thread direct-mapped cache of pair-table answers (32K entries,
//!   hits and misses): multilingual lines 41 -> 50-57 MB per CPU-second; the merges of pieces
//!   that miss both piece caches are bound by pair-table cache misses (perf: the loads after
//!   each probe), so keeping a script's common pairs in L2 is what pays.
//! - Session 3 (1 thread, MB per CPU-second, A/B builds alternated in one shell; English = three
//!   Gutenberg books as paragraphs, docs = sample_docs.jsonl, ml = five multilingual files):
//!   * The direct-mapped caches were the ceiling: gigatoken is *slower* than arrowtok on a
//!     first pass (24 vs 34 MB/s on ml) and 188 MB/s from the second pass on, because it keeps
//!     every piece it has seen. So: a growing per-thread table of every piece up to 512 B
//!     (`Big`, arena + open addressing) behind the 64K short cache: ml 42 -> 151, docs 57 -> 108,
//!     English 192 -> 215.
//!   * The 64K direct-mapped short cache missed 4.5% (English) to 18.5% (docs) of lookups on
//!     conflicts (simulated); replaced by a growing open-addressing table (`Short`, 32 B entries,
//!     load <= 1/2, huge pages): English 240 -> 280, docs unchanged.
//!   * Branch-free key from two 8-byte loads and a mask table (`shortKeyAt`) instead of
//!     length-dependent overlapping loads: English 245 -> 295, docs +7%.
//!   * Memory: one cap per thread (ARROWTOK_CACHE_MB over the CPUs); a global budget let idle
//!     pool threads' tables starve the active thread (o200k rows after cl100k ran at 1/3 speed).
//!   * Did not pay (reverted): prefetching the short-table entry of the next 16 pieces (batch
//!     loop) or of the next piece (one-deep pipeline): 0 to -8%, although perf puts half of the
//!     lookup's samples on that load; huge pages for the old 2.3 MB cache: 0; a 128K direct-mapped
//!     cache: +5% (superseded); one-byte pieces through the table instead of byte_rank: -3%; a
//!     flat 64 KB BMP property table in the scanner: 0 (docs/ml); 16-byte entries for pieces
//!     of <= 8 bytes in a second table (half the footprint): docs +10%, English -13% (the
//!     branch on the length is unpredictable in English); forcing the scanner inline into the
//!     encode loop: 0; one shared output region for all tasks of a multi-thread job, compacted in
//!     place (encode.zig), instead of per-task buffers copied on the pool: 2-thread English
//!     1.65 -> 1.30x (the single-threaded compaction), reverted.
//!   * What is left (perf, English): ~50% table lookup + output, ~23% scanner, ~6% UTF-8 check;
//!     per token ~13 ns on docs-like text, ~16 ns once the table outgrows L2.
//! - Session 4 (in-process A/B: the library loaded twice in one Python process, interleaved
//!   rounds, medians; /tmp scripts, see blockscan.zig):
//!   * The block scanner (blockscan.zig) took the scanner out of the profile; what remains is
//!     the Short table's footprint: English encoded with a 60 KB working set of pieces runs at
//!     452 MB/s against 300 MB/s for the same bytes with its 32k distinct pieces (2 MB table,
//!     L2 is 1 MB here). perf puts ~30% of the encode loop on the load of the entry.
//!   * Did not pay (reverted): prefetching the block's slots in a first pass (keys kept in a
//!     64-entry array) before the lookups: -2 to -8%; prefetching the next block's slots while
//!     the current block is looked up: -6%; probing both slots of a cache-line pair before one
//!     branch (home slot rounded down to even): -5 to -7%.
//!   * Session 5: 4-slot buckets (one 64-byte line, the whole bucket compared against the
//!     key and length at once, so the branch after the load is "hit" whichever slot holds the
//!     piece): o200k code +2.5%, English -7%, docs -4%; cl100k English 0, code -2%: reverted.
//!     Unpredictable probe lengths are not what the lookups wait on.
//!   * `Big` no longer empties itself the first time it is over budget: it keeps what it holds
//!     until it has turned away as many pieces as it holds (a working set a little larger than
//!     the budget was thrown out and rebuilt on every pass): docs +5%.
//!   * The budget was what bounded the 200k-lines column (138k distinct pieces): Short stopped
//!     at 128K slots (4 MiB) because doubling would pass 16 MiB with Big; ARROWTOK_CACHE_MB=48
//!     ran it 20-35% faster but put the 100 MB memory check at output + 65 MiB (> 64), so the
//!     default stays 32 (see the load-factor change below, which fixed this within 32).
//!   * Measured cold as well (a 48 MB buffer summed before each timed call, as the benchmark's
//!     gc.collect() and the other tools evict the tables between calls): docs 205 MB/s warm,
//!     149 cold; English 300 / 256. Deciding blocks two ahead and prefetching their pieces'
//!     slots: cold docs +2-4%, English 0; warm docs +3-9%, code -4 to -9%: reverted.
//!   * `Short` at load <= 3/4 growing by 1.5x (home slot = the hash scaled to the table size)
//!     instead of load <= 1/2 doubling over powers of two: docs 8 -> 5.6 MiB for its 112k short
//!     pieces, and the 200k lines fit the budget (Short used to stop at 128K slots: doubling
//!     with the old table alive passed 16 MiB). Cold: docs +11-13%, lines +28-33%, dictionary
//!     +3-11%, English +2%, code -3-5% (its 17k pieces now sit at load 0.7 in 24K slots instead
//!     of 0.27 in 64K: longer probes); warm: docs +16%, lines cl100k +39%. Load <= 2/3: the same
//!     within noise, dictionary worse.
//!   * 16-byte Short entries (first 8 bytes + packed answer) with bytes 9..16 in a side array
//!     read through an address select: 24 instead of 32 bytes a slot, speed within 3% either
//!     way (the "small working set is 1.5-2x faster" experiment above also changed branch
//!     predictability: the same 60 KB repeated; the table's size was not the whole story).
//!   * Output buffers (encode.zig): transparent huge pages on big task buffers, and the unused
//!     tail given back when the task ends (else the last, mostly empty huge page of every task
//!     stays resident: memory check output + 73 MiB): English +10%, lines +10%, docs +4%, code
//!     +2% (cold); memory check back to output + 48 MiB.
//!   * Did not pay (reverted): UTF-8 validation 64 bytes at a time as bit masks (continuation
//!     bytes owed = continuation bytes present, plus the E0/ED/F0/F4 second-byte ranges; errors
//!     re-checked by the scalar code for the exact offset): validator alone multilingual 1.5 ->
//!     2.0 GB/s, docs 2.1 -> 2.3, but English 6.4 -> 3.1 (short rows with a few curly quotes:
//!     the scalar code's 32-byte ASCII skip wins); encoder: ml +5-11%, English and docs -3-4%.
//! - Session 5 (same in-process A/B):
//!   * Recycled token buffers (bufcache.zig): perf had 10.6% of a one-thread English column in
//!     the kernel (fresh mmap per call, page faults, zeroing, munmap): English +15%, code +13%,
//!     docs +3-7%; with 64 slots, two-thread docs +8-39% (18.6% -> 7.7% kernel).
//!   * UTF-8 check by nibble lookups (utf8.zig, Keiser-Lemire): docs +9%, multilingual +15%,
//!     English +3.5% (the bit-mask validator below lost on English; this one does not).
//!   * Did not pay: a block's pieces in two passes (the 2+ byte pieces looked up into a
//!     small array first, then every piece in order writing 3 ids, one-byte ones from
//!     byte_rank, with no branch on the piece's kind): identical ids, 13-18% slower on code,
//!     English and dictionary. So the kind branch is not the cost either.
//!   * Did not pay: two-byte pieces straight from `byte_pair` (the merged id, or the two byte
//!     tokens; no hash, no probe) in a case of their own in the encode loop: o200k code -2%,
//!     dictionary -5% (24% of its pieces are 2 bytes), English -4%, docs -2%. The extra branch
//!     on the piece length costs more than the probe it saves. Short pieces of more than 3 ids
//!     found through a redirect entry in `Short`
//!     (their Big arena offset, checked against the key on use) instead of a Short miss and a
//!     Big probe: docs cl100k +-0, o200k -9%, English -4%, multilingual +-0 (perf's 9% in
//!     shortMiss on docs was not those lookups); the piece count and count_only flag in locals of the encode loop instead
//!     of the sink's fields (the compiler reloads them on every piece, fearing aliasing with the
//!     output stores): +-4%, noise; the multi-task output through bufcache instead of malloc:
//!     -6 to -11%.
//! - Session 6 (in-process; a process that first encodes other corpora, as the benchmark does,
//!   which runs english, code, multilingual, dictionary, docs, lines in that order):
//!   * `Short` at its budget stored a new piece over the one in its home slot. After 100 MB of
//!     other text, the 20k-docs column lost ~20k of its 112k short pieces on every pass to each
//!     other (counted): 123-166 MB/s against 276-292 in a fresh process. Now a full Short turns
//!     new pieces away until it has turned away as many as it holds, then starts again (as Big
//!     did): 207 MB/s. Bench-sized corpora (2 MB each, then docs): the 200k lines column
//!     (which passes the budget) +31-35% (1 thread), +8-11% (2 threads); o200k +3-8%.
//!   * Tried, not kept: 32-byte Short entries (bytes 9..16 inline, up to six 18-bit ids, so
//!     pieces of 4-6 ids skip Big): docs 0.91x (footprint). A 4096-entry direct-mapped front
//!     table (64 KiB) of pieces up to 8 bytes before Short: o200k code +1%, English 0.94x,
//!     docs 0.89x. Aging (a bit per entry set when it is stored or found; rebuilds keep only
//!     the entries that have it, so that a column after other text gets a table of its own
//!     size), with three triggers: at growth, sized by the live count (the table stayed at 16K
//!     slots and thrashed, or kept the stale ones); after as many stores as the last sweep
//!     kept (Short: docs after other text 197-229 vs 193-206 MB/s; in Big the windows
//!     shrank below the pieces' recurrence: multilingual 6 -> 26 ms a pass); after as many
//!     stores as the table holds (never fires while the table can still grow). Looking
//!     short pieces up in Big first when their (first byte, length) had more than 3 ids
//!     lately (a 2-bit counter per pair; a failing Short probe walks ~8 slots at load 3/4):
//!     docs 0.95x, English 0.96x, multilingual 1.03x.
//!     Two generations of Short (a new table once the pieces encoded since the last rotation
//!     pass a quarter of it, found pieces moved over from the old one): no change, and a
//!     history of English, code and the dictionary (Short pieces) does not slow docs down at
//!     all. A multilingual history does (its many pieces of more than 3 ids fill Big): docs
//!     after it 165-184 vs 222-232 MB/s fresh. Two generations of Big, the same rule checked
//!     when a thread binds its cache: one thread, docs after multilingual 196-204, after the
//!     four corpora 184-193 (was 158-161), fresh +-1%; but two threads 3x slower on docs
//!     (tasks go to whichever thread is free, so each thread meets a different half of the
//!     rows every call, keeps encoding pieces it has not seen, rotates again and drops the
//!     pieces the other half held): reverted.
//!     Still open: a column after multilingual text runs 10-25% below a fresh process (its
//!     pieces of more than 3 ids spread over a Big table that holds the earlier ones).
//! - Session 7 (bench/ab_builds.py, 15 rounds, in-process; and separate processes alternated):
//!   * Probe order, not size: code after English ran 12-19% below a fresh process, and so
//!     did a Short table rebuilt to exactly the fresh one's size and contents (epoch stamps in
//!     three spare answer bits; rebuilt with the entries used in the last two epochs when fewer
//!     than 3/4 were used: 257-283 MB/s against 294-319 without and 356-378 after dropping the
//!     caches; the stamps alone cost 4.5-7%). A fresh table holds pieces in first-seen order,
//!     so frequent ones sit in their home slots; growth and rebuilds rehash in slot order and
//!     put hot pieces behind cold ones, each extra probe a compare and a mispredicted branch.
//!   * So a hit past its home slot swaps the piece into it (`Short.moveHome`; every slot from
//!     the other piece's home to the hit's is occupied, so it stays reachable): cl100k code
//!     1.155-1.164x, lines 1.04-1.07x, multilingual 1.04-1.06x, English 1.04-1.05x,
//!     dictionary 1.03x, docs 0.96-1.00x; o200k code 1.17x, English 1.06x, dictionary 1.04x,
//!     docs 1.02x. Separate processes: code after English 292-332 -> 344-446 MB/s; docs after
//!     the four corpora median 179 -> 187, fresh 228 both.
//!   * Tried, not kept: moving one slot toward home per hit (code 1.11x, English 1.01x, docs
//!     0.96x); moving on 1 in 2 or 1 in 4 displaced hits (docs 0.955x / 0.974x, code 1.13x);
//!     the same swap in Big's slots (+-2%).
//!   * First pass (a corpus job's shape: `python bench/bench_cold.py --corpora stream`, 33 MB of
//!     every corpus's paragraphs shuffled, batches of 4,000 rows, each encoded once): perf put
//!     18% of it on the pair table's loads in the merges of new pieces (4 MB cl100k, 8 MB
//!     o200k). The pieces' pair lookups that miss the thread's pair cache now ask the
//!     long-piece tables' 512 KB Bloom filter first (most pairs of a merge run do not merge):
//!     first pass o200k 45-46 -> 51-53 MB/s, cl100k 49-55 -> 54-58 (separate processes,
//!     alternated); steady state 0.98-0.99x (noise). Not kept: a 128 KB Bloom filter of Big's
//!     short pieces, to skip the Big probe after most Short misses (perf: 10% of the first
//!     pass on that probe): +1-3%, noise. The long-piece encoder for new pieces from 5, 9 or
//!     17 bytes instead of 33: no change on the stream (43.5-48.3 MB/s all four).
//!   * Prefetching again, now that hot pieces sit at home: the next block decided one block
//!     ahead (its scan reused) and its pieces' slots prefetched, one piece ahead on the scalar
//!     path, only while the table is past 64K slots: docs 0.97x fresh, 1.01-1.10x after the
//!     benchmark's history, lines 0.99x. Not kept (the same verdict as sessions 3-4). Nor a
//!     chunk of 128 pieces decided first (a resumable piece producer), their slots prefetched
//!     into L2, then looked up (gigatoken stages a chunk this way): docs 0.99-1.00x warm,
//!     1.025x after the history, 1.06x cold; lines 1.005x (0.86x when rows under 256 bytes
//!     used it too). perf's 45% on the slot load is mostly overlapped already.
//!   * What is left of the history effect is the table's size: the 20k documents after the
//!     multilingual corpus run 10-13% slower, and dropping Short (not Big) after two calls of
//!     them gives it back (`bench/ab_builds.py --history` replays what the benchmark's process
//!     encoded before a row). Aging Short by epochs (the stamps above, checked in the same
//!     compare as the length, so that a hit costs no extra branch; an epoch ends after 32
//!     bytes of input per slot, doubling while few pieces are added, or as soon as a quarter
//!     of the entries are new; at its end, a table twice the size its used entries need is
//!     rebuilt with the entries used in the last two epochs): docs after the benchmark's
//!     history 1.10x, code after English 1.12x, but steady state 0.95-1.0x, 200k lines after
//!     the history 0.91x, and a first pass over many short documents (the 20k documents one
//!     call each) thrashed: each short epoch of a first pass adds a quarter of new pieces, so
//!     the table was rebuilt to 16K slots over and over and kept only ~10k of the corpus's
//!     112k pieces. A corpus job is a first pass: not kept.
//! - Session 8: the history effect, measured where it can be: this machine's noise is per
//!   process (one config gave 141-236 MB/s on the 20k documents over six processes; not the
//!   CPU it ran on, not huge pages), so /tmp-style A/B across processes cannot see 10-20%.
//!   Two copies of one library in one process, only one given a history, timed interleaved
//!   (the same code, so any gap is the tables' state): the 20k documents after the
//!   benchmark's english, code, multilingual and dictionary columns ran at 0.84-0.90x of the
//!   fresh copy (multilingual alone 0.90x, dictionary alone 0.92x, English or code alone
//!   1.0x). After that history Short held 134k entries in 187k slots and Big 69k in 262k
//!   slots (4.5 + 6.3 MB against 3.0 + 5.2 MB fresh); dropping both tables before the docs
//!   gave 0.94-1.02x, dropping either one alone did not. In the full benchmark the same row
//!   went 237 MB/s alone -> 149 after the other corpora (gigatoken 194 -> 188).
//!   * So the tables age (`PieceCache.age`): a window of 128 bytes of text per entry the
//!     tables hold (never shrinking; times the threads a job spreads its tasks over; at least
//!     two tasks in its second half; text in pieces no table holds does not count), whose
//!     second half records which entries were found or stored (a bit per Short slot, a
//!     header bit in Big's arena). At its end a table with a quarter of its entries unused,
//!     or an eighth and a quarter more slots than its used ones need, keeps only those:
//!     Short by a rehash into a table of their size (or, at the budget, where two tables do
//!     not fit, by backward-shift removal in place), Big by sliding its live entries to the
//!     front of its arena and rebuilding its slots. If half of what a drop removed is back by
//!     the next window, nothing is dropped and that thread's windows double. Same-process
//!     history A/B: 0.99-1.02x of fresh (0.84-0.88x before, in the same runs). Full benchmark
//!     (`bench/results/bench-20261129-155728.md`): one thread ÷ gigatoken on the 20k documents 1.05 / 1.40x
//!     (0.85 / 0.97x in the last run before), every other column row up too; doc mode
//!     multilingual cl100k 207 -> 306 MB/s. Steady state (one column over and over) 0.96-1.0x,
//!     within this machine's noise. The 33 MB first-pass stream (bench_cold, alternated): cl100k
//!     74-79 vs 65-66 MB/s; o200k 60 vs 67-68 in two pairs, 63.5-67.5 vs 61.7-72.0 in three
//!     more (noise).
//!   * Tried first, not kept: marking on every lookup (the whole window): 0.96-0.98x steady;
//!     a window of 16 lookups per entry of Short alone that shrank with the table: the 200k
//!     lines (a column whose sections each have their own pieces) thrashed at 0.42x, each
//!     smaller table a shorter window that missed more of the column; rebuilding only when
//!     half the entries were unused: never fired after the benchmark's history (61-78% of
//!     the entries were the docs' own, yet the table had grown 1.5x around the stale ones);
//!     a window counted per thread without the job's thread count: two threads on the lines
//!     dropped a fifth of their pieces every window (each thread meets a random half of the
//!     tasks per call), 0.78x; 64 bytes per entry: the English books one call per book
//!     (57 bytes of text per entry per pass) dropped the other books' pieces every window,
//!     doc mode 0.24x; counting every byte: the pathological inputs (1 MB of one letter,
//!     spaces, ...) ended windows that met no English piece, 1 MB of English 11 ms instead
//!     of 2.7.
//! - Session 9 (the corpus stream of bench_cold.py: 33 MB, 91k rows, 511k distinct pieces,
//!   6.46M pieces; in-process A/B of two builds, batches alternated, CPU time per build:
//!   bench/ab_stream.py):
//!   * Where a first pass goes: encodePieceUncached (the merges of new pieces) ~40% of the
//!     library's time, of which 15% was the whole-piece lookup tiktoken does first (a miss
//!     in the 2 MB vocabulary table), ~22% the pair table's loads, ~7% the pair cache's.
//!   * The whole-piece lookup is skipped where every token's bytes merge back into that token
//!     (`longpiece.Tables.all_usable`, checked at load; true for cl100k and o200k): the merge
//!     then gives the same answer. First pass +4% (cl100k) / +7% (o200k).
//!   * What the tables hold on that stream (counted): at 16 MiB a thread Big held 82-131k
//!     pieces in 10 MiB (2 MiB of slots, an 8 MiB arena), so Short stopped at 186,624 slots
//!     (140k pieces); a pass merged ~600k short pieces and ~75k long ones again. With 128 MiB
//!     the second pass ran at 208-223 MB/s (gigatoken, which keeps every piece: 223), with the
//!     default 32 (over two CPUs) at 68-78: the budget, not the code, bounds a second pass
//!     over 33 MB of mixed text. (The 100 MB memory check leaves no room for a bigger default.)
//!   * At the budget the tables started again empty once they had turned away as many pieces
//!     as they held, frequent pieces thrown out with rare ones. Now they are clocks: lookups
//!     mark, and once a quarter of the count has been turned away the entries no lookup found
//!     since the last sweep go (Short by backward-shift removal, Big by compaction in place,
//!     memory kept). With the skipped lookup: first pass 1.13x (both encodings), later passes
//!     1.12-1.15x (cl100k) and 1.18-1.35x (o200k). Sweeping after half or an eighth of the
//!     count: 0.95-1.12x and 0.78-0.98x of a quarter. Steady columns do not reach the budget
//!     (the 200k lines: 132k short pieces after the benchmark's other corpora, not full):
//!     lines 0.975-1.02x, docs 1.003x, English 1.004x (noise).
//!   * Did not pay: a pair cache of 2^17 entries (0.92-0.94x) or 2^13 (1.00-1.03x).
//!   * Two threads rebuilt their tables every ~15 calls of the same English column: the pool
//!     handed tasks to whichever thread was free, so each thread met a different part of the
//!     column every call, and its windows (even at twice the length) found a fifth of its
//!     entries unused. The pool now keeps each thread on its own range of tasks (pool.zig:
//!     two threads 1.03-1.17x), and the windows no longer grow with the job's threads, which
//!     on 16 threads made them 16 times longer than a thread's own text needs. Two threads:
//!     the 20k documents after the other corpora 1.045-1.078x, the 200k lines after theirs
//!     0.97-1.00x, multilingual after English and code 0.98x; steady 0.99-1.016x.
//!   * encode_arrow on two threads runs 8-20% below count_tokens_arrow in the benchmark's
//!     process (3-4% in a process of its own): each task's ids are copied into the output,
//!     cache-cold. Not kept: that copy through glibc's memcpy (rep movsb) instead of
//!     compiler_rt's: 20k documents 1.011x, lines 0.979x (two threads, caches evicted before
//!     each call); 4 tasks a thread instead of 16 (fewer, bigger buffers): 0.99-1.016x.
//! - Session 10 (whole corpus files instead of bench.py's 2 MB cuts; the first 16-core runs,
//!   on the device machine: Sapphire Rapids, 16 vCPUs under KVM; bench/bench_scaling.py):
//!   * The budget was divided by the machine's CPUs whatever the job: a one-thread call got
//!     16 MiB on two CPUs and 4 MiB on 16. The whole multilingual column (9.5 MB, 297k
//!     distinct pieces, 21% of its pieces short with more than 3 tokens, so in `Big`) ran at
//!     71 MB/s on one thread against 142-174 with ARROWTOK_CACHE_MB=64 (gigatoken 235). Now
//!     the budget is divided by the threads of the job (`threadCap`, `Scratch.bind`): one
//!     thread 2.15x on that column (in-process A/B), English whole files 1.06x. With a 4 MiB
//!     floor a thread, 16 threads passed the memory check (output + 89.7 MiB); with 1 MiB,
//!     output + 55.3 MiB (device, the final build).
//!   * Still short on that column fully cached: with 512 MiB, 145-165 MB/s (English ~400):
//!     ~42 ns a piece against ~11, all in lookups of tables far bigger than L2. Prefetching
//!     the next 8 pieces' Short and Big slots in the scalar scanner's loop (where the tables
//!     pass 128K slots): multilingual 0.967x, documents 0.947x, lines 0.972x: reverted.
//!   * Task buffers on two threads with 20 MB columns: the 18 MB of ids passed bufcache's
//!     16 MiB, so every task buffer was mapped, faulted, zeroed and unmapped every call
//!     (perf: 23% of the time in the kernel, clear_page 5.7%, TLB-shootdown IPIs 1.4%).
//!     32 MiB and a lock tried for a few microseconds instead of once: English 1.26-1.28x,
//!     documents 1.23-1.25x; bench-sized columns 0.99-1.08x. On 16 threads, 40 MB columns:
//!     1.045x / 1.013x (there 256 tasks pass the 64 slots; 4 tasks a thread instead of 16,
//!     64 in all, gave 1.009x / 0.957x and put the 16-thread memory check at output + 76.5
//!     MiB, bigger tasks keeping more ids in flight during the copy: not kept).
//!   * Measuring scaling in one process: the one-thread calls must come from a thread of their
//!     own. The caller of a 16-thread call runs range 0; its aging trimmed the tables its
//!     one-thread calls over the whole column had grown: one-thread English 118-136 MB/s
//!     that way against ~260 alone (bench.py's same-process twins and bench_scaling now use
//!     a Python thread of their own).
//!   * The device's own ceiling, sha256 on 16 threads at once against one after the other:
//!     9.1-9.8x in two leases, 13.8x in a third; one-thread speeds varied as much between
//!     leases (English 261 MB/s in one, 155 in another).
//!   * 16 threads ÷ one, count_tokens_arrow on 40 MB columns: code 7.5-9.6x, dictionary
//!     7.0-7.8x, lines 7.5-7.7x, English 5.9-7.9x, multilingual 2.9-5.2x, documents 2.9-4.9x.
//!     The rows with many distinct pieces scale worst, which fits the tables being per thread:
//!     16 threads keep up to 16 copies of a column's common pieces, and the shared L3 holds
//!     less of each (not measured directly: no counters there). ARROWTOK_CACHE_MB=64 (4 MiB a
//!     thread) did not change the multilingual row (count 410 -> 393 MB/s) but ran the
//!     documents 1.1-1.7x and the lines 1.1-1.9x faster on 16 threads (but puts the 100 MB
//!     memory check over output + 64 MiB there). Next: one read-mostly table shared by the
//!     threads (published snapshots of what the threads merged, private tables for the rest):
//!     more pieces per byte of budget, and one copy in L3.
//! - Session 11 (in-process A/B, one thread, `bench/ab_builds.py --cold`, 15 rounds):
//!   * count_tokens_arrow has an encode loop of its own (the count_only flag a compile-time
//!     parameter): a piece found in `Short` writes no ids, a one-byte piece reads no byte
//!     table. count: English 1.123x / 1.108x (cl100k / o200k), code 1.135x / 1.128x, docs
//!     1.064x / 1.069x, dictionary 1.070x / 1.130x; encode unchanged.
//!   * The vocabulary's tables (pair table 4 / 8 MB, token table, long-piece records, trie,
//!     Bloom filter) on transparent huge pages (hugealloc.zig; `Short` already was):
//!     random-letter word 1.025x (cl100k and o200k), CJK 1.00x, corpus stream and columns
//!     +-2% (noise). The process's RSS grows by ~5 MB (tables rounded to 2 MiB). `Big` on huge
//!     pages too: no gain (+-2%, o200k multilingual whole 1.048x once), and the 100 MB memory
//!     check on 16 threads rose from output + 57.2 to + 66.6 MiB (each thread's arena and
//!     slots faulted in 2 MiB at a time, past what the budget counts): reverted.
//!   * `shortKeyAt` with BZHI (v3 and v4 builds) instead of two mask-table loads: o200k code
//!     1.020-1.026x over four runs, dictionary 0.99-1.02x, English 1.017x / 0.99x.
//!   * Many threads, measured by proxy on two cores (`count_tokens_arrow` with 16 threads on
//!     this 2-CPU machine, MB per CPU-second, 20 MB columns): the 20k documents ran at 52
//!     against 211 on one thread, and at 133 with ARROWTOK_CACHE_MB=512: 2.5x of that extra
//!     work is the per-thread budget (2 MiB a thread: each thread merges again the pieces
//!     its tables cannot hold). English ran at 248 against 467 either way (16 threads' tables
//!     time-sharing two cores' L2, an artefact of the proxy). Evidence for the shared
//!     read-only table of session 10's notes:
//!   * `Snap`: after a job on 4+ threads (under the pool, workers idle), the threads' `Short`
//!     and `Big` tables are merged into one read-only snapshot (at most 8 MiB, reference
//!     counted, taken out of the threads' budget), which the next jobs' threads probe first;
//!     rebuilt when more than an eighth of a job's cached pieces came from the threads' own
//!     tables. Its short pieces sit in a sparse table: it cannot move hot pieces home as
//!     `Short` does, and at load 3/4 the proxy ran English at 262 MB per CPU-second, 1/2 387,
//!     1/3 478, 1/6 548 (kept: 1/6, at most 5 MiB). Short pieces only (a first version):
//!     multilingual 103 -> 115; with `Big`'s pieces: 314-359.
//!     Proxy, 16 threads on 2 cores, count, 20 MB columns, MB per CPU-second, before -> after
//!     (one thread of the same build in brackets): English 322 -> 529 (525), o200k 271 -> 542
//!     (504); code 401 -> 592 (605), o200k 378 -> 596 (583); multilingual 89 -> 351 (354), o200k
//!     76 -> 355 (368); dictionary 233 -> 428 (443), o200k 182 -> 456 (437); documents 64 -> 207
//!     (263), o200k 55 -> 213 (268); lines 147 -> 229 (280), o200k 133 -> 286 (306). So 16
//!     threads now spend about one thread's CPU per byte where they spent 1.5-4.8x. The 33 MB
//!     corpus stream on 8 threads: 1.07x (first pass), 1.19x (second). One and two threads
//!     0.96-1.02x (noise: the lookup order is a compile-time variant of the encode loop,
//!     chosen per segment). Not measured on 16 real cores (no device this session): there the
//!     proxy's L2 time-sharing is absent, and the gain should come from one copy of the common
//!     pieces in L3 and from capacity.
//!     Memory: tables that had grown to their share before a snapshot existed keep their size,
//!     so a process can hold its budget plus one snapshot (8 MiB). The build's first table
//!     (pieces with repeats) at 8 MiB put the 100 MB check on 16 threads at output + 61.8 MiB;
//!     at 4 MiB, + 56.3 (8 threads + 56.1, 2 threads + 47.9).
//!     Only where the threads' own tables are at their budget: where they hold the column they
//!     are faster than the snapshot (the snapshot on every two-thread job, real cores, default
//!     budget: English 0.885x, documents 0.916x, lines 0.957x, multilingual 0.897x). Gated on
//!     half the job's tables being full: two threads with 2 MiB each (ARROWTOK_CACHE_MB=4,
//!     what 16 threads get), in-process A/B, 10 MB columns: documents 1.28x, lines 1.36x,
//!     multilingual 3.93x, English 1.004x (not full: no snapshot); default budget 0.99-1.02x.
//!     A stale snapshot (an eighth of the pieces from the threads' tables) over tables that hold
//!     the text again is dropped. 16 threads on two cores with the gate: English 504 / 519,
//!     multilingual 374 / 373, dictionary 461 / 440, documents 220 / 272, lines 262 / 269; code
//!     422 / 385 (not full: as before).
//!     Bugs met on the way: `@min` of a usize and a constant narrowed the size to u18 and the
//!     product wrapped in ReleaseFast (tables sized from garbage; now typed); the copies checked
//!     for room before looking for the piece (a full table refused pieces it held).
//!   * The task→output copy of a two-thread encode is not what costs it the 5-20% against
//!     count: half the copy skipped (wrong ids, timing only) changed nothing measurable on the
//!     English column, cold, within this machine's noise (a neighbour held 0.3-0.5 of a CPU).
//! - Session 23: the test of a wrong drop counted every entry stored since the drop as a dropped
//!   piece coming back, so a new column that came right after a drop doubled the windows
//!   (twice on the benchmark's history: x4) and its tables kept the stale entries for many
//!   passes. Replaying the benchmark's process (one thread, cl100k; table states read through a
//!   debug export): the 20k documents after english, code, multilingual, dictionary and the
//!   documents one call each: before, Short 106,141 entries in 162,112 slots and windows x4
//!   for 20+ passes, 149-173 MB/s; now 82,650 in 121,344 (a fresh table's 82,650 / 124,416),
//!   windows x1, 177-198 MB/s in the same replays (separate processes, alternated: 166 /
//!   178 / 154 vs 178 / 177 / 182 MB/s medians; the machine's noise is as large as the
//!   effect, the table states are not). The 200k lines after all of that: before, Short
//!   153,060 / 243,328 and Big 97,732 / 262,144, x4, 86-91 ms a pass for 4 passes; now
//!   87,931 / 131,904 and 50,472 / 131,072 (the fresh tables) from the first pass, 49-51 ms.
//!   The same states as before on a fresh column, the documents one call each and the books
//!   one call each. Now the drop records its entries' hashes in a 128 KiB Bloom filter and
//!   `noteStored` counts the pieces stored again: a drop is wrong when half of it came back,
//!   or when half of what was stored since is dropped pieces. Corpus stream
//!   (bench/ab_stream.py, alternated orders): first pass 0.93x / 1.009x / 0.97x (o200k), later
//!   passes 0.98-1.00x: noise-level.
//!   The extra drops raised the 100 MB memory check on 2 threads (cl100k) from output + 48.4
//!   to + 54.3-55.7 MiB: Big's arena and slots came from malloc, and glibc, whose mmap
//!   threshold rises after large frees, kept the blocks freed by shrinking and regrowing in its
//!   heap (with MALLOC_MMAP_THRESHOLD_ fixed the gap was 1.6 MiB). They are mapped now
//!   (`mapTable`, as Short's): output + 38.7-42.2 MiB (cl100k) / + 13.9-14.3 (o200k) on 2
//!   threads, + 49.7 / 12.1 on 16 threads on the 2 cores (57.7 / 11.9 before); corpus stream
//!   1.017x / 0.983x, multilingual 1.028x (noise).
//! - Did not pay: a SIMD (8 x u32) min/first-index search in the O(n^2) merge scan (no change:
//!   the scan is not the bottleneck, the probes are); reverted.
//! - Session 23, not kept: a hot tier in front of a `Short` past L2 (the 20k documents and the
//!   200k lines: 186,624 slots, ~3 MB with bytes 9..16), on the idea that its frequent pieces,
//!   one to a cache line over all of it, do not stay in L2: sets of four (first-8-bytes key,
//!   packed answer) in one 64-byte line, 4096 or 8192 sets (256 / 512 KiB), pieces of 2..8
//!   bytes looked up there first, a `Short` hit entering its set newest first. In-process A/B
//!   (bench/ab_builds.py, 11-15 rounds, cl100k / o200k): 4096 sets docs 1.017x / 1.049x then
//!   0.976x / 0.985x, lines 0.978x / 0.963x then 1.007x / 1.030x; 8192 sets docs 0.984x /
//!   1.046x, lines 0.985x / 0.927x. Noise either way: the core's L2 already keeps the lines
//!   the frequent pieces sit in (the top 16K of the documents' short pieces cover ~80% of
//!   their occurrences, and 16K lines fill 1 MiB).
//!   Also noise on the 20k documents (15 rounds, cl100k / o200k): `Short.find` loading the
//!   entry and bytes 9..16 before one combined test instead of a short-circuit `and` (the two
//!   misses of a 9..16-byte piece already overlap) 1.023x / 0.981x; `Big.copyOut` copying up to
//!   8 ids as one 32-byte move instead of calling memcpy (2.1% of the profile) 1.004x / 1.028x.
//!   And slower: a front cache for Big's short pieces (the >3-id words of non-Latin scripts,
//!   6.5% of the documents' pieces under cl100k, `shortMiss` 12% of the profile): two 32-byte
//!   entries (16-byte key, up to six 19-bit ids) a 64-byte set, 8192 sets, entered on a Big
//!   hit, its line prefetched with Big's slot: docs 0.971x / 1.036x, multilingual 0.916x /
//!   0.977x, lines 0.961x / 0.981x (the extra probe and line on every Big lookup cost more
//!   than the arena misses it saves).
//!   Session 25, not kept (in-process A/Bs, 15-25 rounds, both orders; this session's machine
//!   read +-5-9% between orders of the same pair of builds): Big probed before Short for
//!   non-ASCII pieces (Short's slot prefetched meanwhile): docs cl100k 0.94x / 1.05x, o200k
//!   1.13x / 1.09x, reversed runs 0.99x / 0.94x; multilingual 1.01x / 0.97x. The encode loop's
//!   slot prefetch from 64K slots (1 MiB) instead of 128K: the 20k documents' table (121K
//!   slots since the aging fix) then prefetches: warm 1.01-1.07x, cold (`--cold`) 0.93-1.05x;
//!   lines 0.93-1.08x; at 32K slots dictionary 0.91-0.94x. No clear gain either way.
//!   Session 26, again slower (the front cache above, rebuilt before reading this note):
//!   direct mapped, 32-byte entries (16-byte key, up to six 18-bit ids), looked up first in
//!   `shortMiss`, filled on a Big hit or a merge, its line prefetched with Big's slot for
//!   non-ASCII pieces. 16K entries (512 KiB): docs cl100k 0.988x / 0.92x (both orders),
//!   o200k 1.007x / 0.97x, multilingual cl100k 0.91x / 0.89x; 64K entries (2 MiB): docs cl100k
//!   0.968x / 0.93x, multilingual 0.875x / 0.89x. ~24k distinct 4..6-id pieces in the
//!   documents conflict in the smaller table; the bigger one is as far from the core as Big.
//! - Long pieces: the binary heap made 1 MB of one letter ~11x slower than 1 MB of English
//!   (random letters 19x); longpiece.zig's backtracking encoder brings them to 0.4-3.3x (notes
//!   there). A radix/bucket queue for the heap was not tried.
const std = @import("std");
const builtin = @import("builtin");
const pretok = @import("pretok.zig");
const longpiece = @import("longpiece.zig");
const longpar = @import("longpar.zig");

pub const no_rank: u32 = std.math.maxInt(u32);
var next_serial: std.atomic.Value(u64) = .init(1);
const empty_slot: u64 = std.math.maxInt(u64);

pub const LoadError = error{ OutOfMemory, BadLine, DuplicateToken, MissingByte, TooLarge };

pub const Vocab = struct {
    gpa: std.mem.Allocator,
    pattern: pretok.Pattern,
    /// Token bytes of id k are bytes[offs[k]..offs[k+1]] (empty for an unused id).
    bytes: []u8,
    offs: []u32,
    /// slots[i] = (hash tag << 32) | id, or empty_slot.
    slots: []u64,
    mask: usize,
    byte_rank: [256]u32,
    max_token_len: usize,
    n_ids: u32,
    /// Unique per loaded vocabulary (tags thread-local piece caches).
    serial: u64,
    /// (left id, right id) -> id of their concatenation, for every way of splitting every token
    /// into two tokens: exactly the pairs whose bytes-concatenation is a token, so merging by
    /// ids equals tiktoken's merging by bytes. Slot = key(40 bits) << 20 | id(20 bits); empty = ~0.
    /// Empty when ids do not fit 20 bits (then merges look bytes up instead).
    pair_slots: []u64,
    pair_shift: u6,
    /// byte_pair[a << 8 | b] = pairRank(byte_rank[a], byte_rank[b]): the first merge level of every
    /// piece without hashing (256 KB, cache-resident).
    byte_pair: []u32,
    /// Merge-list vocabularies (Hugging Face BPE): the pair table maps (left, right) to the merge's
    /// priority (its index in the merges list) and merge_result[priority] is the merged id.
    /// Empty for tiktoken vocabularies, where the priority is the merged id itself.
    merge_result: []u32,
    /// Look the whole piece up before merging (tiktoken always; HF only with `ignore_merges`).
    whole_first: bool,
    /// Special tokens (for decode): id -> bytes.
    special_ids: []u32,
    special_bytes: []u8,
    special_offs: []u32,
    /// Tables of the backtracking encoder for long pieces (longpiece.zig); empty = heap merge.
    long: longpiece.Tables = .{},
    /// The short pieces shared by the threads of many-thread jobs (`Snap`).
    snaps: *SnapHolder,

    pub fn deinit(v: *Vocab) void {
        const gpa = v.gpa;
        if (v.snaps.cur) |sn| sn.destroy();
        gpa.destroy(v.snaps);
        v.long.deinit(gpa);
        gpa.free(v.pair_slots);
        gpa.free(v.byte_pair);
        gpa.free(v.merge_result);
        gpa.free(v.bytes);
        gpa.free(v.offs);
        gpa.free(v.slots);
        gpa.free(v.special_ids);
        gpa.free(v.special_bytes);
        gpa.free(v.special_offs);
        gpa.destroy(v);
    }

    /// Offsets of each id's bytes from their lengths (ids in order), and the byte buffer.
    fn setLengths(v: *Vocab, lens: []const u32) !void {
        v.offs = try v.gpa.alloc(u32, lens.len + 1);
        var acc: u32 = 0;
        for (lens, 0..) |l, k| {
            v.offs[k] = acc;
            acc += l;
            v.max_token_len = @max(v.max_token_len, l);
        }
        v.offs[lens.len] = acc;
        v.bytes = try v.gpa.alloc(u8, acc);
    }

    pub inline fn tokenBytes(v: *const Vocab, id: u32) []const u8 {
        return v.bytes[v.offs[id]..v.offs[id + 1]];
    }

    /// Rank of `s`, or no_rank if `s` is not a token.
    pub inline fn rank(v: *const Vocab, s: []const u8) u32 {
        if (s.len > v.max_token_len or s.len == 0) return no_rank;
        const h = hashBytes(s);
        const tag: u32 = @truncate(h >> 32);
        var i: usize = @as(usize, @truncate(h)) & v.mask;
        while (true) {
            const e = v.slots[i];
            if (e == empty_slot) return no_rank;
            if (@as(u32, @truncate(e >> 32)) == tag) {
                const id: u32 = @truncate(e);
                const t = v.tokenBytes(id);
                if (t.len == s.len and std.mem.eql(u8, t, s)) return id;
            }
            i = (i + 1) & v.mask;
        }
    }

    inline fn pairSlot(v: *const Vocab, key: u64) usize {
        return @intCast((key *% 0x9E3779B97F4A7C15) >> v.pair_shift);
    }

    /// The id a merge of priority r produces.
    pub inline fn mergedId(v: *const Vocab, r: u32) u32 {
        return if (v.merge_result.len == 0) r else v.merge_result[r];
    }

    /// Merge priority of (a, b): tiktoken: the id of bytes(a) ++ bytes(b); merge lists: the
    /// merge's index. no_rank if they do not merge.
    pub inline fn pairRank(v: *const Vocab, a: u32, b: u32) u32 {
        const key = (@as(u64, a) << 20) | b;
        const mask = v.pair_slots.len - 1;
        var i = v.pairSlot(key);
        while (true) {
            const e = v.pair_slots[i];
            if (e == empty_slot) return no_rank;
            if (e >> 20 == key) return @intCast(e & 0xFFFFF);
            i = (i + 1) & mask;
        }
    }

    fn buildPairs(v: *Vocab) !void {
        var count: usize = 0;
        var id: u32 = 0;
        while (id < v.n_ids) : (id += 1) {
            const t = v.tokenBytes(id);
            if (t.len < 2) continue;
            for (1..t.len) |i| {
                if (v.rank(t[0..i]) != no_rank and v.rank(t[i..]) != no_rank) count += 1;
            }
        }
        var bits: u6 = 4;
        while ((@as(usize, 1) << bits) < count * 2 + 16) bits += 1;
        v.pair_slots = try v.gpa.alloc(u64, @as(usize, 1) << bits);
        @memset(v.pair_slots, empty_slot);
        v.pair_shift = @intCast(64 - @as(u7, bits));
        const mask = v.pair_slots.len - 1;
        id = 0;
        while (id < v.n_ids) : (id += 1) {
            const t = v.tokenBytes(id);
            if (t.len < 2) continue;
            for (1..t.len) |i| {
                const a = v.rank(t[0..i]);
                const b = v.rank(t[i..]);
                if (a == no_rank or b == no_rank) continue;
                const key = (@as(u64, a) << 20) | b;
                var k = v.pairSlot(key);
                while (v.pair_slots[k] != empty_slot) k = (k + 1) & mask;
                v.pair_slots[k] = (key << 20) | id;
            }
        }
    }

    fn buildMergePairs(v: *Vocab, merges: []const [2]u32, bad_line: *u64) LoadError!void {
        var bits: u6 = 4;
        while ((@as(usize, 1) << bits) < merges.len * 2 + 16) bits += 1;
        v.pair_slots = try v.gpa.alloc(u64, @as(usize, 1) << bits);
        @memset(v.pair_slots, empty_slot);
        v.pair_shift = @intCast(64 - @as(u7, bits));
        v.merge_result = try v.gpa.alloc(u32, @max(merges.len, 1));
        const mask = v.pair_slots.len - 1;
        var buf: std.ArrayList(u8) = .empty;
        defer buf.deinit(v.gpa);
        for (merges, 0..) |m, r| {
            if (m[0] >= v.n_ids or m[1] >= v.n_ids) {
                bad_line.* = r + 1;
                return error.BadLine;
            }
            const a = v.tokenBytes(m[0]);
            const b = v.tokenBytes(m[1]);
            buf.clearRetainingCapacity();
            try buf.appendSlice(v.gpa, a);
            try buf.appendSlice(v.gpa, b);
            const merged = v.rank(buf.items);
            if (a.len == 0 or b.len == 0 or merged == no_rank) {
                bad_line.* = r + 1;
                return error.BadLine;
            }
            v.merge_result[r] = merged;
            const key = (@as(u64, m[0]) << 20) | m[1];
            var k = v.pairSlot(key);
            var dup = false;
            while (v.pair_slots[k] != empty_slot) : (k = (k + 1) & mask) {
                if (v.pair_slots[k] >> 20 == key) dup = true; // a later duplicate never wins
                if (dup) break;
            }
            if (!dup) v.pair_slots[k] = (key << 20) | @as(u64, @intCast(r));
        }
    }

    /// Bytes of any id (ordinary or special), or null if the id is unknown.
    pub fn idBytes(v: *const Vocab, id: u32) ?[]const u8 {
        if (id < v.n_ids) {
            const t = v.tokenBytes(id);
            if (t.len > 0) return t;
        }
        for (v.special_ids, 0..) |sid, k| {
            if (sid == id) return v.special_bytes[v.special_offs[k]..v.special_offs[k + 1]];
        }
        return null;
    }
};

inline fn read64(p: []const u8) u64 {
    return std.mem.readInt(u64, p[0..8], .little);
}
inline fn read32(p: []const u8) u64 {
    return std.mem.readInt(u32, p[0..4], .little);
}

/// Fast hash for short byte strings (tokens are short); Wyhash beyond 16 bytes.
pub inline fn hashBytes(s: []const u8) u64 {
    const n = s.len;
    var a: u64 = undefined;
    var b: u64 = undefined;
    if (n <= 3) {
        if (n == 0) return 0x9E3779B97F4A7C15;
        a = @as(u64, s[0]) | (@as(u64, s[n >> 1]) << 8) | (@as(u64, s[n - 1]) << 16);
        b = 0;
    } else if (n <= 8) {
        a = read32(s) | (read32(s[n - 4 ..]) << 32);
        b = 0;
    } else if (n <= 16) {
        a = read64(s);
        b = read64(s[n - 8 ..]);
    } else {
        return std.hash.Wyhash.hash(0x1234, s);
    }
    const m: u128 = @as(u128, a ^ 0xA0761D6478BD642F) *% @as(u128, b ^ 0xE7037ED1A0B428DB ^ @as(u64, n));
    return @as(u64, @truncate(m)) ^ @as(u64, @truncate(m >> 64));
}

fn decodeBase64(src: []const u8, dst: []u8) !usize {
    const dec = std.base64.standard.Decoder;
    const n = dec.calcSizeForSlice(src) catch return error.BadLine;
    if (n > dst.len) return error.BadLine;
    dec.decode(dst[0..n], src) catch return error.BadLine;
    return n;
}

/// Parses a `.tiktoken` file (lines of `base64(token) SP rank`).
/// On error, `bad_line` receives the 1-based line number.
pub fn loadTiktoken(gpa: std.mem.Allocator, pattern: pretok.Pattern, text: []const u8, bad_line: *u64) LoadError!*Vocab {
    // Pass 1: count lines and the maximum rank.
    var n_lines: usize = 0;
    var max_rank: u64 = 0;
    var it = std.mem.splitScalar(u8, text, '\n');
    var tmp: [1024]u8 = undefined;
    var total_bytes: usize = 0;
    var line_no: u64 = 0;
    while (it.next()) |raw| {
        line_no += 1;
        const line = std.mem.trimEnd(u8, raw, "\r");
        if (line.len == 0) continue;
        const sp = std.mem.findScalar(u8, line, ' ') orelse {
            bad_line.* = line_no;
            return error.BadLine;
        };
        const r = std.fmt.parseInt(u32, line[sp + 1 ..], 10) catch {
            bad_line.* = line_no;
            return error.BadLine;
        };
        if (r >= (1 << 24)) {
            bad_line.* = line_no;
            return error.TooLarge;
        }
        const blen = decodeBase64(line[0..sp], &tmp) catch {
            bad_line.* = line_no;
            return error.BadLine;
        };
        if (blen == 0) {
            bad_line.* = line_no;
            return error.BadLine;
        }
        total_bytes += blen;
        max_rank = @max(max_rank, r);
        n_lines += 1;
    }
    const n_ids: u32 = @intCast(max_rank + 1);

    const v = try newVocab(gpa, pattern, n_ids, true);
    errdefer v.deinit(); // frees whatever tables exist (empty slices are no-ops)
    // Lengths by id first (so the byte buffer is in id order).
    const lens = try gpa.alloc(u32, n_ids);
    defer gpa.free(lens);
    @memset(lens, 0);
    it = std.mem.splitScalar(u8, text, '\n');
    line_no = 0;
    while (it.next()) |raw| {
        line_no += 1;
        const line = std.mem.trimEnd(u8, raw, "\r");
        if (line.len == 0) continue;
        const sp = std.mem.findScalar(u8, line, ' ').?;
        const r = std.fmt.parseInt(u32, line[sp + 1 ..], 10) catch unreachable;
        const blen = decodeBase64(line[0..sp], &tmp) catch unreachable;
        if (lens[r] != 0) {
            bad_line.* = line_no;
            return error.DuplicateToken;
        }
        lens[r] = @intCast(blen);
    }
    try v.setLengths(lens);
    std.debug.assert(v.bytes.len == total_bytes);
    it = std.mem.splitScalar(u8, text, '\n');
    while (it.next()) |raw| {
        const line = std.mem.trimEnd(u8, raw, "\r");
        if (line.len == 0) continue;
        const sp = std.mem.findScalar(u8, line, ' ').?;
        const r = std.fmt.parseInt(u32, line[sp + 1 ..], 10) catch unreachable;
        _ = decodeBase64(line[0..sp], v.bytes[v.offs[r]..v.offs[r + 1]]) catch unreachable;
    }
    try finishLoad(v, n_lines, null, bad_line);
    return v;
}

/// An empty vocabulary for `n_ids` ids (tables are filled by the loaders; deinit frees any subset).
fn newVocab(gpa: std.mem.Allocator, pattern: pretok.Pattern, n_ids: u32, whole_first: bool) !*Vocab {
    const holder = try gpa.create(SnapHolder);
    errdefer gpa.destroy(holder);
    holder.* = .{};
    const v = try gpa.create(Vocab);
    v.* = .{
        .snaps = holder,
        .gpa = gpa,
        .pattern = pattern,
        .bytes = &.{},
        .offs = &.{},
        .slots = &.{},
        .mask = 0,
        .byte_rank = @splat(no_rank),
        .max_token_len = 0,
        .n_ids = n_ids,
        .serial = next_serial.fetchAdd(1, .monotonic),
        .pair_slots = &.{},
        .pair_shift = 63,
        .byte_pair = &.{},
        .merge_result = &.{},
        .whole_first = whole_first,
        .special_ids = &.{},
        .special_bytes = &.{},
        .special_offs = &.{},
    };
    return v;
}

/// Builds the lookup tables of a vocabulary whose bytes/offs are set: the bytes -> id table, the
/// single-byte ids, and the pair table (every two-token split for tiktoken; `merges` in order
/// for merge-list vocabularies). On error the caller frees `v` (tables allocated here included).
fn finishLoad(v: *Vocab, n_entries: usize, merges: ?[]const [2]u32, bad_line: *u64) LoadError!void {
    const gpa = v.gpa;
    const n_ids = v.n_ids;
    // Hash table at load factor <= 1/2.
    var cap: usize = 16;
    while (cap < n_entries * 2) cap <<= 1;
    v.slots = try gpa.alloc(u64, cap);
    @memset(v.slots, empty_slot);
    v.mask = cap - 1;
    var id: u32 = 0;
    while (id < n_ids) : (id += 1) {
        const t = v.tokenBytes(id);
        if (t.len == 0) continue;
        if (v.rank(t) != no_rank) {
            bad_line.* = 0;
            return error.DuplicateToken;
        }
        const h = hashBytes(t);
        var i: usize = @as(usize, @truncate(h)) & v.mask;
        while (v.slots[i] != empty_slot) i = (i + 1) & v.mask;
        v.slots[i] = (@as(u64, @as(u32, @truncate(h >> 32))) << 32) | id;
        if (t.len == 1) v.byte_rank[t[0]] = id;
    }
    for (v.byte_rank) |r| if (r == no_rank) return error.MissingByte;
    if (merges) |ms| {
        if (n_ids > (1 << 20) or ms.len >= (1 << 20)) return error.TooLarge;
        try v.buildMergePairs(ms, bad_line);
    } else if (n_ids <= (1 << 20)) {
        try v.buildPairs();
    }
    if (v.pair_slots.len > 0) {
        v.byte_pair = try gpa.alloc(u32, 1 << 16);
        for (0..256) |a| {
            for (0..256) |b| v.byte_pair[a << 8 | b] = v.pairRank(v.byte_rank[a], v.byte_rank[b]);
        }
        if (merges == null) {
            try longpiece.build(v);
            if (v.long.all_usable) try buildChar3(v);
        }
    }
    v.special_ids = try gpa.alloc(u32, 0);
    v.special_bytes = try gpa.alloc(u8, 0);
    v.special_offs = try gpa.alloc(u32, 1);
    v.special_offs[0] = 0;
}

/// A merge-list (Hugging Face) byte-level BPE vocabulary: token bytes with ids, and merges as
/// (left id, right id) in priority order. `bad_line` gets the 1-based index of a bad merge.
pub fn loadMerges(gpa: std.mem.Allocator, pattern: pretok.Pattern, data: []const u8, offs: []const u32, ids: []const u32, merges: []const [2]u32, ignore_merges: bool, bad_line: *u64) LoadError!*Vocab {
    bad_line.* = 0;
    var max_id: u32 = 0;
    for (ids) |i| max_id = @max(max_id, i);
    if (ids.len == 0 or max_id >= (1 << 20)) return error.TooLarge;
    const n_ids = max_id + 1;
    const v = try newVocab(gpa, pattern, n_ids, ignore_merges);
    errdefer v.deinit();
    const lens = try gpa.alloc(u32, n_ids);
    defer gpa.free(lens);
    @memset(lens, 0);
    for (ids, 0..) |id, k| {
        const l = offs[k + 1] - offs[k];
        if (l == 0 or lens[id] != 0) {
            bad_line.* = k + 1;
            return error.DuplicateToken;
        }
        lens[id] = l;
    }
    try v.setLengths(lens);
    for (ids, 0..) |id, k| @memcpy(v.bytes[v.offs[id]..v.offs[id + 1]], data[offs[k]..offs[k + 1]]);
    try finishLoad(v, ids.len, merges, bad_line);
    return v;
}

pub fn setSpecials(v: *Vocab, data: []const u8, offs: []const u32, ids: []const u32) !void {
    const gpa = v.gpa;
    const new_ids = try gpa.dupe(u32, ids);
    errdefer gpa.free(new_ids);
    const new_bytes = try gpa.dupe(u8, data);
    errdefer gpa.free(new_bytes);
    const new_offs = try gpa.dupe(u32, offs);
    gpa.free(v.special_ids);
    gpa.free(v.special_bytes);
    gpa.free(v.special_offs);
    v.special_ids = new_ids;
    v.special_bytes = new_bytes;
    v.special_offs = new_offs;
}

/// Scratch memory for one encoding thread. Grows to the longest piece seen; never shrinks
/// below `keep_max` bytes of capacity between calls.
pub const Scratch = struct {
    gpa: std.mem.Allocator,
    // heap path
    prev: std.ArrayList(u32) = .empty,
    next: std.ArrayList(u32) = .empty,
    part_rank: std.ArrayList(u32) = .empty,
    pair_rank: std.ArrayList(u32) = .empty,
    heap: std.ArrayList(u64) = .empty,
    // long-piece path: two bits per position (dead end, guess) and a table of answers
    dead: std.ArrayList(u64) = .empty,
    memo: std.ArrayList(u64) = .empty,
    // repaired text (errors="replace")
    text: std.ArrayList(u8) = .empty,
    /// This thread's piece cache (borrowed; set by `bind`).
    cache: ?*PieceCache = null,
    /// Threads one long piece may use (longpar.zig); 1 inside pool tasks.
    piece_threads: usize = 1,
    /// The vocabulary's shared snapshot of short pieces, held for this scratch's life (jobs on
    /// `snap_min_share` threads or more), and what its lookups found where.
    snap: ?*Snap = null,
    snap_tried: bool = false,
    snap_hits: usize = 0,
    own_hits: usize = 0,

    pub fn init(gpa: std.mem.Allocator) Scratch {
        return .{ .gpa = gpa };
    }
    /// Attach the calling thread's piece cache for vocabulary `v`. Call on the thread that encodes,
    /// with the number of threads its job spreads over (`share`: the thread's tables may hold
    /// the budget divided by it; see `threadCap`).
    pub fn bind(s: *Scratch, v: *const Vocab, share: usize) void {
        tl_share = @max(share, 1);
        s.cache = threadCache(v);
        if (!s.snap_tried and share >= snap_min_share) {
            s.snap_tried = true;
            s.snap = v.snaps.acquire();
        }
    }
    /// Counts `n` bytes of text toward the piece caches' aging window.
    pub inline fn noteText(s: *Scratch, n: usize) void {
        if (s.cache) |c| c.ticks += n;
    }
    pub fn deinit(s: *Scratch) void {
        if (s.snap) |sn| sn.release();
        s.snap = null;
        s.prev.deinit(s.gpa);
        s.next.deinit(s.gpa);
        s.part_rank.deinit(s.gpa);
        s.pair_rank.deinit(s.gpa);
        s.heap.deinit(s.gpa);
        s.dead.deinit(s.gpa);
        s.memo.deinit(s.gpa);
        s.text.deinit(s.gpa);
    }
};

const small_max = 96;

/// Piece -> tokens caches, one set per thread (thread-local: no sharing, no locks), tagged by
/// the vocabulary's serial (a thread that switches vocabulary starts them again).
/// - `Short`: pieces of 2..8 bytes that give up to 3 tokens, and `Wide`: pieces of 9..16 bytes
///   that give up to 6 (the bulk of real text), in growing open-addressing tables of 16-byte
///   (`NarrowEntry`) and 32-byte (`ShortEntry`) slots: a lookup reads one slot, key and answer.
/// - `Big`: every other piece of up to `big_piece_max` bytes, in a growing table over an arena.
/// - `pairs`: a direct-mapped cache of pair-table answers for the merges of pieces that miss.
/// Both growing tables count their memory in the thread's `tl_held`, kept under `threadCap()`,
/// and age (`PieceCache.age`): once the text has moved on, they keep only the pieces it still
/// uses, so a column does not pay for the tables of the text encoded before it.
/// A short piece (a `Wide` or `Snap` slot; v == 0: empty): its bytes 1..8 (`k0`) and 9..16
/// (`k1`), zero-padded; its length and first ids packed in `v` as len (5 bits) | n (2 bits: ids
/// here, up to 3) | three 19-bit ids; its 4th..6th ids, if any, in `v2` as their count (2 bits) |
/// three 19-bit ids (0: none).
///
/// Performance notes (session 30). Until then one table held every short piece of up to 3 ids
/// in 16-byte slots (k0, v), with k1 in a side array at the same index (read for pieces of 9+
/// bytes: a second cache line), and pieces of 4+ ids came from `Big` after a failing walk of
/// that table, then Big's slot, then its arena entry. perf (20k documents, cl100k, steady
/// state): 29% of the encode loop's samples on the slot's first load; 145-252 MB/s for the first
/// 1k / 4k documents' columns (tables in L2) against 192-219 for all 20k. An LRU model of a
/// 12k-line L2 over the documents' lookups (cl100k) put the misses a lookup at 0.32 for that
/// layout, 0.24 for one table of 32-byte slots, 0.20 for two tables split at 8 bytes.
/// - One table of 32-byte slots (k1 inline, up to 6 ids; session 6 had measured such slots at
///   0.91x on the documents): in-process A/B (bench/ab_builds.py, one thread, encode_arrow,
///   15-21 rounds, both orders): documents 1.03-1.04x / 0.99-1.02x (cl100k / o200k), 200k lines
///   0.95-0.98x / 1.03-1.06x, English 1.02x / 0.96x, code 1.02x, dictionary 1.02x, whole
///   multilingual files 1.155x / 1.064x; but the corpus stream's later passes (ab_stream.py)
///   0.50x: a third more bytes a piece, and a table that aging rebuilt smaller in the first
///   pass could not grow back under the 32 MiB budget (old and new tables both count while it
///   rehashes): 296k slots where the 16-byte layout kept 419k. With ARROWTOK_CACHE_MB=43 the
///   same table ran the third pass at 1.16x the old layout's (also given 43), the second at
///   0.64x (the drop and the growth back).
/// - Two tables, `Short` (2..8 bytes, 16-byte `NarrowEntry`, up to 3 ids) and `Wide` (9..16
///   bytes, these 32-byte slots, up to 6 ids): about the old bytes a piece, one line a lookup.
///   A branch on the length in `shortPiece` cost ~14 instructions and 0.23 mispredicted
///   branches a piece (callgrind, documents, cl100k, one steady pass: 179 -> 193 instructions,
///   1.33 -> 1.56 mispredictions); choosing the table by selects instead (stride, size, k1 and
///   v2 read from a zero word for narrow slots) made it 211 and 1.55. The encode loop's switch
///   on the length now has an arm for each table (`shortPieceIn`): 168 and 1.32. A/B against
///   the old layout (15 rounds): documents 1.069x / 1.053x, lines 0.986x / 1.024x, English
///   1.106x / 1.060x, code 1.028x / 1.016x; for the whole multilingual files, the corpus stream
///   and `prefetch_min_slots` see bench/HISTORY.md (session 30).
const ShortEntry = extern struct {
    k0: u64,
    v: u64,
    k1: u64,
    v2: u64,
};
/// A `Short` slot (pieces of 2..8 bytes, up to 3 ids): `ShortEntry` without k1 and v2.
const NarrowEntry = extern struct {
    k0: u64,
    v: u64,
};
const id_bits = 19;
const id_mask: u64 = (1 << id_bits) - 1;

/// The ids of a short-table answer into `out` (when `write`); returns how many.
inline fn unpack(v: u64, out: []u32, comptime write: bool) usize {
    const c: usize = @intCast((v >> 5) & 3);
    if (!write) return c;
    if (out.len >= 3) { // ids past c are 0; the caller keeps c of them
        out[0] = @intCast((v >> 7) & id_mask);
        out[1] = @intCast((v >> (7 + id_bits)) & id_mask);
        out[2] = @intCast(v >> (7 + 2 * id_bits));
    } else {
        out[0] = @intCast((v >> 7) & id_mask);
        if (c > 1) out[1] = @intCast((v >> (7 + id_bits)) & id_mask);
    }
    return c;
}

/// `unpack` of a `ShortEntry`'s two answer words.
inline fn unpack6(v: u64, v2: u64, out: []u32, comptime write: bool) usize {
    const c = unpack(v, out, write);
    if (v2 == 0) return c;
    const c2: usize = @intCast(v2 & 3);
    if (write) {
        out[3] = @intCast((v2 >> 2) & id_mask);
        if (c2 > 1) out[4] = @intCast((v2 >> (2 + id_bits)) & id_mask);
        if (c2 > 2) out[5] = @intCast(v2 >> (2 + 2 * id_bits));
    }
    return c + c2;
}
const big_piece_max = 512;
/// Entry = key(40 bits) << 24 | answer + 1 (0 = no merge); all-ones = empty.
const pair_bits = 15;
const PieceCache = struct {
    serial: u64,
    pairs: [1 << pair_bits]u64,
    short: Short,
    wide: Wide,
    big: Big,
    /// Aging (see `age`): bytes of text encoded and tasks begun since the window began, and
    /// the window's length in bytes (it never shrinks: a table rebuilt smaller must still be
    /// judged over a whole pass of a column that is bigger than the new window would be).
    ticks: usize,
    tasks: usize,
    window: usize,
    // (Windows used to be as many times longer as a job had threads, while the pool handed
    // tasks to whichever thread was free and each thread met a random share of a column per
    // call. Each thread now keeps its range of tasks (pool.zig), so a window counts its own
    // text like a single thread's: see the notes, session 9.)
    /// `tasks` when the window's marking half began.
    mark_tasks: usize,
    /// In the window's marking half (the tables mark then; at the budget they mark always).
    mark_half: bool,
    /// Windows are `scale` times longer on this thread since drops turned out wrong (see
    /// `age`); and the entry counts before and after the last drop (drop_from = 0: none).
    scale: usize,
    drop_from: usize,
    drop_to: usize,
    /// The hashes of the entries the last drop removed (a Bloom filter, two bits a key; empty
    /// until the first drop) and how many of those pieces have been stored again since: the
    /// test of whether a drop was wrong (`age`). Counting every new entry instead took a new
    /// column's own pieces for dropped ones coming back: the 20k documents after the
    /// benchmark's other corpora doubled their windows twice and kept the stale entries for
    /// ~23 passes.
    gone: []u64,
    returned: usize,
    stored: usize,

    const gone_words = 1 << 14; // 2^20 bits, 128 KiB

    inline fn goneBits(h: u64) struct { usize, u64 } {
        // (Bits Short's home slot and Big's slot do not start from.)
        return .{ @as(usize, @truncate(h >> 34)) & (gone_words - 1), (@as(u64, 1) << @intCast(h & 63)) | (@as(u64, 1) << @intCast((h >> 6) & 63)) };
    }

    fn goneAdd(c: *PieceCache, h: u64) void {
        const wb = goneBits(h);
        c.gone[wb[0]] |= wb[1];
    }

    /// A piece stored now (hash h): count it if the last drop removed it.
    inline fn noteStored(c: *PieceCache, h: u64) void {
        if (c.drop_from == 0 or c.gone.len == 0) return;
        c.stored += 1;
        const wb = goneBits(h);
        if (c.gone[wb[0]] & wb[1] == wb[1]) c.returned += 1;
    }

    /// Empties the filter for a new drop; false if it cannot exist (the budget or mmap said no).
    fn goneReset(c: *PieceCache) bool {
        c.returned = 0;
        c.stored = 0;
        if (c.gone.len == 0) {
            if (tl_held + gone_words * 8 > threadCap()) return false;
            c.gone = mapTable(u64, gone_words) orelse return false;
            tl_held += gone_words * 8;
            return true;
        }
        @memset(c.gone, 0);
        return true;
    }

    fn goneRelease(c: *PieceCache) void {
        if (c.gone.len == 0) return;
        unmapTable(u64, c.gone);
        tl_held -= gone_words * 8;
        c.gone = &.{};
        c.returned = 0;
        c.stored = 0;
    }

    /// A window is this many bytes of text per entry the tables hold: a column's working set
    /// recurs within it (the 20k documents: ~35 bytes of text per entry per pass; the English
    /// books: ~57), so its marking half sees every piece of a repeated workload.
    const window_per_entry = 128;

    /// Once a window has passed (at a task's start, so never inside one): a table whose
    /// entries went largely unused in its marking half keeps only the used ones (`agedOut`):
    /// the text has moved on (another column, another corpus). A table bigger than the working
    /// set costs every lookup cache and TLB misses: the 20k documents after the benchmark's
    /// four other corpora ran at 0.84-0.90x of a fresh table, 0.94-1.02x with both dropped.
    /// A first pass never trips it (what it stores counts as used). If half of what the last
    /// drop removed has come back since, or the pieces stored since are mostly dropped ones,
    /// the window was shorter than the text's recurrence (books encoded one call each at 64
    /// bytes per entry ran at 0.24x): nothing is dropped and this thread's windows double.
    /// "Come back" is counted exactly since session 23 (`gone`, `noteStored`); counting every
    /// new entry took a new column's own pieces for dropped ones.
    fn age(c: *PieceCache) void {
        const before = c.short.count + c.wide.count + c.big.count;
        // Half of the dropped pieces back, or the pieces stored since mostly dropped ones (a
        // window shorter than the text's recurrence brings them back over several windows).
        const came_back = c.drop_from != 0 and if (c.gone.len != 0)
            c.returned * 2 >= c.drop_from -| c.drop_to or (c.stored >= 64 and c.returned * 2 >= c.stored)
        else // (no filter: the budget or mmap said no) every new entry counts
            before > c.drop_to and (before - c.drop_to) * 2 >= c.drop_from - c.drop_to;
        if (came_back) {
            c.scale = @min(c.scale * 2, 1024);
            c.drop_from = 0;
            c.short.clearUsed();
            c.wide.clearUsed();
            c.big.clearLive();
        } else {
            const rec = c.goneReset();
            c.short.age(if (rec) c else null);
            c.wide.age(if (rec) c else null);
            c.big.age(if (rec) c else null);
            const after = c.short.count + c.wide.count + c.big.count;
            if (after < before) {
                c.drop_from = before;
                c.drop_to = after;
            } else c.drop_from = 0;
        }
        // Tables at the budget keep marking: their clocks sweep on the bits (`Short.put`).
        c.short.marking = c.short.full;
        c.wide.marking = c.wide.full;
        c.big.marking = c.big.full;
        c.mark_half = false;
        c.ticks = 0;
        c.tasks = 0;
        c.window = @max(c.window, window_per_entry * (c.short.count + c.wide.count + c.big.count));
    }

    /// `filtered`: a miss asks the long-piece Bloom filter before the pair table (callers that
    /// checked it already, the long-piece search, pass false).
    inline fn pairRank(c: *PieceCache, v: *const Vocab, a: u32, b: u32, comptime filtered: bool) u32 {
        const key = (@as(u64, a) << 20) | b;
        const slot = &c.pairs[@intCast((key *% 0xD6E8FEB86659FD93) >> (64 - pair_bits))];
        const e = slot.*;
        if (e >> 24 == key and e != empty_slot) {
            const ans: u32 = @intCast(e & 0xFFFFFF);
            return if (ans == 0) no_rank else ans - 1;
        }
        // Most pairs of a piece's merge run do not merge; the long-piece tables' Bloom filter
        // (512 KB) answers most of those without the pair table (4-8 MB, a cache miss).
        const r = if (filtered and v.long.pair_filter.len != 0 and !v.long.mayPair(a, b)) no_rank else v.pairRank(a, b);
        slot.* = (key << 24) | (if (r == no_rank) 0 else @as(u64, r) + 1);
        return r;
    }
};

const huge_page = 2 << 20;

// ---------------------------------------------------------------------------------------------
// Short pieces shared by the threads of a job

/// Jobs on at least this many threads look short pieces up in the vocabulary's snapshot first.
pub const snap_min_share = 4;
/// A snapshot's size limit, and the bytes of the live ones (taken from the threads' budget).
const snap_max_bytes: usize = 8 << 20;
var snap_bytes: std.atomic.Value(usize) = .init(0);

/// A read-only table of short pieces (the layout of `Wide`, the probing of both), built at the end of
/// a many-thread job from what its threads' tables held (`publishSnapshot`), then looked up by
/// every thread of the next jobs before their own tables. Per-thread tables alone keep a copy
/// of a column's common pieces on every thread: on 16 threads each has 1/16 of the budget and
/// merges again what it cannot hold (16 threads on two cores spent 2.5x the CPU per byte on
/// the 20k documents for it). Never written after it is published; freed when the last
/// scratch that holds it lets go.
pub const Snap = struct {
    entries: []ShortEntry,
    count: usize,
    /// The pieces of `Big` (more than 6 tokens, or 17..512 bytes), read-only: `marking` stays
    /// false, so its lookups write nothing.
    big: Big = .{},
    /// Holders: the vocabulary's `SnapHolder` while current, plus one per scratch (guarded by
    /// `snap_mu`).
    refs: usize,
    holder: *SnapHolder,

    /// `Short.find`'s probe without its upkeep. (One probe function for both, returning the
    /// slot, cost `Short.find` 2-10%: count_tokens_arrow on the 20k documents 0.896x.)
    inline fn peek(sn: *const Snap, key: ShortKey, len: usize, out: []u32, comptime write: bool) ?usize {
        const n = sn.entries.len;
        var i = Short.home(key.h, n);
        while (true) {
            const e = &sn.entries[i];
            if (e.k0 == key.k0 and e.v & 31 == len and e.k1 == key.k1) return unpack6(e.v, e.v2, out, write);
            if (e.v == 0) return null;
            i = if (i + 1 == n) 0 else i + 1;
        }
    }

    fn bytes(sn: *const Snap) usize {
        return sn.entries.len * @sizeOf(ShortEntry) + sn.big.slots.len * 8 + sn.big.arena.len * 4;
    }

    /// Copies a `Big` entry (header, bytes, ids) unless its piece is there; false when it is not
    /// and the arena or the slots (load 1/2) are full.
    fn addBig(sn: *Snap, src: *const Big, o: usize) bool {
        const b = &sn.big;
        const hdr = src.arena[o] & ~Big.live_bit;
        const len: usize = hdr & 0xFFFF;
        const words = Big.entryWords(hdr);
        const piece = src.entryBytes(o, len);
        const h = pieceHash(piece);
        const mask = b.slots.len - 1;
        const tag = Big.tagOf(h);
        var i: usize = @as(usize, @truncate(h)) & mask;
        while (b.slots[i] != 0) : (i = (i + 1) & mask) {
            const sl = b.slots[i];
            if (sl >> 40 != tag) continue;
            const q: usize = @intCast((sl & Big.off_mask) - 1);
            if (b.arena[q] & 0xFFFF == len and std.mem.eql(u8, b.entryBytes(q, len), piece)) return true;
        }
        if (b.used + words > b.arena.len or (b.count + 1) * 2 > b.slots.len) return false;
        @memcpy(b.arena[b.used .. b.used + words], src.arena[o .. o + words]);
        b.arena[b.used] = hdr;
        b.slots[i] = (tag << 40) | @as(u64, b.used + 1);
        b.used += words;
        b.count += 1;
        return true;
    }

    /// Inserts an entry unless its piece is there; false when it is not and the table is at 3/4.
    fn add(sn: *Snap, e: ShortEntry) bool {
        const n = sn.entries.len;
        const len: usize = @intCast(e.v & 31);
        var i = Short.home(shortHash(e.k0, e.k1, len), n);
        while (sn.entries[i].v != 0) {
            const o = sn.entries[i];
            if (o.k0 == e.k0 and o.v & 31 == len and o.k1 == e.k1) return true;
            i = if (i + 1 == n) 0 else i + 1;
        }
        if ((sn.count + 1) * 4 > n * 3) return false;
        sn.entries[i] = e;
        sn.count += 1;
        return true;
    }

    fn destroy(sn: *Snap) void {
        _ = snap_bytes.fetchSub(sn.bytes(), .monotonic);
        unmapTable(ShortEntry, sn.entries);
        unmapTable(u64, sn.big.slots);
        unmapTable(u32, sn.big.arena);
        std.heap.c_allocator.destroy(sn);
    }

    pub fn release(sn: *Snap) void {
        sn.holder.lock();
        const last = sn.unref();
        sn.holder.unlock();
        if (last) sn.destroy();
    }

    /// Drops one reference (under the lock); true when it was the last.
    fn unref(sn: *Snap) bool {
        sn.refs -= 1;
        return sn.refs == 0;
    }
};

/// Guards every `SnapHolder` (one lock for all: a forked child resets it, `afterForkChild`).
var snap_mu: std.atomic.Mutex = .unlocked;

/// In a forked child: a thread of the parent may have held the lock at the fork. (References
/// such threads held are never released there: their snapshots stay, bounded, until exit.)
pub fn afterForkChild() void {
    snap_mu = .unlocked;
}

pub const SnapHolder = struct {
    cur: ?*Snap = null,

    fn lock(_: *SnapHolder) void {
        while (!snap_mu.tryLock()) std.atomic.spinLoopHint();
    }

    fn unlock(_: *SnapHolder) void {
        snap_mu.unlock();
    }

    fn acquire(h: *SnapHolder) ?*Snap {
        h.lock();
        defer h.unlock();
        const sn = h.cur orelse return null;
        sn.refs += 1;
        return sn;
    }

    /// Makes `new` the current snapshot (null: none). The scratches that hold the old one keep
    /// it until they let go.
    fn swap(h: *SnapHolder, new: ?*Snap) void {
        if (new) |sn| sn.refs = 1;
        h.lock();
        const old = h.cur;
        h.cur = new;
        const last = if (old) |o| o.unref() else false;
        h.unlock();
        if (last) old.?.destroy();
    }
};

/// The piece cache `s` encoded with, if it still holds vocabulary `v`'s pieces.
inline fn cacheFor(s: *const Scratch, v: *const Vocab) ?*PieceCache {
    const c = s.cache orelse return null;
    return if (c.serial == v.serial) c else null;
}

/// Tests: slots of the calling thread's short table, if it holds vocabulary `v`'s pieces (else 0).
export fn at_debug_short_slots(v_in: ?*const Vocab) i64 {
    const v = v_in orelse return -2;
    const c = tl_cache orelse return 0;
    return if (c.serial == v.serial) @intCast(c.short.entries.len + c.wide.entries.len) else 0;
}

/// Tests: the short-table size from which the encode loop prefetches slots (`shortTableBig`).
export fn at_debug_prefetch_min_slots() i64 {
    return prefetch_min_slots;
}

/// Tests: entries of the vocabulary's current snapshot (-1: none).
export fn at_debug_snapshot_count(v_in: ?*const Vocab) i64 {
    const v = v_in orelse return -2;
    const sn = v.snaps.acquire() orelse return -1;
    defer sn.release();
    return @intCast(sn.count);
}

/// After a job on `snap_min_share` threads or more, with every thread of it idle (the caller
/// holds the pool): when no snapshot exists yet, or more than an eighth of the job's cached
/// short pieces were found in the threads' own tables rather than in the snapshot, a new one
/// is built from the current one (if both fit) and every thread's `Short` table, and published.
pub fn publishSnapshot(v: *const Vocab, slots: []const *Scratch) void {
    var own: usize = 0;
    var shared: usize = 0;
    var cand: usize = 0;
    var caches: usize = 0;
    var full: usize = 0;
    for (slots) |s| {
        own += s.own_hits;
        shared += s.snap_hits;
        const c = cacheFor(s, v) orelse continue;
        cand += c.short.count + c.wide.count;
        caches += 1;
        if (c.short.full or c.wide.full or c.big.full) full += 1;
    }
    // Only where the threads' own tables are at their budget: where they hold the column, their
    // lookups are faster than the snapshot's (two threads with the snapshot on every job:
    // English 0.885x, 20k documents 0.916x; with 2 MiB a thread, as 16 threads have, documents
    // 1.30x, lines 1.40x, multilingual 4.1x, English 0.996x).
    const bound = full * 2 >= caches and caches > 0;
    const cur = v.snaps.cur;
    if (cur) |o| {
        if (own * 8 <= own + shared or own < 4096) return;
        if (!bound) {
            // Stale, and the threads' tables hold the text: no snapshot (a probe per piece saved).
            v.snaps.swap(null);
            return;
        }
        // A snapshot at its size limit is rebuilt only once it answers less than half.
        if (o.bytes() * 8 >= snap_max_bytes * 7 and own * 2 <= own + shared) return;
    } else if (cand < 4096 or !bound) return;
    // Only the pool's jobs publish, and only while they hold the pool: `cur` stays alive here.
    const keep_old = if (cur) |o| o.bytes() <= snap_max_bytes / 2 else false;
    const sn = std.heap.c_allocator.create(Snap) catch return;
    sn.* = .{ .entries = &.{}, .count = 0, .refs = 0, .holder = v.snaps };
    if (!fillSnapShort(v, sn, slots, if (keep_old) cur else null, cand)) {
        std.heap.c_allocator.destroy(sn);
        return;
    }
    fillSnapBig(v, sn, slots, if (keep_old) cur else null);
    _ = snap_bytes.fetchAdd(sn.bytes(), .monotonic);
    v.snaps.swap(sn);
}

/// The snapshot's short pieces: the old snapshot's and every thread's, each once, first into a
/// table sized for all of them with repeats (at most half the size limit), then into one six
/// times their count (at most 5/8 of the limit: the rest is for `Big`'s pieces). A read-only
/// table cannot move hot pieces home as `Short` does, so it stays sparse: at load 3/4 the
/// proxy (16 threads on two cores) ran English at 262 MB per CPU-second, at 1/2 387, at 1/3
/// 478, at 1/6 548. False if no memory.
fn fillSnapShort(v: *const Vocab, sn: *Snap, slots: []const *Scratch, old: ?*Snap, cand: usize) bool {
    const max_slots = snap_max_bytes / @sizeOf(ShortEntry);
    const old_count: usize = if (old) |o| o.count else 0;
    // The first table holds repeats too; at most half the limit (the build's memory comes on
    // top of the call's, at its end).
    const want: usize = @min(cand + old_count, max_slots * 3 / 8); // (a usize: @min would narrow it to the constant's u18)
    var tmp: Snap = .{ .entries = &.{}, .count = 0, .refs = 0, .holder = v.snaps };
    const n = @max(@as(usize, 1024), (want * 4 / 3 + 64) & ~@as(usize, 63));
    tmp.entries = mapTable(ShortEntry, n) orelse return false;
    defer unmapTable(ShortEntry, tmp.entries);
    fill: {
        if (old) |o| {
            for (o.entries) |e| {
                if (e.v != 0 and !tmp.add(e)) break :fill;
            }
        }
        for (slots) |s| {
            const c = cacheFor(s, v) orelse continue;
            inline for (.{ &c.short, &c.wide }) |t| for (t.entries) |e| {
                if (e.v != 0 and !tmp.add(@TypeOf(t.*).wideOf(e))) break :fill;
            };
        }
    }
    const n2 = @max(@as(usize, 1024), @min(tmp.count * 6 + 64, max_slots * 5 / 8) & ~@as(usize, 63));
    sn.entries = mapTable(ShortEntry, n2) orelse return false;
    for (tmp.entries) |e| {
        if (e.v != 0) _ = sn.add(e);
    }
    return true;
}

/// The snapshot's `Big` pieces, in what the size limit leaves after its short ones (slots at
/// load 1/2, then the arena); none if that is too little.
fn fillSnapBig(v: *const Vocab, sn: *Snap, slots: []const *Scratch, old: ?*Snap) void {
    var big_count: usize = 0;
    var big_words: usize = 0;
    if (old) |o| {
        big_count += o.big.count;
        big_words += o.big.used;
    }
    for (slots) |s| {
        const c = cacheFor(s, v) orelse continue;
        big_count += c.big.count;
        big_words += c.big.used;
    }
    const room = snap_max_bytes -| sn.bytes();
    if (big_count == 0 or room < (256 << 10)) return;
    var n_slots = std.math.ceilPowerOfTwo(usize, big_count * 2 + 1) catch return;
    while (n_slots > 1024 and n_slots * 8 > room / 4) n_slots /= 2;
    const words = @min(big_words, (room - n_slots * 8) / 4);
    if (words == 0) return;
    sn.big.slots = mapTable(u64, n_slots) orelse return;
    sn.big.arena = mapTable(u32, words) orelse {
        unmapTable(u64, sn.big.slots);
        sn.big.slots = &.{};
        return;
    };
    if (old) |o| {
        var at: usize = 0;
        while (at < o.big.used) : (at += Big.entryWords(o.big.arena[at])) {
            if (!sn.addBig(&o.big, at)) return;
        }
    }
    for (slots) |s| {
        const c = cacheFor(s, v) orelse continue;
        var at: usize = 0;
        while (at < c.big.used) : (at += Big.entryWords(c.big.arena[at])) {
            if (!sn.addBig(&c.big, at)) return;
        }
    }
}

/// Whether a table of `slots` slots with `count` entries, `live` of them used in the last aging
/// window, is rebuilt with only those (into `fit` slots): when a quarter of it went unused, or
/// an eighth did and the table is a quarter bigger than the used entries need (it grew while
/// holding pieces of earlier text).
fn agedOut(live: usize, count: usize, slots: usize, fit: usize) bool {
    const stale = count - live;
    return stale * 4 > count or (stale * 8 > count and slots * 4 > fit * 5);
}

/// Zeroed anonymous memory for a cache table; 2 MiB-aligned with MADV_HUGEPAGE when it is at
/// least that big (random probes over many MB otherwise walk ~500 4K pages per 2 MB).
fn mapTable(comptime T: type, n: usize) ?[]T {
    const linux = std.os.linux;
    const bytes = n * @sizeOf(T);
    const huge = bytes >= huge_page;
    const len = if (huge) bytes + huge_page else bytes;
    const rc = linux.mmap(null, len, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (linux.errno(rc) != .SUCCESS) return null;
    var start: usize = rc;
    if (huge) {
        start = std.mem.alignForward(usize, rc, huge_page);
        if (start > rc) _ = linux.munmap(@ptrFromInt(rc), start - rc);
        const tail = rc + len - (start + bytes);
        if (tail > 0) _ = linux.munmap(@ptrFromInt(start + bytes), tail);
        _ = linux.madvise(@ptrFromInt(start), bytes, linux.MADV.HUGEPAGE);
    }
    const ptr: [*]T = @ptrFromInt(start);
    return ptr[0..n];
}

fn unmapTable(comptime T: type, t: []T) void {
    if (t.len > 0) _ = std.os.linux.munmap(@ptrCast(t.ptr), t.len * @sizeOf(T));
}

/// A thread's short pieces: `Short` (2..8 bytes, up to 3 ids, 16-byte `NarrowEntry` slots) and
/// `Wide` (9..16 bytes, up to 6 ids, 32-byte `ShortEntry` slots). Each is probed linearly at
/// load <= 3/4 and grows by half while the thread's budget allows; after that it is a clock (as
/// `Big` is): lookups mark their entries, and once a quarter of its count of new pieces has been
/// turned away, the entries no lookup found since the last sweep go (`put`). Aging rebuilds it
/// with the entries used lately, or removes the others in place by backward shift
/// (`dropUnused`), so every probe chain stays intact.
fn ShortTable(comptime wide: bool) type {
    return struct {
        const Self = @This();
        const E = if (wide) ShortEntry else NarrowEntry;
        const max_ids = if (wide) 6 else 3;

        inline fn k1Of(e: E) u64 {
            return if (wide) e.k1 else 0;
        }

        inline fn v2Of(e: E) u64 {
            return if (wide) e.v2 else 0;
        }

        /// The slot as a `ShortEntry` (a snapshot holds both tables' pieces in that layout).
        inline fn wideOf(e: E) ShortEntry {
            return .{ .k0 = e.k0, .v = e.v, .k1 = k1Of(e), .v2 = v2Of(e) };
        }

        entries: []E = &.{},
        count: usize = 0,
        full: bool = false,
        /// Pieces turned away since the table last filled up.
        refused: usize = 0,
        /// A bit per slot: the entry there was found or stored in the marking half of the current
        /// aging window (`PieceCache.age`).
        used: []u64 = &.{},
        marking: bool = false,

        const initial = if (wide) 1 << 13 else 1 << 14; // 256 KiB each
        const slot_bytes = @sizeOf(E);

        inline fn words(n: usize) usize {
            return (n + 63) / 64;
        }

        inline fn bytesFor(n: usize) usize {
            return n * slot_bytes + words(n) * 8;
        }

        inline fn mark(t: *Self, i: usize) void {
            t.used[i >> 6] |= @as(u64, 1) << @intCast(i & 63);
        }

        inline fn isUsed(t: *const Self, i: usize) bool {
            return t.used[i >> 6] >> @intCast(i & 63) & 1 != 0;
        }

        inline fn setUsed(t: *Self, i: usize, on: bool) void {
            const bit = @as(u64, 1) << @intCast(i & 63);
            if (on) t.used[i >> 6] |= bit else t.used[i >> 6] &= ~bit;
        }

        /// Load <= 3/4, growth by 1.5 (any size: the home slot is the hash scaled to the table):
        /// fewer bytes per piece than powers of two at load 1/2, so more of a column's pieces stay
        /// in L2, and a table grows under the thread's budget (which counts the old and the new
        /// table while it rehashes) where doubling would not.
        inline fn over(count: usize, n: usize) bool {
            return count * 4 > n * 3;
        }

        inline fn home(h: u64, n: usize) usize {
            return @intCast((@as(u128, h) * n) >> 64);
        }

        /// Whether `toks` can be packed (3 ids or fewer, 6 in `Wide`; each below 2^19).
        fn fits(toks: []const u32) bool {
            if (toks.len > max_ids) return false;
            for (toks) |id| if (id > id_mask) return false;
            return true;
        }

        inline fn pack(len: usize, toks: []const u32) [2]u64 {
            const a = @min(toks.len, 3);
            var v: u64 = @as(u64, len) | (@as(u64, a) << 5);
            for (toks[0..a], 0..) |id, j| v |= @as(u64, id) << @intCast(7 + id_bits * j);
            var v2: u64 = 0;
            if (toks.len > 3) {
                v2 = toks.len - 3;
                for (toks[3..], 0..) |id, j| v2 |= @as(u64, id) << @intCast(2 + id_bits * j);
            }
            return .{ v, v2 };
        }

        fn release(t: *Self) void {
            tl_held -= bytesFor(t.entries.len);
            unmapTable(E, t.entries);
            unmapTable(u64, t.used);
            t.* = .{};
        }

        /// Empty, back at the initial size.
        fn reset(t: *Self) bool {
            const m = t.marking;
            defer t.marking = m;
            if (t.entries.len == initial) {
                @memset(t.entries, std.mem.zeroes(E));
                @memset(t.used, 0);
                t.count = 0;
                t.full = false;
                t.refused = 0;
                return true;
            }
            t.release();
            return t.resize(initial);
        }

        fn resize(t: *Self, n: usize) bool {
            return t.rehash(n, false);
        }

        /// Moves the entries into a new table of n slots, with their used bits; `only_used`: only
        /// the used ones, and no bit set.
        fn rehash(t: *Self, n: usize, only_used: bool) bool {
            // The old table stays alive while it is rehashed into the new one: count both.
            if (tl_held + bytesFor(n) > threadCap() and t.entries.len > 0) return false;
            const ne = mapTable(E, n) orelse return false;
            const nu = mapTable(u64, words(n)) orelse {
                unmapTable(E, ne);
                return false;
            };
            tl_held += bytesFor(n); // the old table's bytes come off below
            var kept: usize = 0;
            for (t.entries, 0..) |e, j| {
                if (e.v == 0) continue;
                const was_used = t.isUsed(j);
                if (only_used and !was_used) continue;
                var i = home(shortHash(e.k0, k1Of(e), @intCast(e.v & 31)), n);
                while (ne[i].v != 0) i = if (i + 1 == n) 0 else i + 1;
                ne[i] = e;
                if (was_used and !only_used) nu[i >> 6] |= @as(u64, 1) << @intCast(i & 63);
                kept += 1;
            }
            tl_held -= bytesFor(t.entries.len);
            unmapTable(E, t.entries);
            unmapTable(u64, t.used);
            t.entries = ne;
            t.used = nu;
            t.count = kept;
            return true;
        }

        /// The end of an aging window (`PieceCache.age`): if `agedOut`, only the entries used in
        /// it stay, in a table where they fill 2/3 (a fresh table's load after growth).
        fn age(t: *Self, rec: ?*PieceCache) void {
            if (t.entries.len == 0) return;
            var live: usize = 0;
            for (t.used) |w| live += @popCount(w);
            const n = @max(initial, (live * 3 / 2 + 63) & ~@as(usize, 63));
            if (t.entries.len > initial and agedOut(live, t.count, t.entries.len, n)) {
                if (rec) |c| {
                    for (t.entries, 0..) |e, i| {
                        if (e.v == 0 or t.isUsed(i)) continue;
                        const len: usize = @intCast(e.v & 31);
                        c.goneAdd(shortHash(e.k0, k1Of(e), len));
                    }
                }
                t.full = false;
                t.refused = 0;
                // At the budget there is no room for a second table: the unused entries are
                // removed in place instead (the table keeps its size).
                if (t.rehash(n, true)) return;
                t.dropUnused();
            }
            t.clearUsed();
        }

        fn clearUsed(t: *Self) void {
            @memset(t.used, 0);
        }

        fn markAll(t: *Self) void {
            for (t.entries, 0..) |e, j| {
                if (e.v != 0) t.mark(j);
            }
        }

        /// The clock's hand at the budget (see `put`): drop what went unused since the last sweep.
        fn sweep(t: *Self) void {
            t.dropUnused();
            t.clearUsed();
            t.refused = 0;
        }

        /// Removes every entry whose used bit is clear, in place (backward-shift deletion: each
        /// entry after a hole that may move back toward its home does, so probe chains stay whole).
        fn dropUnused(t: *Self) void {
            const n = t.entries.len;
            var i: usize = 0;
            while (i < n) {
                if (t.entries[i].v != 0 and !t.isUsed(i)) {
                    t.removeAt(i); // an entry shifted into i is looked at next
                    t.count -= 1;
                    continue;
                }
                i += 1;
            }
        }

        fn removeAt(t: *Self, i: usize) void {
            const n = t.entries.len;
            var hole = i;
            var j = i;
            while (true) {
                j = if (j + 1 == n) 0 else j + 1;
                const e = t.entries[j];
                if (e.v == 0) break;
                const k = home(shortHash(e.k0, k1Of(e), @intCast(e.v & 31)), n);
                // Movable into the hole iff the hole lies between its home and j.
                if ((j + n - k) % n >= (j + n - hole) % n) {
                    t.entries[hole] = e;
                    t.setUsed(hole, t.isUsed(j));
                    hole = j;
                }
            }
            t.entries[hole] = std.mem.zeroes(E);
            t.setUsed(hole, false);
        }

        inline fn get(t: *Self, key: ShortKey, len: usize, out: []u32) ?usize {
            return t.find(key, len, out, true);
        }

        /// `get` that writes no ids when `write` is false (counting: only how many).
        /// Session 33 (English books unless named, cl100k, in-process A/B against the build
        /// before with `bench/ab_builds.py`, 9-11 rounds; `--no-check` for timing-only builds
        /// whose ids are wrong):
        /// - The bound: the 2..16-byte pieces' lookups left out (each piece written as one id,
        ///   timing only): English 1.92-2.07x, 20k documents 2.04-2.09x (o200k 1.96x), 200k lines
        ///   1.86x, code 1.72x; on the documents' first 500 rows repeated to the same size (the
        ///   tables in L1/L2: `--first-rows 500 --repeat-mb 4.6`) 1.74-1.81x. The lookups are
        ///   about half of the time, and not only through their cache misses.
        /// - Counted (one steady pass, bench-sized English / 20k documents): Short 96.1% / 90.4%
        ///   of its lookups found at home, 4.0% / 7.3% further on, 0.0% / 3.3% not found (the
        ///   documents' words of more than 3 ids, in Big); Wide 81% / 70% at home, 19% / 23%
        ///   further on, 0% / 7% not found. The displaced hits are spread out, not a few hot
        ///   pieces taking turns at one home: 13,138 a pass of English over 3,903 home slots
        ///   (the 100 busiest 19.5% of them), 43,171 of the documents over 13,092 (9.2%).
        /// - Timing only: Short's home slot answering without its compare (wrong ids where
        ///   another piece lives there) 1.23-1.31x, documents 1.05-1.14x; with the compare, but a
        ///   mismatch answered from the home slot anyway, 1.06-1.10x, and that without the mark
        ///   1.14-1.22x in four runs of both orders (code 1.07x, documents 1.04x, lines 1.00x).
        /// - Exact, none kept: the home slot compared before the probe loop (one branch)
        ///   1.00-1.03x; that with the probe loop out of line 0.93-1.01x; no move home 0.93-0.99x;
        ///   no mark 1.01-1.05x; neither (aging aside) 0.94x; homes at even slots with both
        ///   slots of the pair compared at once (one cache line, the answer by selects, as
        ///   gigatoken probes) 0.886x, documents 0.920x (at load 3/4 pairs overflow, and the
        ///   probe past them costs more than before); growth at load 1/2 instead of 3/4 read
        ///   1.20x once, then 0.86-0.94x in three runs of both orders (documents 0.92x, lines
        ///   0.97-0.98x), and at load 1/2 only below 1, 2 or 4 MiB, 0.86-0.99x.
        ///   So what the timing-only builds save is not one of these parts alone; unexplained
        ///   without the hardware's counters (this virtual machine exposes none to perf).
        /// - Nor the lookup's dependency chain or its instruction count: two dependent `imul`s
        ///   added to every 2..8-byte piece's hash (6 cycles more on the chain from the text
        ///   to the slot's load; timing only) cost English 0.999x / 0.977x and the documents
        ///   0.976x / 0.965x (both orders), so the chain is mostly hidden; `unpack` and
        ///   `unpack6` by vector shifts and one store (5 instructions for 12, and no branch on
        ///   the second word's count) read English 1.000x / 1.011x, documents 0.983x / 0.970x.
        /// Session 31, not kept: the home slot and the next one compared at once, the answer
        /// picked by selects (callgrind put 0.21 mispredicted branches a piece of the 20k
        /// documents on the compare here): 156 -> 177 instructions, 1.29 -> 1.32 mispredicted
        /// branches a piece: the compare's mispredictions are not entries one slot from home
        /// (the words of more than 3 ids that live in Big, 3.1% of the documents' pieces,
        /// explain only part of them).
        inline fn find(t: *Self, key: ShortKey, len: usize, out: []u32, comptime write: bool) ?usize {
            return t.findIn(true, key, len, out, write);
        }

        /// `find`; `touch` false changes nothing (no move home, no mark): the parts of a cut
        /// piece (`cutPart`), which are not pieces of the text and must not keep entries alive.
        inline fn findIn(t: *Self, comptime touch: bool, key: ShortKey, len: usize, out: []u32, comptime write: bool) ?usize {
            const n = t.entries.len;
            if (n == 0) return null;
            const h0 = home(key.h, n);
            var i = h0;
            while (true) {
                const e = &t.entries[i];
                // (A narrow piece's k1 is 0: its 8 bytes and length are the whole key.)
                if (e.k0 == key.k0 and e.v & 31 == len and (!wide or k1Of(e.*) == key.k1)) {
                    const v = e.v;
                    const v2 = v2Of(e.*);
                    if (touch and i != h0) t.moveHome(i, h0);
                    if (touch and t.marking) t.mark(h0);
                    return if (wide) unpack6(v, v2, out, write) else unpack(v, out, write);
                }
                if (e.v == 0) return null;
                i = if (i + 1 == n) 0 else i + 1;
            }
        }

        /// Swaps the entry found at slot i with the one in its home slot h: pieces looked up often
        /// end up in their home slots, whatever the order they were inserted or rehashed in. (Every
        /// slot from the other entry's home to i is occupied, so it stays reachable at i.)
        fn moveHome(t: *Self, i: usize, h: usize) void {
            const e = t.entries[i];
            const o = t.entries[h];
            t.entries[i] = o;
            t.entries[h] = e;
            // The other entry takes its used bit along (the caller marks h). Outside the marking
            // half of a window every bit is clear.
            if (t.marking) t.setUsed(i, t.isUsed(h));
        }

        /// `toks` must `fit`.
        fn put(t: *Self, key: ShortKey, len: usize, toks: []const u32) void {
            if (t.entries.len == 0) return;
            if (!t.full and over(t.count + 1, t.entries.len)) {
                if (!t.resize((t.entries.len * 3 / 2) & ~@as(usize, 63))) {
                    // From now on every lookup marks (the clock's used bits); what the table held
                    // before counts as used once.
                    t.full = true;
                    if (!t.marking) {
                        t.markAll();
                        t.marking = true;
                    }
                }
            }
            const n = t.entries.len;
            var i = home(key.h, n);
            if (t.full and over(t.count + 1, n)) {
                // At the budget (a clock): every lookup marks its entry (`marking` stays on while
                // full), and once a quarter of the table's count of pieces has been turned away,
                // the entries no lookup found since the last sweep go, in place. A stream with more
                // distinct pieces than the budget holds keeps its frequent ones. (Starting again
                // empty instead, once as many pieces were turned away as it held, threw the frequent
                // pieces out with the rare ones: the corpus stream's second pass ran at the first
                // pass's speed. Storing the piece over the one in its home slot made the pieces of
                // the current column evict each other on every pass: see the performance notes.)
                t.refused += 1;
                if (t.refused * 4 <= t.count) return;
                t.sweep();
                if (over(t.count + 1, n)) return;
            }
            while (t.entries[i].v != 0) i = if (i + 1 == n) 0 else i + 1;
            t.count += 1;
            const pv = pack(len, toks);
            t.entries[i] = if (wide) .{ .k0 = key.k0, .v = pv[0], .k1 = key.k1, .v2 = pv[1] } else .{ .k0 = key.k0, .v = pv[0] };
            if (t.marking) t.mark(i);
        }
    };
}

const Short = ShortTable(false);
const Wide = ShortTable(true);

threadlocal var tl_cache: ?*PieceCache = null;
threadlocal var tl_cache_failed: bool = false;

/// A pthread key whose destructor frees a thread's cache when the thread exits (threadlocal
/// storage alone would leak 2 MiB per short-lived thread).
var cache_key: std.c.pthread_key_t = undefined;
var cache_key_state: std.atomic.Value(u8) = .init(0); // 0 none, 1 creating, 2 ready, 3 failed

fn freeCache(p: *anyopaque) callconv(.c) void {
    const c: *PieceCache = @ptrCast(@alignCast(p));
    c.big.release();
    c.short.release();
    c.wide.release();
    c.goneRelease();
    std.heap.c_allocator.destroy(c);
}

fn cacheKeyReady() bool {
    while (true) {
        switch (cache_key_state.load(.acquire)) {
            2 => return true,
            3 => return false,
            0 => if (cache_key_state.cmpxchgStrong(0, 1, .acq_rel, .acquire) == null) {
                const ok = std.c.pthread_key_create(&cache_key, freeCache) == .SUCCESS;
                cache_key_state.store(if (ok) 2 else 3, .release);
                return ok;
            },
            else => std.atomic.spinLoopHint(),
        }
    }
}

fn threadCache(v: *const Vocab) ?*PieceCache {
    var c = tl_cache;
    if (c == null) {
        if (tl_cache_failed or !cacheKeyReady()) return null;
        c = std.heap.c_allocator.create(PieceCache) catch {
            tl_cache_failed = true;
            return null;
        };
        if (std.c.pthread_setspecific(cache_key, c) != 0) {
            std.heap.c_allocator.destroy(c.?);
            tl_cache_failed = true;
            return null;
        }
        c.?.serial = 0;
        c.?.big = .{};
        c.?.short = .{};
        c.?.wide = .{};
        c.?.gone = &.{};
        c.?.returned = 0;
        c.?.stored = 0;
        tl_cache = c;
    }
    const pc = c.?;
    if (pc.serial != v.serial) {
        @memset(&pc.pairs, empty_slot);
        pc.big.release(); // another vocabulary: its tables start small again
        if (!pc.short.reset() or !pc.wide.reset()) return null;
        pc.serial = v.serial;
        pc.ticks = 0;
        pc.tasks = 0;
        pc.window = PieceCache.window_per_entry * Short.initial;
        pc.scale = 1;
        pc.drop_from = 0;
        pc.goneRelease();
        pc.short.marking = false;
        pc.wide.marking = false;
        pc.big.marking = false;
        pc.mark_half = false;
    }
    pc.tasks += 1;
    const w = pc.window * pc.scale;
    if (!pc.mark_half) {
        // Lookups record use only in a window's second half (the marks cost ~3% of a lookup).
        if (pc.ticks * 2 >= w) {
            pc.mark_half = true;
            pc.short.marking = true;
            pc.wide.marking = true;
            pc.big.marking = true;
            pc.mark_tasks = pc.tasks;
        }
    } else if (pc.ticks >= w and pc.tasks - pc.mark_tasks >= 2) pc.age();
    return pc;
}

/// The piece's bytes zero-padded to 16 (len 2..16), built from overlapping loads that stay
/// inside the piece (no byte loop, no memcpy call).
inline fn paddedKey(s: []const u8) [2]u64 {
    const n = s.len;
    if (n >= 8) {
        const lo = read64(s);
        if (n == 8) return .{ lo, 0 };
        const hi = read64(s[n - 8 ..]) >> @intCast((16 - n) * 8);
        return .{ lo, hi };
    }
    if (n >= 4) {
        const a = read32(s);
        const b = read32(s[n - 4 ..]) >> @intCast((8 - n) * 8);
        return .{ a | (b << 32), 0 };
    }
    var lo: u64 = s[0];
    if (n > 1) lo |= @as(u64, s[1]) << 8;
    if (n > 2) lo |= @as(u64, s[2]) << 16;
    return .{ lo, 0 };
}

/// BPE of one piece, through the thread's piece caches. Writes the tokens to `out` (room for
/// piece.len tokens) and returns how many were written.
pub fn encodePiece(v: *const Vocab, piece: []const u8, out: []u32, scratch: *Scratch) error{OutOfMemory}!usize {
    std.debug.assert(piece.len > 0);
    if (piece.len == 1) {
        out[0] = v.byte_rank[piece[0]];
        return 1;
    }
    if (piece.len > 16) return encodePieceLong(v, piece, out, scratch);
    return encodePieceShort(v, piece, shortKey(piece), out, scratch);
}

/// A short piece's (2..16 bytes) cache key: its bytes zero-padded to 16, and their hash.
pub const ShortKey = struct { k0: u64, k1: u64, h: u64 };

/// `shortKey` of text[pos..pos+len] when 16 bytes from pos are readable (pos + 16 <= text.len):
/// two loads and two masks, no branch on the length.
pub inline fn shortKeyAt(text: []const u8, pos: usize, len: usize) ShortKey {
    if (comptime has_bmi2) {
        // BZHI keeps the bits below an index (all of them from 64 up): no mask table loads.
        const bitlen: u64 = 8 * @as(u64, len);
        const k0 = bzhi(read64(text[pos..]), bitlen);
        const k1 = bzhi(read64(text[pos + 8 ..]), bitlen -| 64);
        return .{ .k0 = k0, .k1 = k1, .h = shortHash(k0, k1, len) };
    }
    const k0 = read64(text[pos..]) & key_masks[len][0];
    const k1 = read64(text[pos + 8 ..]) & key_masks[len][1];
    return .{ .k0 = k0, .k1 = k1, .h = shortHash(k0, k1, len) };
}

/// `shortKeyAt` for a piece of 2..8 bytes: its second word is 0, not loaded, and the hash
/// multiplies by a constant (`pos + 8 <= text.len`).
pub inline fn shortKeyAtNarrow(text: []const u8, pos: usize, len: usize) ShortKey {
    const k0 = if (comptime has_bmi2) bzhi(read64(text[pos..]), 8 * @as(u64, len)) else read64(text[pos..]) & key_masks[len][0];
    return .{ .k0 = k0, .k1 = 0, .h = shortHash(k0, 0, len) };
}

const has_bmi2 = @import("builtin").cpu.arch == .x86_64 and std.Target.x86.featureSetHas(@import("builtin").cpu.features, .bmi2);

inline fn bzhi(x: u64, n: u64) u64 {
    return asm ("bzhi %[n], %[x], %[r]"
        : [r] "=r" (-> u64),
        : [x] "r" (x),
          [n] "r" (n),
    );
}

const key_masks: [17][2]u64 = blk: {
    var m: [17][2]u64 = undefined;
    for (0..17) |n| {
        m[n][0] = if (n >= 8) ~@as(u64, 0) else (@as(u64, 1) << @intCast(8 * n)) - 1;
        m[n][1] = if (n >= 16) ~@as(u64, 0) else if (n <= 8) 0 else (@as(u64, 1) << @intCast(8 * (n - 8))) - 1;
    }
    break :blk m;
};

pub inline fn shortKey(piece: []const u8) ShortKey {
    const kk = paddedKey(piece);
    return .{ .k0 = kk[0], .k1 = kk[1], .h = shortHash(kk[0], kk[1], piece.len) };
}

/// A piece of 2..16 bytes with its key from `shortKey`.
pub inline fn encodePieceShort(v: *const Vocab, piece: []const u8, key: ShortKey, out: []u32, scratch: *Scratch) error{OutOfMemory}!usize {
    return shortPiece(true, false, v, piece, key, out, scratch);
}

/// A short piece through the thread's tables. `write` false (counting): a piece found in a
/// table writes no ids (`out` is scratch room for the other paths). `shared`: the scratch
/// holds a snapshot (`Snap`), looked up first; a compile-time flag, so that the encode loop
/// of a job without one has no extra branch per piece.
pub inline fn shortPiece(comptime write: bool, comptime shared: bool, v: *const Vocab, piece: []const u8, key: ShortKey, out: []u32, scratch: *Scratch) error{OutOfMemory}!usize {
    return if (piece.len <= 8) shortPieceIn(false, write, shared, v, piece, key, out, scratch) else shortPieceIn(true, write, shared, v, piece, key, out, scratch);
}

/// `shortPiece` for a piece known to be of 9..16 bytes (`wide`) or 2..8: the encode loop's
/// switch on the length picks it, with no second branch on the length here.
pub inline fn shortPieceIn(comptime wide: bool, comptime write: bool, comptime shared: bool, v: *const Vocab, piece: []const u8, key: ShortKey, out: []u32, scratch: *Scratch) error{OutOfMemory}!usize {
    const cache = scratch.cache orelse return encodePieceUncached(v, piece, out, scratch);
    if (shared) {
        if (scratch.snap.?.peek(key, piece.len, out, write)) |n| {
            scratch.snap_hits += 1;
            return n;
        }
        if (if (wide) cache.wide.find(key, piece.len, out, write) else cache.short.find(key, piece.len, out, write)) |n| {
            scratch.own_hits += 1;
            return n;
        }
        return shortMiss(v, cache, piece, key.k0, key.k1, key.h, out, scratch, write);
    }
    // Session 30: with pieces of 9..16 bytes and 4..6 ids in `Wide`, only a piece with a
    // non-ASCII byte among its bytes 9..16 (likely 7+ ids: Big) prefetches Big's slot. Against
    // any non-ASCII byte (below), none, and a non-ASCII piece of 2..8 bytes (A/B, 15 rounds,
    // cl100k / o200k): documents 0.991 / 1.006x, 0.975 / 0.980x, 0.992 / 0.969x of this one;
    // lines 1.015 / 1.027x, 1.015 / 1.034x, 1.002 / 1.023x; English 0.975 / 0.978x, 0.998 /
    // 0.991x, 0.982 / 0.986x; whole multilingual files 0.972 / 0.991x, 0.991 / 0.953x, 0.988 /
    // 0.955x: all near noise; this one for the whole files.
    // Before: non-ASCII pieces often have more than 3 ids (Big holds them): start Big's slot load
    // while Short is probed. In-process A/B (bench/ab_builds.py, 15 rounds, cl100k / o200k):
    // 20k documents 1.029x / 1.155x (1.042x in a first run), multilingual 1.051x, English
    // 1.011x / 1.038x (its pieces are ASCII: the branch only). Session 26: any non-ASCII
    // byte in the key, not only the first (a word's leading space had kept most words of
    // non-Latin text out; perf put half of `shortMiss` on that slot's load): shortMiss 12.2%
    // -> 9.1% of the 20k documents' profile (cl100k); A/B (21 rounds, both orders) docs
    // cl100k 1.033x / 1.057x, o200k 1.054x / 1.005x, lines 1.027-1.079x but o200k 0.986x once,
    // multilingual 0.99-1.03x. Session 27, not kept: the condition as a select (an ASCII key
    // prefetches slot 0; callgrind put ~48k mispredictions a call of the 20k documents on this
    // branch): docs 0.95-0.99x over eight A/B runs (25 rounds, both orders, both encodings).
    // Nor a 128 KiB Bloom filter of Big's short pieces (three bits a key in one word, rebuilt
    // when Big compacts) asked here, so that a non-ASCII word of more than 3 ids is looked up
    // in Big first and skips Short's failing walk: docs 0.95x / 0.96x (cl100k / o200k, both
    // orders), whole multilingual files 1.01x, the corpus stream's later passes 1.02-1.03x.
    // Session 29, on the whole multilingual files (`--max-mb 0`: 9.5 MB, where arrowtok ran at
    // 0.93-0.96x gigatoken on one thread; ml_udhr_all.txt alone 0.79x, its Latin-script rows
    // 0.74x; perf: 22-25% of the time in shortMiss, 70% of that on Big's slot load), not kept:
    // - this prefetch also for ASCII pieces of 10+ bytes (most Latin-script words of more than
    //   3 ids): multilingual 1.014x / 1.006x, English 0.985x;
    // - a redirect in Short for pieces of more than 3 ids (Big's generation and arena offset,
    //   the key checked on use; re-pointed when Big compacts): no failing Short walk and no
    //   Big slot load, still the arena entry's: encode multilingual whole 1.025x / 1.049x,
    //   count 1.011x, but 20k documents 0.959x / 0.929x and 200k lines 0.925x (Short holds
    //   more entries);
    // - the bound of answers that need no second load: such pieces' counts stored in Short
    //   (count_tokens_arrow only, a timing build): multilingual whole 1.23x, its 2 MB cut
    //   1.056x, but 20k documents 1.037x / 0.945x (cl100k / o200k), 200k lines 0.93x / 0.974x.
    //   So the cost is the arena entry's miss, and answers inline in Short (a side array of
    //   three more ids a slot) would trade the whole files against the documents and lines.
    // - Big's entries of up to 64 bytes kept inside one cache line (padding words before an
    //   entry that would straddle two): multilingual whole 1.014x / 1.006x, documents 0.982x.
    // - A third table for pieces of 2..16 bytes and 4..6 ids (32-byte entries: key and ids in
    //   one line, load 1/2, its home slot prefetched here instead of Big's), looked up after
    //   Short's failing walk instead of Big's slot and arena entry: multilingual whole 0.930x /
    //   0.936x (0.943x with a 256 MiB budget). With the failing walk kept, the line it saves
    //   is not what the lookup waits on; only removing both (the count-only bound above) paid.
    // - Big looked up first (before Short) for non-ASCII pieces of 10+ bytes, which have more
    //   than 3 ids 68-96% of the time in cl100k: 20k documents 0.982x, multilingual 0.989x,
    //   200k lines 0.981x, multilingual whole 0.968x. And without this prefetch at all: lines
    //   0.974x / 0.986x, documents 0.959x / 0.977x (o200k / cl100k), although callgrind counts
    //   ~12 instructions and 0.11 mispredicted branches a piece for its test.
    if (wide and key.k1 & 0x8080808080808080 != 0 and cache.big.slots.len != 0) @prefetch(&cache.big.slots[@as(usize, @truncate(key.h)) & (cache.big.slots.len - 1)], .{});
    if (if (wide) cache.wide.find(key, piece.len, out, write) else cache.short.find(key, piece.len, out, write)) |n| return n;
    return shortMiss(v, cache, piece, key.k0, key.k1, key.h, out, scratch, write);
}

/// Whether this thread's short table is big enough that its lookups miss the core's L2 (the
/// encode loop then prefetches each block's slots one block ahead; see encode.zig).
pub inline fn shortTableBig(scratch: *const Scratch) bool {
    const cache = scratch.cache orelse return false;
    return cache.short.entries.len + cache.wide.entries.len >= prefetch_min_slots;
}

/// Slots of `Short` and `Wide` together. Was 2^17 (2 MiB of 16-byte entries; L2 is 1-2 MiB a
/// core on the machines measured). Session 30, with the two tables (the 20k documents: 145k
/// slots, 124k before; the 200k lines: 176k / 218k, cl100k / o200k): 2^18, A/B against 2^17
/// (21 rounds): documents 1.048x / 1.026x, lines 1.018x / 1.017x (the tables of the documents
/// and lines sit in L3; the corpus stream's, 419k slots and more, still prefetch).
pub const prefetch_min_slots = 1 << 18;

/// Prefetches the home slot of `key` (and its bytes 9..16 for longer pieces).
pub inline fn prefetchShort(scratch: *const Scratch, key: ShortKey, len: usize) void {
    const c = scratch.cache.?;
    if (len <= 8) {
        @prefetch(&c.short.entries[Short.home(key.h, c.short.entries.len)], .{ .rw = .read, .locality = 3, .cache = .data });
    } else @prefetch(&c.wide.entries[Wide.home(key.h, c.wide.entries.len)], .{ .rw = .read, .locality = 3, .cache = .data });
}

fn shortMiss(v: *const Vocab, cache: *PieceCache, piece: []const u8, k0: u64, k1: u64, h: u64, out: []u32, scratch: *Scratch, comptime write: bool) error{OutOfMemory}!usize {
    // The key's words as scalars: a struct argument made the encode loop store the key to the
    // stack for every piece, on the hit path too. Session 27: callgrind, 4 encode_arrow calls
    // of the English column (cl100k): 3047.1M -> 3015.6M instructions for the whole process,
    // -134k mispredicted branches; A/B 0.99-1.04x (docs, English, code; both encodings).
    const key: ShortKey = .{ .k0 = k0, .k1 = k1, .h = h };
    // Pieces of more than 6 tokens live in the arena table.
    if (scratch.snap) |sn| {
        if (sn.big.getShort(key.h, key.k0, key.k1, piece.len, out, write)) |n| {
            scratch.snap_hits += 1;
            return n;
        }
        if (cache.big.getShort(key.h, key.k0, key.k1, piece.len, out, write)) |n| {
            scratch.own_hits += 1;
            return n;
        }
    } else if (cache.big.getShort(key.h, key.k0, key.k1, piece.len, out, write)) |n| return n;
    const n = try encodePieceUncached(v, piece, out, scratch);
    if (piece.len <= 8 and Short.fits(out[0..n])) {
        cache.short.put(key, piece.len, out[0..n]);
    } else if (piece.len > 8 and Wide.fits(out[0..n])) {
        cache.wide.put(key, piece.len, out[0..n]);
    } else cache.big.put(key.h, piece, out[0..n]);
    cache.noteStored(key.h);
    return n;
}

inline fn shortHash(k0: u64, k1: u64, len: usize) u64 {
    const m: u128 = @as(u128, k0 ^ 0x9E3779B97F4A7C15) *% @as(u128, k1 ^ 0xC2B2AE3D27D4EB4F ^ @as(u64, len));
    return @as(u64, @truncate(m)) ^ @as(u64, @truncate(m >> 64));
}

inline fn longHash(piece: []const u8) u64 {
    return std.hash.Wyhash.hash(0x5EED, piece);
}

/// The hash a piece is filed under in `Big`: `shortKey`'s for 2..16 bytes, else `longHash`.
fn pieceHash(piece: []const u8) u64 {
    return if (piece.len <= 16) shortKey(piece).h else longHash(piece);
}

pub fn encodePieceLong(v: *const Vocab, piece: []const u8, out: []u32, scratch: *Scratch) error{OutOfMemory}!usize {
    return pieceLong(true, v, piece, out, scratch);
}

/// `encodePieceLong`; `write` false (counting): a piece found in `Big` writes no ids (session
/// 27: count_tokens_arrow on the 20k documents 1.01-1.05x, four A/B runs of 25 rounds, both
/// orders and encodings).
pub fn pieceLong(comptime write: bool, v: *const Vocab, piece: []const u8, out: []u32, scratch: *Scratch) error{OutOfMemory}!usize {
    const cache = scratch.cache orelse return encodePieceUncached(v, piece, out, scratch);
    if (piece.len > big_piece_max) {
        // Text that no table holds does not count toward the aging window (1 MB of one
        // letter between two columns would otherwise end a window that met neither).
        cache.ticks -|= piece.len;
        return encodePieceUncached(v, piece, out, scratch);
    }
    const h = longHash(piece);
    if (scratch.snap) |sn| {
        if (sn.big.getLong(h, piece, out, write)) |n| {
            scratch.snap_hits += 1;
            return n;
        }
        if (cache.big.getLong(h, piece, out, write)) |n| {
            scratch.own_hits += 1;
            return n;
        }
    } else if (cache.big.getLong(h, piece, out, write)) |n| return n;
    const n = try encodePieceUncached(v, piece, out, scratch);
    cache.big.put(h, piece, out[0..n]);
    cache.noteStored(h);
    return n;
}

/// Bytes this thread's `Short` and `Big` tables hold.
threadlocal var tl_held: usize = 0;
/// Threads the job this thread works for spreads over (`Scratch.bind`).
threadlocal var tl_share: usize = 1;
var total_cap: std.atomic.Value(usize) = .init(0);
/// Tests: a cap in bytes that replaces `threadCap`'s rule (0: none).
var test_cap: std.atomic.Value(usize) = .init(0);

/// Cap of one thread's tables: ARROWTOK_CACHE_MB (default 32) MiB over the threads of the job
/// it works for (at least 1 MiB), so a job on every core stays near the total and a one-thread
/// job has it all. It used to be the total over the machine's CPUs whatever the job: a
/// one-thread call got 16 MiB on two CPUs and 4 MiB on 16, and the 9.5 MB multilingual column
/// (297k distinct pieces) ran at 71 MB/s on one thread instead of 142-174. A floor of 4 MiB a
/// thread put the 100 MB memory check on 16 threads at output + 89.7 MiB, over the issue's 64.
/// Tables that outgrew a later, smaller cap (a one-thread call, then one on every core) keep
/// their memory: they stop growing, and their clocks and aging choose what stays in it.
fn threadCap() usize {
    if (builtin.is_test) {
        const t = test_cap.load(.monotonic);
        if (t != 0) return t;
    }
    var c = total_cap.load(.monotonic);
    if (c == 0) {
        var mb: usize = 32;
        if (std.c.getenv("ARROWTOK_CACHE_MB")) |s| {
            mb = std.fmt.parseInt(usize, std.mem.span(s), 10) catch mb;
        }
        c = @max(mb, 1) << 20;
        total_cap.store(c, .monotonic);
    }
    const shared = @min(snap_bytes.load(.monotonic), c / 2);
    return @max((c - shared) / tl_share, 1 << 20);
}

/// A thread's table of every piece it has encoded (up to `big_piece_max` bytes): open addressing
/// over `slots` (tag << 40 | arena word offset + 1; 0 = empty) into an arena of entries
/// [len | n_tokens << 16][piece bytes, zero-padded to whole words][n_tokens ids]. Only the owning
/// thread touches it. Where growing would pass the thread's budget it is a clock (`put`): it
/// keeps the pieces found since its last sweep and drops the others, in place (the piece caches
/// are an optimisation: a miss only costs a merge), so memory stays bounded on any stream.
const Big = struct {
    slots: []u64 = &.{},
    arena: []u32 = &.{},
    used: usize = 0,
    count: usize = 0,
    /// Pieces turned away since the table last filled up.
    refused: usize = 0,
    /// Entries found or stored in the marking half of the current aging window (their headers
    /// carry `live_bit`).
    live: usize = 0,
    marking: bool = false,
    /// At the budget: a clock, as `Short` (see `put`).
    full: bool = false,

    const min_slots = 1 << 12;
    const min_words = 1 << 15;
    const off_mask: u64 = (1 << 40) - 1;
    /// In an entry's header (len: 16 bits, n_tokens: bits 16..30; both at most 512).
    const live_bit: u32 = 1 << 31;

    inline fn entryWords(hdr: u32) usize {
        const len: usize = hdr & 0xFFFF;
        return 1 + (len + 3) / 4 + ((hdr >> 16) & 0x7FFF);
    }

    fn bytesHeld(b: *const Big) usize {
        return b.slots.len * 8 + b.arena.len * 4;
    }

    fn release(b: *Big) void {
        tl_held -= b.bytesHeld();
        unmapTable(u64, b.slots);
        unmapTable(u32, b.arena);
        const m = b.marking;
        b.* = .{};
        b.marking = m;
    }

    /// The end of an aging window (`PieceCache.age`): if `agedOut`, only the entries used in
    /// it stay, in an arena and a slot table sized for them; else the live bits are cleared
    /// for the next window.
    fn age(b: *Big, rec: ?*PieceCache) void {
        if (b.slots.len == 0) return;
        const fit = @max(min_slots, std.math.ceilPowerOfTwo(usize, b.live * 2 + 1) catch b.slots.len);
        if (b.slots.len > min_slots and agedOut(b.live, b.count, b.slots.len, fit)) {
            if (rec) |c| {
                var o: usize = 0;
                while (o < b.used) {
                    const hdr = b.arena[o];
                    if (hdr & live_bit == 0) c.goneAdd(pieceHash(b.entryBytes(o, hdr & 0xFFFF)));
                    o += entryWords(hdr);
                }
            }
            b.full = false;
            return b.compact(true);
        }
        b.clearLive();
    }

    fn markAll(b: *Big) void {
        var o: usize = 0;
        while (o < b.used) {
            b.arena[o] |= live_bit;
            o += entryWords(b.arena[o]);
        }
        b.live = b.count;
    }

    fn clearLive(b: *Big) void {
        var o: usize = 0;
        while (o < b.used) {
            b.arena[o] &= ~live_bit;
            o += entryWords(b.arena[o]);
        }
        b.live = 0;
    }

    /// Keeps only the live entries (their live bits cleared), in place: they slide to the
    /// front of the arena, which then shrinks (`shrink`), and the slot table is rebuilt at the
    /// size they need (else at its size: the clock's sweep at the budget refills it). No second
    /// copy of the table, so it works at the budget too.
    fn compact(b: *Big, shrink: bool) void {
        var w_at: usize = 0;
        var kept: usize = 0;
        var o: usize = 0;
        while (o < b.used) {
            const hdr = b.arena[o];
            const w = entryWords(hdr);
            if (hdr & live_bit != 0) {
                if (w_at != o) std.mem.copyForwards(u32, b.arena[w_at .. w_at + w], b.arena[o .. o + w]);
                b.arena[w_at] = hdr & ~live_bit;
                w_at += w;
                kept += 1;
            }
            o += w;
        }
        b.used = w_at;
        b.count = kept;
        b.live = 0;
        b.refused = 0;
        const n_slots = @max(min_slots, std.math.ceilPowerOfTwo(usize, kept * 2 + 1) catch b.slots.len);
        if (shrink and n_slots < b.slots.len) {
            if (mapTable(u64, n_slots)) |ns| {
                tl_held -= (b.slots.len - n_slots) * 8;
                unmapTable(u64, b.slots);
                b.slots = ns;
            }
        }
        const keep_words = @max(min_words, w_at + w_at / 2);
        if (shrink and b.arena.len > 2 * keep_words) {
            if (mapTable(u32, keep_words)) |na| {
                @memcpy(na[0..w_at], b.arena[0..w_at]);
                tl_held -= (b.arena.len - keep_words) * 4;
                unmapTable(u32, b.arena);
                b.arena = na;
            }
        }
        @memset(b.slots, 0);
        const mask = b.slots.len - 1;
        o = 0;
        while (o < w_at) {
            const hdr = b.arena[o];
            const len: usize = hdr & 0xFFFF;
            const piece = b.entryBytes(o, len);
            const h = pieceHash(piece);
            var i: usize = @as(usize, @truncate(h)) & mask;
            while (b.slots[i] != 0) i = (i + 1) & mask;
            b.slots[i] = (tagOf(h) << 40) | @as(u64, o + 1);
            o += entryWords(hdr);
        }
    }

    inline fn tagOf(h: u64) u64 {
        return (h >> 40) | 1; // never 0, so a live slot is never 0
    }

    inline fn entryBytes(b: *const Big, o: usize, len: usize) []const u8 {
        return std.mem.sliceAsBytes(b.arena[o + 1 ..])[0..len];
    }

    inline fn copyOut(b: *const Big, o: usize, hdr: u32, out: []u32, comptime write: bool) usize {
        const len: usize = hdr & 0xFFFF;
        const n: usize = (hdr >> 16) & 0x7FFF;
        if (!write) return n;
        const t = o + 1 + (len + 3) / 4;
        // Session 27: one 32-byte copy for entries of up to 8 ids instead of this memcpy
        // (perf put 2.8% of the 20k documents' encode on it): A/B 0.999x / 1.002x (21 rounds,
        // both orders): the time was the entry's load, not the copy. Not kept.
        @memcpy(out[0..n], b.arena[t .. t + n]);
        return n;
    }

    /// The entry whose piece has `len` bytes, hash `h` and satisfies `same(o)` (o = its arena
    /// offset), copied to `out`; null if none.
    inline fn find(b: *Big, h: u64, len: usize, same: anytype, out: []u32, comptime write: bool) ?usize {
        if (b.slots.len == 0) return null;
        const mask = b.slots.len - 1;
        const tag = tagOf(h);
        var i: usize = @as(usize, @truncate(h)) & mask;
        while (true) : (i = (i + 1) & mask) {
            const s = b.slots[i];
            if (s == 0) return null;
            if (s >> 40 != tag) continue;
            const o: usize = @intCast((s & off_mask) - 1);
            const hdr = b.arena[o];
            if (hdr & 0xFFFF == len and same.eq(b, o)) {
                if (b.marking and hdr & live_bit == 0) {
                    b.arena[o] = hdr | live_bit;
                    b.live += 1;
                }
                return b.copyOut(o, hdr, out, write);
            }
        }
    }

    /// Lookup of a piece of 2..16 bytes by its zero-padded key.
    inline fn getShort(b: *Big, h: u64, k0: u64, k1: u64, len: usize, out: []u32, comptime write: bool) ?usize {
        const Same = struct {
            k0: u64,
            k1: u64,
            len: usize,
            inline fn eq(c: @This(), bb: *const Big, o: usize) bool {
                // bytes are zero-padded to whole words, and len <= 16 fills at most 4 of them
                const w = bb.arena[o + 1 ..];
                const e0 = @as(u64, w[0]) | (if (c.len > 4) @as(u64, w[1]) << 32 else 0);
                const e1: u64 = if (c.len > 8) @as(u64, w[2]) | (if (c.len > 12) @as(u64, w[3]) << 32 else 0) else 0;
                return e0 == c.k0 and e1 == c.k1;
            }
        };
        return b.find(h, len, Same{ .k0 = k0, .k1 = k1, .len = len }, out, write);
    }

    fn getLong(b: *Big, h: u64, piece: []const u8, out: []u32, comptime write: bool) ?usize {
        const Same = struct {
            piece: []const u8,
            inline fn eq(c: @This(), bb: *const Big, o: usize) bool {
                return std.mem.eql(u8, bb.entryBytes(o, c.piece.len), c.piece);
            }
        };
        return b.find(h, piece.len, Same{ .piece = piece }, out, write);
    }

    /// Grows `slots` to `n_slots` and `arena` to at least `words`, within the budget; false if
    /// the budget or the allocator says no.
    fn grow(b: *Big, n_slots: usize, words: usize) bool {
        const new_words = if (words > b.arena.len) @max(words, b.arena.len * 2, min_words) else b.arena.len;
        const add = (n_slots - b.slots.len) * 8 + (new_words - b.arena.len) * 4;
        if (tl_held + add > threadCap()) return false;
        // Arena and slots are mapped, not malloc'd: glibc keeps large blocks freed after its
        // mmap threshold has risen in its heap, and tables that shrink and grow again (aging)
        // left ~7-10 MiB of such blocks resident in the 100 MB memory check.
        if (new_words != b.arena.len) {
            const na = mapTable(u32, new_words) orelse return false;
            @memcpy(na[0..b.used], b.arena[0..b.used]);
            tl_held += (new_words - b.arena.len) * 4;
            unmapTable(u32, b.arena);
            b.arena = na;
        }
        if (n_slots != b.slots.len) {
            const ns = mapTable(u64, n_slots) orelse return false; // zeroed
            tl_held += (n_slots - b.slots.len) * 8;
            const mask = n_slots - 1;
            for (b.slots) |s| {
                if (s == 0) continue;
                const o: usize = @intCast((s & off_mask) - 1);
                const len: usize = b.arena[o] & 0xFFFF;
                const piece = b.entryBytes(o, len);
                var i: usize = @as(usize, @truncate(pieceHash(piece))) & mask;
                while (ns[i] != 0) i = (i + 1) & mask;
                ns[i] = s;
            }
            unmapTable(u64, b.slots);
            b.slots = ns;
        }
        return true;
    }

    fn put(b: *Big, h: u64, piece: []const u8, toks: []const u32) void {
        const words = 1 + (piece.len + 3) / 4 + toks.len;
        if (b.used + words > b.arena.len or (b.count + 1) * 2 > b.slots.len) {
            const n_slots = if ((b.count + 1) * 2 > b.slots.len) @max(min_slots, b.slots.len * 2) else b.slots.len;
            if (!b.grow(n_slots, b.used + words)) {
                // Over budget: a clock, as `Short.put`. Lookups mark their entries from now
                // on; once a quarter of the count was turned away, the entries no lookup
                // found since the last sweep go (in place, memory kept for the new ones).
                if (!b.full) {
                    b.full = true;
                    if (!b.marking) {
                        b.markAll();
                        b.marking = true;
                    }
                }
                b.refused += 1;
                if (b.refused * 4 <= b.count) return;
                b.compact(false);
                if (b.slots.len == 0 or b.used + words > b.arena.len or (b.count + 1) * 2 > b.slots.len) return;
            }
        }
        const o = b.used;
        b.arena[o] = @as(u32, @intCast(piece.len | (toks.len << 16))) | (if (b.marking) live_bit else 0);
        if (b.marking) b.live += 1;
        const pw = (piece.len + 3) / 4;
        b.arena[o + pw] = 0; // zero padding of the last word
        @memcpy(std.mem.sliceAsBytes(b.arena[o + 1 ..])[0..piece.len], piece);
        @memcpy(b.arena[o + 1 + pw .. o + 1 + pw + toks.len], toks);
        b.used = o + words;
        b.count += 1;
        const mask = b.slots.len - 1;
        var i: usize = @as(usize, @truncate(h)) & mask;
        while (b.slots[i] != 0) i = (i + 1) & mask;
        b.slots[i] = (tagOf(h) << 40) | @as(u64, o + 1);
    }
};

fn encodePieceUncached(v: *const Vocab, piece: []const u8, out: []u32, scratch: *Scratch) error{OutOfMemory}!usize {
    if (piece.len == 1) {
        out[0] = v.byte_rank[piece[0]];
        return 1;
    }
    // tiktoken looks the whole piece up first; where every token's bytes merge back into it,
    // the merge gives the same answer, and most pieces that get here are not tokens (the
    // lookup is a cache miss in a 2 MB table: 15% of the merges' time on the corpus stream's
    // first pass).
    if (v.whole_first and !v.long.all_usable) {
        const whole = v.rank(piece);
        if (whole != no_rank) {
            out[0] = whole;
            return 1;
        }
    }
    if (piece.len >= longpiece.min_len and v.long.ready()) {
        if (try mergeLong(v, piece, out, scratch)) |n| return n;
    }
    if (piece.len <= small_max) return mergeSmall(v, piece, out, scratch.cache);
    return mergeHeap(v, piece, out, scratch);
}

/// BPE of a piece of at least longpiece.min_len bytes on this thread: the backtracking encoder,
/// or the heap merge where it gives up (longpar.zig's segments).
pub fn encodeLongPiece(v: *const Vocab, piece: []const u8, out: []u32, s: *Scratch) error{OutOfMemory}!usize {
    std.debug.assert(s.piece_threads <= 1);
    if (v.long.ready()) {
        if (try mergeLong(v, piece, out, s)) |n| return n;
    }
    return mergeHeap(v, piece, out, s);
}

/// The backtracking encoder (longpiece.zig), pair ranks through the thread's pair cache; pieces
/// of longpar.min_len bytes and more on the pool when the caller allows threads.
fn mergeLong(v: *const Vocab, piece: []const u8, out: []u32, s: *Scratch) error{OutOfMemory}!?usize {
    // On the pool first: each segment comes back here (one thread each) and is cut there.
    if (s.piece_threads > 1 and piece.len >= longpar.min_len) {
        if (try longpar.encode(s.gpa, v, piece, out, s.piece_threads)) |n| return n;
    }
    if (v.long.all_usable and s.cache != null) {
        if (try mergeCut(v, piece, out, s)) |n| return n;
    }
    return backtrack(v, piece, out, s);
}

/// Positions of the piece's first `cut_sample` bytes tested before a piece is cut at all.
const cut_sample = 1024;
/// The cuts found there must be at most this many bytes apart on average (text that cuts less
/// often keeps the search over the whole piece).
///
/// Performance notes (session 34; 1 MB pieces, one thread, in-process A/B with
/// bench/ab_builds.py, cl100k / o200k, against the search over the whole piece):
/// - Random CJK ideographs (the benchmark's pathological input), cut at every code point
///   where a filter of every token's three consecutive bytes said nothing crosses (98% / 79%
///   of the boundaries), parts through the piece tables: 1.02x, then 1.16x with `cutPart`
///   inline (the error union of a call came back through a store that the load after it could
///   not forward); one-code-point parts from `char3` instead of the piece tables (their
///   entries, one a cache line, spread over 1 MB; the table holds 21k ideographs in 167 KB):
///   1.84-2.06x / 1.08-1.14x. The filter alone misses o200k's boundaries (it has many
///   two-ideograph tokens, so most "last byte, next two bytes" triples occur inside one).
/// - `noTokenCrosses` by where a crossing token starts (p - 1, p - 2, before): exact sets
///   would find 99.8% of the boundaries for both encodings. With every test a Bloom probe
///   (one 512 KiB filter, four probes): 1.39x / 1.23x (the probes miss L1); with the L1
///   bitmaps first (`tok2`, `pre2`, `pre2of3`, `followed`: 93% / 88% of the boundaries
///   decided with no probe): 1.94x / 1.55x. In the benchmark's pathological section: CJK
///   2.65x / 2.86x -> ~1.5x / 2.4x the time of 1 MB of English on one thread.
/// - A first check of "the two bytes occur inside some token" before the token test (57% of
///   cl100k's boundaries pass it at once): 0.87x of the above: the branch on it is the
///   unpredictable one.
/// - Two threads: longpar's segments first, each cut on its thread: 10.4 -> 7.0 ms (2.58x ->
///   2.19x English).
/// - Random letters cut only every ~14 bytes (cl100k; 25 for o200k); letting them through
///   (24 here instead of 8): 0.58x / 0.67x: merging each ~14-byte part costs more than the
///   search over the whole.
/// - The corpus stream's first pass (bench/ab_stream.py, where the pieces of 33+ bytes that
///   the tables miss come here): 0.984x / 0.985x, and 1.004x in the other order: the sample
///   of pieces that do not cut costs about nothing; real CJK text mostly cuts into words that
///   the search takes as fast.
/// - Load: the bitmaps, the filter and `char3` (65,536 three-byte merges) are built in a few
///   ms (cl100k 199 -> 183 ms, o200k 546 -> 549 ms for the whole load, noise); 1 MiB more a
///   vocabulary.
const cut_avg_max = 8;

/// A long piece cut where no token can cross (`longpiece.Tables.noTokenCrosses`, tested at
/// every code point's first byte), each part encoded on its own: parts of up to 16 bytes
/// through the thread's piece tables (a run of CJK ideographs, which cl100k rarely joins, cuts
/// into parts of one or two code points that recur), longer ones merged. Exact: BPE never
/// joins the bytes on the two sides of such a cut. Every token's bytes merge back into it
/// (`all_usable`, the caller's condition), so a part answered from the tables (where a whole
/// token is taken as itself) is the part's merge. Null when the piece's first bytes cut too
/// rarely (random letters: one position in 14 for cl100k; runs of one byte: never).
fn mergeCut(v: *const Vocab, piece: []const u8, out: []u32, s: *Scratch) error{OutOfMemory}!?usize {
    const t = &v.long;
    const n = piece.len;
    const sample_end = @min(n, cut_sample);
    // The sample's cuts, kept for the pass that encodes (each position is tested once).
    var sample_cuts: std.StaticBitSet(cut_sample) = .empty;
    var p: usize = 1;
    while (p < sample_end) : (p += 1) {
        if (piece[p] & 0xC0 != 0x80 and t.noTokenCrosses(piece, p)) sample_cuts.set(p);
    }
    if ((sample_cuts.count() + 1) * cut_avg_max < sample_end) return null;
    var w: usize = 0;
    var start: usize = 0;
    p = 1;
    while (p < n) : (p += 1) {
        const cut = if (p < sample_end) sample_cuts.isSet(p) else piece[p] & 0xC0 != 0x80 and t.noTokenCrosses(piece, p);
        if (!cut) continue;
        w += try cutPart(v, piece[start..p], out[w..], s);
        start = p;
    }
    w += try cutPart(v, piece[start..], out[w..], s);
    return w;
}

inline fn cutPart(v: *const Vocab, part: []const u8, out: []u32, s: *Scratch) error{OutOfMemory}!usize {
    if (part.len == 1) {
        out[0] = v.byte_rank[part[0]];
        return 1;
    }
    if (part.len == 3 and part[0] & 0xF0 == 0xE0 and part[1] & 0xC0 == 0x80 and part[2] & 0xC0 == 0x80) {
        const k = (@as(usize, part[0] & 0x0F) << 12) | (@as(usize, part[1] & 0x3F) << 6) | (part[2] & 0x3F);
        return unpack(v.long.char3[k], out, true);
    }
    if (part.len <= 16) {
        // Found in the thread's tables if a piece of the text was this part (a word of CJK
        // text between two cuts); else merged, and not stored: the parts of new text (random
        // pairs of ideographs) would crowd the pieces out, and a table that this piece's
        // encoding changed would change what the caches keep (`PieceCache.age`).
        if (s.cache) |c| {
            const key = shortKey(part);
            if (if (part.len <= 8) c.short.findIn(false, key, part.len, out, true) else c.wide.findIn(false, key, part.len, out, true)) |k| return k;
        }
        return mergeSmall(v, part, out, s.cache);
    }
    if (part.len >= longpiece.min_len) {
        if (try backtrack(v, part, out, s)) |k| return k;
    }
    if (part.len <= small_max) return mergeSmall(v, part, out, s.cache);
    return mergeHeap(v, part, out, s);
}

/// `longpiece.Tables.char3`: the merges of all 65,536 three-byte sequences E0..EF, 80..BF,
/// 80..BF at load (overlong forms and surrogates too: a piece given to the library's test hook
/// may hold any bytes), a few ms; 512 KiB.
fn buildChar3(v: *Vocab) error{OutOfMemory}!void {
    const t = try v.gpa.alloc(u64, 1 << 16);
    var ids: [3]u32 = undefined;
    for (t, 0..) |*e, k| {
        const b = [3]u8{ @intCast(0xE0 | (k >> 12)), @intCast(0x80 | ((k >> 6) & 0x3F)), @intCast(0x80 | (k & 0x3F)) };
        e.* = Short.pack(3, ids[0..mergeSmallBytes(v, &b, &ids)])[0];
    }
    v.long.char3 = t;
}

/// The backtracking search over one piece on this thread (null: it gave up; the heap merge).
fn backtrack(v: *const Vocab, piece: []const u8, out: []u32, s: *Scratch) error{OutOfMemory}!?usize {
    try s.dead.resize(s.gpa, longpiece.bitWords(piece.len));
    const memo_len = @min(@as(usize, 1) << 13, std.math.ceilPowerOfTwoAssert(usize, @max(piece.len, 4)));
    try s.memo.resize(s.gpa, memo_len);
    // The search asks the Bloom filter itself before every pair lookup.
    if (s.cache) |c| return longpiece.encode(v, piece, out, s.dead.items, s.memo.items, CachePairs(false){ .c = c, .v = v });
    return longpiece.encode(v, piece, out, s.dead.items, s.memo.items, longpiece.VocabPairs{ .v = v });
}

/// Pair ranks through the thread's pair cache; `filtered` as in `PieceCache.pairRank`.
fn CachePairs(comptime filtered: bool) type {
    return struct {
        c: *PieceCache,
        v: *const Vocab,
        pub inline fn rank(p: @This(), a: u32, b: u32) u32 {
            return p.c.pairRank(p.v, a, b, filtered);
        }
    };
}

fn mergeSmall(v: *const Vocab, piece: []const u8, out: []u32, cache: ?*PieceCache) usize {
    if (v.pair_slots.len == 0) return mergeSmallBytes(v, piece, out);
    var ids: [small_max]u32 = undefined;
    var ranks: [small_max]u32 = undefined;
    const n = if (cache) |c|
        mergeParts(v, piece, &ids, &ranks, CachePairs(true){ .c = c, .v = v }, NoObserver{})
    else
        mergeParts(v, piece, &ids, &ranks, longpiece.VocabPairs{ .v = v }, NoObserver{});
    @memcpy(out[0..n], ids[0..n]);
    return n;
}

pub const NoObserver = struct {
    pub inline fn merged(_: NoObserver, _: u32, _: u32, _: u32) void {}
};

/// tiktoken's merge loop over `bytes` (the O(n^2) scan: pieces here are short). ids[i]: token of
/// part i; ranks[i]: rank of parts i and i+1 merged (the merged id through `mergedId`), or
/// no_rank. Pair ranks come from `pairs` (`.rank(a, b)`), and `seen.merged(rank, left, right)`
/// hears of every merge. Returns how many parts are left in ids (1 unless the parts stop
/// merging). Also longpiece.zig's load-time check of each token's own merges.
pub inline fn mergeParts(v: *const Vocab, bytes: []const u8, ids: []u32, ranks: []u32, pairs: anytype, seen: anytype) usize {
    var n: usize = bytes.len;
    for (0..n) |i| ids[i] = v.byte_rank[bytes[i]];
    for (0..n - 1) |i| ranks[i] = v.byte_pair[@as(usize, bytes[i]) << 8 | bytes[i + 1]];
    ranks[n - 1] = no_rank;
    while (n > 1) {
        var best: u32 = no_rank;
        var bi: usize = 0;
        for (ranks[0 .. n - 1], 0..) |r, i| {
            if (r < best) {
                best = r;
                bi = i;
            }
        }
        if (best == no_rank) break;
        seen.merged(best, ids[bi], ids[bi + 1]);
        const m = v.mergedId(best);
        ids[bi] = m;
        std.mem.copyForwards(u32, ids[bi + 1 .. n - 1], ids[bi + 2 .. n]);
        std.mem.copyForwards(u32, ranks[bi + 1 .. n - 1], ranks[bi + 2 .. n]);
        n -= 1;
        ranks[n - 1] = no_rank;
        ranks[bi] = if (bi + 1 < n) pairs.rank(m, ids[bi + 1]) else no_rank;
        if (bi > 0) ranks[bi - 1] = pairs.rank(ids[bi - 1], m);
    }
    return n;
}

/// The same merge looking pairs up by bytes (vocabularies with ids beyond 20 bits).
fn mergeSmallBytes(v: *const Vocab, piece: []const u8, out: []u32) usize {
    // starts[i]: start of part i; starts[n] = piece.len. ranks[i]: rank of parts i and i+1 merged.
    var starts: [small_max + 1]u32 = undefined;
    var ranks: [small_max]u32 = undefined;
    var n: usize = piece.len;
    for (0..n + 1) |i| starts[i] = @intCast(i);
    for (0..n - 1) |i| ranks[i] = v.rank(piece[i .. i + 2]);
    ranks[n - 1] = no_rank;
    while (n > 1) {
        var best: u32 = no_rank;
        var bi: usize = 0;
        for (ranks[0 .. n - 1], 0..) |r, i| {
            if (r < best) {
                best = r;
                bi = i;
            }
        }
        if (best == no_rank) break;
        // Merge part bi+1 into part bi.
        std.mem.copyForwards(u32, starts[bi + 1 .. n], starts[bi + 2 .. n + 1]);
        std.mem.copyForwards(u32, ranks[bi + 1 .. n - 1], ranks[bi + 2 .. n]);
        n -= 1;
        ranks[n - 1] = no_rank;
        if (bi + 1 < n) {
            ranks[bi] = v.rank(piece[starts[bi]..starts[bi + 2]]);
        } else ranks[bi] = no_rank;
        if (bi > 0) ranks[bi - 1] = v.rank(piece[starts[bi - 1]..starts[bi + 1]]);
    }
    for (0..n) |i| out[i] = v.rank(piece[starts[i]..starts[i + 1]]);
    return n;
}

fn heapPush(h: *std.ArrayList(u64), key: u64) void {
    h.appendAssumeCapacity(key);
    var i = h.items.len - 1;
    const items = h.items;
    while (i > 0) {
        const p = (i - 1) / 2;
        if (items[p] <= key) break;
        items[i] = items[p];
        i = p;
    }
    items[i] = key;
}

fn heapPop(h: *std.ArrayList(u64)) u64 {
    const items = h.items;
    const top = items[0];
    const last = items[items.len - 1];
    const n = items.len - 1;
    h.items.len = n;
    if (n == 0) return top;
    var i: usize = 0;
    while (true) {
        const l = 2 * i + 1;
        if (l >= n) break;
        var c = l;
        if (l + 1 < n and items[l + 1] < items[l]) c = l + 1;
        if (items[c] >= last) break;
        items[i] = items[c];
        i = c;
    }
    items[i] = last;
    return top;
}

/// Parts 0..n-1 linked in order, pair array sized, heap emptied with room for every push
/// (n initial pairs; each merge pushes at most 2).
fn heapInit(s: *Scratch, n: u32) error{OutOfMemory}!void {
    const none: u32 = std.math.maxInt(u32);
    try s.next.resize(s.gpa, n);
    try s.prev.resize(s.gpa, n);
    try s.pair_rank.resize(s.gpa, n);
    s.heap.clearRetainingCapacity();
    try s.heap.ensureTotalCapacity(s.gpa, 3 * @as(usize, n));
    for (s.next.items, s.prev.items, 0..) |*nx, *pv, i| {
        nx.* = if (i + 1 < n) @intCast(i + 1) else none;
        pv.* = if (i > 0) @intCast(i - 1) else none;
    }
}

pub fn mergeHeap(v: *const Vocab, piece: []const u8, out: []u32, s: *Scratch) error{OutOfMemory}!usize {
    if (v.pair_slots.len == 0) return mergeHeapBytes(v, piece, out, s);
    const n: u32 = @intCast(piece.len);
    const none: u32 = std.math.maxInt(u32);
    try heapInit(s, n);
    try s.part_rank.resize(s.gpa, n);
    const next = s.next.items;
    const prev = s.prev.items;
    const pair = s.pair_rank.items;
    const ids = s.part_rank.items;
    for (0..n) |i| ids[i] = v.byte_rank[piece[i]];
    for (0..n) |i| {
        if (i + 1 < n) {
            const r = v.byte_pair[@as(usize, piece[i]) << 8 | piece[i + 1]];
            pair[i] = r;
            if (r != no_rank) heapPush(&s.heap, (@as(u64, r) << 32) | i);
        } else pair[i] = no_rank;
    }
    while (s.heap.items.len > 0) {
        const key = heapPop(&s.heap);
        const r: u32 = @truncate(key >> 32);
        const i: u32 = @truncate(key);
        if (pair[i] != r) continue; // stale: the pair of i changed, or i was absorbed
        const j = next[i];
        const k = next[j];
        const m = v.mergedId(r);
        ids[i] = m;
        next[i] = k;
        if (k != none) prev[k] = i;
        pair[j] = no_rank;
        if (k != none) {
            const nr = v.pairRank(m, ids[k]);
            pair[i] = nr;
            if (nr != no_rank) heapPush(&s.heap, (@as(u64, nr) << 32) | i);
        } else pair[i] = no_rank;
        const p = prev[i];
        if (p != none) {
            const nr = v.pairRank(ids[p], m);
            pair[p] = nr;
            if (nr != no_rank) heapPush(&s.heap, (@as(u64, nr) << 32) | p);
        }
    }
    var cnt: usize = 0;
    var i: u32 = 0;
    while (i != none) : (i = next[i]) {
        out[cnt] = ids[i];
        cnt += 1;
    }
    return cnt;
}

/// The same merge with pair ranks looked up by bytes (vocabularies with ids beyond 20 bits).
fn mergeHeapBytes(v: *const Vocab, piece: []const u8, out: []u32, s: *Scratch) error{OutOfMemory}!usize {
    const n: u32 = @intCast(piece.len);
    const none: u32 = std.math.maxInt(u32);
    try heapInit(s, n);
    const next = s.next.items;
    const prev = s.prev.items;
    const pair = s.pair_rank.items;
    for (0..n) |i| {
        if (i + 1 < n) {
            const r = v.rank(piece[i .. i + 2]);
            pair[i] = r;
            if (r != no_rank) heapPush(&s.heap, (@as(u64, r) << 32) | i);
        } else pair[i] = no_rank;
    }
    while (s.heap.items.len > 0) {
        const key = heapPop(&s.heap);
        const r: u32 = @truncate(key >> 32);
        const i: u32 = @truncate(key);
        // Stale: node i was absorbed (prev/next reset to a dead mark) or its pair changed.
        if (pair[i] != r) continue;
        const j = next[i];
        const k = next[j];
        next[i] = k;
        if (k != none) prev[k] = i;
        pair[j] = no_rank;
        next[j] = i; // dead marker (never read as a live link)
        const end_i: u32 = if (k == none) n else (if (next[k] == none) n else next[k]);
        if (k != none) {
            const nr = v.rank(piece[i..end_i]);
            pair[i] = nr;
            if (nr != no_rank) heapPush(&s.heap, (@as(u64, nr) << 32) | i);
        } else pair[i] = no_rank;
        const p = prev[i];
        if (p != none) {
            const end_p: u32 = if (k == none) n else k;
            const nr = v.rank(piece[p..end_p]);
            pair[p] = nr;
            if (nr != no_rank) heapPush(&s.heap, (@as(u64, nr) << 32) | p);
        }
    }
    var cnt: usize = 0;
    var i: u32 = 0;
    while (i != none) {
        const e = if (next[i] == none) n else next[i];
        out[cnt] = v.rank(piece[i..e]);
        cnt += 1;
        i = next[i];
    }
    return cnt;
}

fn testVocab(gpa: std.mem.Allocator) !*Vocab {
    // All 256 bytes plus a few merges ("ab", "abc", "bc", "aa", "aaaa"), ranks in line order.
    var text: std.ArrayList(u8) = .empty;
    defer text.deinit(gpa);
    var rank: usize = 0;
    var b64: [64]u8 = undefined;
    var i: usize = 0;
    while (i < 256) : (i += 1) {
        const one = [_]u8{@intCast(i)};
        const e = std.base64.standard.Encoder.encode(&b64, &one);
        try text.print(gpa, "{s} {d}\n", .{ e, rank });
        rank += 1;
    }
    for ([_][]const u8{ "aa", "bc", "ab", "abc", "aaaa", "ca" }) |t| {
        const e = std.base64.standard.Encoder.encode(&b64, t);
        try text.print(gpa, "{s} {d}\n", .{ e, rank });
        rank += 1;
    }
    var bad: u64 = 0;
    return loadTiktoken(gpa, .cl100k, text.items, &bad);
}

test "heap merge equals the O(n^2) scan on random strings" {
    const gpa = std.testing.allocator;
    const v = try testVocab(gpa);
    defer v.deinit();
    var scratch = Scratch.init(gpa);
    defer scratch.deinit();
    var prng = std.Random.DefaultPrng.init(42);
    const r = prng.random();
    var piece: [small_max]u8 = undefined;
    var a: [small_max]u32 = undefined;
    var b: [small_max]u32 = undefined;
    var iter: usize = 0;
    while (iter < 2000) : (iter += 1) {
        const n = r.intRangeAtMost(usize, 2, small_max);
        for (piece[0..n]) |*c| c.* = "abc"[r.intRangeLessThan(usize, 0, 3)];
        const na = mergeSmall(v, piece[0..n], &a, null);
        const nb = try mergeHeap(v, piece[0..n], &b, &scratch);
        try std.testing.expectEqualSlices(u32, a[0..na], b[0..nb]);
        const nc = mergeSmallBytes(v, piece[0..n], &b);
        try std.testing.expectEqualSlices(u32, a[0..na], b[0..nc]);
        const nd = try mergeHeapBytes(v, piece[0..n], &b, &scratch);
        try std.testing.expectEqualSlices(u32, a[0..na], b[0..nd]);
        // tokens re-concatenate to the piece
        var len: usize = 0;
        for (a[0..na]) |t| len += v.tokenBytes(t).len;
        try std.testing.expectEqual(n, len);
    }
}

test "leftmost lowest rank wins" {
    const gpa = std.testing.allocator;
    const v = try testVocab(gpa);
    defer v.deinit();
    var out: [8]u32 = undefined;
    // "aaa": "aa" (rank 256) merges leftmost first -> ["aa", "a"]
    const n = mergeSmall(v, "aaa", &out, null);
    try std.testing.expectEqual(@as(usize, 2), n);
    try std.testing.expectEqual(@as(u32, 256), out[0]);
    try std.testing.expectEqual(@as(u32, 'a'), out[1]);
    try std.testing.expectEqual(no_rank, v.rank("zz"));
}

test "shortKeyAt equals shortKey" {
    const text = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (0..text.len - 16) |pos| {
        for (2..17) |len| {
            const a = shortKeyAt(text, pos, len);
            const b = shortKey(text[pos .. pos + len]);
            try std.testing.expectEqual(b.k0, a.k0);
            try std.testing.expectEqual(b.k1, a.k1);
            try std.testing.expectEqual(b.h, a.h);
        }
    }
}

test "threadCap: the budget over the threads of the job a thread works for, at least 1 MiB" {
    const saved = tl_share;
    defer tl_share = saved;
    const saved_test = test_cap.load(.monotonic);
    defer test_cap.store(saved_test, .monotonic);
    test_cap.store(0, .monotonic);
    tl_share = 1;
    const whole = threadCap();
    try std.testing.expect(whole >= 1 << 20);
    tl_share = 4;
    try std.testing.expectEqual(@max(whole / 4, @as(usize, 1 << 20)), threadCap());
    tl_share = 1 << 12;
    try std.testing.expectEqual(@as(usize, 1 << 20), threadCap());
    // `bind` sets the share from the job's thread count (0 counts as 1).
    var sc = Scratch.init(std.testing.allocator);
    defer sc.deinit();
    const vv = try testVocab(std.testing.allocator);
    defer vv.deinit();
    sc.bind(vv, 0);
    try std.testing.expectEqual(whole, threadCap());
    sc.bind(vv, 2);
    try std.testing.expectEqual(@max(whole / 2, @as(usize, 1 << 20)), threadCap());
}

/// Tests: marks a stored piece's used bit at the slot it sits in, without moving it (as a
/// lookup would).
fn markWhereItSits(comptime T: type, t: *T, piece: []const u8) void {
    const key = shortKey(piece);
    var i = T.home(key.h, t.entries.len);
    while (t.entries[i].k0 != key.k0 or t.entries[i].v & 31 != piece.len or T.k1Of(t.entries[i]) != key.k1) i = (i + 1) % t.entries.len;
    t.mark(i);
}

/// A test piece length for `Short` (2..8 bytes) or `Wide` (9..16), by index.
fn testLen(comptime T: type, i: usize) u8 {
    return @intCast(if (T == Wide) 9 + i % 8 else 2 + i % 7);
}

test "Short at its budget: a clock keeps the pieces found since its last sweep" {
    inline for (.{ Short, Wide }) |T| {
        const saved = test_cap.load(.monotonic);
        defer test_cap.store(saved, .monotonic);
        // Room for the initial table and not for it and a 1.5x one (a rebuild holds both).
        test_cap.store(tl_held + T.initial * T.slot_bytes * 12 / 5, .monotonic);
        var t: T = .{};
        defer t.release();
        try std.testing.expect(t.resize(T.initial));
        var name: [16]u8 = undefined;
        const Piece = struct {
            fn of(buf: *[16]u8, i: usize) []const u8 {
                return (if (T == Wide) std.fmt.bufPrint(buf, "piece{d:0>6}", .{i}) else std.fmt.bufPrint(buf, "p{d}", .{i})) catch unreachable;
            }
            fn put(tt: *T, buf: *[16]u8, i: usize) void {
                const p = of(buf, i);
                tt.put(shortKey(p), p.len, &.{@intCast(i + 1)});
            }
            fn found(tt: *T, buf: *[16]u8, i: usize) !bool {
                const p = of(buf, i);
                var out: [3]u32 = undefined;
                const got = tt.get(shortKey(p), p.len, &out) orelse return false;
                try std.testing.expectEqual(@as(usize, 1), got);
                try std.testing.expectEqual(@as(u32, @intCast(i + 1)), out[0]);
                return true;
            }
        };
        const cap = T.initial * 3 / 4;
        for (0..cap + 100) |i| Piece.put(&t, &name, i);
        try std.testing.expect(t.full);
        try std.testing.expectEqual(cap, t.count);
        // Full: the 100 past the budget were turned away, and what it held is all there.
        for (0..cap) |i| try std.testing.expect(try Piece.found(&t, &name, i));
        for (cap..cap + 100) |i| try std.testing.expect(!try Piece.found(&t, &name, i));
        // The first sweep (after a quarter of the count turned away): everything was found since
        // the table filled, so nothing goes.
        var next: usize = cap + 100;
        while (t.refused != 0) : (next += 1) Piece.put(&t, &name, next);
        try std.testing.expectEqual(cap, t.count);
        try expectSweepKeepsFound(Piece, &t, &name, cap, next, 1000);
    }
}

/// The next sweep of a full clock table (`Short` or `Big`) of `cap` pieces numbered from 0,
/// after its first sweep, whose next new piece is `next`: with every third piece found again,
/// the sweep keeps those and lets one new piece in; the freed slots then take `n_new` more,
/// found like the kept ones. `Piece` puts and finds numbered pieces through `buf`.
fn expectSweepKeepsFound(comptime Piece: type, t: anytype, buf: anytype, cap: usize, next: usize, n_new: usize) !void {
    for (0..cap) |i| {
        if (i % 3 == 0) try std.testing.expect(try Piece.found(t, buf, i));
    }
    var end = next;
    while (t.count == cap and end < next + 4 * cap) : (end += 1) Piece.put(t, buf, end);
    const kept = (cap + 2) / 3;
    try std.testing.expectEqual(kept + 1, t.count);
    for (0..cap) |i| try std.testing.expectEqual(i % 3 == 0, try Piece.found(t, buf, i));
    for (next..end - 1) |i| try std.testing.expect(!try Piece.found(t, buf, i));
    try std.testing.expect(try Piece.found(t, buf, end - 1));
    for (end..end + n_new) |i| Piece.put(t, buf, i);
    for (end..end + n_new) |i| try std.testing.expect(try Piece.found(t, buf, i));
    for (0..cap) |i| try std.testing.expectEqual(i % 3 == 0, try Piece.found(t, buf, i));
}

test "Short: lookups move pieces to their home slots and every piece stays found" {
    // Pieces of each table's lengths (2..8, 9..16), at the highest load the table reaches,
    // looked up in a skewed random order (each hit past its home slot swaps it home), then
    // rehashed by growth: every piece must still give its own ids, and none may be found
    // twice or lost. A swap that left a piece past an empty slot, or moved k1 wrongly for
    // pieces longer than 8 bytes, fails here.
    inline for (.{ Short, Wide }) |T| {
        var t: T = .{};
        defer t.release();
        try std.testing.expect(t.resize(T.initial));
        var rng = std.Random.DefaultPrng.init(42);
        const r = rng.random();
        const n = T.initial * 3 / 4;
        const keys = try std.testing.allocator.alloc([16]u8, n);
        defer std.testing.allocator.free(keys);
        const lens = try std.testing.allocator.alloc(u8, n);
        defer std.testing.allocator.free(lens);
        for (keys, lens, 0..) |*k, *l, i| {
            l.* = testLen(T, i);
            r.bytes(k);
            std.mem.writeInt(u16, k[0..2], @intCast(i), .little); // distinct
            t.put(shortKey(k[0..l.*]), l.*, &.{ @intCast(i), @intCast(i % 7), @intCast(n - i) });
        }
        var out: [3]u32 = undefined;
        var moved: usize = 0;
        for (0..20 * n) |_| {
            // Skewed: low indices far more often (a hot head and a long tail, as in text).
            const i = @min(n - 1, @as(usize, @intFromFloat(@as(f64, @floatFromInt(n)) * std.math.pow(f64, r.float(f64), 3))));
            const key = shortKey(keys[i][0..lens[i]]);
            const at_home = t.entries[T.home(key.h, t.entries.len)].k0 == key.k0;
            try std.testing.expectEqual(@as(?usize, 3), t.get(key, lens[i], &out));
            try std.testing.expectEqual([3]u32{ @intCast(i), @intCast(i % 7), @intCast(n - i) }, out);
            if (!at_home) moved += 1;
            try std.testing.expect(t.entries[T.home(key.h, t.entries.len)].k0 == key.k0);
        }
        try std.testing.expect(moved > 0);
        try std.testing.expect(t.resize(t.entries.len * 3 / 2 & ~@as(usize, 63)));
        for (keys, lens, 0..) |k, l, i| {
            try std.testing.expectEqual(@as(?usize, 3), t.get(shortKey(k[0..l]), l, &out));
            try std.testing.expectEqual(@as(u32, @intCast(i)), out[0]);
        }
        try std.testing.expectEqual(n, t.count);
    }
}

test "Short and Wide: answers round-trip through put, find, moves, rehash, removal and a snapshot" {
    // Short: pieces of 2..8 bytes with 1..3 ids; Wide: 9..16 bytes with 1..6 ids (0 and
    // 2^19 - 1 among them), the first three ids in `v`, the others in `v2`. A wrong shift, mask
    // or count, a key compared without its bytes 9..16, or an entry moved without them fails.
    inline for (.{ Short, Wide }) |T| {
        var t: T = .{};
        defer t.release();
        try std.testing.expect(t.resize(T.initial));
        var rng = std.Random.DefaultPrng.init(11);
        const r = rng.random();
        const n = 3000;
        var keys: [n][16]u8 = undefined;
        var lens: [n]usize = undefined;
        var ids: [n][6]u32 = undefined;
        var cnt: [n]usize = undefined;
        for (&keys, &lens, &ids, &cnt, 0..) |*k, *l, *d, *c, i| {
            l.* = testLen(T, i);
            c.* = 1 + (i / 16) % T.max_ids;
            r.bytes(k);
            std.mem.writeInt(u16, k[0..2], @intCast(i), .little); // distinct
            if (T == Wide and i % 3 == 0) keys[i][2..8].* = keys[i -| 3][2..8].*; // same k0 as another, k1 differs
            for (d, 0..) |*x, j| x.* = switch ((i + j) % 5) {
                0 => 0,
                1 => id_mask,
                else => r.uintLessThan(u32, id_mask + 1),
            };
            try std.testing.expect(T.fits(d[0..c.*]));
            t.put(shortKey(k[0..l.*]), l.*, d[0..c.*]);
        }
        try std.testing.expect(!T.fits((&[_]u32{ 1, 2, 3, 4, 5, 6, 7 })[0 .. T.max_ids + 1]));
        try std.testing.expect(!T.fits(&.{ 1, id_mask + 1 }));
        const Check = struct {
            fn all(tt: *T, ks: *const [n][16]u8, ls: *const [n]usize, ds: *const [n][6]u32, cs: *const [n]usize, only: ?*const [n]bool) !void {
                var out: [16]u32 = undefined;
                for (ks, ls, ds, cs, 0..) |k, l, d, c, i| {
                    const key = shortKey(k[0..l]);
                    const want: ?usize = if (only == null or only.?[i]) c else null;
                    try std.testing.expectEqual(want, tt.find(key, l, &out, false));
                    @memset(&out, 0xAAAA_AAAA);
                    try std.testing.expectEqual(want, tt.get(key, l, &out));
                    if (want != null) try std.testing.expectEqualSlices(u32, d[0..c], out[0..c]);
                }
            }
        };
        try Check.all(&t, &keys, &lens, &ids, &cnt, null); // (lookups move pieces home)
        try std.testing.expect(t.resize(t.entries.len * 3 / 2 & ~@as(usize, 63)));
        try Check.all(&t, &keys, &lens, &ids, &cnt, null);
        // A snapshot of the table answers the same (it holds both tables' pieces as `Wide`'s).
        var holder: SnapHolder = .{};
        var sn: Snap = .{ .entries = mapTable(ShortEntry, 8192).?, .count = 0, .refs = 0, .holder = &holder };
        defer unmapTable(ShortEntry, sn.entries);
        for (t.entries) |e| if (e.v != 0) try std.testing.expect(sn.add(T.wideOf(e)));
        var out: [16]u32 = undefined;
        for (keys, lens, ids, cnt) |k, l, d, c| {
            try std.testing.expectEqual(@as(?usize, c), sn.peek(shortKey(k[0..l]), l, &out, true));
            try std.testing.expectEqualSlices(u32, d[0..c], out[0..c]);
        }
        // Removal in place keeps the marked pieces with their ids.
        var keep: [n]bool = undefined;
        t.clearUsed();
        for (keys, lens, &keep) |k, l, *kp| {
            kp.* = r.boolean();
            if (!kp.*) continue;
            markWhereItSits(T, &t, k[0..l]);
        }
        t.dropUnused();
        t.marking = false;
        try Check.all(&t, &keys, &lens, &ids, &cnt, &keep);
    }
}

test "Short aging: a rebuild, or removal in place, keeps exactly the pieces used in the window" {
    // Pieces of 2..16 bytes at the highest load; a new window (bits cleared), then a random
    // ~60% of them marked used. Ending the window by a rebuild into a smaller table, and by
    // backward-shift removal in place (what it does at the budget), must both leave exactly
    // the marked pieces, each with its own ids: a removal that broke a probe chain loses
    // one, a wrong shift condition finds a removed one or none.
    inline for (.{ false, true, false, true }, 0..) |in_place, round| {
        const T = if (round < 2) Short else Wide;
        var t: T = .{};
        defer t.release();
        try std.testing.expect(t.resize(T.initial * 2));
        var rng = std.Random.DefaultPrng.init(7);
        const r = rng.random();
        const n = T.initial * 2 * 3 / 4;
        const keys = try std.testing.allocator.alloc([16]u8, n);
        defer std.testing.allocator.free(keys);
        const lens = try std.testing.allocator.alloc(u8, n);
        defer std.testing.allocator.free(lens);
        const hit = try std.testing.allocator.alloc(bool, n);
        defer std.testing.allocator.free(hit);
        for (keys, lens, 0..) |*k, *l, i| {
            l.* = testLen(T, i);
            r.bytes(k);
            std.mem.writeInt(u16, k[0..2], @intCast(i), .little); // distinct
            t.put(shortKey(k[0..l.*]), l.*, &.{ @intCast(i), @intCast(i % 5), @intCast(n - i) });
        }
        try std.testing.expectEqual(n, t.count);
        @memset(t.used, 0);
        var out: [3]u32 = undefined;
        var kept: usize = 0;
        for (keys, lens, hit) |k, l, *h| {
            h.* = r.float(f64) < 0.6;
            if (!h.*) continue;
            kept += 1;
            // Marked where it sits (a lookup would move it home, and pieces at home never
            // need to shift back).
            markWhereItSits(T, &t, k[0..l]);
        }
        const slots_before = t.entries.len;
        if (in_place) t.dropUnused() else t.age(null);
        try std.testing.expectEqual(kept, t.count);
        if (in_place) try std.testing.expectEqual(slots_before, t.entries.len) else try std.testing.expect(t.entries.len < slots_before);
        for (keys, lens, hit, 0..) |k, l, h, i| {
            const got = t.get(shortKey(k[0..l]), l, &out);
            if (h) {
                try std.testing.expectEqual(@as(?usize, 3), got);
                try std.testing.expectEqual([3]u32{ @intCast(i), @intCast(i % 5), @intCast(n - i) }, out);
            } else try std.testing.expectEqual(@as(?usize, null), got);
        }
    }
}

/// A piece looked up in `b` by the path its length takes in the encoder.
fn testBigGet(b: *Big, piece: []const u8, out: []u32) ?usize {
    if (piece.len > 16) return b.getLong(longHash(piece), piece, out, true);
    const k = shortKey(piece);
    return b.getShort(k.h, k.k0, k.k1, piece.len, out, true);
}

test "Big aging: compaction in place keeps the live pieces and their ids" {
    var b: Big = .{ .marking = true }; // the marking half of a window throughout
    defer b.release();
    var rng = std.Random.DefaultPrng.init(11);
    const r = rng.random();
    const n = 6000;
    var bufs: [n][120]u8 = undefined;
    var lens: [n]usize = undefined;
    var hit: [n]bool = undefined;
    var toks: [8]u32 = undefined;
    var out: [120]u32 = undefined;
    for (&bufs, &lens, 0..) |*p, *l, i| {
        l.* = if (i % 3 == 0) 2 + i % 15 else 17 + r.uintLessThan(usize, 100);
        r.bytes(p);
        std.mem.writeInt(u32, p[0..4], @intCast(i), .little);
        for (&toks, 0..) |*x, j| x.* = @intCast(i * 8 + j);
        const piece = p[0..l.*];
        const h = pieceHash(piece);
        b.put(h, piece, toks[0 .. 4 + i % 5]);
    }
    try std.testing.expectEqual(@as(usize, n), b.count);
    b.age(null); // every piece was stored in this window: nothing goes, the bits are cleared
    try std.testing.expectEqual(@as(usize, n), b.count);
    try std.testing.expectEqual(@as(usize, 0), b.live);
    const slots_before = b.slots.len;
    for (&bufs, lens, &hit) |*p, l, *h| {
        h.* = r.float(f64) < 0.6;
        if (!h.*) continue;
        const piece = p[0..l];
        const got = testBigGet(&b, piece, &out);
        try std.testing.expect(got != null);
    }
    b.age(null);
    try std.testing.expect(b.slots.len < slots_before);
    for (&bufs, lens, hit, 0..) |*p, l, h, i| {
        const piece = p[0..l];
        const got = testBigGet(&b, piece, &out);
        if (h) {
            try std.testing.expectEqual(@as(?usize, 4 + i % 5), got);
            for (out[0..got.?], 0..) |x, j| try std.testing.expectEqual(@as(u32, @intCast(i * 8 + j)), x);
        } else try std.testing.expectEqual(@as(?usize, null), got);
    }
    // The next window starts clean: pieces kept by the compaction but not used again (odd i;
    // the loop above looked up every kept one, so first a window that ends unchanged) go too.
    b.age(null);
    for (&bufs, lens, hit, 0..) |*p, l, h, i| {
        if (!h or i % 2 == 1) continue;
        const piece = p[0..l];
        _ = testBigGet(&b, piece, &out);
    }
    b.age(null);
    for (&bufs, lens, hit, 0..) |*p, l, h, i| {
        const piece = p[0..l];
        const got = testBigGet(&b, piece, &out);
        try std.testing.expectEqual(h and i % 2 == 0, got != null);
    }
}

test "Big at its budget: a clock keeps the pieces found since its last sweep" {
    const saved = test_cap.load(.monotonic);
    defer test_cap.store(saved, .monotonic);
    // Room for the smallest slot table and arena only.
    test_cap.store(tl_held + Big.min_slots * 8 + Big.min_words * 4, .monotonic);
    var b: Big = .{};
    defer b.release();
    const Piece = struct {
        // 20 bytes (not a Short piece), numbered; 4 ids derived from the number.
        fn of(buf: *[20]u8, i: usize) []const u8 {
            @memset(buf, 'x');
            std.mem.writeInt(u64, buf[0..8], i, .little);
            return buf;
        }
        fn put(bb: *Big, buf: *[20]u8, i: usize) void {
            const p = of(buf, i);
            const toks = [4]u32{ @intCast(i), @intCast(i + 1), @intCast(i + 2), @intCast(i + 3) };
            bb.put(longHash(p), p, &toks);
        }
        fn found(bb: *Big, buf: *[20]u8, i: usize) !bool {
            var out: [4]u32 = undefined;
            const got = testBigGet(bb, of(buf, i), &out) orelse return false;
            try std.testing.expectEqual(@as(usize, 4), got);
            for (out, 0..) |x, j| try std.testing.expectEqual(@as(u32, @intCast(i + j)), x);
            return true;
        }
    };
    var buf: [20]u8 = undefined;
    var next: usize = 0;
    while (!b.full) : (next += 1) Piece.put(&b, &buf, next);
    const cap = b.count;
    try std.testing.expect(cap > 1000);
    const slots = b.slots.len;
    for (0..cap) |i| try std.testing.expect(try Piece.found(&b, &buf, i));
    // The first sweep: every piece counts as found once (the table filled outside a marking
    // half), so nothing goes.
    while (b.refused != 0 or b.count < cap) : (next += 1) Piece.put(&b, &buf, next);
    try std.testing.expectEqual(cap, b.count);
    try expectSweepKeepsFound(Piece, &b, &buf, cap, next, 500);
    try std.testing.expectEqual(slots, b.slots.len); // compacted in place: memory kept
}

/// The aging tests' pieces: `aging_pieces` a set, 60% of 3 bytes (Short holds them), 10% of 12
/// (Wide, or Big if they have more than 6 ids) and the rest of 17..40 (Big), each set's pieces
/// starting with its own byte of `tags`, distinct by bytes 1..2.
const aging_pieces = 24000;
const AgingSet = struct { bytes: [aging_pieces][40]u8, lens: [aging_pieces]usize };

fn fillAgingSets(sets: []AgingSet, r: std.Random, tags: []const u8) void {
    for (sets, 0..) |*set, s| for (&set.bytes, &set.lens, 0..) |*p, *l, i| {
        l.* = if (i % 10 < 6) 3 else if (i % 10 == 6) 12 else 17 + r.uintLessThan(usize, 24);
        for (p[0..l.*]) |*c| c.* = "abcdefgh"[r.uintLessThan(usize, 8)];
        p[0] = tags[s]; // sets never share a piece
        std.mem.writeInt(u16, p[1..3], @intCast(i), .little); // distinct
    };
}

/// One piece through the thread's caches, checked against an uncached merge, counted as if it
/// came with a row of text.
fn expectAgingPiece(v: *const Vocab, sc: *Scratch, p: []const u8, got: *[40]u32, want: *[40]u32) !void {
    const k = try encodePiece(v, p, got, sc);
    const m = try encodePieceUncached(v, p, want, sc);
    try std.testing.expectEqualSlices(u32, want[0..m], got[0..k]);
    sc.noteText(p.len * 20);
}

/// The tables hold every piece of set `keep` and none of the others'.
fn expectHeldOnly(c: *PieceCache, sets: []const AgingSet, keep: usize, buf: *[40]u32) !void {
    for (sets, 0..) |*set, s| for (&set.bytes, set.lens) |*p, l| {
        const piece = p[0..l];
        const in_short = if (l <= 8) c.short.get(shortKey(piece), l, buf) != null else l <= 16 and c.wide.get(shortKey(piece), l, buf) != null;
        const held = in_short or testBigGet(&c.big, piece, buf) != null;
        try std.testing.expectEqual(s == keep, held);
    };
}

test "piece caches age: once the text moves on, the tables keep only the new text's pieces" {
    // A thread encodes set A (3-byte pieces, which Short holds, and 17..40-byte ones, which Big
    // holds; enough of both that each table grows past its first size) for a few tasks, then
    // only set B. Within a few windows every A piece must be gone from both tables, every B
    // piece must be there, and every answer must equal an uncached merge all along.
    const gpa = std.testing.allocator;
    const v = try testVocab(gpa);
    defer v.deinit();
    var scratch = Scratch.init(gpa);
    defer scratch.deinit();
    var prng = std.Random.DefaultPrng.init(5);
    const sets = try gpa.alloc(AgingSet, 2);
    defer gpa.free(sets);
    fillAgingSets(sets, prng.random(), "xy");
    var got: [40]u32 = undefined;
    var want: [40]u32 = undefined;
    const Pass = struct {
        fn run(vv: *const Vocab, sc: *Scratch, set: *const AgingSet, g: *[40]u32, w: *[40]u32) !void {
            sc.bind(vv, 1); // one task
            for (&set.bytes, set.lens) |*p, l| try expectAgingPiece(vv, sc, p[0..l], g, w);
        }
    };
    for (0..4) |_| try Pass.run(v, &scratch, &sets[0], &got, &want);
    const c = scratch.cache.?;
    try std.testing.expectEqual(@as(usize, aging_pieces), c.short.count + c.wide.count + c.big.count);
    try std.testing.expect(c.short.entries.len > Short.initial and c.big.slots.len > Big.min_slots);
    for (0..30) |_| try Pass.run(v, &scratch, &sets[1], &got, &want);
    try std.testing.expectEqual(@as(usize, aging_pieces), c.short.count + c.wide.count + c.big.count);
    try expectHeldOnly(c, sets, 1, &got);
}

test "aging: a drop is judged wrong only by the dropped pieces coming back, not by new ones" {
    // Sets A, B, C of pieces that never coincide. A is encoded, then B until a window drops A's
    // pieces. (1) C right after that drop: its own pieces are new, not A's coming back, so the
    // windows keep their length and B's pieces go in turn (counting every new entry took C for
    // A coming back and doubled them). (2) A right after the drop instead: half of what was
    // dropped comes back, so the drop was wrong and the windows double.
    const gpa = std.testing.allocator;
    const v = try testVocab(gpa);
    defer v.deinit();
    var prng = std.Random.DefaultPrng.init(11);
    const sets = try gpa.alloc(AgingSet, 3);
    defer gpa.free(sets);
    fillAgingSets(sets, prng.random(), "xyz");
    var got: [40]u32 = undefined;
    var want: [40]u32 = undefined;
    const Pass = struct {
        fn run(vv: *const Vocab, sc: *Scratch, set: *const AgingSet, g: *[40]u32, w: *[40]u32) !void {
            for (0..4) |q| { // four tasks a pass, so that windows end inside a pass
                sc.bind(vv, 1);
                var i = q;
                while (i < aging_pieces) : (i += 4) try expectAgingPiece(vv, sc, set.bytes[i][0..set.lens[i]], g, w);
            }
        }
    };
    for ([_]usize{ 2, 0 }) |then| {
        var scratch = Scratch.init(gpa);
        defer scratch.deinit();
        scratch.bind(v, 1);
        const c = scratch.cache.?;
        c.serial = 0; // a fresh start for each case (this thread's tables are reset at bind)
        // A until its windows have settled (no drop pending: a window shorter than a pass
        // drops pieces that come back, and doubles).
        var passes: usize = 0;
        while (passes < 4 or c.drop_from != 0) : (passes += 1) {
            try std.testing.expect(passes < 40);
            try Pass.run(v, &scratch, &sets[0], &got, &want);
        }
        const s0 = c.scale;
        passes = 0;
        while (c.drop_from == 0) : (passes += 1) {
            try std.testing.expect(passes < 40);
            try Pass.run(v, &scratch, &sets[1], &got, &want);
        }
        try std.testing.expectEqual(s0, c.scale);
        for (0..12) |_| try Pass.run(v, &scratch, &sets[then], &got, &want);
        if (then == 2) {
            try std.testing.expectEqual(s0, c.scale);
            for (0..24) |_| try Pass.run(v, &scratch, &sets[2], &got, &want);
            try expectHeldOnly(c, sets, 2, &got);
        } else try std.testing.expect(c.scale > s0);
    }
}

test "snapshot: peek finds what add stored, duplicates are stored once, the last holder frees it" {
    var holder: SnapHolder = .{};
    const n: usize = 1024;
    const sn = try std.heap.c_allocator.create(Snap);
    sn.* = .{ .entries = mapTable(ShortEntry, n).?, .count = 0, .refs = 0, .holder = &holder };
    _ = snap_bytes.fetchAdd(sn.bytes(), .monotonic);
    var prng = std.Random.DefaultPrng.init(7);
    const r = prng.random();
    var keys: [600][16]u8 = undefined;
    var lens: [600]usize = undefined;
    for (&keys, &lens, 0..) |*k, *l, i| {
        l.* = 2 + r.uintLessThan(usize, 15);
        @memset(k, 0);
        r.bytes(k[0..l.*]);
        k[0] = @intCast(i & 0xFF);
        k[1] = @intCast(i >> 8);
        const key = shortKey(k[0..l.*]);
        const v: u64 = l.* | (1 << 5) | (@as(u64, i) << 7);
        try std.testing.expect(sn.add(.{ .k0 = key.k0, .v = v, .k1 = key.k1, .v2 = 0 }));
        try std.testing.expect(sn.add(.{ .k0 = key.k0, .v = v, .k1 = key.k1, .v2 = 0 })); // again: no second copy
    }
    try std.testing.expectEqual(@as(usize, 600), sn.count);
    // 3/4 of 1024 = 768: the table refuses the 769th entry.
    var extra: usize = 0;
    while (sn.add(.{ .k0 = 0xFFFF_0000 + extra, .v = 2 | (1 << 5), .k1 = 0, .v2 = 0 })) extra += 1;
    try std.testing.expectEqual(@as(usize, 768), sn.count);
    var out: [3]u32 = undefined;
    for (keys, lens, 0..) |k, l, i| {
        try std.testing.expectEqual(@as(?usize, 1), sn.peek(shortKey(k[0..l]), l, &out, true));
        try std.testing.expectEqual(@as(u32, @intCast(i)), out[0]);
        var k2 = k;
        k2[l - 1] ^= 0x80; // a different piece of the same length
        if (sn.peek(shortKey(k2[0..l]), l, &out, true)) |_| {
            // only if that piece happens to be stored too
            var found = false;
            for (keys, lens) |kk, ll| found = found or (ll == l and std.mem.eql(u8, kk[0..ll], k2[0..l]));
            try std.testing.expect(found);
        }
    }
    holder.swap(sn);
    const a = holder.acquire().?;
    try std.testing.expectEqual(@as(usize, 2), a.refs);
    // A new snapshot replaces it; the old one lives until its last holder lets go.
    const sn2 = try std.heap.c_allocator.create(Snap);
    sn2.* = .{ .entries = mapTable(ShortEntry, n).?, .count = 0, .refs = 0, .holder = &holder };
    _ = snap_bytes.fetchAdd(sn2.bytes(), .monotonic);
    holder.swap(sn2);
    try std.testing.expectEqual(@as(usize, 1), a.refs);
    try std.testing.expectEqual(@as(?usize, 1), a.peek(shortKey(keys[5][0..lens[5]]), lens[5], &out, true));
    a.release();
    try std.testing.expect(holder.cur == sn2);
    holder.cur.?.destroy();
    try std.testing.expectEqual(@as(usize, 0), snap_bytes.load(.monotonic));
}

test "snapshot: Big's pieces copied once, found with their ids, and read without writing" {
    var src: Big = .{ .marking = true }; // live bits set on every entry: the copy clears them
    defer src.release();
    var rng = std.Random.DefaultPrng.init(5);
    const r = rng.random();
    const n = 3000;
    var bufs: [n][60]u8 = undefined;
    var lens: [n]usize = undefined;
    var toks: [8]u32 = undefined;
    for (&bufs, &lens, 0..) |*p, *l, i| {
        l.* = if (i % 3 == 0) 4 + i % 13 else 17 + r.uintLessThan(usize, 40);
        r.bytes(p);
        std.mem.writeInt(u32, p[0..4], @intCast(i), .little);
        for (&toks, 0..) |*x, j| x.* = @intCast(i * 8 + j);
        src.put(pieceHash(p[0..l.*]), p[0..l.*], toks[0 .. 4 + i % 5]);
    }
    try std.testing.expectEqual(@as(usize, n), src.count);
    var holder: SnapHolder = .{};
    var sn: Snap = .{ .entries = &.{}, .count = 0, .refs = 0, .holder = &holder };
    sn.big.slots = mapTable(u64, 8192).?;
    sn.big.arena = mapTable(u32, src.used).?;
    defer {
        unmapTable(u64, sn.big.slots);
        unmapTable(u32, sn.big.arena);
    }
    for (0..2) |_| { // twice: the second pass finds every piece there already
        var o: usize = 0;
        while (o < src.used) : (o += Big.entryWords(src.arena[o])) try std.testing.expect(sn.addBig(&src, o));
    }
    try std.testing.expectEqual(@as(usize, n), sn.big.count);
    try std.testing.expectEqual(src.used, sn.big.used);
    var out: [64]u32 = undefined;
    for (bufs, lens, 0..) |p, l, i| {
        const got = testBigGet(&sn.big, p[0..l], &out) orelse return error.Missing;
        try std.testing.expectEqual(4 + i % 5, got);
        try std.testing.expectEqual(@as(u32, @intCast(i * 8 + got - 1)), out[got - 1]);
    }
    var o: usize = 0;
    while (o < sn.big.used) : (o += Big.entryWords(sn.big.arena[o])) try std.testing.expect(sn.big.arena[o] & Big.live_bit == 0);
    try std.testing.expectEqual(@as(usize, 0), sn.big.live);
    // Full: the arena has no room for one more entry.
    var extra: [20]u8 = @splat(7);
    var more: Big = .{};
    defer more.release();
    more.put(pieceHash(&extra), &extra, toks[0..4]);
    try std.testing.expect(!sn.addBig(&more, 0));
}
