//! Warm templates on the vCPU thread: when is an exec *waiting on its stdin*, and how
//! a sandbox started from a snapshot takes such an exec over with a new stdin.
//!
//! **The condition** ([`Kernel::park_state`]), checked between guest instructions: the
//! exec's stdin is a stream with nothing written and not closed; **no task of the
//! sandbox can run** (every one is blocked in a syscall, dead, or init); and **a task of
//! the exec's process group is blocked in a read of that stdin**: `read`, `readv`,
//! `splice` or `copy_file_range` whose first argument (`sendfile`: its second, the
//! input) is a descriptor whose open file is the exec's stdin channel, or `poll`, `ppoll`,
//! `select`, `pselect6`, `epoll_wait`, `epoll_pwait` or `epoll_pwait2` by a process
//! that holds that channel open (the sets it waits on are in guest memory: holding it
//! is the check). A program that is waiting for something else (a sleep, a futex, a
//! child), or that is still running, is not parked.
//!
//! **Taking it over** ([`Kernel::adopt_exec`]): a sandbox started from a snapshot
//! of a parked VM gets, before its first instruction, a channel for the exec's id
//! and leader pid with the run's stdin, output and CPU limit. The blocked read is tried
//! again at the start (a restored kernel is stirred) and finds the run's bytes; the
//! CPU the template used before the snapshot is not counted against the run.

use sandbox_core::live::BlockedRead;
use std::time::Duration;

use tokio::sync::oneshot;

use super::cmd::ExecEnd;
use super::guest::Chan;
use crate::linux::task::{TaskState, Tid, INIT_PID};
use crate::linux::{FileKind, Kernel};
use crate::stdio::{Input, Output};

/// Where a parked exec stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParkState {
    /// Waiting on its stdin as the module's doc says; its leader's pid.
    Waiting(Tid),
    /// Running, or waiting on something else.
    Busy,
    /// Its leader ended.
    Ended,
}

/// An exec a started sandbox takes over.
#[derive(Debug)]
pub(crate) struct Adopt {
    pub(crate) id: u32,
    pub(crate) pid: Tid,
    pub(crate) input: Input,
    pub(crate) output: Output,
    pub(crate) cpu: Option<Duration>,
    pub(crate) done: oneshot::Sender<ExecEnd>,
    /// Where the run records the pages it touched, for the next forks' warming
    /// (`warm.rs`).
    pub(crate) warm: Option<std::sync::Arc<crate::warm::Shared>>,
}

impl Kernel {
    /// Whether exec `id` waits on its stdin (see the module's doc).
    pub(crate) fn park_state(&self, id: u32) -> ParkState {
        let Some(c) = self.live.as_ref().and_then(|l| l.chans.get(&id)) else {
            return ParkState::Ended;
        };
        let leader = c.pid;
        match &c.input {
            Input::Stream(q) if !q.ready() => {}
            _ => return ParkState::Busy,
        }
        let mut reading = false;
        for tid in self.tids() {
            let Some(t) = self.task_ref(tid) else {
                continue;
            };
            let b = match &t.state {
                TaskState::Dead => continue,
                TaskState::Runnable => return ParkState::Busy,
                TaskState::Blocked(b) => b,
            };
            if t.pid == INIT_PID {
                continue;
            }
            let Some(p) = self.proc_ref(t.pid) else {
                continue;
            };
            if p.pgid != leader && p.pid != leader {
                continue;
            }
            let is_stdin =
                |f: &crate::linux::OpenFile| matches!(f.kind, FileKind::Stdin(c) if c == id);
            match sandbox_core::live::blocked_read(b.nr, b.args[0], b.args[1]) {
                BlockedRead::Fd(fd) if p.files.get(fd).is_ok_and(|f| is_stdin(&f)) => {
                    reading = true;
                }
                BlockedRead::Poll if p.files.iter().any(|(_, f)| is_stdin(f)) => {
                    reading = true;
                }
                _ => {}
            }
        }
        if reading {
            ParkState::Waiting(leader)
        } else {
            ParkState::Busy
        }
    }

    /// The `warm` pass's list for the parked process `pid` from the pages a run of
    /// the same snapshot touched, and its space's root (`warm.rs`).
    pub(crate) fn warm_plan(
        &mut self,
        pid: Tid,
        touched: &[crate::warm::Touch],
    ) -> Option<(u64, Vec<u64>)> {
        let space = self.task_ref(pid)?.space;
        let pt = self.mm.tables_of(space)?;
        let list = crate::warm::plan(&mut self.mm.mem, pt, touched);
        (!list.is_empty()).then(|| (pt.root(), list))
    }

    /// Takes over a parked exec (see the module's doc); before the first instruction.
    pub(crate) fn adopt_exec(&mut self, a: Adopt) {
        // Its group's processes are the exec's from now on (what they used before is
        // its base, not counted).
        for pid in self.pids() {
            if let Some(p) = self.proc_mut(pid) {
                if p.pgid == a.pid || p.pid == a.pid {
                    p.exec = a.id;
                }
            }
        }
        let cpu_base = self.exec_cpu(a.id);
        let space = self.task_ref(a.pid).map(|t| t.space);
        // A run that records starts with its pages unmarked (`warm.rs`): this sandbox
        // has not entered the guest yet.
        let warm = a.warm.filter(|w| w.wants_record()).zip(space);
        if let Some((_, space)) = &warm {
            if let Some(pt) = self.mm.tables_of(*space) {
                crate::warm::clear_marks(&mut self.mm.mem, pt);
            }
        }
        let Some(l) = self.live.as_mut() else {
            return;
        };
        l.by_pid.insert(a.pid, a.id);
        l.chans.insert(
            a.id,
            Chan {
                pid: a.pid,
                input: a.input,
                output: a.output,
                cpu: a.cpu,
                cpu_base,
                cpu_gone: std::time::Duration::ZERO,
                why: None,
                done: Some(a.done),
                tty: None,
                warm: warm.map(|(w, s)| (s, w)),
            },
        );
        self.stirred = true;
    }
}
