//! `sluice k8s job`: the Kubernetes manifests of a run sharded over K pods, so nobody hand-edits
//! YAML. An Indexed Job runs the shards — each pod `sluice replay … --shard auto/K --start-at T`,
//! its JOB_COMPLETION_INDEX picking its share of the plan, all starting at the same instant — and
//! a suspended Job, resumed once the shards are done, merges their results and reports on them.
//! `deploy/k8s/` is this output for one example run, with comments.
//!
//! Everything the user gives becomes one element of a container's `args` list: no shell reads
//! it. The kubelet still expands `$(VAR)` in args, so every `$` given is doubled (`$$` is its
//! escape for `$`); the one expansion left is ours, the shard index in the result's path.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::config::{ConfigError, ReplayConfig, ReplayOptions, Target, bad, parse_target};
use crate::display::compact_duration;
use crate::duration::parse_duration;
use crate::exit::{Exit, UsageError};
use crate::pace::schedule::{Arrivals, Shape};

#[derive(Debug, Args)]
pub struct K8sArgs {
    #[command(subcommand)]
    pub kind: K8sKind,
}

#[derive(Debug, Subcommand)]
pub enum K8sKind {
    /// Print the manifests of a run sharded over K pods: an Indexed Job of `sluice replay`
    /// shards and a suspended Job that merges their results (YAML, for kubectl apply).
    #[command(after_help = EXAMPLES)]
    Job(JobArgs),
}

/// The examples under `sluice k8s --help` and `sluice k8s job --help`.
pub const EXAMPLES: &str = "\
Examples:
  # 8 pods sending 8000 req/s together for 30 minutes, from 10 minutes on
  sluice k8s job --shards 8 --image registry.example/sluice:0.1.0 \\
      --log pvc:sluice-logs/access.log.gz \\
      --target http://shop.staging.svc:8080 --rate 8000 --duration 30m \\
      --start-at now+10m > run.yaml
  # then: kubectl apply -f run.yaml (run.yaml says what comes next)
  # A ramp at a fixed time, with more replay flags for every shard
  sluice k8s job --shards 4 --image registry.example/sluice:0.1.0 \\
      --log configmap:sample-log/access.log --target http://web:80 \\
      --stages 5m:0-400,20m:400 --start-at 2026-12-01T02:00:00Z \\
      -- --concurrency 256 --header 'X-Load-Test: 1'";

/// Most shards of one run: a Job of a thousand pods is already a large cluster's worth.
pub const MAX_SHARDS: u32 = 1000;
/// The user and group every container runs as: no image needs root to send HTTP requests.
const RUN_AS: u32 = 65532;
/// How far ahead `--start-at` may be: a month, like the longest `--duration`.
const MAX_LEAD: Duration = Duration::from_secs(30 * 86_400);
/// The longest `--deadline`.
const MAX_DEADLINE: Duration = Duration::from_secs(31 * 86_400);
/// Added to a run of known length for the default `--deadline`: time to read the log's start and
/// write the results after the drain.
const DEADLINE_MARGIN: Duration = Duration::from_secs(600);
/// The merge Job's deadline from its resume: merging streams, so hours mean something is stuck.
const MERGE_DEADLINE: Duration = Duration::from_secs(6 * 3600);
/// `--cpu`, in cores.
const CPU: std::ops::RangeInclusive<f64> = 0.1..=64.0;
/// `--memory`, in MiB.
const MEMORY_MIB: std::ops::RangeInclusive<u64> = 64..=256 * 1024;
/// The emptyDir at /tmp (the root filesystem is read-only).
const TMP_SIZE: &str = "1Gi";
/// Longest Job name: the merge Job adds `-merge`, and a Job's name is also a label value (63).
const MAX_NAME: usize = 63 - "-merge".len();
/// Where each log volume is mounted: /logs/0, /logs/1, … in the order first named.
const LOGS_DIR: &str = "/logs";
/// Where the results volume is mounted: in a shard, its own directory NAME/INDEX of the volume;
/// in the merge pod, the run's directory NAME.
const RESULTS_DIR: &str = "/results";
/// The environment variable the Job controller sets to the pod's index, read by `--shard auto/K`.
const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("shape").required(true).args(["rate", "stages", "speed"])))]
pub struct JobArgs {
    /// Number of shards, one pod each, 1 to 1000. Shard I sends the requests n of the plan with
    /// n mod K = I at their planned times, so together they send what one replay would.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SHARDS)))]
    pub shards: u32,

    /// Container image with `sluice` on its PATH, e.g. registry.example/sluice:0.1.0.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,

    /// A log to replay; repeat for several, read in order. `pvc:CLAIM/PATH`: a file on a
    /// PersistentVolumeClaim (mounted read-only); `configmap:NAME/KEY`: a key of a ConfigMap
    /// (at most 1 MiB, so a sample); `/PATH`: a file already in the image.
    #[arg(long = "log", value_name = "SOURCE", required = true)]
    pub logs: Vec<String>,

    /// Where to send, as the pods reach it: http(s)://host[:port][/prefix].
    #[arg(long, value_name = "URL")]
    pub target: String,

    /// Requests per second of the whole run (each shard sends 1/K of them), or `max` (each shard
    /// as fast as its in-flight limit allows).
    #[arg(long, value_name = "N|max")]
    pub rate: Option<String>,

    /// Ramp stages of the whole run, as `sluice replay --stages` reads them.
    #[arg(long, value_name = "STAGES")]
    pub stages: Option<String>,

    /// Replay at the log's own timing, X times faster, as `sluice replay --speed`.
    #[arg(long, value_name = "X")]
    pub speed: Option<String>,

    /// Stop scheduling after this long, as `sluice replay --duration` (the log loops).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,

    /// When every shard starts: RFC 3339 (2026-12-01T02:00:00Z) or now+DURATION (now+10m),
    /// resolved here to a time printed on stderr. Leave time to schedule the pods and pull the
    /// image: a shard that starts after it refuses to run. Required.
    #[arg(long, value_name = "TIME|now+D")]
    pub start_at: String,

    /// Name of the shard Job; the merge Job is NAME-merge, the results go to NAME/ on the
    /// results volume. Lowercase letters, digits and '-', at most 57 [default: sluice-<start
    /// time>, e.g. sluice-20261201-020000].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Namespace of both Jobs [default: none written: kubectl's current namespace].
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,

    /// PersistentVolumeClaim the results go to; every shard writes to it at once, from its own
    /// node, so it must be ReadWriteMany, writable by user 65532.
    #[arg(long, value_name = "NAME", default_value = "sluice-results")]
    pub results_pvc: String,

    /// Longest a shard may run after --start-at before Kubernetes stops it (the Job's
    /// activeDeadlineSeconds, which also counts the wait until --start-at) [default: the run's
    /// length + the drain timeout + 10m; required when the length is not known].
    #[arg(long, value_name = "D")]
    pub deadline: Option<String>,

    /// CPU cores of each pod, requested and limited alike (Guaranteed QoS: a shard is never
    /// retried, so it must not be the first evicted), 0.1 to 64.
    #[arg(long, value_name = "CORES", default_value = "1")]
    pub cpu: String,

    /// Memory of each pod, requested and limited alike, in Mi or Gi, 64Mi to 256Gi.
    #[arg(long, value_name = "SIZE", default_value = "1Gi")]
    pub memory: String,

    /// The merge Job merges the shards that completed and names the missing ones
    /// (`sluice merge --allow-partial`), instead of refusing an incomplete set.
    #[arg(long)]
    pub allow_partial: bool,

    /// More `sluice replay` flags for every shard, after `--`, e.g. `-- --concurrency 256`. Each
    /// becomes one argument of the container as written, never a shell's; they are checked as
    /// `sluice replay` checks them.
    #[arg(last = true, value_name = "REPLAY FLAGS")]
    pub replay_flags: Vec<String>,
}

/// `sluice k8s …`.
pub fn run(args: &K8sArgs) -> anyhow::Result<Exit> {
    match &args.kind {
        K8sKind::Job(job) => {
            let run = manifests(job, Utc::now())?;
            eprintln!(
                "sluice: {} shards start at {} (--start-at {}); apply before then",
                job.shards,
                time_text(run.start_at),
                job.start_at.trim()
            );
            if let Some(seed) = run.pinned_seed {
                eprintln!("sluice: every shard draws its Poisson arrivals with --seed {seed}");
            }
            print!("{}", run.yaml());
            Ok(Exit::Ok)
        }
    }
}

/// The manifests of one sharded run.
#[derive(Debug)]
pub struct Manifests {
    pub name: String,
    pub start_at: DateTime<Utc>,
    /// The shard Job, then the merge Job.
    pub documents: Vec<Value>,
    /// The `--seed` chosen here for `--arrivals poisson`: every shard must draw the same plan.
    pub pinned_seed: Option<u64>,
}

impl Manifests {
    /// A multi-document YAML stream, with comments on how to run it.
    pub fn yaml(&self) -> String {
        let name = &self.name;
        let mut text = format!(
            "# Generated by sluice k8s job: shards start at {}.\n\
             # kubectl apply -f THIS_FILE\n\
             # kubectl wait --for=condition=complete --timeout={deadline}s job/{name}\n\
             # kubectl patch job/{name}-merge --type=merge -p '{{\"spec\":{{\"suspend\":false}}}}'\n\
             # kubectl logs -f job/{name}-merge\n",
            time_text(self.start_at),
            deadline = self.documents[0]["spec"]["activeDeadlineSeconds"],
        );
        for document in &self.documents {
            text.push_str("---\n");
            yaml::block(&mut text, document, 0);
        }
        text
    }
}

/// The manifests for `args`, with `now` the moment `now+D` and the deadline count from.
pub fn manifests(args: &JobArgs, now: DateTime<Utc>) -> Result<Manifests, UsageError> {
    let start_at = start_time(&args.start_at, now).map_err(|m| bad("--start-at", m))?;
    let name = match &args.name {
        Some(name) => dns_label("--name", name, MAX_NAME)?.to_string(),
        None => format!("sluice-{}", start_at.format("%Y%m%d-%H%M%S")),
    };
    let namespace = args.namespace.as_deref().map(|ns| dns_label("--namespace", ns, 63)).transpose()?;
    dns_subdomain("--results-pvc", &args.results_pvc)?;
    let image = args.image.trim();
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("--image", "must name an image, e.g. registry.example/sluice:0.1.0 (no spaces)").into());
    }
    let logs = LogMounts::from_flags(&args.logs)?;
    check_target(&args.target)?;
    let options = shard_options(args, &logs)?;
    let config = ReplayConfig::try_from(&options)?;
    // Poisson arrivals without --seed draw a seed in each shard, and the shards' union would be
    // no plan at all: every shard gets the one drawn here.
    let pinned_seed = match config.shape {
        Shape::Curve { arrivals: Arrivals::Poisson { seed }, .. } if options.seed.is_none() => Some(seed),
        _ => None,
    };
    let lead = (start_at - now).to_std().unwrap_or_default();
    let deadline = lead + active_deadline(args.deadline.as_deref(), config.duration, config.drain_timeout)?;
    let pods = Pods {
        run: &name,
        namespace,
        image,
        resources: resources(&args.cpu, &args.memory)?,
        results_pvc: &args.results_pvc,
    };
    let shard_args = replay_args(args, &logs, start_at, pinned_seed);
    let documents = vec![pods.shard_job(args.shards, shard_args, &logs, deadline), pods.merge_job(args.allow_partial)];
    Ok(Manifests { name, start_at, documents, pinned_seed })
}

/// What the pods of both Jobs share: the run they belong to, the image, their resources and the
/// results volume.
struct Pods<'a> {
    run: &'a str,
    namespace: Option<&'a str>,
    image: &'a str,
    resources: Value,
    results_pvc: &'a str,
}

impl Pods<'_> {
    /// The Indexed Job of the shards.
    fn shard_job(&self, shards: u32, args: Vec<String>, logs: &LogMounts, deadline: Duration) -> Value {
        let mut mounts = logs.mounts();
        // The kubelet creates the shard's own directory RUN/INDEX on the volume; the shard sees
        // only it, so no shard can overwrite another's files.
        let own_dir = format!("{}/$({INDEX_VAR})", self.run);
        mounts.extend([json!({"name": "results", "mountPath": RESULTS_DIR, "subPathExpr": own_dir}), tmp_mount()]);
        let mut shard = self.container("shard", args, mounts);
        // The Job controller sets it too; written here, the manifest says where the index comes
        // from, and subPathExpr and the args may use it.
        shard["env"] = json!([{
            "name": INDEX_VAR,
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}},
        }]);
        let mut volumes = logs.volumes();
        volumes.extend([self.results_volume(), tmp_volume()]);
        let mut pod = self.pod_spec(json!([shard]), volumes);
        pod["topologySpreadConstraints"] = json!([{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": self.run, "app.kubernetes.io/component": "shard"}},
        }]);
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": self.metadata(self.run, "shards"),
            "spec": {
                "completionMode": "Indexed",
                "completions": shards,
                "parallelism": shards,
                // A shard run twice sends its traffic twice: a failed shard stays failed, and the
                // merge names it. The Job as a whole keeps going whatever fails (at most K pods).
                "backoffLimitPerIndex": 0,
                "backoffLimit": shards,
                "activeDeadlineSeconds": deadline.as_secs_f64().ceil() as u64,
                "template": {"metadata": {"labels": self.labels("shard")}, "spec": pod},
            },
        })
    }

    /// The Job that merges the shards' results and reports on them, created suspended.
    fn merge_job(&self, allow_partial: bool) -> Value {
        let merged = format!("{RESULTS_DIR}/merged.csv");
        let mut merge = vec!["merge".to_string(), RESULTS_DIR.to_string(), "--out".to_string(), merged.clone()];
        if allow_partial {
            merge.push("--allow-partial".into());
        }
        let html =
            ["report", &merged, "--format", "html", "--out", &format!("{RESULTS_DIR}/report.html")].map(String::from);
        let text = vec!["report".to_string(), merged.clone()];
        let mounts = || vec![json!({"name": "results", "mountPath": RESULTS_DIR, "subPath": self.run}), tmp_mount()];
        let mut pod =
            self.pod_spec(json!([self.container("report", text, mounts())]), vec![self.results_volume(), tmp_volume()]);
        // Init containers run one after the other, each only if the one before succeeded: merge,
        // then the HTML report; the text report is the pod's log (kubectl logs job/RUN-merge).
        pod["initContainers"] =
            json!([self.container("merge", merge, mounts()), self.container("report-html", html.to_vec(), mounts())]);
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": self.metadata(&format!("{}-merge", self.run), "merge"),
            "spec": {
                // Created with the shards, started by hand once they are done.
                "suspend": true,
                // Merging again gives the same file: a retry is harmless.
                "backoffLimit": 2,
                "activeDeadlineSeconds": MERGE_DEADLINE.as_secs(),
                "template": {"metadata": {"labels": self.labels("merge")}, "spec": pod},
            },
        })
    }

    fn labels(&self, component: &str) -> Value {
        json!({
            "app.kubernetes.io/name": "sluice",
            "app.kubernetes.io/instance": self.run,
            "app.kubernetes.io/component": component,
        })
    }

    fn metadata(&self, job: &str, component: &str) -> Value {
        let mut metadata = json!({"name": job, "labels": self.labels(component)});
        if let Some(namespace) = self.namespace {
            metadata["namespace"] = json!(namespace);
        }
        metadata
    }

    /// A container running `sluice ARGS`, unprivileged on a read-only root filesystem.
    fn container(&self, name: &str, args: Vec<String>, mounts: Vec<Value>) -> Value {
        json!({
            "name": name,
            "image": self.image,
            "command": ["sluice"],
            "args": args,
            "resources": {"requests": self.resources, "limits": self.resources},
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": mounts,
        })
    }

    /// A pod that runs once, as user [`RUN_AS`], with no service account token.
    fn pod_spec(&self, containers: Value, volumes: Vec<Value>) -> Value {
        json!({
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            // Service links would put every Service of the namespace into the environment.
            "enableServiceLinks": false,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": containers,
            "volumes": volumes,
        })
    }

    fn results_volume(&self) -> Value {
        json!({"name": "results", "persistentVolumeClaim": {"claimName": self.results_pvc}})
    }
}

/// /tmp, the one writable place besides the results (the root filesystem is read-only).
fn tmp_mount() -> Value {
    json!({"name": "tmp", "mountPath": "/tmp"})
}

fn tmp_volume() -> Value {
    json!({"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}})
}

/// RFC 3339 or `now+DURATION`, in the future and at most [`MAX_LEAD`] ahead.
fn start_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    let expected = "expected RFC 3339 (2026-12-01T02:00:00Z) or now+DURATION (now+10m)";
    let at = match text.strip_prefix("now+") {
        Some(lead) => {
            let lead = parse_duration(lead)?;
            if lead > MAX_LEAD {
                return Err(format!("'{text}' is more than {} ahead", compact_duration(MAX_LEAD)));
            }
            // Whole seconds: the time is read by people and typed again.
            let at = now + chrono::Duration::from_std(lead).map_err(|e| e.to_string())?;
            at + chrono::Duration::nanoseconds(i64::from((1_000_000_000 - at.timestamp_subsec_nanos()) % 1_000_000_000))
        }
        None => DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("'{text}' is not a time ({e}); {expected}"))?
            .with_timezone(&Utc),
    };
    if at <= now {
        return Err(format!(
            "{} is not in the future (now is {}); every shard would refuse it",
            time_text(at),
            time_text(now)
        ));
    }
    if (at - now).to_std().unwrap_or_default() > MAX_LEAD {
        return Err(format!("{} is more than {} ahead", time_text(at), compact_duration(MAX_LEAD)));
    }
    Ok(at)
}

fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A DNS-1123 label (names of Jobs and namespaces): lowercase letters, digits and '-', starting
/// and ending with a letter or digit.
fn dns_label<'a>(flag: &'static str, text: &'a str, max: usize) -> Result<&'a str, ConfigError> {
    let valid = !text.is_empty()
        && text.len() <= max
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if valid {
        Ok(text)
    } else {
        Err(bad(
            flag,
            format!(
                "'{text}' is not a Kubernetes name: lowercase letters, digits and '-', starting and ending with a \
                 letter or digit, at most {max} characters"
            ),
        ))
    }
}

/// A DNS-1123 subdomain (names of claims and config maps): labels joined by '.', at most 253.
fn dns_subdomain<'a>(flag: &'static str, text: &'a str) -> Result<&'a str, ConfigError> {
    if text.len() <= 253 && text.split('.').all(|label| dns_label(flag, label, 63).is_ok()) {
        Ok(text)
    } else {
        Err(bad(
            flag,
            format!(
                "'{text}' is not a Kubernetes name: lowercase letters, digits, '-' and '.', starting and ending with \
                 a letter or digit, at most 253 characters"
            ),
        ))
    }
}

/// The target as `sluice replay` reads it, and fit for a manifest: reachable from a pod and
/// without credentials, which anyone who can read the Job would see.
fn check_target(text: &str) -> Result<(), ConfigError> {
    match parse_target(text.trim()).map_err(|m| bad("--target", m))? {
        Target::Mock => {
            Err(bad("--target", "'mock' would start a server inside each pod; give the URL of the server to test"))
        }
        Target::Url(_) | Target::Kafka(_) => Ok(()),
    }
}

/// Where the logs come from, as volumes of the pod, and where each log file is inside it.
#[derive(Debug, Default)]
struct LogMounts {
    /// One volume per claim or config map, in the order first named.
    volumes: Vec<LogVolume>,
    /// The path of each `--log` inside the container, in order.
    files: Vec<String>,
}

#[derive(Debug, PartialEq)]
enum LogVolume {
    Claim(String),
    ConfigMap(String),
}

impl LogMounts {
    fn from_flags(flags: &[String]) -> Result<LogMounts, ConfigError> {
        let mut mounts = LogMounts::default();
        let grammar = "expected pvc:CLAIM/PATH, configmap:NAME/KEY or /PATH (a file in the image)";
        for flag in flags {
            let flag = flag.trim();
            if flag.starts_with('/') {
                if flag.split('/').any(|part| part == "..") || flag.chars().any(char::is_control) {
                    return Err(bad("--log", format!("'{flag}': a path in the image, without '..'")));
                }
                mounts.files.push(flag.to_string());
                continue;
            }
            let (volume, path) = match flag.split_once(':') {
                Some(("pvc", rest)) => {
                    let (claim, path) = rest.split_once('/').unwrap_or((rest, ""));
                    dns_subdomain("--log", claim)?;
                    let relative = path.split('/').all(|p| !p.is_empty() && p != "." && p != "..");
                    if !relative || path.chars().any(char::is_control) {
                        return Err(bad(
                            "--log",
                            format!(
                                "'{flag}': after the claim comes the file's path on it, e.g. pvc:{claim}/access.log.gz"
                            ),
                        ));
                    }
                    (LogVolume::Claim(claim.to_string()), path)
                }
                Some(("configmap", rest)) => {
                    let (map, key) = rest.split_once('/').unwrap_or((rest, ""));
                    dns_subdomain("--log", map)?;
                    let valid_key = !key.is_empty()
                        && key.len() <= 253
                        && key != "."
                        && key != ".."
                        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
                    if !valid_key {
                        return Err(bad(
                            "--log",
                            format!(
                                "'{flag}': after the config map comes one of its keys (letters, digits, '-', '_', '.')"
                            ),
                        ));
                    }
                    (LogVolume::ConfigMap(map.to_string()), key)
                }
                _ => return Err(bad("--log", format!("'{flag}': {grammar}"))),
            };
            let index = match mounts.volumes.iter().position(|v| *v == volume) {
                Some(index) => index,
                None => {
                    mounts.volumes.push(volume);
                    mounts.volumes.len() - 1
                }
            };
            mounts.files.push(format!("{LOGS_DIR}/{index}/{path}"));
        }
        Ok(mounts)
    }

    fn mounts(&self) -> Vec<Value> {
        (0..self.volumes.len())
            .map(|i| json!({"name": format!("log-{i}"), "mountPath": format!("{LOGS_DIR}/{i}"), "readOnly": true}))
            .collect()
    }

    fn volumes(&self) -> Vec<Value> {
        self.volumes
            .iter()
            .enumerate()
            .map(|(i, volume)| match volume {
                LogVolume::Claim(claim) => {
                    json!({"name": format!("log-{i}"), "persistentVolumeClaim": {"claimName": claim, "readOnly": true}})
                }
                LogVolume::ConfigMap(map) => {
                    json!({"name": format!("log-{i}"), "configMap": {"name": map, "defaultMode": 0o444}})
                }
            })
            .collect()
    }
}

/// `sluice replay`'s flags, read the way it reads them, so that the flags after `--` are
/// checked here rather than in K pods.
#[derive(Debug, Parser)]
#[command(name = "sluice replay", no_binary_name = true, disable_help_flag = true, disable_version_flag = true)]
struct ReplayFlags {
    #[command(flatten)]
    options: ReplayOptions,
}

/// One shard's replay options, as `sluice replay` will see them (apart from --shard and
/// --start-at).
fn shard_options(args: &JobArgs, logs: &LogMounts) -> Result<ReplayOptions, ConfigError> {
    let after = "after --";
    for flag in &args.replay_flags {
        for own in ["--shard", "--start-at"] {
            if flag == own || flag.starts_with(&format!("{own}=")) {
                return Err(bad("--", format!("{own} is set by sluice k8s job for every shard; drop it")));
            }
        }
    }
    let mut options = ReplayFlags::try_parse_from(&args.replay_flags)
        .map_err(|e| {
            let message = e.render().to_string();
            let first = message.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
            bad("--", format!("{after}: {first}"))
        })?
        .options;
    let own_flags = [
        ("--target", options.target.is_some()),
        ("--rate", options.rate.is_some()),
        ("--stages", options.stages.is_some()),
        ("--speed", options.speed.is_some()),
        ("--duration", options.duration.is_some()),
    ];
    if let Some((flag, _)) = own_flags.iter().find(|(_, given)| *given) {
        return Err(bad("--", format!("{after}: {flag} is a flag of sluice k8s job; give it before --")));
    }
    if options.out.is_some() {
        return Err(bad("--", format!("{after}: --out is set for every shard ({RESULTS_DIR}/shard-INDEX.csv)")));
    }
    if let Some(file) = options.files.first() {
        return Err(bad("--", format!("{after}: '{}' would be a log file; name logs with --log", file.display())));
    }
    if options.config.is_some() || options.scenario.is_some() {
        return Err(bad(
            "--",
            format!("{after}: --config and --scenario read a file inside the pod; give the options themselves"),
        ));
    }
    options.files = logs.files.iter().map(Into::into).collect();
    options.target = Some(args.target.trim().to_string());
    options.rate.clone_from(&args.rate);
    options.stages.clone_from(&args.stages);
    options.speed.clone_from(&args.speed);
    options.duration.clone_from(&args.duration);
    options.out = Some(format!("{RESULTS_DIR}/shard-$({INDEX_VAR}).csv").into());
    Ok(options)
}

/// The shard container's args: `replay`, the logs, how fast, then sharding and the user's flags.
fn replay_args(args: &JobArgs, logs: &LogMounts, start_at: DateTime<Utc>, pinned_seed: Option<u64>) -> Vec<String> {
    let mut out = vec!["replay".to_string()];
    out.extend(logs.files.iter().map(|f| literal(f)));
    out.extend(["--target".into(), literal(args.target.trim())]);
    for (flag, value) in
        [("--rate", &args.rate), ("--stages", &args.stages), ("--speed", &args.speed), ("--duration", &args.duration)]
    {
        if let Some(value) = value {
            out.extend([flag.to_string(), literal(value)]);
        }
    }
    out.extend([
        "--out".into(),
        format!("{RESULTS_DIR}/shard-$({INDEX_VAR}).csv"),
        "--shard".into(),
        format!("auto/{}", args.shards),
        "--start-at".into(),
        time_text(start_at),
    ]);
    if let Some(seed) = pinned_seed {
        out.extend(["--seed".into(), seed.to_string()]);
    }
    out.extend(args.replay_flags.iter().map(|f| literal(f)));
    out
}

/// A value the kubelet passes on as written: it expands `$(VAR)` in args and reads `$$` as `$`.
fn literal(text: &str) -> String {
    text.replace('$', "$$")
}

/// How long the shard Job may run after `--start-at`.
fn active_deadline(flag: Option<&str>, length: Option<Duration>, drain: Duration) -> Result<Duration, ConfigError> {
    let Some(text) = flag else {
        return length.map(|l| l + drain + DEADLINE_MARGIN).ok_or_else(|| {
            bad(
                "--deadline",
                "required here: the run's length is not known (the log is replayed once); give the most a shard may \
                 run after --start-at, e.g. 2h (or give --duration)",
            )
        });
    };
    let deadline = parse_duration(text).map_err(|m| bad("--deadline", m))?;
    if deadline > MAX_DEADLINE {
        return Err(bad("--deadline", format!("at most {}", compact_duration(MAX_DEADLINE))));
    }
    if let Some(length) = length
        && deadline < length
    {
        return Err(bad(
            "--deadline",
            format!("{} would stop the run before its end ({} long)", text.trim(), compact_duration(length)),
        ));
    }
    Ok(deadline)
}

/// Requests equal to limits: `{"cpu": "1500m", "memory": "2Gi"}`.
fn resources(cpu: &str, memory: &str) -> Result<Value, ConfigError> {
    let cores = cpu.trim().parse::<f64>().ok().filter(|c| CPU.contains(c)).ok_or_else(|| {
        bad("--cpu", format!("'{cpu}' must be a number of cores from {} to {}", CPU.start(), CPU.end()))
    })?;
    let memory = memory.trim();
    let mib = match (memory.strip_suffix("Gi"), memory.strip_suffix("Mi")) {
        (Some(gi), _) => gi.parse::<u64>().ok().and_then(|g| g.checked_mul(1024)),
        (_, Some(mi)) => mi.parse::<u64>().ok(),
        _ => None,
    };
    let Some(mib) = mib.filter(|m| MEMORY_MIB.contains(m)) else {
        return Err(bad("--memory", format!("'{memory}' must be a size in Mi or Gi from 64Mi to 256Gi, e.g. 2Gi")));
    };
    let memory = if mib.is_multiple_of(1024) { format!("{}Gi", mib / 1024) } else { format!("{mib}Mi") };
    let millicores = (cores * 1000.0).round() as u64;
    let cpu = if millicores.is_multiple_of(1000) { (millicores / 1000).to_string() } else { format!("{millicores}m") };
    Ok(json!({"cpu": cpu, "memory": memory}))
}

/// Block-style YAML for JSON values: every string double-quoted, so no value is ever read as a
/// number, a boolean or a comment, and every character that YAML would not keep as written
/// escaped.
mod yaml {
    use std::fmt::Write as _;

    use serde_json::Value;

    /// Writes a map or a list at `indent`; a scalar or an empty one where a block would be is
    /// written as a line of its own.
    pub fn block(out: &mut String, value: &Value, indent: usize) {
        let pad = " ".repeat(indent);
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, value) in map {
                    let _ = write!(out, "{pad}{}:", key_text(key));
                    child(out, value, indent + 2);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for item in items {
                    if is_block(item) {
                        // The item's first line moves up beside its dash: "- name: x".
                        let mut item_text = String::new();
                        block(&mut item_text, item, indent + 2);
                        let _ = write!(out, "{pad}- {}", &item_text[indent + 2..]);
                    } else {
                        let _ = writeln!(out, "{pad}- {}", scalar(item));
                    }
                }
            }
            scalar_value => {
                let _ = writeln!(out, "{pad}{}", scalar(scalar_value));
            }
        }
    }

    fn child(out: &mut String, value: &Value, indent: usize) {
        if is_block(value) {
            out.push('\n');
            block(out, value, indent);
        } else {
            let _ = writeln!(out, " {}", scalar(value));
        }
    }

    fn is_block(value: &Value) -> bool {
        match value {
            Value::Object(map) => !map.is_empty(),
            Value::Array(items) => !items.is_empty(),
            _ => false,
        }
    }

    fn scalar(value: &Value) -> String {
        match value {
            Value::String(text) => quoted(text),
            Value::Object(_) => "{}".into(),
            Value::Array(_) => "[]".into(),
            other => other.to_string(),
        }
    }

    /// Keys are plain when they cannot be mistaken for anything else, quoted otherwise.
    fn key_text(key: &str) -> String {
        let plain = key.starts_with(|c: char| c.is_ascii_alphabetic())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if plain { key.to_string() } else { quoted(key) }
    }

    /// A double-quoted scalar: `\` and `"` escaped, and every character YAML reads as a line
    /// break or refuses (controls, C1, U+2028/9, BOM, non-characters) written as an escape.
    pub fn quoted(text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 2);
        out.push('"');
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c) => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Noon, ten minutes before the start most tests use.
    fn noon() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    /// `sluice k8s job` with the flags of a run, each replaced when `more` gives it (`--log`
    /// adds), then the rest of `more`.
    fn job_args(more: &[&str]) -> JobArgs {
        let (before, after) = more.split_at(more.iter().position(|a| *a == "--").unwrap_or(more.len()));
        let base = [
            ("--shards", "4"),
            ("--image", "registry.example/sluice:0.1.0"),
            ("--log", "pvc:sluice-logs/2026/access.log.gz"),
            ("--target", "http://shop.staging.svc:8080"),
            ("--start-at", "2026-11-30T12:10:00Z"),
            ("--rate", "1000"),
            ("--duration", "30m"),
        ];
        let shaped = before.iter().any(|a| ["--rate", "--stages", "--speed"].contains(a));
        let mut line = vec!["sluice k8s job"];
        for (flag, value) in base {
            let replaced = before.contains(&flag) && flag != "--log";
            let shape_replaced = shaped && ["--rate", "--duration"].contains(&flag);
            if !replaced && !shape_replaced {
                line.extend([flag, value]);
            }
        }
        line.extend(before);
        line.extend(after);
        JobLine::try_parse_from(line).unwrap_or_else(|e| panic!("{e}")).job
    }

    #[derive(Debug, Parser)]
    struct JobLine {
        #[command(flatten)]
        job: JobArgs,
    }

    fn generate(more: &[&str]) -> Manifests {
        manifests(&job_args(more), noon()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn refusal(more: &[&str]) -> String {
        manifests(&job_args(more), noon()).expect_err("refused").to_string()
    }

    fn shard_container(run: &Manifests) -> &Value {
        &run.documents[0]["spec"]["template"]["spec"]["containers"][0]
    }

    fn strings(value: &Value) -> Vec<&str> {
        value.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
    }

    #[test]
    fn the_shard_job_is_an_indexed_job_of_k_pods_that_never_retries_a_shard() {
        for k in ["1", "4", "1000"] {
            let run = generate(&["--shards", k]);
            let spec = &run.documents[0]["spec"];
            let k: u64 = k.parse().unwrap();
            assert_eq!(run.documents[0]["kind"], "Job");
            assert_eq!(run.documents[0]["apiVersion"], "batch/v1");
            assert_eq!(spec["completionMode"], "Indexed");
            assert_eq!(spec["completions"], k);
            assert_eq!(spec["parallelism"], k);
            assert_eq!(spec["backoffLimitPerIndex"], 0);
            assert!(spec["backoffLimit"].as_u64().unwrap() >= k, "one failed shard must not fail the others");
            assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        }
    }

    #[test]
    fn every_pod_runs_unprivileged_without_a_service_account_token() {
        let run = generate(&[]);
        for document in &run.documents {
            let pod = &document["spec"]["template"]["spec"];
            assert_eq!(pod["automountServiceAccountToken"], false);
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
            assert_eq!(pod["securityContext"]["runAsUser"], RUN_AS);
            assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
            let mut containers = pod["containers"].as_array().unwrap().clone();
            containers.extend(pod["initContainers"].as_array().cloned().unwrap_or_default());
            assert_eq!(containers.len(), if document == &run.documents[0] { 1 } else { 3 });
            for container in containers {
                let context = &container["securityContext"];
                assert_eq!(context["runAsNonRoot"], true);
                assert_eq!(context["readOnlyRootFilesystem"], true);
                assert_eq!(context["allowPrivilegeEscalation"], false);
                assert_eq!(strings(&context["capabilities"]["drop"]), ["ALL"]);
                // No shell anywhere: the program is sluice itself.
                assert_eq!(strings(&container["command"]), ["sluice"]);
                let mounts = container["volumeMounts"].as_array().unwrap();
                assert!(mounts.iter().any(|m| m["mountPath"] == "/tmp" && m["name"] == "tmp"), "{mounts:?}");
                assert_eq!(container["resources"]["requests"], container["resources"]["limits"]);
            }
            let tmp = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "tmp").unwrap();
            assert_eq!(tmp["emptyDir"]["sizeLimit"], TMP_SIZE);
        }
    }

    #[test]
    fn shards_are_spread_over_nodes() {
        let run = generate(&["--name", "soak"]);
        let spread = &run.documents[0]["spec"]["template"]["spec"]["topologySpreadConstraints"][0];
        assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
        assert_eq!(spread["maxSkew"], 1);
        // The selector picks this run's shard pods, which carry these labels.
        let pod_labels = &run.documents[0]["spec"]["template"]["metadata"]["labels"];
        for (key, value) in spread["labelSelector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&pod_labels[key], value, "{key}");
        }
        assert_eq!(pod_labels["app.kubernetes.io/instance"], "soak");
    }

    #[test]
    fn every_shard_replays_its_share_from_the_same_start() {
        let run = generate(&["--shards", "8"]);
        let args = strings(&shard_container(&run)["args"]);
        assert_eq!(
            args,
            [
                "replay",
                "/logs/0/2026/access.log.gz",
                "--target",
                "http://shop.staging.svc:8080",
                "--rate",
                "1000",
                "--duration",
                "30m",
                "--out",
                "/results/shard-$(JOB_COMPLETION_INDEX).csv",
                "--shard",
                "auto/8",
                "--start-at",
                "2026-11-30T12:10:00Z",
            ]
        );
        let env = &shard_container(&run)["env"][0];
        assert_eq!(env["name"], "JOB_COMPLETION_INDEX");
        assert_eq!(
            env["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
    }

    #[test]
    fn logs_come_from_read_only_volumes_and_results_go_to_a_directory_per_shard() {
        let run = generate(&[
            "--name",
            "soak",
            "--log",
            "configmap:sample/b.log",
            "--log",
            "pvc:sluice-logs/c.log",
            "--log",
            "/data/d.log",
            "--results-pvc",
            "shared.results",
        ]);
        let args = strings(&shard_container(&run)["args"]);
        assert_eq!(args[1..5], ["/logs/0/2026/access.log.gz", "/logs/1/b.log", "/logs/0/c.log", "/data/d.log"]);
        let pod = &run.documents[0]["spec"]["template"]["spec"];
        assert_eq!(
            pod["volumes"],
            json!([
                {"name": "log-0", "persistentVolumeClaim": {"claimName": "sluice-logs", "readOnly": true}},
                {"name": "log-1", "configMap": {"name": "sample", "defaultMode": 0o444}},
                {"name": "results", "persistentVolumeClaim": {"claimName": "shared.results"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
            ])
        );
        assert_eq!(
            shard_container(&run)["volumeMounts"],
            json!([
                {"name": "log-0", "mountPath": "/logs/0", "readOnly": true},
                {"name": "log-1", "mountPath": "/logs/1", "readOnly": true},
                {"name": "results", "mountPath": "/results", "subPathExpr": "soak/$(JOB_COMPLETION_INDEX)"},
                {"name": "tmp", "mountPath": "/tmp"},
            ])
        );
    }

    #[test]
    fn the_merge_job_waits_suspended_then_merges_and_reports_the_runs_directory() {
        let run = generate(&["--name", "soak", "--namespace", "load"]);
        let merge = &run.documents[1];
        assert_eq!(merge["metadata"]["name"], "soak-merge");
        assert_eq!(merge["metadata"]["namespace"], "load");
        assert_eq!(run.documents[0]["metadata"]["namespace"], "load");
        assert_eq!(merge["spec"]["suspend"], true);
        let pod = &merge["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let steps: Vec<Vec<&str>> = pod["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(pod["containers"].as_array().unwrap())
            .map(|c| strings(&c["args"]))
            .collect();
        assert_eq!(
            steps,
            [
                vec!["merge", "/results", "--out", "/results/merged.csv"],
                vec!["report", "/results/merged.csv", "--format", "html", "--out", "/results/report.html"],
                vec!["report", "/results/merged.csv"],
            ]
        );
        let mount = &pod["containers"][0]["volumeMounts"][0];
        assert_eq!(*mount, json!({"name": "results", "mountPath": "/results", "subPath": "soak"}));

        let partial = generate(&["--allow-partial"]);
        let merge_args = strings(&partial.documents[1]["spec"]["template"]["spec"]["initContainers"][0]["args"]);
        assert_eq!(merge_args.last(), Some(&"--allow-partial"));
    }

    #[test]
    fn flags_after_the_double_dash_are_arguments_as_written_with_dollars_kept_from_the_kubelet() {
        let run = generate(&[
            "--",
            "--concurrency",
            "256",
            "--header",
            "X-Note: $(HOME) costs $5; rm -rf / \"quoted\"",
            "--include",
            "^/api/",
        ]);
        let args = strings(&shard_container(&run)["args"]);
        let user = &args[args.iter().position(|a| *a == "--concurrency").unwrap()..];
        assert_eq!(
            user,
            [
                "--concurrency",
                "256",
                "--header",
                "X-Note: $$(HOME) costs $$5; rm -rf / \"quoted\"",
                "--include",
                "^/api/"
            ]
        );
        // So is the target: the kubelet would expand $(VAR) in it too.
        let run = generate(&["--target", "http://web/$(X)"]);
        assert!(strings(&shard_container(&run)["args"]).contains(&"http://web/$$(X)"));
    }

    #[test]
    fn flags_after_the_double_dash_are_checked_as_replay_checks_them() {
        for (flags, expected) in [
            (&["--", "--concurency", "8"][..], "--: after --: unexpected argument '--concurency'"),
            (&["--", "--concurrency", "0"], "--concurrency: must be between 1 and"),
            (&["--", "--rate", "5"], "--: after --: --rate is a flag of sluice k8s job; give it before --"),
            (&["--", "--target=http://x"], "--target is a flag of sluice k8s job"),
            (&["--", "--out", "x.csv"], "--out is set for every shard"),
            (&["--", "--shard", "1/4"], "--shard is set by sluice k8s job"),
            (&["--", "--start-at=now+1m"], "--start-at is set by sluice k8s job"),
            (&["--", "extra.log"], "'extra.log' would be a log file; name logs with --log"),
            (&["--", "--config", "a.toml"], "--config and --scenario read a file inside the pod"),
            (&["--speed", "2", "--duration", "1h", "--", "--arrivals", "poisson"], "--arrivals: poisson spreads"),
        ] {
            let message = refusal(flags);
            assert!(message.contains(expected), "{flags:?}: {message}");
        }
    }

    #[test]
    fn poisson_arrivals_get_one_seed_for_every_shard() {
        let run = generate(&["--", "--arrivals", "poisson"]);
        let seed = run.pinned_seed.expect("a seed is chosen").to_string();
        let args = strings(&shard_container(&run)["args"]);
        let at = args.iter().position(|a| *a == "--seed").unwrap();
        assert_eq!(args[at + 1], seed);
        // A seed given is the user's, and nothing is added.
        let run = generate(&["--", "--arrivals", "poisson", "--seed", "7"]);
        assert_eq!(run.pinned_seed, None);
        assert_eq!(strings(&shard_container(&run)["args"]).iter().filter(|a| **a == "--seed").count(), 1);
    }

    #[test]
    fn bad_input_is_refused_naming_its_flag() {
        for (flags, expected) in [
            (&["--name", "Soak_1"][..], "--name: 'Soak_1' is not a Kubernetes name"),
            (&["--name", &"a".repeat(58)], "at most 57 characters"),
            (&["--namespace=-load"], "--namespace: '-load' is not a Kubernetes name"),
            (&["--results-pvc", "a..b"], "--results-pvc: 'a..b' is not a Kubernetes name"),
            (&["--image", " "], "--image: must name an image"),
            (&["--image", "a b"], "--image: must name an image"),
            (&["--log", "access.log"], "--log: 'access.log': expected pvc:CLAIM/PATH"),
            (&["--log", "pvc:logs"], "--log: 'pvc:logs': after the claim comes the file's path"),
            (&["--log", "pvc:logs/../etc/passwd"], "after the claim comes the file's path"),
            (&["--log", "configmap:sample/a/b"], "after the config map comes one of its keys"),
            (&["--log", "/data/../etc/passwd"], "--log: '/data/../etc/passwd': a path in the image"),
            (&["--target", "mock"], "--target: 'mock' would start a server inside each pod"),
            (&["--target", "ftp://x"], "--target: 'ftp://x': only http and https"),
            (&["--target", "http://user:secret@web"], "--target: credentials in the URL"),
            (&["--rate", "0"], "--rate: '0' must be more than 0"),
            (&["--stages", "1m:x"], "--stages:"),
            (&["--start-at", "2026-11-30T11:59:59Z"], "--start-at: 2026-11-30T11:59:59Z is not in the future"),
            (&["--start-at", "tomorrow"], "--start-at: 'tomorrow' is not a time"),
            (&["--start-at", "now+31d"], "--start-at: 'now+31d' is more than 30d ahead"),
            (&["--start-at", "2027-06-01T00:00:00Z"], "is more than 30d ahead"),
            (&["--cpu", "0"], "--cpu: '0' must be a number of cores"),
            (&["--memory", "1G"], "--memory: '1G' must be a size in Mi or Gi"),
            (&["--memory", "512Gi"], "--memory: '512Gi'"),
        ] {
            let message = refusal(flags);
            assert!(message.starts_with(expected) || message.contains(expected), "{flags:?}: {message}");
            // Credentials given are never repeated.
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn now_plus_a_duration_is_a_whole_second_in_the_future() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00.250Z").unwrap().with_timezone(&Utc);
        assert_eq!(time_text(start_time("now+2m", now).unwrap()), "2026-11-30T12:02:01Z");
        assert_eq!(time_text(start_time("now+90s", noon()).unwrap()), "2026-11-30T12:01:30Z");
        // An offset is turned into UTC, which every shard then reads alike.
        assert_eq!(time_text(start_time("2026-11-30T14:00:00+01:00", noon()).unwrap()), "2026-11-30T13:00:00Z");
        let run = generate(&["--start-at", "now+1h"]);
        assert_eq!(run.name, "sluice-20261130-130000");
        assert!(strings(&shard_container(&run)["args"]).contains(&"2026-11-30T13:00:00Z"));
    }

    #[test]
    fn the_deadline_covers_the_wait_and_the_run() {
        let deadline = |more: &[&str]| generate(more).documents[0]["spec"]["activeDeadlineSeconds"].as_u64().unwrap();
        // 10 minutes' wait, 30 minutes of run, the 10 s drain and 10 minutes' margin.
        assert_eq!(deadline(&[]), 600 + 1800 + 10 + 600);
        assert_eq!(deadline(&["--deadline", "2h"]), 600 + 7200);
        assert_eq!(deadline(&["--stages", "5m:0-100,10m:100", "--", "--drain-timeout", "1m"]), 600 + 900 + 60 + 600);
        assert!(refusal(&["--deadline", "10m"]).starts_with("--deadline: 10m would stop the run before its end (30m"));
        let unknown = refusal(&["--speed", "2"]);
        assert!(unknown.starts_with("--deadline: required here: the run's length is not known"), "{unknown}");
        assert_eq!(deadline(&["--speed", "2", "--deadline", "3h"]), 600 + 3 * 3600);
        assert!(refusal(&["--deadline", "40d"]).starts_with("--deadline: at most 31d"));
    }

    #[test]
    fn resources_are_requested_as_limited() {
        let run = generate(&["--cpu", "1.5", "--memory", "2Gi"]);
        let resources = &shard_container(&run)["resources"];
        assert_eq!(resources["limits"], json!({"cpu": "1500m", "memory": "2Gi"}));
        assert_eq!(resources["requests"], resources["limits"]);
    }

    #[test]
    fn yaml_quotes_every_string_and_escapes_what_yaml_would_not_keep() {
        let value = json!({
            "b": [1, true, null, "yes", [], {}, ["x"], {"k": "v", "l": [{"m": 2}]}],
            "a.b/c-d": "line\nbreak \"q\" back\\slash tab\t nel\u{85} ls\u{2028} bom\u{feff} del\u{7f} é",
            "0 odd key": {},
        });
        let mut text = String::new();
        yaml::block(&mut text, &value, 0);
        assert_eq!(
            text,
            "\"0 odd key\": {}\n\
             a.b/c-d: \"line\\nbreak \\\"q\\\" back\\\\slash tab\\t nel\\x85 ls\\u2028 bom\\ufeff del\\x7f é\"\n\
             b:\n  - 1\n  - true\n  - null\n  - \"yes\"\n  - []\n  - {}\n  - - \"x\"\n  - k: \"v\"\n    l:\n      - m: 2\n"
        );
    }
}
