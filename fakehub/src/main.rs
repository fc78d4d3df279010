//! `ggufs-fakehub --root DIR --port N`: the fake Hub as a process, for demos and benchmarks.

use clap::Parser;

/// Serve a directory of `<org>/<name>/` repos as a fake Hugging Face Hub.
#[derive(Parser)]
#[command(name = "ggufs-fakehub", version)]
struct Args {
    /// Directory holding `<org>/<name>/` repo directories.
    #[arg(long)]
    root: std::path::PathBuf,
    /// Hub port (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// CDN port (0 = any free port).
    #[arg(long, default_value_t = 0)]
    cdn_port: u16,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.root.is_dir(), "{} is not a directory", args.root.display());
    let hub = ggufs_fakehub::FakeHub::start_on(&args.root, args.port, args.cdn_port)?;
    println!("{}", hub.endpoint());
    eprintln!(
        "fake Hub serving {} at {} (CDN {}); Ctrl-C to stop",
        args.root.display(),
        hub.endpoint(),
        hub.cdn_origin()
    );
    loop {
        std::thread::park();
    }
}
