//! The server's live sandboxes, by id, each with its owner; the per-owner quota.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use hsb_client::api::SandboxInfo;
use hybrid_sandbox::{Live, LiveOptions, LiveState};

use crate::auth::Owner;
use crate::error::ApiError;

/// How long a sandbox that ended by itself (lifetime, idle timeout, failure) stays
/// visible, so its owner can see why it ended.
const KEEP_ENDED: Duration = Duration::from_secs(120);

/// One live sandbox of the server.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) owner: Owner,
    /// The sandbox (while it is paused to disk: the one that went there, destroyed).
    live: Mutex<Live>,
    /// Paused to disk: the snapshot holding its state (its memory in an unnamed file of
    /// the server's spill directory, gone with the snapshot).
    on_disk: Mutex<Option<hybrid_sandbox::Snapshot>>,
    /// Held while it goes to disk or comes back: one move at a time (see [`Entry::hold`]).
    moving: tokio::sync::Mutex<()>,
    /// Counts the starts and ends of moves: odd while one holds it (a counter, not a
    /// `try_lock`: two readers checking at once must not see each other's attempt as a
    /// move; and a reader sees whether one came or went while it looked, `settled`).
    moves: std::sync::atomic::AtomicU64,
    /// Its lifetime passed while it was on disk: the file was freed.
    ended_on_disk: std::sync::atomic::AtomicBool,
    pub(crate) created_at: SystemTime,
    pub(crate) options: LiveOptions,
    pub(crate) image: Option<String>,
    /// The create request its settings came from (through the snapshots it was started
    /// from); `None` for a template's sandbox. A snapshot file carries it, so that the
    /// server it is loaded into builds the same sandbox under its own policy.
    pub(crate) request: Option<Arc<hsb_client::api::CreateRequest>>,
    /// Where the host reaches its exposed ports (fixed when it was created).
    exposed: Vec<hybrid_sandbox::network::ExposedPort>,
    seen_ended: Mutex<Option<Instant>>,
    /// Streamed execs running now, by number: how to signal or kill them.
    execs: Mutex<HashMap<u64, ExecControl>>,
    next_exec: std::sync::atomic::AtomicU64,
}

/// A pause, resume or destroy holding an entry ([`Entry::hold`]).
pub(crate) struct Held<'a> {
    entry: &'a Entry,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Even again: no move under way.
        self.entry
            .moves
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What a streamed exec's task takes from the exec endpoints.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ExecSignal {
    /// End it (its outcome says `killed`).
    Kill,
    /// Send it this signal.
    Signal(i32),
}

pub(crate) type ExecControl = tokio::sync::mpsc::UnboundedSender<ExecSignal>;

impl Entry {
    pub(crate) fn new(
        id: String,
        owner: Owner,
        live: Live,
        options: LiveOptions,
        image: Option<String>,
        request: Option<Arc<hsb_client::api::CreateRequest>>,
    ) -> Entry {
        let exposed = live.exposed_ports();
        Entry {
            id,
            owner,
            live: Mutex::new(live),
            on_disk: Mutex::new(None),
            moving: tokio::sync::Mutex::new(()),
            moves: std::sync::atomic::AtomicU64::new(0),
            ended_on_disk: std::sync::atomic::AtomicBool::new(false),
            created_at: SystemTime::now(),
            options,
            image,
            request,
            exposed,
            seen_ended: Mutex::new(None),
            execs: Mutex::new(HashMap::new()),
            next_exec: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The sandbox as it is now: while it is paused to disk, the one that went there
    /// (destroyed).
    pub(crate) fn current(&self) -> Live {
        lock(&self.live).clone()
    }

    /// The sandbox, to act on; 409 while it is paused to disk, or pausing or resuming.
    pub(crate) fn live(&self) -> Result<Live, ApiError> {
        if self.on_disk() || self.moving() {
            return Err(self.paused());
        }
        Ok(self.current())
    }

    /// The sandbox, to act on while `held` keeps pauses and resumes out; 409 while it
    /// is paused to disk.
    pub(crate) fn live_held(&self, held: &Held<'_>) -> Result<Live, ApiError> {
        debug_assert!(std::ptr::eq(held.entry, self), "held for another sandbox");
        if self.on_disk() {
            return Err(self.paused());
        }
        Ok(self.current())
    }

    /// The refusal of an act on a sandbox that is paused, or being paused or resumed.
    fn paused(&self) -> ApiError {
        let mut e = ApiError::new(
            "wrong_state",
            format!(
                "sandbox {} is paused, or being paused or resumed; resume it first \
                 (POST /v1/sandboxes/{}/resume)",
                self.id, self.id
            ),
        );
        e.detail.state = Some(LiveState::Paused);
        e
    }

    /// Whether it is paused to disk.
    pub(crate) fn on_disk(&self) -> bool {
        lock(&self.on_disk).is_some()
    }

    /// Whether a pause, a resume or a destroy holds it now.
    fn moving(&self) -> bool {
        self.moves.load(std::sync::atomic::Ordering::SeqCst) % 2 == 1
    }

    /// The sandbox as it is now and its state, and whether it is (or was, while they
    /// were read) on its way to disk or back: a move replaces the sandbox and sets
    /// `on_disk` in steps, so a destroyed state read during one is the move's, never
    /// an end.
    fn settled(&self) -> (Live, LiveState, bool, bool) {
        let before = self.moves.load(std::sync::atomic::Ordering::SeqCst);
        let live = self.current();
        let state = live.state();
        let on_disk = self.on_disk();
        let after = self.moves.load(std::sync::atomic::Ordering::SeqCst);
        let moving = before % 2 == 1 || before != after;
        (live, state, on_disk, moving)
    }

    /// Holds it for a pause, a resume or a destroy (waiting for one under way): until
    /// the guard goes, it shows paused and its execs and files get 409.
    pub(crate) async fn hold(&self) -> Held<'_> {
        let guard = self.moving.lock().await;
        // Odd while the move is under way (see `settled`).
        self.moves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Held {
            entry: self,
            _guard: guard,
        }
    }

    /// It went to disk: `snapshot` holds it.
    pub(crate) fn went_to_disk(&self, snapshot: hybrid_sandbox::Snapshot) {
        *lock(&self.on_disk) = Some(snapshot);
    }

    /// The snapshot it is paused in, to start it again.
    pub(crate) fn disk(&self) -> Option<hybrid_sandbox::Snapshot> {
        lock(&self.on_disk).clone()
    }

    /// Takes the snapshot it is paused in, to free it.
    pub(crate) fn take_disk(&self) -> Option<hybrid_sandbox::Snapshot> {
        lock(&self.on_disk).take()
    }

    /// Destroys it, after a pause or resume under way; its file on disk goes too.
    pub(crate) async fn destroy(&self) -> Result<(), hybrid_sandbox::Error> {
        let _held = self.hold().await;
        drop(self.take_disk());
        self.current().destroy().await
    }

    /// It came back from disk as `live`: the snapshot goes (with its file, once `live`
    /// no longer reads from it).
    pub(crate) fn came_back(&self, live: Live) {
        *lock(&self.live) = live;
        drop(self.take_disk());
    }

    /// The API's view of it (without stats).
    pub(crate) fn info(&self) -> SandboxInfo {
        let (live, state, on_disk, moving) = self.settled();
        // Going to disk, the sandbox is destroyed before its snapshot is kept: paused.
        let moving = moving && state == LiveState::Destroyed;
        SandboxInfo {
            id: self.id.clone(),
            isolation: live.isolation(),
            state: if on_disk || moving {
                LiveState::Paused
            } else {
                state
            },
            on_disk,
            ended: if on_disk || moving {
                None
            } else if self
                .ended_on_disk
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                Some(hybrid_sandbox::EndReason::Lifetime)
            } else {
                live.ended()
            },
            decision: live.decision().clone(),
            enforcement: live.enforcement().clone(),
            created_at: self
                .created_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| (d.as_secs_f64() * 1e3).round() / 1e3),
            lifetime: self.options.lifetime,
            idle_timeout: self.options.idle_timeout,
            image: self.image.clone(),
            network: live.enforcement().network,
            exposed: self.exposed.clone(),
            stats: None,
            outcome: None,
        }
    }

    /// Whether it has ended: destroyed, and neither paused to disk nor on its way
    /// there or back.
    pub(crate) fn ended(&self) -> bool {
        let (_, state, on_disk, moving) = self.settled();
        state == LiveState::Destroyed && !on_disk && !moving
    }

    /// Frees the file of a sandbox whose lifetime passed while it was paused to disk
    /// (it would end at once if resumed).
    fn end_on_disk_past_lifetime(&self) {
        let past = self
            .options
            .lifetime
            .is_some_and(|l| self.created_at.elapsed().is_ok_and(|age| age >= l));
        if !past || !self.on_disk() {
            return;
        }
        if let Ok(_moving) = self.moving.try_lock() {
            if self.take_disk().is_some() {
                self.ended_on_disk
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(id = %self.id, "lifetime passed on disk: its file freed");
            }
        }
    }

    /// Registers a streamed exec; its number.
    pub(crate) fn add_exec(&self, control: ExecControl) -> u64 {
        let n = self
            .next_exec
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.execs).insert(n, control);
        n
    }

    /// Forgets a streamed exec that ended.
    pub(crate) fn remove_exec(&self, n: u64) {
        lock(&self.execs).remove(&n);
    }

    /// The control of a streamed exec that is still running.
    pub(crate) fn exec(&self, n: u64) -> Option<ExecControl> {
        lock(&self.execs).get(&n).cloned()
    }

    /// True when it ended long enough ago to be forgotten.
    fn expired(&self, now: Instant) -> bool {
        if !self.ended() {
            return false;
        }
        let mut seen = lock(&self.seen_ended);
        let at = *seen.get_or_insert(now);
        now.duration_since(at) >= KEEP_ENDED
    }
}

/// A snapshot of one of the server's sandboxes.
#[derive(Debug)]
pub(crate) struct SnapEntry {
    pub(crate) id: String,
    pub(crate) owner: Owner,
    pub(crate) snapshot: hybrid_sandbox::Snapshot,
    /// The sandbox it was taken of, its options and image (those of the sandboxes
    /// started from it).
    pub(crate) source: String,
    pub(crate) options: LiveOptions,
    pub(crate) image: Option<String>,
    /// The create request of the sandbox it was taken of (see [`Entry::request`]).
    pub(crate) request: Option<Arc<hsb_client::api::CreateRequest>>,
    /// Loaded from an uploaded file: that file (unnamed, in the spill directory), which
    /// a download sends again (a loaded snapshot is not saved twice).
    pub(crate) file: Option<Arc<std::fs::File>>,
}

impl SnapEntry {
    /// The API's view of it.
    pub(crate) fn info(&self) -> hsb_client::api::SnapshotInfo {
        hsb_client::api::SnapshotInfo {
            snapshot_id: self.id.clone(),
            sandbox: self.source.clone(),
            isolation: self.snapshot.inner().isolation(),
            kept: self.snapshot.kept(),
            memory_bytes: self.snapshot.memory_bytes(),
        }
    }
}

/// Most snapshots an owner keeps at once.
pub(crate) const SNAPSHOT_QUOTA: usize = 64;

#[derive(Debug, Default)]
struct State {
    by_id: HashMap<String, Arc<Entry>>,
    snapshots: HashMap<String, Arc<SnapEntry>>,
    /// Owners sending or receiving a snapshot file now.
    transferring: std::collections::HashSet<Owner>,
    /// Creations under way, per owner (they count against the quota).
    pending: HashMap<Owner, usize>,
    /// No creation after shutdown began.
    closed: bool,
}

/// The sandboxes of a server.
#[derive(Debug)]
pub(crate) struct Registry {
    state: Mutex<State>,
    quota: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A quota slot held while a sandbox is created; released when dropped uncommitted.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    registry: &'a Registry,
    owner: Owner,
    done: bool,
}

impl Slot<'_> {
    /// Records the sandbox; it no longer counts as pending.
    pub(crate) fn commit(mut self, entry: Entry) -> Result<Arc<Entry>, ApiError> {
        let mut st = lock(&self.registry.state);
        self.done = true;
        release(&mut st, &self.owner);
        if st.closed {
            return Err(shutting_down());
        }
        let e = Arc::new(entry);
        st.by_id.insert(e.id.clone(), e.clone());
        Ok(e)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.done {
            release(&mut lock(&self.registry.state), &self.owner);
        }
    }
}

fn release(st: &mut State, owner: &Owner) {
    if let Some(n) = st.pending.get_mut(owner) {
        *n -= 1;
        if *n == 0 {
            st.pending.remove(owner);
        }
    }
}

fn shutting_down() -> ApiError {
    ApiError::new("unavailable", "the server is shutting down")
}

impl Registry {
    pub(crate) fn new(quota: usize) -> Registry {
        Registry {
            state: Mutex::new(State::default()),
            quota,
        }
    }

    fn sweep(st: &mut State) {
        let now = Instant::now();
        for e in st.by_id.values() {
            e.end_on_disk_past_lifetime();
        }
        st.by_id.retain(|_, e| !e.expired(now));
    }

    /// Frees what ended without a request to see it: files of sandboxes whose lifetime
    /// passed on disk, sandboxes ended long enough ago (the server calls it
    /// periodically).
    pub(crate) fn sweep_now(&self) {
        Registry::sweep(&mut lock(&self.state));
    }

    /// A quota slot for a new sandbox of `owner`, or 429.
    pub(crate) fn reserve(&self, owner: &Owner) -> Result<Slot<'_>, ApiError> {
        let mut st = lock(&self.state);
        if st.closed {
            return Err(shutting_down());
        }
        Registry::sweep(&mut st);
        let live = st
            .by_id
            .values()
            .filter(|e| &e.owner == owner && !e.ended())
            .count();
        let pending = st.pending.get(owner).copied().unwrap_or(0);
        if live + pending >= self.quota {
            return Err(ApiError::new(
                "quota",
                format!(
                    "{owner} has {} live sandboxes, the server's quota (hsb serve --quota); \
                     destroy one first",
                    self.quota
                ),
            ));
        }
        *st.pending.entry(owner.clone()).or_default() += 1;
        Ok(Slot {
            registry: self,
            owner: owner.clone(),
            done: false,
        })
    }

    /// The sandbox `id` of `owner` (404 for anyone else's: its existence is not told).
    pub(crate) fn get(&self, owner: &Owner, id: &str) -> Result<Arc<Entry>, ApiError> {
        let mut st = lock(&self.state);
        Registry::sweep(&mut st);
        match st.by_id.get(id) {
            Some(e) if &e.owner == owner => Ok(e.clone()),
            _ => Err(ApiError::no_such_sandbox(id)),
        }
    }

    /// The sandboxes of `owner`, oldest first.
    pub(crate) fn list(&self, owner: &Owner) -> Vec<Arc<Entry>> {
        let mut st = lock(&self.state);
        Registry::sweep(&mut st);
        let mut v: Vec<_> = st
            .by_id
            .values()
            .filter(|e| &e.owner == owner)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    /// Keeps a snapshot of `owner` (at most [`SNAPSHOT_QUOTA`] each: 429 past it).
    pub(crate) fn add_snapshot(&self, e: SnapEntry) -> Result<Arc<SnapEntry>, ApiError> {
        let mut st = lock(&self.state);
        if st.closed {
            return Err(shutting_down());
        }
        let n = st.snapshots.values().filter(|s| s.owner == e.owner).count();
        if n >= SNAPSHOT_QUOTA {
            return Err(snapshot_quota(&e.owner));
        }
        let e = Arc::new(e);
        st.snapshots.insert(e.id.clone(), e.clone());
        Ok(e)
    }

    /// The snapshots of `owner`, by id.
    pub(crate) fn snapshots(&self, owner: &Owner) -> Vec<Arc<SnapEntry>> {
        let mut v: Vec<_> = lock(&self.state)
            .snapshots
            .values()
            .filter(|s| &s.owner == owner)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Marks a snapshot file of `owner` in transfer (either way), until
    /// [`Registry::end_transfer`]: one at a time each (409 for a second), so that no
    /// owner fills the spill directory with many.
    pub(crate) fn begin_transfer(&self, owner: &Owner) -> Result<(), ApiError> {
        if !lock(&self.state).transferring.insert(owner.clone()) {
            return Err(ApiError::new(
                "busy",
                format!("{owner} is sending or receiving a snapshot file already: one at a time"),
            ));
        }
        Ok(())
    }

    /// The transfer [`Registry::begin_transfer`] marked ended.
    pub(crate) fn end_transfer(&self, owner: &Owner) {
        lock(&self.state).transferring.remove(owner);
    }

    /// Fails with 429 when `owner` holds as many snapshots as it may.
    pub(crate) fn snapshot_room(&self, owner: &Owner) -> Result<(), ApiError> {
        let st = lock(&self.state);
        if st.closed {
            return Err(shutting_down());
        }
        if st.snapshots.values().filter(|s| &s.owner == owner).count() >= SNAPSHOT_QUOTA {
            return Err(snapshot_quota(owner));
        }
        Ok(())
    }

    /// The snapshot `id` of `owner` (404 for anyone else's).
    pub(crate) fn snapshot(&self, owner: &Owner, id: &str) -> Result<Arc<SnapEntry>, ApiError> {
        match lock(&self.state).snapshots.get(id) {
            Some(e) if &e.owner == owner => Ok(e.clone()),
            _ => Err(no_such_snapshot(id)),
        }
    }

    /// Takes the snapshot `id` of `owner` out of the registry.
    pub(crate) fn remove_snapshot(
        &self,
        owner: &Owner,
        id: &str,
    ) -> Result<Arc<SnapEntry>, ApiError> {
        let mut st = lock(&self.state);
        if st.snapshots.get(id).is_some_and(|e| &e.owner == owner) {
            if let Some(e) = st.snapshots.remove(id) {
                return Ok(e);
            }
        }
        Err(no_such_snapshot(id))
    }

    /// Takes the sandbox `id` of `owner` out of the registry.
    pub(crate) fn remove(&self, owner: &Owner, id: &str) -> Result<Arc<Entry>, ApiError> {
        let mut st = lock(&self.state);
        if st.by_id.get(id).is_some_and(|e| &e.owner == owner) {
            if let Some(e) = st.by_id.remove(id) {
                return Ok(e);
            }
        }
        Err(ApiError::no_such_sandbox(id))
    }

    /// Closes the registry to new sandboxes and takes them all (at shutdown).
    pub(crate) fn drain(&self) -> Vec<Arc<Entry>> {
        let mut st = lock(&self.state);
        st.closed = true;
        st.by_id.drain().map(|(_, e)| e).collect()
    }
}

/// A new sandbox id: `sb-` and 24 hex digits from the kernel's random source.
fn no_such_snapshot(id: &str) -> ApiError {
    ApiError::new(
        "no_such_snapshot",
        format!("no snapshot {id:?} of yours on this server (take one with POST /v1/sandboxes/ID/snapshot)"),
    )
}

fn snapshot_quota(owner: &Owner) -> ApiError {
    ApiError::new(
        "quota",
        format!(
            "{owner} has {SNAPSHOT_QUOTA} snapshots, the server's most per owner; delete one first (DELETE /v1/snapshots/ID)"
        ),
    )
}

/// A new snapshot id: `snap-` and 24 hex digits.
pub(crate) fn new_snapshot_id() -> std::io::Result<String> {
    new_id().map(|s| format!("snap-{}", &s[3..]))
}

pub(crate) fn new_id() -> std::io::Result<String> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(format!(
        "sb-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}
