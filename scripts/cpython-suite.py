#!/usr/bin/env python3
"""CPython's own regression suite, module by module, natively, in the container and in
the micro-VM: prints the table the README shows (pass/fail per module and backend, and
the time each took).

Needs Debian's libpython3.11-testsuite (scripts/install-deps.sh installs it) and a built
`hsb` (default: target/release/hsb, else target/debug/hsb).

    scripts/cpython-suite.py                      # the default module list, all three
    scripts/cpython-suite.py --where microvm test_os test_time
    scripts/cpython-suite.py --timeout 900 --json results.json --markdown table.md
    scripts/cpython-suite.py --json results.json --png docs/cpython-suite.png
    scripts/cpython-suite.py --plot-from results.json --png docs/cpython-suite.png

One module per run (`python3 -m test MODULE`), with a writable /tmp and the sandbox's
own loopback, under scripts/cpython-suite.toml. A module passes when regrtest says
`Tests result: SUCCESS` and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from plotlib import pyplot

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "scripts" / "cpython-suite.toml"
PYTHON = "/usr/bin/python3"

# Modules a sandboxed workload typically touches: files, processes, threads, signals,
# time, sockets, terminals, and the standard library's pure-Python staples.
DEFAULT_MODULES = [
    "test_os", "test_posix", "test_fcntl", "test_mmap", "test_stat", "test_pathlib",
    "test_signal", "test_threading", "test_time", "test_io", "test_subprocess",
    "test_pty", "test_resource", "test_asyncio.test_events",
    "test_asyncio.test_unix_events", "test_asyncio.test_subprocess", "test_socket",
    "test_shutil", "test_logging", "test_concurrent_futures",
    "test_multiprocessing_fork", "test_pickle", "test_json", "test_re", "test_tempfile",
    "test_glob", "test_zlib", "test_gzip", "test_tarfile", "test_zipfile", "test_csv",
    "test_datetime", "test_decimal", "test_hashlib", "test_select",
    "test_selectors", "test_poll", "test_epoll", "test_fileio", "test_sys",
    "test_random", "test_struct", "test_uuid",
    "test_sched", "test_queue", "test_thread", "test_timeout", "test_ssl",
]
# Not in the list: test_tty and test_termios (CPython 3.12's), test_sqlite3 (Debian
# ships it outside libpython3.11-testsuite): /usr/bin/python3 here has none of them.

# Network per backend where it differs from the policy's loopback (set with --network
# WHERE=MODE).
NETWORK: dict[str, str] = {}

RESULT = re.compile(rb"Tests result: ([A-Z_ ,]+)")


def hsb_binary() -> str:
    for p in (ROOT / "target" / "release" / "hsb", ROOT / "target" / "debug" / "hsb"):
        if p.exists():
            return str(p)
    sys.exit("cpython-suite: build hsb first (cargo build --release --bin hsb)")


def command(where: str, module: str, hsb: str, timeout: int) -> list[str]:
    test = [PYTHON, "-m", "test", module]
    if where == "native":
        return test
    net = ["--network", NETWORK[where]] if where in NETWORK else []
    return [
        hsb, "run", "--policy", str(POLICY), "--isolation", where, *net,
        "--wall-time", f"{timeout}s", "--json", "--", *test,
    ]


def run_one(where: str, module: str, hsb: str, timeout: int) -> dict:
    cmd = command(where, module, hsb, timeout)
    started = time.monotonic()
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}
    # The VMM's switches (HSB_MICROVM_FASTCALL=0, HSB_MICROVM_STATS=1) reach hsb.
    env.update({k: v for k, v in os.environ.items() if k.startswith("HSB_MICROVM_")})
    cwd = "/tmp"
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout + 30, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        return {"module": module, "where": where, "status": "hang",
                "seconds": round(time.monotonic() - started, 1), "detail": "no end"}
    seconds = round(time.monotonic() - started, 1)
    out, termination, code = p.stdout, "exited", p.returncode
    if where != "native":
        try:
            o = json.loads(p.stdout)
        except json.JSONDecodeError:
            return {"module": module, "where": where, "status": "error", "seconds": seconds,
                    "detail": p.stderr.decode(errors="replace")[-400:]}
        if "error" in o:
            return {"module": module, "where": where, "status": "error", "seconds": seconds,
                    "detail": o["error"]["message"][-400:]}
        out = (o.get("stdout") or "").encode()
        termination, code = o["termination"], o.get("exit_code")
        unimpl = o.get("unimplemented_syscalls") or {}
    else:
        unimpl = {}
    m = RESULT.search(out)
    result = m.group(1).decode().strip() if m else "?"
    if termination != "exited":
        status = "timeout" if termination == "timeout" else termination
    elif code == 0 and result.startswith("SUCCESS"):
        status = "pass"
    else:
        status = "fail"
    tail = out.decode(errors="replace").strip().splitlines()[-6:]
    return {"module": module, "where": where, "status": status, "seconds": seconds,
            "result": result, "exit_code": code, "detail": " | ".join(tail)[-600:],
            "unimplemented": unimpl}


def plot(png: str, results: list[dict]) -> None:
    """Each module's time in the container and in the micro-VM relative to its native
    time (log scale), for the modules that ran in all three places; a module that did
    not pass somewhere is marked with `*`. Without matplotlib in this interpreter (a
    pyenv or venv python), Debian's python3 with python3-matplotlib draws it."""
    plt = pyplot(__file__, png, json.dumps(results), "cpython-suite")
    if plt is None:
        return
    import matplotlib.ticker
    by = {(r["module"], r["where"]): r for r in results}
    modules = [m for m in dict.fromkeys(r["module"] for r in results)
               if all((m, w) in by for w in ("native", "container", "microvm"))
               and by[(m, "native")]["seconds"] > 0]
    if not modules:
        print("cpython-suite: no module ran in all three places; no plot", file=sys.stderr)
        return
    def ratio(m: str, w: str) -> float:
        return max(by[(m, w)]["seconds"], 0.05) / max(by[(m, "native")]["seconds"], 0.05)
    labels = [m.removeprefix("test_") + ("*" if any(by[(m, w)]["status"] != "pass"
              for w in ("native", "container", "microvm")) else "") for m in modules]
    fig, ax = plt.subplots(figsize=(7.5, 0.22 * len(modules) + 1.2))
    ys = range(len(modules))
    ax.barh([y - 0.2 for y in ys], [ratio(m, "container") for m in modules], 0.4,
            label="container")
    ax.barh([y + 0.2 for y in ys], [ratio(m, "microvm") for m in modules], 0.4,
            label="micro-VM")
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    top = max(max(ratio(m, w) for m in modules) for w in ("container", "microvm"))
    ticks = [t for t in (0.25, 0.5, 1, 2, 5, 10, 20, 50, 100) if t <= top * 1.5]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(list(ys), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time relative to native (log scale; * = did not pass everywhere)")
    ax.set_title("CPython 3.11 regression suite, module by module")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"cpython-suite: wrote {png}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modules", nargs="*", default=DEFAULT_MODULES)
    ap.add_argument("--where", action="append", choices=["native", "container", "microvm"])
    ap.add_argument("--timeout", type=int, default=600, help="seconds per module (600)")
    ap.add_argument("--jobs", type=int, default=1, help="modules at once (1)")
    ap.add_argument("--json", help="write every result here")
    ap.add_argument("--markdown", help="write the table here")
    ap.add_argument("--png", help="write a chart of the times relative to native here")
    ap.add_argument("--plot-from", help="only draw --png from this --json file (- for stdin)")
    ap.add_argument("--network", action="append", default=[], metavar="WHERE=MODE",
                    help="network mode for one backend, e.g. microvm=none")
    args = ap.parse_args()
    if args.plot_from:
        if not args.png:
            sys.exit("cpython-suite: --plot-from needs --png")
        src = sys.stdin.read() if args.plot_from == "-" else Path(args.plot_from).read_text()
        plot(args.png, json.loads(src))
        return 0
    for spec in args.network:
        w, _, mode = spec.partition("=")
        NETWORK[w] = mode
    wheres = args.where or ["native", "container", "microvm"]
    if not Path("/usr/lib/python3.11/test/libregrtest").exists():
        sys.exit("cpython-suite: install Debian's libpython3.11-testsuite")
    hsb = hsb_binary()
    jobs = [(w, m) for m in args.modules for w in wheres]
    results: list[dict] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for r in pool.map(lambda j: run_one(j[0], j[1], hsb, args.timeout), jobs):
            print(f"{r['module']:34} {r['where']:9} {r['status']:8} {r['seconds']:7.1f}s "
                  f"{r.get('result', '')}", file=sys.stderr, flush=True)
            results.append(r)
    by = {(r["module"], r["where"]): r for r in results}
    lines = ["| module | " + " | ".join(wheres) + " |",
             "| --- | " + " | ".join("---:" for _ in wheres) + " |"]
    for m in args.modules:
        cells = []
        for w in wheres:
            r = by[(m, w)]
            mark = "pass" if r["status"] == "pass" else f"**{r['status']}**"
            cells.append(f"{mark} {r['seconds']:.1f}s")
        lines.append(f"| `{m}` | " + " | ".join(cells) + " |")
    passed = [sum(1 for m in args.modules if by[(m, w)]["status"] == "pass") for w in wheres]
    lines.append("| **modules passing** | " + " | ".join(
        f"**{p}/{len(args.modules)}**" for p in passed) + " |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.png:
        plot(args.png, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
