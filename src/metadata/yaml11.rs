//! `yaml.safe_load` (PyYAML, YAML 1.1) for model-card front matter (hazard H7).
//!
//! yaml-rust2 does the YAML syntax (it is maintained, pure Rust, and exposes an event parser
//! that reports scalar style and tags); the YAML 1.1 typing that PyYAML's SafeLoader applies is
//! done here, because no Rust crate reproduces it: plain `yes/no/on/off` are booleans, `1:30`
//! is sexagesimal 90, `017` is octal, `1e5` is a string but `1.0e+5` a float, `2024-01-01` a
//! date, merge keys `<<`, and the safe constructors for explicit `!!tags`.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::pyobj::Py;
use super::yaml_scalar::{construct_binary, construct_float, construct_int, construct_timestamp};

/// Why a card's YAML does not load (the reference raises on all of these).
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("YAML syntax: {0}")]
    Syntax(String),
    #[error("YAML contains a non-printable character U+{0:04X}")]
    NonPrintable(u32),
    #[error("YAML stream has more than one document")]
    MultipleDocuments,
    #[error("YAML alias to unknown anchor")]
    UnknownAnchor,
    #[error("YAML expands to more than {MAX_NODES} nodes")]
    TooLarge,
    #[error("YAML constructor: {0}")]
    Constructor(String),
}

/// Alias expansion copies nodes; this caps what a hostile card can make us allocate.
const MAX_NODES: usize = 1_000_000;

const YAML_TAG: &str = "tag:yaml.org,2002:";

#[derive(Debug, Clone)]
enum Node {
    Scalar { value: String, plain: bool, tag: Option<String> },
    Seq { items: Vec<Node>, tag: Option<String> },
    Map { pairs: Vec<(Node, Node)>, tag: Option<String> },
}

enum Frame {
    Seq { anchor: usize, tag: Option<String>, items: Vec<Node> },
    Map { anchor: usize, tag: Option<String>, flat: Vec<Node> },
}

#[derive(Default)]
struct Composer {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    documents: Vec<Node>,
    document_count: usize,
    nodes: usize,
    error: Option<YamlError>,
}

fn node_size(n: &Node) -> usize {
    match n {
        Node::Scalar { .. } => 1,
        Node::Seq { items, .. } => 1 + items.iter().map(node_size).sum::<usize>(),
        Node::Map { pairs, .. } => 1 + pairs.iter().map(|(k, v)| node_size(k) + node_size(v)).sum::<usize>(),
    }
}

impl Composer {
    fn finish_node(&mut self, anchor: usize, node: Node) {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            self.error.get_or_insert(YamlError::TooLarge);
            return;
        }
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { flat, .. }) => flat.push(node),
            None => self.documents.push(node),
        }
    }

    fn alias(&mut self, id: usize) {
        match self.anchors.get(&id).cloned() {
            Some(node) => {
                self.nodes += node_size(&node);
                self.finish_node(0, node);
            }
            None => {
                self.error.get_or_insert(YamlError::UnknownAnchor);
            }
        }
    }
}

fn tag_string(tag: Option<yaml_rust2::parser::Tag>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

impl MarkedEventReceiver for Composer {
    fn on_event(&mut self, ev: Event, _mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::DocumentStart => self.document_count += 1,
            Event::Scalar(value, style, anchor, tag) => {
                let plain = matches!(style, TScalarStyle::Plain);
                self.finish_node(anchor, Node::Scalar { value, plain, tag: tag_string(tag) });
            }
            Event::SequenceStart(anchor, tag) => {
                self.stack.push(Frame::Seq { anchor, tag: tag_string(tag), items: Vec::new() })
            }
            Event::MappingStart(anchor, tag) => {
                self.stack.push(Frame::Map { anchor, tag: tag_string(tag), flat: Vec::new() })
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { anchor, tag, items }) = self.stack.pop() {
                    self.finish_node(anchor, Node::Seq { items, tag });
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map { anchor, tag, flat }) = self.stack.pop() {
                    let mut pairs = Vec::with_capacity(flat.len() / 2);
                    let mut it = flat.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    self.finish_node(anchor, Node::Map { pairs, tag });
                }
            }
            Event::Alias(id) => self.alias(id),
            _ => {}
        }
    }
}

/// PyYAML's `Reader` rejects these before parsing.
fn check_printable(s: &str) -> Result<(), YamlError> {
    let printable = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}');
    match s.chars().find(|c| !printable(*c)) {
        Some(c) => Err(YamlError::NonPrintable(c as u32)),
        None => Ok(()),
    }
}

/// `yaml.safe_load(text)`: `Py::None` for an empty stream.
pub fn safe_load(text: &str) -> Result<Py, YamlError> {
    check_printable(text)?;
    let mut composer = Composer::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut composer, true).map_err(|e| YamlError::Syntax(e.to_string()))?;
    if let Some(e) = composer.error {
        return Err(e);
    }
    if composer.document_count > 1 || composer.documents.len() > 1 {
        return Err(YamlError::MultipleDocuments);
    }
    match composer.documents.pop() {
        Some(root) => construct(&root),
        None => Ok(Py::None),
    }
}

struct Resolvers {
    bool_: Regex,
    float: Regex,
    int: Regex,
    merge: Regex,
    null: Regex,
    timestamp: Regex,
    value: Regex,
}

fn resolvers() -> &'static Resolvers {
    static R: OnceLock<Resolvers> = OnceLock::new();
    R.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("static regex");
        Resolvers {
            bool_: re(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
            float: re(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
            int: re(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$"),
            merge: re(r"^(?:<<)$"),
            null: re(r"^(?:~|null|Null|NULL|)$"),
            timestamp: re(r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$"),
            value: re(r"^(?:=)$"),
        }
    })
}

/// PyYAML's implicit resolution of a plain scalar: resolvers are tried in registration order
/// among those registered for the first character.
fn resolve_plain(v: &str) -> &'static str {
    let r = resolvers();
    let first = v.chars().next();
    let candidates: [(&Regex, &str, &str); 7] = [
        (&r.bool_, "bool", "yYnNtTfFoO"),
        (&r.float, "float", "-+0123456789."),
        (&r.int, "int", "-+0123456789"),
        (&r.merge, "merge", "<"),
        (&r.null, "null", "~nN"),
        (&r.timestamp, "timestamp", "0123456789"),
        (&r.value, "value", "="),
    ];
    for (re, tag, firsts) in candidates {
        let applies = match first {
            Some(c) => firsts.contains(c),
            None => tag == "null",
        };
        if applies && re.is_match(v) {
            return tag;
        }
    }
    "str"
}

pub(super) fn constructor_error(msg: impl Into<String>) -> YamlError {
    YamlError::Constructor(msg.into())
}

fn construct(node: &Node) -> Result<Py, YamlError> {
    match node {
        Node::Scalar { value, plain, tag } => {
            let kind = match tag.as_deref() {
                None if *plain => resolve_plain(value).to_string(),
                None | Some("!") => "str".to_string(),
                Some(t) => t
                    .strip_prefix(YAML_TAG)
                    .map(str::to_string)
                    .ok_or_else(|| constructor_error(format!("unknown tag {t}")))?,
            };
            construct_scalar(&kind, value)
        }
        Node::Seq { items, tag } => match tag.as_deref().map(|t| t.strip_prefix(YAML_TAG).unwrap_or(t)) {
            None | Some("seq") | Some("!") => Ok(Py::List(items.iter().map(construct).collect::<Result<_, _>>()?)),
            Some("omap") | Some("pairs") => construct_pairs(items),
            Some(t) => Err(constructor_error(format!("tag {t} on a sequence"))),
        },
        Node::Map { pairs, tag } => match tag.as_deref().map(|t| t.strip_prefix(YAML_TAG).unwrap_or(t)) {
            None | Some("map") | Some("!") => construct_mapping(pairs),
            Some("set") => {
                let entries = construct_mapping(pairs)?;
                Ok(Py::Opaque("set", entries.truthy()))
            }
            Some(t) => Err(constructor_error(format!("tag {t} on a mapping"))),
        },
    }
}

/// `!!omap`/`!!pairs`: a list of (key, value) tuples; each item must be a one-pair mapping.
fn construct_pairs(items: &[Node]) -> Result<Py, YamlError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Node::Map { pairs, .. } if pairs.len() == 1 => {
                for (k, v) in pairs {
                    construct(k)?;
                    construct(v)?;
                }
                out.push(Py::Opaque("tuple", true));
            }
            _ => return Err(constructor_error("expected a single mapping item in !!omap/!!pairs")),
        }
    }
    Ok(Py::List(out))
}

fn is_merge_key(n: &Node) -> bool {
    match n {
        Node::Scalar { value, plain: true, tag: None } => resolve_plain(value) == "merge",
        Node::Scalar { tag: Some(t), .. } => t == "tag:yaml.org,2002:merge",
        _ => false,
    }
}

/// SafeConstructor.flatten_mapping: merged pairs come first (earlier sources winning), then
/// the mapping's own pairs, so a later duplicate overrides.
fn flatten(pairs: &[(Node, Node)]) -> Result<Vec<(Node, Node)>, YamlError> {
    let mut merged: Vec<(Node, Node)> = Vec::new();
    let mut own: Vec<(Node, Node)> = Vec::new();
    for (k, v) in pairs {
        if !is_merge_key(k) {
            own.push((k.clone(), v.clone()));
            continue;
        }
        match v {
            Node::Map { pairs: sub, .. } => merged.extend(flatten(sub)?),
            Node::Seq { items, .. } => {
                let mut subs = Vec::new();
                for item in items {
                    match item {
                        Node::Map { pairs: sub, .. } => subs.push(flatten(sub)?),
                        _ => return Err(constructor_error("merge sequence item is not a mapping")),
                    }
                }
                for sub in subs.into_iter().rev() {
                    merged.extend(sub);
                }
            }
            _ => return Err(constructor_error("merge value is not a mapping")),
        }
    }
    merged.extend(own);
    Ok(merged)
}

fn construct_mapping(pairs: &[(Node, Node)]) -> Result<Py, YamlError> {
    let mut out = Vec::with_capacity(pairs.len());
    for (k, v) in flatten(pairs)? {
        let key = construct(&k)?;
        if matches!(key, Py::List(_) | Py::Dict(_)) || matches!(key, Py::Opaque("set", _)) {
            return Err(constructor_error("found unhashable key"));
        }
        out.push((key, construct(&v)?));
    }
    Ok(Py::Dict(out))
}

fn construct_scalar(kind: &str, value: &str) -> Result<Py, YamlError> {
    match kind {
        "str" => Ok(Py::Str(value.to_string())),
        "null" => Ok(Py::None),
        "bool" => match value.to_lowercase().as_str() {
            "yes" | "true" | "on" => Ok(Py::Bool(true)),
            "no" | "false" | "off" => Ok(Py::Bool(false)),
            _ => Err(constructor_error(format!("not a bool: {value}"))),
        },
        "int" => construct_int(value).map(Py::Int),
        "float" => construct_float(value).map(Py::Float),
        "binary" => construct_binary(value).map(Py::Bytes),
        "timestamp" => construct_timestamp(value).map(|()| Py::Opaque("datetime", true)),
        _ => Err(constructor_error(format!("could not determine a constructor for tag {kind}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(s: &str) -> Py {
        safe_load(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn value_of(s: &str) -> Py {
        load(&format!("a: {s}\n")).get("a").cloned().expect("key a")
    }

    #[test]
    fn yaml11_implicit_types() {
        assert_eq!(value_of("yes"), Py::Bool(true));
        assert_eq!(value_of("Off"), Py::Bool(false));
        assert_eq!(value_of("yEs"), Py::Str("yEs".into()));
        assert_eq!(value_of("y"), Py::Str("y".into()));
        assert_eq!(value_of("1e5"), Py::Str("1e5".into()));
        assert_eq!(value_of("1.0e+5"), Py::Float(100000.0));
        assert_eq!(value_of("1.0"), Py::Float(1.0));
        assert_eq!(value_of(".5"), Py::Float(0.5));
        assert_eq!(value_of("017"), Py::Int(15));
        assert_eq!(value_of("0o17"), Py::Str("0o17".into()));
        assert_eq!(value_of("0x1F"), Py::Int(31));
        assert_eq!(value_of("1:30"), Py::Int(90));
        assert_eq!(value_of("1_000"), Py::Int(1000));
        assert_eq!(value_of("~"), Py::None);
        assert_eq!(value_of("'yes'"), Py::Str("yes".into()));
        assert_eq!(value_of("3.1.0"), Py::Str("3.1.0".into()));
        assert_eq!(value_of("2024-01-01"), Py::Opaque("datetime", true));
        assert_eq!(value_of("!!binary aGVsbG8="), Py::Bytes(b"hello".to_vec()));
        assert_eq!(value_of("!!str 12"), Py::Str("12".into()));
        assert_eq!(value_of("!!int '12'"), Py::Int(12));
        assert_eq!(load("a:\n"), Py::Dict(vec![(Py::Str("a".into()), Py::None)]));
    }

    #[test]
    fn yaml11_failures() {
        assert!(safe_load("a: =\n").is_err());
        assert!(safe_load("a: 2024-13-45\n").is_err());
        assert!(safe_load("a: !foo x\n").is_err());
        assert!(safe_load("a: 1\n---\nb: 2\n").is_err());
        assert!(safe_load("a: \u{1}\n").is_err());
        assert!(safe_load("? [a]\n: 1\n").is_err());
    }

    #[test]
    fn anchors_and_merge_keys() {
        let doc = load("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n");
        let c = doc.get("c").unwrap();
        assert_eq!(c.get("x"), Some(&Py::Int(1)));
        assert_eq!(c.get("y"), Some(&Py::Int(3)));
        let doc = load("a: &a {k: 1}\nb: &b {k: 2}\nc: {<<: [*a, *b]}\n");
        assert_eq!(doc.get("c").unwrap().get("k"), Some(&Py::Int(1)));
    }

    #[test]
    fn empty_stream_is_none() {
        assert_eq!(load("\n"), Py::None);
        assert_eq!(load("# only a comment\n"), Py::None);
    }
}
