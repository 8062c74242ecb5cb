"""Live sandboxes: created once, then many execs, files in and out, pause and resume.

`Sandbox(...).create(...)` makes one in this process; `Client(url).create(...)` makes
one on an `hsb serve` server. Both return a `LiveSandbox` with the same methods.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Optional, Union

from . import _native
from ._native import FileInfo, Outcome, Process

StrPath = Union[str, "os.PathLike[str]"]
Argv = Sequence[StrPath]
Size = Union[int, str]
Seconds = Union[int, float, str, timedelta]
MountSpec = Union[str, "os.PathLike[str]", tuple[StrPath, StrPath], tuple[StrPath, StrPath, str]]
Stdin = Union[bytes, bytearray, memoryview, str, int, None]
Data = Union[bytes, bytearray, memoryview, str]


def _options(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def _path(path: StrPath) -> str:
    """A sandbox path from a `str` or an `os.PathLike` (`pathlib.PurePosixPath`), as
    `exec`'s argv and cwd take them."""
    p = os.fspath(path)
    if not isinstance(p, str):
        raise TypeError(f"a sandbox path is a str or an os.PathLike of str, not {type(p).__name__}")
    return p


def _data(data: Data) -> Data:
    if not isinstance(data, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"file data is bytes, bytearray, memoryview or str, not {type(data).__name__}")
    return data


class LiveSandbox:
    """A sandbox that stays: exec many commands in it, move files in and out, pause and
    resume it, and close it (or leave a `with` / `async with` block). Dropping the last
    reference closes it too. Paths are the sandbox's own, resolved inside it as its
    workload would (a symlink it planted never leads out); its limits apply.

    Failures raise `SandboxError` whose `kind` names them: `not_found`,
    `permission_denied`, `is_a_directory`, `limit` (over `tmp_size` or `file_size`, the
    message names which), `wrong_state` (paused or closed), `program_not_found`, ...
    """

    __slots__ = ("_native",)

    def __init__(self, native: _native.LiveSandbox) -> None:
        self._native = native

    @property
    def id(self) -> Optional[str]:
        """The server's id (None for a sandbox of this process)."""
        return self._native.id

    @property
    def isolation(self) -> str:
        """"container" or "microvm"."""
        return self._native.isolation

    @property
    def state(self) -> str:
        """"running", "paused" or "destroyed"."""
        return self._native.state

    @property
    def network(self) -> Optional[dict[str, Any]]:
        """The network report (network "egress"): "mode", the broker's decisions so far
        ("dns", "connections", each with the rule that decided), and "exposed": where
        the host reaches the sandbox's exposed ports. None without a broker."""
        return self._native.network

    @property
    def exposed_ports(self) -> dict[int, str]:
        """Sandbox port -> "127.0.0.1:PORT" where the host reaches it."""
        net = self._native.network or {}
        return {p["sandbox_port"]: p["host"] for p in net.get("exposed", [])}

    @property
    def ended(self) -> Optional[str]:
        """Why it ended ("destroyed", "lifetime", "idle_timeout", ...), once it has."""
        return self._native.ended

    @property
    def decision(self) -> _native.Decision:
        """Which backend, and why."""
        return self._native.decision

    @property
    def enforcement(self) -> dict[str, Any]:
        """What protects the host: namespaces, seccomp, Landlock, limits, network, VM."""
        return self._native.enforcement

    def exec(
        self,
        argv: Argv,
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdin: Stdin = None,
        timeout: Optional[Seconds] = None,
        cpu_time: Optional[Seconds] = None,
        output_limit: Optional[Size] = None,
        tty: Optional[tuple[int, int]] = None,
    ) -> Outcome:
        """Runs `argv` to its end and returns its `Outcome` (the shape of a run's).

        env: variables added to the sandbox's. cwd: the working directory. stdin: bytes
        or str it reads. timeout, cpu_time, output_limit: this exec's limits (paused
        time does not count). tty: (rows, cols) of a pseudo-terminal to run on.
        Processes it leaves in the background keep running. The GIL is released;
        Ctrl-C kills the exec (not the sandbox).
        """
        return self._native.exec(
            argv,
            _options(env=env, cwd=cwd, stdin=stdin, timeout=timeout, cpu_time=cpu_time,
                     output_limit=output_limit, tty=tty),
        )

    async def exec_async(
        self,
        argv: Argv,
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdin: Stdin = None,
        timeout: Optional[Seconds] = None,
        cpu_time: Optional[Seconds] = None,
        output_limit: Optional[Size] = None,
        tty: Optional[tuple[int, int]] = None,
    ) -> Outcome:
        """`exec` for asyncio; cancelling the awaiting task kills the exec."""
        return await self._native.exec_async(
            argv,
            _options(env=env, cwd=cwd, stdin=stdin, timeout=timeout, cpu_time=cpu_time,
                     output_limit=output_limit, tty=tty),
        )

    def spawn(
        self,
        argv: Argv,
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdin: Stdin = None,
        timeout: Optional[Seconds] = None,
        cpu_time: Optional[Seconds] = None,
        output_limit: Optional[Size] = None,
        tty: Optional[tuple[int, int]] = None,
    ) -> Process:
        """Starts `argv` and returns its `Process` at once: iterate over it (`for` or
        `async for`) for `OutputEvent`s, `write()` to its stdin with `stdin=PIPE`, then
        `wait()` (or `await wait_async()`). `kill()` ends the exec, not the sandbox."""
        return self._native.spawn(
            argv,
            _options(env=env, cwd=cwd, stdin=stdin, timeout=timeout, cpu_time=cpu_time,
                     output_limit=output_limit, tty=tty),
        )

    def write_file(self, path: StrPath, data: Data, mode: int = 0o644) -> int:
        """Writes `data` to the file at `path` (created, or truncated); returns the
        bytes written. No parent directory is made (see `mkdir`)."""
        return self._native.write_file(_path(path), _data(data), mode)

    async def write_file_async(self, path: StrPath, data: Data, mode: int = 0o644) -> int:
        """`write_file` for asyncio."""
        return await self._native.write_file_async(_path(path), _data(data), mode)

    def read_file(self, path: StrPath) -> bytes:
        """The contents of the file at `path` (symlinks followed inside the sandbox)."""
        return self._native.read_file(_path(path))

    async def read_file_async(self, path: StrPath) -> bytes:
        """`read_file` for asyncio."""
        return await self._native.read_file_async(_path(path))

    def list_dir(self, path: StrPath) -> list[FileInfo]:
        """The entries of the directory at `path`, sorted by name."""
        return self._native.list_dir(_path(path))

    async def list_dir_async(self, path: StrPath) -> list[FileInfo]:
        """`list_dir` for asyncio."""
        return await self._native.list_dir_async(_path(path))

    def stat(self, path: StrPath) -> FileInfo:
        """Metadata of `path` (a final symlink is not followed)."""
        return self._native.stat(_path(path))

    def mkdir(self, path: StrPath, parents: bool = False) -> None:
        """Makes a directory (and its missing parents with `parents`)."""
        self._native.mkdir(_path(path), parents)

    def remove(self, path: StrPath, recursive: bool = False) -> None:
        """Removes a file, symlink or empty directory (any directory with `recursive`)."""
        self._native.remove(_path(path), recursive)

    async def remove_async(self, path: StrPath, recursive: bool = False) -> None:
        """`remove` for asyncio."""
        await self._native.remove_async(_path(path), recursive)

    def rename(self, src: StrPath, dst: StrPath) -> None:
        """Renames `src` to `dst`."""
        self._native.rename(_path(src), _path(dst))

    def pause(self, to_disk: bool = False) -> None:
        """Stops every process of the sandbox (the container's freezer, the micro-VM's
        vCPU); paused time does not count against wall time. Execs and file calls fail
        with kind `wrong_state` until `resume`. `to_disk=True`, for a server's micro-VM
        sandbox: its state goes to a file of the server and its memory is freed until
        `resume` starts it again (an in-process sandbox: `pause_to_disk(dir)`)."""
        self._native.pause(to_disk)

    async def pause_async(self, to_disk: bool = False) -> None:
        """`pause` for asyncio."""
        await self._native.pause_async(to_disk)

    def resume(self) -> None:
        """Undoes `pause`."""
        self._native.resume()

    async def resume_async(self) -> None:
        """`resume` for asyncio."""
        await self._native.resume_async()

    def snapshot(self) -> Snapshot:
        """A snapshot of the sandbox (it goes on): `start()` it any number of times for
        new sandboxes that go on from its state. Micro-VM: memory, processes, open
        files, the in-memory filesystem; container: the writable layer only (see
        `Snapshot.kept`). A server's sandbox: the snapshot is the server's (`delete()`
        it, or leave a `with` block)."""
        return Snapshot(self._native.snapshot())

    async def snapshot_async(self) -> Snapshot:
        """`snapshot` for asyncio."""
        return Snapshot(await self._native.snapshot_async())

    def pause_to_disk(self, dir: StrPath) -> Snapshot:
        """Pauses the sandbox to disk: its memory is written to an unnamed file in the
        directory `dir` (nothing is left there), the sandbox is destroyed and its memory
        freed; `start()` the returned snapshot to resume it where it was. Micro-VM, of
        this process."""
        return Snapshot(self._native.pause_to_disk(dir))

    def fork(self) -> LiveSandbox:
        """A snapshot and one start from it: a new sandbox that goes on from this one's
        state (a running Python process, its /tmp), then diverges from it."""
        return LiveSandbox(self._native.fork())

    async def fork_async(self) -> LiveSandbox:
        """`fork` for asyncio."""
        return LiveSandbox(await self._native.fork_async())

    def update_limits(
        self,
        memory: Optional[Union[int, str]] = None,
        pids: Optional[int] = None,
        cpus: Optional[Union[float, str]] = None,
    ) -> None:
        """Changes limits while the sandbox runs; `None` leaves one as it is.
        Container isolation (in-process or a server's): `memory` (bytes or "512MiB"),
        `pids`, `cpus` change through its cgroup, within the policy's ranges and floor
        (`PolicyError` naming the limit otherwise; nothing changes). A memory limit below
        what the sandbox uses now is refused, not enforced by killing it. A micro-VM's
        limits are fixed when it is created (`SetupError`, kind `unsupported`)."""
        self._native.update_limits(memory, pids, cpus)

    async def update_limits_async(
        self,
        memory: Optional[Union[int, str]] = None,
        pids: Optional[int] = None,
        cpus: Optional[Union[float, str]] = None,
    ) -> None:
        """`update_limits` for asyncio."""
        await self._native.update_limits_async(memory, pids, cpus)

    def stats(self) -> dict[str, float]:
        """What it uses now: memory_bytes, peak_memory_bytes, cpu_time_ms, processes,
        disk_bytes, execs_running, uptime_ms, paused_ms."""
        return self._native.stats()

    async def stats_async(self) -> dict[str, float]:
        """`stats` for asyncio."""
        return await self._native.stats_async()

    def close(self) -> None:
        """Destroys the sandbox: everything in it is killed, what it held freed.
        Idempotent."""
        self._native.close()

    async def close_async(self) -> None:
        """`close` for asyncio."""
        await self._native.close_async()

    def __enter__(self) -> LiveSandbox:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    async def __aenter__(self) -> LiveSandbox:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close_async()

    def __repr__(self) -> str:
        return repr(self._native)


class Snapshot:
    """A snapshot of a live sandbox (`LiveSandbox.snapshot()`). Each `start()` is a new
    live sandbox going on from the state it kept. What clones share: everything that was
    in the sandbox's memory (ASLR layout, in-process random generators and hash seeds);
    each start reads fresh bytes from getrandom and /dev/urandom and has its own boot id.
    """

    __slots__ = ("_native",)

    def __init__(self, native: _native.Snapshot) -> None:
        self._native = native

    @property
    def id(self) -> Optional[str]:
        """The server's id of the snapshot (None for one of this process)."""
        return self._native.id

    @property
    def isolation(self) -> str:
        """"container" or "microvm"."""
        return self._native.isolation

    @property
    def kept(self) -> str:
        """What it keeps, in words."""
        return self._native.kept

    @property
    def memory_bytes(self) -> int:
        """Bytes of memory it holds on the host."""
        return self._native.memory_bytes

    def start(self) -> LiveSandbox:
        """A new live sandbox from the snapshot."""
        return LiveSandbox(self._native.start())

    async def start_async(self) -> LiveSandbox:
        """`start` for asyncio."""
        return LiveSandbox(await self._native.start_async())

    def verify(self) -> None:
        """Waits until the snapshot is known to be intact. One loaded from a file
        (`Sandbox().load_snapshot`) starts sandboxes at once while its guest memory is
        still checked against the file's checksum; if it does not match, they fail
        naming the file, later starts are refused, and this raises `SandboxError`.
        Returns at once for any other snapshot."""
        self._native.verify()

    def save(self, path: StrPath) -> int:
        """Writes the snapshot to a file at `path` (a container's: its writable layer;
        a micro-VM's: everything). One of this process:
        `Sandbox().load_snapshot(path, ...)` loads it here or in another process of this
        build on this host; returns the bytes of guest memory written (zero pages are
        holes). A server's: the file is signed by the server, and
        `Client(...).load_snapshot(path)` loads it into that server or one with the
        same `--snapshot-key`; returns the file's bytes. What a file cannot hold
        (sockets, epoll, terminals, shared mappings) is refused, naming it."""
        return self._native.save(path)

    async def save_async(self, path: StrPath) -> int:
        """`save` for asyncio."""
        return await self._native.save_async(path)

    def delete(self) -> None:
        """Deletes a server's snapshot (what was started from it goes on); nothing for
        one of this process. Idempotent."""
        self._native.delete()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.delete()

    def __repr__(self) -> str:
        return repr(self._native)


def _create_options(
    isolation: Optional[str],
    workload: Optional[str],
    image: Optional[str],
    mounts: Optional[Sequence[MountSpec]],
    memory: Optional[Size],
    env: Optional[Mapping[str, str]],
    cwd: Optional[str],
    timeout: Optional[Seconds],
    cpu_time: Optional[Seconds],
    pids: Optional[int],
    output_limit: Optional[Size],
    network: Optional[str],
    labels: Optional[Mapping[str, str]],
    needs: Optional[Sequence[str]],
    idle_timeout: Optional[Seconds],
    lifetime: Optional[Seconds],
    tmp_size: Optional[Size],
    file_size: Optional[Size],
    **more: Any,
) -> dict[str, Any]:
    return _options(
        **more,
        isolation=isolation, workload=workload, image=image, mounts=mounts, memory=memory,
        env=env, cwd=cwd, timeout=timeout, cpu_time=cpu_time, pids=pids,
        output_limit=output_limit, network=network, labels=labels, needs=needs,
        idle_timeout=idle_timeout, lifetime=lifetime, tmp_size=tmp_size, file_size=file_size,
    )


class Client:
    """A client of an `hsb serve` server: `url` is "unix:PATH", "http://HOST:PORT" or
    "https://HOST:PORT" (None: $HSB_SERVER); `token` a bearer token of the server's
    token file (None: $HSB_TOKEN; not needed on a UNIX socket, where you are known by
    your uid); `ca_file` the CA certificates (PEM) an https server's certificate is
    checked against (None: $HSB_CA_FILE, else the host's trust store).

        >>> with hybrid_sandbox.Client("unix:/run/user/1000/hsb.sock").create() as sb:
        ...     sb.write_file("/tmp/x.py", "print(6 * 7)")
        ...     sb.exec(["python3", "/tmp/x.py"]).stdout
        b'42\\n'
    """

    __slots__ = ("_native",)

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        ca_file: "Optional[str | os.PathLike[str]]" = None,
    ) -> None:
        url = url if url is not None else os.environ.get("HSB_SERVER")
        if not url:
            raise ValueError(
                "give the server's url (unix:PATH, http://HOST:PORT or https://HOST:PORT) or set HSB_SERVER"
            )
        if token is None:
            token = os.environ.get("HSB_TOKEN")
        if ca_file is None:
            ca_file = os.environ.get("HSB_CA_FILE") or None
        self._native = _native.Client(url, token, ca_file)

    @property
    def url(self) -> str:
        """The server's address."""
        return self._native.url

    def create(
        self,
        *,
        isolation: Optional[str] = None,
        workload: Optional[str] = None,
        image: Optional[str] = None,
        mounts: Optional[Sequence[MountSpec]] = None,
        memory: Optional[Size] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        timeout: Optional[Seconds] = None,
        cpu_time: Optional[Seconds] = None,
        pids: Optional[int] = None,
        output_limit: Optional[Size] = None,
        network: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        needs: Optional[Sequence[str]] = None,
        idle_timeout: Optional[Seconds] = None,
        lifetime: Optional[Seconds] = None,
        tmp_size: Optional[Size] = None,
        file_size: Optional[Size] = None,
        tmpfs: Optional[Sequence[str]] = None,
        cpus: Optional[Union[float, str]] = None,
        open_files: Optional[int] = None,
        allow: Optional[Sequence[str]] = None,
        deny: Optional[Sequence[str]] = None,
        expose: Optional[Sequence[int]] = None,
        secrets: Optional[Mapping[str, str]] = None,
    ) -> LiveSandbox:
        """Creates a live sandbox on the server, under the server's policy; arguments as
        for `Sandbox.create` (mounts only inside what the server's operator allows,
        images only from the server's store)."""
        return LiveSandbox(self._native.create(_create_options(
            isolation, workload, image, mounts, memory, env, cwd, timeout, cpu_time, pids,
            output_limit, network, labels, needs, idle_timeout, lifetime, tmp_size, file_size,
            tmpfs=tmpfs, cpus=cpus, open_files=open_files, allow=allow, deny=deny, expose=expose, secrets=secrets)))

    async def create_async(
        self,
        *,
        isolation: Optional[str] = None,
        workload: Optional[str] = None,
        image: Optional[str] = None,
        mounts: Optional[Sequence[MountSpec]] = None,
        memory: Optional[Size] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        timeout: Optional[Seconds] = None,
        cpu_time: Optional[Seconds] = None,
        pids: Optional[int] = None,
        output_limit: Optional[Size] = None,
        network: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        needs: Optional[Sequence[str]] = None,
        idle_timeout: Optional[Seconds] = None,
        lifetime: Optional[Seconds] = None,
        tmp_size: Optional[Size] = None,
        file_size: Optional[Size] = None,
        tmpfs: Optional[Sequence[str]] = None,
        cpus: Optional[Union[float, str]] = None,
        open_files: Optional[int] = None,
        allow: Optional[Sequence[str]] = None,
        deny: Optional[Sequence[str]] = None,
        expose: Optional[Sequence[int]] = None,
        secrets: Optional[Mapping[str, str]] = None,
    ) -> LiveSandbox:
        """`create` for asyncio."""
        native = await self._native.create_async(_create_options(
            isolation, workload, image, mounts, memory, env, cwd, timeout, cpu_time, pids,
            output_limit, network, labels, needs, idle_timeout, lifetime, tmp_size, file_size,
            tmpfs=tmpfs, cpus=cpus, open_files=open_files, allow=allow, deny=deny, expose=expose, secrets=secrets))
        return LiveSandbox(native)

    def attach(self, id: str) -> LiveSandbox:
        """A sandbox of yours that exists on the server (made by `hsb sandbox create`,
        say); dropping this object leaves it running, `close()` destroys it."""
        return LiveSandbox(self._native.attach(id))

    def list(self) -> list[dict[str, Any]]:
        """Your sandboxes on the server: id, isolation, state, decision, ..."""
        return self._native.list()

    def load_snapshot(self, path: StrPath) -> Snapshot:
        """Loads a file a server's snapshot was saved to (`Snapshot.save(path)` of a
        snapshot of this client's sandboxes) as a new snapshot on this server: the one
        that wrote it (after a restart too, given `hsb serve --snapshot-key`) or one
        with the same key, for the owner that saved it. A file changed in any byte is
        refused. `start()` it for a sandbox that goes on where the saved one was."""
        return Snapshot(self._native.load_snapshot(os.fspath(path)))

    async def load_snapshot_async(self, path: StrPath) -> Snapshot:
        """`load_snapshot` for asyncio."""
        return Snapshot(await self._native.load_snapshot_async(os.fspath(path)))

    def __repr__(self) -> str:
        return f"Client({self.url!r})"
