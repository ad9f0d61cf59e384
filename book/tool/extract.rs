//! Pieces of the repository the book shows but cannot include by anchor:
//! sections of the `kq` crate's docs (rustdoc Markdown, not code) and each
//! step's list of tests. Each is cut out by *name* (a heading, a test
//! attribute), never by line numbers, and fails loudly when the name is
//! gone, so a renamed heading breaks the build instead of quietly showing
//! the wrong lines. Source code is never cut out here: the chapters
//! include Rust and C listings by `ANCHOR:` from the files themselves.

/// A section of a crate's `//!` documentation, as Markdown: from the
/// heading `heading` (any level, e.g. `## Where Linux differs`) to the next
/// heading of the same or a higher level. The heading itself is left out
/// (the chapter has its own), and rustdoc's intra-doc links (`` [`Kqueue`] ``)
/// become plain code, since they mean nothing outside rustdoc.
pub fn doc_section(src: &str, heading: &str) -> Result<String, String> {
    let doc: Vec<&str> = src
        .lines()
        .map_while(|l| {
            let t = l.trim_start();
            t.strip_prefix("//!")
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
        })
        .collect();
    let level = |l: &str| l.chars().take_while(|&c| c == '#').count();
    let start = doc
        .iter()
        .position(|l| level(l) > 0 && l.trim_start_matches('#').trim() == heading)
        .ok_or_else(|| format!("no heading `{heading}` in the crate docs"))?;
    let depth = level(doc[start]);
    let end = (start + 1..doc.len())
        .find(|&i| {
            let l = level(doc[i]);
            l > 0 && l <= depth && doc[i].chars().nth(l) == Some(' ')
        })
        .unwrap_or(doc.len());
    let body = doc[start + 1..end].join("\n");
    Ok(format!("{}\n", strip_intra_doc_links(body.trim())))
}

/// `` [`Kqueue`] `` becomes `` `Kqueue` ``; real links (`[text](url)`) stay.
fn strip_intra_doc_links(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("[`") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.find("`]") {
            Some(close) if !after[close + 2..].starts_with('(') => {
                out.push_str(&after[..close + 1]);
                rest = &after[close + 2..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One test found in a test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFn {
    pub name: String,
    /// The `///` comment, joined into one paragraph.
    pub doc: String,
    /// `#[case::name]` variants, if the test is table-driven.
    pub cases: Vec<String>,
}

/// The tests in `src`: functions carrying `#[test]` or `#[rstest]`, with
/// their `///` comment and rstest case names. A test written inside a
/// `macro_rules!` (the harness's `contract_tests!`) is found the same way.
pub fn tests_in(src: &str) -> Vec<TestFn> {
    let mut found = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    let mut cases: Vec<String> = Vec::new();
    let mut is_test = false;
    // Open brackets of an attribute that goes on over several lines
    // (`#[case::long_name(` ... `)]`).
    let mut open_attr = 0i32;
    for line in src.lines() {
        let t = line.trim();
        if open_attr > 0 {
            open_attr += bracket_balance(t);
            continue;
        }
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
        } else if t.starts_with("#[") {
            open_attr = bracket_balance(t);
            if t == "#[test]" || t == "#[rstest]" || t.starts_with("#[rstest(") {
                is_test = true;
            }
            if let Some(c) = t.strip_prefix("#[case::") {
                let name: String = c
                    .chars()
                    .take_while(|&ch| ch.is_alphanumeric() || ch == '_')
                    .collect();
                cases.push(name);
            }
        } else if let Some(name) = fn_name(t) {
            if is_test {
                found.push(TestFn {
                    name,
                    doc: doc.join(" ").trim().to_string(),
                    cases: std::mem::take(&mut cases),
                });
            }
            doc.clear();
            cases.clear();
            is_test = false;
        } else if !t.is_empty() {
            doc.clear();
            cases.clear();
            is_test = false;
        }
    }
    found
}

/// `[` minus `]` on a line, ignoring brackets inside string literals.
fn bracket_balance(line: &str) -> i32 {
    let mut balance = 0;
    let mut in_string = false;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '[' if !in_string => balance += 1,
            ']' if !in_string => balance -= 1,
            _ => {}
        }
    }
    balance
}

/// How many `#[test]` / `#[rstest]` attributes `src` has: what
/// [`tests_in`] must find, so that a test it cannot parse is an error
/// instead of a row missing from the book.
pub fn test_attributes(src: &str) -> usize {
    src.lines()
        .map(str::trim)
        .filter(|t| *t == "#[test]" || *t == "#[rstest]" || t.starts_with("#[rstest("))
        .count()
}

/// One `harness::stage_tests!(...)` in a test file: the module it sits in
/// (step 4's `delete`, for `--remove delete`), the arguments every server
/// gets (`with [...]`), and the stages, as the identifiers written there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageTests {
    pub module: Option<String>,
    pub args: Vec<String>,
    pub stages: Vec<String>,
}

/// The text inside the brackets of each `NAME!(...)` or `NAME! { ... }`
/// in `src`, outside comments and macro definitions.
fn macro_calls<'a>(src: &'a str, name: &str) -> Vec<(usize, &'a str)> {
    let needle = format!("{name}!");
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = src[at..].find(&needle) {
        let start = at + i;
        at = start + needle.len();
        let line_start = src[..start].rfind('\n').map_or(0, |n| n + 1);
        if src[line_start..start].trim_start().starts_with("//")
            || src[..start].ends_with("macro_rules! ")
        {
            continue;
        }
        let after = src[at..].trim_start();
        if !(after.starts_with('(') || after.starts_with('{')) {
            continue;
        }
        let open = src.len() - after.len() + 1;
        let mut depth = 1;
        let end = src[open..].char_indices().find_map(|(j, c)| {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(open + j)
        });
        if let Some(end) = end {
            found.push((start, &src[open..end]));
        }
    }
    found
}

/// The `mod NAME {` at the start of a line that encloses byte `at` of
/// `src`, if any (one level: the steps' tests nest no deeper).
fn enclosing_module(src: &str, at: usize) -> Option<String> {
    let before = &src[..at];
    let open = before.rfind("\nmod ")? + 1;
    // Closed again before `at`: a `}` alone at the start of a line.
    if before[open..].contains("\n}") {
        return None;
    }
    let name: String = before[open + 4..]
        .chars()
        .take_while(|&c| c.is_alphanumeric() || c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Every `harness::stage_tests!(...)` in `src`.
pub fn stage_tests_in(src: &str) -> Vec<StageTests> {
    macro_calls(src, "stage_tests")
        .into_iter()
        .map(|(at, body)| {
            let (args, stages) = match body.trim_start().strip_prefix("with") {
                Some(rest) => {
                    let rest = rest.trim_start();
                    let close = rest.find(']').unwrap_or(rest.len());
                    let args = rest[1.min(rest.len())..close]
                        .split(',')
                        .map(|a| a.trim().trim_matches('"').to_string())
                        .filter(|a| !a.is_empty())
                        .collect();
                    let after = rest[close..].trim_start_matches(']').trim_start();
                    (args, after.trim_start_matches(';'))
                }
                None => (Vec::new(), body),
            };
            StageTests {
                module: enclosing_module(src, at),
                args,
                stages: stages
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            }
        })
        .collect()
}

/// The promises each `harness::house_tests! { ... }` in `src` names.
pub fn house_tests_in(src: &str) -> Vec<String> {
    macro_calls(src, "house_tests")
        .into_iter()
        .flat_map(|(_, body)| body.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The `///` comment of `pub fn NAME` in `src`, joined into one paragraph
/// (intra-doc links made plain code).
pub fn fn_doc(src: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = src.lines().collect();
    let at = lines.iter().position(|l| {
        l.trim_start()
            .strip_prefix("pub fn ")
            .and_then(|r| r.strip_prefix(name))
            .is_some_and(|r| r.starts_with('('))
    })?;
    let mut doc: Vec<&str> = lines[..at]
        .iter()
        .rev()
        .take_while(|l| l.trim_start().starts_with("///"))
        .map(|l| l.trim_start().trim_start_matches("///").trim())
        .collect();
    doc.reverse();
    Some(strip_intra_doc_links(&doc.join(" ")))
}

/// The options a `harness::contract_tests!(...)` in `src` names, if there
/// is one (`contract_tests!()` names none).
pub fn contract_tests_in(src: &str) -> Option<Vec<String>> {
    macro_calls(src, "contract_tests").first().map(|(_, body)| {
        body.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// `fn name(` (with optional `pub`/`async`) at the start of a line.
fn fn_name(t: &str) -> Option<String> {
    let t = t.strip_prefix("pub ").unwrap_or(t);
    let t = t.strip_prefix("async ").unwrap_or(t);
    let t = t.strip_prefix("fn ")?;
    let name: String = t
        .chars()
        .take_while(|&c| c.is_alphanumeric() || c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// A Markdown table of tests: name, file, what it proves.
pub fn test_table(rows: &[(String, TestFn)]) -> String {
    let mut out = String::from("| test | in | what passing proves |\n|---|---|---|\n");
    for (file, t) in rows {
        let mut proves = if t.doc.is_empty() {
            "(no doc comment)".to_string()
        } else {
            t.doc.clone()
        };
        if !t.cases.is_empty() {
            let cases: Vec<String> = t.cases.iter().map(|c| breakable_code(c)).collect();
            proves.push_str(&format!(" Cases: {}.", cases.join(", ")));
        }
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            breakable_code(&t.name),
            breakable_code(file),
            proves.replace('|', "\\|")
        ));
    }
    out
}

/// `<code>` for a long name, which may break after `_` or `/` (`<wbr>`)
/// so that the table fits a phone's width; copied, it is the same name.
fn breakable_code(name: &str) -> String {
    let mut out = String::from("<code>");
    for c in name.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("\\|"),
            c => out.push(c),
        }
        if c == '_' || c == '/' {
            out.push_str("<wbr>");
        }
    }
    out.push_str("</code>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test is found with its doc comment and case names, also when an
    /// attribute runs over several lines; helpers without `#[test]` are not.
    #[test]
    fn finds_tests_with_docs_and_multi_line_cases() {
        let src = "\
/// Proves a thing.
#[rstest]
#[case::short(\"a\")]
#[case::long_one(
    \"b]\"
)]
fn passes_check(#[case] c: &str) {}

/// A helper.
fn helper() {}

#[test]
fn plain() {}
";
        let found = tests_in(src);
        let names: Vec<&str> = found.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["passes_check", "plain"], "tests in {src:?}");
        assert_eq!(found[0].doc, "Proves a thing.");
        assert_eq!(found[0].cases, ["short", "long_one"]);
        assert_eq!(test_attributes(src), 2);
    }

    /// `stage_tests!` calls are found with their module, arguments and
    /// stages; one in a comment or a macro definition is not.
    #[test]
    fn finds_stage_tests_with_their_module_and_arguments() {
        let src = "\
//! harness::stage_tests!(not, this);
mod delete {
    harness::stage_tests!(with [\"--remove\", \"delete\"]; listen, echo);
}

harness::stage_tests! { port, urgent_echo }
";
        let found = stage_tests_in(src);
        assert_eq!(
            found,
            [
                StageTests {
                    module: Some("delete".into()),
                    args: vec!["--remove".into(), "delete".into()],
                    stages: vec!["listen".into(), "echo".into()],
                },
                StageTests {
                    module: None,
                    args: vec![],
                    stages: vec!["port".into(), "urgent_echo".into()],
                },
            ],
            "in {src:?}"
        );
        assert_eq!(
            contract_tests_in("harness::contract_tests!(max_users, max_queue);"),
            Some(vec!["max_users".to_string(), "max_queue".to_string()])
        );
        assert_eq!(
            contract_tests_in("harness::contract_tests!();"),
            Some(vec![])
        );
        assert_eq!(contract_tests_in("fn main() {}"), None);
    }

    /// Names in the table may break after `_` and `/`, nowhere else, and
    /// stay HTML-safe.
    #[test]
    fn lets_long_names_break_after_underscores() {
        assert_eq!(
            breakable_code("tests/a_b<c>"),
            "<code>tests/<wbr>a_<wbr>b&lt;c&gt;</code>"
        );
    }

    /// A doc section ends at the next heading of its level, and intra-doc
    /// links become code.
    #[test]
    fn cuts_a_doc_section_by_heading() {
        let src = "//! # Top\n//!\n//! ## One\n//!\n//! See [`Kqueue`] and [docs](https://x).\n//!\n//! ## Two\n//! no\n";
        assert_eq!(
            doc_section(src, "One").as_deref(),
            Ok("See `Kqueue` and [docs](https://x).\n")
        );
    }
}
