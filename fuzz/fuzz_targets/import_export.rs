//! The export file reader (`eventsync::export::parse_export`) on arbitrary bytes: never
//! panics; whatever it accepts is numbered from e1 without gaps, has the count it declares,
//! and survives a write/read round trip unchanged.

#![no_main]

use eventsync::export::{ExportFile, parse_export};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = parse_export(data) else {
        return;
    };
    assert_eq!(file.event_count, file.events.len() as u64);
    for (index, event) in file.events.iter().enumerate() {
        assert_eq!(event.seq_num.0, index as u64 + 1);
        assert_eq!(event.parent_seq_num.0, index as u64);
    }
    let written = serde_json::to_vec(&file).expect("an export file serializes");
    let again: ExportFile = parse_export(&written).expect("a written export file reads back");
    assert_eq!(again, file);
});
