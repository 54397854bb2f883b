//! [`Format`]: a compiled log format, from a spec (`nginx`, `apache:'%h …'`, `json` …) or sniffed
//! from the first lines of a log.

use std::fmt;
use std::sync::Arc;

use crate::error::{FormatError, LineError, Reason};
use crate::json;
use crate::template::{Template, compile_apache, compile_nginx};
use crate::{Entry, Logged};

/// A compiled log format: compile once, share freely (cloning is a reference-count bump), parse
/// many lines.
#[derive(Clone)]
pub struct Format {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    engine: Engine,
}

enum Engine {
    /// A format string; for a preset that covers variants of one layout (the vhost with or
    /// without its port), further format strings tried in order when the first rejects a line.
    Template(Template, Box<[Template]>),
    Json,
}

#[derive(Clone, Copy)]
enum Server {
    Nginx,
    Apache,
    Json,
}

struct Preset {
    name: &'static str,
    aliases: &'static [&'static str],
    server: Server,
    /// The format string, then variants tried in order when it rejects a line.
    formats: &'static [&'static str],
}

/// Presets are format strings like any other, compiled by the same engine, and as strict: a
/// line with more fields than the preset names is rejected (`extra_fields`), never read with
/// those fields dropped.
///
/// Order matters for `sniff`: when two presets accept as many lines, the earlier (more specific)
/// one is chosen.
const PRESETS: &[Preset] = &[
    Preset {
        name: "nginx-main",
        aliases: &[],
        server: Server::Nginx,
        formats: &[
            r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#,
        ],
    },
    Preset {
        name: "apache-vhost",
        aliases: &["vhost_combined"],
        server: Server::Apache,
        // Debian's `vhost_combined`, and the same without the port, as many other configs log it.
        formats: &[
            r#"%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i""#,
            r#"%v %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#,
        ],
    },
    Preset {
        name: "traefik",
        aliases: &["traefik-clf"],
        server: Server::Apache,
        // Traefik's `common` access log: combined, then the request count, router, server URL
        // and the duration in milliseconds.
        formats: &[
            r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %{requests}n "%{router}n" "%{server_url}n" %{ms}Tms"#,
        ],
    },
    Preset {
        name: "nginx",
        aliases: &["nginx-combined"],
        server: Server::Nginx,
        formats: &[
            r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#,
        ],
    },
    Preset {
        name: "apache-combined",
        aliases: &["combined"],
        server: Server::Apache,
        formats: &[r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#],
    },
    Preset {
        name: "apache-common",
        aliases: &["common"],
        server: Server::Apache,
        formats: &[r#"%h %l %u %t "%r" %>s %b"#],
    },
    Preset { name: "json", aliases: &[], server: Server::Json, formats: &[] },
];

/// How many lines `sniff` looks at.
const SNIFF_LINES: usize = 50;

impl Format {
    /// Compiles a format spec:
    /// - a preset: `nginx` (nginx `combined`), `nginx-main` (combined + `"$http_x_forwarded_for"`),
    ///   `apache-common` (`common`), `apache-combined` (`combined`), `apache-vhost` (Debian's
    ///   `vhost_combined`), `json`;
    /// - `nginx:<log_format string>` or `apache:<LogFormat string>`; one pair of single quotes
    ///   around the string is removed, as a shell would.
    ///
    /// `auto` is not a spec: read some lines and call [`Format::sniff`].
    pub fn from_spec(spec: &str) -> Result<Format, FormatError> {
        if let Some(custom) = spec.strip_prefix("nginx:") {
            let format = unquote(custom);
            return Ok(Format::new(spec, Engine::Template(compile_nginx(format)?, Box::new([]))));
        }
        if let Some(custom) = spec.strip_prefix("apache:") {
            let format = unquote(custom);
            return Ok(Format::new(spec, Engine::Template(compile_apache(format)?, Box::new([]))));
        }
        let wanted = spec.trim().to_ascii_lowercase();
        match PRESETS.iter().find(|p| p.name == wanted || p.aliases.contains(&wanted.as_str())) {
            Some(preset) => Ok(preset.compile()),
            None if wanted == "auto" => {
                Err(FormatError::whole("`auto` picks a format from the log's first lines: use Format::sniff"))
            }
            None => Err(FormatError::whole(format!(
                "unknown log format `{spec}`: use one of {}, nginx:'<log_format>' or apache:'<LogFormat>'",
                Format::preset_names().join(", ")
            ))),
        }
    }

    /// Picks the preset that explains most of the first lines (up to 50; blank lines are not
    /// counted) completely: presets are strict, so a line with fields a preset does not name
    /// does not count for it. A line counts when it parses, or when only its request is not
    /// replayable (a log full of scanner junk is still recognisably nginx). Ties go to the more
    /// specific preset (`nginx-main` over `nginx`); between `nginx` and `apache-combined`, whose
    /// layouts are the same, Apache's traits (`-` for zero bytes, `\"` and lower-case `\xhh`
    /// escapes) decide. [`Format::name`] says what was chosen. When no preset explains any line,
    /// the error names the preset that came closest and where it stopped.
    pub fn sniff(sample_lines: &[&[u8]]) -> Result<Format, FormatError> {
        // Line numbers (0-based) kept for messages.
        let numbered: Vec<(usize, &[u8])> = sample_lines
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
            .take(SNIFF_LINES)
            .collect();
        let lines: Vec<&[u8]> = numbered.iter().map(|(_, l)| *l).collect();
        let candidates: Vec<Format> = PRESETS.iter().map(Preset::compile).collect();
        let verdicts: Vec<Vec<Result<(), LineError>>> = candidates
            .iter()
            .map(|f| {
                numbered
                    .iter()
                    .map(|(_, l)| match f.parse_line(l) {
                        Ok(_) => Ok(()),
                        Err(e) if matches!(e.reason, Reason::NotAnHttpRequest { .. }) => Ok(()),
                        Err(e) => Err(e),
                    })
                    .collect()
            })
            .collect();
        let scores: Vec<usize> = verdicts.iter().map(|v| v.iter().filter(|r| r.is_ok()).count()).collect();
        let best = scores.iter().copied().max().unwrap_or(0);
        if best == 0 {
            return Err(FormatError::whole(nothing_fits(&numbered, &verdicts)));
        }
        let pick = scores.iter().position(|&s| s == best).unwrap_or(0);
        let name = |i: usize| PRESETS[i].name;
        let combined = PRESETS.iter().position(|p| p.name == "apache-combined");
        if name(pick) == "nginx"
            && combined.is_some_and(|c| scores[c] == best)
            && lines.iter().any(|l| looks_like_apache(&candidates[pick], l))
        {
            return Ok(candidates[combined.unwrap_or(pick)].clone());
        }
        Ok(candidates[pick].clone())
    }

    /// The spec this format was made from, or the preset `sniff` chose.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Parses one line, given without its `\n` (a trailing `\r` is ignored). The entry borrows
    /// from `line` and from this format.
    #[inline]
    pub fn parse_line<'a>(&'a self, line: &'a [u8]) -> Result<Entry<'a>, LineError> {
        match &self.inner.engine {
            // Returned as is, not matched: moving the large result costs a copy a line.
            Engine::Template(first, variants) if variants.is_empty() => first.parse(line),
            Engine::Template(first, variants) => first.parse(line).or_else(|e| variant(line, e, variants)),
            Engine::Json => json::parse(line),
        }
    }

    /// The preset names `from_spec` knows (aliases aside), for `--help` and error messages.
    pub fn preset_names() -> &'static [&'static str] {
        &["nginx", "nginx-main", "apache-common", "apache-combined", "apache-vhost", "traefik", "json"]
    }

    /// Whether every line of this format has a place for `what` (its value may still be `-` on
    /// a line): known from the format string. `None` for JSON lines, whose keys vary by line.
    pub fn logs(&self, what: Logged<'_>) -> Option<bool> {
        match &self.inner.engine {
            // A preset's variants log the same fields as its first format string.
            Engine::Template(first, _) => Some(first.logs(what)),
            Engine::Json => None,
        }
    }

    fn new(name: &str, engine: Engine) -> Format {
        Format { inner: Arc::new(Inner { name: name.to_owned(), engine }) }
    }
}

impl Preset {
    fn compile(&self) -> Format {
        let compile = |format: &str| {
            let template = match self.server {
                Server::Nginx => compile_nginx(format),
                Server::Apache | Server::Json => compile_apache(format),
            };
            // The preset strings are fixed; a test compiles each one.
            template.unwrap_or_else(|e| panic!("preset {} does not compile: {e}", self.name))
        };
        match (self.server, self.formats) {
            (Server::Json, _) | (_, []) => Format::new(self.name, Engine::Json),
            (_, [first, variants @ ..]) => {
                let engine = Engine::Template(compile(first), variants.iter().map(|f| compile(f)).collect());
                Format::new(self.name, engine)
            }
        }
    }
}

/// A line the first variant of a preset rejected, through the others. When none fits, the
/// error of the variant that came closest wins (see `closeness`).
#[cold]
fn variant<'a>(line: &'a [u8], first_error: LineError, variants: &'a [Template]) -> Result<Entry<'a>, LineError> {
    let mut best = first_error;
    for template in variants {
        match template.parse(line) {
            Ok(entry) => return Ok(entry),
            Err(e) if closeness(&e) > closeness(&best) => best = e,
            Err(_) => {}
        }
    }
    Err(best)
}

/// How near a rejected line came to fitting a format: the line fits but for its request; it
/// fits up to the format's end (extra fields); a field has one too many words in it; then how
/// far the format read. (The column alone misleads: a wrong format can read far by misreading.)
fn closeness(e: &LineError) -> (u8, usize) {
    let fit = match e.reason {
        Reason::NotAnHttpRequest { .. } => 3,
        Reason::ExtraFields => 2,
        Reason::SpaceInField { .. } => 1,
        _ => 0,
    };
    (fit, e.column)
}

/// Why `sniff` found nothing: the preset that came closest (see `closeness`), and where it
/// stopped.
fn nothing_fits(lines: &[(usize, &[u8])], verdicts: &[Vec<Result<(), LineError>>]) -> String {
    use std::cmp::Reverse;
    // A line that fits in part beats any that does not, whatever its column; ties go to the
    // first (most specific) preset, then the first line.
    let closest = verdicts
        .iter()
        .enumerate()
        .flat_map(|(p, v)| v.iter().enumerate().filter_map(move |(i, r)| r.as_ref().err().map(|e| (e, p, i))))
        .max_by_key(|&(e, p, i)| {
            let (fit, column) = closeness(e);
            (fit, if fit > 0 { 0 } else { column }, Reverse(p), Reverse(i))
        });
    let mut message = format!("no preset reads any of the first {} lines completely", lines.len());
    if let Some((e, preset, line)) = closest {
        message.push_str(&format!("; the closest, {}, stops at line {} {e}", PRESETS[preset].name, lines[line].0 + 1));
    }
    message
}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Format").field(&self.inner.name).finish()
    }
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')).unwrap_or(s)
}

/// Whether a line accepted by the nginx preset shows traits only Apache writes.
fn looks_like_apache(nginx: &Format, line: &[u8]) -> bool {
    let dash_bytes = matches!(nginx.parse_line(line), Ok(e) if e.bytes.is_none() && e.status.is_some());
    let apache_escape = line.windows(2).any(|w| w == br#"\""#)
        || line.windows(4).any(|w| {
            w[0] == b'\\'
                && w[1] == b'x'
                && w[2..].iter().all(u8::is_ascii_hexdigit)
                && w[2..].iter().any(u8::is_ascii_lowercase)
        });
    dash_bytes || apache_escape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_says_what_a_format_string_has_a_place_for() {
        let common = Format::from_spec("apache-common").unwrap();
        assert_eq!(common.logs(Logged::RemoteUser), Some(true));
        assert_eq!(common.logs(Logged::UserAgent), Some(false));
        assert_eq!(common.logs(Logged::Header("cookie")), Some(false));
        let main = Format::from_spec("nginx-main").unwrap();
        assert_eq!(main.logs(Logged::Header("x-forwarded-for")), Some(true));
        assert_eq!(main.logs(Logged::UserAgent), Some(true));
        let custom =
            Format::from_spec(r#"nginx:$remote_addr "$request" $status $cookie_sid "$http_x_session_id""#).unwrap();
        assert_eq!(custom.logs(Logged::Field("cookie_sid")), Some(true));
        assert_eq!(custom.logs(Logged::Header("x-session-id")), Some(true));
        assert_eq!(custom.logs(Logged::RemoteUser), Some(false));
        let apache = Format::from_spec(r#"apache:%h "%r" %>s %{sid}C %{Cookie}i"#).unwrap();
        assert_eq!(apache.logs(Logged::Field("%{sid}C")), Some(true));
        assert_eq!(apache.logs(Logged::Header("cookie")), Some(true));
        assert_eq!(Format::from_spec("json").unwrap().logs(Logged::RemoteUser), None, "keys vary by line");
    }

    #[test]
    fn every_preset_compiles() {
        for p in PRESETS {
            assert_eq!(p.compile().name(), p.name);
            assert!(Format::preset_names().contains(&p.name));
        }
        assert_eq!(Format::preset_names().len(), PRESETS.len());
    }

    #[test]
    fn format_is_send_sync_and_cheap_to_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Format>();
    }
}
