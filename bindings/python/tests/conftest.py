"""Shared fixtures of the hybrid_sandbox tests."""

from __future__ import annotations

import os
import pathlib
import time

import pytest

import hybrid_sandbox as hs

REPO = pathlib.Path(__file__).resolve().parents[3]


def _target_dir() -> pathlib.Path:
    t = os.environ.get("CARGO_TARGET_DIR", "target")
    p = pathlib.Path(t)
    return p if p.is_absolute() else REPO / p


def require(feature: str, missing: str | None) -> None:
    """The feature rule: a test that needs what this host lacks (KVM, a root caller...)
    never skips silently. With `missing` None it returns; otherwise it fails under
    HSB_REQUIRE_FEATURES=1 (CI sets it; for KVM, HSB_REQUIRE_KVM=1 too), else skips
    with the reason."""
    if missing is None:
        return
    required = os.environ.get("HSB_REQUIRE_FEATURES") == "1" or (
        feature == "KVM" and os.environ.get("HSB_REQUIRE_KVM") == "1"
    )
    msg = f"needs {feature}: {missing}"
    if required:
        pytest.fail(f"{msg} (HSB_REQUIRE_FEATURES=1 requires it)")
    pytest.skip(msg)


def _tool(env_var: str, default: pathlib.Path, what: str) -> pathlib.Path:
    """A program the parity tests compare with; test.sh builds both and sets the
    variables (HSB_PARITY_REQUIRED=1 makes a missing one a failure, not a skip)."""
    path = pathlib.Path(os.environ.get(env_var, default))
    if not os.access(path, os.X_OK):
        msg = f"{what} not found at {path} (set {env_var}, or run bindings/python/test.sh)"
        if os.environ.get("HSB_PARITY_REQUIRED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def hsb_cli() -> pathlib.Path:
    return _tool("HSB_CLI", _target_dir() / "debug" / "hsb", "the hsb CLI")


@pytest.fixture(scope="session")
def hsb_c_json() -> pathlib.Path:
    return _tool("HSB_C_JSON", _target_dir() / "c-tests" / "hsb_json", "the C hsb_json program")


@pytest.fixture(scope="session")
def sandbox() -> hs.Sandbox:
    return hs.Sandbox()


@pytest.fixture
def shared_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A host directory the sandbox's user (an unprivileged host uid) may read and
    write."""
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o777)
    tmp_path.chmod(0o755)
    return d


def processes_with(arg: str) -> list[int]:
    """Host pids whose command line holds `arg` (to see that a run was really killed)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if arg.encode() in f.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:
            pass
    return pids


def wait_gone(arg: str, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not processes_with(arg):
            return True
        time.sleep(0.05)
    return False
