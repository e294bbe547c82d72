//! The release artefacts (scripts/release), checked the way somebody who
//! downloads them would: the binaries against SHA256SUMS, each OCI archive
//! opened and its labels, architecture and binary read, the index against
//! the archives, the images run (amd64 under Docker, the arm64 binary
//! under qemu-user), the README's `COPY --from=...@sha256:` through a real
//! registry on loopback, and a second run giving the same bytes.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const BUDGET: u64 = 524_288;
const ARCHES: [(&str, &str); 2] = [("amd64", "x86-64"), ("arm64", "ARM aarch64")];

struct Release {
    _tmp: tempfile::TempDir,
    dist: PathBuf,
    /// A second run of the same commit, into another directory, built again
    /// from nothing in another target directory.
    again: PathBuf,
}

/// scripts/release with cargo's and rustup's variables for this test
/// binary removed, so its builds are made as from a shell.
fn run_release(dist: &Path, target: &Path) -> (i32, String, String) {
    let mut cmd = Command::new("bash");
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO")
            || k.starts_with("RUSTUP_TOOLCHAIN")
            || k == "RUSTC"
            || k == "LD_LIBRARY_PATH"
        {
            cmd.env_remove(&k);
        }
    }
    let mut child = cmd
        .env("CARGO_TARGET_DIR", target)
        .arg(repo().join("scripts/release"))
        .arg(dist)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    // Two builds from nothing: about 100 s here.
    wait_output(&mut child, Duration::from_secs(1200))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Made once per test binary: one release into a fresh target directory
/// (so both binaries are built from nothing), then a second run into
/// another fresh one: reproducible bytes from a rebuild, not from cargo's
/// cache of the first.
fn release() -> Option<&'static Release> {
    static MADE: OnceLock<Option<Release>> = OnceLock::new();
    MADE.get_or_init(|| {
        let ok = is_root() && have("buildah") && have("skopeo") && repo().join(".git").exists();
        if !prerequisite(
            ok,
            "scripts/release needs root, buildah, skopeo (scripts/setup) and a git checkout",
        ) {
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        let dist = tmp.path().join("dist");
        let (code, out, err) = run_release(&dist, &target);
        assert_eq!(code, 0, "scripts/release: {out}{err}");
        let again = tmp.path().join("again");
        let (code, out, err) = run_release(&again, &tmp.path().join("target-again"));
        assert_eq!(code, 0, "scripts/release, second run: {out}{err}");
        Some(Release {
            _tmp: tmp,
            dist,
            again,
        })
    })
    .as_ref()
}

fn git(args: &[&str]) -> String {
    let (code, out, err) = run_cmd(Command::new("git").args(args).current_dir(repo()));
    assert_eq!(code, 0, "git {args:?}: {err}");
    out.trim().to_string()
}

/// An OCI archive unpacked: its layout, and the JSON blobs by digest.
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn open(archive: &Path) -> Layout {
        let dir = tempfile::tempdir().unwrap();
        let (code, _, err) = run_cmd(
            Command::new("tar")
                .arg("-xf")
                .arg(archive)
                .arg("-C")
                .arg(dir.path()),
        );
        assert_eq!(code, 0, "tar -xf {}: {err}", archive.display());
        Layout { dir }
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.dir.path().join("blobs/sha256").join(hex)
    }

    fn json(&self, digest: &str) -> Value {
        let bytes = std::fs::read(self.blob_path(digest)).unwrap();
        // A blob is named by its digest: check it, as a runtime would.
        let (_, sum, _) = run_cmd(Command::new("sha256sum").arg(self.blob_path(digest)));
        assert_eq!(format!("sha256:{}", &sum[..64]), digest, "blob digest");
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The one thing index.json names: (media type, digest).
    fn top(&self) -> (String, String) {
        let index: Value =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("index.json")).unwrap())
                .unwrap();
        let m = &index["manifests"].as_array().expect("manifests")[..];
        assert_eq!(m.len(), 1, "index.json: {index}");
        (
            m[0]["mediaType"].as_str().unwrap().to_string(),
            m[0]["digest"].as_str().unwrap().to_string(),
        )
    }

    /// The image's files, its layers applied in order.
    fn rootfs(&self, manifest: &Value) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for layer in manifest["layers"].as_array().unwrap() {
            let blob = self.blob_path(layer["digest"].as_str().unwrap());
            let (code, _, err) = run_cmd(
                Command::new("tar")
                    .arg("-xzf")
                    .arg(&blob)
                    .arg("-C")
                    .arg(root.path()),
            );
            assert_eq!(code, 0, "layer: {err}");
        }
        root
    }
}

fn digests(dist: &Path) -> String {
    std::fs::read_to_string(dist.join("DIGESTS")).unwrap()
}

fn digest_of(dist: &Path, what: &str) -> String {
    digests(dist)
        .lines()
        .find(|l| l.ends_with(what))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {what} in DIGESTS"))
        .to_string()
}

#[test]
fn the_files_verify_against_sha256sums_and_a_changed_byte_does_not() {
    let Some(r) = release() else { return };
    let sums = std::fs::read_to_string(r.dist.join("SHA256SUMS")).unwrap();
    for f in [
        "smartem-init-amd64",
        "smartem-init-arm64",
        "smartem-init-amd64.oci.tar",
        "smartem-init-arm64.oci.tar",
        "smartem-init.oci.tar",
    ] {
        assert!(
            sums.lines().any(|l| l.ends_with(&format!("  {f}"))),
            "{f} in {sums}"
        );
    }
    let check = |dir: &Path, args: &[&str]| {
        run_cmd(
            Command::new("sha256sum")
                .args(args)
                .arg("SHA256SUMS")
                .current_dir(dir),
        )
    };
    let (code, out, err) = check(&r.dist, &["-c"]);
    assert_eq!(code, 0, "{out}{err}");
    // The README's command, where one binary was downloaded: it passes,
    // and fails once a byte of it changes.
    let one = tempfile::tempdir().unwrap();
    std::fs::copy(r.dist.join("SHA256SUMS"), one.path().join("SHA256SUMS")).unwrap();
    let mut bytes = std::fs::read(r.dist.join("smartem-init-arm64")).unwrap();
    std::fs::write(one.path().join("smartem-init-arm64"), &bytes).unwrap();
    let (code, out, err) = check(one.path(), &["--ignore-missing", "-c"]);
    assert_eq!((code, out.trim()), (0, "smartem-init-arm64: OK"), "{err}");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(one.path().join("smartem-init-arm64"), bytes).unwrap();
    let (code, out, _) = check(one.path(), &["--ignore-missing", "-c"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("smartem-init-arm64: FAILED"), "{out}");
}

#[test]
fn both_binaries_are_static_of_their_machine_and_within_the_budget() {
    let Some(r) = release() else { return };
    for (arch, machine) in ARCHES {
        let bin = r.dist.join(format!("smartem-init-{arch}"));
        let (_, kind, _) = run_cmd(Command::new("file").arg("-b").arg(&bin));
        assert!(kind.contains(machine), "{arch}: {kind}");
        assert!(
            kind.contains("statically linked") || kind.contains("static-pie linked"),
            "{arch}: {kind}"
        );
        let size = std::fs::metadata(&bin).unwrap().len();
        assert!(size <= BUDGET, "{arch}: {size} bytes");
    }
}

/// The suite's own builds (scripts/test, in target/) and the release's
/// (a fresh target directory) are separate builds: equal bytes are the
/// reproducibility scripts/release claims.
#[test]
fn the_binaries_are_the_bytes_of_an_independent_build() {
    let Some(r) = release() else { return };
    let arm64 = std::env::var_os("SMARTEM_INIT_ARM64_BIN").map(PathBuf::from);
    let ok = std::env::var_os("SMARTEM_INIT_BIN").is_some()
        && arm64.as_ref().is_some_and(|p| p.exists());
    if !prerequisite(
        ok,
        "SMARTEM_INIT_BIN and SMARTEM_INIT_ARM64_BIN (scripts/test) name the suite's builds",
    ) {
        return;
    }
    for (arch, theirs) in [("amd64", bin()), ("arm64", arm64.unwrap())] {
        let ours = std::fs::read(r.dist.join(format!("smartem-init-{arch}"))).unwrap();
        assert!(
            ours == std::fs::read(&theirs).unwrap(),
            "{arch}: dist differs from {}",
            theirs.display()
        );
    }
}

#[test]
fn a_second_run_gives_the_same_bytes_and_digests() {
    let Some(r) = release() else { return };
    for f in ["SHA256SUMS", "DIGESTS"] {
        assert_eq!(
            std::fs::read_to_string(r.dist.join(f)).unwrap(),
            std::fs::read_to_string(r.again.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn each_archive_is_its_architecture_with_the_labels_and_the_binary() {
    let Some(r) = release() else { return };
    let mut revision = git(&["rev-parse", "HEAD"]);
    if !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        revision.push_str("-dirty");
    }
    let epoch = git(&["log", "-1", "--format=%ct"]);
    let (_, created, _) = run_cmd(Command::new("date").args([
        "-u",
        "-d",
        &format!("@{epoch}"),
        "+%Y-%m-%dT%H:%M:%SZ",
    ]));
    for (arch, _) in ARCHES {
        let layout = Layout::open(&r.dist.join(format!("smartem-init-{arch}.oci.tar")));
        let (kind, digest) = layout.top();
        assert_eq!(kind, "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(digest, digest_of(&r.dist, &format!("linux/{arch}")));
        let manifest = layout.json(&digest);
        let config = layout.json(manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(config["architecture"], arch, "{config}");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["created"], created.trim());
        let labels = &config["config"]["Labels"];
        let label = |k: &str| {
            labels[format!("org.opencontainers.image.{k}")]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(label("version"), cargo_field("version"));
        assert_eq!(label("licenses"), cargo_field("license"));
        assert_eq!(label("revision"), revision);
        assert_eq!(label("created"), created.trim());
        assert_eq!(label("title"), "smartem-init");
        for k in ["source", "documentation"] {
            assert!(label(k).starts_with("https://"), "{k}: {labels}");
        }
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/smartem-init"])
        );
        assert_eq!(config["config"]["User"], "0:0");
        let root = layout.rootfs(&manifest);
        let shipped = std::fs::read(root.path().join("smartem-init")).unwrap();
        assert!(
            shipped == std::fs::read(r.dist.join(format!("smartem-init-{arch}"))).unwrap(),
            "{arch}: the image's binary is not dist's"
        );
        let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
        assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    }
}

#[test]
fn the_index_names_both_architectures_by_the_archives_digests() {
    let Some(r) = release() else { return };
    let layout = Layout::open(&r.dist.join("smartem-init.oci.tar"));
    let (kind, digest) = layout.top();
    assert_eq!(kind, "application/vnd.oci.image.index.v1+json");
    assert_eq!(digest, digest_of(&r.dist, "index"));
    let index = layout.json(&digest);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    for (arch, _) in ARCHES {
        let e = entries
            .iter()
            .find(|e| e["platform"]["architecture"] == arch)
            .unwrap_or_else(|| panic!("no {arch} in {index}"));
        assert_eq!(e["platform"]["os"], "linux");
        let d = e["digest"].as_str().unwrap();
        assert_eq!(d, digest_of(&r.dist, &format!("linux/{arch}")));
        // The per-architecture image is inside the index archive too.
        let manifest = layout.json(d);
        let config = layout.json(manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(config["architecture"], arch);
    }
}

#[test]
fn the_images_run_amd64_under_docker_and_arm64_under_qemu() {
    let Some(r) = release() else { return };
    if !prerequisite(
        docker_answers() && have("qemu-aarch64-static"),
        "a Docker engine and qemu-aarch64-static",
    ) {
        return;
    }
    let archive = format!(
        "oci-archive:{}",
        r.dist.join("smartem-init-amd64.oci.tar").display()
    );
    let tag = "smartem-init-release-test:amd64";
    let (code, out, err) = run_cmd(Command::new("skopeo").args([
        "copy",
        "-q",
        &archive,
        &format!("docker-daemon:{tag}"),
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let want = format!("smartem-init {}", cargo_field("version"));
    let (code, out, err) = run_cmd(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "none",
        tag,
        "--version",
    ]));
    assert_eq!((code, out.trim()), (0, want.as_str()), "{err}");
    // As PID 1, dropping to nobody: the image's own /etc files resolve it.
    let (code, out, err) = run_cmd(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "none",
        tag,
        "--user",
        "nobody",
        "--",
        "/smartem-init",
        "--version",
    ]));
    assert_eq!((code, out.trim()), (0, want.as_str()), "{err}");

    let layout = Layout::open(&r.dist.join("smartem-init-arm64.oci.tar"));
    let manifest = layout.json(&layout.top().1);
    let root = layout.rootfs(&manifest);
    let (code, out, err) = run_cmd(
        Command::new("qemu-aarch64-static")
            .arg(root.path().join("smartem-init"))
            .arg("--version"),
    );
    assert_eq!((code, out.trim()), (0, want.as_str()), "{err}");
}

/// README "Release": push the index to a registry, then
/// `COPY --from=REGISTRY/smartem-init@sha256:INDEX` in an application
/// image. The registry is Debian's docker-registry on 127.0.0.1 (Docker
/// talks plain HTTP to loopback registries).
#[test]
fn copy_from_the_index_pinned_by_digest_builds_and_runs() {
    let Some(r) = release() else { return };
    if !prerequisite(
        docker_answers() && have("docker-registry"),
        "a Docker engine and docker-registry (scripts/setup)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _registry = Kill(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(20), "the registry listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let repo_ref = format!("127.0.0.1:{port}/smartem-init");
    let index = digest_of(&r.dist, "index");
    let (code, out, err) = run_cmd(Command::new("skopeo").args([
        "copy",
        "-q",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!(
            "oci-archive:{}",
            r.dist.join("smartem-init.oci.tar").display()
        ),
        &format!("docker://{repo_ref}:{}", cargo_field("version")),
    ]));
    assert_eq!(code, 0, "{out}{err}");

    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY --from={repo_ref}@{index} /smartem-init /smartem-init\nENTRYPOINT [\"/smartem-init\"]\n"
        ),
    )
    .unwrap();
    let tag = "smartem-init-release-test:copy-from";
    let pulled = format!("{repo_ref}@{index}");
    struct Tidy(Vec<String>);
    impl Drop for Tidy {
        fn drop(&mut self) {
            let _ = Command::new("docker")
                .args(["rmi", "-f"])
                .args(&self.0)
                .output();
        }
    }
    let _tidy = Tidy(vec![tag.to_string(), pulled]);
    let (code, out, err) = run_cmd(
        Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", tag])
            .arg(ctx.path()),
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run_cmd(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "none",
        tag,
        "--version",
    ]));
    assert_eq!(
        out.trim(),
        format!("smartem-init {}", cargo_field("version")),
        "{code} {err}"
    );
    // Docker took the amd64 entry of the index: the bytes are dist's.
    files_from_image(tag, &["/smartem-init"], dir.path());
    let got = dir.path().join("smartem-init");
    assert!(
        std::fs::read(&got).unwrap() == std::fs::read(r.dist.join("smartem-init-amd64")).unwrap()
    );
}

/// Bad input to scripts/build: one line naming the value and the choices,
/// exit 64, nothing built.
#[test]
fn scripts_build_refuses_an_unknown_architecture() {
    let (code, out, err) = run_cmd(
        Command::new("bash")
            .arg(repo().join("scripts/build"))
            .arg("riscv64"),
    );
    assert_eq!(code, 64, "{out}{err}");
    assert_eq!(out, "");
    assert_eq!(
        err.trim(),
        "build: unknown architecture 'riscv64'; use amd64 or arm64"
    );
}

/// scripts/release empties DIST first: a directory holding anything but an
/// earlier release is refused, untouched.
#[test]
fn scripts_release_refuses_a_directory_that_is_not_a_release() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("keep"), "mine").unwrap();
    let (code, out, err) = run_cmd(
        Command::new("bash")
            .arg(repo().join("scripts/release"))
            .arg(d.path()),
    );
    assert_eq!(code, 64, "{out}{err}");
    assert_eq!(
        err.trim(),
        format!(
            "release: {} holds files that are not a release's; name a new directory",
            d.path().display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("keep")).unwrap(),
        "mine"
    );
}
