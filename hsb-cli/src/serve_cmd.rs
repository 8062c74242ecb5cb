//! `hsb serve`.

use std::path::PathBuf;

use clap::Args;
use hsb_server::{AllowedMount, Config, Listen, Tokens};

/// Serve live sandboxes over an HTTP/1.1 JSON API (GET /openapi.json describes it).
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where to listen: unix:PATH, or tcp:HOST:PORT (needs --token-file; TLS with
    /// --tls-cert and --tls-key) [default:
    /// unix:/run/hybrid-sandbox/hsb.sock for root, unix:$XDG_RUNTIME_DIR/hsb.sock
    /// otherwise].
    #[arg(long, value_name = "unix:PATH|tcp:HOST:PORT")]
    listen: Option<Listen>,
    /// Policy file every sandbox is created under; the embedded default when absent.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Operator floor file, on top of /etc/hybrid-sandbox/floor.toml when that exists.
    #[arg(long, value_name = "FILE")]
    floor: Option<PathBuf>,
    /// Bearer tokens, one per line (`TOKEN [NAME]`); the file must be private (mode 600).
    /// Needed for TCP; on a UNIX socket, callers without a token are known by their uid.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The server's TLS certificate chain, PEM (leaf first): a TCP listener then speaks
    /// only TLS (clients use https://HOST:PORT). Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1); keep it private.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Live sandboxes each token (or uid) may hold at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    quota: usize,
    /// Permission bits of the UNIX socket, in octal (660 lets the socket's group in).
    #[arg(long, value_name = "OCTAL", default_value = "600", value_parser = octal)]
    socket_mode: u32,
    /// A host directory whose contents clients may mount (read-only; `:rw` for
    /// read-write too). Without one, requests cannot mount host paths.
    #[arg(long = "allow-mount", value_name = "DIR[:rw]")]
    allow_mounts: Vec<String>,
    /// Where sandboxes paused to disk (`hsb sandbox pause --to-disk`) keep their memory:
    /// unnamed files, gone with the sandbox or the server [default: /var/tmp].
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<PathBuf>,
    /// The key snapshot files (`hsb sandbox snapshot-save`) are signed with and
    /// checked against when loaded: at least 32 bytes, in a private file (mode 600),
    /// as `head -c 32 /dev/urandom | base64 > FILE` makes. Servers given the same key
    /// load each other's files, and this one its own after a restart [default: a
    /// random key of this server's own].
    #[arg(long, value_name = "FILE")]
    snapshot_key: Option<PathBuf>,
    /// A key rotated out (a file as for --snapshot-key; repeatable): snapshot files
    /// signed with it still load, and come back signed with --snapshot-key when saved
    /// again. Drop it once its files are re-saved or not needed.
    #[arg(long, value_name = "FILE", requires = "snapshot_key")]
    snapshot_old_key: Vec<PathBuf>,
    /// Most bytes of data an uploaded snapshot file may hold (its memory's zero pages
    /// not counted).
    #[arg(long, value_name = "SIZE", default_value = "16G", value_parser = crate::cli::size)]
    snapshot_upload_limit: hybrid_sandbox::ByteSize,
}

fn octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("`{s}` is not permission bits in octal (such as 600)"))
}

fn allowed(spec: &str) -> Result<AllowedMount, String> {
    let (dir, rw) = match spec.strip_suffix(":rw") {
        Some(d) => (d, true),
        None => (spec.strip_suffix(":ro").unwrap_or(spec), false),
    };
    let dir =
        std::fs::canonicalize(dir).map_err(|e| format!("--allow-mount {spec}: {dir}: {e}"))?;
    if !dir.is_dir() {
        return Err(format!("--allow-mount {spec}: not a directory"));
    }
    if dir == std::path::Path::new("/") {
        return Err(format!(
            "--allow-mount {spec}: the whole host cannot be offered; name a directory"
        ));
    }
    Ok(AllowedMount { dir, rw })
}

fn config(args: ServeArgs) -> Result<Config, String> {
    let listen = match args.listen {
        Some(l) => l,
        None => Listen::Unix(hsb_client::default_socket()?),
    };
    let sandbox = crate::cli::sandbox(args.policy.as_deref(), args.floor.as_deref())
        .map_err(|e| e.chain())?;
    let mut c = Config::new(listen, sandbox);
    if let Some(f) = &args.token_file {
        c.tokens = Some(Tokens::from_file(f).map_err(|e| {
            let mut m = e.to_string();
            if let Some(s) = std::error::Error::source(&e) {
                m = format!("{m}: {s}");
            }
            m
        })?);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        c.tls = Some(hsb_server::Tls::from_pem(cert, key).map_err(|e| e.to_string())?);
    }
    c.quota = args.quota;
    if let Some(dir) = args.spill_dir {
        if !dir.is_dir() {
            return Err(format!(
                "--spill-dir {}: not a directory (name an existing directory on a disk)",
                dir.display()
            ));
        }
        c.spill_dir = dir;
    }
    if let Some(k) = &args.snapshot_key {
        c.snapshot_key = Some(hsb_server::SnapshotKey::from_file(k)?);
    }
    c.snapshot_old_keys = args
        .snapshot_old_key
        .iter()
        .map(|k| hsb_server::SnapshotKey::from_file_of(k, "--snapshot-old-key"))
        .collect::<Result<_, _>>()?;
    c.snapshot_upload_limit = args.snapshot_upload_limit.0;
    c.socket_mode = args.socket_mode;
    c.allowed_mounts = args
        .allow_mounts
        .iter()
        .map(|s| allowed(s))
        .collect::<Result<_, _>>()?;
    Ok(c)
}

pub(crate) fn run(args: ServeArgs) -> i32 {
    let config = match config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hsb: {e}");
            return 125;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("hsb-serve")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hsb: creating the async runtime: {e}");
            return 125;
        }
    };
    let tls = config.tls.clone();
    rt.block_on(async move {
        let server = match hsb_server::bind(config).await {
            Ok(s) => s,
            Err(e) => {
                let mut m = e.to_string();
                if let Some(s) = std::error::Error::source(&e) {
                    m = format!("{m}: {s}");
                }
                eprintln!("hsb: {m}");
                return 125;
            }
        };
        let (mut term, mut int) = match (
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()),
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("hsb: installing signal handlers: {e}");
                return 125;
            }
        };
        // With TLS, SIGHUP reads the certificate and key again (renewed on disk: no
        // restart, which would destroy every sandbox). Without, it ends the server as
        // SIGTERM does, destroying every sandbox (its default action killed the server
        // at once: a paused container's processes stayed frozen).
        let mut hup_ends = None;
        if tls.is_none() {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(h) => hup_ends = Some(h),
                Err(e) => {
                    eprintln!("hsb: installing signal handlers: {e}");
                    return 125;
                }
            }
        }
        if let Some(tls) = tls {
            let mut hup =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                    Ok(h) => h,
                    Err(e) => {
                        eprintln!("hsb: installing signal handlers: {e}");
                        return 125;
                    }
                };
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match tls.reload() {
                        Ok(()) => eprintln!("hsb: SIGHUP: TLS certificate and key read again"),
                        Err(e) => {
                            eprintln!("hsb: SIGHUP: {e}; still serving the previous certificate")
                        }
                    }
                }
            });
        }
        // Tests and supervisors wait for this line.
        println!("hsb: serving on {}", server.address());
        if server.tls() {
            if let Some(a) = server.address().strip_prefix("tcp:") {
                eprintln!("hsb: TLS only: clients connect to https://{a} (SIGHUP reloads the certificate)");
            }
        }
        let shutdown = async move {
            let hup = async {
                match hup_ends.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup => {}
            }
            eprintln!("hsb: stopping: destroying every sandbox");
        };
        match server.run(shutdown).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("hsb: serving: {e}");
                1
            }
        }
    })
}
