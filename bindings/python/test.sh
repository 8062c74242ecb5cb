#!/usr/bin/env bash
# The Python package's tests. From a clean checkout on Debian 12 (python3, python3-venv,
# python3-dev, gcc, cargo):
#  1. makes a virtual environment in $CARGO_TARGET_DIR/python-venv (target/ by default);
#  2. installs maturin, pytest and mypy into it, then the package with `pip install
#     ./bindings/python` (maturin, the dev profile, so that cargo's debug build of the
#     workspace is reused);
#  3. type-checks the package and its stubs with mypy --strict;
#  4. builds the `hsb` CLI and the C `hsb_json` program for the parity test;
#  5. runs pytest on bindings/python/tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$root/$target ;; esac
venv=$target/python-venv
python=${PYTHON:-python3}

step() { printf '\n== python: %s (%ss)\n' "$1" "$SECONDS"; }
fail() { echo "python: FAILED: $*" >&2; exit 1; }

command -v "$python" >/dev/null || fail "$python is not installed (scripts/install-deps.sh)"
command -v gcc >/dev/null || fail "gcc is not installed (scripts/install-deps.sh)"

step "virtual environment"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv" || fail "cannot create a venv (Debian: apt-get install python3-venv)"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.9.4,<2" "pytest>=7" \
  "mypy>=1.8"

step "pip install ./bindings/python"
MATURIN_PEP517_ARGS="--profile dev" \
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
  ./bindings/python
"$venv/bin/python" -c "import hybrid_sandbox, sys; print('hybrid_sandbox', hybrid_sandbox.__version__, 'from', hybrid_sandbox.__file__)"

step "type check (mypy --strict: the package, its stubs, and typed use of it)"
(cd bindings/python/python && "$venv/bin/python" -m mypy --strict --no-incremental -p hybrid_sandbox)
"$venv/bin/python" -m mypy --strict --no-incremental bindings/python/tests/typed_usage.py

step "hsb CLI and C hsb_json for the parity test"
if [ "${HSB_WORKSPACE_BUILT:-}" = 1 ]; then
  # scripts/test.sh's workspace build: the same selection compiles nothing.
  cargo build --workspace --lib --bins --tests --locked
else
  cargo build -p hsb-cli --bin hsb -p hybrid-sandbox-c --locked
fi
mkdir -p "$target/c-tests"
gcc -std=c11 -Wall -Wextra -Werror -I bindings/c/include bindings/c/examples/hsb_json.c \
  -o "$target/c-tests/hsb_json" -L "$target/debug" -lhsb -Wl,-rpath,"$target/debug"

step "pytest"
cd bindings/python
HSB_CLI="$target/debug/hsb" HSB_C_JSON="$target/c-tests/hsb_json" HSB_PARITY_REQUIRED=1 \
  "$venv/bin/python" -m pytest -p no:cacheprovider tests
