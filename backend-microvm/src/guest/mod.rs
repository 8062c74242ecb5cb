//! What runs in the guest besides the workload: the supervisor's code, its descriptor
//! tables and the fixed part of the address space.
//!
//! The VMM builds all of it before the first instruction runs; the guest never
//! changes it. See `supervisor.S` for how syscalls and exceptions reach the VMM.

mod code;
pub(crate) mod layout;
mod tables;
pub(crate) mod vdso;

pub(crate) use code::{FAST_MAP_BITS, FAST_MAP_OFFSET, UENTRY_OFFSET, WARM_OFFSET};
pub(crate) use tables::{build_supervisor, map_stub_pages, IDT_ENTRIES};

#[cfg(test)]
mod tests {
    use super::code::{HANDLER_CODE, STUB_CODE};
    use super::layout;

    #[test]
    fn supervisor_fits_its_pages() {
        assert!(STUB_CODE.len() <= layout::PAGE_SIZE as usize);
        // The fast-call map lies beyond the stub's code, inside its page.
        assert!(STUB_CODE.len() <= super::FAST_MAP_OFFSET);
        assert!(super::FAST_MAP_OFFSET + super::FAST_MAP_BITS / 8 <= layout::PAGE_SIZE as usize);
        assert!(HANDLER_CODE.len() <= layout::PAGE_SIZE as usize);
        // The flush entry the VMM resumes at is the stub's `ud2`.
        let off = (layout::FLUSH_ENTRY_VA - layout::STUB_VA) as usize;
        assert_eq!(&STUB_CODE[off..off + 2], &[0x0f, 0x0b]);
        // The VMM's returns land on the stub's `iretq` (stub + 6).
        assert_eq!(&STUB_CODE[6..8], &[0x48, 0xcf]);
    }

    /// The stub answers `arch_prctl(ARCH_SET_FS)` itself below `USER_TOP`: its bound
    /// is the exit path's (`sys_arch_prctl`), as layout.rs has it.
    #[test]
    fn stub_set_fs_bound_is_user_top() {
        let src = include_str!("supervisor.S");
        let want = format!(".set    USER_TOP, {:#x}\n", layout::USER_TOP);
        assert!(src.contains(&want), "supervisor.S lacks {want:?}");
        assert!(src.contains(".set    SYS_ARCH_PRCTL, 158\n"));
        assert!(src.contains(".set    ARCH_SET_FS, 0x1002\n"));
    }

    /// The committed bytes are what `supervisor.S` assembles to (skipped, loudly, where
    /// binutils is missing: the bytes are then only checked by the KVM tests).
    #[test]
    fn supervisor_bytes_match_source() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/guest");
        let tmp = std::env::temp_dir().join(format!("hsb-sup-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let obj = tmp.join("sup.o");
        let status = std::process::Command::new("as")
            .arg("-o")
            .arg(&obj)
            .arg(dir.join("supervisor.S"))
            .status();
        let Ok(status) = status else {
            // The feature rule of the crate's tests (tests/common/mod.rs): fail under
            // HSB_REQUIRE_FEATURES=1 (CI), else skip loudly.
            if std::env::var("HSB_REQUIRE_FEATURES").is_ok_and(|v| v == "1") {
                panic!("HSB_REQUIRE_FEATURES=1 but `as` (binutils) is not installed");
            }
            eprintln!("SKIPPED: `as` (binutils) is not installed; supervisor bytes not re-checked");
            return;
        };
        assert!(status.success());
        let vobj = tmp.join("vdso.o");
        let ok = std::process::Command::new("as")
            .arg("-o")
            .arg(&vobj)
            .arg(dir.join("vdso.S"))
            .status()
            .unwrap()
            .success();
        assert!(ok);
        for (obj, section, bytes) in [
            (&obj, ".stub", STUB_CODE),
            (&obj, ".handler", HANDLER_CODE),
            (&vobj, ".vdso", super::code::VDSO_CODE),
        ] {
            let bin = tmp.join(format!("{section}.bin"));
            let ok = std::process::Command::new("objcopy")
                .args(["-O", "binary", "-j", section])
                .arg(obj)
                .arg(&bin)
                .status()
                .unwrap()
                .success();
            assert!(ok);
            assert_eq!(
                std::fs::read(&bin).unwrap(),
                bytes,
                "section {section}: rerun assemble.sh"
            );
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
