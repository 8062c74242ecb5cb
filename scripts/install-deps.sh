#!/usr/bin/env bash
# Installs what the build, the tests and the benchmarks need on a fresh Debian 12 machine.
# Idempotent: packages already present are left alone. Run as root (CI does).
set -euo pipefail

debs=(
  busybox-static   # static test workload with hundreds of applets
  musl-tools       # musl-gcc -static: static test programs
  gcc libc6-dev    # gcc -static test programs, C API tests
  python3 python3-dev python3-venv  # python3 workloads, the Python package
  libpython3.11-testsuite  # CPython's regression suite: end-to-end checks, scripts/cpython-suite.py
  bubblewrap       # baseline for the container benchmark
  hyperfine        # whole-command timings in benchmarks
  valgrind         # leak checks of the C API tests
  iproute2         # network namespace tests
  util-linux       # setpriv for rootless tests
  sysbench         # the seeds' performance table (scripts/bench-sysbench.py)
  python3-matplotlib  # plots of the benchmark tables (scripts/bench-sysbench.py)
  curl git python3-pip ca-certificates  # egress tests: clients in the sandbox, the host's trust store
  podman conmon containernetworking-plugins catatonit  # OCI runtime tests: Podman runs containers through hsb
  containerd       # OCI runtime tests: containerd + ctr run --runc-binary hsb-oci-container
  protobuf-compiler  # protoc, for the CRI client (k8s-cri) of the Kubernetes test (hsb-cli/tests/oci_cri.rs)
  docker.io tini   # OCI runtime tests: dockerd --add-runtime hsb=hsb-oci-container (tini: docker-init)
  iptables         # the engines' port publishing (CNI portmap)
  runc crun        # the runtimes hsb-oci-container is compared with (scripts/bench-oci.sh)
  bsdutils         # script(1): a terminal for podman run -t in the engine tests
  openjdk-17-jdk-headless nodejs  # JVM and Node.js workloads under the default policy (tests/compat.rs)
)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# schemathesis (PyPI), for the server's generated-request suite (hsb-cli/tests/
# server_schemathesis.rs looks for it here), in a virtual environment of its own.
tools=/opt/hybrid-sandbox/tools
if ! "$tools/bin/schemathesis" --version >/dev/null 2>&1; then
  echo "install-deps: installing schemathesis into $tools"
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -q --disable-pip-version-check "schemathesis>=4.3,<5"
fi

# cargo-fuzz, for the fuzz targets (run with the nightly toolchain the machine has).
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "install-deps: installing cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz
fi
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "install-deps: the nightly toolchain is missing; the fuzz targets need it" >&2
  exit 1
fi
