"""Warm templates from Python: `hs.run(template="py", stdin=code)` runs the default
policy's python3 template (a fork of its micro-VM snapshot), and `py-container` (a
pre-started container from its pool); two runs read different random values; a
template that ends before reading its stdin is an error naming it, with its stderr;
options that do not go with a template are refused."""

from __future__ import annotations

import pathlib

import pytest

import hybrid_sandbox as hs
from conftest import require


def _works(isolation: str) -> str | None:
    try:
        o = hs.run(["true"], isolation=isolation)
    except hs.SandboxError as e:
        return str(e)
    return None if o.exit_code == 0 else f"`true` did not run: {o}"


@pytest.mark.parametrize("name,isolation", [("py", "microvm"), ("py-container", "container")])
def test_template_runs_python(name: str, isolation: str) -> None:
    require(isolation, _works(isolation))
    out = hs.run(template=name, stdin="print(6*7)")
    assert out.stdout == b"42\n", out
    assert out.isolation == isolation
    assert f"template `{name}`" in out.decision.reasons[0]
    code = "import os, random\nprint(os.urandom(8).hex(), random.random())"
    a = hs.run(template=name, stdin=code).stdout.split()
    b = hs.run(template=name, stdin=code).stdout.split()
    assert a[0] != b[0] and a[1] != b[1], (a, b)
    t = hs.run(template=name, stdin="import time\ntime.sleep(30)", timeout=0.3)
    assert t.termination == "timeout", t


_EARLY = """
[[defaults.mounts]]
source = "/usr"
optional = true
[[defaults.mounts]]
source = "/bin"
optional = true
[[defaults.mounts]]
source = "/lib"
optional = true
[[defaults.mounts]]
source = "/lib64"
optional = true

[templates.early]
isolation = "microvm"
argv = ["python3", "-c", "import sys; sys.stderr.write('no stdin for me'); sys.exit(3)"]
"""


def test_template_errors(tmp_path: pathlib.Path) -> None:
    require("microvm", _works("microvm"))
    policy = tmp_path / "early.toml"
    policy.write_text(_EARLY)
    sb = hs.Sandbox(str(policy))
    with pytest.raises(hs.SandboxError) as e:
        sb.run(template="early", stdin="")
    assert "template `early`" in str(e.value) and "no stdin for me" in str(e.value), e.value
    with pytest.raises(TypeError):
        hs.run(["python3"], template="py")
    with pytest.raises(TypeError):
        hs.run(template="py", env={"A": "B"})
    with pytest.raises(hs.SandboxError) as e2:
        hs.run(template="nope", stdin="")
    assert "no template `nope`" in str(e2.value)
