//! Branch patterns such as `main` or `release/*`, for choosing which pushes
//! build. `*` matches any run of characters, including `/`; everything else
//! matches itself.

/// True when `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic wildcard matching with backtracking to the last star.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// True when `name` matches any of the patterns; an empty list matches all.
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| matches(p, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("main", "main"));
        assert!(!matches("main", "mainline"));
        assert!(matches("release/*", "release/1.2"));
        assert!(matches("release/*", "release/a/b"));
        assert!(!matches("release/*", "hotfix/1"));
        assert!(matches("*", ""));
        assert!(matches("feat-*-x", "feat-login-x"));
        assert!(!matches("feat-*-x", "feat-login-y"));
        assert!(matches("a*b*c", "aXXbYYbc"));
        assert!(matches_any(&[], "anything"));
        assert!(matches_any(&["main".into(), "release/*".into()], "release/2"));
        assert!(!matches_any(&["main".into()], "dev"));
    }
}
