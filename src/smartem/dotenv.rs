//! `.env` files: `KEY=value` lines as the bash entrypoint loaded them.
//! Accepted: `#` comments, blank lines, an `export ` prefix, single quotes
//! (literal), double quotes (with \" \\ \n \t escapes), unquoted values
//! (trimmed, ` #` starts a comment). One line per variable: a quote that
//! isn't closed on its line is an error, as is anything else unexpected.

use crate::error::{fail, Code, Result};
use std::ffi::OsString;

/// Largest `.env` read (passwd and group have 16 MiB): a settings file is
/// kilobytes; anything near this is a mistake (`.env -> /dev/zero`), and
/// every byte goes into the service's environment, which execve limits.
pub const MAX_FILE: u64 = 1024 * 1024;

pub fn parse(text: &str, origin: &str) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = parse_line(line).map_err(|why| {
            fail(
                Code::Config,
                format!(
                    "malformed line in {origin} line {}: {why}; use KEY=value",
                    i + 1
                ),
            )
        })?;
        // A repeated key: the later line wins, as when a shell sources it.
        out.retain(|(k, _)| *k != key);
        out.push((key, value));
    }
    Ok(out)
}

fn parse_line(line: &str) -> std::result::Result<(String, String), String> {
    let line = line
        .strip_prefix("export ")
        .map(str::trim_start)
        .unwrap_or(line);
    let (key, rest) = line.split_once('=').ok_or("no '=' found")?;
    let key = key.trim_end();
    let valid_key = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_key {
        return Err(format!("{key:?} is not a valid variable name"));
    }
    let rest = rest.trim_start();
    let value = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let (value, tail) = quoted(&rest[1..], q).ok_or("quote is not closed on this line")?;
            let tail = tail.trim_start();
            if !(tail.is_empty() || tail.starts_with('#')) {
                return Err("text after the closing quote".into());
            }
            value
        }
        _ => {
            let end = rest
                .find(" #")
                .or_else(|| rest.find("\t#"))
                .unwrap_or(rest.len());
            rest[..end].trim_end().to_string()
        }
    };
    if value.contains('\0') {
        return Err("value contains a NUL byte".into());
    }
    Ok((key.to_string(), value))
}

/// Reads up to the closing `q`; returns the value and what follows.
fn quoted(s: &str, q: char) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == q => return Some((value, &s[i + 1..])),
            '\\' if q == '"' => match chars.next()?.1 {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other @ ('"' | '\\' | '$') => value.push(other),
                other => {
                    value.push('\\');
                    value.push(other);
                }
            },
            c => value.push(c),
        }
    }
    None
}

/// Adds the file's variables that the real environment doesn't have.
/// Returns the names added, in file order.
pub fn merge(env: &mut Vec<(OsString, OsString)>, file: Vec<(String, String)>) -> Vec<String> {
    let mut added = Vec::new();
    for (k, v) in file {
        if !env.iter().any(|(ek, _)| ek.as_os_str() == k.as_str()) {
            env.push((k.clone().into(), v.into()));
            added.push(k);
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;

    #[test]
    fn accepts_the_usual_forms() {
        let text = "# db\n\nDB_HOST=db.local\nexport DB_PORT = 5432\nPASS='p#ss $x'\nMSG=\"a \\\"b\\\"\\n\" # note\nEMPTY=\nURL=http://x/#frag # comment\r\nDB_HOST=override";
        let vars = parse(text, ".env").unwrap();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("DB_HOST"), Some("override"));
        assert_eq!(get("DB_PORT"), Some("5432"));
        assert_eq!(get("PASS"), Some("p#ss $x"));
        assert_eq!(get("MSG"), Some("a \"b\"\n"));
        assert_eq!(get("EMPTY"), Some(""));
        assert_eq!(get("URL"), Some("http://x/#frag"));
        assert_eq!(vars.len(), 6);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (text, line) in [
            ("A=1\nnot a var\n", 2),
            ("1A=x", 1),
            ("A-B=x", 1),
            ("A=\"open", 1),
            ("\n\nA='x' y", 3),
            ("=x", 1),
            ("A=a\0b", 1),
        ] {
            let err = parse(text, "/app/.env").unwrap_err();
            assert_eq!(exit_code(&err), 78);
            let msg = format!("{err}");
            assert!(msg.contains(&format!("/app/.env line {line}")), "{msg}");
        }
    }

    #[test]
    fn real_environment_wins() {
        let mut env: Vec<(OsString, OsString)> = vec![("A".into(), "real".into())];
        let added = merge(
            &mut env,
            vec![("A".into(), "file".into()), ("B".into(), "file".into())],
        );
        assert_eq!(added, vec!["B"]);
        assert_eq!(
            env,
            vec![("A".into(), "real".into()), ("B".into(), "file".into())]
        );
    }
}
