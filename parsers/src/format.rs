//! [`Format`]: a compiled log format, from a spec (`nginx`, `apache:'%h …'`, `json` …) or sniffed
//! from the first lines of a log.

use std::fmt;
use std::sync::Arc;

use crate::Entry;
use crate::error::{FormatError, LineError, Reason};
use crate::json;
use crate::template::{Template, compile_apache, compile_nginx};

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
    Template(Template),
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
    format: &'static str,
}

/// Presets are format strings like any other, compiled by the same engine; they only differ in
/// tolerating extra fields after their end (see `Template::lenient_tail`).
///
/// Order matters for `sniff`: when two presets accept as many lines, the earlier (more specific)
/// one is chosen.
const PRESETS: &[Preset] = &[
    Preset {
        name: "nginx-main",
        aliases: &[],
        server: Server::Nginx,
        format: r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#,
    },
    Preset {
        name: "apache-vhost",
        aliases: &["vhost_combined"],
        server: Server::Apache,
        format: r#"%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i""#,
    },
    Preset {
        name: "nginx",
        aliases: &["nginx-combined"],
        server: Server::Nginx,
        format: r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#,
    },
    Preset {
        name: "apache-combined",
        aliases: &["combined"],
        server: Server::Apache,
        format: r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#,
    },
    Preset {
        name: "apache-common",
        aliases: &["common"],
        server: Server::Apache,
        format: r#"%h %l %u %t "%r" %>s %b"#,
    },
    Preset { name: "json", aliases: &[], server: Server::Json, format: "" },
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
            return Ok(Format::new(spec, Engine::Template(compile_nginx(format, false)?)));
        }
        if let Some(custom) = spec.strip_prefix("apache:") {
            let format = unquote(custom);
            return Ok(Format::new(spec, Engine::Template(compile_apache(format, false)?)));
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

    /// Picks the preset that accepts most of the first lines (up to 50; blank lines are not
    /// counted). A line counts as accepted when it parses, or when only its request is not
    /// replayable (a log full of scanner junk is still recognisably nginx). Ties go to the more
    /// specific preset (`nginx-main` over `nginx`, `apache-combined` over `apache-common`); between
    /// `nginx` and `apache-combined`, whose layouts are the same, Apache's traits (`-` for zero
    /// bytes, `\"` and lower-case `\xhh` escapes) decide. [`Format::name`] says what was chosen.
    pub fn sniff(sample_lines: &[&[u8]]) -> Result<Format, FormatError> {
        let lines: Vec<&[u8]> =
            sample_lines.iter().copied().filter(|l| !l.iter().all(u8::is_ascii_whitespace)).take(SNIFF_LINES).collect();
        let candidates: Vec<Format> = PRESETS.iter().map(Preset::compile).collect();
        let accepted = |f: &Format| {
            lines
                .iter()
                .filter(|l| match f.parse_line(l) {
                    Ok(_) => true,
                    Err(e) => matches!(e.reason, Reason::NotAnHttpRequest { .. }),
                })
                .count()
        };
        let scores: Vec<usize> = candidates.iter().map(accepted).collect();
        let best = scores.iter().copied().max().unwrap_or(0);
        if best == 0 {
            return Err(FormatError::whole(format!(
                "none of {} accepts any of the first {} lines: give the format (a preset, nginx:'<log_format>' or apache:'<LogFormat>')",
                Format::preset_names().join(", "),
                lines.len()
            )));
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
    pub fn parse_line<'a>(&'a self, line: &'a [u8]) -> Result<Entry<'a>, LineError> {
        match &self.inner.engine {
            Engine::Template(t) => t.parse(line),
            Engine::Json => json::parse(line),
        }
    }

    /// The preset names `from_spec` knows (aliases aside), for `--help` and error messages.
    pub fn preset_names() -> &'static [&'static str] {
        &["nginx", "nginx-main", "apache-common", "apache-combined", "apache-vhost", "json"]
    }

    fn new(name: &str, engine: Engine) -> Format {
        Format { inner: Arc::new(Inner { name: name.to_owned(), engine }) }
    }
}

impl Preset {
    fn compile(&self) -> Format {
        let template = match self.server {
            Server::Nginx => compile_nginx(self.format, true),
            Server::Apache => compile_apache(self.format, true),
            Server::Json => return Format::new(self.name, Engine::Json),
        };
        // The preset strings are fixed; a test compiles each one.
        let template = template.unwrap_or_else(|e| panic!("preset {} does not compile: {e}", self.name));
        Format::new(self.name, Engine::Template(template))
    }
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
