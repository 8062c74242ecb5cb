#!/bin/sh
# Regenerates code.rs from supervisor.S and vdso.S (needs binutils: as, objdump, nm).
# Each instruction's bytes are emitted with its disassembly as a comment.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
as -o "$tmp/sup.o" "$here/supervisor.S"
as -o "$tmp/vdso.o" "$here/vdso.S"
emit() {
    obj=$1
    section=$2
    name=$3
    doc=$4
    echo "/// $doc"
    echo "#[rustfmt::skip]"
    echo "pub(crate) const $name: &[u8] = &["
    objdump -d -j "$section" --insn-width=16 "$obj" | awk '
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
    emit "$tmp/sup.o" .stub STUB_CODE "The syscall stub page (LSTAR points at offset 0; flush entry at offset 8)."
    echo
    echo "/// The user-mode entry's offset in \`STUB_CODE\` (supervisor.S \`uentry\`)."
    nm "$tmp/sup.o" | awk '$3 == "uentry" { printf "pub(crate) const UENTRY_OFFSET: usize = 0x%s;\n", $1 }' | sed 's/0x0*\([0-9a-f]\)/0x\1/'
    echo
    echo "/// Where the fast-call map lies in the stub page, and how many syscall numbers it"
    echo "/// covers (supervisor.S \`FAST_MAP\`, \`FAST_MAP_BITS\`)."
    nm "$tmp/sup.o" | awk '$3 == "FAST_MAP" { printf "pub(crate) const FAST_MAP_OFFSET: usize = 0x%s;\n", $1 }' | sed 's/0x0*\([0-9a-f]\)/0x\1/'
    nm "$tmp/sup.o" | awk '$3 == "FAST_MAP_BITS" { printf "pub(crate) const FAST_MAP_BITS: usize = 0x%s;\n", $1 }' | sed 's/0x0*\([0-9a-f]\)/0x\1/'
    echo
    echo "/// The warming pass's offset in \`STUB_CODE\` (supervisor.S \`warm\`)."
    nm "$tmp/sup.o" | awk '$3 == "warm" { printf "pub(crate) const WARM_OFFSET: usize = 0x%s;\n", $1 }' | sed 's/0x0*\([0-9a-f]\)/0x\1/'
    echo
    emit "$tmp/sup.o" .handler HANDLER_CODE "The exception handler page: vector N's entry at offset 16 * N."
    echo
    echo "/// Offsets in \`HANDLER_CODE\` where the VMM resumes an exception's interrupted code"
    echo "/// (supervisor.S \`resume\`, \`resume_flush\`)."
    nm "$tmp/sup.o" | awk '$3 == "resume" { printf "pub(crate) const RESUME_OFFSET: usize = 0x%s;\n", $1 }' | sed 's/0x0*\([0-9a-f]\)/0x\1/'
    nm "$tmp/sup.o" | awk '$3 == "resume_flush" { printf "pub(crate) const RESUME_FLUSH_OFFSET: usize = 0x%s;\n", $1 }' | sed 's/0x0*\([0-9a-f]\)/0x\1/'
    echo
    emit "$tmp/vdso.o" .vdso VDSO_CODE "The vDSO's functions (vdso.S), at their offsets in the vDSO's text."
    echo
    echo "/// The vDSO's exported functions: name and offset in \`VDSO_CODE\`."
    echo "pub(crate) const VDSO_SYMBOLS: &[(&str, usize)] = &["
    nm "$tmp/vdso.o" | awk '$2 == "T" { printf "    (\"%s\", 0x%s),\n", $3, $1 }' | sed 's/0x0*\([0-9a-f]\)/0x\1/'
    echo "];"
} > "$here/code.rs"
