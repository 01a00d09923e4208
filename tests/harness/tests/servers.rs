//! Starts real servers: needs nats-server and redis-server (scripts/setup.sh).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use lattice_test_harness::{NatsServer, RedisServer};

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

/// Just enough of the NATS client protocol for request/reply.
struct RawNats {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    info: String,
    next_sid: u32,
}

impl RawNats {
    fn connect(addr: SocketAddr) -> Self {
        let writer = connect(addr).expect("connect to nats");
        let mut reader = BufReader::new(writer.try_clone().expect("clone socket"));
        let mut info = String::new();
        reader.read_line(&mut info).expect("read INFO");
        assert!(info.starts_with("INFO "), "greeting: {info:?}");
        let mut nats = Self { reader, writer, info, next_sid: 1 };
        nats.send(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n");
        assert_eq!(nats.line(), "PONG");
        nats
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to nats");
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read from nats");
        line.trim_end().to_owned()
    }

    fn request(&mut self, subject: &str, payload: &str) -> String {
        let sid = self.next_sid;
        self.next_sid += 1;
        let inbox = format!("_INBOX.harness.{sid}");
        let msg =
            format!("SUB {inbox} {sid}\r\nUNSUB {sid} 1\r\nPUB {subject} {inbox} {}\r\n{payload}\r\n", payload.len());
        self.send(msg.as_bytes());
        loop {
            let line = self.line();
            if line == "PING" {
                self.send(b"PONG\r\n");
                continue;
            }
            assert!(!line.starts_with("-ERR"), "nats error: {line}");
            let len: usize = line
                .strip_prefix("MSG ")
                .and_then(|rest| rest.rsplit(' ').next())
                .and_then(|len| len.parse().ok())
                .unwrap_or_else(|| panic!("unexpected from nats: {line:?}"));
            let mut body = vec![0; len + 2];
            self.reader.read_exact(&mut body).expect("read MSG payload");
            body.truncate(len);
            return String::from_utf8(body).expect("utf-8 reply");
        }
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad JSON {text:?}: {e}"))
}

#[test]
fn nats_starts_stops_restarts_on_the_same_port_with_its_store_and_dies_on_drop() {
    let mut nats = NatsServer::start().expect("start nats-server");
    let port = nats.port();
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{port}"));
    assert!(nats.jetstream());
    let first_pid = nats.pid().expect("running");
    assert!(process_exists(first_pid));

    let mut client = RawNats::connect(nats.addr());
    assert!(client.info.contains("\"jetstream\":true"), "{}", client.info);
    let created =
        json(&client.request(
            "$JS.API.STREAM.CREATE.HARNESS",
            r#"{"name":"HARNESS","subjects":["harness.>"],"storage":"file"}"#,
        ));
    assert!(created.get("error").is_none(), "{created}");
    let ack = json(&client.request("harness.greeting", "hello"));
    assert_eq!(ack["stream"], "HARNESS", "{ack}");
    assert_eq!(ack["seq"], 1, "{ack}");
    drop(client);

    nats.stop().expect("stop");
    assert_eq!(nats.pid(), None);
    assert!(!nats.is_running());
    assert!(!process_exists(first_pid), "pid {first_pid} still exists");
    assert!(connect(nats.addr()).is_err(), "port {port} still open");
    assert!(nats.store_dir().join("jetstream").is_dir());

    nats.restart().expect("restart");
    assert_eq!(nats.port(), port);
    let second_pid = nats.pid().expect("running again");
    assert_ne!(first_pid, second_pid);
    assert!(nats.is_running());

    let mut client = RawNats::connect(nats.addr());
    let info = json(&client.request("$JS.API.STREAM.INFO.HARNESS", ""));
    assert_eq!(info["state"]["messages"], 1, "stream lost on restart: {info}");
    drop(client);

    let log = nats.log_contents();
    assert_eq!(log.matches("Server is ready").count(), 2, "{log}");

    let dir = nats.log_path().parent().expect("log dir").to_path_buf();
    drop(nats);
    assert!(!process_exists(second_pid), "pid {second_pid} survived drop");
    assert!(!dir.exists(), "tempdir {} survived drop", dir.display());
}

#[test]
fn nats_restarts_after_a_crash() {
    let mut nats = NatsServer::start().expect("start nats-server");
    let pid = nats.pid().expect("running");
    nats.kill().expect("kill");
    assert!(!process_exists(pid));
    nats.restart().expect("restart");
    RawNats::connect(nats.addr());
}

#[test]
fn nats_without_jetstream_on_a_fixed_port() {
    let port = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let nats = NatsServer::builder().jetstream(false).port(port).start().expect("start nats-server");
    assert_eq!(nats.port(), port);
    let client = RawNats::connect(nats.addr());
    assert!(!client.info.contains("\"jetstream\":true"), "{}", client.info);
    assert!(!nats.store_dir().exists());
}

#[test]
fn nats_on_a_taken_port_fails_quickly_with_its_log() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let started = std::time::Instant::now();
    let err = NatsServer::builder().port(port).start().expect_err("port is taken");
    let message = format!("{err:#}");
    assert!(message.contains("exited"), "{message}");
    assert!(message.contains("nats-server.log"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5), "{message}");
}

#[test]
fn a_missing_binary_is_a_clear_error() {
    let err = NatsServer::builder().binary("/nonexistent/nats-server").start().expect_err("no such binary");
    assert!(format!("{err:#}").contains("/nonexistent/nats-server"), "{err:#}");
    let err = RedisServer::builder().binary("/nonexistent/redis-server").start().expect_err("no such binary");
    assert!(format!("{err:#}").contains("/nonexistent/redis-server"), "{err:#}");
}

/// Sends one inline command, returns the first reply line (and the bulk body, if any).
fn redis_command(stream: &mut TcpStream, command: &str) -> String {
    stream.write_all(format!("{command}\r\n").as_bytes()).expect("write to redis");
    let mut reader = BufReader::new(stream.try_clone().expect("clone socket"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("read from redis");
    let line = line.trim_end().to_owned();
    match line.strip_prefix('$').and_then(|len| len.parse::<usize>().ok()) {
        Some(len) => {
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body).expect("read bulk reply");
            body.truncate(len);
            String::from_utf8(body).expect("utf-8 reply")
        }
        None => line,
    }
}

#[test]
fn redis_starts_stops_restarts_on_the_same_port_and_dies_on_drop() {
    let mut redis = RedisServer::start().expect("start redis-server");
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    let first_pid = redis.pid().expect("running");

    let mut stream = connect(redis.addr()).expect("connect to redis");
    assert_eq!(redis_command(&mut stream, "PING"), "+PONG");
    assert_eq!(redis_command(&mut stream, "SET harness yes"), "+OK");
    assert_eq!(redis_command(&mut stream, "GET harness"), "yes");
    drop(stream);

    redis.stop().expect("stop");
    assert_eq!(redis.pid(), None);
    assert!(!process_exists(first_pid), "pid {first_pid} still exists");
    assert!(connect(redis.addr()).is_err(), "port {port} still open");

    redis.restart().expect("restart");
    assert_eq!(redis.port(), port);
    let second_pid = redis.pid().expect("running again");
    assert_ne!(first_pid, second_pid);
    let mut stream = connect(redis.addr()).expect("reconnect to redis");
    assert_eq!(redis_command(&mut stream, "PING"), "+PONG");
    // No persistence: the restarted server starts empty.
    assert_eq!(redis_command(&mut stream, "GET harness"), "$-1");
    drop(stream);

    redis.kill().expect("kill");
    assert!(!process_exists(second_pid));
    redis.restart().expect("restart after kill");
    let third_pid = redis.pid().expect("running again");

    let dir = redis.log_path().parent().expect("log dir").to_path_buf();
    drop(redis);
    assert!(!process_exists(third_pid), "pid {third_pid} survived drop");
    assert!(!dir.exists(), "tempdir {} survived drop", dir.display());
}

#[test]
fn redis_on_a_taken_port_fails_quickly_with_its_log() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let err = RedisServer::builder().port(port).start().expect_err("port is taken");
    let message = format!("{err:#}");
    assert!(message.contains("exited"), "{message}");
    assert!(message.contains("redis-server.log"), "{message}");
}

#[test]
fn many_servers_start_in_parallel_on_distinct_ports() {
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let nats = NatsServer::builder().jetstream(false).start().expect("start nats");
                let redis = RedisServer::start().expect("start redis");
                (nats, redis)
            })
        })
        .collect();
    let servers: Vec<_> = handles.into_iter().map(|handle| handle.join().expect("thread")).collect();
    let mut ports: Vec<u16> = servers.iter().flat_map(|(nats, redis)| [nats.port(), redis.port()]).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 8);
}
