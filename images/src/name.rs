//! Names inside an image source, checked before anything is opened.
//!
//! Every file an import reads from a source (an OCI layout directory, an unpacked
//! `docker save`, a tarball) is named by an [`EntryName`]: a relative path of plain
//! components, never absolute, never `..`. Names come from the image's own metadata
//! (`index.json`, manifests, `manifest.json`) and from symlinks inside the source; both
//! go through [`EntryName::parse`] or [`EntryName::resolve_link`], so no name can reach
//! outside the source whatever the metadata says.

use std::fmt;

/// Longest name accepted (real names are `blobs/sha256/<64 hex>` or `<64 hex>/layer.tar`).
const MAX_NAME: usize = 1024;

/// A checked relative path inside an image source, components joined by `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct EntryName(String);

/// Why a name is refused; the text completes "the name ...".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadName {
    Empty,
    Absolute,
    DotDot,
    Nul,
    TooLong,
    NotUtf8,
    /// A link's target climbs above the source's root.
    Escapes,
}

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadName::Empty => "is empty",
            BadName::Absolute => "is absolute: names in an image are relative to the image",
            BadName::DotDot => "contains `..`: names in an image may not climb out of it",
            BadName::Nul => "contains a NUL byte",
            BadName::TooLong => "is longer than 1024 bytes",
            BadName::NotUtf8 => "is not UTF-8",
            BadName::Escapes => "points outside the image",
        })
    }
}

impl EntryName {
    /// A name as the image's metadata writes it (`./` prefixes and repeated `/` allowed).
    pub(crate) fn parse(raw: &str) -> Result<EntryName, BadName> {
        if raw.starts_with('/') {
            return Err(BadName::Absolute);
        }
        let mut parts: Vec<&str> = Vec::new();
        for c in raw.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err(BadName::DotDot),
                c if c.contains('\0') => return Err(BadName::Nul),
                c => parts.push(c),
            }
        }
        EntryName::from_parts(&parts)
    }

    /// A name from raw bytes (a tarball's entry names).
    pub(crate) fn parse_bytes(raw: &[u8]) -> Result<EntryName, BadName> {
        EntryName::parse(std::str::from_utf8(raw).map_err(|_| BadName::NotUtf8)?)
    }

    fn from_parts(parts: &[&str]) -> Result<EntryName, BadName> {
        if parts.is_empty() {
            return Err(BadName::Empty);
        }
        let joined = parts.join("/");
        if joined.len() > MAX_NAME {
            return Err(BadName::TooLong);
        }
        Ok(EntryName(joined))
    }

    /// The name a symlink at `self` leads to, resolved inside the image: relative to the
    /// link's directory; absolute targets and targets that climb above the image's root
    /// are refused (they would name a host file, not an image file).
    pub(crate) fn resolve_link(&self, target: &[u8]) -> Result<EntryName, BadName> {
        let target = std::str::from_utf8(target).map_err(|_| BadName::NotUtf8)?;
        if target.starts_with('/') {
            return Err(BadName::Escapes);
        }
        let mut parts: Vec<&str> = self.0.split('/').collect();
        parts.pop();
        for c in target.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop().ok_or(BadName::Escapes)?;
                }
                c if c.contains('\0') => return Err(BadName::Nul),
                c => parts.push(c),
            }
        }
        EntryName::from_parts(&parts)
    }

    /// The name as a path relative to the source (never absolute, never `..`).
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shown(&self.0))
    }
}

/// A `sha256:<64 hex digits>` digest (the only algorithm accepted), as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Sha256(String);

impl Sha256 {
    /// Parses `sha256:<64 hex>`; the error says what is wrong without repeating long input.
    pub(crate) fn parse(d: &str) -> Result<Sha256, String> {
        match d.split_once(':') {
            Some(("sha256", hex))
                if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Ok(Sha256(hex.to_ascii_lowercase()))
            }
            _ => Err(format!(
                "digest `{}` is not sha256:<64 hex digits>",
                shown(d)
            )),
        }
    }

    /// From 64 hex digits (a file name that is a digest).
    pub(crate) fn from_hex(hex: &str) -> Option<Sha256> {
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Sha256(hex.to_ascii_lowercase()))
    }

    /// The hex digits.
    pub(crate) fn hex(&self) -> &str {
        &self.0
    }

    /// Where an OCI layout keeps the blob: `blobs/sha256/<hex>`.
    pub(crate) fn blob_name(&self) -> EntryName {
        EntryName(format!("blobs/sha256/{}", self.0))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

/// Text from an image (a name, a link target, a tag) made safe to print: control
/// characters escaped (no terminal sequences from a hostile image), at most 200
/// characters.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 200;
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`shown`] for raw bytes.
pub(crate) fn shown_bytes(b: &[u8]) -> String {
    shown(&String::from_utf8_lossy(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside() {
        assert_eq!(EntryName::parse("./a//b/./c").unwrap().as_str(), "a/b/c");
        assert_eq!(EntryName::parse("../secret"), Err(BadName::DotDot));
        assert_eq!(EntryName::parse("a/../../b"), Err(BadName::DotDot));
        assert_eq!(EntryName::parse("/etc/shadow"), Err(BadName::Absolute));
        assert_eq!(EntryName::parse("./"), Err(BadName::Empty));
        assert_eq!(EntryName::parse("a\0b"), Err(BadName::Nul));
        assert_eq!(EntryName::parse(&"a".repeat(2000)), Err(BadName::TooLong));
        let l = EntryName::parse("id2/layer.tar").unwrap();
        assert_eq!(
            l.resolve_link(b"../id1/layer.tar").unwrap().as_str(),
            "id1/layer.tar"
        );
        assert_eq!(l.resolve_link(b"../../x"), Err(BadName::Escapes));
        assert_eq!(l.resolve_link(b"/etc/shadow"), Err(BadName::Escapes));
        assert_eq!(l.resolve_link(b".."), Err(BadName::Empty));
    }

    #[test]
    fn digests_and_shown_text() {
        let d = Sha256::parse(&format!("sha256:{}", "AB".repeat(32))).unwrap();
        assert_eq!(
            d.blob_name().as_str(),
            format!("blobs/sha256/{}", "ab".repeat(32))
        );
        assert!(Sha256::parse("sha512:00").is_err());
        assert!(Sha256::parse(&format!("sha256:{}/..", "a".repeat(61))).is_err());
        assert_eq!(shown("a\x1b]52;c;x\x07"), "a\\u{1b}]52;c;x\\u{7}");
        assert_eq!(shown(&"x".repeat(500)).chars().count(), 201);
    }
}
