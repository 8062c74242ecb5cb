//! A live sandbox's file calls, done by the vCPU thread through the VM's own VFS, as
//! the workload's calls would be: from the sandbox's root, symlinks followed inside it
//! (`..` stops at its root), host mounts through the directories opened at setup
//! (read-only ones refuse with `EROFS`), permissions as the workload's user, sizes
//! charged to the sandbox (tmpfs and guest memory budget, `tmp_size`, `file_size`).
//! Only regular files are read or written (no device, FIFO or generated file).

use std::rc::Rc;

use sandbox_core::{FileKind as StatKind, FileStat, LiveError};

use super::cmd::{FileOk, FileOp};
use crate::errno::Errno;
use crate::linux::{FileKind, Kernel, OpenFile};
use crate::vfs::{host, Location, Opened};

/// Most bytes one read chunk answers.
pub(crate) const CHUNK: usize = 256 << 10;

/// An open file of a streamed read or write.
#[derive(Debug)]
pub(crate) struct Handle {
    file: Rc<OpenFile>,
    path: String,
    pos: u64,
}

fn err(op: &'static str, path: &str, e: Errno) -> LiveError {
    LiveError::file(op, path, e.0)
}

impl Kernel {
    pub(super) fn file_op(&mut self, op: FileOp) -> Result<FileOk, LiveError> {
        match op {
            FileOp::OpenWrite { path, mode } => self.open_write(path, mode),
            FileOp::Write { handle, data } => self.write_chunk(handle, &data),
            FileOp::OpenRead { path } => self.open_read(path),
            FileOp::Read { handle, max } => self.read_chunk(handle, max),
            FileOp::Close { handle } => {
                if let Some(l) = self.live.as_mut() {
                    l.handles.remove(&handle);
                }
                Ok(FileOk::Done)
            }
            FileOp::List { path } => self.list(&path).map(FileOk::List),
            FileOp::Stat { path } => {
                let root = self.vfs.root();
                let loc = self
                    .vfs
                    .resolve(&root, path.as_bytes(), false)
                    .map_err(|e| err("stat", &path, e))?;
                self.file_stat(&loc, &path, "stat").map(FileOk::Stat)
            }
            FileOp::Mkdir { path, parents } => self.mkdir(&path, parents).map(|_| FileOk::Done),
            FileOp::Remove { path, recursive } => {
                self.remove(&path, recursive).map(|_| FileOk::Done)
            }
            FileOp::Rename { from, to } => {
                let root = self.vfs.root();
                self.vfs
                    .rename(&root, from.as_bytes(), &root, to.as_bytes(), 0)
                    .map_err(|e| err("rename", &from, e))?;
                Ok(FileOk::Done)
            }
        }
    }

    fn add_handle(&mut self, h: Handle) -> u64 {
        let Some(l) = self.live.as_mut() else {
            return 0;
        };
        let id = l.next_handle;
        l.next_handle += 1;
        l.handles.insert(id, h);
        id
    }

    fn open_write(&mut self, path: String, mode: u32) -> Result<FileOk, LiveError> {
        let root = self.vfs.root();
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        let (loc, opened) = self
            .vfs
            .open(&root, path.as_bytes(), flags, mode & 0o777)
            .map_err(|e| err("write", &path, e))?;
        let kind = match opened {
            Opened::Host(fd) => FileKind::Host(fd),
            Opened::Tmp(t) if !t.is_dir() => FileKind::Tmp(t),
            Opened::Tmp(_) | Opened::HostDir | Opened::Virtual => {
                return Err(err("write", &path, crate::errno::EISDIR))
            }
            _ => return Err(not_regular("write", &path)),
        };
        let file = OpenFile::new(kind, Some(loc), flags);
        Ok(FileOk::Handle(self.add_handle(Handle {
            file,
            path,
            pos: 0,
        })))
    }

    fn write_chunk(&mut self, handle: u64, data: &[u8]) -> Result<FileOk, LiveError> {
        let Some(live) = self.live.as_mut() else {
            return Err(LiveError::Invalid("no such file handle".into()));
        };
        let (file_size, tmp_size) = (live.file_size, live.tmp_size);
        let Some(h) = live.handles.get(&handle) else {
            return Err(LiveError::Invalid("no such file handle".into()));
        };
        let (file, path, pos) = (Rc::clone(&h.file), h.path.clone(), h.pos);
        let end = pos.saturating_add(data.len() as u64);
        if let Some(limit) = file_size.filter(|l| end > *l) {
            self.abandon(handle, &file);
            return Err(LiveError::Limit {
                limit: "file_size",
                value: limit.to_string(),
                message: format!("writing {path}: {end} bytes or more"),
            });
        }
        let mut done = 0usize;
        while done < data.len() {
            let off = pos + done as u64;
            let r = match &file.kind {
                FileKind::Host(fd) => {
                    use std::os::fd::AsRawFd;
                    host::pwrite(fd.as_raw_fd(), &data[done..], off)
                }
                FileKind::Tmp(t) => {
                    if !self.shm.is_empty() {
                        self.shm_to_file(t);
                    }
                    let r = t.write_at(off, &data[done..]);
                    if !self.shm.is_empty() {
                        self.shm_from_file(t);
                    }
                    r
                }
                _ => return Err(not_regular("write", &path)),
            };
            match r {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.0 == libc::ENOSPC || e.0 == libc::EDQUOT || e.0 == libc::EFBIG => {
                    self.abandon(handle, &file);
                    let (limit, value) = match (&file.kind, tmp_size) {
                        (FileKind::Tmp(_), Some(t)) => ("tmp_size", t.to_string()),
                        (FileKind::Tmp(_), None) => ("memory", self.limits.memory.to_string()),
                        _ => ("file_size", "the host file system's room".to_string()),
                    };
                    return Err(LiveError::Limit {
                        limit,
                        value,
                        message: format!("writing {path}: no room for {end} bytes"),
                    });
                }
                Err(e) => {
                    self.abandon(handle, &file);
                    return Err(err("write", &path, e));
                }
            }
        }
        let total = pos + done as u64;
        if let Some(h) = self.live.as_mut().and_then(|l| l.handles.get_mut(&handle)) {
            h.pos = total;
        }
        Ok(FileOk::Size(total))
    }

    /// A write that failed on a limit: the file is emptied and the handle forgotten.
    fn abandon(&mut self, handle: u64, file: &OpenFile) {
        match &file.kind {
            FileKind::Tmp(t) => {
                let _ = t.truncate(0);
            }
            FileKind::Host(fd) => {
                use std::os::fd::AsRawFd;
                let _ = host::ftruncate(fd.as_raw_fd(), 0);
            }
            _ => {}
        }
        if let Some(l) = self.live.as_mut() {
            l.handles.remove(&handle);
        }
    }

    fn open_read(&mut self, path: String) -> Result<FileOk, LiveError> {
        let root = self.vfs.root();
        let (loc, opened) = self
            .vfs
            .open(&root, path.as_bytes(), libc::O_RDONLY, 0)
            .map_err(|e| err("read", &path, e))?;
        let kind = match opened {
            Opened::Host(fd) => FileKind::Host(fd),
            Opened::Tmp(t) if !t.is_dir() => FileKind::Tmp(t),
            Opened::Gen(b) => FileKind::Gen(b),
            Opened::Tmp(_) | Opened::HostDir | Opened::Virtual => {
                return Err(err("read", &path, crate::errno::EISDIR))
            }
            _ => return Err(not_regular("read", &path)),
        };
        let file = OpenFile::new(kind, Some(loc), libc::O_RDONLY);
        Ok(FileOk::Handle(self.add_handle(Handle {
            file,
            path,
            pos: 0,
        })))
    }

    fn read_chunk(&mut self, handle: u64, max: usize) -> Result<FileOk, LiveError> {
        let Some(h) = self.live.as_ref().and_then(|l| l.handles.get(&handle)) else {
            return Err(LiveError::Invalid("no such file handle".into()));
        };
        let (file, path, pos) = (Rc::clone(&h.file), h.path.clone(), h.pos);
        let mut buf = vec![0u8; max.clamp(1, CHUNK)];
        let n = match self.source_read(&file, &mut buf, Some(pos), false) {
            Ok(n) => n,
            Err(crate::linux::SysErr::Errno(e)) => return Err(err("read", &path, e)),
            Err(_) => return Err(err("read", &path, Errno(libc::EIO))),
        };
        buf.truncate(n);
        if let Some(h) = self.live.as_mut().and_then(|l| l.handles.get_mut(&handle)) {
            h.pos = pos + n as u64;
        }
        Ok(FileOk::Data(buf))
    }

    fn file_stat(
        &self,
        loc: &Location,
        path: &str,
        op: &'static str,
    ) -> Result<FileStat, LiveError> {
        let m = self.vfs.meta(loc).map_err(|e| err(op, path, e))?;
        let kind = match m.mode & libc::S_IFMT {
            libc::S_IFREG => StatKind::File,
            libc::S_IFDIR => StatKind::Dir,
            libc::S_IFLNK => StatKind::Symlink,
            _ => StatKind::Other,
        };
        let link_target = (kind == StatKind::Symlink)
            .then(|| loc.node().link_target().ok())
            .flatten()
            .map(|t| String::from_utf8_lossy(&t).into_owned());
        let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("/");
        Ok(FileStat {
            name: name.to_string(),
            kind,
            size: m.size,
            mode: m.mode & 0o7777,
            mtime: m.mtime.sec,
            link_target,
        })
    }

    fn list(&self, path: &str) -> Result<Vec<FileStat>, LiveError> {
        let root = self.vfs.root();
        let loc = self
            .vfs
            .resolve(&root, path.as_bytes(), true)
            .map_err(|e| err("list", path, e))?;
        if !loc.node().is_dir() {
            return Err(err("list", path, crate::errno::ENOTDIR));
        }
        let mut out = Vec::new();
        for e in self.vfs.list(&loc).map_err(|e| err("list", path, e))? {
            if e.name == b"." || e.name == b".." {
                continue;
            }
            let name = String::from_utf8_lossy(&e.name).into_owned();
            let Ok(child) = self.vfs.resolve(&loc, &e.name, false) else {
                continue; // gone meanwhile
            };
            if let Ok(st) = self.file_stat(&child, &name, "list") {
                out.push(st);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn mkdir(&self, path: &str, parents: bool) -> Result<(), LiveError> {
        let root = self.vfs.root();
        if !parents {
            return self
                .vfs
                .mkdir(&root, path.as_bytes(), 0o755)
                .map_err(|e| err("mkdir", path, e));
        }
        let mut prefix = String::new();
        for part in path.split('/').filter(|s| !s.is_empty()) {
            prefix.push('/');
            prefix.push_str(part);
            match self.vfs.mkdir(&root, prefix.as_bytes(), 0o755) {
                Ok(()) => {}
                Err(e) if e.0 == libc::EEXIST => {
                    let loc = self
                        .vfs
                        .resolve(&root, prefix.as_bytes(), true)
                        .map_err(|e| err("mkdir", &prefix, e))?;
                    if !loc.node().is_dir() {
                        return Err(err("mkdir", &prefix, crate::errno::ENOTDIR));
                    }
                }
                Err(e) => return Err(err("mkdir", &prefix, e)),
            }
        }
        Ok(())
    }

    /// Removes `path`; with `recursive`, a directory's tree first (depth first, with
    /// a stack of paths, not recursion: the tree's depth is the workload's choice).
    fn remove(&self, path: &str, recursive: bool) -> Result<(), LiveError> {
        let root = self.vfs.root();
        let is_dir = |p: &str| -> Result<bool, LiveError> {
            let loc = self
                .vfs
                .resolve(&root, p.as_bytes(), false)
                .map_err(|e| err("remove", p, e))?;
            Ok(loc.node().is_dir())
        };
        if !recursive || !is_dir(path)? {
            let dir = is_dir(path)?;
            return self
                .vfs
                .unlink(&root, path.as_bytes(), dir)
                .map_err(|e| err("remove", path, e));
        }
        let mut stack = vec![path.trim_end_matches('/').to_string()];
        while let Some(dir) = stack.last().cloned() {
            let loc = self
                .vfs
                .resolve(&root, dir.as_bytes(), false)
                .map_err(|e| err("remove", &dir, e))?;
            let mut deeper = false;
            for e in self.vfs.list(&loc).map_err(|e| err("remove", &dir, e))? {
                if e.name == b"." || e.name == b".." {
                    continue;
                }
                let child = format!("{dir}/{}", String::from_utf8_lossy(&e.name));
                if e.dtype == libc::DT_DIR {
                    stack.push(child);
                    deeper = true;
                    break;
                }
                self.vfs
                    .unlink(&root, child.as_bytes(), false)
                    .map_err(|e| err("remove", &child, e))?;
            }
            if deeper {
                continue;
            }
            self.vfs
                .unlink(&root, dir.as_bytes(), true)
                .map_err(|e| err("remove", &dir, e))?;
            stack.pop();
        }
        Ok(())
    }
}

fn not_regular(op: &'static str, path: &str) -> LiveError {
    LiveError::File {
        operation: op,
        path: path.to_string(),
        errno: libc::EINVAL,
        reason: "not a regular file (only regular files are read or written)".into(),
    }
}
