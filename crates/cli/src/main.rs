//! `paxid`: see the library's documentation.

use std::process::ExitCode;

use clap::Parser;
use paxid_cli::http::CliError;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match paxid_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    match paxid_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Silent) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("paxid: {}", one_line(&error.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// `--help` and `--version` as clap prints them; a bad command line as one
/// line on stderr, exit 2.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("paxid: a command is missing (see paxid --help, or --help after the command given)");
            return ExitCode::from(2);
        }
        _ => {}
    }
    let text = error.render().to_string();
    // The message is what comes before the first blank line (usage and tips follow).
    let message = text.split("\n\n").next().unwrap_or(&text);
    let message = message.trim().strip_prefix("error:").unwrap_or(message);
    eprintln!("paxid: {} (see paxid --help)", one_line(message));
    ExitCode::from(2)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
