//! Warm templates in a live container: when does an exec wait on its stdin?
//!
//! **The condition**, read from the host's `/proc` (the exec's stdin is a pipe whose
//! write end the host holds; its inode is known): the processes that hold the read end
//! of that pipe are the exec's (found by their `/proc/PID/fd` links, `pipe:[INODE]`,
//! opened for reading); **none of their threads is running** (`/proc/PID/task/TID/
//! syscall` is not `running`); and **one is blocked in a read of it**: `read`, `readv`,
//! `splice` or `copy_file_range` whose first argument (`sendfile`: its second, the
//! input) is a descriptor that is that pipe, or `poll`, `ppoll`,
//! `select`, `pselect6`, `epoll_wait`, `epoll_pwait` or `epoll_pwait2` by a process
//! that holds it (the sets it waits on are in its memory: holding it is the check).
//! The pipe is empty and open (nothing is written before the run). Reading another
//! process's `syscall` file needs ptrace access to it: the host's caller has it over
//! its own sandbox's processes; if it is refused the answer is an error, never a guess.

use sandbox_core::live::BlockedRead;
use std::path::Path;

/// What `/proc` says of the exec holding the pipe `ino`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParkState {
    /// Blocked reading it, nothing else running.
    Waiting,
    /// Running, or waiting on something else.
    Busy,
}

/// The descriptors of `pid` that are the read end of pipe `ino`.
fn read_ends(pid: &Path, link: &str) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(pid.join("fd")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        if std::fs::read_link(e.path()).is_ok_and(|t| t.as_os_str() == link) {
            let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            // `flags:` in fdinfo is octal; O_ACCMODE 0 is O_RDONLY.
            let rdonly = std::fs::read_to_string(pid.join("fdinfo").join(fd.to_string()))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("flags:"))
                        .and_then(|v| u64::from_str_radix(v.trim(), 8).ok())
                })
                .is_some_and(|f| f & libc::O_ACCMODE as u64 == libc::O_RDONLY as u64);
            if rdonly {
                out.push(fd);
            }
        }
    }
    out
}

/// Where the exec reading pipe `ino` stands (see the module's doc).
pub(crate) fn state(ino: u64) -> std::io::Result<ParkState> {
    let link = format!("pipe:[{ino}]");
    let me = std::process::id();
    let mut holders = 0;
    let mut reading = false;
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = e.path();
        let fds = read_ends(&dir, &link);
        if fds.is_empty() {
            continue;
        }
        holders += 1;
        let Ok(tasks) = std::fs::read_dir(dir.join("task")) else {
            continue; // it ended meanwhile
        };
        for t in tasks.flatten() {
            let text = match std::fs::read_to_string(t.path().join("syscall")) {
                Ok(s) => s,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("reading {}/syscall: {e}", t.path().display()),
                    ))
                }
            };
            let mut it = text.split_whitespace();
            let Some(nr) = it.next().and_then(|n| n.parse::<u64>().ok()) else {
                return Ok(ParkState::Busy); // `running`, or not in a syscall
            };
            let hex = |a: Option<&str>| {
                a.and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
            };
            let (arg0, arg1) = (hex(it.next()), hex(it.next()));
            let arg = |a: Option<u64>| a.unwrap_or(u64::MAX); // no descriptor of ours
            match sandbox_core::live::blocked_read(nr, arg(arg0), arg(arg1)) {
                BlockedRead::Fd(fd) if fds.contains(&fd) => reading = true,
                BlockedRead::Poll => reading = true,
                _ => {}
            }
        }
    }
    Ok(if holders > 0 && reading {
        ParkState::Waiting
    } else {
        ParkState::Busy
    })
}
