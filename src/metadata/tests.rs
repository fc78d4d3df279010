//! Golden checks: the `general.*` block of every public fixture, and the name heuristics
//! against outputs of the reference's own `get_model_id_components`/`id_to_title`.

use super::*;
use crate::testutil::{assert_kvs_match, fake_commit, fixture_files, golden, FIXTURES};

fn params_from_golden(g: &serde_json::Value) -> ParamCount {
    let tensors: Vec<(String, Vec<u64>)> = g["tensors"]
        .as_array()
        .expect("golden tensors")
        .iter()
        .map(|t| {
            let mut shape: Vec<u64> =
                t["ne"].as_array().expect("ne").iter().map(|d| d.as_u64().expect("dim")).collect();
            shape.reverse();
            (t["name"].as_str().expect("name").to_string(), shape)
        })
        .collect();
    count_parameters(tensors.iter().map(|(n, s)| (n.as_str(), s.as_slice())))
}

fn is_ours(k: &str) -> bool {
    k.starts_with("general.")
        && !matches!(k, "general.architecture" | "general.file_type" | "general.quantization_version")
}

#[test]
fn general_block_matches_every_fixture_golden() {
    for repo in FIXTURES {
        let g = golden(repo, "F16");
        let files = fixture_files(repo);
        let commit = fake_commit(repo);
        assert_eq!(g["hub"]["commit_sha"].as_str(), Some(commit.as_str()));
        let inp = MetadataInput { files: &files, repo_id: repo, commit: &commit, params: params_from_golden(&g) };
        let mut kv = KvMap::new();
        write_general(&inp, &mut kv).unwrap_or_else(|e| panic!("{repo}: {e}"));
        assert_kvs_match(&kv, &g, is_ours);
    }
}

#[test]
fn general_block_is_contiguous_in_goldens() {
    // Nothing from another module sits between general.type and the last general.* key we
    // write, so appending our block after general.architecture reproduces the order.
    for repo in FIXTURES {
        let g = golden(repo, "F16");
        let keys: Vec<&str> = g["kv"].as_array().unwrap().iter().map(|k| k["key"].as_str().unwrap()).collect();
        let first = keys.iter().position(|k| *k == "general.type").unwrap();
        let last = keys.iter().rposition(|k| is_ours(k)).unwrap();
        assert!(keys[first..=last].iter().all(|k| is_ours(k)), "{repo}: {:?}", &keys[first..=last]);
    }
}

fn card_files(readme: &str) -> RepoFiles {
    let mut files = RepoFiles::new();
    files.insert("README.md", readme.as_bytes().to_vec());
    files
}

fn write_with(files: &RepoFiles) -> Result<KvMap, MetadataError> {
    let inp = MetadataInput {
        files,
        repo_id: "org/Model",
        commit: "abcdef0123456789abcdef0123456789abcdef01",
        params: ParamCount { total: 1_000_000_000, shared: 1_000_000_000, expert: 0, expert_count: 0 },
    };
    let mut kv = KvMap::new();
    write_general(&inp, &mut kv).map(|()| kv)
}

#[test]
fn wrong_yaml_types_raise_like_the_reference() {
    assert!(matches!(write_with(&card_files("---\nversion: 1.0\n---\n")), Err(MetadataError::WrongType { .. })));
    assert!(matches!(write_with(&card_files("---\nlanguage: [en, no]\n---\n")), Err(MetadataError::MixedArray(_))));
    assert!(write_with(&card_files("---\nlicense: [mit, 3]\n---\n")).is_err());
    // Falsy values are skipped, not errors.
    let kv = write_with(&card_files("---\nversion: 0\nauthor: ''\n---\n")).unwrap();
    assert!(kv.get("general.version").is_none() && kv.get("general.author").is_none());
}

#[test]
fn card_fields_and_order() {
    let kv = write_with(&card_files(
        "---\nurl: https://x\nmodel_creator: Someone\nlicense: [mit, apache-2.0]\nbase_model: null\ntags: [2024]\nlanguage:\n- no\n---\n",
    ))
    .unwrap();
    let keys: Vec<&str> = kv.entries().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "general.type",
            "general.name",
            "general.author",
            "general.size_label",
            "general.license",
            "general.source.url",
            "general.base_model.count",
            "general.tags",
            "general.languages"
        ]
    );
    assert_eq!(kv.get("general.license"), Some(&Value::str("mit,apache-2.0")));
    assert_eq!(kv.get("general.base_model.count"), Some(&Value::U32(0)));
    assert_eq!(kv.get("general.tags"), Some(&Value::Array(crate::gguf::ValueType::I32, vec![Value::I32(2024)])));
    assert_eq!(kv.get("general.languages"), Some(&Value::str_array(["no"])));
    assert_eq!(kv.get("general.size_label"), Some(&Value::str("1000M")));
}

#[derive(serde::Deserialize)]
struct NamingCase {
    id: String,
    total: i64,
    expect: [Option<String>; 6],
    title: String,
}

#[test]
fn naming_matches_reference_outputs() {
    let data = include_str!("testdata/naming_cases.json");
    let cases: Vec<NamingCase> = serde_json::from_str(data).expect("naming_cases.json");
    assert!(cases.len() >= 200);
    let mut failures = Vec::new();
    for c in &cases {
        let got = get_model_id_components(&c.id, c.total);
        let got = [got.full_name, got.org, got.basename, got.finetune, got.version, got.size_label];
        if got != c.expect {
            failures.push(format!("{:?} ({}): got {:?}, reference {:?}", c.id, c.total, got, c.expect));
        }
        let title = id_to_title(&c.id);
        if title != c.title {
            failures.push(format!("id_to_title({:?}): got {title:?}, reference {:?}", c.id, c.title));
        }
    }
    assert!(failures.is_empty(), "{} of {} differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[derive(serde::Deserialize)]
struct CardCase {
    readme: String,
    generation_config: Option<String>,
    /// `[[key, hex of type + packed value], ...]` as the reference's writer packed them, or
    /// `"ERR <exception>"` when the reference raised.
    expect: serde_json::Value,
}

fn packed_hex(v: &Value) -> String {
    let mut out = (v.value_type() as u32).to_le_bytes().to_vec();
    crate::gguf::writer::encode_value(v, &mut out);
    hex::encode(out)
}

#[test]
fn cards_and_generation_configs_match_reference_outputs() {
    let cases: Vec<CardCase> = serde_json::from_str(include_str!("testdata/card_cases.json")).expect("card_cases.json");
    let mut failures = Vec::new();
    for c in &cases {
        let mut files = card_files(&c.readme);
        if let Some(g) = &c.generation_config {
            files.insert("generation_config.json", g.as_bytes().to_vec());
        }
        let got = write_with(&files);
        match (&c.expect, got) {
            (serde_json::Value::String(err), Ok(kv)) => {
                failures.push(format!("{:?}: reference raised {err}, we wrote {:?}", c.readme, kv.entries()))
            }
            (serde_json::Value::Array(expected), Ok(kv)) => {
                let ours: Vec<(String, String)> =
                    kv.entries().iter().map(|(k, v)| (k.clone(), packed_hex(v))).collect();
                let theirs: Vec<(String, String)> = expected
                    .iter()
                    .map(|p| (p[0].as_str().unwrap_or("").to_string(), p[1].as_str().unwrap_or("").to_string()))
                    .collect();
                if ours != theirs {
                    failures.push(format!(
                        "{:?} / {:?}:\n  ours   {ours:?}\n  theirs {theirs:?}",
                        c.readme, c.generation_config
                    ));
                }
            }
            (serde_json::Value::Array(_), Err(e)) => {
                failures.push(format!("{:?}: we raised {e}, reference did not", c.readme))
            }
            (_, Err(_)) => {}
            (other, Ok(_)) => failures.push(format!("bad expectation {other}")),
        }
    }
    assert!(cases.len() >= 50);
    assert!(failures.is_empty(), "{} of {} differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
