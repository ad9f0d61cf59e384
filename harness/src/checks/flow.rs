//! Several users talking at once, each reading in its own thread: the
//! machinery of the never-block checks.
//!
//! A chat server relays bytes, not messages, so when two users talk at
//! once a third receives their bytes interleaved at whatever points the
//! server's reads and writes fell. To check every byte anyway, each
//! speaker talks in its own *voice*, a set of bytes no other speaker uses:
//! a listener sorts what arrives by voice and compares each voice with
//! what its speaker sent, in order.
//!
//! Speakers send through a *window*: at most that many of a speaker's
//! bytes are on their way (sent, but not yet heard by every listener). The
//! bytes a server holds for a listener are then bounded by the windows, so
//! a server with a small `--max-queue` never has reason to drop a listener
//! who reads, however slowly the harness's threads are scheduled.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::text::{escape, explain_difference, preview};
use crate::{Client, Closed, Failure, Result, Target};

/// How long a speaker's write may take before the server counts as not
/// reading that speaker.
pub(crate) const SEND_DEADLINE: Duration = Duration::from_secs(2);

/// How long listeners may hear nothing new of a speaker's bytes.
pub(crate) const STALL: Duration = Duration::from_secs(5);

/// A slow ear's reads: this many bytes, then a pause (at most some
/// 16 MB/s, a third of what the harness reads otherwise).
const SLOW_READ: usize = 16 * 1024;
const SLOW_PAUSE: Duration = Duration::from_millis(1);

/// A set of bytes only one speaker uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Voice {
    /// `a`-`z` and newline.
    Low,
    /// `A`-`Z`, `0`-`9`, space, `[` and `]`.
    High,
}

impl Voice {
    fn of(b: u8) -> Option<Voice> {
        match b {
            b'a'..=b'z' | b'\n' => Some(Voice::Low),
            b'A'..=b'Z' | b'0'..=b'9' | b' ' | b'[' | b']' => Some(Voice::High),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            Voice::Low => 0,
            Voice::High => 1,
        }
    }
}

/// What a speaker sends, byte `i` known without storing the whole stream.
#[derive(Clone)]
pub(crate) enum Script {
    /// Pseudo-random bytes in one voice (Low has a newline every 64 bytes,
    /// so the stream reads as lines).
    Flood(Voice),
    /// Fixed text, e.g. "[PING 1][PING 2]...".
    Text(Arc<Vec<u8>>),
}

impl Script {
    pub(crate) fn voice(&self) -> Voice {
        match self {
            Script::Flood(v) => *v,
            Script::Text(t) => t.first().and_then(|&b| Voice::of(b)).unwrap_or(Voice::High),
        }
    }

    pub(crate) fn byte(&self, i: usize) -> u8 {
        match self {
            Script::Flood(Voice::Low) => {
                if i % 64 == 63 {
                    b'\n'
                } else {
                    b'a' + (mix(i as u64) % 26) as u8
                }
            }
            Script::Flood(Voice::High) => {
                const HIGH: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 []";
                HIGH[(mix(i as u64 ^ 0x5555) % HIGH.len() as u64) as usize]
            }
            Script::Text(t) => t[i],
        }
    }

    /// Bytes `from..to`, clipped to the script's end.
    pub(crate) fn bytes(&self, from: usize, to: usize) -> Vec<u8> {
        let to = match self {
            Script::Text(t) => to.min(t.len()),
            Script::Flood(_) => to,
        };
        (from.min(to)..to).map(|i| self.byte(i)).collect()
    }
}

/// A cheap, fixed pseudo-random function of a position.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 27)
}

/// One user's reading side: what it must hear in each voice, and how much
/// of it has arrived.
pub(crate) struct Ear {
    pub(crate) name: String,
    /// Per voice: who speaks it and what they send (None: that voice is
    /// only counted, e.g. two speakers share it).
    from: [Option<(String, Script)>; 2],
    heard: [AtomicUsize; 2],
    /// Reads a little at a time, with a pause after each read.
    slow: bool,
    /// With [`Ear::then_a_parting_line`]: what arrived from the first
    /// byte that is not the script's on, and the failure that byte would
    /// have been.
    parting: Option<Mutex<(Vec<u8>, Option<Failure>)>>,
}

/// The most bytes a parting line may have.
const PARTING_MOST: usize = 512;

impl Ear {
    pub(crate) fn new(name: impl Into<String>) -> Ear {
        Ear {
            name: name.into(),
            from: [None, None],
            heard: Default::default(),
            slow: false,
            parting: None,
        }
    }

    /// After a correct beginning of the script, this ear accepts one line
    /// from the server instead of the rest (a user being disconnected is
    /// told why): see [`Ear::parting_line`].
    pub(crate) fn then_a_parting_line(mut self) -> Ear {
        self.parting = Some(Mutex::new((Vec::new(), None)));
        self
    }

    /// With [`Ear::then_a_parting_line`], once the connection has ended:
    /// the parting line, if one came (a newline first is allowed, for a
    /// beginning cut mid-line), or the failure of what came instead.
    pub(crate) fn parting_line(&self) -> Result<Option<String>> {
        let Some(parting) = &self.parting else {
            return Ok(None);
        };
        let mut p = parting.lock().unwrap_or_else(|p| p.into_inner());
        let (bytes, failure) = &mut *p;
        let Some(failure) = failure.take() else {
            return Ok(None);
        };
        let line = bytes.strip_prefix(b"\n").unwrap_or(bytes);
        match line.strip_suffix(b"\n") {
            Some(text) if !text.is_empty() && !text.contains(&b'\n') => {
                Ok(Some(String::from_utf8_lossy(text).into_owned()))
            }
            _ => Err(failure),
        }
    }

    /// Keeps `bytes` as the parting line, or fails with what the first of
    /// them would have failed with, when they cannot be one line.
    fn part(&self, bytes: &[u8], failure: impl FnOnce() -> Failure) -> Result<bool> {
        let Some(parting) = &self.parting else {
            return Ok(false);
        };
        let mut p = parting.lock().unwrap_or_else(|p| p.into_inner());
        if p.1.is_none() {
            p.1 = Some(failure());
        }
        p.0.extend_from_slice(bytes);
        if p.0.len() > PARTING_MOST {
            return Err(p.1.take().expect("set above"));
        }
        Ok(true)
    }

    /// This ear reads at most [`SLOW_READ`] bytes at a time and pauses
    /// after each read, so what is sent to it piles up in its socket.
    pub(crate) fn slowly(mut self) -> Ear {
        self.slow = true;
        self
    }

    /// This ear must hear `script`, spoken by `speaker`, byte for byte.
    pub(crate) fn hears(mut self, speaker: &str, script: &Script) -> Ear {
        self.from[script.voice().index()] = Some((speaker.to_string(), script.clone()));
        self
    }

    /// How many bytes of `voice` have arrived.
    pub(crate) fn heard(&self, voice: Voice) -> usize {
        self.heard[voice.index()].load(Ordering::Acquire)
    }

    /// Sorts `bytes` by voice and checks each against its script.
    fn take(&self, bytes: &[u8], client: &Client) -> Result<()> {
        let parted = self.parting.as_ref().is_some_and(|p| {
            let p = p.lock().unwrap_or_else(|p| p.into_inner());
            p.1.is_some()
        });
        if parted {
            return self
                .part(bytes, || unreachable!("a failure is kept"))
                .map(drop);
        }
        let mut count = [self.heard(Voice::Low), self.heard(Voice::High)];
        for (at, &b) in bytes.iter().enumerate() {
            let Some(voice) = Voice::of(b) else {
                let from = at.saturating_sub(16);
                let why = || {
                    client.target().fail(format!(
                    "{} received byte {} in {}, which no user sent (every sender here uses only letters, digits, spaces, brackets and newlines)",
                    self.name,
                    escape(&[b]),
                    preview(&bytes[from..(at + 16).min(bytes.len())])
                ))
                };
                if self.part(&bytes[at..], why)? {
                    break;
                }
                return Err(client.target().fail(format!(
                    "{} received byte {} in {}, which no user sent (every sender here uses only letters, digits, spaces, brackets and newlines)",
                    self.name,
                    escape(&[b]),
                    preview(&bytes[from..(at + 16).min(bytes.len())])
                )));
            };
            let v = voice.index();
            if let Some((speaker, script)) = &self.from[v] {
                if script.byte(count[v]) != b {
                    let why =
                        || self.mismatch(client, speaker, script, count[v], voice, &bytes[at..]);
                    if self.part(&bytes[at..], why)? {
                        break;
                    }
                    return Err(self.mismatch(
                        client,
                        speaker,
                        script,
                        count[v],
                        voice,
                        &bytes[at..],
                    ));
                }
            }
            count[v] += 1;
        }
        for v in [Voice::Low, Voice::High] {
            self.heard[v.index()].store(count[v.index()], Ordering::Release);
        }
        Ok(())
    }

    /// The failure for a byte of `voice` that differs from the script at
    /// position `at`: a window of what was expected and what arrived.
    fn mismatch(
        &self,
        client: &Client,
        speaker: &str,
        script: &Script,
        at: usize,
        voice: Voice,
        rest: &[u8],
    ) -> Failure {
        let from = at.saturating_sub(32);
        // What arrived of this voice: the matching bytes before (equal to
        // the script), then what came instead.
        let mut arrived = script.bytes(from, at);
        arrived.extend(
            rest.iter()
                .copied()
                .filter(|&b| Voice::of(b) == Some(voice))
                .take(32),
        );
        let expected = script.bytes(from, at + 32);
        let mut lines = vec![format!(
            "{} expected {speaker}'s bytes, in order; they differ from byte {at} of what {speaker} sent (shown from byte {from}):",
            self.name
        )];
        lines.extend(explain_difference(&expected, &arrived));
        lines.push(
            "bytes were lost, repeated or reordered: when a write takes only part of the bytes, the rest must be written later, before anything newer"
                .to_string(),
        );
        client.target().fail(lines.join("\n"))
    }
}

/// What the threads of one scene share: a pulse that wakes waiters when a
/// listener hears something, and the first failure (which stops the scene).
#[derive(Default)]
pub(crate) struct Flow {
    pulse: Mutex<u64>,
    woken: Condvar,
    stop: AtomicBool,
    failure: Mutex<Option<Failure>>,
}

impl Flow {
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Stops every thread of the scene.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.bump();
    }

    /// Records a failure (the first one wins) and stops the scene.
    pub(crate) fn fail(&self, f: Failure) {
        let mut first = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() && !self.stopped() {
            *first = Some(f);
        }
        drop(first);
        self.stop();
    }

    /// Runs a thread's body, recording its failure.
    pub(crate) fn run(&self, body: impl FnOnce() -> Result<()>) {
        if let Err(f) = body() {
            self.fail(f);
        }
    }

    /// The first failure, if any.
    pub(crate) fn failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn bump(&self) {
        *self.pulse.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.woken.notify_all();
    }

    /// Waits until `done()` holds, the scene stops, or `timeout` passes;
    /// true if `done()` held.
    pub(crate) fn wait_until(&self, timeout: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pulse = self.pulse.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if done() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stopped() {
                return false;
            }
            pulse = self
                .woken
                .wait_timeout(pulse, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// How a listener's reading ended.
pub(crate) enum Ending {
    /// The scene stopped it.
    Stopped,
    /// The server ended the connection.
    Closed(Closed),
}

/// Reads everything that arrives for `client` until the scene stops or the
/// server ends the connection, checking it with `ear`; `after` runs after
/// each read (e.g. to answer a ping).
pub(crate) fn listen(
    flow: &Flow,
    client: &Client,
    ear: &Ear,
    mut after: impl FnMut() -> Result<()>,
) -> Result<Ending> {
    let mut stream = client
        .stream()
        .try_clone()
        .map_err(|e| client.fail(format!("cannot clone {}'s socket: {e}", ear.name)))?;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; if ear.slow { SLOW_READ } else { 64 * 1024 }];
    loop {
        if flow.stopped() {
            return Ok(Ending::Stopped);
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(Ending::Closed(Closed::Eof)),
            Ok(n) => {
                ear.take(&buf[..n], client)?;
                flow.bump();
                after()?;
                if ear.slow {
                    std::thread::sleep(SLOW_PAUSE);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(Ending::Closed(Closed::Reset))
            }
            Err(e) => {
                return Err(client
                    .target()
                    .fail(format!("{}: the connection failed: {e}", ear.name)))
            }
        }
    }
}

/// [`listen`] for a user who must keep the connection: the server ending
/// it is a failure.
pub(crate) fn keep_listening(
    flow: &Flow,
    client: &Client,
    ear: &Ear,
    after: impl FnMut() -> Result<()>,
) -> Result<()> {
    match listen(flow, client, ear, after)? {
        Ending::Stopped => Ok(()),
        Ending::Closed(how) => Err(client.target().fail(format!(
            "the server {} {}'s connection, although {} reads everything (it had received {} + {} bytes)",
            match how {
                Closed::Eof => "closed",
                Closed::Reset => "reset",
            },
            ear.name,
            ear.name,
            ear.heard(Voice::Low),
            ear.heard(Voice::High)
        ))),
    }
}

/// One user's writing side.
pub(crate) struct Mouth {
    pub(crate) name: String,
    target: Target,
    out: TcpStream,
    /// Bytes sent so far.
    pub(crate) sent: Arc<AtomicUsize>,
}

impl Mouth {
    pub(crate) fn new(client: &Client) -> Result<Mouth> {
        let out = client
            .stream()
            .try_clone()
            .map_err(|e| client.fail(format!("cannot clone {}'s socket: {e}", client.name())))?;
        let _ = out.set_write_timeout(Some(SEND_DEADLINE));
        Ok(Mouth {
            name: client.name().to_string(),
            target: client.target().clone(),
            out,
            sent: Arc::default(),
        })
    }

    /// Writes `bytes` at once (a ping, a pong); the server must take them
    /// within [`SEND_DEADLINE`].
    pub(crate) fn say(&mut self, bytes: &[u8]) -> Result<()> {
        if let Err(e) = self.out.write_all(bytes) {
            return Err(self.target.fail(format!(
                "{} could not send {} within {} s ({e}): the server stopped reading {}",
                self.name,
                preview(bytes),
                SEND_DEADLINE.as_secs(),
                self.name
            )));
        }
        self.sent.fetch_add(bytes.len(), Ordering::AcqRel);
        Ok(())
    }

    /// Sends `script` in writes of the sizes `pieces` gives (a piece larger
    /// than `window` in several), never more than `window` bytes ahead of
    /// the slowest of `ears`, while `more(sent)` holds. Returns how much it
    /// sent.
    pub(crate) fn speak(
        &mut self,
        flow: &Flow,
        script: &Script,
        pieces: impl IntoIterator<Item = usize>,
        ears: &[&Ear],
        window: usize,
        more: impl Fn(usize) -> bool,
    ) -> Result<usize> {
        let voice = script.voice();
        let slowest = || {
            ears.iter()
                .map(|e| e.heard(voice))
                .min()
                .unwrap_or(usize::MAX)
        };
        let mut sent = 0;
        let mut progress = (slowest(), Instant::now());
        // A piece larger than the window goes out in several writes.
        let writes = pieces.into_iter().flat_map(|piece| {
            let w = window.max(1);
            std::iter::repeat_n(w, piece / w).chain((piece % w > 0).then_some(piece % w))
        });
        for n in writes {
            if !more(sent) || flow.stopped() {
                break;
            }
            while !flow.wait_until(Duration::from_millis(100), || {
                slowest().saturating_add(window) >= sent + n
            }) {
                if flow.stopped() {
                    return Ok(sent);
                }
                let heard = slowest();
                if heard > progress.0 {
                    progress = (heard, Instant::now());
                } else if progress.1.elapsed() >= STALL {
                    let ear = ears.iter().min_by_key(|e| e.heard(voice)).expect("an ear");
                    return Err(self.target.fail(format!(
                        "{} has received {heard} of the {sent} bytes {} sent, and nothing more for {} s\n\
                         a server that waits for one user (a write that blocks on a full socket) stops serving everyone",
                        ear.name,
                        self.name,
                        STALL.as_secs()
                    )));
                }
            }
            let chunk = script.bytes(sent, sent + n);
            self.say(&chunk)?;
            sent += n;
        }
        Ok(sent)
    }
}
