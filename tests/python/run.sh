#!/usr/bin/env bash
# run.sh: one ctest entry of the Python package's suite: pytest on one file of tests/python/,
# against the library in HEADROOM_LIBRARY (set by tests/CMakeLists.txt to this build's).
# Exits 77 (skipped, with the reason) when no Python here has pytest, or when the file's tests
# skipped (conftest.py prints each reason as "skipped: ...").
# usage: run.sh test_FILE.py [PYTEST-ARGS...]
set -u
here=$(cd "$(dirname "$0")" && pwd)
python=""
for candidate in ${HEADROOM_PYTHON:-} /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import pytest' 2>/dev/null; then
        python=$candidate; break
    fi
done
if [[ -z $python ]]; then
    echo "skipped: no Python with pytest here (scripts/bootstrap installs python3-pytest; or set HEADROOM_PYTHON)"
    exit 77
fi
file=$1; shift
cd "$here" || exit 1
# -p no:cacheprovider: nothing written into the source tree
exec "$python" -m pytest -p no:cacheprovider -v -rs "$here/$file" "$@"
