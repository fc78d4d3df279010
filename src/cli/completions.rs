//! `ggufs completions SHELL`: a completion script generated from the same clap definition
//! the parser uses, so it can never drift from the real flags.

use clap::Args;
use clap_complete::Shell;

/// Arguments of `completions`.
#[derive(Args)]
#[command(after_help = "\
Examples:
  ggufs completions bash > ~/.local/share/bash-completion/completions/ggufs
  ggufs completions zsh > \"${fpath[1]}/_ggufs\"
  ggufs completions fish > ~/.config/fish/completions/ggufs.fish")]
pub struct CompletionsArgs {
    /// The shell to generate for.
    shell: Shell,
}

/// Writes the script to stdout.
pub fn run(args: CompletionsArgs, cmd: &mut clap::Command) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, cmd, "ggufs", &mut script);
    super::write_stdout(&script)
}
