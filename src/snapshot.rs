//! The state of a store in a snapshot: a canonical dump of the user tables and its content
//! hash, and the body that carries the state: an SQLite image of the tables (format version
//! 2, [`image`]), or the dump DEFLATE-encoded (version 1, still read).
//!
//! Why the hash is a canonical dump's and not an SQLite image's: two clients with the same
//! state must agree on its hash, and SQLite files with equal content need not be equal bytes
//! (the header records the library version and a change counter; page layout depends on
//! history). The dump lists the user tables by name, each with its column names, then its
//! rows in the order of all their columns, each value tagged by SQLite type. Equal tables
//! give equal bytes whatever the SQLite version or the order rows were written in, so
//! `verify --snapshots` can replay the log into a fresh database and compare hashes.
//!
//! Why the body is an image since version 2: loading a dump means inserting every row
//! (a million rows took seconds), where an image's records are copied into `state.db` as
//! they are. Only the body changed; the hash is still the dump's, and `verify --snapshots`
//! dumps the image's tables to compare them. The byte layouts are in `docs/FORMAT.md`.

pub mod image;

use std::io::{Read as _, Write as _};

use eventsync_backends::{
    BackendError, GlobalSeq, RefusedSnapshot, SnapshotContent, SnapshotPut, SyncBackend,
};
pub use image::SnapshotState;
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::schema::Schema;

/// Largest dump a reader inflates: a hostile `content_len` or a compression bomb cannot make
/// it allocate more (2 GiB; a state that large should be reconsidered anyway).
pub const MAX_DUMP_BYTES: u64 = 2 << 30;

/// What is wrong with a snapshot's body or the tables it should fill.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// SQLite failed while reading or writing the tables.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The body does not inflate to the announced length, or is too large.
    #[error("the body does not decode: {0}")]
    Encoding(String),
    /// The inflated dump does not hash to the snapshot's content hash.
    #[error("the state's content hash does not match the header")]
    HashMismatch,
    /// The dump is malformed, or does not fit this schema's tables.
    #[error("the dump is malformed: {0}")]
    Malformed(String),
}

/// A dump of the user tables, canonical (see the module doc), and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    /// The canonical bytes.
    pub bytes: Vec<u8>,
    /// Their SHA-256: the content hash a snapshot carries.
    pub hash: [u8; 32],
}

/// The tables of `conn` a snapshot holds, by name: the user tables (not SQLite's, not
/// eventsync's `__eventsync_*`) but those `schema` marks client-only.
fn snapshot_tables(conn: &Connection, schema: &Schema) -> Result<Vec<String>, DumpError> {
    let mut names: Vec<String> = conn
        .prepare(
            "SELECT name FROM main.sqlite_schema WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__eventsync_%'",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?
        .into_iter()
        .filter(|name| !schema.is_client_only_table(name))
        .collect();
    names.sort();
    Ok(names)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn columns(conn: &Connection, table: &str) -> Result<Vec<String>, DumpError> {
    Ok(conn
        .prepare(&format!(
            "SELECT name FROM pragma_table_info({})",
            sql_text(table)
        ))?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?)
}

/// `text` as an SQL string literal.
fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Dumps the user tables of `conn` canonically, but for `schema`'s client-only tables (each
/// client's own state, never in a snapshot).
pub fn dump_tables(conn: &Connection, schema: &Schema) -> Result<Dump, DumpError> {
    let tables = snapshot_tables(conn, schema)?;
    let mut out = Vec::new();
    out.extend_from_slice(&(tables.len() as u32).to_le_bytes());
    for table in &tables {
        let columns = columns(conn, table)?;
        put_str(&mut out, table);
        out.extend_from_slice(&(columns.len() as u32).to_le_bytes());
        for column in &columns {
            put_str(&mut out, column);
        }
        let order: Vec<String> = (1..=columns.len()).map(|i| i.to_string()).collect();
        let select: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let mut statement = conn.prepare(&format!(
            "SELECT {} FROM main.{} ORDER BY {}",
            select.join(", "),
            quote(table),
            order.join(", ")
        ))?;
        let count_at = out.len();
        out.extend_from_slice(&0u64.to_le_bytes());
        let mut count = 0u64;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            count += 1;
            for index in 0..columns.len() {
                match row.get_ref(index)? {
                    ValueRef::Null => out.push(0),
                    ValueRef::Integer(value) => {
                        out.push(1);
                        out.extend_from_slice(&value.to_le_bytes());
                    }
                    ValueRef::Real(value) => {
                        out.push(2);
                        out.extend_from_slice(&value.to_bits().to_le_bytes());
                    }
                    ValueRef::Text(bytes) => {
                        out.push(3);
                        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                        out.extend_from_slice(bytes);
                    }
                    ValueRef::Blob(bytes) => {
                        out.push(4);
                        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                        out.extend_from_slice(bytes);
                    }
                }
            }
        }
        out[count_at..count_at + 8].copy_from_slice(&count.to_le_bytes());
    }
    let hash = Sha256::digest(&out).into();
    Ok(Dump { bytes: out, hash })
}

/// DEFLATE-encodes a dump (a version-1 snapshot's body).
pub fn compress(dump: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(dump);
    encoder.finish().unwrap_or_default()
}

/// Inflates a body into the dump it encodes, checking its length (at most
/// [`MAX_DUMP_BYTES`]) and its hash.
pub fn decompress(
    body: &[u8],
    content_len: u64,
    content_hash: &[u8; 32],
) -> Result<Dump, DumpError> {
    if content_len > MAX_DUMP_BYTES {
        return Err(DumpError::Encoding(format!(
            "it announces {content_len} bytes of state, over the limit of {MAX_DUMP_BYTES}"
        )));
    }
    let mut bytes = Vec::with_capacity(content_len.min(64 << 20) as usize);
    flate2::read::DeflateDecoder::new(body)
        .take(content_len + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| DumpError::Encoding(error.to_string()))?;
    if bytes.len() as u64 != content_len {
        return Err(DumpError::Encoding(format!(
            "it inflates to {}{} bytes, the header says {content_len}",
            bytes.len(),
            if bytes.len() as u64 > content_len {
                " or more"
            } else {
                ""
            }
        )));
    }
    let hash: [u8; 32] = Sha256::digest(&bytes).into();
    if &hash != content_hash {
        return Err(DumpError::HashMismatch);
    }
    Ok(Dump { bytes, hash })
}

/// Builds the image of `dump` (the state under `schema`) and encodes it into the body, off
/// the async workers where that is safe (`blocking::run_cpu`): see [`image::build`].
pub async fn build_image(
    schema: std::sync::Arc<Schema>,
    dump: Dump,
) -> Result<SnapshotState, DumpError> {
    eventsync_backends::blocking::run_cpu(move || image::build(&schema, &dump))
        .await
        .map_err(|error| DumpError::Encoding(format!("building the image stopped: {error}")))?
}

/// Writes `state` (the state at `at`) to `backend` as a snapshot of schema `schema_hash`, in
/// format version 2 (its body as [`image::build`] encoded it; created once: a second writer
/// of the same `at` moves on).
pub async fn put(
    backend: &dyn SyncBackend,
    schema_hash: &str,
    at: GlobalSeq,
    state: SnapshotState,
    writer: &str,
) -> Result<SnapshotPut, BackendError> {
    let SnapshotState {
        image,
        body,
        dump_hash,
        dump_len,
    } = state;
    // The image is not sent: free it before the upload.
    drop(image);
    let content = SnapshotContent {
        version: eventsync_backends::snapshot::FORMAT_VERSION,
        content_hash: dump_hash,
        content_len: dump_len,
        body,
        writer: writer.to_owned(),
    };
    backend.put_snapshot(schema_hash, at, content).await
}

/// Why [`write`] wrote no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The image of the state could not be built.
    #[error("building the snapshot's image: {0}")]
    Image(#[from] DumpError),
    /// The backend did not take the snapshot.
    #[error("writing the snapshot: {0}")]
    Backend(#[from] BackendError),
}

impl From<WriteError> for crate::error::Error {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Image(error) => crate::error::Error::new(
                crate::error::ErrorKind::Internal,
                format!("building the snapshot's image: {error}"),
            ),
            WriteError::Backend(error) => error.into(),
        }
    }
}

/// Writes a snapshot of `dump` (the state under `schema` at the confirmed event `at`) to
/// `backend`, as `writer`: builds the image and its body off the async workers
/// ([`build_image`]), then [`put`]s it. What `Store::snapshot` and the leader's automatic
/// snapshots both run.
pub async fn write(
    backend: &dyn SyncBackend,
    schema: std::sync::Arc<Schema>,
    at: GlobalSeq,
    dump: Dump,
    writer: &str,
) -> Result<SnapshotPut, WriteError> {
    let schema_hash = schema.hash();
    let state = build_image(schema, dump).await?;
    Ok(put(backend, &schema_hash, at, state, writer).await?)
}

/// After a snapshot was written: deletes the snapshots of `backend` but the newest `keep` of
/// each schema hash ([`SyncBackend::prune_snapshots`]; `keep` 0: none is deleted). Best
/// effort: a failure is logged, never returned (the snapshots stay for the next prune).
pub async fn prune(backend: &dyn SyncBackend, keep: u64) {
    if keep == 0 {
        return;
    }
    match backend.prune_snapshots(keep).await {
        Ok(pruned) if !pruned.deleted.is_empty() => {
            tracing::debug!(deleted = pruned.deleted.len(), keep, "pruned snapshots");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not prune the older snapshots"),
    }
}

/// How a store's opening used the snapshots in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum SnapshotBoot {
    /// The store held data already (or was opened offline, or with
    /// `Tuning::boot_from_snapshot` off): no snapshot was looked for.
    NotTried,
    /// No snapshot of this schema in the bucket: the store replays the log from `e1`.
    NoneFound,
    /// The store started from this snapshot and pulls the log after `at`.
    Loaded {
        /// The snapshot's key.
        key: String,
        /// Its `S`.
        at: u64,
        /// The newer snapshots of this schema that were refused (damaged, not matching the
        /// log, or not loadable), newest first: the store fell back past them.
        refused: Vec<RefusedSnapshot>,
    },
    /// Every snapshot of this schema was refused (newest first, each with why); the store
    /// replays the log from `e1` instead.
    Refused {
        /// The snapshots refused, newest first.
        refused: Vec<RefusedSnapshot>,
    },
    /// The bucket could not be asked (unreachable); the store replays the log.
    Unavailable {
        /// What failed.
        message: String,
    },
}

/// `verify --snapshots`: replays the log into a fresh in-memory database under `schema`,
/// once, in ascending order of the snapshots' `S`, and compares each snapshot of this
/// schema with the dump of the replay at its `S`. Snapshots of other schemas cannot be
/// judged here and pass (their header and link are still checked by the audit).
pub struct ReplayCheck {
    schema: std::sync::Arc<crate::schema::Schema>,
    schema_hash: String,
    backend: std::sync::Arc<dyn SyncBackend>,
    /// The replayed database and the last event it holds.
    replay: tokio::sync::Mutex<(Connection, GlobalSeq)>,
}

impl std::fmt::Debug for ReplayCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCheck")
            .field("schema_hash", &self.schema_hash)
            .finish_non_exhaustive()
    }
}

impl ReplayCheck {
    /// A check that replays `backend`'s log under `schema`.
    pub fn new(
        schema: std::sync::Arc<crate::schema::Schema>,
        backend: std::sync::Arc<dyn SyncBackend>,
    ) -> Result<ReplayCheck, DumpError> {
        let conn = Connection::open_in_memory()?;
        schema
            .create_tables(&conn)
            .map_err(|error| DumpError::Malformed(format!("creating the tables: {error}")))?;
        Ok(ReplayCheck {
            schema_hash: schema.hash(),
            schema,
            backend,
            replay: tokio::sync::Mutex::new((conn, GlobalSeq::ZERO)),
        })
    }

    /// The dump of the log's state at `at`, replaying what is missing (`at` at or after the
    /// last call's).
    async fn dump_at(&self, at: GlobalSeq) -> Result<Result<Dump, String>, BackendError> {
        use futures::StreamExt as _;
        let mut replay = self.replay.lock().await;
        let (conn, head) = &mut *replay;
        if *head > at {
            return Ok(Err(format!(
                "snapshots are checked in order; {at} is behind the replay at {head}"
            )));
        }
        if *head < at {
            let mut pages = self.backend.pull(*head, false).await?;
            'pages: while let Some(page) = pages.next().await {
                let page = page?;
                if page.events.is_empty() {
                    break;
                }
                for event in page.events {
                    if event.seq_num > at {
                        break 'pages;
                    }
                    let seq = event.seq_num;
                    let encoded = crate::event::EncodedEvent::from_global(event);
                    if let Err(error) = crate::materialize::apply_event_quietly(
                        conn,
                        &self.schema,
                        &encoded,
                        crate::materialize::Record::Nothing,
                    ) {
                        return Ok(Err(format!("the replay failed at {seq}: {error}")));
                    }
                    *head = seq;
                }
                if matches!(page.page_info, eventsync_backends::PageInfo::NoMore) {
                    break;
                }
            }
            if *head != at {
                return Ok(Err(format!("the log ends at {head}, before {at}")));
            }
        }
        Ok(dump_tables(conn, &self.schema).map_err(|error| error.to_string()))
    }
}

#[async_trait::async_trait]
impl eventsync_backends::verify::SnapshotContentCheck for ReplayCheck {
    async fn check(
        &self,
        snapshot: &eventsync_backends::snapshot::Snapshot,
    ) -> Result<Option<String>, BackendError> {
        if snapshot.schema_hash != self.schema_hash {
            return Ok(None);
        }
        let replayed = match self.dump_at(snapshot.at).await? {
            Ok(dump) => dump,
            Err(message) => return Ok(Some(message)),
        };
        if replayed.hash != snapshot.content_hash {
            return Ok(Some(format!(
                "its state is not the log's: a replay of e1 to {} under this schema hashes to {}, the snapshot says {}",
                snapshot.at,
                short(&replayed.hash),
                short(&snapshot.content_hash)
            )));
        }
        // The content hash is the producer's claim; the body must hold what it claims.
        let body = if snapshot.version == 1 {
            decompress(&snapshot.body, snapshot.content_len, &snapshot.content_hash)
        } else {
            image::decode(&snapshot.body).and_then(|image| image::dump_image(&self.schema, &image))
        };
        match body {
            Err(error) => Ok(Some(error.to_string())),
            Ok(dump)
                if dump.hash != snapshot.content_hash
                    || dump.bytes.len() as u64 != snapshot.content_len =>
            {
                Ok(Some(format!(
                    "its body does not hold the state it claims: its tables dump to {} bytes hashing to {}, the header says {} bytes hashing to {}",
                    dump.bytes.len(),
                    short(&dump.hash),
                    snapshot.content_len,
                    short(&snapshot.content_hash)
                )))
            }
            Ok(_) => Ok(None),
        }
    }
}

fn short(hash: &[u8; 32]) -> String {
    hash[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + "…"
}

/// A cursor over a dump that fails, instead of panicking, past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DumpError> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| DumpError::Malformed(format!("cut off at byte {}", self.position)))?;
        let taken = &self.bytes[self.position..end];
        self.position = end;
        Ok(taken)
    }
    fn u32(&mut self) -> Result<u32, DumpError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
    fn u64(&mut self) -> Result<u64, DumpError> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(word))
    }
    fn text(&mut self) -> Result<&'a str, DumpError> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?)
            .map_err(|_| DumpError::Malformed("a name is not UTF-8".into()))
    }
}

/// Fills the (empty) user tables of `conn` (made by `schema`, the snapshot's) from `dump`,
/// but for the client-only tables, which stay empty. The dump must name exactly those
/// tables with exactly their columns; anything else is [`DumpError::Malformed`], and the
/// caller's transaction is rolled back.
pub fn load_tables(conn: &Connection, schema: &Schema, dump: &[u8]) -> Result<(), DumpError> {
    let expected = snapshot_tables(conn, schema)?;
    let mut reader = Reader {
        bytes: dump,
        position: 0,
    };
    let count = reader.u32()? as usize;
    if count != expected.len() {
        return Err(DumpError::Malformed(format!(
            "it holds {count} tables, the schema has {}",
            expected.len()
        )));
    }
    for table in &expected {
        let name = reader.text()?;
        if name != table {
            return Err(DumpError::Malformed(format!(
                "it holds table {name:?} where the schema has {table:?}"
            )));
        }
        let columns = columns(conn, table)?;
        let width = reader.u32()? as usize;
        if width != columns.len() {
            return Err(DumpError::Malformed(format!(
                "table {table:?} has {width} columns in the dump, {} in the schema",
                columns.len()
            )));
        }
        for column in &columns {
            let found = reader.text()?;
            if found != column {
                return Err(DumpError::Malformed(format!(
                    "table {table:?}: column {found:?} where the schema has {column:?}"
                )));
            }
        }
        let rows = reader.u64()?;
        let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let marks: Vec<&str> = columns.iter().map(|_| "?").collect();
        let mut insert = conn.prepare(&format!(
            "INSERT INTO main.{} ({}) VALUES ({})",
            quote(table),
            names.join(", "),
            marks.join(", ")
        ))?;
        for _ in 0..rows {
            // Each value is bound straight from the dump's bytes (no copy per value).
            for index in 1..=columns.len() {
                match reader.take(1)?[0] {
                    0 => insert.raw_bind_parameter(index, rusqlite::types::Null)?,
                    1 => insert.raw_bind_parameter(index, reader.u64()? as i64)?,
                    2 => insert.raw_bind_parameter(index, f64::from_bits(reader.u64()?))?,
                    3 => {
                        let len = reader.u32()? as usize;
                        let text = std::str::from_utf8(reader.take(len)?).map_err(|_| {
                            DumpError::Malformed(format!("table {table:?}: a text is not UTF-8"))
                        })?;
                        insert.raw_bind_parameter(index, text)?;
                    }
                    4 => {
                        let len = reader.u32()? as usize;
                        insert.raw_bind_parameter(index, reader.take(len)?)?;
                    }
                    tag => {
                        return Err(DumpError::Malformed(format!(
                            "table {table:?}: unknown value tag {tag}"
                        )));
                    }
                }
            }
            insert.raw_execute()?;
        }
    }
    if reader.position != dump.len() {
        return Err(DumpError::Malformed(format!(
            "{} bytes left over after the last table",
            dump.len() - reader.position
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schema that marks no table client-only (the tests make their tables by hand).
    fn none() -> Schema {
        Schema::default()
    }

    fn tables(conn: &Connection) {
        conn.execute_batch(
            "CREATE TABLE b (id TEXT PRIMARY KEY, n INTEGER, x REAL, data BLOB);
             CREATE TABLE a (k INTEGER);
             CREATE TABLE __eventsync_meta (key TEXT, value TEXT);",
        )
        .unwrap();
    }

    #[test]
    fn test_dump_is_canonical_whatever_the_insert_order() {
        let one = Connection::open_in_memory().unwrap();
        let two = Connection::open_in_memory().unwrap();
        tables(&one);
        tables(&two);
        one.execute_batch(
            "INSERT INTO b VALUES ('x', 1, 1.5, x'00ff'), ('y', NULL, -2.0, NULL);
             INSERT INTO a VALUES (3), (1);
             INSERT INTO __eventsync_meta VALUES ('not', 'dumped');",
        )
        .unwrap();
        two.execute_batch(
            "INSERT INTO a VALUES (1), (3);
             INSERT INTO b VALUES ('y', NULL, -2.0, NULL), ('x', 1, 1.5, x'00ff');",
        )
        .unwrap();
        let (d1, d2) = (
            dump_tables(&one, &none()).unwrap(),
            dump_tables(&two, &none()).unwrap(),
        );
        assert_eq!(d1, d2);
        two.execute("UPDATE a SET k = 4 WHERE k = 3", []).unwrap();
        assert_ne!(dump_tables(&two, &none()).unwrap().hash, d1.hash);
    }

    #[test]
    fn test_dump_compress_load_round_trip() {
        let source = Connection::open_in_memory().unwrap();
        tables(&source);
        source
            .execute_batch("INSERT INTO b VALUES ('x', 7, 0.25, x'01'); INSERT INTO a VALUES (9);")
            .unwrap();
        let dump = dump_tables(&source, &none()).unwrap();
        let body = compress(&dump.bytes);
        let back = decompress(&body, dump.bytes.len() as u64, &dump.hash).unwrap();
        let target = Connection::open_in_memory().unwrap();
        tables(&target);
        load_tables(&target, &none(), &back.bytes).unwrap();
        assert_eq!(dump_tables(&target, &none()).unwrap(), dump);
    }

    #[test]
    fn test_bad_bodies_and_dumps_are_errors_not_panics() {
        let source = Connection::open_in_memory().unwrap();
        tables(&source);
        source.execute_batch("INSERT INTO a VALUES (1);").unwrap();
        let dump = dump_tables(&source, &none()).unwrap();
        let body = compress(&dump.bytes);
        let len = dump.bytes.len() as u64;
        assert!(matches!(
            decompress(&body, len, &[0; 32]),
            Err(DumpError::HashMismatch)
        ));
        assert!(decompress(&body, len - 1, &dump.hash).is_err());
        assert!(decompress(&body[..body.len() / 2], len, &dump.hash).is_err());
        assert!(decompress(&body, MAX_DUMP_BYTES + 1, &dump.hash).is_err());
        for cut in 0..dump.bytes.len() {
            let target = Connection::open_in_memory().unwrap();
            tables(&target);
            assert!(
                load_tables(&target, &none(), &dump.bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }
}
