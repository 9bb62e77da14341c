//! Two readings of a JSON body that its typed parse cannot give once it goes through a
//! `serde_json::Value`: a key given twice in one object (refused, naming it, rather than the
//! last one silently winning), and integral numbers written with a fraction or an exponent.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// A syntax pass over a JSON document that remembers the first key given twice in an object.
#[derive(Debug, Default)]
pub struct UniqueKeys {
    /// Where the duplicate is, as `errors[]` names fields (`a.b[0].c`).
    pub duplicate: Option<String>,
}

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Walk(String::new()))
    }
}

/// Visits one value at `path`.
struct Walk(String);

impl Walk {
    fn child(&self, key: &str) -> Walk {
        if self.0.is_empty() {
            Walk(key.to_owned())
        } else {
            Walk(format!("{}.{key}", self.0))
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for Walk {
    type Value = UniqueKeys;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<UniqueKeys, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys::default())
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        let mut found = None;
        let mut i = 0usize;
        while let Some(inner) = seq.next_element_seed(Walk(format!("{}[{i}]", self.0)))? {
            found = found.or(inner.duplicate);
            i += 1;
        }
        Ok(UniqueKeys { duplicate: found })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = HashSet::new();
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            let inner = map.next_value_seed(self.child(&key))?;
            if found.is_none() && !seen.insert(key.clone()) {
                found = Some(self.child(&key).0);
            }
            found = found.or(inner.duplicate);
        }
        Ok(UniqueKeys { duplicate: found })
    }
}

/// The largest integer an `f64` holds exactly (2^53).
const EXACT: f64 = 9_007_199_254_740_992.0;

/// Rewrites every integral number written as a float (`10.0`, `1e1`) as that integer, so that
/// an integer field takes it: JSON itself does not tell `10` and `10.0` apart.
pub fn integral_numbers_as_integers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
                && f.abs() <= EXACT
            {
                *n = Number::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dup(s: &str) -> Option<String> {
        serde_json::from_str::<UniqueKeys>(s).unwrap().duplicate
    }

    #[test]
    fn a_key_given_twice_is_found_wherever_it_is() {
        assert_eq!(dup(r#"{"a":1,"b":2}"#), None);
        assert_eq!(dup(r#"{"a":1,"a":2}"#).as_deref(), Some("a"));
        assert_eq!(dup(r#"{"m":{"x":1,"x":1}}"#).as_deref(), Some("m.x"));
        assert_eq!(
            dup(r#"{"l":[{"k":1},{"k":1,"k":2}]}"#).as_deref(),
            Some("l[1].k")
        );
        assert_eq!(dup(r#"{"l":[{"k":1},{"k":1}]}"#), None);
    }

    #[test]
    fn integral_floats_become_integers_and_others_stay() {
        let mut v = json!({"a": 10.0, "b": [1e3, 1.5], "c": -0.0, "d": 1e300, "e": 7});
        integral_numbers_as_integers(&mut v);
        assert_eq!(
            v,
            json!({"a": 10, "b": [1000, 1.5], "c": 0, "d": 1e300, "e": 7})
        );
        assert!(v["a"].is_i64());
    }
}
