//! Config file text and backend URLs, with no network and nothing written to disk:
//! `Config::from_file_text` on arbitrary text, then the URL it names (and the input itself,
//! as a URL) through `open_object_store`, `redact_url` and `validate_store_id`.
//!
//! Checked: no panic; a secret read from the file never shows in the `Debug` of the config;
//! a URL's password never survives `redact_url`. URLs that would create a folder (`file://`
//! and relative paths) are not opened.

#![no_main]

use std::path::Path;

use eventsync_backends::{OpenOptions, open_object_store, redact_url};
use eventsync_cli::config::Config;
use libfuzzer_sys::fuzz_target;

/// True when opening `url` would touch the local disk (folders are created on open).
fn is_local(url: &str) -> bool {
    !url.contains("://") || url.trim_start().to_ascii_lowercase().starts_with("file:")
}

fn check_url(url: &str, options: &OpenOptions) {
    let redacted = redact_url(url);
    if let Ok(parsed) = url::Url::parse(&redacted) {
        assert!(parsed.password().is_none(), "{url:?} -> {redacted:?}");
        assert!(parsed.username().is_empty(), "{url:?} -> {redacted:?}");
    }
    // The userinfo `:password@`, unless the URL shows the same text elsewhere (in its path,
    // say), where it is no credential (fuzz/regressions/config_url/userinfo-in-path).
    let userinfo = url::Url::parse(url)
        .ok()
        .and_then(|parsed| parsed.password().map(|password| format!(":{password}@")))
        .filter(|userinfo| !redacted.contains(userinfo.as_str()));
    let _ = eventsync_backends::store_id::validate_store_id(url);
    if !is_local(url)
        && let Err(error) = open_object_store(url, options)
        && let Some(userinfo) = &userinfo
    {
        let message = error.to_string();
        assert!(!message.contains(userinfo.as_str()), "{message}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_url(text, &OpenOptions::default());
    let Ok(config) = Config::from_file_text(Path::new("fuzz.toml"), text) else {
        return;
    };
    let debug = format!("{config:?}");
    let mut without = config.clone();
    without.backend_options.s3.access_key_id = None;
    without.backend_options.s3.secret_access_key = None;
    without.backend_options.s3.session_token = None;
    let debug_without = format!("{without:?}");
    for secret in [
        &config.backend_options.s3.access_key_id,
        &config.backend_options.s3.secret_access_key,
        &config.backend_options.s3.session_token,
    ]
    .into_iter()
    .flatten()
    {
        if secret.len() >= 4 && !debug_without.contains(secret.as_str()) {
            assert!(!debug.contains(secret.as_str()), "secret in {debug}");
        }
    }
    check_url(&config.backend, &config.backend_options);
});
