//! The providers as a `proxy.yaml` fragment: a `providers:` section with `oid:` and `saml:`
//! maps of the plugin's JSON settings, which `proxy.yaml` takes as they are.

use std::path::Path;

use serde_json::Value;
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter};

use crate::state::StoredProvider;

/// The fragment for `providers` (sorted by protocol and name), with a comment saying where it
/// came from. It holds the client secrets as they were in the plugin's file.
pub fn render(providers: &[StoredProvider], from: &Path) -> String {
    let mut by_protocol = Hash::new();
    for protocol in ["oid", "saml"] {
        let mut named: Vec<&StoredProvider> = providers.iter().filter(|p| p.protocol == protocol).collect();
        named.sort_by(|a, b| a.name.cmp(&b.name));
        if named.is_empty() {
            continue;
        }
        let mut map = Hash::new();
        for p in named {
            map.insert(Yaml::String(p.name.clone()), yaml(&p.json));
        }
        by_protocol.insert(Yaml::String(protocol.into()), Yaml::Hash(map));
    }
    let mut root = Hash::new();
    root.insert(Yaml::String("providers".into()), Yaml::Hash(by_protocol));
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(&Yaml::Hash(root)).expect("writing YAML to a String");
    let body = out.strip_prefix("---\n").unwrap_or(&out);
    format!(
        "# Providers imported from {} by `jellyfin-sso-proxy import-plugin-config`.\n# Put this section into proxy.yaml; it holds client secrets (consider oidSecretFile).\n{body}\n",
        from.display()
    )
}

fn yaml(v: &Value) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Array(a.iter().map(yaml).collect()),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Yaml::Hash(keys.into_iter().map(|k| (Yaml::String(k.clone()), yaml(&m[k]))).collect())
        }
    }
}
