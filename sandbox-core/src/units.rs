//! Sizes and durations as people write them: `256MiB`, `1G`, `500ms`, `1.5s`, `2m`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a size or duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The text is empty.
    #[error("empty value")]
    Empty,
    /// The number part is missing or malformed.
    #[error("`{0}` does not start with a number")]
    NotANumber(String),
    /// The unit is not one we know.
    #[error("unknown unit `{unit}` in `{text}` (use {expected})")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit that was found.
        unit: String,
        /// The units that are accepted.
        expected: &'static str,
    },
    /// The value does not fit (too large, negative, or not finite).
    #[error("`{0}` is out of range")]
    OutOfRange(String),
    /// A number of CPUs outside what a sandbox may be given.
    #[error("cpus `{0}` is out of range (0.001 to 1000 CPUs, such as 0.5 or \"500m\")")]
    CpusOutOfRange(String),
}

const SIZE_UNITS: &str = "B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB";
const DURATION_UNITS: &str = "ns, us, ms, s, m, h";

fn split_number(text: &str) -> Result<(f64, &str), UnitError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(UnitError::Empty);
    }
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let num: String = num.chars().filter(|c| *c != '_').collect();
    if num.is_empty() {
        return Err(UnitError::NotANumber(t.to_string()));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| UnitError::NotANumber(t.to_string()))?;
    if !value.is_finite() {
        return Err(UnitError::OutOfRange(t.to_string()));
    }
    Ok((value, unit.trim()))
}

/// A number of bytes. Parses `4096`, `64K`, `256MiB`, `1.5G`; `K`, `M`, `G`, `T` are
/// binary (1024-based) whether written `K`, `KB` or `KiB`, as memory limits usually are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * 1024 * 1024)
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Reads a size such as `256MiB`.
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let (value, unit) = split_number(text)?;
        let mult: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => {
                return Err(UnitError::UnknownUnit {
                    text: text.trim().to_string(),
                    unit: unit.to_string(),
                    expected: SIZE_UNITS,
                })
            }
        };
        let bytes = value * mult as f64;
        if bytes > u64::MAX as f64 / 2.0 {
            return Err(UnitError::OutOfRange(text.trim().to_string()));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (name, size) in UNITS {
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{}{}", self.0 / size, name);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl std::str::FromStr for ByteSize {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ByteSize::parse(s)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a size such as \"256MiB\" or a number of bytes")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ByteSize, E> {
                Err(E::custom(format!(
                    "write sizes as whole bytes or with a unit, such as \"{v}MiB\""
                )))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A share of CPU time, in thousandths of a CPU: `0.5` is half of one CPU over time,
/// `2` two CPUs' worth. Parses `1.5` (or `1500m`, as Kubernetes writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cpus(pub u32);

impl Cpus {
    /// Reads `0.5`, `2` or `500m`.
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let t = text.trim();
        let milli = match t.strip_suffix('m') {
            Some(n) => n
                .parse::<f64>()
                .map_err(|_| UnitError::NotANumber(t.to_string()))?,
            None => {
                t.parse::<f64>()
                    .map_err(|_| UnitError::NotANumber(t.to_string()))?
                    * 1000.0
            }
        };
        if !milli.is_finite() || !(1.0..=1_000_000.0).contains(&milli) {
            return Err(UnitError::CpusOutOfRange(t.to_string()));
        }
        Ok(Cpus(milli.round() as u32))
    }

    /// Thousandths of a CPU.
    pub const fn millis(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 1000 == 0 {
            write!(f, "{}", self.0 / 1000)
        } else {
            let s = format!("{}.{:03}", self.0 / 1000, self.0 % 1000);
            f.write_str(s.trim_end_matches('0'))
        }
    }
}

impl std::str::FromStr for Cpus {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cpus::parse(s)
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(f64::from(self.0) / 1000.0)
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Cpus;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a number of CPUs such as 0.5 or 2 (or \"500m\")")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Cpus, E> {
                Cpus::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Cpus, E> {
                Cpus::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Cpus, E> {
                Cpus::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Cpus, E> {
                Cpus::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads a duration such as `500ms`, `1.5s`, `2m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let (value, unit) = split_number(text)?;
    let secs: f64 = match unit {
        "ns" => value / 1e9,
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "" | "s" | "sec" | "secs" => value,
        "m" | "min" | "mins" => value * 60.0,
        "h" | "hr" | "hours" => value * 3600.0,
        _ => {
            return Err(UnitError::UnknownUnit {
                text: text.trim().to_string(),
                unit: unit.to_string(),
                expected: DURATION_UNITS,
            })
        }
    };
    if !(0.0..=1e9).contains(&secs) {
        return Err(UnitError::OutOfRange(text.trim().to_string()));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Writes a duration the way [`parse_duration`] reads it back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if d.subsec_nanos() % 1_000_000 != 0 {
        format!("{}us", d.as_micros())
    } else if ms % 1000 != 0 {
        format!("{ms}ms")
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// Serde helpers for `Option<Duration>` written as `"1.5s"` (or a number of seconds).
pub mod opt_duration {
    use super::*;

    /// Writes the duration as text such as `"1500ms"`.
    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    /// Reads `"1.5s"`, `"200ms"` or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a duration such as \"1.5s\", \"500ms\" or \"2m\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                parse_duration(&v.to_string()).map(Some).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Err(E::custom(format!("a duration cannot be negative ({v})")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                parse_duration(&v.to_string()).map(Some).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_duration(v).map(Some).map_err(E::custom)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("256MiB").unwrap().0, 256 << 20);
        assert_eq!(ByteSize::parse("1G").unwrap().0, 1 << 30);
        assert_eq!(ByteSize::parse("64k").unwrap().0, 64 << 10);
        assert_eq!(ByteSize::parse("4096").unwrap().0, 4096);
        assert_eq!(ByteSize::parse("1.5M").unwrap().0, 3 << 19);
        assert_eq!(ByteSize::parse(" 2 GiB ").unwrap().0, 2 << 30);
        assert!(matches!(
            ByteSize::parse("12 parsecs"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            ByteSize::parse("MiB"),
            Err(UnitError::NotANumber(_))
        ));
        assert!(matches!(ByteSize::parse(""), Err(UnitError::Empty)));
        assert!(matches!(
            ByteSize::parse("-5M"),
            Err(UnitError::NotANumber(_))
        ));
        assert!(matches!(
            ByteSize::parse("99999999999T"),
            Err(UnitError::OutOfRange(_))
        ));
        assert_eq!(ByteSize(256 << 20).to_string(), "256MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(matches!(
            parse_duration("5 fortnights"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(parse_duration("1e400s").is_err());
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");
    }
}
