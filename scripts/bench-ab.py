#!/usr/bin/env python3
"""Side-by-side timing of commands, interleaved round by round, so that the machine's
load hits every command alike: two builds of hsb, or a sandboxed program and the same
program natively. Prints each command's median and 90th percentile and its ratio to the
last command (the baseline). Not a test.

    scripts/bench-ab.py [--rounds N] [--warmup W] NAME=COMMAND [NAME=COMMAND ...]

    scripts/bench-ab.py --rounds 30 \\
        "before=/tmp/hsb-before run --isolation microvm -- /usr/bin/python3 -c pass" \\
        "after=target/release/hsb run --isolation microvm -- /usr/bin/python3 -c pass" \\
        "native=/usr/bin/python3 -c pass"

Each command is split as a shell would (quotes keep an argument whole, nothing is
expanded) and run with stdin and stdout on /dev/null; a command
that fails stops the script with its status.
"""

import argparse
import shlex
import statistics
import subprocess
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("commands", nargs="+", metavar="NAME=COMMAND")
    a = ap.parse_args()
    cmds = {}
    for spec in a.commands:
        name, sep, cmd = spec.partition("=")
        if not sep or not shlex.split(cmd):
            ap.error(f"{spec!r} is not NAME=COMMAND")
        cmds[name] = shlex.split(cmd)
    times = {name: [] for name in cmds}
    for r in range(a.warmup + a.rounds):
        for name, argv in cmds.items():
            t = time.perf_counter()
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            elapsed = (time.perf_counter() - t) * 1e3
            if p.returncode != 0:
                print(f"{name}: {' '.join(argv)} exited with {p.returncode}", file=sys.stderr)
                return 1
            if r >= a.warmup:
                times[name].append(elapsed)
    base_name = list(cmds)[-1]
    base = statistics.median(times[base_name])
    print(f"{a.rounds} rounds, interleaved; ratio to `{base_name}`")
    print("| command | median ms | p90 ms | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name, v in times.items():
        v.sort()
        med = statistics.median(v)
        p90 = v[min(len(v) - 1, int(len(v) * 0.9))]
        print(f"| {name} | {med:.2f} | {p90:.2f} | {med / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
