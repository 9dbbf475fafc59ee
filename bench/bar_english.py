"""Issue 2's first bar: one thread, English (three Gutenberg books, 2.6 MB), arrowtok vs tiktoken's
encode_ordinary, interleaved, medians; ids checked equal first. Column = encode_arrow over the
lines vs encode_ordinary per line; doc = one encode_ordinary call over the whole text.
Usage: python bench/bar_english.py (needs ../shared/corpora)."""
import sys, time, statistics as S, pyarrow as pa
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))
import arrowtok
from oracle import oracle
books = ['en_gutenberg_moby_dick.txt', 'en_gutenberg_pride_prejudice.txt', 'en_gutenberg_sherlock.txt']
text = "".join((ROOT.parent / 'shared' / 'corpora' / b).read_text(encoding='utf-8') for b in books)
paras = text.split("\n")
col = pa.array(paras)
nb = len(text.encode())
for name in ["cl100k_base", "o200k_base"]:
    a, t = arrowtok.get_encoding(name), oracle(name)
    assert a.encode_arrow(col, threads=1).to_pylist() == [t.encode_ordinary(p) for p in paras]
    res = {"arrowtok encode_arrow": [], "arrowtok encode_ordinary(doc)": [], "tiktoken encode_ordinary(lines)": [], "tiktoken encode_ordinary(doc)": []}
    for _ in range(7):
        s = time.perf_counter(); a.encode_arrow(col, threads=1); res["arrowtok encode_arrow"].append(time.perf_counter() - s)
        s = time.perf_counter(); [t.encode_ordinary(p) for p in paras]; res["tiktoken encode_ordinary(lines)"].append(time.perf_counter() - s)
        s = time.perf_counter(); a.encode_ordinary(text); res["arrowtok encode_ordinary(doc)"].append(time.perf_counter() - s)
        s = time.perf_counter(); t.encode_ordinary(text); res["tiktoken encode_ordinary(doc)"].append(time.perf_counter() - s)
    med = {k: S.median(v) for k, v in res.items()}
    print(name, f"{nb/1e6:.1f} MB English;", "; ".join(f"{k} {nb/v/1e6:.0f} MB/s" for k, v in med.items()))
    print(f"  ratio column: {med['tiktoken encode_ordinary(lines)']/med['arrowtok encode_arrow']:.1f}x, doc: {med['tiktoken encode_ordinary(doc)']/med['arrowtok encode_ordinary(doc)']:.1f}x")
