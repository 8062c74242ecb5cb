//! Python arguments to a [`Workload`]: argv, units, mounts, environment, stdin. Wrong
//! types raise `TypeError`, wrong values `ValueError`, each naming the argument.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hybrid_sandbox::network::{HostRule, SecretRequest};
use hybrid_sandbox::units::parse_duration;
use hybrid_sandbox::units::Cpus;
use hybrid_sandbox::{
    ByteSize, IsolationRequest, Mount, MountMode, Need, Network, Stdin, Tmpfs, Workload,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyString, PyTuple};

/// The `stdin` value that asks for a pipe written with `Process.write` (`PIPE`).
pub(crate) const PIPE: i64 = -1;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Text without NUL (which no argv, environment or path can hold).
fn text(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let s: String = if obj.is_instance_of::<PyString>() {
        obj.extract()?
    } else if obj.hasattr("__fspath__")? {
        let p = obj.call_method0("__fspath__")?;
        if !p.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(format!(
                "{what} must be a str, not a bytes path"
            )));
        }
        p.extract()?
    } else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a str, not {}",
            type_name(obj)
        )));
    };
    if s.contains('\0') {
        return Err(PyValueError::new_err(format!(
            "{what} contains a NUL character"
        )));
    }
    Ok(s)
}

/// argv: a list or tuple of str, the first the program.
pub(crate) fn argv(obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "argv must be a list of strings such as ['echo', 'hi'], not a {}",
            type_name(obj)
        )));
    }
    let items = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "argv must be a list of strings such as ['echo', 'hi'], not {}",
            type_name(obj)
        ))
    })?;
    let mut out = Vec::new();
    for (i, item) in items.enumerate() {
        out.push(text(&item?, &format!("argv[{i}]"))?);
    }
    match out.first() {
        None => Err(PyValueError::new_err(
            "argv is empty: it needs at least the program",
        )),
        Some(p) if p.is_empty() => Err(PyValueError::new_err("argv[0] (the program) is empty")),
        Some(_) => Ok(out),
    }
}

/// A duration: seconds (int or float), a string such as "1.5s", or a timedelta.
pub(crate) fn duration(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Duration> {
    let secs: f64 = if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be seconds or a string such as '1.5s', not a bool"
        )));
    } else if obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>() {
        obj.extract()?
    } else if obj.is_instance_of::<PyString>() {
        let s: String = obj.extract()?;
        return parse_duration(&s).map_err(|e| PyValueError::new_err(format!("{what}: {e}")));
    } else if obj.hasattr("total_seconds")? {
        obj.call_method0("total_seconds")?.extract()?
    } else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be seconds (int or float), a string such as '1.5s', or a timedelta, \
             not {}",
            type_name(obj)
        )));
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(PyValueError::new_err(format!(
            "{what} must be a finite number of seconds between 0 and 1e9, not {secs}"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A size: bytes (int) or a string such as "256MiB".
pub(crate) fn size(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<ByteSize> {
    if obj.is_instance_of::<PyString>() {
        let s: String = obj.extract()?;
        return ByteSize::parse(&s).map_err(|e| PyValueError::new_err(format!("{what}: {e}")));
    }
    Ok(ByteSize(count(
        obj,
        what,
        "bytes (int) or a string such as '256MiB'",
    )?))
}

/// A non-negative whole number.
pub(crate) fn count(obj: &Bound<'_, PyAny>, what: &str, expected: &str) -> PyResult<u64> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be {expected}, not {}",
            type_name(obj)
        )));
    }
    let n: i128 = obj.extract()?;
    u64::try_from(n).map_err(|_| {
        PyValueError::new_err(format!("{what} must be between 0 and 2**64-1, not {n}"))
    })
}

/// A list of str (not one str, which would be a list of characters); `example` shows
/// the expected form in errors.
fn text_list(obj: &Bound<'_, PyAny>, what: &str, example: &str) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a list of str, such as {example}, not a {}",
            type_name(obj)
        )));
    }
    let items = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be a list of str, such as {example}, not {}",
            type_name(obj)
        ))
    })?;
    let mut out = Vec::new();
    for (i, item) in items.enumerate() {
        out.push(text(&item?, &format!("{what}[{i}]"))?);
    }
    Ok(out)
}

/// A CPU share: a number of CPUs (int or float, `0.5`) or a string (`"1.5"`, `"500m"`).
fn cpus(obj: &Bound<'_, PyAny>) -> PyResult<Cpus> {
    let t = if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(
            "cpus must be a number of CPUs (such as 0.5) or a string such as '500m', not a bool",
        ));
    } else if obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        f.to_string()
    } else if obj.is_instance_of::<PyString>() {
        obj.extract()?
    } else {
        return Err(PyTypeError::new_err(format!(
            "cpus must be a number of CPUs (such as 0.5) or a string such as '500m', not {}",
            type_name(obj)
        )));
    };
    Cpus::parse(&t).map_err(|e| PyValueError::new_err(format!("cpus: {e}")))
}

/// Sandbox ports to expose: a list of ints from 1 to 65535.
fn ports(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u16>> {
    let items = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "expose must be a list of ports such as [8000], not {}",
            type_name(obj)
        ))
    })?;
    let mut out = Vec::new();
    for (i, item) in items.enumerate() {
        let n = count(&item?, &format!("expose[{i}]"), "a port (int)")?;
        match u16::try_from(n) {
            Ok(p) if p > 0 => out.push(p),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "expose[{i}] must be a port from 1 to 65535, not {n}"
                )))
            }
        }
    }
    Ok(out)
}

/// Secrets: a mapping of the sandbox's variable to "ENV@HOST[,HOST...]" (the value of
/// the host's ENV, sent only to those hosts).
fn secrets(obj: &Bound<'_, PyAny>) -> PyResult<Vec<SecretRequest>> {
    let map = string_map(obj, "secrets")?;
    map.iter()
        .map(|(name, spec)| {
            SecretRequest::parse_spec(&format!("{name}={spec}"))
                .map_err(|e| PyValueError::new_err(format!("secrets[{name:?}]: {e}")))
        })
        .collect()
}

/// A list of needs (`["network", "full_linux"]`), each once.
fn needs(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Need>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "needs must be a list, such as ['network'], not a str",
        ));
    }
    let items = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!("needs must be a list, not {}", type_name(obj)))
    })?;
    let mut out = Vec::new();
    for item in items {
        let need = choice::<Need>(&item?, "needs")?;
        if !out.contains(&need) {
            out.push(need);
        }
    }
    Ok(out)
}

/// A mapping of str to str (env, labels).
fn string_map(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<BTreeMap<String, String>> {
    let items = obj.call_method0("items").map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be a mapping of str to str, not {}",
            type_name(obj)
        ))
    })?;
    let mut out = BTreeMap::new();
    for item in items.try_iter()? {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        let key = text(&k, &format!("{what} key"))?;
        if key.is_empty() || key.contains('=') {
            return Err(PyValueError::new_err(format!(
                "{what} key {key:?} must be non-empty and without '='"
            )));
        }
        let value = text(&v, &format!("{what}[{key:?}]"))?;
        out.insert(key, value);
    }
    Ok(out)
}

/// A host path made absolute against the current directory.
fn host_path(path: String, what: &str) -> PyResult<PathBuf> {
    let p = PathBuf::from(path);
    if p.is_absolute() {
        return Ok(p);
    }
    let cwd = std::env::current_dir().map_err(|e| {
        PyValueError::new_err(format!("{what}: cannot read the current directory: {e}"))
    })?;
    Ok(cwd.join(p))
}

/// One mount: "HOST:SANDBOX[:ro|:rw]", a host path, or (host, sandbox[, "ro"|"rw"]).
fn mount(obj: &Bound<'_, PyAny>, i: usize) -> PyResult<Mount> {
    let what = format!("mounts[{i}]");
    let mut m = if obj.is_instance_of::<PyString>() {
        let spec: String = obj.extract()?;
        Mount::parse_spec(&spec).map_err(PyValueError::new_err)?
    } else if obj.is_instance_of::<PyTuple>() {
        let t = obj.cast::<PyTuple>()?;
        if !(2..=3).contains(&t.len()) {
            return Err(PyValueError::new_err(format!(
                "{what} must be (host, sandbox) or (host, sandbox, 'ro' | 'rw'), not a tuple of {}",
                t.len()
            )));
        }
        let source = text(&t.get_item(0)?, &format!("{what} host path"))?;
        let target = text(&t.get_item(1)?, &format!("{what} sandbox path"))?;
        let mode = match t.len() {
            3 => match text(&t.get_item(2)?, &format!("{what} mode"))?.as_str() {
                "ro" => MountMode::Ro,
                "rw" => MountMode::Rw,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "{what}: mode must be 'ro' or 'rw', not {other:?}"
                    )))
                }
            },
            _ => MountMode::Ro,
        };
        if source.is_empty() || target.is_empty() {
            return Err(PyValueError::new_err(format!(
                "{what}: paths must not be empty"
            )));
        }
        match mode {
            MountMode::Rw => Mount::rw(source, target),
            MountMode::Ro => Mount::ro(source, target),
        }
    } else if obj.hasattr("__fspath__")? {
        let source = text(obj, &what)?;
        let mut m = Mount::ro(source, "");
        m.target = None;
        m
    } else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be 'HOST:SANDBOX[:ro|:rw]', a path, or a (host, sandbox[, mode]) \
             tuple, not {}",
            type_name(obj)
        )));
    };
    m.source = host_path(m.source.to_string_lossy().into_owned(), &what)?;
    if m.target.is_none() {
        m.target = Some(m.source.clone());
    }
    Ok(m)
}

/// What the workload reads on stdin: None, bytes-like, str (UTF-8) or PIPE.
fn stdin(obj: &Bound<'_, PyAny>, allow_pipe: bool) -> PyResult<Stdin> {
    if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyByteArray>() {
        return Ok(Stdin::Bytes(obj.extract::<Vec<u8>>()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Stdin::Bytes(obj.extract::<String>()?.into_bytes()));
    }
    let is_pipe = obj.is_instance_of::<PyInt>()
        && !obj.is_instance_of::<PyBool>()
        && obj.extract::<i64>().ok() == Some(PIPE);
    if is_pipe {
        if allow_pipe {
            return Ok(Stdin::Stream);
        }
        return Err(PyValueError::new_err(
            "stdin=PIPE needs spawn(): run() has no way to write to it",
        ));
    }
    if let Ok(view) = obj.call_method0("__bytes__") {
        if view.is_instance_of::<PyBytes>() {
            return Ok(Stdin::Bytes(view.extract::<Vec<u8>>()?));
        }
    }
    if obj.hasattr("tobytes")? {
        return Ok(Stdin::Bytes(
            obj.call_method0("tobytes")?.extract::<Vec<u8>>()?,
        ));
    }
    Err(PyTypeError::new_err(format!(
        "stdin must be bytes, str, None{}, not {}",
        if allow_pipe { " or PIPE" } else { "" },
        type_name(obj)
    )))
}

fn choice<T: std::str::FromStr<Err = String>>(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<T> {
    let s = text(obj, what)?;
    s.parse::<T>()
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// The workload for `argv` with the options of a run (a dict of the keyword arguments
/// that are not None).
/// The limits of `update_limits(memory=, pids=, cpus=)` (`None`: unchanged).
pub(crate) fn live_limits<'py>(
    memory: Option<&Bound<'py, PyAny>>,
    pids: Option<&Bound<'py, PyAny>>,
    cpus_: Option<&Bound<'py, PyAny>>,
) -> PyResult<hybrid_sandbox::Limits> {
    fn given<'a, 'py>(o: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
        o.filter(|v| !v.is_none())
    }
    Ok(hybrid_sandbox::Limits {
        memory: given(memory).map(|v| size(v, "memory")).transpose()?,
        pids: given(pids)
            .map(|v| count(v, "pids", "a number of processes (int)"))
            .transpose()?,
        cpus: given(cpus_).map(cpus).transpose()?,
        ..Default::default()
    })
}

pub(crate) fn workload(
    argv_obj: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
    allow_pipe: bool,
) -> PyResult<Workload> {
    let mut w = Workload::from_argv(argv(argv_obj)?)
        .ok_or_else(|| PyValueError::new_err("argv is empty"))?;
    let Some(options) = options else {
        return Ok(w);
    };
    for (key, value) in options.iter() {
        if value.is_none() {
            continue;
        }
        let key: String = key.extract()?;
        if !apply(&mut w, &key, &value, allow_pipe)? {
            return Err(PyTypeError::new_err(format!("unexpected option {key:?}")));
        }
    }
    Ok(w)
}

/// A live sandbox's inputs (a run's options without argv and stdin) and its own:
/// `idle_timeout`, `lifetime`, `tmp_size`, `file_size`.
pub(crate) fn live_spec(
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Workload, hybrid_sandbox::LiveOptions)> {
    let mut w = Workload::default();
    let mut o = hybrid_sandbox::LiveOptions::default();
    let Some(options) = options else {
        return Ok((w, o));
    };
    for (key, value) in options.iter() {
        if value.is_none() {
            continue;
        }
        let key: String = key.extract()?;
        let v = &value;
        match key.as_str() {
            "idle_timeout" => o.idle_timeout = Some(duration(v, "idle_timeout")?),
            "lifetime" => o.lifetime = Some(duration(v, "lifetime")?),
            "tmp_size" => w.limits.tmp_size = Some(size(v, "tmp_size")?),
            "file_size" => w.limits.file_size = Some(size(v, "file_size")?),
            "stdin" => {
                return Err(PyTypeError::new_err(
                    "a live sandbox has no stdin: give it to each exec",
                ))
            }
            _ => {
                if !apply(&mut w, &key, v, false)? {
                    return Err(PyTypeError::new_err(format!("unexpected option {key:?}")));
                }
            }
        }
    }
    Ok((w, o))
}

/// An exec's request: `argv` and the options `env`, `cwd`, `stdin`, `timeout`,
/// `cpu_time`, `output_limit`, `tty` (rows, cols).
pub(crate) fn exec_request(
    argv_obj: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
    allow_pipe: bool,
) -> PyResult<hybrid_sandbox::ExecRequest> {
    let argv = argv(argv_obj)?;
    if argv.is_empty() {
        return Err(PyValueError::new_err("argv is empty"));
    }
    let mut r = hybrid_sandbox::ExecRequest::new(argv);
    let Some(options) = options else {
        return Ok(r);
    };
    for (key, value) in options.iter() {
        if value.is_none() {
            continue;
        }
        let key: String = key.extract()?;
        let v = &value;
        match key.as_str() {
            "env" => r.env = string_map(v, "env")?,
            "cwd" => r.cwd = Some(text(v, "cwd")?),
            "stdin" => r.stdin = stdin(v, allow_pipe)?,
            "timeout" => r.limits.wall_time = Some(duration(v, "timeout")?),
            "cpu_time" => r.limits.cpu_time = Some(duration(v, "cpu_time")?),
            "output_limit" => r.limits.output = Some(size(v, "output_limit")?),
            "tty" => {
                let (rows, cols): (u16, u16) = v.extract().map_err(|_| {
                    PyTypeError::new_err("tty must be (rows, cols), two ints from 1 to 65535")
                })?;
                if rows == 0 || cols == 0 {
                    return Err(PyValueError::new_err(
                        "tty rows and cols must be at least 1",
                    ));
                }
                r.tty = Some(hybrid_sandbox::TtySize { rows, cols });
            }
            other => return Err(PyTypeError::new_err(format!("unexpected option {other:?}"))),
        }
    }
    Ok(r)
}

/// Applies one run option to `w`; false for an option a run does not have.
fn apply(w: &mut Workload, key: &str, v: &Bound<'_, PyAny>, allow_pipe: bool) -> PyResult<bool> {
    {
        match key {
            "isolation" => w.isolation = Some(choice::<IsolationRequest>(v, "isolation")?),
            "workload" => w.profile = Some(text(v, "workload")?),
            "stdin" => w.stdin = stdin(v, allow_pipe)?,
            "timeout" => w.limits.wall_time = Some(duration(v, "timeout")?),
            "cpu_time" => w.limits.cpu_time = Some(duration(v, "cpu_time")?),
            "memory" => w.limits.memory = Some(size(v, "memory")?),
            "output_limit" => w.limits.output = Some(size(v, "output_limit")?),
            "pids" => w.limits.pids = Some(count(v, "pids", "a number of processes (int)")?),
            "open_files" => {
                w.limits.open_files = Some(count(v, "open_files", "a number of descriptors (int)")?)
            }
            "file_size" => w.limits.file_size = Some(size(v, "file_size")?),
            "tmp_size" => w.limits.tmp_size = Some(size(v, "tmp_size")?),
            "cpus" => w.limits.cpus = Some(cpus(v)?),
            "tmpfs" => {
                for (i, spec) in text_list(v, "tmpfs", "['/run:size=64MiB']")?
                    .iter()
                    .enumerate()
                {
                    w.tmpfs.push(
                        Tmpfs::parse_spec(spec)
                            .map_err(|e| PyValueError::new_err(format!("tmpfs[{i}]: {e}")))?,
                    );
                }
            }
            "allow" | "deny" => {
                let rules = text_list(v, key, "['pypi.org', '*.pythonhosted.org:443']")?;
                for (i, rule) in rules.iter().enumerate() {
                    let rule = rule
                        .parse::<HostRule>()
                        .map_err(|e| PyValueError::new_err(format!("{key}[{i}]: {e}")))?;
                    match key {
                        "allow" => w.egress.allow.push(rule),
                        _ => w.egress.deny.push(rule),
                    }
                }
            }
            "expose" => w.egress.expose.extend(ports(v)?),
            "secrets" => w.egress.secrets.extend(secrets(v)?),
            "network" => w.network = Some(choice::<Network>(v, "network")?),
            "cwd" => w.cwd = Some(text(v, "cwd")?),
            "env" => w.env = string_map(v, "env")?,
            "labels" => w.labels = string_map(v, "labels")?,
            "needs" => w.needs = needs(v)?,
            "image" => {
                let image = text(v, "image")?;
                if image.is_empty() {
                    return Err(PyValueError::new_err(
                        "image must not be empty (None means the policy's)",
                    ));
                }
                w.image = Some(image);
            }
            "mounts" => {
                if v.is_instance_of::<PyString>() {
                    return Err(PyTypeError::new_err(
                        "mounts must be a list, such as ['/data:/in'], not a str",
                    ));
                }
                let items = v.try_iter().map_err(|_| {
                    PyTypeError::new_err(format!("mounts must be a list, not {}", type_name(v)))
                })?;
                for (i, item) in items.enumerate() {
                    w.mounts.push(mount(&item?, i)?);
                }
            }
            _ => return Ok(false),
        }
    }
    Ok(true)
}
