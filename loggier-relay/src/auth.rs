//! API keys: scopes, service restrictions, constant-time lookup.

use axum::http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Send records: `/log`, `/logs`, `/api/ingest`, `/api/v1/loki/push`.
    Ingest,
    /// Read from Loki: `/api/v1/loki/query`, `query/simple`, `labels`, `labels/{name}/values`.
    Query,
}

impl Scope {
    /// `ingest` or `query`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Query => "query",
        }
    }
}

/// One API key.
#[derive(Clone)]
pub struct ApiKey {
    secret: Vec<u8>,
    /// Stable label for metrics and rate limiting: `key-<n>` in configuration order
    /// (the secret itself never leaves this struct).
    pub id: String,
    /// May send records.
    pub ingest: bool,
    /// May query Loki.
    pub query: bool,
    /// When set, records must name one of these services.
    pub services: Option<Vec<String>>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("secret", &"[FILTERED]")
            .field("ingest", &self.ingest)
            .field("query", &self.query)
            .field("services", &self.services)
            .finish()
    }
}

impl ApiKey {
    /// A key with `secret` and the given scopes, for any service.
    pub fn new(secret: impl Into<String>, ingest: bool, query: bool) -> Self {
        ApiKey {
            secret: secret.into().into_bytes(),
            id: String::new(),
            ingest,
            query,
            services: None,
        }
    }

    /// Limits the key to records of these services.
    #[must_use]
    pub fn for_services<I, S>(mut self, services: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.services = Some(services.into_iter().map(Into::into).collect());
        self
    }

    /// Whether this key may write records of `service` (`None`: the record names no
    /// service, which a service-limited key may not send).
    pub fn allows_service(&self, service: Option<&str>) -> bool {
        match (&self.services, service) {
            (None, _) => true,
            (Some(list), Some(s)) => list.iter().any(|x| x == s),
            (Some(_), None) => false,
        }
    }

    fn allows(&self, scope: Scope) -> bool {
        match scope {
            Scope::Ingest => self.ingest,
            Scope::Query => self.query,
        }
    }
}

/// The configured keys. Empty means open mode: every request is allowed.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<ApiKey>,
}

/// Who made a request. Also the key of the per-caller rate limit (one bucket per
/// key, one shared by anonymous callers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// Open mode (no keys configured).
    Anonymous,
    /// A key, by index into the key set.
    Key(usize),
}

impl KeySet {
    /// A key set; ids are assigned as `key-1`, `key-2`, … in order.
    pub fn new(keys: Vec<ApiKey>) -> Self {
        let keys = keys
            .into_iter()
            .enumerate()
            .map(|(i, mut k)| {
                k.id = format!("key-{}", i + 1);
                k
            })
            .collect();
        KeySet { keys }
    }

    /// `true` when no key is configured (open mode).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key of `caller` (`None` for anonymous callers).
    pub fn key(&self, caller: &Caller) -> Option<&ApiKey> {
        match caller {
            Caller::Anonymous => None,
            Caller::Key(i) => self.keys.get(*i),
        }
    }

    /// Identifies the caller from `Authorization: Bearer <key>` or `X-API-Key: <key>`
    /// and checks `scope`. Every configured key is compared, in constant time, so the
    /// time taken does not depend on which key (if any) matched or how many leading
    /// bytes were right.
    ///
    /// # Errors
    /// 401 `missing_key` / `invalid_key`; 403 `out_of_scope` when the key lacks `scope`.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Caller, ApiError> {
        if self.keys.is_empty() {
            return Ok(Caller::Anonymous);
        }
        let presented = presented_key(headers).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_key",
                "an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>",
            )
        })?;
        let mut found: Option<usize> = None;
        for (i, k) in self.keys.iter().enumerate() {
            let eq: bool = k.secret.as_slice().ct_eq(presented.as_bytes()).into();
            if eq && found.is_none() {
                found = Some(i);
            }
        }
        let Some(i) = found else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_key",
                "the API key is not valid",
            ));
        };
        if !self.keys[i].allows(scope) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "out_of_scope",
                format!("this API key has no {} scope", scope.as_str()),
            ));
        }
        Ok(Caller::Key(i))
    }

    /// Checks that `caller` may write records of `service`.
    ///
    /// # Errors
    /// 403 `service_not_allowed` naming the service and the path of the record.
    pub fn check_service(
        &self,
        caller: &Caller,
        service: Option<&str>,
        path: &str,
    ) -> Result<(), ApiError> {
        let Some(key) = self.key(caller) else {
            return Ok(());
        };
        if key.allows_service(service) {
            return Ok(());
        }
        let allowed = key.services.as_deref().unwrap_or_default().join(", ");
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "service_not_allowed",
            match service {
                Some(s) => format!("this API key may not send records of service {s:?} (allowed: {allowed})"),
                None => format!("this API key is limited to services {allowed}; the record must name one in \"service\""),
            },
        )
        .at(path))
    }
}

fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim().to_string());
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Parses a key list: entries separated by `,` or new lines, each
/// `<secret>[@service|service…]`; `#` starts a comment line in files.
pub fn parse_key_list(spec: &str, ingest: bool, query: bool) -> Vec<ApiKey> {
    spec.split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.starts_with('#'))
        .map(|e| match e.split_once('@') {
            Some((secret, svcs)) => ApiKey::new(secret.trim(), ingest, query).for_services(
                svcs.split('|')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            None => ApiKey::new(e, ingest, query),
        })
        .collect()
}

/// Parses a key file: one key per line, `<scopes> <secret> [service,service…]`,
/// scopes `ingest`, `query` or `ingest,query`; blank lines and `#` comments ignored.
///
/// # Errors
/// A message naming the line for an unknown scope or a missing secret.
pub fn parse_key_file(text: &str) -> Result<Vec<ApiKey>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let scopes = parts.next().unwrap_or_default();
        let secret = parts
            .next()
            .ok_or_else(|| format!("line {}: expected `<scopes> <key> [services]`", n + 1))?;
        let mut ingest = false;
        let mut query = false;
        for s in scopes.split(',') {
            match s {
                "ingest" => ingest = true,
                "query" => query = true,
                other => {
                    return Err(format!(
                        "line {}: unknown scope {other:?} (expected ingest or query)",
                        n + 1
                    ));
                }
            }
        }
        let mut key = ApiKey::new(secret, ingest, query);
        if let Some(svcs) = parts.next() {
            key = key.for_services(svcs.split(',').filter(|s| !s.is_empty()));
        }
        if parts.next().is_some() {
            return Err(format!("line {}: too many fields", n + 1));
        }
        out.push(key);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_and_x_api_key_and_scopes() {
        let set = KeySet::new(vec![
            ApiKey::new("ing", true, false),
            ApiKey::new("qry", false, true),
        ]);
        let mut h = HeaderMap::new();
        assert_eq!(
            set.authorize(&h, Scope::Ingest).expect_err("none").code,
            "missing_key"
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer ing"),
        );
        assert_eq!(set.authorize(&h, Scope::Ingest), Ok(Caller::Key(0)));
        assert_eq!(
            set.authorize(&h, Scope::Query).expect_err("scope").code,
            "out_of_scope"
        );
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("qry"));
        assert_eq!(set.authorize(&h, Scope::Query), Ok(Caller::Key(1)));
        h.insert("x-api-key", HeaderValue::from_static("qr"));
        assert_eq!(
            set.authorize(&h, Scope::Query).expect_err("bad").code,
            "invalid_key"
        );
    }

    #[test]
    fn key_file_and_list() {
        let keys = parse_key_file("# keys\ningest,query k1\ningest k2 app,web\n").expect("ok");
        assert!(keys[0].ingest && keys[0].query);
        assert_eq!(
            keys[1].services.as_deref(),
            Some(&["app".to_string(), "web".to_string()][..])
        );
        assert!(parse_key_file("admin k3").is_err());
        let l = parse_key_list("a, b@x|y", true, false);
        assert_eq!(l.len(), 2);
        assert!(l[1].allows_service(Some("y")) && !l[1].allows_service(Some("z")));
        assert!(!format!("{:?}", l[0]).contains("\"a\""));
    }
}
