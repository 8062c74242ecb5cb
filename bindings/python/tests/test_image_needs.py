"""`image=` and `needs=`: a run on an OCI image built here from Debian's static busybox,
in both backends; needs steering `auto`; their errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pathlib
import tarfile
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

import hybrid_sandbox as hs

from conftest import require

BUSYBOX = pathlib.Path("/bin/busybox")


def _blob(blobs: pathlib.Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add(name: str, kind: bytes, data: bytes = b"", mode: int = 0o755, link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = mode
            info.size = len(data)
            info.linkname = link
            tar.addfile(info, io.BytesIO(data) if data else None)

        for d in ("bin", "etc", "data"):
            add(d, tarfile.DIRTYPE)
        add("bin/busybox", tarfile.REGTYPE, BUSYBOX.read_bytes())
        for applet in ("sh", "cat", "echo", "pwd", "env"):
            add(f"bin/{applet}", tarfile.SYMTYPE, link="busybox", mode=0o777)
        add("etc/greeting", tarfile.REGTYPE, b"hello from the image\n", mode=0o644)
    return buf.getvalue()


@pytest.fixture
def oci_layout(tmp_path: pathlib.Path) -> pathlib.Path:
    """An OCI image layout: one gzip layer, a config with Env, Cmd and WorkingDir."""
    if not BUSYBOX.exists():
        pytest.fail("busybox-static must be installed (scripts/install-deps.sh)")
    root = tmp_path / "layout"
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer = _layer()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin", "IMAGE_VAR=from-image"],
            "Cmd": ["/bin/sh", "-c", "cat /etc/greeting"],
            "WorkingDir": "/data",
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **_blob(blobs, json.dumps(config).encode()),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                **_blob(blobs, gzip.compress(layer)),
            }
        ],
    }
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **_blob(blobs, json.dumps(manifest).encode()),
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return root


@pytest.fixture
def store_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[hs.Sandbox]:
    """A sandbox whose image store is a temporary directory (not the user's). The
    sandbox's user (uid 65534 when the tests run as root) must be able to traverse the
    store to mount its layers, so it is not under pytest's private tmp_path."""
    with tempfile.TemporaryDirectory(prefix="hsb-image-store-") as d:
        os.chmod(d, 0o755)
        monkeypatch.setenv("HSB_IMAGE_STORE", str(pathlib.Path(d) / "store"))
        yield hs.Sandbox()


@pytest.mark.parametrize("isolation", ["container", "microvm"])
def test_run_on_an_image(store_sandbox: hs.Sandbox, oci_layout: pathlib.Path, isolation: str) -> None:
    argv = ["sh", "-c", 'cat /etc/greeting; echo "$IMAGE_VAR $(pwd)"; echo x > /etc/greeting']
    try:
        out = store_sandbox.run(argv, image=str(oci_layout), isolation=isolation)
    except hs.BackendUnavailable as e:
        assert isolation == "microvm", e
        require("KVM", str(e))
        raise
    assert out.isolation == isolation
    assert out.success, out.stderr
    assert out.stdout == b"hello from the image\nfrom-image /data\n"
    # Writes land in a throwaway upper layer: the next run sees the image as it was.
    again = store_sandbox.run(["cat", "/etc/greeting"], image=str(oci_layout), isolation=isolation)
    assert again.stdout == b"hello from the image\n"


def test_missing_image(store_sandbox: hs.Sandbox) -> None:
    with pytest.raises(hs.ImageError) as e:
        store_sandbox.run(["true"], image="no-such-image:1")
    assert isinstance(e.value, hs.SandboxError)
    assert e.value.kind == "image"
    assert e.value.exit_status == 125
    assert "no-such-image:1" in str(e.value)


def test_needs_steer_auto(sandbox: hs.Sandbox) -> None:
    out = sandbox.run(
        ["echo", "ok"], isolation="auto", needs=["network", "network"], labels={"trust": "trusted"}
    )
    assert out.isolation == "container"
    assert out.stdout == b"ok\n"
    with pytest.raises(hs.BackendUnavailable) as e:
        sandbox.run(["true"], isolation="auto", needs=["full_linux"], labels={"trust": "untrusted"})
    assert "needs full_linux" in str(e.value)


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"needs": "network"}, TypeError, "needs must be a list"),
        ({"needs": 3}, TypeError, "needs must be a list"),
        ({"needs": ["gpu"]}, ValueError, "unknown need `gpu`"),
        ({"needs": [7]}, TypeError, "needs"),
        ({"image": ""}, ValueError, "image must not be empty"),
        ({"image": 3}, TypeError, "image"),
    ],
)
def test_bad_needs_and_image(sandbox: hs.Sandbox, kwargs: dict[str, Any], exc: type, words: str) -> None:
    with pytest.raises(exc) as e:
        sandbox.run(["true"], **kwargs)
    assert words in str(e.value), str(e.value)
