//! The thread that clones sandboxes.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that created a child exits, not the
//! process; a tokio blocking-pool thread or a Python thread may exit at any time. So
//! every sandbox is cloned from this one long-lived thread, and a sandbox dies exactly
//! when the caller's process does.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

use crate::child::{self, ChildSpec};
use crate::sys;

/// A clone's pid and pidfd, and whether it started in its cgroup v2 directory.
pub(crate) type Cloned = (libc::pid_t, OwnedFd, bool);

type Reply = oneshot::Sender<std::io::Result<Cloned>>;

struct Job {
    spec: Arc<ChildSpec>,
    reply: Reply,
}

fn sender() -> std::io::Result<mpsc::Sender<Job>> {
    static TX: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    if let Some(tx) = TX.get() {
        return Ok(tx.lock().unwrap_or_else(|e| e.into_inner()).clone());
    }
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("hsb-spawner".into())
        .spawn(move || {
            for job in rx {
                if let Err(Ok((_, pidfd, _))) = job.reply.send(clone_one(&job.spec)) {
                    // The caller went away (its spawn was cancelled) before it could own
                    // the child: kill and reap it here, so no zombie stays.
                    sandbox_core::child::kill_and_reap(&pidfd);
                }
            }
        })?;
    let cell = TX.get_or_init(|| Mutex::new(tx));
    Ok(cell.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

const NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS;

/// Namespaces the spawner thread may join for a clone (an engine's network namespace,
/// a pod's IPC and UTS namespaces), with the /proc name of each.
const JOINABLE: [(libc::c_int, &str); 3] = [
    (libc::CLONE_NEWNET, "net"),
    (libc::CLONE_NEWIPC, "ipc"),
    (libc::CLONE_NEWUTS, "uts"),
];

/// This thread's own namespace of a joinable type, to come back to after cloning into
/// another.
fn home_ns(kind: usize) -> std::io::Result<&'static std::fs::File> {
    thread_local! {
        static HOME: [OnceLock<&'static std::fs::File>; 3] = const { [const { OnceLock::new() }; 3] };
    }
    HOME.with(|h| {
        if let Some(f) = h[kind].get() {
            return Ok(*f);
        }
        let path = format!("/proc/thread-self/ns/{}", JOINABLE[kind].1);
        let f: &'static std::fs::File = Box::leak(Box::new(std::fs::File::open(path)?));
        Ok(*h[kind].get_or_init(|| f))
    })
}

fn setns(fd: libc::c_int, nstype: libc::c_int) -> std::io::Result<()> {
    // SAFETY: setns only reads the descriptor; it changes this thread's network, IPC or
    // UTS namespace (the types a multithreaded process may change per thread).
    if unsafe { libc::setns(fd, nstype) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn clone_one(spec: &ChildSpec) -> std::io::Result<Cloned> {
    use std::os::fd::AsRawFd;
    let wanted = [spec.netns, spec.ipcns, spec.utsns];
    if wanted.iter().all(Option::is_none) {
        return clone_in(spec, NAMESPACES);
    }
    // Join the given namespaces on this thread for the clone only: the child starts in
    // them (and makes none of those types of its own).
    let mut joined = Vec::new();
    let mut flags = NAMESPACES;
    let mut result = Ok(());
    for (kind, fd) in wanted.iter().enumerate() {
        let Some(fd) = *fd else { continue };
        let (nstype, name) = JOINABLE[kind];
        let home = match home_ns(kind) {
            Ok(h) => h.as_raw_fd(),
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        if let Err(e) = setns(fd, nstype) {
            result = Err(std::io::Error::new(
                e.kind(),
                format!("joining the {name} namespace: {e} (is it a {name} namespace?)"),
            ));
            break;
        }
        joined.push((home, nstype, name));
        flags &= !nstype;
    }
    let r = result.and_then(|_| clone_in(spec, flags));
    for (home, nstype, name) in joined {
        if let Err(e) = setns(home, nstype) {
            // This thread clones every later sandbox: it must not stay in another's.
            eprintln!("hsb: the sandbox spawner could not return to its {name} namespace: {e}");
            std::process::abort();
        }
    }
    r
}

fn clone_in(spec: &ChildSpec, namespaces: libc::c_int) -> std::io::Result<Cloned> {
    let flags = namespaces as libc::c_ulong;
    let (r, in_cgroup) = match spec.cgroup_v2 {
        Some(dir) => match sys::clone3_into_cgroup(flags, dir) {
            // Cloning into the cgroup only saves the parent's write: whatever kept it
            // from working (no clone3 or CLONE_INTO_CGROUP in this kernel, a seccomp
            // filter refusing clone3 with ENOSYS or EPERM, a cgroup it cannot join), the
            // child is cloned as before and the parent moves it, which reports a
            // cgroup's own error in words.
            Err(_) => (sys::clone_pidfd(flags), false),
            r => (r, true),
        },
        None => (sys::clone_pidfd(flags), false),
    };
    match r {
        Ok((0, _)) => {
            sys::reset_signals();
            child::init_main(spec)
        }
        // SAFETY: CLONE_PIDFD stored a fresh pidfd that nothing else owns.
        Ok((pid, pidfd)) => Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }, in_cgroup)),
        Err(e) => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// Clones the sandbox's init from the spawner thread; returns its pid and pidfd.
pub(crate) async fn clone_init(spec: Arc<ChildSpec>) -> std::io::Result<Cloned> {
    let (reply, rx) = oneshot::channel();
    sender()?
        .send(Job { spec, reply })
        .map_err(|_| std::io::Error::other("the sandbox spawner thread is gone"))?;
    rx.await
        .map_err(|_| std::io::Error::other("the sandbox spawner thread is gone"))?
}
