#!/usr/bin/env python3
"""Writes the seed inputs of the image fuzz targets: layers for `layer_unpack`
(fuzz/seeds/layer_unpack/: plain and gzip tars of ordinary entries, whiteouts, and the
hostile entries the unpacker must refuse or neutralise) and `docker save` tarballs for
`image_import` (fuzz/seeds/image_import/: valid images with correct digests, so that
mutations reach the manifest, the config and the layers).

Run it from anywhere: `python3 fuzz/seeds/make_image_seeds.py`. The outputs are
committed; they are deterministic (fixed times, owners and gzip headers).
"""
import gzip
import hashlib
import io
import json
import os
import tarfile

tarfile.RECORDSIZE = tarfile.BLOCKSIZE  # no padding past the end-of-archive blocks
HERE = os.path.dirname(os.path.abspath(__file__))


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, link="", **kw):
    t = tarfile.TarInfo(name)
    t.type, t.mode, t.linkname, t.mtime = kind, mode, link, 1700000000
    t.uid = t.gid = 0
    t.uname = t.gname = "root"
    t.size = len(data) if kind == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(t, k, v)
    return t, data


def tar(entries, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for t, data in entries:
            tf.addfile(t, io.BytesIO(data) if t.isreg() else None)
    return buf.getvalue()


def gz(b):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
        g.write(b)
    return buf.getvalue()


ORDINARY = [
    entry("bin/", tarfile.DIRTYPE, mode=0o755),
    entry("bin/hello", data=b"#!/bin/sh\necho hello\n", mode=0o755),
    entry("bin/hi", tarfile.SYMTYPE, link="hello"),
    entry("bin/hard", tarfile.LNKTYPE, link="bin/hello"),
    entry("etc/", tarfile.DIRTYPE, mode=0o755),
    entry("etc/os-release", data=b"ID=fuzz\n"),
    entry("etc/.wh.gone"),
    entry("var/", tarfile.DIRTYPE, mode=0o755),
    entry("var/.wh..wh..opq"),
    entry("tmp/", tarfile.DIRTYPE, mode=0o1777),
    entry("usr/lib/deep/er/file", data=b"x" * 700),
    entry("a" * 120 + "/" + "b" * 120, data=b"long name"),
]

HOSTILE = [
    entry("../escape", data=b"out"),
    entry("/abs", data=b"abs"),
    entry("up", tarfile.SYMTYPE, link="/tmp"),
    entry("up/through", data=b"through a link"),
    entry("dotdot", tarfile.SYMTYPE, link="../../.."),
    entry("dotdot/x", data=b"x"),
    entry("hard-out", tarfile.LNKTYPE, link="../../etc/passwd"),
    entry("hard-abs", tarfile.LNKTYPE, link="/etc/passwd"),
    entry("dev-null", tarfile.CHRTYPE, devmajor=1, devminor=3),
    entry("fifo", tarfile.FIFOTYPE),
    entry("setuid", data=b"s", mode=0o4755),
    entry("dir-ro/", tarfile.DIRTYPE, mode=0o000),
    entry("dir-ro/inside", data=b"in a closed directory"),
    entry("same", data=b"first"),
    entry("same/", tarfile.DIRTYPE),
]


def write(sub, name, data):
    d = os.path.join(HERE, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def layers():
    ordinary = tar(ORDINARY)
    write("layer_unpack", "ordinary.tar", ordinary)
    write("layer_unpack", "ordinary.tar.gz", gz(ordinary))
    write("layer_unpack", "ordinary-pax.tar", tar(ORDINARY, tarfile.PAX_FORMAT))
    for i, e in enumerate(HOSTILE):
        write("layer_unpack", f"hostile-{i:02}.tar", tar([e] + ([HOSTILE[i + 1]] if i + 1 < len(HOSTILE) else [])))
    write("layer_unpack", "hostile-all.tar.gz", gz(tar(HOSTILE)))
    return ordinary


def sha(b):
    return hashlib.sha256(b).hexdigest()


def docker_save(layer_blobs, tag="fuzz:seed"):
    """A `docker save` tarball: manifest.json, the config named by its digest, layers."""
    diff_ids = []
    for blob in layer_blobs:
        raw = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        diff_ids.append("sha256:" + sha(raw))
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/hello"], "Cmd": ["x"], "Env": ["PATH=/bin"],
                   "WorkingDir": "/tmp", "User": "1000:1000"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, sort_keys=True).encode()
    cname = sha(config) + ".json"
    names = [f"{sha(b)}/layer.tar" for b in layer_blobs]
    manifest = json.dumps([{"Config": cname, "RepoTags": [tag], "Layers": names}]).encode()
    files = [entry("manifest.json", data=manifest), entry(cname, data=config)]
    for n, b in zip(names, layer_blobs):
        files.append(entry(n.split("/")[0] + "/", tarfile.DIRTYPE, mode=0o755))
        files.append(entry(n, data=b))
    return tar(files)


def images(ordinary):
    write("image_import", "one-layer.tar", docker_save([ordinary]))
    write("image_import", "gzip-layer.tar", docker_save([gz(ordinary)]))
    second = tar([entry("bin/.wh.hi"), entry("etc/motd", data=b"layer two\n")])
    write("image_import", "two-layers.tar", docker_save([ordinary, second]))
    write("image_import", "hostile-layer.tar", docker_save([tar(HOSTILE)]))
    write("image_import", "empty-layer.tar", docker_save([tar([])]))


if __name__ == "__main__":
    images(layers())
