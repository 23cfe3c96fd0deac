//! The query every request is routed by: `storeId`, `transport` and the double-encoded
//! `payload` (form-decoded, then `decodeURIComponent`, then JSON).

use eventsync_backends::StoreId;
use percent_encoding::percent_decode_str;
use serde_json::Value;

/// Which transport a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Ws,
    Http,
}

/// A request's routing query, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncQuery {
    pub(crate) store_id: StoreId,
    pub(crate) transport: Transport,
    pub(crate) payload: Option<Value>,
}

/// Why a query is refused (answered with 400 and this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct QueryError(pub(crate) String);

/// Parses and checks the raw query string.
pub(crate) fn parse_query(raw: Option<&str>) -> Result<SyncQuery, QueryError> {
    let mut store_id = None;
    let mut transport = None;
    let mut payload = None;
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "storeId" => store_id = Some(value.into_owned()),
            "transport" => transport = Some(value.into_owned()),
            "payload" => payload = Some(value.into_owned()),
            _ => {}
        }
    }
    let store_id = store_id.ok_or_else(|| QueryError("the query has no storeId".into()))?;
    let store_id = StoreId::new(store_id).map_err(|e| QueryError(e.to_string()))?;
    let transport = match transport.as_deref() {
        Some("ws") => Transport::Ws,
        Some("http") => Transport::Http,
        Some(other) => {
            return Err(QueryError(format!(
                "unknown transport {:?}; use ws or http",
                other.escape_default().to_string()
            )));
        }
        None => return Err(QueryError("the query has no transport".into())),
    };
    let payload = match payload {
        None => None,
        Some(encoded) => {
            let text = percent_decode_str(&encoded)
                .decode_utf8()
                .map_err(|e| QueryError(format!("payload is not URI-encoded UTF-8: {e}")))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| QueryError(format!("payload is not JSON: {e}")))?,
            )
        }
    };
    Ok(SyncQuery {
        store_id,
        transport,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_query_decodes_the_double_encoded_payload() {
        let query = parse_query(Some(
            "storeId=store1&payload=%257B%2522authToken%2522%253A%2522demo-token%2522%257D&transport=ws",
        ))
        .unwrap();
        assert_eq!(query.store_id.as_str(), "store1");
        assert_eq!(query.transport, Transport::Ws);
        assert_eq!(
            query.payload,
            Some(serde_json::json!({"authToken": "demo-token"}))
        );
        let plain = parse_query(Some("transport=http&storeId=s")).unwrap();
        assert_eq!(plain.payload, None);
    }

    #[test]
    fn test_parse_query_refuses_bad_store_ids_and_transports() {
        for bad in [
            None,
            Some("transport=ws"),
            Some("storeId=..%2Fx&transport=ws"),
            Some("storeId=a%2Fb&transport=ws"),
            Some("storeId=s&transport=do-rpc"),
            Some("storeId=s"),
            Some("storeId=s&transport=ws&payload=%257B"),
        ] {
            assert!(parse_query(bad).is_err(), "{bad:?}");
        }
    }
}
