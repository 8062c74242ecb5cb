#!/bin/sh
# 200 live micro-VMs at once in one process, with interleaved execs (each keeps its own
# state), then dropped: no vCPU thread left. CI runs the same test with 24
# (`tests/tests/live_microvm.rs`, many_sandboxes_at_once_with_interleaved_execs) and
# 200 through the server (hsb-cli/tests/server_lifecycle.rs).
set -eu
cd "$(dirname "$0")/.."
HSB_LIVE_VMS="${HSB_LIVE_VMS:-200}" exec cargo test -p hsb-tests --test live_microvm --locked -- \
    --exact many_sandboxes_at_once_with_interleaved_execs --nocapture
