//! `SOCK_SEQPACKET` records with descriptors (`SCM_RIGHTS`), over raw system calls: no
//! allocation, so the sandbox's side (init, exec processes, the file server) may use
//! them between `clone` and `execve`, and the host uses the same code.

use std::os::fd::RawFd;

use crate::sys::Errno;

/// The most descriptors one record carries.
pub(crate) const MAX_FDS: usize = 8;

const CMSG_SPACE: usize = 64;

/// A control-message buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_SPACE]);

/// `struct cmsghdr` on x86-64: `cmsg_len` (8 bytes), `cmsg_level`, `cmsg_type`; its
/// data follows at 16, the next header at the data's end rounded up to 8.
const CMSG_HDR: usize = 16;
const _: () = assert!(std::mem::size_of::<libc::cmsghdr>() == CMSG_HDR);

/// Writes one SCM_RIGHTS message for `fds` into `buf`; returns its space.
fn encode_rights(buf: &mut [u8; CMSG_SPACE], fds: &[RawFd]) -> usize {
    let data = std::mem::size_of_val(fds);
    buf[0..8].copy_from_slice(&((CMSG_HDR + data) as u64).to_ne_bytes());
    buf[8..12].copy_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
    buf[12..16].copy_from_slice(&libc::SCM_RIGHTS.to_ne_bytes());
    for (i, fd) in fds.iter().enumerate() {
        buf[CMSG_HDR + 4 * i..CMSG_HDR + 4 * i + 4].copy_from_slice(&fd.to_ne_bytes());
    }
    (CMSG_HDR + data).next_multiple_of(8)
}

/// Collects the descriptors of every SCM_RIGHTS message in `ctl` into `fds` (closing
/// any beyond [`MAX_FDS`]); returns how many.
fn decode_rights(ctl: &[u8], fds: &mut [RawFd; MAX_FDS]) -> usize {
    let mut count = 0;
    let mut at = 0;
    while at + CMSG_HDR <= ctl.len() {
        let mut w8 = [0u8; 8];
        w8.copy_from_slice(&ctl[at..at + 8]);
        let len = u64::from_ne_bytes(w8) as usize;
        let word = |o: usize| i32::from_ne_bytes([ctl[o], ctl[o + 1], ctl[o + 2], ctl[o + 3]]);
        let (level, kind) = (word(at + 8), word(at + 12));
        if len < CMSG_HDR || at + len > ctl.len() {
            break;
        }
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            for o in (at + CMSG_HDR..at + len)
                .step_by(4)
                .take_while(|o| o + 4 <= at + len)
            {
                let fd = word(o);
                if count < MAX_FDS {
                    fds[count] = fd;
                    count += 1;
                } else {
                    crate::sys::close(fd);
                }
            }
        }
        at += len.next_multiple_of(8);
    }
    count
}

fn errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A close-on-exec `SOCK_SEQPACKET` pair.
pub(crate) fn seqpacket_pair() -> Result<(RawFd, RawFd), Errno> {
    let mut fds = [-1; 2];
    // SAFETY: socketpair writes two descriptors into `fds`, which has room for them.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(errno());
    }
    Ok((fds[0], fds[1]))
}

/// Sends one record with `fds` (at most [`MAX_FDS`]). Retries on EINTR.
pub(crate) fn send(sock: RawFd, data: &[u8], fds: &[RawFd]) -> Result<(), Errno> {
    send_with(sock, data, fds, 0)
}

/// Sends one record without descriptors, with extra `flags` (`MSG_DONTWAIT`).
pub(crate) fn send_flags(sock: RawFd, data: &[u8], flags: libc::c_int) -> Result<(), Errno> {
    send_with(sock, data, &[], flags)
}

fn send_with(sock: RawFd, data: &[u8], fds: &[RawFd], flags: libc::c_int) -> Result<(), Errno> {
    if fds.len() > MAX_FDS {
        return Err(libc::EINVAL);
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = CmsgBuf([0; CMSG_SPACE]);
    // SAFETY: an all-zero msghdr is a valid value of this plain C struct.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let len = encode_rights(&mut cbuf.0, fds);
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = len;
    }
    loop {
        // SAFETY: `msg` points at a live iovec and control buffer for the call.
        let r = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL | flags) };
        if r >= 0 {
            return Ok(());
        }
        match errno() {
            libc::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Receives one record into `buf`; descriptors (close-on-exec) into `fds`. Returns the
/// bytes and the descriptor count; 0 bytes and 0 descriptors is the peer's end.
pub(crate) fn recv(
    sock: RawFd,
    buf: &mut [u8],
    fds: &mut [RawFd; MAX_FDS],
    flags: libc::c_int,
) -> Result<(usize, usize), Errno> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = CmsgBuf([0; CMSG_SPACE]);
    // SAFETY: an all-zero msghdr is a valid value of this plain C struct.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_SPACE;
    let n = loop {
        // SAFETY: `msg` points at a live iovec and control buffer for the call.
        let r = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC | flags) };
        if r >= 0 {
            break r as usize;
        }
        match errno() {
            libc::EINTR => continue,
            e => return Err(e),
        }
    };
    let count = decode_rights(&cbuf.0[..msg.msg_controllen.min(CMSG_SPACE)], fds);
    Ok((n, count))
}
