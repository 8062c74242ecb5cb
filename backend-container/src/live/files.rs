//! File operations on a live container, host side. Every path is resolved by the
//! sandbox's file server (`fileserver.rs`), inside the sandbox and under its
//! confinement; what comes back is a result, or a descriptor wrapped in [`SandboxFd`],
//! on which host code only reads, writes, truncates or fstats. Nothing here ever
//! resolves a path relative to such a descriptor, so a symlink (or `..`, or a magic
//! link) planted by the workload cannot lead host code out of the sandbox.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use sandbox_core::live::ByteStream;
use sandbox_core::{FileData, FileKind, FileStat, LiveError, MountMode};
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncReadExt;

use super::life::Shared;
use super::sock;
use super::wire::{self, FsReply, Msg};

/// A descriptor the sandbox opened inside itself and passed out: a regular file. It
/// offers I/O and nothing else — deliberately no `AsFd`/`AsRawFd` — so host code cannot
/// resolve a path relative to it.
#[derive(Debug)]
pub(crate) struct SandboxFd(std::fs::File);

impl SandboxFd {
    fn new(fd: OwnedFd) -> SandboxFd {
        SandboxFd(std::fs::File::from(fd))
    }

    /// The whole file, as a stream.
    fn into_stream(self) -> ByteStream {
        Box::pin(tokio::fs::File::from_std(self.0))
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all(data)
    }

    fn truncate(&self) {
        let _ = self.0.set_len(0);
    }
}

/// The master of a terminal opened inside the sandbox (its own devpts). Reads, writes
/// and window-size changes only.
#[derive(Debug)]
pub(crate) struct PtyMaster(AsyncFd<OwnedFd>);

impl PtyMaster {
    pub(crate) fn new(fd: OwnedFd) -> std::io::Result<PtyMaster> {
        // SAFETY: F_GETFL on a descriptor we own.
        let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        // SAFETY: F_SETFL on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) };
        // SAFETY: an OwnedFd owns its descriptor and returns the same one for its life.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(PtyMaster(fd))
    }

    fn raw_read(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: read writes at most buf.len() bytes into `buf`.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        // EIO: every slave descriptor is closed (the terminal's end).
        if e.raw_os_error() == Some(libc::EIO) {
            return Ok(0);
        }
        Err(e)
    }

    pub(crate) async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut g = self.0.readable().await?;
            match g.try_io(|fd| Self::raw_read(fd.get_ref(), buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// What can be read now, without waiting.
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        Self::raw_read(self.0.get_ref(), buf)
    }

    pub(crate) async fn write_all(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let mut g = self.0.writable().await?;
            let r = g.try_io(|fd| {
                // SAFETY: write reads data.len() bytes from `data`.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// The end of the host's input, typed as a user would: the terminal's end-of-file
    /// character (^D), twice when `last` (the last byte sent) left a line unfinished
    /// in canonical mode (the first ^D hands over the line, the second reads as end of
    /// file). A program that switched the terminal to raw mode reads one ^D byte.
    pub(crate) async fn end_of_input(&self, last: Option<u8>) -> std::io::Result<()> {
        use nix::sys::termios::{tcgetattr, InputFlags, LocalFlags, SpecialCharacterIndices};
        // On Linux the master answers with the terminal's (the slave's) settings.
        let t = tcgetattr(self.0.get_ref())?;
        let cc = |i: SpecialCharacterIndices| t.control_chars[i as usize];
        let eof = cc(SpecialCharacterIndices::VEOF);
        let canonical = t.local_flags.contains(LocalFlags::ICANON);
        // What ends a line: newline, EOF, EOL and EOL2 when set, a return read as one.
        let cr_ends =
            t.input_flags.contains(InputFlags::ICRNL) && !t.input_flags.contains(InputFlags::IGNCR);
        let ends_line = |c: u8| {
            c == b'\n'
                || c == eof
                || (cr_ends && c == b'\r')
                || (c != 0
                    && (c == cc(SpecialCharacterIndices::VEOL)
                        || c == cc(SpecialCharacterIndices::VEOL2)))
        };
        let unfinished = canonical && last.is_some_and(|c| !ends_line(c));
        let seq = if unfinished {
            vec![eof, eof]
        } else {
            vec![eof]
        };
        self.write_all(&seq).await
    }

    pub(crate) fn resize(&self, size: sandbox_core::TtySize) -> std::io::Result<()> {
        let ws = libc::winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from a live stack value.
        if unsafe { libc::ioctl(self.0.get_ref().as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Checks a sandbox path: absolute, no NUL, at most 4096 bytes.
pub(crate) fn validate(path: &str) -> Result<(), LiveError> {
    let bad = |reason: &str| {
        Err(LiveError::InvalidPath {
            path: path.into(),
            reason: reason.into(),
        })
    };
    if !path.starts_with('/') {
        return bad("sandbox paths are absolute");
    }
    if path.contains('\0') {
        return bad("it contains a NUL byte");
    }
    if path.len() > 4096 {
        return bad("it is longer than 4096 bytes");
    }
    Ok(())
}

/// A reply, the bytes after it, and a descriptor.
type Reply = (FsReply, Vec<u8>, Option<OwnedFd>);

fn failed(e: std::io::Error) -> LiveError {
    LiveError::Failed("talking to the sandbox's file server".into(), e)
}

fn owned(fd: i32) -> OwnedFd {
    // SAFETY: a descriptor just received or created, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// One round trip to the file server (started on first use). Blocking.
fn round_trip(
    s: &Shared,
    op: u32,
    flags: u32,
    mode: u32,
    p1: &str,
    p2: &str,
    fds: &[i32],
) -> Result<Reply, LiveError> {
    let mut req = Vec::with_capacity(16 + p1.len() + p2.len() + 2);
    req.extend_from_slice(&op.to_le_bytes());
    req.extend_from_slice(&flags.to_le_bytes());
    req.extend_from_slice(&mode.to_le_bytes());
    req.extend_from_slice(&0u32.to_le_bytes());
    for p in [p1, p2] {
        req.extend_from_slice(p.as_bytes());
        req.push(0);
    }
    let mut slot = s.files.lock().unwrap_or_else(|e| e.into_inner());
    for attempt in 0..2 {
        if slot.is_none() {
            let (host, server) =
                sock::seqpacket_pair().map_err(|e| failed(std::io::Error::from_raw_os_error(e)))?;
            let (host, server) = (owned(host), owned(server));
            s.send(
                Msg {
                    kind: wire::MSG_FILES,
                    ..Default::default()
                },
                &[server.as_raw_fd()],
            )
            .map_err(failed)?;
            *slot = Some(host);
        }
        let Some(conn) = slot.as_ref() else { continue };
        let sent = sock::send(conn.as_raw_fd(), &req, fds);
        let mut buf = vec![0u8; FsReply::MAX];
        let mut got = [-1; sock::MAX_FDS];
        let r = sent.and_then(|_| sock::recv(conn.as_raw_fd(), &mut buf, &mut got, 0));
        match r {
            Ok((n, nfds)) if n >= FsReply::SIZE => {
                let mut rest = got[..nfds].iter().map(|&f| owned(f));
                let fd = rest.next();
                let reply = FsReply::from_bytes(&buf).unwrap_or_default();
                return Ok((reply, buf[FsReply::SIZE..n].to_vec(), fd));
            }
            Ok((n, _)) if n == crate::child::ErrorRecord::SIZE => {
                *slot = None;
                let rec = crate::child::ErrorRecord::from_bytes(
                    buf[..n]
                        .try_into()
                        .unwrap_or(&[0; crate::child::ErrorRecord::SIZE]),
                );
                return Err(LiveError::Failed(
                    format!(
                        "starting the file server (step {:?})",
                        crate::child::Stage::from_u32(rec.stage)
                    ),
                    std::io::Error::from_raw_os_error(rec.errno),
                ));
            }
            // The server is gone (it died, or the sandbox is going away): once more.
            _ if attempt == 0 => *slot = None,
            Ok(_) => return Err(failed(std::io::Error::other("a truncated reply"))),
            Err(e) => return Err(failed(std::io::Error::from_raw_os_error(e))),
        }
    }
    Err(failed(std::io::Error::other("the file server is gone")))
}

async fn call(
    s: &Arc<Shared>,
    op: u32,
    flags: u32,
    mode: u32,
    p1: &str,
    p2: &str,
    fds: Vec<OwnedFd>,
) -> Result<Reply, LiveError> {
    let (s, p1, p2) = (s.clone(), p1.to_string(), p2.to_string());
    tokio::task::spawn_blocking(move || {
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        round_trip(&s, op, flags, mode, &p1, &p2, &raw)
    })
    .await
    .map_err(|e| failed(std::io::Error::other(e)))?
}

/// The error of a failed file operation, in the workload's terms.
fn file_error(operation: &'static str, path: &str, errno: i32) -> LiveError {
    match errno {
        libc::ENXIO => LiveError::File {
            operation,
            path: path.into(),
            errno: libc::EINVAL,
            reason: "not a regular file (FIFOs, sockets and devices are refused)".into(),
        },
        libc::ESTALE => LiveError::File {
            operation,
            path: path.into(),
            errno,
            reason: "the file changed while it was opened; try again".into(),
        },
        e => LiveError::file(operation, path, e),
    }
}

fn check(operation: &'static str, path: &str, r: Reply) -> Result<Reply, LiveError> {
    if r.0.errno != 0 {
        return Err(file_error(operation, path, r.0.errno));
    }
    Ok(r)
}

pub(crate) async fn simple(
    s: &Arc<Shared>,
    op: u32,
    operation: &'static str,
    path: &str,
    path2: &str,
    deep: bool,
    mode: u32,
) -> Result<(), LiveError> {
    validate(path)?;
    let flags = if deep { wire::FS_FLAG_DEEP } else { 0 };
    let r = call(s, op, flags, mode, path, path2, Vec::new()).await?;
    check(operation, path, r).map(|_| ())
}

fn kind(mode: u32) -> FileKind {
    match mode & libc::S_IFMT {
        libc::S_IFREG => FileKind::File,
        libc::S_IFDIR => FileKind::Dir,
        libc::S_IFLNK => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

fn file_stat(name: String, r: &FsReply, link: Option<&[u8]>) -> FileStat {
    FileStat {
        name,
        kind: kind(r.mode),
        size: r.size,
        mode: r.mode & 0o7777,
        mtime: r.mtime,
        link_target: link
            .filter(|_| kind(r.mode) == FileKind::Symlink)
            .map(|l| String::from_utf8_lossy(l).into_owned()),
    }
}

fn last_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into())
}

pub(crate) async fn stat(s: &Arc<Shared>, path: &str) -> Result<FileStat, LiveError> {
    validate(path)?;
    let r = check(
        "stat",
        path,
        call(s, wire::FS_STAT, 0, 0, path, "", Vec::new()).await?,
    )?;
    Ok(file_stat(last_name(path), &r.0, Some(&r.1)))
}

pub(crate) async fn read_file(s: &Arc<Shared>, path: &str) -> Result<ByteStream, LiveError> {
    validate(path)?;
    let r = check(
        "read",
        path,
        call(s, wire::FS_OPEN_READ, 0, 0, path, "", Vec::new()).await?,
    )?;
    let fd =
        r.2.ok_or_else(|| failed(std::io::Error::other("no descriptor in the reply")))?;
    Ok(SandboxFd::new(fd).into_stream())
}

/// Which of the sandbox's size limits a full filesystem at `path` is: its /tmp, or an
/// image root's writable layer (both tmpfs sized by `tmp_size`); `None` on a read-write
/// host mount (the host's disk is full).
fn space_limit(s: &Shared, path: &str) -> Option<&'static str> {
    let p = Path::new(path);
    let in_rw_mount = s
        .plan
        .mounts
        .iter()
        .any(|m| m.mode == MountMode::Rw && p.starts_with(&m.target));
    if in_rw_mount {
        return None;
    }
    (p.starts_with("/tmp") || s.plan.root.is_some()).then_some("tmp_size")
}

fn limit_value(s: &Shared, limit: &str) -> String {
    let l = &s.plan.limits;
    let v = match limit {
        "file_size" => l.file_size,
        _ => l.tmp_size.or(l.memory),
    };
    v.map_or_else(|| "256MiB".into(), |b| b.to_string())
}

pub(crate) async fn write_file(
    s: &Arc<Shared>,
    path: &str,
    data: FileData,
    mode: u32,
) -> Result<u64, LiveError> {
    validate(path)?;
    let r = check(
        "write",
        path,
        call(
            s,
            wire::FS_OPEN_WRITE,
            0,
            mode & 0o777,
            path,
            "",
            Vec::new(),
        )
        .await?,
    )?;
    let fd =
        r.2.ok_or_else(|| failed(std::io::Error::other("no descriptor in the reply")))?;
    let mut file = SandboxFd::new(fd);
    let max = s.plan.limits.file_size.map(|b| b.0);
    let over = |s: &Shared, what: &'static str, written: u64| LiveError::Limit {
        limit: what,
        value: limit_value(s, what),
        message: format!("writing {path} ({written} bytes or more); the file was emptied"),
    };
    let mut written = 0u64;
    let mut stream = match data {
        FileData::Bytes(b) => {
            if max.is_some_and(|m| b.len() as u64 > m) {
                file.truncate();
                return Err(over(s, "file_size", b.len() as u64));
            }
            let len = b.len() as u64;
            let (res, f) = tokio::task::spawn_blocking(move || (file.write_all(&b), file))
                .await
                .map_err(|e| failed(std::io::Error::other(e)))?;
            file = f;
            written = len;
            if let Err(e) = res {
                return Err(write_error(s, path, &file, e, written, &over));
            }
            return Ok(written);
        }
        FileData::Stream(st) => st,
    };
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| LiveError::Failed(format!("reading the data for {path}"), e))?;
        if n == 0 {
            return Ok(written);
        }
        written += n as u64;
        if max.is_some_and(|m| written > m) {
            file.truncate();
            return Err(over(s, "file_size", written));
        }
        let chunk = buf[..n].to_vec();
        let (res, f) = tokio::task::spawn_blocking(move || (file.write_all(&chunk), file))
            .await
            .map_err(|e| failed(std::io::Error::other(e)))?;
        file = f;
        if let Err(e) = res {
            return Err(write_error(s, path, &file, e, written, &over));
        }
    }
}

fn write_error(
    s: &Shared,
    path: &str,
    file: &SandboxFd,
    e: std::io::Error,
    written: u64,
    over: &dyn Fn(&Shared, &'static str, u64) -> LiveError,
) -> LiveError {
    match (e.raw_os_error(), space_limit(s, path)) {
        (Some(libc::ENOSPC), Some(limit)) => {
            file.truncate();
            over(s, limit, written)
        }
        (Some(errno), _) => file_error("write", path, errno),
        (None, _) => LiveError::Failed(format!("writing {path}"), e),
    }
}

pub(crate) async fn list_dir(s: &Arc<Shared>, path: &str) -> Result<Vec<FileStat>, LiveError> {
    validate(path)?;
    // SAFETY: memfd_create with a NUL-terminated name returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"hsb-list".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(failed(std::io::Error::last_os_error()));
    }
    let memfd = owned(fd);
    let mine = memfd.try_clone().map_err(failed)?;
    let r = check(
        "list",
        path,
        call(s, wire::FS_LIST, 0, 0, path, "", vec![memfd]).await?,
    )?;
    let count = r.0.extra;
    let mut data = Vec::new();
    let mut f = std::fs::File::from(mine);
    std::io::Seek::rewind(&mut f).map_err(failed)?;
    f.read_to_end(&mut data).map_err(failed)?;
    let mut out = Vec::new();
    let mut at = 0;
    while out.len() < count as usize && at + wire::ENTRY_HEAD <= data.len() {
        let h = &data[at..at + wire::ENTRY_HEAD];
        let name_len = u16::from_le_bytes([h[0], h[1]]) as usize;
        let link_len = u16::from_le_bytes([h[2], h[3]]) as usize;
        let reply = FsReply {
            errno: 0,
            mode: wire::u32_at(h, 4),
            size: wire::u64_at(h, 8),
            mtime: wire::u64_at(h, 16) as i64,
            extra: 0,
        };
        at += wire::ENTRY_HEAD;
        if at + name_len + link_len > data.len() {
            break;
        }
        let name = String::from_utf8_lossy(&data[at..at + name_len]).into_owned();
        let link = &data[at + name_len..at + name_len + link_len];
        at += name_len + link_len;
        out.push(file_stat(name, &reply, Some(link)));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Bytes used in the sandbox's writable tmpfs filesystems (/tmp, an image's layer).
pub(crate) async fn disk_used(s: &Arc<Shared>) -> Result<u64, LiveError> {
    let mut total = 0;
    let mut paths = vec!["/tmp"];
    if s.plan.root.is_some() {
        paths.push("/");
    }
    for p in paths {
        let r = check(
            "statfs",
            p,
            call(s, wire::FS_STATFS, 0, 0, p, "", Vec::new()).await?,
        )?;
        total += r.0.extra;
    }
    Ok(total)
}
