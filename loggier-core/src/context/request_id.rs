//! [`RequestId`]: a request id as a scope frame and an exchange keep it.

/// Length of a hyphenated UUID, the form of a generated request id.
const UUID_LEN: usize = 36;

/// A request id: a generated UUID inline (no allocation of its own), any other
/// (accepted incoming or user-given) id on the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestId {
    /// A hyphenated lower-case UUID; always ASCII.
    #[cfg_attr(not(feature = "http-capture"), allow(dead_code))]
    Uuid([u8; UUID_LEN]),
    /// Any other id.
    Text(Box<str>),
}

impl RequestId {
    /// A generated id from its hyphenated text (ASCII hex digits and hyphens).
    #[cfg(feature = "http-capture")]
    pub(crate) fn uuid(text: [u8; UUID_LEN]) -> Self {
        RequestId::Uuid(text)
    }

    /// The id's text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Built only from `uuid` output (ASCII); the fallback is never taken.
            RequestId::Uuid(b) => std::str::from_utf8(b).unwrap_or_default(),
            RequestId::Text(s) => s,
        }
    }
}

impl From<String> for RequestId {
    fn from(s: String) -> Self {
        RequestId::Text(s.into_boxed_str())
    }
}
