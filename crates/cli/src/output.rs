//! Printing answers: aligned tables for people, JSON for programs.

use serde::Serialize;

/// `--output`: how read commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Table,
    Json,
}

impl Output {
    /// Prints `value` as JSON, or calls `table` to print it for people.
    pub fn print<T: Serialize>(self, value: &T, table: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
        match self {
            Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
            Output::Table => print!("{}", table(value)),
        }
        Ok(())
    }
}

/// Formats rows as a left-aligned table with a header.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                s.push_str(cell);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// `12.3 MB`-style sizes.
pub fn bytes(n: u64) -> String {
    ferry_domain::human_size(n)
}

/// Shortens an RFC 3339 time to `YYYY-MM-DD HH:MM:SS`.
pub fn time(t: &str) -> String {
    t.get(..19).map(|s| s.replace('T', " ")).unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], vec![vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(41_400_000), "41.4 MB");
    }
}
