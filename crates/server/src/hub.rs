//! The open agent connections of this server process, and the change
//! notices the web interface's live pages follow.
//!
//! This is the only in-memory state of the server, and it is only a cache of
//! who is connected: waking a connection makes it read the host's desired
//! state from the database and send it. A wake-up that is lost (another
//! replica, a race) is repaired by the periodic resync. Wake-ups also go to
//! the other server processes through the database (`crate::replica`), and
//! so do change notices. A lost change notice is repaired by the live pages'
//! periodic refresh.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// host id -> (connection id, its wake-up).
type Connections = HashMap<i64, (u64, Arc<Notify>)>;

#[derive(Clone, Default)]
pub struct Hub {
    connections: Arc<Mutex<Connections>>,
    next_id: Arc<AtomicU64>,
    changes: Changes,
    /// Hosts woken here since the replica task last published them for the
    /// other server processes (`crate::replica`).
    outgoing: Arc<Mutex<HashSet<i64>>>,
    /// Change notices given here since the replica task last published them.
    outgoing_changes: Arc<Mutex<HashSet<Option<String>>>>,
}

/// Projects whose change notices are kept for publishing at most; beyond it
/// they become one notice for everything.
const OUTGOING_CHANGES_MAX: usize = 1_000;

/// Wake-ups kept for publishing at most; beyond it they are dropped and the
/// other processes' agents catch up on their periodic resync.
const OUTGOING_MAX: usize = 100_000;

/// "Something a page shows has changed": the project it belongs to, or
/// `None` when it may be any (hosts, reports of an agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub project: Option<String>,
}

/// A session's open live pages, oldest first: (slot id, its eviction).
type LivePages = HashMap<String, Vec<(u64, Arc<Notify>)>>;

/// The broadcast of [`Change`]s and the live pages of each session.
#[derive(Clone)]
struct Changes {
    tx: tokio::sync::broadcast::Sender<Change>,
    per_session: Arc<Mutex<LivePages>>,
    next_slot: Arc<AtomicU64>,
}

impl Default for Changes {
    fn default() -> Self {
        // A page that lags behind by this many notices refreshes anyway.
        let (tx, _) = tokio::sync::broadcast::channel(64);
        Changes { tx, per_session: Arc::default(), next_slot: Arc::default() }
    }
}

/// One live page's place in its session's bound; given back when dropped
/// (the page went away). `evicted` fires when a newer page of the same
/// session took the place.
pub struct LiveSlot {
    key: String,
    id: u64,
    pub evicted: Arc<Notify>,
    per_session: Arc<Mutex<LivePages>>,
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        let mut map = self.per_session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pages) = map.get_mut(&self.key) {
            pages.retain(|(id, _)| *id != self.id);
            if pages.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

/// A registered connection; its `wake` fires when desired state changed.
pub struct Registration {
    pub conn_id: u64,
    pub wake: Arc<Notify>,
}

impl Hub {
    /// Registers a connection for a host, replacing (and waking, so that it
    /// notices) any older connection of the same host.
    pub fn register(&self, host_id: i64) -> Registration {
        let conn_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        let old = self.lock().insert(host_id, (conn_id, wake.clone()));
        if let Some((_, old_wake)) = old {
            old_wake.notify_one();
        }
        Registration { conn_id, wake }
    }

    /// How many hosts have an agent connected to this server process.
    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    /// True while `conn_id` is the host's current connection.
    pub fn is_current(&self, host_id: i64, conn_id: u64) -> bool {
        self.lock().get(&host_id).is_some_and(|(id, _)| *id == conn_id)
    }

    /// Removes the connection if it is still the host's current one; returns
    /// whether it was (only then is the host really gone).
    pub fn unregister(&self, host_id: i64, conn_id: u64) -> bool {
        let mut map = self.lock();
        if map.get(&host_id).is_some_and(|(id, _)| *id == conn_id) {
            map.remove(&host_id);
            true
        } else {
            false
        }
    }

    /// Ends the host's connection (the host was removed): it is forgotten
    /// and woken, finds it is no longer current, and closes.
    pub fn disconnect(&self, host_id: i64) {
        if let Some((_, wake)) = self.lock().remove(&host_id) {
            wake.notify_one();
        }
    }

    /// Asks these hosts' connections to resend desired state: here at once,
    /// and through the database on the other server processes.
    pub fn wake(&self, host_ids: impl IntoIterator<Item = i64>) {
        let ids: Vec<i64> = host_ids.into_iter().collect();
        {
            let mut out = self.outgoing.lock().unwrap_or_else(|e| e.into_inner());
            for id in &ids {
                if out.len() < OUTGOING_MAX {
                    out.insert(*id);
                }
            }
        }
        self.wake_local(ids);
    }

    /// Wakes these hosts' connections to this process only (a wake-up that
    /// came from another process).
    pub fn wake_local(&self, host_ids: impl IntoIterator<Item = i64>) {
        let map = self.lock();
        for id in host_ids {
            if let Some((_, wake)) = map.get(&id) {
                wake.notify_one();
            }
        }
    }

    /// The hosts woken here since the last call, for publishing.
    pub fn take_outgoing(&self) -> Vec<i64> {
        let mut out = self.outgoing.lock().unwrap_or_else(|e| e.into_inner());
        out.drain().collect()
    }

    /// Tells the live pages that something of `project` (or of anything,
    /// with `None`) changed. Nobody listening is fine.
    /// The notice reaches the other server processes' live pages too.
    pub fn changed(&self, project: Option<&str>) {
        {
            let mut out = self.outgoing_changes.lock().unwrap_or_else(|e| e.into_inner());
            if out.len() >= OUTGOING_CHANGES_MAX {
                out.clear();
                out.insert(None);
            } else {
                out.insert(project.map(str::to_string));
            }
        }
        self.changed_local(project);
    }

    /// Tells this process's live pages only (a notice from another process).
    pub fn changed_local(&self, project: Option<&str>) {
        let _ = self.changes.tx.send(Change { project: project.map(str::to_string) });
    }

    /// The change notices given here since the last call, for publishing.
    pub fn take_outgoing_changes(&self) -> Vec<Option<String>> {
        let mut out = self.outgoing_changes.lock().unwrap_or_else(|e| e.into_inner());
        out.drain().collect()
    }

    /// The change notices from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.tx.subscribe()
    }

    /// A place for one more live page of session `key`. A session holds at
    /// most `max`: the oldest beyond that is evicted (its page polls
    /// instead), since the newest page is the one being looked at and a
    /// page left behind may not have closed its stream yet.
    pub fn live_slot(&self, key: &str, max: usize) -> LiveSlot {
        let mut map = self.changes.per_session.lock().unwrap_or_else(|e| e.into_inner());
        let pages = map.entry(key.to_string()).or_default();
        while pages.len() >= max.max(1) {
            let (_, evicted) = pages.remove(0);
            evicted.notify_one();
        }
        let id = self.changes.next_slot.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(Notify::new());
        pages.push((id, evicted.clone()));
        LiveSlot { key: key.to_string(), id, evicted, per_session: self.changes.per_session.clone() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        // A poisoned map is still a valid map of connections.
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[test]
    fn a_session_holds_at_most_its_bound_of_live_pages_the_oldest_giving_way() {
        let hub = Hub::default();
        let count = |hub: &Hub, key: &str| hub.changes.per_session.lock().unwrap().get(key).map_or(0, Vec::len);
        let held: Vec<LiveSlot> = (0..3).map(|_| hub.live_slot("s1", 3)).collect();
        assert_eq!(count(&hub, "s1"), 3);
        let fourth = hub.live_slot("s1", 3);
        assert_eq!(count(&hub, "s1"), 3, "the bound holds");
        // The oldest was told to go; its notice is waiting for it.
        let first = &held[0];
        assert!(first.evicted.notified().now_or_never().is_some(), "the oldest page is evicted");
        assert!(held[1].evicted.notified().now_or_never().is_none(), "the others stay");
        let _other = hub.live_slot("s2", 3);
        assert_eq!(count(&hub, "s2"), 1, "another session has its own bound");
        drop(held);
        drop(fourth);
        assert_eq!(count(&hub, "s1"), 0, "closed pages give their places back");
    }

    /// A local wake-up is also kept for the other server processes, once per
    /// host; one that came from another process is not sent back out.
    #[test]
    fn wake_ups_are_kept_for_other_processes_and_foreign_ones_are_not_echoed() {
        let hub = Hub::default();
        let here = hub.register(1);
        hub.wake([1, 2, 2]);
        assert!(here.wake.notified().now_or_never().is_some(), "woken here at once");
        let mut out = hub.take_outgoing();
        out.sort();
        assert_eq!(out, [1, 2]);
        assert!(hub.take_outgoing().is_empty(), "taken once");
        hub.wake_local([1, 3]);
        assert!(here.wake.notified().now_or_never().is_some());
        assert!(hub.take_outgoing().is_empty(), "a wake-up from elsewhere is not published again");
    }

    #[tokio::test]
    async fn change_notices_reach_every_listener() {
        let hub = Hub::default();
        let mut rx = hub.subscribe();
        hub.changed(Some("app"));
        hub.changed(None);
        assert_eq!(rx.recv().await.unwrap(), Change { project: Some("app".into()) });
        assert_eq!(rx.recv().await.unwrap(), Change { project: None });
    }

    #[tokio::test]
    async fn change_notices_are_published_once_and_those_from_elsewhere_not_again() {
        let hub = Hub::default();
        let mut rx = hub.subscribe();
        for _ in 0..3 {
            hub.changed(Some("app"));
        }
        hub.changed(None);
        let mut out = hub.take_outgoing_changes();
        out.sort();
        assert_eq!(out, [None, Some("app".to_string())], "one notice per project");
        assert!(hub.take_outgoing_changes().is_empty(), "taken once");
        hub.changed_local(Some("web"));
        assert!(hub.take_outgoing_changes().is_empty(), "a notice from elsewhere is not published again");
        for _ in 0..4 {
            rx.recv().await.unwrap();
        }
        assert_eq!(rx.recv().await.unwrap(), Change { project: Some("web".into()) }, "but reaches the pages here");
        for n in 0..OUTGOING_CHANGES_MAX + 5 {
            hub.changed(Some(&format!("p{n}")));
        }
        assert!(hub.take_outgoing_changes().len() <= OUTGOING_CHANGES_MAX, "bounded");
    }
}
