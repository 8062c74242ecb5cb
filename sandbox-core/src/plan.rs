//! A run with everything decided: what a backend receives.

use std::path::PathBuf;

use serde::Serialize;

use crate::image_limits::ImageLimits;
use crate::limits::Limits;
use crate::outcome::Decision;
use crate::types::{Network, SeccompAction};
use crate::workload::{MountMode, Stdin};

/// A mount after validation: absolute, normalized paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedMount {
    /// Host path, normalized. A backend resolves it once, when the run starts, through
    /// [`crate::mount_source`]: no symlink is followed in any component (a final one is
    /// mounted as that symlink), and kernel interfaces are refused by what they are.
    pub source: PathBuf,
    /// Absolute, normalized path inside the sandbox (never `/`).
    pub target: PathBuf,
    /// `ro` or `rw`.
    pub mode: MountMode,
    /// Skip when the source is missing.
    pub optional: bool,
    /// One of the host's system directories (`/usr`, `/lib`, ...; `system = true` in a
    /// policy): it keeps the host's ownership even for a root caller, whose other
    /// mounts give the workload the access of the source's owner.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
    /// No program may be run from it (`noexec`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub noexec: bool,
}

/// An in-memory filesystem after validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedTmpfs {
    /// Absolute, normalized path inside the sandbox (never `/`, /proc or /dev).
    pub target: PathBuf,
    /// Largest total size of its files, in bytes.
    pub size: u64,
    /// Permission bits of its root directory.
    pub mode: u32,
    /// No program may be run from it.
    pub noexec: bool,
}

/// Whether a run may start when Landlock cannot be fully enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LandlockMode {
    /// Use what the kernel has and report it (the default: namespaces and seccomp are
    /// the primary walls; the report says what Landlock added).
    #[default]
    BestEffort,
    /// Refuse to run unless every Landlock restriction asked for is enforced.
    Required,
}

/// Everything a backend needs to start one run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The program: absolute inside the sandbox, or a name searched in `PATH`.
    pub program: String,
    /// The full argv, `argv[0]` included.
    pub argv: Vec<String>,
    /// The full environment, `PATH` included.
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox.
    pub cwd: String,
    /// Standard input.
    #[serde(skip)]
    pub stdin: Stdin,
    /// Mounts, in order: a later one may sit inside an earlier one.
    pub mounts: Vec<PlannedMount>,
    /// In-memory filesystems, besides /tmp (which every sandbox has).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<PlannedTmpfs>,
    /// Limits.
    pub limits: Limits,
    /// Network mode.
    pub network: Network,
    /// The egress broker's rules, exposed ports and secrets (with `network = "egress"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<crate::network::EgressPlan>,
    /// What a forbidden syscall gets.
    pub seccomp_action: SeccompAction,
    /// Whether partial Landlock is acceptable.
    pub landlock: LandlockMode,
    /// The sandbox's host name.
    pub hostname: String,
    /// Which backend, and why.
    pub decision: Decision,
    /// The OCI image asked for (a store name or a path); resolved by the facade into
    /// [`Plan::root`].
    pub image: Option<String>,
    /// The image root, once resolved: without it the root is made of the mounts.
    pub root: Option<ImageRoot>,
    /// Limits on importing [`Plan::image`] if it is a path not imported yet: every
    /// limit set (defaults filled in, the floor applied).
    pub image_limits: ImageLimits,
    /// The uid and gid the workload runs as inside the sandbox.
    pub user: (u32, u32),
    /// Its supplementary groups inside the sandbox, sorted, without duplicates (the
    /// primary gid, [`Plan::user`]'s, among them changes nothing: see
    /// [`Plan::extra_groups`]). Empty unless asked for ([`crate::Workload::groups`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u32>,
    /// A host directory that is the sandbox's root as it is (an OCI bundle's rootfs),
    /// instead of a root made of the mounts or of an image's layers.
    pub root_dir: Option<RootDir>,
    /// A network namespace to join (the one an engine made, by path) instead of a new
    /// one; [`Plan::network`] still says what the workload may do in it (`loopback`:
    /// TCP allowed).
    pub netns: Option<PathBuf>,
    /// An IPC namespace to join, by path (SysV IPC and POSIX message queues shared
    /// with the other containers of a pod), instead of a new one. Container only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipcns: Option<PathBuf>,
    /// A UTS namespace to join, by path: its host name is the sandbox's
    /// ([`Plan::hostname`] is not set). Container only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utsns: Option<PathBuf>,
    /// A cgroup, as a path from each hierarchy's root, under which the container
    /// backend makes the sandbox's cgroup on a cgroup v1 host (each hierarchy's
    /// directory must exist). On cgroup v2 the sandbox's cgroup stays under hsb's own
    /// directory (a cgroup that holds a process, as an engine's does its runtime's,
    /// cannot give its children controllers) and the enforcement report says so; a
    /// micro-VM has no cgroup of its own (it runs in its caller's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<PathBuf>,
}

/// A host directory used as the sandbox's root filesystem as it is: what the workload
/// writes lands in it (unless `readonly`). Both backends honour it or refuse the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RootDir {
    /// Absolute host path.
    pub path: PathBuf,
    /// Mounted read-only.
    pub readonly: bool,
}

/// A root filesystem made of an image's unpacked layers, with a throwaway upper layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRoot {
    /// The image's name in the store.
    pub name: String,
    /// The image's manifest digest (sha256 hex).
    pub digest: String,
    /// Unpacked layer directories, lowest first.
    pub layers: Vec<PathBuf>,
}

/// What an image contributes to a run (its config), for [`Plan::apply_image`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSpec {
    /// The root.
    pub root: Option<ImageRoot>,
    /// ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// CMD.
    pub cmd: Vec<String>,
    /// ENV (`KEY=VALUE`).
    pub env: Vec<String>,
    /// WORKDIR.
    pub working_dir: Option<String>,
    /// USER, resolved to numeric ids.
    pub user: Option<(u32, u32)>,
}

/// An image cannot run as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image {image}: {message}")]
pub struct ImageUseError {
    /// The image.
    pub image: String,
    /// What is wrong.
    pub message: String,
}

impl Plan {
    /// Applies an image's config with Docker's precedence: the run's program replaces
    /// CMD (after ENTRYPOINT), its `--cwd` and `--env` beat the image's WORKDIR and ENV,
    /// which beat the policy's.
    pub fn apply_image(
        &mut self,
        run: &crate::Workload,
        img: ImageSpec,
    ) -> Result<(), ImageUseError> {
        let name = img
            .root
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_else(|| self.image.clone().unwrap_or_default());
        let run_argv: Vec<String> = if run.program.is_empty() {
            Vec::new()
        } else {
            std::iter::once(run.argv0.clone().unwrap_or_else(|| run.program.clone()))
                .chain(run.args.iter().cloned())
                .collect()
        };
        let tail = if run_argv.is_empty() {
            img.cmd.clone()
        } else {
            run_argv
        };
        let argv: Vec<String> = img.entrypoint.iter().cloned().chain(tail).collect();
        let Some(first) = argv.first().cloned() else {
            return Err(ImageUseError {
                image: name,
                message: "it has no entrypoint or cmd: give a program to run".into(),
            });
        };
        self.program = if img.entrypoint.is_empty() && !run.program.is_empty() {
            run.program.clone()
        } else {
            first
        };
        self.argv = argv;
        self.apply_image_environment(run, img);
        Ok(())
    }

    /// Applies what an image's config says about the environment a program runs in —
    /// ENV, WORKDIR, USER and the root — but not what it runs: for a live sandbox, whose
    /// programs come with each exec.
    pub fn apply_image_environment(&mut self, run: &crate::Workload, img: ImageSpec) {
        // ENV: the image's, then the policy's and the run's (the default PATH only when
        // the image sets none).
        let mut env: Vec<(String, String)> = img
            .env
            .iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let image_has_path = env.iter().any(|(k, _)| k == "PATH");
        for (k, v) in std::mem::take(&mut self.env) {
            if k == "PATH"
                && v == crate::DEFAULT_PATH
                && image_has_path
                && !run.env.contains_key("PATH")
            {
                continue;
            }
            env.retain(|(ek, _)| *ek != k);
            env.push((k, v));
        }
        self.env = env;
        if run.cwd.is_none() {
            if let Some(wd) = img.working_dir {
                self.cwd = wd;
            }
        }
        self.user = img.user.unwrap_or((0, 0));
        self.root = img.root;
    }

    /// The supplementary groups besides the primary gid (see [`Plan::groups`]).
    pub fn extra_groups(&self) -> Vec<u32> {
        self.groups
            .iter()
            .copied()
            .filter(|g| *g != self.user.1)
            .collect()
    }

    /// The `PATH` of the workload (the default one when the environment has none).
    pub fn path_var(&self) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(crate::DEFAULT_PATH)
    }

    /// Candidate absolute paths of the program inside the sandbox, in search order:
    /// the program itself when it contains a `/`, else each `PATH` entry joined with it.
    pub fn program_candidates(&self) -> Vec<String> {
        if self.program.contains('/') {
            let p = if self.program.starts_with('/') {
                self.program.clone()
            } else {
                format!("{}/{}", self.cwd.trim_end_matches('/'), self.program)
            };
            return vec![p];
        }
        self.path_var()
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{}", d.trim_end_matches('/'), self.program))
            .collect()
    }
}

/// The host uid and gid a sandbox's processes run as when the caller is root: an
/// unprivileged id, so that an escape does not land as host root. Images imported by
/// root are owned by it.
pub const ROOT_MODE_HOST_ID: u32 = 65534;

/// The uid the workload runs as inside the sandbox (both backends).
pub const SANDBOX_UID: u32 = 1000;
/// The gid the workload runs as inside the sandbox (both backends).
pub const SANDBOX_GID: u32 = 1000;

impl Plan {
    /// A fingerprint of what a sandbox is built from (mounts, image, limits, network,
    /// identity): a snapshot file loads only into a sandbox whose plan has the same.
    /// (Snapshot files hold it: a change of what goes into it makes them unloadable.)
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::Digest;
        let v = serde_json::json!({
            "mounts": self.mounts,
            "tmpfs": self.tmpfs,
            "limits": self.limits,
            "network": self.network,
            "image": self.image,
            "root": self.root,
            "hostname": self.hostname,
            "seccomp": self.seccomp_action,
            "landlock": self.landlock,
            "env": self.env,
            "cwd": self.cwd,
        });
        let mut h = sha2::Sha256::new();
        h.update(v.to_string().as_bytes());
        h.finalize().into()
    }
    /// Files the sandbox generates instead of showing the host's: `/etc/passwd`,
    /// `/etc/group`, `/etc/hostname`, `/etc/hosts`. Both backends show the same ones.
    pub fn generated_files(&self) -> Vec<(&'static str, String)> {
        let h = &self.hostname;
        vec![
            (
                "/etc/passwd",
                format!(
                    "root:x:0:0:root:/root:/bin/sh\nsandbox:x:{SANDBOX_UID}:{SANDBOX_GID}:sandbox:/tmp:/bin/sh\n\
                     nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                ),
            ),
            ("/etc/group", format!("root:x:0:\nsandbox:x:{SANDBOX_GID}:\nnogroup:x:65534:\n")),
            ("/etc/hostname", format!("{h}\n")),
            ("/etc/hosts", format!("127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t{h}\n")),
        ]
        .into_iter()
        .chain((self.network == Network::Egress).then(|| {
            (
                "/etc/resolv.conf",
                format!(
                    "# the hybrid-sandbox egress broker: only names the policy allows resolve\nnameserver {}\noptions edns0\n",
                    crate::network::BROKER_ADDR
                ),
            )
        }))
        .collect()
    }
}
