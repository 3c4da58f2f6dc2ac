//! [`RequestId`]: a request id as a scope frame and an exchange keep it.

/// Length of a hyphenated UUID, the form of a generated request id.
pub(crate) const UUID_LEN: usize = 36;

/// A request id: a generated UUID inline (no allocation of its own), any other
/// (accepted incoming or user-given) id on the heap, shared (a clone counts a
/// reference: an exchange and its scope frame hold the same text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestId {
    /// A hyphenated lower-case UUID.
    #[cfg_attr(not(feature = "http-capture"), allow(dead_code))]
    Uuid(arrayvec::ArrayString<UUID_LEN>),
    /// Any other id.
    Text(std::sync::Arc<str>),
}

impl RequestId {
    /// A generated id (its hyphenated text).
    #[cfg(feature = "http-capture")]
    pub(crate) fn uuid(text: arrayvec::ArrayString<UUID_LEN>) -> Self {
        RequestId::Uuid(text)
    }

    /// The id's text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            RequestId::Uuid(s) => s,
            RequestId::Text(s) => s,
        }
    }
}

impl From<String> for RequestId {
    fn from(s: String) -> Self {
        RequestId::Text(std::sync::Arc::from(s))
    }
}
