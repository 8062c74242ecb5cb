"""The same workload gives the same outcome through Rust (the `hsb` CLI's --json is
`serde_json` of the Rust `Outcome`), C (`hsb_json`, through libhsb) and Python."""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import Any, Optional

import pytest

import hybrid_sandbox as hs

KEYS = ("termination", "exit_code", "signal", "stdout", "stderr", "isolation", "decision")

CASES: list[dict[str, Any]] = [
    {
        "id": "exit-code-env-stdin-stderr",
        "argv": ["sh", "-c", 'read x; echo "$GREETING $x"; echo warn >&2; exit 3'],
        "env": {"GREETING": "hello"},
        "stdin": "world\n",
    },
    {"id": "timeout", "argv": ["sleep", "30"], "wall_time": "300ms"},
    {"id": "signal", "argv": ["sh", "-c", "kill -TERM $$"]},
    {"id": "microvm", "argv": ["/usr/bin/busybox", "echo", "hi"], "isolation": "microvm"},
    {"id": "auto", "argv": ["echo", "hi"], "isolation": "auto"},
    {"id": "not-found", "argv": ["/no/such/program"]},
    {"id": "no-such-profile", "argv": ["true"], "workload": "nosuch"},
]


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """What must agree: the outcome's fields, or the error's kind and message."""
    if "error" in data:
        return {"error": data["error"], "exit_status": data["exit_status"]}
    return {k: data[k] for k in KEYS}


def via_cli(cli: pathlib.Path, case: dict[str, Any], tmp: pathlib.Path) -> dict[str, Any]:
    cmd = [str(cli), "run", "--json"]
    cmd += _flags(case)
    if "stdin" in case:
        f = tmp / "stdin"
        f.write_text(case["stdin"])
        cmd += ["--stdin", str(f)]
    cmd += ["--", *case["argv"]]
    return _json_of(subprocess.run(cmd, capture_output=True, text=True, timeout=60))


def via_c(prog: pathlib.Path, case: dict[str, Any]) -> dict[str, Any]:
    cmd = [str(prog), *_flags(case)]
    if "stdin" in case:
        cmd += ["--stdin-text", case["stdin"]]
    cmd += ["--", *case["argv"]]
    return _json_of(subprocess.run(cmd, capture_output=True, text=True, timeout=60))


def via_python(case: dict[str, Any]) -> dict[str, Any]:
    try:
        out = hs.run(
            case["argv"],
            isolation=case.get("isolation"),
            workload=case.get("workload"),
            env=case.get("env"),
            stdin=case.get("stdin"),
            timeout=case.get("wall_time"),
        )
    except hs.SandboxError as e:
        return {"error": {"kind": e.kind, "message": str(e)}, "exit_status": e.exit_status}
    data = out.to_dict()
    # The exact bytes must match the JSON's text too.
    assert out.stdout.decode() == data["stdout"] and out.stderr.decode() == data["stderr"]
    assert out.decision.to_dict() == data["decision"]
    return data


def _flags(case: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for key, flag in (("isolation", "--isolation"), ("workload", "--workload"),
                      ("wall_time", "--wall-time")):
        if key in case:
            flags += [flag, case[key]]
    for k, v in case.get("env", {}).items():
        flags += ["--env", f"{k}={v}"]
    return flags


def _json_of(proc: "subprocess.CompletedProcess[str]") -> dict[str, Any]:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"no JSON from {proc.args}: {proc.stdout!r} {proc.stderr!r}"
    data: dict[str, Any] = json.loads(lines[0])
    expected: Optional[int] = data.get("exit_status")
    if expected is not None:
        assert proc.returncode == expected
    return data


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_same_outcome_everywhere(
    case: dict[str, Any], hsb_cli: pathlib.Path, hsb_c_json: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    rust = normalize(via_cli(hsb_cli, case, tmp_path))
    c = normalize(via_c(hsb_c_json, case))
    python = normalize(via_python(case))
    assert c == rust
    assert python == rust


def test_first_case_is_what_we_think(hsb_cli: pathlib.Path, tmp_path: pathlib.Path) -> None:
    rust = via_cli(hsb_cli, CASES[0], tmp_path)
    assert rust["termination"] == "exited" and rust["exit_code"] == 3
    assert rust["stdout"] == "hello world\n" and rust["stderr"] == "warn\n"
