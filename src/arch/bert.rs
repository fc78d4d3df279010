//! BERT encoders (`BertModel`, `BertForMaskedLM`; GGUF arch `bert`): embedding models, so the
//! pooler and the masked-LM/NSP heads are dropped, attention is non-causal, and the pooling
//! type comes from a sentence-transformers `modules.json` when there is one.

use serde_json::Value as Json;

use super::names::{NameMap, NameRule};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder};
use crate::source::RepoFiles;
use crate::vocab::{self, VocabInput};

/// The `bert` family.
pub struct Bert;

/// gguf-py's BERT names (after the `bert.` prefix is stripped).
const BERT: &[NameRule] = &[
    ("embeddings.word_embeddings", "token_embd"),
    ("embeddings.position_embeddings", "position_embd"),
    ("embeddings.token_type_embeddings", "token_types"),
    ("embeddings.LayerNorm", "token_embd_norm"),
    ("encoder.layer.{bid}.attention.self.query", "blk.{bid}.attn_q"),
    ("encoder.layer.{bid}.attention.self.key", "blk.{bid}.attn_k"),
    ("encoder.layer.{bid}.attention.self.value", "blk.{bid}.attn_v"),
    ("encoder.layer.{bid}.attention.output.dense", "blk.{bid}.attn_output"),
    ("encoder.layer.{bid}.attention.output.LayerNorm", "blk.{bid}.attn_output_norm"),
    ("encoder.layer.{bid}.intermediate.dense", "blk.{bid}.ffn_up"),
    ("encoder.layer.{bid}.output.dense", "blk.{bid}.ffn_down"),
    ("encoder.layer.{bid}.output.LayerNorm", "blk.{bid}.layer_output_norm"),
];

/// `BertModel.filter_tensors`: prefix/TF-name normalisation, and `None` for the unused heads.
fn bert_filter(name: &str) -> Option<String> {
    let mut name = name.strip_prefix("bert.").unwrap_or(name).to_string();
    if let Some(base) = name.strip_suffix(".gamma") {
        name = format!("{base}.weight");
    } else if let Some(base) = name.strip_suffix(".beta") {
        name = format!("{base}.bias");
    }
    let dropped = ["embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"];
    if dropped.contains(&name.as_str())
        || name.starts_with("cls.predictions")
        || name.starts_with("cls.seq_relationship")
    {
        return None;
    }
    text::base_filter(&name)
}

/// Real classification labels (not AutoConfig's two dummy `LABEL_n`) mean a classifier head,
/// which this family does not convert yet.
fn has_classifier_labels(ctx: &ModelCtx) -> bool {
    match ctx.hparams.get("id2label") {
        Some(Json::Object(labels)) if !labels.is_empty() => {
            !(labels.len() == 2 && labels.get("0").and_then(Json::as_str) == Some("LABEL_0"))
        }
        _ => false,
    }
}

/// `_try_set_pooling_type`: the first `*Pooling` module's config names the pooling mode.
fn pooling_type(files: &RepoFiles) -> Result<Option<u32>, ArchError> {
    let Some(modules) = files.json("modules.json") else {
        return Ok(None);
    };
    let modules = modules.map_err(|e| ArchError::Config(format!("modules.json: {e}")))?;
    let path = modules.as_array().into_iter().flatten().find_map(|m| {
        let ty = m.get("type").and_then(Json::as_str)?;
        ty.ends_with("Pooling").then(|| m.get("path").and_then(Json::as_str)).flatten()
    });
    let Some(path) = path else {
        return Ok(None);
    };
    let file = format!("{path}/config.json");
    let pooling = match files.json(&file) {
        Some(Ok(p)) => p,
        Some(Err(e)) => return Err(ArchError::Config(format!("{file}: {e}"))),
        None => return Err(ArchError::Config(format!("{file} not found"))),
    };
    let on = |k: &str| pooling.get(k).and_then(Json::as_bool).unwrap_or(false);
    let code = if on("pooling_mode_mean_tokens") {
        1
    } else if on("pooling_mode_cls_token") {
        2
    } else if on("pooling_mode_lasttoken") {
        3
    } else {
        match pooling.get("pooling_mode").and_then(Json::as_str) {
            Some("mean") => 1,
            Some("cls") => 2,
            Some("lasttoken") => 3,
            _ => return Err(ArchError::Config("only MEAN, CLS and LAST pooling types are supported".into())),
        }
    };
    Ok(Some(code))
}

impl Architecture for Bert {
    fn gguf_arch(&self) -> &'static str {
        "bert"
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        if has_classifier_labels(ctx) {
            return Err(ArchError::Config("BERT classifier heads (id2label) are not supported".into()));
        }
        let map = NameMap { tables: &[BERT], n_blocks: ctx.n_blocks()? };
        text::walk(ctx, bert_filter, |item| {
            Ok(vec![text::rows(map.map(&item.name)?, item, RowOrder::Identity, ElemOp::None)])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        text::set_common_parameters(ctx, "bert", kv)?;
        kv.set("bert.attention.causal", Value::Bool(false));
        if let Some(code) = pooling_type(&ctx.source.files)? {
            kv.set("bert.pooling_type", Value::U32(code));
        }
        if ctx.hparams.get("classifier_pooling").is_some_and(|v| !v.is_null()) {
            return Err(ArchError::Config("classifier_pooling is not supported for BERT".into()));
        }
        if has_classifier_labels(ctx) {
            return Err(ArchError::Config("BERT classifier heads (id2label) are not supported".into()));
        }
        Ok(())
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        vocab::set_vocab_bert(&VocabInput { files: &ctx.source.files, hparams: &ctx.hparams }, kv)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_strips_the_prefix_and_drops_the_heads() {
        assert_eq!(bert_filter("bert.embeddings.LayerNorm.gamma").as_deref(), Some("embeddings.LayerNorm.weight"));
        assert_eq!(
            bert_filter("encoder.layer.0.output.LayerNorm.beta").as_deref(),
            Some("encoder.layer.0.output.LayerNorm.bias")
        );
        assert_eq!(bert_filter("bert.pooler.dense.weight"), None);
        assert_eq!(bert_filter("cls.predictions.transform.dense.weight"), None);
        assert_eq!(bert_filter("cls.seq_relationship.bias"), None);
        assert_eq!(bert_filter("bert.embeddings.position_ids"), None);
    }

    fn repo(modules: &str, pooling: Option<&str>) -> RepoFiles {
        let mut files = RepoFiles::new();
        files.insert("modules.json", modules.as_bytes().to_vec());
        if let Some(p) = pooling {
            files.insert("1_Pooling/config.json", p.as_bytes().to_vec());
        }
        files
    }

    const MODULES: &str = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
        {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#;

    #[test]
    fn pooling_type_comes_from_the_pooling_module_config() {
        assert_eq!(pooling_type(&RepoFiles::new()).unwrap(), None);
        let mean = r#"{"pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true}"#;
        assert_eq!(pooling_type(&repo(MODULES, Some(mean))).unwrap(), Some(1));
        let cls = r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#;
        assert_eq!(pooling_type(&repo(MODULES, Some(cls))).unwrap(), Some(2));
        assert_eq!(pooling_type(&repo(MODULES, Some(r#"{"pooling_mode": "lasttoken"}"#))).unwrap(), Some(3));
        assert!(pooling_type(&repo(MODULES, Some(r#"{"pooling_mode_max_tokens": true}"#))).is_err());
        assert!(pooling_type(&repo(MODULES, None)).is_err());
        let no_pooling = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"}]"#;
        assert_eq!(pooling_type(&repo(no_pooling, None)).unwrap(), None);
    }
}
