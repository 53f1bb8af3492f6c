//! Release directory names (R16): `project_env_version_branch_time_committer`,
//! e.g. `rainbow_prod_v1.1.1_master_20160811-1111_xuliangwei`.
//!
//! The name is a pure function of the release and the environment, so the
//! same release deployed again (a rollback) finds its directory on the host
//! and only relinks.

use time::OffsetDateTime;

/// Keeps letters, digits, `.` and `-`; everything else becomes `-`. The `_`
/// separator is therefore unambiguous.
fn clean(part: &str) -> String {
    let cleaned: String =
        part.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() { "unknown".to_string() } else { trimmed.chars().take(40).collect() }
}

/// Formats the release name. `created_unix` is the release's creation time in
/// seconds since the epoch, shown in UTC as `YYYYmmdd-HHMM`.
pub fn release_name(
    project: &str,
    env: &str,
    version: &str,
    branch: &str,
    created_unix: i64,
    committer: &str,
) -> String {
    let time = OffsetDateTime::from_unix_timestamp(created_unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute()
    );
    format!("{}_{}_{}_{}_{}_{}", clean(project), clean(env), clean(version), clean(branch), stamp, clean(committer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_field_reports_example() {
        // 2016-08-11 11:11 UTC
        let name = release_name("rainbow", "prod", "v1.1.1", "master", 1_470_913_860, "xuliangwei");
        assert_eq!(name, "rainbow_prod_v1.1.1_master_20160811-1111_xuliangwei");
    }

    #[test]
    fn cleans_unsafe_parts() {
        let name = release_name("web", "prod", "v2", "feature/login_fix", 0, "Zhang San <z@x>");
        assert_eq!(name, "web_prod_v2_feature-login-fix_19700101-0000_Zhang-San--z-x");
        assert!(!name.contains('/'));
        assert_eq!(release_name("w", "p", "1", "", 0, "__"), "w_p_1_unknown_19700101-0000_unknown");
    }
}
