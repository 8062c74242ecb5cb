"""`spawn`: output events while the workload runs, stdin pipes, kill, wait."""

from __future__ import annotations

import time

import pytest

import hybrid_sandbox as hs
from conftest import processes_with, wait_gone


def test_events_in_order(sandbox: hs.Sandbox) -> None:
    p = sandbox.spawn(["sh", "-c", "echo out1; echo err1 >&2; echo out2"])
    assert p.isolation == "container"
    events = list(p)
    assert all(isinstance(e, hs.OutputEvent) for e in events)
    out = b"".join(e.data for e in events if e.stream == "stdout")
    err = b"".join(e.data for e in events if e.stream == "stderr")
    assert out == b"out1\nout2\n"
    assert err == b"err1\n"
    outcome = p.wait()
    assert p.done
    assert outcome.stdout == out and outcome.stderr == err
    assert outcome.termination == "exited"


def test_events_arrive_while_running(sandbox: hs.Sandbox) -> None:
    start = time.monotonic()
    p = sandbox.spawn(["sh", "-c", "echo early; sleep 1.5; echo late"])
    first = next(p)
    first_at = time.monotonic() - start
    rest = list(p)
    end_at = time.monotonic() - start
    assert first.data == b"early\n"
    assert b"".join(e.data for e in rest) == b"late\n"
    assert first_at < end_at - 1.0
    assert p.wait().exit_code == 0


def test_stdin_pipe(sandbox: hs.Sandbox) -> None:
    p = sandbox.spawn(["cat"], stdin=hs.PIPE)
    p.write(b"hello ")
    p.write("w\u00f6rld")
    p.close_stdin()
    data = b"".join(e.data for e in p)
    assert data == "hello w\u00f6rld".encode()
    assert p.wait().stdout == data


def test_write_after_end(sandbox: hs.Sandbox) -> None:
    p = sandbox.spawn(["true"], stdin=hs.PIPE)
    p.wait()
    with pytest.raises(BrokenPipeError):
        for _ in range(100):
            p.write(b"x" * 65536)


def test_kill(sandbox: hs.Sandbox) -> None:
    p = sandbox.spawn(["sleep", "30.101"])
    p.kill()
    out = p.wait()
    assert out.termination == "killed"
    assert wait_gone("30.101")


def test_wait_timeout(sandbox: hs.Sandbox) -> None:
    with sandbox.spawn(["sleep", "30.102"]) as p:
        with pytest.raises(TimeoutError):
            p.wait(timeout=0.2)
        assert not p.done
    assert p.wait().termination == "killed"


def test_dropping_the_process_kills_the_run(sandbox: hs.Sandbox) -> None:
    p = sandbox.spawn(["sleep", "30.103"])
    deadline = time.monotonic() + 5
    while not processes_with("30.103") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_with("30.103")
    del p
    assert wait_gone("30.103")


def test_timeout_while_streaming(sandbox: hs.Sandbox) -> None:
    p = sandbox.spawn(["sh", "-c", "echo tick; sleep 30"], timeout="400ms")
    assert [e.data for e in p] == [b"tick\n"]
    assert p.wait().termination == "timeout"


def test_module_level_spawn() -> None:
    with hs.spawn(["echo", "spawned"]) as p:
        assert p.wait().stdout == b"spawned\n"
