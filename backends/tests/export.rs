//! Export and import through real backends: memory, a folder, and S3 when
//! `EVENTSYNC_TEST_S3_URL` is set (otherwise those tests report that they did not run, and
//! why, and fail under CI).
//!
//! Each scenario runs on each backend: an export imported into another store and exported
//! again gives the same bytes; `force` replaces a store with a new backend id, and a stale
//! writer of the old store can neither write into the new one nor go unwarned; a dry run
//! writes nothing; a store with events is refused without `force`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventsync_backends::conformance::{S3_NOT_CONFIGURED, in_ci, report_not_run};
use eventsync_backends::export::{ImportError, ImportOptions, import, write_export};
use eventsync_backends::object_store::{ObjectStore, path::Path as Key};
use eventsync_backends::{
    BackendError, GlobalEvent, GlobalSeq, OpenOptions, SegmentLog, SegmentLogConfig, SyncBackend,
    SyncBackendExt, open_object_store,
};
use futures::TryStreamExt;

/// An object store location to make stores in, and what keeps it alive.
struct Place {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    _guard: Option<tempfile::TempDir>,
}

impl Place {
    fn memory(_test: &str) -> Option<Place> {
        Some(Place {
            store: Arc::new(eventsync_backends::object_store::memory::InMemory::new()),
            prefix: Key::default(),
            _guard: None,
        })
    }

    fn folder(_test: &str) -> Option<Place> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("backend").display());
        let (store, prefix) = open_object_store(&url, &OpenOptions::default()).unwrap();
        Some(Place {
            store,
            prefix,
            _guard: Some(dir),
        })
    }

    fn s3(test: &str) -> Option<Place> {
        let Ok(url) = std::env::var("EVENTSYNC_TEST_S3_URL") else {
            assert!(!in_ci(), "CI requires the S3 run, but {S3_NOT_CONFIGURED}");
            report_not_run(
                &format!("eventsync-backends --test export {test}"),
                S3_NOT_CONFIGURED,
            );
            return None;
        };
        let (store, prefix) = open_object_store(&url, &OpenOptions::default()).unwrap();
        let run = eventsync_backends::Entropy::from_os().hex::<4>();
        Some(Place {
            store,
            prefix: prefix.join(format!("export-{run}")),
            _guard: None,
        })
    }

    /// A client of store `store_id` here, with small segments so a log has several.
    fn client(&self, store_id: &str) -> SegmentLog {
        let config = SegmentLogConfig {
            max_events_per_segment: 7,
            page_events: 5,
            ..SegmentLogConfig::default()
        };
        SegmentLog::new(self.store.clone(), self.prefix.clone(), store_id, config).unwrap()
    }

    /// Every key under the prefix, sorted.
    async fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .store
            .list(Some(&self.prefix))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }
}

fn event(seq: u64, text: &str) -> GlobalEvent {
    GlobalEvent {
        seq_num: GlobalSeq(seq),
        parent_seq_num: GlobalSeq(seq - 1),
        name: "v1.TodoCreated".into(),
        args: serde_json::json!({"id": format!("t{seq}"), "text": text, "n": seq, "nested": {"b": [1, 2], "a": null}}),
        client_id: format!("client-{}", seq % 3),
        session_id: "s1".into(),
    }
}

/// Pushes `count` events into `log`, in pushes of up to 4.
async fn fill(log: &SegmentLog, count: u64) -> Vec<GlobalEvent> {
    let events: Vec<_> = (1..=count)
        .map(|seq| event(seq, &format!("todo \"{seq}\" ü")))
        .collect();
    for chunk in events.chunks(4) {
        log.push(chunk.to_vec()).await.unwrap();
    }
    events
}

/// The export of `log`'s whole log, with a fixed `exportedAt`.
async fn export_bytes(log: &dyn SyncBackend, store_id: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_export(
        log,
        &mut bytes,
        store_id,
        "2026-12-02T00:00:00.000Z",
        &mut |_, _| (),
    )
    .await
    .unwrap();
    bytes
}

fn save(dir: &Path, bytes: &[u8]) -> PathBuf {
    let path = dir.join("export.json");
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn scenario_round_trip_is_byte_identical(place: Place) {
    let dir = tempfile::tempdir().unwrap();
    let source = place.client("source");
    let events = fill(&source, 23).await;
    let first = export_bytes(&source, "source").await;
    let path = save(dir.path(), &first);
    let target = place.client("target");
    let report = import(&target, &path, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(report.imported, 23);
    assert!(!report.replaces);
    assert_eq!(report.pushes, 4, "23 events in pushes of at most 7");
    assert_eq!(target.read_all_checked().await.unwrap(), events);
    // A fresh client of the target reads the same log the import wrote.
    let reader = place.client("target");
    let second = export_bytes(&reader, "source").await;
    assert_eq!(
        String::from_utf8(second).unwrap(),
        String::from_utf8(first).unwrap()
    );
}

async fn scenario_force_replaces_the_store_and_fences_stale_writers(place: Place) {
    let dir = tempfile::tempdir().unwrap();
    let file_source = place.client("file-source");
    let imported = fill(&file_source, 9).await;
    let path = save(dir.path(), &export_bytes(&file_source, "file-source").await);

    let target = place.client("target");
    fill(&target, 5).await;
    let old_id = target.backend_id().await.unwrap();
    // A stale writer: a client of the old store that knows head e5.
    let stale = place.client("target");
    assert_eq!(stale.head().await.unwrap(), GlobalSeq(5));

    match import(&place.client("target"), &path, &ImportOptions::default()).await {
        Err(ImportError::NotEmpty { head }) => assert_eq!(head, GlobalSeq(5)),
        other => panic!("expected NotEmpty, got {other:?}"),
    }
    let importer = place.client("target");
    let options = ImportOptions {
        force: true,
        ..ImportOptions::default()
    };
    let report = import(&importer, &path, &options).await.unwrap();
    assert!(report.replaces);
    assert_eq!(report.previous_backend_id.as_deref(), Some(old_id.as_str()));
    let new_id = report.backend_id.clone().unwrap();
    assert_ne!(new_id, old_id, "a replaced store has a new backend id");

    // The stale writer's push on its old head is refused as a mismatch...
    match stale.push(vec![event(6, "stale")]).await {
        Err(BackendError::BackendIdMismatch { expected, found }) => {
            assert_eq!(expected, old_id);
            assert_eq!(found.as_deref(), Some(new_id.as_str()));
        }
        other => panic!("expected BackendIdMismatch, got {other:?}"),
    }
    // ...and a stale push at the new store's next number, which would extend it if it
    // landed there, too: whatever it wrote is under the old id's folder.
    assert!(matches!(
        stale.push(vec![event(10, "stale")]).await,
        Err(BackendError::ServerAhead { .. } | BackendError::BackendIdMismatch { .. })
    ));
    let fresh = place.client("target");
    assert_eq!(fresh.backend_id().await.unwrap(), new_id);
    assert_eq!(fresh.read_all_checked().await.unwrap(), imported);
    let new_folder = format!("/{new_id}/");
    let stale_keys: Vec<_> = place
        .keys()
        .await
        .into_iter()
        .filter(|key| key.contains("/target/") && key.ends_with(".seg"))
        .filter(|key| !key.contains(&new_folder))
        .collect();
    assert!(
        stale_keys
            .iter()
            .all(|key| key.contains(&format!("/{old_id}/"))),
        "{stale_keys:?}"
    );
    // The stale client, once it re-reads the identity, follows the new store.
    assert_eq!(stale.backend_id().await.unwrap(), new_id);
    assert_eq!(stale.read_all_checked().await.unwrap(), imported);
}

async fn scenario_dry_run_writes_nothing(place: Place) {
    let dir = tempfile::tempdir().unwrap();
    let source = place.client("source");
    fill(&source, 6).await;
    let path = save(dir.path(), &export_bytes(&source, "source").await);
    let before = place.keys().await;
    let options = ImportOptions {
        dry_run: true,
        ..ImportOptions::default()
    };
    let report = import(&place.client("missing"), &path, &options)
        .await
        .unwrap();
    assert_eq!((report.imported, report.previous_head), (0, 0));
    assert!(report.dry_run && !report.replaces);
    let forced = ImportOptions {
        force: true,
        ..options
    };
    let report = import(&place.client("source"), &path, &forced)
        .await
        .unwrap();
    assert!(report.replaces && report.dry_run);
    assert_eq!(report.previous_head, 6);
    assert_eq!(place.keys().await, before, "a dry run wrote something");
}

macro_rules! scenarios {
    ($backend:ident, $place:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn round_trip_is_byte_identical() {
                let place = $place(concat!(
                    stringify!($backend),
                    "::round_trip_is_byte_identical"
                ));
                if let Some(place) = place {
                    scenario_round_trip_is_byte_identical(place).await;
                }
            }

            #[tokio::test]
            async fn force_replaces_the_store_and_fences_stale_writers() {
                let place = $place(concat!(
                    stringify!($backend),
                    "::force_replaces_the_store_and_fences_stale_writers"
                ));
                if let Some(place) = place {
                    scenario_force_replaces_the_store_and_fences_stale_writers(place).await;
                }
            }

            #[tokio::test]
            async fn dry_run_writes_nothing() {
                let place = $place(concat!(stringify!($backend), "::dry_run_writes_nothing"));
                if let Some(place) = place {
                    scenario_dry_run_writes_nothing(place).await;
                }
            }
        }
    };
}

scenarios!(memory, Place::memory);
scenarios!(folder, Place::folder);
scenarios!(s3, Place::s3);
