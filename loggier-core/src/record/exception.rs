use std::backtrace::{Backtrace, BacktraceStatus};
use std::error::Error as StdError;

/// Error details attached to a record: type, message, the `source()` chain and, when
/// one was captured, a backtrace with parsed frames.
///
/// JSON shape: `{"type": "...", "message": "...", "chain": [{"type","message"}, …],
/// "stacktrace": "...", "frames": [{"func","file","line"}, …]}`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Exception {
    /// Type name, e.g. `"std::io::error::Error"`; for `dyn Error` values whose concrete
    /// type is unknown, the leading identifier of their `Debug` output.
    #[serde(rename = "type")]
    pub type_name: String,
    /// `Display` of the error.
    pub message: String,
    /// The `source()` chain, outermost cause first (the error itself excluded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<ExceptionCause>,
    /// Rendered backtrace, when one was captured (`RUST_BACKTRACE=1` or a panic).
    #[serde(rename = "stacktrace", skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
    /// Frames parsed from the backtrace, innermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Frame>,
}

/// One error in a `source()` chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExceptionCause {
    /// Best-effort type name (see [`Exception::type_name`]).
    #[serde(rename = "type")]
    pub type_name: String,
    /// `Display` of the cause.
    pub message: String,
}

/// One stack frame.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Frame {
    /// Function (symbol) name.
    pub func: String,
    /// Source file, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Line number, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

impl Exception {
    /// Describes `err` and its whole `source()` chain, and captures a backtrace with
    /// [`Backtrace::capture`] (so only when `RUST_BACKTRACE`/`RUST_LIB_BACKTRACE` enable
    /// it; otherwise this costs one environment check).
    pub fn from_error<E: StdError + ?Sized + 'static>(err: &E) -> Self {
        let type_name = concrete_or_debug_name::<E>(err);
        let mut chain = Vec::new();
        let mut cur = err.source();
        // Bound the walk: a cyclic or absurdly deep chain must not hang the caller.
        while let Some(cause) = cur {
            if chain.len() >= 32 {
                break;
            }
            chain.push(ExceptionCause {
                type_name: debug_type_name(cause),
                message: cause.to_string(),
            });
            cur = cause.source();
        }
        let mut exc = Exception {
            type_name,
            message: err.to_string(),
            chain,
            backtrace: None,
            frames: Vec::new(),
        };
        exc.set_backtrace(&Backtrace::capture());
        exc
    }

    /// An exception from a type name and message, with no chain or backtrace.
    pub fn new(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        Exception {
            type_name: type_name.into(),
            message: message.into(),
            ..Exception::default()
        }
    }

    /// Stores `bt` (when it was captured) and its parsed frames.
    pub fn set_backtrace(&mut self, bt: &Backtrace) {
        if bt.status() == BacktraceStatus::Captured {
            let text = bt.to_string();
            self.frames = parse_frames(&text);
            self.backtrace = Some(text);
        }
    }

    pub(crate) fn estimated_size_bytes(&self) -> usize {
        64 + self.type_name.len()
            + self.message.len()
            + self
                .chain
                .iter()
                .map(|c| c.type_name.len() + c.message.len() + 24)
                .sum::<usize>()
            + self.backtrace.as_ref().map_or(0, |b| b.len() * 2)
    }
}

fn concrete_or_debug_name<E: StdError + ?Sized + 'static>(err: &E) -> String {
    let name = std::any::type_name::<E>();
    if name.starts_with("dyn ") {
        debug_type_name(err)
    } else {
        name.to_string()
    }
}

/// The leading identifier of an error's `Debug` output (`Custom { .. }` → `Custom`,
/// `ParseIntError { .. }` → `ParseIntError`); `"Error"` when there is none.
fn debug_type_name<E: StdError + ?Sized>(err: &E) -> String {
    let dbg = format!("{err:?}");
    let ident: String = dbg
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    if ident.is_empty() {
        "Error".to_string()
    } else {
        ident
    }
}

/// Parses the `Display` of a captured std backtrace:
/// `   3: my_crate::handler\n             at ./src/main.rs:10:5`.
fn parse_frames(text: &str) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(loc) = t.strip_prefix("at ") {
            if let Some(last) = frames.last_mut() {
                // file:line:col — split from the right, paths may contain ':'.
                let mut parts = loc.rsplitn(3, ':');
                let _col = parts.next();
                let line_no = parts.next().and_then(|l| l.parse().ok());
                let file = parts.next().map(str::to_string);
                if file.is_some() {
                    last.file = file;
                    last.line = line_no;
                }
            }
        } else if let Some((num, func)) = t.split_once(": ") {
            if !num.is_empty() && num.chars().all(|c| c.is_ascii_digit()) {
                frames.push(Frame {
                    func: func.to_string(),
                    file: None,
                    line: None,
                });
            }
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("loading config failed")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn records_type_message_and_chain() {
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "config.toml missing",
        ));
        let e = Exception::from_error(&err);
        assert!(e.type_name.ends_with("Outer"), "{}", e.type_name);
        assert_eq!(e.message, "loading config failed");
        assert_eq!(e.chain.len(), 1);
        assert_eq!(e.chain[0].message, "config.toml missing");
        assert_eq!(e.chain[0].type_name, "Custom");
    }

    #[test]
    fn dyn_error_gets_debug_name() {
        let err: Box<dyn StdError> = "x".parse::<u32>().map_err(Box::new).expect_err("bad int");
        let e = Exception::from_error(err.as_ref());
        assert_eq!(e.type_name, "ParseIntError");
    }

    #[test]
    fn parses_std_backtrace_text() {
        let text =
            "   0: app::handler\n             at ./src/main.rs:10:5\n   1: std::rt::lang_start\n";
        let f = parse_frames(text);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].func, "app::handler");
        assert_eq!(f[0].file.as_deref(), Some("./src/main.rs"));
        assert_eq!(f[0].line, Some(10));
        assert_eq!(f[1].file, None);
    }
}
