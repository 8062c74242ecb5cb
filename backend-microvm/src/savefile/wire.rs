//! The byte encoding of a saved personality state: little-endian integers, lengths
//! before contents, and shared objects (`Rc`s) written once and referred to by number
//! afterwards. Reading never trusts the bytes: every length is checked against what is
//! left, every count against a bound, every reference against what was read before;
//! a failure is an error naming what was being read, never a panic.

use std::any::Any;
use std::collections::HashMap;
use std::rc::Rc;

/// Why a saved state cannot be read (a corrupt or crafted file), in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct WireError(pub(crate) String);

pub(crate) fn bad(s: impl Into<String>) -> WireError {
    WireError(s.into())
}

/// Writes a state.
#[derive(Debug, Default)]
pub(crate) struct Enc {
    pub(crate) buf: Vec<u8>,
    ids: HashMap<usize, u32>,
}

impl Enc {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.u32(v as u32);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.u64(v as u64);
    }
    pub(crate) fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.usize(v.len());
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Enc, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }
    pub(crate) fn seq<T>(
        &mut self,
        v: impl ExactSizeIterator<Item = T>,
        mut f: impl FnMut(&mut Enc, T),
    ) {
        self.usize(v.len());
        for x in v {
            f(self, x);
        }
    }
    /// A shared object: its number, and `true` the first time (its contents follow).
    pub(crate) fn shared<T: ?Sized>(&mut self, p: *const T) -> bool {
        let k = p.cast::<()>() as usize;
        let n = self.ids.len() as u32;
        match self.ids.get(&k) {
            Some(&id) => {
                self.u8(0);
                self.u32(id);
                false
            }
            None => {
                self.ids.insert(k, n);
                self.u8(1);
                self.u32(n);
                true
            }
        }
    }
}

/// The most items a sequence may claim (a bound on what a crafted count can make the
/// reader allocate before the bytes run out).
const MAX_ITEMS: usize = 1 << 24;

/// Reads a state.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    objs: Vec<Box<dyn Any>>,
}

impl std::fmt::Debug for Dec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dec")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

/// A shared object's first appearance, or a reference to an earlier one.
pub(crate) enum Shared<T> {
    Known(Rc<T>),
    New(u32),
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec {
            buf,
            pos: 0,
            objs: Vec::new(),
        }
    }
    pub(crate) fn done(&self) -> Result<(), WireError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(bad(format!(
                "{} bytes left over after the state",
                self.buf.len() - self.pos
            )))
        }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| bad(format!("the state ends inside {what}")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    pub(crate) fn bool(&mut self, what: &str) -> Result<bool, WireError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(bad(format!("{what}: {v} is not a boolean"))),
        }
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn i32(&mut self, what: &str) -> Result<i32, WireError> {
        Ok(self.u32(what)? as i32)
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, WireError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, WireError> {
        Ok(self.u64(what)? as i64)
    }
    /// A length or count: at most `max`, and at most the bytes left (each item takes
    /// at least one byte).
    pub(crate) fn len(&mut self, max: usize, what: &str) -> Result<usize, WireError> {
        let n = self.u64(what)?;
        let left = self.buf.len() - self.pos;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= max.min(MAX_ITEMS) && n <= left)
            .ok_or_else(|| bad(format!("{what}: a length of {n} is out of bounds")))
    }
    pub(crate) fn usize(&mut self, what: &str) -> Result<usize, WireError> {
        let n = self.u64(what)?;
        usize::try_from(n).map_err(|_| bad(format!("{what}: {n} is out of bounds")))
    }
    pub(crate) fn bytes(&mut self, what: &str) -> Result<Vec<u8>, WireError> {
        let n = self.len(usize::MAX, what)?;
        Ok(self.take(n, what)?.to_vec())
    }
    pub(crate) fn opt<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Dec<'a>) -> Result<T, WireError>,
    ) -> Result<Option<T>, WireError> {
        if self.bool(what)? {
            Ok(Some(f(self)?))
        } else {
            Ok(None)
        }
    }
    pub(crate) fn seq<T>(
        &mut self,
        max: usize,
        what: &str,
        mut f: impl FnMut(&mut Dec<'a>) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        let n = self.len(max, what)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(f(self)?);
        }
        Ok(v)
    }
    /// A shared object: an earlier one, or the number of a new one (give it to
    /// [`Dec::define`] once read).
    pub(crate) fn shared<T: 'static>(&mut self, what: &str) -> Result<Shared<T>, WireError> {
        let tag = self.u8(what)?;
        let id = self.u32(what)? as usize;
        match tag {
            0 => self
                .objs
                .get(id)
                .and_then(|b| b.downcast_ref::<Rc<T>>())
                .cloned()
                .map(Shared::Known)
                .ok_or_else(|| {
                    bad(format!(
                        "{what}: a reference to object {id}, which is not one read before"
                    ))
                }),
            1 if id == self.objs.len() => {
                // Reserved now (a placeholder of another type), defined once read.
                self.objs.push(Box::new(()));
                Ok(Shared::New(id as u32))
            }
            _ => Err(bad(format!("{what}: object {id} out of order"))),
        }
    }
    pub(crate) fn define<T: 'static>(&mut self, id: u32, v: Rc<T>) {
        if let Some(slot) = self.objs.get_mut(id as usize) {
            *slot = Box::new(v);
        }
    }
    /// The shared object `T` read by `f` the first time.
    pub(crate) fn rc<T: 'static>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Dec<'a>) -> Result<T, WireError>,
    ) -> Result<Rc<T>, WireError> {
        match self.shared::<T>(what)? {
            Shared::Known(r) => Ok(r),
            Shared::New(id) => {
                let v = Rc::new(f(self)?);
                self.define(id, Rc::clone(&v));
                Ok(v)
            }
        }
    }
}
