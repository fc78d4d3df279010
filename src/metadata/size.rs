//! Parameter counts and the size label (`GGUFWriter.get_total_parameter_count`,
//! `gguf.utility.size_label`; converter-spec §2.6).

/// The four numbers `get_total_parameter_count` returns, in its order. `total` is negated when
/// LoRA tensors were seen (adapters only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamCount {
    pub total: i64,
    pub shared: i64,
    pub expert: i64,
    pub expert_count: i64,
}

fn product(shape: &[u64]) -> i64 {
    shape.iter().fold(1i64, |acc, &d| acc.saturating_mul(i64::try_from(d).unwrap_or(i64::MAX)))
}

/// As `gguf_writer.get_total_parameter_count` over (name, numpy shape) of the output tensors
/// in file order: the size label and the name heuristics are derived from these numbers.
/// A `.lora_b` without its `.lora_a` just before makes the reference give up (all zeros).
/// A stacked-expert tensor with a zero expert dimension would make the reference divide by
/// zero; here it counts as shared.
pub fn count_parameters<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [u64])>) -> ParamCount {
    let (mut total, mut shared, mut expert) = (0i64, 0i64, 0i64);
    let (mut expert_sum, mut n_expert_tensors) = (0i64, 0i64);
    let mut last_lora_a: Option<(&str, &[u64])> = None;
    for (name, stored_shape) in tensors {
        let mut shape = std::borrow::Cow::Borrowed(stored_shape);
        if name.ends_with(".lora_a") {
            last_lora_a = Some((name, stored_shape));
            continue;
        } else if let Some(stem) = name.strip_suffix(".lora_b") {
            match last_lora_a {
                Some((a_name, a_shape)) if a_name.strip_suffix(".lora_a") == Some(stem) => {
                    let mut s = stored_shape[..stored_shape.len().saturating_sub(1)].to_vec();
                    s.extend(a_shape.last().copied());
                    shape = std::borrow::Cow::Owned(s);
                }
                _ => {
                    tracing::warn!("can't measure LoRA size correctly, tensor order is unusual");
                    return ParamCount::default();
                }
            }
        }
        let shape: &[u64] = &shape;
        let size = product(shape);
        let experts_dim = if name.contains(".bias") { 2 } else { 3 };
        let n_exp = (shape.len() >= 3 && name.contains("_exps."))
            .then(|| shape.get(shape.len() - experts_dim).copied())
            .flatten()
            .and_then(|n| i64::try_from(n).ok())
            .filter(|n| *n > 0);
        match n_exp {
            Some(n) => {
                expert += size / n;
                expert_sum += n;
                n_expert_tensors += 1;
            }
            None => shared += size,
        }
        total += size;
    }
    let expert_count = if n_expert_tensors > 0 { expert_sum / n_expert_tensors } else { 0 };
    if last_lora_a.is_some() {
        total = -total;
    }
    ParamCount { total, shared, expert, expert_count }
}

/// `model_weight_count_rounded_notation(n, min_digits=2)`: scale by a double constant, keep at
/// least two significant digits, format with Python's `%.Nf` (exact value, ties to even).
pub fn rounded_notation(count: u64) -> String {
    let n = count as f64;
    // Python compares the int with the float constant exactly; every threshold is an
    // integer-valued double, so comparing the u64 with the integer is the same.
    let (scaled, suffix) = if count > 1_000_000_000_000 {
        (n * 1e-12, "T")
    } else if count > 1_000_000_000 {
        (n * 1e-9, "B")
    } else if count > 1_000_000 {
        (n * 1e-6, "M")
    } else {
        (n * 1e-3, "K")
    };
    let rounded = scaled.round_ties_even();
    let digits = format!("{rounded:.0}");
    let significant = digits.trim_start_matches('0').len();
    let fix = 2usize.saturating_sub(significant);
    format!("{scaled:.fix$}{suffix}")
}

/// `gguf.utility.size_label`: `NxM` for MoE (experts × per-expert size), else the total.
pub fn size_label(p: &ParamCount) -> String {
    if p.expert_count > 0 {
        let per = p.shared.unsigned_abs() + p.expert.unsigned_abs();
        format!("{}x{}", p.expert_count, rounded_notation(per))
    } else {
        rounded_notation(p.total.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notation_examples() {
        assert_eq!(rounded_notation(8_030_261_248), "8.0B");
        assert_eq!(rounded_notation(494_032_768), "494M");
        assert_eq!(rounded_notation(3_240_000), "3.2M");
        assert_eq!(rounded_notation(135_000_000), "135M");
        assert_eq!(rounded_notation(1_000_000), "1000K");
        assert_eq!(rounded_notation(999), "1.0K");
        assert_eq!(rounded_notation(0), "0.00K");
        assert_eq!(rounded_notation(99_500), "100K");
        assert_eq!(rounded_notation(1_500_000_000_001), "1.5T");
        // 9.95e6 * 1e-6 rounds to 10: two significant digits, no decimals.
        assert_eq!(rounded_notation(9_950_000), "10M");
    }

    #[test]
    fn moe_label_uses_expert_count() {
        // Mixtral 8x7B: 1.6B shared + 5.6B per expert.
        let p = ParamCount { total: 46_702_792_704, shared: 1_604_390_912, expert: 5_637_144_576, expert_count: 8 };
        assert_eq!(size_label(&p), "8x7.2B");
    }

    #[test]
    fn counts_experts_and_shared() {
        let t: Vec<(&str, Vec<u64>)> = vec![
            ("token_embd.weight", vec![10, 4]),
            ("blk.0.ffn_up_exps.weight", vec![4, 8, 4]),
            ("blk.0.ffn_up_exps.bias", vec![4, 8]),
            ("blk.0.ffn_gate_exps.bias", vec![2, 4, 8]),
        ];
        let p = count_parameters(t.iter().map(|(n, s)| (*n, s.as_slice())));
        // 2-D `_exps.` tensor is shared; bias takes shape[-2] = 4 experts.
        assert_eq!(p, ParamCount { total: 40 + 128 + 32 + 64, shared: 72, expert: 32 + 16, expert_count: 4 });
    }

    #[test]
    fn lora_pairs_negate_the_total() {
        let t: Vec<(&str, Vec<u64>)> =
            vec![("a.lora_a", vec![8, 64]), ("a.lora_b", vec![64, 8]), ("n.weight", vec![3])];
        let p = count_parameters(t.iter().map(|(n, s)| (*n, s.as_slice())));
        assert_eq!(p.total, -(64 * 64 + 3));
        let bad: Vec<(&str, Vec<u64>)> = vec![("a.lora_b", vec![64, 8])];
        assert_eq!(count_parameters(bad.iter().map(|(n, s)| (*n, s.as_slice()))), ParamCount::default());
    }
}
