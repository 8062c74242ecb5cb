#!/usr/bin/env bash
# `podman run --rm IMAGE true`, N times each, with hsb-oci-container, hsb-oci-microvm
# (when the micro-VM can run here), runc and crun, measured in the same run; prints a
# side-by-side table with ratios to runc and to crun.
# Usage (root): scripts/bench-oci.sh [N] [HSB_BINARY]   (not run in CI)
# Podman's storage, run root and runtime state live in a temporary directory removed at
# the end. crun refuses cgroup "hybrid mode" (a cgroup2 mount at /sys/fs/cgroup/unified
# next to v1 controllers): its runs happen in a mount namespace where that mount is
# unmounted (the host keeps it).
set -euo pipefail
n=${1:-20}
hsb=${2:-$(dirname "$0")/../target/debug/hsb}
hsb=$(realpath "$hsb")
[ "$(id -u)" = 0 ] || { echo "bench-oci: run as root" >&2; exit 1; }
for c in podman runc crun busybox; do
  command -v "$c" >/dev/null || { echo "bench-oci: $c is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$hsb" ] || { echo "bench-oci: $hsb: no hsb binary (cargo build -p hsb-cli)" >&2; exit 1; }

podman_() {
  CONTAINERS_CONF="$d/containers.conf" podman --root="$d/root" --runroot="$d/runroot" \
    --tmpdir="$d/tmp" --network-config-dir="$d/net" --cgroup-manager=cgroupfs \
    --events-backend=file "$@"
}
# One timed loop: N runs of `true`; prints the total in milliseconds.
timed() { # RUNTIME
  local rt=$1 t0 t1 i
  t0=$(date +%s%N)
  for ((i = 0; i < n; i++)); do
    podman_ --runtime="$rt" --runtime-flag="root=$d/state-$(basename "$rt")" \
      run --rm --network=none localhost/bench:1 true >/dev/null
  done
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}
if [ -n "${BENCH_OCI_CRUN_DIR:-}" ]; then
  # Inside `unshare -m`: without the cgroup2 "unified" mount, crun accepts the host.
  d=$BENCH_OCI_CRUN_DIR
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  timed "$(command -v crun)" >/dev/null # warm-up
  timed "$(command -v crun)"
  exit 0
fi

d=$(mktemp -d /tmp/hsb-bench-oci.XXXXXX)
cleanup() {
  podman_ rm -af -t 0 >/dev/null 2>&1 || true
  podman_ rmi -af >/dev/null 2>&1 || true
  grep -o " $d[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$d"
}
trap cleanup EXIT
mkdir -p "$d"/{root,runroot,tmp,net,bin,rootfs/bin,rootfs/proc,rootfs/dev,rootfs/tmp}
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n' >"$d/containers.conf"
ln -s "$hsb" "$d/bin/hsb-oci-container"
ln -s "$hsb" "$d/bin/hsb-oci-microvm"
cp "$(command -v busybox)" "$d/rootfs/bin/busybox"
for a in sh true; do ln -s busybox "$d/rootfs/bin/$a"; done
tar -C "$d/rootfs" -cf "$d/rootfs.tar" .

podman_ import "$d/rootfs.tar" localhost/bench:1 >/dev/null 2>&1

# Warm-up (one of each), then the measured loops.
n_save=$n; n=1
timed "$(command -v runc)" >/dev/null
timed "$d/bin/hsb-oci-container" >/dev/null
vm_ok=1
timed "$d/bin/hsb-oci-microvm" >/dev/null 2>&1 || vm_ok=
n=$n_save
t_runc=$(timed "$(command -v runc)")
t_hsb=$(timed "$d/bin/hsb-oci-container")
t_vm=
[ -n "$vm_ok" ] && t_vm=$(timed "$d/bin/hsb-oci-microvm")
t_crun=$(BENCH_OCI_CRUN_DIR=$d unshare -m "$0" "$n" "$hsb") || t_crun=
printf '%-22s %8s %10s %8s %8s\n' runtime "total ms" "ms/run" "vs runc" "vs crun"
for r in runc crun hsb-oci-container hsb-oci-microvm; do
  case $r in runc) t=$t_runc ;; crun) t=$t_crun ;; hsb-oci-container) t=$t_hsb ;; *) t=$t_vm ;; esac
  if [ -z "$t" ]; then printf '%-22s %8s\n' "$r" "failed (or unavailable here)"; continue; fi
  awk -v r="$r" -v t="$t" -v n="$n" -v b="$t_runc" -v c="${t_crun:-0}" \
    'BEGIN { printf "%-22s %8d %10.1f %7.2fx", r, t, t / n, t / b; if (c > 0) printf " %7.2fx", t / c; printf "\n" }'
done
echo "(podman $(podman --version | awk '{print $3}'), N=$n runs of 'podman run --rm --network=none IMAGE true' each, $(nproc) cores)"
