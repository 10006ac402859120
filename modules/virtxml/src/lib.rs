//! libvirt XML for the libvirt modules: a small element tree ([`tree`]), the one
//! normaliser comparisons go through ([`normalize`]), what kvmnet knows of networks and
//! guest interfaces ([`network`], [`interface`]), the readers of one network's and one
//! domain's state ([`netstate`], [`domain`]), and batched virsh calls ([`virsh`]).

pub mod domain;
pub mod interface;
pub mod inventory;
pub mod netstate;
pub mod network;
pub mod normalize;
pub mod tree;
pub mod virsh;

pub use tree::Element;
