#!/usr/bin/env python3
"""A server of the egress tests' small internet: static files (a package index, a git
repository over the dumb HTTP protocol), `/echo` (the request head, as the server saw
it), over HTTP or HTTPS. Every request's line and headers go to a log file, so a test
can check what a server received (a secret, or its placeholder).

    server.py --bind ADDR --port PORT --root DIR --log FILE [--cert PEM --key PEM]
    server.py --make-wheel DIR NAME VERSION   # a real (pure-Python) wheel, by hand
"""
import argparse
import base64
import hashlib
import http.server
import os
import ssl
import sys
import threading
import zipfile


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log_lock = threading.Lock()

    def log_request_head(self):
        with self.log_lock, open(self.server.log_path, "a") as f:
            f.write(f"{self.requestline}\n")
            for k, v in self.headers.items():
                f.write(f"{k}: {v}\n")
            f.write("\n")

    def do_GET(self):
        self.log_request_head()
        if self.path.startswith("/echo"):
            body = (self.requestline + "\n" + str(self.headers)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def do_POST(self):
        self.log_request_head()
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def make_wheel(out_dir, name, version):
    """A wheel holding one module `NAME` whose VALUE is 'NAME VERSION'."""
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": f"VALUE = '{name} {version}'\n".encode(),
        f"{dist}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: hybrid-sandbox egress test package\n"
        ).encode(),
        f"{dist}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: hsb-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ).encode(),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(out_dir, wheel), "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(path, data)
    sha = hashlib.sha256(open(os.path.join(out_dir, wheel), "rb").read()).hexdigest()
    return wheel, sha


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind")
    ap.add_argument("--port", type=int)
    ap.add_argument("--root")
    ap.add_argument("--log")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--make-wheel", nargs=3, metavar=("DIR", "NAME", "VERSION"))
    a = ap.parse_args()
    if a.make_wheel:
        wheel, sha = make_wheel(*a.make_wheel)
        print(f"{wheel} {sha}")
        return
    os.chdir(a.root)
    srv = http.server.ThreadingHTTPServer((a.bind, a.port), Handler)
    srv.daemon_threads = True
    srv.log_path = a.log
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(f"ready {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
