#!/usr/bin/env python
"""Long fuzz run (issue 8): the checks of tests/test_fuzz.py, round after round, for N minutes.

    python tools/fuzz_long.py --minutes 30
    python tools/fuzz_long.py --minutes 10 --lib /tmp/safe/libarrowtok.so   # a ReleaseSafe build
    python tools/fuzz_long.py --minutes 5 --all       # include the crash classes still open

Each round runs (a) the reference-BPE text check, (b) the random Arrow layout check (both
hypothesis-driven, fresh random examples each round) and (c) a batch of hostile C ABI calls in a
child process. A failing or crashing input is written to tests/regressions/ as a runnable
script (`# status: open`), and the run stops (or goes on with --keep-going). Prints execution
counts at the end; exit status 1 when something was found.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
REGRESSIONS = TESTS / "regressions"


def save_regression(kind: str, call: str, note: str) -> Path:
    REGRESSIONS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    path = REGRESSIONS / f"found_{kind}_{stamp}_{random.randrange(10**6):06d}.py"
    header = "\n".join("# " + ln for ln in note.strip().splitlines()[:12])
    path.write_text(f"# status: open\n# found by tools/fuzz_long.py ({kind})\n{header}\n"
                    f"import json  # noqa: F401\n\nimport pyarrow as pa  # noqa: F401\n\n"
                    f"import _probe  # noqa: F401  (sys.path, library)\nimport test_fuzz as F\n\n{call}\n"
                    f"print('ok')\n")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--lib", help="library to test (sets ARROWTOK_LIB)")
    ap.add_argument("--all", action="store_true", help="include the crash classes that are reported but open")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep-going", action="store_true", help="record failures and continue")
    ap.add_argument("--text-examples", type=int, default=300, help="per round")
    ap.add_argument("--column-examples", type=int, default=200, help="per round")
    ap.add_argument("--abi-cases", type=int, default=4000, help="per round")
    args = ap.parse_args()
    if args.lib:
        os.environ["ARROWTOK_LIB"] = str(Path(args.lib).resolve())
    sys.path.insert(0, str(TESTS))
    import test_fuzz as F  # noqa: E402  (after ARROWTOK_LIB is set)

    seed = args.seed if args.seed is not None else random.randrange(2**31)
    rnd = random.Random(seed)
    print(f"fuzz_long: {args.minutes} min, seed {seed}, library {F.arrowtok._native._find_library()}", flush=True)

    last = {}
    real_text, real_column = F.check_text, F.check_column

    def rec_text(name, text):
        last["text"] = (name, text)
        real_text(name, text)

    def rec_column(**case):
        last["column"] = case
        real_column(**case)

    F.check_text = rec_text
    F.check_column = rec_column
    deadline = time.time() + args.minutes * 60
    found = []
    rounds = 0
    abi_total = 0
    while time.time() < deadline and (not found or args.keep_going):
        rounds += 1
        for kind, make, n in (("text", F.bpe_test, args.text_examples), ("column", F.column_test, args.column_examples)):
            if time.time() >= deadline:
                break
            try:
                make(n)()
            except Exception as e:  # noqa: BLE001
                note = "".join(traceback.format_exception_only(type(e), e))
                if kind == "text":
                    name, text = last["text"]
                    call = f"F.check_text({name!r}, {text!r})"
                else:
                    c = dict(last["column"])
                    typ = str(c.pop("typ"))  # "string", "large_binary", "string_view", ...: pa.<name>()
                    rows = [None if r is None else r.hex() for r in c.pop("rows")]
                    call = (f"rows = [None if r is None else bytes.fromhex(r) for r in {rows!r}]\n"
                            f"F.check_column(typ=getattr(pa, {typ!r})(), rows=rows, **{c!r})")
                path = save_regression(kind, call, note)
                found.append((kind, path, note))
                print(f"FOUND ({kind}): {note.strip()[:500]}\n  kept as {path}", flush=True)
        if time.time() >= deadline and rounds > 1:
            break
        results, crash = F.run_abi_fuzz(rnd.randrange(2**31), args.abi_cases, include_open=args.all,
                                        lib=os.environ.get("ARROWTOK_LIB"))
        abi_total += sum(results.values())
        try:
            F.check_abi_results(results)
        except AssertionError as e:
            found.append(("abi-status", None, str(e)))
            print(f"FOUND (abi status out of range): {e}", flush=True)
        if crash is not None:
            case, rc, tail = crash
            abi_total += 1
            path = save_regression("abi", f"print(F.run_abi_case(json.loads({json.dumps(case)!r})))",
                                   f"exit {rc}\n{tail[-600:]}")
            found.append(("abi", path, tail))
            print(f"FOUND (abi crash, exit {rc}): {json.dumps(case)}\n{tail[-400:]}\n  kept as {path}", flush=True)
        counts = dict(F.EXECUTIONS)
        counts["abi"] = abi_total
        print(f"round {rounds}: {json.dumps(counts)} ({max(0, deadline - time.time()) / 60:.1f} min left)", flush=True)
    counts = dict(F.EXECUTIONS)
    counts["abi"] = abi_total
    print(f"fuzz_long: done, seed {seed}, {rounds} rounds, executions {json.dumps(counts)}, "
          f"{len(found)} finding(s)", flush=True)
    for kind, path, note in found:
        print(f"  {kind}: {path}\n    {note.strip().splitlines()[0] if note.strip() else ''}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
