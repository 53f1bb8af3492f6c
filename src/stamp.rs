//! The text of `ferry --version`, decided from what the build knows. Shared
//! by build.rs (which includes this file) and the tests below, so the rules
//! are tested without rebuilding.

/// `VERSION (commit COMMIT, built YYYY-MM-DD)`. `commit_env` is
/// FERRY_BUILD_COMMIT and wins over `git_commit` when it is a plain commit
/// name (letters, digits, `.`, `-`); `epoch_env` is SOURCE_DATE_EPOCH and
/// wins over `git_epoch`, the commit's date. Never the clock: a rebuild of a
/// commit says the same.
pub fn version_line(
    version: &str,
    commit_env: Option<&str>,
    git_commit: Option<&str>,
    epoch_env: Option<&str>,
    git_epoch: Option<&str>,
) -> String {
    let plain = |c: &&str| {
        !c.is_empty() && c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')
    };
    let commit =
        commit_env.map(str::trim).filter(plain).or(git_commit.map(str::trim).filter(plain)).unwrap_or("unknown");
    let epoch = |s: Option<&str>| s.and_then(|s| s.trim().parse::<i64>().ok());
    let date = epoch(epoch_env).or(epoch(git_epoch)).map_or_else(|| "unknown".to_owned(), civil_date);
    format!("{version} (commit {commit}, built {date})")
}

/// Seconds since 1970 to YYYY-MM-DD (UTC), without a date crate: Howard
/// Hinnant's days-to-civil algorithm.
pub fn civil_date(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(86_399), "1970-01-01");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
        assert_eq!(civil_date(1_796_342_400), "2026-12-04");
        assert_eq!(civil_date(-1), "1969-12-31");
    }

    #[test]
    fn explicit_values_win_and_nothing_falls_back_to_unknown() {
        let git = Some("1a2b3c4d5e6f");
        let git_date = Some("1796342400");
        assert_eq!(version_line("0.1.0", None, git, None, git_date), "0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-04)");
        // A tarball build names its commit; SOURCE_DATE_EPOCH names the date.
        assert_eq!(
            version_line("0.1.0", Some(" v0.1.0-rc1 "), git, Some("0"), git_date),
            "0.1.0 (commit v0.1.0-rc1, built 1970-01-01)"
        );
        assert_eq!(version_line("0.1.0", None, None, None, None), "0.1.0 (commit unknown, built unknown)");
        // A stray FERRY_BUILD_COMMIT cannot put text into --version.
        for bad in ["", "abc) (commit x", "a\nb", "x y", &"a".repeat(65)] {
            assert_eq!(
                version_line("0.1.0", Some(bad), git, None, git_date),
                "0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-04)"
            );
        }
        // A SOURCE_DATE_EPOCH that is not a number is ignored, not fatal.
        assert_eq!(
            version_line("0.1.0", None, git, Some("yesterday"), git_date),
            "0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-04)"
        );
    }
}
