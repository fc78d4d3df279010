//! llama-quantize's per-tensor type choice (`llama_tensor_get_type` in the pinned
//! llama.cpp `src/llama-quant.cpp`), ported for the ftypes ggufs offers: Q4_0, Q8_0,
//! Q4_K_M, Q5_K_M and Q6_K, without an importance matrix or user overrides.

use crate::gguf::GgmlType;
use crate::plan::OutType;

/// The broad tensor roles llama-quantize's rules are written in (`tensor_get_category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

impl Category {
    /// The category of a tensor name; the checks run in llama-quantize's order, so
    /// `ffn_up_exps` is FfnUp and `blk.0.ffn_down_shexp.weight` is FfnDown.
    pub fn of(name: &str) -> Self {
        if name == "output.weight" {
            return Category::Output;
        }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            return Category::TokenEmbd;
        }
        const SUBSTRINGS: [(&str, Category); 9] = [
            ("attn_qkv.weight", Category::AttnQkv),
            ("attn_kv_b.weight", Category::AttnKvB),
            ("attn_v.weight", Category::AttnV),
            ("attn_k.weight", Category::AttnK),
            ("attn_q.weight", Category::AttnQ),
            ("attn_output.weight", Category::AttnOutput),
            ("ffn_up", Category::FfnUp),
            ("ffn_gate", Category::FfnGate),
            ("ffn_down", Category::FfnDown),
        ];
        SUBSTRINGS.iter().find(|(s, _)| name.contains(s)).map_or(Category::Other, |(_, c)| *c)
    }

    /// attn_v, attn_qkv and attn_kv_b share the "more bits" rules (`category_is_attn_v`).
    pub fn is_attn_v(self) -> bool {
        matches!(self, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
    }
}

/// Substrings that keep a tensor out of quantization (`tensor_allows_quantization`).
const NEVER_QUANTIZED: [&str; 35] = [
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
];

/// Whether llama-quantize quantizes a tensor at all: 2-D or more (after trimming trailing
/// size-1 dims), a `weight`, and none of the excluded names. Other tensors are copied.
pub fn allows_quantization(name: &str, n_dims: usize) -> bool {
    if n_dims < 2 || !name.ends_with("weight") {
        return false;
    }
    // exact names in the reference (LLM_TN(arch) POS_EMBD / TOKEN_TYPES), the same for
    // every architecture ggufs converts
    if name == "position_embd.weight" || name == "token_types.weight" {
        return false;
    }
    !NEVER_QUANTIZED.iter().any(|s| name.contains(s))
}

/// Model facts the rules depend on (from the F16 file's KVs, as llama.cpp's `load_hparams`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFacts {
    /// `general.architecture`.
    pub arch: String,
    /// `{arch}.block_count` (`n_layer_all`).
    pub n_layer: u64,
    /// `{arch}.expert_count`, 0 when absent.
    pub n_expert: u64,
    /// llama.cpp classifies the model as 70B (`LLM_TYPE_70B`).
    pub is_70b: bool,
}

/// Why a type cannot be chosen (llama-quantize throws in these cases).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("failed to determine the layer of an expert-model tensor")]
    NoLayer,
    #[error("layer {layer} is outside [0, {n_layer})")]
    BadLayer { layer: i64, n_layer: u64 },
}

/// The running state of one quantization pass: counters advance in output-tensor order.
#[derive(Debug, Clone)]
pub struct Selector {
    outtype: OutType,
    facts: ModelFacts,
    n_attention_wv: u64,
    has_tied_embeddings: bool,
    i_attention_wv: u64,
    i_ffn_down: u64,
}

impl Selector {
    /// A selector for `outtype` over the tensors named `names` (all of them: the attn_v
    /// count and the tied-embedding check look at every tensor).
    pub fn new<'a>(outtype: OutType, facts: ModelFacts, names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut n_attention_wv = 0;
        let mut has_tied_embeddings = true;
        for name in names {
            let c = Category::of(name);
            n_attention_wv += u64::from(c.is_attn_v());
            has_tied_embeddings &= c != Category::Output;
        }
        Selector { outtype, facts, n_attention_wv, has_tied_embeddings, i_attention_wv: 0, i_ffn_down: 0 }
    }

    /// The type of the next tensor (call in output order): `current` when it is not
    /// quantized, else the ftype's choice after the shape fallback.
    pub fn choose(&mut self, name: &str, ne: &[u64], current: GgmlType) -> Result<GgmlType, SelectError> {
        if !allows_quantization(name, ne.len()) {
            return Ok(current);
        }
        let ne0 = ne.first().copied().unwrap_or(1);
        let ty = self.by_rules(name, ne0, self.outtype.ggml_type())?;
        Ok(fallback(ty, ne0))
    }

    fn falcon(&self) -> bool {
        self.facts.arch == "falcon"
    }

    /// `llama_tensor_get_type_impl` for the supported ftypes.
    fn by_rules(&mut self, name: &str, ne0: u64, default: GgmlType) -> Result<GgmlType, SelectError> {
        let category = Category::of(name);
        let mut ty = default;
        let n_expert = self.facts.n_expert;
        if category == Category::Output || (self.has_tied_embeddings && category == Category::TokenEmbd) {
            if self.falcon() || !ne0.is_multiple_of(ty.block().0) {
                ty = GgmlType::Q8_0;
            } else if ty != GgmlType::Q8_0 {
                ty = GgmlType::Q6K;
            }
        } else if category == Category::TokenEmbd {
            // the TOKEN_EMBD branch changes only IQ/TQ/Q2_0 ftypes
        } else if category.is_attn_v() {
            let k_m = matches!(self.outtype, OutType::Q4KM | OutType::Q5KM);
            if k_m && use_more_bits(self.i_attention_wv, self.n_attention_wv) {
                ty = GgmlType::Q6K;
            }
            if self.facts.is_70b && matches!(ty, GgmlType::Q3K | GgmlType::Q4K) {
                ty = GgmlType::Q5K;
            }
            if n_expert == 8 {
                ty = GgmlType::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if category == Category::AttnK {
            if n_expert == 8 {
                ty = GgmlType::Q8_0;
            }
        } else if category == Category::FfnDown {
            let (i, n) = self.layer_info(self.i_ffn_down, name)?;
            match self.outtype {
                OutType::Q4KM if self.falcon() => {
                    ty = if i < n / 16 {
                        GgmlType::Q6K
                    } else if use_more_bits(i, n) {
                        GgmlType::Q5K
                    } else {
                        GgmlType::Q4K
                    };
                }
                OutType::Q4KM | OutType::Q5KM if use_more_bits(i, n) => ty = GgmlType::Q6K,
                _ => {}
            }
            self.i_ffn_down += 1;
        } else if category == Category::AttnOutput {
            if !self.falcon() && n_expert == 8 && self.outtype == OutType::Q4KM {
                ty = GgmlType::Q5K;
            }
        } else if matches!(category, Category::FfnGate | Category::FfnUp) {
            // no change for these ftypes, but the layer lookup can still fail
            self.layer_info(0, name)?;
        }
        Ok(ty)
    }

    /// (layer, layer count) of an ffn tensor: the counter for dense models, the `blk.N.`
    /// number for expert models (their expert tensors are not in layer order).
    fn layer_info(&self, counter: u64, name: &str) -> Result<(u64, u64), SelectError> {
        let n_layer = self.facts.n_layer;
        if self.facts.n_expert <= 1 {
            return Ok((counter, n_layer));
        }
        let layer = block_number(name).ok_or(SelectError::NoLayer)?;
        if layer < 0 || layer as u64 >= n_layer {
            return Err(SelectError::BadLayer { layer, n_layer });
        }
        Ok((layer as u64, n_layer))
    }
}

/// `use_more_bits`: the first and last eighth of the layers, and every third in between.
pub fn use_more_bits(i: u64, n: u64) -> bool {
    let (i, n) = (i as i64, n as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// `tensor_type_fallback`: a row that is not a whole number of `ty` blocks takes a smaller
/// block type, and F16 when even that does not fit.
pub fn fallback(ty: GgmlType, ne0: u64) -> GgmlType {
    if ne0.is_multiple_of(ty.block().0) {
        return ty;
    }
    let smaller = match ty {
        GgmlType::Q2K | GgmlType::Q3K => GgmlType::Q4_0,
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q5K => GgmlType::Q5_1,
        GgmlType::Q6K => GgmlType::Q8_0,
        other => other,
    };
    if ne0.is_multiple_of(smaller.block().0) {
        smaller
    } else {
        GgmlType::F16
    }
}

/// The layer number `sscanf(name, "blk.%d.")` reads, if any.
pub fn block_number(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let (sign, digits) = match rest.as_bytes().first() {
        Some(b'-') => (-1, &rest[1..]),
        Some(b'+') => (1, &rest[1..]),
        _ => (1, rest),
    };
    let end = digits.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    digits.get(..end).filter(|d| !d.is_empty())?.parse::<i64>().ok().map(|v| sign * v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_more_bits_matches_the_documented_layers() {
        let layers = |n| (0..n).filter(|&i| use_more_bits(i, n)).collect::<Vec<_>>();
        assert_eq!(layers(32), vec![0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
        assert_eq!(layers(28), vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]);
        assert_eq!(layers(80).len(), 40);
        assert_eq!(layers(2), vec![1]);
    }

    #[test]
    fn fallbacks_follow_block_sizes() {
        assert_eq!(fallback(GgmlType::Q4K, 64), GgmlType::Q5_0);
        assert_eq!(fallback(GgmlType::Q5K, 64), GgmlType::Q5_1);
        assert_eq!(fallback(GgmlType::Q6K, 64), GgmlType::Q8_0);
        assert_eq!(fallback(GgmlType::Q6K, 256), GgmlType::Q6K);
        assert_eq!(fallback(GgmlType::Q4K, 48), GgmlType::F16);
        assert_eq!(fallback(GgmlType::Q4_0, 48), GgmlType::F16);
        assert_eq!(fallback(GgmlType::Q8_0, 2048), GgmlType::Q8_0);
    }

    #[test]
    fn categories_use_the_reference_order() {
        assert_eq!(Category::of("output.weight"), Category::Output);
        assert_eq!(Category::of("blk.0.ffn_down_exps.weight"), Category::FfnDown);
        assert_eq!(Category::of("blk.0.ffn_gate_inp.weight"), Category::FfnGate);
        assert_eq!(Category::of("blk.3.attn_qkv.weight"), Category::AttnQkv);
        assert!(Category::of("blk.3.attn_qkv.weight").is_attn_v());
        assert_eq!(Category::of("blk.3.attn_q_norm.weight"), Category::Other);
    }

    #[test]
    fn never_quantized_names() {
        assert!(!allows_quantization("blk.0.attn_norm.weight", 2));
        assert!(!allows_quantization("blk.0.ffn_gate_inp.weight", 2));
        assert!(!allows_quantization("position_embd.weight", 2));
        assert!(!allows_quantization("blk.0.attn_q.bias", 2));
        assert!(!allows_quantization("blk.0.attn_q.weight", 1));
        assert!(allows_quantization("blk.0.attn_q.weight", 2));
    }

    #[test]
    fn block_numbers_parse_like_sscanf() {
        assert_eq!(block_number("blk.12.attn_q.weight"), Some(12));
        assert_eq!(block_number("output.weight"), None);
        assert_eq!(block_number("blk.x"), None);
    }

    fn facts(n_layer: u64, n_expert: u64) -> ModelFacts {
        ModelFacts { arch: "llama".into(), n_layer, n_expert, is_70b: false }
    }

    /// Q4_K_M on 8 layers: attn_v and ffn_down get Q6_K on use_more_bits layers {0, 3, 6, 7};
    /// untied output gets Q6_K and token_embd keeps Q4_K.
    #[test]
    fn q4_k_m_more_bits_layers() {
        let names: Vec<String> = (0..8).map(|i| format!("blk.{i}.attn_v.weight")).collect();
        let all: Vec<&str> = names.iter().map(String::as_str).chain(["output.weight"]).collect();
        let mut s = Selector::new(OutType::Q4KM, facts(8, 0), all.iter().copied());
        let got: Vec<GgmlType> = names.iter().map(|n| s.choose(n, &[256, 256], GgmlType::F16).unwrap()).collect();
        let q6: Vec<usize> = got.iter().enumerate().filter(|(_, t)| **t == GgmlType::Q6K).map(|(i, _)| i).collect();
        assert_eq!(q6, vec![0, 3, 6, 7]);
        assert_eq!(s.choose("output.weight", &[256, 1000], GgmlType::F16).unwrap(), GgmlType::Q6K);
        assert_eq!(s.choose("token_embd.weight", &[256, 1000], GgmlType::F16).unwrap(), GgmlType::Q4K);
    }

    /// Tied embeddings take the output rules; Q4_0 on a 64-wide embedding → Q6_K → Q8_0.
    #[test]
    fn tied_embedding_is_output() {
        let mut s = Selector::new(OutType::Q4_0, facts(2, 0), ["token_embd.weight"]);
        assert_eq!(s.choose("token_embd.weight", &[64, 100], GgmlType::F16).unwrap(), GgmlType::Q8_0);
        let mut s = Selector::new(OutType::Q4_0, facts(2, 0), ["token_embd.weight"]);
        assert_eq!(s.choose("token_embd.weight", &[256, 100], GgmlType::F16).unwrap(), GgmlType::Q6K);
    }

    /// 8 experts: attn_v/attn_k → Q8_0, attn_output → Q5_K (Q4_K_M only).
    #[test]
    fn eight_experts() {
        let mut s = Selector::new(OutType::Q4KM, facts(2, 8), ["blk.0.attn_v.weight"]);
        assert_eq!(s.choose("blk.0.attn_v.weight", &[256, 256], GgmlType::F16).unwrap(), GgmlType::Q8_0);
        assert_eq!(s.choose("blk.0.attn_k.weight", &[256, 256], GgmlType::F16).unwrap(), GgmlType::Q8_0);
        assert_eq!(s.choose("blk.0.attn_output.weight", &[256, 256], GgmlType::F16).unwrap(), GgmlType::Q5K);
        let mut s = Selector::new(OutType::Q5KM, facts(2, 8), ["blk.0.attn_v.weight"]);
        assert_eq!(s.choose("blk.0.attn_output.weight", &[256, 256], GgmlType::F16).unwrap(), GgmlType::Q5K);
        assert_eq!(
            s.choose("blk.9.ffn_down_exps.weight", &[256, 256, 8], GgmlType::F16),
            Err(SelectError::BadLayer { layer: 9, n_layer: 2 })
        );
    }
}
