//! `sluice k8s job` as a user runs it, and its manifests (and `deploy/k8s/`) checked against the
//! Kubernetes API schema by a real validator: `kubernetes-validate` (PyPI), which bundles the
//! OpenAPI schemas of each Kubernetes version, so no cluster is needed. `.ci/run` installs it
//! and sets `SLUICE_REQUIRE_K8S_VALIDATOR=1`; without it these tests say SKIPPED and pass.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use clap::Parser as _;
use serde_json::Value;

/// Makes a missing validator a failure rather than a skip.
const REQUIRE_VALIDATOR: &str = "SLUICE_REQUIRE_K8S_VALIDATOR";
/// The validator's program: this variable, or `kubernetes-validate` on the PATH.
const VALIDATOR: &str = "SLUICE_K8S_VALIDATOR";
/// The oldest version with `backoffLimitPerIndex` on by default (beta), and the one where it is GA.
/// Strict validation against 1.29 also proves no field newer than that is used.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.29.0", "1.33.0"];

fn sluice() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("sluice").unwrap()
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The flags of a run in the tests.
const RUN: [(&str, &str); 7] = [
    ("--shards", "4"),
    ("--image", "registry.example/sluice:0.1.0"),
    ("--log", "pvc:sluice-logs/access.log.gz"),
    ("--target", "http://shop.staging.svc:8080"),
    ("--rate", "1000"),
    ("--duration", "30m"),
    ("--start-at", "now+10m"),
];

/// `sluice k8s job` with the flags of [`RUN`], each replaced when `more` gives it before `--`,
/// and the rest of `more`: (exit code, stdout, stderr).
fn k8s_job(more: &[&str]) -> (Option<i32>, String, String) {
    let own = &more[..more.iter().position(|a| *a == "--").unwrap_or(more.len())];
    let mut command = sluice();
    command.args(["k8s", "job"]);
    for (flag, value) in RUN.iter().filter(|(flag, _)| !own.contains(flag)) {
        command.args([flag, value]);
    }
    let output = command.args(more).output().unwrap();
    (output.status.code(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

#[test]
fn prints_the_manifests_and_the_start_it_resolved() {
    let before = Utc::now();
    let (code, yaml, stderr) = k8s_job(&["--name", "soak"]);
    let after = Utc::now();
    assert_eq!(code, Some(0), "{stderr}");
    // "sluice: 4 shards start at 2026-…Z (--start-at now+10m); apply before then"
    let start = stderr
        .strip_prefix("sluice: 4 shards start at ")
        .and_then(|s| s.split_once(' '))
        .map(|(time, rest)| (DateTime::parse_from_rfc3339(time).unwrap().with_timezone(&Utc), rest))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(start.1.starts_with("(--start-at now+10m); apply before then"), "{stderr}");
    let lead = |t: DateTime<Utc>| (start.0 - t).num_milliseconds();
    assert!(lead(after) >= 599_000 && lead(before) <= 601_000, "{stderr}");
    let start_text = start.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let lines: Vec<&str> = yaml.lines().map(str::trim).collect();
    let at = lines.iter().position(|l| *l == "- \"--start-at\"").unwrap_or_else(|| panic!("{yaml}"));
    assert_eq!(lines[at + 1], format!("- \"{start_text}\""), "{yaml}");
    assert_eq!(yaml.matches("\n---\n").count(), 2, "two documents after the header comments:\n{yaml}");
    assert!(yaml.contains("\n  name: \"soak\"\n") && yaml.contains("\n  name: \"soak-merge\"\n"), "{yaml}");
    assert!(!yaml.contains("\"sh\"") && !yaml.contains("\"-c\""), "no shell:\n{yaml}");
}

#[test]
fn bad_input_exits_2_naming_the_flag() {
    for (more, expected) in [
        (&["--shards", "0"][..], "--shards"),
        (&["--shards", "1001"], "--shards"),
        (&["--name", "Soak"], "sluice: error: --name: 'Soak' is not a Kubernetes name"),
        (&["--image", ""], "sluice: error: --image: must name an image"),
        (
            &["--start-at", "2020-01-01T00:00:00Z"],
            "sluice: error: --start-at: 2020-01-01T00:00:00Z is not in the future",
        ),
        (&["--log", "access.log"], "sluice: error: --log: 'access.log': expected pvc:CLAIM/PATH"),
        (&["--", "--shard", "0/4"], "sluice: error: --: --shard is set by sluice k8s job"),
    ] {
        let (code, stdout, stderr) = k8s_job(more);
        assert_eq!(code, Some(2), "{more:?}: {stderr}");
        assert!(stderr.contains(expected), "{more:?}: {stderr}");
        assert!(stdout.is_empty(), "{more:?}: nothing printed to apply: {stdout}");
    }
    // Without a shape, or without a start: clap's own refusal, also 2.
    let without = |dropped: &[&str]| {
        let flags = RUN.iter().filter(|(flag, _)| !dropped.contains(flag)).flat_map(|(flag, value)| [*flag, *value]);
        let output = sluice().args(["k8s", "job"]).args(flags).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{dropped:?}");
        String::from_utf8(output.stderr).unwrap()
    };
    assert!(without(&["--rate", "--duration"]).contains("<--rate <N|max>|--stages <STAGES>|--speed <X>>"));
    assert!(without(&["--start-at"]).contains("--start-at <TIME|now+D>"));
}

/// The validator, or `None` after saying SKIPPED (a failure when it is required).
fn validator(test: &str) -> Option<PathBuf> {
    let program = std::env::var_os(VALIDATOR).map_or_else(|| PathBuf::from("kubernetes-validate"), PathBuf::from);
    let found = Command::new(&program).arg("--version").output().is_ok_and(|o| o.status.success());
    if found {
        return Some(program);
    }
    let required = std::env::var_os(REQUIRE_VALIDATOR).is_some_and(|v| !v.is_empty() && v != "0");
    assert!(!required, "{test}: {REQUIRE_VALIDATOR} is set but {} does not run", program.display());
    // A write to the stderr handle itself is not captured: the skip shows among the results.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: no Kubernetes schema validator (pip install kubernetes-validate==1.37.0, or set {VALIDATOR})"
    );
    None
}

/// Runs the validator in strict mode (unknown fields are errors) for every version.
fn assert_valid(validator: &Path, files: &[&Path]) {
    for version in KUBERNETES_VERSIONS {
        let output =
            Command::new(validator).args(["--strict", "--kubernetes-version", version]).args(files).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "Kubernetes {version}: {files:?}\n{stdout}{stderr}");
        // It names every resource it checked: one per top-level `kind:` of the files.
        let resources: usize = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap().lines().filter(|l| l.starts_with("kind:")).count())
            .sum();
        let minor = version.rsplit_once('.').unwrap().0;
        let passed = stdout.lines().filter(|l| l.contains(" passed for resource ") && l.ends_with(minor)).count();
        assert_eq!(passed, resources, "Kubernetes {version}:\n{stdout}{stderr}");
    }
}

#[test]
fn the_manifests_pass_the_kubernetes_schema() {
    let Some(validator) = validator("the_manifests_pass_the_kubernetes_schema") else { return };
    let dir = tempfile::tempdir().unwrap();
    let variants: [&[&str]; 4] = [
        &[],
        &["--name", "soak", "--namespace", "load", "--results-pvc", "shared.results", "--allow-partial"],
        &[
            "--log",
            "configmap:sample/access.log",
            "--log",
            "/data/extra.log",
            "--cpu",
            "0.5",
            "--memory",
            "512Mi",
            "--",
            "--concurrency",
            "256",
            "--header",
            "X-Load-Test: $(1)",
        ],
        &["--shards", "1000", "--", "--arrivals", "poisson"],
    ];
    let mut files = Vec::new();
    for (i, more) in variants.iter().enumerate() {
        let (code, yaml, stderr) = k8s_job(more);
        assert_eq!(code, Some(0), "{more:?}: {stderr}");
        let file = dir.path().join(format!("run-{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        files.push(file);
    }
    assert_valid(&validator, &files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
}

#[test]
fn the_validator_refuses_what_kubernetes_would() {
    // The check above can fail: a misspelt field and a wrong type are refused.
    let Some(validator) = validator("the_validator_refuses_what_kubernetes_would") else { return };
    let (code, yaml, stderr) = k8s_job(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [("backoffLimitPerIndex:", "backoffLimitPerIndexx:"), ("parallelism: 4", "parallelism: \"4\"")] {
        let file = dir.path().join("broken.yaml");
        std::fs::write(&file, yaml.replacen(from, to, 1)).unwrap();
        let output =
            Command::new(&validator).args(["--strict", "-k", KUBERNETES_VERSIONS[1]]).arg(&file).output().unwrap();
        assert!(!output.status.success(), "{to} passed:\n{}", String::from_utf8_lossy(&output.stdout));
    }
}

#[test]
fn the_examples_in_deploy_k8s_pass_the_kubernetes_schema() {
    let Some(validator) = validator("the_examples_in_deploy_k8s_pass_the_kubernetes_schema") else { return };
    let files = ["run.yaml", "volumes.yaml", "files-pod.yaml"].map(|f| repo_file(&format!("deploy/k8s/{f}")));
    assert_valid(&validator, &files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
}

/// The command whose output `deploy/k8s/run.yaml` is (its README shows it), at this moment.
const EXAMPLE: [&str; 22] = [
    "sluice",
    "k8s",
    "job",
    "--shards",
    "4",
    "--image",
    "registry.example/sluice:0.1.0",
    "--log",
    "pvc:sluice-logs/access.log.gz",
    "--target",
    "http://shop.staging.svc:8080",
    "--rate",
    "2000",
    "--duration",
    "30m",
    "--start-at",
    "2026-12-01T02:00:00Z",
    "--name",
    "shop-soak",
    "--",
    "--concurrency",
    "256",
];
const EXAMPLE_NOW: &str = "2026-12-01T01:50:00Z";

#[test]
fn deploy_k8s_run_yaml_is_what_sluice_k8s_job_prints_with_comments() {
    let sluice::cli::Command::K8s(args) = sluice::cli::Cli::try_parse_from(EXAMPLE).unwrap().command else {
        unreachable!()
    };
    let sluice::cli::k8s::K8sKind::Job(job) = args.kind;
    let now = DateTime::parse_from_rfc3339(EXAMPLE_NOW).unwrap().with_timezone(&Utc);
    let generated = sluice::cli::k8s::manifests(&job, now).unwrap().yaml();
    let example = std::fs::read_to_string(repo_file("deploy/k8s/run.yaml")).unwrap();
    // The example adds whole-line comments that explain each choice; the rest is the output.
    let without_comments =
        |text: &str| text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    if without_comments(&example) != without_comments(&generated) {
        let fresh = std::env::temp_dir().join("sluice-k8s-run.yaml");
        std::fs::write(&fresh, &generated).unwrap();
        panic!(
            "deploy/k8s/run.yaml is not its command's output, written to {}: take it, keep the comments",
            fresh.display()
        );
    }
}

/// The Python that runs the validator (its script's `#!` line), which has PyYAML beside it.
fn validator_python(validator: &Path) -> PathBuf {
    let script = which(validator);
    let text = std::fs::read_to_string(&script).unwrap();
    let shebang = text.lines().next().and_then(|l| l.strip_prefix("#!")).unwrap_or_else(|| panic!("{script:?}"));
    PathBuf::from(shebang.split_whitespace().next().unwrap())
}

fn which(program: &Path) -> PathBuf {
    if program.components().count() > 1 {
        return program.to_path_buf();
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program:?} is not on PATH"))
}

#[test]
fn every_argument_reaches_the_container_as_written() {
    // Read back by a real YAML parser (PyYAML, as the validator uses): what the kubelet will
    // hand to sluice is each argument as given, with `$` doubled for its own $(VAR) expansion.
    let Some(validator) = validator("every_argument_reaches_the_container_as_written") else { return };
    let tricky = [
        "--header",
        "X-Note: \"quoted\" 'single' # not a comment: {a: [b]} & *alias !tag %",
        "--exclude",
        "é — 日本 \u{85}\u{2028}\u{feff}",
        "--include",
        "^/api/(v1|v2)/\\d+$",
        "--exclude",
        "$(HOME)",
        "--exclude",
        "yes",
        "--exclude",
        "0x1F",
        "--exclude",
        "~",
    ];
    let mut more = vec!["--"];
    more.extend(tricky);
    let (code, yaml, stderr) = k8s_job(&more);
    assert_eq!(code, Some(0), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.yaml");
    std::fs::write(&file, yaml).unwrap();
    let output = Command::new(validator_python(&validator))
        .args(["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let documents: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(documents.len(), 2);
    let container = &documents[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], serde_json::json!(["sluice"]));
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let expected: Vec<String> = tricky.iter().map(|a| a.replace('$', "$$")).collect();
    assert_eq!(args[args.len() - tricky.len()..], expected);
    assert_eq!(documents[0]["spec"]["completions"], 4);
    assert_eq!(documents[0]["spec"]["backoffLimitPerIndex"], 0);
    assert_eq!(documents[1]["spec"]["suspend"], true);
}
