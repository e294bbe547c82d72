//! The ROLE table: which command each role runs, the per-role overrides,
//! and HTTP_API_PORT. Pure: everything comes in as strings.

use crate::error::{fail, Code, Result};
use std::time::Duration;

/// `migrate` runs only the api role's pre-start step, as the service: the
/// Kubernetes Job that migrates once per rollout, while the Deployment's
/// replicas skip it (SMARTEM_SKIP_MIGRATIONS=1) instead of racing.
pub const ROLES: [&str; 3] = ["api", "worker", "migrate"];
pub const DEFAULT_PORT: u16 = 8000;

/// uvicorn's `--timeout-graceful-shutdown`, derived from smartem-init's
/// grace period so the stages are ordered: uvicorn stops waiting for
/// in-flight requests first, then has the rest (5 s, or half of a short grace
/// period) to run its shutdown handlers (closing the broker and database
/// connections) before smartem-init's SIGKILL. The orchestrator's own limit
/// (terminationGracePeriodSeconds, docker stop -t) must be above the grace
/// period; the README says by how much.
pub fn graceful_timeout(grace: Duration) -> u64 {
    let g = grace.as_secs_f64();
    (g - (g / 2.0).min(5.0)).floor() as u64
}

/// What decides the role's commands.
#[derive(Debug, Clone, Default)]
pub struct RoleInput {
    /// ROLE / --role; empty means api.
    pub role: String,
    pub api_cmd: Option<String>,
    pub worker_cmd: Option<String>,
    pub migrate_cmd: Option<String>,
    pub skip_migrations: bool,
    /// HTTP_API_PORT as found in the environment (after .env).
    pub http_api_port: Option<String>,
    /// smartem-init's grace period, from which uvicorn's is derived.
    pub grace: Duration,
}

/// The commands a role runs, as argv vectors (program first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCommands {
    pub role: String,
    /// Runs to completion before the service; must exit 0.
    pub pre_start: Option<Vec<String>>,
    pub service: Vec<String>,
    /// The api's port (HTTP_API_PORT), checked whatever command runs it:
    /// `healthcheck` probes it, so a bad value is refused at start.
    pub http_api_port: Option<u16>,
}

/// Normalises ROLE: empty means api, anything else must be a known role.
pub fn parse_role(role: &str) -> Result<String> {
    let role = if role.is_empty() { "api" } else { role };
    if ROLES.contains(&role) {
        Ok(role.to_string())
    } else {
        Err(fail(
            Code::Usage,
            format!(
                "unknown role {role:?}; valid roles are: {} (set ROLE or --role)",
                ROLES.join(", ")
            ),
        ))
    }
}

/// HTTP_API_PORT: unset or empty means 8000; otherwise 1..=65535.
pub fn parse_port(value: Option<&str>) -> Result<u16> {
    match value {
        None | Some("") => Ok(DEFAULT_PORT),
        Some(v) => v.parse::<u16>().ok().filter(|p| *p != 0 && !v.starts_with('+')).ok_or_else(|| {
            fail(
                Code::Usage,
                format!("HTTP_API_PORT={v:?} is not a port number; set it to 1..=65535 or unset it for 8000"),
            )
        }),
    }
}

/// Splits a command override into argv the way a shell would split words
/// (quotes and backslashes honoured) but with no expansion of any kind.
pub fn split_command(value: &str, source: &str) -> Result<Vec<String>> {
    let words = shlex::split(value).ok_or_else(|| {
        fail(
            Code::Usage,
            format!("{source}={value:?} has an unterminated quote or trailing backslash; fix the quoting"),
        )
    })?;
    if words.is_empty() {
        return Err(fail(
            Code::Usage,
            format!("{source} is empty; give a command or unset it"),
        ));
    }
    Ok(words)
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn migration(input: &RoleInput) -> Result<Vec<String>> {
    match &input.migrate_cmd {
        Some(cmd) => split_command(cmd, "SMARTEM_MIGRATE_CMD/--migrate-cmd"),
        None => Ok(words(&["python", "-m", "alembic", "upgrade", "head"])),
    }
}

pub fn commands(input: &RoleInput) -> Result<RoleCommands> {
    let role = parse_role(&input.role)?;
    let out = if role == "api" {
        let http_api_port = parse_port(input.http_api_port.as_deref())?;
        let service = match &input.api_cmd {
            Some(cmd) => split_command(cmd, "SMARTEM_API_CMD/--api-cmd")?,
            None => {
                let port = http_api_port.to_string();
                let timeout = graceful_timeout(input.grace).to_string();
                words(&[
                    "uvicorn",
                    "smartem_backend.api_server:app",
                    "--host",
                    "0.0.0.0",
                    "--port",
                    &port,
                    "--timeout-graceful-shutdown",
                    &timeout,
                ])
            }
        };
        let pre_start = if input.skip_migrations {
            None
        } else {
            Some(migration(input)?)
        };
        RoleCommands {
            role,
            pre_start,
            service,
            http_api_port: Some(http_api_port),
        }
    } else if role == "migrate" {
        RoleCommands {
            role,
            pre_start: None,
            service: migration(input)?,
            http_api_port: None,
        }
    } else {
        let service = match &input.worker_cmd {
            Some(cmd) => split_command(cmd, "SMARTEM_WORKER_CMD/--worker-cmd")?,
            None => words(&["python", "-m", "smartem_backend.consumer"]),
        };
        RoleCommands {
            role,
            pre_start: None,
            service,
            http_api_port: None,
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;

    fn input(role: &str) -> RoleInput {
        RoleInput {
            role: role.into(),
            grace: Duration::from_secs(25),
            ..Default::default()
        }
    }

    #[test]
    fn empty_role_is_api_with_migration_and_default_port() {
        let c = commands(&input("")).unwrap();
        assert_eq!(c.role, "api");
        assert_eq!(
            c.pre_start.unwrap().join(" "),
            "python -m alembic upgrade head"
        );
        assert_eq!(
            c.service.join(" "),
            "uvicorn smartem_backend.api_server:app --host 0.0.0.0 --port 8000 --timeout-graceful-shutdown 20"
        );
    }

    #[test]
    fn uvicorn_stops_waiting_before_the_grace_period_ends() {
        for (grace, want) in [
            (25.0, 20),
            (30.0, 25),
            (10.0, 5),
            (4.0, 2),
            (1.0, 0),
            (0.0, 0),
        ] {
            let g = Duration::from_secs_f64(grace);
            assert_eq!(graceful_timeout(g), want, "grace {grace}");
            assert!((want as f64) < grace || grace == 0.0);
            let mut i = input("api");
            i.grace = g;
            let svc = commands(&i).unwrap().service;
            let at = svc
                .iter()
                .position(|w| w == "--timeout-graceful-shutdown")
                .unwrap();
            assert_eq!(svc[at + 1], want.to_string());
        }
    }

    #[test]
    fn migrate_runs_only_the_migration_and_honours_its_override() {
        let c = commands(&input("migrate")).unwrap();
        assert_eq!(c.service.join(" "), "python -m alembic upgrade head");
        assert_eq!(c.pre_start, None);
        let mut i = input("migrate");
        i.migrate_cmd = Some("alembic -c /etc/a.ini upgrade head".into());
        i.skip_migrations = true;
        assert_eq!(commands(&i).unwrap().service[0], "alembic");
    }

    #[test]
    fn port_from_env_and_its_validation() {
        let mut i = input("api");
        i.http_api_port = Some("9001".into());
        assert!(commands(&i).unwrap().service.contains(&"9001".to_string()));
        i.http_api_port = Some(String::new());
        assert!(commands(&i).unwrap().service.contains(&"8000".to_string()));
        for bad in ["0", "65536", "http", "-1", "+80", " 80", "80.0"] {
            i.http_api_port = Some(bad.into());
            let err = commands(&i).unwrap_err();
            assert_eq!(exit_code(&err), 64, "{bad}");
            assert!(format!("{err}").contains("HTTP_API_PORT"));
        }
    }

    #[test]
    fn the_port_is_checked_with_an_api_command_given_too() {
        // healthcheck probes the port whatever runs the api: a bad value
        // must not start a container that is unhealthy forever.
        let mut i = input("api");
        i.api_cmd = Some("gunicorn app:app".into());
        i.http_api_port = Some("junk".into());
        assert_eq!(exit_code(&commands(&i).unwrap_err()), 64);
        i.http_api_port = Some("9002".into());
        let c = commands(&i).unwrap();
        assert_eq!(
            (c.service[0].as_str(), c.http_api_port),
            ("gunicorn", Some(9002))
        );
        // The worker has no HTTP port: its value is not the worker's concern.
        let mut w = input("worker");
        w.http_api_port = Some("junk".into());
        assert_eq!(commands(&w).unwrap().http_api_port, None);
    }

    #[test]
    fn worker_and_unknown_roles() {
        let c = commands(&input("worker")).unwrap();
        assert_eq!(c.service.join(" "), "python -m smartem_backend.consumer");
        assert_eq!(c.pre_start, None);
        let err = commands(&input("bogus")).unwrap_err();
        assert_eq!(exit_code(&err), 64);
        let msg = format!("{err}");
        assert!(
            msg.contains("\"bogus\"") && msg.contains("api, worker, migrate"),
            "{msg}"
        );
    }

    #[test]
    fn overrides_split_like_a_shell_without_expansion() {
        let mut i = input("api");
        i.api_cmd = Some(r#"/opt/app/serve --name "two words" 'a $HOME' x\ y"#.into());
        i.skip_migrations = true;
        let c = commands(&i).unwrap();
        assert_eq!(
            c.service,
            vec!["/opt/app/serve", "--name", "two words", "a $HOME", "x y"]
        );
        assert_eq!(c.pre_start, None);
        i.api_cmd = Some("serve 'unterminated".into());
        assert_eq!(exit_code(&commands(&i).unwrap_err()), 64);
        i.api_cmd = Some("   ".into());
        assert_eq!(exit_code(&commands(&i).unwrap_err()), 64);
        let mut w = input("worker");
        w.worker_cmd = Some("consume --fast".into());
        assert_eq!(commands(&w).unwrap().service, vec!["consume", "--fast"]);
    }

    #[test]
    fn migration_override() {
        let mut i = input("api");
        i.migrate_cmd = Some("alembic -c /etc/a.ini upgrade head".into());
        assert_eq!(commands(&i).unwrap().pre_start.unwrap()[0], "alembic");
    }
}
