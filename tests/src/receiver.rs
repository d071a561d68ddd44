//! Servers a test runs itself: an HTTP receiver that records every request (the other end
//! of paver's notifications), and a TCP proxy that a test closes and opens again (a
//! ClickHouse that becomes unreachable, without stopping the shared server).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// An HTTP/1.1 server on loopback recording every request, answering with a status the
/// test sets (200 by default); while held, it answers nothing until released.
#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    status: Arc<AtomicU16>,
    held: Arc<(Mutex<bool>, Condvar)>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Receiver::on(crate::free_port())
    }

    /// On a given port (one a test reserved while the receiver was "down").
    pub fn on(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let receiver = Receiver {
            port,
            requests: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            held: Arc::new((Mutex::new(false), Condvar::new())),
        };
        let serving = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let serving = serving.clone();
                std::thread::spawn(move || serving.serve(stream));
            }
        });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Hold every answer until [`Receiver::release`].
    pub fn hold(&self) {
        *self.held.0.lock().unwrap() = true;
    }

    pub fn release(&self) {
        *self.held.0.lock().unwrap() = false;
        self.held.1.notify_all();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Wait until `want` holds of the requests (at most `timeout`); the requests then.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let started = Instant::now();
        loop {
            let seen = self.requests();
            if want(&seen) {
                return seen;
            }
            assert!(
                started.elapsed() < timeout,
                "no {what} within {timeout:?}; received: {seen:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn serve(&self, mut stream: TcpStream) {
        let mut data = Vec::new();
        let mut buf = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let (method, path) = (
            first.next().unwrap_or_default().to_string(),
            first.next().unwrap_or_default().to_string(),
        );
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while data.len() < head_end + length {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        let body = String::from_utf8_lossy(&data[head_end..head_end + length]).to_string();
        self.requests.lock().unwrap().push(Recorded {
            method,
            path,
            headers,
            body,
        });
        {
            let (lock, wake) = &*self.held;
            let mut held = lock.lock().unwrap();
            while *held {
                held = wake.wait(held).unwrap();
            }
        }
        let status = self.status.load(Ordering::SeqCst);
        let _ = stream.write_all(
            format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .as_bytes(),
        );
    }
}

/// A TCP proxy to `upstream` that a test can close (every connection, open or new, is cut)
/// and open again, on the same port; or that loses the answer to the first INSERT it
/// carries (the server ran it, the client never hears so).
#[derive(Clone)]
pub struct Proxy {
    pub port: u16,
    open: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
    /// Whether the answer to the first INSERT is to be lost.
    lose_insert_answer: Arc<AtomicBool>,
    /// Answers lost so far (0 or 1).
    lost: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            open: Arc::new(AtomicBool::new(true)),
            live: Arc::default(),
            lose_insert_answer: Arc::default(),
            lost: Arc::default(),
        };
        let serving = proxy.clone();
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !serving.open.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut live = serving.live.lock().unwrap();
                    live.push(client.try_clone().unwrap());
                    live.push(server.try_clone().unwrap());
                }
                serving.carry(client, server);
            }
        });
        proxy
    }

    /// The same proxy, losing the server's answer to the first INSERT it carries.
    pub fn losing_the_first_insert_answer(self) -> Proxy {
        self.lose_insert_answer.store(true, Ordering::SeqCst);
        self
    }

    /// How many answers were lost (0 or 1).
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cut every connection and refuse new ones (accepted, then closed at once).
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        for stream in self.live.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn reopen(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Copy both ways between a client and the server, each way on a thread of its own.
    /// A connection that carried an INSERT is armed, when answers are to be lost and none
    /// was yet: the server's first bytes back on it cut the connection instead.
    fn carry(&self, client: TcpStream, server: TcpStream) {
        let armed = Arc::new(AtomicBool::new(false));
        let (mut from_client, mut to_server) =
            (client.try_clone().unwrap(), server.try_clone().unwrap());
        let (lose, lost, armed_by_request) = (
            self.lose_insert_answer.clone(),
            self.lost.clone(),
            armed.clone(),
        );
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = from_client.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if lose.load(Ordering::SeqCst)
                    && lost.load(Ordering::SeqCst) == 0
                    && buf[..n].windows(12).any(|w| w == b"query=INSERT")
                {
                    armed_by_request.store(true, Ordering::SeqCst);
                }
                if to_server.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to_server.shutdown(Shutdown::Write);
        });
        let (mut from_server, mut to_client) = (server, client);
        let lost = self.lost.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = from_server.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if armed.load(Ordering::SeqCst)
                    && lost
                        .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                {
                    // The server answered the INSERT: the answer never arrives.
                    let _ = to_client.shutdown(Shutdown::Both);
                    let _ = from_server.shutdown(Shutdown::Both);
                    return;
                }
                if to_client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to_client.shutdown(Shutdown::Write);
        });
    }
}

/// A plain GET (for /metrics): the body.
pub fn get(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out)
}
