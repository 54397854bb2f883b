//! Every option of `sluice replay`, as one struct read three ways: from the command line (clap),
//! from a `--config` TOML file and from a daemon run's JSON (serde). Nothing here is validated
//! beyond its syntax: [`crate::config::ReplayConfig`] checks it, once.
//!
//! The field docs here are `sluice replay --help`: written for a terminal, not for rustdoc.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{CONFIG_FILE_BYTES, ConfigError, bad, one_line, read_small_file};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    /// A progress line when stderr is a terminal.
    Auto,
    Always,
    Never,
}

/// Every option of `sluice replay`. The same struct is read from the command line (clap), from
/// a `--config` TOML file (serde, keys named like the long flags, `-` or `_`; flags win) and from
/// a daemon run's JSON ([`crate::daemon::request`] takes out the keys that are the daemon's own).
/// Defaults are applied later, in [`crate::config`], so "not given" stays visible for merging.
///
/// Serialized, it is the daemon's record of a run's options: only what was given, repeatable
/// flags under plural names (`deny_hosts`), `allow_methods` as a list, counts as numbers. A new
/// field needs a `skip_serializing_if` so that, not given, it stays out of that record.
#[derive(Debug, Default, Clone, Args, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayOptions {
    /// Log files, read in order; .gz is decompressed; `-` reads standard input.
    #[arg(value_name = "FILES")]
    #[serde(alias = "logs", skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,

    /// Read options from a TOML file (keys named like the long flags); flags given here win.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Where to send: http(s)://host:port[/prefix] (the logged path and query are appended),
    /// `mock` to start the built-in mock server on 127.0.0.1, or kafka://HOST:PORT/TOPIC to
    /// produce each request as a Kafka message (see --kafka-value). Required.
    #[arg(short, long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,

    /// Requests per second, or `max` for as fast as the in-flight limit allows. Required, unless
    /// --stages or --speed shapes the traffic instead.
    #[arg(short, long, value_name = "N|max", allow_negative_numbers = true)]
    #[serde(
        deserialize_with = "string_or_number",
        serialize_with = "number_or_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub rate: Option<String>,

    /// Stop scheduling after this long (e.g. 90s, 10m, 1h30m); the log loops if it runs out.
    /// Without it the log is replayed once.
    #[arg(short, long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,

    /// Replay the log a single time, even with --duration.
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub once: bool,

    #[arg(short, long, value_name = "FMT", help = FORMAT_HELP_AUTO)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,

    /// Most requests in flight at once; when all are busy, sending waits and the lag is recorded [default: 64].
    #[arg(short, long, value_name = "C")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,

    /// Release B requests at once, B/N seconds apart [default: 1].
    #[arg(short, long, value_name = "B")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,

    /// The pacer wakes at most once per this, releasing every request due by then: longer saves
    /// CPU at fixed rates, each request leaving up to this much late, never early; 50us to 100ms
    /// [default: 500us].
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_every: Option<String>,

    /// Per-request timeout (connect + response + body) [default: 10s].
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,

    /// After scheduling stops, how long in-flight requests may still finish before they are
    /// recorded as aborted [default: 10s].
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,

    /// The results CSV (one row per request) [default: sluice-<date>-<time>.csv].
    /// FILE.xlsx: the CSV goes to FILE.csv, and the workbook of --xlsx to FILE.xlsx.
    #[arg(short, long, value_name = "FILE.csv")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<PathBuf>,

    /// Once the run is over, also write its rows as an Excel workbook (typed cells, header frozen
    /// with filters; Summary, Routes and Over time sheets), built from the CSV.
    #[arg(long, value_name = "FILE.xlsx")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xlsx: Option<PathBuf>,

    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary_json: Option<PathBuf>,

    /// Live progress on stderr [default: auto: when stderr is a terminal].
    #[arg(long, value_enum, value_name = "WHEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressMode>,

    /// Serve Prometheus metrics at http://ADDR/metrics while the run lasts (e.g. 127.0.0.1:9898).
    #[arg(long, value_name = "ADDR")]
    #[serde(skip)] // a listening socket is a command-line decision, not a shared config file's
    pub metrics_listen: Option<SocketAddr>,

    /// Parsed requests buffered ahead of the pacer (memory stays flat whatever the log size) [default: 8192].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<usize>,

    /// Most unreadable log lines before the run stops: a count (100) or a share (5%).
    #[arg(long, value_name = "N|P%")]
    #[serde(
        deserialize_with = "string_or_number",
        serialize_with = "number_or_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_bad_lines: Option<String>,

    /// Threads that send requests; one is the most efficient next to a local target [default: 1].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,

    /// HTTP version: 1.1; 2 (HTTP/2 agreed by ALPN, https targets); h2c (HTTP/2 without TLS,
    /// http targets) [default: 1.1].
    #[arg(long, value_name = "1.1|2|h2c")]
    #[serde(deserialize_with = "string_or_number", skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,

    // ---- safety --------------------------------------------------------------------------
    /// Methods to replay, comma separated, or `all`; others are skipped and counted [default: GET,HEAD,OPTIONS].
    #[arg(long, value_name = "METHODS", help_heading = "Safety")]
    #[serde(deserialize_with = "text_or_list", serialize_with = "as_list", skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<String>,

    /// Follow redirects, and only to the target's own host (never to another).
    #[arg(long, help_heading = "Safety")]
    #[serde(skip_serializing_if = "is_false")]
    pub follow_redirects: bool,

    /// Use the proxy from HTTP_PROXY / HTTPS_PROXY / NO_PROXY (ignored by default).
    #[arg(long, help_heading = "Safety")]
    #[serde(skip_serializing_if = "is_false")]
    pub use_env_proxy: bool,

    /// Refuse targets whose name or resolved address matches: a host (`db.prod.example`), a
    /// wildcard (`*.prod.example`), an address or a CIDR block (`10.0.0.0/8`). Repeatable.
    #[arg(long = "deny-host", value_name = "PATTERN", help_heading = "Safety")]
    #[serde(alias = "deny_hosts", rename(serialize = "deny_hosts"), skip_serializing_if = "Vec::is_empty")]
    pub deny_host: Vec<String>,

    /// Only allow targets matching one of these patterns (same forms as --deny-host). Repeatable.
    #[arg(long = "allow-host", value_name = "PATTERN", help_heading = "Safety")]
    #[serde(alias = "allow_hosts", rename(serialize = "allow_hosts"), skip_serializing_if = "Vec::is_empty")]
    pub allow_host: Vec<String>,

    /// Replay even though the log says it was served by the target's own host.
    #[arg(long = "i-know-this-is-production", help_heading = "Safety")]
    #[serde(skip_serializing_if = "is_false")]
    pub i_know_this_is_production: bool,

    /// Header values never shown in any output (besides Authorization, Proxy-Authorization,
    /// Cookie and Set-Cookie, which never are). Repeatable.
    #[arg(long = "redact-header", value_name = "NAME", help_heading = "Safety")]
    #[serde(alias = "redact_headers", rename(serialize = "redact_headers"), skip_serializing_if = "Vec::is_empty")]
    pub redact_header: Vec<String>,

    /// Query parameters whose value is masked in the CSV's url column (the request still carries
    /// them): a regex on the parameter name [default: token|key|secret|password|sig].
    #[arg(long, value_name = "REGEX", help_heading = "Safety")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_query_params: Option<String>,

    /// Parse, filter and rewrite, show what would be sent, and send nothing.
    #[arg(long, help_heading = "Safety")]
    #[serde(skip_serializing_if = "is_false")]
    pub dry_run: bool,

    // ---- rewriting -----------------------------------------------------------------------
    /// Send this Host header.
    #[arg(long, value_name = "NAME", help_heading = "Rewriting")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_header: Option<String>,

    /// Send the Host the log recorded ($host, %v …) when the format has one.
    #[arg(long, help_heading = "Rewriting")]
    #[serde(skip_serializing_if = "is_false")]
    pub preserve_host: bool,

    /// Add a header to every request: 'Name: value', or 'Name: @file' to read the value from a
    /// file (keeps secrets out of `ps`). Repeatable; replaces a logged header of the same name.
    #[arg(short = 'H', long = "header", value_name = "HEADER", help_heading = "Rewriting")]
    #[serde(alias = "headers", skip_serializing_if = "Vec::is_empty")]
    pub header: Vec<String>,

    /// Do not send this logged header. Repeatable.
    #[arg(long = "drop-header", value_name = "NAME", help_heading = "Rewriting")]
    #[serde(alias = "drop_headers", rename(serialize = "drop_headers"), skip_serializing_if = "Vec::is_empty")]
    pub drop_header: Vec<String>,

    /// Send each request's seq (its row in the CSV) in this header, e.g. X-Sluice-Seq, so the
    /// target's own log can be joined with the results (replaces a logged header of that name).
    #[arg(long, value_name = "NAME", help_heading = "Rewriting")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_header: Option<String>,

    /// Skip requests whose method carries a body (POST, PUT, PATCH) when the log has no body for
    /// them, instead of sending an empty body.
    #[arg(long, help_heading = "Rewriting")]
    #[serde(skip_serializing_if = "is_false")]
    pub skip_bodyless: bool,

    // ---- filters -------------------------------------------------------------------------
    /// Only replay requests whose path and query match this regex. Repeatable (any may match).
    #[arg(long, value_name = "REGEX", help_heading = "Filters")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,

    /// Skip requests whose path and query match this regex. Repeatable.
    #[arg(long, value_name = "REGEX", help_heading = "Filters")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,

    /// Only replay requests whose logged status is in this list: codes and classes, e.g. 2xx,304.
    #[arg(long, value_name = "LIST", help_heading = "Filters")]
    #[serde(
        deserialize_with = "string_or_number",
        serialize_with = "number_or_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub orig_status: Option<String>,

    /// Only replay requests logged at or after this time (RFC 3339, or 'YYYY-MM-DD HH:MM[:SS]' in UTC).
    #[arg(long, value_name = "TIME", help_heading = "Filters")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,

    /// Only replay requests logged before this time (same forms as --from).
    #[arg(long, value_name = "TIME", help_heading = "Filters")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,

    /// Skip requests whose user agent matches this regex (e.g. 'bot|crawler|spider'). Repeatable.
    #[arg(long, value_name = "REGEX", help_heading = "Filters")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude_user_agent: Vec<String>,

    /// Replay only this share of the log's lines, chosen by line, the same lines every run (e.g. 10%).
    #[arg(long, value_name = "P%", help_heading = "Filters")]
    #[serde(
        deserialize_with = "string_or_number",
        serialize_with = "number_or_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub sample: Option<String>,

    /// Seed for --sample: another seed picks other lines [default: 0].
    #[arg(long, value_name = "N", help_heading = "Filters")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_seed: Option<u64>,

    // ---- report --------------------------------------------------------------------------
    /// After the run, also print the per-route table and the logged-vs-replayed status matrix.
    #[arg(long, help_heading = "Report")]
    #[serde(skip_serializing_if = "is_false")]
    pub report: bool,

    /// Check a metric after the run, e.g. 'p99 < 250ms', 'error_rate < 1%', 'rate >= 95% of target',
    /// 'route:/api/* p99 < 100ms' (see `sluice report --help`). Repeatable; a failure exits 1.
    #[arg(long = "assert", value_name = "ASSERTION", help_heading = "Report")]
    #[serde(alias = "assertions", skip_serializing_if = "Vec::is_empty")]
    pub assert: Vec<String>,

    /// Stop the run early when a condition holds: any assertion expression, judged once a second
    /// on every request so far, or with `for D` on the requests that finished in the last D
    /// (once the run has gone for D), e.g. 'error_rate > 50% for 10s', 'p99 > 2s for 1m'.
    /// Scheduling stops, requests in flight drain, the summary names the condition; exit 1.
    /// Repeatable.
    #[arg(long = "abort-on", value_name = "CONDITION", help_heading = "Report")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub abort_on: Vec<String>,

    /// The Prometheus that has the target's own metrics, for `--assert 'prom:QUERY OP VALUE'`
    /// (judged after the drain, over the run's window: $__range, $__start and $__end are filled
    /// in) and `--abort-on 'prom:QUERY OP VALUE'` (judged every --prometheus-every), e.g.
    /// --assert 'prom:sum(increase(app_errors_total[$__range])) == 0'. A query Prometheus
    /// refuses exits 2 before anything is sent; an empty result or an unreachable Prometheus
    /// fails the assertion.
    #[arg(long, value_name = "URL", help_heading = "Report")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,

    /// Push the run's figures (requests by method, status class and error kind, latency and lag
    /// histograms, achieved and target rate) every 5 s and at the end, labelled with the run id
    /// and shard: prometheus-remote-write=URL (e.g. http://127.0.0.1:9090/api/v1/write) or
    /// influx=URL[?db=NAME] (InfluxDB 1.x; database `sluice` by default). A target that is down
    /// never slows the run: its points are dropped and counted in the summary. Repeatable.
    #[arg(long, value_name = "KIND=URL", help_heading = "Report")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub push: Vec<String>,

    /// How often `--abort-on 'prom:…'` conditions are judged, 1s to 1h [default: 10s].
    #[arg(long, value_name = "D", help_heading = "Report")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus_every: Option<String>,

    /// Longest log line read, in bytes (without its line ending); a longer one is skipped as it
    /// is read and counted as a bad line. 1024 to 16777216 [default: 65536].
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_line_bytes: Option<u64>,

    /// With a kafka:// target, each message's value: `line` (the log line as read) or `json`
    /// (the planned request: method, target, headers, body, logged_time, logged_status, client)
    /// [default: line].
    #[arg(long, value_name = "line|json", help_heading = "Kafka")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_value: Option<String>,

    /// With a kafka:// target, each message's key, so one key's messages keep their order in one
    /// partition: `none`, `client` (the logged address), `session` (with --sessions), or the
    /// name of a logged request header or log-format variable [default: none].
    #[arg(long, value_name = "none|client|session|FIELD", help_heading = "Kafka")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_key: Option<String>,

    /// Acknowledgement a produce waits for. Only `all` (acks=-1: every in-sync replica): sluice's
    /// Kafka client, rskafka, always asks for it, so `leader` (acks=1) and `none` (acks=0) are
    /// refused rather than measured as something they are not [default: all].
    #[arg(long, value_name = "all|leader|none", help_heading = "Kafka")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_acks: Option<String>,

    /// End to end: also consume this output topic (kafka://HOST:PORT/TOPIC) from the run's start,
    /// match each output message to the input message it came from (--match), and record the
    /// time between them (e2e_ms); inputs with no output by the end of the drain are `lost`.
    #[arg(long, value_name = "URL", help_heading = "Kafka")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume: Option<String>,

    /// How an output message names its input: `header:NAME` (a header holding the input's
    /// sluice-seq) or `json:FIELD` (a top-level field of its JSON value) [default: header:sluice-seq].
    #[arg(long = "match", value_name = "header:NAME|json:FIELD", help_heading = "Kafka")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#match: Option<String>,

    // ---- traffic shape -------------------------------------------------------------------
    /// Replay at the log's own timing, this many times faster (0.5 = half speed): request n is due
    /// at (logged time n − logged time of the first) ÷ speed. Requests logged in the same second
    /// (combined logs have whole seconds) are spread evenly across it; fractional times ($msec,
    /// JSON) are used exactly; a line logged earlier than the one before it is due with it.
    /// Instead of --rate.
    #[arg(long, value_name = "X", help_heading = "Traffic shape", allow_negative_numbers = true)]
    #[serde(
        deserialize_with = "string_or_number",
        serialize_with = "number_or_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub speed: Option<String>,

    /// With --speed: cap any silence between consecutive requests at this (e.g. 2s).
    #[arg(long, value_name = "DURATION", help_heading = "Traffic shape")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_gap: Option<String>,

    /// Ramp stages instead of --rate: DURATION:RATE (steady) or DURATION:FROM-TO (linear ramp),
    /// comma separated, in req/s, e.g. '30s:0-200,10m:200,30s:200-0'. Request n is due when the
    /// integral of the rate reaches n. The stages set the run's length (the log loops).
    #[arg(long, value_name = "STAGES", help_heading = "Traffic shape")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<String>,

    /// How arrivals are spread along --rate or --stages: `uniform` (evenly) or `poisson`
    /// (exponential gaps from --seed; a run of known length — stages, or --duration — plans
    /// exactly as many requests as uniform would) [default: uniform].
    #[arg(long, value_name = "KIND", help_heading = "Traffic shape")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<String>,

    /// Seed for --arrivals poisson: the same seed gives the same due times [default: chosen at
    /// random and printed in the summary, so the run can be repeated].
    #[arg(long, value_name = "N", help_heading = "Traffic shape")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Replay client sessions: the requests of one client are sent in their logged order, one at
    /// a time; each leaves when the answer to the one before came back (or failed), or at its
    /// planned time if that is later. Sessions start when the plan says and interleave as in the
    /// log. KEY: client (address + user agent), header:NAME, cookie:NAME, or user ($remote_user).
    /// Lines without the key are sent outside any session. scheduled_at stays the plan: the wait
    /// behind a session's previous request shows as lag. The CSV's session and session_seq
    /// columns name each request's session (s1, s2 … never the key itself) and its place in it.
    #[arg(long, value_name = "KEY", help_heading = "Traffic shape")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<String>,

    /// Replay a Tsung scenario (tsung.xml) instead of log FILES: its users, sessions and think
    /// times become a generated log (see `sluice import tsung`), replayed at the scenario's own
    /// timing (--speed 2 for twice as fast); its methods are allowed. --seed draws its arrivals,
    /// sessions and random think times [default: 0]. Not with FILES, --rate, --stages, --arrivals
    /// or --format.
    #[arg(long, value_name = "FILE.xml", help_heading = "Traffic shape")]
    #[serde(skip)] // a file read on the machine that runs the replay: a command-line decision
    pub scenario: Option<PathBuf>,

    /// Reweight routes: 'PATTERN=WEIGHT,…', e.g. '/api/*=3,/static/*=0.5'. A request whose
    /// logged path (or its route template, /users/{id}) matches PATTERN (`*` matches anything) is
    /// replayed WEIGHT times in a row: 3 three times, 0.5 about half of them, 0 none, chosen by
    /// line, pass and --sample-seed (the same requests every run). The first matching pattern
    /// wins; other routes weigh 1; WEIGHT is 0 to 1000. Applied after --sample and the filters:
    /// it reweights what they kept.
    #[arg(long, value_name = "PATTERN=WEIGHT,…", help_heading = "Traffic shape")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix: Option<String>,

    // ---- comparing two targets ----------------------------------------------------------
    /// Also send every request to this baseline (http(s)://host:port[/prefix]) at the same
    /// instant, on its own connection, and record both answers in one row: the CSV gains the
    /// baseline's status, latency, bytes and error, a digest of each body, and whether status
    /// and body agree (see `sluice report` for the comparison).
    #[arg(long, value_name = "URL", help_heading = "Comparing")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,

    /// With --compare: a second baseline (the same release as the first). A difference between
    /// target and baseline that also shows between the two baselines (the same status change, or
    /// the same JSON fields) is counted as noise, not as a difference.
    #[arg(long, value_name = "URL", help_heading = "Comparing")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare_noise: Option<String>,

    /// With --compare: leave this part of a JSON body out of the comparison: $ then .key, [n],
    /// .* or [*] steps, e.g. '$.now', '$.items[*].id'. JSON bodies are compared canonically
    /// (key order and whitespace do not count). Repeatable.
    #[arg(long = "ignore-json-path", value_name = "PATH", help_heading = "Comparing")]
    #[serde(
        alias = "ignore_json_paths",
        rename(serialize = "ignore_json_paths"),
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ignore_json_path: Vec<String>,

    /// With --compare: remove every match of this regex from both bodies before comparing them
    /// (e.g. 'req-[0-9a-f]{8}'). Repeatable.
    #[arg(long = "ignore-regex", value_name = "REGEX", help_heading = "Comparing")]
    #[serde(alias = "ignore_regexes", rename(serialize = "ignore_regexes"), skip_serializing_if = "Vec::is_empty")]
    pub ignore_regex: Vec<String>,

    /// With --compare and an ignore rule or --compare-noise: bodies up to this many bytes are kept
    /// to be normalised; a longer one is compared by the hash of its raw bytes (its row says
    /// too_large). 1024 to 67108864 [default: 1048576].
    #[arg(long, value_name = "BYTES", help_heading = "Comparing")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare_body_limit: Option<usize>,

    // ---- many machines -------------------------------------------------------------------
    /// Run as shard I of K (0-based): every shard reads the same log and computes the whole plan,
    /// and sends request n when n mod K = I (with --sessions: whole sessions, by a hash of the
    /// session), at its global due time; the K shards together send exactly the one-process plan.
    /// `auto/K` takes I from JOB_COMPLETION_INDEX (Kubernetes), SLURM_PROCID or NOMAD_ALLOC_INDEX;
    /// `auto` also takes K from SLURM_NTASKS. Merge the shards' CSVs with `sluice merge`.
    #[arg(long, value_name = "I/K", help_heading = "Many machines")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,

    /// Start the plan (T0) at this wall-clock time, RFC 3339 (2026-12-01T02:00:00Z) or now+D
    /// (now+30s): how shards on several machines start together. A run started after it is
    /// refused, unless --late-start skip.
    #[arg(long, value_name = "TIME", help_heading = "Many machines")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,

    /// When the run starts after --start-at: `refuse` (exit 2), or `skip`: keep the common T0 and
    /// record the requests already due as `skipped_late` rows, never sent [default: refuse].
    #[arg(long, value_name = "WHAT", help_heading = "Many machines")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_start: Option<String>,

    // ---- TLS and addresses ---------------------------------------------------------------
    /// Trust the certificates of this PEM bundle (a staging CA, a self-signed certificate)
    /// besides the system's roots.
    #[arg(long, value_name = "FILE", help_heading = "TLS and addresses")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,

    /// Do not verify the target's certificate at all (any certificate, any name). The summary
    /// says so.
    #[arg(long, help_heading = "TLS and addresses")]
    #[serde(skip_serializing_if = "is_false")]
    pub insecure: bool,

    /// Present this PEM certificate (chain) when the target asks for one (mTLS); with --client-key.
    #[arg(long, value_name = "FILE", help_heading = "TLS and addresses")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,

    /// The PEM private key of --client-cert (checked to match it before anything is sent).
    #[arg(long, value_name = "FILE", help_heading = "TLS and addresses")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,

    /// Send this name as SNI and verify the certificate against it, instead of the target's host.
    #[arg(long, value_name = "NAME", help_heading = "TLS and addresses")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,

    /// Connect to ADDR for the target's HOST:PORT, while Host and SNI still say HOST (curl's
    /// --resolve): one backend of a pool, or a host not yet in DNS. http and https.
    /// --deny-host/--allow-host judge ADDR as well as HOST.
    #[arg(long, value_name = "HOST:PORT:ADDR", help_heading = "TLS and addresses")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve: Option<String>,
}

const FORMAT_HELP_AUTO: &str = "Log format: auto, nginx, nginx-main, apache-common, apache-combined, \
apache-vhost, traefik, json, 'nginx:<log_format string>', 'apache:<LogFormat string>', or har (a browser's \
HAR recording) [default: auto]";

/// TOML and JSON users write `rate = 200` as often as `rate = "200"`; both mean the same.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    // A visitor rather than an untagged enum, so a wrong type reads "expected a number or a
    // string" rather than "did not match any variant".
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number or a string")
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(Visitor)
}

/// What [`string_or_number`] read, written back as a number when it is one.
fn number_or_text<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    // Only a number that prints back exactly as given, so nothing is lost either way.
    let Some(text) = value else { return s.serialize_none() };
    if let Ok(n) = text.parse::<u64>()
        && n.to_string() == *text
    {
        s.serialize_u64(n)
    } else if let Ok(n) = text.parse::<i64>()
        && n.to_string() == *text
    {
        s.serialize_i64(n)
    } else if let Ok(x) = text.parse::<f64>()
        && x.is_finite()
        && x.to_string() == *text
    {
        s.serialize_f64(x)
    } else {
        s.serialize_str(text)
    }
}

/// `allow-methods = "GET,HEAD"` on the command line and in TOML; `["GET","HEAD"]` in JSON.
fn text_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of strings or one comma-separated string")
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item);
            }
            Ok(Some(items.join(",")))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(Visitor)
}

/// A comma-separated value written as the list [`text_or_list`] reads.
fn as_list<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(text) => s.collect_seq(text.split(',').map(str::trim)),
        None => s.serialize_none(),
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Reads a TOML file of replay options. Keys are the long flag names, with `-` or `_`.
pub fn load_config_file(path: &Path) -> Result<ReplayOptions, ConfigError> {
    let shown = path.display();
    let text = read_small_file(path, CONFIG_FILE_BYTES).map_err(|e| bad("--config", format!("{shown}: {e}")))?;
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| bad("--config", format!("{shown}: {}", one_line(&e.to_string()))))?;
    let normalised: toml::Table = table.into_iter().map(|(k, v)| (k.replace('-', "_"), v)).collect();
    toml::Value::Table(normalised)
        .try_into::<ReplayOptions>()
        .map_err(|e| bad("--config", format!("{shown}: {}", one_line(&e.to_string()))))
}

/// In options as JSON (see [`ReplayOptions`]'s serialization), each `header` as its name and
/// `[redacted]`: what a record, a manifest or a workbook shows of them.
pub fn redact_header_values(options: &mut serde_json::Value) {
    if let Some(headers) = options.get_mut("header").and_then(|h| h.as_array_mut()) {
        for header in headers {
            let name = header.as_str().and_then(|h| h.split_once(':')).map(|(n, _)| n.trim().to_string());
            *header =
                serde_json::Value::String(format!("{}: {}", name.unwrap_or_default(), crate::plan::safety::REDACTED));
        }
    }
}

impl ReplayOptions {
    /// These options over those of their `--config` file, if they name one: the options a run
    /// actually has. The file is read here, once.
    pub fn with_config_file(&self) -> Result<ReplayOptions, ConfigError> {
        match &self.config {
            Some(path) => Ok(self.clone().merged_over(load_config_file(path)?)),
            None => Ok(self.clone()),
        }
    }

    /// These flags over `file`'s values: a flag given wins; a list given replaces the file's list.
    pub fn merged_over(self, file: ReplayOptions) -> ReplayOptions {
        fn list<T>(flag: Vec<T>, file: Vec<T>) -> Vec<T> {
            if flag.is_empty() { file } else { flag }
        }
        ReplayOptions {
            files: list(self.files, file.files),
            config: self.config,
            target: self.target.or(file.target),
            rate: self.rate.or(file.rate),
            duration: self.duration.or(file.duration),
            once: self.once || file.once,
            format: self.format.or(file.format),
            concurrency: self.concurrency.or(file.concurrency),
            batch: self.batch.or(file.batch),
            release_every: self.release_every.or(file.release_every),
            timeout: self.timeout.or(file.timeout),
            drain_timeout: self.drain_timeout.or(file.drain_timeout),
            out: self.out.or(file.out),
            xlsx: self.xlsx.or(file.xlsx),
            summary_json: self.summary_json.or(file.summary_json),
            progress: self.progress.or(file.progress),
            metrics_listen: self.metrics_listen,
            queue_capacity: self.queue_capacity.or(file.queue_capacity),
            max_bad_lines: self.max_bad_lines.or(file.max_bad_lines),
            threads: self.threads.or(file.threads),
            http_version: self.http_version.or(file.http_version),
            allow_methods: self.allow_methods.or(file.allow_methods),
            follow_redirects: self.follow_redirects || file.follow_redirects,
            use_env_proxy: self.use_env_proxy || file.use_env_proxy,
            deny_host: list(self.deny_host, file.deny_host),
            allow_host: list(self.allow_host, file.allow_host),
            i_know_this_is_production: self.i_know_this_is_production || file.i_know_this_is_production,
            redact_header: list(self.redact_header, file.redact_header),
            mask_query_params: self.mask_query_params.or(file.mask_query_params),
            dry_run: self.dry_run || file.dry_run,
            host_header: self.host_header.or(file.host_header),
            preserve_host: self.preserve_host || file.preserve_host,
            header: list(self.header, file.header),
            drop_header: list(self.drop_header, file.drop_header),
            seq_header: self.seq_header.or(file.seq_header),
            skip_bodyless: self.skip_bodyless || file.skip_bodyless,
            include: list(self.include, file.include),
            exclude: list(self.exclude, file.exclude),
            orig_status: self.orig_status.or(file.orig_status),
            from: self.from.or(file.from),
            until: self.until.or(file.until),
            exclude_user_agent: list(self.exclude_user_agent, file.exclude_user_agent),
            sample: self.sample.or(file.sample),
            sample_seed: self.sample_seed.or(file.sample_seed),
            report: self.report || file.report,
            assert: list(self.assert, file.assert),
            abort_on: list(self.abort_on, file.abort_on),
            prometheus: self.prometheus.or(file.prometheus),
            prometheus_every: self.prometheus_every.or(file.prometheus_every),
            push: list(self.push, file.push),
            max_line_bytes: self.max_line_bytes.or(file.max_line_bytes),
            compare: self.compare.or(file.compare),
            compare_noise: self.compare_noise.or(file.compare_noise),
            ignore_json_path: list(self.ignore_json_path, file.ignore_json_path),
            ignore_regex: list(self.ignore_regex, file.ignore_regex),
            compare_body_limit: self.compare_body_limit.or(file.compare_body_limit),
            kafka_value: self.kafka_value.or(file.kafka_value),
            kafka_key: self.kafka_key.or(file.kafka_key),
            kafka_acks: self.kafka_acks.or(file.kafka_acks),
            consume: self.consume.or(file.consume),
            r#match: self.r#match.or(file.r#match),
            speed: self.speed.or(file.speed),
            max_gap: self.max_gap.or(file.max_gap),
            stages: self.stages.or(file.stages),
            arrivals: self.arrivals.or(file.arrivals),
            seed: self.seed.or(file.seed),
            sessions: self.sessions.or(file.sessions),
            scenario: self.scenario,
            shard: self.shard.or(file.shard),
            start_at: self.start_at.or(file.start_at),
            late_start: self.late_start.or(file.late_start),
            mix: self.mix.or(file.mix),
            ca_cert: self.ca_cert.or(file.ca_cert),
            insecure: self.insecure || file.insecure,
            client_cert: self.client_cert.or(file.client_cert),
            client_key: self.client_key.or(file.client_key),
            tls_server_name: self.tls_server_name.or(file.tls_server_name),
            resolve: self.resolve.or(file.resolve),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `sluice replay …` flags as clap reads them.
    fn flags(args: &[&str]) -> ReplayOptions {
        #[derive(Parser)]
        struct Replay {
            #[command(flatten)]
            options: ReplayOptions,
        }
        Replay::try_parse_from(std::iter::once("replay").chain(args.iter().copied())).unwrap().options
    }

    fn file(toml: &str) -> Result<ReplayOptions, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.toml");
        std::fs::write(&path, toml).unwrap();
        load_config_file(&path)
    }

    #[test]
    fn flags_win_over_the_file_and_lists_replace_lists() {
        let file = file(
            r#"
            target = "http://staging:8080"
            rate = 200
            duration = "6h"
            header = ["X-A: 1", "X-B: 2"]
            allow-methods = "GET"
            once = true
            abort_on = ["error_rate > 50% for 10s"]
            "#,
        )
        .unwrap();
        // Flags, and what the merge must give.
        type Case = (&'static [&'static str], fn(&ReplayOptions));
        let cases: [Case; 4] = [
            (&[], |m| {
                assert_eq!(m.target.as_deref(), Some("http://staging:8080"));
                assert_eq!(m.rate.as_deref(), Some("200"), "a TOML number reads as the flag's text");
                assert_eq!(m.header, ["X-A: 1", "X-B: 2"]);
                assert!(m.once);
                assert_eq!(m.abort_on, ["error_rate > 50% for 10s"]);
            }),
            (&["--rate", "50", "--target", "mock"], |m| {
                assert_eq!((m.rate.as_deref(), m.target.as_deref()), (Some("50"), Some("mock")), "flags win");
                assert_eq!(m.duration.as_deref(), Some("6h"), "what no flag gives comes from the file");
            }),
            (&["-H", "X-C: 3"], |m| assert_eq!(m.header, ["X-C: 3"], "a list given replaces the file's list")),
            (&["--allow-methods", "GET,HEAD", "--abort-on", "p99 > 2s"], |m| {
                assert_eq!(m.allow_methods.as_deref(), Some("GET,HEAD"));
                assert_eq!(m.abort_on, ["p99 > 2s"]);
            }),
        ];
        for (given, check) in cases {
            check(&flags(given).merged_over(file.clone()));
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        for (toml, named) in [
            ("rat = 200", "rat"),
            ("target = 'mock'\nconcurency = 4", "concurency"),
            ("concurrency = 'many'", "concurrency"),
            ("out = 'r.csv'\n[extra]\nx = 1", "extra"),
        ] {
            let e = file(toml).unwrap_err();
            assert_eq!(e.flag, "--config");
            assert!(e.message.contains(named), "{toml:?}: {}", e.message);
        }
    }
}
