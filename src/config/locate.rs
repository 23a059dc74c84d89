//! Finds the line of each key in the YAML text, so a problem can say "proxy.yaml line 12".
//!
//! figment keeps where a value came from (file or environment) but not the line, so we read
//! the same text once more with yaml-rust2's event parser, which marks every event with its
//! position, and record the line of every mapping key under its dotted path.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Dotted key path → 1-based line number.
#[derive(Debug, Default, Clone)]
pub struct LineMap {
    lines: HashMap<String, usize>,
}

impl LineMap {
    pub fn from_yaml(text: &str) -> LineMap {
        let mut rec = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        // A syntax error is reported by figment with its own position; here we keep what we got.
        let _ = parser.load(&mut rec, false);
        LineMap { lines: rec.lines }
    }

    /// The line of `path`, or of its nearest ancestor that exists in the file.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }
}

enum Frame {
    Map { key: Option<String> },
    Seq { index: usize },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl Recorder {
    fn path(&self) -> String {
        let mut parts = Vec::new();
        for f in &self.stack {
            match f {
                Frame::Map { key: Some(k) } => parts.push(k.clone()),
                Frame::Seq { index } => parts.push(index.to_string()),
                Frame::Map { key: None } => {}
            }
        }
        parts.join(".")
    }

    /// A value (scalar or container) finished inside the current frame.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key }) => *key = None,
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }

    /// Called before a value starts: in a map waiting for a key, a scalar is that key.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None }))
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(s, ..) => {
                if self.expecting_key() {
                    if let Some(Frame::Map { key }) = self.stack.last_mut() {
                        *key = Some(s);
                    }
                    let path = self.path();
                    // yaml-rust2 markers count lines from 1.
                    self.lines.entry(path).or_insert(mark.line());
                } else {
                    self.value_done();
                }
            }
            Event::MappingStart(..) => self.stack.push(Frame::Map { key: None }),
            Event::SequenceStart(..) => self.stack.push(Frame::Seq { index: 0 }),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            Event::Alias(_) => self.value_done(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_keys_get_their_lines() {
        let text = "listen: 1\n# comment\ntls:\n  cert: a\n  key: b\nproviders:\n  oid:\n    corp:\n      roles: [a, b]\n      oidEndpoint: x\n";
        let m = LineMap::from_yaml(text);
        assert_eq!(m.line_of("listen"), Some(1));
        assert_eq!(m.line_of("tls"), Some(3));
        assert_eq!(m.line_of("tls.key"), Some(5));
        assert_eq!(m.line_of("providers.oid.corp.oidEndpoint"), Some(10));
        // Unknown leaf falls back to the nearest ancestor.
        assert_eq!(m.line_of("tls.nope"), Some(3));
        assert_eq!(m.line_of("nothing"), None);
    }
}
