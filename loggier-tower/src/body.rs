//! Body wrappers: [`RequestBody`] tees the request body into a bounded copy,
//! [`ResponseBody`] tees the response body and emits the transaction record when the
//! body ends or is dropped.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Buf;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use loggier_core::Loggier;
use loggier_core::context::{enter_frame, in_request_frame};

use crate::service::{body_frame, polling_body};
use loggier_core::http::{
    BodyCapture, CaptureSettings, Exchange, HeaderEntry, PanicCapture, RequestView,
    take_request_panic,
};

/// Where a [`RequestBody`] leaves its copy when it ends or is dropped, for the response
/// side to pick up. Locked twice per request (deposit, take), never per frame.
pub(crate) type BodySlot = Arc<Mutex<Option<BodyCapture>>>;

pub(crate) fn take_slot(slot: &BodySlot) -> Option<BodyCapture> {
    match slot.lock() {
        Ok(mut g) => g.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    }
}

fn put_slot(slot: &BodySlot, capture: BodyCapture) {
    match slot.lock() {
        Ok(mut g) => *g = Some(capture),
        Err(poisoned) => *poisoned.into_inner() = Some(capture),
    }
}

/// Copies the bytes of a data frame into `capture` without consuming them. A `Buf`
/// made of several chunks is copied chunk by chunk (up to 64); bytes past those are
/// counted, not copied.
fn tee<D: Buf>(capture: &mut BodyCapture, data: &D) {
    let first = data.chunk();
    if first.len() == data.remaining() {
        capture.push(first);
        return;
    }
    let mut slices = [std::io::IoSlice::new(&[]); 64];
    let n = data.chunks_vectored(&mut slices);
    let mut seen = 0usize;
    for s in &slices[..n] {
        capture.push(s);
        seen += s.len();
    }
    capture.skip(data.remaining().saturating_sub(seen));
}

pin_project_lite::pin_project! {
    /// The request body as the inner service sees it: the original body, plus — when
    /// `capture_request_body` is on, or the request's endpoint may ask for it
    /// (`#[track_endpoint(capture_request_body = true)]`) — a bounded copy taken as
    /// frames pass (never collected or delayed; chunked bodies included; freed early
    /// when the endpoint turns out not to want it). The copy is handed over when
    /// the body ends or is dropped; a handler that still holds an unfinished request
    /// body when its response ends gets a record without the request body.
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        capture: Option<(BodyCapture, BodySlot)>,
    }

    impl<B> PinnedDrop for RequestBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((capture, slot)) = this.project().capture.take() {
                put_slot(&slot, capture);
            }
        }
    }
}

impl<B> RequestBody<B> {
    /// A body that is passed through untouched.
    pub(crate) fn passthrough(inner: B) -> Self {
        RequestBody {
            inner,
            capture: None,
        }
    }

    pub(crate) fn capturing(inner: B, capture: BodyCapture, slot: BodySlot) -> Self {
        RequestBody {
            inner,
            capture: Some((capture, slot)),
        }
    }

    /// `true` when this body copies what passes (the request body may end up in the
    /// record).
    pub fn is_capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// The original body, when this one copies nothing (then it is the original body
    /// unchanged, and a framework that needs its own body type can take it back
    /// instead of boxing this wrapper); `Err(self)` when it copies.
    ///
    /// # Errors
    /// `Err(self)` when [`is_capturing`](Self::is_capturing).
    pub fn into_inner(self) -> Result<B, Self>
    where
        B: Default,
    {
        if self.capture.is_some() {
            return Err(self);
        }
        let mut this = self;
        Ok(std::mem::take(&mut this.inner))
    }
}

impl<B: fmt::Debug> fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("inner", &self.inner)
            .field("capturing", &self.capture.is_some())
            .finish()
    }
}

impl<B: Body> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Some((capture, _)) = this.capture.as_mut() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        tee(capture, data);
                    }
                }
                Poll::Ready(None | Some(Err(_))) => {
                    if let Some((capture, slot)) = this.capture.take() {
                        put_slot(&slot, capture);
                    }
                }
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Headers a [`HeaderSnapshot`] holds without an allocation of its own (in the
/// box it lives in); a map with more spills into one. Bounded by the size of
/// [`Pending`], which holds one inline (see the test
/// `pending_fits_the_allocators_fast_path`).
const INLINE_HEADERS: usize = 6;

/// The headers of a request or response that moved on (into the inner service, or
/// to the server), kept for the record: a flat list of the map's name/value handles
/// (names of standard headers are plain values, everything else shares the map's
/// reference-counted bytes), in the map's iteration order. No byte copies, no hash
/// index, and no allocation for up to [`INLINE_HEADERS`] headers; turned into text
/// only when the request is recorded.
#[derive(Debug, Default)]
pub(crate) struct HeaderSnapshot {
    list: smallvec::SmallVec<[(http::HeaderName, http::HeaderValue); INLINE_HEADERS]>,
    /// The request id header inserted after the snapshot was taken (the response
    /// echo): its value is the request id, given to [`entries`](Self::entries).
    echo: Option<http::HeaderName>,
}

impl HeaderSnapshot {
    pub(crate) fn of(map: &HeaderMap) -> Self {
        let mut snapshot = HeaderSnapshot::default();
        snapshot.fill(map);
        snapshot
    }

    /// Adds the entries of `map` (to an empty snapshot: [`of`](Self::of) in place,
    /// so a snapshot inside a box is not built elsewhere and moved in).
    pub(crate) fn fill(&mut self, map: &HeaderMap) {
        self.list.reserve(map.len());
        self.list
            .extend(map.iter().map(|(n, v)| (n.clone(), v.clone())));
    }

    /// Notes that `name` was then `insert`ed into the map with the request id header
    /// value (given to [`entries`](Self::entries)): it replaces the values of that
    /// name (keeping the first one's place) or goes last.
    pub(crate) fn echo(&mut self, name: http::HeaderName) {
        self.echo = Some(name);
    }

    /// The entries, as [`loggier_core::http::header_entries`] yields them for the map
    /// (`echoed` is the inserted value, when [`echo`](Self::echo) was called).
    pub(crate) fn entries<'a>(&'a self, echoed: &'a [u8]) -> impl Iterator<Item = HeaderEntry<'a>> {
        let echo = self.echo.as_ref();
        let echoed = HeaderEntry {
            name: echo.map_or("", http::HeaderName::as_str),
            value: echoed,
            sensitive: false,
        };
        let mut placed = false;
        let listed = self.list.iter().filter_map(move |(n, v)| {
            if Some(n) != echo {
                return Some(HeaderEntry {
                    name: n.as_str(),
                    value: v.as_bytes(),
                    sensitive: v.is_sensitive(),
                });
            }
            (!std::mem::replace(&mut placed, true)).then_some(echoed)
        });
        let present = echo.is_some_and(|e| self.list.iter().any(|(n, _)| n == e));
        let last = (echo.is_some() && !present).then_some(echoed);
        listed.chain(last)
    }
}

/// `true` when this request's headers are turned into the record's form right away
/// ([`Exchange::keep_request_headers`]) instead of kept as a [`HeaderSnapshot`]: the
/// request is sure to be recorded (access-log mode, records at info level and above
/// logged), so the text is built either way and the copy would only be built and
/// dropped on top.
pub(crate) fn keeps_headers(settings: &CaptureSettings, loggier: &Loggier) -> bool {
    settings.capture_request_data()
        && settings.log_all_requests()
        && loggier.enabled(loggier_core::Level::Info)
}

/// What the request side left for the response side: the request facts needed to
/// build the record, kept only as long as the request is in flight.
#[derive(Debug)]
pub(crate) struct RequestSnapshot {
    pub(crate) method: http::Method,
    /// The URI's path and query (all the record takes from it: no scheme or
    /// authority to clone and drop), `None` where [`http::Uri::path_and_query`]
    /// has none (then the path is empty, as [`http::Uri::path`] says).
    pub(crate) path_and_query: Option<http::uri::PathAndQuery>,
    /// Empty unless `capture_request_data`, and when the headers were kept in the
    /// exchange instead ([`keeps_headers`]).
    pub(crate) headers: HeaderSnapshot,
    pub(crate) client_ip: Option<std::net::IpAddr>,
    pub(crate) body: Option<BodySlot>,
}

impl RequestSnapshot {
    /// The path, as [`http::Uri::path`] gives it.
    fn path(&self) -> &str {
        self.path_and_query
            .as_ref()
            .map_or("", http::uri::PathAndQuery::path)
    }

    /// The query, as [`http::Uri::query`] gives it.
    fn query(&self) -> Option<&str> {
        self.path_and_query
            .as_ref()
            .and_then(http::uri::PathAndQuery::query)
    }
}

/// Everything needed to finish one captured request, boxed once: the response future
/// and then the response body carry it (so both stay small to move). The request's
/// scope frame is the exchange's ([`Exchange::frame`]).
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) loggier: Loggier,
    pub(crate) exchange: Exchange,
    pub(crate) request: RequestSnapshot,
    /// The response body copy, when body capture applies (set with the response).
    pub(crate) tee: Option<BodyCapture>,
    /// The response headers, when copied (set with the response; boxed: most
    /// responses are not copied, and the request's snapshot is inline already).
    pub(crate) response_headers: Option<Box<HeaderSnapshot>>,
    /// The request id header value to echo, when it is the incoming one (else it
    /// is made from the generated id when the response arrives). Once the response
    /// is there: the echoed value, when the response headers were copied before
    /// the echo ([`HeaderSnapshot::echo`]).
    pub(crate) echo: Option<http::HeaderValue>,
    /// The service inserts no context extension: polls of the handler enter
    /// [`serving`](crate::service::serving) so `request_context` finds the client.
    pub(crate) serving: bool,
}

impl Pending {
    /// Decides and, when recorded, builds and submits the record. Never panics (it
    /// runs inside `Drop`, possibly while unwinding).
    pub(crate) fn finish(mut self: Box<Self>, aborted: bool) {
        // Worked on in its box: a request that is not recorded (the usual one) is
        // decided without moving the whole state out.
        let this = &mut *self;
        // Dropped while unwinding, or right after the runtime caught a panic of this
        // request's handler: the hook left its message and backtrace on this thread.
        if (aborted || std::thread::panicking()) && !this.exchange.has_failed() {
            if let Some(p) = take_request_panic() {
                this.exchange.set_panic(p.message, Some(&p.backtrace));
            }
        }
        if aborted {
            this.exchange.set_aborted();
        }
        if let Some(body) = this.tee.take() {
            this.exchange.set_response_body(body);
        }
        if let Some(body) = this.request.body.as_ref().and_then(take_slot) {
            this.exchange.set_request_body(body);
        }
        let Some(level) = this.exchange.finish() else {
            return;
        };
        if !this.loggier.enabled(level) {
            return;
        }
        // Only the exchange moves out (`into_record` takes it); the rest is read
        // where it is and dropped with the box.
        // The request's frame is not built for it (the record takes the request
        // id from the exchange; the echoed header value is kept here).
        let exchange = self.exchange;
        let (loggier, req, response_headers) =
            (&self.loggier, &self.request, &self.response_headers);
        let echoed = self
            .echo
            .as_ref()
            .map_or(&[][..], http::HeaderValue::as_bytes);
        let view = RequestView {
            method: req.method.as_str(),
            path: req.path(),
            query: req.query(),
            client_ip: req.client_ip,
        };
        let record = exchange.into_record(
            level,
            view,
            req.headers.entries(&[]),
            response_headers.iter().flat_map(|h| h.entries(echoed)),
        );
        loggier.log(record);
    }
}

pin_project_lite::pin_project! {
    /// The response body: the inner body's frames pass through unchanged (never
    /// collected or delayed; streaming and SSE keep working); when body capture applies
    /// a bounded copy is taken as they pass. Polled inside the request's scope, so
    /// logging from a streaming body carries the request id.
    ///
    /// The transaction record is emitted when the body ends, fails, or is dropped
    /// before its end (client disconnect: the record notes `response_aborted`), so the
    /// duration covers the whole response.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        state: Option<Box<Pending>>,
        // The inner body reported end-of-stream before it was ever polled.
        empty: bool,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(state) = this.state.take() {
                state.finish(!*this.empty);
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn passthrough(inner: B) -> Self {
        ResponseBody {
            inner,
            state: None,
            empty: false,
        }
    }

    pub(crate) fn captured(inner: B, state: Box<Pending>, empty: bool) -> Self {
        ResponseBody {
            inner,
            state: Some(state),
            empty,
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("captured", &self.state.is_some())
            .finish()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(state) = this.state.as_mut() else {
            return this.inner.poll_frame(cx);
        };
        let polled = {
            let _panics = PanicCapture::enter();
            let inner = this.inner.as_mut();
            match state.exchange.built_frame() {
                Some(frame) => {
                    let _scope = enter_frame(frame);
                    inner.poll_frame(cx)
                }
                // Not asked for so far: built only if the body asks.
                None => polling_body(state, || {
                    in_request_frame(body_frame, || inner.poll_frame(cx))
                }),
            }
        };
        let done = match &polled {
            Poll::Pending => false,
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(tee_buf), Some(data)) = (state.tee.as_mut(), frame.data_ref()) {
                    tee(tee_buf, data);
                }
                this.inner.is_end_stream()
            }
            Poll::Ready(Some(Err(e))) => {
                state.exchange.set_error(loggier_core::Exception::new(
                    std::any::type_name::<B::Error>(),
                    format!("response body failed: {e}"),
                ));
                true
            }
            Poll::Ready(None) => true,
        };
        if done {
            if let Some(state) = this.state.take() {
                state.finish(false);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn tee_copies_every_chunk_of_a_non_contiguous_buf() {
        let data = Bytes::from_static(b"hello ").chain(Bytes::from_static(b"world"));
        let mut c = BodyCapture::new(64, Some(b"text/plain"));
        tee(&mut c, &data);
        assert_eq!(c.captured(), b"hello world");
        assert_eq!(c.total_bytes(), 11);
        // Nothing was consumed.
        assert_eq!(data.remaining(), 11);
    }

    /// The snapshot taken before the echo yields what the map yields after it: the
    /// same names, values and order, whether the handler set the header or not.
    #[test]
    fn a_snapshot_with_the_echo_matches_the_map_after_the_insert() {
        use loggier_core::http::header_entries;
        let name = http::HeaderName::from_static("x-request-id");
        let own = |e: HeaderEntry<'_>| (e.name.to_string(), e.value.to_vec(), e.sensitive);
        let mut fresh = HeaderMap::new();
        fresh.insert("content-type", "text/plain".parse().expect("hv"));
        fresh.append("vary", "a".parse().expect("hv"));
        let mut set_by_handler = fresh.clone();
        set_by_handler.append(name.clone(), "mine-1".parse().expect("hv"));
        set_by_handler.append("etag", "e".parse().expect("hv"));
        set_by_handler.append(name.clone(), "mine-2".parse().expect("hv"));
        // More headers than the snapshot holds inline.
        let mut many = set_by_handler.clone();
        for i in 0..INLINE_HEADERS {
            let extra = http::HeaderName::try_from(format!("x-extra-{i}")).expect("name");
            many.append(extra, "v".parse().expect("hv"));
        }
        for mut map in [fresh, set_by_handler, many] {
            let mut snapshot = HeaderSnapshot::of(&map);
            snapshot.echo(name.clone());
            map.insert(name.clone(), "req-7".parse().expect("hv"));
            let want: Vec<_> = header_entries(&map).map(own).collect();
            let got: Vec<_> = snapshot.entries(b"req-7").map(own).collect();
            assert_eq!(got, want);
        }
        let plain = HeaderSnapshot::of(&HeaderMap::new());
        assert_eq!(plain.entries(b"req-7").count(), 0, "no echo, nothing added");
    }

    /// The snapshot's path and query are the URI's, for every form of request
    /// target.
    #[test]
    fn a_snapshot_gives_the_path_and_query_of_its_uri() {
        for text in [
            "/api/orders/7?x=1&y=2",
            "/",
            "/a?",
            "http://example.com",
            "http://example.com/p?q=1",
            "example.com:443",
            "*",
        ] {
            let uri: http::Uri = text.parse().expect("uri");
            let snapshot = RequestSnapshot {
                method: http::Method::GET,
                path_and_query: uri.path_and_query().cloned(),
                headers: HeaderSnapshot::default(),
                client_ip: None,
                body: None,
            };
            assert_eq!(snapshot.path(), uri.path(), "{text}");
            assert_eq!(snapshot.query(), uri.query(), "{text}");
        }
    }

    /// `Pending` is allocated and freed once per request. glibc's malloc serves
    /// blocks up to 1032 bytes from a per-thread cache; a larger one takes the
    /// slow path both ways (measured with the inline header snapshot at 8 headers,
    /// 1056 bytes: 300 instructions more per request than at 6).
    #[test]
    fn pending_fits_the_allocators_fast_path() {
        let size = std::mem::size_of::<Pending>();
        assert!(size <= 1024, "Pending is {size} bytes");
    }

    #[test]
    fn only_a_body_that_copies_nothing_gives_its_original_back() {
        let plain = RequestBody::passthrough(http_body_util::Full::new(Bytes::from("abc")));
        assert!(!plain.is_capturing());
        let inner = plain.into_inner().expect("nothing copied");
        assert_eq!(inner.size_hint().exact(), Some(3));
        let slot: BodySlot = Arc::new(Mutex::new(None));
        let copying = RequestBody::capturing(
            http_body_util::Full::new(Bytes::from("abc")),
            BodyCapture::new(16, None),
            Arc::clone(&slot),
        );
        assert!(copying.is_capturing());
        let back = copying.into_inner().expect_err("copying");
        drop(back);
        assert!(take_slot(&slot).is_some(), "the copy is still handed over");
    }

    #[test]
    fn wrappers_and_futures_are_send_and_sync_where_their_parts_are() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<RequestBody<http_body_util::Full<Bytes>>>();
        send::<ResponseBody<http_body_util::Full<Bytes>>>();
        sync::<ResponseBody<http_body_util::Full<Bytes>>>();
        send::<crate::ResponseFuture<std::future::Ready<()>>>();
        send::<crate::LoggierService<()>>();
        sync::<crate::LoggierService<()>>();
        send::<crate::RequestContext>();
        sync::<crate::RequestContext>();
    }
}
