//! Body wrappers: [`ResponseBody`] (emits the record when the response body ends or
//! is dropped) and the request payload wrapper (copies the request body as the
//! handler reads it).

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_core::Stream;
use loggier_core::http::BodyCapture;

use crate::capture::{Pending, SharedCapture};

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        // The inner body, polled chunk by chunk.
        Wrapped { #[pin] body: B },
        // A sized body that was complete in memory when the response was produced
        // (`MessageBody::try_into_bytes`): the record, if any, is already emitted.
        // Yields its bytes in one chunk, then ends (as `Bytes` does).
        Complete { bytes: Bytes },
    }
}

pin_project_lite::pin_project! {
    /// The response body of a request that passed through [`Loggier`](crate::Loggier):
    /// yields the inner body's chunks unchanged and as soon as they come (no
    /// buffering), copies at most `max_body_size` bytes of them when the response
    /// body is captured, and emits the request's record when the body ends — or, when
    /// it is dropped before its end (client disconnect, server shutdown), on drop with
    /// `response_aborted: true`.
    ///
    /// A sized body that is already complete in memory (a `Bytes`, `String` or
    /// `&'static str` body, also inside a `BoxBody`) is taken out of its wrapper when
    /// the response is produced: the record is decided (and its body copied) then,
    /// and this body only hands the bytes on, in one chunk.
    ///
    /// Not `Send` (neither are actix-web bodies in general): it lives on the worker
    /// that serves the request.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
        pending: Option<Box<Pending>>,
        // The inner body's size hint when the response was produced.
        size: BodySize,
        // Bytes yielded so far.
        sent_bytes: u64,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(pending) = this.pending.take() {
                // The dispatcher drops bodies of size 0 without polling them, and a
                // sized body is complete once all its bytes went out.
                let complete = match *this.size {
                    BodySize::None => true,
                    BodySize::Sized(n) => *this.sent_bytes >= n,
                    BodySize::Stream => false,
                };
                Pending::emit(*pending, !complete);
            }
        }
    }
}

impl<B: MessageBody> ResponseBody<B> {
    /// A body that records `pending` when it ends (or a plain pass-through when
    /// `pending` is `None`: excluded paths).
    pub(crate) fn new(body: B, pending: Option<Box<Pending>>) -> Self {
        let size = body.size();
        ResponseBody {
            kind: Kind::Wrapped { body },
            pending,
            size,
            sent_bytes: 0,
        }
    }

    /// The complete bytes of a sized body whose request was already decided on.
    pub(crate) fn complete(bytes: Bytes) -> Self {
        let size = bytes.size();
        ResponseBody {
            kind: Kind::Complete { bytes },
            pending: None,
            size,
            sent_bytes: 0,
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("size", &self.size)
            .field("sent_bytes", &self.sent_bytes)
            .field("recording", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: MessageBody> MessageBody for ResponseBody<B> {
    type Error = B::Error;

    #[inline]
    fn size(&self) -> BodySize {
        match &self.kind {
            Kind::Wrapped { body } => body.size(),
            Kind::Complete { bytes } => bytes.size(),
        }
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let body = match this.kind.project() {
            KindProj::Wrapped { body } => body,
            KindProj::Complete { bytes } => {
                return Poll::Ready((!bytes.is_empty()).then(|| Ok(std::mem::take(bytes))));
            }
        };
        let item = ready!(body.poll_next(cx));
        match &item {
            Some(Ok(chunk)) => {
                *this.sent_bytes = this
                    .sent_bytes
                    .saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
                if let Some(pending) = this.pending {
                    pending.on_chunk(chunk);
                }
            }
            // The body failed: the client gets a cut-off response.
            Some(Err(_)) => {
                if let Some(pending) = this.pending.take() {
                    Pending::emit(*pending, true);
                }
            }
            None => {
                if let Some(pending) = this.pending.take() {
                    Pending::emit(*pending, false);
                }
            }
        }
        Poll::Ready(item)
    }

    fn try_into_bytes(mut self) -> Result<Bytes, Self> {
        match &mut self.kind {
            // Its request is decided on already: nothing left to record.
            Kind::Complete { bytes } => Ok(std::mem::take(bytes)),
            Kind::Wrapped { .. } => Err(self),
        }
    }
}

/// The request payload, copied into a [`BodyCapture`] (at most its limit) as the
/// handler reads it. Replaces the request's payload only when request bodies are
/// captured.
pub(crate) struct RequestBody {
    payload: Payload,
    capture: SharedCapture,
}

impl RequestBody {
    /// Wraps `payload`; returns the payload to put back on the request and the shared
    /// copy for the record.
    pub(crate) fn wrap(payload: Payload, capture: BodyCapture) -> (Payload, SharedCapture) {
        let shared = Rc::new(RefCell::new(Some(capture)));
        let stream = RequestBody {
            payload,
            capture: Rc::clone(&shared),
        };
        let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
        (Payload::from(boxed), shared)
    }
}

impl Stream for RequestBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(Pin::new(&mut self.payload).poll_next(cx));
        if let Some(Ok(chunk)) = &item {
            if let Ok(mut slot) = self.capture.try_borrow_mut() {
                if let Some(capture) = slot.as_mut() {
                    capture.push(chunk);
                }
            }
        }
        Poll::Ready(item)
    }
}
