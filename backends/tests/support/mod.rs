//! Helpers shared by the backend crate's integration tests: where a store lives (memory, a
//! folder, the S3 server of `EVENTSYNC_TEST_S3_URL`) and runs of numbered todo events.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use eventsync_backends::conformance::not_run::test_name;
use eventsync_backends::conformance::{S3_NOT_CONFIGURED, in_ci, report_not_run};
use eventsync_backends::copy::StoreLocation;
use eventsync_backends::object_store::memory::InMemory;
use eventsync_backends::object_store::path::Path as Key;
use eventsync_backends::object_store::{ObjectStoreExt as _, PutPayload};
use eventsync_backends::{GlobalEvent, GlobalSeq, OpenOptions, open_object_store};

/// Store `s` in a new in-memory object store.
pub fn memory() -> StoreLocation {
    StoreLocation {
        store: Arc::new(InMemory::new()),
        prefix: Key::default(),
        store_id: "s".into(),
    }
}

/// Store `s` in the folder `dir`, opened by its `file://` URL as a user would.
pub fn folder(dir: &Path) -> StoreLocation {
    let url = format!("file://{}", dir.display());
    let (store, prefix) = open_object_store(&url, &OpenOptions::default()).unwrap();
    StoreLocation {
        store,
        prefix,
        store_id: "s".into(),
    }
}

/// Store `s` on the S3 server of `EVENTSYNC_TEST_S3_URL`, under a new folder per run
/// (`{folder}-{random}`) so that runs never see each other's objects. Where the variable is
/// unset, reports that `test` (a test function of the including test binary) did not run and
/// returns `None`; under `CI=true` that is a failure instead.
pub fn s3(test: &str, folder: &str) -> Option<StoreLocation> {
    let Ok(url) = std::env::var("EVENTSYNC_TEST_S3_URL") else {
        assert!(!in_ci(), "CI requires the S3 run, but {S3_NOT_CONFIGURED}");
        let test = test_name(env!("CARGO_PKG_NAME"), env!("CARGO_CRATE_NAME"), test);
        report_not_run(&test, S3_NOT_CONFIGURED);
        return None;
    };
    let (store, prefix) = open_object_store(&url, &OpenOptions::default()).unwrap();
    let run = eventsync_backends::Entropy::from_os().hex::<4>();
    Some(StoreLocation {
        store,
        prefix: prefix.join(format!("{folder}-{run}")),
        store_id: "s".into(),
    })
}

/// Events `from..=to` of one client, a gapless chain: todos `t{seq}` with `text`.
pub fn events(from: u64, to: u64, text: &str) -> Vec<GlobalEvent> {
    (from..=to)
        .map(|seq| GlobalEvent {
            seq_num: GlobalSeq(seq),
            parent_seq_num: GlobalSeq(seq - 1),
            name: "v1.TodoCreated".into(),
            args: serde_json::json!({"id": format!("t{seq}"), "text": text}),
            client_id: "c".into(),
            session_id: "s".into(),
        })
        .collect()
}

/// The bytes of object `key` of `place`.
pub async fn get(place: &StoreLocation, key: &Key) -> Vec<u8> {
    let object = place.store.get(key).await.unwrap();
    object.bytes().await.unwrap().to_vec()
}

/// Writes `bytes` at `key` of `place`, over whatever is there (a damaged or forged object).
pub async fn put(place: &StoreLocation, key: &Key, bytes: impl Into<PutPayload>) {
    place.store.put(key, bytes.into()).await.unwrap();
}

/// Flips one bit in the middle of object `key` of `place`: damage its checksum must catch.
pub async fn flip_a_byte(place: &StoreLocation, key: &Key) {
    let mut bytes = get(place, key).await;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    put(place, key, bytes).await;
}
