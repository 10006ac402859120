//! What kvmnet knows of a domain's <interface> elements (owned by domain_iface).
