//! System V IPC structures (`shmctl`, `semctl`, `semop`, `msgctl`) in their x86-64
//! `IPC_64` layouts, the only ones an x86-64 kernel speaks, and POSIX message queues'
//! `struct mq_attr`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::assert_size;

/// `struct ipc64_perm`: an object's key, owner, creator, mode and sequence number.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct IpcPerm {
    pub(crate) key: i32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) cuid: u32,
    pub(crate) cgid: u32,
    /// Access bits (and `SHM_DEST`/`SHM_LOCKED` for a segment).
    pub(crate) mode: u32,
    pub(crate) seq: u16,
    pub(crate) pad: u16,
    pub(crate) pad2: u32,
    pub(crate) unused: [u64; 2],
}
assert_size!(IpcPerm, 48);

/// `struct shmid64_ds`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct ShmidDs {
    pub(crate) perm: IpcPerm,
    pub(crate) segsz: u64,
    pub(crate) atime: i64,
    pub(crate) dtime: i64,
    pub(crate) ctime: i64,
    pub(crate) cpid: i32,
    pub(crate) lpid: i32,
    pub(crate) nattch: u64,
    pub(crate) unused: [u64; 2],
}
assert_size!(ShmidDs, 112);

/// `struct shminfo64` (`IPC_INFO`): the system's limits.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Shminfo {
    pub(crate) shmmax: u64,
    pub(crate) shmmin: u64,
    pub(crate) shmmni: u64,
    pub(crate) shmseg: u64,
    pub(crate) shmall: u64,
    pub(crate) unused: [u64; 4],
}
assert_size!(Shminfo, 72);

/// `struct shm_info` (`SHM_INFO`): what is in use.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct ShmInfo {
    pub(crate) used_ids: i32,
    pub(crate) pad: u32,
    pub(crate) shm_tot: u64,
    pub(crate) shm_rss: u64,
    pub(crate) shm_swp: u64,
    pub(crate) swap_attempts: u64,
    pub(crate) swap_successes: u64,
}
assert_size!(ShmInfo, 48);

/// `struct semid64_ds` (x86's, times with unused words after them).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct SemidDs {
    pub(crate) perm: IpcPerm,
    pub(crate) otime: i64,
    pub(crate) unused1: u64,
    pub(crate) ctime: i64,
    pub(crate) unused2: u64,
    pub(crate) nsems: u64,
    pub(crate) unused: [u64; 2],
}
assert_size!(SemidDs, 104);

/// `struct sembuf`: one operation of `semop`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Sembuf {
    pub(crate) num: u16,
    pub(crate) op: i16,
    pub(crate) flg: i16,
}
assert_size!(Sembuf, 6);

/// `struct seminfo` (`IPC_INFO`, `SEM_INFO`).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Seminfo {
    pub(crate) semmap: i32,
    pub(crate) semmni: i32,
    pub(crate) semmns: i32,
    pub(crate) semmnu: i32,
    pub(crate) semmsl: i32,
    pub(crate) semopm: i32,
    pub(crate) semume: i32,
    pub(crate) semusz: i32,
    pub(crate) semvmx: i32,
    pub(crate) semaem: i32,
}
assert_size!(Seminfo, 40);

/// `struct msqid64_ds`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct MsqidDs {
    pub(crate) perm: IpcPerm,
    pub(crate) stime: i64,
    pub(crate) rtime: i64,
    pub(crate) ctime: i64,
    pub(crate) cbytes: u64,
    pub(crate) qnum: u64,
    pub(crate) qbytes: u64,
    pub(crate) lspid: i32,
    pub(crate) lrpid: i32,
    pub(crate) unused: [u64; 2],
}
assert_size!(MsqidDs, 120);

/// `struct msginfo` (`IPC_INFO`, `MSG_INFO`).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Msginfo {
    pub(crate) msgpool: i32,
    pub(crate) msgmap: i32,
    pub(crate) msgmax: i32,
    pub(crate) msgmnb: i32,
    pub(crate) msgmni: i32,
    pub(crate) msgssz: i32,
    pub(crate) msgtql: i32,
    pub(crate) msgseg: u16,
    pub(crate) pad: u16,
}
assert_size!(Msginfo, 32);

/// `struct mq_attr` (`mq_open`, `mq_getsetattr`).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct MqAttr {
    pub(crate) flags: i64,
    pub(crate) maxmsg: i64,
    pub(crate) msgsize: i64,
    pub(crate) curmsgs: i64,
    pub(crate) reserved: [i64; 4],
}
assert_size!(MqAttr, 64);

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layouts_match_the_c_library() {
        assert_eq!(size_of::<IpcPerm>(), size_of::<libc::ipc_perm>());
        assert_eq!(offset_of!(IpcPerm, mode), offset_of!(libc::ipc_perm, mode));
        assert_eq!(offset_of!(IpcPerm, seq), offset_of!(libc::ipc_perm, __seq));
        assert_eq!(size_of::<ShmidDs>(), size_of::<libc::shmid_ds>());
        assert_eq!(
            offset_of!(ShmidDs, nattch),
            offset_of!(libc::shmid_ds, shm_nattch)
        );
        assert_eq!(
            offset_of!(ShmidDs, cpid),
            offset_of!(libc::shmid_ds, shm_cpid)
        );
        assert_eq!(size_of::<MsqidDs>(), size_of::<libc::msqid_ds>());
        assert_eq!(
            offset_of!(MsqidDs, lspid),
            offset_of!(libc::msqid_ds, msg_lspid)
        );
        assert_eq!(
            offset_of!(MsqidDs, qbytes),
            offset_of!(libc::msqid_ds, msg_qbytes)
        );
        assert_eq!(size_of::<MqAttr>(), size_of::<libc::mq_attr>());
        assert_eq!(
            offset_of!(MqAttr, curmsgs),
            offset_of!(libc::mq_attr, mq_curmsgs)
        );
        assert_eq!(size_of::<Sembuf>(), size_of::<libc::sembuf>());
        assert_eq!(offset_of!(Sembuf, flg), offset_of!(libc::sembuf, sem_flg));
    }
}
