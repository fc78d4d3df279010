//! HF tensor name → GGUF tensor name: the subset of gguf-py's `TensorNameMap` the supported
//! families need, as data. Each family lists its tables; GGUF names map to themselves.

use super::ArchError;

/// One mapping: an HF name (with `{bid}` for the layer number in block tensors) and the GGUF
/// base name (with `{bid}` likewise).
pub type NameRule = (&'static str, &'static str);

/// Non-block tensors shared by the decoder families.
pub const COMMON: &[NameRule] = &[
    ("model.embed_tokens", "token_embd"),
    ("embed_tokens", "token_embd"),
    ("model.norm", "output_norm"),
    ("norm", "output_norm"),
    ("lm_head", "output"),
    ("model.lm_head", "output"),
];

/// The Llama-style block (`model.layers.N.*`), also used by Qwen2 and Phi-3.
pub const LLAMA_BLOCK: &[NameRule] = &[
    ("model.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"),
    ("model.layers.{bid}.self_attn.q_proj", "blk.{bid}.attn_q"),
    ("model.layers.{bid}.self_attn.k_proj", "blk.{bid}.attn_k"),
    ("model.layers.{bid}.self_attn.v_proj", "blk.{bid}.attn_v"),
    ("model.layers.{bid}.self_attn.o_proj", "blk.{bid}.attn_output"),
    ("model.layers.{bid}.post_attention_layernorm", "blk.{bid}.ffn_norm"),
    ("model.layers.{bid}.mlp.gate_proj", "blk.{bid}.ffn_gate"),
    ("model.layers.{bid}.mlp.up_proj", "blk.{bid}.ffn_up"),
    ("model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"),
];

/// Mixtral's router and stacked experts (the stacks are renamed `layers.N.feed_forward...`).
pub const MIXTRAL_BLOCK: &[NameRule] = &[
    ("model.layers.{bid}.block_sparse_moe.gate", "blk.{bid}.ffn_gate_inp"),
    ("layers.{bid}.feed_forward.experts.w1", "blk.{bid}.ffn_gate_exps"),
    ("layers.{bid}.feed_forward.experts.w2", "blk.{bid}.ffn_down_exps"),
    ("layers.{bid}.feed_forward.experts.w3", "blk.{bid}.ffn_up_exps"),
];

/// Phi-3's fused projections (gate‖up maps to `ffn_up`: the runtime splits it).
pub const PHI3_BLOCK: &[NameRule] = &[
    ("model.layers.{bid}.self_attn.qkv_proj", "blk.{bid}.attn_qkv"),
    ("model.layers.{bid}.mlp.gate_up_proj", "blk.{bid}.ffn_up"),
];

/// Gemma 2/3 norms; `post_attention_layernorm` overrides the Llama meaning (last one wins).
pub const GEMMA3_BLOCK: &[NameRule] = &[
    ("model.layers.{bid}.post_attention_layernorm", "blk.{bid}.post_attention_norm"),
    ("model.layers.{bid}.pre_feedforward_layernorm", "blk.{bid}.ffn_norm"),
    ("model.layers.{bid}.post_feedforward_layernorm", "blk.{bid}.post_ffw_norm"),
    ("model.layers.{bid}.self_attn.q_norm", "blk.{bid}.attn_q_norm"),
    ("model.layers.{bid}.self_attn.k_norm", "blk.{bid}.attn_k_norm"),
];

/// Per-head Q/K RMSNorms (Qwen3, Qwen3-MoE, OLMo-2 style).
pub const QK_NORM_BLOCK: &[NameRule] = &[
    ("model.layers.{bid}.self_attn.q_norm", "blk.{bid}.attn_q_norm"),
    ("model.layers.{bid}.self_attn.k_norm", "blk.{bid}.attn_k_norm"),
];

/// OLMo-2's post-norms: `post_attention_layernorm` is a post-norm here, not the FFN pre-norm.
pub const OLMO2_BLOCK: &[NameRule] = &[
    ("model.layers.{bid}.post_attention_layernorm", "blk.{bid}.post_attention_norm"),
    ("model.layers.{bid}.post_feedforward_layernorm", "blk.{bid}.post_ffw_norm"),
];

/// StarCoder2's GPT-style MLP inside a Llama-style block.
pub const STARCODER2_BLOCK: &[NameRule] =
    &[("model.layers.{bid}.mlp.c_fc", "blk.{bid}.ffn_up"), ("model.layers.{bid}.mlp.c_proj", "blk.{bid}.ffn_down")];

/// Granite MoE: the router and the down projections (gate/up come fused, split by the family).
pub const GRANITE_MOE_BLOCK: &[NameRule] = &[
    ("model.layers.{bid}.block_sparse_moe.router.layer", "blk.{bid}.ffn_gate_inp"),
    ("model.layers.{bid}.block_sparse_moe.output_linear", "blk.{bid}.ffn_down_exps"),
];

/// GPT-2, with and without the `transformer.` prefix.
pub const GPT2: &[NameRule] = &[
    ("transformer.wte", "token_embd"),
    ("wte", "token_embd"),
    ("transformer.wpe", "position_embd"),
    ("wpe", "position_embd"),
    ("transformer.ln_f", "output_norm"),
    ("ln_f", "output_norm"),
    ("lm_head", "output"),
    ("transformer.h.{bid}.ln_1", "blk.{bid}.attn_norm"),
    ("h.{bid}.ln_1", "blk.{bid}.attn_norm"),
    ("transformer.h.{bid}.attn.c_attn", "blk.{bid}.attn_qkv"),
    ("h.{bid}.attn.c_attn", "blk.{bid}.attn_qkv"),
    ("transformer.h.{bid}.attn.c_proj", "blk.{bid}.attn_output"),
    ("h.{bid}.attn.c_proj", "blk.{bid}.attn_output"),
    ("transformer.h.{bid}.ln_2", "blk.{bid}.ffn_norm"),
    ("h.{bid}.ln_2", "blk.{bid}.ffn_norm"),
    ("transformer.h.{bid}.mlp.c_fc", "blk.{bid}.ffn_up"),
    ("h.{bid}.mlp.c_fc", "blk.{bid}.ffn_up"),
    ("transformer.h.{bid}.mlp.c_proj", "blk.{bid}.ffn_down"),
    ("h.{bid}.mlp.c_proj", "blk.{bid}.ffn_down"),
];

/// Qwen2/Qwen3 MoE: router, stacked experts (named as the reference merges them), shared expert.
pub const QWEN_MOE_BLOCK: &[NameRule] = &[
    ("model.layers.{bid}.mlp.gate", "blk.{bid}.ffn_gate_inp"),
    ("model.layers.{bid}.mlp.experts.down_proj", "blk.{bid}.ffn_down_exps"),
    ("model.layers.{bid}.mlp.experts.gate_proj", "blk.{bid}.ffn_gate_exps"),
    ("model.layers.{bid}.mlp.experts.up_proj", "blk.{bid}.ffn_up_exps"),
    ("model.layers.{bid}.mlp.shared_expert.gate_proj", "blk.{bid}.ffn_gate_shexp"),
    ("model.layers.{bid}.mlp.shared_expert.up_proj", "blk.{bid}.ffn_up_shexp"),
    ("model.layers.{bid}.mlp.shared_expert.down_proj", "blk.{bid}.ffn_down_shexp"),
    ("model.layers.{bid}.mlp.shared_expert_gate", "blk.{bid}.ffn_gate_inp_shexp"),
];

/// GPT-NeoX / Pythia.
pub const GPTNEOX: &[NameRule] = &[
    ("gpt_neox.embed_in", "token_embd"),
    ("embed_out", "output"),
    ("gpt_neox.final_layer_norm", "output_norm"),
    ("gpt_neox.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"),
    ("gpt_neox.layers.{bid}.attention.query_key_value", "blk.{bid}.attn_qkv"),
    ("gpt_neox.layers.{bid}.attention.dense", "blk.{bid}.attn_output"),
    ("gpt_neox.layers.{bid}.post_attention_layernorm", "blk.{bid}.ffn_norm"),
    ("gpt_neox.layers.{bid}.mlp.dense_h_to_4h", "blk.{bid}.ffn_up"),
    ("gpt_neox.layers.{bid}.mlp.dense_4h_to_h", "blk.{bid}.ffn_down"),
];

/// A family's name map: its tables in order (later tables win, as in gguf-py).
pub struct NameMap {
    pub tables: &'static [&'static [NameRule]],
    pub n_blocks: u64,
}

impl NameMap {
    /// `map_tensor_name`: exact match, else with `.weight`/`.bias` stripped and re-appended.
    pub fn map(&self, hf_name: &str) -> Result<String, ArchError> {
        if let Some(n) = self.lookup(hf_name) {
            return Ok(n);
        }
        for suffix in [".weight", ".bias"] {
            if let Some(base) = hf_name.strip_suffix(suffix) {
                if let Some(n) = self.lookup(base) {
                    return Ok(format!("{n}{suffix}"));
                }
            }
        }
        Err(ArchError::Tensor { name: hf_name.to_string(), reason: "can not map tensor to a GGUF name".into() })
    }

    fn lookup(&self, base: &str) -> Option<String> {
        let mut found = None;
        for table in self.tables {
            for (hf, gguf) in table.iter() {
                let hit = match_rule(hf, base, self.n_blocks)
                    .or_else(|| match_rule(gguf, base, self.n_blocks))
                    .map(|bid| fill(gguf, bid));
                if hit.is_some() {
                    found = hit;
                }
            }
        }
        found
    }
}

/// Some(bid) when `name` matches `pattern` (bid is None for non-block patterns).
fn match_rule(pattern: &str, name: &str, n_blocks: u64) -> Option<Option<u64>> {
    match pattern.split_once("{bid}") {
        None => (pattern == name).then_some(None),
        Some((pre, post)) => {
            let mid = name.strip_prefix(pre)?.strip_suffix(post)?;
            if mid.is_empty() || !mid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let bid: u64 = mid.parse().ok()?;
            // gguf-py builds names for 0..n_blocks only; "01" is not "1".
            (bid < n_blocks && bid.to_string() == mid).then_some(Some(bid))
        }
    }
}

fn fill(gguf: &str, bid: Option<u64>) -> String {
    match bid {
        Some(b) => gguf.replace("{bid}", &b.to_string()),
        None => gguf.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_with_suffixes_and_block_numbers() {
        let m = NameMap { tables: &[COMMON, LLAMA_BLOCK], n_blocks: 12 };
        assert_eq!(m.map("model.layers.11.self_attn.q_proj.bias").unwrap(), "blk.11.attn_q.bias");
        assert_eq!(m.map("lm_head.weight").unwrap(), "output.weight");
        assert_eq!(m.map("blk.3.attn_q.weight").unwrap(), "blk.3.attn_q.weight");
        assert!(m.map("model.layers.12.self_attn.q_proj.weight").is_err());
        let e = m.map("model.layers.0.foo.weight").unwrap_err().to_string();
        assert!(e.contains("model.layers.0.foo.weight"), "{e}");
    }

    #[test]
    fn later_tables_win() {
        let m = NameMap { tables: &[COMMON, LLAMA_BLOCK, GEMMA3_BLOCK], n_blocks: 1 };
        assert_eq!(
            m.map("model.layers.0.post_attention_layernorm.weight").unwrap(),
            "blk.0.post_attention_norm.weight"
        );
    }
}
