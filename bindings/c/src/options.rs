//! `hsb_run_options`: what a run adds to its policy's profile.

use std::ffi::{c_char, c_int};
use std::path::PathBuf;
use std::time::Duration;

use hybrid_sandbox::network::{HostRule, SecretRequest};
use hybrid_sandbox::units::{parse_duration, Cpus};
use hybrid_sandbox::{ByteSize, IsolationRequest, Mount, Need, Network, Stdin, Tmpfs, Workload};

use crate::error::{hsb_error, hsb_status, Failure};
use crate::ffi;

/// Options of a run: isolation, profile, stdin, environment, mounts, labels, limits and
/// network. Created empty (everything from the policy), filled with the setters, and
/// reusable for many runs. A run reads it; it must not be changed while a run uses it.
#[derive(Debug, Default, Clone)]
pub struct hsb_run_options {
    /// Every field but the program and its arguments.
    pub(crate) template: Workload,
}

impl hsb_run_options {
    /// The workload to run `argv` with these options.
    pub(crate) fn workload(&self, argv: Vec<String>) -> Workload {
        let mut w = self.template.clone();
        let mut it = argv.into_iter();
        w.program = it.next().unwrap_or_default();
        w.args = it.collect();
        w
    }
}

/// New, empty run options; free them with `hsb_run_options_free`. NULL only on an
/// internal error.
#[no_mangle]
pub extern "C" fn hsb_run_options_new() -> *mut hsb_run_options {
    ffi::value(std::ptr::null_mut(), || Box::into_raw(Box::default()))
}

/// Frees run options. NULL is ignored.
///
/// # Safety
/// `o` is NULL or options from `hsb_run_options_new`, not yet freed, that no run is
/// using; they are not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_free(o: *mut hsb_run_options) {
    // SAFETY: the caller hands over NULL or live options it owns (contract above).
    unsafe { ffi::free(o) }
}

/// Runs a setter: checks `o`, catches panics, reports through `err`.
///
/// # Safety
/// `o` is NULL or live options that nothing else uses during the call; `err` is NULL or
/// valid for writing one pointer.
unsafe fn set(
    o: *mut hsb_run_options,
    err: *mut *mut hsb_error,
    f: impl FnOnce(&mut Workload) -> Result<(), Failure>,
) -> hsb_status {
    let body = || {
        // SAFETY: forwarded from the caller: NULL or live options used by nobody else.
        let o = unsafe { ffi::handle_mut(o, "options") }?;
        f(&mut o.template)
    };
    // SAFETY: forwarded from the caller: `err` is NULL or valid for writing.
    unsafe { ffi::call(err, body) }
}

/// Runs a setter whose one argument is an optional C string (`what` names it in
/// errors): NULL gives `None`.
///
/// # Safety
/// As for `set`; `p` is NULL or a NUL-terminated string.
unsafe fn set_opt_text(
    o: *mut hsb_run_options,
    err: *mut *mut hsb_error,
    p: *const c_char,
    what: &str,
    f: impl FnOnce(&mut Workload, Option<&str>) -> Result<(), Failure>,
) -> hsb_status {
    let g = |w: &mut Workload| {
        // SAFETY: `p` is NULL or a NUL-terminated string (contract above).
        let text = unsafe { ffi::opt_text(p, what) }?;
        f(w, text)
    };
    // SAFETY: `o` and `err` are forwarded from the caller, who vouches for them.
    unsafe { set(o, err, g) }
}

/// Asks for an isolation level: `"container"`, `"microvm"` or `"auto"`; NULL lets the
/// policy decide (the default).
///
/// # Safety
/// `o` is NULL or live options not used elsewhere during the call; `isolation` is NULL
/// or a NUL-terminated string; `err` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_isolation(
    o: *mut hsb_run_options,
    isolation: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload, text: Option<&str>| {
        w.isolation = text
            .map(|t| t.parse::<IsolationRequest>().map_err(Failure::invalid))
            .transpose()?;
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded.
    unsafe { set_opt_text(o, err, isolation, "isolation", f) }
}

/// Names the policy profile to use (the CLI's `--workload`); NULL for the default.
///
/// # Safety
/// As for `hsb_run_options_set_isolation`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_workload(
    o: *mut hsb_run_options,
    profile: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload, profile: Option<&str>| {
        w.profile = profile.map(str::to_owned);
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded.
    unsafe { set_opt_text(o, err, profile, "profile", f) }
}

/// Runs the workload on an OCI image's root filesystem: a name in the image store
/// (`hsb image import`), or the path of an OCI layout directory or a `docker save`
/// tarball; NULL for the policy's (the default). As with `hsb run --image`, the image's
/// `ENTRYPOINT`, `ENV`, `WORKDIR` and `USER` apply and the run's `argv` replaces its
/// `CMD`; options set here (environment, working directory) beat the image's.
///
/// # Safety
/// As for `hsb_run_options_set_isolation`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_image(
    o: *mut hsb_run_options,
    image: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload, image: Option<&str>| {
        if image == Some("") {
            return Err(Failure::invalid(
                "image: empty name (NULL means the policy's)",
            ));
        }
        w.image = image.map(str::to_owned);
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded.
    unsafe { set_opt_text(o, err, image, "image", f) }
}

/// Declares something the workload needs: `"network"` or `"full_linux"` (the CLI's
/// `--need`). With `auto` isolation the policy sends the workload where that exists,
/// or refuses the run when its rules forbid it; an explicit isolation that lacks it
/// fails the run. Adding the same need twice is the same as once.
///
/// # Safety
/// As for `hsb_run_options_set_isolation`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_add_need(
    o: *mut hsb_run_options,
    need: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload| {
        // SAFETY: `need` is NULL or a NUL-terminated string (contract above).
        let need = unsafe { ffi::text(need, "need") }?;
        let need = need.parse::<Need>().map_err(Failure::invalid)?;
        if !w.needs.contains(&need) {
            w.needs.push(need);
        }
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded to `set`.
    unsafe { set(o, err, f) }
}

/// Sets the bytes the workload reads on its stdin (copied); `len` 0 gives an empty
/// stdin. Without it, stdin is /dev/null.
///
/// # Safety
/// `o` is NULL or live options not used elsewhere during the call; `data` is NULL or
/// valid for reading `len` bytes; `err` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_stdin(
    o: *mut hsb_run_options,
    data: *const u8,
    len: usize,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload| {
        // SAFETY: `data` is NULL or valid for `len` bytes (contract above).
        let data = unsafe { ffi::bytes(data, len, "stdin data") }?;
        w.stdin = Stdin::Bytes(data.to_vec());
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded to `set`.
    unsafe { set(o, err, f) }
}

/// Reads a `KEY`/`VALUE` pair of C strings.
///
/// # Safety
/// Both are NULL or NUL-terminated strings.
unsafe fn key_value(
    key: *const c_char,
    value: *const c_char,
    what: &str,
) -> Result<(String, String), Failure> {
    // SAFETY: forwarded from the caller.
    let k = unsafe { ffi::text(key, &format!("{what} key")) }?;
    // SAFETY: forwarded from the caller.
    let v = unsafe { ffi::text(value, &format!("{what} value")) }?;
    if k.is_empty() || k.contains('=') {
        return Err(Failure::invalid(format!(
            "{what} key `{k}` must be non-empty and without `=`"
        )));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Sets an environment variable of the workload (nothing of the caller's environment is
/// inherited).
///
/// # Safety
/// `o` is NULL or live options not used elsewhere during the call; `key` and `value` are
/// NULL or NUL-terminated strings; `err` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_env(
    o: *mut hsb_run_options,
    key: *const c_char,
    value: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload| {
        // SAFETY: `key` and `value` are NULL or NUL-terminated (contract above).
        let (k, v) = unsafe { key_value(key, value, "env") }?;
        w.env.insert(k, v);
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded to `set`.
    unsafe { set(o, err, f) }
}

/// Sets a label the policy's rules look at, such as `trust` = `untrusted`.
///
/// # Safety
/// As for `hsb_run_options_set_env`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_label(
    o: *mut hsb_run_options,
    key: *const c_char,
    value: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload| {
        // SAFETY: `key` and `value` are NULL or NUL-terminated (contract above).
        let (k, v) = unsafe { key_value(key, value, "label") }?;
        w.labels.insert(k, v);
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded to `set`.
    unsafe { set(o, err, f) }
}

/// Makes the host path `host` visible at `sandbox_path` inside the sandbox (NULL: the
/// same path), read-only unless `writable` is non-zero. A relative host path is taken
/// from the current directory.
///
/// # Safety
/// `o` is NULL or live options not used elsewhere during the call; `host` and
/// `sandbox_path` are NULL or NUL-terminated strings; `err` is NULL or valid for writing
/// one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_add_mount(
    o: *mut hsb_run_options,
    host: *const c_char,
    sandbox_path: *const c_char,
    writable: c_int,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload| {
        // SAFETY: `host` is NULL or a NUL-terminated string (contract above).
        let host = unsafe { ffi::text(host, "mount host path") }?;
        // SAFETY: `sandbox_path` is NULL or a NUL-terminated string (contract above).
        let target = unsafe { ffi::opt_text(sandbox_path, "mount sandbox path") }?;
        if host.is_empty() || target.is_some_and(str::is_empty) {
            return Err(Failure::invalid("mount paths must not be empty"));
        }
        let mut source = PathBuf::from(host);
        if source.is_relative() {
            let cwd = std::env::current_dir().map_err(|e| {
                Failure::invalid(format!(
                    "mount {host}: cannot read the current directory: {e}"
                ))
            })?;
            source = cwd.join(source);
        }
        let target = target.map_or_else(|| source.clone(), PathBuf::from);
        w.mounts.push(if writable != 0 {
            Mount::rw(source, target)
        } else {
            Mount::ro(source, target)
        });
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded to `set`.
    unsafe { set(o, err, f) }
}

/// Sets the working directory inside the sandbox; NULL for the profile's.
///
/// # Safety
/// As for `hsb_run_options_set_isolation`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_cwd(
    o: *mut hsb_run_options,
    cwd: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload, cwd: Option<&str>| {
        w.cwd = cwd.map(str::to_owned);
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded.
    unsafe { set_opt_text(o, err, cwd, "cwd", f) }
}

/// Sets the network: `"none"` (no interface), `"loopback"` or `"egress"` (the outside
/// world through the egress broker, by the profile's rules and the ones added with
/// `hsb_run_options_add_allow`...); NULL for the profile's.
///
/// # Safety
/// As for `hsb_run_options_set_isolation`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_network(
    o: *mut hsb_run_options,
    mode: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload, text: Option<&str>| {
        w.network = text
            .map(|t| t.parse::<Network>().map_err(Failure::invalid))
            .transpose()?;
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded.
    unsafe { set_opt_text(o, err, mode, "network", f) }
}

/// Sets one limit from text, as in policy files: `name` is `memory`, `wall_time`,
/// `cpu_time`, `pids`, `open_files`, `file_size`, `output`, `tmp_size` or `cpus`;
/// `value` a size (`"256MiB"`, bytes when bare), a duration (`"1.5s"`, `"500ms"`,
/// seconds when bare), a count, or CPUs (`"0.5"`, `"500m"`). Each limit set replaces the profile's (within the policy's floor).
///
/// # Safety
/// `o` is NULL or live options not used elsewhere during the call; `name` and `value`
/// are NULL or NUL-terminated strings; `err` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_limit(
    o: *mut hsb_run_options,
    name: *const c_char,
    value: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload| {
        // SAFETY: `name` is NULL or a NUL-terminated string (contract above).
        let name = unsafe { ffi::text(name, "limit name") }?;
        // SAFETY: `value` is NULL or a NUL-terminated string (contract above).
        let value = unsafe { ffi::text(value, "limit value") }?;
        set_limit_text(w, name, value)
    };
    // SAFETY: the pointers follow the contract above, forwarded to `set`.
    unsafe { set(o, err, f) }
}

pub(crate) fn set_limit_text(w: &mut Workload, name: &str, value: &str) -> Result<(), Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::invalid(format!("limit {name}: {e}"));
    let size = || ByteSize::parse(value).map_err(|e| bad(&e));
    let duration = || parse_duration(value).map_err(|e| bad(&e));
    let count = || value.trim().parse::<u64>().map_err(|e| bad(&e));
    let l = &mut w.limits;
    match name {
        "memory" => l.memory = Some(size()?),
        "wall_time" => l.wall_time = Some(duration()?),
        "cpu_time" => l.cpu_time = Some(duration()?),
        "pids" => l.pids = Some(count()?),
        "open_files" => l.open_files = Some(count()?),
        "file_size" => l.file_size = Some(size()?),
        "output" => l.output = Some(size()?),
        "tmp_size" => l.tmp_size = Some(size()?),
        "cpus" => l.cpus = Some(Cpus::parse(value).map_err(|e| bad(&e))?),
        _ => {
            return Err(Failure::invalid(format!(
                "unknown limit `{name}` (use memory, wall_time, cpu_time, pids, open_files, \
                 file_size, output, tmp_size or cpus)"
            )))
        }
    }
    Ok(())
}

/// Sets a numeric limit: the closure stores it.
///
/// # Safety
/// As for [`set`].
unsafe fn set_number(
    o: *mut hsb_run_options,
    err: *mut *mut hsb_error,
    f: impl FnOnce(&mut Workload),
) -> hsb_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        set(o, err, |w| {
            f(w);
            Ok(())
        })
    }
}

/// Memory limit of the whole sandbox, in bytes.
///
/// # Safety
/// `o` is NULL or live options not used elsewhere during the call; `err` is NULL or
/// valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_memory(
    o: *mut hsb_run_options,
    bytes: u64,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: the pointers follow the contract above.
    unsafe { set_number(o, err, |w| w.limits.memory = Some(ByteSize(bytes))) }
}

/// Wall-clock limit in milliseconds; past it the run ends in `timeout`.
///
/// # Safety
/// As for `hsb_run_options_set_memory`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_wall_time_ms(
    o: *mut hsb_run_options,
    ms: u64,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: the pointers follow the contract above.
    unsafe {
        set_number(o, err, |w| {
            w.limits.wall_time = Some(Duration::from_millis(ms))
        })
    }
}

/// CPU-time limit of all the sandbox's processes, in milliseconds.
///
/// # Safety
/// As for `hsb_run_options_set_memory`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_cpu_time_ms(
    o: *mut hsb_run_options,
    ms: u64,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: the pointers follow the contract above.
    unsafe {
        set_number(o, err, |w| {
            w.limits.cpu_time = Some(Duration::from_millis(ms))
        })
    }
}

/// Maximum number of processes and threads alive at once.
///
/// # Safety
/// As for `hsb_run_options_set_memory`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_pids(
    o: *mut hsb_run_options,
    pids: u64,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: the pointers follow the contract above.
    unsafe { set_number(o, err, |w| w.limits.pids = Some(pids)) }
}

/// Output limit (stdout and stderr together), in bytes; past it the run ends in
/// `output_limit`.
///
/// # Safety
/// As for `hsb_run_options_set_memory`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_set_output_limit(
    o: *mut hsb_run_options,
    bytes: u64,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: the pointers follow the contract above.
    unsafe { set_number(o, err, |w| w.limits.output = Some(ByteSize(bytes))) }
}

/// Runs a setter whose one argument is a required C string (`what` names it in errors).
///
/// # Safety
/// As for `set`; `p` is NULL or a NUL-terminated string.
unsafe fn add_text(
    o: *mut hsb_run_options,
    err: *mut *mut hsb_error,
    p: *const c_char,
    what: &str,
    f: impl FnOnce(&mut Workload, &str) -> Result<(), Failure>,
) -> hsb_status {
    let g = |w: &mut Workload| {
        // SAFETY: `p` is NULL or a NUL-terminated string (contract above).
        let text = unsafe { ffi::text(p, what) }?;
        f(w, text)
    };
    // SAFETY: `o` and `err` are forwarded from the caller, who vouches for them.
    unsafe { set(o, err, g) }
}

/// Adds an empty in-memory filesystem: `"PATH[:size=SIZE][,mode=OCTAL]"` (Docker's
/// `--tmpfs` form, e.g. `"/run:size=64MiB,mode=755"`), charged to the sandbox.
///
/// # Safety
/// `o` is NULL or live options not used elsewhere during the call; `spec` is NULL or a
/// NUL-terminated string; `err` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_add_tmpfs(
    o: *mut hsb_run_options,
    spec: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload, spec: &str| {
        w.tmpfs
            .push(Tmpfs::parse_spec(spec).map_err(Failure::invalid)?);
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded.
    unsafe { add_text(o, err, spec, "tmpfs", f) }
}

/// An egress rule of kind `kind` (`allow`, `deny`), its errors naming both.
fn host_rule(kind: &str, rule: &str) -> Result<HostRule, Failure> {
    rule.parse::<HostRule>()
        .map_err(|e| Failure::invalid(format!("{kind} rule `{rule}`: {e}")))
}

/// Egress: adds an allow rule, `"HOST[:PORT]"` (a name, `*.suffix`, an IP address or
/// network), to the profile's (within the operator's floor).
///
/// # Safety
/// As for `hsb_run_options_add_tmpfs`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_add_allow(
    o: *mut hsb_run_options,
    rule: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload, rule: &str| {
        w.egress.allow.push(host_rule("allow", rule)?);
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded.
    unsafe { add_text(o, err, rule, "allow rule", f) }
}

/// Egress: adds a deny rule, `"HOST[:PORT]"`; deny rules win over allow rules.
///
/// # Safety
/// As for `hsb_run_options_add_tmpfs`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_add_deny(
    o: *mut hsb_run_options,
    rule: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload, rule: &str| {
        w.egress.deny.push(host_rule("deny", rule)?);
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded.
    unsafe { add_text(o, err, rule, "deny rule", f) }
}

/// Egress: makes a sandbox port (1-65535) reachable from the host, at a `127.0.0.1`
/// port hsb chooses (in the outcome's JSON, `network.exposed`).
///
/// # Safety
/// `o` is NULL or live options not used elsewhere during the call; `err` is NULL or
/// valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_add_expose(
    o: *mut hsb_run_options,
    port: u16,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload| {
        if port == 0 {
            return Err(Failure::invalid(
                "expose: port 0 is no port (give the sandbox port a server listens on, 1-65535)",
            ));
        }
        w.egress.expose.push(port);
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded to `set`.
    unsafe { set(o, err, f) }
}

/// Egress: a secret, `"NAME=ENV@HOST[,HOST...]"`: the sandbox's variable NAME holds a
/// placeholder; the broker puts the value of this process's variable ENV (read when the
/// run starts) only into requests to those hosts.
///
/// # Safety
/// As for `hsb_run_options_add_tmpfs`.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_options_add_secret(
    o: *mut hsb_run_options,
    spec: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let f = |w: &mut Workload, spec: &str| {
        w.egress
            .secrets
            .push(SecretRequest::parse_spec(spec).map_err(Failure::invalid)?);
        Ok(())
    };
    // SAFETY: the pointers follow the contract above, forwarded.
    unsafe { add_text(o, err, spec, "secret", f) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_as_text() {
        let mut w = Workload::default();
        set_limit_text(&mut w, "memory", "256MiB").unwrap();
        set_limit_text(&mut w, "wall_time", "1.5s").unwrap();
        set_limit_text(&mut w, "pids", "32").unwrap();
        assert_eq!(w.limits.memory, Some(ByteSize::mib(256)));
        assert_eq!(w.limits.wall_time, Some(Duration::from_millis(1500)));
        assert_eq!(w.limits.pids, Some(32));
        assert!(set_limit_text(&mut w, "memory", "12 parsecs").is_err());
        assert!(set_limit_text(&mut w, "pids", "-1").is_err());
        assert!(set_limit_text(&mut w, "speed", "1").is_err());
    }
}
