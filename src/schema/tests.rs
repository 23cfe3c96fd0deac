use serde::Deserialize;
use serde_json::json;

use super::*;

#[derive(Deserialize)]
#[allow(dead_code)]
struct ItemArgs {
    id: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ItemArgsWithNote {
    id: String,
    note: Option<String>,
}

const ITEMS: &str = "CREATE TABLE items (id TEXT PRIMARY KEY)";

/// A typed event that sets every option away from its default.
#[derive(serde::Serialize, Deserialize)]
struct ItemHidden {
    id: String,
}

impl Event for ItemHidden {
    const NAME: &'static str = "v2.ItemHidden";
    const CLIENT_ONLY: bool = true;
    const DEPRECATED: bool = true;
    const REVISION: u32 = 3;
}

#[test]
fn test_typed_event_registers_the_definition_its_type_declares() {
    let schema = Schema::builder()
        .table("items", ITEMS)
        .event(nothing::<ItemHidden>)
        .build()
        .unwrap();
    let def = schema.event_def(ItemHidden::NAME).unwrap();
    assert_eq!(def, &EventDef::of::<ItemHidden>());
    assert!(def.is_client_only() && def.is_deprecated());
    assert_eq!(def.materializer_revision(), 3);
    let dynamic = Schema::builder()
        .table("items", ITEMS)
        .define_event(
            EventDef::client_only("v2.ItemHidden")
                .deprecated()
                .revision(3),
            nothing::<ItemHidden>,
        )
        .build()
        .unwrap();
    assert_eq!(
        dynamic.hash(),
        schema.hash(),
        "the two forms define one event"
    );
}

fn nothing<A>(_: A, _: &MaterializeContext<'_>) -> Result<Vec<Statement>, MaterializerError> {
    Ok(Vec::new())
}

fn base() -> SchemaBuilder {
    Schema::builder()
        .table("items", ITEMS)
        .define_event(EventDef::synced("v1.ItemAdded"), nothing::<ItemArgs>)
}

#[test]
fn test_build_rejects_duplicates() {
    let error = base().table("items", ITEMS).build().unwrap_err();
    assert!(matches!(error, SchemaError::DuplicateTable { name } if name == "items"));
    let error = base()
        .define_event(EventDef::client_only("v1.ItemAdded"), nothing::<ItemArgs>)
        .build()
        .unwrap_err();
    assert!(matches!(error, SchemaError::DuplicateEvent { name } if name == "v1.ItemAdded"));
}

#[test]
fn test_build_rejects_bad_tables() {
    for name in ["", "1x", "a-b", "sqlite_x", "__eventsync_head"] {
        let error = Schema::builder()
            .table(name, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .build()
            .unwrap_err();
        assert!(
            matches!(&error, SchemaError::InvalidTableName { name: n, .. } if n == name),
            "{name}: {error}"
        );
    }
    let error = Schema::builder()
        .table("items", "CREATE TABLE other (id TEXT PRIMARY KEY)")
        .build()
        .unwrap_err();
    assert!(matches!(error, SchemaError::TableNotCreated { table } if table == "items"));
    let error = Schema::builder()
        .table("items", "CREATE TABLE items (id TEXT)")
        .build()
        .unwrap_err();
    assert!(matches!(error, SchemaError::NoPrimaryKey { table } if table == "items"));
    let error = Schema::builder()
        .table("items", "CREATE TABLE items (id TEXT PRIMARY KEY,")
        .build()
        .unwrap_err();
    assert!(matches!(error, SchemaError::InvalidDdl { table, .. } if table == "items"));
    let error = Schema::builder()
        .table(
            "items",
            "CREATE TABLE items (id TEXT PRIMARY KEY); CREATE TABLE extra (id TEXT PRIMARY KEY)",
        )
        .build()
        .unwrap_err();
    assert!(
        matches!(error, SchemaError::UndeclaredTable { table, created } if table == "items" && created == "extra")
    );
}

#[test]
fn test_build_rejects_autoincrement() {
    let error = Schema::builder()
        .table(
            "items",
            "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, n TEXT)",
        )
        .build()
        .unwrap_err();
    assert!(matches!(error, SchemaError::Autoincrement { table } if table == "items"));
}

#[test]
fn test_schema_is_send_and_sync() {
    fn shared<T: Send + Sync + 'static>(_: &T) {}
    shared(&base().build().unwrap());
}

#[test]
fn test_create_tables_is_idempotent_and_keeps_indexes() {
    let schema = Schema::builder()
        .table(
            "items",
            "CREATE TABLE items (id TEXT PRIMARY KEY, n INTEGER); CREATE INDEX items_n ON items (n)",
        )
        .build()
        .unwrap();
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    schema.create_tables(&conn).unwrap();
    conn.execute("INSERT INTO items VALUES ('a', 1)", [])
        .unwrap();
    schema.create_tables(&conn).unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM items", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 1);
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'items_n'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 1);
}

#[test]
fn test_hash_changes_with_table_ddl() {
    let a = base().build().unwrap();
    let b = Schema::builder()
        .table(
            "items",
            "CREATE TABLE items (id TEXT PRIMARY KEY, n INTEGER)",
        )
        .define_event(EventDef::synced("v1.ItemAdded"), nothing::<ItemArgs>)
        .build()
        .unwrap();
    assert_ne!(a.hash(), b.hash());
    assert_ne!(a.table_hashes()["items"], b.table_hashes()["items"]);
    assert_eq!(a.event_hashes(), b.event_hashes());
}

#[test]
fn test_hash_changes_with_event_def() {
    let a = base().build().unwrap();
    let with_field = Schema::builder()
        .table("items", ITEMS)
        .define_event(
            EventDef::synced("v1.ItemAdded"),
            nothing::<ItemArgsWithNote>,
        )
        .build()
        .unwrap();
    let client_only = Schema::builder()
        .table("items", ITEMS)
        .define_event(EventDef::client_only("v1.ItemAdded"), nothing::<ItemArgs>)
        .build()
        .unwrap();
    let revised = Schema::builder()
        .table("items", ITEMS)
        .define_event(
            EventDef::synced("v1.ItemAdded").revision(1),
            nothing::<ItemArgs>,
        )
        .build()
        .unwrap();
    let renamed = Schema::builder()
        .table("items", ITEMS)
        .define_event(EventDef::synced("v2.ItemAdded"), nothing::<ItemArgs>)
        .build()
        .unwrap();
    let hashes = [&a, &with_field, &client_only, &revised, &renamed].map(Schema::hash);
    let distinct: HashSet<_> = hashes.iter().collect();
    assert_eq!(distinct.len(), hashes.len(), "{hashes:?}");
    assert_ne!(
        a.event_hashes()["v1.ItemAdded"],
        with_field.event_hashes()["v1.ItemAdded"]
    );
    assert_eq!(a.table_hashes(), with_field.table_hashes());
}

#[test]
fn test_hash_is_stable_and_ignores_deprecation() {
    let a = base().build().unwrap();
    let b = base().build().unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash().len(), 64);
    let deprecated = Schema::builder()
        .table("items", ITEMS)
        .define_event(
            EventDef::synced("v1.ItemAdded").deprecated(),
            nothing::<ItemArgs>,
        )
        .build()
        .unwrap();
    assert_eq!(a.hash(), deprecated.hash());
    assert!(
        deprecated
            .event_def("v1.ItemAdded")
            .unwrap()
            .is_deprecated()
    );
}

#[test]
fn test_decode_args_names_event_and_field() {
    let schema = base().build().unwrap();
    schema
        .decode_args("v1.ItemAdded", &json!({"id": "a"}))
        .unwrap();
    let error = schema
        .decode_args("v1.ItemAdded", &json!({"id": 7}))
        .unwrap_err();
    match &error {
        MaterializeError::InvalidArgs { event, path, .. } => {
            assert_eq!(event, "v1.ItemAdded");
            assert_eq!(path, "id");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(error.to_string().contains("v1.ItemAdded"));
    // From JSON text: the same error, and the same acceptance.
    let from_text = schema
        .decode_args_json("v1.ItemAdded", r#"{"id": 7}"#)
        .unwrap_err();
    assert_eq!(from_text.to_string(), error.to_string());
    schema
        .decode_args_json("v1.ItemAdded", r#"{"id":"a"}"#)
        .unwrap();
    let error = schema.decode_args("v1.Nope", &json!({})).unwrap_err();
    assert!(matches!(error, MaterializeError::UnknownEvent { name } if name == "v1.Nope"));
}
