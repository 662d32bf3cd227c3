//! Debian's real nginx for TLS interop tests: own config in a temp dir, a free loopback port,
//! killed (and reaped) on drop whatever the test outcome.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub use crate::require_tool;

/// A port that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A running nginx.
pub struct Nginx {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
    /// Its prefix directory (config, logs, temp paths).
    pub dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Starts nginx in the foreground with the config `conf(prefix_dir, port)` returns. Retries
    /// a few times if another process grabbed the port between our probe and nginx's bind.
    pub fn start(conf: impl Fn(&Path, u16) -> String) -> Self {
        let nginx = require_tool("nginx");
        let mut last_error = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let path = dir.path().join("nginx.conf");
            fs::write(&path, conf(dir.path(), port)).expect("write nginx.conf");
            let child = Command::new(&nginx)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", nginx.display()));
            let mut running = Nginx { child, port, dir };
            match running.wait_ready(Duration::from_secs(5)) {
                Ok(()) => return running,
                Err(e) if e.contains("Address already in use") => last_error = e,
                Err(e) => panic!("nginx did not start: {e}"),
            }
        }
        panic!("nginx did not start: {last_error}")
    }

    /// Waits (bounded) until the port accepts connections; fails early if nginx exits.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll nginx") {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(format!(
                    "nginx exited with {status}: {stderr}{}",
                    self.error_log()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "port {} not accepting after {timeout:?}; error.log: {}",
                    self.port,
                    self.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}
