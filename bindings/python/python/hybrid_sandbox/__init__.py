"""Run untrusted programs in a container or a micro-VM, as a policy decides.

    >>> import hybrid_sandbox
    >>> out = hybrid_sandbox.run(["echo", "hi"], timeout="5s", memory="256MiB")
    >>> out.termination, out.exit_code, out.stdout
    ('exited', 0, b'hi\\n')

Every run returns an `Outcome`: the isolation used, how the run ended, its output and
costs, the decision's reasons, and an enforcement report of what was really in force.
A run that could not start raises a `SandboxError` (`PolicyError`, `BackendUnavailable`,
`ProgramNotFound`, ...). Waiting releases the GIL, so runs proceed in parallel from
several threads; `run_async` and `Process` (from `spawn`) serve asyncio.

Units: sizes are bytes (int) or strings such as "256MiB"; durations are seconds (int or
float), strings such as "1.5s" or "500ms", or `datetime.timedelta`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Optional, Union

from . import _native
from ._live import Client, LiveSandbox, Snapshot, _create_options
from ._native import (
    PIPE,
    BackendUnavailable,
    Decision,
    FileInfo,
    MountError,
    NotExecutable,
    Outcome,
    OutputEvent,
    PolicyError,
    Process,
    ImageError,
    ProgramNotFound,
    RunError,
    SandboxError,
    SetupError,
)

__version__: str = _native.__version__

__all__ = [
    "PIPE",
    "BackendUnavailable",
    "Client",
    "Decision",
    "FileInfo",
    "LiveSandbox",
    "ImageError",
    "MountError",
    "NotExecutable",
    "Outcome",
    "OutputEvent",
    "PolicyError",
    "Process",
    "ProgramNotFound",
    "RunError",
    "Sandbox",
    "SandboxError",
    "SetupError",
    "Snapshot",
    "run",
    "run_async",
    "spawn",
]

StrPath = Union[str, "os.PathLike[str]"]
Argv = Sequence[StrPath]
Size = Union[int, str]
Seconds = Union[int, float, str, timedelta]
MountSpec = Union[str, "os.PathLike[str]", tuple[StrPath, StrPath], tuple[StrPath, StrPath, str]]
Stdin = Union[bytes, bytearray, memoryview, str, int, None]


def _options(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}



def _load_options(method: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of `Sandbox.load_snapshot`: the `create` arguments."""
    names = ["isolation", "workload", "image", "mounts", "memory", "env", "cwd", "timeout",
             "cpu_time", "pids", "output_limit", "network", "labels", "needs",
             "idle_timeout", "lifetime", "tmp_size", "file_size"]
    more = ("tmpfs", "cpus", "open_files", "allow", "deny", "expose", "secrets")
    unknown = set(options) - set(names) - set(more)
    if unknown:
        raise TypeError(f"{method}() got unexpected options: {sorted(unknown)}")
    return _create_options(*(options.get(n) for n in names), **{k: options.get(k) for k in more})

class Sandbox:
    """A policy and the backends it chooses from. Reusable, and safe to share between
    threads and tasks.

    `policy` is a policy file (TOML, or JSON for `.json` names); None means the embedded
    default policy (container isolation, a private loopback only, read-only system directories,
    bounded memory, time, processes and output; a `trust=untrusted` or any `tenant`
    label gets the micro-VM, or BackendUnavailable where it is missing).
    """

    __slots__ = ("_native",)

    def __init__(self, policy: Optional[StrPath] = None) -> None:
        if policy is not None and not isinstance(policy, (str, os.PathLike)):
            raise TypeError(f"policy must be a path (str or os.PathLike), not {type(policy).__name__}")
        self._native = _native.Sandbox(os.fspath(policy) if policy is not None else None)

    @classmethod
    def from_toml(cls, text: str, origin: str = "<string>") -> Sandbox:
        """A sandbox under a policy given as TOML text; `origin` names it in errors."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        sandbox = cls.__new__(cls)
        sandbox._native = _native.Sandbox(toml=text, origin=origin)
        return sandbox

    @property
    def policy_origin(self) -> str:
        """Where the policy came from: a path, or the embedded default."""
        return self._native.policy_origin

    @property
    def profiles(self) -> list[str]:
        """The policy's profiles: the values `workload=` accepts."""
        return self._native.profiles

    def run(
        self,
        argv: Optional[Argv] = None,
        *,
        isolation: Optional[str] = None,
        workload: Optional[str] = None,
        stdin: Stdin = None,
        timeout: Optional[Seconds] = None,
        memory: Optional[Size] = None,
        mounts: Optional[Sequence[MountSpec]] = None,
        env: Optional[Mapping[str, str]] = None,
        cpu_time: Optional[Seconds] = None,
        pids: Optional[int] = None,
        output_limit: Optional[Size] = None,
        network: Optional[str] = None,
        cwd: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        needs: Optional[Sequence[str]] = None,
        image: Optional[str] = None,
        tmpfs: Optional[Sequence[str]] = None,
        cpus: Optional[Union[float, str]] = None,
        open_files: Optional[int] = None,
        allow: Optional[Sequence[str]] = None,
        deny: Optional[Sequence[str]] = None,
        expose: Optional[Sequence[int]] = None,
        secrets: Optional[Mapping[str, str]] = None,
        file_size: Optional[Size] = None,
        tmp_size: Optional[Size] = None,
        template: Optional[str] = None,
    ) -> Outcome:
        """Runs `argv` (the program, an absolute path in the sandbox or a name searched in
        PATH, then its arguments) to its end and returns its `Outcome`.

        isolation: "container", "microvm" or "auto"; the policy decides when None.
        workload: the policy profile to use. stdin: bytes (or str) the workload reads;
        /dev/null when None. timeout: wall-clock limit (the run ends in "timeout").
        memory: memory limit of the whole sandbox. mounts: host paths to show inside,
        as "HOST:SANDBOX[:ro|:rw]" or (host, sandbox[, "ro" | "rw"]), read-only unless
        "rw". env: the workload's environment (nothing is inherited). cpu_time, pids,
        output_limit, open_files, file_size, tmp_size: more limits. cpus: CPU bandwidth
        (0.5 is half of one CPU; or "500m"). tmpfs: empty in-memory filesystems,
        "PATH[:size=SIZE][,mode=OCTAL]". network: "none", "loopback" or "egress"; with
        egress, allow and deny add HOST[:PORT] rules to the profile's, expose lists
        sandbox ports the host may reach (see `Outcome.network` for where), and secrets
        maps a sandbox variable to "ENV@HOST[,HOST...]": the sandbox sees a placeholder,
        the value of this process's ENV goes only to those hosts. cwd: the working
        directory inside. labels: what the policy's rules look at, e.g. {"trust": ...}.
        needs: what the workload needs, "network" and/or "full_linux" (with
        isolation="auto" the policy sends it where that exists, or refuses the run).
        image: an OCI image to run on: a name in the image store (`hsb image import`) or
        the path of an OCI layout directory or `docker save` tarball; its ENTRYPOINT,
        ENV, WORKDIR and USER apply and `argv` replaces its CMD.

        template: run the policy's warm template of that name (`[templates.NAME]`)
        instead of `argv`: its program, started once and waiting on its stdin (a fork of
        its micro-VM snapshot, or a pre-started container of its pool), reads `stdin`
        then end of file; only stdin, timeout, cpu_time and output_limit apply. The
        outcome's `decision.reasons[0]` says which template and how it started.

        The GIL is released while the workload runs; Ctrl-C kills it.
        """
        if template is not None:
            extra = [
                k
                for k, v in dict(
                    argv=argv, isolation=isolation, workload=workload, memory=memory,
                    mounts=mounts, env=env, pids=pids, network=network, cwd=cwd,
                    labels=labels, needs=needs, image=image, tmpfs=tmpfs, cpus=cpus,
                    open_files=open_files, allow=allow, deny=deny, expose=expose,
                    secrets=secrets, file_size=file_size, tmp_size=tmp_size,
                ).items()
                if v is not None
            ]
            if extra:
                raise TypeError(
                    "a template run takes only stdin, timeout, cpu_time and output_limit "
                    f"(the sandbox is the template's, as the policy defines it); got {', '.join(extra)}"
                )
            return self._native.run_template(
                template,
                _options(stdin=stdin, timeout=timeout, cpu_time=cpu_time, output_limit=output_limit),
            )
        if argv is None:
            raise TypeError("run() needs argv (or template=)")
        return self._native.run(
            argv,
            _options(
                isolation=isolation,
                workload=workload,
                stdin=stdin,
                timeout=timeout,
                memory=memory,
                mounts=mounts,
                env=env,
                cpu_time=cpu_time,
                pids=pids,
                output_limit=output_limit,
                network=network,
                cwd=cwd,
                labels=labels,
                needs=needs,
                image=image,
                tmpfs=tmpfs,
                cpus=cpus,
                open_files=open_files,
                allow=allow,
                deny=deny,
                expose=expose,
                secrets=secrets,
                file_size=file_size,
                tmp_size=tmp_size,
            ),
        )

    async def run_async(
        self,
        argv: Argv,
        *,
        isolation: Optional[str] = None,
        workload: Optional[str] = None,
        stdin: Stdin = None,
        timeout: Optional[Seconds] = None,
        memory: Optional[Size] = None,
        mounts: Optional[Sequence[MountSpec]] = None,
        env: Optional[Mapping[str, str]] = None,
        cpu_time: Optional[Seconds] = None,
        pids: Optional[int] = None,
        output_limit: Optional[Size] = None,
        network: Optional[str] = None,
        cwd: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        needs: Optional[Sequence[str]] = None,
        image: Optional[str] = None,
        tmpfs: Optional[Sequence[str]] = None,
        cpus: Optional[Union[float, str]] = None,
        open_files: Optional[int] = None,
        allow: Optional[Sequence[str]] = None,
        deny: Optional[Sequence[str]] = None,
        expose: Optional[Sequence[int]] = None,
        secrets: Optional[Mapping[str, str]] = None,
        file_size: Optional[Size] = None,
        tmp_size: Optional[Size] = None,
    ) -> Outcome:
        """`run` for asyncio: awaits the `Outcome` without blocking the event loop.
        Cancelling the awaiting task kills the run."""
        return await self._native.run_async(
            argv,
            _options(
                isolation=isolation,
                workload=workload,
                stdin=stdin,
                timeout=timeout,
                memory=memory,
                mounts=mounts,
                env=env,
                cpu_time=cpu_time,
                pids=pids,
                output_limit=output_limit,
                network=network,
                cwd=cwd,
                labels=labels,
                needs=needs,
                image=image,
                tmpfs=tmpfs,
                cpus=cpus,
                open_files=open_files,
                allow=allow,
                deny=deny,
                expose=expose,
                secrets=secrets,
                file_size=file_size,
                tmp_size=tmp_size,
            ),
        )

    def spawn(
        self,
        argv: Argv,
        *,
        isolation: Optional[str] = None,
        workload: Optional[str] = None,
        stdin: Stdin = None,
        timeout: Optional[Seconds] = None,
        memory: Optional[Size] = None,
        mounts: Optional[Sequence[MountSpec]] = None,
        env: Optional[Mapping[str, str]] = None,
        cpu_time: Optional[Seconds] = None,
        pids: Optional[int] = None,
        output_limit: Optional[Size] = None,
        network: Optional[str] = None,
        cwd: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        needs: Optional[Sequence[str]] = None,
        image: Optional[str] = None,
        tmpfs: Optional[Sequence[str]] = None,
        cpus: Optional[Union[float, str]] = None,
        open_files: Optional[int] = None,
        allow: Optional[Sequence[str]] = None,
        deny: Optional[Sequence[str]] = None,
        expose: Optional[Sequence[int]] = None,
        secrets: Optional[Mapping[str, str]] = None,
        file_size: Optional[Size] = None,
        tmp_size: Optional[Size] = None,
    ) -> Process:
        """Starts `argv` and returns its `Process` at once: iterate over it (`for` or
        `async for`) for `OutputEvent`s while it runs, `write()` to its stdin when
        started with `stdin=PIPE`, then `wait()` (or `await wait_async()`) for the
        `Outcome`. Arguments as for `run`."""
        return self._native.spawn(
            argv,
            _options(
                isolation=isolation,
                workload=workload,
                stdin=stdin,
                timeout=timeout,
                memory=memory,
                mounts=mounts,
                env=env,
                cpu_time=cpu_time,
                pids=pids,
                output_limit=output_limit,
                network=network,
                cwd=cwd,
                labels=labels,
                needs=needs,
                image=image,
                tmpfs=tmpfs,
                cpus=cpus,
                open_files=open_files,
                allow=allow,
                deny=deny,
                expose=expose,
                secrets=secrets,
                file_size=file_size,
                tmp_size=tmp_size,
            ),
        )

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
        """Creates a live sandbox in this process: a run's inputs without the program
        (the same policy decision, floor and enforcement report), waiting for execs and
        file calls. Arguments as for `run`; timeout, cpu_time and output_limit are each
        exec's defaults; memory, pids, tmp_size and file_size hold for the sandbox's
        whole life; idle_timeout and lifetime destroy it (after that long without an
        exec or a call, or after that long). Use it in a `with` block, or `close()` it.

            >>> with hybrid_sandbox.Sandbox().create(idle_timeout="10m") as sb:
            ...     sb.write_file("/tmp/x.sh", "echo $((6 * 7))")
            ...     sb.exec(["sh", "/tmp/x.sh"]).stdout
            b'42\\n'
        """
        return LiveSandbox(self._native.create(_create_options(
            isolation, workload, image, mounts, memory, env, cwd, timeout, cpu_time, pids,
            output_limit, network, labels, needs, idle_timeout, lifetime, tmp_size, file_size,
            tmpfs=tmpfs, cpus=cpus, open_files=open_files, allow=allow, deny=deny, expose=expose, secrets=secrets)))

    def load_snapshot(self, path: StrPath, **options: Any) -> Snapshot:
        """Loads a snapshot file written by `Snapshot.save` (here or in another process
        of this build on this host): `options` are the `create` arguments the saved
        sandbox was made with (the policy decides again; a file whose sandbox differs
        from the one it gives now is refused). A file from another version, a truncated
        or a corrupt one is refused with a `SandboxError` naming it and the problem.
        `start()` the snapshot for a sandbox that goes on where the saved one was."""
        return Snapshot(self._native.load_snapshot(path, _load_options("load_snapshot", options)))

    async def load_snapshot_async(self, path: StrPath, **options: Any) -> Snapshot:
        """`load_snapshot` for asyncio."""
        opts = _load_options("load_snapshot_async", options)
        return Snapshot(await self._native.load_snapshot_async(path, opts))

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

    def __repr__(self) -> str:
        return f"Sandbox(policy={self.policy_origin!r})"


_default: Optional[Sandbox] = None
_default_lock = threading.Lock()


def _sandbox(policy: Optional[StrPath]) -> Sandbox:
    global _default
    if policy is not None:
        return Sandbox(policy)
    with _default_lock:
        if _default is None:
            _default = Sandbox()
        return _default


def run(
    argv: Optional[Argv] = None,
    *,
    policy: Optional[StrPath] = None,
    isolation: Optional[str] = None,
    workload: Optional[str] = None,
    stdin: Stdin = None,
    timeout: Optional[Seconds] = None,
    memory: Optional[Size] = None,
    mounts: Optional[Sequence[MountSpec]] = None,
    env: Optional[Mapping[str, str]] = None,
    cpu_time: Optional[Seconds] = None,
    pids: Optional[int] = None,
    output_limit: Optional[Size] = None,
    network: Optional[str] = None,
    cwd: Optional[str] = None,
    labels: Optional[Mapping[str, str]] = None,
    needs: Optional[Sequence[str]] = None,
    image: Optional[str] = None,
    tmpfs: Optional[Sequence[str]] = None,
    cpus: Optional[Union[float, str]] = None,
    open_files: Optional[int] = None,
    allow: Optional[Sequence[str]] = None,
    deny: Optional[Sequence[str]] = None,
    expose: Optional[Sequence[int]] = None,
    secrets: Optional[Mapping[str, str]] = None,
    file_size: Optional[Size] = None,
    tmp_size: Optional[Size] = None,
    template: Optional[str] = None,
) -> Outcome:
    """Runs `argv` under `policy` (a policy file; the embedded default when None) and
    returns its `Outcome`. See `Sandbox.run` for the other arguments; with
    `template="py"` and `stdin=code`, the policy's warm template runs instead (the
    templates a policy builds live as long as its `Sandbox`: the default policy's is
    kept for the process)."""
    return _sandbox(policy).run(
        argv,
        template=template,
        isolation=isolation,
        workload=workload,
        stdin=stdin,
        timeout=timeout,
        memory=memory,
        mounts=mounts,
        env=env,
        cpu_time=cpu_time,
        pids=pids,
        output_limit=output_limit,
        network=network,
        cwd=cwd,
        labels=labels,
        needs=needs,
        image=image,
        tmpfs=tmpfs,
        cpus=cpus,
        open_files=open_files,
        allow=allow,
        deny=deny,
        expose=expose,
        secrets=secrets,
        file_size=file_size,
        tmp_size=tmp_size,
    )


async def run_async(
    argv: Argv,
    *,
    policy: Optional[StrPath] = None,
    isolation: Optional[str] = None,
    workload: Optional[str] = None,
    stdin: Stdin = None,
    timeout: Optional[Seconds] = None,
    memory: Optional[Size] = None,
    mounts: Optional[Sequence[MountSpec]] = None,
    env: Optional[Mapping[str, str]] = None,
    cpu_time: Optional[Seconds] = None,
    pids: Optional[int] = None,
    output_limit: Optional[Size] = None,
    network: Optional[str] = None,
    cwd: Optional[str] = None,
    labels: Optional[Mapping[str, str]] = None,
    needs: Optional[Sequence[str]] = None,
    image: Optional[str] = None,
    tmpfs: Optional[Sequence[str]] = None,
    cpus: Optional[Union[float, str]] = None,
    open_files: Optional[int] = None,
    allow: Optional[Sequence[str]] = None,
    deny: Optional[Sequence[str]] = None,
    expose: Optional[Sequence[int]] = None,
    secrets: Optional[Mapping[str, str]] = None,
    file_size: Optional[Size] = None,
    tmp_size: Optional[Size] = None,
) -> Outcome:
    """`run` for asyncio; cancelling the awaiting task kills the run."""
    return await _sandbox(policy).run_async(
        argv,
        isolation=isolation,
        workload=workload,
        stdin=stdin,
        timeout=timeout,
        memory=memory,
        mounts=mounts,
        env=env,
        cpu_time=cpu_time,
        pids=pids,
        output_limit=output_limit,
        network=network,
        cwd=cwd,
        labels=labels,
        needs=needs,
        image=image,
        tmpfs=tmpfs,
        cpus=cpus,
        open_files=open_files,
        allow=allow,
        deny=deny,
        expose=expose,
        secrets=secrets,
        file_size=file_size,
        tmp_size=tmp_size,
    )


def spawn(
    argv: Argv,
    *,
    policy: Optional[StrPath] = None,
    isolation: Optional[str] = None,
    workload: Optional[str] = None,
    stdin: Stdin = None,
    timeout: Optional[Seconds] = None,
    memory: Optional[Size] = None,
    mounts: Optional[Sequence[MountSpec]] = None,
    env: Optional[Mapping[str, str]] = None,
    cpu_time: Optional[Seconds] = None,
    pids: Optional[int] = None,
    output_limit: Optional[Size] = None,
    network: Optional[str] = None,
    cwd: Optional[str] = None,
    labels: Optional[Mapping[str, str]] = None,
    needs: Optional[Sequence[str]] = None,
    image: Optional[str] = None,
    tmpfs: Optional[Sequence[str]] = None,
    cpus: Optional[Union[float, str]] = None,
    open_files: Optional[int] = None,
    allow: Optional[Sequence[str]] = None,
    deny: Optional[Sequence[str]] = None,
    expose: Optional[Sequence[int]] = None,
    secrets: Optional[Mapping[str, str]] = None,
    file_size: Optional[Size] = None,
    tmp_size: Optional[Size] = None,
) -> Process:
    """Starts `argv` and returns its `Process`; see `Sandbox.spawn`."""
    return _sandbox(policy).spawn(
        argv,
        isolation=isolation,
        workload=workload,
        stdin=stdin,
        timeout=timeout,
        memory=memory,
        mounts=mounts,
        env=env,
        cpu_time=cpu_time,
        pids=pids,
        output_limit=output_limit,
        network=network,
        cwd=cwd,
        labels=labels,
        needs=needs,
        image=image,
        tmpfs=tmpfs,
        cpus=cpus,
        open_files=open_files,
        allow=allow,
        deny=deny,
        expose=expose,
        secrets=secrets,
        file_size=file_size,
        tmp_size=tmp_size,
    )
