//! `store.json` (the store's layout version and a random backend id, created once with
//! `PutMode::Create` by whichever client comes first) and the [`Incarnation`] it names.
//!
//! A client caches the incarnation it works in. Only two things replace it: the first
//! contact (nothing cached yet) and an explicit re-read ([`SyncBackend::backend_id`]); both
//! create `store.json` when it is missing. Everything else ([`Inner::check_identity`]: a
//! push, the start of a pull, an idle live pull now and then, tail discovery) only compares
//! and reports [`BackendError::BackendIdMismatch`]: a stale writer must never recreate the
//! store by itself, and must not slide into a new store it has not reconciled with.
//!
//! [`SyncBackend::backend_id`]: crate::SyncBackend::backend_id

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use object_store::path::Path;
use object_store::{PutMode, PutPayload};
use serde::{Deserialize, Serialize};

use super::known::Known;
use super::recent::Recent;
use super::{Inner, corrupt, get_if_present, store_error};
use crate::BackendError;
use crate::paths::{BackendId, LogPaths, STORE_LAYOUT_VERSION};

/// One life of a store: a backend id, the keys of its log, and what this client learned
/// about that log's segments. A wiped and recreated store is a new incarnation; what was
/// learned about the old one goes with it.
pub(super) struct Incarnation {
    pub(super) id: BackendId,
    pub(super) paths: LogPaths,
    /// Facts about immutable segments (position, size, digest), and so the tail.
    known: Mutex<Known>,
    /// The bytes of the segments this client wrote or read last (see `recent.rs`).
    recent: Mutex<Recent>,
}

impl Incarnation {
    fn new(inner: &Inner, id: BackendId) -> Incarnation {
        Incarnation {
            paths: inner.paths.log(&id),
            id,
            known: Mutex::new(Known::default()),
            recent: Mutex::new(Recent::default()),
        }
    }

    pub(super) fn known(&self) -> MutexGuard<'_, Known> {
        // The guarded data is a cache of facts, valid even if a holder panicked.
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bytes of recent segments: immutable, so valid even if a holder panicked.
    pub(super) fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The content of `store.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoreJson {
    /// The store layout version ([`STORE_LAYOUT_VERSION`]). The field kept the name it had
    /// in layout 1, so that a build that reads only layout 1 refuses a newer store with its
    /// "upgrade eventsync" message instead of misreading it.
    format_version: u16,
    /// Random, made when the store was created; it names the folder of the store's log, and
    /// segments carry it too.
    backend_id: String,
    /// The store id, for humans reading the bucket.
    store_id: String,
}

/// How many times to re-read after a create that was refused or ambiguous.
const CREATE_ATTEMPTS: usize = 5;

impl Inner {
    /// The incarnation this client works in: the cached one, or on first contact the one
    /// `store.json` names (created when missing). The flag says whether `store.json` was
    /// read just now (so a caller need not check it again).
    pub(super) async fn incarnation(&self) -> Result<(Arc<Incarnation>, bool), BackendError> {
        if let Some(current) = self.cached_incarnation() {
            return Ok((current, false));
        }
        Ok((self.adopt_current().await?, true))
    }

    fn cached_incarnation(&self) -> Option<Arc<Incarnation>> {
        self.identity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads `store.json` afresh (creating it when missing) and works in the incarnation it
    /// names from now on. When the id changed, the store was wiped and recreated: what was
    /// learned about the old log is dropped with its incarnation.
    pub(super) async fn adopt_current(&self) -> Result<Arc<Incarnation>, BackendError> {
        let id = self.load_or_create().await?;
        let mut cached = self.identity.lock().unwrap_or_else(PoisonError::into_inner);
        match cached.as_ref() {
            Some(current) if current.id == id => Ok(current.clone()),
            previous => {
                if let Some(previous) = previous {
                    tracing::warn!(store = %self.store_id, old = %previous.id, new = %id,
                        "backend id changed: the store was wiped and recreated");
                }
                let fresh = Arc::new(Incarnation::new(self, id));
                *cached = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// Fails with [`BackendError::BackendIdMismatch`] when `store.json` is missing or names
    /// another id than `expected`'s. One GET; never creates anything.
    pub(super) async fn check_identity(&self, expected: &Incarnation) -> Result<(), BackendError> {
        match self.read_store_json().await? {
            Some(id) if id == expected.id => Ok(()),
            found => Err(BackendError::BackendIdMismatch {
                expected: expected.id.to_string(),
                found: found.map(|id| id.to_string()),
            }),
        }
    }

    /// The backend id in `store.json`, or `None` when there is no `store.json`.
    pub(super) async fn read_store_json(&self) -> Result<Option<BackendId>, BackendError> {
        let key = self.paths.store_json();
        match get_if_present(self.store.as_ref(), &key).await? {
            Some(bytes) => parse(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn load_or_create(&self) -> Result<BackendId, BackendError> {
        let key = self.paths.store_json();
        for _ in 0..CREATE_ATTEMPTS {
            if let Some(id) = self.read_store_json().await? {
                return Ok(id);
            }
            let (id, body) = self.fresh_store_json()?;
            match self
                .store
                .put_opts(&key, PutPayload::from(body), PutMode::Create.into())
                .await
            {
                Ok(_) => return Ok(id),
                Err(
                    e @ (object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::NotSupported { .. }),
                ) => return Err(store_error("creating", &key, e)),
                // Another client created it first, or the outcome is unknown: re-read it, so
                // racing creators all converge on the one id that landed.
                Err(e) => tracing::debug!(key = %key, error = %e, "store.json create refused"),
            }
        }
        Err(BackendError::Unavailable {
            message: format!("could not read or create {key} after {CREATE_ATTEMPTS} attempts"),
        })
    }

    /// A new backend id and the `store.json` that names it.
    fn fresh_store_json(&self) -> Result<(BackendId, Vec<u8>), BackendError> {
        let fresh = StoreJson {
            format_version: STORE_LAYOUT_VERSION,
            backend_id: self.entropy.hex::<16>(),
            store_id: self.store_id.to_string(),
        };
        let id = BackendId::parse(&fresh.backend_id).map_err(|message| BackendError::Invalid {
            message: format!("a new backend id: {message}"),
        })?;
        let body = serde_json::to_vec_pretty(&fresh).map_err(|e| BackendError::Invalid {
            message: format!("cannot serialize store.json: {e}"),
        })?;
        Ok((id, body))
    }

    /// Replaces the store on purpose ([`SyncBackend::replace_store`]): overwrites
    /// `store.json` with a new backend id and works in that incarnation from now on. The old
    /// id's segments stay in their folder, which no reader of the new id looks at; writers
    /// of the old id find out from their next check of `store.json`. Of two replacements at
    /// once the last write wins, and the loser's pushes fail with a mismatch.
    ///
    /// [`SyncBackend::replace_store`]: crate::SyncBackend::replace_store
    pub(super) async fn replace(&self) -> Result<Arc<Incarnation>, BackendError> {
        let key = self.paths.store_json();
        let (id, body) = self.fresh_store_json()?;
        self.store
            .put_opts(&key, PutPayload::from(body), PutMode::Overwrite.into())
            .await
            .map_err(|e| store_error("replacing", &key, e))?;
        let fresh = Arc::new(Incarnation::new(self, id));
        let mut cached = self.identity.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = cached.as_ref() {
            tracing::info!(store = %self.store_id, old = %previous.id, new = %fresh.id,
                "store replaced with a new backend id");
        }
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

impl Inner {
    /// A new incarnation that `store.json` does not name yet, and the `store.json` body that
    /// will name it ([`Inner::publish`]).
    pub(super) fn unpublished(&self) -> Result<(Arc<Incarnation>, Vec<u8>), BackendError> {
        let (id, body) = self.fresh_store_json()?;
        Ok((Arc::new(Incarnation::new(self, id)), body))
    }

    /// Makes `fresh` (from [`Inner::unpublished`], with `body`) the store's incarnation and
    /// this client's: overwriting `store.json` when `replace`, otherwise creating it, which
    /// fails with [`BackendError::BackendIdMismatch`] when another client created the store
    /// first.
    pub(super) async fn publish(
        &self,
        fresh: Arc<Incarnation>,
        body: Vec<u8>,
        replace: bool,
    ) -> Result<(), BackendError> {
        let key = self.paths.store_json();
        let mode = if replace {
            PutMode::Overwrite
        } else {
            PutMode::Create
        };
        let put = self
            .store
            .put_opts(&key, PutPayload::from(body), mode.into())
            .await;
        if let Err(error) = put {
            // Refused or ambiguous: whatever `store.json` names now is the answer.
            match self.read_store_json().await? {
                Some(id) if id == fresh.id => {}
                Some(id) if !replace => {
                    return Err(BackendError::BackendIdMismatch {
                        expected: fresh.id.to_string(),
                        found: Some(id.to_string()),
                    });
                }
                _ => return Err(store_error("publishing", &key, error)),
            }
        }
        let mut cached = self.identity.lock().unwrap_or_else(PoisonError::into_inner);
        *cached = Some(fresh);
        Ok(())
    }
}

fn parse(key: &Path, bytes: &[u8]) -> Result<BackendId, BackendError> {
    let json: StoreJson = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(key, format!("not a store.json: {e}")))?;
    if json.format_version == 1 {
        return Err(corrupt(
            key,
            format!(
                "the store has layout version 1 (segments under {{store}}/segments/), which this build no longer reads: it reads layout {STORE_LAYOUT_VERSION} (segments under {{store}}/{{backend id}}/segments/). Read the store with the eventsync build that wrote it, or delete the store's objects to start it again (clients then follow on_backend_id_mismatch)"
            ),
        ));
    }
    if json.format_version != STORE_LAYOUT_VERSION {
        return Err(corrupt(
            key,
            format!(
                "format version {} is not supported (this build reads version {STORE_LAYOUT_VERSION}); upgrade eventsync",
                json.format_version
            ),
        ));
    }
    BackendId::parse(&json.backend_id).map_err(|message| corrupt(key, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SegmentLog;
    use object_store::ObjectStoreExt;

    fn body(version: u16, id: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "formatVersion": version, "backendId": id, "storeId": "s"
        }))
        .unwrap()
    }

    #[test]
    fn test_parse_reads_backend_id() {
        let key = "p/s/store.json".into();
        assert_eq!(parse(&key, &body(2, "abc")).unwrap().as_str(), "abc");
    }

    #[test]
    fn test_parse_refuses_future_versions_naming_the_key() {
        let key = "p/s/store.json".into();
        match parse(&key, &body(9, "abc")) {
            Err(BackendError::Corrupt { key, message }) => {
                assert_eq!(key, "p/s/store.json");
                assert!(message.contains("version 9"), "{message}");
                assert!(message.contains("upgrade"), "{message}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn test_parse_refuses_the_old_layout_saying_what_to_do() {
        let key = "p/s/store.json".into();
        match parse(&key, &body(1, "abc")) {
            Err(BackendError::Corrupt { key, message }) => {
                assert_eq!(key, "p/s/store.json");
                assert!(message.contains("layout version 1"), "{message}");
                assert!(message.contains("delete the store's objects"), "{message}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn test_parse_refuses_hostile_backend_ids_naming_the_key() {
        let key = "p/s/store.json".into();
        let long = "a".repeat(65);
        for hostile in ["../x", "/", "", "é", &long, "a/../../b"] {
            match parse(&key, &body(2, hostile)) {
                Err(BackendError::Corrupt { key, message }) => {
                    assert_eq!(key, "p/s/store.json", "{hostile:?}");
                    assert!(message.contains("backend id"), "{hostile:?}: {message}");
                }
                other => panic!("{hostile:?} gave {other:?}, not Corrupt"),
            }
        }
    }

    fn log_over(memory: &std::sync::Arc<object_store::memory::InMemory>) -> SegmentLog {
        SegmentLog::new(memory.clone(), "p".into(), "s", Default::default()).unwrap()
    }

    #[tokio::test]
    async fn test_backend_ids_are_random_unless_seeded() {
        use crate::Entropy;
        use crate::SyncBackend;
        use object_store::memory::InMemory;
        let ids = [(); 2].map(|_| log_over(&std::sync::Arc::new(InMemory::new())));
        let (a, b) = (
            ids[0].backend_id().await.unwrap(),
            ids[1].backend_id().await.unwrap(),
        );
        assert_eq!(a.len(), 32);
        assert_ne!(a, b, "two new stores get two ids");
        let seeded = [(); 2].map(|_| {
            log_over(&std::sync::Arc::new(InMemory::new())).with_entropy(Entropy::seeded(11))
        });
        assert_eq!(
            seeded[0].backend_id().await.unwrap(),
            seeded[1].backend_id().await.unwrap(),
            "the same seed makes the same id"
        );
    }

    #[tokio::test]
    async fn test_store_json_is_written_in_the_current_layout() {
        use crate::SyncBackend;
        use object_store::memory::InMemory;
        let memory = std::sync::Arc::new(InMemory::new());
        let id = log_over(&memory).backend_id().await.unwrap();
        let stored = memory.get(&"p/s/store.json".into()).await.unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&stored.bytes().await.unwrap()).unwrap();
        assert_eq!(json["formatVersion"], STORE_LAYOUT_VERSION);
        assert_eq!(json["backendId"], id.as_str());
        assert_eq!(json["storeId"], "s");
    }
}
