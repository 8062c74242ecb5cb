//! The kernel's side of `/proc`: the view its links are read from (refreshed when a
//! path under `/proc` is looked up), and the contents of its files, made when opened.

use std::fmt::Write as _;
use std::time::Duration;

use super::fd::{FileKind, OpenFile, ANON_INODE_INO};
use super::task::{Process, TaskState, Tid};
use super::Kernel;
use crate::errno;
use crate::guest::layout::PAGE_SIZE;
use crate::mm::{VmaKind, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::pipe::PipeEnd;
use crate::vfs::proc::{FdLink, ProcFile, ProcInfo, ProcNode};
use crate::vfs::{Location, Node};

/// What `/proc/<pid>/fd/N` shows for an open file.
pub(crate) fn fd_link(f: &OpenFile) -> Vec<u8> {
    match (&f.kind, super::fd::anon_inode(f)) {
        (FileKind::EventFd(_), _) => b"anon_inode:[eventfd]".to_vec(),
        (FileKind::TimerFd(_), _) => b"anon_inode:[timerfd]".to_vec(),
        (FileKind::SignalFd(_), _) => b"anon_inode:[signalfd]".to_vec(),
        (FileKind::PidFd(_), _) => b"anon_inode:[pidfd]".to_vec(),
        (FileKind::Mqueue(q), _) => [b"/".as_slice(), &q.name].concat(),
        (FileKind::Inotify(_), _) => b"anon_inode:inotify".to_vec(),
        (FileKind::Epoll(..), _) => b"anon_inode:[eventpoll]".to_vec(),
        (FileKind::Socket(_), Some((_, ino))) => format!("socket:[{ino}]").into_bytes(),
        (_, Some((_, ino))) => format!("pipe:[{ino}]").into_bytes(),
        _ => f.loc.as_ref().map(|l| l.path()).unwrap_or_default(),
    }
}

/// One line of `/proc/PID/mounts` and `mountinfo`.
struct MountLine {
    id: u32,
    parent: u32,
    major: u32,
    minor: u32,
    target: String,
    fstype: &'static str,
    source: &'static str,
    options: &'static str,
}

/// The name of a host filesystem type (`statfs`'s `f_type`), as `/proc/mounts` shows
/// the common ones.
fn host_fstype(f_type: i64) -> &'static str {
    match f_type {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x794C_7630 => "overlay",
        0x0102_1994 => "tmpfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x2FC1_2FC1 => "zfs",
        _ => "hostfs",
    }
}

/// A path as `/proc/mounts` writes it: space, tab, newline and backslash escaped
/// in octal.
fn mount_path(p: &[u8]) -> String {
    let mut s = String::new();
    for &b in p {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => {
                let _ = write!(s, "\\{b:03o}");
            }
            _ => s.push(b as char),
        }
    }
    s
}

fn ticks(d: Duration) -> u64 {
    (d.as_millis() / 10) as u64
}

impl Kernel {
    /// The sandbox's mounts as `/proc/PID/mounts` and `mountinfo` show them: the
    /// root, then every mount of the tree, parents first, each with the device
    /// numbers `stat` shows under it (what `df` and `findmnt` match files by).
    fn mount_table(&self) -> Vec<MountLine> {
        let root = self.vfs.root();
        let dev_of = |path: &[u8]| {
            let at = if path.is_empty() { &b"/"[..] } else { path };
            let dev = self
                .vfs
                .resolve(&root, at, true)
                .and_then(|l| self.vfs.meta(&l))
                .map_or(0, |m| m.dev);
            (super::stat::major(dev), super::stat::minor(dev))
        };
        let mut out: Vec<(Vec<u8>, MountLine)> = Vec::new();
        let (major, minor) = dev_of(b"");
        let (fstype, source, options) = match root.node() {
            crate::vfs::Node::Ovl(_) => ("overlay", "overlay", "rw,nosuid,nodev"),
            _ => ("hsb", "hsb", "ro,nosuid,nodev"),
        };
        out.push((
            Vec::new(),
            MountLine {
                id: 20,
                parent: 1,
                major,
                minor,
                target: "/".into(),
                fstype,
                source,
                options,
            },
        ));
        for (path, node) in self.vfs.mounts() {
            use crate::vfs::Node;
            let (fstype, source, options) = match node {
                Node::HostDir { fd, ro, .. } | Node::HostFile { fd, ro, .. } => {
                    let t = crate::vfs::host::fstatfs(std::os::fd::AsRawFd::as_raw_fd(&**fd))
                        .map_or(0, |st| st.f_type);
                    let opts = match (*ro, node.noexec()) {
                        (true, false) => "ro,nosuid,nodev",
                        (false, false) => "rw,nosuid,nodev",
                        (true, true) => "ro,nosuid,nodev,noexec",
                        (false, true) => "rw,nosuid,nodev,noexec",
                    };
                    (host_fstype(t), "hostfs", opts)
                }
                Node::Tmp(_) if node.noexec() => ("tmpfs", "tmpfs", "rw,nosuid,nodev,noexec"),
                Node::Tmp(_) => ("tmpfs", "tmpfs", "rw,nosuid,nodev"),
                Node::Proc(_) => ("proc", "proc", "ro,nosuid,nodev,noexec"),
                Node::Ovl(_) => ("overlay", "overlay", "rw,nosuid,nodev"),
                // Generated files, devices and links of the tree are no mounts.
                _ => continue,
            };
            // The nearest mount above it.
            let parent = out
                .iter()
                .rev()
                .find(|(p, _)| {
                    p.is_empty() || (path.starts_with(p) && path.get(p.len()) == Some(&b'/'))
                })
                .map_or(20, |(_, m)| m.id);
            let (major, minor) = dev_of(&path);
            let id = 21 + out.len() as u32 - 1;
            out.push((
                path.clone(),
                MountLine {
                    id,
                    parent,
                    major,
                    minor,
                    target: mount_path(&path),
                    fstype,
                    source,
                    options,
                },
            ));
        }
        out.into_iter().map(|(_, m)| m).collect()
    }

    /// Opens descriptor `fd` of process `pid` anew, a file with no path reached
    /// through `/proc/<pid>/fd/<fd>` (or `/dev/fd`, `/dev/stdin`), as Linux reopens
    /// its inode: a pipe gives a new end of the same pipe for the access `flags` ask
    /// (a write end opened to read reads the pipe); a memfd its file with an offset of
    /// its own; the run's stdin or output a new description of the same stream; a
    /// socket and the anonymous inodes (eventfd, epoll...) `ENXIO` (`EACCES` but for
    /// root), as on Linux.
    pub(crate) fn reopen(
        &self,
        pid: u32,
        fd: u32,
        flags: i32,
    ) -> Result<std::rc::Rc<OpenFile>, errno::Errno> {
        let p = self.proc_ref(pid).ok_or(errno::ENOENT)?;
        let f = p.files.get(u64::from(fd)).map_err(|_| errno::ENOENT)?;
        let kind = match &f.kind {
            FileKind::Pipe(end) if f.loc.is_none() => {
                FileKind::Pipe(PipeEnd::open(&end.pipe, super::fs::fifo_side(flags)))
            }
            // A memfd: its inode again (truncated by `O_TRUNC`, as any file).
            FileKind::Tmp(inode) if f.loc.is_none() => {
                if flags & libc::O_TRUNC != 0 && flags & libc::O_ACCMODE != libc::O_RDONLY {
                    inode.truncate(0)?;
                }
                FileKind::Tmp(std::rc::Rc::clone(inode))
            }
            FileKind::Stdin(chan) => FileKind::Stdin(*chan),
            FileKind::Output(chan, err) => FileKind::Output(*chan, *err),
            // Linux's anonymous inode is one inode of root's, mode 0600: its permission
            // is checked before its open refuses.
            _ if super::fd::anon_inode(&f).is_some_and(|(_, ino)| ino == ANON_INODE_INO)
                && self.user.0 != 0 =>
            {
                return Err(errno::EACCES)
            }
            _ => return Err(errno::ENXIO),
        };
        let status = flags & (libc::O_ACCMODE | libc::O_APPEND | libc::O_NONBLOCK);
        Ok(OpenFile::new(kind, None, status))
    }

    /// The open file a location reached through `/proc/<pid>/fd` stands for, when it
    /// has no path ([`ProcNode::FdFile`]): what `stat` of that location describes.
    pub(crate) fn fd_file(
        &self,
        loc: &Location,
    ) -> Result<Option<std::rc::Rc<OpenFile>>, errno::Errno> {
        let Node::Proc(ProcNode::FdFile(pid, fd)) = *loc.node() else {
            return Ok(None);
        };
        let p = self.proc_ref(pid).ok_or(errno::ENOENT)?;
        let f = p.files.get(u64::from(fd)).map_err(|_| errno::ENOENT)?;
        Ok(Some(f))
    }

    /// What `/proc/<pid>/cwd` shows: the working directory's path as it is now (a
    /// directory was renamed since it was last looked at: found again, see
    /// `vfs/relocate.rs`), with ` (deleted)` once removed, as Linux's `d_path`.
    fn cwd_link(&self, p: &Process) -> Vec<u8> {
        if p.cwd_seen == self.vfs.moves() {
            return p.cwd.path();
        }
        match self.vfs.relocate(&p.cwd) {
            Ok(Some(now)) => now.path(),
            Ok(None) => p.cwd.path(),
            Err(_) => [p.cwd.path().as_slice(), b" (deleted)"].concat(),
        }
    }

    /// Brings `/proc`'s view of the processes up to date.
    pub(crate) fn refresh_proc(&self) {
        let mut view = std::collections::BTreeMap::new();
        for pid in self.pids() {
            let Some(p) = self.proc_ref(pid) else {
                continue;
            };
            // A zombie is there until reaped (ps shows it <defunct>), with no program,
            // directory or descriptors left: its empty names.
            let info = if p.exit.is_some() {
                ProcInfo {
                    exe: Vec::new(),
                    cwd: Vec::new(),
                    fds: Vec::new(),
                }
            } else {
                ProcInfo {
                    exe: p.exe.clone(),
                    cwd: self.cwd_link(p),
                    fds: p
                        .files
                        .iter()
                        .map(|(fd, f)| FdLink {
                            fd,
                            text: fd_link(f),
                            file: f.loc.clone(),
                        })
                        .collect(),
                }
            };
            view.insert(pid, info);
        }
        *self.vfs.proc.procs.borrow_mut() = view;
        self.vfs.set_self(self.proc.pid);
    }

    /// The contents of a `/proc` file.
    pub(crate) fn proc_contents(&mut self, pid: Option<u32>, f: ProcFile) -> Vec<u8> {
        let pid = pid.unwrap_or(self.proc.pid);
        let mut s = String::new();
        match f {
            ProcFile::Maps => return self.maps_of(pid),
            ProcFile::Status => self.status_of(pid, &mut s),
            ProcFile::Stat => self.stat_of(pid, &mut s),
            ProcFile::Statm => {
                let (size, rss) = self.vm_of(pid);
                let _ = writeln!(
                    s,
                    "{} {} 0 0 0 {} 0",
                    size / PAGE_SIZE,
                    rss / PAGE_SIZE,
                    size / PAGE_SIZE
                );
            }
            ProcFile::Cmdline => {
                let mut b = Vec::new();
                for a in self
                    .proc_ref(pid)
                    .map(|p| p.argv.clone())
                    .unwrap_or_default()
                {
                    b.extend_from_slice(&a);
                    b.push(0);
                }
                return b;
            }
            ProcFile::Comm => {
                let _ = writeln!(s, "{}", self.comm_of(pid));
            }
            ProcFile::Environ => {}
            ProcFile::Mounts => {
                for m in self.mount_table() {
                    let _ = writeln!(
                        s,
                        "{} {} {} {} 0 0",
                        m.source, m.target, m.fstype, m.options
                    );
                }
            }
            ProcFile::MountInfo => {
                for m in self.mount_table() {
                    let super_opts = if m.options.starts_with("ro") {
                        "ro"
                    } else {
                        "rw"
                    };
                    let _ = writeln!(
                        s,
                        "{} {} {}:{} / {} {} - {} {} {}",
                        m.id,
                        m.parent,
                        m.major,
                        m.minor,
                        m.target,
                        m.options,
                        m.fstype,
                        m.source,
                        super_opts
                    );
                }
            }
            ProcFile::Limits => {
                let _ = writeln!(
                    s,
                    "Limit                     Soft Limit           Hard Limit           Units"
                );
                let _ = writeln!(
                    s,
                    "Max open files            {:<20} {:<20} files",
                    self.proc.files.limit,
                    self.proc
                        .rlimits
                        .get(libc::RLIMIT_NOFILE)
                        .map_or(0, |r| r.rlim_max)
                );
                let _ = writeln!(
                    s,
                    "Max processes             {0:<20} {0:<20} processes",
                    self.pids_limit
                        .map_or("unlimited".to_string(), |v| v.to_string())
                );
            }
            ProcFile::MemInfo => {
                let total = self.limits.memory / 1024;
                let free = total.saturating_sub(self.mm.mem.used_bytes() / 1024);
                let _ = write!(
                    s,
                    "MemTotal:       {total:>8} kB\nMemFree:        {free:>8} kB\nMemAvailable:   {free:>8} kB\nBuffers:               0 kB\nCached:                0 kB\nSwapCached:            0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\nShmem:                 0 kB\n"
                );
            }
            ProcFile::CpuInfo => cpuinfo(&mut s),
            ProcFile::SysStat => {
                let cpu = ticks(crate::kick::thread_cpu_time());
                let up = ticks(self.start.elapsed());
                let idle = up.saturating_sub(cpu);
                let boot = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .saturating_sub(self.start.elapsed())
                    .as_secs();
                let _ = write!(
                    s,
                    "cpu  {cpu} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {cpu} 0 0 {idle} 0 0 0 0 0 0\nctxt 0\nbtime {boot}\nprocesses {}\nprocs_running 1\nprocs_blocked 0\n",
                    self.next_tid
                );
            }
            ProcFile::Uptime => {
                let up = self.start.elapsed().as_secs_f64();
                let _ = writeln!(
                    s,
                    "{up:.2} {:.2}",
                    (up - crate::kick::thread_cpu_time().as_secs_f64()).max(0.0)
                );
            }
            ProcFile::LoadAvg => {
                let _ = writeln!(
                    s,
                    "0.00 0.00 0.00 1/{} {}",
                    self.tids().len(),
                    self.next_tid.saturating_sub(1)
                );
            }
            ProcFile::Version => {
                let _ = writeln!(
                    s,
                    "Linux version {} (hybrid-sandbox) #1 SMP hybrid-sandbox micro-VM",
                    super::process::RELEASE
                );
            }
            ProcFile::Filesystems => s.push_str("nodev\tproc\nnodev\ttmpfs\n"),
            ProcFile::OsType => s.push_str("Linux\n"),
            ProcFile::OsRelease => {
                let _ = writeln!(s, "{}", super::process::RELEASE);
            }
            ProcFile::PidMax => s.push_str("4194304\n"),
            ProcFile::NgroupsMax => s.push_str("65536\n"),
            ProcFile::Overcommit => s.push_str("0\n"),
            ProcFile::PipeMaxSize => {
                let _ = writeln!(s, "{}", crate::pipe::PIPE_MAX_SIZE);
            }
            ProcFile::SysvIpc(what) => s.push_str(&self.sysvipc(what)),
            ProcFile::IpcLimit(text) => s.push_str(text),
            ProcFile::BootId | ProcFile::Uuid => {
                // The boot id is the VM's (a clone started from a snapshot gets its
                // own); a uuid is new at each read, as on Linux.
                let r = match f {
                    ProcFile::BootId => self.boot_id,
                    _ => super::new_boot_id(),
                };
                let h: String = r.iter().map(|b| format!("{b:02x}")).collect();
                let _ = writeln!(
                    s,
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                );
            }
        }
        s.into_bytes()
    }

    fn comm_of(&self, pid: Tid) -> String {
        let comm = self
            .proc_ref(pid)
            .map(|p| p.comm.clone())
            .unwrap_or_default();
        String::from_utf8_lossy(&comm).into_owned()
    }

    /// The address space of process `pid`, made current for `f`.
    fn with_space<R>(&mut self, pid: Tid, f: impl FnOnce(&mut Self) -> R) -> R {
        let space = self
            .proc_ref(pid)
            .and_then(|p| p.threads.first().copied())
            .and_then(|t| self.task_ref(t).map(|t| t.space))
            .unwrap_or(self.mm.space());
        let cur = self.mm.space();
        self.mm.switch(space);
        let r = f(self);
        self.mm.switch(cur);
        r
    }

    /// Mapped bytes and resident bytes of process `pid`.
    fn vm_of(&mut self, pid: Tid) -> (u64, u64) {
        self.with_space(pid, |k| {
            let size: u64 = k.mm.vmas().map(|(s, v)| v.end - s).sum();
            (size, k.mm.mem.used_bytes().min(size))
        })
    }

    /// Bytes of locked mappings (`VmLck`).
    fn locked_of(&mut self, pid: Tid) -> u64 {
        self.with_space(pid, |k| k.mm.locked_pages(0, u64::MAX) * 4096)
    }

    fn maps_of(&mut self, pid: Tid) -> Vec<u8> {
        self.with_space(pid, |k| {
            let brk = k.mm.brk();
            let mut s = String::new();
            for (start, v) in k.mm.vmas() {
                let perm = |bit: u32, c: char| if v.prot & bit != 0 { c } else { '-' };
                let (off, name) = match &v.kind {
                    VmaKind::File { offset, .. } => (*offset, ""),
                    VmaKind::SharedFile { offset, .. } => (*offset, ""),
                    VmaKind::Anon if v.end == crate::loader::STACK_TOP => (0, "[stack]"),
                    VmaKind::Anon if start < brk && brk <= v.end => (0, "[heap]"),
                    VmaKind::Anon => (0, ""),
                };
                let shared = if matches!(v.kind, VmaKind::SharedFile { .. }) {
                    's'
                } else {
                    'p'
                };
                let _ = writeln!(
                    s,
                    "{start:08x}-{:08x} {}{}{}{shared} {off:08x} 00:00 0 {:>width$}{name}",
                    v.end,
                    perm(PROT_READ, 'r'),
                    perm(PROT_WRITE, 'w'),
                    perm(PROT_EXEC, 'x'),
                    "",
                    width = if name.is_empty() { 0 } else { 10 }
                );
            }
            s.into_bytes()
        })
    }

    fn status_of(&mut self, pid: Tid, s: &mut String) {
        let (size, rss) = self.vm_of(pid);
        let locked = self.locked_of(pid);
        let Some(p) = self.proc_ref(pid) else {
            return;
        };
        let (ppid, umask, threads) = (p.ppid, p.umask, p.threads.clone());
        let (mut ign, mut cgt) = (0u64, 0u64);
        for (i, a) in p.act.iter().enumerate() {
            match a.handler {
                0 => {}
                1 => ign |= 1 << i,
                _ => cgt |= 1 << i,
            }
        }
        let shd = p.pending;
        let (blk, pnd) = threads
            .first()
            .and_then(|t| self.task_ref(*t))
            .map_or((0, 0), |t| (t.mask, t.pending));
        let state = self.state_of(pid);
        let (uid, gid) = self.user;
        let _ = write!(
            s,
            "Name:\t{}\nUmask:\t{umask:04o}\nState:\t{state}\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{ppid}\nTracerPid:\t0\n\
             Uid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{gid}\t{gid}\t{gid}\t{gid}\nFDSize:\t{}\nGroups:\t{gid}\n\
             VmPeak:\t{:>8} kB\nVmSize:\t{:>8} kB\nVmLck:\t{:>8} kB\nVmRSS:\t{:>8} kB\nThreads:\t{}\n\
             SigQ:\t0/64\nSigPnd:\t{pnd:016x}\nShdPnd:\t{shd:016x}\nSigBlk:\t{blk:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}\n\
             CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\n\
             NoNewPrivs:\t1\nSeccomp:\t0\nCpus_allowed:\t1\nCpus_allowed_list:\t0\nMems_allowed_list:\t0\n",
            self.comm_of(pid),
            self.proc.files.limit,
            size / 1024,
            size / 1024,
            locked / 1024,
            rss / 1024,
            threads.len()
        );
    }

    /// A process's state as `/proc/PID/status` shows it (`stat` shows its letter): a
    /// zombie, running when a thread can run, else sleeping in a syscall.
    fn state_of(&self, pid: Tid) -> &'static str {
        let Some(p) = self.proc_ref(pid) else {
            return "X (dead)";
        };
        if p.exit.is_some() {
            "Z (zombie)"
        } else if p.threads.iter().any(|t| {
            self.task_ref(*t)
                .is_some_and(|t| matches!(t.state, TaskState::Runnable))
        }) {
            "R (running)"
        } else {
            "S (sleeping)"
        }
    }

    fn stat_of(&mut self, pid: Tid, s: &mut String) {
        let (size, rss) = self.vm_of(pid);
        let comm = self.comm_of(pid);
        let state = &self.state_of(pid)[..1];
        let Some(p) = self.proc_ref(pid) else {
            return;
        };
        let cpu: Duration = p.cpu_dead
            + p.threads
                .iter()
                .filter_map(|t| self.task_ref(*t).map(|t| t.cpu))
                .sum::<Duration>();
        let _ = writeln!(
            s,
            "{pid} ({comm}) {state} {} {} {} 0 -1 4194304 0 0 0 0 {} 0 {} 0 20 0 {} 0 0 {size} {} 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 {} 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
            p.ppid,
            p.pgid,
            p.sid,
            ticks(cpu),
            ticks(p.cpu_children),
            p.threads.len(),
            rss / PAGE_SIZE,
            p.exit_signal,
        );
    }
}

/// `/proc/cpuinfo` for the one vCPU, from CPUID.
fn cpuinfo(s: &mut String) {
    let mut brand = Vec::new();
    for leaf in 0x8000_0002u32..=0x8000_0004 {
        let r = std::arch::x86_64::__cpuid(leaf);
        for v in [r.eax, r.ebx, r.ecx, r.edx] {
            brand.extend_from_slice(&v.to_le_bytes());
        }
    }
    let brand = String::from_utf8_lossy(&brand)
        .trim_matches(char::from(0))
        .trim()
        .to_string();
    let v = std::arch::x86_64::__cpuid(0);
    let mut vendor = Vec::new();
    for r in [v.ebx, v.edx, v.ecx] {
        vendor.extend_from_slice(&r.to_le_bytes());
    }
    let f = std::arch::x86_64::__cpuid(1);
    let family = (f.eax >> 8) & 0xf;
    let model = ((f.eax >> 4) & 0xf) | (((f.eax >> 16) & 0xf) << 4);
    let _ = write!(
        s,
        "processor\t: 0\nvendor_id\t: {}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: {brand}\nstepping\t: {}\ncpu MHz\t\t: 0.000\ncache size\t: 0 KB\nphysical id\t: 0\nsiblings\t: 1\ncore id\t\t: 0\ncpu cores\t: 1\nfpu\t\t: yes\nflags\t\t: fpu sse sse2\nbogomips\t: 0.00\n\n",
        String::from_utf8_lossy(&vendor),
        f.eax & 0xf
    );
}
