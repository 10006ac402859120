//! What kvmnet knows of libvirt network definitions (owned by libvirt_net).
