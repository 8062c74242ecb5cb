//! `hsb run`.

use std::io::Write;

use hybrid_sandbox::{Error, Mount, Outcome, Sandbox, SpawnError, Stdin, StreamKind, Workload};

use crate::cli::RunArgs;
use crate::terminal::Neutraliser;

/// Prints an error the way the caller asked (text on stderr, or JSON on stdout) and
/// returns the exit status.
pub(crate) fn fail(err: &Error, json: bool) -> i32 {
    eprintln!("hsb: {}", err.chain());
    if json {
        let v = serde_json::json!({
            "error": { "kind": err.kind(), "message": err.chain() },
            "exit_status": err.exit_status(),
        });
        println!("{v}");
    }
    err.exit_status()
}

pub(crate) fn usage_error(msg: String, json: bool) -> i32 {
    eprintln!("hsb: {msg}");
    if json {
        println!(
            "{}",
            serde_json::json!({ "error": { "kind": "usage", "message": msg }, "exit_status": 125 })
        );
    }
    125
}

fn workload(args: &RunArgs) -> Result<Workload, String> {
    let mut w = match Workload::from_argv(args.argv.iter().cloned()) {
        Some(w) => w,
        None if args.image.is_some() => Workload::default(),
        None => return Err("no program given".into()),
    };
    w.image = args.image.clone();
    w.image_limits = args.image_limits.limits();
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    for spec in &args.mounts {
        let mut m = Mount::parse_spec(spec)?;
        if m.source.is_relative() {
            m.source = cwd.join(&m.source);
        }
        w.mounts.push(m);
    }
    w.tmpfs = args.tmpfs.clone();
    w.env.extend(args.env.iter().cloned());
    w.labels.extend(args.labels.iter().cloned());
    w.cwd = args.cwd.clone();
    w.profile = args.workload.clone();
    w.isolation = args.isolation;
    w.network = args.network;
    w.egress.allow = args.allow.clone();
    w.egress.deny = args.deny.clone();
    w.egress.expose = args.expose.clone();
    w.egress.secrets = args.secrets.clone();
    for n in &args.needs {
        w = w.need(*n);
    }
    w.limits.memory = args.memory;
    w.limits.wall_time = args.wall_time;
    w.limits.cpu_time = args.cpu_time;
    w.limits.pids = args.pids;
    w.limits.cpus = args.cpus;
    w.limits.output = args.output;
    w.stdin = match &args.stdin {
        None => Stdin::Null,
        Some(p) if p.as_os_str() == "-" => Stdin::Stream,
        Some(p) => {
            Stdin::Bytes(std::fs::read(p).map_err(|e| format!("--stdin {}: {e}", p.display()))?)
        }
    };
    Ok(w)
}

pub(crate) fn run(args: RunArgs) -> i32 {
    if args.template.is_some() {
        return crate::template_cmd::run_template(args);
    }
    let json = args.json;
    let w = match workload(&args) {
        Ok(w) => w,
        Err(msg) => return usage_error(msg, json),
    };
    let sandbox = match crate::cli::sandbox(args.policy.as_deref(), args.floor.as_deref()) {
        Ok(sb) => sb,
        Err(e) => return fail(&e, json),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&Error::Runtime(e), json),
    };
    let shown = Shown::for_this_process(args.raw_output);
    match rt.block_on(execute(&sandbox, w, json, shown)) {
        Ok(outcome) => {
            if json {
                match serde_json::to_string(&outcome) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("hsb: cannot write the outcome as JSON: {e}"),
                }
            } else if !outcome.success() {
                note_ending(&outcome);
            }
            outcome.shell_status()
        }
        Err(e) => {
            let status = fail(&e, json);
            if let (Error::Spawn(SpawnError::ProgramNotFound(program)), None) = (&e, &args.image) {
                if let Some(hint) = missing_program_hint(program) {
                    eprintln!("hsb: hint: {hint}");
                }
            }
            status
        }
    }
}

/// When a program the sandbox did not find is a file on this host, how to let the
/// sandbox see it: it sees only its mounts, not the caller's directories. (Only `hsb
/// run` says it: it runs on the caller's own host, so nothing is told of another's.)
fn missing_program_hint(program: &str) -> Option<String> {
    use std::path::{Path, PathBuf};
    let is_file = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file());
    if !program.contains('/') {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .filter(|d| d.is_absolute())
                .map(|d| d.join(program))
                .find(|p| is_file(p))
        })?;
        let dir = found.parent()?;
        return Some(format!(
            "`{program}` is {} on this host, in a directory the sandbox does not see: \
             mount it, e.g. `--mount {}:{}`, and run it by that path",
            found.display(),
            dir.display(),
            dir.display()
        ));
    }
    let cwd = std::env::current_dir().ok()?;
    let host: PathBuf = if Path::new(program).is_absolute() {
        PathBuf::from(program)
    } else {
        cwd.join(program)
    };
    if !is_file(&host) {
        return None;
    }
    if Path::new(program).is_absolute() {
        let dir = host.parent().filter(|d| d.parent().is_some());
        let what = dir.unwrap_or(&host).display();
        return Some(format!(
            "`{program}` is a file on this host, but the sandbox sees only its own mounts: \
             mount it, e.g. `--mount {what}:{what}` (read-only; `:rw` to let it write)"
        ));
    }
    Some(format!(
        "`{program}` is a file under this directory ({}) on the host, which the sandbox \
         does not see: mount it, e.g. `--mount {}:{} --cwd {}` (read-only; `:rw` to let \
         it write)",
        cwd.display(),
        cwd.display(),
        cwd.display(),
        cwd.display()
    ))
}

/// Says on stderr why the run ended, when it did not simply exit (limits, signals).
pub(crate) fn note_ending(o: &Outcome) {
    use hybrid_sandbox::Termination::*;
    let msg = match o.termination {
        Exited => return,
        Signaled => format!(
            "the workload was killed by signal {}",
            o.signal.unwrap_or(0)
        ),
        Timeout => "wall-time limit reached; the sandbox was killed".into(),
        MemoryLimit => "memory limit reached".into(),
        CpuLimit => "CPU-time limit reached".into(),
        PidsLimit => "process limit reached; the sandbox was killed".into(),
        OutputLimit => "output limit reached; the sandbox was killed".into(),
        // In the micro-VM the workload makes no host syscall: the VMM did (a bug in
        // it, or an attack on it), and its stderr says which call.
        PolicyViolation if o.isolation == hybrid_sandbox::Isolation::MicroVm => {
            "the micro-VM's VMM made a host system call off its seccomp allowlist (a VMM fault, not the workload's); the run was ended".into()
        }
        PolicyViolation => "the workload made a forbidden system call and was killed".into(),
        Killed => "killed".into(),
    };
    eprintln!("hsb: {msg} ({})", o.termination);
}

/// Which of hsb's own output streams get the workload's output in visible form (those
/// that are terminals, unless `--raw-output`): see [`crate::terminal`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown {
    stdout: bool,
    stderr: bool,
}

impl Shown {
    pub(crate) fn for_this_process(raw: bool) -> Shown {
        use std::io::IsTerminal;
        Shown {
            stdout: !raw && std::io::stdout().is_terminal(),
            stderr: !raw && std::io::stderr().is_terminal(),
        }
    }
}

/// Writes the workload's output chunks to hsb's stdout and stderr, each through a
/// [`Neutraliser`] when it goes to a terminal.
pub(crate) struct Pump {
    out: Option<Neutraliser>,
    err: Option<Neutraliser>,
}

impl Pump {
    pub(crate) fn new(shown: Shown) -> Pump {
        Pump {
            out: shown.stdout.then(Neutraliser::default),
            err: shown.stderr.then(Neutraliser::default),
        }
    }

    pub(crate) fn write(&mut self, stream: StreamKind, data: &[u8]) {
        let _ = match stream {
            StreamKind::Stdout => {
                let data = filtered(&mut self.out, data);
                let mut o = std::io::stdout().lock();
                o.write_all(&data).and_then(|_| o.flush())
            }
            StreamKind::Stderr => std::io::stderr()
                .lock()
                .write_all(&filtered(&mut self.err, data)),
        };
    }

    /// Flushes what the filters held back and says, once, what was shown.
    pub(crate) fn finish(mut self) {
        if let Some(n) = self.out.as_mut() {
            let rest = n.finish();
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(&rest).and_then(|_| o.flush());
        }
        if let Some(n) = self.err.as_mut() {
            let _ = std::io::stderr().lock().write_all(&n.finish());
        }
        let count: u64 = [&self.out, &self.err]
            .into_iter()
            .flatten()
            .map(|n| n.neutralised)
            .sum();
        if count > 0 {
            eprintln!(
                "hsb: {count} control character(s) in the workload's output were shown as text \
                 (^[ is ESC), not sent to the terminal; --raw-output passes them through"
            );
        }
    }
}

fn filtered<'a>(n: &mut Option<Neutraliser>, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    match n {
        Some(n) => std::borrow::Cow::Owned(n.push(data)),
        None => std::borrow::Cow::Borrowed(data),
    }
}

async fn execute(
    sandbox: &Sandbox,
    w: Workload,
    json: bool,
    shown: Shown,
) -> Result<Outcome, Error> {
    let streaming_stdin = w.stdin == Stdin::Stream;
    let mut exec = sandbox.spawn(w).await?;
    for p in exec.exposed_ports() {
        eprintln!(
            "hsb: the sandbox's port {} is at {}",
            p.sandbox_port, p.host
        );
    }
    if streaming_stdin {
        if let Some(writer) = exec.take_stdin() {
            // hsb's own stdin, read on a thread (stdin may be a terminal).
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buf = vec![0u8; 64 * 1024];
                let mut input = std::io::stdin().lock();
                while let Ok(n) = input.read(&mut buf) {
                    if n == 0 || writer.blocking_write(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
        }
    }
    if !json {
        if let Some(mut out) = exec.take_output() {
            let pump = tokio::spawn(async move {
                let mut pump = Pump::new(shown);
                while let Some(chunk) = out.recv().await {
                    pump.write(chunk.stream, &chunk.data);
                }
                pump.finish();
            });
            let outcome = exec.wait().await.map_err(Error::Run);
            // The stream ends when the supervisor drops its sender.
            drop(exec);
            let _ = pump.await;
            return outcome;
        }
    }
    exec.wait().await.map_err(Error::Run)
}
