//! Durations written as strings in attributes: `"800ms"`, `"5s"`, `"1.5s"`, `"2m"`.

/// Nanoseconds of a duration literal, or what is wrong with it.
pub fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} has no unit: write e.g. \"800ms\", \"5s\" or \"2m\""))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let scale = match unit {
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use us, ms, s, m or h"
            ));
        }
    };
    let nanos = value * scale;
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(nanos.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse("800ms"), Ok(800_000_000));
        assert_eq!(parse("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse("2m"), Ok(120_000_000_000));
        assert_eq!(parse("250us"), Ok(250_000));
        assert_eq!(parse("0s"), Ok(0));
        assert!(parse("800").unwrap_err().contains("no unit"));
        assert!(parse("5 parsecs").is_err());
        assert!(parse("fast").is_err());
        assert!(parse("5d").unwrap_err().contains("unknown unit"));
    }
}
