//! [`SyncBackendExt`]: what callers build on [`SyncBackend`]'s methods, written once.

use futures::StreamExt;

use crate::{BackendError, GlobalEvent, GlobalSeq, SyncBackend};

/// Why [`SyncBackendExt::read_all_checked`] returned no log.
#[derive(Debug, thiserror::Error)]
pub enum ReadAllError {
    /// The pull failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The events read are not one gapless chain: a backend bug, or damage the segment reader
    /// did not catch.
    #[error(transparent)]
    Gap(#[from] GapError),
}

/// An event out of place in a log that should be one gapless chain (see [`check_gapless`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {position} of the log is {seq} with parent {parent}; expected {expected} with parent e{}", expected.0.saturating_sub(1))]
pub struct GapError {
    /// Its index in the events checked.
    pub position: usize,
    /// Its number.
    pub seq: GlobalSeq,
    /// Its parent's number.
    pub parent: GlobalSeq,
    /// The number it should have had.
    pub expected: GlobalSeq,
}

/// Checks that `events` are `first, first + 1, ...`, each the parent of the next (the first's
/// parent is `first - 1`): one gapless chain, the promise a backend makes about its log.
/// `first` must be at least `e1`.
pub fn check_gapless(first: GlobalSeq, events: &[GlobalEvent]) -> Result<(), GapError> {
    for (position, event) in events.iter().enumerate() {
        // Saturating and checked: numbers near `u64::MAX` are refused, never a panic.
        let expected = GlobalSeq(first.0.saturating_add(position as u64));
        if event.seq_num != expected || event.parent_seq_num.0.checked_add(1) != Some(expected.0) {
            return Err(GapError {
                position,
                seq: event.seq_num,
                parent: event.parent_seq_num,
                expected,
            });
        }
    }
    Ok(())
}

/// Methods every [`SyncBackend`] has, built on the trait's own (as object_store's
/// `ObjectStoreExt`). Nobody implements this trait: the blanket implementation covers every
/// backend, `dyn SyncBackend` included.
pub trait SyncBackendExt: SyncBackend {
    /// Reads the whole log with a non-live pull and checks it is one gapless chain
    /// `e1..en` ([`check_gapless`]). For audits, checks and tools that need the whole log
    /// (the demo's verdict, the tests, the simulation's auditor); it holds every event in
    /// memory.
    fn read_all_checked(
        &self,
    ) -> impl Future<Output = Result<Vec<GlobalEvent>, ReadAllError>> + Send {
        async move {
            let mut pages = self.pull(GlobalSeq::ZERO, false).await?;
            let mut events = Vec::new();
            while let Some(page) = pages.next().await {
                events.extend(page?.events);
            }
            check_gapless(GlobalSeq(1), &events)?;
            Ok(events)
        }
    }
}

impl<B: SyncBackend + ?Sized> SyncBackendExt for B {}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, parent: u64) -> GlobalEvent {
        GlobalEvent {
            seq_num: GlobalSeq(seq),
            parent_seq_num: GlobalSeq(parent),
            name: "v1.Test".into(),
            args: serde_json::json!({}),
            client_id: "c".into(),
            session_id: "s".into(),
        }
    }

    #[test]
    fn test_check_gapless_accepts_a_chain_and_names_the_first_event_out_of_place() {
        assert_eq!(check_gapless(GlobalSeq(1), &[]), Ok(()));
        let chain = [event(1, 0), event(2, 1), event(3, 2)];
        assert_eq!(check_gapless(GlobalSeq(1), &chain), Ok(()));
        assert_eq!(check_gapless(GlobalSeq(2), &chain[1..]), Ok(()));
        let gap = [event(1, 0), event(3, 2)];
        let error = check_gapless(GlobalSeq(1), &gap).unwrap_err();
        assert_eq!((error.position, error.seq), (1, GlobalSeq(3)));
        let bad_parent = [event(1, 0), event(2, 0)];
        let error = check_gapless(GlobalSeq(1), &bad_parent).unwrap_err();
        assert_eq!((error.position, error.parent), (1, GlobalSeq(0)));
        assert_eq!(
            check_gapless(GlobalSeq(1), &chain[1..])
                .unwrap_err()
                .position,
            0
        );
    }

    #[tokio::test]
    async fn test_read_all_checked_reads_every_page_of_a_backend() {
        let store = std::sync::Arc::new(object_store::memory::InMemory::new());
        let config = crate::SegmentLogConfig {
            page_events: 2,
            ..crate::SegmentLogConfig::default()
        };
        let log = crate::SegmentLog::new(store, Default::default(), "ext", config).unwrap();
        let events: Vec<_> = (1..=5).map(|seq| event(seq, seq - 1)).collect();
        log.push(events[..3].to_vec()).await.unwrap();
        log.push(events[3..].to_vec()).await.unwrap();
        let backend: &dyn SyncBackend = &log;
        assert_eq!(backend.read_all_checked().await.unwrap(), events);
    }
}
