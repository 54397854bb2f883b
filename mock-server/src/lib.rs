//! sluice-mock: a loopback HTTP/1.1 server for testing sluice from both ends of the wire. It
//! answers with seeded random statuses and latencies, misbehaves on request, and records what it
//! received, so a test can compare what sluice sent (the mock's record) with what sluice wrote
//! (its CSV).
//!
//! ```text
//!  MockConfig ──spawn()/spawn_in_thread()──▶ MockServer handle (addr, url, requests, counts, shutdown)
//!                  │
//!                  ▼
//!  accept loop (127.0.0.1:0) ─▶ one task per connection: hyper http1, keep-alive
//!                                  │ per request, once its body is read:
//!                                  │   seq = arrival number, key = x-sluice-seq header or seq
//!                                  │   decide(seed, path, key) ─▶ Decision { behaviour, latency }
//!                                  │   counters; record ─▶ memory Vec and/or JSONL writer thread
//!                                  ▼
//!                        sleep(latency) ─▶ status + "ok\n" body | reset | garbage | hang
//! ```
//!
//! Modules, in the order data flows:
//! - [`spec`]: the spec strings (`200:90,500:10`, `1ms..20ms`, `/api/*=503,50ms`, …) and their
//!   types; every one implements `FromStr` and a `Display` that round-trips.
//! - [`config`]: [`MockConfig`] and the pure [`MockConfig::decide`].
//! - [`server`]: [`spawn`], [`spawn_in_thread`], [`MockServer`].
//! - [`record`]: [`RecordedRequest`] and the JSON-lines writer.
//! - [`metrics`]: `GET /metrics`, what the mock answered by path and status, for a Prometheus.
//! - [`cli`]: [`MockArgs`] and [`run_cli`], shared by `sluice-mock` and `sluice mock`.
//!
//! # Determinism
//!
//! A request's status and latency are a hash of `(seed, key)`, where the key is the request's
//! `x-sluice-seq` header (a decimal u64) when it has one, else its arrival number (0-based, in the
//! order request bodies finished arriving). Nothing depends on which requests came before, so
//! with the header the answers are the same however concurrent requests interleave, and without
//! it they are the same for any client that sends one request at a time. A test predicts request
//! n's answer with `config.decide(path, n)`.
//!
//! # What is recorded, exactly
//!
//! The method, the request-target as sent (percent-escapes kept verbatim), the headers (names
//! lower-cased by hyper; repeated names grouped), the body (bytes, up to `max_recorded_body`), the
//! decided behaviour and latency, the connection id and peer. hyper validates the request line
//! first: a target that is not valid UTF-8 (raw bytes ≥ 0x80 that do not form UTF-8) is answered
//! `400` by hyper and never reaches the handler; such connections are counted by
//! [`MockServer::protocol_errors`]. Raw UTF-8 and percent-encoded bytes (`/caf%E9`) are recorded
//! as sent.
//!
//! # Timing
//!
//! Latencies are slept with tokio's timer, whose resolution is 1 ms: a `250us` latency takes about
//! 1 ms. [`MockServer::peak_concurrency`] counts a request from the end of its head to the moment
//! its answer is handed to hyper, a window inside the client's own, so the peak can never exceed
//! what the client had in flight.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sluice_mock::MockError> {
//! use sluice_mock::{MockConfig, spawn};
//! let config = MockConfig::default().with_seed(7).with_statuses("200:90,500:10".parse()?);
//! let server = spawn(config.clone()).await?;
//! // ... drive sluice against server.url() ...
//! server.shutdown().await?;
//! for r in server.requests() {
//!     assert_eq!(r.status(), config.status_for(&r.target, r.key));
//! }
//! # Ok(()) }
//! ```

pub mod cli;
pub mod config;
mod error;
pub mod metrics;
pub mod record;
pub mod server;
pub mod spec;

pub use cli::{MockArgs, run_cli};
pub use config::{DEFAULT_BODY_BYTES, Decision, MockConfig, SEQ_HEADER};
pub use error::{MockError, SpecError};
pub use record::RecordedRequest;
pub use server::{Counts, MockServer, SEQ_RESPONSE_HEADER, spawn, spawn_in_thread};
pub use spec::{Behavior, BodyRule, BodyTemplate, LatencyModel, PathMatch, Rule, SpecKind, StatusDist, parse_duration};
