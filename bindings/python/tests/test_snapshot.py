"""Snapshots and forks of live sandboxes from Python: `live.snapshot()`, `snap.start()`,
`live.fork()`, in-process and against a real `hsb serve` (`Client`). A micro-VM's
Python counter goes on in each clone and then diverges; a container's snapshot keeps
its writable layer only, and says so."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
import time
from typing import Any, Callable

import pytest

import hybrid_sandbox as hs
from conftest import require
from test_live import _microvm_live, server  # noqa: F401  (the server fixture)

COUNTER = r"""
import os
n = 0
r = os.open("/tmp/in", os.O_RDONLY | os.O_NONBLOCK)
w = os.open("/tmp/in", os.O_WRONLY)
os.set_blocking(r, True)
f = os.fdopen(r)
open("/tmp/ready", "w").close()
while True:
    n += int(f.readline())
    with open("/tmp/out.tmp", "w") as o:
        o.write("%d %s" % (n, os.urandom(16).hex()))
    os.rename("/tmp/out.tmp", "/tmp/out")
"""


def _counter(sb: hs.LiveSandbox) -> None:
    sb.write_file("/tmp/counter.py", COUNTER)
    out = sb.exec(["sh", "-c", "mkfifo /tmp/in && (python3 /tmp/counter.py >/dev/null 2>&1 &) && "
                   "while [ ! -e /tmp/ready ]; do sleep 0.01; done"])
    assert out.exit_code == 0, out


def _feed(sb: hs.LiveSandbox, add: int) -> tuple[int, str]:
    """Adds `add` to the counter of `sb`; its count and fresh os.urandom bytes."""
    try:
        before = sb.read_file("/tmp/out")
    except hs.SandboxError:
        before = None
    assert sb.exec(["sh", "-c", f"echo {add} > /tmp/in"]).exit_code == 0
    end = time.time() + 30
    while time.time() < end:
        try:
            now = sb.read_file("/tmp/out")
        except hs.SandboxError:
            now = None
        if now is not None and now != before:
            n, u = now.decode().split(" ")
            return int(n), u
        time.sleep(0.01)
    raise AssertionError("the counter never answered")


@pytest.fixture(params=["in-process", "server"])
def make_vm(request: pytest.FixtureRequest, server: str) -> Callable[..., hs.LiveSandbox]:  # noqa: F811
    require("KVM", _microvm_live())

    def make(**kw: Any) -> hs.LiveSandbox:
        if request.param == "server":
            return hs.Client(server).create(isolation="microvm", **kw)
        return hs.Sandbox().create(isolation="microvm", **kw)

    return make


def test_microvm_snapshot_start_and_fork_go_on_then_diverge(
    make_vm: Callable[..., hs.LiveSandbox],
) -> None:
    with make_vm() as parent:
        _counter(parent)
        assert _feed(parent, 5)[0] == 5
        parent.write_file("/tmp/file", "parent")
        with parent.snapshot() as snap:
            assert isinstance(snap, hs.Snapshot)
            assert snap.isolation == "microvm"
            assert snap.memory_bytes > 0
            assert (snap.id is not None) == (parent.id is not None)
            a, b = snap.start(), snap.start()
            with a, b:
                assert a.state == b.state == "running"
                assert (a.id is not None) == (parent.id is not None)
                # Each clone goes on from the count at the snapshot, on its own.
                assert a.read_file("/tmp/file") == b"parent"
                ca, ua = _feed(a, 10)
                cb, ub = _feed(b, 100)
                assert (ca, cb) == (15, 105)
                assert ua != ub, "os.urandom differs between clones"
                assert _feed(parent, 1)[0] == 6, "the parent's counter is its own"
                a.write_file("/tmp/file", "a")
                assert parent.read_file("/tmp/file") == b"parent"
                assert b.read_file("/tmp/file") == b"parent"
        if parent.id is not None:
            # Deleted on leaving the block: starting from it fails by kind.
            with pytest.raises(hs.SandboxError) as e:
                snap.start()
            assert e.value.kind == "no_such_snapshot"
        with parent.fork() as child:
            assert _feed(child, 1000)[0] == 1006
            assert _feed(parent, 1)[0] == 7


def test_microvm_fork_async(make_vm: Callable[..., hs.LiveSandbox]) -> None:
    async def go() -> None:
        parent = make_vm()
        try:
            _counter(parent)
            assert _feed(parent, 2)[0] == 2
            child = await parent.fork_async()
            snap = await parent.snapshot_async()
            other = await snap.start_async()
            assert _feed(child, 3)[0] == 5
            assert _feed(other, 4)[0] == 6
            await child.close_async()
            await other.close_async()
            snap.delete()
        finally:
            parent.close()

    asyncio.run(go())


def test_terminal_refuses_a_snapshot_by_name() -> None:
    require("KVM", _microvm_live())
    with hs.Sandbox().create(isolation="microvm") as sb:
        p = sb.spawn(["sleep", "30"], tty=(24, 80))
        time.sleep(0.2)
        with pytest.raises(hs.SandboxError) as e:
            sb.snapshot()
        assert "terminal" in str(e.value)
        p.kill()
        assert sb.exec(["echo", "alive"]).stdout == b"alive\n"


@pytest.mark.parametrize("where", ["in-process", "server"])
def test_container_snapshot_keeps_the_writable_layer_only(where: str, server: str) -> None:  # noqa: F811
    make = hs.Client(server).create if where == "server" else hs.Sandbox().create
    with make(isolation="container") as sb:
        sb.write_file("/tmp/kept", "yes")
        snap = sb.snapshot()
        assert snap.isolation == "container"
        assert "writable layer only" in snap.kept
        with snap.start() as clone:
            assert clone.read_file("/tmp/kept") == b"yes"
            clone.write_file("/tmp/kept", "clone")
            assert sb.read_file("/tmp/kept") == b"yes"
        snap.delete()


def test_microvm_snapshot_saved_loaded_in_a_new_process_and_paused_to_disk(
    tmp_path: pathlib.Path,
) -> None:
    require("KVM", _microvm_live())
    path = tmp_path / "counter.hsbsnap"
    with hs.Sandbox().create(isolation="microvm", memory="64M") as parent:
        _counter(parent)
        assert _feed(parent, 5)[0] == 5
        parent.write_file("/tmp/file", "saved")
        assert parent.snapshot().save(path) > 0
        # Loaded in a new Python process: the counter goes on there.
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)],
            capture_output=True, text=True, timeout=300,
            cwd=str(pathlib.Path(__file__).parent),
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "saved 15", child.stdout
        assert _feed(parent, 1)[0] == 6, "the parent is its own"
        # A corrupt copy is refused, naming the file and the problem.
        bad = tmp_path / "bad.hsbsnap"
        data = bytearray(path.read_bytes())
        data[8] = 9
        bad.write_bytes(bytes(data))
        with pytest.raises(hs.SandboxError) as e:
            hs.Sandbox().load_snapshot(bad, isolation="microvm", memory="64M")
        assert str(bad) in str(e.value) and "version" in str(e.value)
        # A bit flipped in guest memory: the load does not read it; verify() does.
        flipped = tmp_path / "flipped.hsbsnap"
        data = bytearray(path.read_bytes())
        runs_off = int.from_bytes(data[104:112], "little")
        first_run = int.from_bytes(data[runs_off:runs_off + 8], "little")
        data[4096 + first_run + 17] ^= 1
        flipped.write_bytes(bytes(data))
        snap = hs.Sandbox().load_snapshot(flipped, isolation="microvm", memory="64M")
        with pytest.raises(hs.SandboxError) as e:
            snap.verify()
        assert str(flipped) in str(e.value) and "checksum" in str(e.value)
        with pytest.raises(hs.SandboxError):
            snap.start()
        flipped.unlink()
        hs.Sandbox().load_snapshot(path, isolation="microvm", memory="64M").verify()
        # Paused to disk, then resumed where it was.
        snap = parent.pause_to_disk(tmp_path)
        assert parent.state == "destroyed"
        assert list(tmp_path.iterdir()) == [path, bad] or sorted(tmp_path.iterdir()) == sorted([path, bad])
        with snap.start() as resumed:
            assert _feed(resumed, 10)[0] == 16


CHILD = r"""
import sys, time
import hybrid_sandbox as hs
from test_snapshot import _feed
snap = hs.Sandbox().load_snapshot(sys.argv[1], isolation="microvm", memory="64M")
with snap.start() as sb:
    print(sb.read_file("/tmp/file").decode(), _feed(sb, 10)[0])
"""


def test_server_snapshot_saved_to_a_file_and_loaded_back(
    server: str, tmp_path: pathlib.Path,  # noqa: F811
) -> None:
    """A server's snapshot saved to a local file (signed by the server) and loaded back
    through `Client.load_snapshot`: the counter goes on; a changed byte is refused."""
    require("KVM", _microvm_live())
    client = hs.Client(server)
    path = tmp_path / "server.hsbsnap"
    with client.create(isolation="microvm", memory="64M") as parent:
        _counter(parent)
        assert _feed(parent, 5)[0] == 5
        with parent.snapshot() as snap:
            assert snap.save(path) == path.stat().st_size > 0
        with client.load_snapshot(path) as loaded:
            assert loaded.id is not None and loaded.id != snap.id
            assert loaded.isolation == "microvm"
            with loaded.start() as clone:
                assert _feed(clone, 10)[0] == 15
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1
        bad = tmp_path / "bad.hsbsnap"
        bad.write_bytes(bytes(data))
        with pytest.raises(hs.SandboxError) as e:
            client.load_snapshot(bad)
        assert e.value.kind == "invalid" and "signature" in str(e.value)
        assert _feed(parent, 1)[0] == 6


def test_container_snapshot_file_keeps_the_writable_layer(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "layer.hsbsnap"
    with hs.Sandbox().create(isolation="container") as sb:
        sb.write_file("/tmp/kept", "layer")
        assert sb.snapshot().save(path) == 5
    snap = hs.Sandbox().load_snapshot(path, isolation="container")
    with snap.start() as clone:
        assert clone.read_file("/tmp/kept") == b"layer"
    with pytest.raises(hs.SandboxError) as e:
        hs.Sandbox().load_snapshot(path, isolation="container", env={"X": "1"})
    assert "other settings" in str(e.value)


def test_snapshot_files_from_asyncio(server: str, tmp_path: pathlib.Path) -> None:  # noqa: F811
    """`save_async`, `Sandbox.load_snapshot_async` and `Client.load_snapshot_async`:
    the same files as their blocking twins, errors raised in the awaiting task, and
    the event loop free meanwhile."""

    async def main() -> None:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        here, there = tmp_path / "here.hsbsnap", tmp_path / "there.hsbsnap"
        sb = await hs.Sandbox().create_async(isolation="container")
        async with sb:
            await sb.write_file_async("/tmp/kept", "in process")
            assert await (await sb.snapshot_async()).save_async(here) == 10
        snap = await hs.Sandbox().load_snapshot_async(here, isolation="container")
        async with await snap.start_async() as clone:
            assert await clone.read_file_async("/tmp/kept") == b"in process"
        with pytest.raises(hs.SandboxError) as e:
            await hs.Sandbox().load_snapshot_async(here, isolation="container", env={"X": "1"})
        assert "other settings" in str(e.value)
        with pytest.raises(TypeError):
            await hs.Sandbox().load_snapshot_async(here, colour="red")

        client = hs.Client(server)
        sb = await client.create_async(isolation="container")
        async with sb:
            await sb.write_file_async("/tmp/kept", "on the server")
            remote = await sb.snapshot_async()
            assert await remote.save_async(there) == there.stat().st_size > 0
            remote.delete()
        loaded = await client.load_snapshot_async(there)
        with loaded:
            async with await loaded.start_async() as clone:
                assert await clone.read_file_async("/tmp/kept") == b"on the server"
        with pytest.raises(hs.SandboxError) as e:
            await client.load_snapshot_async(here)  # a library file, not a server's
        assert e.value.kind == "invalid"
        ticker.cancel()
        assert ticks > 0

    asyncio.run(main())
