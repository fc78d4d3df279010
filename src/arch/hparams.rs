//! Hyper-parameters as the reference sees them through `AutoConfig.from_pretrained(dir).to_dict()`
//! of transformers 4.57.6 (hazard H1): the config class fills in its defaults, derives a few
//! fields (`head_dim`, `num_key_value_heads`, `layer_types`...), renames `torch_dtype` and
//! normalises `rope_scaling`. When the config class would raise, the reference falls back to
//! the raw config.json, and so do we.
//!
//! The default values live in `hparams_defaults.json`, generated from the installed
//! transformers (`CONFIG_MAPPING[model_type]().to_dict()` minus the derived fields).

use std::sync::OnceLock;

use serde_json::{Map, Value as Json};

use super::ArchError;

/// The transformers version whose behaviour is emulated (written into `transformers_version`).
pub const TRANSFORMERS_VERSION: &str = "4.57.6";

type Obj = Map<String, Json>;

fn defaults() -> &'static Obj {
    static DEFAULTS: OnceLock<Obj> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        // The table is compiled in; a parse failure is a build defect caught by the tests.
        serde_json::from_str(include_str!("hparams_defaults.json")).unwrap_or_default()
    })
}

fn table(name: &str) -> Option<&'static Obj> {
    defaults().get(name).and_then(Json::as_object)
}

/// Emulates `AutoConfig.from_pretrained(dir).to_dict()` for the model types the supported
/// architectures use, then applies the reference's `load_hparams` aliases (`llm_config`...).
/// Model types without a defaults table keep the raw config (what the reference reads when
/// AutoConfig does not know the type; for types transformers knows but we have no table for,
/// class defaults are missing, which only matters to architectures we do not support).
pub fn load(raw_config: &Obj) -> Result<Obj, ArchError> {
    let mut config = match auto_config(raw_config) {
        Some(c) => c,
        None => raw_config.clone(),
    };
    apply_text_config_aliases(&mut config);
    Ok(config)
}

/// `None` when transformers would raise (the reference then reads config.json as is).
fn auto_config(raw: &Obj) -> Option<Obj> {
    let model_type = raw.get("model_type").and_then(Json::as_str).unwrap_or("");
    if model_type == "gemma3" {
        return composite(raw, "gemma3", "gemma3_text");
    }
    if model_type == "llama4" {
        return composite(raw, "llama4", "llama4_text");
    }
    table(model_type)?;
    let mut c = typed_config(model_type, raw)?;
    c.insert("transformers_version".into(), Json::from(TRANSFORMERS_VERSION));
    Some(c)
}

/// `Gemma3Config`/`Llama4Config`: their own few defaults, and `text_config` built as the text
/// model's config class (`Gemma3TextConfig`, `Llama4TextConfig`).
fn composite(raw: &Obj, model_type: &str, text_type: &str) -> Option<Obj> {
    let mut c = typed_config(model_type, raw)?;
    let text = raw.get("text_config").and_then(Json::as_object).cloned().unwrap_or_default();
    let mut text = typed_config(text_type, &text)?;
    text.remove("transformers_version");
    c.insert("text_config".into(), Json::Object(text));
    c.insert("transformers_version".into(), Json::from(TRANSFORMERS_VERSION));
    Some(c)
}

/// Generic fields, then the class defaults, then the raw values, then the derived fields.
fn typed_config(model_type: &str, raw: &Obj) -> Option<Obj> {
    let mut c = Obj::new();
    extend(&mut c, table("_generic"));
    extend(&mut c, table(model_type));
    for (k, v) in raw {
        if k != "torch_dtype" {
            c.insert(k.clone(), v.clone());
        }
    }
    // `torch_dtype` is the old name of `dtype`; an explicit `dtype` wins.
    if let Some(td) = raw.get("torch_dtype").filter(|v| !v.is_null()) {
        if raw.get("dtype").is_none_or(Json::is_null) {
            c.insert("dtype".into(), td.clone());
        }
    }
    derive_fields(model_type, &mut c)?;
    Some(c)
}

fn extend(c: &mut Obj, t: Option<&Obj>) {
    if let Some(t) = t {
        for (k, v) in t {
            c.insert(k.clone(), v.clone());
        }
    }
}

fn int(c: &Obj, k: &str) -> Option<i64> {
    c.get(k).and_then(Json::as_i64)
}

fn is_null_or_absent(c: &Obj, k: &str) -> bool {
    c.get(k).is_none_or(Json::is_null)
}

/// The computations the config classes' `__init__` make beyond storing arguments.
fn derive_fields(model_type: &str, c: &mut Obj) -> Option<()> {
    const KV_FROM_HEADS: [&str; 9] =
        ["llama", "mistral", "mixtral", "qwen2", "qwen3", "phi3", "olmo2", "granite", "granitemoe"];
    if KV_FROM_HEADS.contains(&model_type) && is_null_or_absent(c, "num_key_value_heads") {
        let heads = c.get("num_attention_heads").cloned().unwrap_or(Json::Null);
        c.insert("num_key_value_heads".into(), heads);
    }
    match model_type {
        "llama" => {
            if is_null_or_absent(c, "head_dim") {
                let (h, n) = (int(c, "hidden_size")?, int(c, "num_attention_heads")?);
                c.insert("head_dim".into(), Json::from(h.checked_div(n)?));
            }
            mirror_rope_type(c);
        }
        "qwen2" | "qwen3" => {
            if c.get("use_sliding_window").and_then(Json::as_bool) != Some(true) {
                c.insert("sliding_window".into(), Json::Null);
            }
            mirror_rope_type(c);
            if is_null_or_absent(c, "layer_types") {
                let sliding = !c["sliding_window"].is_null();
                let mwl = int(c, "max_window_layers").unwrap_or(0);
                let types = (0..int(c, "num_hidden_layers")?).map(|i| {
                    if sliding && i >= mwl {
                        "sliding_attention"
                    } else {
                        "full_attention"
                    }
                });
                c.insert("layer_types".into(), types.map(Json::from).collect());
            }
        }
        "qwen2_moe" | "qwen3_moe" => {
            if c.get("use_sliding_window").and_then(Json::as_bool) != Some(true) {
                c.insert("sliding_window".into(), Json::Null);
            }
            mirror_rope_type(c);
            if c.get("mlp_only_layers").is_some_and(Json::is_null) {
                c.insert("mlp_only_layers".into(), Json::Array(Vec::new()));
            }
        }
        "gpt_neox" => {
            // set after the kwargs, so these win over same-named raw keys
            let pct = c.get("rotary_pct").cloned().unwrap_or(Json::Null);
            c.insert("partial_rotary_factor".into(), pct);
            let base = c.get("rotary_emb_base").cloned().unwrap_or(Json::Null);
            c.insert("rope_theta".into(), base);
            mirror_rope_type(c);
            let (h, n) = (int(c, "hidden_size")?, int(c, "num_attention_heads")?);
            if n == 0 || h % n != 0 {
                return None;
            }
        }
        "stablelm" | "starcoder2" => mirror_rope_type(c),
        "gemma2" => set_pattern_layer_types(c, 2)?,
        "deepseek_v2" | "deepseek_v3" => deepseek_fields(model_type, c)?,
        "gemma3_text" => {
            if c.get("use_bidirectional_attention").and_then(Json::as_bool) == Some(true) {
                let sw = int(c, "sliding_window")?;
                c.insert("sliding_window".into(), Json::from(sw / 2 + 1));
            }
            let pattern = c.get("sliding_window_pattern").cloned().unwrap_or(Json::from(6));
            c.insert("_sliding_window_pattern".into(), pattern.clone());
            set_pattern_layer_types(c, pattern.as_i64()?)?;
        }
        "phi3" => phi3_rope_scaling(c)?,
        "llama4_text" => llama4_text_fields(c)?,
        _ => {}
    }
    Some(())
}

/// `DeepseekV2Config`/`DeepseekV3Config`: `head_dim` is always the RoPE part of a head,
/// KV heads default to the query heads, V3 adds `qk_head_dim` and floats some rope values.
fn deepseek_fields(model_type: &str, c: &mut Obj) -> Option<()> {
    if is_null_or_absent(c, "num_key_value_heads") {
        let heads = c.get("num_attention_heads").cloned().unwrap_or(Json::Null);
        c.insert("num_key_value_heads".into(), heads);
    }
    let rope = c.get("qk_rope_head_dim").cloned().unwrap_or(Json::Null);
    if model_type == "deepseek_v3" {
        let qk = int(c, "qk_nope_head_dim")?.checked_add(rope.as_i64()?)?;
        c.insert("qk_head_dim".into(), Json::from(qk));
    }
    c.insert("head_dim".into(), rope);
    mirror_rope_type(c);
    if model_type == "deepseek_v3" {
        if let Some(Json::Object(rs)) = c.get_mut("rope_scaling") {
            for key in ["beta_fast", "beta_slow", "factor"] {
                if let Some(f) = rs.get(key).and_then(Json::as_f64) {
                    rs.insert(key.into(), Json::from(f));
                }
            }
        }
    }
    Some(())
}

/// `Llama4TextConfig`: `attention_bias` is always false; the no-RoPE layers (every fourth layer
/// uses RoPE), the MoE layers (every `interleave_moe_layer_step`-th) and the layer types (chunked
/// attention on the RoPE layers) are computed when absent.
fn llama4_text_fields(c: &mut Obj) -> Option<()> {
    c.insert("attention_bias".into(), Json::Bool(false));
    if is_null_or_absent(c, "num_key_value_heads") {
        let heads = c.get("num_attention_heads").cloned().unwrap_or(Json::Null);
        c.insert("num_key_value_heads".into(), heads);
    }
    if c.get("head_dim").is_some_and(Json::is_null) {
        let (h, n) = (int(c, "hidden_size")?, int(c, "num_attention_heads")?);
        c.insert("head_dim".into(), Json::from(h.checked_div(n)?));
    }
    // consumed by __init__, not stored
    let interval = c.remove("no_rope_layer_interval").map_or(Some(4), |v| v.as_i64())?;
    c.remove("layer_interval");
    let n_layers = int(c, "num_hidden_layers")?;
    // `no_rope_layers if no_rope_layers else default`: absent, null and [] all take the default
    let unset = c.get("no_rope_layers").is_none_or(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty));
    if unset {
        let rope =
            (0..n_layers).map(|i| Some(i64::from((i + 1).checked_rem(interval)? != 0))).collect::<Option<Vec<_>>>()?;
        c.insert("no_rope_layers".into(), rope.into_iter().map(Json::from).collect());
    }
    if is_null_or_absent(c, "moe_layers") {
        let step = int(c, "interleave_moe_layer_step")?;
        if step <= 0 {
            return None;
        }
        let layers = ((step - 1)..n_layers).step_by(step as usize);
        c.insert("moe_layers".into(), layers.map(Json::from).collect());
    }
    if is_null_or_absent(c, "layer_types") {
        let no_rope: Vec<Json> = c.get("no_rope_layers")?.as_array()?.clone();
        let types = no_rope.iter().map(|v| {
            // Python truthiness of each entry
            let truthy = v.as_f64().is_some_and(|f| f != 0.0) || v.as_bool() == Some(true);
            Json::from(if truthy { "chunked_attention" } else { "full_attention" })
        });
        c.insert("layer_types".into(), types.collect());
    }
    Some(())
}

/// `rope_scaling["rope_type"] = rope_scaling["type"]` (Llama, Qwen2, Qwen3 config classes).
fn mirror_rope_type(c: &mut Obj) {
    if let Some(Json::Object(rs)) = c.get_mut("rope_scaling") {
        if let Some(t) = rs.get("type").cloned() {
            rs.insert("rope_type".into(), t);
        }
    }
}

/// Every `pattern`-th layer is global, the others sliding (Gemma 2/3).
fn set_pattern_layer_types(c: &mut Obj, pattern: i64) -> Option<()> {
    if !is_null_or_absent(c, "layer_types") {
        return Some(());
    }
    if pattern == 0 {
        return None;
    }
    let types = (0..int(c, "num_hidden_layers")?).map(|i| {
        if (i + 1) % pattern != 0 {
            "sliding_attention"
        } else {
            "full_attention"
        }
    });
    c.insert("layer_types".into(), types.map(Json::from).collect());
    Some(())
}

/// `Phi3Config._rope_scaling_adjustment` + `_rope_scaling_validation`: `None` = it raises.
fn phi3_rope_scaling(c: &mut Obj) -> Option<()> {
    let rotary = {
        let (h, n) = (int(c, "hidden_size")?, int(c, "num_attention_heads")?);
        let prf = c.get("partial_rotary_factor").and_then(Json::as_f64)?;
        ((h.checked_div(n)?) as f64 * prf) as i64
    };
    let Some(Json::Object(rs)) = c.get_mut("rope_scaling") else {
        return c.get("rope_scaling").is_none_or(Json::is_null).then_some(());
    };
    if matches!(rs.get("type").and_then(Json::as_str), Some("su" | "yarn")) {
        rs.insert("type".into(), Json::from("longrope"));
    }
    let numbers =
        |k: &str| rs.get(k).and_then(Json::as_array).filter(|a| a.iter().all(Json::is_number)).map(|a| a.len() as i64);
    let ok = rs.len() == 3
        && rs.get("type").and_then(Json::as_str) == Some("longrope")
        && numbers("short_factor") == Some(rotary / 2)
        && numbers("long_factor") == Some(rotary / 2);
    ok.then_some(())
}

/// The aliases `ModelBase.load_hparams` copies to `text_config`.
fn apply_text_config_aliases(c: &mut Obj) {
    for key in ["llm_config", "lm_config", "language_config", "lfm"] {
        if let Some(v) = c.get(key).cloned() {
            c.insert("text_config".into(), v);
        }
    }
    if let Some(tc) = c.get("thinker_config").and_then(|t| t.get("text_config")).cloned() {
        c.insert("text_config".into(), tc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected_cases() -> Obj {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/arch/testdata/hparams_expected.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn raw_config(case: &Json) -> Obj {
        if let Some(c) = case.get("config") {
            return c.as_object().unwrap().clone();
        }
        let p = crate::testutil::shared_dir().join(case["config_path"].as_str().unwrap());
        serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
    }

    /// Values equal as Python sees them (1e-06 == 1e-6, 10000 == 10000.0).
    fn py_eq(a: &Json, b: &Json) -> bool {
        match (a, b) {
            (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
            (Json::Array(x), Json::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q)),
            (Json::Object(x), Json::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
            }
            _ => a == b,
        }
    }

    fn diff(ours: &Obj, theirs: &Obj, prefix: &str) -> Vec<String> {
        let skip = |k: &str| k == "_name_or_path" || k == "vision_config";
        let mut out = Vec::new();
        for (k, v) in theirs.iter().filter(|(k, _)| !skip(k)) {
            match (ours.get(k), v) {
                (Some(Json::Object(o)), Json::Object(t)) => out.extend(diff(o, t, &format!("{prefix}{k}."))),
                (Some(o), t) if py_eq(o, t) => {}
                (o, t) => out.push(format!("{prefix}{k}: ours {o:?}, transformers {t}")),
            }
        }
        for k in ours.keys().filter(|k| !theirs.contains_key(*k) && !skip(k)) {
            out.push(format!("{prefix}{k}: extra key"));
        }
        out
    }

    #[test]
    fn matches_transformers_to_dict_on_fixture_corpus_and_synthetic_configs() {
        let cases = expected_cases();
        assert!(cases.len() >= 20, "test data too small");
        let mut problems = Vec::new();
        for (name, case) in &cases {
            let raw = raw_config(case);
            let model_type = raw["model_type"].as_str().unwrap();
            assert!(table(model_type).is_some(), "{name}: no defaults for {model_type}");
            let ours = load(&raw).unwrap();
            let theirs = match case["expected"].as_object() {
                Some(e) => e.clone(),
                // transformers raised: the reference reads config.json unchanged
                None => raw.clone(),
            };
            problems.extend(diff(&ours, &theirs, &format!("{name}: ")));
        }
        assert!(problems.is_empty(), "{} differences:\n{}", problems.len(), problems.join("\n"));
    }

    #[test]
    fn defaults_table_parses_and_has_every_supported_type() {
        for t in [
            "_generic",
            "llama",
            "mistral",
            "mixtral",
            "qwen2",
            "qwen3",
            "qwen2_moe",
            "qwen3_moe",
            "gpt_neox",
            "phi3",
            "gpt2",
            "gemma3_text",
            "gemma3",
            "olmo2",
            "granite",
            "granitemoe",
            "stablelm",
            "starcoder2",
            "gemma",
            "deepseek_v2",
            "deepseek_v3",
            "llama4",
            "llama4_text",
        ] {
            assert!(table(t).is_some(), "{t}");
        }
    }

    #[test]
    fn aliases_copy_llm_config_to_text_config() {
        let raw: Obj = serde_json::from_str(r#"{"model_type":"unknown-x","llm_config":{"a":1}}"#).unwrap();
        assert_eq!(load(&raw).unwrap()["text_config"]["a"], 1);
    }
}
