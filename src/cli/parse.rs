//! `sluice parse`: read logs and show, line by line, how sluice understands them — so a user can
//! check their format before replaying anything.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Instant;

use serde::Serialize;
use sluice_parsers::{Entry, Format};

use crate::cli::{ParseArgs, ParseOutput};
use crate::config::FormatChoice;
use crate::display::{bytes_text, opt_text};
use crate::exit::Exit;
use crate::plan::reader::ParseStats;
use crate::plan::safety::{ALWAYS_REDACTED, REDACTED};
use crate::source::sniff::open_entries;
use crate::source::{Input, LogReader};

fn is_secret(header: &str) -> bool {
    ALWAYS_REDACTED.iter().any(|h| h.eq_ignore_ascii_case(header))
}

/// Rejected lines are shown one by one up to this many; the rest are only counted.
const SHOWN_REJECTIONS: u64 = 20;
/// Runs `sluice parse`: exit 0 when lines were accepted, 3 when they were but an input stopped
/// early (a truncated `.gz`), 2 when no line was accepted.
pub fn run(args: &ParseArgs) -> anyhow::Result<Exit> {
    // The throughput shown is all bytes read over all the time spent: reading ahead and picking
    // the format (which parses the first lines with every preset) included, as the bytes are.
    let started = Instant::now();
    let choice = FormatChoice::from_flag(&args.format)?;
    let max_line = crate::config::max_line_bytes(args.max_line_bytes).map_err(crate::exit::UsageError::from)?;
    let lines = LogReader::new(args.files.iter().map(|f| Input::from_arg(f)).collect())?.with_max_line_bytes(max_line);
    let mut reader = open_entries(&choice, lines)?;
    let format = reader.format_name().to_string();
    if matches!(choice, FormatChoice::Auto) {
        eprintln!("sluice: --format auto chose {format}");
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut csv_out = (args.output == ParseOutput::Csv).then(|| csv::Writer::from_writer(io::stdout().lock()));
    let mut stats = ParseStats::default();
    let stderr = io::stderr();
    let names = reader.input_names();

    while let Some(line) = reader.next_entry()? {
        match line.entry {
            Ok(entry) => {
                stats.accepted += 1;
                match args.output {
                    ParseOutput::None => {}
                    ParseOutput::Jsonl => {
                        serde_json::to_writer(&mut out, &JsonEntry::new(line.number, &entry))
                            .map_err(io::Error::from)?;
                        out.write_all(b"\n")?;
                    }
                    ParseOutput::Csv => {
                        let w = csv_out.as_mut().expect("csv writer exists for csv output");
                        if stats.accepted == 1 {
                            w.write_record(CSV_HEADER)?;
                        }
                        w.write_record(csv_row(line.number, &entry))?;
                    }
                }
            }
            Err(e) => {
                stats.reject(e.kind());
                if stats.rejected <= SHOWN_REJECTIONS {
                    writeln!(stderr.lock(), "{}:{}: {e}", names[line.input], line.number)?;
                }
            }
        }
    }
    out.flush()?;
    if let Some(mut w) = csv_out {
        w.flush()?;
    }
    let secs = started.elapsed().as_secs_f64();
    if stats.rejected > SHOWN_REJECTIONS {
        eprintln!("… and {} more rejected lines", stats.rejected - SHOWN_REJECTIONS);
    }
    let mb = reader.bytes_read() as f64 / 1e6;
    eprintln!(
        "sluice parse: format {}; accepted {} lines, rejected {}{}; {:.1} MB in {:.3} s ({:.0} MB/s)",
        format,
        stats.accepted,
        stats.rejected,
        if stats.rejected > 0 { format!(" ({})", stats.reasons_text()) } else { String::new() },
        mb,
        secs,
        mb / secs.max(1e-9),
    );
    let misfits: u64 = ["extra_fields", "space_in_field"].iter().filter_map(|k| stats.rejected_by_reason.get(k)).sum();
    if misfits > 0 {
        eprintln!(
            "sluice parse: {misfits} lines have fields that format {} does not name; to read them, give the log's \
             full format: --format 'nginx:<log_format>' or 'apache:<LogFormat>'",
            format
        );
    }
    if stats.accepted == 0 {
        eprintln!(
            "sluice parse: no line was accepted as format {}; try another --format (presets: auto, {}, or \
             'nginx:<log_format>' / 'apache:<LogFormat>')",
            format,
            Format::preset_names().join(", ")
        );
    }
    for cut in reader.cuts() {
        eprintln!("sluice parse: warning: {cut}");
    }
    Ok(if stats.accepted == 0 {
        Exit::BadInput
    } else if !reader.cuts().is_empty() {
        Exit::InputIncomplete
    } else {
        Exit::Ok
    })
}

/// The JSON shape of one accepted line; `-` in the log is `null` here.
#[derive(Serialize)]
struct JsonEntry<'a> {
    line: u64,
    remote_addr: Option<Cow<'a, str>>,
    remote_user: Option<Cow<'a, str>>,
    time: Option<String>,
    method: Cow<'a, str>,
    target: Cow<'a, str>,
    protocol: Option<Cow<'a, str>>,
    status: Option<u16>,
    bytes: Option<u64>,
    referer: Option<Cow<'a, str>>,
    user_agent: Option<Cow<'a, str>>,
    request_time_ms: Option<f64>,
    vhost: Option<Cow<'a, str>>,
    headers: BTreeMap<&'a str, Cow<'a, str>>,
    body: Option<Cow<'a, str>>,
    fields: BTreeMap<&'a str, Cow<'a, str>>,
}

impl<'a> JsonEntry<'a> {
    fn new(line: u64, e: &'a Entry<'a>) -> JsonEntry<'a> {
        JsonEntry {
            line,
            remote_addr: opt_text(&e.remote_addr),
            remote_user: opt_text(&e.remote_user),
            time: e.time.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            method: bytes_text(&e.method),
            target: bytes_text(&e.target),
            protocol: opt_text(&e.protocol),
            status: e.status,
            bytes: e.bytes,
            referer: opt_text(&e.referer),
            user_agent: opt_text(&e.user_agent),
            request_time_ms: e.request_time_ms,
            vhost: opt_text(&e.vhost),
            // What the log holds of secrets (cookies, credentials) is not repeated on screen.
            headers: e
                .headers
                .iter()
                .map(|(k, v)| (k.as_ref(), if is_secret(k) { Cow::Borrowed(REDACTED) } else { bytes_text(v) }))
                .collect(),
            body: opt_text(&e.body),
            fields: e.fields.iter().map(|(k, v)| (k.as_ref(), bytes_text(v))).collect(),
        }
    }
}

const CSV_HEADER: [&str; 16] = [
    "line",
    "remote_addr",
    "remote_user",
    "time",
    "method",
    "target",
    "protocol",
    "status",
    "bytes",
    "referer",
    "user_agent",
    "request_time_ms",
    "vhost",
    "headers",
    "body",
    "fields",
];

fn csv_row(line: u64, e: &Entry<'_>) -> [String; 16] {
    let opt = |v: &Option<sluice_parsers::Text<'_>>| {
        opt_text(v).map(|t| crate::display::spreadsheet_safe(&t)).unwrap_or_default()
    };
    let num = |v: Option<String>| v.unwrap_or_default();
    let json = JsonEntry::new(line, e);
    [
        line.to_string(),
        opt(&e.remote_addr),
        opt(&e.remote_user),
        num(json.time.clone()),
        crate::display::spreadsheet_safe(&json.method),
        crate::display::spreadsheet_safe(&json.target),
        opt(&e.protocol),
        num(e.status.map(|s| s.to_string())),
        num(e.bytes.map(|b| b.to_string())),
        opt(&e.referer),
        opt(&e.user_agent),
        num(e.request_time_ms.map(|t| t.to_string())),
        opt(&e.vhost),
        if json.headers.is_empty() { String::new() } else { serde_json::to_string(&json.headers).unwrap_or_default() },
        opt(&e.body),
        if json.fields.is_empty() { String::new() } else { serde_json::to_string(&json.fields).unwrap_or_default() },
    ]
}
