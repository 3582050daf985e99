//! The kernel's share of the `idle` run's broadcast on this machine: one
//! small message written to each of many idle loopback TCP connections and
//! read back, with nothing else: no server, no WebSocket framing, no JSON,
//! nothing stored. Whatever a chat server adds comes on top of this figure.
//!
//! Two processes, as in a real run: this one stands for the server, with two
//! writer threads (its two workers) making one `write(2)` per connection and
//! message; a copy of it started as `read` stands for chat-bench, one thread
//! of tokio tasks reading every connection.
//!
//! ```text
//! cargo run --release -p chat-bench --example loopback_floor -- 10000
//! ```
//!
//! It sends one message to the N idle connections, three times, two seconds
//! apart, and prints how long each took to reach them all. Each message
//! carries its send time (the realtime clock, which both processes share).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, ExitCode, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

#[path = "../src/process.rs"]
mod process;
use process::{cpu_time, raise_open_files_limit};

/// Bytes per message: about what a chat event is in a WebSocket frame.
const MESSAGE: usize = 160;
const WRITERS: usize = 2;
const ROUNDS: usize = 3;
const SETTLE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let number = |text: &str| text.parse::<u64>().ok().filter(|&n| n > 0);
    let outcome = match words.as_slice() {
        [n] => number(n).map(|n| serve(n as usize)),
        ["read", port, n] => match (number(port), number(n)) {
            (Some(port), Some(n)) => Some(read(port as u16, n as usize)),
            _ => None,
        },
        _ => None,
    };
    match outcome {
        Some(Ok(())) => ExitCode::SUCCESS,
        Some(Err(e)) => {
            eprintln!("loopback_floor: {e}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!("usage: loopback_floor CONNECTIONS");
            ExitCode::from(2)
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Nanoseconds of the realtime clock: comparable between the two processes.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

/// The writing side: accepts the reader's connections, sends the rounds,
/// then prints the reader's figures after its own.
fn serve(connections: usize) -> Result<()> {
    raise_open_files_limit()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let reader = Command::new(std::env::current_exe()?)
        .args(["read", &port.to_string(), &connections.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (socket, _) = listener.accept()?;
        socket.set_nodelay(true)?;
        sockets.push(socket);
    }
    let per_writer = connections.div_ceil(WRITERS);
    let mut writers = Vec::new();
    let mut handles = Vec::new();
    while !sockets.is_empty() {
        let mine: Vec<TcpStream> = sockets.drain(..per_writer.min(sockets.len())).collect();
        let (to_writer, messages) = mpsc::channel::<[u8; MESSAGE]>();
        writers.push(to_writer);
        handles.push(thread::spawn(move || write_all(mine, messages)));
    }
    thread::sleep(SETTLE);
    let cpu = cpu_time();
    let send = |writers: &[mpsc::Sender<[u8; MESSAGE]>]| {
        let mut message = [b'x'; MESSAGE];
        message[..8].copy_from_slice(&now_ns().to_le_bytes());
        writers.iter().all(|writer| writer.send(message).is_ok())
    };
    for round in 0..ROUNDS {
        if round > 0 {
            thread::sleep(SETTLE);
        }
        send(&writers);
    }
    drop(writers);
    for handle in handles {
        handle.join().map_err(|_| "a writer panicked")??;
    }
    let output = reader.wait_with_output()?;
    println!("writers: CPU {:.3} s while sending", (cpu_time() - cpu).as_secs_f64());
    print!("{}", String::from_utf8_lossy(&output.stdout));
    Ok(())
}

/// One writer thread: every message to every one of its connections.
fn write_all(mut sockets: Vec<TcpStream>, messages: mpsc::Receiver<[u8; MESSAGE]>) -> std::io::Result<()> {
    for message in messages {
        for socket in &mut sockets {
            socket.write_all(&message)?;
        }
    }
    Ok(())
}

/// What the reader has seen.
#[derive(Default)]
struct Seen {
    latencies: Vec<u64>,
    /// Latest arrival of each message, by its send time.
    last_arrival: HashMap<u64, u64>,
}

/// The reading side: connects, reads until every message reached every
/// connection, prints what it saw.
fn read(port: u16, connections: usize) -> Result<()> {
    raise_open_files_limit()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let seen = Rc::new(RefCell::new(Seen::default()));
        let done = Rc::new(Notify::new());
        let expected = connections * ROUNDS;
        // Each task hands its socket back rather than closing it: closing
        // ten thousand connections while the last message is still being
        // read would be counted as that message's delivery time.
        let mut readers = Vec::with_capacity(connections);
        for _ in 0..connections {
            let socket = TcpStream::connect(("127.0.0.1", port))?;
            socket.set_nonblocking(true)?;
            let mut socket = tokio::net::TcpStream::from_std(socket)?;
            let (seen, done) = (seen.clone(), done.clone());
            readers.push(tokio::task::spawn_local(async move {
                let _ = receive(&mut socket, &seen, &done, expected).await;
                socket
            }));
        }
        let cpu = cpu_time();
        while seen.borrow().latencies.len() < expected {
            done.notified().await;
        }
        report(&seen.borrow(), cpu_time() - cpu);
        drop(readers);
        Ok(())
    })
}

async fn receive(
    socket: &mut tokio::net::TcpStream,
    seen: &RefCell<Seen>,
    done: &Notify,
    expected: usize,
) -> std::io::Result<()> {
    let mut buffer = Vec::with_capacity(2 * MESSAGE);
    let mut chunk = [0u8; 1024];
    for _ in 0..ROUNDS {
        while buffer.len() < MESSAGE {
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let arrived = now_ns();
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&buffer[..8]);
        buffer.drain(..MESSAGE);
        let sent = u64::from_le_bytes(stamp);
        let mut seen = seen.borrow_mut();
        seen.latencies.push(arrived.saturating_sub(sent));
        let last = seen.last_arrival.entry(sent).or_default();
        *last = (*last).max(arrived);
        if seen.latencies.len() == expected {
            done.notify_one();
        }
    }
    Ok(())
}

fn report(seen: &Seen, cpu: Duration) {
    let ms = |nanos: u64| nanos as f64 / 1e6;
    let mut sorted = seen.latencies.clone();
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    println!(
        "reader: {} deliveries, latency p50 {:.3} ms p90 {:.3} ms p99 {:.3} ms max {:.3} ms; CPU {:.3} s",
        sorted.len(),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0)),
        cpu.as_secs_f64()
    );
    let mut rounds: Vec<_> = seen.last_arrival.iter().collect();
    rounds.sort();
    for (sent, last) in rounds {
        println!("  one message reached all in {:.3} ms", ms(last - sent));
    }
}
