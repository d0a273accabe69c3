//! A file server on 127.0.0.1 for the download tests, able to misbehave on demand: answer an
//! error status, cut a transfer short, or ignore `Range`. One request per connection.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// How the server answers the next requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Behaviour {
    /// 200 with the file, or 206 with its rest for `Range: bytes=N-`.
    Serve,
    /// This status and no body, for every path.
    Status(u16),
    /// Announce the whole length, send this many bytes of the body, close.
    CutAfter(usize),
    /// 200 with the whole file, whatever `Range` asks.
    IgnoreRange,
}

/// One request the server saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The path asked for, `/name`.
    pub path: String,
    /// The start of `Range: bytes=N-`, when sent.
    pub range_from: Option<usize>,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    behaviour: Option<Behaviour>,
    seen: Vec<Seen>,
}

/// The server; it runs until the test process ends.
pub struct Server {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl Server {
    /// Listens on a free port of 127.0.0.1.
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || answer(stream, &state));
            }
        });
        Server { port, state }
    }

    /// The URL of `/name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// Serves `bytes` at `/name`.
    pub fn put(&self, name: &str, bytes: Vec<u8>) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(format!("/{name}"), bytes);
    }

    /// Answers the next requests so.
    pub fn behave(&self, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviour = Some(behaviour);
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

fn answer(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut range_from = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("range:") {
            range_from = value
                .trim()
                .strip_prefix("bytes=")
                .and_then(|r| r.trim_end_matches('-').parse().ok());
        }
    }
    let (file, behaviour) = {
        let mut state = state.lock().unwrap();
        state.seen.push(Seen {
            path: path.clone(),
            range_from,
        });
        (
            state.files.get(&path).cloned(),
            state.behaviour.unwrap_or(Behaviour::Serve),
        )
    };
    let mut stream = reader.into_inner();
    let head = |status: &str, length: usize, extra: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\n{extra}Connection: close\r\n\r\n")
    };
    let (head, body): (String, &[u8]) = match (behaviour, &file) {
        (Behaviour::Status(code), _) => (head(&format!("{code} Nope"), 0, ""), &[]),
        (_, None) => (head("404 Not Found", 0, ""), &[]),
        (Behaviour::CutAfter(sent), Some(file)) => (
            head("200 OK", file.len(), ""),
            &file[..sent.min(file.len())],
        ),
        (Behaviour::Serve, Some(file)) if range_from.is_some() => {
            let from = range_from.unwrap();
            if from >= file.len() {
                (head("416 Range Not Satisfiable", 0, ""), &[])
            } else {
                let range = format!(
                    "Content-Range: bytes {from}-{}/{}\r\n",
                    file.len() - 1,
                    file.len()
                );
                (
                    head("206 Partial Content", file.len() - from, &range),
                    &file[from..],
                )
            }
        }
        (_, Some(file)) => (head("200 OK", file.len(), ""), &file[..]),
    };
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
