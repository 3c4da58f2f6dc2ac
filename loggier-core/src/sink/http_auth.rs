//! Credentials shared by the HTTP sinks that speak to third-party receivers (Loki,
//! Vector): HTTP basic auth or a bearer token, turned into one `Authorization` header.

use base64::Engine as _;
use reqwest::header::HeaderValue;

use crate::error::ConfigError;

/// How a sink authenticates. `Debug` never prints the secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) enum HttpAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// `Authorization: Basic base64(user:password)` (RFC 7617).
    Basic { user: String, password: String },
    /// `Authorization: Bearer <token>` (RFC 6750).
    Bearer(String),
}

impl std::fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpAuth::None => f.write_str("None"),
            HttpAuth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &REDACTED)
                .finish(),
            HttpAuth::Bearer(_) => f.debug_tuple("Bearer").field(&REDACTED).finish(),
        }
    }
}

const REDACTED: &str = "[FILTERED]";

impl HttpAuth {
    /// The `Authorization` header value, marked sensitive so `Debug` output of a
    /// header map hides it. `None` for [`HttpAuth::None`].
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for `setting` when the credentials contain bytes that
    /// cannot appear in a header (CR, LF, other control characters), or when a basic
    /// auth user name contains `:` (RFC 7617 §2).
    #[cfg_attr(
        not(any(feature = "http-ingest", feature = "loki", feature = "vector")),
        allow(dead_code)
    )]
    pub(crate) fn header_value(
        &self,
        setting: &'static str,
    ) -> Result<Option<HeaderValue>, ConfigError> {
        let text = match self {
            HttpAuth::None => return Ok(None),
            HttpAuth::Basic { user, password } => {
                if user.contains(':') {
                    return Err(ConfigError::invalid(
                        setting,
                        user,
                        "a basic auth user name cannot contain ':'",
                    ));
                }
                let raw = format!("{user}:{password}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            HttpAuth::Bearer(token) => {
                if token.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        setting,
                        "\"\"",
                        "a bearer token cannot be empty",
                    ));
                }
                format!("Bearer {}", token.trim())
            }
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            ConfigError::invalid(
                setting,
                REDACTED,
                "credentials contain characters not allowed in an HTTP header",
            )
        })?;
        value.set_sensitive(true);
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer_headers_and_redacted_debug() {
        let basic = HttpAuth::Basic {
            user: "Aladdin".into(),
            password: "open sesame".into(),
        };
        // RFC 7617 §2 example.
        assert_eq!(
            basic.header_value("auth").expect("valid").expect("some"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert!(!format!("{basic:?}").contains("sesame"));
        let bearer = HttpAuth::Bearer("tok-123".into());
        let v = bearer.header_value("auth").expect("valid").expect("some");
        assert_eq!(v, "Bearer tok-123");
        assert!(v.is_sensitive());
        assert!(!format!("{bearer:?}").contains("tok-123"));
        assert_eq!(HttpAuth::None.header_value("auth").expect("ok"), None);
    }

    #[test]
    fn bad_credentials_are_config_errors() {
        let err = HttpAuth::Basic {
            user: "a:b".into(),
            password: "p".into(),
        }
        .header_value("loki_basic_auth")
        .expect_err("colon in user");
        assert_eq!(err.setting(), "loki_basic_auth");
        let err = HttpAuth::Bearer("line\nbreak".into())
            .header_value("loki_bearer_token")
            .expect_err("newline");
        assert!(!err.to_string().contains("break"), "{err}");
        assert!(
            HttpAuth::Bearer("  ".into())
                .header_value("loki_bearer_token")
                .is_err()
        );
    }
}
