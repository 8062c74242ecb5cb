//! `--log FILE` and `--log-format text|json`, as engines read them: containerd's shim
//! takes the last `error` entry of a JSON log as the reason a command failed.

use std::io::Write;

use super::Runtime;

fn write(rt: &Runtime, level: &str, msg: &str) {
    let Some(path) = &rt.log else {
        return;
    };
    let time = super::state::now_rfc3339();
    let line = if rt.log_json {
        format!(
            "{}\n",
            serde_json::json!({ "level": level, "msg": msg, "time": time })
        )
    } else {
        format!("time=\"{time}\" level={level} msg={msg:?}\n")
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// An error: on stderr and in the log.
pub(crate) fn error(rt: &Runtime, msg: &str) {
    eprintln!("hsb oci: {msg}");
    write(rt, "error", msg);
}

/// What was decided (the isolation and its reasons, what is enforced differently):
/// always in the log, on stderr with `--debug`.
pub(crate) fn info(rt: &Runtime, msg: &str) {
    if rt.debug {
        eprintln!("hsb oci: {msg}");
    }
    write(rt, "info", msg);
}

/// Something that went wrong but does not fail the command (a poststart or poststop
/// hook): in the log, and on stderr with `stderr` (not the supervisor's: that is the
/// container's).
pub(crate) fn warn(rt: &Runtime, msg: &str, stderr: bool) {
    if stderr {
        eprintln!("hsb oci: warning: {msg}");
    }
    write(rt, "warning", msg);
}
