#!/usr/bin/env bash
# Runs the fast part of the test suite against a safety-checked build of the Zig core (issue 8).
#   tools/safety_run.sh            ReleaseSafe (bounds, overflow, null and cast checks on)
#   tools/safety_run.sh Debug      Debug build (same checks, no optimisation; slower)
#   extra arguments go to pytest:  tools/safety_run.sh ReleaseSafe -x -k fuzz
# The library is built into a temporary directory (arrowtok/libarrowtok.so is left alone) with the
# same command line as hatch_build.py's build_library, and loaded through ARROWTOK_LIB.
set -euo pipefail
cd "$(dirname "$0")/.."
OPT="${1:-ReleaseSafe}"
[ $# -gt 0 ] && shift
PY="${PYTHON:-python}"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/arrowtok-safe.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT
case "$(uname -m)" in
  x86_64|amd64) TARGET=x86_64-linux-gnu.2.17; CPU="${ARROWTOK_ZIG_CPU:-x86_64_v2}" ;;
  aarch64|arm64) TARGET=aarch64-linux-gnu.2.17; CPU="${ARROWTOK_ZIG_CPU:-baseline}" ;;
  *) echo "safety_run: unsupported machine $(uname -m)" >&2; exit 2 ;;
esac
echo "== building libarrowtok ($OPT, $TARGET, $CPU) into $OUT"
"$PY" -m ziglang build-lib zig/root.zig -dynamic "-O$OPT" -lc -target "$TARGET" -mcpu "$CPU" \
    --name arrowtok --cache-dir "${TMPDIR:-/tmp}/arrowtok-zig-cache" "-femit-bin=$OUT/libarrowtok.so"
export ARROWTOK_LIB="$OUT/libarrowtok.so" ARROWTOK_SAFETY_CHILD=1
echo "== pytest with ARROWTOK_LIB=$ARROWTOK_LIB"
status=0
"$PY" -m pytest -q -p no:cacheprovider tests/test_arrow.py tests/test_api.py tests/test_robust.py \
    tests/test_fuzz.py tests/test_concurrency.py "$@" || status=$?
"$PY" -m pytest -q -p no:cacheprovider tests/test_exact.py -k "hypothesis or pathological" "$@" || status=$?
# A Zig safety panic aborts the process (SIGABRT, exit 134) with "panic: ..." on stderr; pytest
# reports it as a failure of the test whose child process it was, or dies itself.
exit $status
