//! The value syntaxes of a release plan (DESIGN §8), shared by the
//! template reader, the `turnout release`/`turnout plan` flags (clap value
//! parsers) and the API's request bodies, so that one spelling means the
//! same everywhere: durations with their unit (`500ms`, `30s`, `2m`),
//! rates as a percentage or a fraction (`1%` = `0.01`), shares in percent
//! (`0..=100`), steps as increasing shares (`10,50,100`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value that does not read, with what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// What is wrong (lowercase, no trailing period).
    pub message: String,
    /// What to write instead.
    pub hint: String,
}

impl ValueError {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.hint)
    }
}

impl std::error::Error for ValueError {}

/// A duration, kept in milliseconds and written with its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// `n` seconds.
    pub const fn secs(n: u64) -> Self {
        Self(n * 1000)
    }

    /// As a [`std::time::Duration`].
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl fmt::Display for Millis {
    /// The largest unit that writes the value exactly: `2m`, `30s`, `1500ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("0s"),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

/// The hint of every duration error.
const DURATION_HINT: &str = "write a whole number with its unit: `500ms`, `30s` or `2m`";

/// Reads a duration: a whole number and `ms`, `s` or `m`.
pub fn parse_duration(text: &str) -> Result<Millis, ValueError> {
    let s = text.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    if number.is_empty() {
        return Err(ValueError::new(
            format!("{text:?} is not a duration"),
            DURATION_HINT,
        ));
    }
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "" => {
            return Err(ValueError::new(
                format!("the duration {text:?} has no unit"),
                format!("{DURATION_HINT}; e.g. `{number}s`"),
            ));
        }
        other => {
            return Err(ValueError::new(
                format!("unknown duration unit {other:?} in {text:?}"),
                DURATION_HINT,
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .map(Millis)
        .ok_or_else(|| ValueError::new(format!("the duration {text:?} is too long"), DURATION_HINT))
}

impl FromStr for Millis {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        parse_duration(s)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// A rate (a share of requests), kept in parts per million: `1%` is
/// 10,000. Always between 0 and 100 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate(u32);

impl Rate {
    /// 100 %.
    pub const ONE: Rate = Rate(1_000_000);

    /// The rate as a fraction (`1%` → 0.01).
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 1_000_000.0
    }

    /// Parts per million.
    pub fn ppm(self) -> u32 {
        self.0
    }

    /// The rate of a fraction, if it is between 0 and 1.
    pub fn from_fraction(x: f64) -> Result<Self, ValueError> {
        if !x.is_finite() {
            return Err(ValueError::new(format!("{x} is not a rate"), RATE_HINT));
        }
        if x < 0.0 {
            return Err(ValueError::new(
                format!("the rate {x} is negative"),
                RATE_HINT,
            ));
        }
        if x > 1.0 {
            return Err(ValueError::new(
                format!("the rate {x} is above 100 %"),
                format!("a bare number is a fraction (0.01 is 1 %); for {x} percent write `{x}%`"),
            ));
        }
        Ok(Rate((x * 1_000_000.0).round() as u32))
    }
}

impl fmt::Display for Rate {
    /// As a percentage, without trailing zeros: `1%`, `0.5%`, `0.0001%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 10_000;
        let rest = self.0 % 10_000;
        if rest == 0 {
            write!(f, "{whole}%")
        } else {
            let decimals = format!("{rest:04}");
            write!(f, "{whole}.{}%", decimals.trim_end_matches('0'))
        }
    }
}

const RATE_HINT: &str = "write a percentage (`1%`) or a fraction (`0.01`) between 0 and 100 %";

/// Reads a rate: a percentage (`1%`, `0.5%`) or a fraction (`0.01`).
pub fn parse_rate(text: &str) -> Result<Rate, ValueError> {
    let s = text.trim();
    let (number, percent) = match s.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (s, false),
    };
    let x: f64 = number
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite())
        .ok_or_else(|| ValueError::new(format!("{text:?} is not a rate"), RATE_HINT))?;
    if percent {
        if x < 0.0 {
            return Err(ValueError::new(
                format!("the rate {text:?} is negative"),
                RATE_HINT,
            ));
        }
        if x > 100.0 {
            return Err(ValueError::new(
                format!("the rate {text:?} is above 100 %"),
                RATE_HINT,
            ));
        }
        Rate::from_fraction(x / 100.0)
    } else {
        Rate::from_fraction(x)
    }
}

impl FromStr for Rate {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        parse_rate(s)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    /// A string as the template writes it (`"1%"`, `"0.01"`) or a number
    /// (a fraction).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(x) => Rate::from_fraction(x),
            Raw::Text(t) => parse_rate(&t),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// How long a step holds before the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pause {
    /// A bake time.
    For(Millis),
    /// Wait for `turnout promote`.
    UntilPromoted,
}

impl Default for Pause {
    /// 30 s (DESIGN §8).
    fn default() -> Self {
        Pause::For(Millis::secs(30))
    }
}

impl fmt::Display for Pause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pause::For(d) => d.fmt(f),
            Pause::UntilPromoted => f.write_str("until-promoted"),
        }
    }
}

/// Reads a pause: a duration or `until-promoted`.
pub fn parse_pause(text: &str) -> Result<Pause, ValueError> {
    if text.trim() == "until-promoted" {
        return Ok(Pause::UntilPromoted);
    }
    parse_duration(text)
        .map(Pause::For)
        .map_err(|e| ValueError {
            hint: format!(
                "{}, or `until-promoted` to wait for `turnout promote`",
                e.hint
            ),
            ..e
        })
}

impl FromStr for Pause {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        parse_pause(s)
    }
}

impl Serialize for Pause {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Pause {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_pause(&text).map_err(serde::de::Error::custom)
    }
}

/// Checks a share of traffic in percent: 0 to 100.
pub fn check_share(share: u32) -> Result<u8, ValueError> {
    u8::try_from(share)
        .ok()
        .filter(|s| *s <= 100)
        .ok_or_else(|| {
            ValueError::new(
                format!("the share {share} is outside 0..100"),
                "a share is a percentage of the route's traffic: a whole number from 0 to 100",
            )
        })
}

/// Reads a share in percent (`5` or `5%`), 0 to 100.
pub fn parse_share(text: &str) -> Result<u8, ValueError> {
    let s = text.trim();
    let s = s.strip_suffix('%').unwrap_or(s).trim();
    let n: u32 = s.parse().map_err(|_| {
        ValueError::new(
            format!("{text:?} is not a share"),
            "a share is a percentage of the route's traffic: a whole number from 0 to 100",
        )
    })?;
    check_share(n)
}

/// Checks gray steps: each from 1 to 100, each above the one before.
/// The error names the index of the first bad step.
pub fn check_steps(steps: &[u32]) -> Result<Vec<u8>, (usize, ValueError)> {
    if steps.is_empty() {
        return Err((
            0,
            ValueError::new(
                "no steps",
                "list the new version's share at each step, in percent: e.g. [10, 50, 100]",
            ),
        ));
    }
    let mut out = Vec::with_capacity(steps.len());
    for (i, &step) in steps.iter().enumerate() {
        if !(1..=100).contains(&step) {
            return Err((
                i,
                ValueError::new(
                    format!("the step {step} is outside 1..100"),
                    "a step is the new version's share of each shared route, in percent, from 1 to 100",
                ),
            ));
        }
        if let Some(&before) = steps[..i].last()
            && step <= before
        {
            return Err((
                i,
                ValueError::new(
                    format!("the steps do not increase: {step} comes after {before}"),
                    "list the shares in increasing order, e.g. [10, 50, 100]",
                ),
            ));
        }
        out.push(step as u8);
    }
    Ok(out)
}

/// Reads steps as the `--steps` flag writes them: `10,50,100`.
pub fn parse_steps(text: &str) -> Result<Vec<u32>, ValueError> {
    let mut steps = Vec::new();
    for part in text.split(',') {
        let p = part.trim();
        let p = p.strip_suffix('%').unwrap_or(p).trim();
        steps.push(p.parse::<u32>().map_err(|_| {
            ValueError::new(
                format!("{part:?} is not a step"),
                "write the new version's share at each step in percent, comma-separated: `10,50,100`",
            )
        })?);
    }
    check_steps(&steps).map_err(|(_, e)| e)?;
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_ms_s_and_m_and_need_their_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Millis(30_000)));
        assert_eq!(parse_duration("2m"), Ok(Millis(120_000)));
        let e = parse_duration("30").unwrap_err();
        assert_eq!(e.message, "the duration \"30\" has no unit");
        assert!(e.hint.contains("`30s`"), "{}", e.hint);
        assert!(
            parse_duration("1h")
                .unwrap_err()
                .message
                .contains("unit \"h\"")
        );
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn durations_write_back_with_the_largest_exact_unit() {
        for (ms, text) in [
            (0, "0s"),
            (500, "500ms"),
            (1500, "1500ms"),
            (30_000, "30s"),
            (120_000, "2m"),
        ] {
            assert_eq!(Millis(ms).to_string(), text);
            assert_eq!(parse_duration(text), Ok(Millis(ms)));
        }
    }

    #[test]
    fn rates_take_a_percentage_or_a_fraction() {
        assert_eq!(parse_rate("1%"), parse_rate("0.01"));
        assert_eq!(parse_rate("1%").unwrap().ppm(), 10_000);
        assert_eq!(parse_rate("0.5%").unwrap().to_string(), "0.5%");
        assert_eq!(parse_rate("100%"), Ok(Rate::ONE));
        assert_eq!(parse_rate("0").unwrap().to_string(), "0%");
        assert!(
            parse_rate("101%")
                .unwrap_err()
                .message
                .contains("above 100 %")
        );
        assert!(parse_rate("-1%").unwrap_err().message.contains("negative"));
        assert!(parse_rate("-0.1").unwrap_err().message.contains("negative"));
        let e = parse_rate("5").unwrap_err();
        assert!(e.message.contains("above 100 %"));
        assert!(e.hint.contains("`5%`"), "{}", e.hint);
        assert!(parse_rate("lots").is_err());
    }

    #[test]
    fn rates_read_from_json_as_strings_or_fractions() {
        let r: Rate = serde_json::from_str("0.02").unwrap();
        assert_eq!(r.to_string(), "2%");
        let r: Rate = serde_json::from_str("\"2%\"").unwrap();
        assert_eq!(r.fraction(), 0.02);
        assert!(serde_json::from_str::<Rate>("1.5").is_err());
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"2%\"");
    }

    #[test]
    fn pauses_are_durations_or_until_promoted() {
        assert_eq!(parse_pause("until-promoted"), Ok(Pause::UntilPromoted));
        assert_eq!(parse_pause("1m"), Ok(Pause::For(Millis(60_000))));
        assert!(
            parse_pause("10")
                .unwrap_err()
                .hint
                .contains("until-promoted")
        );
        assert_eq!(Pause::default().to_string(), "30s");
    }

    #[test]
    fn shares_and_steps() {
        assert_eq!(parse_share("5"), Ok(5));
        assert_eq!(parse_share("5%"), Ok(5));
        assert_eq!(parse_share("0"), Ok(0));
        assert!(
            parse_share("101")
                .unwrap_err()
                .message
                .contains("outside 0..100")
        );
        assert!(parse_share("-1").is_err());
        assert_eq!(parse_steps("10,50,100"), Ok(vec![10, 50, 100]));
        assert!(
            parse_steps("50,10")
                .unwrap_err()
                .message
                .contains("do not increase")
        );
        assert!(
            parse_steps("10,10")
                .unwrap_err()
                .message
                .contains("do not increase")
        );
        assert!(
            parse_steps("10,150")
                .unwrap_err()
                .message
                .contains("outside 1..100")
        );
        assert!(
            parse_steps("0,50")
                .unwrap_err()
                .message
                .contains("outside 1..100")
        );
        assert!(parse_steps("10,x").is_err());
        assert_eq!(check_steps(&[10, 5]).unwrap_err().0, 1);
    }
}
