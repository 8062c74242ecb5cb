#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this). From a clean checkout
# on Debian 12: installs what the tests need, checks formatting and lints, builds once,
# and runs every suite. Set HSB_REQUIRE_KVM=1 to make micro-VM tests fail (not skip)
# when /dev/kvm is unusable, and HSB_REQUIRE_FEATURES=1 to make every test that needs a
# host feature (KVM, a root caller, usable cgroups, Landlock, binutils...) fail instead
# of skipping; CI (.ci/run) sets both.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

step "dependencies"
scripts/install-deps.sh

step "format"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# A hung test must fail the run with its name on screen, not use up CI's time: cargo
# prints "has been running for over 60 seconds" for it; the whole suite gets 50 minutes.
timeout --kill-after=30 3000 cargo test --workspace --locked
# The C and Python steps take libhsb and hsb from this build. Their own per-package
# builds (`cargo build -p hybrid-sandbox-c`) resolve other features of the dependencies
# than a workspace test build and recompiled ~95 crates, 6 minutes of a cold run.
export HSB_WORKSPACE_BUILT=1

step "C API (gcc -Werror, ASan/UBSan/LSan, valgrind)"
bindings/c/test.sh

step "Python package (pip install ./bindings/python, mypy --strict, pytest)"
bindings/python/test.sh

step "fuzz (briefly; scripts/fuzz.sh SECONDS for longer)"
scripts/fuzz.sh 20

step "done"
