//! Building a `ModelCtx`: the reference's `load_hparams`, `get_model_architecture` and
//! `TextModel.__init__` (text_config merge, block count, RoPE normalisation).

use serde_json::{Map, Value as Json};

use super::{hparams, ArchError, ModelCtx};
use crate::plan::OutType;
use crate::source::SourceModel;

/// Top-level architectures the reference routes on even when `text_config` names another.
const TOP_LEVEL_WINS: [&str; 5] = [
    "StepVLForConditionalGeneration",
    "Sarashina2VisionForCausalLM",
    "Exaone4_5_ForConditionalGeneration",
    "Step3p7ForConditionalGeneration",
    "KimiK3ForConditionalGeneration",
];

impl<'a> ModelCtx<'a> {
    /// The same context seen through other hyper-parameters: what a model class whose
    /// `__init__` rewrites them (pops, renames) before writing KVs works from.
    pub fn with_hparams(&self, hparams: Map<String, Json>) -> ModelCtx<'a> {
        ModelCtx {
            source: self.source,
            hf_arch: self.hf_arch.clone(),
            hparams,
            raw_config: self.raw_config.clone(),
            rope_parameters: self.rope_parameters.clone(),
            block_count: self.block_count,
            outtype: self.outtype,
        }
    }

    /// Reads config.json of `source` and derives everything the architectures read.
    pub fn new(source: &'a SourceModel, outtype: OutType) -> Result<ModelCtx<'a>, ArchError> {
        let raw_config = match source.files.json("config.json") {
            None => return Err(ArchError::Config("config.json not found in the repo".into())),
            Some(Err(e)) => return Err(ArchError::Config(format!("malformed JSON: {e}"))),
            Some(Ok(Json::Object(m))) => m,
            Some(Ok(_)) => return Err(ArchError::Config("not a JSON object".into())),
        };
        let mut hp = hparams::load(&raw_config)?;
        let hf_arch = model_architecture(&hp)?;
        if let Some(Json::Object(tc)) = hp.get("text_config").cloned() {
            for (k, v) in tc {
                hp.insert(k, v);
            }
        }
        let block_count =
            find_hparam(&hp, &["n_layers", "num_hidden_layers", "n_layer", "num_layers"]).and_then(Json::as_u64);
        let rope_parameters = normalise_rope(&mut hp);
        Ok(ModelCtx { source, hf_arch, hparams: hp, raw_config, rope_parameters, block_count, outtype })
    }

    /// `find_hparam`: the value of the first key present (even when it is `null`).
    pub fn find(&self, keys: &[&str]) -> Option<&Json> {
        find_hparam(&self.hparams, keys)
    }

    /// `find_hparam` for a required unsigned integer: a clear error otherwise.
    pub fn find_u64(&self, keys: &[&str]) -> Result<u64, ArchError> {
        self.find(keys)
            .and_then(Json::as_u64)
            .ok_or_else(|| ArchError::Config(format!("missing or non-integer hyper-parameter {}", keys.join("/"))))
    }

    /// The rope dict the TextModel keys read: `full_attention` when present, else the whole.
    pub fn rope_full(&self) -> &Map<String, Json> {
        match self.rope_parameters.get("full_attention") {
            Some(Json::Object(m)) => m,
            _ => &self.rope_parameters,
        }
    }

    /// The block count, required by every family that maps block tensors.
    pub fn n_blocks(&self) -> Result<u64, ArchError> {
        self.block_count.ok_or_else(|| ArchError::Config("no num_hidden_layers/n_layer in config".into()))
    }
}

/// `find_hparam(keys, optional=True)`: the first key present wins even if its value is null
/// (a null value then reads as absent).
pub fn find_hparam<'m>(hp: &'m Map<String, Json>, keys: &[&str]) -> Option<&'m Json> {
    keys.iter().find_map(|k| hp.get(*k)).filter(|v| !v.is_null())
}

/// `get_model_architecture` for text models: `architectures[0]`, or `text_config`'s.
fn model_architecture(hp: &Map<String, Json>) -> Result<String, ArchError> {
    let first = |v: Option<&Json>| {
        v.and_then(Json::as_array).and_then(|a| a.first()).and_then(Json::as_str).map(str::to_string)
    };
    let mut arch = first(hp.get("architectures"));
    if arch.is_none() {
        if let Some(ssm) = hp.get("ssm_cfg").and_then(Json::as_object) {
            arch = Some(format!("{}ForCausalLM", ssm.get("layer").and_then(Json::as_str).unwrap_or("Mamba")));
        }
    }
    if let Some(a) = &arch {
        if TOP_LEVEL_WINS.contains(&a.as_str()) {
            return Ok(a.clone());
        }
    }
    if let Some(tc) = first(hp.get("text_config").and_then(|t| t.get("architectures"))) {
        arch = Some(tc);
    }
    arch.ok_or_else(|| ArchError::Config("no \"architectures\" entry".into()))
}

/// `TextModel.__init__`'s RoPE normalisation (converter-spec §4.2 with the pinned tree's
/// mirroring of `partial_rotary_factor` and `original_max_position_embeddings`). The dict is
/// the same Python object as `hparams["rope_scaling"]`, so the mirrored keys appear there too.
fn normalise_rope(hp: &mut Map<String, Json>) -> Map<String, Json> {
    let from_scaling = !hp.contains_key("rope_parameters");
    let source = if from_scaling { hp.get("rope_scaling") } else { hp.get("rope_parameters") };
    let mut rp = source.and_then(Json::as_object).cloned().unwrap_or_default();
    let found = |keys: &[&str]| find_hparam(hp, keys).cloned();
    let theta =
        found(&["global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base"]);
    let local =
        found(&["local_rope_theta", "rope_local_theta", "rope_theta_local", "swa_rope_theta", "rope_local_base_freq"]);
    let partial = found(&["partial_rotary_factor", "rope_pct", "rope_percent"]);
    let orig = found(&["original_max_position_embeddings"]);
    if !rp.contains_key("full_attention") && !rp.contains_key("sliding_attention") {
        if let Some(l) = local {
            rp.insert("sliding_attention".into(), Json::Object(Map::from_iter([("rope_theta".to_string(), l)])));
        }
        insert_absent(&mut rp, "rope_theta", theta);
        let ty = rp.get("type").filter(|v| !v.is_null()).cloned();
        insert_absent(&mut rp, "rope_type", ty);
        insert_absent(&mut rp, "partial_rotary_factor", partial);
        insert_absent(&mut rp, "original_max_position_embeddings", orig);
    }
    let key = if from_scaling { "rope_scaling" } else { "rope_parameters" };
    if hp.get(key).is_some_and(Json::is_object) {
        hp.insert(key.into(), Json::Object(rp.clone()));
    }
    rp
}

fn insert_absent(m: &mut Map<String, Json>, key: &str, v: Option<Json>) {
    if let Some(v) = v {
        if !m.contains_key(key) {
            m.insert(key.into(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{RepoFiles, SourceModel};

    fn source_with_config(json: &str) -> SourceModel {
        let mut files = RepoFiles::new();
        files.insert("config.json", json.as_bytes().to_vec());
        SourceModel { repo_id: "a/b".into(), commit: "0".repeat(40), files, shards: vec![], tensors: vec![] }
    }

    #[test]
    fn missing_or_malformed_config_is_a_clear_error() {
        let empty = SourceModel {
            repo_id: "a/b".into(),
            commit: "0".repeat(40),
            files: RepoFiles::new(),
            shards: vec![],
            tensors: vec![],
        };
        assert!(matches!(ModelCtx::new(&empty, OutType::F16), Err(ArchError::Config(m)) if m.contains("not found")));
        let bad = source_with_config("{not json");
        assert!(matches!(ModelCtx::new(&bad, OutType::F16), Err(ArchError::Config(m)) if m.contains("malformed")));
    }

    #[test]
    fn rope_scaling_becomes_rope_parameters_with_mirrored_theta_and_type() {
        let src = source_with_config(
            r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,
            "num_attention_heads":4,"num_hidden_layers":2,"rope_theta":500000.0,
            "rope_scaling":{"type":"linear","factor":2.0}}"#,
        );
        let ctx = ModelCtx::new(&src, OutType::F16).unwrap();
        assert_eq!(ctx.rope_parameters["rope_type"], "linear");
        assert_eq!(ctx.rope_parameters["rope_theta"], 500000.0);
        assert_eq!(ctx.hparams["head_dim"], 16);
        assert_eq!(ctx.block_count, Some(2));
    }

    #[test]
    fn text_config_architecture_wins_and_its_keys_are_merged() {
        let src = source_with_config(
            r#"{"architectures":["Foo"],"model_type":"x","text_config":{"architectures":["Bar"],"num_hidden_layers":3,
            "rope_local_base_freq":10000}}"#,
        );
        let ctx = ModelCtx::new(&src, OutType::F16).unwrap();
        assert_eq!(ctx.hf_arch, "Bar");
        assert_eq!(ctx.block_count, Some(3));
        assert_eq!(ctx.rope_parameters["sliding_attention"]["rope_theta"], 10000);
        assert!(!ctx.rope_parameters.contains_key("rope_type"));
    }
}
