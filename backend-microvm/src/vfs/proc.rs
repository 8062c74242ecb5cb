//! `/proc`, as far as programs read it: `/proc/self` and `/proc/<pid>` (`exe`, `cwd`,
//! `fd/`, `maps`, `status`, `stat`, `statm`, `cmdline`, `comm`, `environ`, `mounts`)
//! and a few system-wide files (`meminfo`, `cpuinfo`, `stat`, `uptime`, `loadavg`,
//! `version`, `filesystems`, `sys/kernel/...`). Links are read from a view the kernel
//! keeps current; the contents of files are made by the kernel when they are opened.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use super::node::Node;
use super::DirEntry;
use crate::errno::{self, Errno};

/// What the kernel tells `/proc` about a process.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcInfo {
    /// `exe` (empty for a zombie, whose `exe` and `cwd` are gone).
    pub(crate) exe: Vec<u8>,
    /// `cwd`.
    pub(crate) cwd: Vec<u8>,
    /// `fd/N`: each descriptor, what its link shows and where it leads.
    pub(crate) fds: Vec<FdLink>,
}

/// One link of `/proc/<pid>/fd`: a magic link, which leads to the open file itself
/// (Linux's `proc_fd_link`), not to the path its text shows.
#[derive(Debug, Clone)]
pub(crate) struct FdLink {
    /// The descriptor number.
    pub(crate) fd: u32,
    /// What `readlink` shows (`pipe:[N]`, a path...).
    pub(crate) text: Vec<u8>,
    /// Where the file was opened, as its open file keeps it (the node is the file
    /// itself: a file renamed or unlinked since is still what the link leads to);
    /// `None` for a file with no path (a pipe, a socket, stdio, an eventfd...).
    pub(crate) file: Option<super::Location>,
}

/// The kernel's view for `/proc`.
#[derive(Debug, Default)]
pub(crate) struct ProcView {
    /// The process `self` names.
    pub(crate) me: Cell<u32>,
    /// Every process.
    pub(crate) procs: RefCell<BTreeMap<u32, ProcInfo>>,
}

/// A generated file of `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProcFile {
    Maps,
    Status,
    Stat,
    Statm,
    Cmdline,
    Comm,
    Environ,
    Mounts,
    MountInfo,
    Limits,
    MemInfo,
    CpuInfo,
    SysStat,
    Uptime,
    LoadAvg,
    Version,
    Filesystems,
    OsType,
    OsRelease,
    PidMax,
    NgroupsMax,
    Overcommit,
    /// `/proc/sys/fs/pipe-max-size`: the largest `F_SETPIPE_SZ` of an unprivileged process.
    PipeMaxSize,
    BootId,
    Uuid,
    /// `/proc/sysvipc/shm`, `sem`, `msg`.
    SysvIpc(&'static str),
    /// A System V IPC limit of `/proc/sys/kernel` (its text).
    IpcLimit(&'static str),
}

const PID_FILES: [(&str, ProcFile); 10] = [
    ("mountinfo", ProcFile::MountInfo),
    ("maps", ProcFile::Maps),
    ("status", ProcFile::Status),
    ("stat", ProcFile::Stat),
    ("statm", ProcFile::Statm),
    ("cmdline", ProcFile::Cmdline),
    ("comm", ProcFile::Comm),
    ("environ", ProcFile::Environ),
    ("mounts", ProcFile::Mounts),
    ("limits", ProcFile::Limits),
];

const TOP_FILES: [(&str, ProcFile); 7] = [
    ("meminfo", ProcFile::MemInfo),
    ("cpuinfo", ProcFile::CpuInfo),
    ("stat", ProcFile::SysStat),
    ("uptime", ProcFile::Uptime),
    ("loadavg", ProcFile::LoadAvg),
    ("version", ProcFile::Version),
    ("filesystems", ProcFile::Filesystems),
];

const KERNEL_FILES: [(&str, ProcFile); 11] = [
    ("ostype", ProcFile::OsType),
    ("osrelease", ProcFile::OsRelease),
    ("pid_max", ProcFile::PidMax),
    ("ngroups_max", ProcFile::NgroupsMax),
    // Linux's defaults, which the sandbox's IPC namespace has.
    ("shmmax", ProcFile::IpcLimit("18446744073692774399\n")),
    ("shmall", ProcFile::IpcLimit("18446744073692774399\n")),
    ("shmmni", ProcFile::IpcLimit("4096\n")),
    ("sem", ProcFile::IpcLimit("32000\t1024000000\t500\t32000\n")),
    ("msgmax", ProcFile::IpcLimit("8192\n")),
    ("msgmnb", ProcFile::IpcLimit("16384\n")),
    ("msgmni", ProcFile::IpcLimit("32000\n")),
];

const SYSVIPC_FILES: [(&str, ProcFile); 3] = [
    ("shm", ProcFile::SysvIpc("shm")),
    ("sem", ProcFile::SysvIpc("sem")),
    ("msg", ProcFile::SysvIpc("msg")),
];

/// A node of `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProcNode {
    /// `/proc`.
    Root,
    /// `/proc/<pid>`.
    Pid(u32),
    /// `/proc/<pid>/fd`.
    FdDir(u32),
    /// What `/proc/<pid>/fd/<n>` leads to when descriptor `n` has no path (a pipe, a
    /// socket, stdio...): opening it opens that file anew, as the kernel decides.
    FdFile(u32, u32),
    /// `/proc/sys`, `/proc/sys/kernel`, `/proc/sys/vm`, `/proc/sys/fs`,
    /// `/proc/sys/kernel/random`.
    SysDir(&'static str),
    /// A generated file (of a process, or of the system).
    File(Option<u32>, ProcFile),
}

impl ProcNode {
    /// True for directories.
    pub(crate) fn is_dir(&self) -> bool {
        !matches!(self, ProcNode::File(..) | ProcNode::FdFile(..))
    }
}

fn link(target: impl Into<Vec<u8>>) -> Node {
    Node::Link(Rc::from(target.into()))
}

impl ProcView {
    fn pid_of(&self, name: &[u8]) -> Option<u32> {
        let n: u32 = std::str::from_utf8(name).ok()?.parse().ok()?;
        self.procs.borrow().contains_key(&n).then_some(n)
    }

    /// The child `name` of `dir`.
    pub(crate) fn child(&self, dir: &ProcNode, name: &[u8]) -> Result<Node, Errno> {
        let file = |table: &[(&str, ProcFile)], pid| {
            table
                .iter()
                .find(|(n, _)| n.as_bytes() == name)
                .map(|(_, f)| Node::Proc(ProcNode::File(pid, *f)))
        };
        let found = match dir {
            ProcNode::Root => match name {
                b"self" => Some(link(self.me.get().to_string())),
                b"thread-self" => Some(link(self.me.get().to_string())),
                b"mounts" => Some(link("self/mounts")),
                b"sys" => Some(Node::Proc(ProcNode::SysDir("sys"))),
                b"sysvipc" => Some(Node::Proc(ProcNode::SysDir("sysvipc"))),
                _ => match self.pid_of(name) {
                    Some(p) => Some(Node::Proc(ProcNode::Pid(p))),
                    None => file(&TOP_FILES, None),
                },
            },
            ProcNode::Pid(p) => {
                let procs = self.procs.borrow();
                let info = procs.get(p).ok_or(errno::ENOENT)?;
                match name {
                    // A zombie's (empty): gone, as Linux answers.
                    b"exe" | b"cwd" if info.exe.is_empty() => None,
                    b"exe" => Some(link(info.exe.clone())),
                    b"cwd" => Some(link(info.cwd.clone())),
                    b"root" => Some(link("/")),
                    b"fd" => Some(Node::Proc(ProcNode::FdDir(*p))),
                    _ => file(&PID_FILES, Some(*p)),
                }
            }
            ProcNode::FdDir(p) => {
                let procs = self.procs.borrow();
                let info = procs.get(p).ok_or(errno::ENOENT)?;
                let n: Option<u32> = std::str::from_utf8(name).ok().and_then(|s| s.parse().ok());
                n.and_then(|n| info.fds.iter().find(|l| l.fd == n))
                    .map(|l| link(l.text.clone()))
            }
            ProcNode::SysDir("sys") => match name {
                b"kernel" => Some(Node::Proc(ProcNode::SysDir("kernel"))),
                b"vm" => Some(Node::Proc(ProcNode::SysDir("vm"))),
                b"fs" => Some(Node::Proc(ProcNode::SysDir("fs"))),
                _ => None,
            },
            ProcNode::SysDir("kernel") => match name {
                b"random" => Some(Node::Proc(ProcNode::SysDir("random"))),
                _ => file(&KERNEL_FILES, None),
            },
            ProcNode::SysDir("vm") => file(&[("overcommit_memory", ProcFile::Overcommit)], None),
            ProcNode::SysDir("fs") => file(&[("pipe-max-size", ProcFile::PipeMaxSize)], None),
            ProcNode::SysDir("random") => file(
                &[("boot_id", ProcFile::BootId), ("uuid", ProcFile::Uuid)],
                None,
            ),
            ProcNode::SysDir("sysvipc") => file(&SYSVIPC_FILES, None),
            ProcNode::SysDir(_) => None,
            ProcNode::File(..) | ProcNode::FdFile(..) => return Err(errno::ENOTDIR),
        };
        found.ok_or(errno::ENOENT)
    }

    /// Where following the link `name` of `/proc/<pid>/fd` (at `dir`) leads: the
    /// open file's own location, or for a file with no path, a node that stands for
    /// it ([`ProcNode::FdFile`]). `ENOENT` when the descriptor is not open.
    pub(crate) fn fd_target(
        &self,
        pid: u32,
        name: &[u8],
        dir: &super::Location,
    ) -> Result<super::Location, Errno> {
        let procs = self.procs.borrow();
        let info = procs.get(&pid).ok_or(errno::ENOENT)?;
        let n: u32 = std::str::from_utf8(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(errno::ENOENT)?;
        let l = info.fds.iter().find(|l| l.fd == n).ok_or(errno::ENOENT)?;
        Ok(match &l.file {
            Some(loc) => loc.clone(),
            None => {
                let mut loc = dir.clone();
                loc.push(super::Entry {
                    name: name.into(),
                    node: Node::Proc(ProcNode::FdFile(pid, n)),
                    trie: None,
                });
                loc
            }
        })
    }

    /// The entries of `dir` (without `.` and `..`).
    pub(crate) fn list(&self, dir: &ProcNode) -> Result<Vec<DirEntry>, Errno> {
        let entry = |name: &str, dtype: u8, ino: u64| DirEntry {
            ino,
            dtype,
            name: name.as_bytes().to_vec(),
        };
        let files = |t: &[(&str, ProcFile)]| -> Vec<DirEntry> {
            t.iter()
                .enumerate()
                .map(|(i, (n, _))| entry(n, libc::DT_REG, 0x9000 + i as u64))
                .collect()
        };
        Ok(match dir {
            ProcNode::Root => {
                let mut v: Vec<DirEntry> = self
                    .procs
                    .borrow()
                    .keys()
                    .map(|p| entry(&p.to_string(), libc::DT_DIR, 0x10_0000 + u64::from(*p)))
                    .collect();
                v.push(entry("self", libc::DT_LNK, 0x8001));
                v.push(entry("thread-self", libc::DT_LNK, 0x8002));
                v.push(entry("mounts", libc::DT_LNK, 0x8003));
                v.push(entry("sys", libc::DT_DIR, 0x8004));
                v.push(entry("sysvipc", libc::DT_DIR, 0x8005));
                v.extend(files(&TOP_FILES));
                v
            }
            ProcNode::Pid(p) => {
                if !self.procs.borrow().contains_key(p) {
                    return Err(errno::ENOENT);
                }
                let mut v = vec![
                    entry("exe", libc::DT_LNK, 0x8101),
                    entry("cwd", libc::DT_LNK, 0x8102),
                    entry("root", libc::DT_LNK, 0x8103),
                    entry("fd", libc::DT_DIR, 0x8104),
                ];
                v.extend(files(&PID_FILES));
                v
            }
            ProcNode::FdDir(p) => {
                let procs = self.procs.borrow();
                let info = procs.get(p).ok_or(errno::ENOENT)?;
                info.fds
                    .iter()
                    .map(|l| entry(&l.fd.to_string(), libc::DT_LNK, 0x20_0000 + u64::from(l.fd)))
                    .collect()
            }
            ProcNode::SysDir("sys") => vec![
                entry("kernel", libc::DT_DIR, 0x8201),
                entry("vm", libc::DT_DIR, 0x8202),
                entry("fs", libc::DT_DIR, 0x8206),
            ],
            ProcNode::SysDir("kernel") => {
                let mut v = files(&KERNEL_FILES);
                v.push(entry("random", libc::DT_DIR, 0x8203));
                v
            }
            ProcNode::SysDir("vm") => files(&[("overcommit_memory", ProcFile::Overcommit)]),
            ProcNode::SysDir("fs") => files(&[("pipe-max-size", ProcFile::PipeMaxSize)]),
            ProcNode::SysDir("random") => {
                files(&[("boot_id", ProcFile::BootId), ("uuid", ProcFile::Uuid)])
            }
            ProcNode::SysDir("sysvipc") => files(&SYSVIPC_FILES),
            ProcNode::SysDir(_) => Vec::new(),
            ProcNode::File(..) | ProcNode::FdFile(..) => return Err(errno::ENOTDIR),
        })
    }
}

impl crate::snap::Snap for ProcView {
    /// The descriptors' locations are copied as the rest of the sandbox is (a copy's
    /// links lead to its own files).
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        let mut procs = BTreeMap::new();
        for (pid, info) in self.procs.borrow().iter() {
            let mut fds = Vec::with_capacity(info.fds.len());
            for l in &info.fds {
                fds.push(FdLink {
                    fd: l.fd,
                    text: l.text.clone(),
                    file: l
                        .file
                        .as_ref()
                        .map(|f| crate::snap::Snap::snap(f, m))
                        .transpose()?,
                });
            }
            let info = ProcInfo {
                exe: info.exe.clone(),
                cwd: info.cwd.clone(),
                fds,
            };
            procs.insert(*pid, info);
        }
        Ok(ProcView {
            me: Cell::new(self.me.get()),
            procs: RefCell::new(procs),
        })
    }
}
