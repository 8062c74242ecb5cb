//! Credential calls naming another user: `EPERM`, as Linux answers a process without
//! capabilities. In a user namespace that maps only the sandbox's own identity the
//! kernel would say `EINVAL` (the id is not mapped) before it looks at capabilities,
//! and programs tell the two apart (`subprocess.Popen(user=...)`, `chown` to another
//! user, test suites). Built per identity at run time with seccompiler: a small filter
//! that allows everything but these calls with a foreign id, stacked on the allowlist
//! (an errno action outranks an allow, so it changes only the errno the call gets).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// `-1` as a 32-bit id: "leave unchanged" in the set*id and chown families.
const KEEP: u64 = 0xffff_ffff;

/// For each call, which arguments are a uid and which a gid.
const CALLS: &[(libc::c_long, &[u8], &[u8])] = &[
    (libc::SYS_chown, &[1], &[2]),
    (libc::SYS_lchown, &[1], &[2]),
    (libc::SYS_fchown, &[1], &[2]),
    (libc::SYS_fchownat, &[2], &[3]),
    (libc::SYS_setuid, &[0], &[]),
    (libc::SYS_setreuid, &[0, 1], &[]),
    (libc::SYS_setresuid, &[0, 1, 2], &[]),
    (libc::SYS_setgid, &[], &[0]),
    (libc::SYS_setregid, &[], &[0, 1]),
    (libc::SYS_setresgid, &[], &[0, 1, 2]),
];

fn cond(arg: u8, value: u64) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, value)
}

/// The filter's program for a sandbox whose processes run as `uid`:`gid`.
fn compile(uid: u32, gid: u32) -> Result<Vec<libc::sock_filter>, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, uids, gids) in CALLS {
        let mut list = Vec::new();
        for (args, own) in [(uids, uid), (gids, gid)] {
            for &a in args.iter() {
                // A foreign id: neither the sandbox's own nor "unchanged". setuid and
                // setgid have no "unchanged": their -1 is left to the kernel (EINVAL).
                let c = [cond(a, u64::from(own)), cond(a, KEEP)];
                let c: Vec<_> = c
                    .into_iter()
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                list.push(SeccompRule::new(c).map_err(|e| e.to_string())?);
            }
        }
        rules.insert(*nr, list);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .map_err(|e| e.to_string())?;
    let prog: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    Ok(prog
        .into_iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect())
}

/// Compiled programs by identity.
type Programs = HashMap<(u32, u32), &'static [libc::sock_filter]>;

/// The program for `uid`:`gid`, compiled once per identity and kept for the process's
/// life (a process sees a handful of identities: the filter must outlive every child
/// spec that points at it).
pub(crate) fn filter(uid: u32, gid: u32) -> Result<&'static [libc::sock_filter], String> {
    static CACHE: Mutex<Option<Programs>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if let Some(p) = map.get(&(uid, gid)) {
        return Ok(p);
    }
    let prog: &'static [libc::sock_filter] = Box::leak(compile(uid, gid)?.into_boxed_slice());
    map.insert((uid, gid), prog);
    Ok(prog)
}
