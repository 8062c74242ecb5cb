//! A container snapshot as a file: its writable layer, which a sandbox of the same
//! plan gets back on each start, in any process of this build.
//!
//! **The file** (integers little-endian):
//!
//! ```text
//! "HSBCSNAP"  format u32 (1)  the plan's fingerprint [32]
//! roots:   count u32, then each: length u32, bytes          (/tmp, the tmpfs mounts)
//! entries: count u64, then each: kind u8 (0 directory, 1 file, 2 symlink),
//!          path (length u32, bytes), then a directory's mode u32; a file's mode u32,
//!          length u64, bytes; a symlink's target (length u32, bytes)
//! SHA-256 [32] of every byte before it
//! ```
//!
//! **Loading** checks the magic (a micro-VM's file is named as such), the format, the
//! checksum (a file cut short or changed is refused), that the plan is the one the
//! snapshot was saved from, that its roots are the plan's, and every entry: an
//! absolute path inside a root, without `.`, `..` or empty components, a mode of
//! permission bits, lengths within the bounds of a snapshot taken here. What it holds
//! is then written back through the new sandbox's own file API, as the workload could
//! write it: a crafted file can put no more than files in the sandbox's own
//! filesystems.

use sha2::Digest;

use super::{Saved, MAX_BYTES, MAX_ENTRIES};

pub(super) const MAGIC: &[u8; 8] = b"HSBCSNAP";
const FORMAT: u32 = 1;
/// The micro-VM's snapshot files start so.
const MICROVM_MAGIC: &[u8; 8] = b"HSBSNAP\0";
/// Longest path or symlink target.
const PATH_MAX: usize = 4096;
const SUM: usize = 32;

/// The file of a snapshot: `fingerprint` of its plan, its `roots` and `saved`.
pub(super) fn encode(fingerprint: [u8; 32], roots: &[String], saved: &[Saved]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&FORMAT.to_le_bytes());
    b.extend_from_slice(&fingerprint);
    b.extend_from_slice(&(roots.len() as u32).to_le_bytes());
    for r in roots {
        put_str(&mut b, r);
    }
    b.extend_from_slice(&(saved.len() as u64).to_le_bytes());
    for s in saved {
        match s {
            Saved::Dir { path, mode } => {
                b.push(0);
                put_str(&mut b, path);
                b.extend_from_slice(&mode.to_le_bytes());
            }
            Saved::File { path, mode, data } => {
                b.push(1);
                put_str(&mut b, path);
                b.extend_from_slice(&mode.to_le_bytes());
                b.extend_from_slice(&(data.len() as u64).to_le_bytes());
                b.extend_from_slice(data);
            }
            Saved::Link { path, target } => {
                b.push(2);
                put_str(&mut b, path);
                put_str(&mut b, target);
            }
        }
    }
    let sum = sha2::Sha256::digest(&b);
    b.extend_from_slice(&sum);
    b
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u32).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// Most bytes of a file this build wrote: the data bound and room for the entries'
/// paths.
pub(super) const FILE_MAX: u64 = MAX_BYTES + (64 << 20);

/// What a loaded file holds.
#[derive(Debug)]
pub(super) struct Decoded {
    pub(super) saved: Vec<Saved>,
    pub(super) bytes: u64,
}

/// Why a file cannot be loaded.
#[derive(Debug)]
pub(super) enum Bad {
    /// Not a file of this kind, or damaged: what is wrong.
    File(String),
    /// A good file of a sandbox with other settings.
    OtherPlan,
}

/// Reads the file `b` for a sandbox whose plan has `fingerprint` and `roots`.
pub(super) fn decode(b: &[u8], fingerprint: [u8; 32], roots: &[String]) -> Result<Decoded, Bad> {
    let bad = |m: &str| Bad::File(m.to_string());
    if b.len() >= 8 && &b[..8] == MICROVM_MAGIC {
        return Err(bad(
            "a micro-VM's snapshot file, but the policy gives this workload the container isolation",
        ));
    }
    if b.len() < 8 || &b[..8] != MAGIC {
        return Err(bad("not a snapshot file of a container"));
    }
    if b.len() < 8 + 4 + 32 + SUM {
        return Err(bad("truncated"));
    }
    let format = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if format != FORMAT {
        return Err(Bad::File(format!(
            "a container snapshot file of format {format}; this build reads format {FORMAT}"
        )));
    }
    let (body, sum) = b.split_at(b.len() - SUM);
    if sha2::Sha256::digest(body)[..] != sum[..] {
        return Err(bad(
            "corrupt or truncated: its checksum does not match its bytes",
        ));
    }
    if body[12..44] != fingerprint {
        return Err(Bad::OtherPlan);
    }
    let mut r = Reader { b: body, at: 44 };
    let n = r.u32()? as usize;
    if n != roots.len() {
        return Err(bad("its filesystems are not the sandbox's"));
    }
    for root in roots {
        if r.str()? != root {
            return Err(bad("its filesystems are not the sandbox's"));
        }
    }
    let n = r.u64()?;
    if n > MAX_ENTRIES as u64 {
        return Err(bad("more entries than a snapshot holds"));
    }
    let mut saved = Vec::with_capacity(n as usize);
    let mut bytes = 0u64;
    for _ in 0..n {
        let kind = r.u8()?;
        let path = r.str()?.to_string();
        check_path(&path, roots)?;
        saved.push(match kind {
            0 => Saved::Dir {
                path,
                mode: r.mode()?,
            },
            1 => {
                let mode = r.mode()?;
                let len = r.u64()?;
                bytes = bytes.saturating_add(len);
                if bytes > MAX_BYTES {
                    return Err(bad("more file data than a snapshot holds"));
                }
                let data = r.take(len as usize)?.to_vec();
                Saved::File { path, mode, data }
            }
            2 => {
                let target = r.str()?.to_string();
                if target.is_empty() || target.contains('\0') {
                    return Err(bad("a symlink without a target"));
                }
                Saved::Link { path, target }
            }
            _ => return Err(bad("an entry of no known kind")),
        });
    }
    if r.at != body.len() {
        return Err(bad("bytes after its last entry"));
    }
    Ok(Decoded { saved, bytes })
}

/// An entry's path: absolute, strictly inside one of `roots`, plain components.
fn check_path(path: &str, roots: &[String]) -> Result<(), Bad> {
    let inside = roots.iter().any(|root| {
        path.strip_prefix(root.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| !rest.is_empty())
    });
    let plain = path
        .split('/')
        .skip(1)
        .all(|c| !c.is_empty() && c != "." && c != "..");
    if !path.starts_with('/') || !inside || !plain || path.contains('\0') {
        return Err(Bad::File(format!(
            "an entry's path {path:?} is not a plain path inside the sandbox's filesystems"
        )));
    }
    Ok(())
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| Bad::File("an entry runs past the end".into()))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Bad> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Bad> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self) -> Result<u64, Bad> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    fn mode(&mut self) -> Result<u32, Bad> {
        let m = self.u32()?;
        if m > 0o7777 {
            return Err(Bad::File("an entry's mode is not permission bits".into()));
        }
        Ok(m)
    }

    fn str(&mut self) -> Result<&'a str, Bad> {
        let n = self.u32()? as usize;
        if n > PATH_MAX {
            return Err(Bad::File("a path longer than a path can be".into()));
        }
        std::str::from_utf8(self.take(n)?).map_err(|_| Bad::File("a path that is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<String>, Vec<Saved>) {
        (
            vec!["/tmp".into(), "/work".into()],
            vec![
                Saved::Dir {
                    path: "/tmp/d".into(),
                    mode: 0o700,
                },
                Saved::File {
                    path: "/tmp/d/f".into(),
                    mode: 0o644,
                    data: b"data".to_vec(),
                },
                Saved::Link {
                    path: "/work/l".into(),
                    target: "../etc/passwd".into(),
                },
            ],
        )
    }

    #[test]
    fn round_trip_and_every_byte_checked() {
        let (roots, saved) = sample();
        let fp = [7u8; 32];
        let b = encode(fp, &roots, &saved);
        let d = decode(&b, fp, &roots).unwrap_or_else(|_| panic!("decode"));
        assert_eq!(d.bytes, 4);
        assert_eq!(format!("{:?}", d.saved), format!("{saved:?}"));
        // Any byte changed, any length cut: refused.
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x20;
            assert!(decode(&c, fp, &roots).is_err(), "byte {i}");
        }
        for n in 0..b.len() {
            assert!(decode(&b[..n], fp, &roots).is_err(), "cut at {n}");
        }
        assert!(matches!(decode(&b, [8u8; 32], &roots), Err(Bad::OtherPlan)));
        assert!(decode(&b, fp, &roots[..1]).is_err());
    }

    #[test]
    fn paths_outside_the_roots_are_refused_even_with_a_good_checksum() {
        let roots = vec!["/tmp".to_string()];
        for path in [
            "/etc/passwd",
            "/tmp",
            "/tmp/",
            "/tmp/../etc/x",
            "/tmp/./x",
            "/tmp//x",
            "tmp/x",
            "/tmpx/y",
            "/tmp/a\0b",
        ] {
            let saved = vec![Saved::File {
                path: path.into(),
                mode: 0o644,
                data: Vec::new(),
            }];
            let b = encode([0; 32], &roots, &saved);
            assert!(decode(&b, [0; 32], &roots).is_err(), "{path:?}");
        }
        let saved = vec![Saved::Dir {
            path: "/tmp/x".into(),
            mode: 0o10777,
        }];
        assert!(decode(&encode([0; 32], &roots, &saved), [0; 32], &roots).is_err());
        let mut micro = b"HSBSNAP\0".to_vec();
        micro.resize(4096, 0);
        match decode(&micro, [0; 32], &roots) {
            Err(Bad::File(m)) => assert!(m.contains("micro-VM"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
