"""The tiktoken-shaped API: same results, same special-token rules and errors; vocabulary loading."""
from __future__ import annotations

import hashlib
import pickle
import shutil

import pytest

import arrowtok
import arrowtok.encoding as E


def test_list_and_get():
    assert arrowtok.list_encoding_names() == ["cl100k_base", "o200k_base"]
    enc = arrowtok.get_encoding("cl100k_base")
    assert arrowtok.get_encoding("cl100k_base") is enc
    assert enc.name == "cl100k_base"


def test_unknown_encoding_lists_known():
    with pytest.raises(ValueError) as e:
        arrowtok.get_encoding("p50k_base")
    assert "p50k_base" in str(e.value) and "cl100k_base" in str(e.value) and "o200k_base" in str(e.value)


def test_properties_match_tiktoken(enc, ref):
    assert enc.n_vocab == ref.n_vocab
    assert enc.max_token_value == ref.max_token_value
    assert enc.eot_token == ref.eot_token
    assert enc.special_tokens_set == ref.special_tokens_set


TEXTS = ["hello world", "", " ", "Hello, world! It's 2024 — 東京 😀\r\n\n  x  ", "<|endoftext|> and <|fim_prefix|>",
         "a<|endofprompt|>b<|endoftext|>", "<|endoftext", "\u0000\u0085\u2028"]


@pytest.mark.parametrize("text", TEXTS)
def test_encode_variants(enc, ref, text):
    assert enc.encode_ordinary(text) == ref.encode_ordinary(text)
    assert enc.encode(text, disallowed_special=()) == ref.encode(text, disallowed_special=())
    assert enc.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    sub = {"<|endoftext|>"}
    assert enc.encode(text, allowed_special=sub, disallowed_special=()) == ref.encode(text, allowed_special=sub, disallowed_special=())
    for kwargs in ({}, {"allowed_special": sub}):
        try:
            want = ref.encode(text, **kwargs)
        except ValueError as e:
            with pytest.raises(ValueError) as got:
                enc.encode(text, **kwargs)
            assert str(got.value) == str(e)
        else:
            assert enc.encode(text, **kwargs) == want


def test_single_text_calls_every_special_argument(enc, ref):
    """encode and encode_to_numpy take a shortcut when the special-token arguments cannot matter
    (each "all" or empty, and no special's first character in the text): every combination,
    on texts with and without "<", including a custom disallowed set of non-special strings
    (which tiktoken checks too) and an unknown allowed name (which must raise even on "abc")."""
    sub = {"<|endoftext|>"}
    allowed_opts = [frozenset(), set(), "all", sub, {"<|nope|>"}]
    disallowed_opts = ["all", (), frozenset(), sub, {"hello"}, ["<"]]
    texts = ["abc", "hello world", "x < y", "a <| b", "a<|endoftext|>b", "<|fim_prefix|>", "日本 <|endoftext", "Ω" * 300]

    def outcome(fn):
        try:
            return list(fn())
        except ValueError as e:
            return ("ValueError", str(e))

    for text in texts:
        for allowed in allowed_opts:
            for disallowed in disallowed_opts:
                kw = {"allowed_special": allowed, "disallowed_special": disallowed}
                got = outcome(lambda: enc.encode(text, **kw))
                got_np = outcome(lambda: [int(x) for x in enc.encode_to_numpy(text, **kw)])
                got_n = outcome(lambda: [enc.count_tokens(text, **kw)])
                if allowed == {"<|nope|>"}:
                    # Stricter than tiktoken (which ignores the name): a clear error, whatever the text.
                    msg = "not special tokens of " + enc.name + ": ['<|nope|>']"
                    assert got == ("ValueError", msg) and got_np == got and got_n == got, (text, kw)
                    continue
                want = outcome(lambda: ref.encode(text, **kw))
                assert got == want and got_np == want, (text, kw)
                assert got_n == (want if isinstance(want, tuple) else [len(want)]), (text, kw)


@pytest.mark.parametrize("text", ["", "x", "hello world " * 7000, "<|endoftext|> a " * 6000 + "\ud800",
                                  "日本語のテキスト" * 9000, "a\ud800b", "z" * 300_000])
def test_count_tokens_matches_encode_length(enc, ref, text):
    """count_tokens == len(encode): short texts (one native call), texts of 64K characters and
    more (a one-row column through count_tokens_arrow), lone surrogates, special tokens."""
    for kw in ({"disallowed_special": ()}, {"allowed_special": "all"}):
        assert enc.count_tokens(text, **kw) == len(ref.encode(text, **kw))
    if "<|" not in text:
        assert enc.count_tokens(text) == len(ref.encode(text))
    else:
        with pytest.raises(ValueError):
            enc.count_tokens(text)


def test_batch_lists_leave_the_gc_as_it_was(enc, ref, monkeypatch):
    """`encode_batch` makes its lists with the cyclic GC off (speed) and leaves the GC as it
    found it: on, off, and on again after an error while the lists are made."""
    import gc
    from arrowtok import encoding as E
    texts = [f"row {i}: " + "word " * (i % 9) for i in range(3000)] + ["", "😀 é"]
    want = ref.encode_ordinary_batch(texts)
    was = gc.isenabled()
    try:
        gc.enable()
        assert enc.encode_ordinary_batch(texts) == want
        assert gc.isenabled()
        gc.disable()
        assert enc.encode_ordinary_batch(texts) == want
        assert not gc.isenabled()
        gc.enable()
        seen = []

        def fail(*a, **k):
            seen.append(gc.isenabled())
            raise MemoryError("made up")

        monkeypatch.setattr(E.np, "frombuffer", fail)
        with pytest.raises(MemoryError):
            enc.encode_ordinary_batch(texts)
        assert seen == [False] and gc.isenabled()
    finally:
        monkeypatch.undo()
        (gc.enable if was else gc.disable)()


def test_batch_and_decode(enc, ref):
    texts = [t for t in TEXTS if "<|" not in t] * 3
    assert enc.encode_batch(texts) == ref.encode_batch(texts)
    assert enc.encode_ordinary_batch(TEXTS) == ref.encode_ordinary_batch(TEXTS)
    with pytest.raises(ValueError):
        enc.encode_batch(TEXTS)
    for t in TEXTS:
        toks = ref.encode(t, allowed_special="all")
        assert enc.decode(toks) == ref.decode(toks)
        assert enc.decode_bytes(toks) == ref.decode_bytes(toks)
    assert enc.decode_batch([ref.encode_ordinary(t) for t in TEXTS]) == TEXTS
    # token split inside a multi-byte character: decode replaces like tiktoken
    toks = ref.encode_ordinary("😀")
    assert enc.decode(toks[:1]) == ref.decode(toks[:1])
    assert enc.decode_tokens_bytes(toks) == ref.decode_tokens_bytes(toks)


def test_single_tokens(enc, ref):
    for t in ["hello", " world", b"\xff", "<|endoftext|>"]:
        assert enc.encode_single_token(t) == ref.encode_single_token(t)
    with pytest.raises(KeyError):
        enc.encode_single_token("not a single token at all")
    assert enc.decode_single_token_bytes(enc.eot_token) == b"<|endoftext|>"
    with pytest.raises(KeyError):
        enc.decode_bytes([enc.n_vocab + 10])
    with pytest.raises(KeyError):
        enc.decode_bytes([-1])


def test_surrogates_like_tiktoken(enc, ref):
    s = "a\ud800b\udfff"
    assert enc.encode_ordinary(s) == ref.encode_ordinary(s)
    assert enc.encode(s) == ref.encode(s)
    assert enc.encode_batch([s, "x"]) == ref.encode_batch([s, "x"])


def test_short_text_path_sizes_and_threads(name, ref):
    """Texts under E._VIEW_MIN characters take Encoding._fast (one prepared block and buffer per
    thread and encoding, at_encode_small). Sizes from empty to just under the limit in 4-byte
    characters (the buffer grows from 4096 ids on the way), then 8 threads that each alternate
    both encodings and every size: the ids, lists and arrays, equal tiktoken's."""
    import threading

    import numpy as np

    other = "o200k_base" if name == "cl100k_base" else "cl100k_base"
    encs = [arrowtok.get_encoding(name), arrowtok.get_encoding(other)]
    unit = "Hello, world! It's 2024 — 東京 😀\r\n  x  "
    texts = ["", "x", unit, unit * 150, "😀" * 2000, "ab" * 5000, "😀" * (E._VIEW_MIN - 1), "a😀" * 20000,
             "\U0010ffff" * 5000, unit[:7]]
    assert len(texts[6].encode()) > 4096 * 60  # past the first buffer, and on the fast path
    want = {}
    from oracle import oracle
    for e in encs:
        r = ref if e.name == name else oracle(e.name)
        want[e.name] = [r.encode_ordinary(t) for t in texts]
    for e in encs:
        for t, w in zip(texts, want[e.name]):
            assert e.encode_ordinary(t) == w
            assert e.encode(t) == w
            got = e.encode_to_numpy(t)
            assert got.dtype == np.uint32 and got.tolist() == w
    errors = []

    def run(k):
        try:
            for r in range(3):
                for i in range(len(texts)):
                    j = (i * 7 + k + r) % len(texts)
                    e = encs[(i + k) % 2]
                    w = want[e.name][j]
                    assert e.encode_ordinary(texts[j]) == w, (e.name, j)
                    assert e.encode_to_numpy(texts[j], disallowed_special=()).tolist() == w, (e.name, j)
        except BaseException as ex:  # noqa: BLE001
            errors.append(repr(ex)[:300])

    ts = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in ts) and not errors, errors[:3]


def test_decode_list_path(enc, ref):
    """Lists of up to E._DECODE_VIA_TLS ids decode through the thread's block (at_decode_blk);
    other inputs, and lists with an id out of range, through numpy. Both give tiktoken's bytes,
    and the same KeyError naming the id and its position."""
    import numpy as np

    texts = ["hello world", "😀 東京 — x", "<|endoftext|> as text", ""]
    lists = [ref.encode_ordinary(t) for t in texts] + [[enc.eot_token, 100, enc.eot_token]]
    # longest tokens, many of them: the output outgrows the block's first buffer (16 KiB)
    long_ids = sorted(range(ref.n_vocab - 2000), key=lambda i: -len(ref.decode_single_token_bytes(i)))[:400]
    lists += [long_ids * 40, (long_ids * 41)[: E._DECODE_VIA_TLS], (long_ids * 41)[: E._DECODE_VIA_TLS + 1]]
    for ids in lists:
        want = ref.decode_bytes(ids)
        assert enc.decode_bytes(ids) == want
        assert enc.decode_bytes(np.array(ids, np.int64)) == want
        assert enc.decode_bytes(tuple(ids)) == want
        assert enc.decode(ids) == ref.decode(ids)
    assert enc.decode_bytes([True, False]) == ref.decode_bytes([1, 0])
    for ids, bad, pos in [([1, 2, enc.n_vocab + 10], enc.n_vocab + 10, 2), ([5, -1], -1, 1), ([0, 2**32], 2**32, 1)]:
        with pytest.raises(KeyError) as e:
            enc.decode_bytes(ids)
        assert f"invalid token id {bad} at position {pos}" in str(e.value)
        with pytest.raises((KeyError, OverflowError)):  # tiktoken: OverflowError outside u32
            ref.decode_bytes(ids)
    with pytest.raises((KeyError, OverflowError)):
        enc.decode_bytes([0, 2**70])
    with pytest.raises((TypeError, ValueError)):
        enc.decode_bytes(["a"])


def test_encode_bytes_replace_matches_python(enc, ref):
    for raw in [b"ab\xffcd", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80x", b"\xc0\xaf", b"ok \xf4\x90\x80\x80"]:
        want = ref.encode_ordinary(raw.decode("utf-8", "replace"))
        assert enc.encode_bytes(raw, errors="replace") == want
        with pytest.raises(arrowtok.ArrowtokError) as e:
            enc.encode_bytes(raw)
        assert "invalid UTF-8 at byte offset" in str(e.value)


def test_pickle_registered(enc):
    assert pickle.loads(pickle.dumps(enc)) is enc


def test_vocab_load_time(name):
    import time

    t = time.perf_counter()
    E.Encoding(name, vocab_data=E._vocab_bytes(name), pattern=name, special_tokens=E.KNOWN[name]["special_tokens"])
    # Informational only (no timing assertion): printed with -s.
    print(f"load {name}: {1000 * (time.perf_counter() - t):.1f} ms")


def test_from_tiktoken_file(tmp_path, ref):
    p = tmp_path / "my.tiktoken"
    shutil.copy(E.DATA_DIR / "cl100k_base.tiktoken", p)
    enc = arrowtok.Encoding.from_tiktoken_file(p, pattern="cl100k_base")
    assert enc.name == "my"
    from oracle import oracle

    assert enc.encode("hello <|endoftext|>", allowed_special="all") == oracle("cl100k_base").encode("hello <|endoftext|>", allowed_special="all")
    with pytest.raises(ValueError, match="unknown pattern"):
        arrowtok.Encoding.from_tiktoken_file(p, pattern="gpt2")
    with pytest.raises(FileNotFoundError):
        arrowtok.Encoding.from_tiktoken_file(tmp_path / "missing.tiktoken", pattern="cl100k_base")


def test_bad_vocab_file_names_line(tmp_path):
    p = tmp_path / "bad.tiktoken"
    good = (E.DATA_DIR / "cl100k_base.tiktoken").read_bytes().split(b"\n")
    p.write_bytes(b"\n".join(good[:10] + [b"!!notbase64 10"] + good[11:]))
    with pytest.raises(ValueError, match="line 11"):
        arrowtok.Encoding.from_tiktoken_file(p, pattern="cl100k_base")
    p.write_bytes(b"YQ== 0\n")  # only 'a': bytes missing
    with pytest.raises(ValueError, match="every single byte"):
        arrowtok.Encoding.from_tiktoken_file(p, pattern="cl100k_base")


def test_missing_vocab_and_tiktoken_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="no valid vocabulary"):
        E._vocab_bytes("o200k_base", use_embedded=False)
    # tiktoken's cache layout: sha1(url) as file name.
    key = hashlib.sha1(b"https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken").hexdigest()
    shutil.copy(E.DATA_DIR / "o200k_base.tiktoken", tmp_path / key)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert E._vocab_bytes("o200k_base", use_embedded=False) == (E.DATA_DIR / "o200k_base.tiktoken").read_bytes()
    # A corrupted cached copy is refused (sha256), with the reason.
    (tmp_path / key).write_bytes(b"garbage")
    with pytest.raises(FileNotFoundError, match="sha256"):
        E._vocab_bytes("o200k_base", use_embedded=False)


def test_runtime_dispatch_variants_agree(tmp_path):
    """The x86-64-v4 and -v3 builds (chosen at import on CPUs that have AVX-512 / AVX2 and BMI2)
    and the portable baseline give identical ids; ARROWTOK_CPU=v3 / baseline caps the choice,
    and an unknown value is refused."""
    import os
    import subprocess
    import sys

    from arrowtok import _native

    lib_dir = _native.LIB_PATH.parent
    if not (lib_dir / "libarrowtok_v3.so").exists():
        pytest.skip("no x86-64-v3 build on this platform")
    flags = _native._cpu_flags()
    script = (
        "import sys, arrowtok, arrowtok._native as N, pyarrow as pa\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from oracle import corpus_files\n"
        "rows = [l for p in corpus_files() for l in p.read_text(encoding='utf-8').split('\\n')][:40000]\n"
        "out = []\n"
        "for name in arrowtok.list_encoding_names():\n"
        "    out.append(arrowtok.get_encoding(name).encode_arrow(pa.array(rows), threads=2).to_pylist())\n"
        "import hashlib, json\n"
        "print(N.CPU, hashlib.sha256(json.dumps(out).encode()).hexdigest())\n"
    )
    tests_dir = str(os.path.dirname(__file__))
    res = {}
    for mode in ("auto", "v3", "baseline", "v5"):
        env = dict(os.environ, ARROWTOK_CPU=mode)
        env.pop("ARROWTOK_LIB", None)
        r = subprocess.run([sys.executable, "-c", script, tests_dir], env=env, capture_output=True, text=True, timeout=600)
        if mode == "v5":
            assert r.returncode != 0 and "ARROWTOK_CPU='v5'" in r.stderr
            continue
        assert r.returncode == 0, r.stderr
        res[mode] = r.stdout.split()
    assert res["baseline"][0] == "x86_64_v2"
    if _native._V3_FLAGS <= flags:
        assert res["v3"][0] == "x86_64_v3"
    if _native._V4_FLAGS <= flags:
        assert res["auto"][0] == "x86_64_v4"
    assert res["auto"][1] == res["v3"][1] == res["baseline"][1]


def test_default_threads_follows_the_variable_and_the_cpu_set(monkeypatch):
    """threads=None: ARROWTOK_NUM_THREADS when set (read on every call), else the CPUs the
    process may run on, looked up at most once a second."""
    from arrowtok import encoding as E
    monkeypatch.delenv("ARROWTOK_NUM_THREADS", raising=False)
    clock = [1000.0]
    monkeypatch.setattr(E.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(E, "_cpus_seen", (0.0, 1))
    monkeypatch.setattr(E.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert E.default_threads() == 3
    monkeypatch.setattr(E.os, "sched_getaffinity", lambda pid: {0})
    assert E.default_threads() == 3  # within the second: the last look
    clock[0] += 1.5
    assert E.default_threads() == 1
    monkeypatch.setenv("ARROWTOK_NUM_THREADS", "5")
    assert E.default_threads() == 5
    monkeypatch.setenv("ARROWTOK_NUM_THREADS", "0")
    assert E.default_threads() == 1
