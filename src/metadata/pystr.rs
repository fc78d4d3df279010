//! Python `str` method semantics the name heuristics depend on (hazard H8). Rust's `char`
//! predicates use different Unicode properties (`is_alphabetic` is not `isalpha`, there is no
//! titlecase mapping, `is_whitespace` lacks U+001C..U+001F), so each one is spelled out here.

use std::sync::OnceLock;

use regex::Regex;

use super::titlecase::TITLECASE_EXCEPTIONS;

fn category_regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static regex"))
}

fn char_matches(re: &Regex, c: char) -> bool {
    let mut buf = [0u8; 4];
    re.is_match(c.encode_utf8(&mut buf))
}

/// `str.isalpha()` for one character: general category L (Lu, Ll, Lt, Lm, Lo).
pub fn is_alpha(c: char) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    c.is_ascii_alphabetic() || (!c.is_ascii() && char_matches(category_regex(&RE, r"^\p{L}$"), c))
}

/// `str.isdecimal()` for one character: general category Nd.
pub fn is_decimal(c: char) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    c.is_ascii_digit() || (!c.is_ascii() && char_matches(category_regex(&RE, r"^\p{Nd}$"), c))
}

fn is_titlecase_letter(c: char) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    !c.is_ascii() && char_matches(category_regex(&RE, r"^\p{Lt}$"), c)
}

/// CPython's "cased" flag: Lowercase, Uppercase or titlecase letter.
fn is_cased(c: char) -> bool {
    c.is_lowercase() || c.is_uppercase() || is_titlecase_letter(c)
}

/// `str.isspace()` for one character: Rust's White_Space plus the four ASCII separators
/// U+001C..U+001F that CPython also treats as whitespace.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.islower()`: at least one cased character and no upper- or titlecase one.
pub fn is_lower(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_uppercase() || is_titlecase_letter(c) {
            return false;
        }
        cased |= c.is_lowercase();
    }
    cased
}

/// `str.strip()` with no argument.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `str.split()` with no argument: runs of whitespace separate, no empty words.
pub fn split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|w| !w.is_empty())
}

fn push_titlecase(c: char, out: &mut String) {
    match TITLECASE_EXCEPTIONS.binary_search_by_key(&(c as u32), |(cp, _)| *cp) {
        Ok(i) => out.push_str(TITLECASE_EXCEPTIONS[i].1),
        Err(_) => out.extend(c.to_uppercase()),
    }
}

/// `str.title()`: a character after a cased one is lowercased, any other is titlecased.
pub fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut previous_is_cased = false;
    for c in s.chars() {
        if previous_is_cased {
            out.extend(c.to_lowercase());
        } else {
            push_titlecase(c, &mut out);
        }
        previous_is_cased = is_cased(c);
    }
    out
}

/// `str.upper()`.
pub fn upper(s: &str) -> String {
    s.chars().flat_map(char::to_uppercase).collect()
}

/// `str.lower()` of a single character (no final-sigma context applies to one character).
pub fn lower_char(c: char) -> String {
    c.to_lowercase().collect()
}

/// The value of a decimal digit (category Nd). Every Nd block is a run of ten consecutive
/// code points starting at its zero, so the value is the position inside the run of Nd chars.
pub fn decimal_value(c: char) -> Option<u32> {
    if let Some(d) = c.to_digit(10) {
        return Some(d);
    }
    if !is_decimal(c) {
        return None;
    }
    let mut steps = 0u32;
    let mut cp = c as u32;
    while let Some(prev) = cp.checked_sub(1).and_then(char::from_u32) {
        if !is_decimal(prev) {
            break;
        }
        steps += 1;
        cp -= 1;
    }
    Some(steps % 10)
}

/// Python `float(s)` for the strings the size heuristic produces (digits, dots, signs):
/// Unicode decimal digits are accepted as their ASCII values, as CPython does.
pub fn parse_float(s: &str) -> Option<f64> {
    let trimmed = strip(s);
    let mut ascii = String::with_capacity(trimmed.len());
    for c in trimmed.chars() {
        match decimal_value(c) {
            Some(d) if !c.is_ascii() => ascii.push(char::from_digit(d, 10)?),
            _ => ascii.push(c),
        }
    }
    python_float_syntax(&ascii).then(|| ascii.parse::<f64>().ok()).flatten()
}

/// Python's float literal grammar (decimal part only; `inf`/`nan` are accepted too).
fn python_float_syntax(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = category_regex(
        &RE,
        r"(?i)^[+-]?(?:(?:[0-9](?:_?[0-9])*)?\.?(?:[0-9](?:_?[0-9])*)?(?:e[+-]?[0-9](?:_?[0-9])*)?|inf|infinity|nan)$",
    );
    re.is_match(s) && s.chars().any(|c| c.is_ascii_digit() || c.is_ascii_alphabetic()) && !s.contains('_')
}

/// Exact comparison of a float with an integer, as Python's `float > int` does (no rounding
/// of the integer to a float first).
pub fn float_cmp_int(x: f64, n: i128) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    if x.is_nan() {
        return None;
    }
    if x.is_infinite() {
        return Some(if x > 0.0 { Ordering::Greater } else { Ordering::Less });
    }
    if x.abs() >= 1e38 {
        return Some(if x > 0.0 { Ordering::Greater } else { Ordering::Less });
    }
    let whole = x.trunc();
    let whole_int = whole as i128;
    match whole_int.cmp(&n) {
        Ordering::Equal => Some(if x > whole {
            Ordering::Greater
        } else if x < whole {
            Ordering::Less
        } else {
            Ordering::Equal
        }),
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_follows_python() {
        assert_eq!(title("qwen2x"), "Qwen2X");
        assert_eq!(title("meta"), "Meta");
        assert_eq!(title("ßa"), "Ssa");
        assert_eq!(title("ǆungla"), "ǅungla");
        assert_eq!(title("o'neil"), "O'Neil");
    }

    #[test]
    fn islower_needs_a_cased_char() {
        assert!(is_lower("abc1"));
        assert!(!is_lower("123"));
        assert!(!is_lower("aBc"));
        assert!(!is_lower("ǅa"));
    }

    #[test]
    fn whitespace_includes_ascii_separators() {
        assert_eq!(split_whitespace("a\u{1f}b  c").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(strip("\u{1c} x \u{3000}"), "x");
    }

    #[test]
    fn unicode_digits_parse_as_python_float() {
        assert_eq!(decimal_value('٣'), Some(3));
        assert_eq!(decimal_value('𝟘'), Some(0));
        assert_eq!(decimal_value('𝟡'), Some(9));
        assert_eq!(decimal_value('𝟢'), Some(0));
        assert_eq!(parse_float("7.5"), Some(7.5));
        assert_eq!(parse_float("٣.5"), Some(3.5));
        assert_eq!(parse_float("8x7"), None);
        assert_eq!(parse_float("."), None);
        assert_eq!(parse_float("1."), Some(1.0));
    }

    #[test]
    fn float_int_comparison_is_exact() {
        use std::cmp::Ordering::*;
        let big = (1i128 << 53) + 1;
        assert_eq!(float_cmp_int((1u64 << 53) as f64, big), Some(Less));
        assert_eq!(float_cmp_int(2.5, 2), Some(Greater));
        assert_eq!(float_cmp_int(-2.5, -2), Some(Less));
        assert_eq!(float_cmp_int(f64::NAN, 0), None);
    }
}
