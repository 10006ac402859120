//! Macvlan/macvtap modes. kvmnet's spelling is `passthrough`; the kernel and
//! NetworkManager spell it `passthru`, and `nmcli -t` prints modes as numbers.

/// A macvlan/macvtap mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacvlanMode {
    Vepa,
    Bridge,
    Private,
    Passthrough,
    /// A mode kvmnet does not set (`source`), kept as the kernel spells it.
    Other(String),
}

impl MacvlanMode {
    /// From an option value or a kernel name.
    pub fn parse(s: &str) -> MacvlanMode {
        match s.trim() {
            "vepa" => MacvlanMode::Vepa,
            "bridge" => MacvlanMode::Bridge,
            "private" => MacvlanMode::Private,
            "passthru" | "passthrough" => MacvlanMode::Passthrough,
            other => MacvlanMode::Other(other.to_string()),
        }
    }
    /// From NetworkManager's `macvlan.mode`: `3` in terse mode, `3 (private)` in pretty
    /// mode, or a name.
    pub fn from_nm(s: &str) -> Option<MacvlanMode> {
        let s = s.trim();
        let num: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
        if num.is_empty() {
            return (!s.is_empty()).then(|| MacvlanMode::parse(s));
        }
        Some(match num.as_str() {
            "1" => MacvlanMode::Vepa,
            "2" => MacvlanMode::Bridge,
            "3" => MacvlanMode::Private,
            "4" => MacvlanMode::Passthrough,
            "5" => MacvlanMode::Other("source".into()),
            _ => MacvlanMode::Other(s.to_string()),
        })
    }
    /// kvmnet's spelling (what results and diffs show).
    pub fn name(&self) -> &str {
        match self {
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Passthrough => "passthrough",
            MacvlanMode::Other(s) => s,
        }
    }
    /// The kernel's and NetworkManager's spelling (what commands take).
    pub fn kernel(&self) -> &str {
        match self {
            MacvlanMode::Passthrough => "passthru",
            m => m.name(),
        }
    }
    pub fn is_passthrough(&self) -> bool {
        *self == MacvlanMode::Passthrough
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_in_every_spelling() {
        assert_eq!(MacvlanMode::parse("passthru"), MacvlanMode::Passthrough);
        assert_eq!(MacvlanMode::parse("passthrough").kernel(), "passthru");
        assert_eq!(MacvlanMode::from_nm("3"), Some(MacvlanMode::Private));
        assert_eq!(
            MacvlanMode::from_nm("3 (private)"),
            Some(MacvlanMode::Private)
        );
        assert_eq!(MacvlanMode::from_nm("4"), Some(MacvlanMode::Passthrough));
        assert_eq!(MacvlanMode::from_nm("bridge"), Some(MacvlanMode::Bridge));
        assert_eq!(MacvlanMode::from_nm(""), None);
        assert_eq!(MacvlanMode::parse("source").name(), "source");
    }
}
