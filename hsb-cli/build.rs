//! Link options of the `hsb` binary.
//!
//! Every `hsb` command (and every call an engine makes to the OCI runtime) starts this
//! large position-independent binary; a good part of its start was the dynamic loader
//! reading 34,000 relative relocations (830 KB of `.rela.dyn`). Packed relative
//! relocations (`DT_RELR`: 15 KB) take ~0.6 ms off each start here (`hsb --version`:
//! 2.7 -> 2.1 ms; see the README's "Container start") while the binary stays
//! position-independent: ASLR of the host-side code, the VMM's included, is kept (a
//! build that is not position-independent would save 0.4 ms more and is not made).
//!
//! A binary with `DT_RELR` needs glibc 2.36 or later to start, so the option is given
//! only when building for this very host and its glibc has it.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("TARGET") != var("HOST")
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
    {
        return;
    }
    if glibc_version().is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// This host's glibc version, as `getconf GNU_LIBC_VERSION` prints it ("glibc 2.36").
fn glibc_version() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (major, minor) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    Some((major.parse().ok()?, minor.split('.').next()?.parse().ok()?))
}
