//! Masking of secrets before a record leaves the process.
//!
//! # Security
//! The worker masks every record before any sink encodes it: the message, context
//! fields (nested objects and arrays included), HTTP query parameters, headers and
//! bodies (JSON, form and text, complete or cut at `max_body_size`).
//!
//! **Keys.** A key is compared after [folding](fold_key): lower-cased with every
//! character that is not a letter or digit removed, so `cardNumber`, `card-number`,
//! `card_number` and `CARD_NUMBER` are all `cardnumber`, and `X-Session-Id` is
//! `xsessionid`. A folded key is sensitive when it
//! - equals one of [`DEFAULT_SENSITIVE_KEYS`] or the configured `sensitive_fields`
//!   (folded the same way), or
//! - contains one of the markers in [`SENSITIVE_SUBSTRINGS`] (so `db_password`,
//!   `x-auth-token`, `jsessionid` and `client_secret` are masked), or
//! - ends with one of [`SENSITIVE_SUFFIXES`] (`dbPwd`).
//!
//! Short, ambiguous names (`auth`, `pass`, `pwd`, `sid`, `ssn`, `session`) only match
//! whole keys, so `author`, `passenger`, `classname` and `session_count` stay readable.
//!
//! **Values.** The value of a sensitive key is replaced by [`FILTERED`] whatever its
//! type. Text is scanned too ([`Masker::mask_text`]): a string that is a JSON document
//! is masked by key like structured data (a document cut short is scanned without
//! parsing, and a value cut off by the end is dropped); in any other text,
//! `key=value` pairs (query strings, form bodies, cookies, logfmt), `key: value`
//! lines and `<key>value</key>` elements with a sensitive key have their value
//! replaced. The message, every string in the context, header values and text bodies
//! go through that scan, so a URL with `?token=…` logged as a field is masked too.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde_json::Value;

use crate::record::{BodyContent, CapturedBody, ContextFields, Fields, Headers, Record};

/// The replacement for a masked value.
pub const FILTERED: &str = "[FILTERED]";

const QUOTED_FILTERED: &str = "\"[FILTERED]\"";

/// Keys masked by default when the whole [folded](fold_key) key equals one of them
/// (each entry is folded too, so its spelling here does not matter).
pub const DEFAULT_SENSITIVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "auth",
    "cookie",
    "cookies",
    "set_cookie",
    "session",
    "sessionid",
    "session_id",
    "session_key",
    "sid",
    "connect.sid",
    "jsessionid",
    "phpsessid",
    "csrftoken",
    "xsrf_token",
    "credit_card",
    "card_number",
    "cc_number",
    "card_no",
    "cvv",
    "cvv2",
    "cvc",
    "cvc2",
    "ssn",
    "private_key",
    "secret_key",
    "access_key",
    "x_api_key",
    "otp",
];

/// Markers that make any [folded](fold_key) key containing them sensitive, e.g.
/// `user_password`, `refresh_token`, `client_secret`, `X-Session-Id`, `creditCardNo`.
pub const SENSITIVE_SUBSTRINGS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "secretkey",
    "accesskey",
    "creditcard",
    "cardnumber",
    "sessionid",
    "sessid",
    "cookie",
    "authorization",
    "csrf",
    "xsrf",
    "cvv",
    "signature",
    "bearer",
    "jwt",
];

/// Endings that make a [folded](fold_key) key sensitive, e.g. `dbPwd`, `user_pwd`.
pub const SENSITIVE_SUFFIXES: &[&str] = &["pwd"];

/// A key lower-cased with everything but letters and digits removed: the form every
/// key is compared in (`Card-Number`, `cardNumber`, `card_number` → `cardnumber`).
pub fn fold_key(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Longest folded key judged without a heap allocation, in bytes.
const STACK_KEY_BYTES: usize = 64;

/// Longest text the prefilter of [`Masker::mask_text`] folds on the stack, in bytes;
/// longer text is always scanned in full.
const STACK_TEXT_BYTES: usize = 512;

/// Remembers a yes/no verdict per name (a key, a header name), so a name seen
/// before costs a hash lookup under a read lock instead of being decided again.
/// Names are often client-controlled: at most `capacity` names of at most
/// [`STACK_KEY_BYTES`] bytes are stored; past that, names are decided each time. A
/// clone starts empty.
pub(crate) struct NameMemo {
    verdicts: std::sync::RwLock<HashMap<Box<str>, bool, foldhash::fast::RandomState>>,
    capacity: usize,
}

impl NameMemo {
    /// An empty memo for at most `capacity` names.
    pub(crate) fn new(capacity: usize) -> Self {
        NameMemo {
            verdicts: std::sync::RwLock::new(HashMap::default()),
            capacity,
        }
    }

    /// The verdict for `name`: remembered, or `decide()` (then remembered when there
    /// is room).
    pub(crate) fn get_or(&self, name: &str, decide: impl FnOnce() -> bool) -> bool {
        if name.len() > STACK_KEY_BYTES {
            return decide();
        }
        if let Ok(memo) = self.verdicts.read() {
            if let Some(&known) = memo.get(name) {
                return known;
            }
        }
        let verdict = decide();
        if let Ok(mut memo) = self.verdicts.write() {
            if memo.len() < self.capacity {
                memo.insert(name.into(), verdict);
            }
        }
        verdict
    }
}

impl Clone for NameMemo {
    fn clone(&self) -> Self {
        NameMemo::new(self.capacity)
    }
}

impl std::fmt::Debug for NameMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameMemo")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Most keys a [`Masker`] remembers its verdict for.
const KEY_MEMO_CAPACITY: usize = 1024;

/// Decides which keys are secrets and masks them. Cheap to clone (a set of strings
/// and two shared automata; a clone's memo of verdicts starts empty).
#[derive(Debug, Clone)]
pub struct Masker {
    keys: HashSet<String>,
    /// `keys` grouped by length (index = length in bytes, up to
    /// [`STACK_KEY_BYTES`]), compared as bytes: no hashing for the usual short key.
    keys_by_len: Vec<Vec<Box<[u8]>>>,
    substrings: Vec<String>,
    /// Finds any of `substrings` in a folded key in one pass.
    markers: AhoCorasick,
    /// Finds any whole key, marker or suffix in folded text: text without one of
    /// them cannot hold a sensitive key, so [`Masker::mask_text`] skips its scan.
    prefilter: Option<AhoCorasick>,
    /// Verdicts of [`Masker::is_sensitive_key`] for keys seen before (context keys,
    /// header names and query parameter names repeat from record to record).
    memo: NameMemo,
    /// The identity of `keys` ([`key_set_id`]): two maskers with the same id mask
    /// exactly alike (the rules besides `keys` are fixed), so what one masked the
    /// other need not mask again.
    id: u64,
}

/// The identity of a key set: the same number for the same set of folded keys,
/// within this process. Maskers are built at configuration time, so a short list
/// under a lock is enough. A poisoned lock gives a number no other set gets (the
/// masker then never skips work another one did).
fn key_set_id(keys: &HashSet<String>) -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    static KNOWN: std::sync::Mutex<Vec<(Vec<String>, u64)>> = std::sync::Mutex::new(Vec::new());
    let fresh = || NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut sorted: Vec<String> = keys.iter().cloned().collect();
    sorted.sort_unstable();
    let Ok(mut known) = KNOWN.lock() else {
        return fresh();
    };
    if let Some((_, id)) = known.iter().find(|(k, _)| *k == sorted) {
        return *id;
    }
    let id = fresh();
    known.push((sorted, id));
    id
}

impl Default for Masker {
    fn default() -> Self {
        Masker::new(std::iter::empty::<&str>())
    }
}

impl Masker {
    /// The default keys plus `extra` (folded the same way; matched as whole keys).
    pub fn new<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut keys: HashSet<String> =
            DEFAULT_SENSITIVE_KEYS.iter().map(|k| fold_key(k)).collect();
        keys.extend(extra.into_iter().map(|k| fold_key(k.as_ref())));
        keys.remove("");
        let substrings: Vec<String> = SENSITIVE_SUBSTRINGS.iter().map(|k| fold_key(k)).collect();
        Masker {
            id: key_set_id(&keys),
            keys_by_len: by_len(&keys),
            markers: markers(&substrings),
            prefilter: prefilter(&keys, &substrings),
            keys,
            substrings,
            memo: NameMemo::new(KEY_MEMO_CAPACITY),
        }
    }

    /// This masker with `extra` keys added (folded the same way).
    #[must_use]
    pub fn with_keys<I, S>(mut self, extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let before = self.keys.len();
        self.keys
            .extend(extra.into_iter().map(|k| fold_key(k.as_ref())));
        self.keys.remove("");
        if self.keys.len() == before {
            // No new key: the same masker (keys are only ever added).
            return self;
        }
        self.id = key_set_id(&self.keys);
        self.keys_by_len = by_len(&self.keys);
        self.prefilter = prefilter(&self.keys, &self.substrings);
        self.memo = NameMemo::new(KEY_MEMO_CAPACITY);
        self
    }

    /// `true` when `key` names a secret (see the [module docs](self) for the rules).
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        self.memo.get_or(key, || self.decide_key(key))
    }

    /// [`Masker::is_sensitive_key`] without the memo.
    fn decide_key(&self, key: &str) -> bool {
        let mut buf = [0u8; STACK_KEY_BYTES];
        match fold_ascii(key, &mut buf) {
            Some(k) => self.is_sensitive_folded(k),
            None => self.is_sensitive_folded(fold_key(key).as_bytes()),
        }
    }

    /// [`Masker::is_sensitive_key`] for a key already [folded](fold_key).
    fn is_sensitive_folded(&self, k: &[u8]) -> bool {
        if k.is_empty() {
            return false;
        }
        let whole = match self.keys_by_len.get(k.len()) {
            Some(same_len) => same_len.iter().any(|s| **s == *k),
            None => std::str::from_utf8(k).is_ok_and(|k| self.keys.contains(k)),
        };
        whole
            || self.markers.is_match(k)
            || SENSITIVE_SUFFIXES.iter().any(|s| k.ends_with(s.as_bytes()))
    }

    /// `false` when `text` certainly holds no sensitive key: it is ASCII, has no
    /// escape that could spell a key differently (`%`, `\\`), and its folded form
    /// contains no sensitive key, marker or suffix. (Every key in the text is a
    /// stretch of it, and the folded form of a stretch is a stretch of the folded
    /// text, so a key that would be judged sensitive is always found.)
    fn may_hold_key(&self, text: &str) -> bool {
        let Some(prefilter) = &self.prefilter else {
            return true;
        };
        if text.len() > STACK_TEXT_BYTES
            || !text.is_ascii()
            || memchr::memchr2(b'%', b'\\', text.as_bytes()).is_some()
        {
            return true;
        }
        let mut buf = [0u8; STACK_TEXT_BYTES];
        let mut n = 0;
        for &b in text.as_bytes() {
            if b.is_ascii_alphanumeric() {
                buf[n] = b.to_ascii_lowercase();
                n += 1;
            }
        }
        prefilter.is_match(&buf[..n])
    }

    /// Masks sensitive keys in `fields`, recursing into nested objects and arrays, and
    /// scans every other string value with [`Masker::mask_text`].
    pub fn mask_fields(&self, fields: &mut Fields) {
        self.mask_fields_noting(fields);
    }

    /// [`Masker::mask_fields`], answering whether anything changed.
    fn mask_fields_noting(&self, fields: &mut Fields) -> bool {
        self.mask_members(fields.iter_mut())
    }

    /// Masks each (key, value) member: a sensitive key's value becomes the marker,
    /// any other value is masked by [`Masker::mask_value`]; `true` when anything
    /// changed. Shared by JSON objects and a record's [`ContextFields`].
    fn mask_members<'v, K: AsRef<str>>(
        &self,
        members: impl Iterator<Item = (K, &'v mut Value)>,
    ) -> bool {
        let mut changed = false;
        for (k, v) in members {
            if self.is_sensitive_key(k.as_ref()) {
                if v.as_str() != Some(FILTERED) {
                    *v = Value::String(FILTERED.to_string());
                    changed = true;
                }
            } else {
                changed |= self.mask_value_noting(v);
            }
        }
        changed
    }

    /// [`Masker::mask_fields`] for an HTTP side's [`Headers`]: a sensitive name's
    /// value becomes the marker, any other value is scanned with
    /// [`Masker::mask_text`].
    ///
    /// Headers already masked by a masker with the same keys (the HTTP capture masks
    /// them with the client's masker as it builds them) are left as they are: they
    /// carry that masker's stamp, which any later change to them removes.
    pub fn mask_headers(&self, headers: &mut Headers) {
        if headers.masked_by() == Some(self.id) {
            return;
        }
        headers.replace_values(|k, v| {
            if self.is_sensitive_key(k) {
                (v != FILTERED).then(|| FILTERED.to_string())
            } else {
                self.masked(v)
            }
        });
        headers.set_masked_by(self.id);
    }

    /// The masking of header values the HTTP capture does once it has masked the
    /// sensitive names itself: every value that is not [`FILTERED`] is scanned with
    /// [`Masker::mask_text`]. `headers` must hold no value of a name this masker finds
    /// sensitive other than [`FILTERED`] (the capture's names are a superset of the
    /// masker's); they are then exactly what [`Masker::mask_headers`] makes of them,
    /// and are stamped so.
    #[cfg(feature = "http-capture")]
    pub(crate) fn mask_header_values(&self, headers: &mut Headers) {
        // Every value is a stretch of the values' text: with no byte a masked form
        // needs anywhere in it, `mask_text` leaves each value as it is.
        if has_pair_marker(headers.values_text()) {
            headers.replace_values(|_, v| self.masked(v));
        }
        headers.set_masked_by(self.id);
    }

    /// [`Masker::mask_fields`] for a record's [`ContextFields`].
    pub fn mask_context(&self, fields: &mut ContextFields) {
        self.mask_members(fields.iter_mut());
    }

    /// Masks sensitive keys anywhere inside `value`; strings are scanned with
    /// [`Masker::mask_text`].
    pub fn mask_value(&self, value: &mut Value) {
        self.mask_value_noting(value);
    }

    /// [`Masker::mask_value`], answering whether anything changed (so a caller that
    /// only needs to know does not have to keep a copy to compare with).
    fn mask_value_noting(&self, value: &mut Value) -> bool {
        match value {
            Value::Object(map) => self.mask_fields_noting(map),
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| self.mask_value_noting(v) | changed),
            Value::String(s) => self.mask_string(s),
            _ => false,
        }
    }

    /// Masks secrets in free text: a JSON document (whole or cut off) by key, and in
    /// any text `key=value`, `key: value` and `<key>value</key>` with a sensitive
    /// key. Returns the text unchanged (borrowed) when nothing was masked.
    pub fn mask_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let separators = count_pair_markers(text, FEW_SEPARATORS + 1);
        if separators == 0 {
            return Cow::Borrowed(text);
        }
        let trimmed = text.trim_start();
        let document = trimmed.starts_with(['{', '[']);
        // Free text with a few separators (a message like `Request: GET /orders/7
        // - 200`): judging the key before each one is cheaper than folding and
        // scanning the whole text for the prefilter, and is the very scan the
        // prefilter would let through (the prefilter only ever skips it, never
        // masks), so the result is the same.
        if !document && separators <= FEW_SEPARATORS {
            return self.mask_pairs(text);
        }
        if !self.may_hold_key(text) {
            return Cow::Borrowed(text);
        }
        let structured = if document {
            match serde_json::from_str::<Value>(text) {
                Ok(mut v) if v.is_object() || v.is_array() => {
                    if !self.mask_value_noting(&mut v) {
                        return Cow::Borrowed(text);
                    }
                    return Cow::Owned(v.to_string());
                }
                _ => Some(self.mask_json_text(text)),
            }
        } else {
            None
        };
        match structured {
            Some(s) => match self.mask_pairs(&s) {
                Cow::Owned(o) => Cow::Owned(o),
                Cow::Borrowed(_) if s == text => Cow::Borrowed(text),
                Cow::Borrowed(_) => Cow::Owned(s),
            },
            None => self.mask_pairs(text),
        }
    }

    /// Masks sensitive members in JSON *text* that may be cut off or invalid (a
    /// truncated body): every `"key": value` whose key is sensitive gets its value
    /// replaced by `"[FILTERED]"`; a value cut off by the end of the text is dropped.
    /// Everything else is copied unchanged.
    pub fn mask_json_text(&self, text: &str) -> String {
        let b = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        let mut copied = 0;
        while i < b.len() {
            if b[i] != b'"' {
                i += 1;
                continue;
            }
            let key_start = i;
            let key_end = skip_string(b, i);
            // A string followed by ':' is a key.
            let mut j = key_end;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if key_end > b.len() || j >= b.len() || b[j] != b':' {
                i = key_end;
                continue;
            }
            let key_text = &text[key_start + 1..key_end.saturating_sub(1).max(key_start + 1)];
            j += 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if self.is_sensitive_key(&unescape_json_key(key_text)) {
                let value_end = skip_value(b, j);
                out.push_str(&text[copied..j]);
                out.push('"');
                out.push_str(FILTERED);
                out.push('"');
                copied = value_end.min(b.len());
                i = copied;
            } else {
                i = j;
            }
        }
        if copied < b.len() {
            out.push_str(&text[copied..]);
        }
        out
    }

    /// Masks sensitive fields of an `application/x-www-form-urlencoded` body or a
    /// query string, keeping the encoded form (`user=bob&password=[FILTERED]`); keys
    /// are percent-decoded before they are judged.
    pub fn mask_form_text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for (n, pair) in text.split('&').enumerate() {
            if n > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, _)) if self.is_sensitive_key(&percent_decoded(k)) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(FILTERED);
                }
                _ => out.push_str(pair),
            }
        }
        out
    }

    /// `key=value`, `key: value` and `<key>value</key>` with a sensitive key → the
    /// value replaced by [`FILTERED`].
    fn mask_pairs<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let b = text.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while i < b.len() {
            // Only a separator can start a pair: jump to the next one.
            match memchr::memchr3(b'=', b':', b'<', &b[i..]) {
                Some(at) => i += at,
                None => break,
            }
            let c = b[i];
            let (value_start, kind) = match c {
                b'=' | b':' => {
                    // Key: the run of key characters (or a quoted string) before it.
                    let mut k_end = i;
                    while k_end > copied && b[k_end - 1] == b' ' && c == b':' {
                        k_end -= 1;
                    }
                    let (k_start, k_end) = if k_end > 0 && matches!(b[k_end - 1], b'"' | b'\'') {
                        let q = b[k_end - 1];
                        let mut s = k_end - 1;
                        while s > 0 && b[s - 1] != q {
                            s -= 1;
                        }
                        (s, k_end - 1)
                    } else {
                        let mut s = k_end;
                        while s > 0 && is_key_byte(b[s - 1]) {
                            s -= 1;
                        }
                        (s, k_end)
                    };
                    if k_start < copied
                        || k_start >= k_end
                        || !self.is_sensitive_key(&percent_decoded(&text[k_start..k_end]))
                    {
                        i += 1;
                        continue;
                    }
                    let mut v = i + 1;
                    while v < b.len() && b[v] == b' ' {
                        v += 1;
                    }
                    (v, if c == b'=' { Sep::Equals } else { Sep::Colon })
                }
                b'<' => {
                    let mut e = i + 1;
                    while e < b.len() && is_key_byte(b[e]) {
                        e += 1;
                    }
                    if e >= b.len()
                        || b[e] != b'>'
                        || e == i + 1
                        || !self.is_sensitive_key(&text[i + 1..e])
                    {
                        i += 1;
                        continue;
                    }
                    (e + 1, Sep::Element)
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            if text[value_start..].starts_with(FILTERED)
                || text[value_start..].starts_with(QUOTED_FILTERED)
            {
                i = value_start + FILTERED.len();
                continue;
            }
            let (value_end, quote) = pair_value_end(b, value_start, kind);
            if value_end == value_start && kind != Sep::Element {
                i = value_start.max(i + 1);
                continue;
            }
            out.push_str(&text[copied..value_start]);
            match quote {
                Some((q, closed)) => {
                    out.push(char::from(q));
                    out.push_str(FILTERED);
                    if closed {
                        out.push(char::from(q));
                    }
                }
                None => out.push_str(FILTERED),
            }
            copied = value_end;
            i = value_end.max(i + 1);
        }
        if copied == 0 && out.is_empty() {
            return Cow::Borrowed(text);
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }

    /// Masks a record in place: message, exception messages, context, HTTP query
    /// parameters, headers and bodies (JSON by key, text with [`Masker::mask_text`]).
    pub fn mask_record(&self, record: &mut Record) {
        self.mask_context(&mut record.context);
        self.mask_record_but_context(record);
    }

    /// [`Masker::mask_record`] without the context (the worker masks an event's
    /// context while it builds it).
    pub(crate) fn mask_record_but_context(&self, record: &mut Record) {
        if let Cow::Owned(m) = self.mask_text(&record.message) {
            record.message = Cow::Owned(m);
        }
        if let Some(e) = record.exception.as_mut() {
            self.mask_string(&mut e.message);
            for cause in &mut e.chain {
                self.mask_string(&mut cause.message);
            }
        }
        if let Some(http) = record.http.as_deref_mut() {
            self.mask_fields(&mut http.request.query);
            self.mask_headers(&mut http.request.headers);
            self.mask_body(http.request.body.as_mut());
            if let Some(resp) = http.response.as_mut() {
                self.mask_headers(&mut resp.headers);
                self.mask_body(resp.body.as_mut());
            }
        }
    }

    /// [`Masker::mask_text`] of `v` when it differs from `v`, else `None`.
    fn masked(&self, v: &str) -> Option<String> {
        match self.mask_text(v) {
            Cow::Owned(m) if m != v => Some(m),
            _ => None,
        }
    }

    /// Masks `s` in place with [`Masker::mask_text`]; `true` when it changed.
    fn mask_string(&self, s: &mut String) -> bool {
        match self.masked(s) {
            Some(m) => {
                *s = m;
                true
            }
            None => false,
        }
    }

    fn mask_body(&self, body: Option<&mut CapturedBody>) {
        match body.map(|b| &mut b.content) {
            Some(BodyContent::Json(v)) => self.mask_value(v),
            Some(BodyContent::Text(t)) => {
                self.mask_string(t);
            }
            _ => {}
        }
    }
}

/// `true` when `text` has a byte every masked form needs (`=`, `:` or `<`).
#[cfg(any(test, feature = "http-capture"))]
fn has_pair_marker(text: &str) -> bool {
    memchr::memchr3(b'=', b':', b'<', text.as_bytes()).is_some()
}

/// How many of the bytes every masked form needs (`=`, `:`, `<`) `text` has,
/// counting up to `limit`.
fn count_pair_markers(text: &str, limit: usize) -> usize {
    let b = text.as_bytes();
    if b.len() > SHORT_TEXT_BYTES {
        return memchr::memchr3_iter(b'=', b':', b'<', b)
            .take(limit)
            .count();
    }
    // Short text (most messages and field values): eight bytes at a time, which
    // costs a fraction of setting up the vector search for a few words. Each byte
    // lane of `lanes` counts the markers seen in that lane (at most eight words, so
    // no lane overflows), summed across lanes once at the end.
    let mut lanes = 0u64;
    let mut chunks = b.chunks_exact(8);
    for w in chunks.by_ref().filter_map(|c| c.first_chunk::<8>()) {
        lanes += marker_bits(u64::from_le_bytes(*w));
    }
    let rest = chunks.remainder().len();
    if rest > 0 {
        // The bytes not counted yet, zero-extended (a zero byte is no marker).
        let tail = match b.last_chunk::<8>() {
            Some(w) => u64::from_le_bytes(*w) >> (8 * (8 - rest)),
            None => b
                .iter()
                .rev()
                .fold(0u64, |acc, &c| (acc << 8) | u64::from(c)),
        };
        lanes += marker_bits(tail);
    }
    let n = (lanes.wrapping_mul(0x0101_0101_0101_0101) >> 56) as usize;
    n.min(limit)
}

/// Longest text [`count_pair_markers`] scans a word at a time rather than with
/// `memchr`'s vector search, in bytes.
const SHORT_TEXT_BYTES: usize = 64;

/// 1 in each byte of `v` that is `=`, `:` or `<`, 0 elsewhere. Exact per byte (no
/// borrow crosses from one byte into the next).
fn marker_bits(v: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // 0x80 in each byte of `x` that is zero, 0 elsewhere.
    let zero = |x: u64| !(((x & LOW7) + LOW7) | x | LOW7);
    let hits = zero(v ^ (ONES * u64::from(b'=')))
        | zero(v ^ (ONES * u64::from(b':')))
        | zero(v ^ (ONES * u64::from(b'<')));
    hits >> 7
}

/// Most separators (`=`, `:`, `<`) in free text for which [`Masker::mask_text`]
/// judges each key directly instead of running its prefilter first.
const FEW_SEPARATORS: usize = 4;

/// An automaton finding any of `patterns`: a DFA when it fits the crate's size
/// limit (the sets here are small), else the crate's own choice, which finds the
/// same matches. `None` only if no automaton can be built at all.
fn automaton(patterns: &[&str]) -> Option<AhoCorasick> {
    AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::DFA))
        .match_kind(MatchKind::Standard)
        .build(patterns)
        .or_else(|_| AhoCorasick::new(patterns))
        .ok()
}

/// The marker automaton over [`SENSITIVE_SUBSTRINGS`] (folded).
fn markers(substrings: &[String]) -> AhoCorasick {
    let pats: Vec<&str> = substrings.iter().map(String::as_str).collect();
    automaton(&pats).expect("the built-in marker list always builds an automaton")
}

/// The prefilter of [`Masker::mask_text`]: every whole key, marker and suffix.
/// `None` (scan every text) if a huge user key list cannot be compiled.
fn prefilter(keys: &HashSet<String>, substrings: &[String]) -> Option<AhoCorasick> {
    let all: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .chain(substrings.iter().map(String::as_str))
        .chain(SENSITIVE_SUFFIXES.iter().copied())
        .collect();
    automaton(&all)
}

/// `keys` grouped by length, for keys up to [`STACK_KEY_BYTES`] long.
fn by_len(keys: &HashSet<String>) -> Vec<Vec<Box<[u8]>>> {
    let mut v: Vec<Vec<Box<[u8]>>> = vec![Vec::new(); STACK_KEY_BYTES + 1];
    for k in keys.iter().filter(|k| k.len() <= STACK_KEY_BYTES) {
        v[k.len()].push(k.as_bytes().into());
    }
    v
}

/// [`fold_key`] into `buf` for an ASCII key whose folded form fits; `None` otherwise.
fn fold_ascii<'b>(key: &str, buf: &'b mut [u8; STACK_KEY_BYTES]) -> Option<&'b [u8]> {
    if !key.is_ascii() {
        return None;
    }
    let mut n = 0;
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() {
            *buf.get_mut(n)? = b.to_ascii_lowercase();
            n += 1;
        }
    }
    Some(&buf[..n])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    Equals,
    Colon,
    Element,
}

/// Bytes a key may consist of in free text (`x-api-key`, `user.password`, `pass%77d`).
fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'%' | b'+')
}

/// End of the value starting at `start`: a quoted value runs to its closing quote (or
/// the end of the text); `key=value` to the next `&`, `;`, `,`, space or quote;
/// `key: value` to the end of the line (or `,`, `;`, `&`, a quote or a closing
/// bracket); `<key>value` to the next `<`.
fn pair_value_end(b: &[u8], start: usize, sep: Sep) -> (usize, Option<(u8, bool)>) {
    if start >= b.len() {
        return (b.len(), None);
    }
    if sep != Sep::Element && matches!(b[start], b'"' | b'\'') {
        let q = b[start];
        let mut i = start + 1;
        while i < b.len() {
            if b[i] == b'\\' {
                i += 2;
                continue;
            }
            if b[i] == q {
                return (i + 1, Some((q, true)));
            }
            i += 1;
        }
        return (b.len(), Some((q, false)));
    }
    let stop = |c: u8| match sep {
        Sep::Equals => {
            matches!(
                c,
                b'&' | b';' | b',' | b'"' | b'\'' | b'}' | b']' | b')' | b'<' | b'>'
            ) || c.is_ascii_whitespace()
        }
        Sep::Colon => matches!(
            c,
            b'\n' | b'\r' | b',' | b';' | b'&' | b'"' | b'}' | b']' | b'<'
        ),
        Sep::Element => c == b'<',
    };
    let mut i = start;
    while i < b.len() && !stop(b[i]) {
        i += 1;
    }
    (i, None)
}

/// The text of a JSON key with simple escapes (`\"`, `\\`, `\uXXXX`) decoded.
fn unescape_json_key(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    match serde_json::from_str::<String>(&format!("\"{raw}\"")) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(raw),
    }
}

/// Index just past the string starting at `b[start] == '"'` (or `b.len()` if cut off).
fn skip_string(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Index just past the JSON value starting at `start` (or `b.len()` if cut off).
fn skip_value(b: &[u8], start: usize) -> usize {
    match b.get(start) {
        None => b.len(),
        Some(b'"') => skip_string(b, start),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = start;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = skip_string(b, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            b.len()
        }
        Some(_) => {
            let mut i = start;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']') && !b[i].is_ascii_whitespace()
            {
                i += 1;
            }
            i
        }
    }
}

/// Decodes `%XX` escapes and `+` (form encoding); invalid escapes are kept as they are,
/// invalid UTF-8 replaced.
#[cfg(feature = "http-capture")]
pub(crate) fn percent_decode(s: &str) -> String {
    percent_decoded(s).into_owned()
}

/// [`percent_decode`], borrowing `s` when it has nothing to decode (no copy for
/// the usual key).
fn percent_decoded(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_few_or_many_separators_is_masked_alike() {
        let m = Masker::default();
        // (text, masked): each pair alone (few separators: judged key by key) and
        // behind a run of innocent separators (many: the prefilter runs first).
        let cases = [
            (
                "Request: GET /orders/7 - 200",
                "Request: GET /orders/7 - 200",
            ),
            (
                "login failed: password=hunter2",
                "login failed: password=[FILTERED]",
            ),
            ("pass%77ord=hunter2", "pass%77ord=[FILTERED]"),
            ("api+key=abc", "api+key=[FILTERED]"),
            ("x-auth-token: abc def", "x-auth-token: [FILTERED]"),
            ("<secret>s3</secret>", "<secret>[FILTERED]</secret>"),
            ("a=1 b=2 token=t c=3", "a=1 b=2 token=[FILTERED] c=3"),
        ];
        for (text, masked) in cases {
            assert!(
                count_pair_markers(text, usize::MAX) <= FEW_SEPARATORS,
                "{text}"
            );
            assert_eq!(m.mask_text(text), masked, "{text}");
            let padded = format!("k1=1 k2=2 k3=3 k4=4 k5=5 {text}");
            assert!(count_pair_markers(&padded, usize::MAX) > FEW_SEPARATORS);
            assert_eq!(
                count_pair_markers(&padded, FEW_SEPARATORS + 1),
                FEW_SEPARATORS + 1
            );
            assert_eq!(
                m.mask_text(&padded),
                format!("k1=1 k2=2 k3=3 k4=4 k5=5 {masked}"),
                "{padded}"
            );
        }
        assert!(matches!(
            m.mask_text("Request: GET /orders/7 - 200"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn headers_mask_sensitive_names_and_secrets_in_other_values() {
        let m = Masker::default();
        let mut h = Headers::new();
        h.insert("authorization".into(), "Bearer abc".into());
        h.insert("x-debug".into(), "password=hunter2".into());
        h.insert("host".into(), "example.com".into());
        m.mask_headers(&mut h);
        assert_eq!(h.get("authorization"), Some(FILTERED));
        assert!(!h.get("x-debug").expect("kept").contains("hunter2"));
        assert_eq!(h.get("host"), Some("example.com"));
    }

    #[test]
    fn pair_markers_are_found_in_short_and_long_texts() {
        for len in [0usize, 1, 15, 63, 64, 65, 300] {
            let plain = "a".repeat(len);
            assert!(!has_pair_marker(&plain), "{len}");
            assert_eq!(count_pair_markers(&plain, 9), 0, "{len}");
            for marker in ['=', ':', '<'] {
                for at in [0, len / 2, len.saturating_sub(1)] {
                    let mut t: Vec<char> = plain.chars().collect();
                    if at < t.len() {
                        t[at] = marker;
                        let t: String = t.into_iter().collect();
                        assert!(has_pair_marker(&t), "{marker} at {at} of {len}");
                        assert_eq!(count_pair_markers(&t, 9), 1, "{marker} at {at} of {len}");
                    }
                }
            }
        }
        assert!(!has_pair_marker("é ✓ 😀 no marker here"));
    }

    #[test]
    fn pair_markers_are_counted_exactly_at_every_length() {
        // Every byte value at every position of short and just-too-long texts,
        // with markers elsewhere too: the word-at-a-time count equals a byte count.
        for len in 1..=SHORT_TEXT_BYTES + 9 {
            for b in 0u8..=0x7f {
                for at in [0, len / 3, len / 2, len - 1] {
                    let mut t = vec![b'a'; len];
                    if len > 4 {
                        t[len / 4] = b':';
                    }
                    t[at] = b;
                    let t = String::from_utf8(t).expect("ASCII");
                    let want = t
                        .bytes()
                        .filter(|c| matches!(c, b'=' | b':' | b'<'))
                        .count();
                    assert_eq!(
                        count_pair_markers(&t, usize::MAX),
                        want,
                        "{b:#x} at {at} of {len}"
                    );
                    assert_eq!(count_pair_markers(&t, 1), want.min(1));
                }
            }
        }
        let all = "=:<".repeat(20);
        assert_eq!(count_pair_markers(&all, usize::MAX), 60);
        assert_eq!(count_pair_markers(&all, 5), 5);
        assert_eq!(count_pair_markers("é ✓ 😀 k=v: <", 9), 3);
    }
    use crate::record::Level;
    use serde_json::json;

    #[test]
    fn every_default_key_is_masked_case_and_dash_insensitively() {
        let m = Masker::default();
        for k in DEFAULT_SENSITIVE_KEYS {
            assert!(m.is_sensitive_key(k), "{k}");
            assert!(m.is_sensitive_key(&k.to_ascii_uppercase()), "{k}");
            assert!(m.is_sensitive_key(&k.replace('_', "-")), "{k}");
        }
        assert!(m.is_sensitive_key("Set-Cookie"));
        assert!(m.is_sensitive_key("db_password"));
        assert!(!m.is_sensitive_key("author"));
        assert!(!m.is_sensitive_key("user_id"));
    }

    #[test]
    fn spellings_fold_to_one_form() {
        assert_eq!(fold_key("cardNumber"), "cardnumber");
        assert_eq!(fold_key("card-number"), "cardnumber");
        assert_eq!(fold_key("Card_Number"), "cardnumber");
        assert_eq!(fold_key("X-Session-Id"), "xsessionid");
        let m = Masker::new(["favourite_colour"]);
        assert!(m.is_sensitive_key("FavouriteColour"));
        assert!(m.is_sensitive_key("dbPwd"));
        assert!(!m.is_sensitive_key("favourite"));
        assert!(!m.is_sensitive_key(""));
        assert!(!m.is_sensitive_key("--"));
    }

    #[test]
    fn text_is_scanned_for_pairs_json_and_elements() {
        let m = Masker::default();
        let cases = [
            ("a=1&password=hunter2&b=2", "a=1&password=[FILTERED]&b=2"),
            (
                "sessionid=abc; theme=dark",
                "sessionid=[FILTERED]; theme=dark",
            ),
            (
                "Authorization: Bearer abc def\nAccept: */*",
                "Authorization: [FILTERED]\nAccept: */*",
            ),
            (
                "<user>bob</user><pwd>hunter2</pwd>",
                "<user>bob</user><pwd>[FILTERED]</pwd>",
            ),
            (
                "token=\"a b\" level=info",
                "token=\"[FILTERED]\" level=info",
            ),
            (
                "https://x/cb?api_key=k1&q=2",
                "https://x/cb?api_key=[FILTERED]&q=2",
            ),
            ("pass%77ord=x", "pass%77ord=[FILTERED]"),
            ("password=[FILTERED]&a=1", "password=[FILTERED]&a=1"),
            ("time 12:30, author=ann", "time 12:30, author=ann"),
        ];
        for (input, want) in cases {
            assert_eq!(m.mask_text(input), want, "{input}");
        }
        assert!(matches!(m.mask_text("nothing here"), Cow::Borrowed(_)));
        assert!(matches!(m.mask_text("a=1&b=2"), Cow::Borrowed(_)));
        // JSON text: parsed when whole, scanned when cut.
        assert_eq!(
            m.mask_text(r#"{"cardNumber":"4111","note":"ok"}"#),
            r#"{"cardNumber":"[FILTERED]","note":"ok"}"#
        );
        let cut = m.mask_text(r#"{"note":"ok","privateKey":"-----BEGIN"#);
        assert!(!cut.contains("BEGIN"), "{cut}");
        let nested = m.mask_text(r#"{"q":"x=1&session_id=abc"}"#);
        assert!(!nested.contains("abc"), "{nested}");
        let escaped = m.mask_text(r#"{"pass\u0077ord":"hunter2","#);
        assert!(!escaped.contains("hunter2"), "{escaped}");
        // Whole JSON with nothing left to mask comes back as it was (borrowed), also
        // when a secret key is already masked; one nested secret is enough to change it.
        for unchanged in [
            r#"{"password":"[FILTERED]","items":[{"sku":"a:1"}]}"#,
            r#"[{"note":"k=v"},{"token":"[FILTERED]"}]"#,
        ] {
            assert!(
                matches!(m.mask_text(unchanged), Cow::Borrowed(_)),
                "{unchanged}"
            );
        }
        assert_eq!(
            m.mask_text(r#"[{"note":"ok"},{"a":{"token":"t1"}}]"#),
            r#"[{"note":"ok"},{"a":{"token":"[FILTERED]"}}]"#
        );
    }

    #[test]
    fn the_text_prefilter_never_skips_a_key_the_scan_would_mask() {
        let m = Masker::new(["favourite_colour"]);
        let cases = [
            (
                "p-a-s-s-w-o-r-d=hunter2 ok",
                "p-a-s-s-w-o-r-d=[FILTERED] ok",
            ),
            ("PASS_WORD: hunter2", "PASS_WORD: [FILTERED]"),
            ("<Api-Key>k1</Api-Key>", "<Api-Key>[FILTERED]</Api-Key>"),
            (
                "a=1 Favourite-Colour=blue",
                "a=1 Favourite-Colour=[FILTERED]",
            ),
            ("x_dbPwd=s3", "x_dbPwd=[FILTERED]"),
            ("\"cvv\": 123", "\"cvv\": [FILTERED]"),
        ];
        for (input, want) in cases {
            assert_eq!(m.mask_text(input), want, "{input}");
        }
        // Texts the prefilter lets through untouched: nothing sensitive in them.
        for plain in [
            "route=/orders/{id} status=200",
            "time 12:30, author=ann",
            "<b>bold</b>",
        ] {
            assert!(matches!(m.mask_text(plain), Cow::Borrowed(_)), "{plain}");
        }
    }

    #[test]
    fn messages_and_text_bodies_are_masked_in_records() {
        let m = Masker::default();
        let mut r =
            Record::new(Level::Info, "calling https://api/x?token=t0k&page=2").with_exception(
                crate::record::Exception::new("io", "connect to db://u@h?password=pw1 failed"),
            );
        m.mask_record(&mut r);
        assert_eq!(r.message, "calling https://api/x?token=[FILTERED]&page=2");
        let e = r.exception.as_ref().expect("exception");
        assert_eq!(e.message, "connect to db://u@h?password=[FILTERED] failed");
    }

    #[test]
    fn masks_nested_objects_and_arrays() {
        let m = Masker::new(["pin"]);
        let mut r = Record::new(Level::Info, "x")
            .with_field(
                "user",
                json!({"name": "ann", "password": "hunter2", "cards": [{"CVV": 123}]}),
            )
            .with_field("PIN", "0000")
            .with_field("list", json!([{"token": "t"}, "plain"]));
        m.mask_record(&mut r);
        let text = serde_json::to_string(&r.context).expect("json");
        assert!(
            !text.contains("hunter2") && !text.contains("123") && !text.contains("0000"),
            "{text}"
        );
        assert_eq!(r.context["user"]["name"], "ann");
        assert_eq!(r.context["user"]["password"], FILTERED);
        assert_eq!(r.context["user"]["cards"][0]["CVV"], FILTERED);
        assert_eq!(r.context["PIN"], FILTERED);
        assert_eq!(r.context["list"][0]["token"], FILTERED);
        assert_eq!(r.context["list"][1], "plain");
    }
}
