#!/usr/bin/env python3
"""Writes the seed inputs of the `elf_load` fuzz target (fuzz/seeds/elf_load/): small
x86-64 ELF files crafted by hand (a static executable, a static PIE, a dynamically
linked one with its PT_INTERP loader, `#!` scripts), a few hundred bytes each.

The input format (see fuzz_targets/elf_load.rs): one mode byte, then up to three files
separated by SEP: /tmp/prog (what is run), /tmp/ld.so, /tmp/interp.

Run it from anywhere: `python3 fuzz/seeds/make_elf_seeds.py`. The outputs are committed.
"""
import os
import struct

SEP = b"\n--hsb-file--\n"
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "elf_load")

PT_LOAD, PT_INTERP, PT_PHDR, PT_GNU_STACK = 1, 3, 6, 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
# mov eax, 60; xor edi, edi; syscall  (exit(0))
CODE = bytes.fromhex("b83c00000031ff0f05")


def elf(etype, base, phdrs_spec, interp=None, extra=b""):
    """An ELF file: header, program headers, optional PT_INTERP string, code.

    phdrs_spec: list of (type, flags, offset, vaddr_offset, filesz, memsz) where the
    special value None for offset/filesz means "the whole file"."""
    ehsize, phentsize = 64, 56
    n = len(phdrs_spec) + (1 if interp else 0)
    phoff = ehsize
    body_off = phoff + n * phentsize
    interp_bytes = (interp + b"\0") if interp else b""
    code_off = body_off + len(interp_bytes)
    total = code_off + len(CODE) + len(extra)
    entry = base + code_off
    ph = b""
    if interp:
        ph += struct.pack("<IIQQQQQQ", PT_INTERP, PF_R, body_off, base + body_off,
                          base + body_off, len(interp_bytes), len(interp_bytes), 1)
    for (t, f, off, voff, fsz, msz) in phdrs_spec:
        off = 0 if off is None else off
        fsz = total if fsz is None else fsz
        msz = total if msz is None else msz
        ph += struct.pack("<IIQQQQQQ", t, f, off, base + voff, base + voff, fsz, msz, 0x1000)
    hdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    hdr += struct.pack("<HHIQQQIHHHHHH", etype, 62, 1, entry, phoff, 0, 0, ehsize,
                       phentsize, n, 64, 0, 0)
    out = hdr + ph + interp_bytes + CODE + extra
    assert len(out) == total
    return out


def static_exec():
    # text (headers + code) R+X, then a data segment with a .bss tail, and a stack note.
    return elf(2, 0x400000, [
        (PT_LOAD, PF_R | PF_X, None, 0, None, None),
        (PT_LOAD, PF_R | PF_W, 0, 0x1000, 0x40, 0x3000),
        (PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0),
    ])


def static_pie():
    return elf(3, 0, [
        (PT_PHDR, PF_R, 64, 64, 4 * 56, 4 * 56),
        (PT_LOAD, PF_R | PF_X, None, 0, None, None),
        (PT_LOAD, PF_R | PF_W, 0, 0x2000, 0x100, 0x5000),
        (PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0),
    ])


def dynamic(interp=b"/tmp/ld.so"):
    return elf(3, 0, [
        (PT_PHDR, PF_R, 64, 64, 3 * 56, 3 * 56),
        (PT_LOAD, PF_R | PF_X, None, 0, None, None),
    ], interp=interp)


def seed(name, mode, *files):
    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(bytes([mode]) + SEP.join(files))


def main():
    seed("static", 0x01, static_exec())
    seed("static-exec-again", 0x05, static_exec())
    seed("static-pie", 0x01, static_pie())
    seed("dynamic", 0x01, dynamic(), static_pie())
    seed("dynamic-self-interp", 0x01, dynamic(b"/tmp/prog"))
    seed("dynamic-interp-loop", 0x01, dynamic(), dynamic(b"/tmp/prog"))
    seed("script", 0x03, b"#!/tmp/ld.so -x\necho hi\n", static_pie())
    seed("script-nested", 0x01, b"#! /tmp/interp  one arg\n", static_exec(), b"#!/tmp/ld.so\n")
    seed("script-self", 0x01, b"#!/tmp/prog\n")
    seed("script-garbage", 0x01, b"#!\x00\xff\xfe /tmp/ld.so\n", static_exec())


if __name__ == "__main__":
    main()
