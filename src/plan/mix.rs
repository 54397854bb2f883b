//! `--mix`: how often requests of a route are replayed, reweighted from the log's own traffic.
//!
//! A weight `w` multiplies the requests of the routes its pattern matches: each such request is
//! planned `floor(w)` times in a row, plus once more when a hash of (input, line, pass, seed)
//! falls below `frac(w)`. So `3` replays each matching request three times, `0.5` about half of
//! them (the same half for the same seed), `0` none. The first pattern that matches decides;
//! routes no pattern matches keep weight 1. The choice depends only on where the line is and the
//! seed, never on timing, so a run is exactly reproducible.
//!
//! Patterns are the report's route patterns (`--assert 'route:/api/* …'`): `*` matches anything,
//! `/` included, and a pattern matches a request when it matches the logged path (without its
//! query) or the path's route template (`/users/{id}`).

use crate::analysis::routes::{RouteGlob, Router, path_of};
use crate::plan::draw::{chosen, splitmix64};

/// The largest weight: one log line is never planned more than this many times, so a typo
/// (`=1e9`) cannot flood the queue from a single line.
pub const MAX_WEIGHT: f64 = 1000.0;

/// Keeps the mix's draws apart from `--sample`'s, which hash the same lines with the same seed:
/// without it, `--sample 50% --mix '*=0.5'` would keep the very lines the sample kept.
const MIX_STREAM: u64 = 0x6d69_785f_7765_6967;

const EXPECTED: &str = "expected PATTERN=WEIGHT pairs separated by commas, e.g. '/api/*=3,/static/*=0.5' \
    (a route pattern starting with / or *, and a weight from 0 to 1000)";

/// `--mix`: route patterns with their weights, first match first.
#[derive(Debug, Clone)]
pub struct Mix {
    rules: Vec<(RouteGlob, f64)>,
    seed: u64,
    router: Router,
}

impl Mix {
    /// `/api/*=3,/static/*=0.5`; `seed` picks which requests a fractional weight keeps.
    pub fn parse(spec: &str, seed: u64) -> Result<Mix, String> {
        let mut rules = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((pattern, weight)) = item.rsplit_once('=') else {
                return Err(format!("'{item}' has no '='; {EXPECTED}"));
            };
            let (pattern, weight) = (pattern.trim(), weight.trim());
            if !pattern.starts_with(['/', '*']) {
                return Err(format!("'{pattern}' is not a route pattern (it would never match a path); {EXPECTED}"));
            }
            let weight = match weight.parse::<f64>() {
                Ok(w) if (0.0..=MAX_WEIGHT).contains(&w) => w,
                Ok(_) => return Err(format!("the weight of '{pattern}' is {weight}; {EXPECTED}")),
                Err(_) => return Err(format!("the weight of '{pattern}', '{weight}', is not a number; {EXPECTED}")),
            };
            rules.push((RouteGlob::new(pattern), weight));
        }
        if rules.is_empty() {
            return Err(format!("no pattern given; {EXPECTED}"));
        }
        Ok(Mix { rules, seed, router: Router::default() })
    }

    /// The weight of the route a logged target (path and query, or an absolute URL) belongs to.
    pub fn weight(&self, target: &[u8]) -> f64 {
        let target = String::from_utf8_lossy(target);
        let path = path_of(&target);
        let route = self.router.route(path);
        self.rules.iter().find(|(glob, _)| glob.matches_request(path, &route)).map_or(1.0, |(_, w)| *w)
    }

    /// How many times the request logged at `line` of input `input` is planned on pass `pass`
    /// (from 1): 0 drops it.
    pub fn copies(&self, target: &[u8], input: usize, line: u64, pass: u64) -> u32 {
        let weight = self.weight(target);
        let whole = weight.trunc();
        let extra = chosen(splitmix64(self.seed ^ MIX_STREAM ^ pass), input, line, weight - whole);
        whole as u32 + u32::from(extra)
    }

    /// The mix as written, for messages: `/api/*=3, /static/*=0.5`.
    pub fn describe(&self) -> String {
        self.rules.iter().map(|(g, w)| format!("{}={w}", g.as_str())).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn planned(mix: &Mix, target: &str, lines: std::ops::RangeInclusive<u64>, pass: u64) -> u64 {
        lines.map(|line| u64::from(mix.copies(target.as_bytes(), 0, line, pass))).sum()
    }

    #[test]
    fn whole_weights_repeat_and_zero_drops() {
        let mix = Mix::parse("/api/*=3, /static/*=0, /health=1", 0).unwrap();
        assert_eq!(planned(&mix, "/api/items/1?x=2", 1..=100, 1), 300);
        assert_eq!(planned(&mix, "/static/app.js", 1..=100, 1), 0);
        assert_eq!(planned(&mix, "/health", 1..=100, 1), 100);
        assert_eq!(planned(&mix, "/other", 1..=100, 1), 100, "no pattern matches: weight 1");
        assert_eq!(mix.copies(b"http://prod.example/api/x", 0, 1, 1), 3, "absolute URLs by their path");
    }

    #[test]
    fn the_first_matching_pattern_wins() {
        let mix = Mix::parse("/api/admin/*=0,/api/*=2", 0).unwrap();
        assert_eq!(mix.weight(b"/api/admin/users"), 0.0);
        assert_eq!(mix.weight(b"/api/users"), 2.0);
        let reversed = Mix::parse("/api/*=2,/api/admin/*=0", 0).unwrap();
        assert_eq!(reversed.weight(b"/api/admin/users"), 2.0);
    }

    #[test]
    fn patterns_match_route_templates_too() {
        let mix = Mix::parse("/users/{id}=4", 0).unwrap();
        assert_eq!(mix.weight(b"/users/42"), 4.0);
        assert_eq!(mix.weight(b"/users/42/orders"), 1.0);
        assert_eq!(mix.weight(b"/users/alice"), 1.0, "a name is not an id");
    }

    #[test]
    fn fractions_are_reproducible_and_the_seed_and_pass_choose_others() {
        let mix = Mix::parse("*=0.5", 7).unwrap();
        let kept = |mix: &Mix, pass| (1..=1000u64).filter(|&l| mix.copies(b"/x", 0, l, pass) == 1).collect::<Vec<_>>();
        let first = kept(&mix, 1);
        assert_eq!(first, kept(&mix, 1));
        assert_eq!(first, kept(&Mix::parse("*=0.5", 7).unwrap(), 1));
        assert_ne!(first, kept(&Mix::parse("*=0.5", 8).unwrap(), 1));
        assert_ne!(first, kept(&mix, 2));
    }

    #[test]
    fn bad_specs_say_what_is_allowed() {
        for (spec, says) in [
            ("/api/*", "has no '='"),
            ("/api/*=x", "is not a number"),
            ("/api/*=-1", "is -1"),
            ("/api/*=1001", "is 1001"),
            ("/api/*=NaN", "is NaN"),
            ("/api/*=inf", "is inf"),
            ("api/*=2", "not a route pattern"),
            ("=2", "not a route pattern"),
            (" , ", "no pattern given"),
        ] {
            let err = Mix::parse(spec, 0).unwrap_err();
            assert!(err.contains(says) && err.contains("PATTERN=WEIGHT"), "{spec}: {err}");
        }
        assert_eq!(Mix::parse("/a=1000,/b=0", 0).unwrap().describe(), "/a=1000, /b=0");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Over many lines the planned count is within a few standard deviations of w·n, every
        /// line is planned floor(w) or floor(w)+1 times, and the same seed plans the same.
        #[test]
        fn planned_count_is_close_to_weight_times_lines(weight in 0.0f64..20.0, seed in any::<u64>(), pass in 1u64..5) {
            let mix = Mix::parse(&format!("/w/*={weight}"), seed).unwrap();
            let n = 5_000u64;
            let mut total = 0u64;
            for line in 1..=n {
                let c = mix.copies(b"/w/x", 1, line, pass);
                prop_assert!(c == weight.trunc() as u32 || c == weight.trunc() as u32 + 1);
                prop_assert_eq!(c, mix.copies(b"/w/x", 1, line, pass));
                total += u64::from(c);
            }
            let frac = weight - weight.trunc();
            let sd = (n as f64 * frac * (1.0 - frac)).sqrt();
            let expected = weight * n as f64;
            prop_assert!((total as f64 - expected).abs() <= 5.0 * sd + 1.0, "{} planned, {} expected", total, expected);
        }
    }
}
