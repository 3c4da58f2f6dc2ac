//! Parsing of the attribute arguments: `key = value` pairs, strictly checked.
//!
//! Every option is allowed once; unknown options, wrong value types and duplicates
//! are errors spanned on the offending token (`syn::Error::new_spanned`).

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprArray, ExprLit, Ident, Lit, LitStr, Token};

/// Which attribute is being expanded; decides the allowed options and the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacroKind {
    /// `#[trace_function]`
    Function,
    /// `#[trace_http]`
    Http,
    /// `#[trace_database]`
    Database,
    /// `#[capture_exceptions]`
    CaptureExceptions,
}

impl MacroKind {
    /// The attribute's name as the user writes it.
    pub(crate) fn attr_name(self) -> &'static str {
        match self {
            MacroKind::Function => "trace_function",
            MacroKind::Http => "trace_http",
            MacroKind::Database => "trace_database",
            MacroKind::CaptureExceptions => "capture_exceptions",
        }
    }

    /// Default slow threshold in milliseconds (seeds/004 API reference):
    /// `trace_function` 500, `trace_http` 1000, `trace_database` 100.
    pub(crate) fn default_threshold_ms(self) -> u64 {
        match self {
            MacroKind::Function | MacroKind::CaptureExceptions => 500,
            MacroKind::Http => 1000,
            MacroKind::Database => 100,
        }
    }

    /// The options this attribute accepts (`level` may also be spelled `log_level`,
    /// the seeds/004 name).
    fn allowed(self) -> &'static [&'static str] {
        match self {
            MacroKind::Function => &[
                "name",
                "threshold_ms",
                "tags",
                "include_args",
                "include_return",
                "level",
            ],
            MacroKind::Http => &[
                "name",
                "threshold_ms",
                "tags",
                "mask_headers",
                "mask_params",
                "include_body",
                "level",
            ],
            MacroKind::Database => &["name", "threshold_ms", "tags", "include_params", "level"],
            MacroKind::CaptureExceptions => &["name", "tags", "level"],
        }
    }
}

/// The level names accepted by `level = "..."` (as `loggier_core::Level` parses them).
pub(crate) const LEVELS: &[&str] = &[
    "trace", "debug", "info", "warning", "warn", "error", "critical",
];

/// The parsed options of one attribute. `None`/empty means "use the default".
#[derive(Default)]
pub(crate) struct TraceArgs {
    /// `name = "..."`: the timing's name (default: the function's path).
    pub(crate) name: Option<LitStr>,
    /// `threshold_ms = N`: slow threshold in milliseconds.
    pub(crate) threshold_ms: Option<u64>,
    /// `tags = ["a", "b"]`.
    pub(crate) tags: Vec<LitStr>,
    /// `include_args = bool`.
    pub(crate) include_args: bool,
    /// `include_return = bool`.
    pub(crate) include_return: bool,
    /// `level = "info"`, lower-cased and validated against [`LEVELS`].
    pub(crate) level: Option<(String, Span)>,
    /// `mask_headers = [...]` (`trace_http`).
    pub(crate) mask_headers: Vec<LitStr>,
    /// `mask_params = [...]` (`trace_http`).
    pub(crate) mask_params: Vec<LitStr>,
    /// `include_body = bool` (`trace_http`).
    pub(crate) include_body: bool,
    /// `include_params = bool` (`trace_database`).
    pub(crate) include_params: bool,
}

/// One `key = value` pair.
struct Pair {
    key: Ident,
    value: Expr,
}

impl Parse for Pair {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input.parse()?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new_spanned(
                &key,
                format!("expected `=` after `{key}`: options are written `{key} = value`"),
            ));
        }
        let _eq: Token![=] = input.parse()?;
        let value: Expr = input.parse()?;
        Ok(Pair { key, value })
    }
}

/// Parses `args` as comma-separated `key = value` pairs for the attribute `attr`
/// (its name without `#[]`) and hands each option, in the written order, to `apply`
/// as `(name, key, value)`. Each key is checked against `allowed` and for duplicates
/// just before `apply` sees it; `canonical` maps an accepted spelling to the option's
/// name (e.g. `log_level` to `level`) before both checks, and `name` is that
/// canonical name, one of `allowed`.
///
/// # Errors
/// The first problem in the written order: a token that is not a `key = value` pair,
/// an unknown option or an option given twice (spanned on the key), or the error
/// `apply` returns.
pub(crate) fn parse_options(
    args: proc_macro2::TokenStream,
    attr: &str,
    allowed: &[&str],
    canonical: fn(String) -> String,
    mut apply: impl FnMut(&str, &Ident, &Expr) -> syn::Result<()>,
) -> syn::Result<()> {
    let pairs = syn::parse::Parser::parse2(Punctuated::<Pair, Token![,]>::parse_terminated, args)?;
    let mut seen: Vec<String> = Vec::new();
    for Pair { key, value } in pairs {
        let name = canonical(key.to_string());
        if !allowed.contains(&name.as_str()) {
            return Err(syn::Error::new_spanned(
                &key,
                format!(
                    "unknown option `{key}` for #[{attr}]; expected one of: {}",
                    allowed.join(", ")
                ),
            ));
        }
        if seen.contains(&name) {
            return Err(syn::Error::new_spanned(
                &key,
                format!("duplicate option `{name}`"),
            ));
        }
        apply(&name, &key, &value)?;
        seen.push(name);
    }
    Ok(())
}

impl TraceArgs {
    /// Parses `args` for the attribute `kind`.
    ///
    /// # Errors
    /// The first problem found, spanned on the offending token: an unknown option, a
    /// value of the wrong type, an option given twice, an unknown level name.
    pub(crate) fn parse(kind: MacroKind, args: proc_macro2::TokenStream) -> syn::Result<Self> {
        let mut out = TraceArgs::default();
        let canonical = |name: String| {
            if name == "log_level" {
                "level".to_string()
            } else {
                name
            }
        };
        parse_options(
            args,
            kind.attr_name(),
            kind.allowed(),
            canonical,
            |name, key, value| {
                match name {
                    "name" => out.name = Some(lit_str(key, value)?),
                    "threshold_ms" => out.threshold_ms = Some(lit_ms(key, value)?),
                    "tags" => out.tags = str_list(key, value)?,
                    "include_args" => out.include_args = lit_bool(key, value)?,
                    "include_return" => out.include_return = lit_bool(key, value)?,
                    "include_body" => out.include_body = lit_bool(key, value)?,
                    "include_params" => out.include_params = lit_bool(key, value)?,
                    "mask_headers" => out.mask_headers = str_list(key, value)?,
                    "mask_params" => out.mask_params = str_list(key, value)?,
                    "level" => {
                        let lit = lit_str(key, value)?;
                        let level = lit.value().to_ascii_lowercase();
                        if !LEVELS.contains(&level.as_str()) {
                            return Err(syn::Error::new_spanned(
                                &lit,
                                format!(
                                    "unknown level `{}`; expected one of: {}",
                                    lit.value(),
                                    LEVELS.join(", ")
                                ),
                            ));
                        }
                        out.level = Some((level, lit.span()));
                    }
                    _ => {
                        return Err(syn::Error::new_spanned(
                            key,
                            format!("option `{key}` is not supported here"),
                        ));
                    }
                }
                Ok(())
            },
        )?;
        Ok(out)
    }
}

/// `key = "..."`: a string literal.
///
/// # Errors
/// `value` is not a string literal.
pub(crate) fn lit_str(key: &Ident, value: &Expr) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` expects a string literal, e.g. `{key} = \"...\"`"),
        )),
    }
}

/// `key = true`: a boolean literal.
///
/// # Errors
/// `value` is not `true` or `false`.
pub(crate) fn lit_bool(key: &Ident, value: &Expr) -> syn::Result<bool> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` expects `true` or `false`"),
        )),
    }
}

/// `key = 500`: a whole number of milliseconds.
///
/// # Errors
/// `value` is not an integer literal, or does not fit in `u64`.
pub(crate) fn lit_ms(key: &Ident, value: &Expr) -> syn::Result<u64> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<u64>().map_err(|_| {
            syn::Error::new_spanned(
                i,
                format!("`{key}` expects a whole number of milliseconds that fits in u64"),
            )
        }),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` expects a whole number of milliseconds, e.g. `{key} = 500`"),
        )),
    }
}

/// `key = ["a", "b"]`: a list of string literals.
///
/// # Errors
/// `value` is not an array, or one of its elements is not a string literal.
pub(crate) fn str_list(key: &Ident, value: &Expr) -> syn::Result<Vec<LitStr>> {
    str_list_like(key, value, "[\"a\", \"b\"]")
}

/// [`str_list`] whose error message shows `example` as the value to write.
///
/// # Errors
/// As [`str_list`].
pub(crate) fn str_list_like(key: &Ident, value: &Expr, example: &str) -> syn::Result<Vec<LitStr>> {
    let wrong = |span_of: &dyn quote::ToTokens| {
        syn::Error::new_spanned(
            span_of,
            format!("`{key}` expects a list of string literals, e.g. `{key} = {example}`"),
        )
    };
    match value {
        Expr::Array(ExprArray { elems, .. }) => elems
            .iter()
            .map(|e| match e {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Ok(s.clone()),
                other => Err(wrong(other)),
            })
            .collect(),
        other => Err(wrong(other)),
    }
}
