//! `sluice runs` on a fleet: one sharded run on several daemons, with no protocol of its own —
//! each daemon's API, a common `start_at`, and the manifest every shard writes.
//!
//! ```text
//! submit   request ──▶ + shard i/K, start_at ──▶ daemon i     (stdout: the fleet, a line per shard)
//! watch    every shard's events at once; the exit is the worst shard's
//! stop     every shard's run
//! results  every shard's manifest and CSV ──▶ DIR/shard-i/ ──▶ the check and merge of `sluice merge`
//! ```

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::Value;

use super::{Client, RunsArgs, RunsCommand, final_outcome, name_uploaded_logs, read_request, run_path, stdout};
use crate::cli::merge::MergeArgs;
use crate::duration::parse_duration;
use crate::exit::{Exit, UsageError};
use crate::pace::shard::Shard;
use crate::shard::manifest::{MANIFEST_SUFFIX, MAX_MANIFEST_BYTES, MAX_SHARDS};

/// A fleet file larger than this is not one `runs submit` printed (a line per shard).
const MAX_FLEET_BYTES: u64 = 1024 * 1024;

/// The longest `--start-in`: a fleet is submitted in seconds; a start further off is a
/// scheduled run, which `start_at` in the request says better.
const MAX_START_IN: std::time::Duration = std::time::Duration::from_secs(3600);

/// A `sluice runs` command that works on a fleet.
pub(super) enum Command {
    Submit { daemons: Vec<String>, request: PathBuf, uploads: Vec<PathBuf>, follow: bool, start_in: String },
    Watch(Fleet),
    Stop(Fleet),
    Results { fleet: Fleet, out: PathBuf, shards_dir: Option<PathBuf>, allow_partial: bool },
}

impl Command {
    /// The fleet command `args` asks for: `submit` to several daemons, or a command given
    /// `--fleet`; `None` for a command on one daemon's run.
    pub(super) fn of(args: &RunsArgs) -> anyhow::Result<Option<Command>> {
        let fleet_file = match &args.command {
            RunsCommand::Watch { fleet, .. } | RunsCommand::Stop { fleet, .. } | RunsCommand::Results { fleet, .. } => {
                fleet.as_deref()
            }
            _ => None,
        };
        if fleet_file.is_some() && !args.daemon.is_empty() {
            return Err(UsageError("--fleet names the daemons of its runs: drop --daemon".into()).into());
        }
        Ok(match &args.command {
            RunsCommand::Submit { request, upload, follow, start_in } if args.daemon.len() > 1 => {
                Some(Command::Submit {
                    daemons: args.daemon.clone(),
                    request: request.clone(),
                    uploads: upload.clone(),
                    follow: *follow,
                    start_in: start_in.clone(),
                })
            }
            RunsCommand::Watch { fleet: Some(file), .. } => Some(Command::Watch(Fleet::read(file)?)),
            RunsCommand::Stop { fleet: Some(file), .. } => Some(Command::Stop(Fleet::read(file)?)),
            RunsCommand::Results { fleet: Some(file), out, shards_dir, allow_partial, .. } => Some(Command::Results {
                fleet: Fleet::read(file)?,
                out: out.clone().expect("clap requires --out with --fleet"),
                shards_dir: shards_dir.clone(),
                allow_partial: *allow_partial,
            }),
            _ => None,
        })
    }

    pub(super) async fn run(self) -> anyhow::Result<Exit> {
        match self {
            Command::Submit { daemons, request, uploads, follow, start_in } => {
                let fleet = submit(&daemons, &request, &uploads, &start_in).await?;
                if follow { fleet.watch().await } else { Ok(Exit::Ok) }
            }
            Command::Watch(fleet) => fleet.watch().await,
            Command::Stop(fleet) => fleet.stop().await,
            Command::Results { fleet, out, shards_dir, allow_partial } => {
                let dir = shards_dir.unwrap_or_else(|| default_shards_dir(&out));
                fleet.download(&dir, allow_partial).await?;
                crate::cli::merge::run(&MergeArgs { inputs: vec![dir], out, allow_partial })
            }
        }
    }
}

/// The runs of one sharded run, one per daemon.
pub(super) struct Fleet {
    members: Vec<Member>,
}

/// A shard's run on its daemon.
struct Member {
    daemon: String,
    client: Client,
    id: String,
    shard: Shard,
}

impl Member {
    /// `shard 1/4: `, put before every line about this shard.
    fn label(&self) -> String {
        format!("shard {}: ", self.shard)
    }
}

/// Submits one shard of the request to each daemon, all with the same `start_at`, and prints
/// the fleet. When a daemon refuses its shard, the shards already submitted are stopped: a run
/// with a shard missing would not be the plan.
async fn submit(daemons: &[String], request: &Path, uploads: &[PathBuf], start_in: &str) -> anyhow::Result<Fleet> {
    let count = u32::try_from(daemons.len())
        .ok()
        .filter(|k| *k <= MAX_SHARDS)
        .ok_or_else(|| UsageError(format!("{} daemons: a run has at most {MAX_SHARDS} shards", daemons.len())))?;
    let mut seen = BTreeSet::new();
    if let Some(twice) = daemons.iter().find(|d| !seen.insert(d.trim_end_matches('/'))) {
        return Err(UsageError(format!("--daemon {twice} is given twice: each daemon runs one shard")).into());
    }
    let clients = daemons.iter().map(|d| Client::new(Some(d))).collect::<anyhow::Result<Vec<_>>>()?;
    let mut body = read_request(request)?;
    let Some(object) = body.as_object_mut() else {
        return Err(UsageError(format!("{}: a run request is a JSON object", request.display())).into());
    };
    if object.contains_key("shard") {
        return Err(UsageError(format!(
            "{}: `shard` is given; with several --daemon, `runs submit` gives each daemon its shard (0/{count} … \
             {}/{count}): remove it",
            request.display(),
            count - 1
        ))
        .into());
    }
    if !object.contains_key("start_at") {
        let wait = parse_duration(start_in)
            .ok()
            .filter(|d| *d <= MAX_START_IN)
            .ok_or_else(|| UsageError(format!("--start-in '{start_in}': expected a duration up to 1h, e.g. 10s")))?;
        let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        object.insert("start_at".into(), at.to_rfc3339_opts(SecondsFormat::Millis, true).into());
    }
    let mut names = Vec::new();
    for client in &clients {
        names = client.upload_all(uploads).await?;
    }
    name_uploaded_logs(&mut body, names);
    let mut members: Vec<Member> = Vec::with_capacity(clients.len());
    for (index, (client, daemon)) in (0..count).zip(clients.into_iter().zip(daemons)) {
        let shard = Shard { index, count, index_from: "--shard" };
        let mut request = body.clone();
        request["shard"] = Value::from(shard.to_string());
        match client.submit(&request, &format!("shard {shard}: ")).await {
            Ok((id, _)) => members.push(Member { daemon: daemon.clone(), client, id, shard }),
            Err(e) => {
                let fleet = Fleet { members };
                if !fleet.members.is_empty() {
                    eprintln!("sluice: {daemon} refused shard {shard}: stopping the shards already submitted");
                    let _ = fleet.stop().await;
                }
                return Err(e.context(format!("shard {shard} on {daemon}")));
            }
        }
    }
    let fleet = Fleet { members };
    stdout(fleet.to_text(&body["start_at"]).as_bytes())?;
    Ok(fleet)
}

impl Fleet {
    /// Reads what `runs submit` printed: `DAEMON RUN-ID SHARD` lines, `#` comments.
    fn read(path: &Path) -> anyhow::Result<Fleet> {
        let bad = |reason: String| UsageError(format!("--fleet {}: {reason}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut text = String::new();
        file.take(MAX_FLEET_BYTES + 1).read_to_string(&mut text).map_err(|e| bad(e.to_string()))?;
        if text.len() as u64 > MAX_FLEET_BYTES {
            return Err(
                bad(format!("larger than {} KiB: not a fleet `runs submit` printed", MAX_FLEET_BYTES >> 10)).into()
            );
        }
        let mut members: Vec<Member> = Vec::new();
        for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [daemon, id, shard] = fields[..] else {
                return Err(bad(format!("line {n}: expected DAEMON RUN-ID SHARD, as `runs submit` prints them")).into());
            };
            let shard = Shard::parse(shard, |_| None).map_err(|m| bad(format!("line {n}: {m}")))?;
            if let Some(first) = members.first()
                && first.shard.count != shard.count
            {
                return Err(bad(format!("line {n}: shard {shard} is not one of {}", first.shard.count)).into());
            }
            if members.iter().any(|m| m.shard.index == shard.index) {
                return Err(bad(format!("line {n}: shard {shard} is listed twice")).into());
            }
            let client = Client::new(Some(daemon)).map_err(|e| bad(format!("line {n}: {e}")))?;
            members.push(Member { daemon: daemon.to_string(), client, id: id.to_string(), shard });
        }
        if members.is_empty() {
            return Err(bad("no runs in it".into()).into());
        }
        members.sort_by_key(|m| m.shard.index);
        Ok(Fleet { members })
    }

    /// The fleet file: a comment, then `DAEMON RUN-ID SHARD` per shard.
    fn to_text(&self, start_at: &Value) -> String {
        let mut text = format!(
            "# sluice fleet: {} shards starting at {}; `sluice runs results --fleet FILE --out merged.csv` merges them\n",
            self.members.len(),
            start_at.as_str().unwrap_or("?")
        );
        for m in &self.members {
            text += &format!("{} {} {}\n", m.daemon, m.id, m.shard);
        }
        text
    }

    /// Follows every shard's run at once; the exit is the worst of theirs (a shard that cannot
    /// be followed counts as failed).
    async fn watch(&self) -> anyhow::Result<Exit> {
        let ends = join_all(self.members.iter().map(|m| async move {
            let label = m.label();
            m.client.watch(&m.id, String::new(), &label).await.unwrap_or_else(|e| {
                eprintln!("sluice: {label}{e:#}");
                final_outcome(None)
            })
        }))
        .await;
        Ok(worst(&ends))
    }

    /// Stops every shard's run; exit 2 when one could not be stopped.
    async fn stop(&self) -> anyhow::Result<Exit> {
        let stopped = join_all(self.members.iter().map(|m| async move {
            let label = m.label();
            m.client.stop(&m.id, &label).await.map_err(|e| eprintln!("sluice: {label}{e:#}")).is_ok()
        }))
        .await;
        Ok(if stopped.iter().all(|ok| *ok) { Exit::Ok } else { Exit::BadInput })
    }

    /// Downloads each shard's manifest and CSV into `dir/shard-I/`, as the shard wrote them. A
    /// shard whose run has no manifest (still running, failed, deleted) is named; unless
    /// `allow_partial`, that refuses the fleet before anything is merged.
    async fn download(&self, dir: &Path, allow_partial: bool) -> anyhow::Result<()> {
        let mut missing = Vec::new();
        for m in &self.members {
            let into = dir.join(format!("shard-{}", m.shard.index));
            let name = format!("shard {} (run {} on {})", m.shard, m.id, m.daemon);
            match m.fetch(&into).await {
                Ok(rows) => eprintln!("sluice: {name}: {rows} bytes of CSV → {}", into.display()),
                Err(e) if allow_partial => eprintln!("sluice: {name}: {e:#}; merging the others"),
                Err(e) => missing.push(format!("{name}: {e:#}")),
            }
        }
        if !missing.is_empty() {
            return Err(UsageError(format!(
                "the fleet is not whole: {}; --allow-partial merges the shards there are",
                missing.join("; ")
            ))
            .into());
        }
        Ok(())
    }
}

impl Member {
    /// Writes the run's manifest and CSV into `into` (replacing an earlier download); returns
    /// the CSV's size. The manifest is fetched first: a run has one only once it has ended.
    async fn fetch(&self, into: &Path) -> anyhow::Result<u64> {
        let manifest =
            self.client.send(self.client.request(Method::GET, &run_path(&self.id, "/manifest.json"))).await?;
        let manifest = manifest.bytes().await?;
        if manifest.len() as u64 > MAX_MANIFEST_BYTES {
            anyhow::bail!("its manifest is larger than {} MiB", MAX_MANIFEST_BYTES >> 20);
        }
        std::fs::create_dir_all(into).with_context(|| into.display().to_string())?;
        let csv_path = into.join("results.csv");
        let mut response =
            self.client.send(self.client.request(Method::GET, &run_path(&self.id, "/results.csv"))).await?;
        let mut csv = tempfile::NamedTempFile::new_in(into)?;
        let mut bytes = 0u64;
        while let Some(chunk) = response.chunk().await? {
            csv.write_all(&chunk)?;
            bytes += chunk.len() as u64;
        }
        csv.as_file().sync_all()?;
        csv.persist(&csv_path).map_err(|e| e.error).with_context(|| csv_path.display().to_string())?;
        // The daemon's manifest names its CSV `results.csv`, and lies beside it under the name
        // `sluice merge` looks for.
        let manifest_path = into.join(format!("results{MANIFEST_SUFFIX}"));
        std::fs::write(&manifest_path, &manifest).with_context(|| manifest_path.display().to_string())?;
        Ok(bytes)
    }
}

/// The most serious way a shard ended: failed, then stopped, then completed.
fn worst(ends: &[Exit]) -> Exit {
    if ends.contains(&Exit::BadInput) {
        Exit::BadInput
    } else if ends.contains(&Exit::Interrupted) {
        Exit::Interrupted
    } else {
        Exit::Ok
    }
}

/// `merged.csv` → `merged-shards/` beside it.
fn default_shards_dir(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "merged".into());
    out.with_file_name(format!("{stem}-shards"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.txt");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_fleet_file_reads_back_as_printed() {
        let (_dir, path) = fleet_file(
            "# sluice fleet: 2 shards\nhttp://10.0.0.2:7878 20261129-010203-456 1/2\n\nhttp://10.0.0.1:7878 20261129-010203-123 0/2\n",
        );
        let fleet = Fleet::read(&path).unwrap();
        let shards: Vec<String> = fleet.members.iter().map(|m| format!("{} {} {}", m.daemon, m.id, m.shard)).collect();
        assert_eq!(
            shards,
            ["http://10.0.0.1:7878 20261129-010203-123 0/2", "http://10.0.0.2:7878 20261129-010203-456 1/2"]
        );
        let text = fleet.to_text(&Value::from("2026-12-01T02:00:00Z"));
        assert!(
            text.ends_with(
                "http://10.0.0.1:7878 20261129-010203-123 0/2\nhttp://10.0.0.2:7878 20261129-010203-456 1/2\n"
            )
        );
    }

    #[test]
    fn a_fleet_file_that_is_not_one_is_refused_by_line() {
        for (text, words) in [
            ("http://a:1 id\n", "line 1: expected DAEMON RUN-ID SHARD"),
            ("http://a:1 id 0/2\nhttp://b:1 id 0/2\n", "line 2: shard 0/2 is listed twice"),
            ("http://a:1 id 0/2\nhttp://b:1 id 1/3\n", "line 2: shard 1/3 is not one of 2"),
            ("http://a:1 id 2/2\n", "line 1:"),
            ("ftp://a id 0/1\n", "line 1:"),
            ("# nothing\n", "no runs in it"),
        ] {
            let (_dir, path) = fleet_file(text);
            let e = Fleet::read(&path).err().unwrap().to_string();
            assert!(e.contains(words), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_worst_shard_decides() {
        assert_eq!(worst(&[Exit::Ok, Exit::Ok]), Exit::Ok);
        assert_eq!(worst(&[Exit::Ok, Exit::Interrupted]), Exit::Interrupted);
        assert_eq!(worst(&[Exit::Interrupted, Exit::BadInput, Exit::Ok]), Exit::BadInput);
        assert_eq!(default_shards_dir(Path::new("out/merged.csv")), Path::new("out/merged-shards"));
    }
}
