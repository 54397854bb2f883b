//! `--compare`: every planned request goes to the target (A, the candidate) and to a baseline (B)
//! at its due time, and one row records both answers.
//!
//! How the two are sent: **concurrently**, from one sender, each on its own connection (its own
//! [`Transport`], built with the same settings). Both leave at the same instant, so the row's lag
//! is the lag of both, and each side's latency is measured from that instant to the end of its own
//! answer: the two latencies mean the same thing and can be divided. (Sending one after the other
//! would put one side's latency into the other's lag, and alternating the order would only
//! spread that error over both.) With `--compare-noise URL` a second baseline (B2) gets the same
//! request at the same instant too.
//!
//! What is compared: the status (or error kind), and the response body by digest. A body is
//! folded into a 64-bit FNV-1a hash as it arrives ([`BodyCapture`]); only when a rule needs the
//! bytes (`--ignore-json-path`, `--ignore-regex`, `--compare-noise`) are they also kept, up to
//! `--compare-body-limit`, and normalised before hashing:
//!
//! 1. a body that parses as JSON (with `--ignore-json-path` or `--compare-noise`) is re-written
//!    canonically (keys sorted, no whitespace) with the ignored paths removed;
//! 2. every match of `--ignore-regex` is removed from that text (or from the raw bytes);
//! 3. the result is hashed.
//!
//! A body over the limit is compared by its raw hash, and its row says so (`too_large`).
//! Response headers are not compared.
//!
//! Noise (Diffy's trick): with a second baseline, a difference between A and B that also shows
//! between B and B2 is noise, not a regression: a status difference when B2's status differs
//! from B's too, a body difference when every JSON field (or the whole body, if it is not JSON)
//! that differs between A and B also differs between B and B2 — fields that differ whatever the
//! release (timestamps, request ids). The row's `noise` cell says which of its differences were
//! noise.
//!
//! Nothing here runs without `--compare`: the single-target sender keeps its own path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde_json::Value;

use super::Exchange;
use super::outcome::{ErrorKind, Outcome};
use super::transport::{Connection, Sent, Transport};
pub use crate::config::compare::{BodyRules, CompareConfig, DEFAULT_BODY_LIMIT, JsonPath, MAX_BODY_LIMIT};
use crate::plan::ReplayRequest;
use crate::plan::safety::TargetScope;

/// A kept-body buffer grown past this is given back after its request, so one large answer does
/// not hold memory per sender for the rest of the run.
const KEEP_BUFFER_BYTES: usize = 256 * 1024;

// ---- the digest ---------------------------------------------------------------------------------

/// 64-bit FNV-1a: stable across versions and machines (the CSV's digests can be compared between
/// runs), streaming, and fast enough next to the network.
#[derive(Debug, Clone, Copy)]
struct Fnv64(u64);

impl Fnv64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Fnv64 {
        Fnv64(Fnv64::OFFSET)
    }

    fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(Fnv64::PRIME);
        }
        self.0 = h;
    }

    fn of(bytes: &[u8]) -> u64 {
        let mut h = Fnv64::new();
        h.update(bytes);
        h.0
    }
}

/// One response body as it arrives: its raw hash always, its bytes up to a limit when a rule
/// needs them.
#[derive(Debug)]
pub struct BodyCapture {
    raw: Fnv64,
    kept: Vec<u8>,
    keep_limit: usize,
    over_limit: bool,
}

impl BodyCapture {
    /// Keeps up to `keep_limit` bytes (0: keeps none, only hashes).
    pub fn new(keep_limit: usize) -> BodyCapture {
        BodyCapture { raw: Fnv64::new(), kept: Vec::new(), keep_limit, over_limit: false }
    }

    /// Before each request.
    pub fn reset(&mut self) {
        self.raw = Fnv64::new();
        self.kept.clear();
        if self.kept.capacity() > KEEP_BUFFER_BYTES {
            self.kept = Vec::new();
        }
        self.over_limit = false;
    }

    /// Folds in the next piece of the body.
    pub fn update(&mut self, piece: &[u8]) {
        self.raw.update(piece);
        if self.keep_limit > 0 && !self.over_limit {
            if self.kept.len() + piece.len() > self.keep_limit {
                self.over_limit = true;
                self.kept = Vec::new();
            } else {
                self.kept.extend_from_slice(piece);
            }
        }
    }
}

/// How a row's bodies were compared (the `body_compared_as` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyForm {
    /// As received, byte for byte.
    Bytes,
    /// After the ignore rules (JSON canonicalised, ignored paths and regex matches removed).
    Normalised,
    /// At least one body was over `--compare-body-limit`: compared by its raw hash.
    TooLarge,
}

impl BodyForm {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyForm::Bytes => "bytes",
            BodyForm::Normalised => "normalised",
            BodyForm::TooLarge => "too_large",
        }
    }
}

/// A body reduced to what is compared.
#[derive(Debug, Clone, PartialEq)]
struct BodyView {
    digest: u64,
    form: BodyForm,
    /// With a noise baseline, a JSON body's leaves (path, hash of the value), sorted by path;
    /// any other body is one leaf, `$`.
    leaves: Vec<(String, u64)>,
}

impl BodyView {
    fn of(capture: &BodyCapture, rules: &BodyRules) -> BodyView {
        let raw = |form| BodyView {
            digest: capture.raw.0,
            form,
            leaves: if rules.leaves { vec![("$".to_string(), capture.raw.0)] } else { Vec::new() },
        };
        if !rules.needs_bytes() {
            return raw(BodyForm::Bytes);
        }
        if capture.over_limit {
            return raw(BodyForm::TooLarge);
        }
        let json = rules.parses_json().then(|| serde_json::from_slice::<Value>(&capture.kept).ok()).flatten();
        match json {
            Some(mut value) => {
                for path in &rules.ignore_json_paths {
                    path.remove_from(&mut value);
                }
                let text = without_matches(serde_json::to_vec(&value).unwrap_or_default(), &rules.ignore_regexes);
                let mut leaves = Vec::new();
                if rules.leaves {
                    collect_leaves(&value, &mut String::from("$"), rules, &mut leaves);
                    leaves.sort();
                }
                BodyView { digest: Fnv64::of(&text), form: BodyForm::Normalised, leaves }
            }
            None => {
                let text = without_matches(capture.kept.clone(), &rules.ignore_regexes);
                let digest = Fnv64::of(&text);
                let form = if rules.ignore_regexes.is_empty() { BodyForm::Bytes } else { BodyForm::Normalised };
                BodyView { digest, form, leaves: if rules.leaves { vec![("$".into(), digest)] } else { Vec::new() } }
            }
        }
    }
}

fn without_matches(text: Vec<u8>, regexes: &[regex::bytes::Regex]) -> Vec<u8> {
    regexes.iter().fold(text, |text, re| re.replace_all(&text, &b""[..]).into_owned())
}

fn collect_leaves(value: &Value, path: &mut String, rules: &BodyRules, out: &mut Vec<(String, u64)>) {
    let len = path.len();
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                path.push('.');
                path.push_str(key);
                collect_leaves(v, path, rules, out);
                path.truncate(len);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                path.push_str(&format!("[{i}]"));
                collect_leaves(v, path, rules, out);
                path.truncate(len);
            }
        }
        leaf => {
            let text = without_matches(serde_json::to_vec(leaf).unwrap_or_default(), &rules.ignore_regexes);
            out.push((path.clone(), Fnv64::of(&text)));
        }
    }
}

/// The leaf paths whose values differ between two bodies (or that only one has).
fn differing_leaves<'a>(x: &'a [(String, u64)], y: &'a [(String, u64)]) -> Vec<&'a str> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < x.len() || j < y.len() {
        match (x.get(i), y.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                if a.1 != b.1 {
                    out.push(a.0.as_str());
                }
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                out.push(a.0.as_str());
                i += 1;
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                out.push(b.0.as_str());
                j += 1;
            }
            (Some(a), None) => {
                out.push(a.0.as_str());
                i += 1;
            }
            (None, None) => break,
        }
    }
    out
}

// ---- one row's comparison -----------------------------------------------------------------------

/// One side's answer, as its row records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    pub result: Result<u16, ErrorKind>,
    pub latency: Duration,
    pub bytes: u64,
}

/// What the baseline answered to one request and how it compares with the target's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub b: Side,
    /// Digests of what was compared; `None` for a side without an answer.
    pub a_digest: Option<u64>,
    pub b_digest: Option<u64>,
    pub body_form: BodyForm,
    /// The same status, or the same error kind.
    pub same_status: bool,
    /// `None` unless both sides answered.
    pub same_body: Option<bool>,
    /// With a noise baseline and a difference: which differences also showed between the two
    /// baselines.
    pub noise: Option<Noise>,
}

/// Which of a row's differences are noise: they also showed between the two baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noise {
    pub status: bool,
    pub body: bool,
}

impl Noise {
    /// The `noise` cell: `status`, `body`, `status+body`, or `none` (a difference, and none of it
    /// noise).
    pub fn as_str(self) -> &'static str {
        match (self.status, self.body) {
            (true, true) => "status+body",
            (true, false) => "status",
            (false, true) => "body",
            (false, false) => "none",
        }
    }
}

impl Comparison {
    fn new(a: &Sent, a_body: &BodyView, b: Side, b_body: &BodyView, b2: Option<(&Sent, &BodyView)>) -> Comparison {
        let a_result = a.0.as_ref().map(|s| *s).map_err(|f| f.kind);
        let same_status = a_result == b.result;
        let both_answered = a_result.is_ok() && b.result.is_ok();
        let same_body = both_answered.then_some(a_body.digest == b_body.digest);
        let differs = !same_status || same_body == Some(false);
        let noise = match b2 {
            Some((b2, b2_body)) if differs => {
                let b2_result = b2.0.as_ref().map(|s| *s).map_err(|f| f.kind);
                let status = !same_status && b2_result != b.result;
                let body = same_body == Some(false) && b2_result.is_ok() && {
                    let baselines_differ = differing_leaves(&b_body.leaves, &b2_body.leaves);
                    differing_leaves(&a_body.leaves, &b_body.leaves).iter().all(|p| baselines_differ.contains(p))
                };
                Some(Noise { status, body })
            }
            _ => None,
        };
        let form = [a_body.form, b_body.form]
            .into_iter()
            .max_by_key(|f| match f {
                BodyForm::Bytes => 0,
                BodyForm::Normalised => 1,
                BodyForm::TooLarge => 2,
            })
            .unwrap_or(BodyForm::Bytes);
        Comparison {
            a_digest: a_result.is_ok().then_some(a_body.digest),
            b_digest: b.result.is_ok().then_some(b_body.digest),
            b,
            body_form: form,
            same_status,
            same_body,
            noise,
        }
    }
}

// ---- the paired sender --------------------------------------------------------------------------

/// Where each side's requests go: its transport, and the prefix its planned paths are moved under.
pub(crate) struct CompareTargets {
    target_prefix: String,
    baseline: (Arc<Transport>, Url),
    noise: Option<(Arc<Transport>, Url)>,
    rules: BodyRules,
}

impl CompareTargets {
    /// Builds the baseline's (and the noise baseline's) transport with the run's settings.
    pub fn build(
        config: &crate::config::ReplayConfig,
        target: &Url,
        compare: &CompareConfig,
    ) -> Result<CompareTargets, String> {
        let side = |url: &Url, flag: &str| -> Result<(Arc<Transport>, Url), String> {
            let transport = Transport::build(config, url).map_err(|e| format!("{flag}: {e}"))?;
            Ok((Arc::new(transport), url.clone()))
        };
        Ok(CompareTargets {
            target_prefix: TargetScope::of(target).prefix().to_string(),
            baseline: side(&compare.baseline, "--compare")?,
            noise: compare.noise.as_ref().map(|u| side(u, "--compare-noise")).transpose()?,
            rules: compare.rules.clone(),
        })
    }
}

/// `url` (planned for the target) moved to `to`: its scheme, host and port, and its prefix in place
/// of the target's.
fn rebase(url: &Url, target_prefix: &str, to: &Url) -> Url {
    let to_prefix = TargetScope::of(to).prefix().to_string();
    let path = url.path().strip_prefix(target_prefix).unwrap_or(url.path());
    let text = format!("{}{to_prefix}{path}{}", &to[..url::Position::BeforePath], &url[url::Position::AfterPath..]);
    Url::parse(&text).unwrap_or_else(|_| url.clone())
}

/// A sender's exchange with `--compare`: each request to the target and the baseline(s) at once,
/// each on its own connection.
pub(crate) struct Paired {
    target: Arc<Transport>,
    targets: Arc<CompareTargets>,
    a: Connection,
    b: Connection,
    b2: Option<Connection>,
    /// The comparison of the last request, for its outcome; and when A's answer ended.
    last: Option<(Box<Comparison>, Instant)>,
}

impl Paired {
    pub fn new(target: Arc<Transport>, targets: Arc<CompareTargets>) -> Paired {
        let limit = if targets.rules.needs_bytes() { targets.rules.body_limit } else { 0 };
        let capture = || Connection::capturing(BodyCapture::new(limit));
        Paired {
            target,
            a: capture(),
            b: capture(),
            b2: targets.noise.as_ref().map(|_| capture()),
            targets,
            last: None,
        }
    }
}

/// One side's answer and when it ended.
async fn timed(transport: &Transport, conn: &mut Connection, req: &ReplayRequest) -> (Sent, Instant) {
    let sent = transport.send(conn, req).await;
    (sent, Instant::now())
}

fn view(conn: &mut Connection, rules: &BodyRules) -> BodyView {
    conn.capture_mut().map_or(BodyView { digest: Fnv64::new().0, form: BodyForm::Bytes, leaves: Vec::new() }, |c| {
        BodyView::of(c, rules)
    })
}

fn reset(conn: &mut Connection) {
    if let Some(capture) = conn.capture_mut() {
        capture.reset();
    }
}

impl Exchange for Paired {
    async fn send(&mut self, req: &ReplayRequest) -> Sent {
        self.last = None;
        let Paired { target, targets, a, b, b2, last } = self;
        for conn in [&mut *a, &mut *b].into_iter().chain(b2.as_mut()) {
            reset(conn);
        }
        let targets = &**targets;
        let b_req = ReplayRequest { url: rebase(&req.url, &targets.target_prefix, &targets.baseline.1), ..req.clone() };
        let b2_req = targets
            .noise
            .as_ref()
            .map(|(_, url)| ReplayRequest { url: rebase(&req.url, &targets.target_prefix, url), ..req.clone() });
        let start = Instant::now();
        let a_side = timed(target, a, req);
        let b_side = timed(&targets.baseline.0, b, &b_req);
        let b2_side = async {
            match (&targets.noise, b2.as_mut(), &b2_req) {
                (Some((transport, _)), Some(conn), Some(req)) => Some(transport.send(conn, req).await),
                _ => None,
            }
        };
        let ((a_sent, a_done), (b_sent, b_done), b2_sent) = tokio::join!(a_side, b_side, b2_side);
        let rules = &targets.rules;
        let b_side = Side {
            result: b_sent.0.as_ref().map(|s| *s).map_err(|f| f.kind),
            latency: b_done.saturating_duration_since(start),
            bytes: b_sent.1,
        };
        let b2_view = b2.as_mut().map(|c| view(c, rules));
        let comparison =
            Comparison::new(&a_sent, &view(a, rules), b_side, &view(b, rules), b2_sent.as_ref().zip(b2_view.as_ref()));
        *last = Some((Box::new(comparison), a_done));
        a_sent
    }

    fn body_received(&self) -> u64 {
        self.a.body_received()
    }

    fn complete(&mut self, outcome: &mut Outcome) {
        if let Some((comparison, a_done)) = self.last.take() {
            // A's latency ends with A's own answer, not with the slower of the two.
            outcome.done = a_done;
            outcome.compare = Some(comparison);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture_of(body: &[u8], rules: &BodyRules) -> BodyView {
        let limit = if rules.needs_bytes() { rules.body_limit } else { 0 };
        let mut c = BodyCapture::new(limit);
        // In pieces, as it arrives.
        for piece in body.chunks(3) {
            c.update(piece);
        }
        BodyView::of(&c, rules)
    }

    fn rules(paths: &[&str], regexes: &[&str]) -> BodyRules {
        BodyRules {
            ignore_json_paths: paths.iter().map(|p| JsonPath::parse(p).unwrap()).collect(),
            ignore_regexes: regexes.iter().map(|r| regex::bytes::Regex::new(r).unwrap()).collect(),
            body_limit: DEFAULT_BODY_LIMIT,
            leaves: false,
        }
    }

    #[test]
    fn the_raw_digest_is_fnv1a_of_the_whole_body_however_it_arrives() {
        // Known FNV-1a 64 values.
        assert_eq!(Fnv64::of(b""), 0xcbf29ce484222325);
        assert_eq!(Fnv64::of(b"a"), 0xaf63dc4c8601ec8c);
        let view = capture_of(b"hello world", &BodyRules::default());
        assert_eq!((view.digest, view.form), (Fnv64::of(b"hello world"), BodyForm::Bytes));
    }

    #[test]
    fn ignored_json_paths_and_key_order_and_whitespace_do_not_make_a_difference() {
        let r = rules(&["$.now", "$.items[*].id"], &[]);
        let a = capture_of(br#"{"v":1,"now":"10:00","items":[{"id":7,"x":1}]}"#, &r);
        let b = capture_of(br#"{ "items": [ {"x":1, "id":9} ], "now":"11:00", "v":1 }"#, &r);
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.form, BodyForm::Normalised);
        let c = capture_of(br#"{"v":2,"now":"10:00","items":[{"id":7,"x":1}]}"#, &r);
        assert_ne!(a.digest, c.digest, "a real difference stays");
    }

    #[test]
    fn regex_matches_are_removed_and_a_body_over_the_limit_is_compared_raw() {
        let r = rules(&[], &["req-[0-9a-f]+"]);
        assert_eq!(capture_of(b"ok req-1f2e", &r).digest, capture_of(b"ok req-99", &r).digest);
        let small = BodyRules { body_limit: 4, ..r };
        let view = capture_of(b"ok req-1f2e", &small);
        assert_eq!((view.digest, view.form), (Fnv64::of(b"ok req-1f2e"), BodyForm::TooLarge));
    }

    #[test]
    fn a_difference_both_baselines_show_is_noise_and_another_is_not() {
        let r = BodyRules { leaves: true, ..rules(&[], &[]) };
        let ok = |status| (Ok(status), 0);
        let body = |text: &str| capture_of(text.as_bytes(), &r);
        let side = |status| Side { result: Ok(status), latency: Duration::ZERO, bytes: 0 };
        let a = body(r#"{"v":1,"now":1}"#);
        let b = body(r#"{"v":1,"now":2}"#);
        let b2 = body(r#"{"v":1,"now":3}"#);
        let c = Comparison::new(&ok(200), &a, side(200), &b, Some((&ok(200), &b2)));
        assert_eq!((c.same_body, c.noise.map(Noise::as_str)), (Some(false), Some("body")));
        let changed = body(r#"{"v":2,"now":1}"#);
        let c = Comparison::new(&ok(200), &changed, side(200), &b, Some((&ok(200), &b2)));
        assert_eq!(c.noise.map(Noise::as_str), Some("none"), "v differs only between A and B");
        let c = Comparison::new(&ok(500), &a, side(200), &b, Some((&ok(200), &b2)));
        assert_eq!((c.same_status, c.noise.map(Noise::as_str)), (false, Some("body")), "the status is no noise");
        let c = Comparison::new(&ok(500), &a, side(200), &b, Some((&ok(503), &b2)));
        assert_eq!(c.noise.map(Noise::as_str), Some("status+body"));
        let c = Comparison::new(&ok(200), &b, side(200), &b, Some((&ok(200), &b2)));
        assert_eq!((c.same_body, c.noise), (Some(true), None), "no difference, nothing to call noise");
    }

    #[test]
    fn the_decoder_hands_over_exactly_the_body_without_its_chunked_framing_wherever_it_is_cut() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        for cut in 0..wire.len() {
            let mut decoder = crate::send::http1::ResponseDecoder::new(false);
            let mut body = Vec::new();
            let mut buf = wire[..cut].to_vec();
            let (used, _) = decoder.decode_observed(&buf, &mut |piece| body.extend_from_slice(piece)).unwrap();
            buf.drain(..used);
            buf.extend_from_slice(&wire[cut..]);
            let (_, done) = decoder.decode_observed(&buf, &mut |piece| body.extend_from_slice(piece)).unwrap();
            assert!(done.is_some(), "cut at {cut}");
            assert_eq!(body, b"hello world", "cut at {cut}");
        }
    }

    #[test]
    fn a_planned_url_moves_to_the_baseline_with_its_prefix() {
        let url = Url::parse("http://a:1/app/x/y?q=1").unwrap();
        let to = Url::parse("http://b:2/old").unwrap();
        assert_eq!(rebase(&url, "/app", &to).as_str(), "http://b:2/old/x/y?q=1");
        assert_eq!(rebase(&url, "/app", &Url::parse("http://b:2").unwrap()).as_str(), "http://b:2/x/y?q=1");
    }
}
