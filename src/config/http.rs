//! `--http-version`: what a replay speaks to its target.

use super::Target;

/// What a replay speaks to the target (`--http-version`). Never chosen behind the user's back:
/// an https target speaks HTTP/1.1 unless asked, as oha, wrk and vegeta do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    #[default]
    Http1,
    /// HTTP/2 agreed by ALPN over TLS.
    Http2,
    /// HTTP/2 with prior knowledge over plain TCP.
    H2c,
}

impl HttpVersion {
    /// `--http-version` as given (`None`: not given), checked against the target's scheme.
    pub fn parse(text: Option<&str>, target: &Target) -> Result<HttpVersion, String> {
        let https = matches!(target, Target::Url(url) if url.scheme() == "https");
        if let (Target::Kafka(_), Some(_)) = (target, text) {
            return Err("is for HTTP targets: a kafka:// target speaks Kafka's own protocol".into());
        }
        match text.map(str::trim) {
            None | Some("1.1") => Ok(HttpVersion::Http1),
            Some("2") if https => Ok(HttpVersion::Http2),
            Some("2") => Err("HTTP/2 is agreed by ALPN over TLS: for an http:// target give h2c (prior-knowledge \
                              HTTP/2 without TLS)"
                .into()),
            Some("h2c") if !https => Ok(HttpVersion::H2c),
            Some("h2c") => Err("h2c is HTTP/2 without TLS: for an https:// target give 2".into()),
            Some(other) => Err(format!("'{other}': expected 1.1, 2 or h2c")),
        }
    }

    /// The protocol as the summary names it.
    pub fn describe(self, target: &Target) -> &'static str {
        let https = matches!(target, Target::Url(url) if url.scheme() == "https");
        if let Target::Kafka(_) = target {
            return "Kafka (produce, acknowledged by all in-sync replicas)";
        }
        match self {
            HttpVersion::Http1 if https => "HTTP/1.1 over TLS",
            HttpVersion::Http1 => "HTTP/1.1",
            HttpVersion::Http2 => "HTTP/2 over TLS (h2, agreed by ALPN)",
            HttpVersion::H2c => "HTTP/2 without TLS (h2c, prior knowledge)",
        }
    }
}
