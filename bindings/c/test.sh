#!/usr/bin/env bash
# The C API's tests. From a clean checkout on Debian 12 (gcc, libc6-dev, valgrind):
#  1. builds libhsb with cargo (into $CARGO_TARGET_DIR, by default target/);
#  2. checks that include/hsb.h is what cbindgen generates from the sources now (under
#     scripts/test.sh, which sets HSB_WORKSPACE_BUILT=1, its workspace build and test
#     run did both steps: libhsb is taken from that build);
#  3. compiles tests/test_*.c with gcc -Wall -Wextra -Werror and runs each under
#     AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer;
#  4. runs the bad-input suite under valgrind --leak-check=full as well (Debian 12's
#     valgrind 3.19 does not know the mount-API syscalls the container backend needs,
#     so suites that start workloads use the sanitizers);
#  5. links a suite against the static library, and compiles and runs the README's
#     example and the hsb_json example.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$root/$target ;; esac
lib=$target/debug
out=$target/c-tests
mkdir -p "$out"

step() { printf '\n== c: %s (%ss)\n' "$1" "$SECONDS"; }
fail() { echo "c: FAILED: $*" >&2; exit 1; }

for tool in gcc valgrind; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps.sh)"
done

step "build libhsb"
if [ "${HSB_WORKSPACE_BUILT:-}" = 1 ]; then
  # scripts/test.sh built and ran the workspace's tests (the header test among them):
  # the same selection here puts that build's libhsb in $target/debug, compiling nothing.
  cargo build --workspace --lib --bins --tests --locked
else
  cargo build -p hybrid-sandbox-c --locked

  step "header is current"
  cargo test -p hybrid-sandbox-c --locked --test header \
    || fail "bindings/c/include/hsb.h is stale: HSB_BLESS=1 cargo test -p hybrid-sandbox-c --test header"
fi

command -v g++ >/dev/null && g++ -fsyntax-only -Wall -Wextra -Werror -x c++ bindings/c/include/hsb.h

cflags=(-std=c11 -Wall -Wextra -Werror -g -I bindings/c/include)
link=(-L "$lib" -lhsb -lpthread -Wl,-rpath,"$lib")
sanitize=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

passed=0
failed=0
run() { # NAME COMMAND...: runs one suite, counts it
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "c: suite $name FAILED" >&2; fi
}

step "C tests under ASan/UBSan/LSan"
for src in bindings/c/tests/test_*.c; do
  name=$(basename "$src" .c)
  gcc "${cflags[@]}" "${sanitize[@]}" "$src" -o "$out/$name" "${link[@]}"
  run "$name" "$out/$name"
done

step "bad input under valgrind"
gcc "${cflags[@]}" bindings/c/tests/test_bad_input.c -o "$out/test_bad_input.plain" "${link[@]}"
run test_bad_input/valgrind valgrind -q --leak-check=full --error-exitcode=1 \
  --suppressions=bindings/c/tests/valgrind.supp "$out/test_bad_input.plain"

step "static library"
gcc "${cflags[@]}" bindings/c/tests/test_run.c -o "$out/test_run.static" \
  "$lib/libhsb.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl
ldd "$out/test_run.static" | grep -q libhsb && fail "test_run.static links libhsb.so"
run test_run/static "$out/test_run.static"

step "examples"
awk '/^```c$/ {on = 1; next} /^```$/ {on = 0} on' bindings/c/README.md > "$out/readme_example.c"
[ -s "$out/readme_example.c" ] || fail "no C example in bindings/c/README.md"
gcc "${cflags[@]}" "${sanitize[@]}" "$out/readme_example.c" -o "$out/readme_example" "${link[@]}"
run readme_example sh -c "'$out/readme_example' > '$out/readme_example.out' && grep -q 'termination: exited, exit code 3' '$out/readme_example.out' && grep -q 'stdout: hello, world' '$out/readme_example.out'"
gcc "${cflags[@]}" bindings/c/examples/hsb_json.c -o "$out/hsb_json" "${link[@]}"
run hsb_json sh -c "'$out/hsb_json' -- echo parity | grep -q '\"stdout\":\"parity\\\\n\"'"

step "done"
echo "c: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
