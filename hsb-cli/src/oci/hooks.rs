//! config.json's hooks, run as runc runs them: on the host, as the runtime's caller,
//! with the container's state on standard input.
//!
//! - `prestart` and `createRuntime` run during `create`, once the sandbox exists, in
//!   the runtime's own namespaces; the state's `pid` is the container's process as the
//!   engine sees it (the supervisor), whose network namespace is the container's. A
//!   failing one fails `create` and leaves nothing behind. This is how Docker sets up
//!   its networks (`libnetwork-setkey`).
//! - `poststart` runs after `start`, `poststop` after `delete`; a failing one is
//!   logged, as the spec asks.
//! - `createContainer` and `startContainer` would run inside the container's namespaces
//!   (on the sandbox's side of its walls): refused, naming the field.

use std::io::{Read as _, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::ConfigError;

/// One hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hook {
    /// Absolute host path of the program.
    pub(crate) path: PathBuf,
    /// Its argv (argv[0] included); `[path]` when the config gives none.
    pub(crate) args: Vec<String>,
    /// Its whole environment (`KEY=VALUE`).
    pub(crate) env: Vec<String>,
    /// Seconds it may run before it is killed (and fails).
    pub(crate) timeout: Option<u64>,
    /// Where it came from (`hooks.prestart[0]`), for errors.
    pub(crate) field: String,
}

/// The hooks of a config.json.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hooks {
    /// `prestart` then `createRuntime`.
    pub(crate) create: Vec<Hook>,
    pub(crate) poststart: Vec<Hook>,
    pub(crate) poststop: Vec<Hook>,
}

fn bad<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        field: field.into(),
        message: message.into(),
    })
}

/// Reads the `hooks` object.
pub(crate) fn parse(v: &Value) -> Result<Hooks, ConfigError> {
    let Some(o) = v.as_object() else {
        return bad("hooks", "must be an object");
    };
    let mut hooks = Hooks::default();
    // prestart first: runc runs the deprecated list before createRuntime.
    for kind in [
        "prestart",
        "createRuntime",
        "poststart",
        "poststop",
        "createContainer",
        "startContainer",
    ] {
        let Some(list) = o.get(kind) else { continue };
        let Some(list) = list.as_array() else {
            return bad(format!("hooks.{kind}"), "must be an array");
        };
        if list.is_empty() {
            continue;
        }
        if matches!(kind, "createContainer" | "startContainer") {
            return bad(
                format!("hooks.{kind}"),
                "runs inside the container's namespaces, on the sandbox's side of its walls, which hsb does not do (prestart, createRuntime, poststart and poststop run)",
            );
        }
        for (i, h) in list.iter().enumerate() {
            let hook = one(h, &format!("hooks.{kind}[{i}]"))?;
            match kind {
                "prestart" | "createRuntime" => hooks.create.push(hook),
                "poststart" => hooks.poststart.push(hook),
                _ => hooks.poststop.push(hook),
            }
        }
    }
    for k in o.keys() {
        if !matches!(
            k.as_str(),
            "prestart"
                | "createRuntime"
                | "poststart"
                | "poststop"
                | "createContainer"
                | "startContainer"
        ) {
            return bad(format!("hooks.{k}"), "not a hook list this runtime knows");
        }
    }
    Ok(hooks)
}

fn one(v: &Value, field: &str) -> Result<Hook, ConfigError> {
    let Some(o) = v.as_object() else {
        return bad(field, "must be an object");
    };
    let strings = |k: &str| -> Result<Vec<String>, ConfigError> {
        match o.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| {
                    s.as_str().map(str::to_string).ok_or_else(|| ConfigError {
                        field: format!("{field}.{k}"),
                        message: "must be an array of strings".into(),
                    })
                })
                .collect(),
            Some(_) => bad(format!("{field}.{k}"), "must be an array of strings"),
        }
    };
    let path = match o.get("path").and_then(Value::as_str) {
        Some(p) if p.starts_with('/') => PathBuf::from(p),
        Some(_) => return bad(format!("{field}.path"), "must be an absolute host path"),
        None => return bad(format!("{field}.path"), "missing"),
    };
    let mut args = strings("args")?;
    if args.is_empty() {
        args.push(path.display().to_string());
    }
    let env = strings("env")?;
    if let Some(e) = env.iter().find(|e| !e.contains('=')) {
        return bad(format!("{field}.env"), format!("`{e}` is not KEY=VALUE"));
    }
    let timeout = match o.get("timeout") {
        None => None,
        Some(t) => match t.as_u64() {
            Some(n) if n > 0 => Some(n),
            _ => {
                return bad(
                    format!("{field}.timeout"),
                    "must be a whole number of seconds above 0",
                )
            }
        },
    };
    for k in o.keys() {
        if !matches!(k.as_str(), "path" | "args" | "env" | "timeout") {
            return bad(format!("{field}.{k}"), "not supported by hsb");
        }
    }
    Ok(Hook {
        path,
        args,
        env,
        timeout,
        field: field.to_string(),
    })
}

/// Moves the calling thread into the network namespace `fd` (open in the forked
/// child, as it is in the parent for the whole spawn).
fn setns_net(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    // SAFETY: setns only reads the descriptor and changes this thread's namespace.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The state a hook reads on stdin.
pub(crate) fn state(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &std::path::Path,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": annotations,
    })
}

/// Runs `hooks` in order with `state` on stdin, each in the network namespace `netns`
/// when given (the runtime's own, when the calling process sits in the container's);
/// the first failure is returned, naming the hook, with what it wrote to stderr.
pub(crate) fn run(hooks: &[Hook], state: &Value, netns: Option<&OwnedFd>) -> Result<(), String> {
    let input = serde_json::to_vec(state).unwrap_or_default();
    for h in hooks {
        run_one(h, &input, netns)
            .map_err(|e| format!("{} ({}): {e}", h.field, h.path.display()))?;
    }
    Ok(())
}

fn run_one(h: &Hook, input: &[u8], netns: Option<&OwnedFd>) -> Result<(), String> {
    let mut cmd = Command::new(&h.path);
    cmd.arg0(&h.args[0])
        .args(&h.args[1..])
        .env_clear()
        .envs(h.env.iter().filter_map(|e| e.split_once('=')))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(ns) = netns {
        let fd = ns.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and calls only
        // setns(2), which is async-signal-safe and allocates nothing.
        unsafe {
            cmd.pre_exec(move || setns_net(fd));
        }
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start it: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its state is not an error (EPIPE).
        let _ = stdin.write_all(input);
    }
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::take(&mut s, 64 << 10).read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).trim().to_string()
    });
    let deadline = h.timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
            return Err(format!("timed out after {} s", h.timeout.unwrap_or(0)));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let said = reader.join().unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{status}{}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        ))
    }
}
