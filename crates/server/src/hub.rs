//! The open agent connections of this server process.
//!
//! This is the only in-memory state of the server, and it is only a cache of
//! who is connected: waking a connection makes it read the host's desired
//! state from the database and send it. A wake-up that is lost (another
//! replica, a race) is repaired by the periodic resync.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// host id -> (connection id, its wake-up).
type Connections = HashMap<i64, (u64, Arc<Notify>)>;

#[derive(Clone, Default)]
pub struct Hub {
    connections: Arc<Mutex<Connections>>,
    next_id: Arc<AtomicU64>,
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

    /// Asks these hosts' connections to resend desired state.
    pub fn wake(&self, host_ids: impl IntoIterator<Item = i64>) {
        let map = self.lock();
        for id in host_ids {
            if let Some((_, wake)) = map.get(&id) {
                wake.notify_one();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        // A poisoned map is still a valid map of connections.
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}
