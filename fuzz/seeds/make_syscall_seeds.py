#!/usr/bin/env python3
"""Writes the seed inputs of the `syscall_dispatch` fuzz target
(fuzz/seeds/syscall_dispatch/): short programs in the target's encoding that open,
read, write, map, fork, wait, pipe, signal and exec, so that the fuzzer starts from
calls that get somewhere. See fuzz_targets/syscall_dispatch.rs for the encoding.

Run it from anywhere: `python3 fuzz/seeds/make_syscall_seeds.py`. The outputs are
committed.
"""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "syscall_dispatch")
PATHS = [b"/tmp/a", b"/tmp", b"/tmp/prog", b"/tmp/script", b"/proc/self/exe",
         b"/proc/self/fd/0", b"/dev/null", b"/dev/zero", b"/", b"..", b"/tmp/d/../a",
         b"/etc/passwd", b"/proc/self/maps", b"a", b"/tmp/fifo", b"/tmp/d"]


# Argument encoders (the tag byte modulo 12 picks the kind).
def zero():
    return bytes([0])


def small(v):
    return bytes([1, v & 0xFF])


def u32(v):
    return bytes([2]) + struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return bytes([3]) + struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def scratch(off):
    return bytes([4]) + struct.pack("<H", off)


def edge(back):
    return bytes([5, back])


def path(p):
    return bytes([6, PATHS.index(p)])


def special(i):
    return bytes([7, i])


def huge(i):
    return bytes([8, i])


def result(i):
    return bytes([9, i])


def fd(n):
    return bytes([10, n])


AT_FDCWD = bytes([10, 255])


def sc(nr, *args):
    args = list(args) + [zero()] * (6 - len(args))
    return bytes([0]) + struct.pack("<H", nr) + b"".join(args)


def store(off, data):
    return bytes([12]) + struct.pack("<H", off) + bytes([len(data)]) + data


def store_val(off, arg):
    return bytes([14]) + struct.pack("<H", off) + arg


def touch(arg, how):
    return bytes([15]) + arg + bytes([how])


def seed(name, *ops, image=b""):
    assert len(image) % 16 == 0
    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(bytes([len(image) // 16]) + image + b"".join(ops))


O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC = 0, 1, 2, 0o100, 0o1000


def main():
    seed("files",
         sc(257, AT_FDCWD, path(b"/tmp/a"), u32(O_RDWR | O_CREAT), u32(0o644)),
         sc(1, result(0), scratch(0), small(64)),
         sc(8, result(0), small(0), small(0)),
         sc(0, result(0), scratch(0x100), u32(4096)),
         sc(17, result(0), scratch(0x200), small(10), small(3)),
         sc(5, result(0), scratch(0x300)),
         sc(9, zero(), u32(8192), small(3), small(2), result(0), zero()),
         touch(result(5), 0),
         sc(3, result(0)),
         sc(83, path(b"/tmp/d"), u32(0o755)),
         sc(257, AT_FDCWD, path(b"/tmp"), u32(0o200000)),
         sc(217, result(7), scratch(0x400), u32(4096)),
         sc(82, path(b"/tmp/a"), path(b"/tmp/d/../a")),
         sc(87, path(b"/tmp/a")),
         image=b"hello, file\n".ljust(64, b"."))
    seed("wild-pointers",
         sc(0, fd(0), special(12), huge(0)),
         sc(1, fd(1), special(7), small(8)),
         sc(1, fd(1), edge(3), small(16)),
         sc(20, fd(1), special(5), small(4)),
         sc(257, AT_FDCWD, special(6), zero()),
         sc(4, special(10), scratch(0)),
         sc(59, special(11), special(0), special(0)),
         sc(13, small(10), special(13), special(14), small(8)),
         sc(228, small(1), special(4)),
         sc(318, edge(0), huge(3), zero()),
         sc(0, fd(0), scratch(0xFFF0), huge(6)))
    seed("memory",
         sc(12, zero()),
         sc(12, u32(0x1000000)),
         sc(9, zero(), huge(6), small(3), small(0x22), small(-1), zero()),
         touch(result(2), 1),
         sc(10, result(2), u32(0x1000), small(1)),
         touch(result(2), 1),
         sc(25, result(2), huge(6), u32(0x20000), small(1)),
         sc(28, result(4), u32(0x1000), small(4)),
         sc(27, result(4), u32(0x4000), scratch(0)),
         sc(11, result(4), u32(0x20000)),
         sc(9, u64(0x10000000), huge(6), small(3), small(0x12), small(-1), zero()),
         touch(scratch(0x10), 1))
    seed("processes",
         sc(22, scratch(0)),
         store_val(0x100, scratch(0x2000)),
         sc(57),
         sc(1, small(4), scratch(0x40), small(5)),
         sc(61, small(-1), scratch(0x80), zero(), zero()),
         sc(0, small(3), scratch(0x40), small(5)),
         sc(39),
         sc(110),
         sc(109, zero(), zero()),
         sc(56, u32(0x11), zero(), zero(), zero(), zero()),
         sc(60, small(3)),
         image=b"\0" * 64 + b"ping!".ljust(16, b"\0"))
    seed("signals",
         store_val(0x0, scratch(0x800)),
         store_val(0x8, u32(0x04000000)),
         store_val(0x10, scratch(0x900)),
         sc(13, small(10), scratch(0), scratch(0x40), small(8)),
         sc(62, small(0), small(10)),
         sc(39),
         sc(62, result(1), small(10)),
         sc(131, scratch(0xA00), scratch(0xA40)),
         sc(15),
         sc(14, small(0), scratch(0xB00), scratch(0xB08), small(8)),
         sc(37, small(1)),
         sc(34),
         touch(special(0), 0))
    seed("exec",
         store_val(0x0, path(b"/tmp/prog")),
         store_val(0x8, zero()),
         sc(59, path(b"/tmp/script"), scratch(0), zero()),
         sc(59, path(b"/tmp/prog"), scratch(0), scratch(8)),
         sc(39))
    seed("pipes-and-poll",
         sc(293, scratch(0), u32(0o4000)),
         sc(32, small(0)),
         sc(33, small(1), small(9)),
         sc(7, scratch(0x40), small(2), small(0)),
         sc(290, small(0), u32(0x80000)),
         sc(291, u32(0x80000)),
         sc(232, small(3), scratch(0x100), small(8), small(0)),
         sc(53, small(1), small(1), small(0), scratch(0x200)),
         sc(46, small(5), scratch(0x300), small(0)),
         sc(47, small(6), scratch(0x300), small(0)),
         sc(436, small(3), u32(100), zero()))
    seed("proc-and-dev",
         sc(257, AT_FDCWD, path(b"/proc/self/maps"), zero()),
         sc(0, result(0), scratch(0), u32(4096)),
         sc(89, path(b"/proc/self/exe"), scratch(0x1000), u32(256)),
         sc(257, AT_FDCWD, path(b"/dev/zero"), zero()),
         sc(0, result(3), scratch(0x2000), u32(100)),
         sc(4, path(b"/etc/passwd"), scratch(0x3000)),
         sc(332, AT_FDCWD, path(b"/"), zero(), u32(0xfff), scratch(0x3100)),
         sc(78, small(3), scratch(0x4000), u32(4096)),
         sc(63, scratch(0x5000)),
         sc(99, scratch(0x5400)),
         sc(302, zero(), small(7), zero(), scratch(0x5800)))
    # setitimer(ITIMER_REAL) with an interval of 2**40 s and a 1 ms value, then a
    # 2 ms sleep: the scheduler fires the timer and computes its next expiry.
    seed("itimer-centuries",
         store(0x0, struct.pack("<qqqq", 1 << 40, 0, 0, 1000)),
         sc(38, zero(), scratch(0), zero()),
         store(0x40, struct.pack("<qq", 0, 2_000_000)),
         sc(35, scratch(0x40), zero()),
         sc(36, zero(), scratch(0x80)))
    # sendmsg and recvmsg on a socket pair with iovec lengths that overflow a sum.
    seed("msg-iovecs",
         sc(53, small(1), small(1), small(0), scratch(0x200)),
         store(0x300, struct.pack("<QQQQ", 0x10000000, 16, 0x10000100, 0xFFFFFFFFFFFFFFF0)),
         store(0x400, struct.pack("<QQQQQQQ", 0, 0, 0x10000300, 2, 0, 0, 0)),
         sc(46, small(3), scratch(0x400), small(0)),
         store(0x300, struct.pack("<QQQQ", 0x10000000, 1 << 63, 0x10000100, 1 << 63)),
         sc(46, small(3), scratch(0x400), small(0)),
         sc(47, small(4), scratch(0x400), small(0x40)))
    # mincore over a huge reservation cut in pieces, and over its edge.
    seed("mincore-huge",
         sc(9, zero(), u64(1 << 36), small(0), small(0x4022), small(-1), zero()),
         sc(10, result(0), u32(0x10000), small(1)),
         sc(27, result(0), u64(1 << 36), scratch(0)),
         sc(27, result(0), huge(0), scratch(0)),
         sc(27, u64(0x7fff_fff7_0000), u64(0x20000), scratch(0)))
    # The terminal on descriptor 10: settings (raw, then canonical again, flushed),
    # reads of each kind, a write, the window size, the foreground group, the session,
    # flushes, a typed character (refused), a poll, and giving the terminal up.
    raw = struct.pack("<IIII", 0, 0, 0o277, 0) + bytes([0]) + bytes([3, 28, 127, 21, 4, 1, 1]) + bytes(12)
    seed("terminal",
         sc(16, fd(10), u32(0x5401), scratch(0)),
         store(0x100, raw),
         sc(16, fd(10), u32(0x5402), scratch(0x100)),
         sc(0, fd(10), scratch(0x200), small(16)),
         sc(16, fd(10), u32(0x5404), scratch(0)),
         sc(0, fd(10), scratch(0x200), small(16)),
         sc(1, fd(10), scratch(0x200), small(16)),
         sc(16, fd(10), u32(0x5413), scratch(0x300)),
         store(0x300, struct.pack("<HHHH", 50, 132, 0, 0)),
         sc(16, fd(10), u32(0x5414), scratch(0x300)),
         sc(16, fd(10), u32(0x540f), scratch(0x400)),
         sc(16, fd(10), u32(0x5410), scratch(0x400)),
         sc(16, fd(10), u32(0x5429), scratch(0x408)),
         sc(16, fd(10), u32(0x541b), scratch(0x410)),
         sc(16, fd(10), u32(0x802c542a), scratch(0x600)),
         sc(16, fd(10), u32(0x402c542b), scratch(0x600)),
         sc(16, fd(10), u32(0x5405), scratch(0x700)),
         sc(16, fd(10), u32(0x5406), scratch(0x700)),
         sc(16, fd(10), u32(0x540b), small(2)),
         sc(16, fd(10), u32(0x540a), small(0)),
         sc(16, fd(10), u32(0x540a), small(1)),
         sc(16, fd(10), u32(0x5412), scratch(0x200)),
         store(0x500, struct.pack("<ihh", 10, 5, 0)),
         sc(7, scratch(0x500), small(1), small(0)),
         sc(16, fd(10), u32(0x5422), zero()),
         sc(112),
         sc(16, fd(10), u32(0x540e), zero()))


if __name__ == "__main__":
    main()
