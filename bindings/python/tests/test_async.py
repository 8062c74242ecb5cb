"""The asyncio variants: run_async, async iteration, wait_async, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

import hybrid_sandbox as hs
from conftest import wait_gone


def test_run_async(sandbox: hs.Sandbox) -> None:
    async def main() -> hs.Outcome:
        return await sandbox.run_async(["sh", "-c", "echo async; exit 4"], env={"A": "b"})

    out = asyncio.run(main())
    assert out.stdout == b"async\n"
    assert out.exit_code == 4


def test_concurrent_runs_do_not_block_the_loop() -> None:
    async def main() -> tuple[list[hs.Outcome], int, float]:
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.ensure_future(ticker())
        start = time.monotonic()
        outs = await asyncio.gather(
            *(hs.run_async(["sh", "-c", f"sleep 0.5; echo {i}"]) for i in range(4))
        )
        elapsed = time.monotonic() - start
        stop = True
        await t
        return list(outs), ticks, elapsed

    outs, ticks, elapsed = asyncio.run(main())
    assert [o.stdout for o in outs] == [b"0\n", b"1\n", b"2\n", b"3\n"]
    assert ticks >= 20, "the event loop was blocked"
    assert elapsed < 1.6, "the runs did not overlap"


def test_async_errors() -> None:
    async def main() -> None:
        await hs.run_async(["/no/such/program"])

    with pytest.raises(hs.ProgramNotFound):
        asyncio.run(main())


def test_async_iteration_and_wait() -> None:
    async def main() -> tuple[bytes, hs.Outcome]:
        p = hs.spawn(["sh", "-c", "echo a; sleep 0.2; echo b"])
        data = b""
        async for event in p:
            assert event.stream == "stdout"
            data += event.data
        return data, await p.wait_async()

    data, out = asyncio.run(main())
    assert data == b"a\nb\n"
    assert out.stdout == data


def test_cancelling_kills_the_run() -> None:
    async def main() -> None:
        await asyncio.wait_for(hs.run_async(["sleep", "30.201"]), 0.5)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(main())
    assert wait_gone("30.201")


def test_needs_a_running_loop(sandbox: hs.Sandbox) -> None:
    with pytest.raises(RuntimeError):
        sandbox._native.run_async(["true"], {})
