"""The options a run and a live sandbox take beyond the basics: tmpfs, cpus, and the
egress network (allow/deny rules, exposed ports, secrets), from Python, against a small
internet on this machine (HTTP servers on loopback addresses named by the policy)."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import hybrid_sandbox as hs
from conftest import REPO

DEFAULT = (REPO / "sandbox-core/src/policy/default.toml").read_text()


class _Site:
    """An HTTP server on `ip` that answers `body` and remembers each request's headers."""

    def __init__(self, ip: str, body: bytes) -> None:
        seen: list[dict[str, str]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                seen.append(dict(self.headers.items()))
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.seen = seen
        self.httpd = http.server.ThreadingHTTPServer((ip, 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[_Site, _Site]]:
    web, other = _Site("127.0.0.61", b"hello from web.test\n"), _Site("127.0.0.62", b"other\n")
    yield web, other
    web.close()
    other.close()


@pytest.fixture(scope="module")
def net() -> hs.Sandbox:
    return hs.Sandbox.from_toml(
        DEFAULT
        + '\n[profiles.net.network]\nmode = "egress"\n'
        + 'hosts = { "web.test" = "127.0.0.61", "other.test" = "127.0.0.62" }\n',
        origin="network test policy",
    )


def _sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def test_tmpfs_and_cpus_in_a_run() -> None:
    out = hs.run(
        _sh("stat -c %a /scratch; dd if=/dev/zero of=/scratch/f bs=4096 count=512 2>/dev/null; echo dd=$?"),
        isolation="container",
        tmpfs=["/scratch:size=1MiB,mode=700"],
        cpus=0.5,
    )
    assert out.stdout.startswith(b"700\n") and b"dd=1" in out.stdout, out
    assert "cpus" in out.enforcement["limits"]["details"], out.enforcement["limits"]
    out = hs.run(["true"], isolation="container", cpus="250m", open_files=64, file_size="1MiB")
    assert out.success, out


def test_allow_rules_decide_and_are_reported(net: hs.Sandbox, sites: tuple[_Site, _Site]) -> None:
    web, other = sites
    out = net.run(
        _sh(
            f"curl -sS --noproxy '*' -m 10 http://web.test:{web.port}/; "
            f"curl -sS --noproxy '*' -m 5 http://other.test:{other.port}/ && echo OTHER-REACHED; exit 0"
        ),
        workload="net",
        isolation="container",
        allow=["web.test"],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    assert b"hello from web.test" in out.stdout, out
    assert b"OTHER-REACHED" not in out.stdout, out
    n = out.network
    assert n is not None and n["mode"] == "egress", n
    assert any(c.get("name") == "web.test" and c["verdict"] == "allowed" for c in n["connections"]), n
    assert any(d.get("name") == "other.test" and d["verdict"] == "denied" for d in n["dns"]), n
    # Deny wins: the same rule set with web.test denied reaches nothing.
    out = net.run(
        _sh(f"curl -sS --noproxy '*' -m 5 http://web.test:{web.port}/ && echo WEB-REACHED; exit 0"),
        workload="net",
        isolation="container",
        deny=["web.test"],
        env={"PATH": "/usr/bin:/bin"},
    )
    assert b"WEB-REACHED" not in out.stdout, out
    assert any("web.test" in d["rule"] for d in out.network["dns"] if d.get("name") == "web.test"), out.network


def test_a_secret_reaches_only_its_host(
    net: hs.Sandbox, sites: tuple[_Site, _Site], monkeypatch: pytest.MonkeyPatch
) -> None:
    web, other = sites
    monkeypatch.setenv("HSB_TEST_PY_TOKEN", "s3cr3t-value-42")
    out = net.run(
        _sh(
            'echo "inside=$TOKEN"; '
            f"curl -sS --noproxy '*' -m 10 -H \"X-Token: $TOKEN\" http://web.test:{web.port}/ >/dev/null; "
            f"curl -sS --noproxy '*' -m 10 -H \"X-Token: $TOKEN\" http://other.test:{other.port}/ >/dev/null; exit 0"
        ),
        workload="net",
        isolation="container",
        allow=["web.test", "other.test"],
        secrets={"TOKEN": "HSB_TEST_PY_TOKEN@web.test"},
        env={"PATH": "/usr/bin:/bin"},
    )
    assert b"s3cr3t-value-42" not in out.stdout + out.stderr, out
    assert b"inside=" in out.stdout, out
    assert "s3cr3t-value-42" not in out.to_json()
    assert any(h.get("X-Token") == "s3cr3t-value-42" for h in web.seen), web.seen
    assert other.seen and all(h.get("X-Token") != "s3cr3t-value-42" for h in other.seen), other.seen


def _fetch(host: str, deadline: float) -> bytes:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}/index.html", timeout=5) as r:
                return bytes(r.read())
        except OSError as e:
            last = e
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {host}: {last}")


SERVE = (
    "mkdir -p /tmp/www && echo served-by-the-sandbox > /tmp/www/index.html && "
    "cd /tmp/www && exec python3 -m http.server 8000 --bind 0.0.0.0"
)


def test_an_exposed_port_of_a_spawned_run(net: hs.Sandbox) -> None:
    with net.spawn(_sh(SERVE), workload="net", isolation="container", expose=[8000]) as p:
        ports = p.exposed_ports
        assert list(ports) == [8000], ports
        assert ports[8000].startswith("127.0.0.1:"), ports
        assert b"served-by-the-sandbox" in _fetch(ports[8000], time.monotonic() + 30)
        p.kill()
        out = p.wait()
    assert out.network["exposed"][0]["sandbox_port"] == 8000, out.network


def test_a_live_sandbox_shows_its_network(net: hs.Sandbox, sites: tuple[_Site, _Site]) -> None:
    web, _ = sites
    with net.create(workload="net", isolation="container", allow=["web.test"], expose=[8000]) as sb:
        host = sb.exposed_ports[8000]
        sb.exec(_sh(SERVE.replace("exec python3", "(python3") + " >/dev/null 2>&1 &)"))
        assert b"served-by-the-sandbox" in _fetch(host, time.monotonic() + 30)
        o = sb.exec(["curl", "-sS", "--noproxy", "*", "-m", "10", f"http://web.test:{web.port}/"])
        assert b"hello from web.test" in o.stdout, o
        n = sb.network
        assert n is not None and n["exposed"][0]["host"] == host, n
        assert any(c.get("name") == "web.test" for c in n["connections"]), n
    plain = hs.Sandbox().create(isolation="container")
    try:
        assert plain.network is None and plain.exposed_ports == {}
    finally:
        plain.close()

