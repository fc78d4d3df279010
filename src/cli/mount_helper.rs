//! `mount.ggufs SPEC DIR [-sfnv] [-o OPTIONS]`: the helper mount(8) runs for `-t ggufs` (as
//! `/sbin/mount.ggufs`) or `-t fuse.ggufs` (as `/sbin/mount.fuse.ggufs`), which is what makes
//! `/etc/fstab` lines and `mount -t fuse.ggufs` work. It is the ggufs binary itself under
//! another name (a symlink): the options are translated into an ordinary `ggufs mount`
//! command line, so both paths share one parser and one daemon.
//!
//! ggufs options: `models=ORG/REPO[@REV][:ORG/REPO...]` (also `model=`, repeatable),
//! `config=FILE`, `endpoint=URL`, `cache_dir=DIR`, `cache_size=SIZE`, `no_cache`, `offline`,
//! `log_file=FILE`, `allow_other`, `ro`. Generic options mount(8) may pass (`defaults`,
//! `noauto`, `nofail`, `_netdev`, `x-systemd.*`, `nosuid`, ...) are accepted and ignored;
//! `rw` is refused, since ggufs is read-only.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Context};

/// Names under which the binary acts as a mount helper.
const HELPER_NAMES: [&str; 2] = ["mount.ggufs", "mount.fuse.ggufs"];

/// Options mount(8) or fstab may carry that mean nothing to a read-only FUSE daemon.
const IGNORED: [&str; 20] = [
    "defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "nouser", "owner", "group", "dev", "nodev",
    "suid", "nosuid", "exec", "noexec", "atime", "noatime", "relatime", "async",
];

/// True when argv[0] is one of the helper names.
pub fn invoked_as_helper(argv0: &Path) -> bool {
    argv0.file_name().and_then(|n| n.to_str()).is_some_and(|n| HELPER_NAMES.contains(&n))
}

/// Translates the helper's argv (`mount.ggufs SPEC DIR [flags] [-o opts]`) into
/// `ggufs mount DIR ...` arguments (argv[0] excluded).
pub fn translate(argv: &[OsString]) -> anyhow::Result<Vec<OsString>> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut verbose = false;
    let mut it = argv.iter().skip(1);
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-o") => options.push(it.next().context("-o needs a value")?.to_string_lossy().into_owned()),
            Some(s) if s.starts_with("-o") && s.len() > 2 => options.push(s[2..].to_owned()),
            Some("-v") => verbose = true,
            // sloppy, fake, no-mtab: nothing to do for a FUSE daemon that writes no mtab.
            Some("-s" | "-f" | "-n") => {}
            Some("-t" | "-N") => {
                it.next();
            }
            Some(s) if s.starts_with('-') => bail!("mount.ggufs: unknown flag {s}"),
            _ => positional.push(arg.clone()),
        }
    }
    let [_spec, dir] = positional.as_slice() else {
        bail!("usage: mount.ggufs SPEC DIR [-o OPTIONS] (got {} positional arguments)", positional.len());
    };
    let mut out: Vec<OsString> = vec!["mount".into(), dir.clone()];
    if verbose {
        out.push("-v".into());
    }
    for opt in options.iter().flat_map(|o| o.split(',')).filter(|o| !o.is_empty()) {
        out.extend(option_args(opt)?);
    }
    Ok(out)
}

/// The `ggufs mount` arguments for one `-o` option.
fn option_args(opt: &str) -> anyhow::Result<Vec<OsString>> {
    let (key, value) = match opt.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (opt, None),
    };
    let flag = |name: &str| -> anyhow::Result<Vec<OsString>> {
        let v = value.with_context(|| format!("option {key} needs a value ({key}=...)"))?;
        Ok(vec![name.into(), v.into()])
    };
    Ok(match key {
        "models" | "model" => {
            value.with_context(|| format!("option {key} needs a value"))?;
            value
                .unwrap_or_default()
                .split(':')
                .filter(|m| !m.is_empty())
                .flat_map(|m| ["-m".into(), m.into()])
                .collect()
        }
        "config" => flag("--config")?,
        "endpoint" => flag("--endpoint")?,
        "cache_dir" => flag("--cache-dir")?,
        "cache_size" => flag("--cache-size")?,
        "log_file" => flag("--log-file")?,
        "no_cache" => vec!["--no-cache".into()],
        "offline" => vec!["--offline".into()],
        "allow_other" | "ro" => vec!["-o".into(), key.into()],
        "rw" => bail!("ggufs is read-only: use ro (or leave rw out)"),
        k if IGNORED.contains(&k) || k.starts_with("x-") || k.starts_with("comment=") || k == "comment" => vec![],
        other => bail!("unsupported mount option {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn helper_names_are_recognised_by_basename() {
        assert!(invoked_as_helper(Path::new("/sbin/mount.ggufs")));
        assert!(invoked_as_helper(Path::new("mount.fuse.ggufs")));
        assert!(!invoked_as_helper(Path::new("/usr/bin/ggufs")));
    }

    #[test]
    fn fstab_options_become_mount_flags() {
        let got = translate(&args(&[
            "mount.ggufs",
            "ggufs",
            "/models",
            "-n",
            "-o",
            "ro,allow_other,noauto,x-systemd.automount,models=a/b:c/d@v1,endpoint=http://h:1,cache_dir=/c",
        ]))
        .unwrap();
        let want = args(&[
            "mount",
            "/models",
            "-o",
            "ro",
            "-o",
            "allow_other",
            "-m",
            "a/b",
            "-m",
            "c/d@v1",
            "--endpoint",
            "http://h:1",
            "--cache-dir",
            "/c",
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn bad_helper_calls_are_refused() {
        assert!(translate(&args(&["mount.ggufs", "/models"])).is_err());
        assert!(translate(&args(&["mount.ggufs", "g", "/m", "-o", "rw"])).is_err());
        assert!(translate(&args(&["mount.ggufs", "g", "/m", "-o", "frobnicate"])).is_err());
        assert!(translate(&args(&["mount.ggufs", "g", "/m", "-o", "endpoint"])).is_err());
        assert!(translate(&args(&["mount.ggufs", "g", "/m", "-o"])).is_err());
    }
}
