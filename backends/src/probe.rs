//! The capability probe: does this object store really refuse a second create of a key, and
//! does it serialize racing creates? Some S3-compatible servers accept and ignore
//! `If-None-Match: *`; on such a store two clients would both "win" the same sequence
//! numbers, so `eventsync doctor` runs this and refuses the store.

use std::fmt;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::join_all;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};

use crate::BackendError;
use crate::open::{OpenOptions, open_object_store};
use crate::paths::probe_dir;

/// One check of the probe and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeCheck {
    /// Short stable name, e.g. `create-twice`.
    pub name: String,
    /// Whether the store behaved as the event log needs.
    pub passed: bool,
    /// What was observed.
    pub detail: String,
}

/// The probe's findings, check by check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// Every check run, in order.
    pub checks: Vec<ProbeCheck>,
}

impl ProbeReport {
    /// True when every check passed: the store can serve an event log.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|check| check.passed)
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            let mark = if check.passed { "ok  " } else { "FAIL" };
            writeln!(f, "{mark} {}: {}", check.name, check.detail)?;
        }
        if self.passed() {
            write!(
                f,
                "verdict: conditional creates work; this store can hold an event log"
            )
        } else {
            write!(
                f,
                "verdict: this store does not enforce conditional creates (If-None-Match: *); clients could overwrite each other's events, so eventsync refuses it"
            )
        }
    }
}

/// How hard the probe pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Concurrent creates per race round.
    pub race_width: usize,
    /// Race rounds, each on a fresh key.
    pub race_rounds: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            race_width: 16,
            race_rounds: 20,
        }
    }
}

/// Runs the probe with the default options (16 racers, 20 rounds) under
/// `{prefix}/.eventsync-probe/{random}/`, then deletes its keys (best effort).
pub async fn probe(store: Arc<dyn ObjectStore>, prefix: &Path) -> ProbeReport {
    probe_with(store, prefix, ProbeOptions::default()).await
}

/// Runs the probe against the object store a backend URL names.
pub async fn probe_url(url: &str, options: &OpenOptions) -> Result<ProbeReport, BackendError> {
    let (store, prefix) = open_object_store(url, options)?;
    Ok(probe(store, &prefix).await)
}

/// Runs the probe with explicit options.
pub async fn probe_with(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    options: ProbeOptions,
) -> ProbeReport {
    let run = crate::Entropy::from_os().hex::<8>();
    let dir = probe_dir(prefix, &run);
    let mut checks = Vec::new();
    checks.extend(create_twice(store.as_ref(), &dir.clone().join("twice")).await);
    if checks.iter().all(|c| c.passed) {
        checks.push(race(store.as_ref(), &dir, options).await);
    }
    cleanup(store.as_ref(), &dir).await;
    ProbeReport { checks }
}

async fn create(store: &dyn ObjectStore, key: &Path, body: &str) -> object_store::Result<()> {
    store
        .put_opts(
            key,
            PutPayload::from(body.to_owned()),
            PutMode::Create.into(),
        )
        .await
        .map(|_| ())
}

async fn read(store: &dyn ObjectStore, key: &Path) -> Result<String, String> {
    let result = store.get(key).await.map_err(|e| e.to_string())?;
    let bytes = result.bytes().await.map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Create a key, then create it again: the second must fail with `AlreadyExists` and the
/// first body must survive.
async fn create_twice(store: &dyn ObjectStore, key: &Path) -> Vec<ProbeCheck> {
    let first = create(store, key, "first").await;
    let create_check = ProbeCheck {
        name: "create".into(),
        passed: first.is_ok(),
        detail: match &first {
            Ok(()) => format!("created {key} with PutMode::Create"),
            Err(e) => format!("could not create {key}: {e}"),
        },
    };
    if first.is_err() {
        return vec![create_check];
    }
    let second = create(store, key, "second").await;
    let body = read(store, key).await;
    let (passed, detail) = match (&second, &body) {
        (Err(object_store::Error::AlreadyExists { .. }), Ok(b)) if b == "first" => (
            true,
            "a second create failed with AlreadyExists and the first body remained".into(),
        ),
        (Ok(()), _) => (
            false,
            format!("a second create of {key} succeeded: the store ignores If-None-Match"),
        ),
        (Err(e), Ok(b)) if b == "first" => (
            false,
            format!("a second create failed, but not with AlreadyExists: {e}"),
        ),
        (_, Ok(b)) => (
            false,
            format!("after two creates the object holds {b:?}, not \"first\""),
        ),
        (_, Err(e)) => (false, format!("could not read {key} back: {e}")),
    };
    vec![
        create_check,
        ProbeCheck {
            name: "create-twice".into(),
            passed,
            detail,
        },
    ]
}

/// Races `race_width` creates on one fresh key per round: exactly one must win each round,
/// the rest must fail with `AlreadyExists`, and the winner's body must be the one stored.
async fn race(store: &dyn ObjectStore, dir: &Path, options: ProbeOptions) -> ProbeCheck {
    let name = "create-race".to_string();
    for round in 0..options.race_rounds {
        let key = dir.clone().join(format!("race-{round}"));
        let attempts = (0..options.race_width).map(|racer| {
            let key = key.clone();
            async move { (racer, create(store, &key, &format!("racer-{racer}")).await) }
        });
        let results = join_all(attempts).await;
        let winners: Vec<usize> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(racer, _)| *racer)
            .collect();
        if let Some((_, Err(e))) = results
            .iter()
            .find(|(_, r)| !matches!(r, Ok(()) | Err(object_store::Error::AlreadyExists { .. })))
        {
            return ProbeCheck {
                name,
                passed: false,
                detail: format!(
                    "round {round}: a losing create failed with an unexpected error: {e}"
                ),
            };
        }
        if winners.len() != 1 {
            return ProbeCheck {
                name,
                passed: false,
                detail: format!(
                    "round {round}: {} of {} concurrent creates on one key succeeded; exactly one must",
                    winners.len(),
                    options.race_width
                ),
            };
        }
        let expected = format!("racer-{}", winners[0]);
        match read(store, &key).await {
            Ok(body) if body == expected => {}
            Ok(body) => {
                return ProbeCheck {
                    name,
                    passed: false,
                    detail: format!("round {round}: {expected} won but the object holds {body:?}"),
                };
            }
            Err(e) => {
                return ProbeCheck {
                    name,
                    passed: false,
                    detail: format!("round {round}: could not read {key}: {e}"),
                };
            }
        }
    }
    ProbeCheck {
        name,
        passed: true,
        detail: format!(
            "{} rounds of {} concurrent creates: exactly one winner each round",
            options.race_rounds, options.race_width
        ),
    }
}

/// Deletes the probe's keys. Failures are logged, not reported: the verdict is about
/// creates, and a leftover scratch key harms nothing.
async fn cleanup(store: &dyn ObjectStore, dir: &Path) {
    let keys: Vec<_> = store.list(Some(dir)).collect().await;
    for meta in keys.into_iter().flatten() {
        if let Err(e) = store.delete(&meta.location).await {
            tracing::debug!(key = %meta.location, error = %e, "probe cleanup failed");
        }
    }
}
