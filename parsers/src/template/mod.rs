//! The one engine behind every non-JSON format: a format string (nginx `log_format` or Apache
//! `LogFormat`, presets included) compiles once into a [`Template`], a sequence of literal text and
//! variables; a line is then read in one pass, left to right.
//!
//! How a variable's value ends is decided at compile time ([`End`]):
//! - a value inside quotes (`"$http_user_agent"`) ends at the first `"` not escaped by a backslash
//!   that is followed by the rest of the next literal, so a raw `"` inside a user agent does not
//!   end it early;
//! - any other value ends where the next literal begins (`rt=$request_time uct=…`);
//! - a variable glued to another one ends where the next one must begin (`$host$request_uri`
//!   ends `$host` at the first `/`);
//! - timestamps and an unquoted request line are read by their own grammar, since they contain
//!   spaces.

mod apache;
mod nginx;

pub(crate) use apache::compile as compile_apache;
pub(crate) use nginx::compile as compile_nginx;

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};
use memchr::memchr;

use crate::error::{EXPECTED_CLOSING_QUOTE, EXPECTED_TEXT, FormatError, LineError, Reason, expected_literal};
use crate::escape::{find_unescaped_quote, unescape, unescape_if};
use crate::field;
use crate::time::{self, Strftime};
use crate::{Entry, Text};

/// A compiled format.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
    /// Presets tolerate extra space-separated fields after their end (nginx `main`, Traefik's
    /// CLF, Apache `combinedio` … write combined plus more). Custom formats are strict.
    lenient_tail: bool,
    /// nginx `escape=json` writes an absent value as an empty string instead of `-`.
    empty_is_absent: bool,
    /// The format has no method variable: every request is a GET.
    default_get: bool,
}

#[derive(Debug, Clone)]
enum Piece {
    Lit(Box<[u8]>),
    Var(Var),
}

/// One variable of a format as the compilers describe it.
#[derive(Debug, Clone)]
pub(crate) struct Var {
    pub kind: Kind,
    /// As written in the format (`remote_addr`, `%{Referer}i`): the key in `Entry::fields`.
    pub name: Box<str>,
    /// Byte offset in the format string, for compile errors.
    pub at: usize,
    /// Which of several variables filling the same `Entry` field wins (higher wins).
    pub rank: u8,
    /// Apache conditional directive (`%400r`, `%!200{Referer}i`): `-` is a normal value.
    pub conditional: bool,
    /// Lost its `Entry` field to a better variable: stored in `fields` as text.
    demoted: bool,
    quoted: bool,
    end: End,
}

impl Var {
    pub(crate) fn new(kind: Kind, name: &str, at: usize) -> Var {
        Var { kind, name: name.into(), at, rank: 1, conditional: false, demoted: false, quoted: false, end: End::Eol }
    }

    pub(crate) fn rank(mut self, rank: u8) -> Var {
        self.rank = rank;
        self
    }
}

/// What a variable holds and where its value goes.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    RemoteAddr,
    RemoteUser,
    Time(TimeKind),
    /// A whole request line (`$request`, `%r`).
    Request,
    Method,
    /// The full target, path and query (`$request_uri`, or `$uri?$args` / `%U%q` joined at
    /// compile time). `strip` removes what an absent nginx `$args` leaves behind.
    Target {
        strip: &'static [u8],
    },
    /// The path alone (`$uri`, `%U`).
    Path,
    /// The query alone; `qmark`: the value starts with `?` (Apache `%q`), not so nginx `$args`.
    Query {
        qmark: bool,
    },
    /// nginx `$is_args`: `?` or nothing.
    IsArgs,
    Protocol,
    Status,
    /// `dash_is_zero`: Apache `%b` writes `-` for zero bytes.
    Bytes {
        dash_is_zero: bool,
    },
    /// A duration in the given unit.
    Duration(Unit),
    Referer,
    UserAgent,
    Vhost,
    /// A request header, by its lower-case name.
    Header(Box<str>),
    Body,
    /// Any other variable, kept by name.
    Field,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Unit {
    Seconds,
    Millis,
    Micros,
}

impl Unit {
    /// Milliseconds; dividing rather than multiplying by a fraction keeps `351 µs` at `0.351`.
    pub(crate) fn to_ms(self, v: f64) -> f64 {
        match self {
            Unit::Seconds => v * 1000.0,
            Unit::Millis => v,
            Unit::Micros => v / 1000.0,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum TimeKind {
    /// `10/Oct/2000:13:55:36 -0700`
    Clf,
    Iso8601,
    /// Seconds with an optional fraction.
    EpochSeconds,
    /// Integer milli- or microseconds (`per_second` units a second).
    EpochUnits(i64),
    Strftime(Strftime),
}

/// The `Entry` fields a variable fills; two variables that fill the same one compete by rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    RemoteAddr,
    RemoteUser,
    Time,
    Method,
    Target,
    Protocol,
    Status,
    Bytes,
    RequestTime,
    Referer,
    UserAgent,
    Vhost,
    Body,
}

impl Kind {
    fn slots(&self) -> &'static [Slot] {
        match self {
            Kind::RemoteAddr => &[Slot::RemoteAddr],
            Kind::RemoteUser => &[Slot::RemoteUser],
            Kind::Time(_) => &[Slot::Time],
            Kind::Request => &[Slot::Method, Slot::Target, Slot::Protocol],
            Kind::Method => &[Slot::Method],
            Kind::Target { .. } | Kind::Path => &[Slot::Target],
            Kind::Protocol => &[Slot::Protocol],
            Kind::Status => &[Slot::Status],
            Kind::Bytes { .. } => &[Slot::Bytes],
            Kind::Duration(_) => &[Slot::RequestTime],
            Kind::Referer => &[Slot::Referer],
            Kind::UserAgent => &[Slot::UserAgent],
            Kind::Vhost => &[Slot::Vhost],
            Kind::Body => &[Slot::Body],
            Kind::Query { .. } | Kind::IsArgs | Kind::Header(_) | Kind::Field => &[],
        }
    }

    /// The byte a value of this kind always starts with, which ends a variable glued before it.
    fn first_byte(&self) -> Option<u8> {
        match self {
            Kind::Target { .. } | Kind::Path => Some(b'/'),
            Kind::Query { qmark: true } => Some(b'?'),
            _ => None,
        }
    }
}

/// Where a variable's value ends.
#[derive(Debug, Clone)]
enum End {
    /// At the end of the line (in a preset: at the next space or the end).
    Eol,
    /// Where this literal begins; `last`: the literal ends the format.
    Lit { lit: Box<[u8]>, last: bool },
    /// At the first occurrence of this byte (a variable glued to the next one).
    Byte(u8),
    /// The value's own grammar says where it ends (timestamps, an unquoted request line); the
    /// literal that follows, if any, tells a lone `-` from a value starting with `-`.
    Grammar(Option<Box<[u8]>>),
}

/// Output of a compiler: literal text and variables in format order.
pub(crate) enum Part {
    Lit(Vec<u8>),
    Var(Var),
}

/// Options a compiler hands over with its parts.
pub(crate) struct Options {
    pub lenient_tail: bool,
    pub empty_is_absent: bool,
}

impl Template {
    /// Turns a compiler's parts into a template: joins adjacent literals, joins path and query
    /// variables, settles which variable fills which `Entry` field and how each value ends.
    pub(crate) fn build(format: &str, parts: Vec<Part>, opts: Options) -> Result<Template, FormatError> {
        let mut pieces: Vec<Piece> = Vec::with_capacity(parts.len());
        for part in parts {
            match (part, pieces.last_mut()) {
                (Part::Lit(l), _) if l.is_empty() => {}
                (Part::Lit(l), Some(Piece::Lit(prev))) => {
                    let mut joined = prev.to_vec();
                    joined.extend_from_slice(&l);
                    *prev = joined.into();
                }
                (Part::Lit(l), _) => pieces.push(Piece::Lit(l.into())),
                (Part::Var(v), _) => pieces.push(Piece::Var(v)),
            }
        }
        join_path_and_query(&mut pieces);
        settle_slots(&mut pieces);
        let has =
            |f: &dyn Fn(&Kind) -> bool| pieces.iter().any(|p| matches!(p, Piece::Var(v) if !v.demoted && f(&v.kind)));
        if !has(&|k| matches!(k, Kind::Request | Kind::Target { .. } | Kind::Path)) {
            return Err(FormatError::at(
                format,
                0,
                "the format logs no request to replay: it needs $request / %r, or $request_uri, $uri / %U",
            ));
        }
        let default_get = !has(&|k| matches!(k, Kind::Request | Kind::Method));
        set_ends(format, &mut pieces)?;
        Ok(Template { pieces, lenient_tail: opts.lenient_tail, empty_is_absent: opts.empty_is_absent, default_get })
    }

    /// Reads one line (without its newline; a trailing `\r` is ignored).
    pub(crate) fn parse<'a>(&'a self, line: &'a [u8]) -> Result<Entry<'a>, LineError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Err(LineError::new(0, Reason::Empty));
        }
        let mut b = Builder::default();
        let mut pos = 0;
        for piece in &self.pieces {
            match piece {
                Piece::Lit(lit) => {
                    if !line[pos..].starts_with(lit) {
                        let reason = Reason::Expected { what: expected_literal(lit) };
                        return Err(LineError::new(pos, reason));
                    }
                    pos += lit.len();
                }
                Piece::Var(var) => pos = self.var(var, line, pos, &mut b)?,
            }
        }
        if pos < line.len() && !(self.lenient_tail && line[pos] == b' ') {
            return Err(LineError::new(pos, Reason::TrailingData));
        }
        b.finish(self.default_get)
    }

    /// Reads one variable's value starting at `pos`; returns where it ended.
    fn var<'a>(&'a self, var: &'a Var, line: &'a [u8], pos: usize, b: &mut Builder<'a>) -> Result<usize, LineError> {
        if let End::Grammar(_) = var.end {
            return self.var_by_grammar(var, line, pos, b);
        }
        let (end, escaped) = self.value_end(var, line, pos)?;
        let raw = &line[pos..end];
        let escaped = escaped || (!var.quoted && memchr(b'\\', raw).is_some());
        self.store(var, raw, escaped, pos, b)?;
        Ok(end)
    }

    /// Finds where the value starting at `pos` ends, and whether it holds a backslash (quoted
    /// values only; others are checked by the caller).
    fn value_end(&self, var: &Var, line: &[u8], pos: usize) -> Result<(usize, bool), LineError> {
        match &var.end {
            End::Eol if self.lenient_tail => Ok((memchr(b' ', &line[pos..]).map_or(line.len(), |i| pos + i), false)),
            End::Eol => Ok((line.len(), false)),
            End::Byte(c) => match memchr(*c, &line[pos..]) {
                Some(i) => Ok((pos + i, false)),
                None => Err(LineError::new(line.len(), Reason::Expected { what: EXPECTED_TEXT })),
            },
            End::Lit { lit, last } if var.quoted => {
                let mut escaped = false;
                let mut from = pos;
                // The first quote followed by the literal, in case none also ends the line.
                let mut first_fit = None;
                while let Some(q) = find_unescaped_quote(line, from, &mut escaped) {
                    let after = q + lit.len();
                    if line[q..].starts_with(lit) {
                        if !last || after == line.len() || (self.lenient_tail && line[after] == b' ') {
                            return Ok((q, escaped));
                        }
                        first_fit.get_or_insert((q, escaped));
                    }
                    from = q + 1;
                }
                // No quote ends the line: the line goes on past the format (reported as such).
                first_fit.ok_or_else(|| {
                    let reason = Reason::Expected { what: EXPECTED_CLOSING_QUOTE };
                    LineError::new(line.len(), reason)
                })
            }
            End::Lit { lit, .. } => match find_literal(line, pos, lit) {
                Some(at) => Ok((at, false)),
                None => {
                    let reason = Reason::Expected { what: expected_literal(lit) };
                    Err(LineError::new(line.len(), reason))
                }
            },
            End::Grammar(_) => unreachable!("handled by var_by_grammar"),
        }
    }

    /// Values that say themselves where they end: timestamps and an unquoted request line.
    fn var_by_grammar<'a>(
        &'a self,
        var: &'a Var,
        line: &'a [u8],
        pos: usize,
        b: &mut Builder<'a>,
    ) -> Result<usize, LineError> {
        let rest = &line[pos..];
        if rest.first() == Some(&b'-') && self.dash_ends_here(var, rest) {
            if let Kind::Request = var.kind
                && !var.conditional
                && !var.demoted
            {
                let reason = Reason::NotAnHttpRequest { why: "the request line is `-` (no request was read)" };
                return Err(LineError::new(pos, reason));
            }
            return Ok(pos + 1);
        }
        let used = match &var.kind {
            Kind::Time(kind) => {
                let parsed = match kind {
                    TimeKind::Clf => time::clf_time(rest),
                    TimeKind::Iso8601 => time::iso8601_time(rest),
                    TimeKind::EpochSeconds => time::epoch_seconds(rest),
                    TimeKind::EpochUnits(per_second) => time::epoch_units(rest, *per_second),
                    TimeKind::Strftime(f) => f.parse(rest),
                };
                let (after, t) = parsed.map_err(|_| LineError::new(pos, Reason::BadTime))?;
                if !var.demoted && b.time.is_none() {
                    b.time = Some(t);
                }
                rest.len() - after.len()
            }
            Kind::Request => {
                let (req, used) = field::bare_request_line(rest)
                    .map_err(|(off, why)| LineError::new(pos + off, Reason::NotAnHttpRequest { why }))?;
                if !var.demoted {
                    b.request_at = pos;
                    b.method = Some(req.method);
                    b.target = Some(req.target);
                    b.protocol = req.protocol;
                }
                used
            }
            _ => unreachable!("only times and requests are read by grammar"),
        };
        if var.demoted {
            b.fields.push((Cow::Borrowed(&*var.name), unescape(&rest[..used])));
        }
        Ok(pos + used)
    }

    /// Whether a `-` at the start of `rest` is the whole value (the format goes on right after).
    fn dash_ends_here(&self, var: &Var, rest: &[u8]) -> bool {
        let after = &rest[1..];
        match &var.end {
            End::Grammar(Some(lit)) => after.starts_with(lit),
            _ => after.is_empty() || after[0] == b' ',
        }
    }

    /// Decodes and stores one value.
    fn store<'a>(
        &'a self,
        var: &'a Var,
        raw: &'a [u8],
        escaped: bool,
        pos: usize,
        b: &mut Builder<'a>,
    ) -> Result<(), LineError> {
        let absent = raw == b"-" || (self.empty_is_absent && raw.is_empty());
        let text = || (!absent).then(|| unescape_if(raw, escaped));
        if var.demoted {
            if let Some(t) = text() {
                b.fields.push((Cow::Borrowed(&*var.name), t));
            }
            return Ok(());
        }
        let not_http = |off: usize, why| LineError::new(pos + off, Reason::NotAnHttpRequest { why });
        match &var.kind {
            Kind::RemoteAddr => b.remote_addr = text(),
            Kind::RemoteUser => b.remote_user = text(),
            Kind::Request if var.conditional && absent => {}
            Kind::Request => {
                if self.empty_is_absent && raw.is_empty() {
                    return Err(not_http(0, "empty request line"));
                }
                let req = field::request_line(raw, escaped).map_err(|(off, why)| not_http(off, why))?;
                b.request_at = pos;
                b.method = Some(req.method);
                b.target = Some(req.target);
                b.protocol = req.protocol;
            }
            Kind::Method => {
                if absent {
                    return Err(not_http(0, "the method is `-`"));
                }
                if !field::is_method(raw) {
                    return Err(not_http(0, field::bad_method_reason(raw)));
                }
                b.method = Some(Cow::Borrowed(raw));
            }
            Kind::Target { strip } => {
                b.request_at = pos;
                let raw = raw.strip_suffix(*strip).filter(|r| !r.is_empty()).unwrap_or(raw);
                if raw == b"-" || raw.is_empty() {
                    return Err(not_http(0, "no request target"));
                }
                b.target = Some(unescape_if(raw, escaped));
            }
            Kind::Path => {
                b.request_at = pos;
                if absent || raw.is_empty() {
                    return Err(not_http(0, "no request path"));
                }
                b.target = Some(unescape_if(raw, escaped));
            }
            Kind::Query { qmark } => {
                let q = if *qmark { raw.strip_prefix(b"?").unwrap_or(raw) } else { raw };
                if !absent && !q.is_empty() {
                    b.query = Some(unescape_if(q, escaped));
                }
            }
            Kind::IsArgs | Kind::Field => {
                if let Some(t) = text() {
                    b.fields.push((Cow::Borrowed(&*var.name), t));
                }
            }
            Kind::Protocol => b.protocol = text(),
            Kind::Status => {
                b.status = field::status(raw).map_err(|()| LineError::new(pos, Reason::BadStatus))?;
            }
            Kind::Bytes { dash_is_zero } => {
                let bad = |()| LineError::new(pos, Reason::BadNumber { field: "bytes" });
                b.bytes = match field::count(raw).map_err(bad)? {
                    None if *dash_is_zero => Some(0),
                    n => n,
                };
            }
            Kind::Duration(unit) => {
                let bad = |()| LineError::new(pos, Reason::BadNumber { field: "request time" });
                if !(self.empty_is_absent && raw.is_empty()) {
                    b.request_time_ms = field::decimal(raw).map_err(bad)?.map(|v| unit.to_ms(v));
                }
            }
            Kind::Referer => b.referer = text(),
            Kind::UserAgent => b.user_agent = text(),
            Kind::Vhost => b.vhost = text(),
            Kind::Header(name) => {
                if let Some(t) = text() {
                    b.headers.push((Cow::Borrowed(&**name), t));
                }
            }
            Kind::Body => b.body = text(),
            Kind::Time(_) => unreachable!("times are read by grammar"),
        }
        Ok(())
    }
}

/// First occurrence of `lit` in `line` from `from` on: a memchr for its first byte, then a
/// compare, which is what the short separators of log formats want.
fn find_literal(line: &[u8], mut from: usize, lit: &[u8]) -> Option<usize> {
    let (&first, tail) = lit.split_first()?;
    while let Some(i) = memchr(first, &line[from..]) {
        let at = from + i;
        if line[at + 1..].starts_with(tail) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// `$uri?$args`, `$uri$is_args$args` and `%U%q` are a whole target as logged: read them as one
/// variable, so the target stays a borrowed slice of the line.
fn join_path_and_query(pieces: &mut Vec<Piece>) {
    let mut i = 0;
    while i < pieces.len() {
        let is_path = matches!(&pieces[i], Piece::Var(v) if matches!(v.kind, Kind::Path));
        let var = |j: usize, f: &dyn Fn(&Kind) -> bool| matches!(pieces.get(j), Some(Piece::Var(v)) if f(&v.kind));
        let query = |k: &Kind| matches!(k, Kind::Query { .. });
        // How many pieces after the path belong to the target, and what an absent query leaves.
        let joined: Option<(usize, &'static [u8])> = if !is_path {
            None
        } else if var(i + 1, &query) {
            Some((1, b"-"))
        } else if var(i + 1, &|k| matches!(k, Kind::IsArgs)) && var(i + 2, &query) {
            Some((2, b"-"))
        } else if matches!(pieces.get(i + 1), Some(Piece::Lit(l)) if &**l == b"?") && var(i + 2, &query) {
            Some((2, b"?-"))
        } else {
            None
        };
        if let Some((extra, strip)) = joined {
            let Piece::Var(path) = &pieces[i] else { unreachable!() };
            let Piece::Var(last) = &pieces[i + extra] else { unreachable!() };
            let name = format!("{}{}", path.name, last.name);
            // Apache's `%q` is empty when there is no query: nothing to strip.
            let strip: &'static [u8] = match last.kind {
                Kind::Query { qmark: true } => b"",
                _ => strip,
            };
            let mut target = Var::new(Kind::Target { strip }, &name, path.at).rank(path.rank);
            target.conditional = path.conditional;
            pieces.splice(i..=i + extra, [Piece::Var(target)]);
        }
        i += 1;
    }
}

/// When several variables fill the same `Entry` field, the highest rank (then the first) keeps
/// it; the others are demoted to `fields`. A query without a path to join is demoted too.
fn settle_slots(pieces: &mut [Piece]) {
    let vars: Vec<usize> = (0..pieces.len()).filter(|&i| matches!(pieces[i], Piece::Var(_))).collect();
    let var = |pieces: &[Piece], i: usize| match &pieces[i] {
        Piece::Var(v) => v.clone(),
        Piece::Lit(_) => unreachable!(),
    };
    let mut demote = vec![];
    for &i in &vars {
        let vi = var(pieces, i);
        for slot in vi.kind.slots() {
            let better = vars.iter().any(|&j| {
                let vj = var(pieces, j);
                j != i && vj.kind.slots().contains(slot) && (vj.rank > vi.rank || (vj.rank == vi.rank && j < i))
            });
            if better {
                demote.push(i);
            }
        }
    }
    for i in demote {
        if let Piece::Var(v) = &mut pieces[i] {
            v.demoted = true;
        }
    }
    let has_path = pieces.iter().any(|p| matches!(p, Piece::Var(v) if !v.demoted && matches!(v.kind, Kind::Path)));
    for p in pieces.iter_mut() {
        if let Piece::Var(v) = p
            && matches!(v.kind, Kind::Query { .. })
            && !has_path
        {
            v.demoted = true;
        }
    }
}

/// Decides for every variable how its value ends (see the module doc).
fn set_ends(format: &str, pieces: &mut [Piece]) -> Result<(), FormatError> {
    for i in 0..pieces.len() {
        let prev_quote = i > 0 && matches!(&pieces[i - 1], Piece::Lit(l) if l.ends_with(b"\""));
        let (next, rest_len) = (pieces.get(i + 1).cloned(), pieces.len() - i - 1);
        let Piece::Var(var) = &mut pieces[i] else { continue };
        let next_quote = matches!(&next, Some(Piece::Lit(l)) if l.starts_with(b"\""));
        var.quoted = prev_quote && next_quote;
        let by_grammar = matches!(var.kind, Kind::Time(_)) || (matches!(var.kind, Kind::Request) && !var.quoted);
        var.end = match next {
            Some(Piece::Lit(lit)) if by_grammar => End::Grammar(Some(lit)),
            _ if by_grammar => End::Grammar(None),
            None => End::Eol,
            Some(Piece::Lit(lit)) => End::Lit { lit, last: rest_len == 1 },
            Some(Piece::Var(next)) => match next.kind.first_byte() {
                Some(c) => End::Byte(c),
                None => {
                    let message = format!(
                        "cannot tell where `{}` ends and `{}` begins: put text between them",
                        var.name, next.name
                    );
                    return Err(FormatError::at(format, next.at, message));
                }
            },
        };
    }
    Ok(())
}

/// Values gathered while reading a line, turned into an [`Entry`] at the end.
#[derive(Default)]
struct Builder<'a> {
    remote_addr: Option<Text<'a>>,
    remote_user: Option<Text<'a>>,
    time: Option<DateTime<FixedOffset>>,
    method: Option<Text<'a>>,
    target: Option<Text<'a>>,
    query: Option<Text<'a>>,
    protocol: Option<Text<'a>>,
    request_at: usize,
    status: Option<u16>,
    bytes: Option<u64>,
    referer: Option<Text<'a>>,
    user_agent: Option<Text<'a>>,
    request_time_ms: Option<f64>,
    vhost: Option<Text<'a>>,
    headers: Vec<(Cow<'a, str>, Text<'a>)>,
    body: Option<Text<'a>>,
    fields: Vec<(Cow<'a, str>, Text<'a>)>,
}

impl<'a> Builder<'a> {
    fn finish(self, default_get: bool) -> Result<Entry<'a>, LineError> {
        let Some(mut target) = self.target else {
            let reason = Reason::NotAnHttpRequest { why: "no request logged on this line" };
            return Err(LineError::new(self.request_at, reason));
        };
        if let Some(query) = self.query {
            // Path and query logged apart (not side by side): join them.
            let mut joined = target.into_owned();
            joined.push(b'?');
            joined.extend_from_slice(&query);
            target = Cow::Owned(joined);
        }
        let method = match self.method {
            Some(m) => m,
            None if default_get => Cow::Borrowed(&b"GET"[..]),
            None => {
                let reason = Reason::NotAnHttpRequest { why: "no method logged on this line" };
                return Err(LineError::new(self.request_at, reason));
            }
        };
        // `$http_host` / `%{Host}i` name the virtual host when nothing better does.
        let vhost = self.vhost.or_else(|| self.headers.iter().find(|(name, _)| name == "host").map(|(_, v)| v.clone()));
        Ok(Entry {
            remote_addr: self.remote_addr,
            remote_user: self.remote_user,
            time: self.time,
            method,
            target,
            protocol: self.protocol,
            status: self.status,
            bytes: self.bytes,
            referer: self.referer,
            user_agent: self.user_agent,
            request_time_ms: self.request_time_ms,
            vhost,
            headers: self.headers,
            body: self.body,
            fields: self.fields,
        })
    }
}
