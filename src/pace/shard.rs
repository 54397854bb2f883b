//! One shard of a run split across processes (`--shard I/K`): every shard reads the same log,
//! numbers its requests identically and computes every due time, and keeps request `n` when
//! `n mod K = I` — or, with `--sessions`, the whole session whose id hashes to `I` — sending it at
//! its global due time `T0 + t(n)`. The union of the K shards is exactly the one-process plan.

use crate::plan::ReplayRequest;

/// Where a shard's index may come from, in the order `--shard auto/K` looks: a Kubernetes
/// Indexed Job, Slurm, Nomad.
pub const INDEX_VARIABLES: [&str; 3] = ["JOB_COMPLETION_INDEX", "SLURM_PROCID", "NOMAD_ALLOC_INDEX"];
/// Slurm's task count, for `--shard auto` without `/K`.
const SLURM_TASKS: &str = "SLURM_NTASKS";
/// Most shards of one run.
pub const MAX_SHARDS: u32 = 10_000;

/// This process's part of a sharded run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
    /// `--shard`, or the environment variable the index came from.
    pub index_from: &'static str,
}

impl Shard {
    /// Parses `--shard I/K`, `auto/K` or `auto`, reading the environment through `env` for `auto`.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let form = "expected I/K (0-based index of K shards, e.g. 2/4), auto/K or auto";
        let text = text.trim();
        let (index, count) = text.split_once('/').map_or((text, None), |(i, k)| (i.trim(), Some(k.trim())));
        let count = match count {
            Some(k) => k.parse::<u32>().map_err(|_| format!("'{text}': '{k}' is not a number of shards; {form}"))?,
            None if index == "auto" => {
                let tasks = env(SLURM_TASKS).ok_or_else(|| {
                    format!("'auto' without /K takes K from {SLURM_TASKS}, which is not set; give auto/K")
                })?;
                tasks.trim().parse().map_err(|_| format!("{SLURM_TASKS}='{tasks}' is not a number of shards"))?
            }
            None => return Err(format!("'{text}': {form}")),
        };
        if !(1..=MAX_SHARDS).contains(&count) {
            return Err(format!("'{text}': the number of shards must be between 1 and {MAX_SHARDS}"));
        }
        let (index, index_from) = if index == "auto" {
            let (name, value) = INDEX_VARIABLES
                .iter()
                .find_map(|name| env(name).map(|value| (*name, value)))
                .ok_or_else(|| format!("'auto' found no shard index: none of {} is set", INDEX_VARIABLES.join(", ")))?;
            let index = value.trim().parse::<u32>().map_err(|_| format!("{name}='{value}' is not a shard index"))?;
            (index, name)
        } else {
            (index.parse::<u32>().map_err(|_| format!("'{text}': '{index}' is not a shard index; {form}"))?, "--shard")
        };
        if index >= count {
            return Err(format!(
                "shard index {index} (from {index_from}) is not below the number of shards {count}: indexes are 0 to {}",
                count - 1
            ));
        }
        Ok(Shard { index, count, index_from })
    }

    /// Whether this shard sends `req`: by its place in the plan, or by its session, so that a
    /// session's requests stay together (and in order) on one shard.
    pub fn keeps(&self, req: &ReplayRequest) -> bool {
        let key = match req.session {
            // Session ids are numbered in order of first appearance; mixing them spreads
            // neighbouring sessions over the shards.
            Some(session) => session.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32,
            None => req.seq,
        };
        key % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pace::schedule::{Arrivals, LogClock, RateCurve, Schedule, Shape, parse_stages};
    use crate::results::SessionTag;
    use proptest::prelude::*;
    use std::time::Duration;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_index_comes_from_the_flag_or_the_engine() {
        assert_eq!(Shard::parse("2/4", env(&[])).unwrap(), Shard { index: 2, count: 4, index_from: "--shard" });
        let k8s = Shard::parse("auto/4", env(&[("JOB_COMPLETION_INDEX", "3")])).unwrap();
        assert_eq!((k8s.index, k8s.index_from), (3, "JOB_COMPLETION_INDEX"));
        let slurm = Shard::parse("auto", env(&[("SLURM_PROCID", "1"), ("SLURM_NTASKS", "8")])).unwrap();
        assert_eq!(slurm, Shard { index: 1, count: 8, index_from: "SLURM_PROCID" });
        let nomad = Shard::parse("auto/2", env(&[("NOMAD_ALLOC_INDEX", "0")])).unwrap();
        assert_eq!(nomad.index_from, "NOMAD_ALLOC_INDEX");
        for (bad, message) in [
            ("4/4", "not below the number of shards 4"),
            ("auto/4", "none of JOB_COMPLETION_INDEX, SLURM_PROCID, NOMAD_ALLOC_INDEX is set"),
            ("auto", "SLURM_NTASKS, which is not set"),
            ("1/0", "between 1 and 10000"),
            ("x/4", "'x' is not a shard index"),
            ("2", "expected I/K"),
        ] {
            let err = Shard::parse(bad, env(&[])).unwrap_err();
            assert!(err.contains(message), "{bad}: {err}");
        }
        let err = Shard::parse("auto/4", env(&[("JOB_COMPLETION_INDEX", "7")])).unwrap_err();
        assert!(err.contains("index 7 (from JOB_COMPLETION_INDEX)"), "{err}");
    }

    /// The plan of one process: `(seq, due)` for every request it sends.
    fn plan(shape: &Shape, batch: u32, requests: &[ReplayRequest], shard: Option<Shard>) -> Vec<(u64, Duration)> {
        let mut schedule = Schedule::new(shape.clone(), batch, None);
        let mut kept = Vec::new();
        for req in requests {
            let Some(due) = schedule.due(LogClock::of(req)) else { break };
            if shard.is_none_or(|s| s.keeps(req)) {
                kept.push((req.seq, due));
            }
        }
        kept
    }

    fn shape_of(mode: u8, seed: u64) -> Shape {
        match mode {
            0 => Shape::steady(500.0),
            1 => Shape::Curve {
                curve: RateCurve::stages(parse_stages("2s:0-300,1s:300").unwrap()),
                arrivals: Arrivals::Uniform,
            },
            2 => Shape::Curve { curve: RateCurve::steady(200.0), arrivals: Arrivals::Poisson { seed } },
            _ => Shape::Logged { speed: 3.0, max_gap: Some(Duration::from_secs(1)) },
        }
    }

    proptest! {
        /// For every shape, K shards are disjoint, their union is the one-process plan (the same
        /// `(seq, due)` pairs), and without sessions their sizes differ by at most one.
        #[test]
        fn shards_split_every_shape_exactly(
            mode in 0u8..4,
            seed in any::<u64>(),
            count in 1u32..16,
            batch in 1u32..4,
            gaps_ms in proptest::collection::vec(0u64..3_000, 1..300),
            sessions in proptest::collection::vec(proptest::option::of(0u64..20), 300),
            with_sessions in any::<bool>(),
        ) {
            let shape = shape_of(mode, seed);
            let mut offset = Duration::ZERO;
            let requests: Vec<ReplayRequest> = gaps_ms.iter().enumerate().map(|(n, gap)| {
                offset += Duration::from_millis(*gap);
                let mut req = ReplayRequest::for_test("/");
                req.seq = n as u64;
                req.log_offset = Some(offset);
                req.position.passes = 1;
                if with_sessions {
                    req.session = sessions[n].map(|id| SessionTag { id, seq: 0 });
                }
                req
            }).collect();
            let whole = plan(&shape, batch, &requests, None);
            let mut union = Vec::new();
            let mut sizes = Vec::new();
            for index in 0..count {
                let part = plan(&shape, batch, &requests, Some(Shard { index, count, index_from: "--shard" }));
                sizes.push(part.len());
                union.extend(part);
            }
            union.sort_by_key(|(seq, _)| *seq);
            let before = union.len();
            union.dedup_by_key(|(seq, _)| *seq);
            prop_assert_eq!(before, union.len(), "a request kept by two shards");
            prop_assert_eq!(&union, &whole);
            if !with_sessions {
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                prop_assert!(max - min <= 1, "sizes {:?}", sizes);
            }
        }
    }
}
