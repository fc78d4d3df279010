//! `ggufs inspect ORG/REPO[@REV]`: what ggufs sees of a model before reading any weight, which is
//! also the quickest way to check access, the pinned commit and the tensor inventory.

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use ggufs::hub::{HubClient, HubConfig};
use ggufs::source::{fetch_source, SourceModel};

/// Arguments of `inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// `ORG/REPO` or `ORG/REPO@REVISION`.
    repo: String,
    /// Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co).
    #[arg(long)]
    endpoint: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub async fn run(args: InspectArgs) -> anyhow::Result<()> {
    let (repo, rev) = super::parse_repo_ref(&args.repo)?;
    let client = HubClient::new(HubConfig::from_env(args.endpoint))?;
    let model = fetch_source(&client, &repo, &rev).await.with_context(|| format!("inspecting {repo}@{rev}"))?;
    let report = describe(&model);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

/// The inspect report as JSON (the text form is printed from it).
fn describe(model: &SourceModel) -> Value {
    let architectures = model
        .files
        .json("config.json")
        .and_then(|r| r.ok())
        .and_then(|c| c.get("architectures").cloned())
        .unwrap_or(Value::Null);
    let tensors: Vec<Value> = model
        .tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name, "dtype": t.dtype.name(), "shape": t.shape,
                "shard": model.shards.get(t.shard).map(|s| s.path.as_str()),
                "start": t.start, "end": t.start + t.len,
            })
        })
        .collect();
    let parameters: u64 = model.tensors.iter().map(|t| t.n_elements()).sum();
    json!({
        "repo": model.repo_id,
        "commit": model.commit,
        "architectures": architectures,
        "files": model.files.paths().collect::<Vec<_>>(),
        "shards": model.shards.iter().map(|s| json!({"path": s.path, "size": s.size, "sha256": s.sha256})).collect::<Vec<_>>(),
        "parameters": parameters,
        "tensors": tensors,
    })
}

fn print_text(r: &Value) {
    println!("repo:          {}", r["repo"].as_str().unwrap_or_default());
    println!("commit:        {}", r["commit"].as_str().unwrap_or_default());
    println!("architectures: {}", r["architectures"]);
    println!("parameters:    {}", r["parameters"]);
    println!("metadata files:");
    for f in r["files"].as_array().into_iter().flatten() {
        println!("  {}", f.as_str().unwrap_or_default());
    }
    println!("shards:");
    for s in r["shards"].as_array().into_iter().flatten() {
        println!("  {} ({} bytes)", s["path"].as_str().unwrap_or_default(), s["size"]);
    }
    let tensors = r["tensors"].as_array().cloned().unwrap_or_default();
    println!("tensors ({}):", tensors.len());
    for t in &tensors {
        println!(
            "  {:<48} {:<5} {:<16} {} [{}, {})",
            t["name"].as_str().unwrap_or_default(),
            t["dtype"].as_str().unwrap_or_default(),
            t["shape"].to_string(),
            t["shard"].as_str().unwrap_or_default(),
            t["start"],
            t["end"]
        );
    }
}
