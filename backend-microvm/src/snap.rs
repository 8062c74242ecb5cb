//! Deep copies of a live micro-VM's personality state, for snapshots and forks.
//!
//! The VMM's state is a graph of `Rc`s (open files shared by descriptor tables,
//! pipes shared by their ends, tmpfs inodes shared by directories and open files).
//! [`Memo`] copies such a graph once per node, keyed by the address of the original,
//! so that sharing is kept exactly: two descriptors of one open file stay two
//! descriptors of one (new) open file. `Weak` references are set in a second pass
//! ([`Memo::weak`]) to the copies of their targets (a target that nothing strong
//! reached is dead in the copy too). A strong cycle (a socket that holds its own
//! descriptor in flight) cannot be copied this way: the copy fails, naming it.
//!
//! A copy shares nothing with its original: host descriptors are duplicated, every
//! `Rc` is new. That is what lets a whole copy move to another thread (see
//! `live::snapshot`): nothing else points into it.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::rc::{Rc, Weak};

/// Why a state cannot be copied, in words (what the VM holds that a snapshot cannot).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SnapError(pub(crate) String);

impl SnapError {
    pub(crate) fn new(s: impl Into<String>) -> SnapError {
        SnapError(s.into())
    }
}

/// How host descriptors are copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdMode {
    /// For a snapshot, held by the host side: not counted against any sandbox.
    Detached,
    /// For a sandbox started from a snapshot, on its own thread: counted against its
    /// budget (`vfs::host`).
    Charged,
    /// For a fork's snapshot, moved whole to the fork's thread: counted against no
    /// budget while copied, but marked counted, and their number kept
    /// ([`Memo::moved_fds`]): that thread's count takes them over.
    Moved,
}

/// A host file the guest held open: where it is in the sandbox, and what it was.
#[derive(Debug, Clone)]
pub(crate) struct HeldFile {
    /// The sandbox path.
    pub(crate) path: Vec<u8>,
    /// Access mode and status flags it was opened with.
    pub(crate) flags: i32,
    /// Device, inode, size, modification time when the snapshot was taken.
    pub(crate) id: (u64, u64, u64, (i64, i64)),
    /// The raw descriptor of the copy (a snapshot's: how a start finds this record).
    pub(crate) fd: i32,
}

/// The memo of one copy: originals (by address) to their copies.
pub(crate) struct Memo {
    map: HashMap<usize, Box<dyn Any>>,
    busy: HashSet<usize>,
    /// How host descriptors are copied.
    pub(crate) fds: FdMode,
    /// Host descriptors copied in mode [`FdMode::Moved`].
    pub(crate) moved_fds: usize,
    /// Host files held open (filled while copying open files).
    pub(crate) held: Vec<HeldFile>,
    /// For a start: the host files the snapshot recorded, by its descriptor number.
    pub(crate) held_from: HashMap<i32, HeldFile>,
    /// The pipes copied, with how many of their read and write ends were.
    pipes: HashMap<usize, (Rc<RefCell<crate::pipe::Pipe>>, usize, usize)>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("copied", &self.map.len())
            .finish_non_exhaustive()
    }
}

fn key<T: ?Sized>(p: *const T) -> usize {
    p.cast::<()>() as usize
}

impl Memo {
    pub(crate) fn new(fds: FdMode) -> Memo {
        Memo {
            map: HashMap::new(),
            busy: HashSet::new(),
            fds,
            moved_fds: 0,
            held: Vec::new(),
            held_from: HashMap::new(),
            pipes: HashMap::new(),
        }
    }

    /// The copy of `r`, made by `f` the first time.
    pub(crate) fn rc<T: 'static>(
        &mut self,
        r: &Rc<T>,
        f: impl FnOnce(&mut Memo, &T) -> Result<T, SnapError>,
    ) -> Result<Rc<T>, SnapError> {
        let k = key(Rc::as_ptr(r));
        if let Some(n) = self.map.get(&k).and_then(|b| b.downcast_ref::<Rc<T>>()) {
            return Ok(Rc::clone(n));
        }
        if !self.busy.insert(k) {
            return Err(SnapError::new(
                "a socket holds its own descriptor in flight (a reference cycle)",
            ));
        }
        let v = f(self, r);
        self.busy.remove(&k);
        let n = Rc::new(v?);
        self.map.insert(k, Box::new(Rc::clone(&n)));
        Ok(n)
    }

    /// The copy of `r` (a trait object or a slice), made by `f` the first time.
    pub(crate) fn rc_dyn<T: ?Sized + 'static>(
        &mut self,
        r: &Rc<T>,
        f: impl FnOnce(&mut Memo) -> Result<Rc<T>, SnapError>,
    ) -> Result<Rc<T>, SnapError> {
        let k = key(Rc::as_ptr(r));
        if let Some(n) = self.map.get(&k).and_then(|b| b.downcast_ref::<Rc<T>>()) {
            return Ok(Rc::clone(n));
        }
        if !self.busy.insert(k) {
            return Err(SnapError::new("a reference cycle in the VM's state"));
        }
        let v = f(self);
        self.busy.remove(&k);
        let n = v?;
        self.map.insert(k, Box::new(Rc::clone(&n)));
        Ok(n)
    }

    /// A copy of bytes behind an `Rc` (names, link targets, generated files).
    pub(crate) fn bytes(&mut self, r: &Rc<[u8]>) -> Rc<[u8]> {
        let k = key(Rc::as_ptr(r));
        if let Some(n) = self.map.get(&k).and_then(|b| b.downcast_ref::<Rc<[u8]>>()) {
            return Rc::clone(n);
        }
        let n: Rc<[u8]> = Rc::from(&r[..]);
        self.map.insert(k, Box::new(Rc::clone(&n)));
        n
    }

    /// The copy of the target of `w`, when one was made (second pass only).
    pub(crate) fn weak<T: 'static>(&self, w: &Weak<T>) -> Option<Weak<T>> {
        self.map
            .get(&key(w.as_ptr()))
            .and_then(|b| b.downcast_ref::<Rc<T>>())
            .map(Rc::downgrade)
    }

    /// Every copy of a `T` made so far.
    pub(crate) fn copies<T: 'static>(&self) -> Vec<Rc<T>> {
        self.map
            .values()
            .filter_map(|b| b.downcast_ref::<Rc<T>>())
            .cloned()
            .collect()
    }

    /// Notes a copied pipe end (the ends' counts are set from the copies at the end).
    pub(crate) fn pipe_end(&mut self, p: &Rc<RefCell<crate::pipe::Pipe>>, side: crate::pipe::Side) {
        let e = self
            .pipes
            .entry(key(Rc::as_ptr(p)))
            .or_insert_with(|| (Rc::clone(p), 0, 0));
        if side.writes() {
            e.2 += 1;
        }
        if side.counts_as_reader() {
            e.1 += 1;
        }
    }

    /// Once everything is copied: the pipes' counts of ends.
    pub(crate) fn finish(&mut self) {
        for (p, r, w) in self.pipes.values() {
            p.borrow_mut().set_ends(*r, *w);
        }
        // Every pipe reached: those with no end copied (a FIFO nobody opened) keep 0.
    }

    /// Every copy made of a pipe (FIFOs included), for `finish`.
    pub(crate) fn note_pipe(&mut self, p: &Rc<RefCell<crate::pipe::Pipe>>) {
        self.pipes
            .entry(key(Rc::as_ptr(p)))
            .or_insert_with(|| (Rc::clone(p), 0, 0));
    }
}

/// A deep copy through a [`Memo`].
pub(crate) trait Snap: Sized {
    fn snap(&self, m: &mut Memo) -> Result<Self, SnapError>;
}

/// Types copied by `Clone` (no `Rc` inside).
macro_rules! plain {
    ($($t:ty),* $(,)?) => {
        $(impl Snap for $t {
            fn snap(&self, _: &mut Memo) -> Result<Self, SnapError> {
                Ok(self.clone())
            }
        })*
    };
}
plain!(u8, u16, u32, u64, i32, i64, usize, bool, String);

impl<T: Snap> Snap for Option<T> {
    fn snap(&self, m: &mut Memo) -> Result<Self, SnapError> {
        self.as_ref().map(|v| v.snap(m)).transpose()
    }
}

impl<T: Snap> Snap for Vec<T> {
    fn snap(&self, m: &mut Memo) -> Result<Self, SnapError> {
        self.iter().map(|v| v.snap(m)).collect()
    }
}

impl<T: Snap> Snap for VecDeque<T> {
    fn snap(&self, m: &mut Memo) -> Result<Self, SnapError> {
        self.iter().map(|v| v.snap(m)).collect()
    }
}

impl<T: Snap> Snap for Box<T> {
    fn snap(&self, m: &mut Memo) -> Result<Self, SnapError> {
        Ok(Box::new((**self).snap(m)?))
    }
}

impl<T: Snap> Snap for RefCell<T> {
    fn snap(&self, m: &mut Memo) -> Result<Self, SnapError> {
        let b = self
            .try_borrow()
            .map_err(|_| SnapError::new("a part of the VM's state is in use"))?;
        Ok(RefCell::new(b.snap(m)?))
    }
}

impl<T: Copy> Snap for Cell<T> {
    fn snap(&self, _: &mut Memo) -> Result<Self, SnapError> {
        Ok(Cell::new(self.get()))
    }
}

impl<K: Clone + Ord, V: Snap> Snap for BTreeMap<K, V> {
    fn snap(&self, m: &mut Memo) -> Result<Self, SnapError> {
        self.iter()
            .map(|(k, v)| Ok((k.clone(), v.snap(m)?)))
            .collect()
    }
}

impl<T: Snap + 'static> Snap for Rc<T> {
    fn snap(&self, m: &mut Memo) -> Result<Self, SnapError> {
        m.rc(self, |m, v| v.snap(m))
    }
}

impl Snap for Rc<[u8]> {
    fn snap(&self, m: &mut Memo) -> Result<Self, SnapError> {
        Ok(m.bytes(self))
    }
}

impl<A: Snap, B: Snap> Snap for (A, B) {
    fn snap(&self, m: &mut Memo) -> Result<Self, SnapError> {
        Ok((self.0.snap(m)?, self.1.snap(m)?))
    }
}

/// A copy of a vCPU's FPU/vector state.
pub(crate) fn xsave(x: &kvm_bindings::kvm_xsave) -> Box<kvm_bindings::kvm_xsave> {
    Box::new(kvm_bindings::kvm_xsave {
        region: x.region,
        extra: kvm_bindings::__IncompleteArrayField::new(),
    })
}
