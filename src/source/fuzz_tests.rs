//! Property tests over every metadata input a repo can hand us (issue 6): config.json,
//! tokenizer.json, tokenizer_config.json, model card YAML (README.md) and the shard index, each
//! mutated (byte edits, truncation, or a config value replaced by a hostile one) and run
//! through the whole header build. Whatever the input: an `Ok` layout or a clear error, never a
//! panic and never an allocation sized by the input. A fixed number of cases keeps CI fast.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::plan::{layout, OutType};
use crate::source::SourceModel;
use crate::testutil::fixture_source;

/// Small vocabulary (32k) and two shards with an index: the cheapest complete fixture.
const REPO: &str = "mistralai/Mixtral-8x7B-v0.1";

fn with_file(source: &SourceModel, path: &str, bytes: Vec<u8>) -> SourceModel {
    let mut s = source.clone();
    s.files.insert(path, bytes);
    s
}

/// Builds the header; a panic fails the property, any `Result` passes (errors must say something).
fn build_is_total(source: &SourceModel) -> Result<(), TestCaseError> {
    match layout::build(source, OutType::F16) {
        Ok(l) => prop_assert!(l.size > 0),
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1u64 << 40)),
        Just(json!(4_294_967_297u64)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1e308)),
        Just(json!(f64::MIN_POSITIVE)),
        Just(json!("")),
        Just(json!("x".repeat(10_000))),
        Just(Value::Null),
        Just(json!([])),
        Just(json!([1, [2, [3]]])),
        Just(json!({"a": {"b": null}})),
        Just(json!(true)),
    ]
}

fn byte_edits(len: usize) -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>)> {
    (proptest::collection::vec((0..len, any::<u8>()), 1..6), proptest::option::of(0..len))
}

fn edit(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(at, b) in edits {
        if let Some(x) = bytes.get_mut(at) {
            *x = b;
        }
    }
    if let Some(c) = cut {
        bytes.truncate(c);
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every config key, set to a hostile value (or removed).
    #[test]
    fn config_values_never_panic(key_pick in any::<prop::sample::Index>(), value in hostile_value(), remove in any::<bool>()) {
        let source = fixture_source(REPO);
        let mut config: serde_json::Map<String, Value> =
            serde_json::from_slice(source.files.get("config.json").unwrap()).unwrap();
        let keys: Vec<String> = config.keys().cloned().collect();
        let key = &keys[key_pick.index(keys.len())];
        if remove { config.remove(key); } else { config.insert(key.clone(), value); }
        build_is_total(&with_file(&source, "config.json", serde_json::to_vec(&config).unwrap()))?;
    }

    #[test]
    fn config_bytes_never_panic((edits, cut) in byte_edits(713)) {
        let source = fixture_source(REPO);
        let bytes = edit(source.files.get("config.json").unwrap().to_vec(), &edits, cut);
        build_is_total(&with_file(&source, "config.json", bytes))?;
    }

    #[test]
    fn tokenizer_config_bytes_never_panic((edits, cut) in byte_edits(967)) {
        let source = fixture_source(REPO);
        let bytes = edit(source.files.get("tokenizer_config.json").unwrap().to_vec(), &edits, cut);
        build_is_total(&with_file(&source, "tokenizer_config.json", bytes))?;
    }

    #[test]
    fn tokenizer_json_never_panics(which in 0usize..4, value in hostile_value()) {
        let source = fixture_source(REPO);
        let mut tok: Value = serde_json::from_slice(source.files.get("tokenizer.json").unwrap()).unwrap();
        match which {
            0 => tok["model"]["vocab"] = value,
            1 => tok["added_tokens"] = value,
            2 => tok["model"]["merges"] = value,
            _ => tok["pre_tokenizer"] = value,
        }
        build_is_total(&with_file(&source, "tokenizer.json", serde_json::to_vec(&tok).unwrap()))?;
    }

    /// The model card's YAML front matter, edited byte by byte.
    #[test]
    fn model_card_never_panics(edits in proptest::collection::vec((0usize..400, any::<u8>()), 1..6)) {
        let source = fixture_source(REPO);
        let bytes = edit(source.files.get("README.md").unwrap().to_vec(), &edits, None);
        build_is_total(&with_file(&source, "README.md", bytes))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// The shard index: any JSON shape or bytes give a list of shard names or an error.
    #[test]
    fn shard_index_never_panics(value in hostile_value(), (edits, cut) in byte_edits(3745), raw in any::<bool>()) {
        let source = fixture_source(REPO);
        let original = source.files.get("model.safetensors.index.json").unwrap().to_vec();
        let bytes = if raw {
            edit(original, &edits, cut)
        } else {
            serde_json::to_vec(&json!({ "metadata": {}, "weight_map": value })).unwrap()
        };
        let files = with_file(&source, "model.safetensors.index.json", bytes).files;
        if let Ok(shards) = super::fetch::index_shards(REPO, &files) {
            prop_assert!(!shards.is_empty());
        }
    }
}

/// Regression (found by `config_values_never_panic`): `2 * num_attention_heads` overflowed in
/// the Llama q/k permutation for `num_attention_heads = u64::MAX`.
#[test]
fn huge_head_count_is_an_error_not_an_overflow() {
    let source = fixture_source(REPO);
    let mut config: Value = serde_json::from_slice(source.files.get("config.json").unwrap()).unwrap();
    for key in ["num_attention_heads", "num_key_value_heads"] {
        let mut c = config.clone();
        c[key] = json!(u64::MAX);
        let built = layout::build(&with_file(&source, "config.json", serde_json::to_vec(&c).unwrap()), OutType::F16);
        assert!(built.is_err(), "{key} = u64::MAX must be refused");
    }
    config["hidden_size"] = json!(u64::MAX);
    let built = layout::build(&with_file(&source, "config.json", serde_json::to_vec(&config).unwrap()), OutType::F16);
    assert!(built.is_err());
}

/// Cards that are hostile by construction, kept as regression cases.
#[test]
fn hostile_model_cards_are_errors_or_ignored() {
    let source = fixture_source(REPO);
    let cards: [&[u8]; 6] = [
        b"---\n: : :\n---\n",
        b"---\nlicense: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n---\n",
        b"---\nbase_model: &a [*a, *a]\n---\n",
        b"---\ntags: !!binary AAAA\n---\n",
        b"---\n\xff\xfe\n---\n",
        b"---\nlanguage:\n  - en\n",
    ];
    for card in cards {
        let outcome = layout::build(&with_file(&source, "README.md", card.to_vec()), OutType::F16);
        if let Err(e) = outcome {
            assert!(!e.to_string().is_empty());
        }
    }
}
