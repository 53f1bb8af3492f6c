//! A build's log: lines are buffered briefly and written to the database in
//! batches, so a chatty build costs a few transactions a second, not one per
//! line, and the log survives the server.

use std::sync::Arc;
use std::time::Duration;

use ferry_store::Database;
use tokio::sync::mpsc;

/// Where build output goes. Cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::UnboundedSender<(i64, String, String)>,
}

impl LogSink {
    /// Starts the writer task; it ends once every sink is dropped and the
    /// last lines are written, which `finish` waits for.
    pub fn start(db: Arc<dyn Database>, build_id: i64) -> (LogSink, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(i64, String, String)>();
        let writer = tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                let first = rx.recv().await;
                let Some(first) = first else { break };
                batch.push(first);
                // Gather what arrives within a short window.
                let window = tokio::time::sleep(Duration::from_millis(100));
                tokio::pin!(window);
                loop {
                    tokio::select! {
                        next = rx.recv() => match next {
                            Some(l) => { batch.push(l); if batch.len() >= 500 { break } }
                            None => break,
                        },
                        _ = &mut window => break,
                    }
                }
                if let Err(e) = db.append_build_log(build_id, &batch).await {
                    tracing::error!(build_id, "writing the build log: {e}");
                }
                batch.clear();
            }
        });
        (LogSink { tx }, writer)
    }

    /// Adds one line from `stream` (`stdout`, `stderr`, or `ferry`).
    pub fn line(&self, stream: &str, mut line: String) {
        ferry_domain::log::cut_line(&mut line);
        let _ = self.tx.send((crate::now_ms(), stream.to_string(), line));
    }

    /// A line written by Ferry itself.
    pub fn ferry(&self, line: impl Into<String>) {
        self.line(ferry_domain::log::FERRY, line.into());
    }
}
