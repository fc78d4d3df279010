//! `ggufs inspect ORG/REPO[@REV]`: what ggufs sees of a model before reading any weight, which is
//! also the quickest way to check access, the pinned commit and the tensor inventory.

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use ggufs::gguf::Value as GgufValue;
use ggufs::hub::{HubClient, HubConfig};
use ggufs::plan::layout::Layout;
use ggufs::plan::OutType;
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
    /// Also compute the virtual GGUF header for this output type (f32, f16, bf16, q8_0, or a
    /// llama-quantize type: q4_k_m, q5_k_m, q6_k, q4_0, q8_0-lq) and print its KVs and tensor
    /// table like gguf-dump (for llama-quantize types: its per-tensor type choices).
    #[arg(long, value_parser = super::pull::parse_outtype)]
    outtype: Option<OutType>,
}

/// Runs the subcommand.
pub async fn run(args: InspectArgs) -> anyhow::Result<()> {
    let (repo, rev) = super::parse_repo_ref(&args.repo)?;
    let client = HubClient::new(HubConfig::from_env(args.endpoint))?;
    let model = fetch_source(&client, &repo, &rev).await.with_context(|| format!("inspecting {repo}@{rev}"))?;
    let mut report = describe(&model);
    if let Some(t) = args.outtype {
        let layout = ggufs::plan::layout::build(&model, t).with_context(|| format!("converting {repo}@{rev}"))?;
        report["gguf"] = gguf_report(&layout);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
        if report.get("gguf").is_some() {
            print_gguf(&report["gguf"]);
        }
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

/// The computed GGUF header: KVs (arrays summarised) and the tensor table.
fn gguf_report(layout: &Layout) -> Value {
    let kvs: Vec<Value> = layout
        .kv
        .entries()
        .iter()
        .map(|(k, v)| json!({"key": k, "type": v.value_type().name(), "value": kv_value(v)}))
        .collect();
    let tensors: Vec<Value> = layout
        .tensors
        .iter()
        .map(|t| json!({"name": t.info.name, "type": t.info.ty.name(), "ne": t.info.ne, "offset": t.info.offset}))
        .collect();
    json!({"file_type": layout.outtype.name(), "size": layout.size, "header_size": layout.header.len(), "kv": kvs, "tensors": tensors})
}

fn kv_value(v: &GgufValue) -> Value {
    match v {
        GgufValue::Array(et, items) => {
            let head: Vec<Value> = items.iter().take(5).map(kv_value).collect();
            json!({"element_type": et.name(), "length": items.len(), "head": head})
        }
        GgufValue::String(b) => json!(String::from_utf8_lossy(b)),
        GgufValue::Bool(b) => json!(b),
        GgufValue::F32(x) => json!(x),
        GgufValue::F64(x) => json!(x),
        GgufValue::U8(x) => json!(x),
        GgufValue::I8(x) => json!(x),
        GgufValue::U16(x) => json!(x),
        GgufValue::I16(x) => json!(x),
        GgufValue::U32(x) => json!(x),
        GgufValue::I32(x) => json!(x),
        GgufValue::U64(x) => json!(x),
        GgufValue::I64(x) => json!(x),
    }
}

fn print_gguf(g: &Value) {
    println!(
        "virtual GGUF ({}): {} bytes, header {} bytes",
        g["file_type"].as_str().unwrap_or_default(),
        g["size"],
        g["header_size"]
    );
    let kvs = g["kv"].as_array().cloned().unwrap_or_default();
    println!("* {} key/value pairs", kvs.len());
    for (i, kv) in kvs.iter().enumerate() {
        let v = &kv["value"];
        let shown = if v.is_object() {
            format!("[{}] {} {}", v["element_type"].as_str().unwrap_or(""), v["length"], v["head"])
        } else {
            v.to_string()
        };
        let shown: String = shown.chars().take(100).collect();
        println!(
            "  {:4}: {:<8} | {} = {}",
            i + 1,
            kv["type"].as_str().unwrap_or_default(),
            kv["key"].as_str().unwrap_or_default(),
            shown
        );
    }
    let ts = g["tensors"].as_array().cloned().unwrap_or_default();
    println!("* {} tensors", ts.len());
    for (i, t) in ts.iter().enumerate() {
        println!(
            "  {:4}: {:<5} {:<40} {:<20} @ {}",
            i + 1,
            t["type"].as_str().unwrap_or_default(),
            t["name"].as_str().unwrap_or_default(),
            t["ne"].to_string(),
            t["offset"]
        );
    }
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
