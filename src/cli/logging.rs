//! Log setup. At the default level a user sees one line per event that matters to them
//! (repo resolved, file built, pull resumed, mount up/down, fetch retries and errors with
//! their cause) and nothing about internals; `-v` adds the library's own info lines, `-vv`
//! debug, `-vvv` trace; `-q` keeps errors only. `RUST_LOG` replaces all of this.

use tracing_subscriber::EnvFilter;

/// The filter for a verbosity: the CLI's events are `info` in the `ggufs::cli` target, the
/// library speaks at `info` only about its internals, so the default lets `ggufs::cli`
/// through at `info` and everything else at `warn`.
pub fn default_filter(verbose: u8, quiet: bool) -> &'static str {
    match (quiet, verbose) {
        (true, _) => "error",
        // fuser logs an error when it drops a session that `fusermount -u` already
        // unmounted; mount failures themselves reach us as errors, so its mount module says
        // nothing a user needs at this level.
        (false, 0) => "warn,ggufs::cli=info,fuser::mnt=off",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    }
}

/// Installs the subscriber. Logs go to stderr so that `--json` output on stdout stays
/// machine-readable; at the default level lines carry no timestamp or module path
/// (`INFO resolved ...`), with `-v` and more they carry both.
pub fn init(verbose: u8, quiet: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter(verbose, quiet)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    let _ = if verbose == 0 && std::env::var_os("RUST_LOG").is_none() {
        builder.without_time().with_target(false).try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_maps_to_filters() {
        assert_eq!(default_filter(0, false), "warn,ggufs::cli=info,fuser::mnt=off");
        assert_eq!(default_filter(1, false), "info");
        assert_eq!(default_filter(2, false), "debug");
        assert_eq!(default_filter(5, false), "trace");
        assert_eq!(default_filter(0, true), "error");
    }
}
