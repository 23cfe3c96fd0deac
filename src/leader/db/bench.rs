//! The leader's rebase on its real path, timed for `eventsync bench` (the rebase figure of
//! `BENCHMARKS.md`): the same [`LeaderDb::apply_batch`] and [`LeaderDb::commit`] a leader
//! runs when the backend moved under its pending events.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use eventsync_backends::{GlobalSeq, StoreId};

use super::{DbError, LeaderDb, NewEvent};
use crate::data_dir::StoreDir;
use crate::error::{Error, ErrorKind};
use crate::event::EncodedEvent;
use crate::materialize::Record;
use crate::schema::Schema;
use crate::seq::EventSeq;

/// Times one rebase of `pending` in a leader's two files, made afresh under `data_dir`.
///
/// `pending` are the leader's events the backend has not confirmed, numbered `e1, e2, ...`
/// on the root, each admitted as a step of its own (one changeset run each, the most runs a
/// rollback combines), all durable. The timed work is one durable batch: roll them back,
/// apply `upstream` (another client's `e1`, confirmed), replay `pending` renumbered after it
/// (one generation up) with their changesets, commit both files. Returns that time and the
/// rows of `table` after it.
///
/// # Errors
///
/// A data dir that cannot be written, or an event its materializer refuses.
pub fn rebase_in_leader(
    data_dir: &Path,
    schema: &Schema,
    pending: &[EncodedEvent],
    upstream: EncodedEvent,
    table: &str,
) -> Result<(Duration, u64), Error> {
    let error = |error: DbError| Error::wrap(ErrorKind::Data, error);
    let store = StoreId::new("bench-rebase")
        .map_err(|problem| Error::internal(format!("bench store id: {problem}")))?;
    let dir = StoreDir::new(data_dir, &store);
    dir.create()?;
    let mut db = LeaderDb::open(&dir, schema).map_err(error)?;
    db.level_state(schema).map_err(error)?;
    for event in pending {
        let mut event = event.clone();
        let head = event.seq;
        let mut items = [NewEvent {
            event: &mut event,
            record: Record::Changeset,
        }];
        db.apply_batch(schema, &[], &mut items, head, None)
            .map_err(error)?;
    }
    db.commit().map_err(error)?;

    let mut replayed: Vec<EncodedEvent> = Vec::with_capacity(pending.len() + 1);
    let mut parent = upstream.seq;
    replayed.push(upstream);
    for event in pending {
        let seq = EventSeq::new(event.seq.global.0 + 1, 0, event.seq.generation + 1);
        replayed.push(EncodedEvent {
            seq,
            parent,
            ..event.clone()
        });
        parent = seq;
    }
    let confirmed = GlobalSeq(1);
    let start = Instant::now();
    let mut items: Vec<NewEvent<'_>> = replayed
        .iter_mut()
        .map(|event| NewEvent::after_upstream(event, EventSeq::from(confirmed)))
        .collect();
    db.apply_batch(schema, pending, &mut items, parent, Some(confirmed))
        .map_err(error)?;
    db.commit().map_err(error)?;
    let elapsed = start.elapsed();
    let rows: i64 = db
        .connection()
        .query_row(
            &format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\"")),
            [],
            |row| row.get(0),
        )
        .map_err(|problem| Error::wrap(ErrorKind::Data, problem))?;
    Ok((elapsed, rows as u64))
}
