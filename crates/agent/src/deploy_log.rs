//! The deployment log of one install: the output of the release's hooks and
//! the agent's own steps ("downloading 12 files (3.4 MB)", "activated ...").
//!
//! Lines go up the agent channel as `AgentMsg::Log`, in batches: at most
//! [`BATCH_LINES`] lines or [`BATCH_BYTES`] bytes per message, and none waits
//! longer than [`FLUSH_EVERY`], so a deployment can be followed live and a
//! chatty hook costs a few messages a second, not one per line. The server
//! files them under the deployment taking this release to this host.
//!
//! The agent keeps to the same budget as the server (`ferry_domain::log`):
//! output beyond it is only counted, and one marker line says how much was
//! dropped. That bounds the memory a hook can fill while the server is
//! unreachable and the reports channel is not drained.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ferry_domain::log::{self, LogBudget};
use ferry_proto::agent::{AgentMsg, LogLine};
use tokio::sync::mpsc;

/// Most lines in one message.
const BATCH_LINES: usize = 100;
/// Most bytes of text in one message (a line may be up to `log::MAX_LINE`).
const BATCH_BYTES: usize = 64 * 1024;
/// Longest a line waits before it is sent.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Where one install's log lines go. Cheap to clone: hooks' output pumps
/// and the installer share one. Whatever is still buffered when the last
/// clone is dropped is sent then; call [`DeployLog::flush`] before the
/// report that ends the install, so the server has every line by the time it
/// records the outcome (both travel the same ordered channel).
#[derive(Clone)]
pub struct DeployLog {
    inner: Arc<Inner>,
}

struct Inner {
    project: String,
    release_id: i64,
    reports: mpsc::UnboundedSender<AgentMsg>,
    state: Mutex<Buffer>,
}

#[derive(Default)]
struct Buffer {
    lines: Vec<LogLine>,
    bytes: usize,
    budget: LogBudget,
    /// Output lines dropped since the last marker.
    dropped: u64,
}

impl DeployLog {
    /// Starts the log of installing `release_id` of `project`, sending to
    /// `reports` (the channel the connection drains). Spawns the task that
    /// sends lines older than [`FLUSH_EVERY`], so it needs a Tokio runtime;
    /// the task ends once every clone is dropped.
    pub fn start(project: &str, release_id: i64, reports: mpsc::UnboundedSender<AgentMsg>) -> DeployLog {
        let inner =
            Arc::new(Inner { project: project.to_string(), release_id, reports, state: Mutex::new(Buffer::default()) });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                // No marker here: one is written when the next step starts or
                // at the end, not every tick while a hook keeps talking.
                let mut buf = inner.lock();
                inner.send(&mut buf);
            }
        });
        DeployLog { inner }
    }

    /// Adds a line of `stream`: `stdout` or `stderr` of a hook, or `ferry`
    /// (see [`DeployLog::step`]). Over-long lines are cut; lines beyond the
    /// log's budget are counted instead of kept.
    pub fn line(&self, stream: &str, text: impl Into<String>) {
        let mut buf = self.inner.lock();
        if stream == log::FERRY {
            // The dropped output ends where the agent's next step begins.
            self.inner.push_marker(&mut buf);
        }
        if !buf.budget.admit(stream) {
            buf.dropped += 1;
            return;
        }
        self.inner.push(&mut buf, stream, text.into());
    }

    /// A step the agent takes, e.g. "activated app_prod_v2_...".
    pub fn step(&self, text: impl Into<String>) {
        self.line(log::FERRY, text);
    }

    /// Sends everything buffered now, with the marker for output dropped
    /// since the last one.
    pub fn flush(&self) {
        let mut buf = self.inner.lock();
        self.inner.push_marker(&mut buf);
        self.inner.send(&mut buf);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A poisoned buffer still holds valid lines.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, buf: &mut Buffer, stream: &str, mut text: String) {
        log::cut_line(&mut text);
        buf.bytes += text.len();
        buf.lines.push(LogLine { at_ms: crate::now_ms(), stream: stream.to_string(), text });
        if buf.lines.len() >= BATCH_LINES || buf.bytes >= BATCH_BYTES {
            self.send(buf);
        }
    }

    fn push_marker(&self, buf: &mut Buffer) {
        if buf.dropped == 0 {
            return;
        }
        let marker = log::dropped_marker(buf.dropped);
        buf.dropped = 0;
        if buf.budget.admit(log::FERRY) {
            self.push(buf, log::FERRY, marker);
        }
    }

    /// Sends the buffered lines as one message. Called with the buffer
    /// locked, so batches leave in the order their lines came.
    fn send(&self, buf: &mut Buffer) {
        if buf.lines.is_empty() {
            return;
        }
        buf.bytes = 0;
        let lines = std::mem::take(&mut buf.lines);
        // A closed channel means the agent is stopping; the lines go with it.
        let _ = self.reports.send(AgentMsg::Log { project: self.project.clone(), release_id: self.release_id, lines });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut buf = std::mem::take(self.state.get_mut().unwrap_or_else(|e| e.into_inner()));
        self.push_marker(&mut buf);
        self.send(&mut buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(rx: &mut mpsc::UnboundedReceiver<AgentMsg>) -> Vec<Vec<(String, String)>> {
        let mut batches = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            let AgentMsg::Log { project, release_id, lines } = msg else { panic!("not a log message: {msg:?}") };
            assert_eq!((project.as_str(), release_id), ("web", 7));
            batches.push(lines.into_iter().map(|l| (l.stream, l.text)).collect());
        }
        batches
    }

    #[tokio::test]
    async fn lines_leave_in_order_in_bounded_batches() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let log = DeployLog::start("web", 7, tx);
        log.step("running hook after_install: ./migrate");
        for i in 0..250 {
            log.line("stdout", format!("line {i}"));
        }
        let sink = log.clone();
        sink.line("stderr", "warning");
        log.flush();
        let batches = received(&mut rx);
        assert!(
            batches.iter().all(|b| b.len() <= BATCH_LINES),
            "{:?}",
            batches.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let all: Vec<(String, String)> = batches.into_iter().flatten().collect();
        assert_eq!(all.len(), 252);
        assert_eq!(all[0], ("ferry".into(), "running hook after_install: ./migrate".into()));
        assert_eq!(all[1].1, "line 0");
        assert_eq!(all[250].1, "line 249");
        assert_eq!(all[251], ("stderr".into(), "warning".into()));
    }

    #[tokio::test]
    async fn a_quiet_line_is_sent_without_waiting_for_more() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let log = DeployLog::start("web", 7, tx);
        log.line("stdout", "one line, then a long sleep");
        let msg = tokio::time::timeout(FLUSH_EVERY * 10, rx.recv()).await.expect("sent by the timer").unwrap();
        let AgentMsg::Log { lines, .. } = msg else { panic!("{msg:?}") };
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].stream.as_str(), lines[0].text.as_str()), ("stdout", "one line, then a long sleep"));
        assert!(lines[0].at_ms > 0);
        drop(log);
        assert!(received(&mut rx).is_empty(), "nothing is sent twice");
    }

    #[tokio::test]
    async fn output_beyond_the_budget_is_counted_in_one_marker_per_stretch() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let log = DeployLog::start("web", 7, tx);
        for i in 0..log::MAX_OUTPUT_LINES + 15 {
            log.line("stdout", i.to_string());
        }
        log.step("activated");
        log.line("stderr", "late");
        drop(log);
        let all: Vec<(String, String)> = received(&mut rx).into_iter().flatten().collect();
        let n = usize::try_from(log::MAX_OUTPUT_LINES).unwrap();
        assert_eq!(all.len(), n + 3);
        assert_eq!(all[n - 1].1, (log::MAX_OUTPUT_LINES - 1).to_string());
        assert_eq!(all[n], ("ferry".into(), log::dropped_marker(15)), "the marker comes before the next step");
        assert_eq!(all[n + 1].1, "activated");
        assert_eq!(all[n + 2], ("ferry".into(), log::dropped_marker(1)), "and at the end of the log");
    }
}
