//! Real PostgreSQL and Redis servers for the health tests, on free loopback ports.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use observe::health::checks;

use super::common;

pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A PostgreSQL cluster in a temporary directory, stopped and removed on drop.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(None)
    }

    /// With TLS from these certificate and key files: then only TLS connections are
    /// accepted (`hostssl` in pg_hba.conf).
    pub fn start_with(tls: Option<(&Path, &Path)>) -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (Debian's postgresql package)")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let port = common::free_port();
        let dir = std::env::temp_dir().join(format!("observe-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "chown to the postgres user (this test needs root)"
        );
        let pg = Postgres { bin, dir, port };
        let out = pg
            .as_postgres("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&pg.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            pg.dir.display()
        );
        if let Some((cert, key)) = tls {
            for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
                std::fs::copy(from, pg.dir.join(to)).unwrap();
            }
            std::fs::write(
                pg.dir.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .unwrap();
            let ok = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "chown -R postgres:postgres {dir} && chmod 600 {dir}/server.key",
                    dir = pg.dir.display()
                ))
                .status()
                .unwrap();
            assert!(ok.success());
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let out = pg
            .as_postgres("pg_ctl")
            .args(["-w", "-l"])
            .arg(pg.dir.join("log"))
            .arg("-D")
            .arg(&pg.dir)
            .arg("-o")
            .arg(options)
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = pg.config();
        wait_until("PostgreSQL", || {
            block_on(checks::postgres_connect(&config)).is_ok()
        });
        pg
    }

    /// The postmaster and every process it forked (backends, background workers).
    #[allow(dead_code)]
    pub fn pids(&self) -> Vec<i32> {
        let pid_file = std::fs::read_to_string(self.dir.join("postmaster.pid")).unwrap();
        let postmaster: i32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(postmaster) {
                pids.extend(
                    entry
                        .file_name()
                        .to_str()
                        .and_then(|p| p.parse::<i32>().ok()),
                );
            }
        }
        pids
    }

    /// Sends `signal` (e.g. `SIGSTOP`, `SIGCONT`) to the whole server.
    #[allow(dead_code)]
    pub fn signal(&self, signal: &str) {
        for pid in self.pids() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status();
        }
    }

    /// Restarts the server (every connection to it breaks).
    #[allow(dead_code)]
    pub fn restart(&self) {
        let out = self
            .as_postgres("pg_ctl")
            .args(["-w", "-m", "fast", "-l"])
            .arg(self.dir.join("log"))
            .arg("-D")
            .arg(&self.dir)
            .arg("restart")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn as_postgres(&self, tool: &str) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
        c
    }

    pub fn config(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=2",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(&self.dir)
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis server without persistence; `stop` kills it.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        let redis = Redis::start_with(&[]);
        let url = format!("redis://127.0.0.1:{}", redis.port);
        wait_until("Redis", || block_on(checks::redis(&url)).is_ok());
        redis
    }

    /// On this port (a restart).
    #[allow(dead_code)]
    pub fn start_on(port: u16) -> Redis {
        let redis = Redis::start_with_port(port, &[]);
        let url = format!("redis://127.0.0.1:{}", redis.port);
        wait_until("Redis", || block_on(checks::redis(&url)).is_ok());
        redis
    }

    /// With more configuration (`--tls-port` is then the port: pass `--port 0`).
    pub fn start_with(extra: &[&str]) -> Redis {
        Redis::start_with_port(common::free_port(), extra)
    }

    fn start_with_port(port: u16, extra: &[&str]) -> Redis {
        let tls = extra.contains(&"--tls-cert-file");
        let port_flag = if tls { "--tls-port" } else { "--port" };
        let mut args = vec![
            port_flag.to_owned(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
        ];
        if tls {
            args.extend(["--port".into(), "0".into()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (Debian's redis-server package)");
        wait_until("Redis", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Redis {
            child: Some(child),
            port,
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
