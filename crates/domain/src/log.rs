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
}
