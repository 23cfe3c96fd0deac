//! The auth hook: a function of the store id, the client's `syncPayload` and the request
//! headers that accepts or refuses a connection or a request, and [`token_auth`], a hook
//! comparing a token in constant time.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use eventsync_backends::StoreId;
use serde_json::Value;
use subtle::ConstantTimeEq;

/// What an auth hook sees.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The store the client asks for (already validated).
    pub store_id: &'a StoreId,
    /// The client's `syncPayload`, decoded from the URL (`None` when absent).
    pub payload: Option<&'a Value>,
    /// The HTTP request's headers (the upgrade request's, for a WebSocket).
    pub headers: &'a HeaderMap,
}

/// Why a request was refused: a WebSocket is closed with `reason`, an HTTP request gets
/// `status` (401 or 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRefusal {
    /// The HTTP status of the refusal.
    pub status: StatusCode,
    /// Why, without secrets.
    pub reason: String,
}

/// The hook's type.
type AuthFn = dyn Fn(&AuthRequest<'_>) -> Result<(), AuthRefusal> + Send + Sync;

/// An auth hook: accepts or refuses each connection and request.
#[derive(Clone)]
pub struct Auth(Arc<AuthFn>);

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(..)")
    }
}

impl Auth {
    /// A hook from a function.
    pub fn new(
        hook: impl Fn(&AuthRequest<'_>) -> Result<(), AuthRefusal> + Send + Sync + 'static,
    ) -> Auth {
        Auth(Arc::new(hook))
    }

    /// Runs the hook.
    pub fn check(&self, request: &AuthRequest<'_>) -> Result<(), AuthRefusal> {
        (self.0)(request)
    }
}

/// A hook that wants `syncPayload.authToken == token` (compared in constant time), or an
/// `Authorization: Bearer <token>` header; for `store: Some(id)` it grants that store only.
pub fn token_auth(token: impl Into<String>, store: Option<StoreId>) -> Auth {
    let token = token.into();
    Auth::new(move |request| {
        let from_payload = request
            .payload
            .and_then(|p| p.get("authToken"))
            .and_then(Value::as_str);
        let from_header = request
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(given) = from_payload.or(from_header) else {
            return Err(AuthRefusal {
                status: StatusCode::UNAUTHORIZED,
                reason: "no auth token (syncPayload.authToken)".into(),
            });
        };
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return Err(AuthRefusal {
                status: StatusCode::UNAUTHORIZED,
                reason: "wrong auth token".into(),
            });
        }
        match &store {
            Some(granted) if granted != request.store_id => Err(AuthRefusal {
                status: StatusCode::FORBIDDEN,
                reason: format!("the token does not grant store {}", request.store_id),
            }),
            _ => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_token_auth_accepts_the_token_and_refuses_the_rest() {
        let store = StoreId::new("s1").unwrap();
        let other = StoreId::new("s2").unwrap();
        let headers = HeaderMap::new();
        let auth = token_auth("sekrit", Some(store.clone()));
        let good = serde_json::json!({"authToken": "sekrit"});
        let bad = serde_json::json!({"authToken": "sekri"});
        let ask = |store_id, payload| {
            auth.check(&AuthRequest {
                store_id,
                payload,
                headers: &headers,
            })
        };
        assert_eq!(ask(&store, Some(&good)), Ok(()));
        let refused = ask(&store, Some(&bad)).unwrap_err();
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert!(!refused.reason.contains("sekri"));
        assert_eq!(
            ask(&store, None).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ask(&other, Some(&good)).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        let all = token_auth("sekrit", None);
        let mut bearer = HeaderMap::new();
        bearer.insert("authorization", "Bearer sekrit".parse().unwrap());
        assert_eq!(
            all.check(&AuthRequest {
                store_id: &other,
                payload: None,
                headers: &bearer
            }),
            Ok(())
        );
    }
}
