"""The package as shipped: the stubs match the native module, the README runs."""

from __future__ import annotations

import ast
import inspect
import pathlib
import re

import hybrid_sandbox as hs
from hybrid_sandbox import _native

PKG = pathlib.Path(hs.__file__).parent
README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_typed_package() -> None:
    assert (PKG / "py.typed").exists()
    assert (PKG / "_native.pyi").exists()


def test_stubs_name_every_native_item() -> None:
    tree = ast.parse((PKG / "_native.pyi").read_text())
    stubbed = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            stubbed.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stubbed.add(node.target.id)
    native = {n for n in dir(_native) if not n.startswith("_")} | {"__version__"}
    aliases = {"Termination", "IsolationName"}
    assert native == stubbed - aliases
    for cls in ("Outcome", "Decision", "OutputEvent", "Process", "Sandbox"):
        node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
        members = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        runtime = {n for n in dir(getattr(_native, cls)) if not n.startswith("_")}
        assert runtime <= members, f"{cls}: {runtime - members} missing from the stubs"


def test_public_signature() -> None:
    params = inspect.signature(hs.run).parameters
    names = list(params)
    assert names[:9] == [
        "argv", "policy", "isolation", "workload", "stdin", "timeout", "memory", "mounts", "env",
    ]
    for name in names[1:]:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default is None
    assert set(hs.__all__) <= set(dir(hs))


def test_readme_example_runs(capsys: object) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "no Python example in the README"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
