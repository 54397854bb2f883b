//! The daemon's settings: `sluice daemon`'s flags over its `--config` file, checked once into a
//! [`DaemonConfig`] (a token for anything but loopback, every cap within its ceiling).
//!
//! The flag docs here are `sluice daemon --help`: written for a terminal, not for rustdoc.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::auth::{Token, TokenSource};
use super::policy::{AllowList, Caps, Policy, TlsPolicy};
use super::store::Paths;
use crate::config::TlsSettings;
use crate::config::tls::ClientIdentity;
use crate::duration::parse_duration;
use crate::exit::UsageError;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
const DEFAULT_MAX_UPLOAD_MIB: u64 = 1024;
/// The most any cap may be set to: the CLI's own bounds, and what one daemon can hold.
const CEILING_RATE: f64 = 10_000_000.0;
const CEILING_CONCURRENCY: usize = 100_000;
const CEILING_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
const CEILING_QUEUED_RUNS: usize = 10_000;

/// Flags of `sluice daemon`. The token is deliberately not among them: argv is visible to every
/// user of the machine.
#[derive(Debug, Default, Clone, Args)]
pub struct DaemonArgs {
    /// Address to listen on. Anything but loopback requires a token (--token-file or SLUICE_TOKEN)
    /// [default: 127.0.0.1:7878].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Directory for run records, CSVs and summaries; created if missing. Required.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Directory uploaded logs are kept in; runs can only read logs from here [default: STATE_DIR/logs].
    #[arg(long, value_name = "DIR")]
    pub logs_dir: Option<PathBuf>,

    /// File holding the API token (otherwise SLUICE_TOKEN is read). With a token, every request
    /// that changes something needs 'Authorization: Bearer <token>'.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Targets runs may send to: 'loopback', 'mock' (the built-in mock server), or
    /// http(s)://HOST[:PORT][/PREFIX] with HOST a name, an address, '*.domain' or '*', PORT a
    /// number or '*'. Repeatable [default: loopback].
    #[arg(long = "allow-target", value_name = "PATTERN")]
    pub allow_target: Vec<String>,

    /// Runs at once; more wait in a queue, in order [default: 1].
    #[arg(long, value_name = "N")]
    pub max_concurrent_runs: Option<usize>,

    /// Largest log upload, in MiB, counted both as sent and, for gzip, as decompressed (what a
    /// run reads) [default: 1024].
    #[arg(long, value_name = "MIB")]
    pub max_upload_mib: Option<u64>,

    /// Highest `rate` a run may ask for, in requests per second; `"max"` is refused [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_rate: Option<f64>,

    /// Highest `concurrency` (requests in flight) a run may ask for [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<usize>,

    /// Longest `duration` a run may ask for; a run without one is ended here too [default: 24h].
    #[arg(long, value_name = "DURATION")]
    pub max_duration: Option<String>,

    /// Runs that may wait at once (queued + scheduled); more are refused with 429 [default: 100].
    #[arg(long, value_name = "N")]
    pub max_queued_runs: Option<usize>,

    /// Trust the certificates of this PEM bundle for every https run, besides the system's roots
    /// (a caller may add its own as PEM text in `ca_pem`, never as a file name).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// The client certificate (PEM) every https run presents when its target asks (mTLS); with
    /// --client-key. Callers cannot send one: a private key never travels through the API.
    #[arg(long, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,

    /// The PEM private key of --client-cert.
    #[arg(long, value_name = "FILE")]
    pub client_key: Option<PathBuf>,

    /// Let callers set `"insecure": true` (no certificate verification) [default: refused].
    #[arg(long)]
    pub allow_insecure: bool,

    /// Read any of these options from a TOML file (keys named like the flags); flags win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The daemon's `--config` file: the same options as the flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DaemonFile {
    listen: Option<SocketAddr>,
    state_dir: Option<PathBuf>,
    logs_dir: Option<PathBuf>,
    token_file: Option<PathBuf>,
    allow_target: Vec<String>,
    max_concurrent_runs: Option<usize>,
    max_upload_mib: Option<u64>,
    max_rate: Option<f64>,
    max_concurrency: Option<usize>,
    max_duration: Option<String>,
    max_queued_runs: Option<usize>,
    ca_cert: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    allow_insecure: bool,
}

/// Everything the daemon needs, checked.
#[derive(Debug)]
pub struct DaemonConfig {
    /// Where `sluice daemon` listens; [`super::serve`] serves whatever listener it is given.
    pub listen: SocketAddr,
    pub paths: Paths,
    pub token: Option<(Token, TokenSource)>,
    pub policy: Policy,
    pub max_concurrent_runs: usize,
    pub max_upload_bytes: u64,
}

impl DaemonConfig {
    /// Flags over the `--config` file, with the token from `token_env` (SLUICE_TOKEN) when no
    /// file names one. Refuses a non-loopback address without a token before anything is bound.
    pub fn resolve(args: &DaemonArgs, token_env: Option<String>) -> Result<DaemonConfig, UsageError> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => DaemonFile::default(),
        };
        let caps = resolve_caps(args, &file)?;
        let tls = resolve_tls(args, &file)?;
        let listen = match args.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().expect("a valid default address"),
        };
        let state_dir = args.state_dir.clone().or(file.state_dir).ok_or_else(|| {
            UsageError("--state-dir is required: where run records and CSVs are kept (or state-dir in --config)".into())
        })?;
        let logs_dir = args.logs_dir.clone().or(file.logs_dir).unwrap_or_else(|| state_dir.join("logs"));
        let token_file = args.token_file.clone().or(file.token_file);
        let token = Token::load(token_file.as_deref(), token_env).map_err(UsageError)?;
        if !listen.ip().is_loopback() && token.is_none() {
            return Err(UsageError(format!(
                "--listen {listen} is not a loopback address: set a token (--token-file FILE or SLUICE_TOKEN) so \
                 only its holders can start runs and upload logs"
            )));
        }
        let patterns = if args.allow_target.is_empty() { file.allow_target } else { args.allow_target.clone() };
        let allow = AllowList::parse(&patterns).map_err(UsageError)?;
        let max_concurrent_runs = args.max_concurrent_runs.or(file.max_concurrent_runs).unwrap_or(1);
        if max_concurrent_runs == 0 || max_concurrent_runs > 64 {
            return Err(UsageError("--max-concurrent-runs must be between 1 and 64".into()));
        }
        let mib = args.max_upload_mib.or(file.max_upload_mib).unwrap_or(DEFAULT_MAX_UPLOAD_MIB);
        if mib == 0 || mib > 1024 * 1024 {
            return Err(UsageError("--max-upload-mib must be between 1 and 1048576".into()));
        }
        Ok(DaemonConfig {
            listen,
            paths: Paths { state_dir, logs_dir },
            token,
            policy: Policy { allow, caps, tls },
            max_concurrent_runs,
            max_upload_bytes: mib * 1024 * 1024,
        })
    }
}

/// The caps on what a caller may ask, flags over the file, each within its ceiling.
fn resolve_caps(args: &DaemonArgs, file: &DaemonFile) -> Result<Caps, UsageError> {
    let default = Caps::default();
    let max_rate = args.max_rate.or(file.max_rate).unwrap_or(default.max_rate);
    if !(max_rate.is_finite() && max_rate > 0.0 && max_rate <= CEILING_RATE) {
        return Err(UsageError(format!("--max-rate must be more than 0 and at most {CEILING_RATE}")));
    }
    let max_concurrency = args.max_concurrency.or(file.max_concurrency).unwrap_or(default.max_concurrency);
    if max_concurrency == 0 || max_concurrency > CEILING_CONCURRENCY {
        return Err(UsageError(format!("--max-concurrency must be between 1 and {CEILING_CONCURRENCY}")));
    }
    let max_duration = match args.max_duration.clone().or(file.max_duration.clone()) {
        Some(text) => parse_duration(&text).map_err(|m| UsageError(format!("--max-duration: {m}")))?,
        None => default.max_duration,
    };
    if max_duration > CEILING_DURATION {
        return Err(UsageError("--max-duration must be at most 30 days (720h)".into()));
    }
    let max_queued_runs = args.max_queued_runs.or(file.max_queued_runs).unwrap_or(default.max_queued_runs);
    if max_queued_runs == 0 || max_queued_runs > CEILING_QUEUED_RUNS {
        return Err(UsageError(format!("--max-queued-runs must be between 1 and {CEILING_QUEUED_RUNS}")));
    }
    Ok(Caps { max_rate, max_concurrency, max_duration, max_queued_runs })
}

/// The operator's TLS for every run, flags over the file: the files are read and checked here,
/// at start-up, so a wrong one stops the daemon rather than every run.
fn resolve_tls(args: &DaemonArgs, file: &DaemonFile) -> Result<TlsPolicy, UsageError> {
    let mut given = TlsSettings::default();
    if let Some(path) = args.ca_cert.as_ref().or(file.ca_cert.as_ref()) {
        given.add_ca_file("--ca-cert", path).map_err(UsageError::from)?;
    }
    let cert = args.client_cert.as_ref().or(file.client_cert.as_ref());
    let key = args.client_key.as_ref().or(file.client_key.as_ref());
    given.client_identity = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientIdentity::load(cert, key).map_err(UsageError::from)?),
        (None, None) => None,
        _ => return Err(UsageError("--client-cert and --client-key go together: give both or neither".into())),
    };
    Ok(TlsPolicy { given, allow_insecure: args.allow_insecure || file.allow_insecure })
}

fn load_file(path: &Path) -> Result<DaemonFile, UsageError> {
    let shown = path.display();
    let text = crate::config::read_small_file(path, crate::config::CONFIG_FILE_BYTES)
        .map_err(|e| UsageError(format!("--config {shown}: {e}")))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| UsageError(format!("--config {shown}: {e}")))?;
    if table.contains_key("token") {
        return Err(UsageError(format!(
            "--config {shown}: `token` is not read from the config file; use token-file (or SLUICE_TOKEN)"
        )));
    }
    let normalised: toml::Table = table.into_iter().map(|(k, v)| (k.replace('-', "_"), v)).collect();
    toml::Value::Table(normalised).try_into().map_err(|e: toml::de::Error| UsageError(format!("--config {shown}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: &str) -> DaemonArgs {
        DaemonArgs { listen: Some(listen.parse().unwrap()), state_dir: Some("/tmp/s".into()), ..Default::default() }
    }

    #[test]
    fn a_non_loopback_address_needs_a_token() {
        // Checked before anything is bound: these tests never listen on anything.
        let err = DaemonConfig::resolve(&args("0.0.0.0:7878"), None).unwrap_err();
        assert!(err.0.contains("not a loopback address"), "{err}");
        assert!(DaemonConfig::resolve(&args("0.0.0.0:7878"), Some("a-long-enough-token-123".into())).is_ok());
        let config = DaemonConfig::resolve(&args("127.0.0.1:0"), None).unwrap();
        assert!(config.token.is_none());
        assert_eq!(config.paths.logs_dir, PathBuf::from("/tmp/s/logs"));
        assert_eq!(config.policy, Policy::default());
    }

    #[test]
    fn the_config_file_holds_defaults_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nstate-dir = \"/var/lib/sluice\"\nallow-target = [\"mock\"]\n\
             max-concurrent-runs = 3\n",
        )
        .unwrap();
        let from_file =
            DaemonConfig::resolve(&DaemonArgs { config: Some(path.clone()), ..Default::default() }, None).unwrap();
        assert_eq!(from_file.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(from_file.paths.state_dir, PathBuf::from("/var/lib/sluice"));
        assert_eq!(from_file.max_concurrent_runs, 3);
        let flags = DaemonArgs { config: Some(path.clone()), max_concurrent_runs: Some(2), ..args("127.0.0.1:1") };
        let merged = DaemonConfig::resolve(&flags, None).unwrap();
        assert_eq!((merged.listen.port(), merged.max_concurrent_runs), (1, 2));
        std::fs::write(&path, "# padding\n".repeat(200_000)).unwrap();
        let refused = DaemonConfig::resolve(&DaemonArgs { config: Some(path.clone()), ..Default::default() }, None);
        assert!(refused.is_err_and(|e| e.0.contains("longer than 1048576 bytes")));
        std::fs::write(&path, "token = \"secret-secret-secret\"\n").unwrap();
        assert!(DaemonConfig::resolve(&DaemonArgs { config: Some(path.clone()), ..Default::default() }, None).is_err());
        std::fs::write(&path, "bogus = 1\n").unwrap();
        assert!(DaemonConfig::resolve(&DaemonArgs { config: Some(path), ..Default::default() }, None).is_err());
    }

    #[test]
    fn missing_state_dir_and_bad_limits_are_usage_errors() {
        assert!(DaemonConfig::resolve(&DaemonArgs::default(), None).unwrap_err().0.contains("--state-dir"));
        assert!(
            DaemonConfig::resolve(&DaemonArgs { max_concurrent_runs: Some(0), ..args("127.0.0.1:0") }, None).is_err()
        );
        assert!(
            DaemonConfig::resolve(&DaemonArgs { allow_target: vec!["ftp://x".into()], ..args("127.0.0.1:0") }, None)
                .is_err()
        );
        for bad in [
            DaemonArgs { max_rate: Some(0.0), ..args("127.0.0.1:0") },
            DaemonArgs { max_rate: Some(f64::INFINITY), ..args("127.0.0.1:0") },
            DaemonArgs { max_concurrency: Some(100_001), ..args("127.0.0.1:0") },
            DaemonArgs { max_duration: Some("31d".into()), ..args("127.0.0.1:0") },
            DaemonArgs { max_duration: Some("soon".into()), ..args("127.0.0.1:0") },
            DaemonArgs { max_queued_runs: Some(0), ..args("127.0.0.1:0") },
        ] {
            let err = DaemonConfig::resolve(&bad, None).unwrap_err();
            assert!(err.0.starts_with("--max-"), "{err}");
        }
    }

    #[test]
    fn the_example_config_in_deploy_is_valid() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/sluice.toml");
        let config = DaemonConfig::resolve(&DaemonArgs { config: Some(path), ..args("127.0.0.1:0") }, None).unwrap();
        assert_eq!(config.policy.caps, Caps::default(), "the example shows the defaults");
        assert_eq!(config.max_upload_bytes, 4096 * 1024 * 1024);
    }

    #[test]
    fn caps_come_from_flags_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "max-rate = 500.0\nmax-duration = \"2h\"\nmax-queued-runs = 7\n").unwrap();
        let config = DaemonConfig::resolve(
            &DaemonArgs { config: Some(path), max_rate: Some(50.0), ..args("127.0.0.1:0") },
            None,
        )
        .unwrap();
        let caps = config.policy.caps;
        assert_eq!((caps.max_rate, caps.max_queued_runs), (50.0, 7));
        assert_eq!(caps.max_duration, Duration::from_secs(7200));
        assert_eq!(caps.max_concurrency, Caps::default().max_concurrency);
    }
}
