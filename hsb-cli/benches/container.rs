//! Container start-to-exit of `/bin/true`, side by side with bubblewrap and a bare
//! fork/exec, and a static program through the CLI in each backend, in one run. Not a
//! test: it prints a table and the ratios.
//!
//! `cargo bench -p hsb-cli --bench container [-- RUNS]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybrid_sandbox::{Sandbox, Workload};

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = ms(v[v.len() / 2]);
    let p95 = ms(v[(v.len() * 95 / 100).min(v.len() - 1)]);
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    (median, p95, mean)
}

fn time_cmd(argv: &[&str], runs: usize) -> Vec<Duration> {
    (0..runs + 10)
        .map(|_| {
            let t = Instant::now();
            let st = Command::new(argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .expect("spawn");
            assert!(st.success(), "{argv:?} failed: {st}");
            t.elapsed()
        })
        .skip(10)
        .collect()
}

/// bwrap with the same view as the default policy's plan: every mount of the plan
/// (read-only, host symlinks kept as symlinks), fresh /proc, minimal /dev, tmpfs /tmp,
/// every namespace unshared, a new session, and death with its parent.
fn bwrap_argv(plan: &hybrid_sandbox::Plan) -> Vec<String> {
    let mut a: Vec<String> = [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
    ]
    .map(String::from)
    .to_vec();
    let mut mounts = plan.mounts.clone();
    mounts.sort_by_key(|m| m.target.components().count());
    for m in &mounts {
        let (src, dst) = (
            m.source.display().to_string(),
            m.target.display().to_string(),
        );
        match std::fs::symlink_metadata(&m.source) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let text = std::fs::read_link(&m.source).expect("readlink");
                a.extend(["--symlink".into(), text.display().to_string(), dst]);
            }
            Ok(_) => a.extend(["--ro-bind".into(), src, dst]),
            Err(_) => {}
        }
    }
    a.extend(
        [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "/bin/true",
        ]
        .map(String::from),
    );
    a
}

/// A one-layer image holding Debian's static busybox (as /bin/true too), in a store.
fn busybox_image(dir: &std::path::Path) -> hybrid_sandbox::ImageStore {
    use sha2::Digest;
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (scripts/install-deps.sh)");
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(busybox.len() as u64);
    h.set_mode(0o755);
    layer
        .append_data(&mut h, "bin/busybox", &busybox[..])
        .unwrap();
    for app in ["true", "sh"] {
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_size(0);
        layer
            .append_link(&mut l, format!("bin/{app}"), "/bin/busybox")
            .unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let hex = |b: &[u8]| {
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    let cfg = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex(&layer))]}})
    .to_string();
    let cfg_name = format!("{}.json", hex(cfg.as_bytes()));
    let mut t = tar::Builder::new(Vec::new());
    let manifest = serde_json::json!([{"Config": cfg_name, "RepoTags": ["bench:busybox"], "Layers": ["l/layer.tar"]}]).to_string();
    for (name, data) in [
        ("l/layer.tar", layer.clone()),
        (cfg_name.as_str(), cfg.into_bytes()),
        ("manifest.json", manifest.into_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, name, &data[..]).unwrap();
    }
    let img = dir.join("busybox.tar");
    std::fs::write(&img, t.into_inner().unwrap()).unwrap();
    let store = hybrid_sandbox::ImageStore::at(dir.join("store"));
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let opts = hybrid_sandbox::ImportOptions {
        owner: root.then_some((
            hybrid_sandbox::ROOT_MODE_HOST_ID,
            hybrid_sandbox::ROOT_MODE_HOST_ID,
        )),
        ..Default::default()
    };
    store
        .import(&img, None, opts)
        .expect("import the bench image");
    store
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let hsb = env!("CARGO_BIN_EXE_hsb");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = Sandbox::with_default_policy();
    let lib: Vec<Duration> = (0..runs + 10)
        .map(|_| {
            let t = Instant::now();
            let o = rt
                .block_on(sandbox.run(Workload::new("/bin/true", Vec::<String>::new())))
                .expect("run");
            assert!(o.success(), "{o:?}");
            t.elapsed()
        })
        .skip(10)
        .collect();
    // The same, on an image root (overlayfs over one busybox layer, writable upper).
    let dir = tempfile::tempdir().expect("tempdir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let with_image = Sandbox::with_default_policy().with_image_store(busybox_image(dir.path()));
    let image: Vec<Duration> =
        (0..runs + 10)
            .map(|_| {
                let t = Instant::now();
                let o = rt
                    .block_on(with_image.run(
                        Workload::new("/bin/true", Vec::<String>::new()).image("bench:busybox"),
                    ))
                    .expect("run");
                assert!(o.success(), "{o:?}");
                t.elapsed()
            })
            .skip(10)
            .collect();
    let cli = time_cmd(&[hsb, "run", "--", "/bin/true"], runs);
    // Issue 17's pair: a static program one-shot through the CLI in each backend.
    let static_true = |iso: &str| {
        time_cmd(
            &[
                hsb,
                "run",
                "--isolation",
                iso,
                "--",
                "/usr/bin/busybox",
                "true",
            ],
            runs,
        )
    };
    let cli_static_container = static_true("container");
    let cli_static_vm = static_true("microvm");
    let plan = sandbox
        .plan(&Workload::new("/bin/true", Vec::<String>::new()))
        .expect("plan");
    let bwrap = bwrap_argv(&plan);
    let bwrap_ref: Vec<&str> = bwrap.iter().map(String::as_str).collect();
    let bw = time_cmd(&bwrap_ref, runs);
    let native = time_cmd(&["/bin/true"], runs);

    let (bw_med, bw_p95, _) = stats(bw);
    println!("container start-to-exit of /bin/true, {runs} runs each, one machine, one run");
    println!("bwrap command: {}", bwrap.join(" "));
    println!("| what | median ms | p95 ms | median vs bwrap |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, v) in [
        ("hybrid-sandbox library (Sandbox::run, full isolation)", lib),
        (
            "hybrid-sandbox library, image root (busybox layer, overlayfs)",
            image,
        ),
        ("hybrid-sandbox CLI (`hsb run -- /bin/true`)", cli),
        (
            "CLI, container, static busybox true (`--isolation container`)",
            cli_static_container,
        ),
        (
            "CLI, micro-VM, static busybox true (`--isolation microvm`)",
            cli_static_vm,
        ),
        (
            "bwrap --unshare-all --die-with-parent (same mounts, /proc, /dev, /tmp)",
            vec![],
        ),
        ("native fork/exec of /bin/true", native),
    ] {
        let (med, p95) = if v.is_empty() {
            (bw_med, bw_p95)
        } else {
            let (m, p, _) = stats(v);
            (m, p)
        };
        println!("| {name} | {med:.2} | {p95:.2} | {:.2}x |", med / bw_med);
    }
}
