//! Showing bytes to a person: escaped, shortened, with the first difference
//! marked.

/// Bytes as a quoted string a person can read: printable ASCII as is,
/// `\n`, `\r`, `\t`, `\0`, `\\`, `\"`, and `\xNN` for everything else.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        push_escaped(&mut s, b);
    }
    s.push('"');
    s
}

fn push_escaped(s: &mut String, b: u8) {
    match b {
        b'\n' => s.push_str("\\n"),
        b'\r' => s.push_str("\\r"),
        b'\t' => s.push_str("\\t"),
        0 => s.push_str("\\0"),
        b'\\' => s.push_str("\\\\"),
        b'"' => s.push_str("\\\""),
        0x20..=0x7e => s.push(b as char),
        _ => s.push_str(&format!("\\x{b:02x}")),
    }
}

/// How many bytes of a long buffer are shown around a point of interest.
const WINDOW: usize = 32;

/// A buffer shortened for a message: whole if short, else its start and
/// its length.
pub fn preview(bytes: &[u8]) -> String {
    if bytes.len() <= 2 * WINDOW {
        escape(bytes)
    } else {
        format!(
            "{}... ({} bytes)",
            escape(&bytes[..WINDOW]).trim_end_matches('"'),
            bytes.len()
        )
    }
}

/// Index of the first byte where `a` and `b` differ (or where the shorter
/// one ends), None if they are equal.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(a.iter().zip(b).take_while(|(x, y)| x == y).count())
}

/// The lines that explain how `arrived` differs from `expected`:
///
/// ```text
/// expected: "hello\n"
/// arrived:  "hellO\n"
///                ^ first difference at byte 4 of 6
/// ```
///
/// Long buffers are shown as a window around the difference.
pub fn explain_difference(expected: &[u8], arrived: &[u8]) -> Vec<String> {
    let Some(at) = first_difference(expected, arrived) else {
        return vec![format!("expected and arrived: {}", escape(expected))];
    };
    let start = at.saturating_sub(WINDOW);
    let window = |b: &[u8]| -> (String, usize) {
        let end = (at + WINDOW).min(b.len());
        let shown = &b[start.min(b.len())..end];
        let mut s = String::new();
        if start > 0 {
            s.push_str("...");
        }
        let caret = s.len() + escape(&b[start.min(b.len())..at.min(b.len())]).len() - 1;
        s.push_str(&escape(shown));
        if end < b.len() {
            s.push_str("...");
        }
        (s, caret)
    };
    let (e, _) = window(expected);
    let (a, caret) = window(arrived);
    let what = if at >= arrived.len() {
        format!(
            "arrived ends at byte {at}, {} bytes short",
            expected.len() - arrived.len()
        )
    } else if at >= expected.len() {
        format!(
            "{} bytes more than expected, from byte {at}",
            arrived.len() - expected.len()
        )
    } else {
        format!(
            "first difference at byte {at} (expected {}, arrived {})",
            escape(&expected[at..=at]),
            escape(&arrived[at..=at])
        )
    };
    vec![
        format!("expected: {e}  ({} bytes)", expected.len()),
        format!("arrived:  {a}  ({} bytes)", arrived.len()),
        format!("          {}^ {what}", " ".repeat(caret)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Control bytes, NUL, quotes and non-ASCII are escaped; text is not.
    #[test]
    fn escapes_what_a_terminal_cannot_show() {
        assert_eq!(escape(b"a\"b\\\n\0\xff"), r#""a\"b\\\n\0\xff""#);
    }

    /// The caret points under the first byte that differs.
    #[test]
    fn marks_the_first_difference() {
        let lines = explain_difference(b"hello\n", b"hellO\n");
        assert_eq!(lines[1], r#"arrived:  "hellO\n"  (6 bytes)"#);
        assert_eq!(
            lines[2],
            r#"               ^ first difference at byte 4 (expected "o", arrived "O")"#
        );
    }

    /// A short answer says how many bytes are missing.
    #[test]
    fn says_how_short_an_answer_is() {
        let lines = explain_difference(b"hello\n", b"hel");
        assert!(
            lines[2].contains("arrived ends at byte 3, 3 bytes short"),
            "{lines:?}"
        );
    }

    /// A 1 MiB buffer is shown as a window around the difference.
    #[test]
    fn shortens_long_buffers_around_the_difference() {
        let a = vec![b'a'; 1 << 20];
        let mut b = a.clone();
        b[500_000] = b'b';
        let lines = explain_difference(&a, &b);
        assert!(lines.iter().all(|l| l.len() < 200), "{lines:?}");
        assert!(lines[2].contains("byte 500000"), "{lines:?}");
        let caret = lines[2].find('^').unwrap();
        assert_eq!(&lines[1][caret..=caret], "b", "{lines:?}");
    }
}
