//! The HTTP API: routes, the token check, and errors as `application/problem+json` (RFC 9457).
//!
//! With a token configured, every `/v1` request needs it, reads included: run records name
//! targets and schedules, and CSVs hold the URLs of real traffic. `/healthz` and `/metrics`
//! (counters without ids, paths or values) stay open for probes and Prometheus.
//!
//! Handlers are thin: they check the token, parse what the client sent, and call the
//! [`Registry`]. Anything that writes files (and may wait on a disk sync) runs on the blocking
//! pool, never on the async workers that answer `/metrics` and progress requests.

use std::convert::Infallible;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::auth::Token;
use super::policy::{Rejection, check_log_name};
use super::record::{RunRecord, RunState};
use super::registry::{Registry, RegistryError, not_found};
use super::request::RunRequest;
use super::store::Paths;
use super::upload::{MAX_LINE_BYTES, UploadCheck, UploadRefusal};
use crate::sink::metrics::Metrics;

/// A run request is a few hundred bytes; this leaves room for long header lists and filters.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How much of an oversized upload is read and dropped so the client sees the 413 (see [`discard`]).
const DISCARD_BUDGET: u64 = 16 * 1024 * 1024;
/// How often `/events` sends a snapshot.
const EVENT_EVERY: Duration = Duration::from_secs(1);

/// What every handler shares.
pub struct Api {
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    /// `None`: no token configured (loopback only), and changes need none.
    pub token: Option<Token>,
    pub max_upload_bytes: u64,
}

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/logs", get(list_logs))
        .route("/v1/logs/{name}", put(upload_log))
        .route("/v1/runs", get(list_runs).post(submit_run))
        .route("/v1/runs/{id}", get(show_run).delete(delete_run))
        .route("/v1/runs/{id}/events", get(events))
        .route("/v1/runs/{id}/stop", post(stop_run))
        .route("/v1/runs/{id}/results.csv", get(results_csv))
        .route("/v1/runs/{id}/summary.json", get(summary_json))
        .route("/v1/runs/{id}/manifest.json", get(manifest_json))
        .merge(super::web::routes())
        .route("/v1/runs/{id}/results.xlsx", get(results_xlsx))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(api)
}

/// An error as `application/problem+json`: a status, and a `detail` a person can act on.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    detail: String,
    www_authenticate: Option<&'static str>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem { status, detail: detail.into(), www_authenticate: None }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response =
            (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response();
        if let Some(challenge) = self.www_authenticate {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

impl From<RegistryError> for Problem {
    fn from(e: RegistryError) -> Problem {
        match e {
            RegistryError::Rejected(Rejection::Invalid(m)) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            RegistryError::Rejected(Rejection::Forbidden(m)) => Problem::new(StatusCode::FORBIDDEN, m),
            RegistryError::NotFound(m) => Problem::new(StatusCode::NOT_FOUND, m),
            RegistryError::Conflict(m) => Problem::new(StatusCode::CONFLICT, m),
            RegistryError::TooMany(m) => Problem::new(StatusCode::TOO_MANY_REQUESTS, m),
            RegistryError::ShuttingDown => shutting_down(),
            RegistryError::Io(m) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

fn shutting_down() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the daemon is shutting down and accepts no new work; submit again once it is back",
    )
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec_pretty(value).expect("API values serialise");
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Every `/v1` request needs the token when one is configured. A missing and a wrong token are
/// both 401 (RFC 6750), with messages that say which it was and never repeat what was sent. Only
/// the header counts: a token in the query string would end up in proxy and access logs.
fn authorize(api: &Api, headers: &HeaderMap) -> Result<(), Problem> {
    let Some(token) = &api.token else { return Ok(()) };
    let (detail, challenge) = match headers.get(header::AUTHORIZATION) {
        Some(value) if token.accepts(value.as_bytes()) => return Ok(()),
        None => (
            "this daemon needs a token: send 'Authorization: Bearer <token>' (`sluice runs` sends $SLUICE_TOKEN)",
            "Bearer realm=\"sluice\"",
        ),
        Some(_) => (
            "the token does not match the daemon's (its --token-file or SLUICE_TOKEN)",
            "Bearer realm=\"sluice\", error=\"invalid_token\"",
        ),
    };
    Err(Problem { status: StatusCode::UNAUTHORIZED, detail: detail.into(), www_authenticate: Some(challenge) })
}

/// Registry calls that may write and sync files, off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}")))?
        .map_err(Problem::from)
}

fn find(api: &Api, id: &str) -> Result<RunRecord, Problem> {
    api.registry.get(id).ok_or_else(|| Problem::from(not_found(id)))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    let text = api.metrics.render(&api.registry.gauges());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn no_route() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; the API is /healthz, /metrics, /v1/logs[/{name}] and /v1/runs[/{id}[/events|/stop|\
         /results.csv|/results.xlsx|/summary.json|/manifest.json|/report.html]], and the web page is /",
    )
}

async fn wrong_method() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "this endpoint does not take that method")
}

// ---- logs --------------------------------------------------------------------------------------

#[derive(serde::Serialize)]
struct LogFile {
    name: String,
    bytes: u64,
    modified: Option<chrono::DateTime<chrono::Utc>>,
}

async fn list_logs(State(api): State<Arc<Api>>, headers: HeaderMap) -> Result<Response, Problem> {
    authorize(&api, &headers)?;
    let dir = api.registry.paths().logs_dir.clone();
    let logs = blocking(move || {
        let mut logs = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| RegistryError::Io(format!("cannot list the logs: {e}")))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Hidden files are uploads in progress.
            if check_log_name(&name).is_err() {
                continue;
            }
            if let Ok(meta) = entry.metadata()
                && meta.is_file()
            {
                logs.push(LogFile { name, bytes: meta.len(), modified: meta.modified().ok().map(Into::into) });
            }
        }
        logs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(logs)
    })
    .await?;
    Ok(json(StatusCode::OK, &logs))
}

/// Streams the body to a hidden file in the logs directory and renames it into place when it is
/// whole, so a run never sees half an upload and a refused one leaves nothing behind. Bytes are
/// kept as sent: a `.gz` stays compressed (runs recognise gzip by content). The limit applies to
/// what a run will read, so a gzip upload is decompressed on the way in (and dropped) to measure
/// it; see [`UploadCheck`].
async fn upload_log(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    authorize(&api, &headers)?;
    check_log_name(&name).map_err(|m| Problem::new(StatusCode::BAD_REQUEST, m))?;
    if !api.registry.is_accepting() {
        return Err(shutting_down());
    }
    let limit = api.max_upload_bytes;
    let too_large = || refused(limit, &UploadRefusal::TooLarge { decompressed: false });
    let mut stream = body.into_data_stream();
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit
    {
        if n - limit <= DISCARD_BUDGET {
            discard(&mut stream).await;
        }
        return Err(too_large());
    }
    let dir = api.registry.paths().logs_dir.clone();
    static UPLOADS: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(".upload-{}-{}-{name}", std::process::id(), UPLOADS.fetch_add(1, Ordering::Relaxed)));
    let bytes = match receive(&mut stream, &tmp, limit).await {
        Received::Stored(bytes) => bytes,
        Received::Refused(why) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            discard(&mut stream).await;
            return Err(refused(limit, &why));
        }
        Received::Failed(problem) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(problem);
        }
    };
    let target = dir.join(&name);
    let replaced = tokio::fs::symlink_metadata(&target).await.is_ok();
    tokio::fs::rename(&tmp, &target)
        .await
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot store the log: {e}")))?;
    let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
    Ok(json(status, &serde_json::json!({ "name": name, "bytes": bytes })))
}

/// How receiving an upload ended.
enum Received {
    /// Whole, within every limit: its size as sent.
    Stored(u64),
    /// Refused on what it holds (the client may still be sending).
    Refused(UploadRefusal),
    /// The connection or the disk failed.
    Failed(Problem),
}

/// The answer to a refused upload.
fn refused(limit: u64, why: &UploadRefusal) -> Problem {
    let mib = limit / (1024 * 1024);
    match why {
        UploadRefusal::TooLarge { decompressed: false } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is larger than this daemon's limit of {mib} MiB (--max-upload-mib); compress it with gzip \
                 or split it into several logs"
            ),
        ),
        UploadRefusal::TooLarge { decompressed: true } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload decompresses to more than this daemon's limit of {mib} MiB (--max-upload-mib counts what \
                 a run reads); split the log into several"
            ),
        ),
        UploadRefusal::LineTooLong { line } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "line {line} of the log is longer than {} KiB, which no access log line is; check that this is the \
                 log you meant",
                MAX_LINE_BYTES / 1024
            ),
        ),
        UploadRefusal::NotGzip(e) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the upload starts like gzip but does not decompress ({e}); send the whole .gz file"),
        ),
    }
}

/// Writes the body to `path` while checking it as a run will read it.
async fn receive(stream: &mut BodyDataStream, path: &FsPath, limit: u64) -> Received {
    let io = |e: std::io::Error| {
        Received::Failed(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot store the log: {e}")))
    };
    let mut file = match tokio::fs::File::create(path).await {
        Ok(file) => file,
        Err(e) => return io(e),
    };
    let mut check = UploadCheck::new(limit);
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                return Received::Failed(Problem::new(StatusCode::BAD_REQUEST, format!("the upload broke off: {e}")));
            }
        };
        total += chunk.len() as u64;
        if total > limit {
            return Received::Refused(UploadRefusal::TooLarge { decompressed: false });
        }
        let checked = if check.is_gzip() {
            // Inflating may take milliseconds per chunk: off the workers that answer the API.
            let bytes = chunk.clone();
            let (back, result) = tokio::task::spawn_blocking(move || {
                let result = check.feed(&bytes);
                (check, result)
            })
            .await
            .expect("the upload check does not panic");
            check = back;
            result
        } else {
            check.feed(&chunk)
        };
        if let Err(why) = checked {
            return Received::Refused(why);
        }
        if let Err(e) = file.write_all(&chunk).await {
            return io(e);
        }
    }
    if let Err(why) = check.finish() {
        return Received::Refused(why);
    }
    match file.sync_all().await {
        Ok(()) => Received::Stored(total),
        Err(e) => io(e),
    }
}

/// Reads and drops up to [`DISCARD_BUDGET`] more of a refused upload (for two seconds at most).
/// A client still sending when the 413 is written would otherwise see its connection reset and
/// never read the answer; a much larger upload is cut off instead.
async fn discard(stream: &mut BodyDataStream) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut dropped = 0u64;
        while let Some(Ok(chunk)) = stream.next().await {
            dropped += chunk.len() as u64;
            if dropped > DISCARD_BUDGET {
                break;
            }
        }
    })
    .await;
}

// ---- runs --------------------------------------------------------------------------------------

async fn submit_run(State(api): State<Arc<Api>>, headers: HeaderMap, body: Body) -> Result<Response, Problem> {
    authorize(&api, &headers)?;
    if let Some(kind) = headers.get(header::CONTENT_TYPE)
        && !kind.to_str().is_ok_and(|k| k.starts_with("application/json") || k.contains("+json"))
    {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the run's options as JSON, with Content-Type: application/json (curl: -H 'Content-Type: \
             application/json')",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await.map_err(|_| {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, format!("a run request may be at most {MAX_REQUEST_BYTES} bytes"))
    })?;
    let request = parse_run_request(&bytes)?;
    let registry = api.registry.clone();
    let record = blocking(move || registry.submit(request)).await?;
    let mut response = json(StatusCode::CREATED, &record);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/runs/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Malformed JSON is 400; JSON of the wrong shape (unknown key, wrong type, refused option) 422.
pub fn parse_run_request(bytes: &[u8]) -> Result<RunRequest, Problem> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {e}")))?;
    let unprocessable = |m: String| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let Value::Object(object) = value else {
        return Err(unprocessable(
            "the body must be a JSON object of replay options, e.g. {\"logs\":[\"access.log.gz\"],\"target\":\
             \"http://127.0.0.1:8080\",\"rate\":200}"
                .into(),
        ));
    };
    RunRequest::from_object(object).map_err(unprocessable)
}

async fn list_runs(State(api): State<Arc<Api>>, headers: HeaderMap) -> Result<Response, Problem> {
    authorize(&api, &headers)?;
    Ok(json(StatusCode::OK, &api.registry.list()))
}

async fn show_run(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&api, &headers)?;
    Ok(json(StatusCode::OK, &find(&api, &id)?))
}

async fn stop_run(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&api, &headers)?;
    let registry = api.registry.clone();
    let record = blocking(move || registry.stop(&id)).await?;
    Ok(json(StatusCode::ACCEPTED, &record))
}

async fn delete_run(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&api, &headers)?;
    let registry = api.registry.clone();
    blocking(move || registry.delete(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A snapshot of the run every second (`event: progress`), and a last one when it ends
/// (`event: end`), after which the stream closes. Each `data` is the run as `GET /v1/runs/{id}`
/// shows it.
async fn events(State(api): State<Arc<Api>>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, Problem> {
    authorize(&api, &headers)?;
    find(&api, &id)?;
    let stream = futures_util::stream::unfold((api, id, true, false), |(api, id, first, ended)| async move {
        if ended {
            return None;
        }
        if !first {
            tokio::time::sleep(EVENT_EVERY).await;
        }
        let record = api.registry.get(&id)?; // deleted meanwhile: the stream ends
        let end = record.state.is_finished() || api.registry.is_closed();
        let data = serde_json::to_string(&record).expect("records serialise");
        let event = Event::default().event(if end { "end" } else { "progress" }).data(data);
        Some((Ok::<_, Infallible>(event), (api, id, false, end)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// The CSV as it is now. While the run is going it ends at the last whole row written so far;
/// once the run ended it is the whole file.
async fn results_csv(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&api, &headers)?;
    let record = find(&api, &id)?;
    let path: PathBuf = api.registry.paths().csv(&id);
    let mut file = tokio::fs::File::open(&path).await.map_err(|_| match record.state {
        RunState::Queued | RunState::Scheduled => Problem::new(
            StatusCode::CONFLICT,
            format!("run {id} is {} and has no results yet; they appear once it starts", record.state.as_str()),
        ),
        _ => Problem::new(
            StatusCode::NOT_FOUND,
            format!(
                "run {id} has no CSV: it ended before sending anything ({})",
                record.message.as_deref().unwrap_or(record.state.as_str())
            ),
        ),
    })?;
    let io = |e: std::io::Error| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the CSV: {e}"));
    let mut len = file.metadata().await.map_err(io)?.len();
    if !record.state.is_finished() {
        len = whole_rows(&mut file, len).await.map_err(io)?;
        file.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
    }
    let chunks = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(64 * 1024) as usize];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"sluice-{id}.csv\"")),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// The length of `file`'s first `len` bytes up to and including the last newline.
async fn whole_rows(file: &mut tokio::fs::File, len: u64) -> std::io::Result<u64> {
    let tail = len.min(64 * 1024);
    file.seek(std::io::SeekFrom::Start(len - tail)).await?;
    let mut buf = vec![0u8; tail as usize];
    file.read_exact(&mut buf).await?;
    Ok(memchr::memrchr(b'\n', &buf).map_or(len - tail, |i| len - tail + i as u64 + 1))
}

async fn summary_json(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    finished_run_file(&api, &id, &headers, "summary", |paths| paths.summary(&id)).await
}

/// The run's manifest (`sluice merge` reads it beside the CSV): options (secrets redacted), logs
/// and their SHA-256, shard, start and counts.
async fn manifest_json(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    finished_run_file(&api, &id, &headers, "manifest", |paths| paths.manifest(&id)).await
}

/// A JSON file a run writes when it ends: 409 before, 404 when it ended without one.
/// A run the caller may read that has ended; 409 while it has not, saying `when` (what the
/// caller asked for is made once the run ends).
pub(super) fn ended_run(api: &Api, id: &str, headers: &HeaderMap, when: &str) -> Result<RunRecord, Problem> {
    authorize(api, headers)?;
    let record = find(api, id)?;
    if !record.state.is_finished() {
        return Err(Problem::new(StatusCode::CONFLICT, format!("run {id} is {}; {when}", record.state.as_str())));
    }
    Ok(record)
}

async fn finished_run_file(
    api: &Api,
    id: &str,
    headers: &HeaderMap,
    what: &str,
    path: impl Fn(&Paths) -> PathBuf,
) -> Result<Response, Problem> {
    let record = ended_run(api, id, headers, &format!("its {what} is written when it ends"))?;
    let bytes = tokio::fs::read(path(api.registry.paths())).await.map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            format!("run {id} ended without a {what} ({})", record.message.as_deref().unwrap_or(record.state.as_str())),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// One workbook is built at a time: a build keeps a core busy for seconds per million rows, and
/// the daemon's other requests and runs need the rest.
static WORKBOOK_BUILDS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// A finished run's results as an Excel workbook ([`crate::export::xlsx`]), built from its CSV
/// into a temporary directory beside it, then streamed from the open file: the directory is
/// gone before the first byte leaves.
async fn results_xlsx(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let record =
        ended_run(&api, &id, &headers, "its workbook is built once it ends (results.csv has the rows so far)")?;
    let csv = api.registry.paths().csv(&id);
    if !csv.is_file() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!(
                "run {id} has no CSV: it ended before sending anything ({})",
                record.message.as_deref().unwrap_or(record.state.as_str())
            ),
        ));
    }
    let _one_at_a_time = WORKBOOK_BUILDS.acquire().await.expect("the semaphore is never closed");
    let paths = api.registry.paths().clone();
    let filename = format!("attachment; filename=\"sluice-{id}.xlsx\"");
    let file = blocking(move || build_workbook(&paths, &record, &csv).map_err(RegistryError::Io)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file))),
    )
        .into_response())
}

/// The workbook of a finished run, open for reading, its file already removed. Messages name
/// the run's files, never the daemon's paths.
fn build_workbook(paths: &super::store::Paths, record: &RunRecord, csv: &FsPath) -> Result<std::fs::File, String> {
    use crate::export::xlsx;
    let id = &record.id;
    let failed = |e: &dyn std::fmt::Display| paths.hide(id, &format!("cannot build the workbook: {e}"));
    let files = [csv.to_path_buf()];
    let mut report = crate::analysis::analyse(&files, &crate::analysis::Settings::default()).map_err(|e| failed(&e))?;
    report.files.iter_mut().chain(&mut report.problems).for_each(|text| *text = paths.hide(id, text));
    let mut run = vec![
        ("run".to_string(), Value::from(id.as_str())),
        ("state".to_string(), Value::from(record.state.as_str())),
        ("created at".to_string(), Value::from(record.created_at.to_rfc3339())),
    ];
    for (label, at) in [("started at", record.started_at), ("finished at", record.finished_at)] {
        if let Some(at) = at {
            run.push((label.to_string(), Value::from(at.to_rfc3339())));
        }
    }
    for (label, text) in [("log format", &record.format), ("message", &record.message)] {
        if let Some(text) = text {
            run.push((label.to_string(), Value::from(paths.hide(id, text))));
        }
    }
    // The request as the record keeps it: secret header values are `[redacted]` there already.
    let mut options = serde_json::to_value(&record.options).map_err(|e| failed(&e))?;
    paths.hide_in(id, &mut options);
    let options = xlsx::lines_of(&options);
    let dir = tempfile::TempDir::new_in(csv.parent().unwrap_or(FsPath::new("."))).map_err(|e| failed(&e))?;
    let out = dir.path().join("results.xlsx");
    let contents = xlsx::Contents { files: &files, report: &report, run: &run, options: &options };
    xlsx::write(&contents, &out, xlsx::Layout::default()).map_err(|e| failed(&e))?;
    std::fs::File::open(&out).map_err(|e| failed(&e))
}
