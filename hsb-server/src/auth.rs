//! Who is calling: a bearer token of the token file, or the uid of a UNIX socket peer
//! (`SO_PEERCRED`). Each sandbox belongs to the [`Owner`] that created it.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// The owner of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A UNIX socket peer without a token.
    Uid(u32),
    /// A token of the token file, by its name.
    Token(Arc<str>),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Uid(u) => write!(f, "uid {u}"),
            Owner::Token(n) => write!(f, "token {n}"),
        }
    }
}

/// The connection a request came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// A UNIX socket peer and its uid.
    Unix { uid: u32 },
    /// A TCP peer.
    Tcp,
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// It could not be read.
    #[error("reading the token file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is readable or writable by others than its owner.
    #[error("the token file {path} is open to others (mode {mode:o}): `chmod 600 {path}`")]
    Mode {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is not `TOKEN [NAME]`.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: String,
        /// The line number (from 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// It holds no token.
    #[error("the token file {path} holds no token (one per line: TOKEN [NAME])")]
    Empty {
        /// The file.
        path: String,
    },
}

/// The tokens of a token file: one per line, `TOKEN [NAME]`; `#` starts a comment line.
/// Tokens are kept only as SHA-256 digests and looked up by digest.
#[derive(Clone, Default)]
pub struct Tokens {
    by_digest: HashMap<[u8; 32], Arc<str>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} tokens)", self.by_digest.len())
    }
}

/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Reads a token file, refusing one that others may read or write.
    pub fn from_file(path: &Path) -> Result<Tokens, TokenError> {
        let shown = path.display().to_string();
        let read = |source| TokenError::Read {
            path: shown.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        if meta.mode() & 0o077 != 0 {
            return Err(TokenError::Mode {
                path: shown,
                mode: meta.mode() & 0o7777,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Tokens::parse(&text, &shown)
    }

    /// Reads the text of a token file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Tokens, TokenError> {
        let mut by_digest = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: String| TokenError::Line {
                path: origin.to_string(),
                line: i + 1,
                message,
            };
            let mut fields = line.split_whitespace();
            let token = fields.next().unwrap_or_default();
            let name = fields.next();
            if fields.next().is_some() {
                return Err(bad("expected TOKEN [NAME], found more fields".into()));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(bad(format!(
                    "a token has at least {MIN_TOKEN_LEN} characters (this one has {})",
                    token.len()
                )));
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad("a token is printable ASCII without spaces".into()));
            }
            let d = digest(token);
            let name: Arc<str> = match name {
                Some(n) => n.into(),
                // An unnamed token is known by the start of its digest (never by itself).
                None => format!("sha256:{}", hex(&d[..6])).into(),
            };
            if by_digest.insert(d, name).is_some() {
                return Err(bad("this token is already on an earlier line".into()));
            }
        }
        if by_digest.is_empty() {
            return Err(TokenError::Empty {
                path: origin.to_string(),
            });
        }
        Ok(Tokens { by_digest })
    }

    /// The owner a token stands for.
    pub fn owner(&self, token: &str) -> Option<Owner> {
        self.by_digest
            .get(&digest(token))
            .map(|n| Owner::Token(n.clone()))
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The owner of a request: its bearer token when it has one (which must be valid),
/// else the UNIX peer's uid; a TCP request without a valid token has none.
pub(crate) fn owner_of(
    tokens: Option<&Tokens>,
    peer: Peer,
    authorization: Option<&[u8]>,
) -> Result<Owner, String> {
    match authorization {
        Some(h) => {
            let h = std::str::from_utf8(h).map_err(|_| "the Authorization header is not text")?;
            let token = h
                .strip_prefix("Bearer ")
                .ok_or("the Authorization header must be `Bearer TOKEN`")?
                .trim();
            match tokens {
                Some(t) => t
                    .owner(token)
                    .ok_or_else(|| "the bearer token is not one of the server's".to_string()),
                None => Err("this server takes no tokens (it has no --token-file)".into()),
            }
        }
        None => match peer {
            Peer::Unix { uid } => Ok(Owner::Uid(uid)),
            Peer::Tcp => Err("a bearer token is needed (Authorization: Bearer TOKEN)".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files() {
        let t = Tokens::parse(
            "# team tokens\n0123456789abcdef alice\n\n  fedcba9876543210fedcba  \n",
            "t",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.owner("0123456789abcdef"),
            Some(Owner::Token("alice".into()))
        );
        assert!(
            matches!(t.owner("fedcba9876543210fedcba"), Some(Owner::Token(n)) if n.starts_with("sha256:"))
        );
        assert_eq!(t.owner("0123456789abcdeF"), None);
        let e = Tokens::parse("short\n", "t").unwrap_err().to_string();
        assert!(e.contains("t:1:") && e.contains("at least 16"), "{e}");
        let e = Tokens::parse("0123456789abcdef a b\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("more fields"), "{e}");
        let e = Tokens::parse("0123456789abcdef\n0123456789abcdef x\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t:2:") && e.contains("earlier line"), "{e}");
        assert!(matches!(
            Tokens::parse("# none\n", "t"),
            Err(TokenError::Empty { .. })
        ));
    }

    #[test]
    fn owners() {
        let t = Tokens::parse("0123456789abcdef alice\n", "t").unwrap();
        let unix = Peer::Unix { uid: 1000 };
        assert_eq!(owner_of(Some(&t), unix, None), Ok(Owner::Uid(1000)));
        assert_eq!(
            owner_of(Some(&t), Peer::Tcp, Some(b"Bearer 0123456789abcdef")),
            Ok(Owner::Token("alice".into()))
        );
        assert!(owner_of(Some(&t), Peer::Tcp, None).is_err());
        assert!(owner_of(Some(&t), unix, Some(b"Bearer wrong-token-0000000")).is_err());
        assert!(owner_of(None, unix, Some(b"Bearer 0123456789abcdef")).is_err());
        assert!(owner_of(Some(&t), Peer::Tcp, Some(b"Basic abc")).is_err());
        assert!(owner_of(Some(&t), Peer::Tcp, Some(&[0xff, 0xfe])).is_err());
    }
}
