//! `sluice runs`: the daemon's API from the command line, so nobody has to hand-write curl.
//!
//! The daemon is `--daemon URL`, else `$SLUICE_DAEMON`, else `http://127.0.0.1:7878`; the token is
//! `$SLUICE_TOKEN` (never a flag: argv is visible to every user of the machine). Whatever a
//! script wants to read goes to stdout (ids, JSON, the CSV); progress and messages go to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::control::StatusClasses;
use crate::daemon::DEFAULT_LISTEN;
use crate::daemon::auth::TOKEN_ENV;
use crate::exit::{Exit, UsageError};

mod fleet;

/// The environment variable naming the daemon when `--daemon` is not given.
pub const DAEMON_ENV: &str = "SLUICE_DAEMON";

/// Small requests (everything but downloads and event streams) give up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// The daemon's URL [default: $SLUICE_DAEMON, else http://127.0.0.1:7878]. The token is read
    /// from $SLUICE_TOKEN. Several, with `submit`: a fleet, one shard of the run on each.
    #[arg(long, global = true, value_name = "URL")]
    pub daemon: Vec<String>,

    #[command(subcommand)]
    pub command: RunsCommand,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Submit a run: a JSON file of replay options (`-` reads stdin). Prints the run's id; to
    /// several `--daemon`s, one shard each (`shard` I/K, a common `start_at`), and prints the
    /// fleet: a line per shard, `DAEMON RUN-ID SHARD`, for `watch`, `stop` and `results --fleet`.
    Submit {
        /// e.g. {"logs":["access.log.gz"],"target":"http://127.0.0.1:8080","rate":200,"duration":"10m"}
        #[arg(value_name = "REQUEST.json")]
        request: PathBuf,
        /// Upload this log first (under its file name; to every daemon of a fleet); when the
        /// request names no `logs`, the uploaded ones are replayed. Repeatable.
        #[arg(long, value_name = "FILE")]
        upload: Vec<PathBuf>,
        /// Then follow the run until it ends, like `watch`.
        #[arg(long)]
        follow: bool,
        /// A fleet's common start, when the request has no `start_at`: this long after the
        /// submissions begin (time enough to reach every daemon).
        #[arg(long, value_name = "D", default_value = "10s")]
        start_in: String,
    },
    /// List runs, newest first.
    List,
    /// Show a run as JSON: state, options, progress, and the summary once it ended.
    Show {
        #[arg(help = RUN_ID_HELP)]
        id: String,
    },
    /// Follow a run's progress until it ends; exits 0 if it completed, 2 if it failed, 130 if it
    /// was stopped or interrupted (a fleet: the worst of its shards).
    Watch {
        #[arg(help = RUN_ID_HELP, required_unless_present = "fleet")]
        id: Option<String>,
        #[arg(long, value_name = "FILE", conflicts_with = "id", help = FLEET_HELP)]
        fleet: Option<PathBuf>,
    },
    /// Stop a run: a queued one at once, a running one after its in-flight requests drain.
    Stop {
        #[arg(help = RUN_ID_HELP, required_unless_present = "fleet")]
        id: Option<String>,
        #[arg(long, value_name = "FILE", conflicts_with = "id", help = FLEET_HELP)]
        fleet: Option<PathBuf>,
    },
    /// Download a run's CSV (also while it runs: the rows written so far), or its summary. With
    /// `--fleet`: every shard's CSV and manifest into a directory, checked and merged into `--out`
    /// as `sluice merge` does.
    Results {
        #[arg(help = RUN_ID_HELP, required_unless_present = "fleet")]
        id: Option<String>,
        /// Write here instead of stdout (required with --fleet: the merged CSV).
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The summary (JSON) instead of the CSV.
        #[arg(long, conflicts_with_all = ["fleet", "xlsx", "report"])]
        summary: bool,
        /// The workbook (.xlsx: typed cells, Summary and Routes sheets) instead of the CSV, once
        /// the run ended; needs --out.
        #[arg(long, conflicts_with_all = ["fleet", "report"], requires = "out")]
        xlsx: bool,
        /// The HTML report (one self-contained file) instead of the CSV, once the run ended.
        #[arg(long, conflicts_with = "fleet")]
        report: bool,
        #[arg(long, value_name = "FILE", conflicts_with = "id", requires = "out", help = FLEET_HELP)]
        fleet: Option<PathBuf>,
        /// With --fleet: where the shards' CSVs and manifests are kept, one directory per shard
        /// (`sluice report DIR` shows each shard's rate and lag) [default: <out stem>-shards
        /// beside --out].
        #[arg(long, value_name = "DIR", requires = "fleet")]
        shards_dir: Option<PathBuf>,
        /// With --fleet: merge the shards there are when some are missing, unfinished or
        /// incomplete, saying which.
        #[arg(long, requires = "fleet")]
        allow_partial: bool,
    },
    /// Delete a run that ended, with its CSV and summary.
    Delete {
        #[arg(help = RUN_ID_HELP)]
        id: String,
    },
}

/// `--fleet` of the commands that can name a fleet's runs.
const FLEET_HELP: &str = "The runs of a fleet, as `runs submit` printed them to several --daemon: a line per shard, \
                          DAEMON RUN-ID SHARD";

/// `<ID>` of the commands that name one run.
const RUN_ID_HELP: &str = "The run's id, as `runs submit` printed it and `runs list` shows it (the time it was submitted, in UTC: 20261121-140307-123)";

pub fn run(args: &RunsArgs) -> anyhow::Result<Exit> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if let Some(fleet) = fleet::Command::of(args)? {
        return runtime.block_on(fleet.run());
    }
    if args.daemon.len() > 1 {
        return Err(UsageError(
            "several --daemon are a fleet, which `runs submit` makes; the other commands name its runs with --fleet FILE"
                .into(),
        )
        .into());
    }
    let client = Client::new(args.daemon.first().map(String::as_str))?;
    runtime.block_on(client.command(&args.command))
}

/// One daemon's API.
pub(super) struct Client {
    base: reqwest::Url,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    pub(super) fn new(daemon: Option<&str>) -> anyhow::Result<Client> {
        let text = daemon
            .map(str::to_string)
            .or_else(|| std::env::var(DAEMON_ENV).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| format!("http://{DEFAULT_LISTEN}"));
        let base = reqwest::Url::parse(&text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| UsageError(format!("--daemon '{text}' is not a URL like http://127.0.0.1:7878")))?;
        let http = crate::send::tls::client_builder().connect_timeout(Duration::from_secs(10)).no_proxy().build()?;
        let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
        Ok(Client { base, http, token })
    }

    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        let builder = self.http.request(method, url);
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends, and turns a problem+json answer into an error that says what the daemon said.
    pub(super) async fn send(&self, builder: RequestBuilder) -> anyhow::Result<Response> {
        let response = builder.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the daemon at {}: {e} (is `sluice daemon` running there? set --daemon or {DAEMON_ENV})",
                self.base
            )
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let detail = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        let hint = if status == StatusCode::UNAUTHORIZED && self.token.is_none() { " (set SLUICE_TOKEN)" } else { "" };
        Err(UsageError(format!("the daemon answered {status}: {detail}{hint}")).into())
    }

    pub(super) async fn json(&self, builder: RequestBuilder) -> anyhow::Result<Value> {
        let response = self.send(builder.timeout(REQUEST_TIMEOUT)).await?;
        let bytes = response.bytes().await?;
        serde_json::from_slice(&bytes).context("the daemon's answer is not JSON")
    }

    async fn command(&self, command: &RunsCommand) -> anyhow::Result<Exit> {
        match command {
            RunsCommand::Submit { request, upload, follow, .. } => {
                let mut body = read_request(request)?;
                let names = self.upload_all(upload).await?;
                name_uploaded_logs(&mut body, names);
                let (id, shown) = self.submit(&body, "").await?;
                stdout(format!("{id}\n").as_bytes())?;
                if *follow { self.watch(&id, shown, "").await } else { Ok(Exit::Ok) }
            }
            RunsCommand::List => {
                let runs = self.json(self.request(Method::GET, "/v1/runs")).await?;
                stdout(runs_table(runs.as_array().map(Vec::as_slice).unwrap_or_default()).as_bytes())?;
                Ok(Exit::Ok)
            }
            RunsCommand::Show { id } => {
                // The daemon's own JSON, as it sent it (keys in its order).
                let response = self.send(self.request(Method::GET, &run_path(id, "")).timeout(REQUEST_TIMEOUT)).await?;
                let mut bytes = response.bytes().await?.to_vec();
                bytes.push(b'\n');
                stdout(&bytes)?;
                Ok(Exit::Ok)
            }
            RunsCommand::Watch { id, .. } => self.watch(one(id), String::new(), "").await,
            RunsCommand::Stop { id, .. } => {
                self.stop(one(id), "").await?;
                Ok(Exit::Ok)
            }
            RunsCommand::Results { id, out, summary, xlsx, report, .. } => {
                let id = one(id);
                let file = match (summary, xlsx, report) {
                    (true, _, _) => "/summary.json",
                    (_, true, _) => "/results.xlsx",
                    (_, _, true) => "/report.html",
                    _ => "/results.csv",
                };
                let mut response = self.send(self.request(Method::GET, &run_path(id, file))).await?;
                let mut sink: Box<dyn Write> = match out {
                    Some(path) => Box::new(std::io::BufWriter::new(
                        std::fs::File::create(path).with_context(|| format!("--out {}", path.display()))?,
                    )),
                    None => Box::new(std::io::stdout().lock()),
                };
                while let Some(chunk) = response.chunk().await? {
                    sink.write_all(&chunk)?;
                }
                sink.flush()?;
                Ok(Exit::Ok)
            }
            RunsCommand::Delete { id } => {
                self.send(self.request(Method::DELETE, &run_path(id, "")).timeout(REQUEST_TIMEOUT)).await?;
                eprintln!("sluice: run {id} deleted");
                Ok(Exit::Ok)
            }
        }
    }

    /// Submits a run; returns its id and the line printed about it (after `label`, which names
    /// a fleet's shard).
    pub(super) async fn submit(&self, body: &Value, label: &str) -> anyhow::Result<(String, String)> {
        let run = self.json(self.request(Method::POST, "/v1/runs").json_body(body)).await?;
        let id = run["id"].as_str().ok_or_else(|| anyhow!("the daemon's answer has no run id"))?.to_string();
        let line = progress_line(&run, label);
        eprintln!("{line}");
        Ok((id, line))
    }

    /// Stops a run, saying what state it is in now.
    pub(super) async fn stop(&self, id: &str, label: &str) -> anyhow::Result<()> {
        let run = self.json(self.request(Method::POST, &run_path(id, "/stop"))).await?;
        eprintln!("sluice: {label}run {id}: {}", run["state"].as_str().unwrap_or("?"));
        Ok(())
    }

    /// Uploads every file; returns their names.
    pub(super) async fn upload_all(&self, paths: &[PathBuf]) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::with_capacity(paths.len());
        for path in paths {
            names.push(self.upload(path).await?);
        }
        Ok(names)
    }

    /// Streams a local log to the daemon under its file name; returns the name.
    async fn upload(&self, path: &Path) -> anyhow::Result<String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| UsageError(format!("--upload {}: not a file name", path.display())))?
            .to_string();
        let file =
            tokio::fs::File::open(path).await.map_err(|e| UsageError(format!("--upload {}: {e}", path.display())))?;
        let len = file.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let builder = self
            .request(Method::PUT, &format!("/v1/logs/{}", encode(&name)))
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        self.send(builder).await?;
        eprintln!("sluice: uploaded {name} ({len} bytes) to {}", self.base);
        Ok(name)
    }

    /// Follows `/events` until the run ends, a line per change (`shown` is the last line already
    /// printed), then the run's final figures; the exit code says how it ended. `label` names a
    /// fleet's shard in every line.
    pub(super) async fn watch(&self, id: &str, mut shown: String, label: &str) -> anyhow::Result<Exit> {
        let mut response = self.send(self.request(Method::GET, &run_path(id, "/events"))).await?;
        let mut buffer = Vec::new();
        let mut last: Option<Value> = None;
        while let Some(chunk) = response.chunk().await? {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = find_blank_line(&buffer) {
                let block: Vec<u8> = buffer.drain(..end).collect();
                let Some((event, data)) = parse_event(&String::from_utf8_lossy(&block)) else { continue };
                let Ok(run) = serde_json::from_str::<Value>(&data) else { continue };
                if event == "end" {
                    eprintln!("{}", final_line(&run, label));
                    return Ok(final_outcome(Some(&run)));
                }
                // A run between its last request and its summary (draining, flushing) sends the
                // same snapshot again: said once.
                let line = progress_line(&run, label);
                if line != shown {
                    eprintln!("{line}");
                    shown = line;
                }
                last = Some(run);
            }
        }
        // The stream ended without its `end` event (the daemon stopped): say what is known.
        if let Some(run) = &last {
            eprintln!(
                "sluice: {label}the daemon closed the event stream before run {id} ended; last seen {}",
                run["state"]
            );
        }
        Ok(final_outcome(last.as_ref()))
    }
}

/// The id of a command that names one run (clap requires it unless `--fleet` is given, which
/// [`fleet::Command::of`] has taken).
fn one(id: &Option<String>) -> &str {
    id.as_deref().unwrap_or_default()
}

/// A run request from a file, or stdin for `-`.
pub(super) fn read_request(request: &Path) -> anyhow::Result<Value> {
    let text = if request == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the request from stdin")?
    } else {
        std::fs::read_to_string(request).map_err(|e| UsageError(format!("{}: {e}", request.display())))?
    };
    Ok(serde_json::from_str(&text).map_err(|e| UsageError(format!("{}: not JSON: {e}", request.display())))?)
}

/// When the request names no `logs`, it replays the ones just uploaded.
pub(super) fn name_uploaded_logs(body: &mut Value, names: Vec<String>) {
    if let Some(object) = body.as_object_mut()
        && !names.is_empty()
        && object.get("logs").is_none_or(|l| l.as_array().is_some_and(Vec::is_empty))
    {
        object.insert("logs".into(), Value::from(names));
    }
}

/// Writes to stdout, returning errors (a closed pipe) instead of panicking like `print!`.
pub(super) fn stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

trait JsonBody {
    fn json_body(self, value: &Value) -> Self;
}

impl JsonBody for RequestBuilder {
    fn json_body(self, value: &Value) -> Self {
        self.header(reqwest::header::CONTENT_TYPE, "application/json").body(value.to_string())
    }
}

pub(super) fn run_path(id: &str, rest: &str) -> String {
    format!("/v1/runs/{}{rest}", encode(id))
}

/// Percent-encodes everything but unreserved characters, so an id or name is one path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The end of the first event block (past its blank line), if a whole one is buffered.
fn find_blank_line(buffer: &[u8]) -> Option<usize> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One server-sent event block → (event name, data); comments (keep-alives) give `None`.
fn parse_event(block: &str) -> Option<(String, String)> {
    let (mut event, mut data) = (String::from("message"), Vec::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
        }
    }
    (!data.is_empty()).then(|| (event, data.join("\n")))
}

pub(super) fn final_outcome(run: Option<&Value>) -> Exit {
    match run.and_then(|r| r["state"].as_str()) {
        Some("completed") => Exit::Ok,
        Some("stopped" | "interrupted") => Exit::Interrupted,
        _ => Exit::BadInput,
    }
}

/// `2xx 1546 4xx 259 5xx 195 no answer 0`: answered requests by status class, then the ones
/// that got no answer, from a run's `progress`.
fn answers(progress: &Value) -> String {
    let classes: StatusClasses = serde_json::from_value(progress["classes"].clone()).unwrap_or_default();
    format!("{} no answer {}", classes.to_text(), progress["errors"].as_u64().unwrap_or(0))
}

fn progress_line(run: &Value, label: &str) -> String {
    let p = &run["progress"];
    let f = |key: &str| p[key].as_f64().unwrap_or(0.0);
    let state = run["state"].as_str().unwrap_or("?");
    let mut line = format!("sluice: {label}run {} {state}", run["id"].as_str().unwrap_or("?"));
    if p.is_object() {
        line += &format!(
            ": {} sent, {}, {:.1}/s, p50 {:.1} ms, p99 {:.1} ms, lag p99 {:.1} ms",
            p["sent"].as_u64().unwrap_or(0),
            answers(p),
            f("current_rate"),
            f("p50_ms"),
            f("p99_ms"),
            f("lag_p99_ms")
        );
    }
    if let Some(message) = run["message"].as_str() {
        line += &format!(" — {message}");
    }
    line
}

/// How a run ended: its state, what was sent, the status mix (each code, from the summary) and
/// the latencies; or why it ended without a summary.
fn final_line(run: &Value, label: &str) -> String {
    let state = run["state"].as_str().unwrap_or("?");
    let mut line = format!("sluice: {label}run {} {state}", run["id"].as_str().unwrap_or("?"));
    let summary = &run["summary"];
    if summary.is_object() {
        let statuses = summary["statuses"]
            .as_object()
            .map(|codes| codes.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        line += &format!(
            ": {} sent in {:.1} s; {}; statuses: {}; p50 {:.1} ms, p99 {:.1} ms",
            summary["requests_sent"].as_u64().unwrap_or(0),
            summary["scheduling_seconds"].as_f64().unwrap_or(0.0),
            answers(&run["progress"]),
            if statuses.is_empty() { "none".to_string() } else { statuses },
            summary["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
            summary["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
        );
    } else if run["progress"].is_object() {
        line += &format!(": {} sent, {}", run["progress"]["sent"].as_u64().unwrap_or(0), answers(&run["progress"]));
    }
    if let Some(message) = run["message"].as_str() {
        line += &format!(" — {message}");
    }
    line
}

fn runs_table(runs: &[Value]) -> String {
    let mut text = format!(
        "{:<20} {:<11} {:<19} {:>9} {:>9}  {}\n",
        "ID", "STATE", "CREATED (UTC)", "SENT", "NO ANSWER", "TARGET"
    );
    for run in runs {
        let created = run["created_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        text += &format!(
            "{:<20} {:<11} {:<19} {:>9} {:>9}  {}\n",
            run["id"].as_str().unwrap_or("?"),
            run["state"].as_str().unwrap_or("?"),
            created,
            run["progress"]["sent"].as_u64().unwrap_or(0),
            run["progress"]["errors"].as_u64().unwrap_or(0),
            run["options"]["target"].as_str().unwrap_or("")
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_blocks_are_split_and_parsed() {
        let stream = b"event: progress\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: end\r\ndata: {}\r\n\r\n";
        let end = find_blank_line(stream).unwrap();
        assert_eq!(
            parse_event(std::str::from_utf8(&stream[..end]).unwrap()).unwrap(),
            ("progress".into(), "{\"a\":1}".into())
        );
        let rest = &stream[end..];
        let end2 = find_blank_line(rest).unwrap();
        assert!(parse_event(std::str::from_utf8(&rest[..end2]).unwrap()).is_none(), "a comment");
        let last = &rest[end2..];
        assert_eq!(parse_event(std::str::from_utf8(last).unwrap()).unwrap().0, "end");
    }

    #[test]
    fn ids_and_names_stay_one_path_segment() {
        assert_eq!(encode("20261121-220307-123"), "20261121-220307-123");
        assert_eq!(encode("../x y"), "..%2Fx%20y");
    }
}
