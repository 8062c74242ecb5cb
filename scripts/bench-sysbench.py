#!/usr/bin/env python3
"""sysbench natively, in the container and in the micro-VM, interleaved: the README's
table of events per second (and the ratio to native) and a PNG plot.

    scripts/bench-sysbench.py                       # 3 rounds, 5 s per test
    scripts/bench-sysbench.py --rounds 5 --seconds 10 --png docs/sysbench.png

Every test runs in each place in turn, round after round, so that load on this shared
machine falls on all three alike. File I/O runs on a tmpfs in every place (natively a
directory under /dev/shm; in the sandboxes their in-memory /tmp), so the comparison is
of the I/O path, not of the disk.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from plotlib import pyplot

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "scripts" / "cpython-suite.toml"
WHERE = ["native", "container", "microvm"]


def tests(seconds: int) -> dict[str, str]:
    t = f"--time={seconds}"
    fio = ("--file-num=4 --file-total-size=64M --file-test-mode=rndrw "
           "--file-block-size=16384 --file-fsync-freq=100")
    return {
        "cpu": f"sysbench cpu {t} run",
        "memory": f"sysbench memory {t} --memory-total-size=100G run",
        "fileio": (f"sysbench fileio {fio} prepare >/dev/null && "
                   f"sysbench fileio {fio} {t} run; sysbench fileio {fio} cleanup >/dev/null"),
        "threads": f"sysbench threads {t} --threads=4 run",
        "mutex": "sysbench mutex --threads=4 run",
    }


def hsb_binary() -> str:
    for p in (ROOT / "target" / "release" / "hsb", ROOT / "target" / "debug" / "hsb"):
        if p.exists():
            return str(p)
    sys.exit("bench-sysbench: build hsb first (cargo build --release --bin hsb)")


def run(where: str, script: str, hsb: str) -> str:
    if where == "native":
        d = tempfile.mkdtemp(dir="/dev/shm", prefix="hsb-sysbench-")
        try:
            p = subprocess.run(["sh", "-c", script], cwd=d, capture_output=True, timeout=600)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        return p.stdout.decode(errors="replace")
    p = subprocess.run(
        [hsb, "run", "--policy", str(POLICY), "--isolation", where, "--cwd", "/tmp",
         "--network", "none", "--json", "--", "sh", "-c", script],
        capture_output=True, timeout=900)
    o = json.loads(p.stdout)
    if "error" in o:
        raise RuntimeError(f"{where}: {o['error']['message']}")
    return o["stdout"]


def score(test: str, out: str) -> float:
    """Events per second (mutex: 1 / seconds taken)."""
    if test == "mutex":
        m = re.search(r"total time:\s+([\d.]+)s", out)
        return 1.0 / float(m.group(1)) if m else 0.0
    if test == "fileio":
        r = re.search(r"reads/s:\s+([\d.]+)", out)
        w = re.search(r"writes/s:\s+([\d.]+)", out)
        f = re.search(r"fsyncs/s:\s+([\d.]+)", out)
        return sum(float(x.group(1)) for x in (r, w, f) if x)
    m = re.search(r"events per second:\s+([\d.]+)", out)
    if m:
        return float(m.group(1))
    m = re.search(r"total number of events:\s+(\d+)", out)
    t = re.search(r"total time:\s+([\d.]+)s", out)
    return float(m.group(1)) / float(t.group(1)) if m and t else 0.0


def plot(png: str, ratios: dict[str, tuple[float, float]], rounds: int) -> None:
    """A bar chart of the ratios to native. Without matplotlib in this interpreter (a
    pyenv or venv python), Debian's python3 with python3-matplotlib draws it."""
    plt = pyplot(__file__, png, json.dumps({"ratios": ratios, "rounds": rounds}),
                 "bench-sysbench")
    if plt is None:
        return
    names = list(ratios)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [ratios[n][0] for n in names], 0.4, label="container")
    ax.bar([x + 0.2 for x in xs], [ratios[n][1] for n in names], 0.4, label="micro-VM")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("events/s relative to native")
    ax.set_title(f"sysbench, median of {rounds} interleaved rounds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"bench-sysbench: wrote {png}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--only", action="append", help="run only these tests")
    ap.add_argument("--png", help="write a bar chart of the ratios here")
    ap.add_argument("--markdown", help="write the table here")
    ap.add_argument("--plot-from", help="only draw --png from this JSON ({ratios, rounds}; - for stdin)")
    args = ap.parse_args()
    if args.plot_from:
        if not args.png:
            sys.exit("bench-sysbench: --plot-from needs --png")
        src = sys.stdin.read() if args.plot_from == "-" else Path(args.plot_from).read_text()
        d = json.loads(src)
        plot(args.png, {k: tuple(v) for k, v in d["ratios"].items()}, d["rounds"])
        return 0
    if not shutil.which("sysbench"):
        sys.exit("bench-sysbench: install Debian's sysbench (scripts/install-deps.sh)")
    hsb = hsb_binary()
    all_tests = tests(args.seconds)
    names = args.only or list(all_tests)
    got: dict[tuple[str, str], list[float]] = {}
    for rnd in range(args.rounds):
        for name in names:
            for where in WHERE:
                s = score(name, run(where, all_tests[name], hsb))
                got.setdefault((name, where), []).append(s)
                print(f"round {rnd + 1} {name:8} {where:9} {s:12.1f}", file=sys.stderr,
                      flush=True)
    lines = ["| sysbench | native | container | micro-VM | container / native | "
             "micro-VM / native |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    ratios: dict[str, tuple[float, float]] = {}
    for name in names:
        med = {w: statistics.median(got[(name, w)]) for w in WHERE}
        n = med["native"] or 1e-9
        ratios[name] = (med["container"] / n, med["microvm"] / n)
        unit = "runs/s" if name == "mutex" else "events/s"
        lines.append(f"| {name} ({unit}) | {med['native']:,.1f} | {med['container']:,.1f} | "
                     f"{med['microvm']:,.1f} | {ratios[name][0]:.2f} | {ratios[name][1]:.3f} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.png:
        plot(args.png, {n: ratios[n] for n in names}, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
