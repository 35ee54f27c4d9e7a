//! Connections: the accept loop under [`crate::server::serve`] and the limits a slow, stalled
//! or idle client meets there.
//!
//! Every connection is HTTP/1.1 (hyper) over a [`TimedIo`] that knows what the connection waits
//! for:
//! - a request head (a new connection, or the first bytes of the next request arrived): at
//!   most `header_timeout`, then it is answered 408 and closed;
//! - the next request on a kept-alive connection that sent nothing yet: at most `idle_timeout`,
//!   then it is closed;
//! - a request being handled: no timer here. Reading its body has its own limit
//!   (`body_timeout`, in the router: 408), and an answer being written, a long stream of
//!   server-sent events included, is never cut.
//!
//! At most `max_connections` are open at once; one more is answered 503 (`Retry-After`) and
//! closed. On shutdown the listener closes, connections with no request in flight close at
//! once, every other one finishes the request it is answering and closes, and whatever is still
//! open after `shutdown_deadline` is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use crate::error::ServeError;
use crate::metrics::Metrics;

/// How long a client may take, and how many may be connected (the `hone serve` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimits {
    /// From a connection's start, or the first byte of a request, to the end of its head.
    pub header_timeout: Duration,
    /// From the end of a request's head to the end of its body (checked in the router).
    pub body_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once; beyond, 503.
    pub max_connections: usize,
    /// After the shutdown signal, how long requests in flight may take before their
    /// connections are dropped.
    pub shutdown_deadline: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_deadline: Duration::from_secs(10),
        }
    }
}

/// What a connection is waiting for, and since when.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// The next request on a kept-alive connection; nothing of it arrived yet.
    Idle(Instant),
    /// The rest of a request head.
    Head(Instant),
    /// A request is being handled or answered.
    Busy,
}

struct PhaseState {
    phase: Phase,
    /// The task reading the connection, woken when the phase changes (its timer changes).
    reader: Option<Waker>,
}

/// A connection's phase, shared by its reader ([`TimedIo`]), its service (a request arrived)
/// and its answers' bodies (an answer was written).
#[derive(Clone)]
struct Tracker(Arc<Mutex<PhaseState>>);

impl Tracker {
    fn new(phase: Phase) -> Self {
        Tracker(Arc::new(Mutex::new(PhaseState {
            phase,
            reader: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, PhaseState> {
        // the state is two plain fields: a panic elsewhere cannot leave it half written
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, phase: Phase) {
        let mut s = self.lock();
        s.phase = phase;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }
}

/// Marks its connection idle when dropped: hyper drops an answer's body once it is written
/// (or the connection is gone).
struct AnswerDone(Tracker);

impl Drop for AnswerDone {
    fn drop(&mut self) {
        self.0.set(Phase::Idle(Instant::now()));
    }
}

/// An answer's body carrying its [`AnswerDone`].
struct TrackedBody {
    inner: Body,
    _done: AnswerDone,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, with the head and idle timers of its [`Phase`].
struct TimedIo {
    inner: TcpStream,
    /// Counts the 408 answered here (endpoint `connection`: no path was read).
    metrics: Metrics,
    tracker: Tracker,
    header_timeout: Duration,
    idle_timeout: Duration,
    timer: Pin<Box<Sleep>>,
}

/// The `endpoint` label of answers given before a request's path is read (a head that did not
/// arrive in time, a connection over the cap).
pub const CONNECTION: &str = "connection";

/// An error answered on the raw connection (before or outside hyper), in the same OpenAI shape
/// and status as the router's answers, then the connection closes.
fn raw_answer(err: &ServeError, extra_headers: &str) -> Vec<u8> {
    let status = crate::server::status_of(err);
    let body = crate::openai::error_body(err).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\n{extra_headers}connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// The answer to a request head that did not arrive in time (written as the connection closes).
fn request_timeout_answer(header_timeout: Duration) -> Vec<u8> {
    raw_answer(
        &ServeError::Timeout(format!(
            "the request head did not arrive within {} s",
            header_timeout.as_secs_f64()
        )),
        "",
    )
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let mut s = this.tracker.lock();
                    if let Phase::Idle(_) = s.phase {
                        s.phase = Phase::Head(Instant::now());
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let (deadline, head) = {
                    let mut s = this.tracker.lock();
                    s.reader = Some(cx.waker().clone());
                    match s.phase {
                        Phase::Idle(t) => (t + this.idle_timeout, false),
                        Phase::Head(t) => (t + this.header_timeout, true),
                        Phase::Busy => return Poll::Pending,
                    }
                };
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if head {
                    // best effort: a stalled client may not read it, and nothing waits for it
                    let _ = this
                        .inner
                        .try_write(&request_timeout_answer(this.header_timeout));
                    this.metrics.request_done(CONNECTION, 408);
                }
                let what = if head {
                    "the request head did not arrive in time"
                } else {
                    "the connection was idle too long"
                };
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
            }
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains the connections for at
/// most `limits.shutdown_deadline` and drops the rest.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // out of file descriptors, a connection reset before it was taken:
                        // keep serving the others
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        conns.spawn(connection(stream, app.clone(), limits.clone(), metrics.clone(), stop_rx.clone(), permit));
                    }
                    Err(_) => {
                        conns.spawn(refuse(stream, limits.max_connections, metrics.clone()));
                    }
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_deadline, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} connection(s) still open {} s after the shutdown signal: dropped",
            conns.len(),
            limits.shutdown_deadline.as_secs_f64()
        );
        conns.shutdown().await;
    }
    Ok(())
}

/// One connection, served until it closes or, after the shutdown signal, until its request in
/// flight is answered.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: ConnLimits,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let tracker = Tracker::new(Phase::Head(Instant::now()));
    let io = TokioIo::new(TimedIo {
        inner: stream,
        metrics,
        tracker: tracker.clone(),
        header_timeout: limits.header_timeout,
        idle_timeout: limits.idle_timeout,
        timer: Box::pin(tokio::time::sleep(limits.header_timeout)),
    });
    let shutdown_tracker = tracker.clone();
    let router = TowerToHyperService::new(app);
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        tracker.set(Phase::Busy);
        let answer = hyper::service::Service::call(&router, req);
        let done = AnswerDone(tracker.clone());
        async move {
            let resp: Response<Body> = answer.await?;
            Ok::<_, Infallible>(resp.map(|inner| Body::new(TrackedBody { inner, _done: done })))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None::<Duration>)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection closed: {e}");
            }
            return;
        }
        _ = stop.wait_for(|s| *s) => {}
    }
    // A connection waiting for a request (idle, or part of a head) has nothing in flight:
    // closed at once. One busy with a request finishes its answer, then closes.
    if !matches!(shutdown_tracker.lock().phase, Phase::Busy) {
        return;
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!("connection closed: {e}");
    }
}

/// A connection over the cap: 503 with `Retry-After`, then closed.
async fn refuse(stream: TcpStream, max: usize, metrics: Metrics) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    metrics.request_done(CONNECTION, 503);
    let answer = raw_answer(
        &ServeError::Unavailable(format!(
            "this server has its maximum of {max} connections open; retry"
        )),
        "retry-after: 1\r\n",
    );
    let mut stream = stream;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        // read what the request sent so far, so closing does not reset the connection before
        // the client has the answer
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await;
}
