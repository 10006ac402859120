//! libvirt XML for the two libvirt modules: a small element tree ([`tree`]), the one
//! normaliser both modules compare through ([`normalize`]), what each module knows of its
//! own objects ([`network`], [`interface`]), and batched virsh calls ([`virsh`]).

pub mod interface;
pub mod network;
pub mod normalize;
pub mod tree;
pub mod virsh;

pub use tree::Element;
