//! The host's mount table (`/proc/self/mountinfo`), read once per run: which devices
//! are kernel interfaces, and what is mounted below a directory.

use std::path::{Path, PathBuf};

/// Filesystem types that are kernel interfaces, never data: a sandbox gets none of them
/// from the host (it has its own `/proc` and `/dev`). By name, as mountinfo gives them.
pub(super) const KERNEL_FS_NAMES: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "configfs",
    "pstore",
    "efivarfs",
    "binfmt_misc",
    "mqueue",
    "nsfs",
    "fusectl",
    "selinuxfs",
    "smackfs",
    "hugetlbfs",
    "rpc_pipefs",
    "nfsd",
    "xenfs",
    "autofs",
];

/// The same by `statfs` magic number (devtmpfs reports tmpfs's magic: it is found by
/// device instead).
pub(super) const KERNEL_FS_MAGICS: &[(i64, &str)] = &[
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x1cd1, "devpts"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x7363_6673, "securityfs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0xcafe_4a11, "bpf"),
    (0x6265_6570, "configfs"),
    (0x6165_676c, "pstore"),
    (0xde5e_81e4, "efivarfs"),
    (0x4249_4e4d, "binfmt_misc"),
    (0x1980_0202, "mqueue"),
    (0x6e73_6673, "nsfs"),
    (0x6573_5543, "fusectl"),
    (0xf97c_ff8c, "selinuxfs"),
    (0x4341_5d53, "smackfs"),
    (0x9584_58f6, "hugetlbfs"),
    (0x6759_6969, "rpc_pipefs"),
    (0x6e66_7364, "nfsd"),
    (0xabba_1974, "xenfs"),
    (0x0187, "autofs"),
    (0x0904_1934, "anon_inodefs"),
    (0x5049_5045, "pipefs"),
    (0x534f_434b, "sockfs"),
    (0x5049_4446, "pidfs"),
];

/// The host directories whose mounts are kernel interfaces whatever their type
/// (`/dev/shm` is an ordinary tmpfs, `/dev` a devtmpfs that looks like one). A whole
/// filesystem mounted there is one; part of an ordinary filesystem bound there (a
/// file bound on /dev/kvm, /dev/termination-log) is one where it is bound from only.
const KERNEL_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MountLine {
    /// `st_dev` of the mounted filesystem.
    pub(super) dev: u64,
    /// Where it is mounted.
    pub(super) point: PathBuf,
    /// The directory of its filesystem that is mounted there (`/` for all of it).
    pub(super) root: PathBuf,
    /// Its type.
    pub(super) fstype: String,
}

impl MountLine {
    /// Mounted in the host's /proc, /sys or /dev.
    fn in_kernel_dir(&self) -> bool {
        KERNEL_DIRS.iter().any(|d| self.point.starts_with(d))
    }

    /// Its whole filesystem is a kernel interface: by type, or mounted whole in the
    /// host's /proc, /sys or /dev.
    pub(super) fn is_kernel(&self) -> bool {
        KERNEL_FS_NAMES.contains(&self.fstype.as_str())
            || (self.in_kernel_dir() && self.root == Path::new("/"))
    }
}

/// The mount table of this process's mount namespace.
#[derive(Debug, Clone, Default)]
pub(super) struct MountTable {
    pub(super) lines: Vec<MountLine>,
}

/// `\040` and friends in mountinfo paths.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], octal) {
            let v =
                u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0');
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

impl MountTable {
    /// Reads `/proc/self/mountinfo`.
    pub(super) fn read() -> std::io::Result<MountTable> {
        Ok(MountTable::parse(&std::fs::read_to_string(
            "/proc/self/mountinfo",
        )?))
    }

    /// Parses mountinfo text; lines it cannot read are skipped.
    pub(super) fn parse(text: &str) -> MountTable {
        let lines = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                let _id = fields.next()?;
                let _parent = fields.next()?;
                let (major, minor) = fields.next()?.split_once(':')?;
                let root = unescape(fields.next()?);
                let point = unescape(fields.next()?);
                // Mount options, optional fields, then the separator.
                let mut rest = fields.skip_while(|f| *f != "-");
                rest.next()?;
                let fstype = rest.next()?.to_string();
                Some(MountLine {
                    dev: libc::makedev(major.parse().ok()?, minor.parse().ok()?),
                    point,
                    root,
                    fstype,
                })
            })
            .collect();
        MountTable { lines }
    }

    /// The kernel-interface mount whose filesystem has device `dev`, if any.
    pub(super) fn kernel_device(&self, dev: u64) -> Option<&MountLine> {
        self.lines.iter().find(|l| l.dev == dev && l.is_kernel())
    }

    /// A kernel-interface mount strictly below the directory `dir`, if any (a
    /// recursive bind of `dir` would carry it into the sandbox).
    pub(super) fn kernel_below(&self, dir: &Path) -> Option<&MountLine> {
        self.lines.iter().find(|l| {
            l.point != dir
                && l.point.starts_with(dir)
                && (l.is_kernel() || l.in_kernel_dir() || self.kernel_device(l.dev).is_some())
        })
    }

    /// Part of an ordinary filesystem that the host binds into its /proc, /sys or /dev
    /// (`/run/shm` bound on `/dev/shm`), reached at `path` or above it by another
    /// mount of that filesystem: the mount in the kernel directory, if any.
    pub(super) fn kernel_alias(&self, path: &Path) -> Option<&MountLine> {
        self.lines
            .iter()
            .filter(|l| l.in_kernel_dir() && !l.is_kernel())
            .find(|l| {
                self.lines
                    .iter()
                    .filter(|m| m.dev == l.dev && !m.in_kernel_dir())
                    .filter_map(|m| {
                        l.root
                            .strip_prefix(&m.root)
                            .ok()
                            .map(|rel| m.point.join(rel))
                    })
                    .any(|alias| path.starts_with(alias))
            })
    }
}
