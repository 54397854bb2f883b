//! `--compare` and its options, validated: the baseline URLs and how bodies are normalised
//! before they are compared. The sending and the digests are [`crate::send::compare`]'s.

use reqwest::Url;
use serde_json::Value;

/// Bytes of a body kept for normalising, unless `--compare-body-limit` says otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// `--compare-body-limit` at most: at --concurrency 64 and three sides, about 12 GB in the worst
/// case, which is already more than a loader should hold.
pub const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// What `--compare` and its options ask for, validated.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The baseline (B).
    pub baseline: Url,
    /// A second baseline (B2), for telling noise from differences.
    pub noise: Option<Url>,
    pub rules: BodyRules,
}

/// How bodies are normalised before they are compared.
#[derive(Debug, Clone, Default)]
pub struct BodyRules {
    pub ignore_json_paths: Vec<JsonPath>,
    pub ignore_regexes: Vec<regex::bytes::Regex>,
    /// Bodies longer than this are compared by their raw hash.
    pub body_limit: usize,
    /// Keep JSON leaves, for the noise comparison.
    pub leaves: bool,
}

impl BodyRules {
    /// Whether any rule needs the body's bytes (else its raw hash is all there is).
    pub(crate) fn needs_bytes(&self) -> bool {
        !self.ignore_json_paths.is_empty() || !self.ignore_regexes.is_empty() || self.leaves
    }

    pub(crate) fn parses_json(&self) -> bool {
        !self.ignore_json_paths.is_empty() || self.leaves
    }
}

// ---- JSON paths ---------------------------------------------------------------------------------

/// `--ignore-json-path`: a small JSONPath subset, `$` followed by `.key`, `[n]`, `.*` or `[*]`
/// steps (`$.now`, `$.items[*].id`, `$.meta.trace[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    Any,
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let expected = "expected $ followed by .key, [n], .* or [*] steps, e.g. '$.now' or '$.items[*].id'";
        let Some(mut rest) = text.trim().strip_prefix('$') else {
            return Err(format!("'{text}' does not start with $; {expected}"));
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let key = &after[..end];
                steps.push(match key {
                    "" => return Err(format!("'{text}': an empty key after '.'; {expected}")),
                    "*" => Step::Any,
                    key => Step::Key(key.to_string()),
                });
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(|| format!("'{text}': '[' without ']'; {expected}"))?;
                let inside = &after[..end];
                steps.push(match inside {
                    "*" => Step::Any,
                    n => Step::Index(n.parse().map_err(|_| format!("'{text}': [{n}] is not an index; {expected}"))?),
                });
                rest = &after[end + 1..];
            } else {
                return Err(format!("'{text}': unexpected '{rest}'; {expected}"));
            }
        }
        if steps.is_empty() {
            return Err(format!("'{text}' names the whole body; {expected}"));
        }
        Ok(JsonPath { text: text.trim().to_string(), steps })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Removes what the path names: an object's key is removed, an array's element becomes
    /// `null` (removing it would shift every later index, and so hide or invent differences).
    pub(crate) fn remove_from(&self, value: &mut Value) {
        remove(value, &self.steps);
    }
}

fn remove(value: &mut Value, steps: &[Step]) {
    let Some((step, rest)) = steps.split_first() else { return };
    let last = rest.is_empty();
    match (value, step) {
        (Value::Object(map), Step::Key(key)) => {
            if last {
                map.remove(key);
            } else if let Some(v) = map.get_mut(key) {
                remove(v, rest);
            }
        }
        (Value::Object(map), Step::Any) => {
            if last {
                map.clear();
            } else {
                map.values_mut().for_each(|v| remove(v, rest));
            }
        }
        (Value::Array(items), Step::Index(i)) => {
            if let Some(v) = items.get_mut(*i) {
                if last { *v = Value::Null } else { remove(v, rest) }
            }
        }
        (Value::Array(items), Step::Any) => {
            for v in items.iter_mut() {
                if last { *v = Value::Null } else { remove(v, rest) }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_parse_the_documented_subset_and_refuse_the_rest() {
        let p = JsonPath::parse("$.a.b[2][*].*").unwrap();
        assert_eq!(p.steps, vec![Step::Key("a".into()), Step::Key("b".into()), Step::Index(2), Step::Any, Step::Any]);
        for bad in ["now", "$", "$.", "$.a[", "$.a[x]", "$a"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
