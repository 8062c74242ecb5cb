//! Pausing a live sandbox: the cgroup freezer (v2 `cgroup.freeze`, else the v1 freezer
//! hierarchy). Without one, pause is refused with the reason: stopping processes with
//! SIGSTOP instead would be visible to the workload (its shells see their jobs stop),
//! so it is not done silently.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cgroup::{Cgroup, Host};

/// How a sandbox can be frozen.
#[derive(Debug, Clone)]
pub(crate) enum Freezer {
    /// `cgroup.freeze` in the sandbox's v2 cgroup.
    V2(PathBuf),
    /// `freezer.state` in its v1 freezer leaf.
    V1(PathBuf),
    /// None: why.
    None(String),
}

impl Freezer {
    /// Creates the freezer leaf (v1) for `cg` before its processes are added.
    pub(crate) fn attach(host: &Host, cg: Option<&mut Cgroup>) -> Freezer {
        let Some(cg) = cg else {
            return Freezer::None(match host {
                Host::Unusable { reason } => format!("no usable cgroup ({reason})"),
                _ => "the sandbox has no cgroup".into(),
            });
        };
        if let Some(dir) = cg.v2_dir() {
            return Freezer::V2(dir.to_path_buf());
        }
        match host {
            Host::V1 {
                freezer: Some(base),
                ..
            } => {
                let dir = cg.v1_dir(base);
                match fs::create_dir(&dir) {
                    Ok(()) => {
                        cg.freezer = Some(dir.clone());
                        Freezer::V1(dir)
                    }
                    Err(e) => Freezer::None(format!("creating {}: {e}", dir.display())),
                }
            }
            _ => Freezer::None(
                "the cgroup v1 freezer hierarchy is not mounted or not writable".into(),
            ),
        }
    }

    /// In words, for the enforcement report.
    pub(crate) fn describe(&self) -> String {
        match self {
            Freezer::V2(_) => {
                "cgroup v2 cgroup.freeze (every process of the sandbox stopped)".into()
            }
            Freezer::V1(_) => "cgroup v1 freezer (every process of the sandbox stopped)".into(),
            Freezer::None(why) => format!("unavailable: {why}; pause is refused"),
        }
    }

    /// Freezes (`true`) or thaws, and waits until the kernel says it is done.
    pub(crate) fn set(&self, frozen: bool) -> io::Result<()> {
        let (file, value, done): (PathBuf, &str, Box<dyn Fn() -> bool>) = match self {
            Freezer::V2(dir) => {
                let events = dir.join("cgroup.events");
                let want = if frozen { "frozen 1" } else { "frozen 0" };
                (
                    dir.join("cgroup.freeze"),
                    if frozen { "1" } else { "0" },
                    Box::new(move || {
                        fs::read_to_string(&events).is_ok_and(|t| t.lines().any(|l| l == want))
                    }),
                )
            }
            Freezer::V1(dir) => {
                let state = dir.join("freezer.state");
                let want = if frozen { "FROZEN" } else { "THAWED" };
                (
                    state.clone(),
                    want,
                    Box::new(move || fs::read_to_string(&state).is_ok_and(|t| t.trim() == want)),
                )
            }
            Freezer::None(why) => {
                return Err(io::Error::new(io::ErrorKind::Unsupported, why.clone()));
            }
        };
        fs::write(&file, value)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} did not reach {value} within 5 s", file.display()),
                ));
            }
            // v1 stays FREEZING until every task stopped; writing again retries it.
            let _ = fs::write(&file, value);
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }
}
