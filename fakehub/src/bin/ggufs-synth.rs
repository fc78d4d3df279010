//! `ggufs-synth FIXTURE_DIR OUT_DIR`: writes the safetensors shards a synthetic fixture's
//! `weights.json` describes, so the reference converter can be run on the same bytes the tests use.

fn main() -> anyhow::Result<()> {
    let args: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let [fixture, out] = args.as_slice() else {
        anyhow::bail!("usage: ggufs-synth FIXTURE_DIR OUT_DIR");
    };
    for name in ggufs_fakehub::synth::materialize(fixture, out)? {
        println!("{}", out.join(name).display());
    }
    Ok(())
}
