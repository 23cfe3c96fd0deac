//! STUB: the schema (tables, event definitions, materializers) is being implemented.

/// A store's schema.
#[derive(Debug, Default)]
pub struct Schema {}
