//! `#[track_endpoint(...)]`: parsing of its options and the expansion.
//!
//! The expansion keeps the function as written and puts one statement in front of its
//! body:
//!
//! ```text
//! async fn pay(..) -> R {
//!     let __loggier_endpoint = {
//!         static __LOGGIER_ENDPOINT: EndpointOptions = EndpointOptions::new(path).tags(..)..;
//!         ::loggier_core::__private::endpoint::start(&__LOGGIER_ENDPOINT)
//!     };
//!     original statements
//! }
//! ```
//!
//! `start` fills the request's endpoint slot when the handler runs inside a Loggier
//! middleware, or starts a timer that records the call when the guard drops (return,
//! `?`, panic, dropped future) outside one. The body is not moved into a closure, so
//! `return`, `?`, `impl Trait` returns, generics, `self` receivers and lifetimes
//! behave exactly as without the attribute. The guard's name has a mixed-site span and
//! the static lives in its own block: neither can clash with the user's names.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::{Expr, ExprLit, ExprRange, Ident, Item, ItemFn, Lit, LitStr, RangeLimits};

use crate::args;

const ATTR: &str = "track_endpoint";
const OPTIONS: &[&str] = &[
    "tags",
    "statuses",
    "capture_request_body",
    "capture_response_body",
    "slow_threshold_ms",
];

/// The parsed options; `None` = keep the middleware's setting.
#[derive(Default)]
struct EndpointArgs {
    tags: Option<Vec<LitStr>>,
    statuses: Option<Vec<(u16, u16)>>,
    capture_request_body: Option<bool>,
    capture_response_body: Option<bool>,
    slow_threshold_ms: Option<u64>,
}

impl EndpointArgs {
    fn parse(args: TokenStream) -> syn::Result<Self> {
        let mut out = EndpointArgs::default();
        args::parse_options(
            args,
            ATTR,
            OPTIONS,
            |name| name,
            |name, key, value| {
                match name {
                    "tags" => out.tags = Some(tags(key, value)?),
                    "statuses" => out.statuses = Some(statuses(key, value)?),
                    "capture_request_body" => {
                        out.capture_request_body = Some(args::lit_bool(key, value)?);
                    }
                    "capture_response_body" => {
                        out.capture_response_body = Some(args::lit_bool(key, value)?);
                    }
                    _ => out.slow_threshold_ms = Some(args::lit_ms(key, value)?),
                }
                Ok(())
            },
        )?;
        Ok(out)
    }
}

/// `tags = ["payment"]`: non-empty string literals.
fn tags(key: &Ident, value: &Expr) -> syn::Result<Vec<LitStr>> {
    let tags = args::str_list_like(key, value, "[\"payment\"]")?;
    match tags.iter().find(|s| s.value().is_empty()) {
        Some(empty) => Err(syn::Error::new_spanned(empty, "a tag cannot be empty")),
        None => Ok(tags),
    }
}

/// `statuses = [404, "5xx", "500-599", 200..=299]`: codes, classes and inclusive
/// ranges, each within 100–999.
fn statuses(key: &Ident, value: &Expr) -> syn::Result<Vec<(u16, u16)>> {
    let Expr::Array(array) = value else {
        return Err(syn::Error::new_spanned(
            value,
            format!(
                "`{key}` expects a list of status codes, e.g. `{key} = [404, \"5xx\", 500..=504]`"
            ),
        ));
    };
    array.elems.iter().map(status_entry).collect()
}

fn status_entry(e: &Expr) -> syn::Result<(u16, u16)> {
    const HELP: &str = "expected a status code (`404`), a class (`\"5xx\"`), or a range \
                        (`500..=599` or `\"500-599\"`)";
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => {
            let c = code(i.base10_parse::<u64>().ok(), i)?;
            Ok((c, c))
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => status_text(s),
        Expr::Range(ExprRange {
            start: Some(a),
            limits: RangeLimits::Closed(_),
            end: Some(b),
            ..
        }) => {
            let a = code(int_of(a), a)?;
            let b = code(int_of(b), b)?;
            if a > b {
                return Err(syn::Error::new_spanned(
                    e,
                    "a status range must not start after its end",
                ));
            }
            Ok((a, b))
        }
        Expr::Range(ExprRange {
            limits: RangeLimits::HalfOpen(_),
            ..
        }) => Err(syn::Error::new_spanned(
            e,
            "use an inclusive range (`500..=599`) for statuses",
        )),
        other => Err(syn::Error::new_spanned(other, HELP)),
    }
}

fn int_of(e: &Expr) -> Option<u64> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse().ok(),
        _ => None,
    }
}

/// `n` as a status code in 100–999, or an error spanned on `tokens`.
fn code(n: Option<u64>, tokens: &dyn ToTokens) -> syn::Result<u16> {
    n.and_then(|n| u16::try_from(n).ok())
        .filter(|c| (100..=999).contains(c))
        .ok_or_else(|| {
            syn::Error::new_spanned(tokens, "status codes must be numbers between 100 and 999")
        })
}

/// `"404"`, `"5xx"`, `"500-599"`.
fn status_text(s: &LitStr) -> syn::Result<(u16, u16)> {
    let text = s.value().trim().to_ascii_lowercase();
    let bad = |msg: &str| syn::Error::new_spanned(s, msg);
    if let Some(class) = text.strip_suffix("xx") {
        return match class.as_bytes() {
            [d @ b'1'..=b'9'] => {
                let d = u16::from(d - b'0');
                Ok((d * 100, d * 100 + 99))
            }
            _ => Err(bad(
                "a status class is one digit 1-9 followed by `xx`, e.g. \"5xx\"",
            )),
        };
    }
    let num = |t: &str| match t.trim().parse::<u64>() {
        Ok(n) => code(Some(n), s),
        Err(_) => Err(bad(
            "expected a status code (\"404\"), a class (\"5xx\") or a range (\"500-599\")",
        )),
    };
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(bad("a status range must not start after its end"));
            }
            Ok((a, b))
        }
        None => {
            let c = num(&text)?;
            Ok((c, c))
        }
    }
}

/// Expands `#[track_endpoint(args)]` on `item`; on any error emits the error next to
/// the unchanged item, so the rest of the crate still type-checks.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match function(item.clone()) {
        Ok(f) => f,
        Err(e) => return with_item(e, item),
    };
    let args = match EndpointArgs::parse(args) {
        Ok(a) => a,
        Err(e) => return with_item(e, func.into_token_stream()),
    };
    generate(&args, func)
}

fn with_item(err: syn::Error, item: TokenStream) -> TokenStream {
    let err = err.to_compile_error();
    quote!(#err #item)
}

fn function(item: TokenStream) -> syn::Result<ItemFn> {
    let item: Item = syn::parse2(item)?;
    match item {
        Item::Fn(f) => {
            if let Some(c) = &f.sig.constness {
                return Err(syn::Error::new_spanned(
                    c,
                    format!("#[{ATTR}] cannot be used on a `const fn`"),
                ));
            }
            Ok(f)
        }
        other => {
            // Point at the item's first tokens (its keyword and name), not its
            // attributes or body.
            let tokens: Vec<TokenTree> = other.into_token_stream().into_iter().collect();
            let mut i = 0;
            while matches!(tokens.get(i), Some(TokenTree::Punct(p)) if p.as_char() == '#')
                && matches!(tokens.get(i + 1), Some(TokenTree::Group(_)))
            {
                i += 2;
            }
            let head: TokenStream = tokens.into_iter().skip(i).take(3).collect();
            let msg =
                format!("#[{ATTR}] can only be used on a function with a body (a request handler)");
            Err(if head.is_empty() {
                syn::Error::new(Span::call_site(), msg)
            } else {
                syn::Error::new_spanned(head, msg)
            })
        }
    }
}

fn generate(args: &EndpointArgs, func: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let site = Span::mixed_site();
    let guard = format_ident!("__loggier_endpoint", span = site);
    let name = sig.ident.to_string();
    let opts = quote!(::loggier_core::context::EndpointOptions);

    let mut builder = quote! {
        #opts::new(::core::concat!(::core::module_path!(), "::", #name))
    };
    if let Some(tags) = &args.tags {
        builder.extend(quote!(.tags(&[#(#tags),*])));
    }
    if let Some(statuses) = &args.statuses {
        let ranges = statuses.iter().map(|(a, b)| quote!((#a, #b)));
        builder.extend(quote!(.statuses(&[#(#ranges),*])));
    }
    if let Some(on) = args.capture_request_body {
        builder.extend(quote!(.capture_request_body(#on)));
    }
    if let Some(on) = args.capture_response_body {
        builder.extend(quote!(.capture_response_body(#on)));
    }
    if let Some(ms) = args.slow_threshold_ms {
        builder.extend(quote!(.slow_threshold_ms(#ms)));
    }
    let stmts = &block.stmts;
    quote! {
        #(#attrs)*
        #vis #sig {
            let #guard = {
                static __LOGGIER_ENDPOINT: #opts = #builder;
                ::loggier_core::__private::endpoint::start(&__LOGGIER_ENDPOINT)
            };
            #(#stmts)*
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: TokenStream) -> syn::Result<EndpointArgs> {
        EndpointArgs::parse(tokens)
    }

    #[test]
    fn statuses_accept_codes_classes_and_ranges() {
        let a =
            parse(quote!(statuses = [404, "5xx", "300-302", 200..=204, "418"])).expect("parses");
        assert_eq!(
            a.statuses.expect("parses"),
            [(404, 404), (500, 599), (300, 302), (200, 204), (418, 418)]
        );
    }

    #[test]
    fn bad_options_are_errors() {
        for (tokens, msg) in [
            (quote!(statuses = [99]), "between 100 and 999"),
            (quote!(statuses = ["6xy"]), "expected a status code"),
            (quote!(statuses = ["1200"]), "between 100 and 999"),
            (quote!(statuses = [x]), "expected a status code"),
            (quote!(statuses = [500..599]), "inclusive range"),
            (quote!(statuses = [599..=500]), "must not start after"),
            (quote!(statuses = 404), "list of status codes"),
            (quote!(tags = "a"), "list of string literals"),
            (quote!(tags = [""]), "cannot be empty"),
            (quote!(capture_request_body = 1), "`true` or `false`"),
            (quote!(slow_threshold_ms = "5"), "whole number"),
            (
                quote!(slow_threshold_ms = 5, slow_threshold_ms = 6),
                "duplicate",
            ),
            (quote!(threshold_ms = 5), "unknown option `threshold_ms`"),
        ] {
            let err = parse(tokens.clone())
                .err()
                .unwrap_or_else(|| panic!("{tokens} should fail"));
            assert!(err.to_string().contains(msg), "{tokens}: {err}");
        }
    }
}
