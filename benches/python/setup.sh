#!/bin/sh
# Creates (or completes) the Python environment under the cargo target
# directory (`$CARGO_TARGET_DIR`, else `target/` at the crate root): a venv
# in `pyenv/`, shared by `cargo bench --bench echo` (uvloop) and by
# tests/examples.rs (the packages the Python originals of the examples
# declare in their inline script metadata: aiofiles, aiohttp).
#
# Without it the bench uses plain `python3`: the asyncio servers run, the
# uvloop ones are skipped with a note. tests/examples.rs runs this script
# itself, with the packages it needs, when they are missing.
#
# Usage: sh benches/python/setup.sh [PACKAGE...]
#   (default: uvloop aiofiles aiohttp; needs python3 with venv, and PyPI)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
python=${PYTHON:-python3}
if [ "$#" -eq 0 ]; then
    set -- uvloop aiofiles aiohttp
fi
mkdir -p "$target"
if [ ! -x "$target/pyenv/bin/python" ]; then
    "$python" -m venv "$target/pyenv"
    "$target/pyenv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
fi
"$target/pyenv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
"$target/pyenv/bin/python" -c '
import sys
from importlib.metadata import version
print("python", sys.version.split()[0], *(f"{p} {version(p)}" for p in sys.argv[1:]), "in", sys.prefix)
' "$@"
