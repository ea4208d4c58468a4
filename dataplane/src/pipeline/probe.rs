//! Health checks of a TUN real server through the VIP. The host's kernel sends the probe
//! (destination the VIP) on a port's exception tap to a *probe MAC*,
//! `02:72:a:b:c:d` for real server `a.b.c.d` ([`probe_mac`]); the dataplane takes it
//! there instead of sending it out unchanged, and encapsulates it to that real server
//! exactly as TUN forwarding does ([`crate::forward::tun`]: the server's tunnel type and
//! parameters as its service has them; outer source the egress port's own address, outer
//! destination the real server; the next hop's MAC as forwarding resolves it). The server
//! decapsulates and answers the host from the VIP directly, an answer the general path
//! passes to the kernel (see `probe_reply` in `general.rs`).
//!
//! Which servers are checked so, and their tunnels, the control plane publishes with the
//! configuration ([`super::NetConfig::probe_tunnels`], [`probe_tunnels`]): a server stays
//! there while its check keeps it out of the service, so that the check can see it come
//! back. A frame to a probe MAC whose packet is not IPv4 to a VIP through which that
//! real server is checked is dropped as [`DropReason::ProbeUnknown`]. Per probe there is
//! one hash lookup, no allocation.

use std::net::{IpAddr, Ipv4Addr};

use hashbrown::HashMap;

use crate::buf::PacketBuf;
use crate::flow::{FwdMethod, TunKind, Tunnel};
use crate::forward::tun::{self, Encap, Inner, TunParams};
use crate::forward::MacRewrite;
use crate::service::ServiceSet;
use crate::wire::{classify, ChecksumMode, Classified, EthernetAddress};

use super::general::{egress, retag_for};
use super::{Core, DropReason, Out};

/// The first two bytes of a probe MAC (locally administered, unicast; "r").
pub const PROBE_MAC_PREFIX: [u8; 2] = [0x02, 0x72];

/// The probe MAC of real server `rip`: `02:72` and the server's four address bytes.
pub fn probe_mac(rip: Ipv4Addr) -> [u8; 6] {
    let o = rip.octets();
    [
        PROBE_MAC_PREFIX[0],
        PROBE_MAC_PREFIX[1],
        o[0],
        o[1],
        o[2],
        o[3],
    ]
}

/// The real server a frame from the kernel is a probe for: `Some` when its destination
/// MAC is a probe MAC.
#[inline]
pub fn probe_target(frame: &[u8]) -> Option<Ipv4Addr> {
    match frame.get(..6) {
        Some([p0, p1, a, b, c, d]) if [*p0, *p1] == PROBE_MAC_PREFIX => {
            Some(Ipv4Addr::new(*a, *b, *c, *d))
        }
        _ => None,
    }
}

/// The table of [`super::NetConfig::probe_tunnels`]: each (VIP, RIP) of `checked` (the
/// TUN servers checked through a VIP) with the tunnel the server has in a service of that
/// VIP in `services`, else (a server out of the table) IPIP, the tunnel of configured
/// servers.
pub fn probe_tunnels(
    services: &ServiceSet,
    checked: &[(Ipv4Addr, Ipv4Addr)],
) -> HashMap<(Ipv4Addr, Ipv4Addr), Tunnel> {
    let mut m = HashMap::with_capacity(checked.len());
    if checked.is_empty() {
        return m;
    }
    let live = tun_servers(services);
    for k in checked {
        m.insert(*k, live.get(k).copied().unwrap_or(Tunnel::IPIP));
    }
    m
}

/// The tunnel of every TUN real server of an IPv4 address service, by (VIP, RIP).
fn tun_servers(services: &ServiceSet) -> HashMap<(Ipv4Addr, Ipv4Addr), Tunnel> {
    let mut m = HashMap::new();
    for s in services.services() {
        let crate::service::ServiceKey::Addr { addr, .. } = s.key else {
            continue;
        };
        let IpAddr::V4(vip) = addr.to_ip() else {
            continue;
        };
        for d in s.dests.iter().filter(|d| d.fwd == FwdMethod::Tunnel) {
            if let IpAddr::V4(rip) = d.addr.to_ip() {
                m.entry((vip, rip)).or_insert(d.tunnel);
            }
        }
    }
    m
}

impl<P: PacketBuf> Core<P> {
    /// A frame the kernel sent on an exception tap to the probe MAC of real server `rip`
    /// ([`probe_target`]): encapsulated toward it and routed (see the module docs).
    pub fn probe_from_kernel(&mut self, pkt: P, rip: Ipv4Addr, now_ms: u64) -> Out<P> {
        let meta = match classify(pkt.data(), ChecksumMode::Software) {
            Ok(Classified::Ip(m)) => m,
            Ok(_) => return self.drop(pkt, DropReason::ProbeUnknown),
            Err(e) => return self.drop(pkt, DropReason::Malformed(e)),
        };
        let t = meta.tuple;
        let IpAddr::V4(vip) = t.dst.addr else {
            return self.drop(pkt, DropReason::ProbeUnknown);
        };
        let Some(snap) = self.snap.take() else {
            return self.drop(pkt, DropReason::ProbeUnknown);
        };
        let Some(&tunnel) = snap.net.probe_tunnels.get(&(vip, rip)) else {
            self.snap = Some(snap);
            return self.drop(pkt, DropReason::ProbeUnknown);
        };
        let out = self.probe_with(&snap, pkt, &meta, rip, tunnel, now_ms);
        self.snap = Some(snap);
        out
    }

    /// [`Core::probe_from_kernel`] under snapshot `snap`.
    fn probe_with(
        &mut self,
        snap: &super::Snapshot,
        mut pkt: P,
        meta: &crate::wire::IpMeta,
        rip: Ipv4Addr,
        tunnel: Tunnel,
        now_ms: u64,
    ) -> Out<P> {
        let Some((nh, port)) = egress(snap, rip, FwdMethod::Tunnel) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let (port_mac, mtu) = (port.mac, port.mtu);
        let mac = self.neigh_mac(nh.addr, nh.port, now_ms);
        let t = meta.tuple;
        let sport = match (tunnel.kind, t.src.addr, t.dst.addr) {
            (TunKind::Gue, IpAddr::V4(s), IpAddr::V4(d)) => {
                tun::flow_src_port(s.octets(), t.src.port, d.octets(), t.dst.port)
            }
            _ => 0,
        };
        let params = TunParams {
            local: self
                .tun_src
                .get(usize::from(nh.port))
                .copied()
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
            real: rip,
            mtu,
            macs: MacRewrite {
                src: EthernetAddress(port_mac),
                dst: EthernetAddress(mac.unwrap_or([0; 6])),
            },
            encap: Encap::of(tunnel, sport),
        };
        let res = match tun::encapsulate(&mut pkt, &Inner::of(meta), &params) {
            Ok(()) if self.vlans => retag_for(&mut pkt, snap, nh.port),
            r => r,
        };
        match res {
            Ok(()) => self.emit(pkt, nh.port, nh.addr, mac),
            Err(e) => self.drop(pkt, DropReason::Rewrite(e)),
        }
    }
}
