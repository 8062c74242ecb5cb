"""Runs through `hybrid_sandbox.run` and `Sandbox.run`: outcomes, limits, stdin, env,
mounts, policies and errors."""

from __future__ import annotations

import json
import os
import pathlib
from datetime import timedelta

import pytest

import hybrid_sandbox as hs


def test_echo(sandbox: hs.Sandbox) -> None:
    out = sandbox.run(["echo", "hello"])
    assert isinstance(out, hs.Outcome)
    assert out.termination == "exited"
    assert out.exit_code == 0
    assert out.signal is None
    assert out.success
    assert out.shell_status == 0
    assert out.stdout == b"hello\n"
    assert out.stderr == b""
    assert out.isolation == "container"
    assert isinstance(out.wall_time, float) and out.wall_time > 0
    assert out.cpu_time >= 0
    assert out.peak_memory >= 0
    assert isinstance(out.decision, hs.Decision)
    assert out.decision.isolation == "container"
    assert out.decision.profile == "default"
    assert out.decision.reasons and all(isinstance(r, str) for r in out.decision.reasons)
    assert out.decision.fallback_from is None
    assert out.unimplemented_syscalls == {}
    assert "Outcome(termination='exited', exit_code=0" in repr(out)


def test_enforcement_is_a_dict(sandbox: hs.Sandbox) -> None:
    enf = sandbox.run(["true"]).enforcement
    assert isinstance(enf, dict)
    assert enf["isolation"] == "container"
    assert enf["no_new_privs"] is True
    assert enf["seccomp"]["enforced"] is True
    assert enf["network"] == "loopback"  # the default: a private loopback
    assert enf["limits"]["mechanism"] in {"cgroup_v2", "cgroup_v1", "rlimit"}
    assert "memory" in enf["limits"]["details"]


def test_to_json_is_the_cli_format(sandbox: hs.Sandbox) -> None:
    out = sandbox.run(["sh", "-c", "echo out; echo err >&2; exit 2"])
    data = json.loads(out.to_json())
    assert data == out.to_dict()
    assert data["termination"] == "exited"
    assert data["exit_code"] == 2
    assert data["stdout"] == "out\n" and data["stderr"] == "err\n"
    assert data["decision"] == out.decision.to_dict()
    assert data["enforcement"] == out.enforcement
    assert "wall_time_ms" in data


def test_module_level_run() -> None:
    out = hs.run(["sh", "-c", "exit 7"])
    assert out.termination == "exited"
    assert out.exit_code == 7
    assert not out.success


def test_signal(sandbox: hs.Sandbox) -> None:
    out = sandbox.run(["sh", "-c", "kill -KILL $$"])
    assert out.termination == "signaled"
    assert out.signal == 9
    assert out.exit_code is None
    assert out.shell_status == 137


@pytest.mark.parametrize("timeout", [0.3, "300ms", timedelta(milliseconds=300), 1])
def test_timeout(sandbox: hs.Sandbox, timeout: object) -> None:
    out = sandbox.run(["sleep", "30"], timeout=timeout)
    assert out.termination == "timeout"
    assert out.exit_code is None
    assert out.shell_status == 124
    assert 0.25 <= out.wall_time < 15


def test_memory_limit(sandbox: hs.Sandbox) -> None:
    out = sandbox.run(
        ["python3", "-c", "b = bytearray(512 << 20); print(len(b))"], memory="64MiB"
    )
    assert out.termination == "memory_limit", out
    assert out.stdout == b""


def test_output_limit(sandbox: hs.Sandbox) -> None:
    out = sandbox.run(["yes"], output_limit="1KiB")
    assert out.termination == "output_limit"
    assert len(out.stdout) <= 1024


def test_other_limits_are_accepted(sandbox: hs.Sandbox) -> None:
    out = sandbox.run(
        ["echo", "ok"], cpu_time="5s", pids=16, memory=256 << 20, network="none", timeout=10
    )
    assert out.stdout == b"ok\n"


@pytest.mark.parametrize(
    "data", [b"a\0b\n\xff", bytearray(b"a\0b\n\xff"), memoryview(b"a\0b\n\xff")]
)
def test_stdin_bytes(sandbox: hs.Sandbox, data: object) -> None:
    assert sandbox.run(["cat"], stdin=data).stdout == b"a\0b\n\xff"


def test_stdin_text_and_none(sandbox: hs.Sandbox) -> None:
    assert sandbox.run(["cat"], stdin="h\u00e9llo").stdout == "h\u00e9llo".encode()
    assert sandbox.run(["wc", "-c"]).stdout == b"0\n"
    assert sandbox.run(["wc", "-c"], stdin=b"").stdout == b"0\n"


def test_large_stdin_not_read(sandbox: hs.Sandbox) -> None:
    out = sandbox.run(["head", "-c", "5"], stdin=b"x" * (8 << 20))
    assert out.termination == "exited"
    assert out.stdout == b"xxxxx"


def test_env_is_exactly_what_is_given(sandbox: hs.Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSB_TEST_LEAK", "from-the-host")
    script = 'printf "%s|%s" "$GREETING" "${HSB_TEST_LEAK-unset}"'
    out = sandbox.run(["sh", "-c", script], env={"GREETING": "hello world"})
    assert out.stdout == b"hello world|unset"


def test_mounts(sandbox: hs.Sandbox, shared_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    data.chmod(0o755)
    (data / "file.txt").write_text("payload\n")
    (data / "file.txt").chmod(0o644)
    mounts = [f"{data}:/data", (shared_dir, "/out", "rw")]
    out = sandbox.run(["cat", "/data/file.txt"], mounts=mounts)
    assert out.stdout == b"payload\n"
    # Read-only unless "rw".
    out = sandbox.run(["sh", "-c", "echo x > /data/new"], mounts=mounts)
    assert out.exit_code != 0
    assert not (data / "new").exists()
    out = sandbox.run(["sh", "-c", "echo written > /out/result"], mounts=mounts)
    assert out.exit_code == 0
    assert (shared_dir / "result").read_text() == "written\n"
    # A path alone appears at the same place; cwd inside a mount.
    out = sandbox.run(["cat", "file.txt"], mounts=[data], cwd=str(data))
    assert out.stdout == b"payload\n"


def test_relative_mount_path(
    sandbox: hs.Sandbox, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path.chmod(0o755)
    (tmp_path / "rel.txt").write_text("relative\n")
    (tmp_path / "rel.txt").chmod(0o644)
    monkeypatch.chdir(tmp_path)
    out = sandbox.run(["cat", "/in/rel.txt"], mounts=[(".", "/in")])
    assert out.stdout == b"relative\n"


def test_missing_mount_source(sandbox: hs.Sandbox) -> None:
    with pytest.raises(hs.SandboxError) as e:
        sandbox.run(["true"], mounts=["/no/such/dir:/x"])
    assert "/no/such/dir" in str(e.value)


POLICY = """
version = 1
[defaults]
isolation = "container"
[[defaults.mounts]]
source = "/usr"
[[defaults.mounts]]
source = "/bin"
optional = true
[[defaults.mounts]]
source = "/lib"
optional = true
[[defaults.mounts]]
source = "/lib64"
optional = true
[profiles.quick]
description = "short runs"
[profiles.quick.limits]
wall_time = "5s"
"""


def test_policy_from_toml_and_profiles() -> None:
    sb = hs.Sandbox.from_toml(POLICY, origin="test-policy")
    assert "quick" in sb.profiles
    out = sb.run(["echo", "quick"], workload="quick")
    assert out.decision.profile == "quick"
    assert out.stdout == b"quick\n"
    with pytest.raises(hs.PolicyError) as e:
        sb.run(["true"], workload="quik")
    assert "quik" in str(e.value) and "did you mean" in str(e.value)
    assert e.value.kind == "policy"


def test_policy_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    assert str(path) in hs.Sandbox(path).policy_origin
    out = hs.run(["echo", "from file"], policy=path, workload="quick")
    assert out.stdout == b"from file\n"
    with pytest.raises(hs.PolicyError) as e:
        hs.Sandbox(tmp_path / "missing.toml")
    assert "missing.toml" in str(e.value)


def test_bad_policy_text_says_where() -> None:
    with pytest.raises(hs.PolicyError) as e:
        hs.Sandbox.from_toml("version = 1\n[defaults]\nisolation = 7\n", origin="inline")
    assert "inline" in str(e.value)
    assert e.value.exit_status == 125


def test_program_not_found(sandbox: hs.Sandbox) -> None:
    with pytest.raises(hs.ProgramNotFound) as e:
        sandbox.run(["/no/such/program"])
    assert isinstance(e.value, hs.SandboxError)
    assert e.value.kind == "program_not_found"
    assert e.value.exit_status == 127
    assert "/no/such/program" in str(e.value)


def test_microvm_runs_or_says_why(sandbox: hs.Sandbox) -> None:
    """The micro-VM backend runs the workload, or the run fails clearly; never a
    silent downgrade to the container."""
    try:
        out = sandbox.run(["/usr/bin/busybox", "echo", "hi"], isolation="microvm")
    except hs.BackendUnavailable as e:
        assert e.kind == "unavailable"
        assert "microvm" in str(e)
    else:
        assert out.isolation == "microvm"
        assert out.stdout == b"hi\n"
        assert out.enforcement["vm"] is not None


def test_exception_hierarchy() -> None:
    for exc in (
        hs.PolicyError,
        hs.BackendUnavailable,
        hs.ProgramNotFound,
        hs.NotExecutable,
        hs.MountError,
        hs.ImageError,
        hs.SetupError,
        hs.RunError,
    ):
        assert issubclass(exc, hs.SandboxError)
        assert exc.__module__ == "hybrid_sandbox"
    assert issubclass(hs.SandboxError, Exception)


def test_sandbox_repr_and_defaults() -> None:
    sb = hs.Sandbox()
    assert "default" in sb.profiles
    assert repr(sb).startswith("Sandbox(policy=")
    assert os.fspath(pathlib.Path("x")) == "x"


def test_ctrl_c_kills_a_run(tmp_path: pathlib.Path) -> None:
    """KeyboardInterrupt reaches a thread blocked in run(), and the run is killed."""
    import subprocess
    import sys

    script = tmp_path / "interrupt.py"
    script.write_text(
        "import os, signal, threading, time, hybrid_sandbox as hs\n"
        # Python installs its Ctrl-C handler only where SIGINT is not ignored at start,
        # and a background job of a non-interactive shell inherits it ignored.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    hs.run(['sleep', '30.301'])\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted after', round(time.monotonic() - start, 1))\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("interrupted after")
    assert float(proc.stdout.split()[-1]) < 5
    from conftest import wait_gone

    assert wait_gone("30.301")
