//! Runs split across machines (`--shard I/K`) and put back together afterwards.
//!
//! ```text
//! shard I of K ──▶ its CSV + <stem>.manifest.json (written last, by rename: present = finished)
//!                     │
//!   manifests ──▶ set::check_set: one run, same options and logs, 0..K-1 each once, complete
//!                     │
//!   CSVs ──▶ merge: each shard sorted by seq (in bounded runs on disk), then a k-way merge
//!                   into one CSV in plan order — memory flat whatever the rows
//! ```
//!
//! `sluice merge` ([`crate::cli::merge`]) and `sluice report` over shard files
//! ([`crate::analysis`]) read through here; the replay writes a [`Manifest`] when a shard ends.

pub mod find;
pub mod manifest;
pub mod merge;
pub mod set;
pub mod write;

pub use find::{Found, ShardFile, find_shards, manifest_beside};
pub use manifest::{Manifest, ManifestError, manifest_path_for, sha256_file};
pub use merge::{MergeInput, MergeOptions, MergeStats, merge_csvs};
pub use set::{SetError, SetReport, check_partial_set, check_set};
