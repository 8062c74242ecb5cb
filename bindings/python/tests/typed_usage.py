"""Not a test module: code that uses the package as a typed program would, checked by
`mypy --strict` in test.sh so that the stubs and annotations stay right."""

from __future__ import annotations

import asyncio
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


if __name__ == "__main__":
    sync_use()
    asyncio.run(async_use())
    errors()
