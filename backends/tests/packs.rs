//! Packs: `SegmentLog::compact` packs every complete window, two packers at once leave one
//! valid set of packs, a stale writer still cannot fork the log after packing (segments stay),
//! and `verify` names a corrupted pack and a pack that disagrees with its segments. On
//! memory and a folder, and on S3 when `EVENTSYNC_TEST_S3_URL` is set (otherwise the S3
//! tests report that they did not run, and fail under CI).

mod support;

use std::sync::Arc;

use eventsync_backends::copy::StoreLocation;
use eventsync_backends::fault::RecordingStore;
use eventsync_backends::object_store::ObjectStoreExt;
use eventsync_backends::object_store::path::Path as Key;
use eventsync_backends::segment::{SegmentDigest, SegmentWriter, WriterNonce};
use eventsync_backends::verify::{PackAudit, VerifyReport, verify_store};
use eventsync_backends::{
    BackendError, GlobalEvent, GlobalSeq, SegmentLog, SegmentLogConfig, SyncBackend,
    SyncBackendExt, pack, segment,
};
use support::{events, folder, memory, s3};

/// A client packing in windows of 8 events.
fn client(place: &StoreLocation) -> SegmentLog {
    let config = SegmentLogConfig {
        pack_window_events: 8,
        ..SegmentLogConfig::default()
    };
    SegmentLog::new(
        place.store.clone(),
        place.prefix.clone(),
        &place.store_id,
        config,
    )
    .unwrap()
}

/// 30 events in segments of 3: 1, 4, 7, ... 28.
async fn fill(place: &StoreLocation) -> Vec<GlobalEvent> {
    let log = client(place);
    let all = events(1, 30, "x");
    for chunk in all.chunks(3) {
        log.push(chunk.to_vec()).await.unwrap();
    }
    all
}

async fn verify(place: &StoreLocation) -> VerifyReport {
    verify_store(place, &[&PackAudit], &|_, _| ())
        .await
        .unwrap()
}

/// A pack of `segments` (events `first..=last`), framed and sealed as `pack::encode` would,
/// whatever the segments hold: for tests that put a pack the encoder would refuse.
fn sealed_pack(first: u64, last: u64, segments: &[Vec<u8>]) -> Vec<u8> {
    use sha2::Digest as _;
    let size: usize = segments.iter().map(|s| 4 + s.len()).sum();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&pack::MAGIC);
    bytes.extend_from_slice(&pack::FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&((pack::HEADER_LEN + size + pack::TRAILER_LEN) as u64).to_le_bytes());
    bytes.extend_from_slice(&first.to_le_bytes());
    bytes.extend_from_slice(&last.to_le_bytes());
    bytes.extend_from_slice(&(segments.len() as u32).to_le_bytes());
    for segment in segments {
        bytes.extend_from_slice(&(segment.len() as u32).to_le_bytes());
        bytes.extend_from_slice(segment);
    }
    let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
    bytes.extend_from_slice(&digest);
    bytes
}

async fn pack_keys(place: &StoreLocation) -> Vec<Key> {
    let log = client(place).log_paths().await.unwrap();
    ["1-9", "10-18", "19-24"]
        .iter()
        .map(|range| {
            let (a, b) = range.split_once('-').unwrap();
            log.pack(GlobalSeq(a.parse().unwrap()), GlobalSeq(b.parse().unwrap()))
        })
        .collect()
}

/// Windows 1-8, 9-16, 17-24 are complete (the chain goes on past them); 25-32 is not.
async fn compact_packs_complete_windows(place: StoreLocation) {
    let all = fill(&place).await;
    let report = client(&place).compact().await.unwrap();
    assert_eq!(
        (report.written, report.segments, report.packed_through),
        (3, 8, 24)
    );
    for key in pack_keys(&place).await {
        place.store.head(&key).await.unwrap();
    }
    // Deterministic: run again, nothing new.
    let again = client(&place).compact().await.unwrap();
    assert_eq!((again.written, again.packed_through), (0, 24));
    let checked = verify(&place).await;
    assert!(checked.is_sound(), "{checked:?}");
    assert_eq!(checked.families[0].checked, 3);
    assert_eq!(client(&place).read_all_checked().await.unwrap(), all);
}

#[tokio::test]
async fn test_compact_packs_complete_windows_on_memory() {
    compact_packs_complete_windows(memory()).await;
}

#[tokio::test]
async fn test_compact_packs_complete_windows_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    compact_packs_complete_windows(folder(&dir.path().join("f"))).await;
}

#[tokio::test]
async fn test_compact_packs_complete_windows_on_s3() {
    let Some(place) = s3("test_compact_packs_complete_windows_on_s3", "packs") else {
        return;
    };
    compact_packs_complete_windows(place).await;
}

/// Windows of 8 events merged two by two (`pack_fanout` 2): level-1 windows are 16 events.
async fn compact_merges_packs_level_by_level(place: StoreLocation) {
    let all = fill(&place).await;
    let merging = |place: &StoreLocation| {
        let config = SegmentLogConfig {
            pack_window_events: 8,
            pack_fanout: 2,
            ..SegmentLogConfig::default()
        };
        SegmentLog::new(
            place.store.clone(),
            place.prefix.clone(),
            &place.store_id,
            config,
        )
        .unwrap()
    };
    // Level 0: 1-9, 10-18, 19-24 (as above). Level 1 (16 events): 1-9 and 10-18 start in
    // window 1-16, which is complete (19-24 follows): merged into 1-18. Level 2 (32
    // events): one window holds the whole chain, nothing is complete.
    let report = merging(&place).compact().await.unwrap();
    assert_eq!(
        (report.written, report.merged, report.packed_through),
        (4, 1, 24),
        "{report:?}"
    );
    let paths = merging(&place).log_paths().await.unwrap();
    let merged = paths.pack(GlobalSeq(1), GlobalSeq(18));
    let bytes = place
        .store
        .get(&merged)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let pack = pack::decode(&bytes).unwrap();
    assert_eq!(pack.segments.len(), 6);
    // The merged pack holds the same segments as the two it merges, byte for byte.
    let mut parts = Vec::new();
    for (first, last) in [(1, 9), (10, 18)] {
        let key = paths.pack(GlobalSeq(first), GlobalSeq(last));
        parts.push(place.store.get(&key).await.unwrap().bytes().await.unwrap());
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for part in &parts {
        segments.extend(pack::decode_with_segment_bytes(part).unwrap().1);
    }
    assert_eq!(pack::encode(&segments).unwrap(), bytes.to_vec());
    // Nothing new the second time; verify checks all four packs.
    let again = merging(&place).compact().await.unwrap();
    assert_eq!((again.written, again.packed_through), (0, 24), "{again:?}");
    let checked = verify(&place).await;
    assert!(checked.is_sound(), "{checked:?}");
    assert_eq!(checked.families[0].checked, 4);
    // A cold reader takes the merged pack, then 19-24, then the tail segments 25 and 28.
    let recording = Arc::new(RecordingStore::new(place.store.clone()));
    let reader = SegmentLog::new(
        recording.clone(),
        place.prefix.clone(),
        &place.store_id,
        SegmentLogConfig::default(),
    )
    .unwrap();
    assert_eq!(reader.read_all_checked().await.unwrap(), all);
    // Packs are read a few at a time: compare the objects, not the order of the replies.
    let mut fetched: Vec<String> = recording
        .fetched()
        .into_iter()
        .filter(|key| !key.ends_with("store.json"))
        .map(|key| key.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    fetched.sort();
    assert_eq!(
        fetched,
        [
            "00000000000000000001-00000000000000000018.pack",
            "00000000000000000019-00000000000000000024.pack",
            "00000000000000000025.seg",
            "00000000000000000028.seg",
        ],
    );
}

#[tokio::test]
async fn test_compact_merges_packs_level_by_level_on_memory() {
    compact_merges_packs_level_by_level(memory()).await;
}

#[tokio::test]
async fn test_compact_merges_packs_level_by_level_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    compact_merges_packs_level_by_level(folder(&dir.path().join("f"))).await;
}

#[tokio::test]
async fn test_compact_merges_packs_level_by_level_on_s3() {
    let Some(place) = s3("test_compact_merges_packs_level_by_level_on_s3", "packs") else {
        return;
    };
    compact_merges_packs_level_by_level(place).await;
}

/// Two packers at once write each pack once between them, with the same bytes. (Not on
/// memory: its requests answer within one poll, so one packer would finish before the
/// other starts.)
async fn two_packers_at_once_leave_a_valid_log(place: StoreLocation) {
    fill(&place).await;
    let (a, b) = (client(&place), client(&place));
    let (ra, rb) = futures::join!(a.compact(), b.compact());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.written + rb.written, 3, "{ra:?} {rb:?}");
    assert_eq!(ra.written + ra.already_there, 3);
    assert_eq!(rb.written + rb.already_there, 3);
    let checked = verify(&place).await;
    assert!(checked.is_sound(), "{checked:?}");
}

#[tokio::test]
async fn test_two_packers_at_once_leave_a_valid_log() {
    let dir = tempfile::tempdir().unwrap();
    two_packers_at_once_leave_a_valid_log(folder(&dir.path().join("f"))).await;
}

#[tokio::test]
async fn test_two_packers_at_once_leave_a_valid_log_on_s3() {
    let Some(place) = s3("test_two_packers_at_once_leave_a_valid_log_on_s3", "packs") else {
        return;
    };
    two_packers_at_once_leave_a_valid_log(place).await;
}

/// A writer whose head is old pushes after packing: the key of its batch still exists
/// (segments are never deleted), so it gets ServerAhead; after a rebase its event lands once.
async fn a_stale_writer_cannot_fork_the_log_after_packing(place: StoreLocation) {
    let all = fill(&place).await;
    let stale = client(&place);
    stale.backend_id().await.unwrap();
    client(&place).compact().await.unwrap();
    let mut late = events(10, 10, "stale");
    match stale.push(late.clone()).await {
        Err(BackendError::ServerAhead { head }) => assert!(head >= GlobalSeq(10), "{head}"),
        other => panic!("{other:?}"),
    }
    late = events(31, 31, "stale");
    stale.push(late.clone()).await.unwrap();
    let log = client(&place).read_all_checked().await.unwrap();
    assert_eq!(log.len(), 31);
    assert_eq!(log[..30], all[..]);
    assert_eq!(log.iter().filter(|e| e.args["text"] == "stale").count(), 1);
    assert!(verify(&place).await.is_sound());
}

#[tokio::test]
async fn test_a_stale_writer_cannot_fork_the_log_after_packing() {
    a_stale_writer_cannot_fork_the_log_after_packing(memory()).await;
}

#[tokio::test]
async fn test_a_stale_writer_cannot_fork_the_log_after_packing_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    a_stale_writer_cannot_fork_the_log_after_packing(folder(&dir.path().join("f"))).await;
}

#[tokio::test]
async fn test_a_stale_writer_cannot_fork_the_log_after_packing_on_s3() {
    let Some(place) = s3(
        "test_a_stale_writer_cannot_fork_the_log_after_packing_on_s3",
        "packs",
    ) else {
        return;
    };
    a_stale_writer_cannot_fork_the_log_after_packing(place).await;
}

/// A flipped byte in a pack is named by its key; the segments stay sound.
async fn verify_names_a_corrupted_pack(place: StoreLocation) {
    fill(&place).await;
    client(&place).compact().await.unwrap();
    let key = pack_keys(&place).await[1].clone();
    support::flip_a_byte(&place, &key).await;
    let report = verify(&place).await;
    assert_eq!(report.faults.len(), 1, "{report:?}");
    assert_eq!(report.faults[0].key, key.to_string());
    assert!(report.faults[0].message.contains("checksum"), "{report:?}");
    assert_eq!(report.head, 30);
}

#[tokio::test]
async fn test_verify_names_a_corrupted_pack() {
    verify_names_a_corrupted_pack(memory()).await;
}

#[tokio::test]
async fn test_verify_names_a_corrupted_pack_on_s3() {
    let Some(place) = s3("test_verify_names_a_corrupted_pack_on_s3", "packs") else {
        return;
    };
    verify_names_a_corrupted_pack(place).await;
}

/// A pack that is valid on its own (checksums, chain, this store's backend id) but holds
/// other segments than the log's is named by its key.
#[tokio::test]
async fn test_verify_names_a_pack_that_disagrees_with_its_segments() {
    let place = memory();
    fill(&place).await;
    let backend_id = client(&place).backend_id().await.unwrap();
    // Events 1-9 as one forged segment of this store, with another text.
    let forged = segment::encode(
        &SegmentWriter {
            nonce: WriterNonce([7; 16]),
            prev_digest: SegmentDigest::ROOT,
            backend_id: &backend_id,
            client_id: "c",
        },
        &events(1, 9, "forged"),
    )
    .unwrap();
    let bytes = pack::encode(&[forged.bytes.as_ref()]).unwrap();
    let key = pack_keys(&place).await[0].clone();
    support::put(&place, &key, bytes).await;
    let report = verify(&place).await;
    assert_eq!(report.faults.len(), 1, "{report:?}");
    assert_eq!(report.faults[0].key, key.to_string());
    assert!(report.faults[0].message.contains("disagrees"), "{report:?}");
}

/// `verify` parses a pack's events only through the segments (it compares digests): a pack
/// whose last segment has sound checksums but events that do not even parse, and which
/// `pack::decode` refuses, is still named by its key, as disagreeing with the segment.
#[tokio::test]
async fn test_verify_names_a_pack_whose_inner_events_do_not_parse() {
    use sha2::{Digest as _, Sha256};
    let place = memory();
    fill(&place).await;
    let log = client(&place).log_paths().await.unwrap();
    let mut segments = Vec::new();
    for first in [1, 4, 7] {
        let key = log.segment(GlobalSeq(first));
        segments.push(support::get(&place, &key).await);
    }
    // Break the JSON of segment 7's first event (its `{` becomes `[`) and reseal its
    // checksum. The events start after the fixed header, the backend id, the client id's
    // length and the client id, and the first event's length.
    let last = segments.last_mut().unwrap();
    let backend_id_len = last[segment::FIXED_HEADER_LEN - 1] as usize;
    let at = segment::FIXED_HEADER_LEN + backend_id_len;
    let client_id_len = u16::from_le_bytes([last[at], last[at + 1]]) as usize;
    let brace = at + 2 + client_id_len + 4;
    assert_eq!(last[brace], b'{');
    last[brace] = b'[';
    let body_end = last.len() - segment::TRAILER_LEN;
    let digest: [u8; 32] = Sha256::digest(&last[..body_end]).into();
    last[body_end..].copy_from_slice(&digest);
    assert!(segment::decode(last).is_err());
    segment::decode_header(last).unwrap();
    // A pack of the three, framed and sealed as `pack::encode` would.
    let bytes = sealed_pack(1, 9, &segments);
    assert!(pack::decode(&bytes).is_err());
    assert_eq!(pack::decode_digests(&bytes).unwrap().segments.len(), 3);
    let key = pack_keys(&place).await[0].clone();
    support::put(&place, &key, bytes).await;
    let report = verify(&place).await;
    assert_eq!(report.faults.len(), 1, "{report:?}");
    assert_eq!(report.faults[0].key, key.to_string());
    assert!(
        report.faults[0]
            .message
            .contains("its segment at e7 disagrees"),
        "{report:?}"
    );
    assert_eq!(report.head, 30);
}

/// A pack's segment whose bytes differ from those of the segment at its key while keeping
/// its trailer (the segment's digest), the pack resealed, is hashed and named: `verify`
/// compares a pack's segments with the segments it just read byte for byte, and only bytes
/// equal to a segment whose checksum held are taken without hashing them.
#[tokio::test]
async fn test_verify_hashes_a_pack_segment_that_differs_from_the_segment_read() {
    let place = memory();
    fill(&place).await;
    let log = client(&place).log_paths().await.unwrap();
    let mut segments = Vec::new();
    for first in [1, 4, 7] {
        segments.push(support::get(&place, &log.segment(GlobalSeq(first))).await);
    }
    // One byte of segment 4's events changed, its trailer (the segment's digest) kept.
    let middle = &mut segments[1];
    let at = middle.len() - segment::TRAILER_LEN - 3;
    middle[at] ^= 0x01;
    let bytes = sealed_pack(1, 9, &segments);
    let expected = pack::decode_digests(&bytes).unwrap_err().to_string();
    assert!(expected.contains("segment 1 of the pack"), "{expected}");
    assert!(expected.contains("checksum"), "{expected}");
    let key = pack_keys(&place).await[0].clone();
    support::put(&place, &key, bytes).await;
    let report = verify(&place).await;
    assert_eq!(report.faults.len(), 1, "{report:?}");
    assert_eq!(report.faults[0].key, key.to_string());
    assert_eq!(report.faults[0].message, expected, "{report:?}");
    assert_eq!(report.head, 30);
}

/// Packing reads the segments of the complete windows and the one segment that closes them,
/// not those of the window still filling; run again with nothing new, it reads none.
#[tokio::test]
async fn test_compact_reads_only_what_it_packs() {
    let place = memory();
    fill(&place).await;
    let counting = Arc::new(eventsync_backends::fault::RecordingStore::new(
        place.store.clone(),
    ));
    let counted = StoreLocation {
        store: counting.clone(),
        prefix: place.prefix.clone(),
        store_id: place.store_id.clone(),
    };
    let report = client(&counted).compact().await.unwrap();
    assert_eq!(report.written, 3);
    let segments = |counting: &eventsync_backends::fault::RecordingStore| {
        counting
            .fetched()
            .iter()
            .filter(|key| key.ends_with(".seg"))
            .count()
    };
    // Segments 1, 4, ... 22 (packed) and 25 (closes window 17-24); not 28.
    assert_eq!(segments(&counting), 9, "{:?}", counting.fetched());
    counting.reset();
    let again = client(&counted).compact().await.unwrap();
    assert_eq!((again.written, again.packed_through), (0, 24));
    assert_eq!(segments(&counting), 0, "{:?}", counting.fetched());
}
