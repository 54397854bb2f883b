//! Scenarios from other tools as a user runs them: `sluice import tsung FILE.xml` writes the
//! generated access log and the `--config` file that replays it; `sluice replay --scenario
//! FILE.xml` generates the same log into a temporary file and replays it at once, exactly as the
//! imported config would. See [`crate::scenario`] for what is generated and why.
#![allow(rustdoc::invalid_html_tags)] // the argument docs are --help text, which names XML elements

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};

use crate::config::ReplayOptions;
use crate::display::human_duration;
use crate::exit::{Exit, UsageError};
use crate::scenario::generate::{Generated, Limits, write_log};
use crate::scenario::{Scenario, tsung};

/// The seed when none is given: fixed, so an import and a `--scenario` run of the same file
/// generate the same log.
pub const DEFAULT_SEED: u64 = 0;

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub kind: ImportKind,
}

#[derive(Debug, Subcommand)]
pub enum ImportKind {
    /// Turn a Tsung configuration into a generated access log and a --config file that replays it.
    #[command(after_help = EXAMPLES)]
    Tsung(TsungImportArgs),
}

/// The examples under `sluice import --help` and `sluice import tsung --help`.
pub const EXAMPLES: &str = "\
Examples:
  # Writes ./tsung.jsonl and ./tsung.toml, prints what came from where
  sluice import tsung tsung.xml
  # Into another directory, with other random draws (arrivals, sessions…)
  sluice import tsung tsung.xml --out scenarios --seed 7
  # Replay it as Tsung would have run it, then twice as fast
  sluice replay --config tsung.toml --target http://staging.internal:8080
  sluice replay --config tsung.toml --target http://staging.internal:8080 \\
      --speed 2
  # Or in one step, without writing the files
  sluice replay --scenario tsung.xml --target http://staging.internal:8080";

#[derive(Debug, Args)]
pub struct TsungImportArgs {
    /// The Tsung configuration (at most 10 MB). Arrival phases, ts_http sessions, requests, think
    /// times and transactions are read; anything else that changes the traffic (dynamic
    /// variables, <match>, loops, other protocols) is refused by element and line.
    #[arg(value_name = "FILE.xml")]
    pub file: PathBuf,

    /// Directory to write NAME.jsonl and NAME.toml into (NAME: FILE's name without .xml);
    /// files of those names are replaced.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,

    /// Seed of every random draw: when users arrive (Poisson, as Tsung starts them), which
    /// session each plays, random think times. The same seed, the same log [default: 0].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// `sluice import …`.
pub fn run(args: &ImportArgs) -> anyhow::Result<Exit> {
    match &args.kind {
        ImportKind::Tsung(tsung) => import_tsung(tsung),
    }
}

fn import_tsung(args: &TsungImportArgs) -> anyhow::Result<Exit> {
    let scenario = tsung::read(&args.file).map_err(|e| UsageError(e.to_string()))?;
    let seed = args.seed.unwrap_or(DEFAULT_SEED);
    let name = args.file.file_stem().and_then(|s| s.to_str()).filter(|s| !s.is_empty()).unwrap_or("tsung");
    std::fs::create_dir_all(&args.out).map_err(|e| UsageError(format!("--out {}: {e}", args.out.display())))?;
    // The config names its log by absolute path: `--config` reads `files` from the working
    // directory, and the config must work from any.
    let dir = args.out.canonicalize().map_err(|e| UsageError(format!("--out {}: {e}", args.out.display())))?;
    let (log, config) = (dir.join(format!("{name}.jsonl")), dir.join(format!("{name}.toml")));
    let file = std::fs::File::create(&log).map_err(|e| UsageError(format!("{}: {e}", log.display())))?;
    let generated = write_log(&scenario, seed, Limits::default(), file)
        .map_err(|e| UsageError(format!("{}: {e}", log.display())))?;
    let text = config_text(&args.file, &scenario, &generated, seed, &log)?;
    std::fs::write(&config, text).map_err(|e| UsageError(format!("{}: {e}", config.display())))?;
    print!("{}", summary_text(&args.file, &scenario, &generated, seed));
    println!("  wrote     {} and {}", log.display(), config.display());
    println!("  replay    sluice replay --config {} --target URL", config.display());
    Ok(Exit::Ok)
}

/// What an import or a `--scenario` run tells the user: phases, users, requests, span,
/// sessions by share, and the notes.
fn summary_text(file: &Path, scenario: &Scenario, generated: &Generated, seed: u64) -> String {
    let mut t = format!("sluice: Tsung scenario {}\n", file.display());
    let _ = writeln!(t, "  phases    {}", phases_text(scenario).join("; "));
    let _ = writeln!(
        t,
        "  generated {} users, {} requests over {} (seed {seed}; at most {} users active at once)",
        generated.users,
        generated.requests,
        human_duration(rounded(generated.span)),
        generated.peak_active_users
    );
    let _ = writeln!(t, "  sessions  {}", sessions_text(scenario, generated).join(", "));
    let methods: Vec<&str> = generated.methods.iter().map(String::as_str).collect();
    let _ = writeln!(t, "  methods   {}", methods.join(", "));
    for note in &scenario.notes {
        let _ = writeln!(t, "  note      {note}");
    }
    t
}

fn phases_text(scenario: &Scenario) -> Vec<String> {
    let mut phases: Vec<String> = scenario
        .phases
        .iter()
        .map(|p| {
            let max = p.max_users.map(|m| format!(", at most {m} users")).unwrap_or_default();
            format!("phase {}: {} at {} users/s{max}", p.number, human_duration(p.duration), round(p.users_per_second))
        })
        .collect();
    if let Some(cutoff) = scenario.cutoff {
        phases.push(format!("the load stops at {}", human_duration(cutoff)));
    }
    phases
}

fn sessions_text(scenario: &Scenario, generated: &Generated) -> Vec<String> {
    let total: f64 = scenario.sessions.iter().map(|s| s.share).sum();
    scenario
        .sessions
        .iter()
        .zip(&generated.users_by_session)
        .map(|(s, users)| format!("{} {}% ({users} users)", s.name, round(s.share / total * 100.0)))
        .collect()
}

/// Three significant decimals at most: `0.333`, `10`.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The `--config` file that replays the generated log, with a comment block saying what came
/// from where and what was ignored.
fn config_text(
    file: &Path,
    scenario: &Scenario,
    generated: &Generated,
    seed: u64,
    log: &Path,
) -> anyhow::Result<String> {
    let quoted = |text: &str| toml::Value::String(text.to_string()).to_string();
    let log_text = log.to_str().ok_or_else(|| UsageError(format!("{}: not a UTF-8 path", log.display())))?;
    let mut t = String::new();
    let _ = writeln!(t, "# Replays the Tsung scenario {} (sluice import tsung, seed {seed}):", file.display());
    let _ = writeln!(t, "#   sluice replay --config THIS_FILE --target http://host:port");
    let _ = writeln!(t, "# `speed = 2` (or --speed 2) plays it twice as fast.");
    let _ = writeln!(t, "#");
    let _ = writeln!(t, "# From <load>: {}.", phases_text(scenario).join("; "));
    let _ = writeln!(t, "#   Users start at Poisson arrivals over each phase, as Tsung starts them.");
    let _ = writeln!(t, "# From <sessions>: {}.", sessions_text(scenario, generated).join(", "));
    let _ = writeln!(t, "#   Each user plays one session, its think times included; remote_user names it.");
    let _ = writeln!(
        t,
        "# Generated: {} users, {} requests over {}, one line each in the log below.",
        generated.users,
        generated.requests,
        human_duration(rounded(generated.span))
    );
    let _ = writeln!(t, "# The scenario's methods are allowed (a log allows GET, HEAD and OPTIONS by default).");
    for note in &scenario.notes {
        let _ = writeln!(t, "# Note: {note}.");
    }
    let methods: Vec<&str> = generated.methods.iter().map(String::as_str).collect();
    let _ = writeln!(t, "files = [{}]", quoted(log_text));
    let _ = writeln!(t, "format = \"json\"");
    let _ = writeln!(t, "speed = 1");
    let _ = writeln!(t, "# Each simulated user is a session: its requests leave one after the other, as in Tsung.");
    let _ = writeln!(t, "sessions = \"user\"");
    let _ = writeln!(t, "allow-methods = {}", quoted(&methods.join(",")));
    Ok(t)
}

/// A generated log in the temporary directory, removed when dropped.
pub struct TemporaryLog {
    path: PathBuf,
}

impl Drop for TemporaryLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// For `sluice replay --scenario FILE`: the replay options that play the scenario's generated log
/// (written to a temporary file, removed when the returned guard drops), or `None` without
/// `--scenario`. Options from `--config` are merged first, so the checks see both.
pub fn scenario_replay(args: &ReplayOptions) -> anyhow::Result<Option<(ReplayOptions, TemporaryLog)>> {
    let Some(path) = &args.scenario else { return Ok(None) };
    let mut options = args.with_config_file().map_err(UsageError::from)?;
    let conflicts: Vec<&str> = [
        (!options.files.is_empty(), "log FILES"),
        (options.rate.is_some(), "--rate"),
        (options.stages.is_some(), "--stages"),
        (options.arrivals.is_some(), "--arrivals"),
        (options.format.is_some(), "--format"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    if !conflicts.is_empty() {
        return Err(UsageError(format!(
            "--scenario: cannot be combined with {}: the scenario generates the log (json) and its timing is the \
             plan; --speed plays it faster or slower",
            conflicts.join(", ")
        ))
        .into());
    }
    let scenario = tsung::read(path).map_err(|e| UsageError(e.to_string()))?;
    let seed = options.seed.unwrap_or(DEFAULT_SEED);
    let (file, log) = temporary_file()?;
    let generated = write_log(&scenario, seed, Limits::default(), file)
        .map_err(|e| UsageError(format!("--scenario {}: {e}", path.display())))?;
    eprint!("{}", summary_text(path, &scenario, &generated, seed));
    options.files = vec![log.path.clone()];
    options.format = Some("json".into());
    options.speed = options.speed.or(Some("1".into()));
    // Each simulated user is a session: its next request leaves once the previous one is answered.
    options.sessions = options.sessions.or(Some("user".into()));
    let methods: Vec<&str> = generated.methods.iter().map(String::as_str).collect();
    options.allow_methods = options.allow_methods.or(Some(methods.join(",")));
    // The seed was the scenario's; the generated log's own timing needs none.
    options.seed = None;
    options.scenario = None;
    options.config = None;
    Ok(Some((options, log)))
}

/// A new file in the temporary directory, named so that concurrent runs never share one.
fn temporary_file() -> anyhow::Result<(std::fs::File, TemporaryLog)> {
    let dir = std::env::temp_dir();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    for attempt in 0..100u32 {
        let path = dir.join(format!("sluice-scenario-{}-{nanos}-{attempt}.jsonl", std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, TemporaryLog { path })),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(UsageError(format!("cannot create a file in {}: {e}", dir.display())).into()),
        }
    }
    Err(UsageError(format!("cannot create a new file in {}", dir.display())).into())
}

/// A span shown to the millisecond.
fn rounded(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(d.as_millis() as u64)
}
