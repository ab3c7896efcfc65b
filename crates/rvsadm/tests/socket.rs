//! The real binary against a fake rvsd on a temporary Unix socket (rvs-api framing): requests
//! arrive as the protocol says, answers turn into ipvsadm output and exit statuses.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command as Proc, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use rvs_api::framing::{read_message, write_message};
use rvs_api::{ApiError, Command, ErrorCode, Reply, Request, Response};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("rvsadm-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves `connections` connections with `answer`, recording every request.
fn fake_rvsd(
    path: &PathBuf,
    connections: usize,
    answer: fn(&Command) -> Response,
) -> (Arc<Mutex<Vec<Request>>>, thread::JoinHandle<()>) {
    let listener = UnixListener::bind(path).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let h = thread::spawn(move || {
        for _ in 0..connections {
            let (stream, _) = listener.accept().unwrap();
            let mut w = stream.try_clone().unwrap();
            let mut r = BufReader::new(stream);
            while let Some(req) = read_message::<_, Request>(&mut r).unwrap() {
                let resp = answer(&req.command);
                seen2.lock().unwrap().push(req);
                write_message(&mut w, &resp).unwrap();
            }
        }
    });
    (seen, h)
}

fn rvsadm(socket: &PathBuf, args: &[&str], stdin: &str) -> Output {
    let mut child = Proc::new(env!("CARGO_BIN_EXE_rvsadm"))
        .args(args)
        .env("RVS_SOCKET", socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn answer_fixture(cmd: &Command) -> Response {
    match cmd {
        Command::GetInfo => Response::Ok(Reply::Info(rvs_api::Info {
            version: "1.2.1".into(),
            conn_table_size: 4096,
        })),
        Command::ListServices => Response::Ok(Reply::Services(common::fixture())),
        Command::AddDest { .. } => Response::Err(ApiError::new(ErrorCode::ServiceNotDefined)),
        Command::Batch(v) if v.len() > 1 => {
            Response::Err(ApiError::new(ErrorCode::DestinationExists).at_index(1))
        }
        _ => Response::Ok(Reply::Done),
    }
}

#[test]
fn listing_through_the_socket_matches_golden() {
    let dir = TempDir::new("list");
    let sock = dir.0.join("rvsd.sock");
    let (seen, h) = fake_rvsd(&sock, 1, answer_fixture);
    let out = rvsadm(&sock, &["-L", "-n"], "");
    h.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/list.txt"),
    )
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|r| r.version == rvs_api::PROTOCOL_VERSION));
    assert_eq!(seen.len(), 2, "GetInfo + ListServices on one connection");
}

#[test]
fn director_error_exits_255_with_ipvs_message() {
    let dir = TempDir::new("err");
    let sock = dir.0.join("rvsd.sock");
    let (seen, h) = fake_rvsd(&sock, 1, answer_fixture);
    let out = rvsadm(
        &sock,
        &["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-m"],
        "",
    );
    h.join().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "Service not defined\n"
    );
    assert!(matches!(
        seen.lock().unwrap()[0].command,
        Command::AddDest { dest, .. } if dest.method == rvs_api::ForwardMethod::Masq
    ));
}

#[test]
fn restore_is_one_batch_and_errors_name_the_line() {
    let dir = TempDir::new("restore");
    let sock = dir.0.join("rvsd.sock");
    let (seen, h) = fake_rvsd(&sock, 1, answer_fixture);
    let out = rvsadm(
        &sock,
        &["-R"],
        "-A -t 10.0.0.1:80 -s rr\n\n-a -t 10.0.0.1:80 -r 10.0.0.2 -m\n",
    );
    h.join().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "line 3: Destination already exists\n"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(matches!(&seen[0].command, Command::Batch(v) if v.len() == 2));
}

#[test]
fn missing_daemon_is_one_clear_line() {
    let dir = TempDir::new("missing");
    let sock = dir.0.join("nobody-here.sock");
    let out = rvsadm(&sock, &["-L", "-n"], "");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("Can't connect to rvsd at {}: ", sock.display())),
        "{err}"
    );
    // parse errors and help never need the daemon
    let out = rvsadm(&sock, &["-h"], "");
    assert_eq!(out.status.code(), Some(0));
    let out = rvsadm(&sock, &["-A", "-t", "10.0.0.1"], "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_listing_is_the_documented_schema() {
    let dir = TempDir::new("json");
    let sock = dir.0.join("rvsd.sock");
    let (_, h) = fake_rvsd(&sock, 1, answer_fixture);
    let out = rvsadm(&sock, &["-L", "--json"], "");
    h.join().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["info"]["version"], "1.2.1");
    assert_eq!(v["info"]["conn_table_size"], 4096);
    let first = &v["services"][0];
    assert_eq!(first["config"]["key"]["addr"]["protocol"], "tcp");
    assert_eq!(first["config"]["key"]["addr"]["addr"], "198.51.100.1");
    assert_eq!(first["config"]["key"]["addr"]["port"], 80);
    assert_eq!(first["stats"]["conns"], 123_456_789);
    assert_eq!(first["dests"][0]["config"]["method"], "masq");
    assert_eq!(v["services"].as_array().unwrap().len(), 7);
    let services: Vec<rvs_api::ServiceSnapshot> =
        serde_json::from_value(v["services"].clone()).unwrap();
    assert_eq!(services.len(), 7);
}
