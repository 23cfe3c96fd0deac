//! A store's schema: the user's tables (their `CREATE TABLE` statements), the event
//! definitions, and one materializer per event that turns decoded args into SQL statements.
//!
//! A materializer is a pure, deterministic function `(args, ctx) -> statements`: every replica
//! that materializes the same log must end with the same tables. It may read the current
//! state through [`MaterializeContext`], never write except through the statements it
//! returns. Statements run through [`crate::materialize::apply_event`].
//!
//! The schema is hashed per table and per event definition ([`Schema::table_hashes`],
//! [`Schema::event_hashes`]) so a leader can notice that its `state.db` was built by another
//! schema and rebuild it from the eventlog.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::event::Event;

mod context;
mod error;
mod shape;

pub use context::{MaterializeContext, MaterializerError, Statement};
pub use error::{MaterializeError, SchemaError};

/// What to do with an event whose name the schema does not know (an older client reading a
/// log written by a newer one). In every case the event stays in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownEventPolicy {
    /// Log a warning (once per event name) and skip it: not materialized.
    #[default]
    Warn,
    /// Skip it silently: not materialized.
    Ignore,
    /// Refuse it: materialization fails with [`MaterializeError::UnknownEvent`].
    Fail,
}

/// An event definition: name and options. A typed event's comes from its [`Event`]
/// constants ([`EventDef::of`]); a dynamic caller writes one and gives it, with the args type
/// and the materializer, to [`SchemaBuilder::define_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDef {
    name: String,
    client_only: bool,
    deprecated: bool,
    revision: u32,
}

impl EventDef {
    /// An event synced to the backend and to every client. Names are conventionally
    /// versioned: `v1.TodoCreated`.
    pub fn synced(name: impl Into<String>) -> EventDef {
        EventDef {
            name: name.into(),
            client_only: false,
            deprecated: false,
            revision: 0,
        }
    }

    /// An event synced between the sessions of one client, never to the backend (UI state).
    pub fn client_only(name: impl Into<String>) -> EventDef {
        EventDef {
            client_only: true,
            ..EventDef::synced(name)
        }
    }

    /// The definition a typed event declares through its [`Event`] constants.
    pub fn of<E: Event>() -> EventDef {
        EventDef {
            name: E::NAME.to_owned(),
            client_only: E::CLIENT_ONLY,
            deprecated: E::DEPRECATED,
            revision: E::REVISION,
        }
    }

    /// Marks the event deprecated: committing it logs a warning (once per name).
    pub fn deprecated(mut self) -> EventDef {
        self.deprecated = true;
        self
    }

    /// Sets the materializer revision (default 0). The hash sees the args' field names but
    /// not the materializer's code: bump this when the materializer changes what it writes,
    /// so stores rebuild their tables from the eventlog.
    pub fn revision(mut self, revision: u32) -> EventDef {
        self.revision = revision;
        self
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for a client-only event.
    pub fn is_client_only(&self) -> bool {
        self.client_only
    }

    /// True for a deprecated event.
    pub fn is_deprecated(&self) -> bool {
        self.deprecated
    }

    /// The materializer revision.
    pub fn materializer_revision(&self) -> u32 {
        self.revision
    }
}

/// A user table: its name and the DDL that creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    name: String,
    ddl: String,
    /// Whether the table holds client-only state (see [`SchemaBuilder::client_only_table`]).
    client_only: bool,
}

impl TableDef {
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for a client-only table: its rows are this client's own state, kept out of
    /// snapshots (see [`SchemaBuilder::client_only_table`]).
    pub fn is_client_only(&self) -> bool {
        self.client_only
    }

    /// The `CREATE TABLE` statement(s), possibly followed by `CREATE INDEX` statements.
    pub fn ddl(&self) -> &str {
        &self.ddl
    }
}

/// A materializer with its decoding step: raw args in, statements out.
type ErasedMaterializer = Box<
    dyn Fn(&Json, &MaterializeContext<'_>) -> Result<Vec<Statement>, MaterializeError>
        + Send
        + Sync,
>;

/// Checks that raw args decode into the event's args type.
type ErasedDecoder = Box<dyn Fn(ArgsInput<'_>) -> Result<(), MaterializeError> + Send + Sync>;

/// Args to decode: a parsed value, or JSON text (an import's file).
#[derive(Clone, Copy)]
enum ArgsInput<'a> {
    Value(&'a Json),
    Text(&'a str),
}

/// An event definition with everything the runtime needs to materialize it.
struct EventEntry {
    def: EventDef,
    materializer: ErasedMaterializer,
    decoder: ErasedDecoder,
    /// The args type's shape (kind and field names), from [`shape::describe`]; hashed.
    args_shape: String,
}

/// Decodes `args` into `A`, naming the event and the failing field path on error.
fn decode<A: DeserializeOwned>(event: &str, args: &Json) -> Result<A, MaterializeError> {
    // Tracking the path costs about as much as the decoding: only a failure needs it, and
    // decoding again gives the same error.
    if let Ok(decoded) = <A as serde::Deserialize>::deserialize(args) {
        return Ok(decoded);
    }
    serde_path_to_error::deserialize(args).map_err(|error| MaterializeError::InvalidArgs {
        event: event.to_string(),
        path: error.path().to_string(),
        message: error.inner().to_string(),
    })
}

/// [`decode`] from JSON text: the same path and message (without the text's line and
/// column), and nothing may follow the value.
fn decode_text<A: DeserializeOwned>(event: &str, text: &str) -> Result<A, MaterializeError> {
    let fail = |path: String, error: &serde_json::Error| {
        let message = error.to_string();
        let message = match message.rfind(" at line ") {
            Some(cut) => message[..cut].to_owned(),
            None => message,
        };
        MaterializeError::InvalidArgs {
            event: event.to_string(),
            path,
            message,
        }
    };
    // Tracking the path costs about as much as the decoding: only a failure needs it.
    if let Ok(decoded) = serde_json::from_str(text) {
        return Ok(decoded);
    }
    let mut parser = serde_json::Deserializer::from_str(text);
    let decoded = serde_path_to_error::deserialize(&mut parser)
        .map_err(|error| fail(error.path().to_string(), error.inner()))?;
    parser.end().map_err(|error| fail(".".into(), &error))?;
    Ok(decoded)
}

/// Builds a [`Schema`]; see [`Schema::builder`].
#[derive(Default)]
pub struct SchemaBuilder {
    tables: Vec<TableDef>,
    events: Vec<EventEntry>,
    unknown_events: UnknownEventPolicy,
}

impl fmt::Debug for SchemaBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaBuilder")
            .field("tables", &self.tables)
            .field(
                "events",
                &self
                    .events
                    .iter()
                    .map(|entry| &entry.def)
                    .collect::<Vec<_>>(),
            )
            .field("unknown_events", &self.unknown_events)
            .finish()
    }
}

impl SchemaBuilder {
    /// Declares a user table. `ddl` is its `CREATE TABLE` statement, optionally followed by
    /// `CREATE INDEX` statements. The table needs a primary key: SQLite sessions (used to
    /// roll events back) only record tables that have one.
    pub fn table(mut self, name: &str, ddl: &str) -> SchemaBuilder {
        self.tables.push(TableDef {
            name: name.to_string(),
            ddl: ddl.trim().to_string(),
            client_only: false,
        });
        self
    }

    /// Declares a client-only table (LiveStore's client documents): state of this client
    /// alone, such as a list filter, written by client-only events. Its rows are never in a
    /// snapshot, since a snapshot is the state every client shares at an event: a client
    /// that boots from one starts with the table empty, as a client that replays the log
    /// does (client-only events are not in the log). Write it only from client-only events:
    /// a synced event's writes to it would be missing on a client booted from a snapshot, so
    /// materializing a synced event whose statements write it fails with
    /// [`MaterializeError::ClientOnlyTable`] before any of them runs.
    pub fn client_only_table(mut self, name: &str, ddl: &str) -> SchemaBuilder {
        self.tables.push(TableDef {
            name: name.to_string(),
            ddl: ddl.trim().to_string(),
            client_only: true,
        });
        self
    }

    /// Declares a typed event (its name and options are the type's [`Event`] constants) and
    /// the materializer that turns it into statements.
    pub fn event<E: Event>(
        self,
        materializer: impl Fn(E, &MaterializeContext<'_>) -> Result<Vec<Statement>, MaterializerError>
        + Send
        + Sync
        + 'static,
    ) -> SchemaBuilder {
        self.define_event(EventDef::of::<E>(), materializer)
    }

    /// Declares an event from a definition written at run time, and the materializer that
    /// turns its args (decoded as `A`) into statements: the form for callers whose event
    /// names are data, not types. Typed events use [`SchemaBuilder::event`].
    pub fn define_event<A: DeserializeOwned + 'static>(
        mut self,
        def: EventDef,
        materializer: impl Fn(A, &MaterializeContext<'_>) -> Result<Vec<Statement>, MaterializerError>
        + Send
        + Sync
        + 'static,
    ) -> SchemaBuilder {
        let name = def.name.clone();
        let erased: ErasedMaterializer = Box::new(move |args, ctx| {
            let decoded: A = decode(&name, args)?;
            materializer(decoded, ctx).map_err(|error| MaterializeError::Materializer {
                event: name.clone(),
                message: error.message().to_string(),
            })
        });
        let name = def.name.clone();
        let decoder: ErasedDecoder = Box::new(move |args| match args {
            ArgsInput::Value(value) => decode::<A>(&name, value).map(|_| ()),
            ArgsInput::Text(text) => decode_text::<A>(&name, text).map(|_| ()),
        });
        self.events.push(EventEntry {
            args_shape: shape::describe::<A>(),
            def,
            materializer: erased,
            decoder,
        });
        self
    }

    /// What to do with events the schema does not define (default: warn).
    pub fn unknown_events(mut self, policy: UnknownEventPolicy) -> SchemaBuilder {
        self.unknown_events = policy;
        self
    }

    /// Checks the schema and builds it: names must be unique, table names plain identifiers
    /// not reserved for eventsync, and each DDL must create exactly its table, with a primary
    /// key (checked by running it on an in-memory database).
    pub fn build(self) -> Result<Schema, SchemaError> {
        let mut table_names = HashSet::new();
        for table in &self.tables {
            check_table_name(&table.name)?;
            if !table_names.insert(table.name.clone()) {
                return Err(SchemaError::DuplicateTable {
                    name: table.name.clone(),
                });
            }
        }
        check_ddl(&self.tables)?;
        let mut events = HashMap::new();
        for (index, entry) in self.events.iter().enumerate() {
            if entry.def.name.trim().is_empty() || entry.def.name.trim() != entry.def.name {
                return Err(SchemaError::InvalidEventName {
                    name: entry.def.name.clone(),
                });
            }
            if events.insert(entry.def.name.clone(), index).is_some() {
                return Err(SchemaError::DuplicateEvent {
                    name: entry.def.name.clone(),
                });
            }
        }
        Ok(Schema {
            user_tables: Arc::new(table_names.into_iter().collect()),
            tables: self.tables,
            events: self.events,
            by_name: events,
            unknown_events: self.unknown_events,
            warned: Mutex::new(HashSet::new()),
            write_targets: Mutex::new(HashMap::new()),
        })
    }
}

/// Prefixes of table names reserved for SQLite and eventsync's own bookkeeping.
const RESERVED_PREFIXES: [&str; 2] = ["sqlite_", "__eventsync"];

fn check_table_name(name: &str) -> Result<(), SchemaError> {
    let invalid = |reason: &str| SchemaError::InvalidTableName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(invalid("empty")),
        Some(first) if !(first.is_ascii_alphabetic() || first == '_') => {
            return Err(invalid("must start with a letter or `_`"));
        }
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(invalid("only ASCII letters, digits and `_` are allowed"));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Err(invalid("prefix reserved for SQLite and eventsync"));
    }
    Ok(())
}

/// Runs every table's DDL on an in-memory database and checks what it created.
fn check_ddl(tables: &[TableDef]) -> Result<(), SchemaError> {
    let conn = rusqlite::Connection::open_in_memory().map_err(|source| SchemaError::Sql {
        table: String::new(),
        source,
    })?;
    for table in tables {
        let before = table_names(&conn).map_err(|source| SchemaError::Sql {
            table: table.name.clone(),
            source,
        })?;
        conn.execute_batch(&table.ddl)
            .map_err(|source| SchemaError::InvalidDdl {
                table: table.name.clone(),
                source,
            })?;
        let after = table_names(&conn).map_err(|source| SchemaError::Sql {
            table: table.name.clone(),
            source,
        })?;
        let created: Vec<&String> = after.difference(&before).collect();
        if !after.contains(&table.name) {
            return Err(SchemaError::TableNotCreated {
                table: table.name.clone(),
            });
        }
        if let Some(other) = created.iter().find(|name| **name != &table.name) {
            return Err(SchemaError::UndeclaredTable {
                table: table.name.clone(),
                created: (*other).clone(),
            });
        }
        if table.ddl.to_ascii_uppercase().contains("AUTOINCREMENT") {
            return Err(SchemaError::Autoincrement {
                table: table.name.clone(),
            });
        }
        let has_pk: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE pk > 0)",
                [&table.name],
                |row| row.get(0),
            )
            .map_err(|source| SchemaError::Sql {
                table: table.name.clone(),
                source,
            })?;
        if !has_pk {
            return Err(SchemaError::NoPrimaryKey {
                table: table.name.clone(),
            });
        }
    }
    Ok(())
}

/// The names of the tables in `conn`'s main database.
fn table_names(conn: &rusqlite::Connection) -> rusqlite::Result<BTreeSet<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?;
    let names = stmt.query_map([], |row| row.get(0))?;
    names.collect()
}

/// A store's schema: tables, event definitions and materializers. Build it with
/// [`Schema::builder`]; share it as `Arc<Schema>`.
pub struct Schema {
    tables: Vec<TableDef>,
    events: Vec<EventEntry>,
    by_name: HashMap<String, usize>,
    /// The user tables' names, shared with session table filters.
    user_tables: Arc<BTreeSet<String>>,
    unknown_events: UnknownEventPolicy,
    /// Event names already warned about (unknown or deprecated), to warn once per name.
    warned: Mutex<HashSet<String>>,
    /// Statement SQL text -> the user tables it writes (see [`Schema::write_targets`]).
    write_targets: Mutex<HashMap<String, Arc<BTreeSet<String>>>>,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema")
            .field("tables", &self.tables)
            .field(
                "events",
                &self.events.iter().map(|e| &e.def).collect::<Vec<_>>(),
            )
            .field("unknown_events", &self.unknown_events)
            .finish()
    }
}

impl Default for Schema {
    /// An empty schema (no tables, no events).
    fn default() -> Schema {
        Schema::builder()
            .build()
            .expect("an empty schema is always valid")
    }
}

impl Schema {
    /// Starts building a schema.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder::default()
    }

    /// The definition of the event called `name`, if the schema has one.
    pub fn event_def(&self, name: &str) -> Option<&EventDef> {
        self.entry(name).map(|entry| &entry.def)
    }

    /// Every event definition, in declaration order.
    pub fn event_defs(&self) -> impl Iterator<Item = &EventDef> {
        self.events.iter().map(|entry| &entry.def)
    }

    /// The user tables, in declaration order.
    pub fn tables(&self) -> &[TableDef] {
        &self.tables
    }

    /// True when `name` is one of the user tables.
    pub fn is_user_table(&self, name: &str) -> bool {
        self.user_tables.contains(name)
    }

    /// True when `name` is a client-only table (kept out of snapshots).
    pub fn is_client_only_table(&self, name: &str) -> bool {
        self.tables
            .iter()
            .any(|table| table.client_only && table.name == name)
    }

    /// True when the schema declares at least one client-only table.
    pub fn has_client_only_tables(&self) -> bool {
        self.tables.iter().any(|table| table.client_only)
    }

    /// The policy for events the schema does not define.
    pub fn unknown_event_policy(&self) -> UnknownEventPolicy {
        self.unknown_events
    }

    /// Creates the user tables that do not exist yet in `conn` (idempotent). A table that
    /// exists is left as it is: noticing a changed DDL is the job of [`Schema::table_hashes`].
    pub fn create_tables(&self, conn: &rusqlite::Connection) -> Result<(), SchemaError> {
        for table in &self.tables {
            let sql_error = |source| SchemaError::Sql {
                table: table.name.clone(),
                source,
            };
            let exists: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_schema \
                     WHERE type = 'table' AND name = ?1 COLLATE NOCASE)",
                    [&table.name],
                    |row| row.get(0),
                )
                .map_err(sql_error)?;
            if !exists {
                conn.execute_batch(&table.ddl).map_err(sql_error)?;
            }
        }
        Ok(())
    }

    /// The hash of the whole schema: all table and event definition hashes (hex SHA-256).
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        for (name, hash) in self.table_hashes() {
            hasher.update(format!("table {name} {hash}\n"));
        }
        for (name, hash) in self.event_hashes() {
            hasher.update(format!("event {name} {hash}\n"));
        }
        hex(&hasher.finalize())
    }

    /// One hash per table (hex SHA-256 of its name, DDL and, for a client-only table, that
    /// mark: it decides what a snapshot holds), stable across runs.
    pub fn table_hashes(&self) -> BTreeMap<String, String> {
        self.tables
            .iter()
            .map(|table| {
                let mark = if table.client_only {
                    "\0client_only"
                } else {
                    ""
                };
                let text = format!("table\0{}\0{}{mark}", table.name, table.ddl);
                (table.name.clone(), hex(&Sha256::digest(text)))
            })
            .collect()
    }

    /// One hash per event definition (hex SHA-256 of its name, client-only flag, materializer
    /// revision and args shape), stable across runs. Deprecation does not change it: it
    /// changes no materialized state.
    pub fn event_hashes(&self) -> BTreeMap<String, String> {
        self.events
            .iter()
            .map(|entry| {
                let def = &entry.def;
                let text = format!(
                    "event\0{}\0client_only={}\0revision={}\0args={}",
                    def.name, def.client_only, def.revision, entry.args_shape
                );
                (def.name.clone(), hex(&Sha256::digest(text)))
            })
            .collect()
    }

    /// Checks, at commit time, that `args` decode into the event's args type. Unknown names
    /// are an error whatever the unknown-event policy; a deprecated event logs a warning
    /// (once per name).
    pub fn decode_args(&self, name: &str, args: &Json) -> Result<(), MaterializeError> {
        self.decode_input(name, ArgsInput::Value(args))
    }

    /// [`decode_args`](Self::decode_args) on the args' JSON text (an import's file), without
    /// parsing it into a value first.
    pub fn decode_args_json(&self, name: &str, args: &str) -> Result<(), MaterializeError> {
        self.decode_input(name, ArgsInput::Text(args))
    }

    fn decode_input(&self, name: &str, args: ArgsInput<'_>) -> Result<(), MaterializeError> {
        let entry = self
            .entry(name)
            .ok_or_else(|| MaterializeError::UnknownEvent {
                name: name.to_string(),
            })?;
        if entry.def.deprecated && self.first_warning(name) {
            tracing::warn!(event = name, "committing a deprecated event");
        }
        (entry.decoder)(args)
    }

    /// Runs the event's materializer (decoding its args first); `None` for an unknown event.
    pub(crate) fn materialize(
        &self,
        ctx: &MaterializeContext<'_>,
    ) -> Option<Result<Vec<Statement>, MaterializeError>> {
        let entry = self.entry(&ctx.event.name)?;
        Some((entry.materializer)(&ctx.event.args, ctx))
    }

    /// The user tables' names, shareable with callbacks that must be `'static`.
    pub(crate) fn user_tables(&self) -> &Arc<BTreeSet<String>> {
        &self.user_tables
    }

    /// True the first time it is called for `name` (per schema): to warn once.
    pub(crate) fn first_warning(&self, name: &str) -> bool {
        match self.warned.lock() {
            Ok(mut warned) => warned.insert(name.to_string()),
            // A poisoned set only means a panic elsewhere; warning again is harmless.
            Err(_) => true,
        }
    }

    /// The user tables a statement writes (inserts into, updates or deletes from), triggers
    /// included, as SQLite's authorizer reports them while compiling it. Cached by SQL text:
    /// only the first call per text compiles (installing an authorizer expires the
    /// connection's prepared statements, which SQLite then recompiles on their next use).
    pub(crate) fn write_targets(
        &self,
        conn: &rusqlite::Connection,
        sql: &str,
    ) -> rusqlite::Result<Arc<BTreeSet<String>>> {
        if let Some(found) = self
            .write_targets
            .lock()
            .ok()
            .and_then(|cache| cache.get(sql).cloned())
        {
            return Ok(found);
        }
        let found = Arc::new(Mutex::new(BTreeSet::new()));
        let sink = Arc::clone(&found);
        let user_tables = Arc::clone(&self.user_tables);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            let table = match ctx.action {
                AuthAction::Insert { table_name }
                | AuthAction::Delete { table_name }
                | AuthAction::Update { table_name, .. } => Some(table_name),
                _ => None,
            };
            if let Some(table) = table
                && user_tables.contains(table)
                && let Ok(mut sink) = sink.lock()
            {
                sink.insert(table.to_string());
            }
            Authorization::Allow
        }));
        let compiled = conn.prepare(sql).map(drop);
        conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
        compiled?;
        let found = Arc::new(found.lock().map(|set| set.clone()).unwrap_or_default());
        if let Ok(mut cache) = self.write_targets.lock() {
            cache.insert(sql.to_string(), Arc::clone(&found));
        }
        Ok(found)
    }

    fn entry(&self, name: &str) -> Option<&EventEntry> {
        self.by_name.get(name).map(|&index| &self.events[index])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
