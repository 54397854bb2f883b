//! Apache `LogFormat` strings: `%` directives with optional `<`/`>` and condition modifiers and
//! `{argument}`, literal text between, `\"` as written in the config.

use super::{Kind, Options, Part, Template, TimeKind, Unit, Var};
use crate::error::FormatError;
use crate::time::{Strftime, StrftimeKind};

/// Compiles an Apache `LogFormat` string, given as in the config (`\"` or `"` alike).
pub(crate) fn compile(format: &str) -> Result<Template, FormatError> {
    let bytes = format.as_bytes();
    let mut parts = vec![];
    let mut lit = vec![];
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 < bytes.len() => {
                match bytes[i + 1] {
                    b'"' => lit.push(b'"'),
                    b'\\' => lit.push(b'\\'),
                    b'n' => lit.push(b'\n'),
                    b't' => lit.push(b'\t'),
                    other => lit.extend_from_slice(&[b'\\', other]),
                }
                i += 2;
            }
            b'%' if bytes.get(i + 1) == Some(&b'%') => {
                lit.push(b'%');
                i += 2;
            }
            b'%' => {
                let (directive, next) = directive(format, i)?;
                parts.push(Part::Lit(std::mem::take(&mut lit)));
                parts.extend(directive);
                i = next;
            }
            other => {
                lit.push(other);
                i += 1;
            }
        }
    }
    parts.push(Part::Lit(lit));
    // A format without a request is refused for that first.
    let times = check_times(format, &parts);
    let template = Template::build(format, parts, Options { empty_is_absent: false })?;
    times.map(|()| template)
}

/// A format that logs its time only in parts (`%{%d/%b/%Y}t %{%T}t`) would be read without
/// times, and replayed without its pacing: refuse it, saying what sluice reads. Parts beside a
/// whole time (`%t %{%A}t`) are kept as fields.
fn check_times(format: &str, parts: &[Part]) -> Result<(), FormatError> {
    let vars = || parts.iter().filter_map(|p| if let Part::Var(v) = p { Some(v) } else { None });
    if vars().any(|v| matches!(v.kind, Kind::Time(_))) {
        return Ok(());
    }
    // Only `%{…}t` directives end so; a partial one is kept as a field. One without any
    // conversion (`%{some_time}t`) is literal text to Apache, not part of a time.
    let partial_time = |name: &str| {
        let arg = name.split_once('{').and_then(|(_, rest)| rest.rsplit_once('}')).map_or("", |(arg, _)| arg);
        name.ends_with("}t") && arg.contains('%')
    };
    match vars().find(|v| matches!(v.kind, Kind::Field) && partial_time(&v.name)) {
        Some(part) => Err(FormatError::at(
            format,
            part.at,
            format!(
                "{} logs only part of a time, and the format has no whole one: sluice reads a time from \
                 %t, or from one %{{format}}t that holds the date and the time of day (e.g. \
                 %{{%d/%b/%Y %T}}t), with %{{%z}}t and %{{msec_frac}}t beside it",
                part.name
            ),
        )),
        None => Ok(()),
    }
}

/// Modifiers seen between `%` and the directive letter.
#[derive(Default)]
struct Modifiers<'f> {
    /// `<`: the original request, before internal redirects (we keep such values as fields).
    original: bool,
    /// `400,501` or `!200`: logged only for some statuses, `-` otherwise.
    conditional: bool,
    arg: Option<&'f str>,
}

/// Reads the directive starting with the `%` at `at`; returns its parts and where it ended.
fn directive(format: &str, at: usize) -> Result<(Vec<Part>, usize), FormatError> {
    let bytes = format.as_bytes();
    let mut m = Modifiers::default();
    let mut i = at + 1;
    loop {
        match bytes.get(i) {
            Some(b'<') => m.original = true,
            Some(b'>') => {}
            Some(b'!' | b',' | b'0'..=b'9') => m.conditional = true,
            Some(b'{') => {
                let Some(close) = format[i + 1..].find('}') else {
                    return Err(FormatError::at(format, i, "unterminated `%{`"));
                };
                m.arg = Some(&format[i + 1..i + 1 + close]);
                i += close + 1;
            }
            _ => break,
        }
        i += 1;
    }
    let Some(letter) = format[i..].chars().next() else {
        return Err(FormatError::at(format, at, "unfinished Apache directive at the end of the format"));
    };
    let mut end = i + letter.len_utf8();
    if letter == '^' {
        // `%{Name}^ti` / `%{Name}^to`: request / response trailers.
        if !matches!(format.get(end..end + 2), Some("ti" | "to")) {
            let message = format!("unknown Apache directive {}", &format[at..end]);
            return Err(FormatError::at(format, at, message));
        }
        end += 2;
    }
    let name = &format[at..end];
    let parts = parts_for(letter, &m, name, at).map_err(|message| FormatError::at(format, at, message))?;
    let parts = parts
        .into_iter()
        .map(|p| match p {
            Part::Var(mut v) => {
                v.conditional = m.conditional;
                Part::Var(v)
            }
            lit => lit,
        })
        .collect();
    Ok((parts, end))
}

/// The parts one directive stands for (`%t` is a bracketed time, the rest one variable each).
fn parts_for(letter: char, m: &Modifiers, name: &str, at: usize) -> Result<Vec<Part>, String> {
    let var = |kind| Var::new(kind, name, at);
    let field = || Ok(vec![Part::Var(var(Kind::Field))]);
    let needs_arg = |what: &str| match m.arg {
        Some(_) => field(),
        None => Err(format!("{name} needs a {{{what}}} argument")),
    };
    let one = |v: Var| Ok(vec![Part::Var(v)]);
    match letter {
        'h' | 'a' if m.arg.is_some() => field(),
        'h' => one(var(Kind::RemoteAddr).rank(2)),
        'a' => one(var(Kind::RemoteAddr)),
        'u' => one(var(Kind::RemoteUser)),
        't' => time(m.arg, name, at),
        'r' if m.conditional => one(var(Kind::Request).rank(150)),
        'r' => one(var(Kind::Request).rank(200)),
        'm' => one(var(Kind::Method).rank(100)),
        'U' => one(var(Kind::Path).rank(90)),
        'q' => one(var(Kind::Query { qmark: true })),
        'H' => one(var(Kind::Protocol).rank(100)),
        's' if m.original => field(),
        's' if name.contains('>') => one(var(Kind::Status).rank(2)),
        's' => one(var(Kind::Status)),
        'b' => one(var(Kind::Bytes { dash_is_zero: true }).rank(2)),
        'B' => one(var(Kind::Bytes { dash_is_zero: false }).rank(2)),
        'O' => one(var(Kind::Bytes { dash_is_zero: false })),
        'D' => one(var(Kind::Duration(Unit::Micros)).rank(4)),
        'T' => {
            let unit = m.arg.map(str::to_ascii_lowercase);
            match unit.as_deref() {
                None | Some("s") => one(var(Kind::Duration(Unit::Seconds))),
                Some("ms") => one(var(Kind::Duration(Unit::Millis)).rank(3)),
                Some("us") => one(var(Kind::Duration(Unit::Micros)).rank(4)),
                Some(other) => Err(format!("unknown %T unit `{other}` (s, ms or us)")),
            }
        }
        'v' => one(var(Kind::Vhost).rank(2)),
        'V' => one(var(Kind::Vhost)),
        'i' if m.original => needs_arg("Header"),
        'i' => match m.arg {
            None => Err(format!("{name} needs a {{Header}} argument")),
            Some(h) if h.eq_ignore_ascii_case("referer") => one(var(Kind::Referer)),
            Some(h) if h.eq_ignore_ascii_case("user-agent") => one(var(Kind::UserAgent)),
            Some(h) => one(var(Kind::Header(h.to_ascii_lowercase().into()))),
        },
        'o' | 'e' | 'C' | 'n' | 'x' | '^' => needs_arg("Name"),
        'A' | 'c' | 'f' | 'F' | 'I' | 'k' | 'l' | 'L' | 'p' | 'P' | 'R' | 'S' | 'X' => field(),
        _ => Err(format!("unknown Apache directive {name}")),
    }
}

/// `%t` and `%{format}t`.
fn time(arg: Option<&str>, name: &str, at: usize) -> Result<Vec<Part>, String> {
    let var = |kind| Part::Var(Var::new(kind, name, at));
    let arg = arg.map(|a| a.strip_prefix("begin:").or_else(|| a.strip_prefix("end:")).unwrap_or(a));
    Ok(match arg {
        None | Some("") => vec![Part::Lit(b"[".to_vec()), var(Kind::Time(TimeKind::Clf)), Part::Lit(b"]".to_vec())],
        Some("sec") => vec![var(Kind::Time(TimeKind::EpochSeconds))],
        Some("msec") => vec![var(Kind::Time(TimeKind::EpochUnits(1000)))],
        Some("usec") => vec![var(Kind::Time(TimeKind::EpochUnits(1_000_000)))],
        Some("msec_frac") => vec![var(Kind::SubSecond { digits: 3 })],
        Some("usec_frac") => vec![var(Kind::SubSecond { digits: 6 })],
        Some(f) => match Strftime::classify(f).map_err(|e| format!("{name}: {e}"))? {
            StrftimeKind::Full(f) => vec![var(Kind::Time(TimeKind::Strftime(f)))],
            StrftimeKind::Zone => vec![var(Kind::Zone)],
            // `%H:%M`, `%A` …: not a point in time by itself (see `check_times`).
            StrftimeKind::Partial => vec![var(Kind::Field)],
        },
    })
}
