//! Terminal-aware output: Unicode markers and colour only on a terminal;
//! a reader that stops early (`tessera keys list | head`) ends the command
//! quietly.

use std::io::IsTerminal;

/// Makes a write to a closed standard output (the reader of a pipe exited,
/// as `head` does) end the process quietly with success, as Unix tools do,
/// instead of a panic message and a backtrace: `println!` panics on such a
/// write. Every other panic is reported as before.
pub(crate) fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        report(info);
    }));
}

/// How to decorate output written to standard output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    /// Standard output is a terminal: Unicode markers, progress lines.
    pub(crate) terminal: bool,
    /// ANSI colour (a terminal, and `NO_COLOR` unset).
    pub(crate) colour: bool,
}

impl Style {
    /// The style for the current standard output.
    pub(crate) fn detect() -> Self {
        let terminal = std::io::stdout().is_terminal();
        let colour = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Style { terminal, colour }
    }

    /// The marker for an outcome: `✓`/`✗` on a terminal, `[ok]`/`[FAIL]` otherwise.
    pub(crate) fn marker(&self, ok: bool) -> String {
        let text = match (self.terminal, ok) {
            (true, true) => "✓",
            (true, false) => "✗",
            (false, true) => "[ok]",
            (false, false) => "[FAIL]",
        };
        self.paint(text, if ok { GREEN } else { RED })
    }

    /// The arrow between a scenario and its outcome.
    pub(crate) fn arrow(&self) -> &'static str {
        if self.terminal {
            "→"
        } else {
            "->"
        }
    }

    /// `text` in bold.
    pub(crate) fn bold(&self, text: &str) -> String {
        self.paint(text, BOLD)
    }

    /// `text` dimmed.
    pub(crate) fn dim(&self, text: &str) -> String {
        self.paint(text, DIM)
    }

    /// `text` in green or red.
    pub(crate) fn verdict(&self, text: &str, ok: bool) -> String {
        self.paint(text, if ok { GREEN } else { RED })
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

const GREEN: &str = "32";
const RED: &str = "31";
const BOLD: &str = "1";
const DIM: &str = "2";

/// Writes `bytes` and a newline exactly (no lossy UTF-8 conversion), and flushes.
pub(crate) fn write_raw_line(
    out: &mut impl std::io::Write,
    bytes: &[u8],
) -> Result<(), crate::error::CliError> {
    out.write_all(bytes)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| crate::error::CliError::runtime(format!("cannot write output: {e}")))
}
