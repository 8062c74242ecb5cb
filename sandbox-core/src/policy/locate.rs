//! Where a dotted key (`profiles.agent.network.allow[1]`) is written in a TOML policy, so
//! that errors found after parsing still name a line and a column.

use toml::de::{DeTable, DeValue};

enum Seg<'a> {
    Name(&'a str),
    Index(usize),
}

fn segments(key: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Seg::Name(name));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(Seg::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

/// The byte offset of the deepest part of `key` found in `text`.
pub(crate) fn key_offset(text: &str, key: &str) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let segs = segments(key);
    let mut best = None;
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    let mut value: Option<&DeValue<'_>> = None;
    let mut i = 0;
    while i < segs.len() {
        match (&segs[i], table, value) {
            (Seg::Name(_), Some(t), _) => {
                // Profile names may hold dots: try the longest run of names first.
                let mut found = None;
                for j in (i..segs.len()).rev() {
                    let names: Option<Vec<&str>> = segs[i..=j]
                        .iter()
                        .map(|s| match s {
                            Seg::Name(n) => Some(*n),
                            Seg::Index(_) => None,
                        })
                        .collect();
                    let Some(names) = names else { continue };
                    let joined = names.join(".");
                    if let Some((k, v)) = t.iter().find(|(k, _)| k.get_ref().as_ref() == joined) {
                        found = Some((j, k.span().start, v.get_ref()));
                        break;
                    }
                }
                let (j, at, v) = found?;
                best = Some(at);
                i = j + 1;
                (table, value) = match v {
                    DeValue::Table(t) => (Some(t), None),
                    other => (None, Some(other)),
                };
            }
            (Seg::Index(n), _, Some(DeValue::Array(a))) => {
                let item = a.get(*n)?;
                best = Some(item.span().start);
                i += 1;
                (table, value) = match item.get_ref() {
                    DeValue::Table(t) => (Some(t), None),
                    other => (None, Some(other)),
                };
            }
            _ => break,
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys() {
        let text = "[profiles.\"a.b\".network]\nmode = \"egress\"\nallow = [\"x\", \"y\"]\n";
        let at = |k: &str| key_offset(text, k).map(|o| super::super::line_col(text, o));
        assert_eq!(at("profiles.a.b.network.allow"), Some((3, 1)));
        assert_eq!(at("profiles.a.b.network.allow[1]"), Some((3, 15)));
        assert_eq!(at("profiles.a.b.network.mode"), Some((2, 1)));
        assert!(at("nothing.here").is_none());
    }
}
