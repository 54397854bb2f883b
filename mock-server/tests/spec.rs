//! The spec strings (table tests, good and bad) and the pure decision function.

use std::time::Duration;

use sluice_mock::{
    Behavior, LatencyModel, MockConfig, PathMatch, Rule, SpecError, SpecKind, StatusDist, parse_duration,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

#[test]
fn durations() {
    let good = [
        ("0", Duration::ZERO),
        ("0ms", Duration::ZERO),
        ("5ms", ms(5)),
        (" 7ms ", ms(7)),
        ("250us", us(250)),
        ("3µs", us(3)),
        ("20ns", Duration::from_nanos(20)),
        ("1.5s", ms(1500)),
        ("0.1s", ms(100)),
        ("2.25ms", us(2250)),
        ("1.000000001s", Duration::from_nanos(1_000_000_001)),
        // sluice's grammar, which the mock shares: minutes, hours, units in a row.
        ("5m", Duration::from_secs(300)),
        ("1m30s", Duration::from_secs(90)),
    ];
    for (input, want) in good {
        assert_eq!(parse_duration(input), Ok(want), "{input:?}");
    }
    let bad = [
        ("", "missing unit"),
        ("5", "missing unit"),
        ("ms", "not a number"),
        ("5 ms", "unknown unit"),
        ("-5ms", "not a number"),
        ("5xs", "unknown unit"),
        ("1m30", "missing unit"),
        ("1.ms", "not a number"),
        (".5ms", "not a number"),
        ("1.2.3ms", "not a number"),
        ("1.0000000001s", "at most 9 decimals"),
        ("99999999999999999999s", "too long"),
        ("18446744073709551615s", "too long"),
    ];
    for (input, reason) in bad {
        let err = parse_duration(input).expect_err(input);
        assert_eq!(err.kind, SpecKind::Duration, "{input:?}");
        assert!(err.reason.contains(reason), "{input:?}: {err}");
        assert!(err.to_string().contains("5ms"), "the message shows the allowed forms: {err}");
    }
}

#[test]
fn status_lists() {
    let good: [(&str, &[(u16, u32)]); 5] = [
        ("200", &[(200, 1)]),
        ("503", &[(503, 1)]),
        ("200:90,404:5,500:5", &[(200, 90), (404, 5), (500, 5)]),
        (" 200 : 9 , 500:1 ", &[(200, 9), (500, 1)]),
        ("200:0,500:1", &[(200, 0), (500, 1)]),
    ];
    for (input, want) in good {
        let dist: StatusDist = input.parse().unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(dist.entries(), want, "{input:?}");
    }
    let bad = [
        ("", "empty item"),
        ("200,", "empty item"),
        ("99", "bad code"),
        ("103", "bad code"),
        ("600", "bad code"),
        ("2000", "bad code"),
        ("abc", "bad code"),
        ("200:x", "bad weight"),
        ("200:-1", "bad weight"),
        ("200:0", "add up to 0"),
        ("200:1,200:2", "listed twice"),
    ];
    for (input, reason) in bad {
        let err = input.parse::<StatusDist>().expect_err(input);
        assert_eq!(err.kind, SpecKind::StatusList, "{input:?}");
        assert!(err.reason.contains(reason), "{input:?}: {err}");
        assert!(err.to_string().contains("CODE[:WEIGHT]"), "{err}");
    }
}

#[test]
fn latencies() {
    let good = [
        ("0", LatencyModel::Fixed(Duration::ZERO)),
        ("5ms", LatencyModel::Fixed(ms(5))),
        ("1ms..20ms", LatencyModel::Uniform { min: ms(1), max: ms(20) }),
        ("3ms..3ms", LatencyModel::Uniform { min: ms(3), max: ms(3) }),
        ("lognormal:5ms,80ms", LatencyModel::LongTail { median: ms(5), p99: ms(80) }),
        ("lognormal: 5ms , 5ms", LatencyModel::LongTail { median: ms(5), p99: ms(5) }),
    ];
    for (input, want) in good {
        assert_eq!(input.parse::<LatencyModel>(), Ok(want), "{input:?}");
    }
    let bad = [
        ("", "bad duration"),
        ("5", "bad duration"),
        ("fast", "bad duration"),
        ("20ms..1ms", "min is above max"),
        ("1ms..", "bad duration"),
        ("lognormal:5ms", "MEDIAN,P99"),
        ("lognormal:80ms,5ms", "below the median"),
        ("lognormal:0,5ms", "above 0"),
        ("lognormal:5ms,80", "bad duration"),
    ];
    for (input, reason) in bad {
        let err = input.parse::<LatencyModel>().expect_err(input);
        assert_eq!(err.kind, SpecKind::Latency, "{input:?}");
        assert!(err.reason.contains(reason), "{input:?}: {err}");
        assert!(err.to_string().contains("lognormal:MEDIAN,P99"), "{err}");
    }
}

#[test]
fn rules() {
    let rule =
        |path: PathMatch, behavior: Option<Behavior>, latency: Option<LatencyModel>| Rule { path, behavior, latency };
    let prefix = |p: &str| PathMatch::Prefix(p.into());
    let exact = |p: &str| PathMatch::Exact(p.into());
    let good = [
        ("/api/*=503", rule(prefix("/api/"), Some(Behavior::Status(503)), None)),
        ("/*=status:404", rule(prefix("/"), Some(Behavior::Status(404)), None)),
        ("/login=reset", rule(exact("/login"), Some(Behavior::Reset), None)),
        ("/x=garbage,10ms", rule(exact("/x"), Some(Behavior::Garbage), Some(LatencyModel::Fixed(ms(10))))),
        ("/h=hang", rule(exact("/h"), Some(Behavior::Hang), None)),
        ("/slow=50ms", rule(exact("/slow"), None, Some(LatencyModel::Fixed(ms(50))))),
        ("/a=1ms..2ms", rule(exact("/a"), None, Some(LatencyModel::Uniform { min: ms(1), max: ms(2) }))),
        ("/s=lognormal:5ms,80ms", rule(exact("/s"), None, Some(LatencyModel::LongTail { median: ms(5), p99: ms(80) }))),
        (
            "/s/*=503,lognormal:5ms,80ms",
            rule(
                prefix("/s/"),
                Some(Behavior::Status(503)),
                Some(LatencyModel::LongTail { median: ms(5), p99: ms(80) }),
            ),
        ),
        (" /t = 201 , 5ms ", rule(exact("/t"), Some(Behavior::Status(201)), Some(LatencyModel::Fixed(ms(5))))),
    ];
    for (input, want) in &good {
        assert_eq!(input.parse::<Rule>().as_ref(), Ok(want), "{input:?}");
        // Display prints the same syntax back.
        let again: Rule = want.to_string().parse().unwrap_or_else(|e| panic!("{want}: {e}"));
        assert_eq!(&again, want);
    }
    let bad = [
        ("api=503", "start with '/'"),
        ("/api", "missing '='"),
        ("/api=", "missing action"),
        ("/a*b=503", "only allowed at the end"),
        ("/a**=503", "only allowed at the end"),
        ("/h=hang,5ms", "takes no latency"),
        ("/x=teapot", "neither a behaviour nor a latency"),
        ("/x=600", "neither a behaviour nor a latency"),
        ("/x=503,fast", "bad duration"),
        ("/x=50ms,503", "neither a behaviour nor a latency"),
    ];
    for (input, reason) in bad {
        let err: SpecError = input.parse::<Rule>().expect_err(input);
        assert_eq!(err.kind, SpecKind::Rule, "{input:?}");
        assert!(err.reason.contains(reason), "{input:?}: {err}");
        assert!(err.to_string().contains("PATH=ACTION"), "{err}");
    }
}

#[test]
fn display_round_trips() {
    for input in ["200", "200:90,404:5,500:5"] {
        assert_eq!(input.parse::<StatusDist>().unwrap().to_string(), input);
    }
    for input in ["0", "5ms", "250us", "20ns", "2s", "1ms..20ms", "lognormal:5ms,80ms"] {
        assert_eq!(input.parse::<LatencyModel>().unwrap().to_string(), input);
    }
    assert_eq!("1.5s".parse::<LatencyModel>().unwrap().to_string(), "1500ms");
    for input in ["503", "reset", "garbage", "hang"] {
        assert_eq!(input.parse::<Behavior>().unwrap().to_string(), input);
    }
}

// ---------------------------------------------------------------------------------------------
// decide(): the pure function behind every answer

fn config(statuses: &str, latency: &str) -> MockConfig {
    MockConfig::default().with_seed(42).with_statuses(statuses.parse().unwrap()).with_latency(latency.parse().unwrap())
}

#[test]
fn decisions_depend_only_on_seed_and_key() {
    let a = config("200:90,404:5,500:5", "1ms..20ms");
    let b = a.clone();
    let other_seed = a.clone().with_seed(43);
    let keys = 0..1000u64;
    let run = |c: &MockConfig| keys.clone().map(|k| c.decide("/x", k)).collect::<Vec<_>>();
    assert_eq!(run(&a), run(&b));
    assert_ne!(run(&a), run(&other_seed));
    // Order of asking does not matter: no hidden state.
    let backwards: Vec<_> = keys.clone().rev().map(|k| a.decide("/x", k)).collect();
    assert_eq!(backwards.into_iter().rev().collect::<Vec<_>>(), run(&a));
    // The query is not part of the decision.
    assert_eq!(a.decide("/x?y=1", 7), a.decide("/x", 7));
}

#[test]
fn statuses_follow_the_weights() {
    let c = config("200:90,404:5,500:5", "0");
    let n = 20_000;
    let mut tally = std::collections::BTreeMap::new();
    for k in 0..n {
        *tally.entry(c.status_for("/x", k).unwrap()).or_insert(0u64) += 1;
    }
    assert_eq!(tally.keys().copied().collect::<Vec<_>>(), [200, 404, 500]);
    for (code, count) in tally {
        let share = count as f64 / n as f64;
        assert!((share - c.statuses.share(code)).abs() < 0.01, "{code}: {share}");
    }
    // A zero weight never comes up.
    let c = config("200:0,503:1", "0");
    assert!((0..1000).all(|k| c.status_for("/", k) == Some(503)));
}

#[test]
fn precedence_rule_then_status_path_then_mix() {
    let c = config("200", "7ms")
        .with_rule("/api/special=201".parse().unwrap())
        .with_rule("/api/*=500,1ms".parse().unwrap())
        .with_rule("/status/418=202".parse().unwrap())
        .with_rule("/slow/*=50ms".parse().unwrap())
        .with_rule("/h=hang".parse().unwrap());
    let d = |path: &str| c.decide(path, 3);
    assert_eq!(d("/"), sluice_mock::Decision { behavior: Behavior::Status(200), latency: ms(7) });
    assert_eq!(d("/api/special").behavior, Behavior::Status(201), "first match wins");
    assert_eq!(d("/api/special").latency, ms(7), "a rule without latency keeps the server's");
    assert_eq!(d("/api/x?q=1"), sluice_mock::Decision { behavior: Behavior::Status(500), latency: ms(1) });
    assert_eq!(d("/apix").behavior, Behavior::Status(200), "prefix /api/ does not match /apix");
    assert_eq!(d("/status/503").behavior, Behavior::Status(503));
    assert_eq!(d("/status/503/more").behavior, Behavior::Status(503));
    assert_eq!(d("/status/418").behavior, Behavior::Status(202), "rules beat /status/NNN");
    assert_eq!(d("/status/103").behavior, Behavior::Status(200), "1xx is not a /status path");
    assert_eq!(d("/slow/a"), sluice_mock::Decision { behavior: Behavior::Status(200), latency: ms(50) });
    assert_eq!(d("/h"), sluice_mock::Decision { behavior: Behavior::Hang, latency: Duration::ZERO });
}

#[test]
fn uniform_latency_covers_its_range() {
    let c = config("200", "10ms..20ms");
    let all: Vec<Duration> = (0..5000).map(|k| c.decide("/", k).latency).collect();
    assert!(all.iter().all(|d| (ms(10)..=ms(20)).contains(d)));
    assert!(all.iter().any(|d| *d < ms(11)) && all.iter().any(|d| *d > ms(19)));
}

#[test]
fn long_tail_latency_has_the_asked_median_and_p99() {
    let c = config("200", "lognormal:5ms,80ms");
    let mut all: Vec<Duration> = (0..40_000).map(|k| c.decide("/", k).latency).collect();
    all.sort();
    let median = all[all.len() / 2].as_secs_f64() * 1000.0;
    let p99 = all[all.len() * 99 / 100].as_secs_f64() * 1000.0;
    assert!((4.5..5.5).contains(&median), "median {median} ms");
    assert!((68.0..92.0).contains(&p99), "p99 {p99} ms");
    assert!(*all.last().unwrap() <= ms(800), "capped at 10 x p99");
    // A degenerate tail is a fixed delay.
    let c = config("200", "lognormal:5ms,5ms");
    assert!((0..100).all(|k| c.decide("/", k).latency.abs_diff(ms(5)) < us(1)));
}
