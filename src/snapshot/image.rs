//! Snapshot format version 2: the body is an SQLite image of the snapshot tables (a database
//! file holding exactly those tables, made by their schema's DDL, and nothing else), so that
//! a booting client copies b-tree records into `state.db` (`INSERT INTO main.t SELECT * FROM
//! image.t`, which SQLite runs as its transfer optimization: records and index entries are
//! copied as they are, without decoding a row or searching an index) instead of inserting
//! the rows of a dump one by one.
//!
//! The content hash stays the canonical dump's (see the parent module): the writer dumps the
//! tables as before and builds the image from that dump, so `verify --snapshots` dumps the
//! image's tables and compares them with a replay of the log. A booting client does not
//! dump: it trusts the object's SHA-256 trailer for integrity (checked by the backend before
//! the body gets here) and checks what an image adds to a dump: that it is an SQLite file
//! in rollback-journal format, that its schema is exactly the snapshot tables' (the same
//! `CREATE` statements, no trigger, view or other object), and SQLite's `quick_check` of
//! its b-trees, with SQLite's defensive settings on while it is open.

use std::io::{Read as _, Write as _};

use rusqlite::Connection;
use rusqlite::config::DbConfig;

use super::{Dump, DumpError, dump_tables, load_tables, quote, snapshot_tables};
use crate::schema::Schema;

/// The name an image is attached under while it is copied into `state.db`.
pub(crate) const IMAGE_DB: &str = "eventsync_snapshot_image";

/// Largest image a reader opens (SQLite's deserialize takes a C `int` size).
pub const MAX_IMAGE_BYTES: usize = i32::MAX as usize;

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The state a version-2 snapshot carries: the image of the snapshot tables, the body that
/// encodes it, and the hash and length of their canonical dump (the snapshot's content hash
/// and content length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotState {
    /// The SQLite image.
    pub image: Vec<u8>,
    /// The snapshot's body: the image's DEFLATE encoding ([`encode`]), made with the image
    /// (off the async workers, see `snapshot::build_image`) so that writing it is only a PUT.
    pub body: Vec<u8>,
    /// The SHA-256 of the tables' canonical dump.
    pub dump_hash: [u8; 32],
    /// The length of that dump in bytes.
    pub dump_len: u64,
}

/// Builds the image of the tables `dump` holds (a canonical dump made under `schema`), in a
/// fresh in-memory database (the rows go in in the dump's order, so pages come out full),
/// and encodes it into the body.
pub fn build(schema: &Schema, dump: &Dump) -> Result<SnapshotState, DumpError> {
    let mut conn = Connection::open_in_memory()?;
    create_snapshot_tables(&conn, schema)?;
    let tx = conn.transaction()?;
    load_tables(&tx, schema, &dump.bytes)?;
    tx.commit()?;
    let image = conn.serialize("main")?.to_vec();
    let body = encode(&image);
    Ok(SnapshotState {
        image,
        body,
        dump_hash: dump.hash,
        dump_len: dump.bytes.len() as u64,
    })
}

/// A version-2 snapshot's body: the image, DEFLATE-encoded at the fast level. An image is
/// mostly page slack and repeated column text: at 1,000,000 todos the 75.8 MB image is what a
/// bucket would otherwise store and a booting client GET, per snapshot.
pub fn encode(image: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(image.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(image);
    encoder.finish().unwrap_or_default()
}

/// The image a version-2 body encodes ([`encode`]), refused when it does not inflate or
/// inflates past [`MAX_IMAGE_BYTES`] (a compression bomb allocates no more than that).
pub fn decode(body: &[u8]) -> Result<Vec<u8>, DumpError> {
    let mut image = Vec::with_capacity(body.len().saturating_mul(4).min(64 << 20));
    flate2::read::DeflateDecoder::new(body)
        .take(MAX_IMAGE_BYTES as u64 + 1)
        .read_to_end(&mut image)
        .map_err(|error| DumpError::Encoding(format!("the image does not inflate: {error}")))?;
    if image.len() > MAX_IMAGE_BYTES {
        return Err(DumpError::Encoding(format!(
            "the image inflates past the limit of {MAX_IMAGE_BYTES} bytes"
        )));
    }
    Ok(image)
}

/// The snapshot state of the user tables of `conn` (but `schema`'s client-only tables): their
/// canonical dump's hash and the image built from it.
pub fn state_of(conn: &Connection, schema: &Schema) -> Result<SnapshotState, DumpError> {
    build(schema, &dump_tables(conn, schema)?)
}

/// The canonical dump of an image's tables, after the checks a booting client makes (see
/// the module doc): what `verify --snapshots` compares with a replay.
pub fn dump_image(schema: &Schema, image: &[u8]) -> Result<Dump, DumpError> {
    let mut conn = Connection::open_in_memory()?;
    Defensive::enter(&conn)?;
    open_checked(&mut conn, "main", schema, image)?;
    dump_tables(&conn, schema)
}

/// Makes `schema`'s tables in `conn`, then drops its client-only ones: the tables an image
/// holds.
fn create_snapshot_tables(conn: &Connection, schema: &Schema) -> Result<(), DumpError> {
    schema
        .create_tables(conn)
        .map_err(|error| DumpError::Malformed(format!("creating the tables: {error}")))?;
    let client_only: Vec<String> = conn
        .prepare("SELECT name FROM main.sqlite_schema WHERE type = 'table'")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|name| schema.is_client_only_table(name))
        .collect();
    for name in client_only {
        conn.execute_batch(&format!("DROP TABLE main.{}", quote(&name)))?;
    }
    Ok(())
}

/// One row of `sqlite_schema`: type, name, table, SQL (the root page left out: it depends
/// on the order the file was written in).
type SchemaObject = (String, String, String, Option<String>);

fn schema_objects(conn: &Connection, db: &str) -> Result<Vec<SchemaObject>, rusqlite::Error> {
    conn.prepare(&format!(
        "SELECT type, name, tbl_name, sql FROM {}.sqlite_schema ORDER BY name, type",
        quote(db)
    ))?
    .query_map([], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
    })?
    .collect()
}

/// Checks the first page's header: an SQLite file, not too large, whole pages, and in
/// rollback-journal format (an in-memory image cannot be opened in WAL format).
fn check_header(image: &[u8]) -> Result<(), DumpError> {
    if image.len() > MAX_IMAGE_BYTES {
        return Err(DumpError::Encoding(format!(
            "the image has {} bytes, over the limit of {MAX_IMAGE_BYTES}",
            image.len()
        )));
    }
    if image.len() < 512 || &image[..16] != SQLITE_MAGIC {
        return Err(DumpError::Malformed(
            "the body is not an SQLite image".into(),
        ));
    }
    let page_size = match u16::from_be_bytes([image[16], image[17]]) {
        1 => 65536,
        size => usize::from(size),
    };
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(DumpError::Malformed(format!(
            "the image's page size {page_size} is not a power of two from 512 to 65536"
        )));
    }
    if !image.len().is_multiple_of(page_size) {
        return Err(DumpError::Malformed(format!(
            "the image's {} bytes are not whole pages of {page_size}",
            image.len()
        )));
    }
    if image[18] != 1 || image[19] != 1 {
        return Err(DumpError::Malformed(
            "the image is not in rollback-journal format".into(),
        ));
    }
    Ok(())
}

/// Loads `image` (read-only) as database `db` of `conn` (`main`, or an attached one), and
/// checks it: its header, that its schema is exactly the snapshot tables' (the same objects
/// with the same SQL as `schema`'s DDL makes in a fresh database, and nothing else), and
/// SQLite's `quick_check`. `conn` should be in [`Defensive`] settings.
fn open_checked(
    conn: &mut Connection,
    db: &str,
    schema: &Schema,
    image: &[u8],
) -> Result<(), DumpError> {
    check_header(image)?;
    conn.deserialize_read_exact(db, image, image.len(), true)?;
    let expected = {
        let fresh = Connection::open_in_memory()?;
        create_snapshot_tables(&fresh, schema)?;
        schema_objects(&fresh, "main")?
    };
    let found = schema_objects(conn, db)?;
    if let Some(extra) = found.iter().find(|object| !expected.contains(object)) {
        let (kind, name, table, _) = extra;
        return Err(DumpError::Malformed(
            if expected.iter().any(|(k, n, _, _)| k == kind && n == name) {
                format!("the image's {kind} {name:?} is not made by the schema's DDL")
            } else {
                format!(
                    "the image holds {kind} {name:?} (on {table:?}), which the schema does not make"
                )
            },
        ));
    }
    if let Some((kind, name, _, _)) = expected.iter().find(|object| !found.contains(object)) {
        return Err(DumpError::Malformed(format!(
            "the image lacks the schema's {kind} {name:?}"
        )));
    }
    let problems: Vec<String> = conn
        .prepare(&format!("PRAGMA {}.quick_check", quote(db)))?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if problems != ["ok"] {
        return Err(DumpError::Malformed(format!(
            "the image fails SQLite's quick_check: {}",
            problems.join("; ")
        )));
    }
    Ok(())
}

/// SQLite's settings for a database from outside, saved to be restored: while they hold,
/// `SQLITE_DBCONFIG_DEFENSIVE` is on, `trusted_schema` off (no function with side effects
/// runs from a schema's SQL) and `cell_size_check` on (b-tree cells are bounds-checked as
/// they are read).
#[derive(Debug)]
pub(crate) struct Defensive {
    defensive: bool,
    trusted_schema: bool,
    cell_size_check: bool,
}

impl Defensive {
    /// Puts `conn` in defensive settings, returning those to restore.
    pub(crate) fn enter(conn: &Connection) -> Result<Defensive, DumpError> {
        let saved = Defensive {
            defensive: conn.db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE)?,
            trusted_schema: conn.db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA)?,
            cell_size_check: conn.query_row("PRAGMA cell_size_check", [], |row| row.get(0))?,
        };
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
        conn.execute_batch("PRAGMA cell_size_check = ON")?;
        Ok(saved)
    }

    /// Restores the settings `conn` had before [`Defensive::enter`].
    pub(crate) fn leave(self, conn: &Connection) -> Result<(), DumpError> {
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, self.defensive)?;
        conn.set_db_config(
            DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA,
            self.trusted_schema,
        )?;
        conn.execute_batch(&format!(
            "PRAGMA cell_size_check = {}",
            if self.cell_size_check { "ON" } else { "OFF" }
        ))?;
        Ok(())
    }
}

/// Puts `conn` in [`Defensive`] settings, attaches `image` to it as [`IMAGE_DB`] and checks
/// it (see [`open_checked`]). On success the caller copies the tables ([`copy_tables`]) and
/// then calls [`detach`] with the settings returned, outside a transaction both; a failed
/// check detaches the image and restores the settings itself.
pub(crate) fn attach(
    conn: &mut Connection,
    schema: &Schema,
    image: &[u8],
) -> Result<Defensive, DumpError> {
    let saved = Defensive::enter(conn)?;
    let checked = conn
        .execute_batch(&format!("ATTACH ':memory:' AS {}", quote(IMAGE_DB)))
        .map_err(DumpError::from)
        .and_then(|()| open_checked(conn, IMAGE_DB, schema, image));
    match checked {
        Ok(()) => Ok(saved),
        Err(error) => {
            let _ = conn.execute_batch(&format!("DETACH {}", quote(IMAGE_DB)));
            let _ = saved.leave(conn);
            Err(error)
        }
    }
}

/// Copies the snapshot tables from the attached image into `conn`'s (empty) tables of the
/// same schema: SQLite's transfer optimization copies records and index entries as they are.
pub(crate) fn copy_tables(conn: &Connection, schema: &Schema) -> Result<(), DumpError> {
    for table in snapshot_tables(conn, schema)? {
        let table = quote(&table);
        conn.execute(
            &format!(
                "INSERT INTO main.{table} SELECT * FROM {}.{table}",
                quote(IMAGE_DB)
            ),
            [],
        )?;
    }
    Ok(())
}

/// Detaches the image (outside a transaction) and restores the settings [`attach`] saved.
pub(crate) fn detach(conn: &Connection, saved: Defensive) -> Result<(), DumpError> {
    let detached = conn.execute_batch(&format!("DETACH {}", quote(IMAGE_DB)));
    let left = saved.leave(conn);
    detached?;
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::builder()
            .table(
                "items",
                "CREATE TABLE items (id TEXT PRIMARY KEY, n INTEGER); CREATE INDEX items_n ON items (n)",
            )
            .client_only_table("mine", "CREATE TABLE mine (id INTEGER PRIMARY KEY, v TEXT)")
            .build()
            .unwrap()
    }

    fn filled(schema: &Schema, rows: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        schema.create_tables(&conn).unwrap();
        for i in 0..rows {
            conn.execute(
                "INSERT INTO items VALUES (?1, ?2)",
                rusqlite::params![format!("item {i}"), (i * 7 % 13) as i64],
            )
            .unwrap();
        }
        conn.execute("INSERT INTO mine VALUES (1, 'not in a snapshot')", [])
            .unwrap();
        conn
    }

    #[test]
    fn test_an_image_dumps_to_the_dump_it_was_built_from() {
        let schema = schema();
        let conn = filled(&schema, 500);
        let dump = dump_tables(&conn, &schema).unwrap();
        let state = state_of(&conn, &schema).unwrap();
        assert_eq!(state.dump_hash, dump.hash);
        assert_eq!(state.dump_len, dump.bytes.len() as u64);
        assert!(state.image.starts_with(SQLITE_MAGIC));
        assert_eq!(dump_image(&schema, &state.image).unwrap(), dump);
    }

    #[test]
    fn test_a_body_encodes_its_image_smaller_and_a_bad_body_is_an_error() {
        let image = state_of(&filled(&schema(), 500), &schema()).unwrap().image;
        let body = encode(&image);
        assert!(
            body.len() < image.len() / 2,
            "{} of {}",
            body.len(),
            image.len()
        );
        assert_eq!(decode(&body).unwrap(), image);
        let cut = decode(&body[..body.len() / 2]).unwrap_err();
        assert!(cut.to_string().contains("does not inflate"), "{cut}");
        assert!(decode(b"not deflate").is_err());
    }

    #[test]
    fn test_cut_or_altered_images_are_errors_not_panics() {
        let schema = schema();
        let image = state_of(&filled(&schema, 300), &schema).unwrap().image;
        for cut in (0..image.len()).step_by(97) {
            assert!(dump_image(&schema, &image[..cut]).is_err(), "cut at {cut}");
        }
        let mut other_page_size = image.clone();
        other_page_size[16..18].copy_from_slice(&1000u16.to_be_bytes());
        let error = dump_image(&schema, &other_page_size).unwrap_err();
        assert!(error.to_string().contains("page size"), "{error}");
        let mut wal = image.clone();
        wal[18] = 2;
        wal[19] = 2;
        let error = dump_image(&schema, &wal).unwrap_err();
        assert!(error.to_string().contains("rollback-journal"), "{error}");
        // Every byte flipped, one at a time, in the first page and a stride of the rest:
        // refused or, where SQLite does not read it, a dump; never a panic.
        for at in (0..512).chain((512..image.len()).step_by(61)) {
            let mut damaged = image.clone();
            damaged[at] ^= 0x5a;
            let _ = dump_image(&schema, &damaged);
        }
    }

    #[test]
    fn test_an_image_without_a_schema_index_is_refused() {
        let schema = schema();
        let image = state_of(&filled(&schema, 10), &schema).unwrap().image;
        let mut conn = Connection::open_in_memory().unwrap();
        conn.deserialize_read_exact("main", &image[..], image.len(), false)
            .unwrap();
        conn.execute_batch("DROP INDEX items_n").unwrap();
        let altered = conn.serialize("main").unwrap().to_vec();
        let error = dump_image(&schema, &altered).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("lacks the schema's index \"items_n\""),
            "{error}"
        );
    }
}
