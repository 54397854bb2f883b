//! Log escapes, as both servers write them, decoded in one place.
//!
//! - nginx (`escape=default`) writes `"`, `\`, control bytes and bytes ≥ 0x7F of a variable as
//!   `\xXX` with upper-case hex; `escape=json` writes `\"`, `\\`, `\n` … and `\u00XX`.
//! - Apache writes `\"`, `\\`, C escapes for whitespace (`\n`, `\t` …) and `\xhh` (lower case).
//!
//! Real logs mix them (proxies, log shippers), so both styles are accepted everywhere. Decoding
//! allocates only when the value holds a backslash.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

/// Decodes the escapes of one raw value; borrows when there is nothing to decode.
#[inline]
pub(crate) fn unescape(raw: &[u8]) -> Cow<'_, [u8]> {
    match memchr(b'\\', raw) {
        None => Cow::Borrowed(raw),
        Some(first) => Cow::Owned(decode_from(raw, first)),
    }
}

/// Like [`unescape`] when the caller already knows whether a backslash is present.
#[inline]
pub(crate) fn unescape_if(raw: &[u8], has_backslash: bool) -> Cow<'_, [u8]> {
    if has_backslash { unescape(raw) } else { Cow::Borrowed(raw) }
}

fn decode_from(raw: &[u8], first: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' || i + 1 >= raw.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let (decoded, used) = escape_at(&raw[i + 1..]);
        match decoded {
            Decoded::Byte(d) => out.push(d),
            Decoded::Char(c) => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            // Not an escape either server writes: keep the backslash as logged.
            Decoded::Keep => {
                out.push(b'\\');
                i += 1;
                continue;
            }
        }
        i += 1 + used;
    }
    out
}

enum Decoded {
    Byte(u8),
    Char(char),
    Keep,
}

/// Decodes the escape whose body (the bytes after the backslash) starts `rest`; returns the value
/// and how many bytes of `rest` it used.
fn escape_at(rest: &[u8]) -> (Decoded, usize) {
    match rest[0] {
        b'x' | b'X' if rest.len() >= 3 => match (hex(rest[1]), hex(rest[2])) {
            (Some(h), Some(l)) => (Decoded::Byte(h << 4 | l), 3),
            _ => (Decoded::Keep, 0),
        },
        b'u' if rest.len() >= 5 => {
            let code = rest[1..5].iter().try_fold(0u32, |acc, &d| hex(d).map(|v| acc << 4 | u32::from(v)));
            match code.and_then(char::from_u32) {
                Some(c) => (Decoded::Char(c), 5),
                None => (Decoded::Keep, 0),
            }
        }
        b'"' => (Decoded::Byte(b'"'), 1),
        b'\\' => (Decoded::Byte(b'\\'), 1),
        b'/' => (Decoded::Byte(b'/'), 1),
        b'n' => (Decoded::Byte(b'\n'), 1),
        b't' => (Decoded::Byte(b'\t'), 1),
        b'r' => (Decoded::Byte(b'\r'), 1),
        b'v' => (Decoded::Byte(0x0B), 1),
        b'f' => (Decoded::Byte(0x0C), 1),
        b'b' => (Decoded::Byte(0x08), 1),
        _ => (Decoded::Keep, 0),
    }
}

fn hex(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// Finds the next `"` in `hay` that is not escaped by a backslash, from `from` on. Returns its
/// index and whether a backslash was seen on the way (so the value needs decoding).
#[inline]
pub(crate) fn find_unescaped_quote(hay: &[u8], mut from: usize, seen: &mut bool) -> Option<usize> {
    while let Some(rel) = memchr2(b'"', b'\\', &hay[from..]) {
        let at = from + rel;
        if hay[at] == b'"' {
            return Some(at);
        }
        *seen = true;
        // Skip the escaped byte, whatever it is: `\"` and `\\` are the cases that matter.
        from = at + 2;
        if from >= hay.len() {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_without_backslash() {
        assert!(matches!(unescape(b"plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn decodes_both_servers() {
        // nginx default escaping
        assert_eq!(&*unescape(br"a\x22b\x5Cc\xE2\x82\xAC"), "a\"b\\c€".as_bytes());
        // Apache
        assert_eq!(&*unescape(br#"a\"b\\c\xe2\x82\xac\n\t"#), "a\"b\\c€\n\t".as_bytes());
        // nginx escape=json
        assert_eq!(&*unescape(br#"\u0001\/"#), b"\x01/");
    }

    #[test]
    fn keeps_what_is_not_an_escape() {
        assert_eq!(&*unescape(br"C:\path\xZZ\"), br"C:\path\xZZ\");
        assert_eq!(&*unescape(br"\x4"), br"\x4");
        assert_eq!(&*unescape(br"\u12"), br"\u12");
        // A surrogate is no char: kept as text.
        assert_eq!(&*unescape(br"\uD800"), br"\uD800");
    }

    #[test]
    fn quote_scan_skips_escaped_quotes() {
        let mut seen = false;
        assert_eq!(find_unescaped_quote(br#"ab\"c" x"#, 0, &mut seen), Some(5));
        assert!(seen);
        let mut seen = false;
        assert_eq!(find_unescaped_quote(br#"ab\\" x"#, 0, &mut seen), Some(4));
        let mut seen = false;
        assert_eq!(find_unescaped_quote(br#"ab\"#, 0, &mut seen), None);
        assert_eq!(find_unescaped_quote(br#"ab\""#, 0, &mut seen), None);
    }
}
