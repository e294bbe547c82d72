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
    // Start-up must not block on what it reads: FIFOs, devices, directories.
    let fifo = |dir: &str, name: &str| {
        std::fs::create_dir_all(dir).unwrap();
        nix::unistd::mkfifo(
            std::path::Path::new(&format!("{dir}/{name}")),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
    };
    let etc_fifo_passwd = p("etc-fifo-passwd");
    fifo(&etc_fifo_passwd, "passwd");
    let etc_fifo_group = p("etc-fifo-group");
    fifo(&etc_fifo_group, "group");
    std::fs::write(
        format!("{etc_fifo_group}/passwd"),
        "nobody:x:65534:65534::/:/bin/sh\n",
    )
    .unwrap();
    let app_fifo = p("app-fifo");
    fifo(&app_fifo, ".env");
    let app_zero = p("app-zero");
    std::fs::create_dir(&app_zero).unwrap();
    std::os::unix::fs::symlink("/dev/zero", format!("{app_zero}/.env")).unwrap();
    let app_big = p("app-big");
    std::fs::create_dir(&app_big).unwrap();
    std::fs::write(
        format!("{app_big}/.env"),
        format!("A={}\n", "v".repeat(2 << 20)),
    )
    .unwrap();
    let app_envdir = p("app-envdir");
    std::fs::create_dir_all(format!("{app_envdir}/.env")).unwrap();
    let etc_dirs = p("etc-dirs");
    std::fs::create_dir_all(format!("{etc_dirs}/passwd")).unwrap();
    let etc_many = p("etc-many-groups");
    std::fs::create_dir(&etc_many).unwrap();
    std::fs::write(
        format!("{etc_many}/passwd"),
        "many:x:5000:5000::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        format!("{etc_many}/group"),
        (0..70_000)
            .map(|i| format!("g{i}:x:{}:many\n", 10_000 + i))
            .collect::<String>(),
    )
    .unwrap();
    let etc_fields = p("etc-fields");
    std::fs::create_dir(&etc_fields).unwrap();
    std::fs::write(
        format!("{etc_fields}/passwd"),
        "u:x:1000:1000:u:/home/u:/bin/sh:extra\n",
    )
    .unwrap();
    let etc_baduid = p("etc-baduid");
    std::fs::create_dir(&etc_baduid).unwrap();
    std::fs::write(
        format!("{etc_baduid}/passwd"),
        "u:x:-7:1000:u:/home/u:/bin/sh\n",
    )
    .unwrap();
    let etc_longline = p("etc-longline");
    std::fs::create_dir(&etc_longline).unwrap();
    std::fs::write(
        format!("{etc_longline}/passwd"),
        format!("u:x:1:1:{}:/:/bin/sh\n", "g".repeat(70_000)),
    )
    .unwrap();
    let app_nul = p("app-nul");
    std::fs::create_dir(&app_nul).unwrap();
    std::fs::write(format!("{app_nul}/.env"), "A=b\0c\n").unwrap();
    let app_latin1 = p("app-latin1");
    std::fs::create_dir(&app_latin1).unwrap();
    std::fs::write(format!("{app_latin1}/.env"), b"A=caf\xe9\n").unwrap();
    let app_badkey = p("app-badkey");
    std::fs::create_dir(&app_badkey).unwrap();
    std::fs::write(format!("{app_badkey}/.env"), "OK=1\n1BAD=2\n").unwrap();
    let app_noeq = p("app-noeq");
    std::fs::create_dir(&app_noeq).unwrap();
    std::fs::write(format!("{app_noeq}/.env"), "# fine\nJUSTAWORD\n").unwrap();
    let app_dquote = p("app-dquote");
    std::fs::create_dir(&app_dquote).unwrap();
    std::fs::write(format!("{app_dquote}/.env"), "A=\"ok\" trailing\n").unwrap();
    let app_loop = p("app-loop");
    std::fs::create_dir(&app_loop).unwrap();
    std::os::unix::fs::symlink(".env", format!("{app_loop}/.env")).unwrap();
    let a_file = p("a-file");
    std::fs::write(&a_file, "").unwrap();
    let a_dir = p("a-dir");
    std::fs::create_dir(&a_dir).unwrap();
    let long = "x".repeat(100_000);
    let huge = "9".repeat(40);
    let junk = "\u{1}\u{7f}ü\u{fffd}";

    let cases = vec![
        // Files that would block or exhaust memory: refused at once.
        case(
            "passwd is a FIFO",
            &["--etc-dir", &etc_fifo_passwd, "--user", "nobody"],
            &[],
            78,
            "is a FIFO, not a regular file",
        ),
        case(
            "group is a FIFO",
            &["--etc-dir", &etc_fifo_group, "--user", "nobody"],
            &[],
            78,
            "is a FIFO, not a regular file",
        ),
        case(
            "passwd is a directory",
            &["--etc-dir", &etc_dirs, "--user", "nobody"],
            &[],
            78,
            "is a directory",
        ),
        case(
            ".env is a FIFO",
            &["--workdir", &app_fifo, "--data-dir", "/tmp"],
            &[],
            78,
            ".env is a FIFO",
        ),
        case(
            ".env is /dev/zero",
            &["--workdir", &app_zero, "--data-dir", "/tmp"],
            &[],
            78,
            "character device",
        ),
        case(
            ".env over 1 MiB",
            &["--workdir", &app_big, "--data-dir", "/tmp"],
            &[],
            78,
            "is it really a .env file",
        ),
        case(
            ".env is a directory",
            &["--workdir", &app_envdir, "--data-dir", "/tmp"],
            &[],
            78,
            "is a directory",
        ),
        case(
            ".env FIFO, dry run",
            &["--dry-run", "--workdir", &app_fifo, "--data-dir", "/tmp"],
            &[],
            78,
            "is a FIFO",
        ),
        // More groups than setgroups takes: 77 with the reason, dry run too.
        case(
            "70,000 groups",
            &["--etc-dir", &etc_many, "--user", "many"],
            &[],
            77,
            "NGROUPS_MAX",
        ),
        case(
            "70,000 groups, dry run",
            &["--dry-run", "--etc-dir", &etc_many, "--user", "many"],
            &[],
            77,
            "NGROUPS_MAX",
        ),
        // More files: passwd fields and ids, .env content, links.
        case(
            "passwd extra field",
            &["--etc-dir", &etc_fields, "--user", "u"],
            &[],
            78,
            "line 1",
        ),
        case(
            "passwd negative uid",
            &["--etc-dir", &etc_baduid, "--user", "u"],
            &[],
            78,
            "line 1",
        ),
        case(
            "passwd line over 64 KiB",
            &["--etc-dir", &etc_longline, "--user", "u"],
            &[],
            78,
            "line 1",
        ),
        case(
            ".env NUL byte",
            &["--workdir", &app_nul, "--data-dir", "/tmp"],
            &[],
            78,
            ".env",
        ),
        case(
            ".env not UTF-8",
            &["--workdir", &app_latin1, "--data-dir", "/tmp"],
            &[],
            78,
            "UTF-8",
        ),
        case(
            ".env bad key",
            &["--workdir", &app_badkey, "--data-dir", "/tmp"],
            &[],
            78,
            "line 2",
        ),
        case(
            ".env line without =",
            &["--workdir", &app_noeq, "--data-dir", "/tmp"],
            &[],
            78,
            "line 2",
        ),
        case(
            ".env text after quote",
            &["--workdir", &app_dquote, "--data-dir", "/tmp"],
            &[],
            78,
            "line 1",
        ),
        case(
            ".env symlink loop",
            &["--workdir", &app_loop, "--data-dir", "/tmp"],
            &[],
            78,
            ".env",
        ),
        // Identities.
        case(
            "user and group junk",
            &["--user", "a:b:c"],
            &[],
            64,
            "a:b:c",
        ),
        case(
            "uid 4294967295",
            &["--user", "4294967295"],
            &[],
            64,
            "4294967295",
        ),
        case(
            "group part with a colon",
            &["--user", "0::"],
            &[],
            64,
            "0::",
        ),
        case("user colon only", &["--user", ":"], &[], 64, "\":\""),
        case(
            "unknown user from env",
            &[],
            &[("SMARTEM_USER", "ghost")],
            67,
            "ghost",
        ),
        case(
            "unknown group of a known user",
            &["--user", "nobody:ghosts"],
            &[],
            67,
            "ghosts",
        ),
        case(
            "require non-root, root user",
            &["--user", "0", "--require-non-root"],
            &[],
            77,
            "uid 0",
        ),
        case(
            "require non-root from env",
            &["--user", "root"],
            &[("SMARTEM_REQUIRE_NON_ROOT", "1")],
            77,
            "uid 0",
        ),
        case(
            "require non-root, no user",
            &["--require-non-root"],
            &[],
            77,
            "uid 0",
        ),
        // Switches and numbers from the environment.
        case(
            "require-data-dir maybe",
            &[],
            &[("SMARTEM_REQUIRE_DATA_DIR", "maybe")],
            64,
            "maybe",
        ),
        case(
            "require-non-root 2",
            &[],
            &[("SMARTEM_REQUIRE_NON_ROOT", "2")],
            64,
            "\"2\"",
        ),
        case(
            "skip-migrations yes please",
            &[],
            &[("SMARTEM_SKIP_MIGRATIONS", "yes please")],
            64,
            "yes please",
        ),
        case(
            "data-dir-timeout junk",
            &["--data-dir-timeout", "soon"],
            &[],
            64,
            "soon",
        ),
        case(
            "data-dir-timeout from env",
            &[],
            &[("SMARTEM_DATA_DIR_TIMEOUT", "-1")],
            64,
            "-1",
        ),
        case(
            "io-timeout junk",
            &["--io-timeout", "fast"],
            &[],
            64,
            "fast",
        ),
        case(
            "io-timeout from env",
            &[],
            &[("SMARTEM_IO_TIMEOUT", "1e9")],
            64,
            "out of range",
        ),
        case("grace infinity", &["--grace-period", "inf"], &[], 64, "inf"),
        case(
            "grace over a day",
            &["--grace-period", "86401"],
            &[],
            64,
            "out of range",
        ),
        case(
            "keep caps from env junk",
            &[],
            &[("SMARTEM_KEEP_CAPS", "NET_BIND_SERVICE,FLY")],
            64,
            "FLY",
        ),
        case(
            "relative data dir from env",
            &[],
            &[("SMARTEM_DATA_DIR", "dls")],
            64,
            "dls",
        ),
        case(
            "relative workdir from env",
            &[],
            &[("SMARTEM_WORKDIR", "app")],
            64,
            "app",
        ),
        case(
            "relative etc dir from env",
            &[],
            &[("SMARTEM_ETC_DIR", "etc")],
            64,
            "etc",
        ),
        case(
            "workdir missing from env",
            &[],
            &[("SMARTEM_WORKDIR", "/nonexistent/app")],
            78,
            "/nonexistent/app",
        ),
        case(
            "log level word",
            &[],
            &[("SMARTEM_INIT_LOG", "loud")],
            64,
            "loud",
        ),
        // Roles and their commands.
        case("role upper case", &[], &[("ROLE", "API")], 64, "\"API\""),
        case("role with space", &[], &[("ROLE", "api ")], 64, "\"api \""),
        case("port zero", &[], &[("HTTP_API_PORT", "0")], 64, "\"0\""),
        case("port plus", &[], &[("HTTP_API_PORT", "+80")], 64, "+80"),
        case(
            "api cmd blank",
            &[],
            &[("SMARTEM_API_CMD", "   ")],
            64,
            "SMARTEM_API_CMD",
        ),
        case(
            "worker cmd quote",
            &[],
            &[("ROLE", "worker"), ("SMARTEM_WORKER_CMD", "consume 'x")],
            64,
            "SMARTEM_WORKER_CMD",
        ),
        case(
            "migrate cmd quote",
            &[],
            &[("ROLE", "migrate"), ("SMARTEM_MIGRATE_CMD", "alembic \"up")],
            64,
            "SMARTEM_MIGRATE_CMD",
        ),
        case(
            "api cmd not found",
            &[],
            &[
                ("SMARTEM_API_CMD", "no-such-server --port 1"),
                ("SMARTEM_SKIP_MIGRATIONS", "1"),
            ],
            127,
            "no-such-server",
        ),
        // Commands.
        case(
            "command not found",
            &["--data-dir", "/tmp", "--", "no-such-command-xyz"],
            &[],
            127,
            "no-such-command-xyz",
        ),
        case(
            "command is a directory",
            &["--data-dir", "/tmp", "--", &a_dir],
            &[],
            126,
            "directory",
        ),
        case(
            "command empty file",
            &["--data-dir", "/tmp", "--", &a_file],
            &[],
            126,
            "a-file",
        ),
        case(
            "command relative missing",
            &["--data-dir", "/tmp", "--", "./nope"],
            &[],
            127,
            "./nope",
        ),
        // Subcommands.
        case(
            "gen-etc uid junk",
            &[
                "gen-etc", "--uid", "abc", "--gid", "1", "--name", "x", "--out", &a_dir,
            ],
            &[],
            64,
            "abc",
        ),
        case(
            "gen-etc uid too big",
            &[
                "gen-etc",
                "--uid",
                "4294967295",
                "--gid",
                "1",
                "--name",
                "x",
                "--out",
                &a_dir,
            ],
            &[],
            64,
            "4294967295",
        ),
        case(
            "gen-etc gid negative",
            &[
                "gen-etc", "--uid", "5000", "--gid", "-1", "--name", "x", "--out", &a_dir,
            ],
            &[],
            64,
            "-1",
        ),
        case(
            "gen-etc empty name",
            &[
                "gen-etc", "--uid", "5000", "--gid", "5000", "--name", "", "--out", &a_dir,
            ],
            &[],
            64,
            "name",
        ),
        case(
            "gen-etc name with colon",
            &[
                "gen-etc", "--uid", "5000", "--gid", "5000", "--name", "a:b", "--out", &a_dir,
            ],
            &[],
            64,
            "a:b",
        ),
        case(
            "gen-etc name starting with -",
            &[
                "gen-etc",
                "--uid",
                "5000",
                "--gid",
                "5000",
                "--name=-x",
                "--out",
                &a_dir,
            ],
            &[],
            64,
            "-x",
        ),
        case(
            "gen-etc all-digit name",
            &[
                "gen-etc", "--uid", "5000", "--gid", "5000", "--name", "123", "--out", &a_dir,
            ],
            &[],
            64,
            "123",
        ),
        case(
            "gen-etc name too long",
            &[
                "gen-etc",
                "--uid",
                "5000",
                "--gid",
                "5000",
                "--name",
                &"n".repeat(33),
                "--out",
                &a_dir,
            ],
            &[],
            64,
            "32",
        ),
        case(
            "gen-etc name root",
            &[
                "gen-etc", "--uid", "5000", "--gid", "5000", "--name", "root", "--out", &a_dir,
            ],
            &[],
            64,
            "root",
        ),
        case(
            "gen-etc uid of nobody",
            &[
                "gen-etc", "--uid", "65534", "--gid", "5000", "--name", "x", "--out", &a_dir,
            ],
            &[],
            64,
            "65534",
        ),
        case(
            "gen-etc out is a file",
            &[
                "gen-etc", "--uid", "5000", "--gid", "5000", "--name", "x", "--out", &a_file,
            ],
            &[],
            71,
            "a-file",
        ),
        case(
            "healthcheck https",
            &["healthcheck", "https://127.0.0.1/health"],
            &[],
            64,
            "https",
        ),
        case(
            "healthcheck no host",
            &["healthcheck", "http:///health"],
            &[],
            64,
            "no host",
        ),
        case(
            "healthcheck port 0",
            &["healthcheck", "http://127.0.0.1:0/"],
            &[],
            64,
            "port",
        ),
        case(
            "healthcheck timeout junk",
            &["healthcheck", "--timeout", "x"],
            &[],
            64,
            "\"x\"",
        ),
        case(
            "doctor relative data dir",
            &["doctor", "--data-dir", "dls"],
            &[],
            64,
            "dls",
        ),
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
            &[],
            &[("HTTP_API_PORT", "\u{1}80")],
            64,
            "HTTP_API_PORT",
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
        case(
            "current user, unknown group",
            &["--user", ":nogroup-xyz"],
            &[],
            67,
            "nogroup-xyz",
        ),
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

    // Every case is tried; all failures are reported together, and the table
    // of inputs with the line each got is written for the record
    // (target/bad-input-table.md).
    let mut failures = Vec::new();
    let mut table = String::from("| case | exit | the one line |\n|---|---|---|\n");
    let total = cases.len();
    for c in cases {
        let mut cmd = Command::new(bin());
        cmd.env_remove("ROLE")
            .env_remove("HTTP_API_PORT")
            .env("PATH", "/usr/bin:/bin");
        for (k, v) in &c.env {
            cmd.env(k, v);
        }
        cmd.args(&c.args);
        let subcommand = matches!(
            c.args.first().map(String::as_str),
            Some("gen-etc" | "doctor" | "healthcheck")
        );
        if !subcommand && !c.args.iter().any(|a| a == "--") {
            // Role cases need the role's commands to be absent-proof: the
            // command below replaces the role unless the case is about roles.
            let about_roles = c.env.iter().any(|(k, _)| {
                matches!(
                    *k,
                    "ROLE"
                        | "HTTP_API_PORT"
                        | "SMARTEM_API_CMD"
                        | "SMARTEM_WORKER_CMD"
                        | "SMARTEM_MIGRATE_CMD"
                )
            });
            if !about_roles && c.code != 0 {
                cmd.args(["--", "touch", &marker]);
            }
        }
        let (code, out, err) = run_cmd(&mut cmd);
        let line: String = err.lines().next().unwrap_or("").chars().take(300).collect();
        table.push_str(&format!(
            "| {} | {code} | `{}` |\n",
            c.name,
            line.replace('|', "\\|").replace('`', "'")
        ));
        let mut problems = Vec::new();
        if err.contains("panicked") || code == 134 || code == 101 {
            problems.push("crashed".to_string());
        }
        if code != c.code {
            problems.push(format!("exit {code}, want {}", c.code));
        }
        if std::path::Path::new(&marker).exists() {
            problems.push("the command ran".into());
            let _ = std::fs::remove_file(&marker);
        }
        if c.code != 0 {
            if err.lines().count() != 1 {
                problems.push("not one line".into());
            }
            if !err.starts_with("smartem-init: error: ") {
                problems.push("no smartem-init: error: prefix".into());
            }
            if err.len() >= 600 && !c.name.starts_with("very long") && !c.name.starts_with("long") {
                problems.push(format!("{} bytes", err.len()));
            }
            if !err.contains(&c.needle) {
                problems.push(format!("lacks {:?}", c.needle));
            }
            if !out.is_empty() {
                problems.push(format!("stdout: {out}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}: {err}", c.name, problems.join("; ")));
        }
    }
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bad-input-table.md"),
        &table,
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
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
