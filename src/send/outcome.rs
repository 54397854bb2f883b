//! What happened to one request: its status, or the kind of failure (and what the error said),
//! with its plan, send and end times. A failed request is data, not an error of the program.

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;
use std::time::Instant;

use reqwest::{Method, Url};

pub use crate::display::error_text;
use crate::plan::ReplayRequest;
use crate::plan::safety::Redactor;
use crate::results::SessionTag;

/// Why a request got no HTTP status. A failed request is data, not an error of the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// `--timeout` elapsed before the response body was complete.
    Timeout,
    /// The connection could not be made (refused, unreachable, DNS).
    Connect,
    /// The connection was reset or closed before a complete response.
    Reset,
    /// A TLS handshake or certificate problem.
    Tls,
    /// The target answered something that is not HTTP.
    Protocol,
    /// Still in flight when the drain timeout ran out after scheduling stopped.
    Aborted,
    /// This machine ran out of something the request needed (file descriptors, local ports,
    /// memory for a socket): not the target's fault.
    Local,
    /// Released by the pacer but never sent: scheduling stopped (end of the duration, Ctrl-C, a
    /// full disk, an `--abort-on` condition) before a sender took it. Not counted as sent.
    NotSent,
    /// Due before a shard that started after `--start-at` was ready (`--late-start skip`): never
    /// sent, like `NotSent`.
    SkippedLate,
    Other,
    /// Kafka: no acknowledgement within `--timeout`.
    #[serde(rename = "kafka:timeout")]
    KafkaTimeout,
    /// Kafka: no broker could be reached, or the connection failed.
    #[serde(rename = "kafka:connect")]
    KafkaConnect,
    /// Kafka: the broker refused the message with an error code.
    #[serde(rename = "kafka:broker")]
    KafkaBroker,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Reset => "reset",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Aborted => "aborted",
            ErrorKind::Local => "local",
            ErrorKind::NotSent => "not_sent",
            ErrorKind::SkippedLate => "skipped_late",
            ErrorKind::Other => "other",
            ErrorKind::KafkaTimeout => "kafka:timeout",
            ErrorKind::KafkaConnect => "kafka:connect",
            ErrorKind::KafkaBroker => "kafka:broker",
        }
    }

    /// Sorts a reqwest error into a short stable kind.
    pub fn classify(err: &reqwest::Error) -> ErrorKind {
        if err.is_timeout() { ErrorKind::Timeout } else { ErrorKind::from_chain(err, err.is_connect()) }
    }

    /// Sorts any error by walking its chain of causes for I/O and HTTP-level reasons.
    /// `connecting` says the error happened while opening the connection.
    pub fn from_chain(err: &(dyn std::error::Error + 'static), connecting: bool) -> ErrorKind {
        let mut source = Some(err);
        let mut incomplete = false;
        while let Some(e) = source {
            if e.is::<rustls::Error>() {
                return ErrorKind::Tls;
            }
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if is_local_exhaustion(io) {
                    return ErrorKind::Local;
                }
                match io.kind() {
                    io::ErrorKind::TimedOut => return ErrorKind::Timeout,
                    io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable => return ErrorKind::Connect,
                    io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof => return ErrorKind::Reset,
                    _ => {}
                }
            }
            if let Some(h) = e.downcast_ref::<hyper::Error>() {
                if h.is_parse() || h.is_parse_status() || h.is_parse_too_large() {
                    return ErrorKind::Protocol;
                }
                if h.is_timeout() {
                    return ErrorKind::Timeout;
                }
                incomplete |= h.is_incomplete_message() || h.is_closed() || h.is_canceled();
            }
            let text = e.to_string().to_ascii_lowercase();
            if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
                return ErrorKind::Tls;
            }
            source = wrapped_or_source(e);
        }
        if incomplete {
            ErrorKind::Reset
        } else if connecting {
            ErrorKind::Connect
        } else {
            ErrorKind::Other
        }
    }
}

/// The next cause of `e`. An io::Error that wraps another error (tokio-rustls wraps rustls's
/// this way, sometimes twice) gives it, where its `source()` would skip it.
fn wrapped_or_source<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a (dyn std::error::Error + 'static)> {
    match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
        Some(inner) => Some(inner),
        None => e.source(),
    }
}

/// Out of file descriptors (EMFILE, ENFILE), of local ports (EADDRNOTAVAIL on connect), or of
/// socket buffers (ENOBUFS, ENOMEM): the loader's machine is the limit, not the target.
fn is_local_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL | libc::ENOBUFS | libc::ENOMEM))
        || e.kind() == io::ErrorKind::AddrNotAvailable
}

/// A failure with what the error said, for the summary's first message per kind
/// (`connect: Connection refused (127.0.0.1:1)`).
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure { kind, message: message.into() }
    }

    /// From any error: its kind, and its chain of causes as one line, without the OS error number.
    pub fn from_error(err: &(dyn std::error::Error + 'static), connecting: bool) -> Failure {
        Failure { kind: ErrorKind::from_chain(err, connecting), message: error_text(err) }
    }
}

/// What happened to one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seq: u64,
    pub log_line: u64,
    pub log_time: Option<chrono::DateTime<chrono::Utc>>,
    pub method: Method,
    pub url: Url,
    pub orig_status: Option<u16>,
    pub scheduled: Instant,
    /// When it left; `None` for a request that never did ([`ErrorKind::NotSent`]).
    pub sent: Option<Instant>,
    pub done: Instant,
    pub result: Result<u16, ErrorKind>,
    /// Response body bytes received, whatever the outcome (a response cut off by a timeout or a
    /// reset counts what arrived).
    pub bytes: u64,
    pub session: Option<SessionTag>,
    /// With `--compare`: the baseline's answer and how the two compare (boxed: a single-target
    /// run pays one empty pointer per outcome, nothing more).
    pub compare: Option<Box<crate::send::compare::Comparison>>,
    /// End to end (`--consume`): when its output message was seen, or that none was.
    pub e2e: Option<crate::results::EndToEnd>,
}

impl Outcome {
    /// Whether the request got an HTTP status.
    pub fn answered(&self) -> bool {
        self.result.is_ok()
    }
}

impl Outcome {
    /// What became of `req`: sent at `sent` (or never), ending now with `result`.
    pub fn of(
        req: ReplayRequest,
        scheduled: Instant,
        sent: Option<Instant>,
        result: Result<u16, ErrorKind>,
        bytes: u64,
    ) -> Outcome {
        Outcome {
            seq: req.seq,
            log_line: req.log_line,
            log_time: req.log_time,
            method: req.method,
            url: req.url,
            orig_status: req.orig_status,
            scheduled,
            sent,
            done: Instant::now(),
            result,
            bytes,
            session: req.session,
            compare: None,
            e2e: None,
        }
    }

    /// The row of a request that was released but never left.
    pub fn not_sent(req: ReplayRequest, scheduled: Instant) -> Outcome {
        Outcome::of(req, scheduled, None, Err(ErrorKind::NotSent), 0)
    }

    /// A row for a request a late start skipped (`--late-start skip`).
    pub fn skipped_late(req: ReplayRequest, scheduled: Instant) -> Outcome {
        Outcome::of(req, scheduled, None, Err(ErrorKind::SkippedLate), 0)
    }
}

/// The first distinct failure messages of each kind, with counts, for the summary
/// (`connect: Connection refused (127.0.0.1:1) ×150`). Bounded: a few messages per kind, each
/// cut to a line's length; later distinct messages are only counted by kind.
#[derive(Debug, Default)]
pub struct FailureSamples {
    by_kind: Mutex<BTreeMap<ErrorKind, Vec<FailureSample>>>,
}

/// One distinct failure message and how many failures said it, with what to do about it when
/// the cause is a well-known one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailureSample {
    pub message: String,
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// What to do about a failure whose message names a well-known cause: (kind, words any of which
/// the message holds, hint). rustls names some causes by their variant (`UnknownIssuer`) and
/// others in words (`certificate not valid for name`); both spellings are listed.
const HINTS: [(ErrorKind, &[&str], &str); 8] = [
    (
        ErrorKind::Tls,
        &["UnknownIssuer"],
        "pass --ca-cert FILE (the CA that signed the target's certificate) or --insecure",
    ),
    (
        ErrorKind::Tls,
        &["not valid for name", "NotValidForName"],
        "the certificate is for another name: pass --tls-server-name NAME (a name it holds), or use that name in \
         --target with --resolve HOST:PORT:ADDR",
    ),
    (
        ErrorKind::Tls,
        &["certificate expired", "Expired"],
        "the target's certificate has expired (--insecure skips the check)",
    ),
    (
        ErrorKind::Tls,
        &["certificate not valid yet", "NotValidYet"],
        "the target's certificate is not valid yet: check this machine's clock",
    ),
    (
        ErrorKind::Tls,
        &["CertificateRequired"],
        "the target wants a client certificate: pass --client-cert FILE --client-key FILE",
    ),
    (
        ErrorKind::Tls,
        &["UnknownCA", "BadCertificate"],
        "the target refused the client certificate: pass one its CA signed (--client-cert, --client-key)",
    ),
    (
        ErrorKind::Tls,
        &["InvalidContentType"],
        "the target does not speak TLS on this port: is it http:// rather than https://?",
    ),
    (ErrorKind::Protocol, &["not an HTTP/1 response"], "the target may speak TLS on this port: try https://"),
];

/// The hint for a failure, if its message names a well-known cause.
fn hint_for(kind: ErrorKind, message: &str) -> Option<&'static str> {
    HINTS.iter().find(|(k, words, _)| *k == kind && words.iter().any(|w| message.contains(w))).map(|(_, _, hint)| *hint)
}

/// Distinct messages kept per error kind.
const SAMPLES_PER_KIND: usize = 3;
/// Characters kept of a message.
const SAMPLE_CHARS: usize = 200;

impl FailureSamples {
    pub fn record(&self, failure: &Failure) {
        let mut by_kind = self.by_kind.lock().expect("not poisoned");
        let samples = by_kind.entry(failure.kind).or_default();
        let message: &str = match failure.message.char_indices().nth(SAMPLE_CHARS) {
            Some((cut, _)) => &failure.message[..cut],
            None => &failure.message,
        };
        if let Some(sample) = samples.iter_mut().find(|s| s.message == message) {
            sample.count += 1;
        } else if samples.len() < SAMPLES_PER_KIND {
            let hint = hint_for(failure.kind, message).map(String::from);
            samples.push(FailureSample { message: message.to_string(), count: 1, hint });
        }
    }

    /// Kind → its first distinct messages, in the order first seen, with any URL in them passed
    /// through `redactor` (a credential in a query stays out of the summary). Messages that
    /// differed only by a masked value become one.
    pub fn snapshot(&self, redactor: &Redactor) -> BTreeMap<String, Vec<FailureSample>> {
        let by_kind = self.by_kind.lock().expect("not poisoned");
        by_kind
            .iter()
            .map(|(kind, samples)| {
                let mut shown: Vec<FailureSample> = Vec::with_capacity(samples.len());
                for sample in samples {
                    let message = redacted_urls(redactor, &sample.message);
                    match shown.iter_mut().find(|s| s.message == message) {
                        Some(same) => same.count += sample.count,
                        None => shown.push(FailureSample { message, ..sample.clone() }),
                    }
                }
                (kind.as_str().to_string(), shown)
            })
            .collect()
    }
}

/// `text` with the credential-like query values of each URL-looking word masked.
fn redacted_urls(redactor: &Redactor, text: &str) -> String {
    text.split(' ')
        .map(|word| if redactor.url_needs_masking(word) { redactor.url(word) } else { word.to_string() })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_local_resources_is_not_the_targets_fault() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::EADDRNOTAVAIL] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(ErrorKind::from_chain(&e, true), ErrorKind::Local, "errno {errno}");
        }
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(ErrorKind::from_chain(&refused, true), ErrorKind::Connect);
        let failure = Failure::from_error(&refused, true);
        assert_eq!(failure.message, "Connection refused", "no `(os error N)`");
    }

    #[test]
    fn any_rustls_error_is_a_tls_failure_even_inside_an_io_error() {
        let plain_http = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        // As reqwest's connector hands it over: an io::Error around tokio-rustls's io::Error.
        let wrapped = io::Error::other(io::Error::new(io::ErrorKind::InvalidData, plain_http.clone()));
        assert_eq!(ErrorKind::from_chain(&wrapped, true), ErrorKind::Tls, "not `connect`");
        assert_eq!(ErrorKind::from_chain(&plain_http, true), ErrorKind::Tls);
        let failure = Failure::from_error(&wrapped, true);
        assert!(hint_for(failure.kind, &failure.message).unwrap().contains("http://"), "{failure:?}");
    }

    #[test]
    fn failure_samples_keep_a_few_distinct_messages_per_kind_with_counts() {
        let samples = FailureSamples::default();
        for i in 0..10 {
            samples.record(&Failure::new(ErrorKind::Connect, format!("refused {}", i % 5)));
        }
        let snapshot = samples.snapshot(&Redactor::default());
        let connect = &snapshot["connect"];
        assert_eq!(connect.len(), SAMPLES_PER_KIND);
        assert_eq!(connect[0], FailureSample { message: "refused 0".into(), count: 2, hint: None });
    }

    #[test]
    fn well_known_causes_get_a_hint_and_credentials_in_urls_are_masked() {
        let samples = FailureSamples::default();
        let unknown = "client error (Connect): invalid peer certificate: UnknownIssuer";
        for _ in 0..3 {
            samples.record(&Failure::new(ErrorKind::Tls, unknown));
        }
        samples.record(&Failure::new(ErrorKind::Other, "redirect to http://h/x?token=s3cret&a=1 refused"));
        samples.record(&Failure::new(ErrorKind::Other, "redirect to http://h/x?token=other&a=1 refused"));
        let snapshot = samples.snapshot(&Redactor::default());
        let tls = &snapshot["tls"][0];
        assert_eq!((tls.message.as_str(), tls.count), (unknown, 3));
        assert!(tls.hint.as_deref().unwrap().starts_with("pass --ca-cert FILE"), "{tls:?}");
        let other = &snapshot["other"];
        assert_eq!(other.len(), 1, "the same message once masked: {other:?}");
        assert_eq!((other[0].message.as_str(), other[0].count), ("redirect to http://h/x?token=***&a=1 refused", 2));
        assert_eq!(hint_for(ErrorKind::Connect, unknown), None, "hints are per kind");
    }
}
