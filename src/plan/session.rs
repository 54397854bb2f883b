//! Client sessions (`--sessions KEY`): which logged requests belong to one client, and each one's
//! place in its session. The sender side (`send::session_gate`) then keeps a session's
//! requests in that order, one at a time.
//!
//! The key (an address and user agent, a header, a cookie, the remote user) is hashed as soon as
//! it is read and never kept: a session is known by a short id given in order of first appearance
//! (`s1`, `s2`, …), which is all the CSV, the summary and the report ever show. Memory is flat for
//! any log: at most [`MAX_OPEN_SESSIONS`] sessions are followed at once, and the one seen least
//! recently is closed to make room; if its client comes back it starts a new session (a new id).

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use sluice_parsers::{Entry, Format, Logged};

use crate::results::SessionTag;

/// Sessions followed at once. An open session costs about 80 bytes here (8 MB at the cap).
pub const MAX_OPEN_SESSIONS: usize = 100_000;

/// What tells one client's requests from another's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKey {
    /// The remote address, with the user agent where the format logs one.
    Client,
    /// A logged request header, by its lower-case name.
    Header(String),
    /// A cookie, from a logged `Cookie` header or a cookie variable (`$cookie_NAME`, `%{NAME}C`).
    Cookie(String),
    /// The logged remote user (`$remote_user`, `%u`).
    User,
}

const KEYS_ALLOWED: &str = "client (address + user agent), header:NAME, cookie:NAME, user (or $remote_user, %u)";

impl SessionKey {
    /// `client`, `header:X-Session-Id`, `cookie:sid`, `user` (also `$remote_user`, `%u`).
    pub fn parse(text: &str) -> Result<SessionKey, String> {
        let text = text.trim();
        let named = |kind: &str, name: &str| -> Result<String, String> {
            let name = name.trim();
            if name.is_empty() || name.len() > 256 || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'=') {
                return Err(format!("'{text}': {kind} needs a name, e.g. {kind}:{}", example(kind)));
            }
            Ok(name.to_string())
        };
        if let Some(name) = text.strip_prefix("header:") {
            return Ok(SessionKey::Header(named("header", name)?.to_ascii_lowercase()));
        }
        if let Some(name) = text.strip_prefix("cookie:") {
            return Ok(SessionKey::Cookie(named("cookie", name)?));
        }
        match text {
            "client" => Ok(SessionKey::Client),
            "user" | "$remote_user" | "%u" | "remote_user" => Ok(SessionKey::User),
            _ => Err(format!("'{text}' is not a session key; expected {KEYS_ALLOWED}")),
        }
    }

    /// The key as `--sessions` takes it, for messages and the summary.
    pub fn describe(&self) -> String {
        match self {
            SessionKey::Client => "client".into(),
            SessionKey::Header(name) => format!("header:{name}"),
            SessionKey::Cookie(name) => format!("cookie:{name}"),
            SessionKey::User => "user".into(),
        }
    }

    /// Refuses a key the format has no place for (`cookie:sid` on common log format): every
    /// request would be outside any session. JSON logs say what they hold line by line, so they
    /// pass; their lines without the key are sent outside any session.
    /// A HAR records request headers and cookies, but no client address or user: it is one
    /// browser's recording.
    pub fn check_recorded_by_har(&self) -> Result<(), String> {
        match self {
            SessionKey::Header(_) | SessionKey::Cookie(_) => Ok(()),
            _ => Err(format!(
                "{}: a HAR records no client address or user (it is one browser's recording); tell its sessions \
                 apart by header:NAME or cookie:NAME",
                self.describe()
            )),
        }
    }

    pub fn check_logged_by(&self, format: &Format) -> Result<(), String> {
        let logs = |what: Logged<'_>| format.logs(what) != Some(false);
        let (logged, wanted) = match self {
            SessionKey::Client => (logs(Logged::RemoteAddr), "the client address ($remote_addr, %h)".to_string()),
            SessionKey::User => (logs(Logged::RemoteUser), "the remote user ($remote_user, %u)".to_string()),
            SessionKey::Header(name) => (
                logs(header_slot(name)),
                format!("the request header {name} ($http_{}, %{{{name}}}i)", name.replace('-', "_")),
            ),
            SessionKey::Cookie(name) => (
                logs(Logged::Header("cookie"))
                    || logs(Logged::Field(&format!("cookie_{name}")))
                    || logs(Logged::Field(&format!("%{{{name}}}C"))),
                format!("the cookie {name} (a Cookie header, $cookie_{name}, %{{{name}}}C)"),
            ),
        };
        if logged {
            return Ok(());
        }
        let has: Vec<&str> =
            [(Logged::RemoteAddr, "client"), (Logged::RemoteUser, "user"), (Logged::Header("cookie"), "cookie:NAME")]
                .into_iter()
                .filter(|(what, _)| logs(*what))
                .map(|(_, key)| key)
                .collect();
        let usable = if has.is_empty() { "none of client, user, cookie:NAME".to_string() } else { has.join(", ") };
        Err(format!(
            "{}: the log format {} does not log {wanted}; keys it logs: {usable} (and header:NAME for \
             each header its format string names)",
            self.describe(),
            format.name()
        ))
    }

    /// The key's hash on this entry; `None` when the line does not have it (`-`, or not logged).
    fn hash_of(&self, entry: &Entry<'_>) -> Option<u64> {
        let mut h = DefaultHasher::new();
        match self {
            SessionKey::Client => {
                let addr = present(entry.remote_addr.as_deref())?;
                addr.hash(&mut h);
                // Clients behind one address (a NAT, an office) differ by their browsers.
                entry.user_agent.as_deref().unwrap_or_default().hash(&mut h);
            }
            SessionKey::User => present(entry.remote_user.as_deref())?.hash(&mut h),
            SessionKey::Header(name) => {
                let value = match header_slot(name) {
                    Logged::UserAgent => entry.user_agent.as_deref(),
                    Logged::Referer => entry.referer.as_deref(),
                    _ => entry.header(name),
                };
                present(value)?.hash(&mut h);
            }
            SessionKey::Cookie(name) => cookie(entry, name)?.hash(&mut h),
        }
        Some(h.finish())
    }
}

fn example(kind: &str) -> &'static str {
    if kind == "header" { "X-Session-Id" } else { "sid" }
}

/// User agent and referer have their own `Entry` fields; every other header is in `headers`.
fn header_slot(name: &str) -> Logged<'_> {
    match name {
        "user-agent" => Logged::UserAgent,
        "referer" => Logged::Referer,
        _ => Logged::Header(name),
    }
}

fn present(value: Option<&[u8]>) -> Option<&[u8]> {
    value.filter(|v| !v.is_empty() && *v != b"-")
}

/// A cookie's value: from a cookie variable of the format, or from the logged `Cookie` header
/// (`a=1; sid=xyz`).
fn cookie<'e>(entry: &'e Entry<'_>, name: &str) -> Option<&'e [u8]> {
    let variable = entry.fields.iter().find(|(n, _)| {
        n.strip_prefix("cookie_") == Some(name)
            || n.strip_prefix("%{").and_then(|rest| rest.strip_suffix("}C")) == Some(name)
    });
    if let Some((_, value)) = variable {
        return present(Some(value));
    }
    let header = entry.header("cookie")?;
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let at = pair.iter().position(|&b| b == b'=')?;
        (pair[..at].trim_ascii() == name.as_bytes()).then(|| present(Some(pair[at + 1..].trim_ascii())))?
    })
}

/// The sessions of one run: the open ones by the hash of their key, and which was seen least
/// recently (closed first when [`MAX_OPEN_SESSIONS`] are open).
#[derive(Debug)]
pub struct Sessions {
    key: SessionKey,
    capacity: usize,
    open: HashMap<u64, OpenSession>,
    /// Last seen (a counter of requests) → key hash: the first entry is the least recent.
    recency: BTreeMap<u64, u64>,
    clock: u64,
    /// Sessions started so far; the last id given.
    started: u64,
}

#[derive(Debug, Clone, Copy)]
struct OpenSession {
    id: u64,
    next_seq: u64,
    last_seen: u64,
}

impl Sessions {
    pub fn new(key: SessionKey) -> Sessions {
        Sessions::with_capacity(key, MAX_OPEN_SESSIONS)
    }

    pub fn with_capacity(key: SessionKey, capacity: usize) -> Sessions {
        assert!(capacity > 0, "at least one session is followed");
        Sessions { key, capacity, open: HashMap::new(), recency: BTreeMap::new(), clock: 0, started: 0 }
    }

    /// The session of a request that will be replayed, and its place in it; `None` when its line
    /// does not have the key.
    /// `copies`: how many requests the line becomes (`--mix`); each takes its own place in the
    /// session, the first at the tag returned.
    pub fn tag(&mut self, entry: &Entry<'_>, copies: u32) -> Option<SessionTag> {
        let hash = self.key.hash_of(entry)?;
        self.clock += 1;
        let now = self.clock;
        if let Some(open) = self.open.get_mut(&hash) {
            self.recency.remove(&open.last_seen);
            self.recency.insert(now, hash);
            open.last_seen = now;
            let tag = SessionTag { id: open.id, seq: open.next_seq };
            open.next_seq += u64::from(copies);
            return Some(tag);
        }
        if self.open.len() >= self.capacity
            && let Some((_, oldest)) = self.recency.pop_first()
        {
            self.open.remove(&oldest);
        }
        self.started += 1;
        self.open.insert(hash, OpenSession { id: self.started, next_seq: u64::from(copies), last_seen: now });
        self.recency.insert(now, hash);
        Some(SessionTag { id: self.started, seq: 0 })
    }

    /// A new pass over the log (`--duration` loops it): every client starts a new session, so a
    /// session never spans the end of the log and its start again. Ids go on counting.
    pub fn new_pass(&mut self) {
        self.open.clear();
        self.recency.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::borrow::Cow;

    fn entry<'a>(addr: &'a str, user: &'a str, cookie: Option<&'a str>) -> Entry<'a> {
        Entry {
            remote_addr: Some(Cow::Borrowed(addr.as_bytes())),
            remote_user: (user != "-").then_some(Cow::Borrowed(user.as_bytes())),
            time: None,
            method: Cow::Borrowed(b"GET"),
            target: Cow::Borrowed(b"/"),
            protocol: None,
            status: Some(200),
            bytes: None,
            referer: None,
            user_agent: Some(Cow::Borrowed(b"curl/8")),
            request_time_ms: None,
            vhost: None,
            headers: cookie.map(|c| (Cow::Borrowed("cookie"), Cow::Borrowed(c.as_bytes()))).into_iter().collect(),
            body: None,
            fields: vec![],
        }
    }

    #[test]
    fn keys_parse_and_bad_ones_say_what_is_allowed() {
        assert_eq!(SessionKey::parse("client"), Ok(SessionKey::Client));
        assert_eq!(SessionKey::parse("$remote_user"), Ok(SessionKey::User));
        assert_eq!(SessionKey::parse("header:X-Session-Id"), Ok(SessionKey::Header("x-session-id".into())));
        assert_eq!(SessionKey::parse("cookie:sid"), Ok(SessionKey::Cookie("sid".into())));
        let e = SessionKey::parse("ip").unwrap_err();
        assert!(e.contains("client") && e.contains("cookie:NAME"), "{e}");
        assert!(SessionKey::parse("cookie:").unwrap_err().contains("cookie:sid"));
    }

    #[test]
    fn ids_follow_first_appearance_and_seq_the_logged_order() {
        let mut s = Sessions::new(SessionKey::Client);
        let tags: Vec<_> =
            ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.1"].iter().map(|a| s.tag(&entry(a, "-", None), 1)).collect();
        let want = [(1, 0), (2, 0), (1, 1), (1, 2)].map(|(id, seq)| Some(SessionTag { id, seq }));
        assert_eq!(tags, want);
        assert_eq!(s.started, 2);
        s.new_pass();
        assert_eq!(
            s.tag(&entry("10.0.0.1", "-", None), 1),
            Some(SessionTag { id: 3, seq: 0 }),
            "a new pass, new sessions"
        );
    }

    #[test]
    fn cookies_are_read_from_the_cookie_header_and_lines_without_the_key_have_no_session() {
        let mut s = Sessions::new(SessionKey::Cookie("sid".into()));
        let a = s.tag(&entry("1.1.1.1", "-", Some("theme=dark; sid=abc")), 1).unwrap();
        let b = s.tag(&entry("2.2.2.2", "-", Some("sid=abc")), 1).unwrap();
        assert_eq!((a.id, b.id, b.seq), (1, 1, 1), "same cookie, same session, whatever the address");
        assert_eq!(s.tag(&entry("1.1.1.1", "-", Some("other=1")), 1), None);
        assert_eq!(s.tag(&entry("1.1.1.1", "-", None), 1), None);
    }

    #[test]
    fn the_least_recently_seen_session_is_closed_at_the_cap_and_comes_back_as_a_new_one() {
        let mut s = Sessions::with_capacity(SessionKey::User, 2);
        let id = |s: &mut Sessions, user| s.tag(&entry("1.1.1.1", user, None), 1).unwrap().id;
        assert_eq!((id(&mut s, "ann"), id(&mut s, "bob"), id(&mut s, "ann")), (1, 2, 1));
        assert_eq!(id(&mut s, "cat"), 3, "bob, least recently seen, is closed");
        assert_eq!(id(&mut s, "ann"), 1);
        assert_eq!(id(&mut s, "bob"), 4, "bob came back: a new session");
        assert!(s.open.len() <= 2 && s.recency.len() <= 2);
    }

    #[test]
    fn a_key_the_format_does_not_log_is_refused_naming_what_it_logs() {
        let common = Format::from_spec("common").unwrap();
        let e = SessionKey::Cookie("sid".into()).check_logged_by(&common).unwrap_err();
        assert!(e.starts_with("cookie:sid: the log format apache-common does not log the cookie sid"), "{e}");
        assert!(e.contains("keys it logs: client, user"), "{e}");
        assert!(SessionKey::Header("x-session-id".into()).check_logged_by(&common).is_err());
        assert!(SessionKey::User.check_logged_by(&common).is_ok());
        let nginx = Format::from_spec("nginx").unwrap();
        assert!(SessionKey::Header("user-agent".into()).check_logged_by(&nginx).is_ok());
        let cookies = Format::from_spec(r#"nginx:$remote_addr "$request" $status $cookie_sid"#).unwrap();
        assert!(SessionKey::Cookie("sid".into()).check_logged_by(&cookies).is_ok());
        assert!(SessionKey::Client.check_logged_by(&Format::from_spec("json").unwrap()).is_ok());
    }

    proptest! {
        /// Whatever the clients and their order: within a session, seq counts 0, 1, 2 … in log
        /// order; ids are given in order of first appearance; and no id holds the key.
        #[test]
        fn sessions_keep_logged_order_and_ids_never_hold_the_key(
            addrs in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 1..8),
            picks in proptest::collection::vec(any::<proptest::sample::Index>(), 1..200),
            capacity in 1usize..8,
        ) {
            let addrs: Vec<String> = addrs.iter().map(|(a, b, c)| format!("10.{a}.{b}.{c}")).collect();
            let mut s = Sessions::with_capacity(SessionKey::Client, capacity);
            let mut next_seq: HashMap<u64, u64> = HashMap::new();
            let mut last_id = 0;
            for pick in &picks {
                let tag = s.tag(&entry(pick.get(&addrs).as_str(), "-", None), 1).unwrap();
                let expected = next_seq.entry(tag.id).or_insert(0);
                prop_assert_eq!(tag.seq, *expected);
                *expected += 1;
                if tag.seq == 0 {
                    prop_assert_eq!(tag.id, last_id + 1);
                    last_id = tag.id;
                }
                let cell = tag.cell();
                prop_assert!(!addrs.iter().any(|a| cell.contains(a.as_str())), "{}", cell);
                prop_assert_eq!(SessionTag::parse_id(&cell), Some(tag.id));
            }
            prop_assert!(s.open.len() <= capacity);
        }
    }
}
