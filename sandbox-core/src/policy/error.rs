//! Policy errors: each names the file, the place in it and the key.

use std::fmt;

/// Where in a policy something is: the file (or `<embedded default>`), and a line and
/// column when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, or a description of the text's origin.
    pub origin: String,
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{}:{}", self.origin, l, c),
            (Some(l), None) => write!(f, "{}:{}", self.origin, l),
            _ => f.write_str(&self.origin),
        }
    }
}

/// A policy could not be loaded, or could not be applied to a workload.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML/JSON, or does not match the format.
    #[error("{location}: {message}")]
    Syntax {
        /// Where.
        location: Location,
        /// What is wrong, with a suggestion when there is one.
        message: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("{location}: `{key}`: {message}")]
    Invalid {
        /// Where (the file; keys are found by name).
        location: Location,
        /// The key, dotted (`profiles.judge.limits.memory`).
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A run named a profile that does not exist.
    #[error("no profile `{name}` in {origin}{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// The policy.
        origin: String,
        /// The closest existing name.
        suggestion: Option<String>,
    },
    /// No available backend may run the workload.
    #[error("no isolation can be used for this run")]
    Selection(#[source] crate::selection::SelectionError),
    /// A per-run option is not acceptable.
    #[error("{option}: {message}")]
    InvalidRunOption {
        /// The option (`--mount`, `env`, ...).
        option: String,
        /// What is wrong.
        message: String,
    },
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(word, c);
        if d <= (word.len().max(c.len()) / 3).max(1) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Optimal string alignment distance: insertions, deletions, substitutions and
/// transpositions of neighbours each cost 1 (`jduge` is one step from `judge`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("memroy", ["memory", "pids"]),
            Some("memory".into())
        );
        assert_eq!(
            did_you_mean("walltime", ["wall_time", "cpu_time"]),
            Some("wall_time".into())
        );
        assert_eq!(did_you_mean("zzz", ["memory", "pids"]), None);
    }
}
