//! Code generation: the original function with its body run inside a timed call.
//!
//! Shape of the expansion (sync; an `async fn` awaits
//! `timed(call, typed_future::<R, _>(async move { body }))` instead, one future
//! whichever way `call` went):
//!
//! ```text
//! fn f(args) -> R {
//!     fn __loggier_here() {}                       // its type_name is the default name
//!     static __LOGGIER_META: CallMeta = ...;       // the options, resolved at compile time
//!     let mut call = Call::start(&META, ..);       // None: no client → just run the body
//!     [call.arg("x", || debug(&x));]               // include_args / params / body
//!     let body = typed_fn::<R, _>(move || { original body });
//!     match call {
//!         None => body(),
//!         Some(c) => { let mut g = c.enter(); let r = g.catch(body);
//!                      g.finish(probe(&r).exception(), || ret); r }
//!     }
//! }
//! ```
//!
//! Every path is absolute (`::loggier_core::__private`, `::core`), and generated
//! locals use `Span::mixed_site()` so they can never capture or shadow the user's
//! names.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::{FnArg, Item, ItemFn, Pat, ReturnType};

use crate::args::{MacroKind, TraceArgs};

/// Expands one attribute; on any error emits the error and the unchanged item.
pub(crate) fn expand(kind: MacroKind, args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match parse_fn(kind, item.clone()) {
        Ok(f) => f,
        Err(e) => return with_item(e, item),
    };
    let args = match TraceArgs::parse(kind, args) {
        Ok(a) => a,
        Err(e) => return with_item(e, func.into_token_stream()),
    };
    generate(kind, &args, func)
}

fn with_item(err: syn::Error, item: TokenStream) -> TokenStream {
    let err = err.to_compile_error();
    quote!(#err #item)
}

/// Parses the item and checks it is a function with a body that can be wrapped.
fn parse_fn(kind: MacroKind, item: TokenStream) -> syn::Result<ItemFn> {
    let attr = kind.attr_name();
    let not_fn = |tokens: &dyn ToTokens| {
        syn::Error::new_spanned(
            tokens,
            format!("#[{attr}] can only be used on functions and methods"),
        )
    };
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(f)) => {
            if let Some(c) = &f.sig.constness {
                return Err(syn::Error::new_spanned(
                    c,
                    format!("#[{attr}] cannot be used on a `const fn` (it reads the clock)"),
                ));
            }
            Ok(f)
        }
        Ok(Item::Struct(s)) => Err(not_fn(&pair(&s.struct_token, &s.ident))),
        Ok(Item::Enum(e)) => Err(not_fn(&pair(&e.enum_token, &e.ident))),
        Ok(Item::Union(u)) => Err(not_fn(&pair(&u.union_token, &u.ident))),
        Ok(Item::Trait(t)) => Err(not_fn(&pair(&t.trait_token, &t.ident))),
        Ok(Item::Mod(m)) => Err(not_fn(&pair(&m.mod_token, &m.ident))),
        Ok(Item::Const(c)) => Err(not_fn(&pair(&c.const_token, &c.ident))),
        Ok(Item::Static(s)) => Err(not_fn(&pair(&s.static_token, &s.ident))),
        Ok(Item::Type(t)) => Err(not_fn(&pair(&t.type_token, &t.ident))),
        Ok(Item::Impl(i)) => Err(not_fn(&pair(&i.impl_token, &i.self_ty))),
        Ok(other) => {
            // A function without a body (trait method declaration) parses as verbatim.
            let first: TokenStream = other.into_token_stream().into_iter().take(4).collect();
            Err(syn::Error::new_spanned(
                first,
                format!("#[{attr}] needs a function with a body"),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Two items' tokens together (a keyword and a name), for an error span.
fn pair(a: &dyn ToTokens, b: &dyn ToTokens) -> TokenStream {
    let mut t = a.to_token_stream();
    b.to_tokens(&mut t);
    t
}

/// `true` when the return type mentions `impl Trait` (it cannot be named inside the
/// body, so the closure's type is left to inference).
fn mentions_impl(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "impl",
        TokenTree::Group(g) => mentions_impl(g.stream()),
        _ => false,
    })
}

fn generate(kind: MacroKind, args: &TraceArgs, func: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let site = Span::mixed_site();
    let call = format_ident!("__loggier_call", span = site);
    let c = format_ident!("__loggier_c", span = site);
    let g = format_ident!("__loggier_g", span = site);
    let body = format_ident!("__loggier_body", span = site);
    let ret = format_ident!("__loggier_ret", span = site);
    let exc = format_ident!("__loggier_exc", span = site);

    let meta = meta_tokens(kind, args);

    // Arguments recorded when asked: named ones only (`self` never).
    let (args_field, return_field) = capture_fields(kind, args);
    let arg_captures: Vec<TokenStream> = if args_field.is_some() {
        sig.inputs
            .iter()
            .filter_map(|a| match a {
                FnArg::Typed(t) => match &*t.pat {
                    Pat::Ident(p) => Some(p.ident.clone()),
                    _ => None,
                },
                FnArg::Receiver(_) => None,
            })
            .map(|ident| {
                let name = ident.to_string();
                quote! {
                    #c.arg(#name, || {
                        #[allow(unused_imports)]
                        use ::loggier_core::__private::probe::{DebugViaAny as _, DebugViaDebug as _};
                        (&&::loggier_core::__private::probe::DebugProbe(&#ident)).loggier_debug()
                    });
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let capture_args = if arg_captures.is_empty() {
        quote!()
    } else {
        quote! {
            if let ::core::option::Option::Some(#c) = &mut #call {
                #(#arg_captures)*
            }
        }
    };
    let ret_capture = if return_field.is_some() {
        quote! {
            || {
                #[allow(unused_imports)]
                use ::loggier_core::__private::probe::{DebugViaAny as _, DebugViaDebug as _};
                ::core::option::Option::Some(
                    (&&::loggier_core::__private::probe::DebugProbe(&#ret)).loggier_debug(),
                )
            }
        }
    } else {
        quote!(|| ::core::option::Option::None)
    };
    let probe_exc = quote! {
        let #exc = {
            #[allow(unused_imports)]
            use ::loggier_core::__private::probe::{
                ExcViaAny as _, ExcViaDebug as _, ExcViaDerefError as _,
                ExcViaDerefSendSync as _, ExcViaError as _, ExcViaResult as _,
            };
            (&&&&&&::loggier_core::__private::probe::Probe(&#ret)).loggier_exception()
        };
    };

    let ret_ty = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, t) => quote!(#t),
    };
    let nameable = !mentions_impl(ret_ty.clone());

    let inner = if sig.asyncness.is_some() {
        let fut = if nameable {
            quote!(::loggier_core::__private::typed_future::<#ret_ty, _>(async move #block))
        } else {
            quote!(async move #block)
        };
        quote! {
            let (#ret, #g) = ::loggier_core::__private::timed(#call, #fut).await;
            if let ::core::option::Option::Some(#g) = #g {
                #probe_exc
                #g.finish(#exc, #ret_capture);
            }
            #ret
        }
    } else {
        let f = if nameable {
            quote!(::loggier_core::__private::typed_fn::<#ret_ty, _>(move || #block))
        } else {
            quote!(move || #block)
        };
        quote! {
            let #body = #f;
            match #call {
                ::core::option::Option::None => #body(),
                ::core::option::Option::Some(#c) => {
                    let mut #g = #c.enter();
                    let #ret = #g.catch(#body);
                    #probe_exc
                    #g.finish(#exc, #ret_capture);
                    #ret
                }
            }
        }
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            #[allow(non_snake_case, dead_code)]
            fn __loggier_here() {}
            static __LOGGIER_META: ::loggier_core::__private::CallMeta = #meta;
            #[allow(unused_mut)]
            let mut #call = ::loggier_core::__private::Call::start(
                &__LOGGIER_META,
                ::core::any::type_name_of_val(&__loggier_here),
            );
            #capture_args
            #inner
        }
    }
}

/// Context keys for recorded arguments and return value, per attribute and options.
fn capture_fields(
    kind: MacroKind,
    args: &TraceArgs,
) -> (Option<&'static str>, Option<&'static str>) {
    match kind {
        MacroKind::Function => (
            args.include_args.then_some("args"),
            args.include_return.then_some("return"),
        ),
        MacroKind::Http => (
            args.include_body.then_some("request"),
            args.include_body.then_some("response"),
        ),
        MacroKind::Database => (args.include_params.then_some("params"), None),
        MacroKind::CaptureExceptions => (None, None),
    }
}

fn meta_tokens(kind: MacroKind, args: &TraceArgs) -> TokenStream {
    let name = match &args.name {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let call_kind = match kind {
        MacroKind::Function => {
            quote!(::loggier_core::__private::CallKind::Timing(
                ::loggier_core::TimingKind::Function
            ))
        }
        MacroKind::Http => {
            quote!(::loggier_core::__private::CallKind::Timing(
                ::loggier_core::TimingKind::Http
            ))
        }
        MacroKind::Database => {
            quote!(::loggier_core::__private::CallKind::Timing(
                ::loggier_core::TimingKind::Database
            ))
        }
        MacroKind::CaptureExceptions => quote!(::loggier_core::__private::CallKind::Exceptions),
    };
    let threshold = args
        .threshold_ms
        .unwrap_or_else(|| kind.default_threshold_ms());
    let default_level = if kind == MacroKind::CaptureExceptions {
        "error"
    } else {
        "info"
    };
    let level_name = args
        .level
        .as_ref()
        .map_or(default_level, |(l, _)| l.as_str());
    let level = match level_name {
        "trace" => quote!(Trace),
        "debug" => quote!(Debug),
        "warning" | "warn" => quote!(Warning),
        "error" => quote!(Error),
        "critical" => quote!(Critical),
        _ => quote!(Info),
    };
    let tags = &args.tags;
    let extra: Vec<_> = args.mask_headers.iter().chain(&args.mask_params).collect();
    let (args_field, return_field) = capture_fields(kind, args);
    let opt = |v: Option<&str>| match v {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    };
    let args_field = opt(args_field);
    let return_field = opt(return_field);
    quote! {
        ::loggier_core::__private::CallMeta {
            name: #name,
            kind: #call_kind,
            threshold_ms: #threshold,
            level: ::loggier_core::Level::#level,
            tags: &[#(#tags),*],
            extra_sensitive: &[#(#extra),*],
            args_field: #args_field,
            return_field: #return_field,
            logger: ::core::module_path!(),
        }
    }
}
