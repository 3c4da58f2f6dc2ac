//! [`EndpointOptions`]: where a network sink sends and how it authenticates — the URL,
//! credentials, request timeout, tenant and extra headers shared by the HTTP ingest,
//! Loki (push and query) and Vector builders. Credentials live here only, so their
//! validation and their redaction in `Debug` output exist once.

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use super::http_auth::HttpAuth;
use super::http_transport::DEFAULT_HTTP_TIMEOUT;
use crate::error::ConfigError;

/// Shown instead of secrets in errors and `Debug` output.
const REDACTED: &str = "[FILTERED]";

/// Where a network sink sends and how it authenticates.
///
/// Every network sink builder (`HttpSinkBuilder`, `LokiSinkBuilder`,
/// `LokiClientBuilder`, `VectorSinkBuilder`) keeps one of these; their `api_key`,
/// `basic_auth`, `bearer_token`, `timeout`, `tenant_id` and `header` setters write
/// into it, and `endpoint(options)` replaces it whole.
///
/// Defaults: no credentials, [`DEFAULT_HTTP_TIMEOUT`] (5 s), no tenant, no extra
/// headers.
///
/// # Security
/// `Debug` output never shows a password, token, header value or the password part of
/// a URL (`https://user:[FILTERED]@host/`). Credentials written into the URL
/// (`https://user:secret@host/`) are taken out of it and sent as HTTP basic auth
/// (RFC 7617), so the URL a sink reports and logs never carries them; setting them
/// both in the URL and with [`basic_auth`](EndpointOptions::basic_auth) /
/// [`bearer_token`](EndpointOptions::bearer_token) is a configuration error. Header
/// values set with [`header`](EndpointOptions::header) are treated as secrets too
/// (marked sensitive in the request's header map).
///
/// # Example
/// ```
/// # #[cfg(feature = "loki")]
/// # fn main() -> Result<(), loggier_core::ConfigError> {
/// use std::time::Duration;
/// use loggier_core::sink::endpoint::EndpointOptions;
/// use loggier_core::LokiSink;
///
/// let loki = EndpointOptions::new("https://logs.example.com")
///     .basic_auth("tenant-7", "s3cret")
///     .timeout(Duration::from_secs(3));
/// assert!(!format!("{loki:?}").contains("s3cret"));
/// let sink = LokiSink::builder("").endpoint(loki).build()?;
/// assert_eq!(sink.push_url(), "https://logs.example.com/loki/api/v1/push");
/// # Ok(()) }
/// # #[cfg(not(feature = "loki"))]
/// # fn main() {}
/// ```
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct EndpointOptions {
    url: String,
    pub(crate) auth: HttpAuth,
    timeout: Duration,
    tenant: Option<String>,
    headers: Vec<(String, String)>,
}

impl fmt::Debug for EndpointOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointOptions")
            .field("url", &redact_url(&self.url))
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("tenant", &self.tenant)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| (k.as_str(), REDACTED))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl EndpointOptions {
    /// Options for `url` with the defaults (no credentials, 5 s timeout, no tenant, no
    /// extra headers). The URL is checked by the sink's `build`.
    pub fn new(url: impl Into<String>) -> Self {
        EndpointOptions {
            url: url.into(),
            auth: HttpAuth::None,
            timeout: DEFAULT_HTTP_TIMEOUT,
            tenant: None,
            headers: Vec::new(),
        }
    }

    /// The URL as given.
    ///
    /// # Security
    /// It may still carry `user:password@` credentials if they were written into it;
    /// the built sink's URL never does.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// HTTP basic auth (`Authorization: Basic base64(user:password)`, RFC 7617).
    /// Replaces a bearer token. The user name may not contain `:`.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = HttpAuth::Basic {
            user: user.into(),
            password: password.into(),
        };
        self
    }

    /// `Authorization: Bearer <token>` (RFC 6750). Replaces basic auth. Surrounding
    /// whitespace is trimmed; an empty token is a configuration error.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = HttpAuth::Bearer(token.into());
        self
    }

    /// `true` when basic auth or a bearer token is set.
    pub fn has_credentials(&self) -> bool {
        self.auth != HttpAuth::None
    }

    /// Per-request timeout (connect, send and read of the reply). Default 5 s
    /// ([`DEFAULT_HTTP_TIMEOUT`]); zero is a configuration error.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// The tenant, sent in the sink's tenant header (Loki: `X-Scope-OrgID`). Sinks
    /// without a tenant header refuse it at `build`. Default: none.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The tenant, when set.
    pub fn tenant_id(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Adds a header sent on every request (e.g. the key a proxy in front of the
    /// receiver expects). Repeating a name sends the header several times.
    ///
    /// # Security
    /// The value is treated as a secret: marked sensitive, never shown in errors or
    /// `Debug` output.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Checks everything and turns it into the request URL and fixed headers, naming
    /// `names`' settings in errors.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for: a URL that does not parse, is not `http`/`https`
    /// or has no host (`names.url`; the value is shown with its password redacted);
    /// credentials both in the URL and set explicitly, or that cannot go in a header
    /// (`names.auth`); a tenant on a sink without a tenant header, or one that cannot
    /// go in a header (`names.tenant`); a bad extra header name or value
    /// (`names.headers`, value never shown).
    #[cfg_attr(
        not(any(feature = "http-ingest", feature = "loki", feature = "vector")),
        allow(dead_code)
    )]
    pub(crate) fn resolve(&self, names: &EndpointNames) -> Result<ResolvedEndpoint, ConfigError> {
        let shown = redact_url(&self.url);
        let mut url = reqwest::Url::parse(self.url.trim())
            .map_err(|e| ConfigError::invalid(names.url, &shown, format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::invalid(
                names.url,
                &shown,
                "scheme must be http or https",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::invalid(names.url, &shown, "has no host"));
        }
        let mut auth = self.auth.clone();
        if !url.username().is_empty() || url.password().is_some() {
            if auth != HttpAuth::None {
                return Err(ConfigError::invalid(
                    names.auth,
                    REDACTED,
                    "credentials are both in the URL and set with basic_auth/bearer_token; \
                     keep one",
                ));
            }
            auth = HttpAuth::Basic {
                user: percent_decode(url.username()),
                password: percent_decode(url.password().unwrap_or("")),
            };
            // Cannot fail for http(s) URLs with a host.
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }

        let mut headers = HeaderMap::new();
        for (i, (k, v)) in self.headers.iter().enumerate() {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                ConfigError::invalid(
                    names.headers,
                    REDACTED,
                    format!("header {} has an invalid name {k:?}", i + 1),
                )
            })?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                ConfigError::invalid(
                    names.headers,
                    REDACTED,
                    format!("the value of header {k:?} contains characters HTTP cannot carry"),
                )
            })?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        if let Some(tenant) = &self.tenant {
            let Some(header) = names.tenant_header else {
                return Err(ConfigError::invalid(
                    names.tenant,
                    tenant,
                    "this sink has no tenant header; use header() for a custom one",
                ));
            };
            let v = HeaderValue::from_str(tenant)
                .map_err(|_| ConfigError::invalid(names.tenant, tenant, "not a valid header"))?;
            headers.insert(HeaderName::from_static(header), v);
        }
        if let Some(v) = auth.header_value(names.auth)? {
            headers.insert(AUTHORIZATION, v);
        }
        Ok(ResolvedEndpoint {
            url,
            headers,
            timeout: self.timeout,
        })
    }
}

/// The setting names a sink reports in [`ConfigError`]s, and its tenant header.
#[cfg_attr(
    not(any(feature = "http-ingest", feature = "loki", feature = "vector")),
    allow(dead_code)
)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct EndpointNames {
    pub(crate) url: &'static str,
    pub(crate) auth: &'static str,
    pub(crate) tenant: &'static str,
    /// Lower-case header carrying the tenant; `None` when the sink has none.
    pub(crate) tenant_header: Option<&'static str>,
    pub(crate) headers: &'static str,
}

/// What [`EndpointOptions::resolve`] produces: a checked URL without credentials, the
/// fixed headers (auth and extra headers marked sensitive) and the timeout.
#[cfg_attr(
    not(any(feature = "http-ingest", feature = "loki", feature = "vector")),
    allow(dead_code)
)]
#[derive(Debug)]
pub(crate) struct ResolvedEndpoint {
    pub(crate) url: reqwest::Url,
    pub(crate) headers: HeaderMap,
    pub(crate) timeout: Duration,
}

/// `raw` with the password of a `scheme://user:password@host` URL replaced by
/// `[FILTERED]` (text that is not such a URL is returned as is).
pub(crate) fn redact_url(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://") else {
        return raw.to_string();
    };
    let rest = &raw[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return raw.to_string();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    format!(
        "{}{user}:{REDACTED}@{}",
        &raw[..scheme_end + 3],
        &rest[at + 1..]
    )
}

/// Decodes `%XX` escapes of URL userinfo with the `percent-encoding` crate (the
/// one `url` uses): invalid escapes are kept as they are, invalid UTF-8 replaced.
/// Unlike form decoding, `+` stays `+`.
#[cfg_attr(
    not(any(feature = "http-ingest", feature = "loki", feature = "vector")),
    allow(dead_code)
)]
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: EndpointNames = EndpointNames {
        url: "x_url",
        auth: "x_auth",
        tenant: "x_tenant",
        tenant_header: Some("x-scope-orgid"),
        headers: "x_headers",
    };

    #[test]
    fn userinfo_is_percent_decoded_but_plus_stays_plus() {
        let ep = EndpointOptions::new("http://us%40er:p%3Ass+w%ZZ@h:1/");
        let r = ep.resolve(&NAMES).expect("resolves");
        let auth = r.headers.get(AUTHORIZATION).expect("basic auth");
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&auth.as_bytes()["Basic ".len()..])
            .expect("base64");
        assert_eq!(decoded, b"us@er:p:ss+w%ZZ");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://u:p%40ss@h.example:8/x?y"),
            "https://u:[FILTERED]@h.example:8/x?y"
        );
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("http://tok@h/"), "http://tok:[FILTERED]@h/");
    }

    #[test]
    fn userinfo_becomes_basic_auth_and_leaves_the_url() {
        let r = EndpointOptions::new("https://al%3Ai:open%20sesame@h.example/p")
            .resolve(&NAMES)
            .expect_err("':' in a basic auth user");
        assert_eq!(r.setting(), "x_auth");
        let r = EndpointOptions::new("https://Aladdin:open%20sesame@h.example/p")
            .resolve(&NAMES)
            .expect("valid");
        assert_eq!(r.url.as_str(), "https://h.example/p");
        assert_eq!(
            r.headers[AUTHORIZATION],
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert!(r.headers[AUTHORIZATION].is_sensitive());
        let e = EndpointOptions::new("https://a:b@h.example/")
            .bearer_token("t")
            .resolve(&NAMES)
            .expect_err("both");
        assert_eq!(e.setting(), "x_auth");
        assert!(!e.to_string().contains(":b@"), "{e}");
    }

    #[test]
    fn errors_name_the_setting_and_never_echo_secrets() {
        let e = EndpointOptions::new("ftp://u:hunter2@h/")
            .resolve(&NAMES)
            .expect_err("scheme");
        assert_eq!(e.setting(), "x_url");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = EndpointOptions::new("http://h/")
            .header("x-k", "line\nbreak-secret")
            .resolve(&NAMES)
            .expect_err("value");
        assert_eq!(e.setting(), "x_headers");
        assert!(!e.to_string().contains("break-secret"), "{e}");
        let e = EndpointOptions::new("http://h/")
            .tenant("t")
            .resolve(&EndpointNames {
                tenant_header: None,
                ..NAMES
            })
            .expect_err("no tenant header");
        assert_eq!(e.setting(), "x_tenant");
        let r = EndpointOptions::new("http://h/")
            .tenant("team-a")
            .header("x-k", "v")
            .resolve(&NAMES)
            .expect("ok");
        assert_eq!(r.headers["x-scope-orgid"], "team-a");
        assert!(r.headers["x-k"].is_sensitive());
    }
}
