//! plan::build with in-memory inputs: every decision rule, no file system,
//! no root. Each test sets up the world (passwd, group, .env, directories,
//! programs on PATH) in `Mem` and the process in `Facts`.

use super::*;
use crate::config::{Format, IdentityConfig};
use crate::error::exit_code;
use crate::identity::creds::CredState;
use crate::inputs::mem::Mem;

const ALL_CAPS: u64 = (1 << 41) - 1;
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      smartem:x:5000:5000:smartem:/home/smartem:/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nsmartem:x:5000:\ndata:x:6000:smartem\nnogroup:x:65534:\n";

fn cfg() -> RunConfig {
    RunConfig {
        id: IdentityConfig {
            user: None,
            data_dir: "/dls".into(),
            data_dir_given: false,
            etc_dir: "/etc".into(),
            io_timeout: Duration::from_secs(5),
        },
        role: String::new(),
        workdir: None,
        require_data_dir: false,
        data_dir_timeout: Duration::from_secs(5),
        grace_period: Duration::from_secs(25),
        require_non_root: false,
        strict_groups: false,
        forwarding: Default::default(),
        success_exit: vec![],
        keep_caps: vec![],
        confine: Default::default(),
        skip_migrations: false,
        api_cmd: None,
        worker_cmd: None,
        migrate_cmd: None,
        dry_run: false,
        format: Format::Text,
        log_level: crate::log::Level::Info,
        command: vec![],
    }
}

fn facts(uid: u32, gid: u32, groups: &[u32], caps: u64) -> Facts {
    Facts {
        pid: 1,
        creds: CredState {
            current: crate::identity::Current {
                ids: crate::identity::Ids {
                    uid,
                    gid,
                    groups: groups.to_vec(),
                },
                ruid: uid,
                suid: uid,
                rgid: gid,
                sgid: gid,
            },
            effective: caps,
            permitted: caps,
            inheritable: 0,
            ambient: 0,
            bounding: ALL_CAPS,
            supported: ALL_CAPS,
            no_new_privs: false,
            securebits: 0,
        },
        stdin_tty: false,
        env: vec![("PATH".into(), "/venv/bin:/usr/bin".into())],
        ngroups_max: 65536,
        setgroups_denied: false,
        in_userns: false,
        kernel: crate::confine::KernelFacts {
            landlock_abi: Ok(7),
            seccomp: Some(crate::confine::SeccompState {
                mode: 0,
                filters: 0,
            }),
        },
        mountinfo: String::new(),
    }
}

fn root() -> Facts {
    facts(0, 0, &[], ALL_CAPS)
}

/// The image: passwd/group, /app, python/uvicorn/alembic in /venv/bin.
fn world() -> Mem {
    let mut m = Mem::new();
    m.dir("/etc", 0, 0, 0o755)
        .file("/etc/passwd", PASSWD, 0, 0, 0o644)
        .file("/etc/group", GROUP, 0, 0, 0o644)
        .dir("/app", 0, 0, 0o755)
        .file("/app/alembic.ini", "[alembic]\n", 0, 0, 0o644)
        .dir("/venv", 0, 0, 0o755)
        .dir("/venv/bin", 0, 0, 0o755)
        .dir("/usr", 0, 0, 0o755)
        .dir("/usr/bin", 0, 0, 0o755);
    for p in ["python", "uvicorn", "alembic", "true"] {
        m.file(&format!("/venv/bin/{p}"), "#!", 0, 0, 0o755);
    }
    m
}

fn build_ok(c: &RunConfig, f: &Facts, m: &Mem) -> Plan {
    build(c, f, m).unwrap_or_else(|e| panic!("{e:#}"))
}

fn err_of(c: &RunConfig, f: &Facts, m: &Mem) -> (i32, String) {
    let e = build(c, f, m).expect_err("an error");
    (exit_code(&e), format!("{e:#}"))
}

fn env_of<'a>(p: &'a Plan, k: &str) -> Option<&'a str> {
    p.env
        .iter()
        .find(|(n, _)| n == k)
        .and_then(|(_, v)| v.to_str())
}

fn argv(c: &Cmd) -> String {
    c.argv
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

// --- identity ---------------------------------------------------------------

#[test]
fn no_user_keeps_the_current_identity() {
    let p = build_ok(&cfg(), &facts(1234, 1234, &[7], 0), &world());
    assert!(matches!(p.action, Action::KeepCurrent));
    assert_eq!(
        (p.ids().uid, p.ids().gid, p.ids().groups.clone()),
        (1234, 1234, vec![7])
    );
    assert_eq!(env_of(&p, "HOME"), None, "no passwd HOME without a user");
}

#[test]
fn root_with_a_name_switches_with_its_memberships_and_passwd_home() {
    let mut c = cfg();
    c.id.user = Some("smartem".into());
    let p = build_ok(&c, &root(), &world());
    assert!(matches!(p.action, Action::Switch(_)));
    assert_eq!((p.ids().uid, p.ids().gid), (5000, 5000));
    assert_eq!(
        p.ids().groups,
        vec![6000],
        "exactly the group file's memberships"
    );
    assert_eq!(
        p.drop.switch_to.as_ref(),
        Some(p.ids()),
        "one identity from plan to drop"
    );
    assert_eq!(env_of(&p, "HOME"), Some("/home/smartem"));
    assert_eq!(env_of(&p, "USER"), Some("smartem"));
    let home = p.env_added.iter().find(|e| e.name == "HOME").unwrap();
    assert_eq!(home.source, "passwd");
}

#[test]
fn runtime_groups_are_merged_on_a_root_start_but_never_group_0_or_with_strict() {
    // Docker --group-add 7000 / Kubernetes fsGroup: the runtime's groups.
    let mut c = cfg();
    c.id.user = Some("smartem".into());
    let f = facts(0, 0, &[0, 7000], ALL_CAPS);
    let p = build_ok(&c, &f, &world());
    assert_eq!(
        p.ids().groups,
        vec![6000, 7000],
        "memberships plus runtime, not 0"
    );
    assert_eq!(p.drop.switch_to.as_ref().unwrap().groups, vec![6000, 7000]);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("6000 from the group file, 7000 from the runtime")),
        "{:?}",
        p.notes
    );
    c.strict_groups = true;
    assert_eq!(build_ok(&c, &f, &world()).ids().groups, vec![6000]);
    // Group 0 from the runtime stays only for a target whose primary group is 0.
    let mut c = cfg();
    c.id.user = Some("0:0".into());
    assert_eq!(build_ok(&c, &f, &world()).ids().groups, vec![0, 7000]);
}

#[test]
fn a_numeric_uid_without_entry_gets_its_own_gid_and_a_labelled_default_home() {
    let mut c = cfg();
    c.id.user = Some("4321".into());
    let p = build_ok(&c, &root(), &world());
    assert_eq!(
        (p.ids().uid, p.ids().gid),
        (4321, 4321),
        "never root's group"
    );
    assert_eq!(env_of(&p, "HOME"), Some("/"));
    let home = p.env_added.iter().find(|e| e.name == "HOME").unwrap();
    assert_eq!(home.source, "default: uid 4321 has no passwd entry");
}

#[test]
fn unknown_names_are_67_never_root() {
    let mut c = cfg();
    for spec in ["ghost", "smartem:ghosts", "0:ghosts"] {
        c.id.user = Some(spec.into());
        assert_eq!(err_of(&c, &root(), &world()).0, 67, "{spec}");
    }
}

#[test]
fn a_non_root_start_as_the_target_keeps_the_runtime_groups() {
    let mut c = cfg();
    c.id.user = Some("5000:5000".into());
    let p = build_ok(&c, &facts(5000, 5000, &[5000, 7000], 0), &world());
    assert!(matches!(p.action, Action::AlreadyTarget(_)));
    assert_eq!(
        p.ids().groups,
        vec![5000, 7000],
        "fsGroup and the like stay"
    );
    assert_eq!(p.drop.switch_to, None);
}

#[test]
fn a_non_root_start_as_someone_else_is_77_naming_both() {
    let mut c = cfg();
    c.id.user = Some("5000:5000".into());
    let (code, msg) = err_of(&c, &facts(1001, 1001, &[], 0), &world());
    assert_eq!(code, 77);
    assert!(msg.contains("1001") && msg.contains("5000"), "{msg}");
}

#[test]
fn require_non_root_refuses_uid_0_in_every_shape() {
    let mut c = cfg();
    c.require_non_root = true;
    assert_eq!(
        err_of(&c, &root(), &world()).0,
        77,
        "no user, started as root"
    );
    c.id.user = Some("root".into());
    assert_eq!(err_of(&c, &root(), &world()).0, 77);
    c.id.user = Some("smartem".into());
    build_ok(&c, &root(), &world());
}

#[test]
fn root_without_setuid_caps_cannot_switch() {
    let mut c = cfg();
    c.id.user = Some("smartem".into());
    let (code, msg) = err_of(&c, &facts(0, 0, &[], 0), &world());
    assert_eq!(code, 77);
    assert!(msg.contains("CAP_SETUID"), "{msg}");
}

#[test]
fn more_groups_than_the_kernel_takes_is_77() {
    let mut c = cfg();
    c.id.user = Some("smartem".into());
    let mut f = root();
    f.ngroups_max = 0;
    let (code, msg) = err_of(&c, &f, &world());
    assert_eq!(code, 77);
    assert!(msg.contains("NGROUPS_MAX 0"), "{msg}");
}

#[test]
fn denied_setgroups_is_left_out_only_when_the_groups_already_match() {
    let mut c = cfg();
    c.id.user = Some("0".into());
    let mut f = root();
    f.setgroups_denied = true;
    f.in_userns = true;
    let p = build_ok(&c, &f, &world());
    assert!(p.drop.skip_setgroups && p.drop.in_userns);
    c.id.user = Some("smartem".into());
    let (code, msg) = err_of(&c, &f, &world());
    assert_eq!(code, 77);
    assert!(msg.contains("/proc/self/setgroups: deny"), "{msg}");
}

// --- capabilities -------------------------------------------------------------

#[test]
fn kept_capabilities_and_what_clearing_needs() {
    let mut c = cfg();
    c.id.user = Some("smartem".into());
    c.keep_caps = vec![caps::Capability::CAP_NET_BIND_SERVICE];
    let p = build_ok(&c, &root(), &world());
    assert_eq!(p.drop.keep, c.keep_caps);
    assert!(
        p.drop.clear_bounding && !p.drop.lock_securebits,
        "no lock with a kept cap"
    );
    // Not in the bounding set: nothing to keep.
    let mut f = root();
    f.creds.bounding = 0;
    assert_eq!(err_of(&c, &f, &world()).0, 77);
    // Without CAP_SETPCAP the bounding set stays and the plan says so.
    let mut c = cfg();
    let p = build_ok(&c, &facts(1000, 1000, &[], 0), &world());
    assert!(!p.drop.clear_bounding && !p.drop.lock_securebits);
    assert!(p.notes.iter().any(|n| n.contains("CAP_SETPCAP")));
    c.id.user = Some("smartem".into());
    let p = build_ok(&c, &root(), &world());
    assert!(p.drop.clear_bounding && p.drop.lock_securebits);
}

// --- roles, commands, .env ---------------------------------------------------

#[test]
fn the_api_role_migrates_then_serves_on_the_derived_timeout() {
    let p = build_ok(&cfg(), &root(), &world());
    assert_eq!(p.role.as_deref(), Some("api"));
    assert_eq!(
        argv(p.pre_start.as_ref().unwrap()),
        "python -m alembic upgrade head"
    );
    assert_eq!(
        p.pre_start.as_ref().unwrap().program,
        PathBuf::from("/venv/bin/python")
    );
    assert_eq!(
        argv(&p.service),
        "uvicorn smartem_backend.api_server:app --host 0.0.0.0 --port 8000 --timeout-graceful-shutdown 20"
    );
    assert_eq!(
        p.workdir.as_deref(),
        Some(Path::new("/app")),
        "/app by default"
    );
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    let mut c = cfg();
    c.skip_migrations = true;
    assert!(build_ok(&c, &root(), &world()).pre_start.is_none());
}

#[test]
fn worker_migrate_and_a_command_after_dashes() {
    let mut c = cfg();
    c.role = "worker".into();
    let p = build_ok(&c, &root(), &world());
    assert_eq!(argv(&p.service), "python -m smartem_backend.consumer");
    assert!(p.pre_start.is_none());
    c.role = "migrate".into();
    assert_eq!(
        argv(&build_ok(&c, &root(), &world()).service),
        "python -m alembic upgrade head"
    );
    c.command = vec!["true".into(), "x".into()];
    let p = build_ok(&c, &root(), &world());
    assert_eq!(p.role, None);
    assert_eq!(argv(&p.service), "true x");
    assert!(p.pre_start.is_none());
    c.command = vec![];
    c.role = "bogus".into();
    assert_eq!(err_of(&c, &root(), &world()).0, 64);
}

#[test]
fn dotenv_adds_what_the_environment_lacks_and_counts_for_role_and_port() {
    let mut m = world();
    m.file(
        "/app/.env",
        "ROLE=api\nHTTP_API_PORT=9100\nPATH=/nope\nSECRET=s\n",
        0,
        0,
        0o600,
    );
    let p = build_ok(&cfg(), &root(), &m);
    assert_eq!(
        env_of(&p, "PATH"),
        Some("/venv/bin:/usr/bin"),
        "the environment wins"
    );
    assert_eq!(env_of(&p, "SECRET"), Some("s"));
    assert!(argv(&p.service).contains("--port 9100"));
    assert_eq!(p.http_api_port, Some(9100));
    assert!(
        p.env_added
            .iter()
            .any(|e| e.name == "SECRET" && e.value.is_none()),
        "value hidden"
    );
    m.file("/app/.env", "ROLE=worker\n", 0, 0, 0o600);
    assert_eq!(
        build_ok(&cfg(), &root(), &m).role.as_deref(),
        Some("worker")
    );
    // An explicit role wins over .env.
    let mut c = cfg();
    c.role = "api".into();
    assert_eq!(build_ok(&c, &root(), &m).role.as_deref(), Some("api"));
    // Under Kubernetes .env is not read.
    let mut f = root();
    f.env
        .push(("KUBERNETES_SERVICE_HOST".into(), "10.0.0.1".into()));
    let p = build_ok(&cfg(), &f, &m);
    assert_eq!(p.role.as_deref(), Some("api"));
    assert!(p.dotenv.contains("ignored"));
}

#[test]
fn a_bad_dotenv_is_78_naming_the_line_or_the_kind_of_file() {
    let mut m = world();
    m.file("/app/.env", "OK=1\nbroken\n", 0, 0, 0o644);
    let (code, msg) = err_of(&cfg(), &root(), &m);
    assert_eq!(code, 78);
    assert!(msg.contains("line 2"), "{msg}");
    m.fifo("/app/.env");
    let (code, msg) = err_of(&cfg(), &root(), &m);
    assert_eq!(code, 78);
    assert!(msg.contains("not a regular file"), "{msg}");
}

#[test]
fn workdir_explicit_missing_is_78_default_app_only_if_present() {
    let mut c = cfg();
    c.workdir = Some("/srv/missing".into());
    assert_eq!(err_of(&c, &root(), &world()).0, 78);
    let mut m = Mem::new();
    m.dir("/usr", 0, 0, 0o755).dir("/usr/bin", 0, 0, 0o755);
    m.file("/usr/bin/true", "", 0, 0, 0o755);
    m.cwd = "/srv".into();
    c.workdir = None;
    c.command = vec!["true".into()];
    let p = build_ok(&c, &root(), &m);
    assert_eq!(p.workdir, None, "no /app: unchanged");
}

#[test]
fn commands_not_found_127_not_executable_126_denied_directory_126() {
    let mut c = cfg();
    c.command = vec!["nosuch".into()];
    let p = build_ok(&c, &root(), &world());
    assert_eq!(p.problems[0].0, Code::NotFound);
    let mut m = world();
    m.file("/venv/bin/plain", "", 0, 0, 0o644);
    c.command = vec!["plain".into()];
    assert_eq!(build_ok(&c, &root(), &m).problems[0].0, Code::CantExec);
    // Executable, but behind a directory the service's user can't search.
    m.dir("/opt", 0, 0, 0o755).dir("/opt/private", 0, 0, 0o700);
    m.file("/opt/private/serve", "", 0, 0, 0o755);
    m.link("/opt/app", "/opt/private");
    c.command = vec!["/opt/app/serve".into()];
    c.id.user = Some("smartem".into());
    let p = build_ok(&c, &root(), &m);
    assert_eq!(p.problems[0].0, Code::CantExec);
    assert!(
        p.problems[0]
            .1
            .contains("directory /opt/private (owner 0:0, mode 0700) denies search to uid 5000"),
        "{:?}",
        p.problems
    );
    // Root itself may: no problem without a user.
    c.id.user = None;
    assert!(build_ok(&c, &root(), &m).problems.is_empty());
}

#[test]
fn a_migration_without_alembic_ini_gets_its_hint() {
    let mut m = world();
    let p = build_ok(&cfg(), &root(), &m);
    assert_eq!(p.migration_hint, None);
    m.link("/app/alembic.ini", "/nowhere");
    let p = build_ok(&cfg(), &root(), &m);
    assert!(p
        .migration_hint
        .as_deref()
        .unwrap()
        .contains("/app/alembic.ini is missing"));
    let mut c = cfg();
    c.migrate_cmd = Some("alembic -c /etc/alembic.ini upgrade head".into());
    assert_eq!(
        build_ok(&c, &root(), &m).migration_hint,
        None,
        "-c names its own"
    );
}

#[test]
fn a_plain_init_for_a_command_neither_enters_app_nor_checks_dls() {
    let mut c = cfg();
    c.command = vec!["true".into()];
    let p = build_ok(&c, &root(), &world());
    assert_eq!(
        p.workdir, None,
        "/app is the SmartEM image's, not a plain init's"
    );
    assert!(!p.check_data_dir);
    c.id.data_dir_given = true;
    assert!(
        build_ok(&c, &root(), &world()).check_data_dir,
        "configured: checked"
    );
    let mut c = cfg();
    c.role = "worker".into();
    let p = build_ok(&c, &root(), &world());
    assert!(p.check_data_dir && p.workdir.is_some(), "a role keeps both");
}

#[test]
fn a_bad_data_dir_is_a_warning_unless_required_then_78() {
    let mut c = cfg();
    c.id.user = Some("smartem".into());
    let p = build_ok(&c, &root(), &world());
    let denied = datadir::Verdict::Denied(Some((0, 0, 0o700)));
    assert_eq!(
        p.data_dir_outcome(&datadir::Verdict::Readable).unwrap(),
        None
    );
    assert_eq!(
        p.data_dir_outcome(&datadir::Verdict::NotChecked).unwrap(),
        None
    );
    let warning = p.data_dir_outcome(&denied).unwrap().expect("a warning");
    assert!(warning.contains("not readable by uid 5000"), "{warning}");
    c.require_data_dir = true;
    let p = build_ok(&c, &root(), &world());
    for v in [
        denied,
        datadir::Verdict::Absent,
        datadir::Verdict::Stalled(Duration::from_secs(5)),
    ] {
        let err = p.data_dir_outcome(&v).unwrap_err();
        assert_eq!(exit_code(&err), 78, "{v:?}");
        assert!(
            format!("{err}").contains("required: --require-data-dir"),
            "{err}"
        );
    }
    assert_eq!(
        p.data_dir_outcome(&datadir::Verdict::Readable).unwrap(),
        None
    );
}

#[test]
fn job_control_follows_the_terminal_the_service_is_given() {
    // Ctrl-Z and fg only mean something with a terminal on stdin; without
    // one a SIGTSTP is forwarded like any signal.
    let mut f = root();
    let p = build_ok(&cfg(), &f, &world());
    assert!(!p.tty && !p.forwarding.job_control);
    f.stdin_tty = true;
    let mut c = cfg();
    c.forwarding.child_only = true;
    let p = build_ok(&c, &f, &world());
    assert!(p.tty && p.forwarding.job_control);
    assert!(
        p.forwarding.child_only,
        "the other forwarding settings are kept"
    );
}
