"""Wrong types and bad values get clear Python errors, never a crash."""

from __future__ import annotations

from typing import Any

import pytest

import hybrid_sandbox as hs


@pytest.mark.parametrize(
    "argv, exc, words",
    [
        ("echo hi", TypeError, "list of strings"),
        (b"echo", TypeError, "list of strings"),
        (42, TypeError, "list of strings"),
        ([], ValueError, "empty"),
        ([""], ValueError, "argv[0]"),
        (["echo", 1], TypeError, "argv[1] must be a str, not int"),
        (["echo", None], TypeError, "argv[1]"),
        (["echo", b"x"], TypeError, "argv[1]"),
        (["echo", "a\0b"], ValueError, "NUL"),
    ],
)
def test_bad_argv(sandbox: hs.Sandbox, argv: Any, exc: type, words: str) -> None:
    with pytest.raises(exc) as e:
        sandbox.run(argv)
    assert words in str(e.value)


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"timeout": "soon"}, ValueError, "timeout: `soon` does not start with a number"),
        ({"timeout": "1.5 fortnights"}, ValueError, "unknown unit"),
        ({"timeout": -1}, ValueError, "timeout must be a finite number"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": True}, TypeError, "not a bool"),
        ({"timeout": [1]}, TypeError, "timeout must be seconds"),
        ({"cpu_time": "fast"}, ValueError, "cpu_time"),
        ({"memory": 1.5}, TypeError, "memory must be bytes (int) or a string such as '256MiB'"),
        ({"memory": -5}, ValueError, "memory must be between 0"),
        ({"memory": "12 parsecs"}, ValueError, "unknown unit `parsecs`"),
        ({"memory": "MiB"}, ValueError, "does not start with a number"),
        ({"memory": False}, TypeError, "memory"),
        ({"output_limit": {}}, TypeError, "output_limit"),
        ({"pids": "10"}, TypeError, "pids must be a number"),
        ({"pids": -1}, ValueError, "pids"),
        ({"isolation": "vm"}, ValueError, "container, microvm or auto"),
        ({"isolation": 3}, TypeError, "isolation must be a str"),
        ({"network": "wifi"}, ValueError, "none, loopback or egress"),
        ({"env": {"A": 1}}, TypeError, "must be a str, not int"),
        ({"env": {"A=B": "x"}}, ValueError, "without '='"),
        ({"env": {"": "x"}}, ValueError, "non-empty"),
        ({"env": ["A=B"]}, TypeError, "env must be a mapping"),
        ({"labels": {"trust": 1}}, TypeError, "labels"),
        ({"mounts": "/a:/b"}, TypeError, "mounts must be a list"),
        ({"mounts": 3}, TypeError, "mounts must be a list"),
        ({"mounts": [3]}, TypeError, "mounts[0]"),
        ({"mounts": [("/a",)]}, ValueError, "mounts[0]"),
        ({"mounts": [("/a", "/b", "rx")]}, ValueError, "'ro' or 'rw'"),
        ({"mounts": ["/a:/b:rx"]}, ValueError, "`ro` or `rw`"),
        ({"stdin": 3.5}, TypeError, "stdin must be bytes"),
        ({"stdin": hs.PIPE}, ValueError, "spawn()"),
        ({"cwd": 7}, TypeError, "cwd"),
        ({"workload": ["x"]}, TypeError, "workload"),
        ({"cpus": True}, TypeError, "not a bool"),
        ({"cpus": "lots"}, ValueError, "cpus"),
        ({"cpus": 0}, ValueError, "cpus"),
        ({"cpus": [1]}, TypeError, "cpus must be a number"),
        ({"tmpfs": "/run"}, TypeError, "tmpfs must be a list of str"),
        ({"tmpfs": ["relative"]}, hs.PolicyError, "tmpfs: target `relative` must be an absolute"),
        ({"tmpfs": ["/x:size=12 parsecs"]}, ValueError, "tmpfs[0]"),
        ({"tmpfs": ["/x:mode=99999"]}, ValueError, "tmpfs[0]"),
        ({"allow": "pypi.org"}, TypeError, "allow must be a list of str"),
        ({"allow": ["*bad*.com"]}, ValueError, "allow[0]"),
        ({"deny": ["a.com:99999"]}, ValueError, "deny[0]"),
        ({"expose": [0]}, ValueError, "expose[0] must be a port from 1 to 65535"),
        ({"expose": [65536]}, ValueError, "expose[0]"),
        ({"expose": ["80"]}, TypeError, "expose[0]"),
        ({"secrets": {"T": "ENV"}}, ValueError, "no `@`"),
        ({"secrets": ["T=E@h"]}, TypeError, "secrets must be a mapping"),
        ({"open_files": -1}, ValueError, "open_files"),
        ({"file_size": "big"}, ValueError, "file_size"),
    ],
)
def test_bad_options(sandbox: hs.Sandbox, kwargs: dict[str, Any], exc: type, words: str) -> None:
    with pytest.raises(exc) as e:
        sandbox.run(["true"], **kwargs)
    assert words in str(e.value), str(e.value)


def test_unknown_keyword() -> None:
    with pytest.raises(TypeError):
        hs.run(["true"], memroy="1G")  # type: ignore[call-arg]


def test_bad_policy_argument() -> None:
    with pytest.raises(TypeError):
        hs.Sandbox(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hs.Sandbox.from_toml(b"version = 1")  # type: ignore[arg-type]
    with pytest.raises(hs.PolicyError):
        hs.Sandbox.from_toml("this is [not toml")


def test_write_without_pipe(sandbox: hs.Sandbox) -> None:
    with sandbox.spawn(["true"]) as p:
        with pytest.raises(ValueError, match="stdin=PIPE"):
            p.write(b"x")
        p.wait()


def test_bad_wait_timeout(sandbox: hs.Sandbox) -> None:
    with sandbox.spawn(["true"]) as p:
        with pytest.raises(ValueError):
            p.wait(timeout="later")
        assert p.wait().termination == "exited"


def test_still_usable_after_errors(sandbox: hs.Sandbox) -> None:
    for bad in ({"memory": "lots"}, {"timeout": "never"}, {"isolation": "vm"}):
        with pytest.raises(ValueError):
            sandbox.run(["true"], **bad)
    assert sandbox.run(["echo", "fine"]).stdout == b"fine\n"


@pytest.mark.parametrize("option", ["idle_timeout", "lifetime"])
def test_zero_lifetimes_are_refused(sandbox: hs.Sandbox, option: str) -> None:
    # A sandbox destroyed as it is made is no request anyone means: refused, naming it.
    with pytest.raises(hs.SandboxError, match=f"{option} must be more than zero") as e:
        sandbox.create(isolation="container", **{option: 0})
    assert e.value.kind == "invalid"
