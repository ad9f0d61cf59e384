//! What the bench prints (plain-text tables, each printed as its phase
//! ends) and what `--json` writes: the same figures, from the same cells.

use std::fmt::Write as _;

pub enum Cell {
    Text(String),
    Num(f64, usize),
    Na,
}

impl Cell {
    pub fn text(s: &str) -> Cell {
        Cell::Text(s.into())
    }
    pub fn num(v: f64, decimals: usize) -> Cell {
        if v.is_finite() {
            Cell::Num(v, decimals)
        } else {
            Cell::Na
        }
    }
    pub fn opt(v: Option<f64>, decimals: usize) -> Cell {
        v.map_or(Cell::Na, |v| Cell::num(v, decimals))
    }
    pub fn na() -> Cell {
        Cell::Na
    }
    fn show(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Num(v, d) => format!("{v:.d$}"),
            Cell::Na => "n/a".into(),
        }
    }
    fn json(&self) -> String {
        match self {
            Cell::Text(s) => quote(s),
            Cell::Num(v, d) => format!("{v:.d$}"),
            Cell::Na => "null".into(),
        }
    }
}

pub struct Table {
    title: String,
    head: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(title: &str, head: &[&str]) -> Table {
        Table {
            title: title.into(),
            head: head.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }
    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }
    fn render(&self) -> String {
        let shown: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(Cell::show).collect())
            .collect();
        // A row shorter than the header (a note such as "skipped: ...")
        // spills its last cell over the remaining columns.
        let mut w: Vec<usize> = self.head.iter().map(|h| h.len()).collect();
        for r in &shown {
            for (i, c) in r.iter().enumerate() {
                if r.len() == self.head.len() || i + 1 < r.len() {
                    w[i] = w[i].max(c.len());
                }
            }
        }
        let mut out = format!("\n{}\n", self.title);
        let line = |cells: &[String], out: &mut String| {
            for (i, c) in cells.iter().enumerate() {
                if i == 0 {
                    let _ = write!(out, "  {:<w$}", c, w = w[0]);
                } else if i + 1 == cells.len() && cells.len() < self.head.len() {
                    let _ = write!(out, "  {c}");
                } else {
                    let _ = write!(out, "  {:>w$}", c, w = w[i]);
                }
            }
            out.push('\n');
        };
        line(&self.head, &mut out);
        let rule: Vec<String> = w.iter().map(|n| "-".repeat(*n)).collect();
        line(&rule, &mut out);
        for r in &shown {
            line(r, &mut out);
        }
        out
    }
    fn json(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                let fields: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let key = self.head.get(i).map_or("note", String::as_str);
                        let key = if i + 1 == r.len() && r.len() < self.head.len() {
                            "note"
                        } else {
                            key
                        };
                        format!("{}: {}", quote(key), c.json())
                    })
                    .collect();
                format!("{{{}}}", fields.join(", "))
            })
            .collect();
        format!(
            "{{\"title\": {}, \"rows\": [\n      {}\n    ]}}",
            quote(&self.title),
            rows.join(",\n      ")
        )
    }
}

fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

struct Target {
    name: String,
    want: String,
    got: String,
    met: Option<bool>,
}

struct Check {
    name: String,
    ok: bool,
    detail: String,
}

#[derive(Default)]
pub struct Report {
    facts: Vec<(String, String)>,
    tables: Vec<Table>,
    targets: Vec<Target>,
    checks: Vec<Check>,
    notes: Vec<String>,
}

impl Report {
    pub fn fact(&mut self, k: &str, v: String) {
        self.facts.push((k.into(), v));
    }
    pub fn fact_late(&mut self, k: &str, v: String) {
        println!("\n{k}: {v}");
        self.facts.push((k.into(), v));
    }
    pub fn print_facts(&self) {
        println!("machine");
        let w = self.facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in &self.facts {
            println!("  {k:<w$}  {v}");
        }
    }
    /// Adds a table and prints it at once, so a long run shows progress.
    pub fn table(&mut self, t: Table) {
        print!("{}", t.render());
        self.tables.push(t);
    }
    /// A line under the last table saying how to read it.
    pub fn note(&mut self, text: &str) {
        println!("  ({text})");
        self.notes.push(text.into());
    }
    pub fn target(&mut self, name: &str, want: &str, got: String, met: Option<bool>) {
        self.targets.push(Target {
            name: name.into(),
            want: want.into(),
            got,
            met,
        });
    }
    pub fn check(&mut self, name: &str, ok: bool, detail: String) {
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail,
        });
    }
    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|c| !c.ok).count()
    }
    /// A target's status; "context" rows carry a figure that explains
    /// another one and have no status of their own.
    fn status(g: &Target) -> &'static str {
        match g.met {
            _ if g.want == "context" => "-",
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        }
    }
    /// Targets, checks and the closing runner-readable line.
    pub fn print_rest(&self) {
        let mut t = Table::new(
            "Targets (recorded, not gated)",
            &["target", "want", "measured", "status"],
        );
        for g in &self.targets {
            t.row(vec![
                Cell::text(&g.name),
                Cell::text(&g.want),
                Cell::text(&g.got),
                Cell::text(Self::status(g)),
            ]);
        }
        print!("{}", t.render());
        println!("\nChecks (deterministic; these decide the exit status)");
        for c in &self.checks {
            println!(
                "  {:<4}  {}: {}",
                if c.ok { "ok" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        println!(
            "\nbench: {} passed, {} failed",
            self.checks.len() - self.failed(),
            self.failed()
        );
    }
    pub fn json(&self) -> String {
        let facts: Vec<String> = self
            .facts
            .iter()
            .map(|(k, v)| format!("{}: {}", quote(k), quote(v)))
            .collect();
        let tables: Vec<String> = self.tables.iter().map(Table::json).collect();
        let notes: Vec<String> = self.notes.iter().map(|n| quote(n)).collect();
        let targets: Vec<String> = self
            .targets
            .iter()
            .map(|g| {
                format!(
                    "{{\"target\": {}, \"want\": {}, \"measured\": {}, \"status\": {}}}",
                    quote(&g.name),
                    quote(&g.want),
                    quote(&g.got),
                    quote(Self::status(g))
                )
            })
            .collect();
        let checks: Vec<String> = self
            .checks
            .iter()
            .map(|c| {
                format!(
                    "{{\"check\": {}, \"ok\": {}, \"detail\": {}}}",
                    quote(&c.name),
                    c.ok,
                    quote(&c.detail)
                )
            })
            .collect();
        format!(
            "{{\n  \"machine\": {{{}}},\n  \"phases\": [\n    {}\n  ],\n  \"notes\": [{}],\n  \"targets\": [\n    {}\n  ],\n  \"checks\": [\n    {}\n  ],\n  \"passed\": {},\n  \"failed\": {}\n}}\n",
            facts.join(", "),
            tables.join(",\n    "),
            notes.join(", "),
            targets.join(",\n    "),
            checks.join(",\n    "),
            self.checks.len() - self.failed(),
            self.failed()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON carries the same cells as the table: numbers with the
    /// table's decimals, text quoted and escaped, missing values as null,
    /// and a short row's last cell as its note.
    #[test]
    fn json_rows_carry_the_table_cells() {
        let mut t = Table::new("T \"x\"", &["server", "msgs/s", "p99 us"]);
        t.row(vec![Cell::text("kq"), Cell::num(1234.567, 1), Cell::na()]);
        t.row(vec![Cell::text("C100K"), Cell::text("skipped: limit\n")]);
        let got = t.json();
        for want in [
            r#""title": "T \"x\"""#,
            r#"{"server": "kq", "msgs/s": 1234.6, "p99 us": null}"#,
            r#"{"server": "C100K", "note": "skipped: limit\n"}"#,
        ] {
            assert!(got.contains(want), "expected {want} in:\n{got}");
        }
        let shown = t.render();
        assert!(
            shown.contains("1234.6") && shown.contains("n/a"),
            "table text lacks the cells:\n{shown}"
        );
    }
}
