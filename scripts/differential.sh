#!/usr/bin/env bash
# Runs the differential harness long: CALLS random calls per family (default 2000) from
# each of SEEDS seeds (default 5), on top of the fixed checks. The default run (CI:
# `cargo test -p hsb-tests --test differential`) is 200 calls from one seed. A random
# difference not listed in tests/differential/expected.txt fails the run; its report
# names the seed and the call (`FAMILY.randomSEED.N.CALL`), which
# `/tmp/hsb-differential/*/FAMILY random SEED N` replays natively.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-2000}
seeds=${2:-5}
HSB_DIFF_RANDOM=$calls HSB_DIFF_SEEDS=$seeds \
  cargo test -p hsb-tests --test differential -- --test-threads=1 --nocapture
