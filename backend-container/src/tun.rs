//! The egress link of a container: a TUN device made by the sandbox's init inside its
//! own network namespace, addressed, given the default route, and handed to the host
//! over a socket, where the egress broker's userspace stack terminates it. The
//! namespace then has no other way out: no interface but `lo` and this one.
//!
//! Everything here runs in the child between `clone` and `execve`: raw system calls on
//! data prepared by the parent, no allocation.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use libc::{c_int, c_long};

use crate::sys::Errno;

/// The interface's name inside the sandbox.
pub(crate) const IFNAME: &[u8] = b"egress0";

/// What init needs to make the link.
#[derive(Debug)]
pub(crate) struct TunSpec {
    /// init's end of the socket the device's descriptor goes back on.
    pub(crate) sock: RawFd,
    pub(crate) addr: Ipv4Addr,
    pub(crate) peer: Ipv4Addr,
    pub(crate) prefix: u8,
    pub(crate) mtu: u32,
}

/// The step that failed, for the parent's message.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub(crate) enum Step {
    Open = 1,
    Create = 2,
    Configure = 3,
    Route = 4,
    Hand = 5,
}

impl Step {
    pub(crate) fn describe(index: u32) -> &'static str {
        match index {
            1 => "opening /dev/net/tun (the sandbox's user must be able to read and write it: mode 0666, the udev default)",
            2 => "creating the sandbox's egress interface (TUNSETIFF)",
            3 => "addressing the egress interface",
            4 => "routing the sandbox's traffic to the broker",
            5 => "handing the egress interface to the broker",
            _ => "setting up the sandbox's network",
        }
    }
}

fn check(ret: c_long) -> Result<c_long, Errno> {
    if ret < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(ret)
    }
}

fn ifreq() -> libc::ifreq {
    // SAFETY: an all-zero `ifreq` is a valid value of this plain C struct.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(IFNAME) {
        *d = *s as libc::c_char;
    }
    ifr
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux; the bytes of one
    // are a valid value of the other (the kernel reads them as sockaddr_in by family).
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl<T>(fd: RawFd, req: libc::c_ulong, arg: &mut T) -> Result<c_long, Errno> {
    // SAFETY: `arg` is a live, exclusive reference to the structure this request reads
    // or writes (an ifreq or an rtentry), for the duration of the call.
    check(unsafe { libc::syscall(libc::SYS_ioctl, fd, req, arg as *mut T) })
}

fn close(fd: RawFd) {
    // SAFETY: closes a descriptor this function opened.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

/// Makes the link and sends its descriptor to the parent. Called by init while it still
/// has the caller's host identity (to open the device) and all capabilities in its own
/// user namespace (to configure its own network namespace).
pub(crate) fn setup(spec: &TunSpec) -> Result<(), (Step, Errno)> {
    // SAFETY: a NUL-terminated path and plain flags.
    let tun = check(unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC,
            0,
        )
    })
    .map_err(|e| (Step::Open, e))? as RawFd;
    let r = configure(spec, tun);
    close(tun);
    r
}

fn configure(spec: &TunSpec, tun: RawFd) -> Result<(), (Step, Errno)> {
    let mut ifr = ifreq();
    ifr.ifr_ifru.ifru_flags =
        (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    ioctl(tun, libc::TUNSETIFF as libc::c_ulong, &mut ifr).map_err(|e| (Step::Create, e))?;
    // Persistent: closing the last descriptor (the broker's, when the run ends) then does
    // not unregister the device synchronously (an RCU grace period, ~25 ms, in the
    // caller's close); the kernel deletes it with the namespace, in its own workqueue,
    // once the broker's descriptor (which holds the namespace) is closed.
    // SAFETY: TUNSETPERSIST takes an integer argument.
    check(unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            tun,
            libc::TUNSETPERSIST,
            1 as libc::c_ulong,
        )
    })
    .map_err(|e| (Step::Create, e))?;
    // SAFETY: plain integer arguments.
    let sock = check(unsafe {
        libc::syscall(
            libc::SYS_socket,
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        )
    })
    .map_err(|e| (Step::Configure, e))? as RawFd;
    let r = address(spec, sock).and_then(|_| route(spec, sock));
    close(sock);
    r?;
    send_fd(spec.sock, tun).map_err(|e| (Step::Hand, e))
}

fn address(spec: &TunSpec, sock: RawFd) -> Result<(), (Step, Errno)> {
    let step = |e| (Step::Configure, e);
    let mut ifr = ifreq();
    ifr.ifr_ifru.ifru_mtu = spec.mtu as c_int;
    ioctl(sock, libc::SIOCSIFMTU, &mut ifr).map_err(step)?;
    let mut ifr = ifreq();
    ifr.ifr_ifru.ifru_addr = sockaddr(spec.addr);
    ioctl(sock, libc::SIOCSIFADDR, &mut ifr).map_err(step)?;
    let mask = if spec.prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(spec.prefix))
    };
    let mut ifr = ifreq();
    ifr.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::from(mask));
    ioctl(sock, libc::SIOCSIFNETMASK, &mut ifr).map_err(step)?;
    let mut ifr = ifreq();
    ioctl(sock, libc::SIOCGIFFLAGS, &mut ifr).map_err(step)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    unsafe { ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    ioctl(sock, libc::SIOCSIFFLAGS, &mut ifr).map_err(step)?;
    Ok(())
}

fn route(spec: &TunSpec, sock: RawFd) -> Result<(), (Step, Errno)> {
    // SAFETY: an all-zero `rtentry` is a valid value of this plain C struct.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr(spec.peer);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    ioctl(sock, libc::SIOCADDRT, &mut rt)
        .map(|_| ())
        .map_err(|e| (Step::Route, e))
}

#[repr(C)]
struct FdMessage {
    hdr: libc::cmsghdr,
    fd: c_int,
}

/// Sends `fd` over the UNIX socket `sock` (SCM_RIGHTS).
fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), Errno> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: an all-zero cmsghdr is a valid value of this plain C struct.
    let hdr: libc::cmsghdr = unsafe { std::mem::zeroed() };
    let mut cmsg = FdMessage { hdr, fd };
    cmsg.hdr.cmsg_len = std::mem::size_of::<libc::cmsghdr>() + std::mem::size_of::<c_int>();
    cmsg.hdr.cmsg_level = libc::SOL_SOCKET;
    cmsg.hdr.cmsg_type = libc::SCM_RIGHTS;
    // SAFETY: an all-zero msghdr is a valid value of this plain C struct.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut cmsg as *mut FdMessage).cast();
    msg.msg_controllen = std::mem::size_of::<FdMessage>();
    // SAFETY: `msg` points at the live iovec and control buffer above for the call.
    check(unsafe { libc::syscall(libc::SYS_sendmsg, sock, &msg as *const libc::msghdr, 0) })
        .map(|_| ())
}

/// The parent's side: receives the device's descriptor init sent (it was sent before
/// the workload was started, so it is there by now).
pub(crate) fn receive_fd(sock: &OwnedFd) -> std::io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: an all-zero cmsghdr is a valid value of this plain C struct.
    let hdr: libc::cmsghdr = unsafe { std::mem::zeroed() };
    let mut cmsg = FdMessage { hdr, fd: -1 };
    // SAFETY: an all-zero msghdr is a valid value of this plain C struct.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut cmsg as *mut FdMessage).cast();
    msg.msg_controllen = std::mem::size_of::<FdMessage>();
    // SAFETY: `msg` points at the live iovec and control buffer above for the call.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if n != 1
        || cmsg.hdr.cmsg_level != libc::SOL_SOCKET
        || cmsg.hdr.cmsg_type != libc::SCM_RIGHTS
        || cmsg.fd < 0
    {
        return Err(std::io::Error::other(
            "the sandbox did not send its egress interface",
        ));
    }
    // SAFETY: SCM_RIGHTS installed a new descriptor in this process; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(cmsg.fd) })
}
