//! `fake-server --mode MODE [--port P]`: small servers, correct and
//! deliberately broken, that the harness's own tests check the harness
//! against. A harness that passes a broken server would make every green
//! step test meaningless.
//!
//! Correct: `echo`, `split-echo` (one byte per write), `delayed-echo`
//! (300 ms late), `greet`, `chat`. Broken: `never-replies`, `wrong-reply`
//! (upper-cases), `closes-early`, `exits-at-once`,
//! `crashes-on-data`, `no-announce`, `leaky-echo` (never closes a client), `greet-twice`,
//! `chat-echoes-sender`, `chat-never-full`.
//!
//! Threads and blocking std sockets keep it obviously correct; it is a test
//! fixture, not a lesson.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::exit;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn main() {
    let mut mode = String::from("echo");
    let mut port = 8080u16;
    let mut max_users = 10usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--mode" => mode = v,
            "--port" => port = v.parse().unwrap_or(0),
            "--max-users" => max_users = v.parse().unwrap_or(10),
            _ => {
                eprintln!("fake-server: unknown argument {a}");
                exit(2);
            }
        }
    }
    if mode == "exits-at-once" {
        eprintln!("fake-server: giving up before listening");
        exit(3);
    }
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    if mode == "no-announce" {
        eprintln!("fake-server: listening, but not saying so");
    } else {
        println!("listening on {}", listener.local_addr().expect("addr"));
        std::io::stdout().flush().expect("flush");
    }
    let room: Arc<Mutex<Vec<(usize, TcpStream)>>> = Arc::default();
    let kept: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    for (id, conn) in listener.incoming().enumerate() {
        let Ok(conn) = conn else { continue };
        eprintln!("fake-server: accepted connection {id}");
        if mode == "crashes-on-data" {
            // Read first, so the crash closes the connection the same way
            // (a FIN, not a reset of unread data) on every run.
            let mut conn = conn;
            let mut buf = [0u8; 64];
            let _ = conn.read(&mut buf);
            eprintln!("fake-server: thread 'main' panicked: oops");
            exit(101);
        }
        let (mode, room, kept) = (mode.clone(), room.clone(), kept.clone());
        std::thread::spawn(move || serve(&mode, id, conn, &room, &kept, max_users));
    }
}

fn serve(
    mode: &str,
    id: usize,
    mut conn: TcpStream,
    room: &Mutex<Vec<(usize, TcpStream)>>,
    kept: &Mutex<Vec<TcpStream>>,
    max_users: usize,
) {
    let mut buf = [0u8; 65536];
    match mode {
        "greet" | "greet-twice" => {
            let _ = conn.write_all(b"hello, you are connection\n");
            if mode == "greet-twice" {
                let _ = conn.write_all(b"hello again\n");
            }
            return;
        }
        "chat" | "chat-echoes-sender" | "chat-never-full" => {
            {
                let mut users = room.lock().unwrap();
                if users.len() >= max_users && mode != "chat-never-full" {
                    let _ = conn.write_all(b"server is full\n");
                    return;
                }
                users.push((id, conn.try_clone().expect("clone")));
            }
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for (uid, u) in room.lock().unwrap().iter_mut() {
                    if *uid != id || mode == "chat-echoes-sender" {
                        let _ = u.write_all(&buf[..n]);
                    }
                }
            }
            room.lock().unwrap().retain(|(uid, _)| *uid != id);
            return;
        }
        _ => {}
    }
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = &buf[..n];
        let sent = match mode {
            "never-replies" => Ok(()),
            "wrong-reply" => conn.write_all(&data.to_ascii_uppercase()),
            "closes-early" => return,
            "split-echo" => data.iter().try_for_each(|b| conn.write_all(&[*b])),
            "delayed-echo" => {
                std::thread::sleep(Duration::from_millis(300));
                conn.write_all(data)
            }
            _ => conn.write_all(data),
        };
        if sent.is_err() {
            break;
        }
    }
    if mode == "leaky-echo" {
        kept.lock().unwrap().push(conn);
    }
}
