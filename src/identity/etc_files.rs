//! /etc/passwd and /etc/group: parsing (for look-ups) and generation (for
//! `gen-etc`). No system calls besides reading the two files, so everything
//! is tested on strings. getpwnam(3) is deliberately not used: in a static
//! musl binary it only reads /etc/passwd anyway, and its errors name no line.

use crate::error::{fail, Code, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Longest line accepted; real entries are far shorter, and a bound keeps a
/// corrupt file from being echoed back in full.
pub const MAX_LINE: usize = 64 * 1024;
/// Largest file read; beyond this it's not a passwd file.
pub const MAX_FILE: u64 = 16 * 1024 * 1024;
/// Highest id allowed: (uid_t)-1 means "unchanged" to setresuid.
pub const MAX_ID: u32 = u32::MAX - 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The parsed pair of files plus where they came from, for messages.
#[derive(Debug, Clone, Default)]
pub struct EtcDb {
    pub passwd: Vec<PasswdEntry>,
    pub group: Vec<GroupEntry>,
    pub passwd_path: PathBuf,
    pub group_path: PathBuf,
}

impl EtcDb {
    /// Reads `dir/passwd` and `dir/group`. A missing file is an empty table
    /// (a scratch image may run numeric ids without one); an unreadable or
    /// malformed one is a configuration error.
    pub fn load(dir: &Path, fs: &dyn crate::inputs::Inputs) -> Result<EtcDb> {
        let passwd_path = dir.join("passwd");
        let group_path = dir.join("group");
        let passwd = match read_optional(&passwd_path, fs)? {
            Some(text) => parse_passwd(&text, &passwd_path.display().to_string())?,
            None => Vec::new(),
        };
        let group = match read_optional(&group_path, fs)? {
            Some(text) => parse_group(&text, &group_path.display().to_string())?,
            None => Vec::new(),
        };
        Ok(EtcDb {
            passwd,
            group,
            passwd_path,
            group_path,
        })
    }

    pub fn user_by_name(&self, name: &str) -> Option<&PasswdEntry> {
        self.passwd.iter().find(|e| e.name == name)
    }

    pub fn user_by_uid(&self, uid: u32) -> Option<&PasswdEntry> {
        self.passwd.iter().find(|e| e.uid == uid)
    }

    pub fn group_by_name(&self, name: &str) -> Option<&GroupEntry> {
        self.group.iter().find(|e| e.name == name)
    }

    /// Gids of the groups that list `user` as a member, sorted, no repeats.
    pub fn memberships(&self, user: &str) -> Vec<u32> {
        let mut gids: Vec<u32> = self
            .group
            .iter()
            .filter(|g| g.members.iter().any(|m| m == user))
            .map(|g| g.gid)
            .collect();
        gids.sort_unstable();
        gids.dedup();
        gids
    }
}

fn read_optional(path: &Path, fs: &dyn crate::inputs::Inputs) -> Result<Option<String>> {
    let Some(bytes) = fs.config_file(
        path,
        MAX_FILE,
        "passwd/group file",
        "make it readable (mode 0644)",
    )?
    else {
        return Ok(None);
    };
    String::from_utf8(bytes).map(Some).map_err(|_| {
        fail(
            Code::Config,
            format!(
                "{} is not valid UTF-8; regenerate it with `smartem-init gen-etc`",
                path.display()
            ),
        )
    })
}

/// The lines that carry entries: numbered from 1, comments and blank lines
/// skipped, NIS compat lines (`+`/`-`) skipped since there is no NSS here.
fn entry_lines<'a>(
    text: &'a str,
    origin: &'a str,
) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    text.split('\n').enumerate().filter_map(move |(i, raw)| {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let no = i + 1;
        if line.len() > MAX_LINE {
            return Some(Err(malformed(
                origin,
                no,
                "line is longer than 65536 bytes",
            )));
        }
        let trimmed = line.trim();
        if trimmed.is_empty()
            || trimmed.starts_with('#')
            || trimmed.starts_with('+')
            || trimmed.starts_with('-')
        {
            return None;
        }
        Some(Ok((no, line)))
    })
}

fn malformed(origin: &str, line: usize, why: &str) -> anyhow::Error {
    fail(
        Code::Config,
        format!("malformed entry in {origin} line {line}: {why}; fix or regenerate the file (smartem-init gen-etc)"),
    )
}

fn parse_id(field: &str, origin: &str, line: usize, what: &str) -> Result<u32> {
    parse_id_str(field).ok_or_else(|| {
        malformed(
            origin,
            line,
            &format!("{what} {field:?} is not a number in 0..=4294967294"),
        )
    })
}

/// A decimal id in 0..=4294967294, digits only (no sign, no spaces).
pub fn parse_id_str(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>()
        .ok()
        .filter(|&v| v <= MAX_ID as u64)
        .map(|v| v as u32)
}

pub fn parse_passwd(text: &str, origin: &str) -> Result<Vec<PasswdEntry>> {
    let mut out = Vec::new();
    for item in entry_lines(text, origin) {
        let (no, line) = item?;
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 7 {
            return Err(malformed(
                origin,
                no,
                &format!("expected 7 fields separated by ':', found {}", f.len()),
            ));
        }
        if f[0].is_empty() {
            return Err(malformed(origin, no, "empty user name"));
        }
        out.push(PasswdEntry {
            name: f[0].to_string(),
            uid: parse_id(f[2], origin, no, "uid")?,
            gid: parse_id(f[3], origin, no, "gid")?,
            home: f[5].to_string(),
        });
    }
    Ok(out)
}

pub fn parse_group(text: &str, origin: &str) -> Result<Vec<GroupEntry>> {
    let mut out = Vec::new();
    for item in entry_lines(text, origin) {
        let (no, line) = item?;
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 4 {
            return Err(malformed(
                origin,
                no,
                &format!("expected 4 fields separated by ':', found {}", f.len()),
            ));
        }
        if f[0].is_empty() {
            return Err(malformed(origin, no, "empty group name"));
        }
        let members = f[3]
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect();
        out.push(GroupEntry {
            name: f[0].to_string(),
            gid: parse_id(f[2], origin, no, "gid")?,
            members,
        });
    }
    Ok(out)
}

/// What `gen-etc` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenSpec {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    pub home: Option<String>,
}

pub const NOBODY: u32 = 65534;
const RESERVED_NAMES: [&str; 3] = ["root", "nobody", "nogroup"];

/// POSIX portable user name: `[A-Za-z0-9._-]`, not starting with `-`, at
/// most 32 characters (useradd's limit). All-digit names are refused too:
/// `--user 1000` must never be ambiguous between a name and a uid.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 32 {
        return Err("is longer than 32 characters".into());
    }
    if name.starts_with('-') {
        return Err("starts with '-'".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "contains {c:?}; use only letters, digits, '.', '_' and '-'"
        ));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is all digits, which would read as a numeric id".into());
    }
    Ok(())
}

/// Builds the `passwd` and `group` texts. Root and nobody/nogroup always;
/// the named user and its group unless uid is 0 ("root mode"). Output is a
/// pure function of the spec, so image builds are reproducible.
pub fn generate(spec: &GenSpec) -> Result<(String, String)> {
    let usage = |m: String| fail(Code::Usage, m);
    for (what, id) in [("--uid", spec.uid), ("--gid", spec.gid)] {
        if id > MAX_ID {
            return Err(usage(format!(
                "{what} {id} is out of range; use 0..=4294967294"
            )));
        }
    }
    check_name(&spec.name).map_err(|why| usage(format!("--name {:?} {why}", spec.name)))?;
    if let Some(home) = &spec.home {
        if !home.starts_with('/') || home.contains(':') || home.contains('\n') {
            return Err(usage(format!(
                "--home {home:?} must be an absolute path without ':' or newlines"
            )));
        }
    }
    let root_mode = spec.uid == 0;
    if !root_mode {
        if spec.uid == NOBODY {
            return Err(usage(format!(
                "--uid {NOBODY} collides with nobody; pick another uid (e.g. 5000)"
            )));
        }
        if RESERVED_NAMES.contains(&spec.name.as_str()) {
            return Err(usage(format!(
                "--name {:?} collides with a built-in entry; pick another name",
                spec.name
            )));
        }
    }
    // The user's group is created unless its gid is one of the built-ins.
    let new_group = spec.gid != 0 && spec.gid != NOBODY;
    if new_group && RESERVED_NAMES.contains(&spec.name.as_str()) {
        return Err(usage(format!(
            "--name {:?} collides with a built-in group; pick another name or --gid 0",
            spec.name
        )));
    }

    let mut passwd = String::new();
    let mut group = String::new();
    let _ = writeln!(passwd, "root:x:0:0:root:/root:/sbin/nologin");
    let _ = writeln!(group, "root:x:0:");
    if new_group {
        let _ = writeln!(group, "{}:x:{}:", spec.name, spec.gid);
    }
    if !root_mode {
        let home = spec.home.as_deref().unwrap_or("/nonexistent");
        let _ = writeln!(
            passwd,
            "{0}:x:{1}:{2}:{0}:{home}:/sbin/nologin",
            spec.name, spec.uid, spec.gid
        );
    }
    let _ = writeln!(
        passwd,
        "nobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:/sbin/nologin"
    );
    let _ = writeln!(group, "nogroup:x:{NOBODY}:");
    Ok((passwd, group))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;

    const PASSWD: &str = "# comment\n\nroot:x:0:0:root:/root:/bin/sh\n+::::::\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\r\nnobody:x:65534:65534::/nonexistent:/sbin/nologin";
    const GROUP: &str = "root:x:0:\nstaff:x:50:alice, bob\nusers:x:100:bob\ndls:x:5001:alice\n  # indented comment\nnogroup:x:65534:";

    #[test]
    fn parses_entries_skipping_comments_blanks_and_compat() {
        let p = parse_passwd(PASSWD, "passwd").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].name, "alice");
        assert_eq!(p[1].home, "/home/alice");
        assert_eq!(p[2].uid, 65534, "last line without newline is read");
    }

    #[test]
    fn memberships_are_sorted_and_trimmed() {
        let db = EtcDb {
            group: parse_group(GROUP, "group").unwrap(),
            ..Default::default()
        };
        assert_eq!(db.memberships("alice"), vec![50, 5001]);
        assert_eq!(db.memberships("bob"), vec![50, 100]);
        assert!(db.memberships("carol").is_empty());
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let cases = [
            ("root:x:0:0:root:/root\n", "line 1", "7 fields"),
            (
                "root:x:0:0:root:/root:/bin/sh\nbad:x:-1:0:::\n",
                "line 2",
                "uid \"-1\"",
            ),
            ("a:x:4294967295:0:::\n", "line 1", "not a number"),
            ("a:x:1:99999999999:::\n", "line 1", "gid"),
            (":x:1:1:::\n", "line 1", "empty user name"),
        ];
        for (text, line, why) in cases {
            let err = parse_passwd(text, "/etc/passwd").unwrap_err();
            let msg = format!("{err:#}");
            assert_eq!(exit_code(&err), 78, "{msg}");
            assert!(
                msg.contains("/etc/passwd") && msg.contains(line) && msg.contains(why),
                "{msg}"
            );
        }
        let err = parse_group("g:x:1\n", "/etc/group").unwrap_err();
        assert!(format!("{err:#}").contains("4 fields"));
    }

    #[test]
    fn overlong_line_is_an_error_not_a_panic() {
        let text = format!("a:x:1:1:{}:/:/bin/sh\n", "g".repeat(MAX_LINE));
        let msg = format!("{:#}", parse_passwd(&text, "p").unwrap_err());
        assert!(msg.contains("longer than"), "{msg}");
    }

    #[test]
    fn ids_reject_signs_spaces_and_overflow() {
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "4294967295",
            "99999999999",
            "1e3",
            "0x10",
        ] {
            assert_eq!(parse_id_str(bad), None, "{bad:?}");
        }
        assert_eq!(parse_id_str("4294967294"), Some(4294967294));
        assert_eq!(parse_id_str("007"), Some(7));
    }

    #[test]
    fn names_follow_posix_portable_rules() {
        for good in ["smartem", "a", "svc-user", "svc.user", "_x", "0day"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "a b", "a:b", "ü", "1000", &"a".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    fn spec(uid: u32, gid: u32, name: &str) -> GenSpec {
        GenSpec {
            uid,
            gid,
            name: name.into(),
            home: None,
        }
    }

    #[test]
    fn generated_files_parse_back() {
        let (p, g) = generate(&spec(5000, 5000, "smartem")).unwrap();
        let db = EtcDb {
            passwd: parse_passwd(&p, "p").unwrap(),
            group: parse_group(&g, "g").unwrap(),
            ..Default::default()
        };
        assert_eq!(db.user_by_name("smartem").unwrap().uid, 5000);
        assert_eq!(db.user_by_uid(65534).unwrap().name, "nobody");
        assert_eq!(db.group_by_name("nogroup").unwrap().gid, 65534);
    }

    #[test]
    fn generation_rejects_collisions() {
        for (s, needle) in [
            (spec(65534, 5000, "svc"), "collides with nobody"),
            (spec(5000, 5000, "nobody"), "collides"),
            (spec(5000, 5000, "root"), "collides"),
            (spec(5000, 5000, "1000"), "all digits"),
            (spec(u32::MAX, 5000, "svc"), "out of range"),
        ] {
            let err = generate(&s).unwrap_err();
            assert_eq!(exit_code(&err), 64);
            assert!(format!("{err}").contains(needle), "{err}");
        }
    }
}
