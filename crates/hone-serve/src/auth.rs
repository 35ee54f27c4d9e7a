//! Keys: the `Authorization: Bearer KEY` header read (the scheme in any case, as RFC 9110 says)
//! and compared with a configured key in constant time, so the time an answer takes does not
//! tell a client how much of a guess was right.
//!
//! Three keys, each optional and separate: the API key (`/v1/*` generation and models), the
//! admin key (adapter changes and the admin API: refused outright when none is configured, never
//! open) and the metrics key (`/metrics`, open when none is configured). `/health` needs none.

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use crate::error::{Result, ServeError};

/// The key a request sends as `Authorization: Bearer KEY` (`bearer`, `BEARER`, ... too).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, key) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

/// Whether `sent` is `key`, compared in time independent of where they differ.
pub fn key_matches(sent: Option<&str>, key: &str) -> bool {
    sent.is_some_and(|s| bool::from(s.as_bytes().ct_eq(key.as_bytes())))
}

/// A request must send `key` when one is configured (the API key, the metrics key).
pub fn check_key(headers: &HeaderMap, key: Option<&str>) -> Result<()> {
    match key {
        None => Ok(()),
        Some(k) if key_matches(bearer(headers), k) => Ok(()),
        Some(_) => Err(ServeError::Unauthorized(
            "a valid API key is required (Authorization: Bearer KEY)".into(),
        )),
    }
}

/// A request that changes what the server serves must send the admin key, and a server with
/// no admin key refuses such requests (403) rather than leaving them open.
pub fn check_admin(headers: &HeaderMap, admin_key: Option<&str>, what: &str) -> Result<()> {
    let Some(key) = admin_key else {
        return Err(ServeError::Forbidden(format!(
            "{what} is off: start hone serve with --admin-key-env VAR (the API key does not open it)"
        )));
    };
    if key_matches(bearer(headers), key) {
        Ok(())
    } else {
        Err(ServeError::Unauthorized(
            "a valid admin key is required (Authorization: Bearer KEY)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        for auth in ["Bearer k1", "bearer k1", "BEARER k1", "  BeArEr   k1 "] {
            assert_eq!(bearer(&with(auth)), Some("k1"), "{auth}");
        }
        for auth in ["Basic k1", "Bearerk1", "Bearer ", "k1"] {
            assert_eq!(bearer(&with(auth)), None, "{auth}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn keys_match_only_when_equal() {
        assert!(key_matches(Some("s3cret"), "s3cret"));
        for sent in [
            Some("s3cre"),
            Some("s3cret!"),
            Some("S3cret"),
            Some(""),
            None,
        ] {
            assert!(!key_matches(sent, "s3cret"), "{sent:?}");
        }
    }

    #[test]
    fn no_admin_key_refuses_rather_than_opens() {
        let e = check_admin(&with("Bearer anything"), None, "adapter loading").unwrap_err();
        assert!(matches!(e, ServeError::Forbidden(_)), "{e}");
        assert!(e.to_string().contains("--admin-key-env"), "{e}");
        let e = check_admin(&with("Bearer api"), Some("adm"), "x").unwrap_err();
        assert!(matches!(e, ServeError::Unauthorized(_)), "{e}");
        check_admin(&with("bearer adm"), Some("adm"), "x").unwrap();
    }
}
