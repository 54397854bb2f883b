//! The command line: [`MockArgs`] (clap flags, reusable by the main `sluice` binary as
//! `sluice mock`) and [`run_cli`], which serves until Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{DEFAULT_BODY_BYTES, MockConfig};
use crate::error::MockError;
use crate::server::spawn;
use crate::spec::{BodyRule, BodyTemplate, LatencyModel, Rule, StatusDist};

/// Flags of `sluice-mock` (and `sluice mock`). The spec flags are parsed by the types' `FromStr`,
/// so a bad value is a clap error that names the flag and the allowed forms.
#[derive(Debug, Clone, clap::Args)]
pub struct MockArgs {
    /// Address to listen on; port 0 picks a free port. The URL is printed as the first line of
    /// stdout.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Allow --listen on an address other than loopback (the mock is a test tool: off by
    /// default so it is not exposed by accident).
    #[arg(long)]
    pub allow_non_loopback: bool,

    // Help given as an attribute, not a doc comment: rustdoc would read `[...]` as links.
    #[arg(
        long,
        value_name = "SPEC",
        default_value = "200",
        help = "Status mix, CODE[:WEIGHT],... e.g. 200:90,404:5,500:5. /status/NNN always answers NNN"
    )]
    pub status: StatusDist,

    /// Latency before each answer: FIXED (5ms), MIN..MAX (1ms..20ms) or lognormal:MEDIAN,P99
    /// (lognormal:5ms,80ms). Units: ns, us, ms, s.
    #[arg(long, value_name = "SPEC", default_value = "0")]
    pub latency: LatencyModel,

    #[arg(
        long = "rule",
        value_name = "PATH=ACTION",
        help = "Per-path override, first match wins; repeatable. PATH is /exact or /prefix/*; ACTION is \
                CODE[,LATENCY] (answer CODE), reset[,LATENCY] (close the connection with a TCP reset), \
                garbage[,LATENCY] (send bytes that are not HTTP), redirect[,LATENCY] (302 to \
                /redirected<path> here), redirect-away[,LATENCY] (302 to another host, which a \
                replayer must not follow), hang (never answer), or LATENCY alone. \
                E.g. --rule '/api/*=503,50ms' --rule /flaky=reset"
    )]
    pub rules: Vec<Rule>,

    /// Seed of the random statuses and latencies. A request's draw depends only on the seed and
    /// its key (its x-sluice-seq header, else its 0-based arrival number).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// Append every request as a JSON line to FILE (created or truncated).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Size of every response body in bytes (the pattern "ok\n" repeated).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BODY_BYTES)]
    pub body_bytes: usize,

    /// The body of every answer instead of the ok pattern: text in which {now} becomes the
    /// answer's time (ns since the Unix epoch: a field that always differs) and {seq} the request's
    /// arrival number, e.g. '{"v":1,"now":{now}}'. Sent as application/json when it starts with
    /// { or [.
    #[arg(long, value_name = "TEXT")]
    pub body: Option<BodyTemplate>,

    /// The body answered to some paths: PATH=TEXT, PATH being /exact or /prefix/*, TEXT as for
    /// --body. First match wins, before --body; repeatable.
    #[arg(long = "body-rule", value_name = "PATH=TEXT")]
    pub body_rules: Vec<BodyRule>,

    /// Print nothing on stderr (the URL still goes to stdout).
    // No `-q`: the main binary embeds these flags and may have its own short flags.
    #[arg(long)]
    pub quiet: bool,
}

impl MockArgs {
    /// The checks clap cannot do on one flag alone. A binary should turn an error here into a
    /// usage error (exit 2).
    pub fn validate(&self) -> Result<(), MockError> {
        if self.allow_non_loopback || self.listen.ip().is_loopback() {
            Ok(())
        } else {
            Err(MockError::NonLoopback(self.listen))
        }
    }

    /// The server configuration these flags ask for. The CLI keeps no per-request memory (it may
    /// run for hours); `--record` is its record.
    pub fn to_config(&self) -> Result<MockConfig, MockError> {
        self.validate()?;
        Ok(MockConfig {
            listen: self.listen,
            allow_non_loopback: self.allow_non_loopback,
            seed: self.seed,
            statuses: self.status.clone(),
            latency: self.latency,
            rules: self.rules.clone(),
            body_bytes: self.body_bytes,
            body: self.body.clone(),
            body_rules: self.body_rules.clone(),
            record_memory: false,
            record_file: self.record.clone(),
            ..MockConfig::default()
        })
    }
}

/// Runs the mock until Ctrl-C (or SIGTERM), then prints the counts to stderr and returns Ok.
/// `program` starts each line on stderr (`sluice-mock`, or `sluice mock` inside sluice), so a
/// user sees which command speaks.
pub async fn run_cli(args: MockArgs, program: &str) -> anyhow::Result<()> {
    let config = args.to_config()?;
    let server = spawn(config).await?;
    {
        // Scripts read the first line to learn the port; flush so they are not kept waiting.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", server.url())?;
        stdout.flush()?;
    }
    if !args.quiet {
        let rules: Vec<String> = args.rules.iter().map(ToString::to_string).collect();
        eprintln!(
            "{program}: listening on {} (seed {}, status {}, latency {}, rules [{}]); Ctrl-C to stop",
            server.url(),
            args.seed,
            args.status,
            args.latency,
            rules.join(" ")
        );
    }
    wait_for_stop_signal().await?;
    let flushed = server.shutdown().await;
    if !args.quiet {
        eprintln!("{}", server.counts());
    }
    Ok(flushed?)
}

async fn wait_for_stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
