//! One admitted connection, from its first bytes to its end: the name it claims (TLS SNI,
//! HTTP Host) must be the one it was admitted for; then it is relayed to the server as
//! it is, or intercepted when a secret goes to that host.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use sandbox_core::network::normalize_name;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::broker::{Admitted, Dest, Shared};
use crate::peek::{peek, Hello};

/// Bytes each way on a client connection.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// From the sandbox.
    pub(crate) out: AtomicU64,
    /// To the sandbox.
    pub(crate) into: AtomicU64,
}

/// The sandbox's end of a connection, counting what passes.
pub(crate) struct Counted<S> {
    inner: S,
    counters: Arc<Counters>,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, counters: Arc<Counters>) -> Self {
        Counted { inner, counters }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.counters.out.fetch_add(n, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &r {
            self.counters.into.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A stream whose first bytes were already read: they are read again first.
pub(crate) struct Prefixed<S> {
    head: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(head: Vec<u8>, inner: S) -> Self {
        Prefixed { head, at: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.head.len() {
            let n = buf.remaining().min(self.head.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.head[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Records a connection's byte counts when it ends, however it ends: served to the
/// end, or dropped with the broker's tasks when the broker stops (so the final report
/// counts the bytes of connections still open at the sandbox's end).
pub(crate) struct Tally {
    shared: Arc<Shared>,
    conn: crate::record::ConnId,
    pub(crate) counters: Arc<Counters>,
}

impl Tally {
    pub(crate) fn new(shared: Arc<Shared>, conn: crate::record::ConnId) -> Self {
        Tally {
            shared,
            conn,
            counters: Arc::new(Counters::default()),
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.shared.recorder.closed(
            self.conn,
            self.counters.out.load(Ordering::Relaxed),
            self.counters.into.load(Ordering::Relaxed),
        );
    }
}

/// Relays a host client of the exposed `port` to the sandbox's end `inside` (a stream
/// of the TUN link's stack, or of an in-process sandbox), recorded as a connection
/// `via = "exposed"` with its byte counts: one path for both links.
pub(crate) async fn serve_exposed<S>(
    shared: Arc<Shared>,
    port: u16,
    inside: S,
    mut client: tokio::net::TcpStream,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let conn = shared
        .recorder
        .opened(sandbox_core::network::ConnectionRecord {
            name: None,
            ip: sandbox_core::network::SANDBOX_ADDR,
            port,
            via: "exposed".into(),
            verdict: sandbox_core::network::NetworkVerdict::Allowed,
            rule: format!("`expose = [{port}]`"),
            note: None,
            intercepted: false,
            secrets: Vec::new(),
            bytes_out: 0,
            bytes_in: 0,
        });
    let tally = Tally::new(shared, conn);
    let mut inside = Counted::new(inside, tally.counters.clone());
    let _ = tokio::io::copy_bidirectional(&mut inside, &mut client).await;
    drop(tally);
}

/// Serves one admitted connection to its end, and records its byte counts.
pub(crate) async fn serve<S>(shared: Arc<Shared>, adm: Admitted, client: S)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let tally = Tally::new(shared.clone(), adm.conn);
    let client = Counted::new(client, tally.counters.clone());
    serve_counted(&shared, &adm, client).await;
    drop(tally);
}

async fn serve_counted<S>(shared: &Arc<Shared>, adm: &Admitted, mut client: Counted<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let mut head = Vec::new();
    let hello = peek(&mut client, &mut head).await;
    let claimed = match &hello {
        Hello::Tls { sni: Some(s) } => Some(("TLS SNI", s.clone())),
        Hello::Http { host: Some(h) } => Some(("HTTP Host", h.clone())),
        _ => None,
    };
    let name = match &adm.dest {
        Dest::Name(n) => Some(n.clone()),
        Dest::Ip(_) => None,
    };
    if let (Some(name), Some((what, claim))) = (&name, &claimed) {
        if normalize_name(claim).as_deref() != Some(name.as_str()) {
            shared.recorder.deny(
                adm.conn,
                format!(
                    "the {what} names `{claim}`, but the connection was to the address of `{name}`"
                ),
            );
            let _ = client.shutdown().await;
            return;
        }
    }
    let intercept = name
        .as_deref()
        .filter(|n| shared.plan.intercepts(n, adm.port))
        .map(str::to_string);
    match (intercept, &hello) {
        (Some(n), Hello::Tls { .. }) | (Some(n), Hello::Http { .. }) => {
            let tls = matches!(hello, Hello::Tls { .. });
            crate::intercept::serve(shared, adm, &n, Prefixed::new(head, client), tls).await;
            return;
        }
        (Some(_), _) => shared.recorder.update(adm.conn, |c| {
            c.note = Some("neither TLS nor HTTP: relayed without the secrets".into())
        }),
        _ => {}
    }
    let mut upstream = match shared.connect(adm).await {
        Ok(s) => s,
        Err(e) => {
            shared.recorder.update(adm.conn, |c| c.note = Some(e));
            return;
        }
    };
    if upstream.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut upstream,
        256 * 1024,
        256 * 1024,
    )
    .await;
}
