"""Not a test module: code that uses the package as a typed program would, checked by
`mypy --strict` in test.sh so that the stubs and annotations stay right."""

from __future__ import annotations

import asyncio
import pathlib
from datetime import timedelta
from typing import Optional

import hybrid_sandbox as hs


def sync_use() -> None:
    out: hs.Outcome = hs.run(
        ["echo", "hi"],
        timeout="1s",
        memory=1 << 20,
        mounts=["/a:/b", ("/c", "/d", "rw")],
        env={"A": "b"},
        stdin=b"x",
        isolation="container",
        workload="default",
    )
    code: Optional[int] = out.exit_code
    data: bytes = out.stdout + out.stderr
    reasons: list[str] = out.decision.reasons
    seconds: float = out.wall_time
    enforced: bool = out.enforcement["seccomp"]["enforced"]
    sb = hs.Sandbox.from_toml("version = 1\n")
    with sb.spawn(["cat"], stdin=hs.PIPE, timeout=timedelta(seconds=2)) as p:
        p.write(b"x")
        p.close_stdin()
        for ev in p:
            stream: str = ev.stream
            chunk: bytes = ev.data
        done: hs.Outcome = p.wait(timeout=1.0)
    print(code, data, reasons, seconds, enforced, stream, chunk, done)


async def async_use() -> None:
    o: hs.Outcome = await hs.run_async(["true"])
    p = hs.spawn(["true"])
    async for ev in p:
        print(ev.data)
    o2: hs.Outcome = await p.wait_async()
    print(o, o2)


def errors() -> None:
    try:
        hs.Sandbox("policy.toml").run(["x"])
    except hs.BackendUnavailable as e:
        kind: str = e.kind
        status: int = e.exit_status
        print(kind, status)
    except hs.SandboxError:
        pass


def live_use() -> None:
    for sb in (hs.Sandbox().create(idle_timeout="10m", memory="256MiB"),
               hs.Client("unix:/tmp/hsb.sock", token=None).create(isolation="container")):
        with sb:
            n: int = sb.write_file("/tmp/x.sh", "echo hi")
            o: hs.Outcome = sb.exec(["sh", "/tmp/x.sh"], env={"A": "b"}, timeout=5, tty=(24, 80))
            data: bytes = sb.read_file("/tmp/x.sh")
            names: list[str] = [e.name for e in sb.list_dir("/tmp")]
            info: hs.FileInfo = sb.stat("/tmp/x.sh")
            sb.remove("/tmp/x.sh")
            sb.pause()
            sb.resume()
            stats: dict[str, float] = sb.stats()
            p: hs.Process = sb.spawn(["cat"], stdin=hs.PIPE, tty=(24, 80))
            p.resize(30, 100)
            p.send_signal(15)
            ident: str | None = sb.id
            print(n, o, data, names, info.kind, stats, p, ident, sb.state, sb.isolation)
    client = hs.Client("unix:/tmp/hsb.sock")
    with client.create(isolation="microvm") as sb, sb.snapshot() as snap:
        size: int = snap.save("/tmp/sb.hsbsnap")
        loaded: hs.Snapshot = client.load_snapshot(pathlib.Path("/tmp/sb.hsbsnap"))
        print(size, loaded.id)


async def live_async_use() -> None:
    async with await hs.Sandbox().create_async() as sb:
        o: hs.Outcome = await sb.exec_async(["true"])
        b: bytes = await sb.read_file_async("/etc/hostname")
        await sb.write_file_async("/tmp/a", b"x")
        await sb.pause_async()
        await sb.resume_async()
        s: dict[str, float] = await sb.stats_async()
        print(o, b, s)
    remote: hs.LiveSandbox = await hs.Client("http://127.0.0.1:8080", "token").create_async()
    await remote.close_async()


if __name__ == "__main__":
    sync_use()
    asyncio.run(async_use())
    errors()
