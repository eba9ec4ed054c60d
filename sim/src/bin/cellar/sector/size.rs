//! Parsing sizes with units for `cellar sector format --size`.

/// Why a size did not parse.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizeError {
    /// Not a number followed by an optional unit.
    #[error("{0:?} is not a size (examples: 4096, 64MiB, 1GiB, 1G)")]
    Syntax(String),
    /// The unit is unknown.
    #[error("unknown unit {unit:?} in {input:?} (use B, KiB, MiB, GiB, TiB, or K/M/G/T)")]
    Unit {
        /// The whole input.
        input: String,
        /// The unit part.
        unit: String,
    },
    /// The size does not fit in 64 bits.
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Parses `1GiB`, `512MiB`, `64M`, `4096` (bytes), `10KB` (decimal units when spelled `KB`,
/// `MB`...; single letters and `*iB` are binary).
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let s = input.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return Err(SizeError::Syntax(input.to_owned()));
    }
    let n: u64 = number.parse().map_err(|_| SizeError::Overflow(input.to_owned()))?;
    let unit = unit.trim();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(SizeError::Unit { input: input.to_owned(), unit: unit.to_owned() });
        }
    };
    n.checked_mul(multiplier).ok_or_else(|| SizeError::Overflow(input.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64 mib"), Ok(64 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
    }

    #[test]
    fn errors() {
        assert!(matches!(parse_size("GiB"), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_size(""), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_size("1XiB"), Err(SizeError::Unit { .. })));
        assert!(matches!(parse_size("99999999999999999999"), Err(SizeError::Overflow(_))));
        assert!(matches!(parse_size("16777216TiB"), Err(SizeError::Overflow(_))));
    }
}
