//! One small parser per field value: the request line, status, counts and durations. They get
//! the value's raw bytes (already cut out of the line by the template engine) and must consume
//! all of them.

use std::borrow::Cow;

use memchr::{memchr, memrchr};
use nom::bytes::complete::{tag, take_till1, take_while1};
use nom::combinator::{opt, recognize};
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::Text;
use crate::escape::unescape_if;

/// A request line split into its parts.
#[derive(Debug)]
pub(crate) struct RequestLine<'a> {
    pub method: Text<'a>,
    pub target: Text<'a>,
    pub protocol: Option<Text<'a>>,
}

/// Why a request value is not a replayable HTTP request, and at which offset of the value.
pub(crate) type NotHttp = (usize, &'static str);

/// RFC 9110 token characters, which is what a method may be made of.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        b += 1;
    }
    t
};

// The method, version, status and count parsers below are nom-shaped but written as byte loops:
// they run for every line, and measured (callgrind), nom's generic `take_while_m_n`/`tag` chains
// cost several hundred instructions a line more here.

/// `GET`, `PROPFIND` …: 1–20 token characters. Longer "methods" are junk (njRAT beacons, …).
#[inline]
fn method(i: &[u8]) -> IResult<&[u8], &[u8], ()> {
    let n = i.iter().take(21).take_while(|&&b| TCHAR[usize::from(b)]).count();
    if (1..=20).contains(&n) { Ok((&i[n..], &i[..n])) } else { Err(nom::Err::Error(())) }
}

/// `HTTP/1.1`, `HTTP/1.0`, `HTTP/0.9`, `HTTP/2.0`, `HTTP/2`, `HTTP/3`.
#[inline]
fn http_version(i: &[u8]) -> IResult<&[u8], &[u8], ()> {
    let digit = |at: usize| i.get(at).is_some_and(u8::is_ascii_digit);
    if !i.starts_with(b"HTTP/") || !digit(5) {
        return Err(nom::Err::Error(()));
    }
    let n = if i.get(6) == Some(&b'.') && digit(7) { 8 } else { 6 };
    Ok((&i[n..], &i[..n]))
}

/// Whether a last word tries to be a protocol (`FOO/1.0`, `HTTP/1.1a`), as opposed to a path.
#[inline]
fn looks_like_protocol(word: &[u8]) -> bool {
    let letters = word.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    letters > 0 && word.get(letters) == Some(&b'/')
}

#[inline]
pub(crate) fn is_method(raw: &[u8]) -> bool {
    matches!(method(raw), Ok((rest, _)) if rest.is_empty())
}

#[inline]
pub(crate) fn is_http_version(raw: &[u8]) -> bool {
    matches!(http_version(raw), Ok((rest, _)) if rest.is_empty())
}

/// Explains a method that failed [`is_method`].
pub(crate) fn bad_method_reason(raw: &[u8]) -> &'static str {
    if raw.starts_with(br"\x16\x03") || raw.starts_with(b"\x16\x03") {
        "TLS handshake sent to a plain-HTTP port"
    } else if raw.iter().any(|&b| b == b'\\' || !(0x20..0x7F).contains(&b)) {
        "binary data instead of a request line"
    } else if raw.len() > 20 {
        "method longer than 20 characters"
    } else {
        "bad method"
    }
}

/// `METHOD SP target [SP HTTP/x.y]`, as `$request` / `%r` log it (raw, escapes not yet decoded;
/// `escaped` says whether the value holds a backslash).
///
/// The target is kept as logged: absolute URLs, `*` and authority form pass. It may contain
/// spaces only when a valid HTTP version ends the line, which makes the split unambiguous (nginx
/// accepts such requests and logs them so).
#[inline]
pub(crate) fn request_line(raw: &[u8], escaped: bool) -> Result<RequestLine<'_>, NotHttp> {
    match raw {
        b"-" => return Err((0, "the request line is `-` (no request was read)")),
        b"" => return Err((0, "empty request line")),
        _ => {}
    }
    let method_raw = match method(raw) {
        Ok((rest, m)) if rest.first() == Some(&b' ') => m,
        Ok(([], m)) => return Err((m.len(), "no request target after the method")),
        _ => {
            let end = memchr(b' ', raw).unwrap_or(raw.len());
            return Err((0, bad_method_reason(&raw[..end])));
        }
    };
    let method_end = method_raw.len();
    let rest_start = method_end + 1;
    if rest_start >= raw.len() {
        return Err((method_end, "no request target after the method"));
    }
    let rest = &raw[rest_start..];
    let (target, protocol) = match memrchr(b' ', rest) {
        Some(last) if is_http_version(&rest[last + 1..]) => (&rest[..last], Some(&rest[last + 1..])),
        Some(last) if looks_like_protocol(&rest[last + 1..]) => {
            return Err((rest_start + last + 1, "bad HTTP version"));
        }
        Some(space) => return Err((rest_start + space, "space in the request target")),
        None => (rest, None),
    };
    if target.is_empty() {
        return Err((rest_start, "empty request target"));
    }
    Ok(RequestLine {
        method: Cow::Borrowed(method_raw),
        target: unescape_if(target, escaped),
        protocol: protocol.map(Cow::Borrowed),
    })
}

/// Like [`request_line`] for an UNQUOTED `%r`/`$request`, whose end is not marked: reads
/// `METHOD SP target [SP HTTP/x.y]` from the start of `i` and returns what it used. The target
/// ends at the first space here.
pub(crate) fn bare_request_line(i: &[u8]) -> Result<(RequestLine<'_>, usize), NotHttp> {
    if i.first() == Some(&b'-') && i.get(1).is_none_or(|&b| b == b' ') {
        return Err((0, "the request line is `-` (no request was read)"));
    }
    let target = take_till1(|b| b == b' ');
    let mut request = (method, preceded(tag(" "), target), opt(preceded(tag(" "), http_version)));
    let parsed: IResult<&[u8], _, ()> = request.parse(i);
    match parsed {
        Ok((rest, (m, target, protocol))) => Ok((
            RequestLine {
                method: Cow::Borrowed(m),
                target: unescape_if(target, memchr(b'\\', target).is_some()),
                protocol: protocol.map(Cow::Borrowed),
            },
            i.len() - rest.len(),
        )),
        Err(_) => match method(i) {
            Ok((_, m)) => Err((m.len(), "no request target after the method")),
            Err(_) => {
                let end = memchr(b' ', i).unwrap_or(i.len());
                Err((0, bad_method_reason(&i[..end])))
            }
        },
    }
}

/// A status: three digits, or `-` (Apache logs that for aborted requests).
#[inline]
pub(crate) fn status(raw: &[u8]) -> Result<Option<u16>, ()> {
    match *raw {
        [b'-'] => Ok(None),
        [a, b, c] if raw.iter().all(u8::is_ascii_digit) => {
            Ok(Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')))
        }
        _ => Err(()),
    }
}

/// A count of bytes: digits, or `-`.
#[inline]
pub(crate) fn count(raw: &[u8]) -> Result<Option<u64>, ()> {
    if raw == b"-" {
        return Ok(None);
    }
    if raw.is_empty() || raw.len() > 20 {
        return Err(());
    }
    raw.iter()
        .try_fold(0u64, |acc, &b| {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            acc.checked_mul(10)?.checked_add(u64::from(d))
        })
        .map(Some)
        .ok_or(())
}

/// A decimal like `0.050`, `12` or `-`. Traefik's trailing `ms` is accepted too.
pub(crate) fn decimal(raw: &[u8]) -> Result<Option<f64>, ()> {
    if raw == b"-" {
        return Ok(None);
    }
    let digits = || take_while1(|b: u8| b.is_ascii_digit());
    let number: IResult<&[u8], &[u8], ()> = recognize((digits(), opt((tag("."), digits())))).parse(raw);
    match number {
        Ok((rest, n)) if rest.is_empty() || rest == b"ms" => {
            // ASCII digits and a dot: always valid UTF-8 and a valid f64.
            let text = std::str::from_utf8(n).map_err(|_| ())?;
            text.parse().map(Some).map_err(|_| ())
        }
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (String, String, Option<String>) {
        let r = request_line(raw.as_bytes(), raw.contains('\\')).expect(raw);
        let s = |t: &Text| String::from_utf8_lossy(t).into_owned();
        (s(&r.method), s(&r.target), r.protocol.as_ref().map(s))
    }

    fn why(raw: &str) -> &'static str {
        request_line(raw.as_bytes(), raw.contains('\\')).unwrap_err().1
    }

    #[test]
    fn request_lines() {
        assert_eq!(ok("GET / HTTP/1.1"), ("GET".into(), "/".into(), Some("HTTP/1.1".into())));
        assert_eq!(ok("GET /a[ ]b HTTP/1.1").1, "/a[ ]b");
        assert_eq!(ok("GET /x").2, None);
        assert_eq!(ok("OPTIONS * HTTP/1.0").1, "*");
        assert_eq!(ok("CONNECT example.com:443 HTTP/1.1").1, "example.com:443");
        assert_eq!(ok("GET http://x/y?z HTTP/2").1, "http://x/y?z");
        assert_eq!(ok("GET /q\\x22x HTTP/1.1").1, "/q\"x");
        assert_eq!(ok("GET /a HTTP/3").2.as_deref(), Some("HTTP/3"));
    }

    #[test]
    fn not_requests() {
        assert_eq!(why("-"), "the request line is `-` (no request was read)");
        assert_eq!(why(""), "empty request line");
        assert_eq!(why(r"\x16\x03\x01\x00t"), "TLS handshake sent to a plain-HTTP port");
        assert_eq!(why(r"Gh0st\xAD\x00"), "binary data instead of a request line");
        assert_eq!(why("HELP"), "no request target after the method");
        assert_eq!(why("GET / HTTP/1.1a"), "bad HTTP version");
        assert_eq!(why("GET / FOO/1.0"), "bad HTTP version");
        assert_eq!(why("GET /a b"), "space in the request target");
        assert_eq!(why("x00Cookie: mstshash=Administr"), "bad method");
        assert_eq!(why("GET  HTTP/1.1"), "empty request target");
    }

    #[test]
    fn bare_requests() {
        let (r, used) = bare_request_line(b"GET /x HTTP/1.1 404").unwrap();
        assert_eq!((&*r.target, used), (&b"/x"[..], 15));
        let (r, used) = bare_request_line(b"GET /x 404").unwrap();
        assert_eq!((r.protocol, used), (None, 6));
        assert!(bare_request_line(b"- 404").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(status(b"200"), Ok(Some(200)));
        assert_eq!(status(b"000"), Ok(Some(0)));
        assert_eq!(status(b"-"), Ok(None));
        assert!(status(b"20").is_err() && status(b"2000").is_err() && status(b"abc").is_err());
        assert_eq!(count(b"18446744073709551615"), Ok(Some(u64::MAX)));
        assert!(count(b"18446744073709551616").is_err() && count(b"").is_err());
        assert_eq!(decimal(b"0.050"), Ok(Some(0.05)));
        assert_eq!(decimal(b"4ms"), Ok(Some(4.0)));
        assert!(decimal(b"1.").is_err() && decimal(b".5").is_err());
    }
}
