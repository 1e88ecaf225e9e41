#!/bin/sh
# Creates the Python environment for `cargo bench --bench echo`: a venv with
# uvloop, under the cargo target directory (`$CARGO_TARGET_DIR`, else
# `target/` at the crate root), where the bench looks for it (`pyenv/`).
# Without it the bench uses plain `python3`: the asyncio servers run, the
# uvloop ones are skipped with a note.
#
# Usage: sh benches/python/setup.sh   (needs python3 with venv, and PyPI)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
python=${PYTHON:-python3}
mkdir -p "$target"
"$python" -m venv "$target/pyenv"
"$target/pyenv/bin/python" -m pip install --quiet --upgrade pip
"$target/pyenv/bin/python" -m pip install --quiet uvloop
"$target/pyenv/bin/python" -c 'import sys, uvloop; print("python", sys.version.split()[0], "uvloop", uvloop.__version__, "in", sys.prefix)'
