"""Type stubs of the native module `hybrid_sandbox._native` (written in Rust)."""

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Awaitable, Final, Literal, Optional

__version__: Final[str]
PIPE: Final[int]

Termination = Literal[
    "exited",
    "signaled",
    "timeout",
    "memory_limit",
    "cpu_limit",
    "pids_limit",
    "output_limit",
    "policy_violation",
    "killed",
]
IsolationName = Literal["container", "microvm"]

class SandboxError(Exception):
    """Base of every error of hybrid_sandbox."""

    kind: str
    """`policy`, `unavailable`, `program_not_found`, `not_executable`, `mount`, `image`,
    `setup`, `unsupported`, `run` or `runtime`."""
    exit_status: int
    """What `hsb run` would exit with: 127 not found, 126 not executable, else 125."""

class PolicyError(SandboxError):
    """The policy could not be loaded, or rejects the run's options."""

class BackendUnavailable(SandboxError):
    """The isolation chosen cannot be used on this host; the message says why."""

class ProgramNotFound(SandboxError):
    """The program does not exist inside the sandbox."""

class NotExecutable(SandboxError):
    """The program exists in the sandbox but cannot be executed."""

class MountError(SandboxError):
    """A mount could not be prepared."""

class ImageError(SandboxError):
    """The image could not be found, imported or used (a digest that does not match, a
    hostile layer, a user the image does not have)."""

class SetupError(SandboxError):
    """The sandbox could not be set up, or the backend cannot do what is asked."""

class RunError(SandboxError):
    """The sandbox started, but its outcome could not be collected."""

class Decision:
    """Which backend ran the workload, and why."""

    @property
    def isolation(self) -> IsolationName: ...
    @property
    def requested(self) -> Literal["container", "microvm", "auto"]: ...
    @property
    def profile(self) -> str: ...
    @property
    def reasons(self) -> list[str]: ...
    @property
    def fallback_from(self) -> Optional[dict[str, str]]: ...
    def to_dict(self) -> dict[str, Any]: ...
    def __eq__(self, other: object) -> bool: ...

class Outcome:
    """Everything about a finished run."""

    @property
    def isolation(self) -> IsolationName: ...
    @property
    def termination(self) -> Termination: ...
    @property
    def exit_code(self) -> Optional[int]: ...
    @property
    def signal(self) -> Optional[int]: ...
    @property
    def stdout(self) -> bytes: ...
    @property
    def stderr(self) -> bytes: ...
    @property
    def wall_time(self) -> float:
        """Seconds."""
    @property
    def cpu_time(self) -> float:
        """Seconds."""
    @property
    def peak_memory(self) -> int:
        """Bytes; 0 when unknown."""
    @property
    def decision(self) -> Decision: ...
    @property
    def enforcement(self) -> dict[str, Any]:
        """Which protections were really in force."""
    @property
    def unimplemented_syscalls(self) -> dict[str, int]: ...
    @property
    def success(self) -> bool: ...
    @property
    def shell_status(self) -> int: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...

class OutputEvent:
    """A chunk of output, as it arrives while the workload runs."""

    @property
    def stream(self) -> Literal["stdout", "stderr"]: ...
    @property
    def data(self) -> bytes: ...

class Process(Iterator[OutputEvent], AsyncIterator[OutputEvent]):
    """A started workload."""

    @property
    def isolation(self) -> IsolationName: ...
    @property
    def done(self) -> bool: ...
    def __iter__(self) -> Process: ...
    def __next__(self) -> OutputEvent: ...
    def __aiter__(self) -> Process: ...
    def __anext__(self) -> Awaitable[OutputEvent]: ...
    def write(self, data: bytes | str) -> None: ...
    def close_stdin(self) -> None: ...
    def kill(self) -> None: ...
    def wait(self, timeout: float | str | None = None) -> Outcome: ...
    def wait_async(self) -> Awaitable[Outcome]: ...
    def __enter__(self) -> Process: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Sandbox:
    """The native sandbox; use `hybrid_sandbox.Sandbox`."""

    def __init__(
        self, policy: Optional[str] = None, *, toml: Optional[str] = None, origin: Optional[str] = None
    ) -> None: ...
    @property
    def policy_origin(self) -> str: ...
    @property
    def profiles(self) -> list[str]: ...
    def run(self, argv: Sequence[Any], options: Optional[Mapping[str, Any]] = None) -> Outcome: ...
    def run_async(
        self, argv: Sequence[Any], options: Optional[Mapping[str, Any]] = None
    ) -> Awaitable[Outcome]: ...
    def spawn(self, argv: Sequence[Any], options: Optional[Mapping[str, Any]] = None) -> Process: ...
