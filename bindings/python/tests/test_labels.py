"""The embedded default policy honours trust labels, as `hsb` does: trust=untrusted and
any tenant label get the micro-VM (or, without KVM, BackendUnavailable with the reason);
unlabeled runs get the container."""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest

import hybrid_sandbox as hs

from conftest import require


def test_unlabeled_runs_in_the_container(sandbox: hs.Sandbox) -> None:
    out = sandbox.run(["true"])
    assert out.isolation == "container"
    assert out.decision.profile == "default"


@pytest.mark.parametrize("labels", [{"trust": "untrusted"}, {"tenant": "acme"}])
def test_labelled_runs_get_the_micro_vm(
    sandbox: hs.Sandbox, hsb_cli: pathlib.Path, labels: dict[str, str]
) -> None:
    flags = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    explained = json.loads(
        subprocess.run(
            [str(hsb_cli), "policy", "explain", *flags, "--json", "--", "true"],
            capture_output=True,
            check=False,
        ).stdout
    )
    try:
        out = sandbox.run(["/usr/bin/busybox", "true"], labels=labels)
    except hs.BackendUnavailable as e:
        assert "microvm isolation is not available" in str(e)
        assert e.exit_status == 125
        assert "microvm isolation is not available" in explained["refused"]
        require("KVM", str(e))
    else:
        assert out.isolation == "microvm"
        assert out.decision.profile == "labelled"
        assert explained["isolation"] == "microvm"
        assert explained["profile"] == "labelled"
    with pytest.raises(hs.PolicyError) as e:
        sandbox.run(["true"], labels=labels, isolation="container")
    assert "requires microvm" in str(e.value)
