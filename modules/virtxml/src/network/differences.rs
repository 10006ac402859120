//! Where two canonical definitions differ, as dotted paths for messages: `forward.mode`,
//! `bridge.name`, `ip[192.168.1.1].dhcp.range[192.168.1.2].end`. Same-named siblings are
//! told apart by their identity (an `<ip>` by its address, a `<host>` by its MAC or name).

use crate::network::layout::identity;
use crate::tree::Element;

/// Dotted paths of where `a` and `b` differ.
pub fn differences(a: &Element, b: &Element) -> Vec<String> {
    let mut out = Vec::new();
    diff_at(a, b, "", &mut out);
    out.dedup();
    out
}

fn join(path: &str, s: &str) -> String {
    if path.is_empty() {
        s.to_string()
    } else {
        format!("{path}.{s}")
    }
}

/// `name` or `name[identity]`.
fn label(el: &Element, several: bool) -> String {
    match identity(el) {
        Some((_, v)) if several => format!("{}[{v}]", el.name),
        _ => el.name.clone(),
    }
}

fn diff_at(a: &Element, b: &Element, path: &str, out: &mut Vec<String>) {
    let mut keys: Vec<&str> = a
        .attrs
        .iter()
        .chain(b.attrs.iter())
        .map(|(k, _)| k.as_str())
        .collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if a.attr(k) != b.attr(k) {
            out.push(join(path, k));
        }
    }
    if a.text != b.text {
        out.push(if path.is_empty() {
            "text".into()
        } else {
            path.to_string()
        });
    }
    let mut names: Vec<&str> = a
        .children
        .iter()
        .chain(b.children.iter())
        .map(|c| c.name.as_str())
        .collect();
    names.sort();
    names.dedup();
    for n in names {
        let ac: Vec<&Element> = a.children_named(n).collect();
        let bc: Vec<&Element> = b.children_named(n).collect();
        if ac.len() == 1 && bc.len() == 1 {
            diff_at(ac[0], bc[0], &join(path, n), out);
        } else if ac != bc {
            siblings(&ac, &bc, path, out);
        }
    }
}

/// Same-named siblings: pair them by identity; a pair that differs is looked into, one
/// without a counterpart is named whole.
fn siblings(a: &[&Element], b: &[&Element], path: &str, out: &mut Vec<String>) {
    let several = a.len() > 1 || b.len() > 1;
    let mut taken = vec![false; b.len()];
    for x in a {
        let found = b
            .iter()
            .enumerate()
            .position(|(i, y)| !taken[i] && identity(x).is_some() && identity(x) == identity(y));
        match found {
            Some(i) => {
                taken[i] = true;
                if *x != b[i] {
                    diff_at(x, b[i], &join(path, &label(x, several)), out);
                }
            }
            None => out.push(join(path, &label(x, several))),
        }
    }
    for (i, y) in b.iter().enumerate() {
        if !taken[i] {
            out.push(join(path, &label(y, several)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Element {
        Element::parse(s).unwrap()
    }

    #[test]
    fn repeated_elements_are_named_by_identity() {
        let a = p("<network><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'/></dhcp></ip><ip family='ipv6' address='fd00::1' prefix='64'/></network>");
        let b = p("<network><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.8'/></dhcp></ip><ip family='ipv6' address='fd00::1' prefix='64'/></network>");
        assert_eq!(differences(&a, &b), vec!["ip[10.0.0.1].dhcp.range.end"]);
        let c = p("<network><ip address='10.0.0.1' prefix='24'/><ip family='ipv6' address='fd00::2' prefix='64'/></network>");
        let d = p("<network><ip address='10.0.0.1' prefix='24'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>");
        assert_eq!(differences(&c, &d), vec!["ip[fd00::2]", "ip[fd00::1]"]);
        let e = p("<network><forward mode='nat'/></network>");
        let f = p("<network><forward mode='route'/></network>");
        assert_eq!(differences(&e, &f), vec!["forward.mode"]);
    }
}
