//! `ggufs inspect ORG/REPO[@REV] [--outtype T]`: what ggufs sees of a model before reading any
//! weight, which is also the quickest way to check access, the pinned commit and the tensor
//! inventory. With `--outtype` it prints the virtual file's header exactly as gguf-py's
//! `gguf_dump` would print the finished file, then how each tensor is made.

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use ggufs::dump::{dump_json, dump_text, DumpOptions};
use ggufs::hub::{HubClient, HubConfig};
use ggufs::plan::layout::{LaidTensor, Layout};
use ggufs::plan::{ElemOp, OutType, RowOrder, TensorSource};
use ggufs::source::{fetch_source, SourceModel};

const EXAMPLES: &str = "\
Examples:
  # Commit, architecture, shards, source tensors, parameters and size of each output type
  ggufs inspect HuggingFaceTB/SmolLM2-135M-Instruct

  # The Q8_0 file's header as gguf_dump prints it, then how each tensor is converted
  ggufs inspect HuggingFaceTB/SmolLM2-135M-Instruct --outtype q8_0

  # Same as `gguf_dump.py --json` on the finished file (add --json-array for array values)
  ggufs inspect Qwen/Qwen2.5-0.5B-Instruct@main --outtype f16 --json | jq '.metadata[\"general.name\"]'";

/// Arguments of `inspect`.
#[derive(Args)]
#[command(
    long_about = "Describe a Hub model from metadata only (config, tokenizer files, safetensors headers): no \
                  tensor data is read.\n\n\
                  Without --outtype: the pinned commit, architecture, files, shards, source tensors, parameter \
                  count and the size of each output type. With --outtype: the virtual GGUF's header in \
                  gguf-py's gguf_dump shape (KV list, then tensor list; --json gives exactly gguf_dump's \
                  --json document), followed by which source tensors make each GGUF tensor and how \
                  (dtype -> type, permuted, stacked, transposed, generated).",
    after_help = EXAMPLES
)]
pub struct InspectArgs {
    /// `ORG/REPO` or `ORG/REPO@REVISION`.
    repo: String,
    /// Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co).
    #[arg(long)]
    endpoint: Option<String>,
    /// Print JSON instead of text (with --outtype: gguf_dump's --json document).
    #[arg(long)]
    json: bool,
    /// With --outtype --json: include array values (gguf_dump's --json-array).
    #[arg(long, requires = "outtype")]
    json_array: bool,
    /// With --outtype: leave out the tensor list (gguf_dump's --no-tensors).
    #[arg(long, requires = "outtype")]
    no_tensors: bool,
    /// Show the virtual GGUF of this output type (f32, f16, bf16, q8_0, or a llama-quantize type:
    /// q4_k_m, q5_k_m, q6_k, q4_0, q8_0-lq, whose per-tensor type choices are listed too).
    #[arg(long, value_parser = super::pull::parse_outtype)]
    outtype: Option<OutType>,
}

/// Runs the subcommand.
pub async fn run(args: InspectArgs) -> anyhow::Result<()> {
    let (repo, rev) = super::parse_repo_ref(&args.repo)?;
    let client = HubClient::new(HubConfig::from_env(args.endpoint.clone()))?;
    let model = fetch_source(&client, &repo, &rev).await.with_context(|| format!("inspecting {repo}@{rev}"))?;
    tracing::info!("resolved {repo}@{rev}: commit {}", model.commit);
    let text = match args.outtype {
        Some(t) => {
            let layout = ggufs::plan::layout::build(&model, t).with_context(|| format!("converting {repo}@{rev}"))?;
            gguf_view(&args, &model, &layout)?
        }
        None => {
            let mut report = describe(&model);
            report["outputs"] = outputs(&model);
            if args.json {
                serde_json::to_string_pretty(&report)?
            } else {
                source_text(&report)
            }
        }
    };
    super::write_stdout(format!("{text}\n").as_bytes())
}

/// The `--outtype` view: gguf_dump's output for the virtual file, plus (text only) how each
/// tensor is made and the totals.
fn gguf_view(args: &InspectArgs, model: &SourceModel, layout: &Layout) -> anyhow::Result<String> {
    let opts = DumpOptions { json_array: args.json_array, no_tensors: args.no_tensors };
    let name = format!("{}-{}.gguf", ggufs::catalog::repo_file_stem(&layout.repo_id), layout.outtype.name());
    if args.json {
        return Ok(serde_json::to_string(&dump_json(&layout.header, &name, opts)?)?);
    }
    let mut text = dump_text(&layout.header, opts)?;
    text.push_str(&format!("* Conversion of {} tensor(s) ({name}, commit {})\n", layout.tensors.len(), layout.commit));
    for (n, t) in layout.tensors.iter().enumerate() {
        text.push_str(&format!("  {:5}: {:<32} {:<5} <- {}\n", n + 1, t.info.name, t.info.ty.name(), how(model, t)));
    }
    let params: u64 = layout.tensors.iter().map(|t| t.info.n_elements()).sum();
    text.push_str(&format!("* Parameters: {params}\n* Size per output type:\n"));
    for o in sizes(layout).as_array().into_iter().flatten() {
        text.push_str(&format!("  {:<5} {} bytes\n", o["type"].as_str().unwrap_or_default(), o["size"]));
    }
    Ok(text.trim_end().to_string())
}

/// How a GGUF tensor is made from the source: the source tensor(s) and dtype, then each
/// transformation (stacked, permuted, regrouped, sliced, +1, transposed, generated).
fn how(model: &SourceModel, t: &LaidTensor) -> String {
    let src = |i: usize| model.tensors.get(i);
    match &t.plan.source {
        TensorSource::Rows { parts, order, op, .. } => {
            let first = parts.first().and_then(|&i| src(i));
            let (name, dtype) = first.map(|s| (s.name.as_str(), s.dtype.name())).unwrap_or(("?", "?"));
            let mut s = format!("{name} ({dtype} -> {})", t.info.ty.name());
            if parts.len() > 1 {
                s = format!("{} tensors stacked: {s}, ...", parts.len());
            }
            match order {
                RowOrder::Identity => {}
                RowOrder::PermuteQk { n_head } => s.push_str(&format!(", Q/K rows permuted ({n_head} heads)")),
                RowOrder::NeoxQkv { n_head } => s.push_str(&format!(", fused QKV regrouped ({n_head} heads)")),
                RowOrder::Offset { start } => s.push_str(&format!(", rows from {start}")),
                RowOrder::Strided { block, start, take } => {
                    s.push_str(&format!(", rows {start}..{} of every {block}", start + take))
                }
            }
            if matches!(op, ElemOp::AddOne | ElemOp::AddOneRoundF16) {
                s.push_str(", +1");
            }
            s
        }
        TensorSource::Transposed { src: i } => {
            let (name, dtype) = src(*i).map(|s| (s.name.as_str(), s.dtype.name())).unwrap_or(("?", "?"));
            format!("{name} ({dtype} -> {}), transposed", t.info.ty.name())
        }
        TensorSource::HeadTransposed { src: i, group, start, len } => {
            let (name, dtype) = src(*i).map(|s| (s.name.as_str(), s.dtype.name())).unwrap_or(("?", "?"));
            format!(
                "{name} ({dtype} -> {}), rows {start}..{} of every {group} transposed per head",
                t.info.ty.name(),
                start + len
            )
        }
        TensorSource::ExpertsTransposed { src: i, start, len } => {
            let (name, dtype) = src(*i).map(|s| (s.name.as_str(), s.dtype.name())).unwrap_or(("?", "?"));
            format!(
                "{name} ({dtype} -> {}), columns {start}..{} of every expert transposed",
                t.info.ty.name(),
                start + len
            )
        }
        TensorSource::Generated(values) => {
            format!("generated from config.json ({} values -> {})", values.len(), t.info.ty.name())
        }
    }
}

/// Parameter count and file size of every output type (or why the model cannot be converted).
fn outputs(model: &SourceModel) -> Value {
    match ggufs::plan::layout::build(model, OutType::ALL[0]) {
        Ok(first) => sizes(&first),
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// Parameter count and file size of every output type, from one built layout.
fn sizes(first: &Layout) -> Value {
    let params: u64 = first.tensors.iter().map(|t| t.info.n_elements()).sum();
    let sizes = OutType::ALL.into_iter().map(|t| {
        let size =
            if t == first.outtype { Ok(first.size) } else { ggufs::plan::layout::retype(first, t).map(|l| l.size) };
        match size {
            Ok(size) => json!({"type": t.name(), "parameters": params, "size": size}),
            Err(e) => json!({"type": t.name(), "error": e.to_string()}),
        }
    });
    Value::Array(sizes.collect())
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

fn source_text(r: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut out = format!(
        "repo:          {}\ncommit:        {}\narchitectures: {}\nparameters:    {} (source tensors)\n",
        s(&r["repo"]),
        s(&r["commit"]),
        r["architectures"],
        r["parameters"]
    );
    out.push_str("output files:\n");
    match r["outputs"].as_array() {
        Some(list) => {
            for o in list {
                out.push_str(&format!("  {:<5} {} bytes, {} parameters\n", s(&o["type"]), o["size"], o["parameters"]));
            }
        }
        None => out.push_str(&format!("  not convertible: {}\n", s(&r["outputs"]["error"]))),
    }
    out.push_str("metadata files:\n");
    for f in r["files"].as_array().into_iter().flatten() {
        out.push_str(&format!("  {}\n", s(f)));
    }
    out.push_str("shards:\n");
    for sh in r["shards"].as_array().into_iter().flatten() {
        out.push_str(&format!("  {} ({} bytes)\n", s(&sh["path"]), sh["size"]));
    }
    let tensors = r["tensors"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("tensors ({}):\n", tensors.len()));
    for t in &tensors {
        out.push_str(&format!(
            "  {:<48} {:<5} {:<16} {} [{}, {})\n",
            s(&t["name"]),
            s(&t["dtype"]),
            t["shape"].to_string(),
            s(&t["shard"]),
            t["start"],
            t["end"]
        ));
    }
    out.trim_end().to_string()
}
