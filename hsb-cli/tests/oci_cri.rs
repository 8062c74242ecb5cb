//! Kubernetes' way in: containerd's CRI plugin, driven over the CRI gRPC API the way the
//! kubelet drives it (the `k8s-cri` crate's generated client; no kubelet runs here),
//! runs a pod and its containers through hsb's OCI runtime as the `RuntimeClass`
//! handler `hsb-container`: the pod's own network namespace (made by containerd,
//! with an address from CNI's bridge plugin) joined by path, a container's logs, `ExecSync`, an
//! in-place `UpdateContainerResources`, stop and removal leaving nothing behind.
//! Root only; a missing containerd skips loudly, or fails under
//! `HSB_REQUIRE_FEATURES=1`.

#[path = "oci_common/engines.rs"]
mod engines;
mod oci_common;

use engines::*;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatus, ContainerStatusRequest,
    CreateContainerRequest, ExecRequest, ExecSyncRequest, ImageSpec, ImageStatusRequest,
    LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListContainersRequest, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PodSandboxState, PodSandboxStatus,
    PodSandboxStatusRequest, RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StopContainerRequest, StopPodSandboxRequest,
    UpdateContainerResourcesRequest, VersionRequest,
};
use oci_common::{is_root, require, text};
use std::path::Path;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

const PAUSE_REF: &str = "localhost/hsbtest-pause:1";
const HANDLER: &str = "hsb-container";
const VM_HANDLER: &str = "hsb-microvm";
/// The pods' network: a bridge of the test's own, with no address on the host, no
/// forwarding and no NAT (nothing of the host's network changes but the bridge).
const BRIDGE: &str = "hsbcri0";
const SUBNET: &str = "10.250.77";

/// What the CRI plugin and CNI make on the host, removed however the test ends: the
/// bridge, and the pods' network namespaces (files in /run/netns) it did not remove.
struct HostLeftovers {
    netns_before: Vec<std::ffi::OsString>,
}

fn netns_files() -> Vec<std::ffi::OsString> {
    std::fs::read_dir("/run/netns")
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

impl HostLeftovers {
    fn new() -> HostLeftovers {
        HostLeftovers {
            netns_before: netns_files(),
        }
    }
}

impl Drop for HostLeftovers {
    fn drop(&mut self) {
        for n in netns_files() {
            if !self.netns_before.contains(&n) && n.to_string_lossy().starts_with("cni-") {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del"])
                    .arg(&n)
                    .status();
            }
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", BRIDGE])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The CRI plugin's configuration: hsb as the `hsb-container` and `hsb-microvm`
/// runtime handlers, the
/// pause image built here, CNI's bridge plugin (a pod's network namespace of its own,
/// with an address on a bridge of the test's own; no iptables rule on the host).
fn cri_config(d: &Path) -> String {
    let cni_conf = d.join("cni-conf");
    std::fs::create_dir_all(&cni_conf).unwrap();
    std::fs::write(
        cni_conf.join("10-lo.conflist"),
        format!(
            r#"{{"cniVersion": "0.4.0", "name": "hsb-cri", "plugins": [{{"type": "bridge", "bridge": "{BRIDGE}", "isGateway": false, "ipMasq": false, "ipam": {{"type": "host-local", "subnet": "{SUBNET}.0/24", "dataDir": "{ipam}"}}}}]}}"#,
            ipam = d.join("cni-ipam").display(),
        ),
    )
    .unwrap();
    format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_REF}"
  enable_selinux = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "{HANDLER}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}.options]
        BinaryName = "{runtime}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{VM_HANDLER}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{VM_HANDLER}.options]
        BinaryName = "{vm_runtime}"
"#,
        cni_conf = cni_conf.display(),
        runtime = container_runtime().display(),
        vm_runtime = oci_common::runtime_dir().join("hsb-oci-microvm").display(),
    )
}

async fn channel(sock: &Path) -> Channel {
    let sock = sock.to_path_buf();
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(sock).await?,
                ))
            }
        }))
        .await
        .expect("a CRI connection")
}

/// The namespaces the kubelet asks for a pod without `hostNetwork`, `hostPID` or
/// `shareProcessNamespace`: the pod's network and IPC, a PID namespace per container
/// (joining another's PID namespace is not supported by hsb).
fn namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A container of the pod: `cmd` under `sh -c`, with `memory` bytes of memory.
fn container(name: &str, cmd: &str, memory: i64) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: IMAGE_REF.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), cmd.into()],
        log_path: format!("{name}.log"),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(namespaces()),
                ..Default::default()
            }),
            // What the kubelet sends for a container with a memory limit and no CPU
            // limit: the default period, minimal shares.
            resources: Some(LinuxContainerResources {
                memory_limit_in_bytes: memory,
                cpu_period: 100_000,
                cpu_shares: 2,
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// containerd with its CRI plugin, the images imported, a directory for the pods'
/// logs; what it leaves on the host goes with it. `None` (said why) when the host
/// cannot run it.
struct Cri {
    d: Daemon,
    logs: std::path::PathBuf,
    _images: [Image; 2],
    // Removes what the daemon's pods left, once the daemon is gone.
    leftovers: HostLeftovers,
    // Last: the tests of this file share the bridge and /run/netns, one at a time.
    _serial: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Cri {
    fn start() -> Option<Cri> {
        if !require(is_root(), "the CRI test needs root")
            || !require(
                oci_common::have("containerd") && oci_common::have("ctr"),
                "containerd is not installed (scripts/install-deps.sh)",
            )
            || !require(
                Path::new("/usr/lib/cni/bridge").exists(),
                "CNI's bridge plugin is missing (containernetworking-plugins)",
            )
        {
            return None;
        }
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let leftovers = HostLeftovers::new();
        let img = Image::new();
        let pause = Image::named(PAUSE_REF, Some(&["/bin/sleep", "2147483647"]));
        let d = Daemon::containerd_cri(cri_config);
        for i in [&img, &pause] {
            let o = output_within(
                d.ctr()
                    .args(["-n", "k8s.io", "images", "import"])
                    .arg(i.docker_archive()),
                60,
            );
            assert!(o.status.success(), "ctr images import: {}", text(&o));
        }
        let logs = d.dir.path().join("pod-logs");
        std::fs::create_dir_all(&logs).unwrap();
        Some(Cri {
            d,
            logs,
            _images: [img, pause],
            leftovers,
            _serial: serial,
        })
    }

    /// The pod's configuration, as the kubelet gives it for a plain pod.
    fn pod_config(&self) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "hsb-pod".into(),
                uid: "4d1c9c4e-hsb".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: "hsb-pod".into(),
            log_directory: self.logs.display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The network namespaces (files in /run/netns) made since it started.
    fn new_netns(&self) -> Vec<std::ffi::OsString> {
        netns_files()
            .into_iter()
            .filter(|n| !self.leftovers.netns_before.contains(n))
            .collect()
    }
}

type Client = RuntimeServiceClient<Channel>;

/// What a streamed exec gave: its output channels and its status (channel 3).
#[derive(Debug, Default)]
struct Streamed {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<serde_json::Value>,
    /// Whether the stream ended (in time).
    ended: bool,
}

impl Streamed {
    /// The exit code in the status: 0 for `Success`, else its `ExitCode` cause.
    fn exit_code(&self) -> i64 {
        let Some(st) = &self.status else { return -1 };
        if st["status"] == "Success" {
            return 0;
        }
        st["details"]["causes"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["reason"] == "ExitCode"))
            .and_then(|c| c["message"].as_str()?.parse().ok())
            .unwrap_or(-1)
    }
}

/// Speaks Kubernetes' streaming protocol (`v4.channel.k8s.io`: binary messages whose
/// first byte is the channel: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize) to an
/// exec URL: sends `input` (channel, bytes) once the streams are open, then reads to
/// the end.
async fn stream_exec(url: &str, input: &[(u8, Vec<u8>)]) -> Streamed {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut req = url
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .expect("a WebSocket request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .unwrap_or_else(|e| panic!("the streaming server at {url}: {e}"));
    for (ch, data) in input {
        let mut m = vec![*ch];
        m.extend_from_slice(data);
        ws.send(Message::Binary(m.into())).await.expect("sent");
    }
    let mut s = Streamed::default();
    let read = async {
        while let Some(m) = ws.next().await {
            let data = match m {
                Ok(Message::Binary(b)) => b.to_vec(),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            let Some((ch, body)) = data.split_first() else {
                continue;
            };
            match ch {
                1 => s.stdout.extend_from_slice(body),
                2 => s.stderr.extend_from_slice(body),
                3 if !body.is_empty() => s.status = serde_json::from_slice(body).ok(),
                _ => {}
            }
        }
    };
    s.ended = tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .is_ok();
    s
}

/// `RunPodSandbox` with `handler`, then the pod's status (ready).
async fn run_pod(
    cri: &mut Client,
    d: &Daemon,
    config: &PodSandboxConfig,
    handler: &str,
) -> (String, PodSandboxStatus) {
    let id = cri
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", d.log()))
        .into_inner()
        .pod_sandbox_id;
    let pod = cri
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: false,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .status
        .expect("a pod status");
    assert_eq!(pod.state, PodSandboxState::SandboxReady as i32, "{pod:?}");
    (id, pod)
}

/// `StopPodSandbox` then `RemovePodSandbox`, as the kubelet ends a pod.
async fn remove_pod(cri: &mut Client, id: &str) {
    cri.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .expect("StopPodSandbox");
    cri.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .expect("RemovePodSandbox");
}

async fn status(cri: &mut Client, id: &str) -> ContainerStatus {
    cri.container_status(ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    })
    .await
    .expect("ContainerStatus")
    .into_inner()
    .status
    .expect("a status")
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_pod_runs_its_containers_through_hsb_over_the_cri() {
    let Some(c) = Cri::start() else {
        return;
    };
    let (d, logs) = (&c.d, &c.logs);
    let (pod_id, tree) = block_on(async {
        let ch = channel(&d.sock()).await;
        let mut cri = RuntimeServiceClient::new(ch.clone());
        let mut images = ImageServiceClient::new(ch);
        let v = cri
            .version(VersionRequest::default())
            .await
            .expect("Version")
            .into_inner();
        assert_eq!(v.runtime_name, "containerd", "{v:?}");
        // The images imported with ctr are the CRI plugin's (namespace k8s.io).
        let st = images
            .image_status(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: IMAGE_REF.into(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .expect("ImageStatus")
            .into_inner();
        assert!(
            st.image.is_some(),
            "{IMAGE_REF} is not seen by the CRI plugin"
        );

        let pod_config = c.pod_config();
        let (pod_id, pod) = run_pod(&mut cri, d, &pod_config, HANDLER).await;
        let pod_ip = pod.network.map(|n| n.ip).unwrap_or_default();
        assert!(pod_ip.starts_with(SUBNET), "the pod's address: {pod_ip:?}");

        // A container under 32 MiB: its log, its hostname (the pod's UTS namespace),
        // its network (the pod's namespace: loopback only).
        let work = cri
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(container(
                    "work",
                    "echo started; hostname; cat /proc/net/dev | cut -d: -f1 | tr -d ' ' | tail -n +3 | sort; \
                     busybox ip -o -4 addr show dev eth0 | busybox awk '{print $4}'; \
                     grep -c hsb-init /proc/1/cmdline; readlink /proc/self/ns/ipc; exec sleep 1000",
                    32 << 20,
                )),
                sandbox_config: Some(pod_config.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", d.log()))
            .into_inner()
            .container_id;
        cri.start_container(StartContainerRequest {
            container_id: work.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", d.log()));
        let log = logs.join("work.log");
        let seen = eventually(30, || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.lines().count() >= 7)
        });
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(seen, "the container's log: {log_text:?}\n{}", d.log());
        // CRI log lines: TIME STREAM P|F TEXT.
        let out: Vec<&str> = log_text
            .lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3))
            .collect();
        let cidr = format!("{pod_ip}/24");
        assert_eq!(
            out[..6],
            ["started", "hsb-pod", "eth0", "lo", &cidr, "1"],
            "{log_text}"
        );
        // The pod's IPC namespace: not the host's (the second container shares it).
        let pod_ipc = out[6].to_string();
        let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
        assert_ne!(Path::new(&pod_ipc), host_ipc, "{log_text}");
        let st = status(&mut cri, &work).await;
        assert_eq!(st.state, ContainerState::ContainerRunning as i32, "{st:?}");

        // ExecSync, as `kubectl exec` and probes use it.
        let execs = cri.clone();
        let exec = |cmd: &str| {
            let mut cri = execs.clone();
            let req = ExecSyncRequest {
                container_id: work.clone(),
                cmd: vec!["sh".into(), "-c".into(), cmd.into()],
                timeout: 60,
            };
            async move { cri.exec_sync(req).await.expect("ExecSync").into_inner() }
        };
        let r = exec("echo out; echo err >&2; exit 3").await;
        assert_eq!(
            (r.exit_code, &r.stdout[..], &r.stderr[..]),
            (3, &b"out\n"[..], &b"err\n"[..])
        );
        // `kubectl exec` (and `-it`): `Exec` hands out a URL of containerd's streaming
        // server, spoken to over a WebSocket with Kubernetes' channel protocol.
        let url = |tty: bool, cmd: &str| {
            let mut cri = execs.clone();
            let req = ExecRequest {
                container_id: work.clone(),
                cmd: vec!["sh".into(), "-c".into(), cmd.into()],
                tty,
                stdin: true,
                stdout: true,
                stderr: !tty,
            };
            async move { cri.exec(req).await.expect("Exec").into_inner().url }
        };
        let s = stream_exec(
            &url(false, "echo out; echo err >&2; read x; echo got:$x; exit 3").await,
            &[(0, b"hello\n".to_vec())],
        )
        .await;
        assert!(s.ended, "the exec's stream did not end: {s:?}\n{}", d.log());
        assert_eq!(
            (&s.stdout[..], &s.stderr[..], s.exit_code()),
            (&b"out\ngot:hello\n"[..], &b"err\n"[..], 3),
            "{s:?}"
        );
        let s = stream_exec(
            &url(true, "read x; busybox stty size; test -t 0 && echo tty").await,
            &[
                (4, br#"{"Width": 101, "Height": 33}"#.to_vec()),
                (0, b"go\r".to_vec()),
            ],
        )
        .await;
        assert!(s.ended, "the exec's stream did not end: {s:?}\n{}", d.log());
        let out = String::from_utf8_lossy(&s.stdout);
        assert!(
            out.contains("33 101\r\ntty\r\n") && s.exit_code() == 0,
            "{s:?}"
        );

        // 64 MB do not fit in 32 MiB; after an in-place update to 512 MiB they do.
        let hog =
            "awk 'BEGIN { s = \"x\"; while (length(s) < 64000000) s = s s; print length(s) }'";
        let r = exec(hog).await;
        assert_ne!(r.exit_code, 0, "the hog under 32 MiB: {r:?}");
        cri.update_container_resources(UpdateContainerResourcesRequest {
            container_id: work.clone(),
            linux: container("work", "", 512 << 20).linux.unwrap().resources,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}\n{}", d.log()));
        let r = exec(hog).await;
        assert_eq!(
            (r.exit_code, String::from_utf8_lossy(&r.stdout).trim()),
            (0, "67108864"),
            "the hog under 512 MiB: {r:?}"
        );
        // The kubelet's static CPU manager pins a container by an update of its CPU set.
        if oci_common::cpu_sets_here() {
            let mut resources = container("work", "", 512 << 20).linux.unwrap().resources;
            if let Some(r) = resources.as_mut() {
                r.cpuset_cpus = "1".into();
            }
            cri.update_container_resources(UpdateContainerResourcesRequest {
                container_id: work.clone(),
                linux: resources,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}\n{}", d.log()));
            let r = exec("grep Cpus_allowed_list /proc/self/status").await;
            assert_eq!(
                String::from_utf8_lossy(&r.stdout).split_whitespace().nth(1),
                Some("1"),
                "{r:?}"
            );
        }

        // A second container ends by itself: its exit code reaches the CRI.
        let short = cri
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(container(
                    "short",
                    "readlink /proc/self/ns/ipc; hostname; exit 7",
                    32 << 20,
                )),
                sandbox_config: Some(pod_config.clone()),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        cri.start_container(StartContainerRequest {
            container_id: short.clone(),
        })
        .await
        .expect("StartContainer");
        let mut exited = None;
        for _ in 0..300 {
            let st = status(&mut cri, &short).await;
            if st.state == ContainerState::ContainerExited as i32 {
                exited = Some(st.exit_code);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(exited, Some(7), "{}", d.log());
        let short_log = std::fs::read_to_string(logs.join("short.log")).unwrap_or_default();
        let short_out: Vec<&str> = short_log
            .lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3))
            .collect();
        assert_eq!(short_out, [&pod_ipc[..], "hsb-pod"], "{short_log}");

        // Every process of the pod, to check none outlives its removal.
        let list = cri
            .list_containers(ListContainersRequest::default())
            .await
            .expect("ListContainers")
            .into_inner();
        assert_eq!(list.containers.len(), 2, "{list:?}");
        let mut tree = Vec::new();
        for pid in oci_common::processes_with(&work) {
            tree.extend(process_tree(pid));
        }
        assert!(!tree.is_empty(), "no process of the container {work}");
        // The CRI reads a container's statistics from the cgroups of the pid it was
        // given: hsb's supervisor is in the cgroupsPath containerd chose for it.
        let supervisor = oci_common::supervisor_of(&work).expect("the container's supervisor");
        let path = oci_common::cgroup_of(supervisor, "memory").unwrap_or_default();
        assert!(path.ends_with(&work), "{path}");
        let cgroups = oci_common::assert_in_cgroup(supervisor, &path);
        // The container's processes are inside it too, so inside the pod's cgroup (the
        // parent containerd made it in), whose limits the kubelet sets.
        assert_processes_inside(supervisor, &path);

        cri.stop_container(StopContainerRequest {
            container_id: work.clone(),
            timeout: 1,
        })
        .await
        .expect("StopContainer");
        for c in [&work, &short] {
            cri.remove_container(RemoveContainerRequest {
                container_id: c.clone(),
            })
            .await
            .expect("RemoveContainer");
        }
        remove_pod(&mut cri, &pod_id).await;
        for d in &cgroups {
            assert!(!d.exists(), "{} left after the pod's removal", d.display());
        }
        (pod_id, tree)
    });
    let gone = eventually(15, || still_alive(&tree).is_empty());
    assert!(
        gone,
        "left after the pod's removal: {:?}",
        still_alive(&tree)
    );
    assert!(
        oci_common::processes_with(&pod_id).is_empty(),
        "a process still names the pod {pod_id}"
    );
    let left = c.new_netns();
    assert!(
        left.is_empty(),
        "the pod's network namespace stays: {left:?}"
    );
}

/// A pod of micro-VM containers (`hsb-microvm`): its sandbox runs in a VM whose network
/// is the pod's (CNI's namespace), and the pid containerd was given shows that
/// namespace, never the host's; a container of the pod, which would share the pod's
/// IPC and UTS namespaces with it, is refused naming why.
#[test]
fn a_microvm_pod_keeps_to_the_pods_network_and_refuses_what_a_vm_cannot_share() {
    let Some(c) = Cri::start() else {
        return;
    };
    let probe = oci_common::TempDir::new("probe-root");
    if !oci_common::microvm_ready(probe.path()) {
        return;
    }
    let d = &c.d;
    let pod_id = block_on(async {
        let mut cri = RuntimeServiceClient::new(channel(&d.sock()).await);
        let pod_config = c.pod_config();
        let (pod_id, pod) = run_pod(&mut cri, d, &pod_config, VM_HANDLER).await;
        let pod_ip = pod.network.map(|n| n.ip).unwrap_or_default();
        assert!(pod_ip.starts_with(SUBNET), "the pod's address: {pod_ip:?}");
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let netns = c.new_netns();
        assert_eq!(netns.len(), 1, "{netns:?}");
        let pod_net = ino(&Path::new("/run/netns").join(&netns[0]));
        let supervisor = oci_common::supervisor_of(&pod_id).expect("the pod's supervisor");
        let ns = |n: &str| ino(Path::new(&format!("/proc/{supervisor}/ns/{n}")));
        assert_eq!(ns("net"), pod_net, "the pid's network is not the pod's");
        for n in ["ipc", "uts"] {
            assert_ne!(
                ns(n),
                ino(Path::new(&format!("/proc/self/ns/{n}"))),
                "the pid's {n} namespace is the host's"
            );
        }

        let id = cri
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(container("vm-work", "echo never", 64 << 20)),
                sandbox_config: Some(pod_config.clone()),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        let e = cri
            .start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .expect_err("a micro-VM in a pod's IPC namespace");
        assert!(
            e.message().contains("micro-VM cannot join"),
            "{}",
            e.message()
        );
        cri.remove_container(RemoveContainerRequest { container_id: id })
            .await
            .expect("RemoveContainer");
        remove_pod(&mut cri, &pod_id).await;
        pod_id
    });
    let gone = eventually(15, || oci_common::processes_with(&pod_id).is_empty());
    assert!(gone, "a process still names the pod {pod_id}");
    let left = c.new_netns();
    assert!(
        left.is_empty(),
        "the pod's network namespace stays: {left:?}"
    );
}
