//! Which worker owns a packet: one decision, used by the established fast path, the
//! general path and the standby's installation of synced sessions.
//!
//! Every session has one owning worker, which alone touches it:
//! - a FULLNAT reply (to a LIP) belongs to the worker owning its destination port
//!   ([`owner_of_port`]); the owner allocated that port from its own slice of the LIP
//!   pool ([`crate::laddr`]);
//! - everything else belongs to `hash(client address)` ([`owner_of_client`]): the source
//!   of a request, the destination of a NAT reply. The client *address* (not port) is
//!   hashed so that a persistence template, which pins a client address, lives on the
//!   same worker as all of that client's sessions.
//!
//! A worker that receives a packet another worker owns hands it over unchanged (the
//! pipeline returns [`crate::pipeline::Out::Handoff`], the engine passes it on a ring).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conn::SyncConn;

/// What the destination of a packet is, as far as ownership goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// A virtual service address: a client's request.
    Service,
    /// A FULLNAT local address: a real server's reply to a local port.
    LocalAddr,
    /// A director address (DIP): handled where it arrived.
    Director,
    /// An address that is not ours: a NAT reply travelling to its client.
    Client,
}

/// The worker owning the packet `src -> dst:dport` whose destination is `to`, among
/// `workers`; `None` when the worker that received it handles it (director addresses,
/// and a packet to a local address without ports).
#[inline(always)]
pub fn owner(
    to: Toward,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dport: Option<u16>,
    workers: usize,
) -> Option<usize> {
    if workers <= 1 {
        return Some(0);
    }
    match to {
        Toward::Service => Some(owner_of_client(src, workers)),
        Toward::LocalAddr => dport.map(|p| owner_of_port(p, workers)),
        Toward::Director => None,
        Toward::Client => Some(owner_of_client(dst, workers)),
    }
}

/// The worker owning the session an ICMP error is about, from the packet it embeds
/// (`isrc:isport -> idst`, as the sender of the error saw it), by where the error is
/// going (`to`):
/// - toward a client ([`Toward::Client`]): an error from a real server's side about a
///   request; the local port's owner when the embedded packet came from a LIP
///   (`from_lip`: a FULLNAT request), else the owner of the embedded source, the client
///   (a NAT request);
/// - to a VIP ([`Toward::Service`]): an error from the client's side about a reply,
///   which went to the client: the owner of the embedded destination;
/// - `None` for anything else (the packet's own addresses decide).
#[inline]
pub fn owner_of_embedded(
    to: Toward,
    (isrc, isport, idst): (Ipv4Addr, u16, Ipv4Addr),
    from_lip: bool,
    workers: usize,
) -> Option<usize> {
    match to {
        Toward::Client if from_lip => Some(owner_of_port(isport, workers)),
        Toward::Client => Some(owner_of_client(isrc, workers)),
        Toward::Service => Some(owner_of_client(idst, workers)),
        Toward::LocalAddr | Toward::Director => None,
    }
}

/// The worker owning a client address.
#[inline]
pub fn owner_of_client(addr: Ipv4Addr, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let h = u32::from(addr).wrapping_mul(0x9E37_79B1);
    ((u64::from(h) * workers as u64) >> 32) as usize
}

/// The worker owning an IPv6 client address: [`owner_of_client`] of the address's
/// 32-bit fold (the four words XORed), so that a client's sessions and its persistence
/// template, which pins the address, share a worker.
#[inline]
pub fn owner_of_client6(addr: Ipv6Addr, workers: usize) -> usize {
    let o = addr.octets();
    let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
    owner_of_client(Ipv4Addr::from(w(0) ^ w(4) ^ w(8) ^ w(12)), workers)
}

/// The worker owning a client address of either family.
#[inline]
pub fn owner_of_client_ip(addr: IpAddr, workers: usize) -> usize {
    match addr {
        IpAddr::V4(a) => owner_of_client(a, workers),
        IpAddr::V6(a) => owner_of_client6(a, workers),
    }
}

/// [`owner`] for a packet of either family: the same rules, the client's address of
/// either family hashed by [`owner_of_client_ip`].
#[inline]
pub fn owner_ip(
    to: Toward,
    src: IpAddr,
    dst: IpAddr,
    dport: Option<u16>,
    workers: usize,
) -> Option<usize> {
    if workers <= 1 {
        return Some(0);
    }
    match to {
        Toward::Service => Some(owner_of_client_ip(src, workers)),
        Toward::LocalAddr => dport.map(|p| owner_of_port(p, workers)),
        Toward::Director => None,
        Toward::Client => Some(owner_of_client_ip(dst, workers)),
    }
}

/// [`owner_of_embedded`] for an embedded packet of either family.
#[inline]
pub fn owner_of_embedded_ip(
    to: Toward,
    (isrc, isport, idst): (IpAddr, u16, IpAddr),
    from_lip: bool,
    workers: usize,
) -> Option<usize> {
    match to {
        Toward::Client if from_lip => Some(owner_of_port(isport, workers)),
        Toward::Client => Some(owner_of_client_ip(isrc, workers)),
        Toward::Service => Some(owner_of_client_ip(idst, workers)),
        Toward::LocalAddr | Toward::Director => None,
    }
}

/// The worker that owns local port `port` when `workers` workers slice the port space.
#[inline]
pub fn owner_of_port(port: u16, workers: usize) -> usize {
    if workers <= 1 {
        0
    } else {
        usize::from(port) % workers
    }
}

/// The worker that owns a synced session on this director: the owner of the FULLNAT
/// local port (rvs's option), else the owner of the client address — the functions the
/// data path uses, so the session's packets find it.
pub fn sync_owner(c: &SyncConn, workers: usize) -> usize {
    if let Some((_, lport)) = c.local {
        return owner_of_port(lport, workers);
    }
    owner_of_client_ip(c.caddr.to_ip(), workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_spread_and_agree_with_the_family_blind_rules() {
        let mut seen = [0usize; 4];
        for i in 0..4000u32 {
            let a = Ipv6Addr::from((0x2001_0db8u128 << 96) | u128::from(i * 7919));
            let w = owner_of_client6(a, 4);
            seen[w] += 1;
            assert_eq!(
                owner_ip(Toward::Service, a.into(), a.into(), Some(80), 4),
                Some(w)
            );
            assert_eq!(
                owner_ip(Toward::Client, a.into(), a.into(), Some(80), 4),
                Some(w)
            );
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
        let v4 = Ipv4Addr::new(10, 0, 0, 9);
        assert_eq!(owner_of_client_ip(v4.into(), 4), owner_of_client(v4, 4));
    }

    /// A synced IPv6 session's owner is the worker the data path steers its packets to:
    /// the client's requests and NAT replies by the client's address, FULLNAT replies
    /// (NAT64's IPv4 ones too) by the local port.
    #[test]
    fn a_synced_ipv6_sessions_owner_is_its_packets_owner() {
        use crate::flow::Addr;
        let vip: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let rs6: Ipv6Addr = "2001:db8:2::11".parse().unwrap();
        let lip6: Ipv6Addr = "2001:db8:2::200".parse().unwrap();
        let (rs4, lip4) = (Ipv4Addr::new(10, 20, 0, 11), Ipv4Addr::new(10, 20, 0, 200));
        for i in 0..64u32 {
            let cip = Ipv6Addr::from((0x2001_0db8_0001u128 << 80) | u128::from(i * 7919));
            let lport = 1025 + i as u16;
            let mut c = SyncConn {
                protocol: 6,
                v6: true,
                flags: 0,
                state: 1,
                cport: 40000 + i as u16,
                vport: 80,
                dport: 80,
                fwmark: 0,
                timeout: 900,
                caddr: Addr::from(cip),
                vaddr: Addr::from(vip),
                daddr: Addr::from(rs6),
                local: None,
                in_seq: None,
                out_seq: None,
            };
            // NAT: requests to the VIP, replies to the client.
            let o = sync_owner(&c, W);
            let req = owner_ip(Toward::Service, cip.into(), vip.into(), Some(80), W);
            let rep = owner_ip(Toward::Client, rs6.into(), cip.into(), Some(c.cport), W);
            assert_eq!((Some(o), Some(o)), (req, rep));
            // FULLNAT with an IPv6 LIP, and NAT64 with an IPv4 one: replies to the LIP.
            for (rs, lip) in [
                (IpAddr::V6(rs6), IpAddr::V6(lip6)),
                (rs4.into(), lip4.into()),
            ] {
                c.daddr = Addr::from(rs);
                c.local = Some((Addr::from(lip), lport));
                let rep = owner_ip(Toward::LocalAddr, rs, lip, Some(lport), W);
                assert_eq!(Some(sync_owner(&c, W)), rep);
            }
        }
    }

    const W: usize = 4;

    #[test]
    fn one_worker_owns_everything() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        for to in [
            Toward::Service,
            Toward::LocalAddr,
            Toward::Director,
            Toward::Client,
        ] {
            assert_eq!(owner(to, a, a, Some(80), 1), Some(0));
        }
    }

    #[test]
    fn requests_and_nat_replies_go_to_the_clients_worker() {
        let (cip, vip) = (Ipv4Addr::new(10, 10, 0, 2), Ipv4Addr::new(10, 10, 0, 100));
        let o = owner_of_client(cip, W);
        assert!(o < W);
        assert_eq!(owner(Toward::Service, cip, vip, Some(80), W), Some(o));
        assert_eq!(owner(Toward::Client, vip, cip, Some(40000), W), Some(o));
        assert_eq!(owner(Toward::Director, cip, vip, Some(80), W), None);
    }

    #[test]
    fn fullnat_replies_go_to_the_local_ports_worker() {
        let (rip, lip) = (Ipv4Addr::new(10, 20, 0, 11), Ipv4Addr::new(10, 20, 0, 200));
        for lport in 1025..1100u16 {
            assert_eq!(
                owner(Toward::LocalAddr, rip, lip, Some(lport), W),
                Some(usize::from(lport) % W)
            );
        }
        assert_eq!(owner(Toward::LocalAddr, rip, lip, None, W), None);
    }

    #[test]
    fn an_icmp_error_goes_to_its_sessions_owner() {
        let (cip, vip, lip, rip) = (
            Ipv4Addr::new(10, 10, 0, 2),
            Ipv4Addr::new(10, 10, 0, 100),
            Ipv4Addr::new(10, 20, 0, 200),
            Ipv4Addr::new(10, 20, 0, 11),
        );
        let client = Some(owner_of_client(cip, W));
        // From a real server about a FULLNAT request (LIP:lport -> RIP).
        let e = (lip, 1027, rip);
        assert_eq!(
            owner_of_embedded(Toward::Client, e, true, W),
            Some(1027 % W)
        );
        // From a real server about a NAT request (CIP:cport -> RIP).
        let e = (cip, 40000, rip);
        assert_eq!(owner_of_embedded(Toward::Client, e, false, W), client);
        // From the client's side (a router on the way) about a reply (VIP -> CIP).
        let e = (vip, 80, cip);
        assert_eq!(owner_of_embedded(Toward::Service, e, false, W), client);
        assert_eq!(owner_of_embedded(Toward::Director, e, false, W), None);
        assert_eq!(owner_of_embedded(Toward::Client, e, false, 1), Some(0));
    }
}
