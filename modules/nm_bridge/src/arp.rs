//! Does the gateway answer? One ARP request on the interface that now carries the
//! default route, through an `AF_PACKET` socket: managed hosts need neither `ping` nor
//! `arping` (the lab has neither), and an ARP reply proves the link works both ways
//! before anything above it (a firewall that drops ICMP) can interfere.
//!
//! verify.rs runs it through `ctx.probe` (the test double answers instead).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// What the probe needs of the interface.
#[derive(Debug, Clone)]
pub struct Probe {
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// Our address on that link (the sender of the request; 0.0.0.0 when it has none).
    pub source: Ipv4Addr,
    pub target: Ipv4Addr,
    pub wait: Duration,
}

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn mac_bytes(mac: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    for (o, p) in out.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    Some(out)
}

/// The ARP request (RFC 826) for `target`: Ethernet, IPv4, "who has target, tell source".
pub fn request(mac: [u8; 6], source: Ipv4Addr, target: Ipv4Addr) -> [u8; 28] {
    let mut b = [0u8; 28];
    b[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    b[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    b[4] = 6;
    b[5] = 4;
    b[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    b[8..14].copy_from_slice(&mac);
    b[14..18].copy_from_slice(&source.octets());
    b[24..28].copy_from_slice(&target.octets());
    b
}

/// The sender's MAC address if `packet` is an ARP reply from `target`.
pub fn reply_from(packet: &[u8], target: Ipv4Addr) -> Option<String> {
    if packet.len() < 28 || packet[6..8] != 2u16.to_be_bytes() || packet[14..18] != target.octets()
    {
        return None;
    }
    Some(
        packet[8..14]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// The socket, closed on drop.
struct Socket(libc::c_int);

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn link_addr(ifindex: u32, dest: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
    sa.sll_ifindex = ifindex as i32;
    if let Some(d) = dest {
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&d);
    }
    sa
}

fn open(ifindex: u32) -> Result<Socket, String> {
    let proto = (libc::ETH_P_ARP as u16).to_be() as libc::c_int;
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            proto,
        )
    };
    if fd < 0 {
        return Err(os_error("cannot open a packet socket"));
    }
    let sock = Socket(fd);
    let sa = link_addr(ifindex, None);
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: sa is a valid sockaddr_ll of that length.
    if unsafe { libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len) } < 0 {
        return Err(os_error("cannot bind the packet socket"));
    }
    Ok(sock)
}

fn send(sock: &Socket, p: &Probe) -> Result<(), String> {
    let req = request(p.mac, p.source, p.target);
    let sa = link_addr(p.ifindex, Some([0xff; 6]));
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: req and sa are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            sock.0,
            req.as_ptr() as *const libc::c_void,
            req.len(),
            0,
            &sa as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if n < 0 {
        return Err(os_error("cannot send the ARP request"));
    }
    Ok(())
}

/// Send one request and wait up to `p.wait` for the target's reply: its MAC address, or
/// `None` when it did not answer.
pub fn probe(p: &Probe) -> Result<Option<String>, String> {
    let sock = open(p.ifindex)?;
    send(&sock, p)?;
    let deadline = Instant::now() + p.wait;
    let mut buf = [0u8; 64];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let mut pfd = libc::pollfd {
            fd: sock.0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) };
        if r < 0 {
            return Err(os_error("poll"));
        }
        if r == 0 {
            continue;
        }
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(sock.0, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n < 0 {
            return Err(os_error("cannot read from the packet socket"));
        }
        if let Some(mac) = reply_from(&buf[..n as usize], p.target) {
            return Ok(Some(mac));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_bytes() {
        let mac = mac_bytes("02:5b:a0:7a:b2:89").unwrap();
        let src: Ipv4Addr = "198.51.100.182".parse().unwrap();
        let gw: Ipv4Addr = "198.51.100.1".parse().unwrap();
        let req = request(mac, src, gw);
        assert_eq!(&req[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&req[24..], &[198, 51, 100, 1]);
        // The gateway's reply: operation 2, its MAC and address as sender.
        let mut rep = req;
        rep[7] = 2;
        rep[8..14].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
        rep[14..18].copy_from_slice(&gw.octets());
        assert_eq!(reply_from(&rep, gw).as_deref(), Some("52:54:00:00:00:01"));
        assert_eq!(reply_from(&req, gw), None); // a request, not a reply
        assert_eq!(reply_from(&rep, src), None); // from someone else
        assert_eq!(mac_bytes("02:5b:a0:7a:b2"), None);
    }
}
