//! The broker's record of its decisions: the run's [`NetworkReport`], kept bounded, and
//! the same facts as [`NetworkEvent`]s for whoever listens while the sandbox runs.

use std::sync::{Arc, Mutex};

use sandbox_core::network::{
    ConnectionRecord, DnsRecord, NetworkEvent, NetworkReport, NetworkVerdict,
};
use tokio::sync::broadcast;

/// Records kept in a report at most, per kind (DNS questions, connections).
const MAX_RECORDS: usize = 10_000;

/// Shared by the broker's tasks.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    inner: Arc<Mutex<NetworkReport>>,
    events: broadcast::Sender<NetworkEvent>,
}

/// A connection's place in the report, to add its byte counts when it ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnId(Option<usize>);

impl Recorder {
    pub(crate) fn new(report: NetworkReport) -> Recorder {
        let (events, _) = broadcast::channel(1024);
        Recorder {
            inner: Arc::new(Mutex::new(report)),
            events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetworkReport> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    pub(crate) fn snapshot(&self) -> NetworkReport {
        self.lock().clone()
    }

    fn emit(&self, e: NetworkEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(e);
    }

    /// A DNS question and its answer; repeats are counted.
    pub(crate) fn dns(&self, rec: DnsRecord) {
        let mut r = self.lock();
        let same = r
            .dns
            .iter()
            .position(|d| d.name == rec.name && d.qtype == rec.qtype && d.verdict == rec.verdict);
        match same {
            Some(i) => r.dns[i].count += 1,
            None if r.dns.len() < MAX_RECORDS => r.dns.push(rec.clone()),
            None => r.truncated = true,
        }
        drop(r);
        self.emit(NetworkEvent::Dns(rec));
    }

    /// A connection decided (allowed or denied).
    pub(crate) fn opened(&self, rec: ConnectionRecord) -> ConnId {
        let mut r = self.lock();
        let id = if r.connections.len() < MAX_RECORDS {
            r.connections.push(rec.clone());
            Some(r.connections.len() - 1)
        } else {
            r.truncated = true;
            None
        };
        drop(r);
        self.emit(NetworkEvent::ConnectionOpened(rec));
        ConnId(id)
    }

    /// Changes a connection's record (a refusal found after it was opened, the secrets
    /// sent, interception).
    pub(crate) fn update(&self, id: ConnId, f: impl FnOnce(&mut ConnectionRecord)) {
        if let Some(i) = id.0 {
            if let Some(c) = self.lock().connections.get_mut(i) {
                f(c);
            }
        }
    }

    /// A connection ended, with its byte counts.
    pub(crate) fn closed(&self, id: ConnId, bytes_out: u64, bytes_in: u64) {
        let Some(i) = id.0 else { return };
        let mut r = self.lock();
        let Some(c) = r.connections.get_mut(i) else {
            return;
        };
        c.bytes_out = bytes_out;
        c.bytes_in = bytes_in;
        let rec = c.clone();
        drop(r);
        self.emit(NetworkEvent::ConnectionClosed(rec));
    }

    /// A packet refused without a connection.
    pub(crate) fn dropped(&self, kind: &str) {
        *self
            .lock()
            .dropped_packets
            .entry(kind.to_string())
            .or_default() += 1;
        self.emit(NetworkEvent::Dropped {
            kind: kind.to_string(),
        });
    }

    /// Marks a connection denied after the fact.
    pub(crate) fn deny(&self, id: ConnId, note: String) {
        self.update(id, |c| {
            c.verdict = NetworkVerdict::Denied;
            c.note = Some(note);
        });
    }
}
