//! Plain terminal output: colour only when stdout is a terminal and
//! `NO_COLOR` is not set (<https://no-color.org>), and only the basic ANSI
//! colours every terminal of macOS and Linux shows.

use std::io::IsTerminal;

/// How to show emphasis on stdout.
#[derive(Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal that is not `dumb` and `NO_COLOR`
    /// is unset or empty.
    pub fn for_stdout() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Style {
            colour: std::io::stdout().is_terminal() && !no_color && !dumb,
        }
    }

    fn paint(self, code: &str, s: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn good(self, s: &str) -> String {
        self.paint("32", s)
    }

    pub fn bad(self, s: &str) -> String {
        self.paint("31", s)
    }

    pub fn todo(self, s: &str) -> String {
        self.paint("33", s)
    }

    pub fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }

    pub fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }
}

/// Whether there is a person at the keyboard to ask (stdin is a terminal).
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal()
}
