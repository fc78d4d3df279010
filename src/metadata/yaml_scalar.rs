//! PyYAML SafeConstructor's scalar constructors (int, float, binary, timestamp), including the
//! inputs on which they raise.

use super::yaml11::{constructor_error, YamlError};

fn split_sign(value: &str) -> (i128, &str) {
    match value.as_bytes().first() {
        Some(b'-') => (-1, &value[1..]),
        Some(b'+') => (1, &value[1..]),
        _ => (1, value),
    }
}

fn parse_radix(digits: &str, radix: u32) -> Result<i128, YamlError> {
    if digits.is_empty() {
        return Err(constructor_error("empty integer"));
    }
    let mut n: i128 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix).ok_or_else(|| constructor_error(format!("invalid digit {c}")))?;
        n = n.saturating_mul(radix as i128).saturating_add(d as i128);
    }
    Ok(n)
}

/// SafeConstructor.construct_yaml_int.
pub(super) fn construct_int(value: &str) -> Result<i128, YamlError> {
    let cleaned = value.replace('_', "");
    let (sign, body) = split_sign(&cleaned);
    let magnitude = if body == "0" {
        0
    } else if let Some(b) = body.strip_prefix("0b") {
        parse_radix(b, 2)?
    } else if let Some(h) = body.strip_prefix("0x") {
        parse_radix(h, 16)?
    } else if body.starts_with('0') {
        parse_radix(body, 8)?
    } else if body.contains(':') {
        let mut n: i128 = 0;
        for part in body.split(':') {
            n = n.saturating_mul(60).saturating_add(parse_radix(part, 10)?);
        }
        n
    } else {
        parse_radix(body, 10)?
    };
    Ok(sign.saturating_mul(magnitude))
}

/// SafeConstructor.construct_yaml_float.
pub(super) fn construct_float(value: &str) -> Result<f64, YamlError> {
    let cleaned = value.replace('_', "").to_lowercase();
    let (sign, body) = split_sign(&cleaned);
    let sign = sign as f64;
    if body == ".inf" {
        return Ok(sign * f64::INFINITY);
    }
    if body == ".nan" {
        return Ok(f64::NAN);
    }
    if body.contains(':') {
        let mut x = 0.0f64;
        for part in body.split(':') {
            let d: f64 = part.parse().map_err(|_| constructor_error(format!("not a float: {value}")))?;
            x = x * 60.0 + d;
        }
        return Ok(sign * x);
    }
    body.parse::<f64>().map(|x| sign * x).map_err(|_| constructor_error(format!("not a float: {value}")))
}

pub(super) fn construct_binary(value: &str) -> Result<Vec<u8>, YamlError> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::new();
    let clean: Vec<u8> = value.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let data = clean.strip_suffix(b"==").or_else(|| clean.strip_suffix(b"=")).unwrap_or(&clean);
    for &b in data {
        let v = ALPHABET.iter().position(|&a| a == b).ok_or_else(|| constructor_error("invalid base64"))?;
        bits = (bits << 6) | v as u32;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Ok(out)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// SafeConstructor.construct_yaml_timestamp only to the extent of its failures: Python's
/// `date`/`datetime`/`timezone` raise on out-of-range fields, which aborts the load.
pub(super) fn construct_timestamp(value: &str) -> Result<(), YamlError> {
    let bad = || constructor_error(format!("invalid timestamp {value}"));
    let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
    let (date, rest) = value.split_at(value.find(['T', 't', ' ', '\t']).unwrap_or(value.len()));
    let mut fields = date.splitn(3, '-');
    let (y, m, d) =
        (num(fields.next().unwrap_or(""))?, num(fields.next().unwrap_or(""))?, num(fields.next().unwrap_or(""))?);
    if y == 0 || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return Err(bad());
    }
    let time = rest.trim_start_matches(['T', 't', ' ', '\t']);
    if time.is_empty() {
        return Ok(());
    }
    let mut hms = time.splitn(3, ':');
    let (h, mi) = (num(hms.next().unwrap_or(""))?, num(hms.next().unwrap_or(""))?);
    let sec: String = hms.next().unwrap_or("").chars().take_while(char::is_ascii_digit).collect();
    if h > 23 || mi > 59 || num(&sec)? > 59 {
        return Err(bad());
    }
    if let Some(pos) = time.rfind(['+', '-']) {
        let tz_hours: String = time[pos + 1..].chars().take_while(char::is_ascii_digit).collect();
        if num(&tz_hours)? > 23 {
            return Err(bad());
        }
    }
    Ok(())
}
