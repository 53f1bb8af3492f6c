//! Rules for the logs Ferry keeps: build logs on the server, and deployment
//! logs, which agents send and the server stores per deployment and host.
//!
//! A log is written by commands Ferry does not control (build scripts, deploy
//! hooks), so every rule here bounds something: the length of a line, and
//! how many lines of one host's deployment are kept. The agent applies the
//! same budget before sending as the server applies before storing, so a
//! chatty hook costs neither the agent's memory nor the server's disk.

/// Lines a command wrote to its standard output.
pub const STDOUT: &str = "stdout";
/// Lines a command wrote to its standard error.
pub const STDERR: &str = "stderr";
/// Lines Ferry itself writes: the steps it takes, what it dropped.
pub const FERRY: &str = "ferry";

/// Longest line kept, in bytes; longer lines are cut, saying so.
pub const MAX_LINE: usize = 8 * 1024;

/// Lines of command output (anything but [`FERRY`]) a deployment log keeps
/// per host: the first ones; later ones are only counted.
pub const MAX_OUTPUT_LINES: u64 = 5_000;

/// Lines of Ferry's own a deployment log keeps per host, beside the output.
/// An install writes a handful; the bound only matters if an agent misbehaves.
pub const MAX_FERRY_LINES: u64 = 1_000;

/// Cuts `line` to at most [`MAX_LINE`] bytes (on a character boundary),
/// marking the cut.
pub fn cut_line(line: &mut String) {
    if line.len() <= MAX_LINE {
        return;
    }
    let mut cut = MAX_LINE;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
    line.push_str(" [line cut]");
}

/// The one line that stands for `dropped` lines a deployment log did not keep.
pub fn dropped_marker(dropped: u64) -> String {
    format!(
        "... {dropped} lines dropped (a deployment log keeps the first {MAX_OUTPUT_LINES} lines of output per host)"
    )
}

/// How much of one host's deployment log is used: decides, line by line,
/// what is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogBudget {
    /// Output lines kept so far.
    pub output: u64,
    /// Ferry's own lines kept so far.
    pub ferry: u64,
}

impl LogBudget {
    /// Counts a line of `stream` if there is room for it; false if it must be
    /// dropped.
    pub fn admit(&mut self, stream: &str) -> bool {
        let (used, max) =
            if stream == FERRY { (&mut self.ferry, MAX_FERRY_LINES) } else { (&mut self.output, MAX_OUTPUT_LINES) };
        if *used < max {
            *used += 1;
            true
        } else {
            false
        }
    }
}

/// A deployment log's marker line for one host: the lines it did not keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub seq: i64,
    pub dropped: u64,
}

/// One line to insert into a deployment log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLine {
    pub seq: i64,
    pub at: i64,
    pub stream: String,
    pub text: String,
}

/// What to write of a host's marker line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerWrite {
    /// The host's marker at `seq` now counts `dropped` lines, saying `line`.
    Update { seq: i64, dropped: u64, line: String },
    /// A new marker line (stream [`FERRY`]) at `seq`, at `at`.
    Insert { seq: i64, at: i64, dropped: u64, line: String },
}

/// What a batch of a host's lines writes to a deployment log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogWrites {
    pub lines: Vec<KeptLine>,
    pub marker: Option<MarkerWrite>,
}

/// Which of `lines`, received at `now`, one host's deployment log keeps,
/// given what it used of its budget, its marker if it has one, and the
/// deployment log's last sequence number: the kept lines (bounded and
/// numbered on from `last_seq`), and the marker counting the rest.
pub fn admit(
    mut budget: LogBudget,
    marker: Option<Marker>,
    last_seq: i64,
    lines: &[crate::report::LogLine],
    now: i64,
) -> LogWrites {
    let mut seq = last_seq;
    let mut writes = LogWrites::default();
    let mut dropped = 0u64;
    for l in lines {
        if !budget.admit(&l.stream) {
            dropped += 1;
            continue;
        }
        // The agent bounds lines too; the server does not rely on it.
        let stream: String = l.stream.chars().take(32).collect();
        let mut text = l.text.clone();
        cut_line(&mut text);
        seq += 1;
        writes.lines.push(KeptLine { seq, at: if l.at_ms > 0 { l.at_ms } else { now }, stream, text });
    }
    if dropped > 0 {
        writes.marker = Some(match marker {
            // One marker per host, counting every line dropped so far.
            Some(m) => {
                let total = m.dropped.saturating_add(dropped);
                MarkerWrite::Update { seq: m.seq, dropped: total, line: dropped_marker(total) }
            }
            None => MarkerWrite::Insert { seq: seq + 1, at: now, dropped, line: dropped_marker(dropped) },
        });
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let mut short = "short".to_string();
        cut_line(&mut short);
        assert_eq!(short, "short");
        let mut long = "é".repeat(MAX_LINE);
        cut_line(&mut long);
        assert!(long.ends_with(" [line cut]"));
        assert!(long.len() <= MAX_LINE + " [line cut]".len());
    }

    #[test]
    fn the_budget_keeps_the_first_lines_of_each_kind() {
        let mut budget = LogBudget::default();
        for _ in 0..MAX_OUTPUT_LINES {
            assert!(budget.admit(STDOUT));
        }
        assert!(!budget.admit(STDERR), "stdout and stderr share one budget");
        assert!(budget.admit(FERRY), "Ferry's own lines have their own");
        let mut full = LogBudget { output: 0, ferry: MAX_FERRY_LINES };
        assert!(!full.admit(FERRY));
        assert!(full.admit(STDOUT));
        assert!(dropped_marker(15_000).starts_with("... 15000 lines dropped"));
    }

    fn line(stream: &str, text: &str, at_ms: i64) -> crate::report::LogLine {
        crate::report::LogLine { at_ms, stream: stream.into(), text: text.into() }
    }

    #[test]
    fn admit_numbers_kept_lines_and_bounds_them() {
        let long = "x".repeat(MAX_LINE + 10);
        let stream = "s".repeat(40);
        let lines = [line(STDOUT, "a", 5), line(&stream, &long, 0)];
        let w = admit(LogBudget::default(), None, 10, &lines, 99);
        assert_eq!(w.marker, None);
        assert_eq!(w.lines.len(), 2);
        assert_eq!((w.lines[0].seq, w.lines[0].at, w.lines[0].text.as_str()), (11, 5, "a"));
        assert_eq!((w.lines[1].seq, w.lines[1].at), (12, 99), "a line without a time gets the arrival's");
        assert_eq!(w.lines[1].stream.len(), 32);
        assert!(w.lines[1].text.ends_with(" [line cut]"));
    }

    #[test]
    fn admit_counts_dropped_lines_in_one_marker() {
        let full = LogBudget { output: MAX_OUTPUT_LINES - 1, ferry: 0 };
        let lines = [line(STDOUT, "kept", 1), line(STDERR, "dropped", 1), line(FERRY, "own", 1), line(STDOUT, "d", 1)];
        let w = admit(full, None, 3, &lines, 50);
        let kept: Vec<(i64, &str)> = w.lines.iter().map(|l| (l.seq, l.text.as_str())).collect();
        assert_eq!(kept, [(4, "kept"), (5, "own")]);
        assert_eq!(w.marker, Some(MarkerWrite::Insert { seq: 6, at: 50, dropped: 2, line: dropped_marker(2) }));
        // A host with a marker: it counts on, where it is.
        let used = LogBudget { output: MAX_OUTPUT_LINES, ferry: 0 };
        let w = admit(used, Some(Marker { seq: 2, dropped: 5 }), 9, &lines, 50);
        assert_eq!(w.lines.len(), 1);
        assert_eq!(w.marker, Some(MarkerWrite::Update { seq: 2, dropped: 8, line: dropped_marker(8) }));
        // Nothing dropped: the marker stays as it is.
        assert_eq!(admit(LogBudget::default(), Some(Marker { seq: 2, dropped: 5 }), 9, &lines, 50).marker, None);
        assert_eq!(admit(LogBudget::default(), None, 0, &[], 50), LogWrites::default());
    }
}
