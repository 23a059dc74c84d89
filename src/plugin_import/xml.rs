//! The XML of the plugin's saved configuration, read into a small element tree with line
//! numbers, so every report can say where an element is.
//!
//! Jellyfin writes a plugin's configuration with .NET's `XmlSerializer` through an indented
//! `XmlTextWriter` (jellyfin/jellyfin `Emby.Server.Implementations/Serialization/MyXmlSerializer.cs`,
//! `SerializeToStream`): elements only (no
//! attributes carry data), text escaped with the predefined entities and character
//! references, `xsi:nil="true"` for a null `int?`. That is all this reader keeps; a DOCTYPE
//! (entity definitions) is refused, so nothing in the file can expand. Broken XML is an error
//! naming the line and column.

use quick_xml::events::Event;
use quick_xml::Reader;

/// One element: its local name (no prefix), where it starts, its text and its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub line: usize,
    /// The concatenated text directly inside it (entities resolved), untrimmed.
    pub text: String,
    /// `xsi:nil="true"`: a null value.
    pub nil: bool,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Why a file is not XML we can read: the message and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The plugin's deepest element is at depth 9 (a folder id in a role mapping); anything far
/// deeper is not its file, and would only cost stack when the tree is dropped.
const MAX_DEPTH: usize = 64;

/// Line and column (1-based) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, column)
}

/// Parse `text` into its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    // .NET's StreamWriter may start the file with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let fail = |offset: u64, message: String| {
        let (line, column) = position(text, offset as usize);
        XmlError { line, column, message }
    };
    loop {
        let at = reader.buffer_position();
        let event = reader.read_event().map_err(|e| fail(reader.error_position(), e.to_string()))?;
        let (start, empty) = match &event {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
            let mut nil = false;
            for a in e.attributes() {
                let a = a.map_err(|err| fail(at, format!("in <{name}>: {err}")))?;
                if a.key.local_name().as_ref() == b"nil" {
                    nil = a.value.as_ref() == b"true";
                }
            }
            if stack.len() >= MAX_DEPTH {
                return Err(fail(at, format!("<{name}> is nested deeper than {MAX_DEPTH} elements")));
            }
            if root.is_some() && stack.is_empty() {
                return Err(fail(at, format!("<{name}> after the end of the root element")));
            }
            let element = Element { name, line: position(text, at as usize).0, text: String::new(), nil, children: Vec::new() };
            if empty {
                close(&mut stack, &mut root, element);
            } else {
                stack.push(element);
            }
            continue;
        }
        match event {
            Event::Start(_) | Event::Empty(_) => {}
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| fail(at, "an end tag without a start tag".into()))?;
                close(&mut stack, &mut root, element);
            }
            Event::Text(t) => {
                let s = t.xml10_content().map_err(|e| fail(at, e.to_string()))?;
                push_text(&mut stack, &s, || fail(at, "text outside the root element".into()))?;
            }
            Event::CData(t) => {
                let s = t.xml10_content().map_err(|e| fail(at, e.to_string()))?;
                push_text(&mut stack, &s, || fail(at, "text outside the root element".into()))?;
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| fail(at, e.to_string()))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| fail(at, e.to_string()))?;
                        quick_xml::escape::resolve_predefined_entity(&name).ok_or_else(|| fail(at, format!("unknown entity &{name};")))?.to_string()
                    }
                };
                push_text(&mut stack, &resolved, || fail(at, "text outside the root element".into()))?;
            }
            Event::DocType(_) => return Err(fail(at, "a DOCTYPE is not allowed (Jellyfin never writes one)".into())),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        let (line, column) = position(text, text.len());
        return Err(XmlError { line, column, message: format!("the file ends inside <{}> (opened on line {})", open.name, open.line) });
    }
    root.ok_or_else(|| XmlError { line: 1, column: 1, message: "no root element".into() })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

fn push_text(stack: &mut [Element], s: &str, outside: impl Fn() -> XmlError) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(e) => {
            e.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(outside()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_text_entities_and_nil() {
        let root = parse("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<A xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n  <B>x &amp; &#65;<![CDATA[<c>]]></B>\n  <C xsi:nil=\"true\" />\n  <D />\n</A>").unwrap();
        assert_eq!((root.name.as_str(), root.line, root.children.len()), ("A", 2, 3));
        let b = root.child("B").unwrap();
        assert_eq!((b.text.as_str(), b.line, b.nil), ("x & A<c>", 3, false));
        assert!(root.child("C").unwrap().nil);
        assert_eq!(root.child("D").unwrap().text, "");
        assert!(root.child("E").is_none());
    }

    #[test]
    fn broken_xml_names_the_line() {
        let e = parse("<A>\n  <B>\n  </C>\n</A>").unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");
        let e = parse("<A>\n  <B>text").unwrap_err();
        assert!(e.message.contains("<B>") && e.message.contains("line 2"), "{e:?}");
        let e = parse("<A>&bogus;</A>").unwrap_err();
        assert!(e.message.contains("bogus"), "{e:?}");
        let e = parse("<!DOCTYPE A [<!ENTITY x \"y\">]><A>&x;</A>").unwrap_err();
        assert!(e.message.contains("DOCTYPE"), "{e:?}");
        assert!(parse("").is_err());
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert!(parse(&deep).unwrap_err().message.contains("deeper than 64"));
        assert!(parse("<A/><B/>").is_err());
    }
}
