//! `EventSeq::from_str` on arbitrary text: never panics, and whatever parses prints back to
//! a string that parses to the same number (`e{global}[.{client}][r{generation}]`).

#![no_main]

use std::str::FromStr;

use eventsync::EventSeq;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match EventSeq::from_str(text) {
        Ok(seq) => {
            let printed = seq.to_string();
            assert_eq!(
                EventSeq::from_str(&printed),
                Ok(seq),
                "{text:?} -> {printed:?}"
            );
        }
        Err(error) => {
            // The message names the input (escaped) and is one line.
            let message = error.to_string();
            assert!(!message.contains('\n'), "{message}");
        }
    }
    // The serde form is the same text.
    let _ = serde_json::from_value::<EventSeq>(serde_json::Value::String(text.to_owned()));
});
