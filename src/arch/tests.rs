//! Every family against the fixture goldens: tensor names/shapes in order, the architecture
//! KVs in order, and (from the fixture weights) the bytes of transformed tensors.

use sha2::{Digest, Sha256};

use super::{lookup, ModelCtx};
use crate::gguf::KvMap;
use crate::plan::{ElemOp, OutType, PlannedTensor, TensorSource};
use crate::source::SourceModel;
use crate::testutil::{assert_kvs_match, fixture_source, fixture_tensor_f32, golden, BREADTH_FIXTURES, FIXTURES};

fn plan(src: &SourceModel) -> (Vec<PlannedTensor>, KvMap, &'static str) {
    plan_for(src, OutType::F16)
}

fn plan_for(src: &SourceModel, outtype: OutType) -> (Vec<PlannedTensor>, KvMap, &'static str) {
    let ctx = ModelCtx::new(src, outtype).unwrap();
    let arch = lookup(&ctx.hf_arch).unwrap();
    let mut kv = KvMap::new();
    let mut tensors = arch.extra_tensors(&ctx, &mut kv).unwrap();
    tensors.extend(arch.tensors(&ctx).unwrap());
    arch.set_parameters(&ctx, &mut kv).unwrap();
    (tensors, kv, arch.gguf_arch())
}

/// The public fixtures and the breadth fixtures committed in this repo.
fn all_fixtures() -> impl Iterator<Item = &'static str> {
    FIXTURES.into_iter().chain(BREADTH_FIXTURES)
}

#[test]
fn tensor_names_and_shapes_match_goldens_in_order() {
    for repo in all_fixtures() {
        let src = fixture_source(repo);
        let (tensors, _, _) = plan(&src);
        let g = golden(repo, "F16");
        let want: Vec<(String, Vec<u64>)> = g["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let mut ne: Vec<u64> = t["ne"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
                ne.reverse();
                (t["name"].as_str().unwrap().to_string(), ne)
            })
            .collect();
        let got: Vec<(String, Vec<u64>)> = tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
        assert_eq!(got, want, "{repo}");
    }
}

#[test]
fn architecture_kvs_match_goldens_in_order() {
    for repo in all_fixtures() {
        let src = fixture_source(repo);
        let (_, kv, _) = plan(&src);
        let g = golden(repo, "F16");
        assert_kvs_match(&kv, &g, |k| {
            !k.starts_with("general.") && !k.starts_with("tokenizer.") || k == "general.file_type"
        });
    }
}

/// The output tensor as f32, computed from the fixture's source data.
fn output_f32(repo: &str, src: &SourceModel, t: &PlannedTensor) -> Vec<f32> {
    match &t.source {
        TensorSource::Generated(v) => v.clone(),
        TensorSource::Transposed { src: i } => {
            let data = fixture_tensor_f32(repo, src, *i);
            let (r, c) = (src.tensors[*i].shape[0] as usize, src.tensors[*i].shape[1] as usize);
            (0..c).flat_map(|j| (0..r).map(move |k| (j, k))).map(|(j, k)| data[k * c + j]).collect()
        }
        TensorSource::HeadTransposed { src: i, group, start, len } => {
            let data = fixture_tensor_f32(repo, src, *i);
            let (r, c) = (src.tensors[*i].shape[0] as usize, src.tensors[*i].shape[1] as usize);
            let (g, s, l) = (*group as usize, *start as usize, *len as usize);
            let mut out = Vec::new();
            for h in 0..r / g {
                for col in 0..c {
                    out.extend((0..l).map(|j| data[(h * g + s + j) * c + col]));
                }
            }
            out
        }
        TensorSource::ExpertsTransposed { src: i, start, len } => {
            let data = fixture_tensor_f32(repo, src, *i);
            let shape = &src.tensors[*i].shape;
            let (e, r, c) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
            let (s, l) = (*start as usize, *len as usize);
            let mut out = Vec::new();
            for x in 0..e {
                for j in 0..l {
                    out.extend((0..r).map(|k| data[x * r * c + k * c + s + j]));
                }
            }
            out
        }
        TensorSource::Rows { parts, order, rows_per_part, row_len, op } => {
            let mut out = Vec::new();
            for &p in parts {
                let data = fixture_tensor_f32(repo, src, p);
                let src_rows = data.len() as u64 / row_len;
                for r in 0..*rows_per_part {
                    let s = (order.source_row(r, src_rows) * row_len) as usize;
                    for &x in &data[s..s + *row_len as usize] {
                        out.push(if *op == ElemOp::AddOne { x + 1.0 } else { x });
                    }
                }
            }
            out
        }
    }
}

fn sha_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    hex::encode(Sha256::digest(bytes))
}

/// Checks every tensor of `repo` against the F32 golden's sha256 (all tensors are F32 there).
fn assert_bytes_match(repo: &str, only: impl Fn(&PlannedTensor) -> bool) -> usize {
    let src = fixture_source(repo);
    let (tensors, _, _) = plan(&src);
    let g = golden(repo, "F32");
    let gt = g["tensors"].as_array().unwrap();
    let mut checked = 0;
    for (t, want) in tensors.iter().zip(gt).filter(|(t, _)| only(t)) {
        assert_eq!(want["type"], "F32");
        assert_eq!(sha_f32(&output_f32(repo, &src, t)), want["sha256"].as_str().unwrap(), "{repo} {}", t.name);
        checked += 1;
    }
    checked
}

#[test]
fn llama_qk_permutation_bytes_match_golden() {
    let n = assert_bytes_match("HuggingFaceTB/SmolLM2-135M-Instruct", |t| t.name.contains("attn_"));
    assert!(n >= 8, "{n}");
}

#[test]
fn mixtral_expert_stacks_and_router_bytes_match_golden() {
    let n = assert_bytes_match("mistralai/Mixtral-8x7B-v0.1", |t| t.name.contains("exps") || t.name.contains("attn_k"));
    assert!(n >= 6, "{n}");
}

#[test]
fn gpt2_conv1d_transpose_bytes_match_golden() {
    let n = assert_bytes_match("openai-community/gpt2", |t| t.name.starts_with("blk.0."));
    assert_eq!(n, 12);
}

#[test]
fn phi3_rope_factors_and_fused_bytes_match_golden() {
    let n = assert_bytes_match("microsoft/Phi-3.5-mini-instruct", |t| {
        t.name.starts_with("rope_") || t.name.starts_with("blk.0.")
    });
    assert!(n >= 8, "{n}");
}

#[test]
fn gemma3_norm_shift_and_embedding_truncation_bytes_match_golden() {
    let n = assert_bytes_match("google/gemma-3-1b-it", |t| t.name.contains("norm") || t.name == "token_embd.weight");
    assert!(n >= 8, "{n}");
}

#[test]
fn qwen2_and_mistral_bytes_match_golden() {
    assert!(assert_bytes_match("Qwen/Qwen2.5-0.5B-Instruct", |t| t.name.starts_with("blk.0.")) >= 10);
    assert!(assert_bytes_match("mistralai/Mistral-7B-Instruct-v0.3", |t| t.name.starts_with("blk.1.")) >= 8);
}

#[test]
fn qwen3_qk_norm_bytes_match_golden() {
    let n = assert_bytes_match("Qwen/Qwen3-0.6B", |t| t.name.starts_with("blk.1."));
    assert_eq!(n, 11);
}

#[test]
fn llama3_rope_freqs_and_permutation_bytes_match_golden() {
    let n = assert_bytes_match("meta-llama/Llama-3.2-1B-Instruct", |t| {
        t.name == "rope_freqs.weight" || t.name.starts_with("blk.0.attn_")
    });
    assert_eq!(n, 6);
}

#[test]
fn gptneox_qkv_regrouping_bytes_match_golden() {
    let n = assert_bytes_match("EleutherAI/pythia-70m", |t| t.name.starts_with("blk.1."));
    assert_eq!(n, 12);
}

#[test]
fn qwen3moe_expert_stacks_and_router_bytes_match_golden() {
    let n = assert_bytes_match("Qwen/Qwen3-30B-A3B", |t| t.name.contains("exps") || t.name.contains("gate_inp"));
    assert_eq!(n, 8);
}

#[test]
fn qwen2moe_shared_expert_and_biases_bytes_match_golden() {
    let n = assert_bytes_match("Qwen/Qwen1.5-MoE-A2.7B", |t| t.name.starts_with("blk.0."));
    assert_eq!(n, 17);
}

#[test]
fn granitemoe_split_gate_up_and_permuted_qk_bytes_match_golden() {
    let n = assert_bytes_match("ibm-granite/granite-3.1-1b-a400m-instruct", |t| t.name.starts_with("blk.0."));
    assert_eq!(n, 10);
    let n = assert_bytes_match("ibm-granite/granite-3.1-2b-instruct", |t| t.name.starts_with("blk.1."));
    assert_eq!(n, 9);
}

#[test]
fn olmo2_starcoder2_stablelm_block_bytes_match_golden() {
    assert_eq!(assert_bytes_match("allenai/OLMo-2-1124-7B-Instruct", |t| t.name.starts_with("blk.0.")), 11);
    assert_eq!(assert_bytes_match("bigcode/starcoder2-3b", |t| t.name.starts_with("blk.0.")), 16);
    assert_eq!(assert_bytes_match("stabilityai/stablelm-3b-4e1t", |t| t.name.starts_with("blk.1.")), 11);
}

#[test]
fn stablelm_per_head_qk_norms_are_refused() {
    let mut src = fixture_source("stabilityai/stablelm-3b-4e1t");
    let i = src.tensors.iter().position(|t| t.name == "model.layers.0.input_layernorm.bias").unwrap();
    src.tensors[i].name = "model.layers.0.self_attn.q_layernorm.norms.0.weight".into();
    let ctx = ModelCtx::new(&src, OutType::F16).unwrap();
    let e = lookup(&ctx.hf_arch).unwrap().tensors(&ctx).err().unwrap().to_string();
    assert!(e.contains("per-head"), "{e}");
}

#[test]
fn qwen3_reranker_is_refused_not_converted_wrongly() {
    let mut src = fixture_source("Qwen/Qwen3-0.6B");
    src.files.insert("README.md", b"# Qwen3-Reranker-0.6B\n".to_vec());
    let ctx = ModelCtx::new(&src, OutType::F16).unwrap();
    let e = lookup(&ctx.hf_arch).unwrap().tensors(&ctx).err().unwrap().to_string();
    assert!(e.contains("reranker"), "{e}");
}

#[test]
fn fused_qwen_moe_experts_are_refused() {
    let mut src = fixture_source("Qwen/Qwen3-30B-A3B");
    let i = src.tensors.iter().position(|t| t.name.ends_with("experts.0.down_proj.weight")).unwrap();
    src.tensors[i].name = "model.layers.0.mlp.experts.gate_up_proj".into();
    let ctx = ModelCtx::new(&src, OutType::F16).unwrap();
    let e = lookup(&ctx.hf_arch).unwrap().tensors(&ctx).err().unwrap().to_string();
    assert!(e.contains("fused"), "{e}");
}

#[test]
fn gemma3_embedding_is_cut_to_tokenizer_json_vocab() {
    let mut src = fixture_source("google/gemma-3-1b-it");
    let tj = r#"{"model":{"vocab":{"a":0,"b":1,"c":2}},"added_tokens":[{"id":3}]}"#;
    src.files.insert("tokenizer.json", tj.as_bytes().to_vec());
    let (tensors, _, _) = plan(&src);
    let emb = tensors.iter().find(|t| t.name == "token_embd.weight").unwrap();
    assert_eq!(emb.shape, vec![4, 32]);
    assert!(matches!(emb.source, TensorSource::Rows { rows_per_part: 4, row_len: 32, .. }));
}

#[test]
fn unknown_architecture_names_the_supported_ones() {
    let e = lookup("FooForCausalLM").err().unwrap().to_string();
    assert!(e.contains("FooForCausalLM"), "{e}");
    for name in super::supported() {
        assert!(e.contains(name), "{name} missing from: {e}");
    }
    assert!(e.contains("GraniteMoeForCausalLM") && e.contains("Olmo2ForCausalLM"), "{e}");
}

#[test]
fn q8_0_router_and_position_embeddings_are_forced_f32() {
    let llama = lookup("MixtralForCausalLM").unwrap();
    assert!(llama.is_forced_f32("blk.3.ffn_gate_inp.weight"));
    assert!(!llama.is_forced_f32("blk.3.ffn_gate_exps.weight"));
    assert!(lookup("GPT2LMHeadModel").unwrap().is_forced_f32("position_embd.weight"));
}

#[test]
fn gemma_and_gemma2_norm_shift_bytes_match_golden() {
    // 2 blocks × (attn_norm, ffn_norm) + output_norm; Gemma 2 adds post_attention_norm and post_ffw_norm
    assert_eq!(assert_bytes_match("google/gemma-2b", |t| t.name.contains("norm")), 5);
    assert_eq!(assert_bytes_match("google/gemma-2-2b-it", |t| t.name.contains("norm")), 9);
}

#[test]
fn gemma_drops_an_unused_lm_head() {
    let mut src = fixture_source("google/gemma-2b");
    let mut head = src.tensors.iter().find(|t| t.name == "model.embed_tokens.weight").unwrap().clone();
    head.name = "lm_head.weight".into();
    src.tensors.push(head);
    let (tensors, _, _) = plan(&src);
    assert!(tensors.iter().all(|t| t.name != "output.weight"));
    assert!(tensors.iter().any(|t| t.name == "token_embd.weight"));
}

#[test]
fn deepseek_mla_split_expert_stacks_and_router_bias_bytes_match_golden() {
    let n = assert_bytes_match("deepseek-ai/DeepSeek-V3", |t| {
        t.name.starts_with("blk.1.") || t.name.contains("attn_k_b") || t.name.contains("attn_v_b")
    });
    // blk.1: 11 MLA/norm tensors + router, bias, 3 stacks, 3 shared; plus blk.0's k_b and v_b
    assert!(n >= 18, "{n}");
}

#[test]
fn deepseek_v2_plain_q_proj_and_mla_split_bytes_match_golden() {
    let n = assert_bytes_match("deepseek-ai/DeepSeek-V2-Lite", |t| t.name.starts_with("blk.1."));
    // attn_norm, attn_q, kv_a_mqa, kv_a_norm, k_b, v_b, output, ffn_norm, router, 3 stacks, 3 shared
    assert_eq!(n, 15);
}
