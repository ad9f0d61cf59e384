//! A fixed workload for counting the translation's user-space instructions
//! (scripts/translation-cost.sh runs it under callgrind):
//!
//! `translate_loop kq|epoll ROUNDS` makes 64 socket pairs, leaves one byte
//! unread in each (so all 64 stay readable, level-triggered), registers them,
//! then asks ROUNDS times for every ready event with a zero timeout. `kq` goes
//! through `kq::kevent()`, `epoll` calls `epoll_wait` directly: the
//! difference is what the translation adds. The script runs two ROUNDS values
//! and divides the difference in instructions by the difference in returned
//! events, which cancels start-up and set-up costs.

use std::process::ExitCode;

fn main() -> ExitCode {
    imp::main()
}

/// epoll exists only on Linux: elsewhere there is nothing to compare.
#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn main() -> std::process::ExitCode {
        eprintln!("translate_loop: Linux only (it compares kq::kevent() with epoll_wait)");
        std::process::ExitCode::FAILURE
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::process::ExitCode;
    use std::ptr;

    use kq::*;

    const PAIRS: usize = 64;

    pub fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().collect();
        let (Some(mode), Some(rounds)) = (
            args.get(1),
            args.get(2).and_then(|r| r.parse::<usize>().ok()),
        ) else {
            eprintln!("usage: translate_loop kq|epoll ROUNDS");
            return ExitCode::from(2);
        };
        let mut pairs = Vec::with_capacity(PAIRS);
        for _ in 0..PAIRS {
            let (mut a, b) = UnixStream::pair().expect("socketpair");
            a.write_all(b"x").expect("write");
            pairs.push((a, b));
        }
        let returned = match mode.as_str() {
            "kq" => run_kq(&pairs, rounds),
            "epoll" => run_epoll(&pairs, rounds),
            _ => {
                eprintln!("usage: translate_loop kq|epoll ROUNDS");
                return ExitCode::from(2);
            }
        };
        if returned != rounds * PAIRS {
            eprintln!(
                "expected {} events ({rounds} rounds x {PAIRS}), got {returned}",
                rounds * PAIRS
            );
            return ExitCode::FAILURE;
        }
        println!("{mode}: {returned} events");
        ExitCode::SUCCESS
    }

    fn run_kq(pairs: &[(UnixStream, UnixStream)], rounds: usize) -> usize {
        let q = Kqueue::new().expect("kqueue");
        let changes: Vec<kevent> = pairs
            .iter()
            .map(|(_, b)| {
                let mut ev = kevent_zeroed();
                ev_set(
                    &mut ev,
                    b.as_raw_fd() as usize,
                    EVFILT_READ,
                    EV_ADD,
                    0,
                    0,
                    ptr::null_mut(),
                );
                ev
            })
            .collect();
        q.kevent(&changes, &mut [], None).expect("register");
        let mut events = vec![kevent_zeroed(); PAIRS];
        let zero = Some(std::time::Duration::ZERO);
        let mut total = 0;
        for _ in 0..rounds {
            let n = q.kevent(&[], &mut events, zero).expect("kevent");
            // Touch what a server reads, so nothing is optimised away.
            total += events[..n].iter().filter(|e| { e.data } == 1).count();
        }
        total
    }

    fn run_epoll(pairs: &[(UnixStream, UnixStream)], rounds: usize) -> usize {
        // SAFETY: epoll_create1 has no memory preconditions.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0, "epoll_create1");
        for (_, b) in pairs {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: b.as_raw_fd() as u64,
            };
            // SAFETY: `ev` is a valid epoll_event for the duration of the call.
            let rc = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, b.as_raw_fd(), &mut ev) };
            assert_eq!(rc, 0, "epoll_ctl");
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; PAIRS];
        let mut total = 0;
        for _ in 0..rounds {
            // SAFETY: `events` has room for PAIRS entries.
            let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), PAIRS as i32, 0) };
            assert!(n >= 0, "epoll_wait");
            total += events[..n as usize]
                .iter()
                .filter(|e| e.events & libc::EPOLLIN as u32 != 0)
                .count();
        }
        // SAFETY: `ep` is our descriptor and is not used afterwards.
        unsafe { libc::close(ep) };
        total
    }
}
