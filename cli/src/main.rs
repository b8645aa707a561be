//! The `raftline` command.
//!
//! Today: `raftline dump-log DIR` inspects a partition directory offline, as
//! Kafka's `kafka-dump-log.sh` does. `raftline serve` and the client commands
//! (topics, produce, consume, groups) arrive with the cluster (issues 3 and 4).

mod dump_log;
mod table;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "raftline",
    version,
    about = "Raftline: a replicated, partitioned commit log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document for scripts.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect a partition's log directory (`<topic>-<partition>/`) without
    /// changing it: segments, batches, offsets, leader epochs and CRC checks.
    DumpLog {
        /// The partition directory, e.g. `data/node1/orders-0`.
        dir: PathBuf,
        /// List every batch, not only the segments.
        #[arg(long)]
        batches: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::DumpLog {
            dir,
            batches,
            output,
        } => dump_log::run(&dir, batches, output),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
