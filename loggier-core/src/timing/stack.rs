//! The timing stack: which timing encloses the code running on this thread, so a
//! nested timing can name its parent.
//!
//! A synchronous timed call pushes its id for the duration of the call; an `async`
//! timed call pushes it around every `poll` of its future (the same scheme tokio's
//! task-locals use, so the frame follows the future across `.await` and never leaks
//! into other tasks). Each entry remembers the request id of the scope it started
//! in: when the code now runs under another request (a request served inside a timed
//! call), the request wins as the parent.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::context::ScopeFrame;

struct Entry {
    id: u64,
    scope: Option<Arc<ScopeFrame>>,
}

thread_local! {
    static STACK: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// What encloses a timing: another timing (its id) or a request (its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parent {
    /// The enclosing timed call or timer.
    Timing(u64),
    /// The request whose scope the timing runs in.
    Request(String),
}

impl Parent {
    /// The wire form: a timing id as 16 hex chars, a request id as is.
    pub(crate) fn render(&self) -> String {
        match self {
            Parent::Timing(id) => render_id(*id),
            Parent::Request(r) => r.clone(),
        }
    }
}

/// A timing id as it appears on the wire: 16 lower-case hex characters (the shape of
/// a W3C span id).
pub(crate) fn render_id(id: u64) -> String {
    format!("{id:016x}")
}

/// A fresh non-zero timing id.
pub(crate) fn new_id() -> u64 {
    fastrand::u64(1..)
}

/// The parent of a timing starting now in `scope`: the innermost timing on this
/// thread when it started under the same request, else the scope's request id.
pub(crate) fn parent_for(scope: Option<&ScopeFrame>) -> Option<Parent> {
    let request = scope.and_then(ScopeFrame::request_id);
    let top = STACK
        .try_with(|s| {
            s.borrow().last().and_then(|e| {
                let same_request = e.scope.as_deref().and_then(ScopeFrame::request_id) == request;
                same_request.then_some(e.id)
            })
        })
        .ok()
        .flatten();
    match top {
        Some(id) => Some(Parent::Timing(id)),
        None => request.map(|r| Parent::Request(r.to_string())),
    }
}

/// Pushes timing `id` (started in `scope`) until the returned guard drops.
pub(crate) fn push(id: u64, scope: Option<Arc<ScopeFrame>>) -> StackGuard {
    let depth = STACK
        .try_with(|s| {
            let mut s = s.borrow_mut();
            s.push(Entry { id, scope });
            s.len()
        })
        .unwrap_or(0);
    StackGuard {
        depth,
        _not_send: PhantomData,
    }
}

/// Pops the entry pushed by [`push`] (and anything pushed above it and not popped).
#[derive(Debug)]
pub(crate) struct StackGuard {
    depth: usize,
    _not_send: PhantomData<*const ()>,
}

impl Drop for StackGuard {
    fn drop(&mut self) {
        let depth = self.depth;
        if depth == 0 {
            return;
        }
        let _ = STACK.try_with(|s| s.borrow_mut().truncate(depth - 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Scope;

    #[test]
    fn innermost_timing_is_the_parent_within_one_request() {
        let frame = Scope::new().request_id("req-1").into_frame();
        assert_eq!(
            parent_for(Some(&frame)),
            Some(Parent::Request("req-1".into()))
        );
        let outer = push(7, Some(Arc::clone(&frame)));
        assert_eq!(parent_for(Some(&frame)), Some(Parent::Timing(7)));
        {
            let _inner = push(9, Some(Arc::clone(&frame)));
            assert_eq!(parent_for(Some(&frame)), Some(Parent::Timing(9)));
            // A request served inside the timed call: the request is the parent.
            let other = Scope::new().request_id("req-2").into_frame();
            assert_eq!(
                parent_for(Some(&other)),
                Some(Parent::Request("req-2".into()))
            );
        }
        assert_eq!(parent_for(Some(&frame)), Some(Parent::Timing(7)));
        drop(outer);
        assert_eq!(parent_for(None), None);
    }

    #[test]
    fn ids_render_as_16_hex_chars() {
        assert_eq!(render_id(0xabc), "0000000000000abc");
        assert_eq!(Parent::Timing(1).render().len(), 16);
    }
}
