//! The daemon's web page (`GET /`) and each run's HTML report (`GET /v1/runs/{id}/report.html`).
//!
//! The page is three files compiled into the binary: `index.html`, `app.js` (a small module
//! with no dependencies) and `style.css`. It holds no data: everything it shows it reads from
//! the `/v1` API with the token the user typed, so the page itself is served without one. Its
//! Content-Security-Policy lets only the daemon's own script run; the API's answers are put into
//! the page as text, never as markup.
//!
//! The report is `sluice report --html` on the run's CSV (and the manifest beside it), rendered
//! when asked for once the run has ended.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::api::{Api, Problem, blocking, ended_run};
use super::registry::RegistryError;
use crate::analysis::render::{self, ReportFormat};
use crate::analysis::{self, Settings};

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Only the daemon's own script runs, and the API is the only thing it talks to. Inline styles
/// are allowed because the run report is one self-contained file with its CSS inline, shown in a
/// sandboxed frame of this page (a `blob:` document takes this page's policy); scripts never are.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob:; frame-src blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The report opened on its own (a browser pointed at the URL, a saved copy served elsewhere):
/// no script, no request anywhere, its inline styles only.
const REPORT_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; sandbox";

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/", get(|| async { page("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/ui/app.js", get(|| async { page("text/javascript; charset=utf-8", APP_JS) }))
        .route("/ui/style.css", get(|| async { page("text/css; charset=utf-8", STYLE_CSS) }))
        .route("/v1/runs/{id}/report.html", get(report_html))
}

/// One of the page's files, with the headers that keep it from being framed, sniffed or cached
/// past the binary that serves it.
fn page(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, body).into_response()
}

/// The run's HTML report, as `sluice report --html` writes it from the run's CSV. A run that has
/// not ended gets 409: its CSV is still growing, and the page draws its progress live instead.
async fn report_html(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let record = ended_run(
        &api,
        &id,
        &headers,
        &format!(
            "its report is rendered once it ends (GET /v1/runs/{id}/events follows it live, /results.csv has the \
             rows so far)"
        ),
    )?;
    let csv: PathBuf = api.registry.paths().csv(&id);
    let html = blocking({
        let (id, ended_as) = (id.clone(), record.message.unwrap_or_else(|| record.state.as_str().to_string()));
        move || {
            if !csv.is_file() {
                return Err(RegistryError::NotFound(format!(
                    "run {id} has no CSV to report on: it ended before sending anything ({ended_as})"
                )));
            }
            // `sluice report --html` with its defaults: the same settings, the same renderer.
            let name = csv.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let mut report = analysis::analyse(&[csv], &Settings::default()).map_err(|e| {
                // The error names the daemon's own path: the log gets it, the client what to do.
                eprintln!("sluice daemon: run {id}: cannot render its report: {e}");
                RegistryError::Io(format!("cannot read run {id}'s CSV for its report; GET its results.csv as it is"))
            })?;
            // The CSV by its name, as the run's summary and manifest give it: never the daemon's path.
            report.files = vec![name];
            Ok(render::render(&report, ReportFormat::Html))
        }
    })
    .await?;
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, REPORT_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response();
    if let Ok(disposition) = HeaderValue::from_str(&format!("inline; filename=\"sluice-{id}-report.html\"")) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
