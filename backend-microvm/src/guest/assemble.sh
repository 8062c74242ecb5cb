#!/bin/sh
# Regenerates code.rs from supervisor.S (needs binutils: as, objdump).
# Each instruction's bytes are emitted with its disassembly as a comment.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
as -o "$tmp/sup.o" "$here/supervisor.S"
emit() {
    section=$1
    name=$2
    doc=$3
    echo "/// $doc"
    echo "#[rustfmt::skip]"
    echo "pub(crate) const $name: &[u8] = &["
    objdump -d -j "$section" --insn-width=16 "$tmp/sup.o" | awk '
        /^ *[0-9a-f]+:\t/ {
            split($0, parts, "\t")
            off = parts[1]; gsub(/[ :]/, "", off)
            bytes = parts[2]; gsub(/ +$/, "", bytes)
            insn = parts[3]; gsub(/ +/, " ", insn); sub(/ *#.*/, "", insn)
            n = split(bytes, b, " ")
            line = "    "
            for (i = 1; i <= n; i++) line = line "0x" b[i] ", "
            printf "%s// %4s: %s\n", line, off, insn
        }
        /^[0-9a-f]+ <.*>:$/ { label = $2; gsub(/[<>:]/, "", label); printf "    // %s:\n", label }'
    echo "];"
}
{
    echo "//! The guest supervisor's machine code, generated from supervisor.S by assemble.sh."
    echo "//! Do not edit by hand: edit supervisor.S and rerun assemble.sh."
    echo
    emit .stub STUB_CODE "The syscall stub page (LSTAR points at offset 0; flush entry at offset 8)."
    echo
    emit .handler HANDLER_CODE "The exception handler page: vector N's entry at offset 16 * N."
} > "$here/code.rs"
