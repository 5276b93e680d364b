//! The command-line error type, one line each, and exit codes.

use std::fmt;
use std::process::ExitCode;

/// Exit code for bad usage (unknown flag, invalid value).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code for a failure at run time (unreadable file, server error) and
/// for a rejected verification.
pub(crate) const EXIT_FAILURE: u8 = 1;

/// An error reported as one line: `tessera: error: <message>`.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The arguments are invalid (exit code 2).
    Usage(String),
    /// Something failed while running (exit code 1).
    Runtime(String),
}

impl CliError {
    /// A usage error.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    /// A runtime error.
    pub(crate) fn runtime(message: impl Into<String>) -> Self {
        CliError::Runtime(message.into())
    }

    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(EXIT_USAGE),
            CliError::Runtime(_) => ExitCode::from(EXIT_FAILURE),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = match self {
            CliError::Usage(m) | CliError::Runtime(m) => m,
        };
        // Keep the report on one line whatever the message contains.
        f.write_str(&message.replace(['\n', '\r'], " "))
    }
}

impl std::error::Error for CliError {}

/// Shorthand for command results.
pub(crate) type CliResult<T = ExitCode> = Result<T, CliError>;

/// Reports a clap parse failure: help and version go to stdout as usual
/// (exit 0); every other error becomes one `tessera: error:` line (exit 2).
pub(crate) fn clap_exit(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Printing help can only fail on a closed stdout; nothing to add then.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(EXIT_USAGE)
        }
        _ => {
            // clap's first paragraph is the message (a list of missing
            // arguments continues on indented lines); tips and usage follow.
            let rendered = e.to_string();
            let message: Vec<&str> = rendered
                .lines()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            let message = if message.is_empty() {
                "invalid arguments"
            } else {
                message
            };
            eprintln!("tessera: error: {message} (see --help)");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `error` followed by each of its sources, joined with ": ", so a message
/// keeps the detail a wrapped error carries. A source whose text the
/// message already holds is left out (sqlx's database errors display their
/// source's message as their own).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::error_chain;

    /// An error with a text and an optional source.
    #[derive(Debug)]
    struct Chain(&'static str, Option<Box<Chain>>);

    impl fmt::Display for Chain {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Chain {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn a_source_already_in_the_message_is_not_repeated() {
        let leaf = |text| Some(Box::new(Chain(text, None)));
        let repeated = Chain(
            "error returned from database: database \"keys\" does not exist",
            leaf("database \"keys\" does not exist"),
        );
        assert_eq!(
            error_chain(&repeated),
            "error returned from database: database \"keys\" does not exist"
        );
        let wrapped = Chain(
            "cannot connect to the key database",
            leaf("connection refused"),
        );
        assert_eq!(
            error_chain(&wrapped),
            "cannot connect to the key database: connection refused"
        );
    }
}
