//! What to run: program, arguments, environment, stdin, mounts, labels and per-run options.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::image_limits::ImageLimits;
use crate::limits::LimitOverrides;
use crate::types::{IsolationRequest, Need, Network};

/// Whether a mount may be written through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MountMode {
    /// Read-only (the default).
    #[default]
    Ro,
    /// Read-write.
    Rw,
}

/// An empty in-memory filesystem mounted inside the sandbox (`nosuid`, `nodev`), its
/// contents charged to the sandbox's memory and gone with the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tmpfs {
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
    /// Largest total size of its files; the sandbox's `tmp_size` (else its memory
    /// limit, else 256 MiB) when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<crate::units::ByteSize>,
    /// Permission bits of its root directory (default `0o1777`, as /tmp's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// No program may be run from it (`noexec`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub noexec: bool,
}

impl Tmpfs {
    /// Reads the CLI form `PATH[:size=SIZE][,mode=OCTAL][,noexec]` (Docker's `--tmpfs`:
    /// `/run:size=64m,mode=755`).
    pub fn parse_spec(spec: &str) -> Result<Self, String> {
        let (target, opts) = spec.split_once(':').unwrap_or((spec, ""));
        if target.is_empty() {
            return Err(format!("`{spec}`: the path inside the sandbox is missing"));
        }
        let mut t = Tmpfs {
            target: target.into(),
            size: None,
            mode: None,
            noexec: false,
        };
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o.split_once('=') {
                Some(("size", v)) => {
                    t.size = Some(v.parse().map_err(|e| format!("`{spec}`: size: {e}"))?)
                }
                Some(("mode", v)) => {
                    t.mode = Some(
                        u32::from_str_radix(v, 8)
                            .ok()
                            .filter(|m| *m <= 0o7777)
                            .ok_or_else(|| {
                                format!(
                                "`{spec}`: mode `{v}` is not an octal permission (such as 1777)"
                            )
                            })?,
                    )
                }
                None if o == "noexec" => t.noexec = true,
                _ => {
                    return Err(format!(
                    "`{spec}`: unknown option `{o}` (size=SIZE, mode=OCTAL and noexec are known)"
                ))
                }
            }
        }
        Ok(t)
    }
}

/// A host path made visible inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// Path on the host.
    pub source: PathBuf,
    /// Absolute path inside the sandbox; the source path when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
    /// `ro` (default) or `rw`.
    #[serde(default)]
    pub mode: MountMode,
    /// Skip the mount, instead of failing, when the source does not exist
    /// (for policy defaults that must work on hosts of different layouts).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Part of the host-directories root (such as /usr): left out when an image
    /// provides the root.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
    /// No program may be run from it (`noexec`): the container backend sets it on the
    /// bind; the micro-VM refuses to run or map executable any file under it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub noexec: bool,
}

impl Mount {
    /// A read-only mount of `source` at `target`.
    pub fn ro(source: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        Mount {
            source: source.into(),
            target: Some(target.into()),
            mode: MountMode::Ro,
            optional: false,
            system: false,
            noexec: false,
        }
    }

    /// A read-write mount of `source` at `target`.
    pub fn rw(source: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        Mount {
            source: source.into(),
            target: Some(target.into()),
            mode: MountMode::Rw,
            optional: false,
            system: false,
            noexec: false,
        }
    }

    /// Where the mount appears in the sandbox.
    pub fn target_path(&self) -> &std::path::Path {
        self.target.as_deref().unwrap_or(&self.source)
    }

    /// Reads the CLI form `HOST:SANDBOX[:ro|:rw]` (or just `HOST`).
    pub fn parse_spec(spec: &str) -> Result<Self, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [s] => (*s, *s, MountMode::Ro),
            [s, t] => (*s, *t, MountMode::Ro),
            [s, t, "ro"] => (*s, *t, MountMode::Ro),
            [s, t, "rw"] => (*s, *t, MountMode::Rw),
            [_, _, m] => {
                return Err(format!(
                    "mount `{spec}`: mode must be `ro` or `rw`, not `{m}`"
                ))
            }
            _ => return Err(format!("mount `{spec}`: expected HOST:SANDBOX[:ro|:rw]")),
        };
        if source.is_empty() || target.is_empty() {
            return Err(format!("mount `{spec}`: expected HOST:SANDBOX[:ro|:rw]"));
        }
        Ok(Mount {
            source: source.into(),
            target: Some(target.into()),
            mode,
            optional: false,
            system: false,
            noexec: false,
        })
    }
}

/// What the workload reads on its standard input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stdin {
    /// End of file at once (`/dev/null`).
    #[default]
    Null,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// Written while the workload runs through [`crate::Execution::take_stdin`].
    Stream,
}

/// A program to run in a sandbox, and the per-run options that go with it.
///
/// Nothing of the caller's environment is inherited: the environment is exactly
/// [`Workload::env`] plus what the policy sets (and a default `PATH`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// The program: an absolute path inside the sandbox, or a name searched in `PATH`.
    pub program: String,
    /// Arguments after the program (argv[1..]).
    pub args: Vec<String>,
    /// `argv[0]`; the program when `None`.
    pub argv0: Option<String>,
    /// Environment variables set for the workload.
    pub env: BTreeMap<String, String>,
    /// Working directory inside the sandbox (default `/tmp`... or the profile's).
    pub cwd: Option<String>,
    /// Standard input.
    pub stdin: Stdin,
    /// Extra mounts for this run, added to the profile's.
    pub mounts: Vec<Mount>,
    /// In-memory filesystems for this run (`--tmpfs`, an OCI bundle's `tmpfs` mounts).
    pub tmpfs: Vec<Tmpfs>,
    /// Labels the policy's rules look at, such as `trust = "untrusted"`.
    pub labels: BTreeMap<String, String>,
    /// The policy profile to use (the CLI's `--workload NAME`).
    pub profile: Option<String>,
    /// Per-run isolation request; the policy decides when `None`.
    pub isolation: Option<IsolationRequest>,
    /// Per-run limits; each one replaces the profile's.
    pub limits: LimitOverrides,
    /// Per-run network mode.
    pub network: Option<Network>,
    /// Per-run egress options (`--allow`, `--deny`, `--expose`, `--secret`), added to
    /// the profile's; they need the egress network.
    pub egress: crate::network::EgressRequest,
    /// What the workload declares it needs (`auto` sends it where that exists).
    pub needs: Vec<Need>,
    /// An OCI image for the root: a name in the image store, or a path to an OCI
    /// layout directory or a `docker save` tarball. The program may then be empty (the
    /// image's entrypoint and cmd run).
    pub image: Option<String>,
    /// Per-run image import limits (for an image path imported by this run); each one
    /// set replaces the profile's.
    pub image_limits: ImageLimits,
    /// A host directory to use as the root as it is (an OCI bundle's rootfs): the
    /// policy's system mounts are then left out, as for an image.
    pub root_dir: Option<crate::plan::RootDir>,
    /// A network namespace to join, by path (an engine's), instead of a new one.
    pub netns: Option<PathBuf>,
    /// An IPC namespace to join, by path (a Kubernetes pod's), instead of a new one.
    pub ipcns: Option<PathBuf>,
    /// A UTS namespace to join, by path (a Kubernetes pod's): its host name is the
    /// sandbox's.
    pub utsns: Option<PathBuf>,
    /// A cgroup to make the sandbox's own cgroup in, as a path of plain names from
    /// each hierarchy's root (an engine's `linux.cgroupsPath`), instead of hsb's `hsb`
    /// directory: what holds that cgroup (a Kubernetes pod's) then holds the sandbox,
    /// its limits apply to it, and its usage counts the sandbox's. It must exist in
    /// every hierarchy hsb uses. Container isolation on cgroup v1; see
    /// [`crate::Plan::cgroup_parent`].
    pub cgroup_parent: Option<PathBuf>,
    /// The sandbox's host name (default: the profile's, else `sandbox`).
    pub hostname: Option<String>,
    /// The uid and gid the workload runs as inside the sandbox (default: the image's
    /// user, else 1000:1000).
    pub user: Option<(u32, u32)>,
    /// Supplementary groups of the workload inside the sandbox (an OCI bundle's
    /// `process.user.additionalGids`: Docker's `--group-add`, Kubernetes'
    /// `supplementalGroups` and `fsGroup`). The container backend gives them with a
    /// root caller (each mapped to the same host gid, never a group the host names);
    /// otherwise, and in a micro-VM, a run asking for any fails.
    pub groups: Vec<u32>,
}

impl Workload {
    /// A workload running `program` with `args`.
    ///
    /// ```
    /// use sandbox_core::Workload;
    /// let w = Workload::new("python3", ["-c", "print(42)"]).env("LANG", "C.UTF-8");
    /// assert_eq!(w.args, ["-c", "print(42)"]);
    /// ```
    pub fn new<I, S>(program: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Workload {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            ..Workload::default()
        }
    }

    /// Builds a workload from a full argv (`argv[0]` is the program).
    pub fn from_argv<I, S>(argv: I) -> Option<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut it = argv.into_iter().map(Into::into);
        let program = it.next()?;
        Some(Workload {
            program,
            args: it.collect(),
            ..Workload::default()
        })
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets the bytes read on stdin.
    pub fn stdin_bytes(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Stdin::Bytes(data.into());
        self
    }

    /// Adds an empty in-memory filesystem at `target` of at most `size` bytes.
    pub fn tmpfs(
        mut self,
        target: impl Into<PathBuf>,
        size: Option<crate::units::ByteSize>,
    ) -> Self {
        self.tmpfs.push(Tmpfs {
            target: target.into(),
            size,
            mode: None,
            noexec: false,
        });
        self
    }

    /// Adds a mount.
    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Sets a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Asks for an isolation level for this run.
    pub fn isolation(mut self, isolation: IsolationRequest) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Declares a need (`auto` picks a backend that provides it, or refuses).
    pub fn need(mut self, need: Need) -> Self {
        if !self.needs.contains(&need) {
            self.needs.push(need);
        }
        self
    }

    /// Runs on an OCI image's root (a store name, or a path).
    pub fn image(mut self, reference: impl Into<String>) -> Self {
        self.image = Some(reference.into());
        self
    }

    /// Names the policy profile to use.
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.profile = Some(name.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs() {
        let m = Mount::parse_spec("/data:/in").unwrap();
        assert_eq!(m.target_path(), std::path::Path::new("/in"));
        assert_eq!(m.mode, MountMode::Ro);
        assert_eq!(Mount::parse_spec("/a:/b:rw").unwrap().mode, MountMode::Rw);
        assert_eq!(
            Mount::parse_spec("/a").unwrap().target_path(),
            std::path::Path::new("/a")
        );
        assert!(Mount::parse_spec("/a:/b:rx")
            .unwrap_err()
            .contains("`ro` or `rw`"));
        assert!(Mount::parse_spec("/a:/b:rw:x").is_err());
        assert!(Mount::parse_spec(":/b").is_err());
    }
}
