//! A container's state directory: `<root>/<id>/` holds `state.json` (what `state`
//! reports and what was decided), `status` (created, running, paused, stopped), `exit`
//! (the container process's end), and `ctl.sock` (the supervisor's control socket).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::OciError;

/// The default `--root`: `/run/hsb-oci` for root, else under `$XDG_RUNTIME_DIR`.
pub(crate) fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/run/hsb-oci");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("hsb-oci"),
        _ => std::env::temp_dir().join(format!("hsb-oci-{}", nix::unistd::geteuid())),
    }
}

/// Checks a container id as runc does: letters, digits, `_`, `+`, `-`, `.`, not `.` or
/// `..`, at most 1024 bytes.
pub(crate) fn check_id(id: &str) -> Result<(), OciError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(OciError::msg(format!(
            "invalid container id format: {id:?}"
        )))
    }
}

/// What `create` recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) id: String,
    pub(crate) bundle: PathBuf,
    pub(crate) created: String,
    /// The supervisor: the container's process as the engine sees it.
    pub(crate) pid: i32,
    /// Its start time (field 22 of /proc/PID/stat), against pid reuse.
    pub(crate) pid_start: u64,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) isolation: String,
    pub(crate) decision: serde_json::Value,
    pub(crate) enforcement: serde_json::Value,
    /// What config.json asked that is enforced differently, in words.
    pub(crate) notes: Vec<String>,
    /// config.json's poststop hooks, run by `delete` (the bundle may be gone by then).
    #[serde(default)]
    pub(crate) poststop: Vec<super::hooks::Hook>,
}

/// How the container process ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Exit {
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
}

impl Exit {
    /// The status a shell would show (128+N for signal N).
    pub(crate) fn status(&self) -> i32 {
        match (self.code, self.signal) {
            (_, Some(s)) => 128 + s,
            (Some(c), None) => c,
            (None, None) => 255,
        }
    }
}

/// One container's directory.
#[derive(Debug, Clone)]
pub(crate) struct Dir {
    pub(crate) id: String,
    pub(crate) path: PathBuf,
}

impl Dir {
    pub(crate) fn new(root: &Path, id: &str) -> Result<Dir, OciError> {
        check_id(id)?;
        Ok(Dir {
            id: id.to_string(),
            path: root.join(id),
        })
    }

    /// Makes the directory; fails if the id is taken.
    pub(crate) fn claim(&self) -> Result<(), OciError> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                OciError::msg(format!(
                    "cannot create the state root {}: {e}",
                    parent.display()
                ))
            })?;
        }
        match std::fs::create_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(OciError::msg(format!(
                "container with id exists: {}",
                self.id
            ))),
            Err(e) => Err(OciError::msg(format!(
                "cannot create {}: {e}",
                self.path.display()
            ))),
        }
    }

    pub(crate) fn exists(&self) -> bool {
        self.path.join("state.json").exists() || self.path.join("status").exists()
    }

    /// The error for a container that is not there.
    pub(crate) fn missing(&self) -> OciError {
        OciError::msg(format!("container does not exist: {}", self.id))
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.path.join("ctl.sock")
    }

    pub(crate) fn write_file(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        let tmp = self.path.join(format!(".{name}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        drop(f);
        std::fs::rename(&tmp, self.path.join(name))
    }

    pub(crate) fn write_record(&self, r: &Record) -> std::io::Result<()> {
        self.write_file(
            "state.json",
            &serde_json::to_vec_pretty(r).unwrap_or_default(),
        )
    }

    pub(crate) fn record(&self) -> Result<Record, OciError> {
        let text = std::fs::read(self.path.join("state.json")).map_err(|_| self.missing())?;
        serde_json::from_slice(&text).map_err(|e| {
            OciError::msg(format!(
                "the state of container {} is unreadable: {e}",
                self.id
            ))
        })
    }

    /// The cgroup directories the supervisor made for `linux.cgroupsPath`, for `delete`
    /// to remove (written before anything that may fail, so a half-made container's go
    /// too).
    pub(crate) fn write_cgroups(&self, made: &[PathBuf]) -> std::io::Result<()> {
        self.write_file(
            "cgroups.json",
            &serde_json::to_vec(made).unwrap_or_default(),
        )
    }

    pub(crate) fn cgroups(&self) -> Vec<PathBuf> {
        std::fs::read(self.path.join("cgroups.json"))
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
            .unwrap_or_default()
    }

    /// Removes the cgroup directories of a container whose supervisor is gone without
    /// removing them (killed with SIGKILL, with the engine's shim or conmon) and that no
    /// `delete` reached: what each new `create` does for the containers of its root.
    /// The state stays for the engine to read; a directory still in use stays too.
    pub(crate) fn sweep_cgroups(root: &Path) {
        let Ok(entries) = std::fs::read_dir(root) else {
            return;
        };
        for e in entries.flatten() {
            let d = Dir {
                id: e.file_name().to_string_lossy().into_owned(),
                path: e.path(),
            };
            let made = d.cgroups();
            // Without a record the container may be being made right now: left alone.
            if made.is_empty() || !d.record().is_ok_and(|r| !alive(r.pid, r.pid_start)) {
                continue;
            }
            super::cgroups::remove(&made);
            let left: Vec<PathBuf> = made.into_iter().filter(|p| p.exists()).collect();
            let _ = d.write_cgroups(&left);
        }
    }

    pub(crate) fn set_status(&self, status: &str) {
        let _ = self.write_file("status", status.as_bytes());
    }

    pub(crate) fn exit(&self) -> Option<Exit> {
        let t = std::fs::read(self.path.join("exit")).ok()?;
        serde_json::from_slice(&t).ok()
    }

    /// created, running, paused or stopped: the status file, unless the supervisor is
    /// gone (then stopped).
    pub(crate) fn status(&self, rec: &Record) -> String {
        if self.exit().is_some() || !alive(rec.pid, rec.pid_start) {
            return "stopped".into();
        }
        match std::fs::read_to_string(self.path.join("status")) {
            Ok(s) if ["created", "running", "paused", "stopped"].contains(&s.trim()) => {
                s.trim().to_string()
            }
            _ => "creating".into(),
        }
    }

    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Field 22 of /proc/PID/stat: when the process started (clock ticks after boot).
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` that started at `start` is still there (not a zombie).
pub(crate) fn alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut f = rest.split_whitespace();
    let zombie = matches!(f.next(), Some("Z" | "X"));
    !zombie && start_time(pid) == Some(start)
}

/// Now, as RFC 3339 in UTC with nanoseconds (as runc writes `created`).
pub(crate) fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Writes `pid` to `path` as runc does (no newline), atomically.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<(), OciError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.hsb-tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| OciError::msg(format!("cannot write the pid file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), "2024-01-02T03:04:05.123456789Z".len(), "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }

    #[test]
    fn own_process_is_alive() {
        let pid = std::process::id() as i32;
        let st = start_time(pid).unwrap();
        assert!(alive(pid, st));
        assert!(!alive(pid, st + 1));
    }
}
