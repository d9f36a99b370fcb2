#!/usr/bin/env bash
# Build the compiled variant of capdebug (mypyc, CAPDEBUG_MYPYC=1; see setup.py and README
# "Compiled build") in a venv of its own, then test it against the pure package:
# tests/compiled (byte-identical output on every fixture, every hot module compiled, triage
# shares across processes) and the decode/net/wire/crypto test directories.
#
#   scripts/build_compiled.sh [WORKDIR]      (default: a new folder under /tmp, removed after)
#
# Environment: PYTHON (python3), JOBS (2: pytest workers), KEEP=1 keeps WORKDIR.
# The venv sees the interpreter's site-packages (--system-site-packages): the test
# dependencies and mypy come from `make install-test`; the build uses that mypy (no
# build isolation; only a current setuptools is installed into the venv).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
jobs=${JOBS:-2}
if [ $# -ge 1 ]; then
    work=$1
    mkdir -p "$work"
else
    work=$(mktemp -d /tmp/capdebug-compiled.XXXXXX)
    [ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
fi
src=$work/src  # the sources as they are in the checkout (tracked and new files): built and the pure reference
run=$work/run  # tests only, no capdebug/ folder: pytest puts this folder first on sys.path
rm -rf "$src" "$run" "$work/venv"
mkdir -p "$src" "$run"
(cd "$root" && git ls-files -z -c -o --exclude-standard | while IFS= read -r -d '' f; do
    [ -f "$f" ] && printf '%s\0' "$f"
done | xargs -0 cp --parents -t "$src")
cp -r "$src/tests" "$src/samples" "$src/pyproject.toml" "$run/"

"$python" -m venv --system-site-packages "$work/venv"
# The build requirement (setuptools>=68; from 70.1 it builds wheels without the wheel package).
"$work/venv/bin/python" -m pip install -q "setuptools>=70.1"
start=$(date +%s)
CAPDEBUG_MYPYC=1 "$work/venv/bin/python" -m pip install -q --no-deps --no-build-isolation "$src"
echo "build_compiled: compiled build installed in $(($(date +%s) - start)) s"

cd "$run"
# Deselected: a test that counts calls by replacing a method of RecordDirection on the class.
# A compiled caller calls the compiled method directly, so the replacement is never seen; what
# it checks (the decoder opens records through the record layer) is a property of the sources,
# tested on the pure package.
CAPDEBUG_PURE_SRC=$src "$work/venv/bin/python" -m pytest -q -n "$jobs" -p no:cacheprovider \
    --deselect tests/decode/test_one_record_layer.py::test_decoding_opens_every_record_through_record_direction \
    tests/compiled tests/decode tests/net tests/wire tests/crypto
