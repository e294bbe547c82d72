//! gen-etc: byte-exact golden files for each mode, and every rejection
//! with exit 64 and a line that names the value.

mod common;
use common::*;
use std::path::Path;

fn generate(args: &[&str]) -> (i32, String, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let mut all = vec!["gen-etc"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", out.path().to_str().unwrap()]);
    let (code, _, err) = run(&all);
    (code, err, out)
}

fn assert_golden(args: &[&str], golden: &str) {
    let (code, err, out) = generate(args);
    assert_eq!(code, 0, "{err}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(golden);
    for name in ["passwd", "group"] {
        let want = std::fs::read_to_string(dir.join(name)).unwrap();
        let got = std::fs::read_to_string(out.path().join(name)).unwrap();
        assert_eq!(got, want, "{golden}/{name}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{name} mode");
    }
}

#[test]
fn root_mode_creates_no_user() {
    assert_golden(&["--uid", "0", "--gid", "0", "--name", "root"], "root-mode");
}

#[test]
fn custom_user_and_group() {
    assert_golden(
        &["--uid", "5000", "--gid", "5000", "--name", "smartem"],
        "custom-user",
    );
}

#[test]
fn home_override() {
    assert_golden(
        &[
            "--uid",
            "5000",
            "--gid",
            "5000",
            "--name",
            "smartem",
            "--home",
            "/home/smartem",
        ],
        "home-override",
    );
}

#[test]
fn build_args_come_from_the_environment() {
    // As in the image build: ARG userid/groupid/groupname are environment
    // variables of the RUN step.
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("made");
    let (code, _, err) = run_cmd(
        std::process::Command::new(bin())
            .env("userid", "5000")
            .env("groupid", "5000")
            .env("groupname", "smartem")
            .args(["gen-etc", "--out", dir.to_str().unwrap()]),
    );
    assert_eq!(code, 0, "{err}");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/custom-user/passwd");
    assert_eq!(
        std::fs::read_to_string(dir.join("passwd")).unwrap(),
        std::fs::read_to_string(golden).unwrap()
    );
}

#[test]
fn output_is_deterministic() {
    let args = ["--uid", "7000", "--gid", "7001", "--name", "svc.user"];
    let (_, _, a) = generate(&args);
    let (_, _, b) = generate(&args);
    for name in ["passwd", "group"] {
        assert_eq!(
            std::fs::read(a.path().join(name)).unwrap(),
            std::fs::read(b.path().join(name)).unwrap()
        );
    }
}

#[test]
fn rejections_are_64_with_the_value_named() {
    for (args, needle) in [
        (
            &["--uid", "65534", "--gid", "5000", "--name", "svc"][..],
            "65534",
        ),
        (
            &["--uid", "5000", "--gid", "5000", "--name", "nobody"],
            "nobody",
        ),
        (
            &["--uid", "5000", "--gid", "5000", "--name", "root"],
            "root",
        ),
        (
            &["--uid", "5000", "--gid", "5000", "--name", "nogroup"],
            "nogroup",
        ),
        (
            &["--uid", "5000", "--gid", "5000", "--name", "bad name"],
            "bad name",
        ),
        (&["--uid", "5000", "--gid", "5000", "--name", "-x"], "-x"),
        (
            &["--uid", "5000", "--gid", "5000", "--name", "1000"],
            "1000",
        ),
        (&["--uid", "5000", "--gid", "5000", "--name", ""], "--name"),
        (
            &["--uid", "5000", "--gid", "5000", "--name", &"n".repeat(33)],
            "32",
        ),
        (&["--uid", "-1", "--gid", "5000", "--name", "svc"], "-1"),
        (
            &["--uid", "4294967295", "--gid", "5000", "--name", "svc"],
            "4294967295",
        ),
        (
            &["--uid", "5000", "--gid", "99999999999", "--name", "svc"],
            "99999999999",
        ),
        (&["--uid", "5000", "--gid", "abc", "--name", "svc"], "abc"),
        (
            &[
                "--uid", "5000", "--gid", "5000", "--name", "svc", "--home", "relative",
            ],
            "relative",
        ),
        (
            &[
                "--uid", "5000", "--gid", "5000", "--name", "svc", "--home", "/a:b",
            ],
            "/a:b",
        ),
        (&["--uid", "5000", "--gid", "5000"], "--name"),
    ] {
        let (code, err, out) = generate(args);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!out.path().join("passwd").exists(), "{args:?} wrote a file");
    }
    let (code, _, err) = run(&[
        "gen-etc",
        "--uid",
        "5000",
        "--gid",
        "5000",
        "--name",
        "svc",
        "--out",
        "/dev/null/dir",
    ]);
    assert_eq!(code, 71, "{err}");
    assert!(err.contains("cannot create --out /dev/null/dir"), "{err}");
}

#[test]
fn generated_files_drive_the_real_drop() {
    if !need_root() {
        return;
    }
    let (code, err, etc) = generate(&["--uid", "5000", "--gid", "5000", "--name", "smartem"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_cmd(
        std::process::Command::new(bin())
            .env("SMARTEM_ETC_DIR", etc.path())
            .args([
                "-q",
                "--user",
                "smartem",
                "--",
                "sh",
                "-c",
                "echo $(id -u) $(id -g) $HOME $USER",
            ]),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "5000 5000 /nonexistent smartem");
}
