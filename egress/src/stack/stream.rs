//! A TCP connection of the userspace stack as a tokio stream, for the broker's tasks
//! (all on the stack's own thread).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use super::Net;

/// One connection's end in the broker.
pub(crate) struct StackStream {
    pub(crate) net: Rc<RefCell<Net>>,
    pub(crate) handle: SocketHandle,
    pub(crate) wake: Rc<Notify>,
}

impl StackStream {
    fn with<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> R {
        let mut net = self.net.borrow_mut();
        f(net.sockets.get_mut::<tcp::Socket<'static>>(self.handle))
    }
}

fn opening(s: &tcp::Socket<'_>) -> bool {
    matches!(
        s.state(),
        State::Listen | State::SynReceived | State::SynSent
    )
}

impl AsyncRead for StackStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = self.with(|s| {
            if s.can_recv() {
                let n = s
                    .recv_slice(buf.initialize_unfilled())
                    .map_err(|_| io::Error::from(io::ErrorKind::ConnectionReset))?;
                buf.advance(n);
                return Poll::Ready(Ok(true));
            }
            if opening(s) || s.may_recv() {
                s.register_recv_waker(cx.waker());
                return Poll::Pending;
            }
            Poll::Ready(Ok(false))
        });
        match r {
            Poll::Ready(Ok(true)) => {
                // The window opened: let the stack tell the peer.
                self.wake.notify_one();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(false)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for StackStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = self.with(|s| {
            if opening(s) {
                s.register_send_waker(cx.waker());
                return Poll::Pending;
            }
            if !s.may_send() {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
            }
            if s.can_send() {
                return Poll::Ready(
                    s.send_slice(data)
                        .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe)),
                );
            }
            s.register_send_waker(cx.waker());
            Poll::Pending
        });
        if matches!(r, Poll::Ready(Ok(_))) {
            self.wake.notify_one();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.close());
        self.wake.notify_one();
        Poll::Ready(Ok(()))
    }
}

impl Drop for StackStream {
    fn drop(&mut self) {
        if let Ok(mut net) = self.net.try_borrow_mut() {
            let s = net.sockets.get_mut::<tcp::Socket<'static>>(self.handle);
            if s.is_open() {
                s.close();
            }
            net.orphans.push(self.handle);
        }
        self.wake.notify_one();
    }
}
