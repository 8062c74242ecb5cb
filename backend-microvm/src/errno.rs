//! Linux error numbers as the workload sees them.

/// A positive Linux errno value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Errno(pub(crate) i32);

impl Errno {
    /// The calling thread's last host error.
    pub(crate) fn last() -> Errno {
        Errno::from_io(&std::io::Error::last_os_error())
    }

    /// The errno of a host I/O error (EIO when it has none).
    pub(crate) fn from_io(e: &std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

macro_rules! errnos {
    ($($name:ident),*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`.")]
            pub(crate) const $name: Errno = Errno(libc::$name);
        )*
    };
}

errnos!(
    EPERM,
    EIO,
    ENOENT,
    ENFILE,
    EINTR,
    ESRCH,
    E2BIG,
    ENOEXEC,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOLCK,
    EDEADLK,
    EOVERFLOW,
    ENOMEM,
    EACCES,
    EFAULT,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    EMFILE,
    ENOTTY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EPIPE,
    ERANGE,
    ENAMETOOLONG,
    ENOSYS,
    ENOTEMPTY,
    ELOOP,
    ENOTSUP,
    ETIMEDOUT,
    EAFNOSUPPORT,
    ENOTSOCK,
    EMSGSIZE,
    EOPNOTSUPP,
    EISCONN,
    ENXIO,
    EADDRINUSE,
    ECONNREFUSED,
    ENOTCONN,
    EPROTOTYPE,
    ETOOMANYREFS,
    ENOBUFS,
    EIDRM,
    ENOMSG
);
