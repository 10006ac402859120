//! Unit tests on outputs captured in the lab (NM 1.42, iproute2 6.1).
