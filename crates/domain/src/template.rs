//! `${VAR}` expansion: in template files of a release (R17), in
//! `[service] command` and in `[health]` addresses.
//!
//! Only `${NAME}` and `${NAME:-default}` are special, so the `$` of shell
//! scripts and config formats passes through untouched; `$${` writes a
//! literal `${`. A variable that is not set is an error naming it and the
//! line, never a silent empty string.

/// Why a text could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("line {line}: variable {name} is not set (set it with `ferry var set`, or write ${{{name}:-default}})")]
    Unset { name: String, line: usize },
    #[error("line {line}: '${{' is not closed by '}}'")]
    Unclosed { line: usize },
    #[error("line {line}: '{text}' is not a variable name")]
    BadName { text: String, line: usize },
}

/// Expands `${NAME}` from `lookup`.
pub fn expand<'a>(text: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let line_of = |rest: &str| text[..text.len() - rest.len()].matches('\n').count() + 1;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(inner) = after.strip_prefix("${") {
            let end = inner.find('}').ok_or_else(|| TemplateError::Unclosed { line: line_of(after) })?;
            let body = &inner[..end];
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            if !crate::recipe::is_env_name(name) {
                return Err(TemplateError::BadName { text: body.to_string(), line: line_of(after) });
            }
            match lookup(name).or(default) {
                Some(value) => out.push_str(value),
                None => return Err(TemplateError::Unset { name: name.to_string(), line: line_of(after) }),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<&'static str> {
        match name {
            "PORT" => Some("8080"),
            "EMPTY" => Some(""),
            _ => None,
        }
    }

    #[test]
    fn expands_names_and_defaults() {
        assert_eq!(expand("port = ${PORT}", vars).unwrap(), "port = 8080");
        assert_eq!(expand("${HOST:-0.0.0.0}:${PORT}", vars).unwrap(), "0.0.0.0:8080");
        assert_eq!(expand("[${EMPTY:-x}]", vars).unwrap(), "[]");
        assert_eq!(expand("no vars", vars).unwrap(), "no vars");
    }

    #[test]
    fn other_dollars_pass_through() {
        assert_eq!(expand("echo $HOME $1 cost$ $$", vars).unwrap(), "echo $HOME $1 cost$ $$");
        assert_eq!(expand("literal $${PORT}", vars).unwrap(), "literal ${PORT}");
        assert_eq!(expand("ünïcode ${PORT} ✓", vars).unwrap(), "ünïcode 8080 ✓");
    }

    #[test]
    fn errors_name_the_variable_and_line() {
        let e = expand("a\nb\nurl = ${DB_URL}", vars).unwrap_err();
        assert_eq!(e, TemplateError::Unset { name: "DB_URL".into(), line: 3 });
        assert!(e.to_string().contains("DB_URL") && e.to_string().contains("line 3"), "{e}");
        assert_eq!(expand("x\n${PORT", vars).unwrap_err(), TemplateError::Unclosed { line: 2 });
        assert!(matches!(expand("${1X}", vars).unwrap_err(), TemplateError::BadName { .. }));
        assert!(matches!(expand("${}", vars).unwrap_err(), TemplateError::BadName { .. }));
    }
}
