"""One sandbox from several Python threads; the GIL is released while waiting."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import hybrid_sandbox as hs


def test_threads_share_a_sandbox(sandbox: hs.Sandbox) -> None:
    def work(i: int) -> list[bytes]:
        return [
            sandbox.run(["sh", "-c", 'sleep 0.3; echo "$0 $1"', f"t{i}", str(j)]).stdout
            for j in range(2)
        ]

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    elapsed = time.monotonic() - start
    for i, outs in enumerate(results):
        assert outs == [f"t{i} 0\n".encode(), f"t{i} 1\n".encode()]
    # 16 runs of 0.3 s each: 4.8 s one after the other.
    assert elapsed < 3.6, f"runs did not overlap ({elapsed:.2f} s)"


def test_gil_is_released_while_waiting(sandbox: hs.Sandbox) -> None:
    done = threading.Event()
    result: list[hs.Outcome] = []

    def waiter() -> None:
        result.append(sandbox.run(["sleep", "1"]))
        done.set()

    t = threading.Thread(target=waiter)
    t.start()
    counted = 0
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        counted += 1
    t.join()
    assert done.is_set() and result[0].termination == "exited"
    assert counted > 10_000


def test_streaming_from_threads(sandbox: hs.Sandbox) -> None:
    def work(i: int) -> bytes:
        with sandbox.spawn(["sh", "-c", f"echo {i}; sleep 0.2; echo {i}"]) as p:
            data = b"".join(e.data for e in p)
            assert p.wait().stdout == data
            return data

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(work, range(4))) == [f"{i}\n{i}\n".encode() for i in range(4)]
