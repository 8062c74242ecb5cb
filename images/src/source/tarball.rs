//! A tarball source (`docker save`): its entries, indexed once; files are read by
//! position from the one descriptor the tarball was opened as.
//!
//! Nothing here touches the filesystem by name: a symlink or hard link entry is
//! resolved among the tarball's own entries ([`EntryName::resolve_link`]), entries
//! whose names are absolute or climb with `..` can never be looked up, a name that
//! appears twice is refused when used (which copy is meant is ambiguous), and FIFOs,
//! devices and sparse files are refused by type.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::sync::Arc;

use super::{Blob, SourceRef};
use crate::error::{io, ImageError};
use crate::name::EntryName;
use crate::stream::{Classified, Tap};

const MAX_HOPS: usize = 8;

/// One entry of the tarball.
#[derive(Debug, Clone)]
enum Entry {
    File {
        offset: u64,
        size: u64,
    },
    /// A symlink (target relative to the link's directory).
    Symlink(Vec<u8>),
    /// A hard link (target relative to the tarball's root).
    Hardlink(Vec<u8>),
    Other(&'static str),
    Duplicate,
}

/// The tarball's entries, by name.
#[derive(Debug)]
pub(crate) struct TarSource {
    file: Arc<File>,
    entries: HashMap<EntryName, Entry>,
}

impl TarSource {
    /// Indexes the tarball open as `file` (at most `max_entries` entries).
    pub(crate) fn index(
        file: File,
        src: SourceRef<'_>,
        max_entries: u64,
    ) -> Result<TarSource, ImageError> {
        let len = file
            .metadata()
            .map_err(io(format!("reading {}", src.0)))?
            .len();
        let file = Arc::new(file);
        let tap = Tap::default();
        let mut handle = &*file;
        handle
            .seek(SeekFrom::Start(0))
            .map_err(io(format!("reading {}", src.0)))?;
        let mut archive = tar::Archive::new(tap.window(tap.source(handle)));
        let bad = |tap: &Tap, e: std::io::Error, after: usize| {
            match tap.classify(e) {
            Classified::Source(e) => ImageError::Io {
                what: format!("reading {}", src.0),
                source: e,
            },
            Classified::HeaderWindow => src.malformed(format!(
                "entry {}: an extension header (long name or PAX record) over 1 MiB",
                after + 1
            )),
            _ => src.malformed(format!(
                "not a valid tarball: entry {} is corrupt (the tar reader's message is not shown: it would quote the file)",
                after + 1
            )),
        }
        };
        let mut entries: HashMap<EntryName, Entry> = HashMap::new();
        let mut it = archive.entries_with_seek().map_err(|e| bad(&tap, e, 0))?;
        let mut count = 0usize;
        loop {
            tap.arm();
            let next = it.next();
            tap.disarm();
            let e = match next {
                None => break,
                Some(Ok(e)) => e,
                Some(Err(e)) => return Err(bad(&tap, e, count)),
            };
            count += 1;
            if count as u64 > max_entries {
                return Err(src.malformed(format!(
                    "the tarball has more than {max_entries} entries; an image tarball has a few per layer"
                )));
            }
            let Ok(name) = EntryName::parse_bytes(&e.path_bytes()) else {
                // Absolute, `..`, not UTF-8: no lookup can reach it.
                continue;
            };
            let kind = e.header().entry_type();
            let entry = match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let (offset, size) = (e.raw_file_position(), e.size());
                    if offset.checked_add(size).is_none_or(|end| end > len) {
                        return Err(src.malformed(format!(
                            "`{name}` claims {size} bytes past the end of the tarball: the tarball is truncated"
                        )));
                    }
                    Entry::File { offset, size }
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = e.link_name_bytes().unwrap_or_default().into_owned();
                    if kind == tar::EntryType::Symlink {
                        Entry::Symlink(target)
                    } else {
                        Entry::Hardlink(target)
                    }
                }
                tar::EntryType::Directory => Entry::Other("a directory"),
                tar::EntryType::Fifo => Entry::Other("a FIFO"),
                tar::EntryType::Char | tar::EntryType::Block => Entry::Other("a device"),
                tar::EntryType::GNUSparse => Entry::Other("a sparse file"),
                _ => continue,
            };
            match entries.entry(name) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(entry);
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let both_dirs = matches!(
                        (o.get(), &entry),
                        (Entry::Other("a directory"), Entry::Other("a directory"))
                    );
                    if !both_dirs {
                        o.insert(Entry::Duplicate);
                    }
                }
            }
        }
        Ok(TarSource { file, entries })
    }

    fn get(&self, name: &EntryName) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Whether the tarball has an entry of that name.
    pub(crate) fn exists(&self, name: &EntryName) -> bool {
        self.get(name).is_some()
    }

    /// A reader over the file `name`, links resolved among the tarball's entries.
    pub(crate) fn open(&self, src: SourceRef<'_>, name: &EntryName) -> Result<Blob, ImageError> {
        let mut cur = name.clone();
        for _ in 0..=MAX_HOPS {
            let next = match self.get(&cur) {
                None => return Err(src.missing(name, &cur)),
                Some(Entry::File { offset, size }) => {
                    return Ok(Blob::range(self.file.clone(), *offset, *size))
                }
                Some(Entry::Symlink(t)) => cur.resolve_link(t),
                Some(Entry::Hardlink(t)) => EntryName::parse_bytes(t),
                Some(Entry::Other(what)) => {
                    return Err(src.refuse(name, format!("is {what} in the tarball, not a file")))
                }
                Some(Entry::Duplicate) => {
                    return Err(src.refuse(
                        name,
                        "appears more than once in the tarball: which copy is meant is ambiguous",
                    ))
                }
            };
            cur = next.map_err(|why| {
                src.refuse(
                    name,
                    format!("is a link whose target {why}: an image's files are read only from inside it"),
                )
            })?;
        }
        Err(src.refuse(name, format!("is a chain of more than {MAX_HOPS} links")))
    }
}
