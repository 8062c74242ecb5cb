//! The ELF structures the loader reads from a program: `Elf64_Ehdr`, `Elf64_Phdr`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::assert_size;

/// `Elf64_Ehdr` (64 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Elf64Ehdr {
    pub(crate) e_ident: [u8; 16],
    pub(crate) e_type: u16,
    pub(crate) e_machine: u16,
    pub(crate) e_version: u32,
    pub(crate) e_entry: u64,
    pub(crate) e_phoff: u64,
    pub(crate) e_shoff: u64,
    pub(crate) e_flags: u32,
    pub(crate) e_ehsize: u16,
    pub(crate) e_phentsize: u16,
    pub(crate) e_phnum: u16,
    pub(crate) e_shentsize: u16,
    pub(crate) e_shnum: u16,
    pub(crate) e_shstrndx: u16,
}
assert_size!(Elf64Ehdr, 64);

/// `ELFCLASS64` and `ELFDATA2LSB`: the only kind of file an x86-64 loader takes.
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
/// `EM_X86_64`.
const EM_X86_64: u16 = 62;

impl Elf64Ehdr {
    /// Whether the file starts as an ELF file does.
    pub(crate) fn is_elf(&self) -> bool {
        self.e_ident[..4] == *b"\x7fELF"
    }

    /// Whether it is a 64-bit little-endian x86-64 file.
    pub(crate) fn is_x86_64(&self) -> bool {
        self.e_ident[4] == ELFCLASS64
            && self.e_ident[5] == ELFDATA2LSB
            && self.e_machine == EM_X86_64
    }
}

/// `Elf64_Phdr` (56 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Elf64Phdr {
    pub(crate) p_type: u32,
    pub(crate) p_flags: u32,
    pub(crate) p_offset: u64,
    pub(crate) p_vaddr: u64,
    pub(crate) p_paddr: u64,
    pub(crate) p_filesz: u64,
    pub(crate) p_memsz: u64,
    pub(crate) p_align: u64,
}
assert_size!(Elf64Phdr, 56);

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layouts_match_the_c_library() {
        assert_eq!(size_of::<Elf64Ehdr>(), size_of::<libc::Elf64_Ehdr>());
        assert_eq!(
            offset_of!(Elf64Ehdr, e_phoff),
            offset_of!(libc::Elf64_Ehdr, e_phoff)
        );
        assert_eq!(
            offset_of!(Elf64Ehdr, e_phnum),
            offset_of!(libc::Elf64_Ehdr, e_phnum)
        );
        assert_eq!(size_of::<Elf64Phdr>(), size_of::<libc::Elf64_Phdr>());
        assert_eq!(
            offset_of!(Elf64Phdr, p_filesz),
            offset_of!(libc::Elf64_Phdr, p_filesz)
        );
        assert_eq!(
            offset_of!(Elf64Phdr, p_memsz),
            offset_of!(libc::Elf64_Phdr, p_memsz)
        );
    }
}
