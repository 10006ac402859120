//! An XML element tree with just what libvirt documents use: elements, attributes, text.
//! Comments, processing instructions and the declaration are dropped.

use kvmnet_protocol::{Error, Result};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    /// In document order.
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// Text content (trimmed); libvirt uses text only in leaf elements.
    pub text: String,
}

fn start(e: &BytesStart) -> Result<Element> {
    let name = e.name().as_ref().to_string();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a =
            a.map_err(|err| Error::invalid(format!("malformed XML attribute in <{name}>: {err}")))?;
        let key = a.key.as_ref().to_string();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|err| {
                Error::invalid(format!("malformed XML attribute value in <{name}>: {err}"))
            })?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        ..Default::default()
    })
}

impl Element {
    pub fn new(name: &str) -> Self {
        Element {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Parse a document; its root element is returned.
    pub fn parse(xml: &str) -> Result<Element> {
        let mut reader = Reader::from_str(xml);
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        let bad = |e: &dyn std::fmt::Display, pos: u64| {
            Error::invalid(format!("malformed XML at byte {pos}: {e}"))
        };
        loop {
            let pos = reader.buffer_position();
            match reader.read_event().map_err(|e| bad(&e, pos))? {
                Event::Start(e) => stack.push(start(&e)?),
                Event::Empty(e) => {
                    let el = start(&e)?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None if root.is_none() => root = Some(el),
                        None => return Err(bad(&"more than one root element", pos)),
                    }
                }
                Event::End(_) => {
                    let mut el = stack.pop().ok_or_else(|| bad(&"unexpected end tag", pos))?;
                    el.text = el.text.trim().to_string();
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None if root.is_none() => root = Some(el),
                        None => return Err(bad(&"more than one root element", pos)),
                    }
                }
                Event::Text(t) => {
                    let s = t.xml10_content();
                    match stack.last_mut() {
                        Some(el) => el.text.push_str(&s),
                        None if s.trim().is_empty() => {}
                        None => return Err(bad(&"text outside the root element", pos)),
                    }
                }
                Event::GeneralRef(r) => {
                    let s = match r.resolve_char_ref().map_err(|e| bad(&e, pos))? {
                        Some(c) => c.to_string(),
                        None => {
                            let name = r.xml10_content();
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or_else(|| bad(&format!("unknown entity &{name};"), pos))?
                                .to_string()
                        }
                    };
                    if let Some(el) = stack.last_mut() {
                        el.text.push_str(&s);
                    }
                }
                Event::CData(t) => {
                    if let Some(el) = stack.last_mut() {
                        el.text.push_str(&t.xml10_content());
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !stack.is_empty() {
            return Err(Error::invalid(format!(
                "malformed XML: <{}> is not closed",
                stack[stack.len() - 1].name
            )));
        }
        root.ok_or_else(|| Error::invalid("malformed XML: no root element"))
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub fn set_attr(&mut self, key: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_string(),
            None => self.attrs.push((key.to_string(), value.to_string())),
        }
    }
    pub fn remove_attr(&mut self, key: &str) -> Option<String> {
        let i = self.attrs.iter().position(|(k, _)| k == key)?;
        Some(self.attrs.remove(i).1)
    }
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find(|c| c.name == name)
    }
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    /// Remove every child called `name`; returns how many went.
    pub fn remove_children(&mut self, name: &str) -> usize {
        let before = self.children.len();
        self.children.retain(|c| c.name != name);
        before - self.children.len()
    }
    /// The child at a `/`-separated path of element names, e.g. `forward/interface`.
    pub fn path(&self, path: &str) -> Option<&Element> {
        path.split('/').try_fold(self, |el, name| el.child(name))
    }
    pub fn path_mut(&mut self, path: &str) -> Option<&mut Element> {
        path.split('/')
            .try_fold(self, |el, name| el.child_mut(name))
    }
    pub fn with_attr(mut self, key: &str, value: &str) -> Self {
        self.set_attr(key, value);
        self
    }
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }
    pub fn with_text(mut self, text: &str) -> Self {
        self.text = text.to_string();
        self
    }

    /// Serialise with two-space indentation and single-quoted attributes, as libvirt does.
    pub fn to_xml(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s
    }

    fn write(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        out.push_str(&pad);
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("='");
            out.push_str(&quick_xml::escape::escape(v.as_str()).replace('\'', "&apos;"));
            out.push('\'');
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>\n");
            return;
        }
        out.push('>');
        if self.children.is_empty() {
            out.push_str(&quick_xml::escape::escape(self.text.as_str()));
        } else {
            out.push('\n');
            if !self.text.is_empty() {
                out.push_str(&pad);
                out.push_str("  ");
                out.push_str(&quick_xml::escape::escape(self.text.as_str()));
                out.push('\n');
            }
            for c in &self.children {
                c.write(out, depth + 1);
            }
            out.push_str(&pad);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push_str(">\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // As `virsh net-dumpxml` prints it (libvirt 9.0).
    const NET: &str = "<network connections='1'>\n  <name>host-bridge</name>\n  <uuid>6a1b-uuid</uuid>\n  <forward mode='bridge'/>\n  <bridge name='br0'/>\n  <!-- a comment -->\n  <description>a &amp; b &lt;c&gt;</description>\n</network>\n";

    #[test]
    fn parses_and_round_trips() {
        let n = Element::parse(NET).unwrap();
        assert_eq!(n.name, "network");
        assert_eq!(n.attr("connections"), Some("1"));
        assert_eq!(n.child("name").unwrap().text, "host-bridge");
        assert_eq!(n.path("forward").unwrap().attr("mode"), Some("bridge"));
        assert_eq!(n.child("description").unwrap().text, "a & b <c>");
        let again = Element::parse(&n.to_xml()).unwrap();
        assert_eq!(again, n);
        assert!(n
            .to_xml()
            .contains("<description>a &amp; b &lt;c&gt;</description>"));
    }

    #[test]
    fn rejects_malformed() {
        assert!(Element::parse("<network><name>x</network>").is_err());
        assert!(Element::parse("<network>")
            .unwrap_err()
            .msg
            .contains("not closed"));
        assert!(Element::parse("").is_err());
        assert!(Element::parse("<a/><b/>").is_err());
        assert!(Element::parse("<a x='1' x='2'/>").is_err());
    }

    #[test]
    fn edits() {
        let mut n = Element::parse(NET).unwrap();
        n.remove_attr("connections");
        n.path_mut("bridge").unwrap().set_attr("name", "br1");
        assert_eq!(n.path("bridge").unwrap().attr("name"), Some("br1"));
        assert_eq!(n.remove_children("uuid"), 1);
        assert!(n.child("uuid").is_none());
    }
}
