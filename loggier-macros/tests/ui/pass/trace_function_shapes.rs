//! Every function shape `#[trace_function]` must accept.
#![deny(warnings)]

use std::error::Error;
use std::fmt::Debug;

use loggier_core::trace_function;

#[trace_function]
fn unit() {}

#[trace_function(name = "all", threshold_ms = 0, tags = ["a", "b"], include_args = true, include_return = true, level = "debug")]
pub fn all_options(a: u32, (b, c): (u8, u8)) -> u32 {
    a + u32::from(b) + u32::from(c)
}

#[trace_function(log_level = "warning")]
fn seeds_spelling() {}

#[trace_function(threshold_ms = 10)]
fn early(x: i32) -> &'static str {
    if x < 0 {
        return "negative";
    }
    "non-negative"
}

#[trace_function]
fn question(text: &str) -> Result<u16, Box<dyn Error + Send + Sync>> {
    let n: u16 = text.parse()?;
    Ok(n.checked_mul(2).ok_or("overflow")?)
}

#[trace_function]
fn io_question(path: &str) -> std::io::Result<usize> {
    Ok(std::fs::read(path)?.len())
}

#[trace_function(include_args = true, include_return = true)]
fn generic<T: Debug + Clone, const N: usize>(xs: [T; N]) -> Vec<T>
where
    T: PartialEq,
{
    xs.to_vec()
}

#[trace_function]
fn unbounded_err<E>(e: E) -> Result<(), E> {
    Err(e)
}

#[trace_function]
fn returns_impl(n: u32) -> impl Iterator<Item = u32> + Clone {
    (0..n).map(|x| x * 2)
}

#[trace_function]
fn first_word<'a>(s: &'a str) -> &'a str {
    s.split(' ').next().unwrap_or(s)
}

#[trace_function]
fn takes_impl(v: impl Into<String>, f: impl Fn(u8) -> u8) -> String {
    let _ = f(1);
    v.into()
}

#[trace_function]
async fn async_unit() {}

#[trace_function(include_args = true)]
async fn async_question(text: String) -> Result<u8, std::num::ParseIntError> {
    let v = text.parse::<u8>()?;
    Ok(v)
}

#[trace_function]
async fn async_borrow<'a>(s: &'a str) -> &'a str {
    s
}

#[trace_function]
async fn async_impl() -> impl Debug {
    5u8
}

#[derive(Debug, Default, Clone)]
struct Store {
    name: String,
    hits: u32,
}

impl Store {
    #[trace_function]
    fn new() -> Self {
        Self::default()
    }

    #[trace_function(include_return = true)]
    fn name(&self) -> &str {
        &self.name
    }

    #[trace_function]
    fn hit(&mut self) -> u32 {
        self.hits += 1;
        self.hits
    }

    #[trace_function]
    fn into_name(self) -> String {
        self.name
    }

    #[trace_function]
    async fn async_hit(&mut self) -> u32 {
        self.hits += 1;
        self.hits
    }

    #[trace_function]
    fn assoc_generic<T: Default>() -> T {
        T::default()
    }
}

trait Repo {
    fn load(&self, id: u64) -> Option<String>;
    fn count(&self) -> usize {
        0
    }
}

impl Repo for Store {
    #[trace_function]
    fn load(&self, id: u64) -> Option<String> {
        (id == 1).then(|| self.name.clone())
    }

    #[trace_function]
    fn count(&self) -> usize {
        self.hits as usize
    }
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    unit();
    seeds_spelling();
    assert_eq!(all_options(1, (2, 3)), 6);
    assert_eq!(early(-1), "negative");
    assert!(question("x").is_err());
    assert!(io_question("/nonexistent/file").is_err());
    assert_eq!(generic([1, 2]), vec![1, 2]);
    assert_eq!(unbounded_err::<u8>(3), Err(3));
    assert_eq!(returns_impl(3).count(), 3);
    assert_eq!(first_word("a b"), "a");
    assert_eq!(takes_impl("x", |b| b), "x");
    let mut s = Store::new();
    assert_eq!(s.hit(), 1);
    assert_eq!(s.name(), "");
    assert_eq!(s.load(2), None);
    assert_eq!(s.count(), 1);
    assert_eq!(Store::assoc_generic::<u8>(), 0);
    let fut = async_question("7".to_string());
    assert_send(&fut);
    drop(fut);
    drop(async_unit());
    drop(async_borrow("x"));
    drop(async_impl());
    drop(s.async_hit());
    assert_eq!(s.into_name(), "");
}
