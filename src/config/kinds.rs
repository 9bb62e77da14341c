//! Value kinds: how one variable's text becomes a typed value, what is valid, and how the
//! variable table names the type. A declaration row names its kind, e.g.
//! `Int::range(1, 1000)` or `Dur::at_least(…)`, so parsing, validation and documentation of a
//! type cannot drift apart.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::types::{Rate, Secret};

/// One kind of value. `parse` gets the trimmed text (a TOML value arrives as its text, an
/// array as its items joined by commas) and says what is wrong in words an operator acts on.
pub trait Kind {
    type Value;
    /// The type as the variable table shows it (Markdown).
    fn describe(&self) -> String;
    fn parse(&self, raw: &str) -> Result<Self::Value, String>;
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
pub struct Bool;

impl Kind for Bool {
    type Value = bool;
    fn describe(&self) -> String {
        "boolean".into()
    }
    fn parse(&self, s: &str) -> Result<bool, String> {
        match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("expected true or false; got {s:?}")),
        }
    }
}

/// An unsigned integer, optionally within bounds.
pub struct Int<T> {
    bounds: Option<(T, T)>,
}

impl<T> Int<T> {
    pub const fn range(min: T, max: T) -> Self {
        Int {
            bounds: Some((min, max)),
        }
    }
    pub const fn any() -> Self {
        Int { bounds: None }
    }
}

impl<T: FromStr + PartialOrd + Copy + std::fmt::Display> Kind for Int<T> {
    type Value = T;
    fn describe(&self) -> String {
        match self.bounds {
            Some((min, max)) => format!("integer {min}–{max}"),
            None => "integer ≥ 0".into(),
        }
    }
    fn parse(&self, s: &str) -> Result<T, String> {
        let n = s.parse::<T>().ok();
        match (n, self.bounds) {
            (Some(n), None) => Ok(n),
            (Some(n), Some((min, max))) if n >= min && n <= max => Ok(n),
            (_, Some((min, max))) => {
                Err(format!("expected an integer in {min}..={max}; got {s:?}"))
            }
            (None, None) => Err(format!("expected a non-negative integer; got {s:?}")),
        }
    }
}

/// A duration such as `500ms`, `5s`, `10m`, `2h` or `1d`, at least `min`.
pub struct Dur {
    min: Duration,
}

impl Dur {
    pub const fn any() -> Self {
        Dur {
            min: Duration::ZERO,
        }
    }
    pub const fn positive() -> Self {
        Dur {
            min: Duration::from_millis(1),
        }
    }
    pub const fn at_least(min: Duration) -> Self {
        Dur { min }
    }
}

impl Kind for Dur {
    type Value = Duration;
    fn describe(&self) -> String {
        match self.min.as_millis() {
            0 => "duration".into(),
            1 => "duration > 0".into(),
            _ => format!("duration ≥ {}", render_duration(self.min)),
        }
    }
    fn parse(&self, s: &str) -> Result<Duration, String> {
        let d = parse_duration(s)?;
        match self.min.as_millis() {
            _ if d >= self.min => Ok(d),
            1 => Err("must be greater than 0".into()),
            _ => Err(format!("must be at least {}", render_duration(self.min))),
        }
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let expected = || format!("expected a duration such as 500ms, 5s, 10m, 2h or 1d; got {s:?}");
    let n: u64 = n.parse().map_err(|_| expected())?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(expected()),
    };
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// The shortest exact text form of a duration (`100ms`, `5s`, `1d`).
fn render_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// `N/s`, `N/min`, `N/h` or `N/day` with N > 0.
pub struct RateKind;

impl Kind for RateKind {
    type Value = Rate;
    fn describe(&self) -> String {
        "rate".into()
    }
    fn parse(&self, s: &str) -> Result<Rate, String> {
        Rate::parse(s)
            .ok_or_else(|| format!("expected N/s, N/min, N/h or N/day with N > 0; got {s:?}"))
    }
}

/// One of a fixed set of words, each naming a value.
pub struct OneOf<T: 'static>(pub &'static [(&'static str, T)]);

impl<T: Copy> Kind for OneOf<T> {
    type Value = T;
    fn describe(&self) -> String {
        let words: Vec<_> = self.0.iter().map(|(w, _)| format!("`{w}`")).collect();
        format!("one of {}", words.join(", "))
    }
    fn parse(&self, s: &str) -> Result<T, String> {
        if let Some((_, v)) = self.0.iter().find(|(w, _)| *w == s) {
            return Ok(*v);
        }
        let words: Vec<_> = self.0.iter().map(|(w, _)| *w).collect();
        Err(format!("expected one of {}; got {s:?}", words.join(", ")))
    }
}

/// A secret of at least `min_len` characters; `hint` says how to make one.
pub struct SecretText {
    min_len: usize,
    hint: &'static str,
}

impl SecretText {
    pub const fn any() -> Self {
        SecretText {
            min_len: 1,
            hint: "",
        }
    }
    pub const fn at_least(min_len: usize, hint: &'static str) -> Self {
        SecretText { min_len, hint }
    }
}

impl Kind for SecretText {
    type Value = Secret;
    fn describe(&self) -> String {
        match self.min_len {
            1 => "secret".into(),
            n => format!("secret, ≥ {n} characters"),
        }
    }
    fn parse(&self, s: &str) -> Result<Secret, String> {
        if s.len() >= self.min_len {
            return Ok(Secret::new(s));
        }
        let hint = if self.hint.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.hint)
        };
        Err(format!(
            "must be at least {} characters{hint}",
            self.min_len
        ))
    }
}

/// A build id: 1–64 characters of `[A-Za-z0-9._+-]` (it goes into a header).
pub struct BuildId;

impl Kind for BuildId {
    type Value = String;
    fn describe(&self) -> String {
        "1–64 of `A-Za-z0-9._+-`".into()
    }
    fn parse(&self, s: &str) -> Result<String, String> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
        if valid {
            Ok(s.to_owned())
        } else {
            Err("expected 1-64 characters of [A-Za-z0-9._+-]".into())
        }
    }
}

/// An org id such as `org_01…`.
pub struct OrgId;

impl Kind for OrgId {
    type Value = crate::ids::OrgId;
    fn describe(&self) -> String {
        "org id".into()
    }
    fn parse(&self, s: &str) -> Result<crate::ids::OrgId, String> {
        crate::ids::OrgId::parse(s)
            .ok_or_else(|| format!("expected an org id such as org_01…; got {s:?}"))
    }
}

/// A `tracing` filter such as `info` or `info,rampart=debug`.
pub struct LogFilter;

impl Kind for LogFilter {
    type Value = String;
    fn describe(&self) -> String {
        "log filter".into()
    }
    fn parse(&self, s: &str) -> Result<String, String> {
        tracing_subscriber::EnvFilter::try_new(s)
            .map(|_| s.to_owned())
            .map_err(|e| format!("invalid log filter: {e}"))
    }
}

/// A non-empty file system path.
pub struct Path;

impl Kind for Path {
    type Value = PathBuf;
    fn describe(&self) -> String {
        "path".into()
    }
    fn parse(&self, s: &str) -> Result<PathBuf, String> {
        if s.is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(PathBuf::from(s))
        }
    }
}
