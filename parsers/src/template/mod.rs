//! The one engine behind every non-JSON format: a format string (nginx `log_format` or Apache
//! `LogFormat`, presets included) compiles once into a [`Template`], a sequence of literal text and
//! variables; a line is then read in one pass, left to right.
//!
//! How a variable's value ends is decided at compile time ([`End`]):
//! - a value inside quotes (`"$http_user_agent"`) ends at the first `"` not escaped by a backslash
//!   that is followed by what the format has next (the space of `" "`, or the end of the line
//!   after the last quote), so a raw `"` inside a user agent does not end it early;
//! - any other value ends where the next literal begins (`rt=$request_time uct=…`);
//! - a variable glued to another one ends where the next one must begin (`$host$request_uri`
//!   ends `$host` at the first `/`);
//! - timestamps and an unquoted request line are read by their own grammar, since they contain
//!   spaces.
//!
//! Which variable fills which `Entry` field is settled at compile time too: when several could
//! (`%h` and `%a`, `%D` and `%T`, `$request` and `$request_uri`), the most precise one does and
//! the others are kept in `fields`. Anything unknown is kept in `fields` by name; a value `-`
//! is absent.

mod apache;
mod nginx;

pub(crate) use apache::compile as compile_apache;
pub(crate) use nginx::compile as compile_nginx;

use std::borrow::Cow;

use chrono::{FixedOffset, TimeZone, Timelike};
use memchr::memchr;

use crate::error::{
    EXPECTED_CLOSING_QUOTE, EXPECTED_TEXT, FormatError, LineError, Reason, expected_byte, expected_literal,
};
use crate::escape::{find_unescaped_quote, unescape, unescape_if};
use crate::field;
use crate::time::{self, Strftime};
use crate::{Entry, Text};

/// A compiled format.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    ops: Vec<Op>,
    /// nginx `escape=json` writes an absent value as an empty string instead of `-`.
    empty_is_absent: bool,
    /// The format has no method variable: every request is a GET.
    default_get: bool,
}

/// A format as compiled, before it becomes [`Op`]s.
#[derive(Debug, Clone)]
enum Piece {
    Lit(Lit),
    Var(Var),
}

/// What the line reader does for one piece of the format. The commonest shapes of variables
/// (those of combined logs) get an op of their own, which also checks the literal after the value:
/// one dispatch per variable instead of four or five (each a hard-to-predict indirect jump; they
/// took a fifth of the time a line takes). Every other variable goes through [`Var`]; the two
/// ways share the helpers that find a value's end and store it, so they cannot disagree.
#[derive(Debug, Clone)]
enum Op {
    Lit(Lit),
    /// A text field ended by a literal (`$remote_addr - `, `"$http_user_agent"`); this op and the
    /// next three also read that literal.
    Text {
        slot: TextSlot,
        end: Lit,
        last: bool,
        quoted: bool,
    },
    /// An unquoted text field that cannot hold a space (`$remote_addr - `, `%u %t`): it ends at
    /// the literal, which must come before any space.
    Word {
        slot: TextSlot,
        end: Lit,
        field: &'static str,
    },
    /// A quoted request line (`"$request"`, `\"%r\"`).
    Request {
        end: Lit,
        last: bool,
    },
    /// An unquoted status ended by a literal.
    Status {
        end: Lit,
    },
    /// An unquoted byte count ended by a literal.
    Bytes {
        end: Lit,
        dash_is_zero: bool,
    },
    /// `$time_local` / `%t`, and the literal after it if any.
    ClfTime {
        next: Option<Lit>,
    },
    Var(Var),
}

#[derive(Debug, Clone, Copy)]
enum TextSlot {
    RemoteAddr,
    RemoteUser,
    Referer,
    UserAgent,
}

impl TextSlot {
    fn of(kind: &Kind) -> Option<TextSlot> {
        Some(match kind {
            Kind::RemoteAddr => TextSlot::RemoteAddr,
            Kind::RemoteUser => TextSlot::RemoteUser,
            Kind::Referer => TextSlot::Referer,
            Kind::UserAgent => TextSlot::UserAgent,
            _ => return None,
        })
    }

    fn no_space_name(self) -> Option<&'static str> {
        match self {
            TextSlot::RemoteAddr => Kind::RemoteAddr.no_space_name(),
            TextSlot::RemoteUser => Kind::RemoteUser.no_space_name(),
            TextSlot::Referer | TextSlot::UserAgent => None,
        }
    }

    fn field<'e, 'a>(self, e: &'e mut Entry<'a>) -> &'e mut Option<Text<'a>> {
        match self {
            TextSlot::RemoteAddr => &mut e.remote_addr,
            TextSlot::RemoteUser => &mut e.remote_user,
            TextSlot::Referer => &mut e.referer,
            TextSlot::UserAgent => &mut e.user_agent,
        }
    }
}

impl Op {
    fn of(piece: Piece) -> Op {
        let var = match piece {
            Piece::Lit(lit) => return Op::Lit(lit),
            Piece::Var(var) if var.demoted || var.conditional => return Op::Var(var),
            Piece::Var(var) => var,
        };
        if let (Some(slot), Some(field), End::Lit { lit, .. }, false) =
            (TextSlot::of(&var.kind), var.kind.no_space_name(), &var.end, var.quoted)
        {
            return Op::Word { slot, end: lit.clone(), field };
        }
        match (&var.kind, &var.end) {
            (kind, End::Lit { lit, last }) if TextSlot::of(kind).is_some() => Op::Text {
                slot: TextSlot::of(kind).unwrap_or(TextSlot::RemoteAddr),
                end: lit.clone(),
                last: *last,
                quoted: var.quoted,
            },
            (Kind::Request, End::Lit { lit, last }) if var.quoted => Op::Request { end: lit.clone(), last: *last },
            (Kind::Status, End::Lit { lit, .. }) if !var.quoted => Op::Status { end: lit.clone() },
            (Kind::Bytes { dash_is_zero }, End::Lit { lit, .. }) if !var.quoted => {
                Op::Bytes { end: lit.clone(), dash_is_zero: *dash_is_zero }
            }
            (Kind::Time(TimeKind::Clf), End::Grammar(next)) => Op::ClfTime { next: next.clone() },
            _ => Op::Var(var),
        }
    }
}

/// Literal text of a format. Up to 8 bytes (nearly all separators) it is also kept as a masked
/// word, so checking it costs one load and compare instead of a byte loop.
#[derive(Debug, Clone)]
struct Lit {
    bytes: Box<[u8]>,
    word: u64,
    mask: u64,
}

impl Lit {
    fn new(bytes: Vec<u8>) -> Lit {
        let mut buf = [0u8; 8];
        let n = bytes.len().min(8);
        buf[..n].copy_from_slice(&bytes[..n]);
        let mask = if n == 8 { u64::MAX } else { (1u64 << (8 * n)) - 1 };
        Lit { word: u64::from_le_bytes(buf), mask, bytes: bytes.into() }
    }

    /// Whether `hay` starts with this literal.
    #[inline]
    fn starts(&self, hay: &[u8]) -> bool {
        match hay.first_chunk::<8>() {
            Some(head) if self.bytes.len() <= 8 => u64::from_le_bytes(*head) & self.mask == self.word,
            _ => has_prefix(hay, &self.bytes),
        }
    }
}

impl std::ops::Deref for Lit {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
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
    /// Apache `%{msec_frac}t` / `%{usec_frac}t`: the fraction of the second, `digits` long, which
    /// completes a time logged without one.
    SubSecond {
        digits: u8,
    },
    /// Apache `%{%z}t`: the offset, logged apart from a time written without one (the
    /// mod_log_config manual's `%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t`). It turns that local time
    /// into an instant.
    Zone,
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
            Kind::Query { .. } | Kind::IsArgs | Kind::Header(_) | Kind::Field | Kind::SubSecond { .. } | Kind::Zone => {
                &[]
            }
        }
    }

    /// Whether values of this kind are text that may hold escapes (numbers and times do not).
    fn is_text(&self) -> bool {
        !matches!(
            self,
            Kind::Status | Kind::Bytes { .. } | Kind::Duration(_) | Kind::Time(_) | Kind::SubSecond { .. } | Kind::Zone
        )
    }

    /// What a value of this kind is called in an error, when it cannot hold a space by
    /// definition (addresses, host names, numbers; and the user name, which other log readers
    /// also take as one word: with a space, `%l %u` cannot be told apart); `None` for text that
    /// may.
    pub(crate) fn no_space_name(&self) -> Option<&'static str> {
        Some(match self {
            Kind::RemoteAddr => "client address",
            Kind::RemoteUser => "user name",
            Kind::Vhost => "virtual host",
            Kind::Status => "status",
            Kind::Bytes { .. } => "byte count",
            Kind::Duration(_) => "request time",
            _ => return None,
        })
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
    Lit { lit: Lit, last: bool },
    /// At the first occurrence of this byte (a variable glued to the next one).
    Byte(u8),
    /// The value's own grammar says where it ends (timestamps, an unquoted request line); the
    /// literal that follows, if any, tells a lone `-` from a value starting with `-`.
    Grammar(Option<Lit>),
}

/// Output of a compiler: literal text and variables in format order.
pub(crate) enum Part {
    Lit(Vec<u8>),
    Var(Var),
}

/// Options a compiler hands over with its parts.
pub(crate) struct Options {
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
                    *prev = Lit::new(joined);
                }
                (Part::Lit(l), _) => pieces.push(Piece::Lit(Lit::new(l))),
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
        let mut ops = vec![];
        let mut pieces = pieces.into_iter().peekable();
        while let Some(piece) = pieces.next() {
            let op = Op::of(piece);
            let reads_next_literal = matches!(
                op,
                Op::Text { .. }
                    | Op::Word { .. }
                    | Op::Request { .. }
                    | Op::Status { .. }
                    | Op::Bytes { .. }
                    | Op::ClfTime { next: Some(_) }
            );
            if reads_next_literal && matches!(pieces.peek(), Some(Piece::Lit(_))) {
                pieces.next();
            }
            ops.push(op);
        }
        Ok(Template { ops, empty_is_absent: opts.empty_is_absent, default_get })
    }

    /// Whether this format has a variable that fills `what` (see `crate::Format::logs`).
    pub(crate) fn logs(&self, what: crate::Logged<'_>) -> bool {
        use crate::Logged;
        let slot_is = |slot: &TextSlot| {
            matches!(
                (slot, what),
                (TextSlot::RemoteAddr, Logged::RemoteAddr)
                    | (TextSlot::RemoteUser, Logged::RemoteUser)
                    | (TextSlot::UserAgent, Logged::UserAgent)
                    | (TextSlot::Referer, Logged::Referer)
            )
        };
        self.ops.iter().any(|op| match op {
            Op::Text { slot, .. } | Op::Word { slot, .. } => slot_is(slot),
            // A demoted variable lost its `Entry` field and is kept in `fields` by name.
            Op::Var(var) if var.demoted => what == Logged::Field(&var.name),
            Op::Var(var) => match (&var.kind, what) {
                (Kind::Header(name), Logged::Header(wanted)) => **name == *wanted,
                (Kind::Field, Logged::Field(wanted)) => *var.name == *wanted,
                (kind, _) => TextSlot::of(kind).is_some_and(|slot| slot_is(&slot)),
            },
            _ => false,
        })
    }

    /// Reads one line (without its newline; a trailing `\r` is ignored).
    pub(crate) fn parse<'a>(&'a self, line: &'a [u8]) -> Result<Entry<'a>, LineError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Err(LineError::new(0, Reason::Empty));
        }
        let mut b = Builder::new();
        let mut pos = 0;
        for op in &self.ops {
            pos = match op {
                Op::Lit(lit) => expect_lit(line, pos, lit)?,
                Op::Text { slot, end, last, quoted } => {
                    let (stop, escaped) = self.until_lit(line, pos, end, *last, *quoted)?;
                    let raw = &line[pos..stop];
                    if let Some(name) = slot.no_space_name() {
                        no_space(raw, pos, name)?;
                    }
                    put(slot.field(&mut b.e), raw, escaped, self.absent(raw));
                    // An unquoted value's end was found as the literal itself.
                    if *quoted { expect_lit(line, stop, end)? } else { stop + end.len() }
                }
                Op::Word { slot, end, field } => {
                    let (stop, escaped) = word_end(line, pos, end, field)?;
                    let raw = &line[pos..stop];
                    put(slot.field(&mut b.e), raw, escaped, self.absent(raw));
                    stop + end.len()
                }
                Op::Request { end, last } => {
                    let (stop, escaped) = self.until_lit(line, pos, end, *last, true)?;
                    self.request(&line[pos..stop], escaped, pos, &mut b);
                    expect_lit(line, stop, end)?
                }
                Op::Status { end } => {
                    let (stop, _) = self.until_lit(line, pos, end, false, false)?;
                    b.e.status = status(&line[pos..stop], pos)?;
                    stop + end.len()
                }
                Op::Bytes { end, dash_is_zero } => {
                    let (stop, _) = self.until_lit(line, pos, end, false, false)?;
                    b.e.bytes = bytes(&line[pos..stop], *dash_is_zero, pos)?;
                    stop + end.len()
                }
                Op::ClfTime { next } => {
                    let rest = &line[pos..];
                    let stop = if dash_alone(rest, next.as_ref()) {
                        pos + 1
                    } else {
                        let (after, t) = time::clf_time(rest).map_err(|_| LineError::new(pos, Reason::BadTime))?;
                        b.e.time.get_or_insert(t);
                        line.len() - after.len()
                    };
                    match next {
                        Some(lit) => expect_lit(line, stop, lit)?,
                        None => stop,
                    }
                }
                Op::Var(var) => self.var(var, line, pos, &mut b)?,
            };
        }
        if pos < line.len() {
            // Every field a format does not name would be dropped: say so rather than guess.
            let reason = if line[pos] == b' ' { Reason::ExtraFields } else { Reason::TrailingData };
            return Err(LineError::new(pos, reason));
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
        // Values ended by a literal were checked while looking for their end; numbers need no
        // decoding.
        let escaped =
            escaped || (matches!(var.end, End::Eol | End::Byte(_)) && var.kind.is_text() && has_backslash(raw));
        self.store(var, raw, escaped, pos, b)?;
        Ok(end)
    }

    /// Finds where the value starting at `pos` ends, and whether it holds a backslash (values
    /// ended by a literal only; others are checked by the caller).
    fn value_end(&self, var: &Var, line: &[u8], pos: usize) -> Result<(usize, bool), LineError> {
        match &var.end {
            // A value that cannot hold a space ends at one; what follows is reported as extra fields.
            End::Eol if var.kind.no_space_name().is_some() => {
                Ok((memchr(b' ', &line[pos..]).map_or(line.len(), |i| pos + i), false))
            }
            End::Eol => Ok((line.len(), false)),
            End::Byte(c) => match memchr(*c, &line[pos..]) {
                Some(i) => Ok((pos + i, false)),
                None => Err(LineError::new(line.len(), Reason::Expected { what: EXPECTED_TEXT })),
            },
            End::Lit { lit, last } => self.until_lit(line, pos, lit, *last, var.quoted),
            End::Grammar(_) => unreachable!("handled by var_by_grammar"),
        }
    }

    /// Where a value ended by the literal `lit` ends, and whether it holds a backslash.
    #[inline]
    fn until_lit(
        &self,
        line: &[u8],
        pos: usize,
        lit: &Lit,
        last: bool,
        quoted: bool,
    ) -> Result<(usize, bool), LineError> {
        if !quoted {
            return find_literal(line, pos, lit).ok_or_else(|| {
                let reason = Reason::Expected { what: expected_literal(lit) };
                LineError::new(line.len(), reason)
            });
        }
        // The value ends at the first unescaped `"` followed by what the format puts next: the
        // literal's next byte (` ` in `" "`), or after the format's last quote the end of the
        // line or the start of another field the format does not name (` "`, ` -`, ` 7`),
        // reported as extra fields rather than swallowed. A raw `"` inside a value followed by
        // anything else does not end it. Checking one byte, not the whole literal, keeps
        // `"a" 72 "b"` from being read as one value.
        let mut escaped = false;
        let mut from = pos;
        // The first closing candidate, in case no quote ends the line.
        let mut first_fit = None;
        while let Some(q) = find_unescaped_quote(line, from, &mut escaped) {
            let next = line.get(q + 1).copied();
            let fits = match lit.get(1) {
                Some(&want) => next == Some(want),
                None if last => next.is_none() || starts_another_field(&line[q + 1..]),
                None => true,
            };
            if fits {
                return Ok((q, escaped));
            }
            if last && lit.len() == 1 {
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

    /// `-`, or with `escape=json` an empty value: the variable was not set.
    #[inline]
    fn absent(&self, raw: &[u8]) -> bool {
        matches!(raw, [b'-']) || (self.empty_is_absent && raw.is_empty())
    }

    /// A quoted request line; a bad one is remembered, not returned (see `Builder::bad_request`).
    #[inline]
    fn request<'a>(&self, raw: &'a [u8], escaped: bool, pos: usize, b: &mut Builder<'a>) {
        if self.empty_is_absent && raw.is_empty() {
            return b.not_http(pos, "empty request line");
        }
        match field::request_line(raw, escaped) {
            Ok(req) => {
                b.request_at = pos;
                b.request(req);
            }
            Err((off, why)) => b.not_http(pos + off, why),
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
        let next = match &var.end {
            End::Grammar(next) => next.as_ref(),
            _ => None,
        };
        if dash_alone(rest, next) {
            if let Kind::Request = var.kind
                && !var.conditional
                && !var.demoted
            {
                b.not_http(pos, "the request line is `-` (no request was read)");
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
                if !var.demoted && b.e.time.is_none() {
                    b.e.time = Some(t);
                    b.time_is_local = matches!(kind, TimeKind::Strftime(f) if !f.has_zone());
                }
                rest.len() - after.len()
            }
            Kind::SubSecond { digits } => {
                let n = usize::from(*digits);
                let frac = rest
                    .get(..n)
                    .filter(|d| d.iter().all(u8::is_ascii_digit))
                    .ok_or(LineError::new(pos, Reason::BadTime))?;
                let value = frac.iter().fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
                if !var.demoted {
                    b.nanos = Some(value * 10u32.pow(9 - u32::from(*digits)));
                }
                n
            }
            Kind::Zone => {
                let (offset, used) = time::zone(rest).ok_or(LineError::new(pos, Reason::BadTime))?;
                if !var.demoted {
                    b.zone = Some(offset);
                }
                used
            }
            Kind::Request => {
                let (req, used) = field::bare_request_line(rest)
                    .map_err(|(off, why)| LineError::new(pos + off, Reason::NotAnHttpRequest { why }))?;
                if !var.demoted {
                    b.request_at = pos;
                    b.request(req);
                }
                used
            }
            _ => unreachable!("only times and requests are read by grammar"),
        };
        if var.demoted {
            b.e.fields.push((Cow::Borrowed(&*var.name), unescape(&rest[..used])));
        }
        Ok(pos + used)
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
        let absent = self.absent(raw);
        let text = || (!absent).then(|| unescape_if(raw, escaped));
        if let Some(name) = var.kind.no_space_name() {
            no_space(raw, pos, name)?;
        }
        if var.demoted {
            if let Some(t) = text() {
                b.e.fields.push((Cow::Borrowed(&*var.name), t));
            }
            return Ok(());
        }
        match &var.kind {
            Kind::RemoteAddr => put(&mut b.e.remote_addr, raw, escaped, absent),
            Kind::RemoteUser => put(&mut b.e.remote_user, raw, escaped, absent),
            Kind::Request if var.conditional && absent => {}
            Kind::Request => self.request(raw, escaped, pos, b),
            Kind::Method => {
                if absent {
                    b.not_http(pos, "the method is `-`");
                } else if !field::is_method(raw) {
                    b.not_http(pos, field::bad_method_reason(raw));
                }
                if b.method.is_none() {
                    b.method = Some(Cow::Borrowed(raw));
                }
            }
            Kind::Target { strip } => {
                b.request_at = pos;
                let raw = raw.strip_suffix(*strip).filter(|r| !r.is_empty()).unwrap_or(raw);
                if raw == b"-" || raw.is_empty() {
                    b.not_http(pos, "no request target");
                }
                if b.target.is_none() {
                    b.target = Some(unescape_if(raw, escaped));
                }
            }
            Kind::Path => {
                b.request_at = pos;
                if absent || raw.is_empty() {
                    b.not_http(pos, "no request path");
                }
                if b.target.is_none() {
                    b.target = Some(unescape_if(raw, escaped));
                }
            }
            Kind::Query { qmark } => {
                let q = if *qmark { raw.strip_prefix(b"?").unwrap_or(raw) } else { raw };
                if !absent && !q.is_empty() {
                    b.query = Some(unescape_if(q, escaped));
                }
            }
            Kind::IsArgs | Kind::Field => {
                if let Some(t) = text() {
                    b.e.fields.push((Cow::Borrowed(&*var.name), t));
                }
            }
            Kind::Protocol => put(&mut b.e.protocol, raw, escaped, absent),
            Kind::Status => b.e.status = status(raw, pos)?,
            Kind::Bytes { dash_is_zero } => b.e.bytes = bytes(raw, *dash_is_zero, pos)?,
            Kind::Duration(unit) => {
                let bad = |()| LineError::new(pos, Reason::BadNumber { field: "request time" });
                if !(self.empty_is_absent && raw.is_empty()) {
                    b.e.request_time_ms = field::decimal(raw).map_err(bad)?.map(|v| unit.to_ms(v));
                }
            }
            Kind::Referer => put(&mut b.e.referer, raw, escaped, absent),
            Kind::UserAgent => put(&mut b.e.user_agent, raw, escaped, absent),
            Kind::Vhost => put(&mut b.e.vhost, raw, escaped, absent),
            Kind::Header(name) => {
                if let Some(t) = text() {
                    b.e.headers.push((Cow::Borrowed(&**name), t));
                }
            }
            Kind::Body => put(&mut b.e.body, raw, escaped, absent),
            Kind::Time(_) | Kind::SubSecond { .. } | Kind::Zone => unreachable!("times are read by grammar"),
        }
        Ok(())
    }
}

/// Checks that the format's literal `lit` comes at `pos`; returns where it ends.
#[inline]
fn expect_lit(line: &[u8], pos: usize, lit: &Lit) -> Result<usize, LineError> {
    if lit.starts(&line[pos..]) {
        return Ok(pos + lit.len());
    }
    // Point at the first byte that differs, and name what should be there.
    let same = lit.iter().zip(&line[pos..]).take_while(|(a, b)| a == b).count();
    let reason = Reason::Expected { what: expected_byte(lit.get(same).copied()) };
    Err(LineError::new(pos + same, reason))
}

/// Whether `rest` starts with a lone `-` (an absent value): the literal that follows in the
/// format, or a space or the end of the line when none does, comes right after it.
#[inline]
fn dash_alone(rest: &[u8], next: Option<&Lit>) -> bool {
    match rest {
        [b'-', after @ ..] => match next {
            Some(lit) => lit.starts(after),
            None => after.is_empty() || after[0] == b' ',
        },
        _ => false,
    }
}

/// A byte count; Apache's `%b` writes `-` for zero.
#[inline]
fn bytes(raw: &[u8], dash_is_zero: bool, pos: usize) -> Result<Option<u64>, LineError> {
    match field::count(raw) {
        Ok(None) if dash_is_zero => Ok(Some(0)),
        Ok(n) => Ok(n),
        Err(()) => Err(no_space(raw, pos, "byte count")
            .err()
            .unwrap_or(LineError::new(pos, Reason::BadNumber { field: "bytes" }))),
    }
}

#[inline]
fn status(raw: &[u8], pos: usize) -> Result<Option<u16>, LineError> {
    field::status(raw)
        .map_err(|()| no_space(raw, pos, "status").err().unwrap_or(LineError::new(pos, Reason::BadStatus)))
}

/// Whether the text after a closing quote starts another field: a space, then a quote, a `-`
/// or a digit.
#[inline]
fn starts_another_field(rest: &[u8]) -> bool {
    matches!(rest, [b' ', b'"' | b'-' | b'0'..=b'9', ..])
}

/// Rejects a value with a space in a field that cannot hold one (an address, a host name, a
/// number): the line has more fields there than the format, and reading on would put two
/// fields in one (`vhost 203.0.113.9` as the client address).
#[inline]
fn no_space(raw: &[u8], pos: usize, field: &'static str) -> Result<(), LineError> {
    match raw.iter().position(|&c| c == b' ') {
        Some(at) => Err(LineError::new(pos + at, Reason::SpaceInField { field })),
        None => Ok(()),
    }
}

/// Stores a text value into an empty `Entry` field. Assigning only to a `None` lets the compiler
/// drop no old value, and writing `Some(Borrowed)` in place avoids copying it through the stack
/// (both showed up in profiles at millions of lines a second). The first value wins.
#[inline]
fn put<'a>(slot: &mut Option<Text<'a>>, raw: &'a [u8], escaped: bool, absent: bool) {
    if !absent && slot.is_none() {
        *slot = Some(if escaped { unescape(raw) } else { Cow::Borrowed(raw) });
    }
}

/// Whether a value holds a backslash (so escapes must be decoded). Unquoted values are short
/// (addresses, user names): a plain loop beats a memchr call there.
#[inline]
fn has_backslash(raw: &[u8]) -> bool {
    if raw.len() <= 32 { raw.contains(&b'\\') } else { memchr(b'\\', raw).is_some() }
}

/// `hay.starts_with(prefix)` for the few bytes of a format's literal: an inline loop beats a
/// call to `memcmp` at this size.
#[inline]
fn has_prefix(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay.iter().zip(prefix).all(|(a, b)| a == b)
}

/// Where an unquoted value starting at `from` ends: the first occurrence of `lit`. Also says
/// whether the value holds a backslash. Such values are mostly short (an address, `-`, a status):
/// one plain loop does both jobs there; a long value switches to memchr.
#[inline]
fn find_literal(line: &[u8], from: usize, lit: &Lit) -> Option<(usize, bool)> {
    const SHORT: usize = 24;
    let first = *lit.first()?;
    let short_end = line.len().min(from + SHORT);
    let mut backslash = false;
    for (i, &c) in line[from..short_end].iter().enumerate() {
        if c == first && lit.starts(&line[from + i..]) {
            return Some((from + i, backslash));
        }
        backslash |= c == b'\\';
    }
    let mut at = short_end;
    loop {
        at += memchr(first, &line[at..])?;
        if lit.starts(&line[at..]) {
            return Some((at, backslash || has_backslash(&line[short_end..at])));
        }
        at += 1;
    }
}

/// Where an unquoted value that cannot hold a space, starting at `from`, ends: at `lit`, which
/// must come before any space (one loop, no search past the value). Also says whether the value
/// holds a backslash.
#[inline]
fn word_end(line: &[u8], from: usize, lit: &Lit, field: &'static str) -> Result<(usize, bool), LineError> {
    let first = lit.first().copied().unwrap_or(b' ');
    let mut backslash = false;
    for (i, &c) in line[from..].iter().enumerate() {
        if c == first && lit.starts(&line[from + i..]) {
            return Ok((from + i, backslash));
        }
        if c == b' ' {
            return Err(word_error(line, from, from + i, lit, field));
        }
        backslash |= c == b'\\';
    }
    Err(word_error(line, from, line.len(), lit, field))
}

/// Why `word_end` failed: a space where the literal is found later (two fields where the format
/// has one), or no literal at all (a field the format has is missing).
#[cold]
fn word_error(line: &[u8], from: usize, stop: usize, lit: &Lit, field: &'static str) -> LineError {
    match find_literal(line, from, lit) {
        Some(_) if stop < line.len() => LineError::new(stop, Reason::SpaceInField { field }),
        _ => LineError::new(line.len(), Reason::Expected { what: expected_literal(lit) }),
    }
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
        let by_grammar = matches!(var.kind, Kind::Time(_) | Kind::SubSecond { .. } | Kind::Zone)
            || (matches!(var.kind, Kind::Request) && !var.quoted);
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

/// Values gathered while reading a line. The entry is filled in place (it is large; moving it
/// around costs measurably at millions of lines a second); method and target wait for `finish`.
struct Builder<'a> {
    e: Entry<'a>,
    method: Option<Text<'a>>,
    target: Option<Text<'a>>,
    query: Option<Text<'a>>,
    request_at: usize,
    /// Sub-second part logged apart from the time (Apache `%{msec_frac}t`).
    nanos: Option<u32>,
    /// The time was logged without an offset (a `%{format}t` without `%z`)…
    time_is_local: bool,
    /// …which may be logged apart (`%{%z}t`).
    zone: Option<FixedOffset>,
    /// The request is not replayable. Reported only once the rest of the line has matched the
    /// format: a line that does not fit at all is reported as such (and `sniff` is not fooled
    /// by scanner junk that every format would "accept" up to its request).
    bad_request: Option<LineError>,
}

impl<'a> Builder<'a> {
    fn new() -> Builder<'a> {
        Builder {
            e: Entry {
                remote_addr: None,
                remote_user: None,
                time: None,
                method: Cow::Borrowed(&[]),
                target: Cow::Borrowed(&[]),
                protocol: None,
                status: None,
                bytes: None,
                referer: None,
                user_agent: None,
                request_time_ms: None,
                vhost: None,
                headers: Vec::new(),
                body: None,
                fields: Vec::new(),
            },
            method: None,
            target: None,
            query: None,
            request_at: 0,
            nanos: None,
            time_is_local: false,
            zone: None,
            bad_request: None,
        }
    }

    /// Stores a request's parts; the first request of the line wins. (Assigning only to `None`
    /// spares dropping an old value, which profiles showed.)
    fn request(&mut self, req: field::RequestLine<'a>) {
        if self.target.is_none() {
            self.method = Some(req.method);
            self.target = Some(req.target);
            if self.e.protocol.is_none() {
                self.e.protocol = req.protocol;
            }
        }
    }

    fn not_http(&mut self, at: usize, why: &'static str) {
        self.bad_request.get_or_insert(LineError::new(at, Reason::NotAnHttpRequest { why }));
    }

    fn finish(self, default_get: bool) -> Result<Entry<'a>, LineError> {
        let mut e = self.e;
        if let Some(err) = self.bad_request {
            return Err(err);
        }
        let Some(target) = self.target else {
            let reason = Reason::NotAnHttpRequest { why: "no request logged on this line" };
            return Err(LineError::new(self.request_at, reason));
        };
        let target = match self.query {
            // Path and query logged apart (not side by side): join them.
            Some(query) => {
                let mut joined = target.into_owned();
                joined.push(b'?');
                joined.extend_from_slice(&query);
                Cow::Owned(joined)
            }
            None => target,
        };
        let method = match self.method {
            Some(m) => m,
            None if default_get => Cow::Borrowed(&b"GET"[..]),
            None => {
                let reason = Reason::NotAnHttpRequest { why: "no method logged on this line" };
                return Err(LineError::new(self.request_at, reason));
            }
        };
        // The placeholders replaced here are empty borrowed slices: forgetting them frees
        // nothing and spares the drop check of an assignment.
        std::mem::forget(std::mem::replace(&mut e.target, target));
        std::mem::forget(std::mem::replace(&mut e.method, method));
        if let (Some(t), Some(zone), true) = (e.time, self.zone, self.time_is_local) {
            e.time = zone.from_local_datetime(&t.naive_utc()).single().or(e.time);
        }
        if let (Some(t), Some(nanos)) = (e.time, self.nanos) {
            e.time = t.with_nanosecond(nanos).or(e.time);
        }
        // `$http_host` / `%{Host}i` name the virtual host when nothing better does.
        if e.vhost.is_none() {
            e.vhost = e.headers.iter().find(|(name, _)| name == "host").map(|(_, v)| v.clone());
        }
        Ok(e)
    }
}
