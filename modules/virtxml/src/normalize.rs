//! The one normaliser both libvirt modules compare through: it removes what libvirt adds
//! or rewrites by itself so that a definition the user wrote and the one libvirt stores
//! compare equal when they mean the same. Object-specific rules live in `network` and
//! `interface`; this file holds the generic ones.

use crate::tree::Element;

/// Sort attributes by name and children into a stable order is NOT done: order matters
/// for some libvirt lists. Attribute order never does, so compare through this.
pub fn sort_attrs(el: &mut Element) {
    el.attrs.sort();
    for c in &mut el.children {
        sort_attrs(c);
    }
}

/// Order children by element name, keeping the document order of same-named siblings
/// (libvirt's lists such as `<interface>` pools, `<range>`s and `<host>`s keep their
/// meaning). Different element kinds never depend on their relative order in libvirt
/// XML, so a hand-written document and libvirt's canonical order compare equal.
pub fn sort_children(el: &mut Element) {
    el.children.sort_by(|a, b| a.name.cmp(&b.name));
    for c in &mut el.children {
        sort_children(c);
    }
}

/// Remove attribute `key` from this element and every descendant (runtime-only
/// attributes such as `connections`).
pub fn remove_attr_everywhere(el: &mut Element, key: &str) {
    el.remove_attr(key);
    for c in &mut el.children {
        remove_attr_everywhere(c, key);
    }
}

/// Remove attribute `key` wherever it holds `default` (a value libvirt writes when the
/// user said nothing).
pub fn remove_default_attr(el: &mut Element, key: &str, default: &str) {
    if el.attr(key) == Some(default) {
        el.remove_attr(key);
    }
}

/// The generic canonical form both sides of a comparison go through: attribute order and
/// child order no longer matter. Spelling (MAC case, number formats) is libvirt's and
/// lives in `network::respell`, which a network goes through first.
pub fn canonical(el: &mut Element) {
    sort_attrs(el);
    sort_children(el);
}
