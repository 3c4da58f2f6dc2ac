//! Autoref-specialisation probes used by the generated code: "is this return value an
//! `Err`, and how do I describe it?" and "format this value with `Debug` if it has
//! one". The method is called on `&&&&&&Probe(&value)`; the impl with the most `&`
//! that applies wins, so the best description the type allows is used:
//!
//! 1. `Result<T, E>` with `E: std::error::Error + 'static`: type, message and the
//!    whole `source()` chain ([`Exception::from_error`]);
//! 2. `E: Deref<Target = dyn Error + Send + Sync>` (`anyhow::Error`,
//!    `Box<dyn Error + Send + Sync>`): the same, through the trait object;
//! 3. `E: Deref<Target = dyn Error>` (`Box<dyn Error>`): the same;
//! 4. `E: Debug`: the type name and the `Debug` text (no chain);
//! 5. any other `E`: the type name only;
//! 6. not a `Result`: no error.
//!
//! For a generic `E` only the bounds visible in the function apply (an unbounded `E`
//! is described by its type name).

use std::error::Error as StdError;
use std::fmt::Debug;
use std::ops::Deref;

use crate::record::Exception;

/// Wraps a return value for the exception probes.
#[derive(Debug)]
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// Level 1: `E: Error + 'static`.
pub trait ExcViaError {
    /// The `Err` described, or `None` for `Ok`.
    fn loggier_exception(&self) -> Option<Exception>;
}
impl<T, E: StdError + 'static> ExcViaError for &&&&&Probe<'_, Result<T, E>> {
    fn loggier_exception(&self) -> Option<Exception> {
        self.0.as_ref().err().map(Exception::from_error)
    }
}

/// Level 2: `E: Deref<Target = dyn Error + Send + Sync>`.
pub trait ExcViaDerefSendSync {
    /// The `Err` described, or `None` for `Ok`.
    fn loggier_exception(&self) -> Option<Exception>;
}
impl<T, E> ExcViaDerefSendSync for &&&&Probe<'_, Result<T, E>>
where
    E: Deref<Target = dyn StdError + Send + Sync + 'static>,
{
    fn loggier_exception(&self) -> Option<Exception> {
        self.0.as_ref().err().map(|e| Exception::from_error(&**e))
    }
}

/// Level 3: `E: Deref<Target = dyn Error>`.
pub trait ExcViaDerefError {
    /// The `Err` described, or `None` for `Ok`.
    fn loggier_exception(&self) -> Option<Exception>;
}
impl<T, E> ExcViaDerefError for &&&Probe<'_, Result<T, E>>
where
    E: Deref<Target = dyn StdError + 'static>,
{
    fn loggier_exception(&self) -> Option<Exception> {
        self.0.as_ref().err().map(|e| Exception::from_error(&**e))
    }
}

/// Level 4: `E: Debug`.
pub trait ExcViaDebug {
    /// The `Err` described, or `None` for `Ok`.
    fn loggier_exception(&self) -> Option<Exception>;
}
impl<T, E: Debug> ExcViaDebug for &&Probe<'_, Result<T, E>> {
    fn loggier_exception(&self) -> Option<Exception> {
        self.0
            .as_ref()
            .err()
            .map(|e| Exception::new(std::any::type_name::<E>(), format!("{e:?}")))
    }
}

/// Level 5: any `Result`.
pub trait ExcViaResult {
    /// The `Err` described, or `None` for `Ok`.
    fn loggier_exception(&self) -> Option<Exception>;
}
impl<T, E> ExcViaResult for &Probe<'_, Result<T, E>> {
    fn loggier_exception(&self) -> Option<Exception> {
        self.0.as_ref().err().map(|_| {
            let name = std::any::type_name::<E>();
            Exception::new(name, format!("{name} (no Debug)"))
        })
    }
}

/// Level 6: not a `Result`.
pub trait ExcViaAny {
    /// Always `None`.
    fn loggier_exception(&self) -> Option<Exception>;
}
impl<T: ?Sized> ExcViaAny for Probe<'_, T> {
    fn loggier_exception(&self) -> Option<Exception> {
        None
    }
}

/// Wraps an argument or return value for the `Debug` probes.
#[derive(Debug)]
pub struct DebugProbe<'a, T: ?Sized>(pub &'a T);

/// `T: Debug`: its `{:?}` text.
pub trait DebugViaDebug {
    /// The value's `Debug` text.
    fn loggier_debug(&self) -> String;
}
impl<T: Debug + ?Sized> DebugViaDebug for &DebugProbe<'_, T> {
    fn loggier_debug(&self) -> String {
        format!("{:?}", self.0)
    }
}

/// Any other `T`: `<TypeName without Debug>`.
pub trait DebugViaAny {
    /// A placeholder naming the type.
    fn loggier_debug(&self) -> String;
}
impl<T: ?Sized> DebugViaAny for DebugProbe<'_, T> {
    fn loggier_debug(&self) -> String {
        format!("<{} without Debug>", std::any::type_name::<T>())
    }
}

#[cfg(test)]
#[allow(clippy::needless_borrow)] // the borrows select the impl
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("inner cause")
        }
    }
    impl StdError for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("outer failure")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    struct NoDebug;

    #[test]
    fn each_level_is_picked_for_its_type() {
        let r: Result<(), Outer> = Err(Outer(Inner));
        let e = (&&&&&&Probe(&r)).loggier_exception().expect("err");
        assert_eq!(e.message, "outer failure");
        assert_eq!(e.chain[0].message, "inner cause");

        let r: Result<(), Box<dyn StdError + Send + Sync>> = Err(Box::new(Outer(Inner)));
        let e = (&&&&&&Probe(&r)).loggier_exception().expect("err");
        assert_eq!(e.chain.len(), 1);

        let r: Result<(), Box<dyn StdError>> = Err(Box::new(Outer(Inner)));
        let e = (&&&&&&Probe(&r)).loggier_exception().expect("err");
        assert_eq!(e.message, "outer failure");

        let r: Result<(), &str> = Err("bad input");
        let e = (&&&&&&Probe(&r)).loggier_exception().expect("err");
        assert_eq!(e.message, "\"bad input\"");
        assert_eq!(e.type_name, "&str");

        let r: Result<(), NoDebug> = Err(NoDebug);
        assert!((&&&&&&Probe(&r)).loggier_exception().is_some());

        let ok: Result<u8, Outer> = Ok(1);
        assert!((&&&&&&Probe(&ok)).loggier_exception().is_none());
        assert!((&&&&&&Probe(&5u8)).loggier_exception().is_none());
    }

    #[test]
    fn debug_or_placeholder() {
        assert_eq!((&&DebugProbe(&vec![1, 2])).loggier_debug(), "[1, 2]");
        assert!(
            (&&DebugProbe(&NoDebug))
                .loggier_debug()
                .ends_with("NoDebug without Debug>")
        );
    }
}
