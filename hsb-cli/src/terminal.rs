//! The workload's output on a terminal: control characters shown, never obeyed.
//!
//! A terminal acts on what it is sent: `ESC ] 52 ; c ; ... BEL` writes the caller's
//! clipboard, `ESC ] 0 ; ... BEL` retitles the window, `ESC [ 2 J` clears the screen,
//! other sequences remap keys, answer back into the caller's input, or hide text. When
//! `hsb run` passes a workload's output to a terminal, every control character except
//! newline, tab and carriage return is written in a visible form instead — C0 controls
//! and DEL in caret notation (`ESC` as `^[`, `BEL` as `^G`, `DEL` as `^?`, as `cat -v`
//! shows them), the C1 controls U+0080–U+009F (which UTF-8 terminals obey too: U+009B
//! is CSI, U+009D OSC) as `\u{9b}`, and bytes that are not UTF-8 as `\xNN` — so that no
//! sequence can begin. Newline, tab and carriage return only move the cursor within the
//! workload's own output (progress bars keep working). Pipes, files and `--json` get the
//! exact bytes; `--raw-output` passes everything through unchanged.

/// The filter for one output stream. UTF-8 sequences split between chunks are held
/// back until the rest arrives.
#[derive(Debug, Default)]
pub(crate) struct Neutraliser {
    /// The start of a UTF-8 sequence whose remaining bytes have not arrived yet.
    pending: Vec<u8>,
    /// How many characters were shown instead of passed on.
    pub(crate) neutralised: u64,
}

impl Neutraliser {
    /// The visible form of `chunk`, continuing what earlier chunks started.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut input = std::mem::take(&mut self.pending);
        input.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(input.len() + 16);
        let mut rest = input.as_slice();
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.text(text, &mut out);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    // `good` is valid UTF-8: from_utf8 checked it up to there.
                    self.text(std::str::from_utf8(good).unwrap_or_default(), &mut out);
                    match e.error_len() {
                        Some(n) => {
                            for b in &bad[..n] {
                                self.byte(*b, &mut out);
                            }
                            rest = &bad[n..];
                        }
                        None => {
                            // An incomplete sequence at the end: wait for its rest.
                            self.pending = bad.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// What is left at the end of the stream (an incomplete sequence), shown.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for b in std::mem::take(&mut self.pending) {
            self.byte(b, &mut out);
        }
        out
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        self.neutralised += 1;
        out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        let mut plain = 0;
        for (i, c) in text.char_indices() {
            let shown = match c {
                '\n' | '\t' | '\r' => continue,
                '\0'..='\x1f' => format!("^{}", char::from(c as u8 + 0x40)),
                '\x7f' => "^?".to_string(),
                '\u{80}'..='\u{9f}' => format!("\\u{{{:x}}}", c as u32),
                _ => continue,
            };
            out.extend_from_slice(&text.as_bytes()[plain..i]);
            out.extend_from_slice(shown.as_bytes());
            plain = i + c.len_utf8();
            self.neutralised += 1;
        }
        out.extend_from_slice(&text.as_bytes()[plain..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(chunks: &[&[u8]]) -> (String, u64) {
        let mut n = Neutraliser::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(n.push(c));
        }
        out.extend(n.finish());
        (String::from_utf8(out).expect("always UTF-8"), n.neutralised)
    }

    #[test]
    fn sequences_are_shown_not_sent() {
        let (s, n) = show(&[b"\x1b]52;c;aGk=\x07title\x1b]0;pwned\x07\x1b[2J\x1b[H"]);
        assert_eq!(s, "^[]52;c;aGk=^Gtitle^[]0;pwned^G^[[2J^[[H");
        assert_eq!(n, 6);
        assert!(!s.bytes().any(|b| b < 0x20 || b == 0x7f));
    }

    #[test]
    fn text_newlines_tabs_and_returns_pass() {
        let text = "héllo\tworld\r\n progress 50%\rdone ✓\n";
        assert_eq!(show(&[text.as_bytes()]), (text.to_string(), 0));
    }

    #[test]
    fn c1_controls_and_invalid_bytes_are_shown() {
        // U+009B (CSI) and U+009D (OSC) encoded in UTF-8; a lone 0x9b; DEL; NUL.
        let (s, n) = show(&[b"a\xc2\x9b2Jb\xc2\x9d0;t\x07c\x9bd\x7f\0"]);
        assert_eq!(s, "a\\u{9b}2Jb\\u{9d}0;t^Gc\\x9bd^?^@");
        assert_eq!(n, 6);
    }

    #[test]
    fn sequences_split_between_chunks() {
        // A UTF-8 character split across chunks stays one character.
        assert_eq!(show(&[b"caf\xc3", b"\xa9\n"]).0, "café\n");
        // So does an encoded C1 control: it is still shown.
        assert_eq!(show(&[b"x\xc2", b"\x9by"]).0, "x\\u{9b}y");
        // An escape sequence split across chunks is still shown in full.
        assert_eq!(show(&[b"\x1b", b"]52;c;QQ==\x07"]).0, "^[]52;c;QQ==^G");
        // An incomplete sequence at the very end is shown byte by byte.
        assert_eq!(show(&[b"end\xe2\x82"]).0, "end\\xe2\\x82");
    }
}
