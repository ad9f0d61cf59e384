//! The figures that draw what a real run does agree with the run: step 4's
//! stale-event figure shows the batch of the trace printed beside it
//! (`book/generated/transcripts/step4-trace.txt`, played from
//! `steps/step4/transcripts.txt`), so a change to the step or to `kq`
//! that changes the batch makes this test name what to redraw.

mod common;

use std::fs;

/// One event of a `KQ_TRACE` block: `  event  EV_SET(6, EVFILT_READ, 0, 0, 9, NULL)`.
#[derive(Debug, PartialEq)]
struct Event {
    ident: u64,
    filter: String,
    flags: String,
    data: i64,
}

fn parse_event(line: &str) -> Option<Event> {
    let inner = line
        .trim_start()
        .strip_prefix("event  EV_SET(")?
        .strip_suffix(')')?;
    let f: Vec<&str> = inner.split(", ").collect();
    if f.len() != 6 {
        return None;
    }
    Some(Event {
        ident: f[0].parse().ok()?,
        filter: f[1].to_string(),
        flags: f[2].to_string(),
        data: f[4].parse().ok()?,
    })
}

/// The events of the last `kevent()` call before the line containing
/// `marker` that returned more than one: the batch the marker's line is
/// about.
fn batch_before(trace: &str, marker: &str) -> Vec<Event> {
    let mut batch = Vec::new();
    let mut current = Vec::new();
    for line in trace.lines() {
        if line.contains(marker) {
            return batch;
        }
        if line.starts_with("kevent(") {
            if current.len() > 1 {
                batch = std::mem::take(&mut current);
            }
            current.clear();
        } else if let Some(ev) = parse_event(line) {
            current.push(ev);
        }
    }
    panic!("the trace has no line containing {marker:?}:\n{trace}");
}

/// The figure's eventlist: `events[0]  fd 3, the listener: data=1`, as
/// (index, fd, data) in the order drawn.
fn figure_events(svg: &str) -> Vec<(usize, u64, i64)> {
    svg.lines()
        .filter_map(|line| {
            let text = line.split('>').nth(1)?.split('<').next()?;
            let rest = text.strip_prefix("events[")?;
            let (i, rest) = rest.split_once("]  fd ")?;
            let fd: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let data = rest.rsplit_once("data=")?.1;
            Some((i.parse().ok()?, fd.parse().ok()?, data.parse().ok()?))
        })
        .collect()
}

/// Step 4's stale-event figure draws the batch of the real trace beside
/// it: the same events in the same order (descriptor and data), both
/// readable, and the descriptor the log then skips as stale is the one
/// the figure says the newcomer was given.
#[test]
fn the_stale_event_figure_shows_the_batch_of_step_4s_trace() {
    let trace_path = common::root().join("book/generated/transcripts/step4-trace.txt");
    let svg_path = common::src().join("img/stale-event-batch.svg");
    let trace =
        fs::read_to_string(&trace_path).unwrap_or_else(|e| panic!("{}: {e}", trace_path.display()));
    let svg =
        fs::read_to_string(&svg_path).unwrap_or_else(|e| panic!("{}: {e}", svg_path.display()));

    let stale_marker = "stale event (closed earlier in this batch), skipped";
    let batch = batch_before(&trace, stale_marker);
    let drawn = figure_events(&svg);
    let traced: Vec<(usize, u64, i64)> = batch
        .iter()
        .enumerate()
        .map(|(i, e)| (i, e.ident, e.data))
        .collect();
    assert_eq!(
        drawn,
        traced,
        "{} draws the eventlist (index, fd, data) on the left; the batch of {} before its stale event is on the right: redraw the figure",
        svg_path.display(),
        trace_path.display()
    );
    for e in &batch {
        assert!(
            e.filter == "EVFILT_READ" && !e.flags.contains("EV_EOF"),
            "the figure draws readable events without EOF; the trace has {e:?}"
        );
    }

    let stale_line = trace
        .lines()
        .find(|l| l.contains(stale_marker))
        .expect("found above");
    let stale_fd = batch.last().expect("a batch of two or more").ident;
    assert!(
        stale_line.contains(&format!("fd {stale_fd}: ")),
        "the trace's last event of the batch is for fd {stale_fd}; its stale line is {stale_line:?}"
    );
    let reused = format!("accepted fd {stale_fd} (a reused number)");
    assert!(
        trace.contains(&reused),
        "the trace should show the newcomer getting fd {stale_fd} ({reused:?}):\n{trace}"
    );
    for drawn_text in [
        format!("close({stale_fd})"),
        format!("the newcomer gets fd {stale_fd}"),
    ] {
        assert!(
            svg.contains(&drawn_text),
            "{} should say {drawn_text:?}, as the trace does",
            svg_path.display()
        );
    }
}
