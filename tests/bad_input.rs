//! Bad input, table-driven: every case gets its documented exit code and
//! one clear line naming the value, never a panic, and never anything
//! half-applied (the command, `touch MARKER`, must not have run).

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

struct Case {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    code: i32,
    needle: String,
}

fn case(
    name: &'static str,
    args: &[&str],
    env: &[(&'static str, &str)],
    code: i32,
    needle: &str,
) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        code,
        needle: needle.to_string(),
    }
}

#[test]
fn bad_input_table() {
    let d = shared_tempdir();
    let p = |name: &str| d.path().join(name).to_str().unwrap().to_string();
    let marker = p("marker");
    // Fixture files.
    let etc_bad = p("etc-bad");
    std::fs::create_dir(&etc_bad).unwrap();
    std::fs::write(
        format!("{etc_bad}/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nbroken line\n",
    )
    .unwrap();
    let etc_badgroup = p("etc-badgroup");
    std::fs::create_dir(&etc_badgroup).unwrap();
    std::fs::write(
        format!("{etc_badgroup}/group"),
        "root:x:0:\nstaff:x:notanumber:\n",
    )
    .unwrap();
    let etc_binary = p("etc-binary");
    std::fs::create_dir(&etc_binary).unwrap();
    std::fs::write(
        format!("{etc_binary}/passwd"),
        [0xff, 0xfe, 0x00, 0x41, 0x3a],
    )
    .unwrap();
    let app_env = p("app-env");
    std::fs::create_dir(&app_env).unwrap();
    std::fs::write(format!("{app_env}/.env"), "OK=1\nexport\n").unwrap();
    let app_quote = p("app-quote");
    std::fs::create_dir(&app_quote).unwrap();
    std::fs::write(format!("{app_quote}/.env"), "A=\"unterminated\n").unwrap();
    let noexec = p("noexec");
    std::fs::write(&noexec, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o644)).unwrap();
    let long = "x".repeat(100_000);
    let huge = "9".repeat(40);
    let junk = "\u{1}\u{7f}ü\u{fffd}";

    let cases = vec![
        // CLI
        case("unknown flag", &["--frobnicate"], &[], 64, "--frobnicate"),
        case(
            "grace not a number",
            &["--grace-period", "soon"],
            &[],
            64,
            "soon",
        ),
        case("grace negative", &["--grace-period", "-5"], &[], 64, "-5"),
        case(
            "grace huge",
            &["--grace-period", &huge],
            &[],
            64,
            "out of range",
        ),
        case("grace NaN", &["--grace-period", "NaN"], &[], 64, "NaN"),
        case("grace empty", &["--grace-period", ""], &[], 64, "seconds"),
        case(
            "format without dry-run",
            &["--format", "json"],
            &[],
            64,
            "--dry-run",
        ),
        case(
            "format unknown",
            &["--dry-run", "--format", "xml"],
            &[],
            64,
            "xml",
        ),
        case(
            "unknown capability",
            &["--keep-cap", "CAP_FLY"],
            &[],
            64,
            "CAP_FLY",
        ),
        case(
            "capability junk",
            &["--keep-cap", junk],
            &[],
            64,
            "unknown capability",
        ),
        case(
            "relative data dir",
            &["--data-dir", "dls"],
            &[],
            64,
            "relative",
        ),
        case(
            "relative workdir",
            &["--workdir", "./app"],
            &[],
            64,
            "relative",
        ),
        case("empty command", &["--", ""], &[], 64, "empty"),
        case("both -v and -q", &["-v", "-q"], &[], 64, "cannot be used"),
        // Environment
        case(
            "switch typo",
            &[],
            &[("SMARTEM_REQUIRE_DATA_DIR", "yes please")],
            64,
            "yes please",
        ),
        case(
            "switch number",
            &[],
            &[("SMARTEM_SKIP_MIGRATIONS", "2")],
            64,
            "\"2\"",
        ),
        case(
            "grace from env",
            &[],
            &[("SMARTEM_GRACE_PERIOD", "1e400")],
            64,
            "1e400",
        ),
        case(
            "log level",
            &[],
            &[("SMARTEM_INIT_LOG", "loud")],
            64,
            "loud",
        ),
        case(
            "keep caps list",
            &[],
            &[("SMARTEM_KEEP_CAPS", "NET_BIND_SERVICE,BOGUS")],
            64,
            "BOGUS",
        ),
        case(
            "port junk",
            &["--role", "api", "--skip-migrations", "--api-cmd", "true"],
            &[],
            0,
            "",
        ),
        case(
            "unknown role",
            &[],
            &[("ROLE", "scheduler")],
            64,
            "scheduler",
        ),
        case("role junk", &[], &[("ROLE", junk)], 64, "valid roles"),
        case(
            "api cmd quote",
            &[],
            &[("SMARTEM_API_CMD", "uvicorn 'open")],
            64,
            "quote",
        ),
        case(
            "port word",
            &[],
            &[("HTTP_API_PORT", "eighty")],
            64,
            "eighty",
        ),
        case(
            "port huge",
            &[],
            &[("HTTP_API_PORT", &huge)],
            64,
            "HTTP_API_PORT",
        ),
        case("port negative", &[], &[("HTTP_API_PORT", "-80")], 64, "-80"),
        case("very long role", &[], &[("ROLE", &long)], 64, "valid roles"),
        // User specs
        case("unknown user", &["--user", "bogus"], &[], 67, "bogus"),
        case("unknown group", &["--user", "0:bogus"], &[], 67, "bogus"),
        case("negative uid", &["--user", "-1"], &[], 64, "-1"),
        case("uid overflow", &["--user", &huge], &[], 64, "out of range"),
        case("empty group", &["--user", "0:"], &[], 64, "group"),
        case("spaces in user", &["--user", "a b"], &[], 64, "whitespace"),
        case(
            "long user name",
            &["--user", &long[..5000]],
            &[],
            67,
            "not found",
        ),
        // passwd / group files
        case(
            "malformed passwd",
            &["--user", "root"],
            &[("SMARTEM_ETC_DIR", &etc_bad)],
            78,
            "line 2",
        ),
        case(
            "malformed group",
            &["--user", "root"],
            &[("SMARTEM_ETC_DIR", &etc_badgroup)],
            78,
            "line 2",
        ),
        case(
            "binary passwd",
            &["--user", "root"],
            &[("SMARTEM_ETC_DIR", &etc_binary)],
            78,
            "UTF-8",
        ),
        case(
            "relative etc dir",
            &["--user", "root", "--etc-dir", "etc"],
            &[],
            64,
            "relative",
        ),
        // .env
        case(
            "dotenv bare export",
            &["--workdir", &app_env],
            &[],
            78,
            ".env line 2",
        ),
        case(
            "dotenv unterminated",
            &["--workdir", &app_quote],
            &[],
            78,
            ".env line 1",
        ),
        // Paths and commands
        case(
            "missing workdir",
            &["--workdir", "/nonexistent/app"],
            &[],
            78,
            "/nonexistent/app",
        ),
        case(
            "workdir is a file",
            &["--workdir", "/etc/passwd"],
            &[],
            78,
            "/etc/passwd",
        ),
        case(
            "required data dir missing",
            &["--require-data-dir", "--data-dir", "/nonexistent/dls"],
            &[],
            78,
            "absent",
        ),
    ];
    assert!(cases.len() >= 30);

    for c in cases {
        let mut cmd = Command::new(bin());
        cmd.env_remove("ROLE")
            .env_remove("HTTP_API_PORT")
            .env("PATH", "/usr/bin:/bin");
        for (k, v) in &c.env {
            cmd.env(k, v);
        }
        cmd.args(&c.args);
        if !c.args.iter().any(|a| a == "--") {
            // Role cases need the role's commands to be absent-proof: the
            // command below replaces the role unless the case is about roles.
            let about_roles = c
                .env
                .iter()
                .any(|(k, _)| matches!(*k, "ROLE" | "HTTP_API_PORT" | "SMARTEM_API_CMD"));
            if !about_roles && c.code != 0 {
                cmd.args(["--", "touch", &marker]);
            }
        }
        let (code, out, err) = run_cmd(&mut cmd);
        assert!(
            !err.contains("panicked") && code != 134 && code != 101,
            "{}: crashed: {err}",
            c.name
        );
        assert_eq!(code, c.code, "{}: {err}", c.name);
        assert!(
            !std::path::Path::new(&marker).exists(),
            "{}: the command ran",
            c.name
        );
        if c.code != 0 {
            assert_eq!(err.lines().count(), 1, "{}: not one line: {err}", c.name);
            assert!(
                err.starts_with("smartem-init: error: "),
                "{}: {err}",
                c.name
            );
            assert!(
                err.len() < 600 || c.name.starts_with("very long") || c.name.starts_with("long"),
                "{}: {} bytes",
                c.name,
                err.len()
            );
            assert!(
                err.contains(&c.needle),
                "{}: {err:?} lacks {:?}",
                c.name,
                c.needle
            );
            assert!(out.is_empty(), "{}: {out}", c.name);
        }
    }
}

#[test]
fn a_directory_or_unreadable_file_as_command() {
    let d = shared_tempdir();
    let (code, _, err) = run(&["--", d.path().to_str().unwrap()]);
    assert_eq!(code, 126, "{err}");
    let noexec = d.path().join("script");
    std::fs::write(&noexec, "#!/bin/sh\n").unwrap();
    let (code, _, err) = run(&["--", noexec.to_str().unwrap()]);
    assert_eq!(code, 126, "{err}");
}

#[test]
fn failed_user_resolution_as_root_changes_nothing() {
    if !need_root() {
        return;
    }
    // As root, a bad --user is rejected before any privileged call: the
    // process is never half-dropped (it exits with the error at once).
    let d = shared_tempdir();
    let marker = d.path().join("m");
    for spec in ["bogus", "0:bogus", "nobody:bogus"] {
        let (code, _, err) = run(&["--user", spec, "--", "touch", marker.to_str().unwrap()]);
        assert_eq!(code, 67, "{spec}: {err}");
        assert!(!marker.exists());
    }
}
