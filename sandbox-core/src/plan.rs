//! A run with everything decided: what a backend receives.

use std::path::PathBuf;

use serde::Serialize;

use crate::limits::Limits;
use crate::outcome::Decision;
use crate::types::{Network, SeccompAction};
use crate::workload::{MountMode, Stdin};

/// A mount after validation: absolute, normalized paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedMount {
    /// Host path, as written (a backend opens it without following a final symlink
    /// swap: it resolves it once, when the run starts).
    pub source: PathBuf,
    /// Absolute, normalized path inside the sandbox (never `/`).
    pub target: PathBuf,
    /// `ro` or `rw`.
    pub mode: MountMode,
    /// Skip when the source is missing.
    pub optional: bool,
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
    /// The full argv, argv[0] included.
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
    /// Limits.
    pub limits: Limits,
    /// Network mode.
    pub network: Network,
    /// What a forbidden syscall gets.
    pub seccomp_action: SeccompAction,
    /// Whether partial Landlock is acceptable.
    pub landlock: LandlockMode,
    /// The sandbox's host name.
    pub hostname: String,
    /// Which backend, and why.
    pub decision: Decision,
}

impl Plan {
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

/// The uid the workload runs as inside the sandbox (both backends).
pub const SANDBOX_UID: u32 = 1000;
/// The gid the workload runs as inside the sandbox (both backends).
pub const SANDBOX_GID: u32 = 1000;

impl Plan {
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
    }
}
