//! `--target kafka://…` and its options: which brokers and topic, what each message holds, and
//! the output topic an end-to-end run consumes (`--consume`, `--match`).

use super::options::ReplayOptions;
use super::{ConfigError, Target, bad};

/// Where messages go, and how each planned request becomes one.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaTarget {
    pub topic: TopicAddress,
    pub value: MessageValue,
    pub key: MessageKey,
    /// The output topic to match produced messages with (`--consume`), for end-to-end latency.
    pub consume: Option<Consume>,
}

impl KafkaTarget {
    /// The target as `--target` names it, before its flags are applied.
    pub fn to(topic: TopicAddress) -> KafkaTarget {
        KafkaTarget { topic, value: MessageValue::Line, key: MessageKey::None, consume: None }
    }
}

/// `kafka://HOST:PORT[,HOST:PORT]/TOPIC`.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicAddress {
    /// `host:port` of each bootstrap broker, as given (port 9092 when left out).
    pub brokers: Vec<String>,
    pub name: String,
}

impl std::fmt::Display for TopicAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kafka://{}/{}", self.brokers.join(","), self.name)
    }
}

/// What a message's value is (`--kafka-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageValue {
    /// The log line as read (a HAR entry, which has no line, is sent as JSON).
    Line,
    /// The planned request as a JSON object (see [`crate::send::kafka`] for its fields).
    Json,
}

/// What a message's key is (`--kafka-key`): messages with one key go to one partition, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKey {
    None,
    /// The logged client address.
    Client,
    /// The `--sessions` session (`s17`), so a session's messages keep their order.
    Session,
    /// A logged request header or log-format variable of this name (lower case).
    Field(String),
}

/// `--consume kafka://…/TOPIC --match …`.
#[derive(Debug, Clone, PartialEq)]
pub struct Consume {
    pub topic: TopicAddress,
    pub by: Match,
}

/// How an output message names the input message it came from: its seq, carried by a header
/// (`header:sluice-seq`, as the app copied it) or a top-level JSON field of its value (`json:seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Header(String),
    JsonField(String),
}

/// Kafka's own limit on a topic name.
const TOPIC_NAME_BYTES: usize = 249;
/// Bootstrap brokers in one target: a cluster's address list, not an inventory.
const MAX_BROKERS: usize = 32;

/// `kafka://HOST:PORT[,HOST:PORT]/TOPIC`, or an error saying what is wrong with it.
pub fn parse_topic_address(text: &str) -> Result<TopicAddress, String> {
    let rest =
        text.strip_prefix("kafka://").ok_or_else(|| format!("'{text}': a Kafka address starts with kafka://"))?;
    if rest.split('/').next().is_some_and(|brokers| brokers.contains('@')) {
        // Not echoed: the text holds the secret.
        return Err("credentials in a kafka:// address (user:password@) are not accepted: sluice's Kafka client \
                    connects without SASL, and they would show in every output and file"
            .into());
    }
    let (brokers, topic) = rest
        .split_once('/')
        .ok_or_else(|| format!("'{text}': name the topic after the brokers: kafka://HOST:PORT/TOPIC"))?;
    if topic.is_empty() || topic.len() > TOPIC_NAME_BYTES || topic == "." || topic == ".." {
        return Err(format!("'{text}': a topic name is 1 to {TOPIC_NAME_BYTES} characters"));
    }
    if let Some(c) = topic.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("'{text}': '{c}' cannot be in a topic name (letters, digits, '.', '_' and '-')"));
    }
    let brokers: Vec<String> = brokers
        .split(',')
        .map(|broker| {
            let broker = broker.trim();
            let (host, port) = match broker.rsplit_once(':') {
                Some((host, port)) if !host.ends_with(']') || broker.starts_with('[') => (host, Some(port)),
                _ => (broker, None),
            };
            if host.is_empty() || host.contains(['/', '?', '#', '@']) {
                return Err(format!("'{text}': '{broker}' is not HOST:PORT"));
            }
            let port = match port {
                None => 9092,
                Some(p) => p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("'{text}': '{p}' is not a port (1 to 65535)"))?,
            };
            Ok(format!("{host}:{port}"))
        })
        .collect::<Result<_, String>>()?;
    if brokers.len() > MAX_BROKERS {
        return Err(format!("'{text}': at most {MAX_BROKERS} bootstrap brokers"));
    }
    Ok(TopicAddress { brokers, name: topic.to_string() })
}

/// `target` with the `--kafka-*`, `--consume` and `--match` flags applied when it is a Kafka
/// target; for any other target, an error if one of them is given.
pub(super) fn with_flags(target: Target, args: &ReplayOptions) -> Result<Target, ConfigError> {
    let Target::Kafka(kafka) = target else {
        let given = [
            ("--kafka-value", args.kafka_value.is_some()),
            ("--kafka-key", args.kafka_key.is_some()),
            ("--kafka-acks", args.kafka_acks.is_some()),
            ("--consume", args.consume.is_some()),
            ("--match", args.r#match.is_some()),
        ];
        return match given.iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(bad(flag, "is for a Kafka target (--target kafka://HOST:PORT/TOPIC)")),
            None => Ok(target),
        };
    };
    let topic = kafka.topic;
    let value = match args.kafka_value.as_deref().map(str::trim) {
        None | Some("line") => MessageValue::Line,
        Some("json") => MessageValue::Json,
        Some(other) => return Err(bad("--kafka-value", format!("'{other}': expected line or json"))),
    };
    let key = match args.kafka_key.as_deref().map(str::trim) {
        None | Some("none") => MessageKey::None,
        Some("client") => MessageKey::Client,
        Some("session") if args.sessions.is_none() => {
            return Err(bad("--kafka-key", "session keys messages by --sessions: give --sessions too"));
        }
        Some("session") => MessageKey::Session,
        Some(field) if !field.is_empty() && field.bytes().all(|b| b.is_ascii_graphic()) => {
            MessageKey::Field(field.to_ascii_lowercase())
        }
        Some(other) => {
            return Err(bad(
                "--kafka-key",
                format!("'{other}': expected none, client, session or the name of a logged header or field"),
            ));
        }
    };
    match args.kafka_acks.as_deref().map(str::trim) {
        None | Some("all") => {}
        // rskafka 0.6 writes acks=-1 into every produce request and has no setting for it. acks=1
        // would need a second client of sluice's own (leader lookup, versions, retries); acks=0
        // is not even that: the broker answers nothing, and rskafka waits for every answer.
        Some(weaker @ ("leader" | "none")) => {
            return Err(bad(
                "--kafka-acks",
                format!(
                    "only `all` is supported: sluice's Kafka client (rskafka) asks every produce for acks from all \
                     in-sync replicas (acks=-1) and cannot ask for {} ({weaker}); a latency measured with `all` is \
                     the slowest of the three",
                    if weaker == "leader" { "acks=1" } else { "acks=0" }
                ),
            ));
        }
        Some(other) => return Err(bad("--kafka-acks", format!("'{other}': expected all, leader or none"))),
    }
    let consume = match (&args.consume, &args.r#match) {
        (None, None) => None,
        (None, Some(_)) => return Err(bad("--match", "says how to match --consume's messages; give --consume too")),
        (Some(address), matching) => {
            let topic_out = parse_topic_address(address.trim()).map_err(|m| bad("--consume", m))?;
            let by = match matching.as_deref().map(str::trim) {
                None => Match::Header(SEQ_HEADER.to_string()),
                Some(spec) => parse_match(spec).map_err(|m| bad("--match", m))?,
            };
            if topic_out == topic {
                return Err(bad("--consume", "is the output topic; it cannot be the --target topic itself"));
            }
            Some(Consume { topic: topic_out, by })
        }
    };
    Ok(Target::Kafka(Box::new(KafkaTarget { topic, value, key, consume })))
}

/// The header every produced message carries its seq in (and [`RUN_HEADER`] the run's id).
pub const SEQ_HEADER: &str = "sluice-seq";
pub const RUN_HEADER: &str = "sluice-run";

fn parse_match(spec: &str) -> Result<Match, String> {
    let named = |name: &str| !name.is_empty() && name.len() <= 256 && name.bytes().all(|b| b.is_ascii_graphic());
    match spec.split_once(':') {
        Some(("header", name)) if named(name) => Ok(Match::Header(name.to_string())),
        Some(("json", field)) if named(field) => Ok(Match::JsonField(field.to_string())),
        _ => Err(format!("'{spec}': expected header:NAME (e.g. header:{SEQ_HEADER}) or json:FIELD")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_addresses() {
        let t = parse_topic_address("kafka://127.0.0.1:9092,b2/orders.v1").unwrap();
        assert_eq!(t.brokers, ["127.0.0.1:9092", "b2:9092"]);
        assert_eq!(t.name, "orders.v1");
        assert_eq!(t.to_string(), "kafka://127.0.0.1:9092,b2:9092/orders.v1");
        for bad in [
            "kafka://h:1",
            "kafka://h:1/",
            "http://h/t",
            "kafka://h:0/t",
            "kafka://h:x/t",
            "kafka://h/a/b",
            "kafka:///t",
        ] {
            assert!(parse_topic_address(bad).is_err(), "{bad}");
        }
        let refused = parse_topic_address("kafka://user:s3cret@b1:9092/t").unwrap_err();
        assert!(refused.contains("credentials") && !refused.contains("s3cret"), "{refused}");
    }

    #[test]
    fn matches() {
        assert_eq!(parse_match("header:sluice-seq").unwrap(), Match::Header("sluice-seq".into()));
        assert_eq!(parse_match("json:seq").unwrap(), Match::JsonField("seq".into()));
        for bad in ["seq", "header:", "body:x", "json:a b"] {
            assert!(parse_match(bad).is_err(), "{bad}");
        }
    }
}
