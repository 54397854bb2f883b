//! A real nginx for the tests: started from a temporary prefix (no daemon, no master process,
//! every file in a tempdir), answering `200 ok` to everything and logging in a format the test
//! chooses. Tests that need it skip visibly when it is not installed, and fail instead when
//! `SLUICE_REQUIRE_NGINX=1` (which `.ci/run` sets after installing it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

/// The nginx binary, if installed.
pub fn binary() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nginx")).collect::<Vec<_>>())
        .unwrap_or_default();
    in_path.into_iter().chain([PathBuf::from("/usr/sbin/nginx")]).find(|p| p.is_file())
}

/// `None` after a visible SKIPPED line when nginx is not installed (and it may be).
pub fn required(test: &str) -> Option<PathBuf> {
    let found = binary();
    if found.is_none() {
        if std::env::var("SLUICE_REQUIRE_NGINX").as_deref() == Ok("1") {
            panic!("SLUICE_REQUIRE_NGINX=1 but no nginx in PATH or /usr/sbin");
        }
        eprintln!("SKIPPED {test}: nginx is not installed (.ci/run installs nginx-light)");
    }
    found
}

impl Nginx {
    /// Starts nginx listening on `listen` (`127.0.0.1:PORT`), logging each request as
    /// `log_format`, run through `prefix` (e.g. `ip netns exec NS`), and waits until `ready`.
    pub fn start(binary: &PathBuf, prefix: &[&str], listen: &str, log_format: &str, ready: impl Fn() -> bool) -> Nginx {
        Nginx::start_server(binary, prefix, &format!("listen {listen};"), log_format, ready)
    }

    /// Like [`Nginx::start`], with the server block's directives besides its `location`
    /// (several `listen`s, TLS certificates) given whole.
    pub fn start_server(
        binary: &PathBuf,
        prefix: &[&str],
        server: &str,
        log_format: &str,
        ready: impl Fn() -> bool,
    ) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  log_format test '{log_format}';\n  access_log {d}/access.log test;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n  keepalive_requests 100000;\n\
               server {{ {server} location / {{ return 200 \"ok\\n\"; }} }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf"), "-e", &format!("{d}/error.log")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.errors());
            }
            assert!(Instant::now() < deadline, "nginx did not listen ({server}) within 10 s: {}", nginx.errors());
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// What nginx logged, one line per request.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
