//! The book's measured plots, drawn from data files the bench writes: plain
//! SVG of our own (no dependency), log-log axes, legible on a phone.
//!
//! The data cannot be measured again in CI, but the drawing is a pure
//! function of the committed data file, so the freshness check redraws the
//! SVG from it and compares: the plot can never disagree with its data.
//!
//! Data file format (`book/generated/bench/idle-fds.csv`, written by the
//! bench's phase G): lines starting with `#` say what was measured, how
//! and where; then the header `n,mechanism,median_ns,q25_ns,q75_ns`; then
//! one row per N and mechanism. A mechanism missing at some N (select above
//! FD_SETSIZE) simply has no row there.

use std::fmt::Write as _;

/// The data file of the idle-descriptor plot and the plot drawn from it,
/// relative to the repository root.
pub const IDLE_FDS_DATA: &str = "book/generated/bench/idle-fds.csv";
pub const IDLE_FDS_SVG: &str = "book/generated/bench/idle-fds.svg";

const HEADER: &str = "n,mechanism,median_ns,q25_ns,q75_ns";

/// One measured point: x, and y with its spread (low, high).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    x: f64,
    y: f64,
    lo: f64,
    hi: f64,
}

/// One line of the plot.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: String,
    points: Vec<Point>,
}

/// Reads the data file: the series in order of first appearance, and the
/// `# machine:` line if there is one.
fn parse(csv: &str) -> Result<(Vec<Series>, Option<String>), String> {
    let mut machine = None;
    let mut header_seen = false;
    let mut series: Vec<Series> = Vec::new();
    for (i, line) in csv.lines().enumerate() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(m) = comment.trim().strip_prefix("machine:") {
                machine = Some(m.trim().to_string());
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if !header_seen {
            if line != HEADER {
                return Err(format!(
                    "line {}: expected the header `{HEADER}`, found `{line}`",
                    i + 1
                ));
            }
            header_seen = true;
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let num = |k: usize| -> Result<f64, String> {
            f.get(k)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    format!(
                        "line {}: field {} of `{line}` is not a positive number",
                        i + 1,
                        k + 1
                    )
                })
        };
        if f.len() != 5 {
            return Err(format!("line {}: expected 5 fields, found `{line}`", i + 1));
        }
        let point = Point {
            x: num(0)?,
            y: num(2)?,
            lo: num(3)?,
            hi: num(4)?,
        };
        let name = f[1].trim();
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(point),
            None => series.push(Series {
                name: name.to_string(),
                points: vec![point],
            }),
        }
    }
    if series.is_empty() {
        return Err("no data rows".into());
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    Ok((series, machine))
}

/// Colour, dash pattern and marker of the n-th series: told apart without
/// colour too (dashes and marker shapes), for print and colour blindness.
const STYLES: [(&str, &str, Marker); 4] = [
    ("#d95f02", "6 4", Marker::Square),
    ("#7570b3", "2 3", Marker::Triangle),
    ("#1b9e77", "", Marker::Diamond),
    ("#1f5fa8", "", Marker::Circle),
];

#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
}

// The canvas, in SVG user units. Small on purpose: the SVG is scaled to the
// column, and on a phone (about 360 px wide) text of 15 units stays about
// 11 px tall.
const W: f64 = 480.0;
const H: f64 = 380.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 80.0;
const BOTTOM: f64 = 62.0;

/// The idle-descriptor plot: ns per wait call against idle descriptors,
/// both axes logarithmic.
pub fn idle_fds_svg(csv: &str) -> Result<String, String> {
    let (series, machine) = parse(csv)?;
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in all {
        x0 = x0.min(p.x);
        x1 = x1.max(p.x);
        y0 = y0.min(p.lo.min(p.y));
        y1 = y1.max(p.hi.max(p.y));
    }
    // Whole decades on both axes.
    let (x0, x1) = (
        x0.log10().floor(),
        x1.log10().ceil().max(x0.log10().floor() + 1.0),
    );
    let (y0, y1) = (
        y0.log10().floor(),
        y1.log10().ceil().max(y0.log10().floor() + 1.0),
    );
    let px = |x: f64| LEFT + (x.log10() - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - (y.log10() - y0) / (y1 - y0) * (H - TOP - BOTTOM);

    let mut s = String::new();
    let title = "One active descriptor among N idle ones";
    // The first line is one complete tag: Markdown then passes the whole
    // block (no blank line in it) to the page as it is.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-labelledby="idle-fds-title idle-fds-desc" style="width:100%;max-width:{W}px;height:auto" font-family="Helvetica, Arial, sans-serif" font-size="15">"#
    );
    let _ = writeln!(s, r#"<title id="idle-fds-title">{title}</title>"#);
    let desc = series
        .iter()
        .map(|se| {
            let first = se.points.first().map_or(0.0, |p| p.y);
            let last = se.points.last().map_or(first, |p| p.y);
            format!(
                "{}: {} at N={}, {} at N={}",
                se.name,
                ns(first),
                se.points.first().map_or(0.0, |p| p.x),
                ns(last),
                se.points.last().map_or(0.0, |p| p.x)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let _ = writeln!(
        s,
        r#"<desc id="idle-fds-desc">Time per wait call, log-log. {}.</desc>"#,
        escape(&desc)
    );
    // A white card, so the plot reads the same in the book's dark themes.
    let _ = writeln!(s, r##"<rect width="{W}" height="{H}" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{}" y="22" text-anchor="middle" font-size="16" font-weight="bold" fill="#222">{title}</text>"##,
        W / 2.0
    );
    // Legend: one row under the title.
    let slot = (W - LEFT - RIGHT) / series.len().max(1) as f64;
    for (i, se) in series.iter().enumerate() {
        let (colour, dash, marker) = STYLES[i % STYLES.len()];
        let x = LEFT + slot * i as f64 + 4.0;
        let y = 44.0;
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{colour}" stroke-width="2.5"{}/>"#,
            x + 26.0,
            dash_attr(dash)
        );
        s.push_str(&marker_svg(marker, x + 13.0, y, colour));
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{}" fill="#222">{}</text>"##,
            x + 32.0,
            y + 5.0,
            escape(&se.name)
        );
    }
    // Grid and ticks: every decade, labelled.
    let (left, right, top, bottom) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
        right - left,
        bottom - top
    );
    for d in (x0 as i32)..=(x1 as i32) {
        let x = px(10f64.powi(d));
        if d > x0 as i32 && d < x1 as i32 {
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#ddd"/>"##
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{x:.1}" y="{}" text-anchor="middle" fill="#333">{}</text>"##,
            bottom + 18.0,
            count(10f64.powi(d))
        );
    }
    for d in (y0 as i32)..=(y1 as i32) {
        let y = py(10f64.powi(d));
        if d > y0 as i32 && d < y1 as i32 {
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#ddd"/>"##
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#333">{}</text>"##,
            left - 6.0,
            y + 5.0,
            ns(10f64.powi(d))
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#222">idle descriptors N (log scale)</text>"##,
        (left + right) / 2.0,
        bottom + 38.0
    );
    // The y axis's title sits above it, level: no turning the phone.
    let _ = writeln!(
        s,
        r##"<text x="4" y="{}" fill="#222">time per wait call (log scale)</text>"##,
        top - 10.0
    );
    // The lines, their spreads (middle half) and markers.
    for (i, se) in series.iter().enumerate() {
        let (colour, dash, marker) = STYLES[i % STYLES.len()];
        let path: Vec<String> = se
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(p.x), py(p.y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2.5"{}/>"#,
            path.join(" "),
            dash_attr(dash)
        );
        for p in &se.points {
            let x = px(p.x);
            if py(p.lo) - py(p.hi) > 2.0 {
                let _ = writeln!(
                    s,
                    r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{colour}" stroke-width="1.5"/>"#,
                    py(p.lo),
                    py(p.hi)
                );
            }
            s.push_str(&marker_svg(marker, x, py(p.y), colour));
        }
    }
    if let Some(m) = machine {
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end" font-size="12" fill="#666">{}</text>"##,
            W - 4.0,
            H - 5.0,
            escape(&m)
        );
    }
    s.push_str("</svg>\n");
    Ok(s)
}

fn dash_attr(dash: &str) -> String {
    if dash.is_empty() {
        String::new()
    } else {
        format!(r#" stroke-dasharray="{dash}""#)
    }
}

fn marker_svg(marker: Marker, x: f64, y: f64, colour: &str) -> String {
    match marker {
        Marker::Circle => format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{colour}\"/>\n"
        ),
        Marker::Square => format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"{colour}\"/>\n",
            x - 3.5,
            y - 3.5
        ),
        Marker::Triangle => format!(
            "<path d=\"M{x:.1},{:.1} L{:.1},{:.1} L{:.1},{:.1} z\" fill=\"{colour}\"/>\n",
            y - 5.0,
            x + 4.5,
            y + 3.5,
            x - 4.5,
            y + 3.5
        ),
        Marker::Diamond => format!(
            "<path d=\"M{x:.1},{:.1} L{:.1},{y:.1} L{x:.1},{:.1} L{:.1},{y:.1} z\" fill=\"#ffffff\" stroke=\"{colour}\" stroke-width=\"2\"/>\n",
            y - 5.0,
            x + 5.0,
            y + 5.0,
            x - 5.0
        ),
    }
}

/// A decade of nanoseconds as people say it: `100 ns`, `1 µs`, `10 ms`.
fn ns(v: f64) -> String {
    let (value, unit) = if v >= 1e9 {
        (v / 1e9, "s")
    } else if v >= 1e6 {
        (v / 1e6, "ms")
    } else if v >= 1e3 {
        (v / 1e3, "µs")
    } else {
        (v, "ns")
    };
    if value >= 10.0 || value.fract() == 0.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// A count with thousands separated: `10,000`.
fn count(v: f64) -> String {
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = "\
# what and how
# machine: 2 CPU(s) (AMD EPYC), Linux 6.1; measured 2026-12-03
n,mechanism,median_ns,q25_ns,q75_ns
10,select,2400,2300,2500
10,poll,2000,1990,2100
10,kq,1000,990,1010
10000,poll,5000000,4900000,5100000
10000,kq,1050,1000,1100
";

    /// Rows group into series in order of first appearance; a mechanism
    /// without a row at some N (select above FD_SETSIZE) just stops there.
    #[test]
    fn reads_series_in_order_and_the_machine_line() {
        let (series, machine) = parse(DATA).expect("valid data");
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["select", "poll", "kq"]);
        assert_eq!(series[0].points.len(), 1, "select has one point");
        assert_eq!(series[1].points[1].y, 5_000_000.0);
        assert_eq!(
            machine.as_deref(),
            Some("2 CPU(s) (AMD EPYC), Linux 6.1; measured 2026-12-03")
        );
    }

    /// A data file in another shape is refused with the line that is wrong.
    #[test]
    fn refuses_a_wrong_header_or_row() {
        let e = parse("n,median\n10,1\n").unwrap_err();
        assert!(e.contains("expected the header"), "{e}");
        let e = parse(&format!("{HEADER}\n10,poll,x,1,2\n")).unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("not a positive number"),
            "{e}"
        );
        let e = parse(&format!("{HEADER}\n")).unwrap_err();
        assert!(e.contains("no data rows"), "{e}");
    }

    /// The SVG is one Markdown HTML block (first line a complete tag, no
    /// blank line), titled, with every decade labelled on both axes and
    /// one line per mechanism.
    #[test]
    fn draws_labelled_decades_and_one_line_per_mechanism() {
        let svg = idle_fds_svg(DATA).expect("drawn");
        let first = svg.lines().next().unwrap_or("");
        assert!(
            first.starts_with("<svg ") && first.ends_with('>'),
            "{first}"
        );
        assert!(
            !svg.contains("\n\n"),
            "a blank line would end the HTML block"
        );
        for label in [">10<", ">100<", ">1,000<", ">10,000<", ">1 µs<", ">10 ms<"] {
            assert!(svg.contains(label), "no axis label {label} in:\n{svg}");
        }
        assert_eq!(svg.matches("<polyline").count(), 3, "{svg}");
        assert!(svg.contains("idle descriptors N"), "x axis title");
        assert!(svg.contains("measured 2026-12-03"), "machine line");
        assert_eq!(idle_fds_svg(DATA), Ok(svg), "the drawing is deterministic");
    }

    /// Decades read as people say them.
    #[test]
    fn labels_decades_in_their_units() {
        let shown: Vec<String> = [100.0, 1e3, 1e4, 1e6, 1e7].iter().map(|&v| ns(v)).collect();
        assert_eq!(shown, ["100 ns", "1 µs", "10 µs", "1 ms", "10 ms"]);
        assert_eq!(count(10_000.0), "10,000");
        assert_eq!(count(100.0), "100");
    }
}
