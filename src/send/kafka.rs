//! `--target kafka://HOST:PORT/TOPIC`: every planned request becomes one message, produced at its
//! due time by the same pacer and senders as HTTP (one produce request in flight per sender, so
//! `--concurrency` bounds the produce requests in flight).
//!
//! A message is shaped while the log is read ([`MessageShaper`]): its value (the log line, or
//! the planned request as JSON), its key and its partition, chosen as Kafka's own clients choose
//! it (murmur2 of the key, else round robin by seq), so the row's `url` names the partition
//! before it is sent. The [`Producer`] sends it with headers `sluice-run` and `sluice-seq`; the
//! offset the broker acknowledges it at goes into the row's `url` as its fragment
//! ([`name_offset`]).
//!
//! The client is rskafka (pure Rust, no librdkafka): it produces with acks from all in-sync
//! replicas and reconnects to a partition's leader by itself.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{Method, Url};
use rskafka::BackoffConfig;
use rskafka::client::error::Error as KafkaError;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use sluice_parsers::Entry;

use super::outcome::{ErrorKind, Failure};
use super::transport::Sent;
use crate::config::kafka::{KafkaTarget, MessageKey, MessageValue, RUN_HEADER, SEQ_HEADER, TopicAddress};
use crate::config::{ReplayConfig, Target};
use crate::plan::{ReplayRequest, StreamMessage};

/// After a failed connection, messages fail at once (as `kafka:connect`) for this long before
/// the next attempt: a broker that is down gives each message an error row without slowing the
/// run to one connection attempt per message.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// Waiting for a broker's answer while connecting, at most (and at most `--timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Partitions a topic may have for sluice to produce to it: far above real topics.
const MAX_PARTITIONS: usize = 100_000;
/// Connections to the cluster, at most. A broker answers one connection's requests one after
/// the other, so a single connection caps a run at one produce per broker round trip (about
/// 3,300/s against a local Tansu, whatever `--concurrency`). Partition P's messages go over
/// connection P mod N, N being this, `--concurrency` or the partitions, whichever is least: each
/// partition keeps its order, and a topic's partitions are produced to side by side.
const MAX_CONNECTIONS: usize = 8;

/// The message method in the CSV: not an HTTP method, and said so.
pub fn produce_method() -> Method {
    Method::from_bytes(b"PRODUCE").expect("a valid token")
}

/// How long the client retries a failed request or connection before giving up (rskafka's own
/// default is forever): a broker that refuses connections fails a message within about this.
const RETRY_FOR: Duration = Duration::from_secs(1);

/// Connects to the cluster behind `address`. Its requests are retried for at most [`RETRY_FOR`]
/// (and `deadline`).
pub async fn connect(address: &TopicAddress, deadline: Duration) -> Result<Client, KafkaError> {
    let backoff = BackoffConfig { deadline: Some(deadline.min(RETRY_FOR)), ..BackoffConfig::default() };
    ClientBuilder::new(address.brokers.clone()).client_id("sluice").backoff_config(backoff).build().await
}

/// A topic's partition count, or why it is not known (no such topic: [`MissingTopic`]).
pub async fn partition_count(client: &Client, topic: &str) -> Result<usize, Failure> {
    let topics = client.list_topics().await.map_err(|e| failure(&e))?;
    match topics.into_iter().find(|t| t.name == topic) {
        Some(t) if t.partitions.is_empty() => {
            Err(Failure::new(ErrorKind::KafkaBroker, format!("topic '{topic}' has no partitions")))
        }
        Some(t) => Ok(t.partitions.len().min(MAX_PARTITIONS)),
        None => Err(Failure::new(ErrorKind::KafkaBroker, format!("{MISSING_TOPIC} '{topic}'"))),
    }
}

/// The start of the message of a topic that does not exist.
const MISSING_TOPIC: &str = "no such topic";

/// Sorts a client error into the CSV's kinds, with its message. Retries that ran out are sorted
/// by what the last attempt ran into.
pub fn failure(e: &KafkaError) -> Failure {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut kind = ErrorKind::KafkaBroker;
    while let Some(err) = cause {
        match err.downcast_ref::<KafkaError>() {
            Some(KafkaError::Connection(_) | KafkaError::Request(_)) => {
                kind = ErrorKind::KafkaConnect;
                break;
            }
            Some(KafkaError::ServerError { .. }) => {
                kind = ErrorKind::KafkaBroker;
                break;
            }
            Some(KafkaError::Timeout | KafkaError::RetryFailed(_)) => kind = ErrorKind::KafkaTimeout,
            _ if err.is::<std::io::Error>() => {
                kind = ErrorKind::KafkaConnect;
                break;
            }
            _ => {}
        }
        cause = err.source();
    }
    Failure::new(kind, super::outcome::error_text(e))
}

/// Checks the target before the run: an unknown topic is a clear error (exit 2) and nothing is
/// sent. A broker that cannot be reached is not: the run goes on, each message an error row
/// (`kafka:connect`) until it can be; then its partitions are counted as 1 (the summary's
/// first failure says why).
pub fn check_before_run(target: &KafkaTarget, timeout: Duration) -> Result<Option<usize>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let deadline = timeout.min(CONNECT_TIMEOUT);
    let topics = [Some(&target.topic), target.consume.as_ref().map(|c| &c.topic)];
    runtime.block_on(async {
        let mut partitions = None;
        for (flag, topic) in ["--target", "--consume"].into_iter().zip(topics) {
            let Some(topic) = topic else { continue };
            let counted = match tokio::time::timeout(deadline, connect(topic, deadline)).await {
                Ok(Ok(client)) => partition_count(&client, &topic.name).await,
                Ok(Err(e)) => Err(failure(&e)),
                Err(_) => Err(Failure::new(ErrorKind::KafkaTimeout, "no answer")),
            };
            match counted {
                Ok(n) if flag == "--target" => partitions = Some(n),
                Ok(_) => {}
                Err(f) if f.message.starts_with(MISSING_TOPIC) => {
                    return Err(format!(
                        "{flag} {topic}: the topic does not exist; create it first (sluice does not create topics)"
                    ));
                }
                Err(f) => eprintln!("sluice: warning: {flag} {topic}: cannot read the topic ({}); going on", f.message),
            }
        }
        Ok(partitions)
    })
}

/// The URL requests are planned against (the first bootstrap broker): their path and query
/// become the JSON value's `target`; the safety checks see the broker's host.
pub fn planning_url(target: &KafkaTarget) -> Result<Url, String> {
    Url::parse(&format!("kafka://{}/", target.topic.brokers[0])).map_err(|e| format!("--target {}: {e}", target.topic))
}

/// For a Kafka target, checks it ([`check_before_run`]) and returns how its messages are shaped.
pub fn shaper_for(config: &ReplayConfig) -> Result<Option<MessageShaper>, String> {
    let Target::Kafka(kafka) = &config.target else { return Ok(None) };
    let partitions = check_before_run(kafka, config.timeout)?;
    MessageShaper::new(kafka, partitions.unwrap_or(1)).map(Some)
}

/// Shapes each planned request into a message while the log is read.
#[derive(Debug, Clone)]
pub struct MessageShaper {
    value: MessageValue,
    key: MessageKey,
    /// The row's `url` for each partition.
    urls: Vec<Url>,
}

impl MessageShaper {
    pub fn new(target: &KafkaTarget, partitions: usize) -> Result<MessageShaper, String> {
        // A URL holds one host: the row names the first bootstrap broker.
        let first = &target.topic.brokers[0];
        let urls = (0..partitions.max(1))
            .map(|p| Url::parse(&format!("kafka://{first}/{}/{p}", target.topic.name)))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--target {}: {e}", target.topic))?;
        Ok(MessageShaper { value: target.value, key: target.key.clone(), urls })
    }

    /// Turns `req`, planned from `entry` (read as `line`), into its message: the value in `body`,
    /// the key and partition in `stream`, `PRODUCE` and the partition's URL for its row.
    pub fn shape(&self, entry: &Entry<'_>, line: Option<&[u8]>, req: &mut ReplayRequest) {
        let value = match (self.value, line) {
            (MessageValue::Line, Some(line)) => Bytes::copy_from_slice(line),
            _ => Bytes::from(request_json(entry, req)),
        };
        let key: Option<Bytes> = match &self.key {
            MessageKey::None => None,
            MessageKey::Client => entry.remote_addr.as_deref().map(Bytes::copy_from_slice),
            MessageKey::Session => req.session.map(|s| Bytes::from(format!("s{}", s.id))),
            MessageKey::Field(name) => logged_field(entry, name).map(Bytes::copy_from_slice),
        };
        let partitions = self.urls.len();
        let partition = match &key {
            Some(key) => (murmur2(key) & 0x7fff_ffff) as usize % partitions,
            None => (req.seq % partitions as u64) as usize,
        };
        req.body = Some(value);
        req.headers = Vec::new();
        req.method = produce_method();
        req.url = self.urls[partition].clone();
        req.stream = Some(StreamMessage { key, partition: partition as i32 });
    }
}

/// A logged request header (`user-agent` and `referer` included) or log-format variable, by
/// its name in any case.
fn logged_field<'e>(entry: &'e Entry<'_>, name: &str) -> Option<&'e [u8]> {
    match name {
        "user-agent" => return entry.user_agent.as_deref(),
        "referer" => return entry.referer.as_deref(),
        _ => {}
    }
    entry.headers.iter().chain(&entry.fields).find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| &v[..])
}

/// The planned request as JSON, with stable field names: `method`, `target` (path and query,
/// after the rewriting rules), `headers` (an object; a repeated name's values joined by ", "),
/// `body` (text, invalid UTF-8 replaced), `logged_time` (RFC 3339), `logged_status`, `client`
/// (the logged address). A field the log does not have is null.
fn request_json(entry: &Entry<'_>, req: &ReplayRequest) -> Vec<u8> {
    let mut headers = serde_json::Map::new();
    for (name, value) in &req.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_string(), value.into());
            }
        }
    }
    let target = match req.url.query() {
        Some(query) => format!("{}?{query}", req.url.path()),
        None => req.url.path().to_string(),
    };
    let json = serde_json::json!({
        "method": req.method.as_str(),
        "target": target,
        "headers": headers,
        "body": req.body.as_deref().map(String::from_utf8_lossy),
        "logged_time": req.log_time.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        "logged_status": req.orig_status,
        "client": entry.remote_addr.as_deref().map(String::from_utf8_lossy),
    });
    serde_json::to_vec(&json).expect("a JSON value serializes")
}

/// Kafka's default partitioner hash (murmur2, as `org.apache.kafka.common.utils.Utils.murmur2`),
/// so a key lands on the partition a Java producer would choose.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The producing side of a Kafka run, shared by all senders. It connects on first use, inside
/// the senders' runtime (the connection's tasks live there).
pub struct Producer {
    target: TopicAddress,
    timeout: Duration,
    /// This run's id, in every message's `sluice-run` header.
    run_id: String,
    /// `min(--concurrency, MAX_CONNECTIONS)`.
    connections: usize,
    /// A client of each partition, partition P's on connection P mod [`Producer::connections`].
    partitions: OnceLock<Vec<PartitionClient>>,
    /// Held while connecting; the last failure and when, for [`RECONNECT_AFTER`].
    connecting: tokio::sync::Mutex<Option<(Instant, Failure)>>,
}

impl Producer {
    pub fn new(target: &KafkaTarget, timeout: Duration, concurrency: usize) -> Producer {
        Producer {
            target: target.topic.clone(),
            timeout,
            run_id: new_run_id(),
            connections: concurrency.clamp(1, MAX_CONNECTIONS),
            partitions: OnceLock::new(),
            connecting: tokio::sync::Mutex::new(None),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    async fn partitions(&self) -> Result<&[PartitionClient], Failure> {
        if let Some(partitions) = self.partitions.get() {
            return Ok(partitions);
        }
        let mut last_failure = self.connecting.lock().await;
        if let Some(partitions) = self.partitions.get() {
            return Ok(partitions);
        }
        if let Some((at, failure)) = &*last_failure
            && at.elapsed() < RECONNECT_AFTER
        {
            return Err(failure.clone());
        }
        let deadline = self.timeout.min(CONNECT_TIMEOUT);
        let connected = match tokio::time::timeout(deadline, self.connect(deadline)).await {
            Ok(connected) => connected,
            Err(_) => Err(Failure::new(ErrorKind::KafkaConnect, format!("no broker answered within {deadline:?}"))),
        };
        match connected {
            Ok(partitions) => Ok(self.partitions.get_or_init(|| partitions)),
            Err(failure) => {
                *last_failure = Some((Instant::now(), failure.clone()));
                Err(failure)
            }
        }
    }

    /// A client of each partition, over as many clients (each with its own broker connections)
    /// as [`Producer::connections`] or the topic's partitions, whichever is fewer.
    async fn connect(&self, deadline: Duration) -> Result<Vec<PartitionClient>, Failure> {
        let client = || async {
            connect(&self.target, deadline)
                .await
                .map_err(|e| Failure::new(ErrorKind::KafkaConnect, failure(&e).message))
        };
        let mut clients = vec![client().await?];
        let count = partition_count(&clients[0], &self.target.name).await?;
        while clients.len() < self.connections.min(count) {
            clients.push(client().await?);
        }
        let mut partitions = Vec::with_capacity(count);
        for p in 0..count {
            let partition = clients[p % clients.len()]
                .partition_client(self.target.name.clone(), p as i32, UnknownTopicHandling::Error)
                .await
                .map_err(|e| failure(&e))?;
            partitions.push(partition);
        }
        Ok(partitions)
    }

    /// Produces `req`'s message and waits for its acknowledgement: what the message got, and the
    /// offset the broker gave it (`None` when it was not acknowledged). The status of an
    /// acknowledged message is 0 (Kafka's error code for none); `bytes` is the size of its value.
    pub async fn send(&self, req: &ReplayRequest) -> (Sent, Option<i64>) {
        let Some(message) = &req.stream else {
            return ((Err(Failure::new(ErrorKind::Other, "a request without a Kafka message")), 0), None);
        };
        // A partition's messages all go over one connection, which the broker answers in order:
        // they land in the order they were sent, as from one Kafka producer.
        let partitions = match self.partitions().await {
            Ok(partitions) => partitions,
            Err(failure) => return ((Err(failure), 0), None),
        };
        let Some(partition) = partitions.get(message.partition as usize) else {
            // Counted before the run while the broker was down: messages went to partition 0.
            let failure = Failure::new(ErrorKind::KafkaBroker, "the topic has fewer partitions than planned");
            return ((Err(failure), 0), None);
        };
        let value = req.body.clone().unwrap_or_default();
        let size = value.len() as u64;
        let record = Record {
            key: message.key.as_deref().map(<[u8]>::to_vec),
            value: Some(value.to_vec()),
            headers: BTreeMap::from([
                (RUN_HEADER.to_string(), self.run_id.as_bytes().to_vec()),
                (SEQ_HEADER.to_string(), req.seq.to_string().into_bytes()),
            ]),
            timestamp: chrono::Utc::now(),
        };
        match tokio::time::timeout(self.timeout, partition.produce(vec![record], Compression::NoCompression)).await {
            // One record, one offset.
            Ok(Ok(offsets)) => ((Ok(0), size), offsets.first().copied()),
            Ok(Err(e)) => ((Err(failure(&e)), 0), None),
            Err(_) => {
                let failure =
                    Failure::new(ErrorKind::KafkaTimeout, format!("no acknowledgement within {:?}", self.timeout));
                ((Err(failure), 0), None)
            }
        }
    }
}

/// Writes the offset an acknowledged message got into its row's `url`, as the fragment
/// (`kafka://BROKER/TOPIC/PARTITION#OFFSET`): where to find the message, while the path, and so
/// the report's route, stays the partition's.
pub fn name_offset(url: &mut Url, offset: i64) {
    url.set_fragment(Some(&offset.to_string()));
}

/// 16 hex digits, random: tells this run's messages from another run's on the same topics.
/// (std's randomly keyed hasher over the time and process id: no random-number crate needed.)
fn new_run_id() -> String {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new();
    format!("{:016x}", random.hash_one((std::time::SystemTime::now(), std::process::id())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::kafka::parse_topic_address;
    use crate::plan::{PlanRules, Planner};

    fn shaped(value: MessageValue, key: MessageKey, line: &str, seq: u64) -> ReplayRequest {
        let target = KafkaTarget { value, key, ..KafkaTarget::to(parse_topic_address("kafka://b1:9092/t").unwrap()) };
        let shaper = MessageShaper::new(&target, 4).unwrap();
        let format = sluice_parsers::Format::from_spec("apache-combined").unwrap();
        let entry = format.parse_line(line.as_bytes()).unwrap();
        let mut planner = Planner::new(&planning_url(&target).unwrap(), PlanRules::default());
        let mut req = planner.plan(&entry, 0, 1).unwrap();
        req.seq = seq;
        shaper.shape(&entry, Some(line.as_bytes()), &mut req);
        req
    }

    const LINE: &str = r#"10.1.2.3 - - [21/Nov/2026:14:03:07 +0000] "GET /cart/add?id=7 HTTP/1.1" 201 12 "-" "ua/1""#;

    #[test]
    fn a_message_is_the_line_or_the_request_as_json_keyed_and_partitioned_as_kafka_does() {
        let line = shaped(MessageValue::Line, MessageKey::None, LINE, 6);
        assert_eq!(line.body.as_deref(), Some(LINE.as_bytes()));
        assert_eq!(line.method.as_str(), "PRODUCE");
        // Unkeyed: round robin by seq over the 4 partitions.
        assert_eq!(line.url.as_str(), "kafka://b1:9092/t/2");
        assert_eq!(line.stream, Some(StreamMessage { key: None, partition: 2 }));

        let json = shaped(MessageValue::Json, MessageKey::Client, LINE, 6);
        let value: serde_json::Value = serde_json::from_slice(json.body.as_deref().unwrap()).unwrap();
        assert_eq!(value["method"], "GET");
        assert_eq!(value["target"], "/cart/add?id=7");
        assert_eq!(value["logged_status"], 201);
        assert_eq!(value["logged_time"], "2026-11-21T14:03:07Z");
        assert_eq!(value["client"], "10.1.2.3");
        assert_eq!(value["headers"]["user-agent"], "ua/1");
        let key = json.stream.as_ref().unwrap().key.clone().unwrap();
        assert_eq!(&key[..], b"10.1.2.3");
        let partition = (murmur2(b"10.1.2.3") & 0x7fff_ffff) as i32 % 4;
        assert_eq!(json.stream.unwrap().partition, partition, "murmur2 of the key, whatever the seq");
        assert_eq!(json.url.as_str(), format!("kafka://b1:9092/t/{partition}"));

        let by_header = shaped(MessageValue::Line, MessageKey::Field("user-agent".into()), LINE, 0);
        assert_eq!(by_header.stream.unwrap().key.as_deref(), Some(&b"ua/1"[..]));
        let missing = shaped(MessageValue::Line, MessageKey::Field("x-request-id".into()), LINE, 0);
        assert_eq!(missing.stream.unwrap().key, None, "a line without the field has no key");
    }

    #[test]
    fn an_acknowledged_messages_offset_is_its_urls_fragment_and_its_route_stays_the_partition() {
        let mut url = shaped(MessageValue::Line, MessageKey::None, LINE, 6).url;
        name_offset(&mut url, 1207);
        assert_eq!(url.as_str(), "kafka://b1:9092/t/2#1207");
        assert_eq!(crate::analysis::Router::default().route(url.as_str()), "/t/2");
    }

    #[test]
    fn murmur2_is_kafkas() {
        // The values of Kafka's own UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107),
        ];
        for (text, expected) in cases {
            assert_eq!(murmur2(text.as_bytes()) as i32, expected, "{text}");
        }
    }
}
