//! Lenient fields and the problem list: how one pass over `proxy.yaml` finds *every* mistake.
//!
//! serde stops at the first error, which makes an operator fix a config one typo at a time.
//! So the raw config structs never fail on a value: each setting is a [`Field`], which keeps
//! either the parsed value or the reason it did not parse, and each section collects keys it
//! does not know in a flattened map. Validation then walks the raw structs, turning every
//! `Invalid`, unknown key and semantic mistake into a [`Problem`] with its dotted path.

use std::collections::BTreeMap;
use std::fmt;

use figment::value::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// One setting as it came out of the file or the environment.
#[derive(Debug, Clone, Default)]
pub enum Field<T> {
    /// Not given (or given as `null`): the default applies.
    #[default]
    Missing,
    Present(T),
    /// Given, but not of the right shape; the text says why.
    Invalid(String),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = <Value as Deserialize>::deserialize(d)?;
        if matches!(value, Value::Empty(..)) {
            return Ok(Field::Missing);
        }
        Ok(match value.deserialize::<T>() {
            Ok(t) => Field::Present(t),
            Err(e) => Field::Invalid(e.kind.to_string()),
        })
    }
}

/// Keys a section did not recognise, collected with `#[serde(flatten)]`.
pub type Unknown = BTreeMap<String, Value>;

/// One mistake in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the setting, e.g. `tls.key` or `providers.oid.corp.oidEndpoint`.
    pub path: String,
    pub message: String,
    /// Where the value came from, when known: `proxy.yaml line 12`, `environment variable JSP_TLS__KEY`.
    pub location: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(loc) = &self.location {
            write!(f, " ({loc})")?;
        }
        Ok(())
    }
}

/// Collects problems while validation goes on, so all of them are reported at once.
#[derive(Debug, Default)]
pub struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem { path: path.into(), message: message.into(), location: None });
    }

    pub fn unknown(&mut self, prefix: &str, unknown: &Unknown, known: &[&str]) {
        for key in unknown.keys() {
            let hint = match known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
                Some(k) => format!("unknown key; did you mean `{k}`? (keys are case-sensitive)"),
                None => format!("unknown key; this section accepts: {}", known.join(", ")),
            };
            self.push(join(prefix, key), hint);
        }
    }

    /// The value of `field`, or `default` when missing; an invalid value is recorded and
    /// `default` is returned so validation can go on.
    pub fn take<T>(&mut self, path: &str, field: Field<T>, default: T) -> T {
        match field {
            Field::Missing => default,
            Field::Present(v) => v,
            Field::Invalid(msg) => {
                self.push(path, msg);
                default
            }
        }
    }

    /// Like [`take`](Self::take) but `None` when missing or invalid.
    pub fn opt<T>(&mut self, path: &str, field: Field<T>) -> Option<T> {
        match field {
            Field::Missing => None,
            Field::Present(v) => Some(v),
            Field::Invalid(msg) => {
                self.push(path, msg);
                None
            }
        }
    }

    /// Parse a string setting with `parse`; a parse error becomes a problem.
    pub fn parse<T, E: fmt::Display>(
        &mut self,
        path: &str,
        field: Field<String>,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> T {
        match self.opt(path, field) {
            None => default,
            Some(s) => match parse(s.trim()) {
                Ok(v) => v,
                Err(e) => {
                    self.push(path, format!("{e} (got `{s}`)"));
                    default
                }
            },
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.list
    }
}

pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Yaml};
    use figment::Figment;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Raw {
        port: Field<u16>,
        name: Field<String>,
        #[serde(flatten)]
        unknown: Unknown,
    }

    #[test]
    fn invalid_values_and_unknown_keys_are_all_kept() {
        let raw: Raw = Figment::from(Yaml::string("port: seventy\nnaem: x\nother: 1\n")).extract().unwrap();
        assert!(matches!(raw.port, Field::Invalid(_)));
        assert!(matches!(raw.name, Field::Missing));
        assert_eq!(raw.unknown.len(), 2);
        let mut p = Problems::default();
        p.take("port", raw.port, 0);
        p.unknown("", &raw.unknown, &["port", "name"]);
        let v = p.into_vec();
        assert_eq!(v.len(), 3);
        assert!(v[0].message.contains("u16"), "{}", v[0].message);
    }

    #[test]
    fn null_counts_as_missing() {
        let raw: Raw = Figment::from(Yaml::string("port: ~\n")).extract().unwrap();
        assert!(matches!(raw.port, Field::Missing));
    }
}
