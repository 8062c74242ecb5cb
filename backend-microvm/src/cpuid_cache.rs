//! A per-boot cache of `KVM_GET_SUPPORTED_CPUID`, so a one-shot process (`hsb run`)
//! does not ask KVM again what it answered the previous one.
//!
//! Answering it makes the host kernel run `cpuid` for every leaf; where the host is
//! itself a virtual machine each one is an exit to the outer hypervisor, ~0.4 ms in
//! all on the development machines: a tenth of a one-shot micro-VM run through the
//! CLI. The answer changes only with the host kernel, its KVM module or the CPU, so
//! the cache is keyed by the boot (`/proc/sys/kernel/random/boot_id`, new at every
//! boot and kexec) and by `/dev/kvm`'s identity (device, inode and change time: a
//! reloaded module makes a new node), besides this file format's version.
//!
//! The file is trusted only when this user owns it and its directory, and nobody else
//! can write either: root's lives in `/run/hybrid-sandbox`, another user's in
//! `$XDG_RUNTIME_DIR/hybrid-sandbox`, both on a tmpfs that a reboot empties. Any doubt
//! (another owner, a loose mode, a key that does not match, a line that does not
//! parse, too many entries) means asking KVM, as without a cache. Even a forged
//! cache could only change the CPUID the guest sees (which KVM checks when it is set);
//! it cannot give the guest anything the host's KVM does not allow.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use kvm_bindings::{kvm_cpuid_entry2, KVM_MAX_CPUID_ENTRIES};

/// The first word of the file; bump it when the format changes.
const MAGIC: &str = "hsb-kvm-cpuid-1";

/// What the cached answer depends on, as one line; `None` when it cannot be told
/// (then nothing is cached).
fn key() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let kvm = std::fs::metadata("/dev/kvm").ok()?;
    Some(format!(
        "{MAGIC} boot={} kvm={:x}:{}:{}.{}",
        boot.trim(),
        kvm.rdev(),
        kvm.ino(),
        kvm.ctime(),
        kvm.ctime_nsec()
    ))
}

/// Where this user's cache lives (see the module's doc).
fn dir() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from("/run/hybrid-sandbox"));
    }
    let run = std::env::var_os("XDG_RUNTIME_DIR")?;
    Some(Path::new(&run).join("hybrid-sandbox"))
}

/// True when `m` belongs to this user and nobody else may write it.
fn trusted(m: &std::fs::Metadata) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    m.uid() == me && m.mode() & 0o022 == 0
}

/// The cached entries, if a trustworthy cache for this boot and KVM exists.
pub(crate) fn load() -> Option<Vec<kvm_cpuid_entry2>> {
    load_in(&dir()?, &key()?)
}

/// [`load`] from `dir` with `key`.
fn load_in(dir: &Path, key: &str) -> Option<Vec<kvm_cpuid_entry2>> {
    if !trusted(&std::fs::symlink_metadata(dir).ok()?) {
        return None;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join("kvm-cpuid"))
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || !trusted(&meta) || meta.len() > 64 << 10 {
        return None;
    }
    let text = std::io::read_to_string(file).ok()?;
    parse(&text, key)
}

/// The entries of `text` if its first line is `key`.
fn parse(text: &str, key: &str) -> Option<Vec<kvm_cpuid_entry2>> {
    let mut lines = text.lines();
    if lines.next()? != key {
        return None;
    }
    let mut entries = Vec::new();
    for line in lines {
        let mut f = line.split(' ').map(|w| u32::from_str_radix(w, 16));
        let mut next = || f.next()?.ok();
        let entry = kvm_cpuid_entry2 {
            function: next()?,
            index: next()?,
            flags: next()?,
            eax: next()?,
            ebx: next()?,
            ecx: next()?,
            edx: next()?,
            ..Default::default()
        };
        if next().is_some() {
            return None;
        }
        entries.push(entry);
    }
    (!entries.is_empty() && entries.len() <= KVM_MAX_CPUID_ENTRIES).then_some(entries)
}

/// The file's text for `entries` under `key`.
fn format(entries: &[kvm_cpuid_entry2], key: &str) -> String {
    let mut text = format!("{key}\n");
    for e in entries {
        text.push_str(&format!(
            "{:x} {:x} {:x} {:x} {:x} {:x} {:x}\n",
            e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx
        ));
    }
    text
}

/// Keeps `entries` for the next process (best effort: a cache that cannot be written
/// costs only the next process's query).
pub(crate) fn store(entries: &[kvm_cpuid_entry2]) {
    if let (Some(dir), Some(key)) = (dir(), key()) {
        store_in(&dir, &key, entries);
    }
}

/// [`store`] in `dir` under `key`.
fn store_in(dir: &Path, key: &str, entries: &[kvm_cpuid_entry2]) {
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() && trusted(&m) => {}
        _ => return,
    }
    let tmp = dir.join(format!("kvm-cpuid.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(format(entries, key).as_bytes()));
    if written.is_err() || std::fs::rename(&tmp, dir.join("kvm-cpuid")).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, eax: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index: 1,
            flags: 2,
            eax,
            ebx: 0xffff_ffff,
            ecx: 3,
            edx: 4,
            ..Default::default()
        }
    }

    #[test]
    fn entries_round_trip_under_their_key_only() {
        let e = vec![entry(0, 0xd), entry(0x8000_0001, 7)];
        let text = format(&e, "hsb-kvm-cpuid-1 boot=a kvm=1");
        let back = parse(&text, "hsb-kvm-cpuid-1 boot=a kvm=1").expect("parses");
        assert_eq!(back.len(), 2);
        assert_eq!(
            (back[1].function, back[1].eax, back[1].ebx),
            (0x8000_0001, 7, 0xffff_ffff)
        );
        assert!(parse(&text, "hsb-kvm-cpuid-1 boot=b kvm=1").is_none());
    }

    #[test]
    fn anything_off_is_no_cache() {
        let key = "k";
        for bad in [
            "",
            "k\n",
            "k\n1 2 3 4 5 6\n",
            "k\n1 2 3 4 5 6 7 8\n",
            "k\n1 2 3 4 5 6 zz\n",
            "k\n-1 2 3 4 5 6 7\n",
            "other\n1 2 3 4 5 6 7\n",
        ] {
            assert!(parse(bad, key).is_none(), "{bad:?}");
        }
        let many = format!("k\n{}", "1 2 3 4 5 6 7\n".repeat(KVM_MAX_CPUID_ENTRIES + 1));
        assert!(parse(&many, key).is_none());
    }

    #[test]
    fn only_a_file_of_this_user_that_nobody_else_writes_is_read() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("hsb-cpuid-test-{}", std::process::id()));
        let dir = base.join("cache");
        std::fs::create_dir_all(&base).unwrap();
        let e = vec![entry(0, 0xd)];
        store_in(&dir, "k", &e);
        let file = dir.join("kvm-cpuid");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
        assert_eq!(load_in(&dir, "k").map(|v| v.len()), Some(1));
        assert!(load_in(&dir, "other").is_none(), "another boot's cache");
        // Writable by others: not trusted.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o622)).unwrap();
        assert!(load_in(&dir, "k").is_none(), "a group/other-writable file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(load_in(&dir, "k").is_none(), "a world-writable directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        // A symlink in its place is not followed.
        let elsewhere = base.join("elsewhere");
        std::fs::rename(&file, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
        assert!(load_in(&dir, "k").is_none(), "a symlink");
        std::fs::remove_file(&file).unwrap();
        // Another user's file (when this test may give it away).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            store_in(&dir, "k", &e);
            std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
            assert!(load_in(&dir, "k").is_none(), "another user's file");
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
