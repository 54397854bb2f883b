//! The traffic shape from its options: exactly one of --rate, --stages and --speed says how
//! fast; --arrivals, --seed and --max-gap refine it; --stages also set the run's length.

use std::time::Duration;

use super::{ConfigError, DURATION, Rate, ReplayOptions, bad, duration_within, parse_rate};
use crate::display::compact_duration;
use crate::pace::schedule::{Arrivals, RateCurve, Shape, parse_stages};

/// `--speed`: from a thousandth (a minute of log over 16 hours) to a thousand times as logged.
const MIN_SPEED: f64 = 0.001;
const MAX_SPEED: f64 = 1000.0;

/// The traffic shape and the run's length, from --rate, --speed, --stages, --arrivals, --seed,
/// --max-gap and --duration: exactly one of --rate, --speed and --stages says how fast.
pub(super) fn shape_and_duration(args: &ReplayOptions) -> Result<(Shape, Option<Duration>), ConfigError> {
    let mut duration = args.duration.as_deref().map(|d| duration_within("--duration", d, DURATION)).transpose()?;
    let poisson = match args.arrivals.as_deref().map(str::trim) {
        None | Some("uniform") => false,
        Some("poisson") => true,
        Some(other) => {
            return Err(bad("--arrivals", format!("'{other}' is not an arrival kind; expected uniform or poisson")));
        }
    };
    if args.max_gap.is_some() && args.speed.is_none() {
        return Err(bad("--max-gap", "caps the silences of --speed (the log's own timing); it needs --speed"));
    }
    let curve = match (&args.rate, &args.speed, &args.stages) {
        (Some(_), Some(_), _) => {
            return Err(bad(
                "--speed",
                "cannot be combined with --rate: --speed replays at the log's own timing, --rate at a fixed rate; choose one",
            ));
        }
        (Some(_), None, Some(_)) => {
            return Err(bad(
                "--stages",
                "cannot be combined with --rate: a steady rate is the one-stage case (e.g. 10m:200)",
            ));
        }
        (None, Some(_), Some(_)) => return Err(bad("--stages", "cannot be combined with --speed; choose one")),
        (None, None, None) => {
            return Err(bad(
                "--rate",
                "required: requests per second, or max (or --stages for ramps, --speed for the log's own timing; \
                 on the command line or in --config)",
            ));
        }
        (None, Some(speed), None) => {
            if poisson {
                return Err(bad(
                    "--arrivals",
                    "poisson spreads --rate or --stages; --speed keeps the log's own arrivals",
                ));
            }
            let speed = match speed.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && (MIN_SPEED..=MAX_SPEED).contains(&x) => x,
                _ => {
                    return Err(bad(
                        "--speed",
                        format!(
                            "'{speed}' must be a number from {MIN_SPEED} to {MAX_SPEED} (1 = as logged, 2 = twice as fast)"
                        ),
                    ));
                }
            };
            let max_gap = args.max_gap.as_deref().map(|g| duration_within("--max-gap", g, DURATION)).transpose()?;
            return Ok((Shape::Logged { speed, max_gap }, duration));
        }
        (Some(rate), None, None) => match parse_rate(rate).map_err(|m| bad("--rate", m))? {
            Rate::Max if poisson => {
                return Err(bad("--arrivals", "--rate max sends as fast as it can: there are no arrivals to spread"));
            }
            Rate::Max => return Ok((Shape::Unpaced, duration)),
            Rate::PerSecond(n) => RateCurve::steady(n),
        },
        (None, None, Some(stages)) => {
            let curve = RateCurve::stages(parse_stages(stages).map_err(|m| bad("--stages", m))?);
            let length = curve.length().unwrap_or_default();
            if duration.is_some() {
                return Err(bad(
                    "--duration",
                    format!("--stages set the run's length ({}); drop --duration", compact_duration(length)),
                ));
            }
            if !DURATION.contains(&length) {
                return Err(bad(
                    "--stages",
                    format!("last {}; at most {}", compact_duration(length), compact_duration(*DURATION.end())),
                ));
            }
            duration = Some(length);
            curve
        }
    };
    let arrivals =
        if poisson { Arrivals::Poisson { seed: args.seed.unwrap_or_else(random_seed) } } else { Arrivals::Uniform };
    Ok((Shape::Curve { curve, arrivals }, duration))
}

/// A seed nobody chose: the standard library's per-process random hash keys.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}
