//! `hsb`: the hybrid-sandbox command line.
//!
//! Exit status of `hsb run`: the workload's own code; 128+N when it died of signal N;
//! 124 on timeout; 125 when the sandbox could not be set up (reason on stderr, or in the
//! JSON with `--json`); 126 when the program cannot be executed; 127 when it is not found.
//! `hsb sandbox exec` exits the same way.

mod cli;
mod image_cmd;
mod oci;
mod policy_cmd;
mod probe_cmd;
mod run_cmd;
mod sandbox_cmd;
mod sandbox_cp;
mod sandbox_exec;
mod serve_cmd;
mod template_cmd;
mod terminal;

use clap::Parser;

fn main() {
    // An engine calls the runtime by its binary name (`hsb-oci`, `hsb-oci-container`,
    // `hsb-oci-microvm`), or `hsb oci ...`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(fixed) = args
        .first()
        .and_then(|a| a.to_str())
        .and_then(oci::runtime_name)
    {
        args[0] = "hsb oci".into();
        std::process::exit(oci::main(args, fixed));
    }
    if args.get(1).is_some_and(|a| a == "oci") {
        let mut rest = vec![std::ffi::OsString::from("hsb oci")];
        rest.extend(args.drain(2..));
        std::process::exit(oci::main(rest, None));
    }
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 125,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if std::env::var_os("HSB_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("HSB_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    if !matches!(cli.command, cli::Command::Serve(_)) {
        default_sigpipe();
    }
    let code = match cli.command {
        cli::Command::Run(args) => run_cmd::run(*args),
        cli::Command::Probe(args) => probe_cmd::run(args),
        cli::Command::Policy(cmd) => policy_cmd::run(cmd),
        cli::Command::Image(cmd) => image_cmd::run(cmd),
        cli::Command::Serve(args) => serve_cmd::run(*args),
        cli::Command::Sandbox(args) => sandbox_cmd::run(*args),
        cli::Command::Template(cmd) => template_cmd::run(cmd),
    };
    std::process::exit(code);
}

/// A command whose output goes to a pipe ends quietly when the reader stops reading
/// (`hsb run --json | head`), as every Unix filter does, instead of panicking on the
/// first write after it (Rust ignores SIGPIPE, so `println!` panics on EPIPE). Not for
/// `hsb serve`, whose clients may close their sockets at any time, nor for `hsb oci`,
/// whose supervisor outlives the command. Sandboxes are torn down as after any death
/// of the caller (parent-death signal, the VM's thread ends with the process).
fn default_sigpipe() {
    // SAFETY: SIG_DFL is a valid disposition for SIGPIPE; no handler is installed, and
    // this runs on the main thread before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
