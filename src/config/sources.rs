//! Where values come from: `RAMPART_*` environment variables first, then the TOML file named by
//! `RAMPART_CONFIG` (keys are the names without `RAMPART_`, lower-case), then the declared
//! default. Every error names the variable and where its value came from.

use std::collections::HashMap;

use super::ConfigError;
use super::kinds::Kind;

/// The variable naming the TOML file; it is not itself a `Config` field.
pub const CONFIG_FILE_VAR: &str = "RAMPART_CONFIG";

/// Variables the test suite reads for itself; the configuration ignores them.
const TEST_PREFIX: &str = "RAMPART_TEST_";

pub struct Sources {
    env: HashMap<String, String>,
    /// The TOML file's values by lower-case key, each as text.
    file: HashMap<String, String>,
    file_path: Option<String>,
}

/// The TOML key of a variable: `RAMPART_LISTEN` → `listen`.
pub fn file_key(var: &str) -> String {
    var.trim_start_matches("RAMPART_").to_ascii_lowercase()
}

impl Sources {
    /// The given variables, and the TOML file if `RAMPART_CONFIG` names one.
    pub fn read(env: HashMap<String, String>) -> Result<Sources, ConfigError> {
        let file_path = env.get(CONFIG_FILE_VAR).filter(|p| !p.is_empty()).cloned();
        let file = match &file_path {
            Some(path) => read_toml(path)?,
            None => HashMap::new(),
        };
        Ok(Sources {
            env,
            file,
            file_path,
        })
    }

    /// Refuses a `RAMPART_*` variable or a file key that is not declared: a typo would
    /// otherwise silently leave the default in force.
    pub fn refuse_unknown(&self, declared: &[&str]) -> Result<(), ConfigError> {
        let mut env: Vec<_> = self.env.keys().collect();
        env.sort();
        for var in env {
            let known = declared.contains(&var.as_str()) || var == CONFIG_FILE_VAR;
            if !known && !var.starts_with(TEST_PREFIX) {
                return Err(ConfigError::new(
                    var,
                    "unknown variable (a typo?); see docs/OPERATIONS.md for the list",
                ));
            }
        }
        let mut keys: Vec<_> = self.file.keys().collect();
        keys.sort();
        for key in keys {
            if !declared.iter().any(|v| file_key(v) == *key) {
                return Err(ConfigError::new(
                    &format!("{key} (in {})", self.file_path.as_deref().unwrap_or("")),
                    "unknown key",
                ));
            }
        }
        Ok(())
    }

    /// The text set for `var`: the environment's, else the file's.
    fn raw(&self, var: &str) -> Option<&str> {
        self.env
            .get(var)
            .or_else(|| self.file.get(&file_key(var)))
            .map(|v| v.trim())
    }

    /// The name to blame for a bad value: `VAR` when the environment set it,
    /// `VAR (key in FILE)` when the file did, `VAR (not set)` when the default is in force.
    pub fn blame(&self, var: &str) -> String {
        if self.env.contains_key(var) {
            return var.to_owned();
        }
        let key = file_key(var);
        match &self.file_path {
            Some(path) if self.file.contains_key(&key) => format!("{var} ({key} in {path})"),
            _ => format!("{var} (not set)"),
        }
    }

    fn parse<K: Kind>(&self, var: &str, kind: &K, raw: &str) -> Result<K::Value, ConfigError> {
        kind.parse(raw)
            .map_err(|m| ConfigError::new(&self.blame(var), m))
    }

    /// A variable with a default written as an operator would write it (parsed the same way).
    pub fn value<K: Kind>(
        &self,
        var: &str,
        kind: &K,
        default: &str,
    ) -> Result<K::Value, ConfigError> {
        match self.raw(var) {
            Some(raw) => self.parse(var, kind, raw),
            None => kind.parse(default).map_err(|m| {
                ConfigError::new(
                    var,
                    format!("the built-in default {default:?} is invalid: {m}"),
                )
            }),
        }
    }

    /// A variable whose default is computed (from variables declared before it).
    pub fn value_or_else<K: Kind>(
        &self,
        var: &str,
        kind: &K,
        default: impl FnOnce() -> K::Value,
    ) -> Result<K::Value, ConfigError> {
        match self.raw(var) {
            Some(raw) => self.parse(var, kind, raw),
            None => Ok(default()),
        }
    }

    /// A variable that may be unset; set to the empty string counts as unset.
    pub fn optional<K: Kind>(&self, var: &str, kind: &K) -> Result<Option<K::Value>, ConfigError> {
        match self.raw(var) {
            None | Some("") => Ok(None),
            Some(raw) => self.parse(var, kind, raw).map(Some),
        }
    }
}

/// The file's top-level keys with their values as text, as if they came from the environment:
/// an array becomes its items joined by commas.
fn read_toml(path: &str) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(CONFIG_FILE_VAR, format!("cannot read {path}: {e}")))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        ConfigError::new(
            CONFIG_FILE_VAR,
            format!("{path} is not valid TOML: {}", e.message()),
        )
    })?;
    let mut out = HashMap::new();
    for (k, v) in table {
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    toml::Value::String(s) => s,
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(ConfigError::new(
                    &format!("{k} (in {path})"),
                    format!("unsupported value {other:?}"),
                ));
            }
        };
        out.insert(k.to_ascii_lowercase(), s);
    }
    Ok(out)
}
