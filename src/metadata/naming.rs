//! The reference's model-id heuristics (`Metadata.get_model_id_components`, `id_to_title`;
//! converter-spec §2.4). In remote mode they run on `_name_or_path`, on the snapshot directory
//! name (the commit sha) and on every `base_model`/`datasets` id of the model card.

use std::cmp::Ordering;
use std::sync::OnceLock;

use regex::Regex;

use super::pystr;

/// The parts the reference extracts from a model id; `None` where it found nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdComponents {
    pub full_name: Option<String>,
    pub org: Option<String>,
    pub basename: Option<String>,
    pub finetune: Option<String>,
    pub version: Option<String>,
    pub size_label: Option<String>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct Kinds {
    basename: bool,
    size_label: bool,
    finetune: bool,
    version: bool,
    kind_type: bool,
}

impl Kinds {
    fn count(self) -> usize {
        [self.basename, self.size_label, self.finetune, self.version, self.kind_type].iter().filter(|b| **b).count()
    }
}

struct Patterns {
    version: Regex,
    quant_type: Regex,
    size: Regex,
    finetune: Regex,
    title_exempt: Regex,
}

/// Python's `\w` for `str` patterns: alphanumeric (L, N) or underscore. Rust's `\w` differs
/// (it includes marks), so it is spelled out.
const PY_WORD: &str = r"[\p{L}\p{N}_]";

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("static regex");
        Patterns {
            version: re(r"(?i)^(?:(?:v|iter)?\d+(?:[.]\d+)*)$"),
            quant_type: re(&format!(r"(?i)^(?:i?q\d(?:_{PY_WORD})*|b?fp?(?:16|32))$")),
            size: re(r"(?i)^(?:(?:(?:[A]|\d+[x])?\d+(?:[._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl))$"),
            finetune: re(r"(?i)^(?:chat|instruct|vision|lora)$"),
            title_exempt: re(r"^(?:v\d+(?:\.\d+)*|\d.*)$"),
        }
    })
}

/// `Metadata.id_to_title`: dashes become spaces, and all-lowercase words that are not
/// version numbers or number-led get Python's `str.title()`.
pub fn id_to_title(s: &str) -> String {
    let replaced = pystr::strip(s).replace('-', " ");
    let p = patterns();
    pystr::split_whitespace(&replaced)
        .map(|w| if pystr::is_lower(w) && !p.title_exempt.is_match(w) { pystr::title(w) } else { w.to_string() })
        .collect::<Vec<_>>()
        .join(" ")
}

fn last_char(s: &str) -> Option<char> {
    s.chars().next_back()
}

fn second_last_char(s: &str) -> Option<char> {
    s.chars().rev().nth(1)
}

/// The bloom `7b1` → `7.1b` rewrite and the suffix upper-casing of the size branch.
fn normalize_size_part(part: &str) -> String {
    let mut part = part.replace('_', ".");
    let chars: Vec<char> = part.chars().collect();
    if let [head @ .., a, b] = chars.as_slice() {
        if pystr::is_decimal(*b) {
            let mut s: String = head.iter().collect();
            s.push('.');
            s.push(*b);
            s.push(*a);
            part = s;
        }
    }
    if let (Some(prev), Some(last)) = (second_last_char(&part), last_char(&part)) {
        if pystr::is_decimal(prev) && "kmbt".contains(last) {
            part.pop();
            part.push(last.to_ascii_uppercase());
        }
    }
    part
}

/// `" KMBT".find(c)`: the power of 1000 a suffix stands for (-1 if none).
fn suffix_power(c: char) -> i32 {
    " KMBT".chars().position(|x| x == c).map_or(-1, |i| i as i32)
}

/// Whether a size written in the name is far from the real parameter count ("likely a
/// context length"), with Python's exact float/int comparisons.
fn is_far_from_total(part: &str, total_params: i64) -> Option<bool> {
    let last = last_char(part)?;
    let number = pystr::parse_float(&part[..part.len() - last.len_utf8()])?;
    let label = number * 1000f64.powi(suffix_power(last));
    let total = total_params as i128;
    let far = if total < 0 {
        pystr::float_cmp_int(label, total.abs().div_euclid(8)) == Some(Ordering::Less)
    } else {
        let diff = (label - total_params as f64).abs();
        pystr::float_cmp_int(diff, (7 * total).div_euclid(8)) == Some(Ordering::Greater)
    };
    Some(far)
}

fn annotate(parts: &mut [String], kinds: &mut [Kinds], total_params: i64) {
    let p = patterns();
    for (i, (part, kind)) in parts.iter_mut().zip(kinds.iter_mut()).enumerate() {
        if p.version.is_match(part) {
            kind.version = true;
        } else if p.quant_type.is_match(part) {
            kind.kind_type = true;
            *part = pystr::upper(part);
        } else if i > 0 && p.size.is_match(part) {
            let mut normalized = normalize_size_part(part);
            if total_params != 0 && is_far_from_total(&normalized, total_params) == Some(true) {
                kind.finetune = true;
                if let Some(last) = normalized.pop() {
                    normalized.push_str(&pystr::lower_char(last));
                }
            }
            if kind.count() == 0 {
                kind.size_label = true;
            }
            *part = normalized;
        } else if i > 0 && p.finetune.is_match(part) {
            if total_params < 0 && part.to_lowercase() == "lora" {
                kind.kind_type = true;
            } else {
                kind.finetune = true;
            }
        }
    }
}

fn drop_word_size_labels(parts: &[String], kinds: &mut [Kinds]) {
    let has_numeric = parts.iter().zip(kinds.iter()).any(|(n, k)| k.size_label && n.chars().any(pystr::is_decimal));
    if has_numeric {
        for (n, k) in parts.iter().zip(kinds.iter_mut()) {
            if k.size_label && n.chars().all(pystr::is_alpha) {
                k.size_label = false;
            }
        }
    }
}

fn mark_basename(parts: &[String], kinds: &mut [Kinds]) {
    let mut at_start = true;
    for (part, k) in parts.iter().zip(kinds.iter_mut()) {
        let starts_alpha = part.chars().next().is_some_and(pystr::is_alpha);
        if at_start && ((k.count() == 0 && starts_alpha) || k.version) {
            k.basename = true;
        } else {
            at_start = false;
            if k.count() == 0 {
                k.finetune = true;
            }
        }
    }
    for k in kinds.iter_mut().rev() {
        if k.basename && k.count() > 1 {
            k.basename = false;
        } else {
            break;
        }
    }
}

fn join_where(parts: &[String], kinds: &[Kinds], keep: impl Fn(&Kinds) -> bool) -> Option<String> {
    let joined =
        parts.iter().zip(kinds).filter(|(_, k)| keep(k)).map(|(p, _)| p.as_str()).collect::<Vec<_>>().join("-");
    (!joined.is_empty()).then_some(joined)
}

fn join_size_labels(parts: &[String], kinds: &[Kinds]) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    for (p, k) in parts.iter().zip(kinds) {
        if k.size_label && !seen.contains(&p.as_str()) {
            seen.push(p);
        }
    }
    let joined = seen.join("-");
    (!joined.is_empty()).then_some(joined)
}

/// `Metadata.get_model_id_components(model_id, total_params)`.
pub fn get_model_id_components(model_id: &str, total_params: i64) -> IdComponents {
    if model_id.contains(' ') {
        return IdComponents { full_name: Some(model_id.to_string()), ..Default::default() };
    }
    let (org, full_name) = match model_id.split_once('/') {
        Some((o, n)) => (Some(o), n),
        None => (None, model_id),
    };
    let org = org.filter(|o| !o.starts_with('.'));

    let mut parts: Vec<String> = full_name.split('-').filter(|p| !p.is_empty()).map(str::to_string).collect();
    let mut kinds = vec![Kinds::default(); parts.len()];
    annotate(&mut parts, &mut kinds, total_params);
    drop_word_size_labels(&parts, &mut kinds);
    mark_basename(&parts, &mut kinds);

    let mut basename = join_where(&parts, &kinds, |k| k.basename);
    let size_label = join_size_labels(&parts, &kinds);
    let finetune = join_where(&parts, &kinds, |k| k.finetune);
    let version = join_where(&parts, &kinds, |k| k.version && !k.basename);
    if size_label.is_none() && finetune.is_none() && version.is_none() {
        basename = None;
    }
    IdComponents {
        full_name: Some(full_name.to_string()),
        org: org.map(str::to_string),
        basename,
        finetune,
        version,
        size_label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(id: &str, total: i64) -> (Option<String>, Option<String>, Option<String>, Option<String>) {
        let c = get_model_id_components(id, total);
        (c.basename, c.finetune, c.version, c.size_label)
    }

    fn s(x: &str) -> Option<String> {
        Some(x.to_string())
    }

    #[test]
    fn spec_table() {
        let t = 8_030_261_248;
        assert_eq!(comps("Meta-Llama-3.1-8B-Instruct", t), (s("Meta-Llama-3.1"), s("Instruct"), None, s("8B")));
        assert_eq!(comps("Mistral-7B-Instruct-v0.3", t), (s("Mistral"), s("Instruct"), s("v0.3"), s("7B")));
        assert_eq!(comps("gemma-2-9b-it", t), (s("gemma-2"), s("it"), None, s("9B")));
        assert_eq!(comps("Phi-3-mini-4k-instruct", t), (s("Phi-3"), s("4k-instruct"), None, s("mini")));
        assert_eq!(comps("Mixtral-8x7B-Instruct-v0.1", t), (s("Mixtral"), s("Instruct"), s("v0.1"), s("8x7B")));
        assert_eq!(comps("Llama-2-7b-chat-hf", t), (s("Llama-2"), s("chat-hf"), None, s("7B")));
        assert_eq!(comps("gpt2", t), (None, None, None, None));
        assert_eq!(comps("bert-base-uncased", t), (None, None, None, None));
    }

    #[test]
    fn digit_led_commit_sha_is_a_finetune() {
        let sha = "0123abcd0123abcd0123abcd0123abcd0123abcd";
        assert_eq!(comps(sha, 1000), (None, s(sha), None, None));
        assert_eq!(comps("abcd0123abcd0123abcd0123abcd0123abcd0123", 1000), (None, None, None, None));
    }

    #[test]
    fn org_and_full_name() {
        let c = get_model_id_components("meta-llama/Llama-2-7b-hf", 0);
        assert_eq!(c.org.as_deref(), Some("meta-llama"));
        assert_eq!(c.full_name.as_deref(), Some("Llama-2-7b-hf"));
        assert_eq!(get_model_id_components("./x-7b", 0).org, None);
        assert_eq!(get_model_id_components("a b", 0).full_name.as_deref(), Some("a b"));
    }

    #[test]
    fn bloom_notation_and_context_length() {
        assert_eq!(comps("bloom-7b1", 0).3, s("7.1B"));
        // 128k is far from 8B params: a context length, lower-cased and a finetune.
        assert_eq!(comps("Llama-3-8B-128K", 8_000_000_000), (s("Llama-3"), s("128k"), None, s("8B")));
    }

    #[test]
    fn id_to_title_examples() {
        assert_eq!(id_to_title("meta-llama"), "Meta Llama");
        assert_eq!(id_to_title("Meta-Llama-3.1-8B-Instruct"), "Meta Llama 3.1 8B Instruct");
        assert_eq!(id_to_title("gemma-3-1b-pt"), "Gemma 3 1b Pt");
        assert_eq!(id_to_title("mistralai"), "Mistralai");
        assert_eq!(id_to_title("qwen2x-v0.1"), "Qwen2X v0.1");
        assert_eq!(id_to_title("  a--b "), "A B");
    }
}
