//! `store.json`: the store's identity (a random backend id and the format version), created
//! once with `PutMode::Create` by whichever client comes first.

use object_store::{ObjectStoreExt, PutMode, PutPayload};
use serde::{Deserialize, Serialize};

use super::{Inner, corrupt, store_error};
use crate::BackendError;
use crate::segment::{FORMAT_VERSION, MAX_BACKEND_ID_LEN};

/// The content of `store.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoreJson {
    /// The format version of the store (the segment format version it was created with).
    format_version: u16,
    /// Random, made when the store was created; segments carry it too.
    backend_id: String,
    /// The store id, for humans reading the bucket.
    store_id: String,
}

/// How many times to re-read after a create that was refused or ambiguous.
const CREATE_ATTEMPTS: usize = 5;

impl Inner {
    /// The backend id, from the cache or read (created) once.
    pub(super) async fn identity(&self) -> Result<String, BackendError> {
        if let Some(id) = self.cached_identity() {
            return Ok(id);
        }
        self.read_identity().await
    }

    fn cached_identity(&self) -> Option<String> {
        self.identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads `store.json` afresh (creating it when missing). When the id changed since the
    /// last read, the store was wiped and recreated: forget everything learned about it.
    pub(super) async fn read_identity(&self) -> Result<String, BackendError> {
        let id = self.load_or_create().await?;
        let mut cached = self
            .identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cached.as_deref() != Some(id.as_str()) {
            if cached.is_some() {
                tracing::warn!(store = %self.store_id, "backend id changed: the store was recreated");
            }
            *self.known() = Default::default();
            *cached = Some(id.clone());
        }
        Ok(id)
    }

    async fn load_or_create(&self) -> Result<String, BackendError> {
        let key = self.paths.store_json();
        for _ in 0..CREATE_ATTEMPTS {
            match self.store.get(&key).await {
                Ok(result) => {
                    let bytes = result
                        .bytes()
                        .await
                        .map_err(|e| store_error("reading", &key, e))?;
                    return parse(&key, &bytes);
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error("reading", &key, e)),
            }
            let fresh = StoreJson {
                format_version: FORMAT_VERSION,
                backend_id: self.entropy.hex::<16>(),
                store_id: self.store_id.clone(),
            };
            let body = serde_json::to_vec_pretty(&fresh).map_err(|e| BackendError::Invalid {
                message: format!("cannot serialize store.json: {e}"),
            })?;
            match self
                .store
                .put_opts(&key, PutPayload::from(body), PutMode::Create.into())
                .await
            {
                Ok(_) => return Ok(fresh.backend_id),
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
}

fn parse(key: &object_store::path::Path, bytes: &[u8]) -> Result<String, BackendError> {
    let json: StoreJson = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(key, format!("not a store.json: {e}")))?;
    if json.format_version > FORMAT_VERSION || json.format_version == 0 {
        return Err(corrupt(
            key,
            format!(
                "format version {} is not supported (this build reads version {FORMAT_VERSION}); upgrade eventsync",
                json.format_version
            ),
        ));
    }
    if json.backend_id.is_empty() || json.backend_id.len() > MAX_BACKEND_ID_LEN {
        return Err(corrupt(
            key,
            format!(
                "backend id must be 1..={MAX_BACKEND_ID_LEN} bytes, got {}",
                json.backend_id.len()
            ),
        ));
    }
    Ok(json.backend_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SegmentLog;

    #[test]
    fn test_parse_reads_backend_id() {
        let key = "p/s/store.json".into();
        let body = br#"{"formatVersion": 1, "backendId": "abc", "storeId": "s"}"#;
        assert_eq!(parse(&key, body).unwrap(), "abc");
    }

    #[test]
    fn test_parse_refuses_future_versions_naming_the_key() {
        let key = "p/s/store.json".into();
        let body = br#"{"formatVersion": 9, "backendId": "abc", "storeId": "s"}"#;
        match parse(&key, body) {
            Err(BackendError::Corrupt { key, message }) => {
                assert_eq!(key, "p/s/store.json");
                assert!(message.contains("version 9"), "{message}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
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
}
