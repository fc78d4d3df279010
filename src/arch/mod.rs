//! Model architectures: one file per family, registered by Hugging Face class name.
//! An architecture maps a config to GGUF KVs and HF tensors to GGUF tensors. It knows
//! nothing of HTTP: it sees a `SourceModel` (metadata only).

pub mod bert;
pub mod ctx;
pub mod deepseek;
pub mod experts;
pub mod gemma;
pub mod gemma3;
pub mod gpt2;
pub mod gptneox;
pub mod granite;
pub mod hparams;
pub mod llama;
pub mod llama4;
pub mod names;
pub mod olmo2;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;
pub mod qwen_moe;
pub mod stablelm;
pub mod starcoder2;
pub mod text;

use serde_json::{Map, Value as Json};

use crate::gguf::KvMap;
use crate::plan::{OutType, PlannedTensor};
use crate::source::SourceModel;
use crate::vocab::VocabError;

/// Why a model cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum ArchError {
    #[error("architecture {0:?} is not supported (supported: {1})")]
    Unsupported(String, String),
    #[error("config.json: {0}")]
    Config(String),
    #[error("tensor {name}: {reason}")]
    Tensor { name: String, reason: String },
    #[error(transparent)]
    Vocab(#[from] VocabError),
}

/// Everything an architecture reads: the source model and its hyper-parameters as the
/// reference sees them (AutoConfig defaults filled in, `text_config` merged, rope normalised).
pub struct ModelCtx<'a> {
    pub source: &'a SourceModel,
    /// The HF class name (`architectures[0]`).
    pub hf_arch: String,
    /// Hyper-parameters after `hparams::load`.
    pub hparams: Map<String, Json>,
    /// The raw config.json (some rules read it, not AutoConfig's view).
    pub raw_config: Map<String, Json>,
    /// Normalised `rope_parameters` (converter-spec §4.2).
    pub rope_parameters: Map<String, Json>,
    /// `find_hparam(["n_layers", "num_hidden_layers", "n_layer", "num_layers"])`.
    pub block_count: Option<u64>,
    pub outtype: OutType,
}

/// One model family's conversion rules (the reference's `ModelBase` subclass).
pub trait Architecture: Sync {
    /// The GGUF `general.architecture` value.
    fn gguf_arch(&self) -> &'static str;

    /// The reference's `generate_extra_tensors`: tensors written first, and KVs that land
    /// right after `general.architecture`.
    fn extra_tensors(&self, _ctx: &ModelCtx, _kv: &mut KvMap) -> Result<Vec<PlannedTensor>, ArchError> {
        Ok(Vec::new())
    }

    /// `modify_tensors` over every source tensor in reference order, giving the output
    /// tensors in file order (without the extra tensors).
    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError>;

    /// `set_gguf_parameters`: the architecture block, including `general.file_type`.
    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError>;

    /// `set_vocab`: the `tokenizer.*` block.
    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError>;

    /// GGUF tensor names (besides the generic rules) that stay F32 whatever the output type
    /// (the reference's per-arch `match_model_tensor_name` list: routers, position embeddings).
    fn is_forced_f32(&self, name: &str) -> bool {
        default_forced_f32(name)
    }
}

/// The F32-forced tensor classes that the common architectures share.
pub fn default_forced_f32(name: &str) -> bool {
    let base = name.strip_suffix(".weight").unwrap_or(name);
    let base = base.rsplit_once('.').map_or(base, |(pre, last)| if pre.starts_with("blk") { last } else { base });
    matches!(base, "ffn_gate_inp" | "ffn_gate_inp_shexp" | "position_embd" | "token_types")
}

/// The registry: HF class name → architecture.
pub fn lookup(hf_arch: &str) -> Result<&'static dyn Architecture, ArchError> {
    REGISTRY
        .iter()
        .find(|(name, _)| *name == hf_arch)
        .map(|(_, a)| *a)
        .ok_or_else(|| ArchError::Unsupported(hf_arch.to_string(), supported().join(", ")))
}

/// Supported HF class names.
pub fn supported() -> Vec<&'static str> {
    REGISTRY.iter().map(|(n, _)| *n).collect()
}

static REGISTRY: &[(&str, &dyn Architecture)] = &[
    ("LlamaForCausalLM", &llama::Llama),
    ("LLaMAForCausalLM", &llama::Llama),
    ("MistralForCausalLM", &llama::Llama),
    ("MixtralForCausalLM", &llama::Llama),
    ("Qwen2ForCausalLM", &qwen2::Qwen2),
    ("Qwen3ForCausalLM", &qwen3::Qwen3),
    ("Qwen3Model", &qwen3::Qwen3),
    ("Qwen3MoeForCausalLM", &qwen_moe::QWEN3MOE),
    ("Qwen2MoeForCausalLM", &qwen_moe::QWEN2MOE),
    ("Phi3ForCausalLM", &phi3::Phi3),
    ("GPTNeoXForCausalLM", &gptneox::GptNeox),
    ("DeepseekV2ForCausalLM", &deepseek::Deepseek2),
    ("DeepseekV3ForCausalLM", &deepseek::Deepseek2),
    ("GPT2LMHeadModel", &gpt2::Gpt2),
    ("GemmaForCausalLM", &gemma::GEMMA),
    ("Gemma2ForCausalLM", &gemma::GEMMA2),
    ("Gemma3ForCausalLM", &gemma3::Gemma3),
    ("Gemma3ForConditionalGeneration", &gemma3::Gemma3),
    ("Olmo2ForCausalLM", &olmo2::Olmo2),
    ("GraniteForCausalLM", &granite::GRANITE),
    ("GraniteMoeForCausalLM", &granite::GRANITE_MOE),
    ("StableLmForCausalLM", &stablelm::StableLm),
    ("Starcoder2ForCausalLM", &starcoder2::Starcoder2),
    ("Llama4ForConditionalGeneration", &llama4::Llama4),
    ("BertModel", &bert::Bert),
    ("BertForMaskedLM", &bert::Bert),
];
#[cfg(test)]
mod tests;
