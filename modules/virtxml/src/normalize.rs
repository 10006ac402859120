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

/// Lower-case every `address` attribute of `<mac>` elements.
pub fn lowercase_macs(el: &mut Element) {
    if el.name == "mac" {
        if let Some(a) = el.attr("address").map(str::to_ascii_lowercase) {
            el.set_attr("address", &a);
        }
    }
    for c in &mut el.children {
        lowercase_macs(c);
    }
}
