//! The `firmware-sim` binary: parses flags and calls into the `firmware_sim` library.

use clap::Parser;

/// Simulated boiler hubs and refuse and repairs crews, for demos and load tests.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    Ok(())
}
