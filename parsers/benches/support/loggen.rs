//! A deterministic generator of realistic access-log lines, shared by the criterion bench and
//! the `throughput` example. It follows the perf study's log (mean ~229 bytes a line): Zipf-ish
//! client IPs with 8 % IPv6, weighted methods, paths with queries and %-escapes, HTTP/1.0–2.0,
//! statuses and log-normal-ish sizes, Google referers, user agents with spaces and parentheses,
//! ~2 % of them with quotes escaped the nginx way (`\x22`), 0.1 % garbage request lines.

#![allow(dead_code)]

/// xorshift64*: small, fast, deterministic; quality is plenty for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

const METHODS: &[&str] = &[
    "GET", "GET", "GET", "GET", "GET", "GET", "GET", "GET", "GET", "GET", "GET", "GET", "GET", "GET", "GET", "GET",
    "GET", "POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH",
];
const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/api/v1/users",
    "/api/v1/orders/",
    "/static/js/app.4f3c2a.js",
    "/static/css/main.css",
    "/images/logo.png",
    "/search",
    "/products/caf%C3%A9-au-lait",
    "/blog/2023/10/how-we-scaled",
    "/wp-login.php",
    "/.env",
    "/cart/checkout",
];
const QUERIES: &[&str] =
    &["", "", "", "?page=2", "?q=red+shoes&sort=price", "?id=12345&ref=nav", "?utm_source=newsletter&utm_medium=email"];
const PROTOCOLS: &[&str] = &["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/2.0", "HTTP/1.0"];
const STATUSES: &[u16] = &[200, 200, 200, 200, 200, 200, 304, 301, 302, 404, 404, 403, 500, 502, 504];
const REFERERS: &[&str] = &[
    "-",
    "https://www.google.com/search?q=caf%C3%A9+au+lait&ie=UTF-8",
    "https://www.google.com/search?q=sluice+log+replay&hl=en",
    "https://example.com/",
    "https://example.com/products/caf%C3%A9-au-lait",
    "-",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/118.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.4.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.5993.80 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36 Edg/118.0.2088.46",
];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// The parts every line format below writes.
pub struct Fields {
    pub addr: String,
    pub time_local: String,
    pub method: &'static str,
    pub target: String,
    pub protocol: &'static str,
    pub status: u16,
    pub bytes: u64,
    pub referer: &'static str,
    pub agent: String,
    pub request_time: String,
}

pub struct Gen {
    rng: Rng,
    second: u64,
}

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen { rng: Rng::new(seed), second: 0 }
    }

    pub fn fields(&mut self) -> Fields {
        let r = &mut self.rng;
        // Zipf-ish: most traffic from a few clients.
        let spread = r.below(20_000) + 1;
        let client = r.below(spread);
        let addr = if r.chance(80) {
            format!("2001:db8:{:x}:{:x}::{:x}", client >> 8, client & 0xff, r.below(0xffff))
        } else {
            format!("{}.{}.{}.{}", 10 + client % 200, (client >> 3) % 256, client % 251, 1 + client % 254)
        };
        // From 10/Oct/2000:13:55:36 -0700 on, ~12 lines a second (1M lines span ~23 h).
        self.second += u64::from(r.chance(83));
        let t = 13 * 3600 + 55 * 60 + 36 + self.second;
        let (day, t) = (10 + t / 86_400, t % 86_400);
        let time_local =
            format!("{day:02}/{}/2000:{:02}:{:02}:{:02} -0700", MONTHS[9], t / 3600, t % 3600 / 60, t % 60);
        let garbage = r.chance(1);
        let (method, target, protocol) = if garbage {
            ("", String::new(), "")
        } else {
            (*r.pick(METHODS), format!("{}{}", r.pick(PATHS), r.pick(QUERIES)), *r.pick(PROTOCOLS))
        };
        let status = if garbage { 400 } else { *r.pick(STATUSES) };
        // Roughly log-normal sizes.
        let bytes = if status == 304 { 0 } else { (1u64 << r.below(17)) + r.below(1000) };
        let mut agent = r.pick(AGENTS).to_string();
        if r.chance(20) {
            agent.push_str(r#" \x22quoted\x22 (Build/1.0)"#);
        }
        let request_time = format!("{}.{:03}", r.below(3), r.below(1000));
        let referer = *r.pick(REFERERS);
        Fields { addr, time_local, method, target, protocol, status, bytes, referer, agent, request_time }
    }

    fn request(f: &Fields, rng: &mut Rng) -> String {
        if f.method.is_empty() {
            if rng.chance(500) { "-".into() } else { r"\x16\x03\x01\x00\xA5\x01\x00\x00\xA1\x03\x03".into() }
        } else {
            format!("{} {} {}", f.method, f.target, f.protocol)
        }
    }

    /// nginx `combined`.
    pub fn combined(&mut self) -> String {
        let f = self.fields();
        let request = Self::request(&f, &mut self.rng);
        format!(
            r#"{} - - [{}] "{}" {} {} "{}" "{}""#,
            f.addr, f.time_local, request, f.status, f.bytes, f.referer, f.agent
        )
    }

    /// The custom format [`TIMING_FORMAT`].
    pub fn timing(&mut self) -> String {
        let f = self.fields();
        let request = Self::request(&f, &mut self.rng);
        let upstream = format!("0.{:03}", self.rng.below(1000));
        format!(
            r#"{} - - [{}] "{}" {} {} "{}" "{}" "-" rt={} uct="{}" uht="{}" urt="{}""#,
            f.addr,
            f.time_local,
            request,
            f.status,
            f.bytes,
            f.referer,
            f.agent,
            f.request_time,
            upstream,
            upstream,
            upstream
        )
    }

    /// nginx `escape=json` lines with the usual keys.
    pub fn json(&mut self) -> String {
        let f = self.fields();
        let request = Self::request(&f, &mut self.rng).replace('\\', "\\\\");
        let agent = f.agent.replace(r"\x22", "\\\"");
        format!(
            r#"{{"time_local":"{}","remote_addr":"{}","request":"{}","status":{},"body_bytes_sent":{},"request_time":{},"http_referer":"{}","http_user_agent":"{}","upstream_addr":"10.0.0.7:8080"}}"#,
            f.time_local,
            f.addr,
            request,
            f.status,
            f.bytes,
            f.request_time,
            if f.referer == "-" { "" } else { f.referer },
            agent
        )
    }
}

/// nginx `main` plus the widely copied timing fields.
pub const TIMING_FORMAT: &str = r#"nginx:$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" rt=$request_time uct="$upstream_connect_time" uht="$upstream_header_time" urt="$upstream_response_time""#;

/// `n` lines of one kind, joined with `\n`.
pub fn log(n: usize, mut line: impl FnMut() -> String) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 240);
    for _ in 0..n {
        out.extend_from_slice(line().as_bytes());
        out.push(b'\n');
    }
    out
}
