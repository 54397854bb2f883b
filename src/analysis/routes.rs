//! Folding request paths into route templates, so `/users/123/orders/9f8e0c2a` and
//! `/users/7/orders/b41d77e0` are counted together as `/users/{id}/orders/{id}`.
//!
//! A path segment (and each dot-separated part of one, so `123.json` keeps its extension)
//! becomes `{id}` when it looks like an identifier rather than a name: a number, a UUID, a long
//! hex string, a long token mixing letters and digits; `{date}` when it is a date. A date may be
//! one segment (`2026-11-28`, `2026-11`) or several, as blogs and archives write it: a year, a
//! month and optionally a day (`/2026/11/`, `/2026/11/28/`) fold into one `{date}`, so
//! `/blog/2026/11/post-6` is `/blog/{date}/post-{id}`. A year alone is a number like any other
//! (`{id}`): `/products/2026` is as likely an id. A word ending in a dashed number (`post-6`)
//! keeps the word (`post-{id}`). User rules (`REGEX=TEMPLATE`) are applied first; the automatic
//! folding then applies to what they left untouched.

use regex::Regex;

/// `--route-rule REGEX=TEMPLATE`: the part of the path the regex matches is replaced by the
/// template (`$1`, `${name}` refer to groups), e.g. `^/sku/[^/]+=/sku/{sku}`.
#[derive(Debug, Clone)]
pub struct RouteRule {
    regex: Regex,
    template: String,
}

impl RouteRule {
    pub fn parse(spec: &str) -> Result<RouteRule, String> {
        // The template comes after the last `=`: a regex may need one (`a=b`), a template hardly.
        let (pattern, template) = spec
            .rsplit_once('=')
            .ok_or_else(|| format!("'{spec}': expected REGEX=TEMPLATE, e.g. '^/sku/[^/]+=/sku/{{sku}}'"))?;
        if pattern.is_empty() {
            return Err(format!("'{spec}': the regex before '=' is empty"));
        }
        let regex = Regex::new(pattern).map_err(|e| format!("'{pattern}' is not a regex: {e}"))?;
        Ok(RouteRule { regex, template: template.to_string() })
    }
}

/// Turns URLs into route templates.
#[derive(Debug, Clone, Default)]
pub struct Router {
    rules: Vec<RouteRule>,
}

impl Router {
    pub fn new(rules: Vec<RouteRule>) -> Router {
        Router { rules }
    }

    /// The route of `url` (a full URL or a path, with or without query), written into `out`.
    /// A Kafka message's path is its topic and partition (`kafka://b:9092/orders/3#1207` is
    /// `/orders/3`): names, not values, so each partition is a route of its own; only user rules
    /// change it.
    pub fn route_into(&self, url: &str, out: &mut String) {
        out.clear();
        let path = path_of(url);
        let fold: fn(&str, &mut String) =
            if url.starts_with(crate::results::KAFKA_URL_PREFIX) { |path, out| out.push_str(path) } else { fold_path };
        match self.rules.iter().find(|r| r.regex.is_match(path)) {
            Some(rule) => {
                let replaced = rule.regex.replace(path, rule.template.as_str());
                fold(&replaced, out);
            }
            None => fold(path, out),
        }
    }

    pub fn route(&self, url: &str) -> String {
        let mut out = String::new();
        self.route_into(url, &mut out);
        out
    }
}

/// The path of a URL: without scheme and host, query and fragment; `/` when empty.
pub fn path_of(url: &str) -> &str {
    let rest = match url.find("://") {
        Some(i) if url[..i].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.') => {
            let after = &url[i + 3..];
            after.find('/').map_or("", |slash| &after[slash..])
        }
        _ => url,
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    match &rest[..end] {
        "" => "/",
        path => path,
    }
}

fn fold_path(path: &str, out: &mut String) {
    let mut segments = path.split('/').peekable();
    let mut first = true;
    while let Some(segment) = segments.next() {
        if !std::mem::take(&mut first) {
            out.push('/');
        }
        // `2026/11` or `2026/11/28`: one date written over several segments.
        if is_year(segment) && segments.next_if(|s| is_number_in(s, 1..=12)).is_some() {
            segments.next_if(|s| is_number_in(s, 1..=31));
            out.push_str("{date}");
            continue;
        }
        fold_segment(segment, out);
    }
}

fn is_year(s: &str) -> bool {
    s.len() == 4 && is_number_in(s, 1900..=2099)
}

/// One or two digits (four for a year) in the range, as path dates write months and days.
fn is_number_in(s: &str, range: std::ops::RangeInclusive<u32>) -> bool {
    (1..=4).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse().is_ok_and(|n: u32| range.contains(&n))
}

/// A segment a rule already templated (it has a `{`) is kept as it is.
fn fold_segment(segment: &str, out: &mut String) {
    if segment.contains('{') {
        out.push_str(segment);
    } else if let Some(kind) = identifier_kind(segment) {
        out.push_str(kind);
    } else if let Some(word) = dashed_number_prefix(segment) {
        out.push_str(word);
        out.push_str("-{id}");
    } else {
        for (i, part) in segment.split('.').enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(identifier_kind(part).unwrap_or(part));
        }
    }
}

/// `{id}` or `{date}` when a segment is a value rather than a name.
fn identifier_kind(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        None
    } else if is_date(s) {
        Some("{date}")
    } else if s.bytes().all(|b| b.is_ascii_digit()) || is_uuid(s) || is_long_hex(s) || is_token(s) {
        Some("{id}")
    } else {
        None
    }
}

/// `2026-11-28` or `2026-11`.
fn is_date(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(year), Some(month), day, None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    is_year(year)
        && month.len() == 2
        && is_number_in(month, 1..=12)
        && day.is_none_or(|d| d.len() == 2 && is_number_in(d, 1..=31))
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// Hashes, object ids, hex-encoded keys: 8 or more hex digits with at least one digit (so words
/// like `deadbeef` or `facade` stay words).
fn is_long_hex(s: &str) -> bool {
    s.len() >= 8 && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b.is_ascii_digit())
}

/// Random tokens (base64url ids, ULIDs, short-link codes): 16 or more characters of letters,
/// digits, `-` and `_`, with at least two digits and a letter — long slugs have few digits.
fn is_token(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    s.len() >= 16
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && digits >= 2
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && digits * 4 >= s.len()
}

/// `post-6` → `post`: a lower-case word with a number after its last dash.
fn dashed_number_prefix(s: &str) -> Option<&str> {
    let (word, number) = s.rsplit_once('-')?;
    let is_word = word.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    (is_word && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then_some(word)
}

/// `/api/*`-style patterns for `route:` filters: `*` matches anything, including `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteGlob {
    pattern: String,
}

impl RouteGlob {
    pub fn new(pattern: &str) -> RouteGlob {
        RouteGlob { pattern: pattern.to_string() }
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether a request belongs to this filter: its path or its route template matches.
    pub fn matches_request(&self, path: &str, route: &str) -> bool {
        glob_match(&self.pattern, path) || glob_match(&self.pattern, route)
    }
}

/// Glob matching with `*` only, iteratively with one backtrack point (linear for one `*`).
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fold_into_templates() {
        let router = Router::default();
        let cases = [
            ("/users/123/orders/9f8e0c2a7b", "/users/{id}/orders/{id}"),
            ("http://127.0.0.1:8080/users/123?x=1", "/users/{id}"),
            ("https://staging.example/a/b#frag", "/a/b"),
            ("/orders/550e8400-e29b-41d4-a716-446655440000/items", "/orders/{id}/items"),
            ("/objects/507f1f77bcf86cd799439011", "/objects/{id}"),
            ("/commits/3f9a2c1", "/commits/3f9a2c1"), // 7 hex digits: too short to be sure
            ("/s/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/s/{id}"),
            ("/s/aB3dE6gH9jK2mN5p", "/s/{id}"),
            ("/docs/getting-started-with-sluice", "/docs/getting-started-with-sluice"),
            ("/blog/2026/11/post-6", "/blog/{date}/post-{id}"),
            ("/blog/2026/11/28/post-6", "/blog/{date}/post-{id}"),
            ("/archive/2026/1", "/archive/{date}"),
            ("/2026/11/28", "/{date}"),
            ("/products/2026", "/products/{id}"),
            ("/v/2026/13/x", "/v/{id}/{id}/x"),  // 13 is no month
            ("/v/2026/11/32", "/v/{date}/{id}"), // 32 is no day
            ("/v/1234/11", "/v/{id}/{id}"),      // 1234 is no year of a log
            ("/reports/2026-11-21/daily", "/reports/{date}/daily"),
            ("/reports/2026-11", "/reports/{date}"),
            ("/reports/2026-13-01", "/reports/2026-13-01"),
            ("/files/12345.json", "/files/{id}.json"),
            ("/static/app.3f9a2c1b.js", "/static/app.{id}.js"),
            ("/v2/health", "/v2/health"),
            ("/cafe/deadbeef", "/cafe/deadbeef"),
            ("/", "/"),
            ("", "/"),
            ("http://host:1", "/"),
            ("/a//b/", "/a//b/"),
            ("/search?q=123", "/search"),
            ("/%E2%9C%93/42", "/%E2%9C%93/{id}"),
        ];
        for (url, want) in cases {
            assert_eq!(router.route(url), want, "{url}");
        }
    }

    #[test]
    fn user_rules_come_first_and_folding_applies_to_the_rest() {
        let router = Router::new(vec![
            RouteRule::parse("^/sku/[A-Z0-9-]+=/sku/{sku}").unwrap(),
            RouteRule::parse("^/u/([a-z]+)$=/u/{name}").unwrap(),
        ]);
        assert_eq!(router.route("/sku/AB-12/reviews/9"), "/sku/{sku}/reviews/{id}");
        assert_eq!(router.route("/u/alice"), "/u/{name}");
        assert_eq!(router.route("/u/alice/7"), "/u/alice/{id}");
        assert!(RouteRule::parse("no-equals").unwrap_err().contains("REGEX=TEMPLATE"));
        assert!(RouteRule::parse("(=x").unwrap_err().contains("not a regex"));
        assert!(RouteRule::parse("=x").is_err());
    }

    #[test]
    fn a_kafka_rows_route_is_its_topic_and_partition_without_the_offset() {
        let router = Router::default();
        assert_eq!(router.route("kafka://127.0.0.1:9092/orders-2026/3#1207"), "/orders-2026/3");
        assert_eq!(router.route("kafka://127.0.0.1:9092/orders/12"), "/orders/12", "not acknowledged: no offset");
        let by_rule = Router::new(vec![RouteRule::parse("^/orders/.*=/orders/{partition}").unwrap()]);
        assert_eq!(by_rule.route("kafka://b:9092/orders/3#5"), "/orders/{partition}");
    }

    #[test]
    fn route_globs_match_paths_or_templates() {
        let g = RouteGlob::new("/api/*");
        assert!(g.matches_request("/api/items/1", "/api/items/{id}"));
        assert!(!g.matches_request("/apix", "/apix"));
        let g = RouteGlob::new("/users/{id}");
        assert!(g.matches_request("/users/5", "/users/{id}"));
        assert!(!g.matches_request("/users/5/x", "/users/{id}/x"));
        assert!(RouteGlob::new("*/reviews").matches_request("/products/1/reviews", "/products/{id}/reviews"));
        assert!(RouteGlob::new("*").matches_request("/", "/"));
    }
}
