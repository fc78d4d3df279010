//! `general.*` metadata as the reference derives it in remote mode (converter-spec §2):
//! `ModelBase.prepare_metadata` → `Metadata.load` (model card, `config.json` `_name_or_path`,
//! the snapshot directory name = commit sha, `generation_config.json`) → `set_type` →
//! `Metadata.set_gguf_meta_model`.

mod card;
mod naming;
mod pyobj;
mod pystr;
mod sampling;
mod size;
mod titlecase;
mod yaml11;
mod yaml_scalar;

#[cfg(test)]
mod tests;

use crate::gguf::{KvMap, Value};
use crate::source::RepoFiles;

pub use card::CardError;
pub use naming::{get_model_id_components, id_to_title, IdComponents};
pub use size::{count_parameters, rounded_notation, size_label, ParamCount};
pub use yaml11::YamlError;

use pyobj::Py;

/// Why the reference would abort while deriving or writing the `general.*` block.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("model card: {0}")]
    Card(#[from] CardError),
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("config.json: {0}")]
    Config(String),
    #[error("{key}: expected {expected}, found {found} (the reference raises when writing it)")]
    WrongType { key: String, expected: String, found: String },
    #[error("{key}: value {value} out of range for its GGUF type")]
    OutOfRange { key: String, value: String },
    #[error("{0}: all items in a GGUF array must have the same type")]
    MixedArray(String),
    #[error("{0}: nested empty array")]
    EmptyNestedArray(String),
}

/// What `write_general` needs: the repo's small files, its id and pinned commit, and the
/// parameter counts of the tensors that will be written.
pub struct MetadataInput<'a> {
    pub files: &'a RepoFiles,
    /// `org/name`: becomes `general.name` verbatim.
    pub repo_id: &'a str,
    /// The snapshot directory name in remote mode (the 40-hex commit sha); the reference runs
    /// its name heuristics on it, so a digit-led sha becomes `general.finetune`.
    pub commit: &'a str,
    pub params: ParamCount,
}

/// The `Metadata` dataclass fields the remote path can set, as Python objects (a card can put
/// any YAML type in them; the writer decides later whether that raises).
#[derive(Debug, Default)]
pub(crate) struct Fields {
    name: Option<Py>,
    author: Option<Py>,
    version: Option<Py>,
    organization: Option<Py>,
    finetune: Option<Py>,
    basename: Option<Py>,
    description: Option<Py>,
    size_label: Option<Py>,
    source_url: Option<Py>,
    source_doi: Option<Py>,
    source_uuid: Option<Py>,
    source_repo_url: Option<Py>,
    license: Option<Py>,
    license_name: Option<Py>,
    license_link: Option<Py>,
    base_models: Option<Vec<Py>>,
    datasets: Option<Vec<Py>>,
    tags: Option<Vec<Py>>,
    languages: Option<Vec<Py>>,
}

/// Fills name-derived fields that are still unset from one parsed id (the `_name_or_path` and
/// directory-name fallbacks of `apply_metadata_heuristic`).
fn apply_id_components(f: &mut Fields, c: IdComponents) {
    let set = |slot: &mut Option<Py>, v: Option<String>| {
        if slot.is_none() {
            if let Some(v) = v {
                *slot = Some(Py::Str(v));
            }
        }
    };
    set(&mut f.name, c.full_name.as_deref().map(id_to_title));
    set(&mut f.organization, c.org.as_deref().map(id_to_title));
    set(&mut f.basename, c.basename);
    set(&mut f.finetune, c.finetune);
    set(&mut f.version, c.version);
    set(&mut f.size_label, c.size_label);
}

/// `_name_or_path` from the raw `config.json`, used when it has at most one `/`.
fn apply_name_or_path(f: &mut Fields, files: &RepoFiles, total_params: i64) -> Result<(), MetadataError> {
    let Some(parsed) = files.json("config.json") else {
        return Ok(());
    };
    let config = parsed.map_err(|e| MetadataError::Config(e.to_string()))?;
    match config.get("_name_or_path") {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(serde_json::Value::String(id)) => {
            if id.matches('/').count() <= 1 {
                apply_id_components(f, get_model_id_components(id, total_params));
            }
            Ok(())
        }
        Some(_) => Err(MetadataError::Config("_name_or_path is not a string".into())),
    }
}

/// `Metadata.load` + the remote-mode part of `prepare_metadata`.
fn derive_fields(inp: &MetadataInput) -> Result<Fields, MetadataError> {
    let total = inp.params.total;
    let mut f = Fields::default();
    let card = card::load_model_card(inp.files.get("README.md"))?;
    card::apply_card(&mut f, &card, total);
    apply_name_or_path(&mut f, inp.files, total)?;
    apply_id_components(&mut f, get_model_id_components(inp.commit, total));
    f.name = Some(Py::Str(inp.repo_id.to_string()));
    if f.size_label.is_none() && total > 0 {
        f.size_label = Some(Py::Str(size_label(&inp.params)));
    }
    Ok(f)
}

fn put_string(kv: &mut KvMap, key: &str, v: &Option<Py>) -> Result<(), MetadataError> {
    if let Some(v) = v {
        if let Some(value) = pyobj::string_value(key, v)? {
            kv.set(key, value);
        }
    }
    Ok(())
}

fn write_sampling(kv: &mut KvMap, files: &RepoFiles) -> Result<(), MetadataError> {
    let gen = sampling::load_generation_config(files.get("generation_config.json"))?;
    let values = sampling::sampling_values(&gen)?;
    for ((suffix, _, kind), v) in sampling::SAMPLING_FIELDS.iter().zip(values) {
        let Some(v) = v else { continue };
        let key = format!("general.sampling.{suffix}");
        match kind {
            sampling::Kind::Str => put_string(kv, &key, &Some(v))?,
            sampling::Kind::Int => kv.set(&key, pyobj::int32_value(&key, &v)?),
            sampling::Kind::Float => kv.set(&key, pyobj::float32_value(&key, &v)?),
        }
    }
    Ok(())
}

/// `general.license`: a list is joined with `,` (its items must be str).
fn write_license(kv: &mut KvMap, license: &Option<Py>) -> Result<(), MetadataError> {
    const KEY: &str = "general.license";
    match license {
        Some(Py::List(items)) => {
            let parts: Vec<&str> =
                items.iter().map(|i| i.as_str().ok_or_else(|| pyobj_type_error(KEY, i))).collect::<Result<_, _>>()?;
            put_string(kv, KEY, &Some(Py::Str(parts.join(","))))
        }
        other => put_string(kv, KEY, other),
    }
}

fn pyobj_type_error(key: &str, v: &Py) -> MetadataError {
    MetadataError::WrongType { key: key.to_string(), expected: "str".into(), found: v.type_name().into() }
}

const SOURCE_FIELDS: [&str; 9] =
    ["name", "author", "version", "organization", "description", "url", "doi", "uuid", "repo_url"];

/// `general.base_model.*` / `general.dataset.*`: the count, then each entry's present fields.
fn write_sources(kv: &mut KvMap, prefix: &str, entries: &Option<Vec<Py>>) -> Result<(), MetadataError> {
    let Some(entries) = entries else {
        return Ok(());
    };
    let count = u32::try_from(entries.len())
        .map_err(|_| MetadataError::OutOfRange { key: format!("{prefix}.count"), value: entries.len().to_string() })?;
    kv.set(format!("{prefix}.count"), Value::U32(count));
    for (i, entry) in entries.iter().enumerate() {
        for field in SOURCE_FIELDS {
            if let Some(v) = entry.get(field) {
                put_string(kv, &format!("{prefix}.{i}.{field}"), &Some(v.clone()))?;
            }
        }
    }
    Ok(())
}

fn write_list(kv: &mut KvMap, key: &str, items: &Option<Vec<Py>>) -> Result<(), MetadataError> {
    if let Some(items) = items {
        if let Some(v) = pyobj::array_value(key, items)? {
            kv.set(key, v);
        }
    }
    Ok(())
}

/// Writes general.type, general.sampling.*, general.name..., general.tags, general.languages
/// into `kv` in the reference's order. The caller has already added `general.architecture`
/// (and any KVs from generated tensors); `general.file_type` and `quantization_version` follow.
/// Errors where the reference's conversion would raise.
pub fn write_general(inp: &MetadataInput, kv: &mut KvMap) -> Result<(), MetadataError> {
    let f = derive_fields(inp)?;
    kv.set("general.type", Value::str("model"));
    write_sampling(kv, inp.files)?;
    put_string(kv, "general.name", &f.name)?;
    put_string(kv, "general.author", &f.author)?;
    put_string(kv, "general.version", &f.version)?;
    put_string(kv, "general.organization", &f.organization)?;
    put_string(kv, "general.finetune", &f.finetune)?;
    put_string(kv, "general.basename", &f.basename)?;
    put_string(kv, "general.description", &f.description)?;
    put_string(kv, "general.size_label", &f.size_label)?;
    write_license(kv, &f.license)?;
    put_string(kv, "general.license.name", &f.license_name)?;
    put_string(kv, "general.license.link", &f.license_link)?;
    put_string(kv, "general.source.url", &f.source_url)?;
    put_string(kv, "general.source.doi", &f.source_doi)?;
    put_string(kv, "general.source.uuid", &f.source_uuid)?;
    put_string(kv, "general.source.repo_url", &f.source_repo_url)?;
    write_sources(kv, "general.base_model", &f.base_models)?;
    write_sources(kv, "general.dataset", &f.datasets)?;
    write_list(kv, "general.tags", &f.tags)?;
    write_list(kv, "general.languages", &f.languages)?;
    Ok(())
}
