//! IPv6 through the general path: neighbour discovery for the director's addresses
//! (RFC 4861), ICMPv6 echo and errors, and the packets of services with IPv6 ends in
//! every mode (NAT64 included), with the same decisions as IPv4's: ownership from
//! [`steer`], the session from [`crate::conn`], the rewrite from [`Plan6`].
//!
//! What the director does with an IPv6 packet, in order:
//! 1. Neighbour discovery, on the worker that received it: a solicitation for one of
//!    its addresses is answered (solicited, override; not on a standby for addresses
//!    that move with the active role) and its sender learned; an advertisement sent to
//!    us, or one to all nodes about a neighbour the cache tracks, is learned and shared
//!    with the other workers (an unsolicited one about any other address is not). Router
//!    solicitations and advertisements, redirects, and ND messages failing RFC 4861's
//!    checks (hop limit 255, code 0) are dropped as `nd-ignored`.
//! 2. Martian sources (unspecified, loopback, multicast, the director's own) are
//!    dropped; other multicast destinations are not for the director.
//! 3. The owning worker takes it ([`steer::owner_ip`]).
//! 4. Echo requests to its addresses are answered; ICMPv6 errors about sessions are
//!    translated (NAT, FULLNAT) or relayed (DR, TUN); TCP and UDP find or open their
//!    session through [`Core::client_packet`] and leave through [`Core::forward_ip`].

use std::net::{IpAddr, Ipv6Addr};

use crate::buf::PacketBuf;
use crate::conn::{ConnId, Direction, PacketMeta};
use crate::flow::{Addr, FlowKey, FwdMethod, Proto, TcpFlags};
use crate::forward::{icmp6, At6, Egress6, MacRewrite, Plan6};
use crate::steer::{self, Toward};
use crate::wire::icmpv6::{self, Message};
use crate::wire::{self, EthernetAddress, IpMeta, IpProtocol, IpVersion};

use super::general::retag_for;
use super::{Core, DropReason, LocalKind, NeighUpdate, NetConfig, Out, Snapshot, SIDE_CAP};

/// What an IPv6 destination is for ownership (as [`super::general::steer_toward`]).
pub(super) fn steer_toward6(
    net: &NetConfig,
    dst: Ipv6Addr,
    local: Option<(LocalKind, u16)>,
) -> Toward {
    match local {
        Some((LocalKind::Vip, _)) => Toward::Service,
        Some((LocalKind::Lip, _)) => Toward::LocalAddr,
        Some((LocalKind::Dip, _)) => Toward::Director,
        None if net.former_vips6.contains(&dst) => Toward::Service,
        None => Toward::Client,
    }
}

/// A source Linux drops as martian: unspecified, loopback, multicast, or one of the
/// director's own addresses.
pub(super) fn martian_source6(src: Ipv6Addr, net: &NetConfig) -> bool {
    src.is_unspecified() || src.is_loopback() || src.is_multicast() || net.local6.contains_key(&src)
}

/// A routed packet's way out: next hop (either family), port, MACs and MTU, and the
/// next hop's MAC when it is known.
pub(super) struct RoutedIp {
    pub nh: IpAddr,
    pub port: u16,
    pub eg: Egress6,
    pub mac: Option<[u8; 6]>,
}

impl<P: PacketBuf> Core<P> {
    /// An IPv6 packet (classified as `meta`) under snapshot `snap` (see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn process_v6(
        &mut self,
        snap: &Snapshot,
        pkt: P,
        cls: &wire::Result<wire::Classified>,
        meta: &IpMeta,
        in_port: u16,
        now_ms: u64,
        check_owner: bool,
    ) -> Out<P> {
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (meta.tuple.src.addr, meta.tuple.dst.addr) else {
            return self.drop(pkt, DropReason::Unsupported);
        };
        let net = &snap.net;
        if meta.tuple.protocol == IpProtocol::ICMPV6 {
            if let Some(i) = meta.icmp {
                match Message(i.msg_type) {
                    Message::NEIGHBOR_SOLICIT => {
                        return self.nd_solicit(pkt, meta, in_port, snap, now_ms)
                    }
                    Message::NEIGHBOR_ADVERT => {
                        return self.nd_advert(pkt, meta, snap, now_ms);
                    }
                    Message::ROUTER_SOLICIT | Message::ROUTER_ADVERT | Message::REDIRECT => {
                        return self.drop(pkt, DropReason::NdIgnored);
                    }
                    _ => {}
                }
            }
        }
        if martian_source6(src, net) {
            return self.drop(pkt, DropReason::Martian);
        }
        if dst.is_multicast() {
            // MLD, multicast listeners: nothing the director serves.
            return self.drop(pkt, DropReason::NotForUs);
        }
        let local = net.local6.get(&dst).copied();
        if meta.frag.is_some() && !self.frag_deciding {
            return self.fragment(snap, pkt, cls, meta, local, in_port, now_ms, check_owner);
        }
        let to = steer_toward6(net, dst, local);
        if check_owner && net.workers > 1 {
            let owner = self.owner6(snap, meta, to);
            if owner != self.id {
                self.counters.handoff_out += 1;
                return Out::Handoff(pkt, owner as u32);
            }
        }
        let proto = match meta.tuple.protocol {
            IpProtocol::TCP => Proto::Tcp,
            IpProtocol::UDP => Proto::Udp,
            IpProtocol::ICMPV6 => return self.icmp6(pkt, meta, local, in_port, snap, now_ms),
            _ => return self.drop(pkt, DropReason::NotForUs),
        };
        let pm = PacketMeta {
            flow: FlowKey {
                proto,
                saddr: Addr::from(IpAddr::V6(src)),
                daddr: Addr::from(IpAddr::V6(dst)),
                sport: meta.tuple.src.port,
                dport: meta.tuple.dst.port,
            },
            fwmark: 0,
            tcp_flags: TcpFlags(meta.tcp_flags.0 as u8),
        };
        let hash = self.conns.flow_hash(&pm.flow);
        if matches!(to, Toward::LocalAddr | Toward::Client) {
            if let Some(id) = self.conns.lookup_out_hashed(hash, &pm.flow) {
                let (dir, flags) = (Direction::Output, pm.tcp_flags);
                return self.forward(pkt, meta, id, dir, flags, in_port, snap, now_ms);
            }
        }
        match to {
            Toward::Service | Toward::Client => {
                self.client_packet(pkt, meta, &pm, hash, in_port, snap, now_ms)
            }
            Toward::LocalAddr | Toward::Director => self.drop(pkt, DropReason::NotForUs),
        }
    }

    /// The worker owning an IPv6 packet whose destination is `to`: [`steer::owner_ip`],
    /// and for an ICMPv6 error the owner of the session it embeds.
    pub(super) fn owner6(&self, snap: &Snapshot, meta: &IpMeta, to: Toward) -> usize {
        let workers = snap.net.workers;
        let t = &meta.tuple;
        if let Some(i) = meta.icmp.and_then(|i| i.inner) {
            let it = i.tuple;
            let from_lip = match it.src.addr {
                IpAddr::V6(a) => matches!(snap.net.local6.get(&a), Some((LocalKind::Lip, _))),
                IpAddr::V4(a) => matches!(snap.net.local.get(&a), Some((LocalKind::Lip, _))),
            };
            let embedded = (it.src.addr, it.src.port, it.dst.addr);
            if let Some(o) = steer::owner_of_embedded_ip(to, embedded, from_lip, workers) {
                return o;
            }
        }
        let dport = t.protocol.has_ports().then_some(t.dst.port);
        steer::owner_ip(to, t.src.addr, t.dst.addr, dport, workers).unwrap_or(self.id)
    }

    /// ICMPv6 that is not neighbour discovery: echo to our addresses answered, errors
    /// about sessions translated or relayed, the rest not for us.
    fn icmp6(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        local: Option<(LocalKind, u16)>,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let Some(i) = meta.icmp else {
            return self.drop(pkt, DropReason::NotForUs);
        };
        if i.msg_type == Message::ECHO_REQUEST.0 && local.is_some() {
            return match icmp6::echo_reply(&mut pkt, meta) {
                Ok(()) => {
                    self.counters.echo_replies += 1;
                    Out::Tx(pkt, in_port)
                }
                Err(e) => self.drop(pkt, DropReason::Malformed(e)),
            };
        }
        if i.inner.is_none() {
            return self.drop(pkt, DropReason::NotForUs);
        }
        if i.msg_type == Message::PKT_TOO_BIG.0 {
            // An MTU under IPv6's minimum is never believed (RFC 8201).
            let mtu = pkt
                .data()
                .get(meta.l4_offset + 4..meta.l4_offset + 8)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            if mtu < icmpv6::MIN_MTU {
                return self.drop(pkt, DropReason::Malformed(wire::Error::BadIcmp));
            }
        }
        let Some((id, reply)) = self.session_of_error(meta) else {
            return self.drop(pkt, DropReason::NotForUs);
        };
        self.icmp_error_ip(pkt, meta, id, reply, snap, now_ms)
    }

    /// An ICMP or ICMPv6 error about session `id` (found from the packet it quotes;
    /// `reply`: it travels as the session's replies do) with an IPv6 end: translated
    /// within its family (NAT, FULLNAT), across families (NAT64), or relayed as a packet
    /// of the session (DR, TUN).
    pub(super) fn icmp_error_ip(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        id: ConnId,
        reply: bool,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let Some(plan) = self.conns.get(id).and_then(|s| Plan6::of(s, reply)) else {
            return self.drop(pkt, DropReason::NotForUs);
        };
        let Some(r) = self.route_ip(plan.toward, plan.fwd, snap, now_ms) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let res = match plan.fwd {
            FwdMethod::Masq | FwdMethod::FullNat if plan.translates(meta.version) => {
                plan.translate_error(&mut pkt, meta.version, &r.eg)
            }
            FwdMethod::Masq | FwdMethod::FullNat if meta.version == IpVersion::V4 => {
                Err(wire::Error::AddressFamily)
            }
            FwdMethod::Masq | FwdMethod::FullNat => {
                icmp6::translate(&mut pkt, meta, &plan, &r.eg.macs)
            }
            _ => plan.apply(&mut pkt, &At6::of(meta), &r.eg),
        };
        let res = match res {
            Ok(()) if self.vlans || meta.l2.vlan_tci.is_some() => retag_for(&mut pkt, snap, r.port),
            other => other,
        };
        match res {
            Ok(()) => {
                self.counters.icmp_translated += 1;
                self.emit_ip(pkt, r.port, r.nh, r.mac)
            }
            Err(e) => self.drop(pkt, DropReason::Rewrite(e)),
        }
    }

    /// The session an ICMP(v6) error is about and whether it travels as a reply: the
    /// embedded packet's tuple reversed is the session's server-side tuple or its
    /// client-side one (as [`Core::icmp_error`] finds IPv4's).
    pub(super) fn session_of_error(&self, meta: &IpMeta) -> Option<(ConnId, bool)> {
        let t = meta.icmp?.inner?.tuple;
        let proto = match t.protocol {
            IpProtocol::TCP => Proto::Tcp,
            IpProtocol::UDP => Proto::Udp,
            _ => return None,
        };
        let reversed = FlowKey {
            proto,
            saddr: Addr::from(t.dst.addr),
            daddr: Addr::from(t.src.addr),
            sport: t.dst.port,
            dport: t.src.port,
        };
        match self.conns.lookup_out(&reversed) {
            Some(id) => Some((id, true)),
            None => self.conns.lookup_in(&reversed).map(|id| (id, false)),
        }
    }

    /// A packet of a session with an IPv6 end (or an IPv6 packet of any session): the
    /// steps of [`Core::forward`] with [`Plan6`]: hop limit, state, sync, route, rewrite
    /// (NAT64 changes the family), send. A TUN packet too big for the tunnel is answered
    /// with Packet Too Big (IPv6) or fragmentation-needed (IPv4 with DF).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_ip(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        id: ConnId,
        dir: Direction,
        flags: TcpFlags,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let reply = dir == Direction::Output;
        let Some(plan) = self.conns.get(id).and_then(|s| Plan6::of(s, reply)) else {
            let r = if reply {
                DropReason::NotForUs
            } else {
                DropReason::Unsupported
            };
            return self.drop(pkt, r);
        };
        if plan.routes() && meta.ttl <= 1 {
            return self.time_exceeded_ip(pkt, meta, in_port, now_ms);
        }
        self.conns.state_transition(id, dir, flags, now_ms);
        if !reply {
            self.sync_after_input(id, now_ms);
        }
        let Some(r) = self.route_ip(plan.toward, plan.fwd, snap, now_ms) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let len = pkt.len() as u64;
        let res = match plan.apply(&mut pkt, &At6::of(meta), &r.eg) {
            Ok(()) if self.vlans || meta.l2.vlan_tci.is_some() => retag_for(&mut pkt, snap, r.port),
            other => other,
        };
        match res {
            Ok(()) => {
                self.count_forwarded(id, dir, len);
                self.emit_ip(pkt, r.port, r.nh, r.mac)
            }
            Err(wire::Error::Oversize) if plan.fwd == FwdMethod::Tunnel && meta.frag.is_some() => {
                // A fragment (the first of its datagram) is never answered with Packet
                // Too Big: the tunnel entry point fragments its own packet.
                let hop = (r.port, r.nh, r.mac);
                self.tun_split6(pkt, id, dir, &plan, &At6::of(meta), &r.eg, hop, snap, meta)
            }
            Err(wire::Error::Oversize)
                if plan.fwd == FwdMethod::Tunnel || plan.translates(meta.version) =>
            {
                let mtu = usize::from(r.eg.mtu).saturating_sub(plan.overhead(meta.version));
                self.too_big(pkt, meta, mtu as u32, in_port, now_ms)
            }
            Err(e) => self.drop(pkt, DropReason::Rewrite(e)),
        }
    }

    /// The route toward `toward` (either family) for mode `fwd` (DR: the server itself
    /// is the next hop), its egress and the next hop's MAC (on a miss an ARP request or
    /// a neighbour solicitation is queued). `None`: no route.
    pub(super) fn route_ip(
        &mut self,
        toward: IpAddr,
        fwd: FwdMethod,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Option<RoutedIp> {
        let (nh, port) = match toward {
            IpAddr::V4(a) => {
                let nh = snap.net.routes.lookup(a)?;
                let addr = if fwd == FwdMethod::Route { a } else { nh.addr };
                (IpAddr::V4(addr), nh.port)
            }
            IpAddr::V6(a) => {
                let nh = snap.net.routes.lookup6(a)?;
                let addr = if fwd == FwdMethod::Route { a } else { nh.addr };
                (IpAddr::V6(addr), nh.port)
            }
        };
        let pn = snap.net.ports.get(usize::from(port))?;
        let (pmac, mtu) = (pn.mac, pn.mtu);
        let mac = match nh {
            IpAddr::V4(a) => self.neigh_mac(a, port, now_ms),
            IpAddr::V6(a) => self.neigh6_mac(a, port, now_ms),
        };
        let tunnel_src = match toward {
            IpAddr::V4(_) => IpAddr::V4(self.tun_src.get(usize::from(port)).copied()?),
            IpAddr::V6(_) => IpAddr::V6(self.tun_src6.get(usize::from(port)).copied()?),
        };
        let eg = Egress6 {
            macs: MacRewrite {
                src: EthernetAddress(pmac),
                dst: EthernetAddress(mac.unwrap_or([0; 6])),
            },
            tunnel_src,
            mtu,
        };
        Some(RoutedIp { nh, port, eg, mac })
    }

    /// Resolves an IPv6 next hop's MAC; on a miss queues a neighbour solicitation when
    /// one is due.
    pub(super) fn neigh6_mac(&mut self, nh: Ipv6Addr, port: u16, now_ms: u64) -> Option<[u8; 6]> {
        match self.neigh6.lookup(nh, now_ms) {
            crate::neigh::Lookup::Hit(mac) => Some(mac),
            crate::neigh::Lookup::Miss { send_request } => {
                if send_request && self.ns_requests.len() < SIDE_CAP {
                    self.ns_requests.push((port, nh));
                }
                None
            }
            crate::neigh::Lookup::Full => None,
        }
    }

    /// Sends a rewritten packet, or holds it until its next hop (either family)
    /// resolves.
    pub(super) fn emit_ip(
        &mut self,
        pkt: P,
        port: u16,
        nh: IpAddr,
        mac: Option<[u8; 6]>,
    ) -> Out<P> {
        match nh {
            IpAddr::V4(a) => self.emit(pkt, port, a, mac),
            IpAddr::V6(_) if mac.is_some() => Out::Tx(pkt, port),
            IpAddr::V6(a) => match self.neigh6.hold(a, (pkt, port)) {
                Ok(()) => Out::Held,
                Err((pkt, _)) => self.drop(pkt, DropReason::Unresolved),
            },
        }
    }

    /// A routed packet whose hop limit (TTL) runs out here: time exceeded back to its
    /// sender (ICMPv6 for IPv6, ICMP for IPv4), within the ICMP budget.
    pub(super) fn time_exceeded_ip(
        &mut self,
        pkt: P,
        meta: &IpMeta,
        in_port: u16,
        now_ms: u64,
    ) -> Out<P> {
        if meta.version == IpVersion::V4 {
            return self.time_exceeded(pkt, meta, in_port, now_ms);
        }
        let msg = (Message::TIME_EXCEEDED, 0, 0);
        if self.originate6(&pkt, meta, msg, in_port, now_ms) {
            self.counters.time_exceeded_sent += 1;
        }
        self.drop(pkt, DropReason::Rewrite(wire::Error::TtlExpired))
    }

    /// A packet too big for the tunnel toward its server: Packet Too Big (IPv6) or
    /// fragmentation-needed (IPv4 with DF) back to the client advertising `mtu`; the
    /// packet is dropped.
    fn too_big(&mut self, pkt: P, meta: &IpMeta, mtu: u32, in_port: u16, now_ms: u64) -> Out<P> {
        match meta.version {
            IpVersion::V6 => {
                let msg = (Message::PKT_TOO_BIG, 0, mtu.max(icmpv6::MIN_MTU));
                if self.originate6(&pkt, meta, msg, in_port, now_ms) {
                    self.counters.frag_needed_sent += 1;
                }
            }
            IpVersion::V4 if meta.dont_frag => {
                let src = self.tun_src.get(usize::from(in_port)).copied();
                let src = src
                    .filter(|a| !a.is_unspecified())
                    .or(match meta.tuple.dst.addr {
                        IpAddr::V4(a) => Some(a),
                        IpAddr::V6(_) => None,
                    });
                if let Some(src) = src {
                    if self.icmp_budget.take(now_ms) {
                        let m = crate::wire::icmpv4::Message::DST_UNREACHABLE;
                        let code = crate::wire::icmpv4::dst_unreachable::FRAG_NEEDED;
                        let msg = (m, code, mtu.min(u32::from(u16::MAX)) as u16);
                        let scratch = &mut self.scratch;
                        if let Ok(len) =
                            crate::forward::icmp::originate(pkt.data(), meta, src, msg, scratch)
                        {
                            self.counters.frag_needed_sent += 1;
                            self.originated(in_port, len);
                        }
                    } else {
                        self.counters.icmp_rate_limited += 1;
                    }
                }
            }
            IpVersion::V4 => {}
        }
        self.drop(pkt, DropReason::Rewrite(wire::Error::Oversize))
    }

    /// Writes an ICMPv6 error `msg` about `pkt` into the scratch buffer and queues it
    /// back out of `in_port`, from the port's address (else the packet's destination),
    /// within the worker's ICMP budget. Whether it was queued.
    fn originate6(
        &mut self,
        pkt: &P,
        meta: &IpMeta,
        msg: (Message, u8, u32),
        in_port: u16,
        now_ms: u64,
    ) -> bool {
        let src = self.tun_src6.get(usize::from(in_port)).copied();
        let src = src
            .filter(|a| !a.is_unspecified())
            .or(match meta.tuple.dst.addr {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(_) => None,
            });
        let Some(src) = src else {
            return false;
        };
        if !self.icmp_budget.take(now_ms) {
            self.counters.icmp_rate_limited += 1;
            return false;
        }
        match icmp6::originate(pkt.data(), meta, src, msg, &mut self.scratch) {
            Ok(len) => {
                self.originated(in_port, len);
                true
            }
            Err(_) => false,
        }
    }

    /// The checks RFC 4861 §7.1 asks of a neighbour-discovery message: hop limit 255,
    /// code 0, a right checksum, room for the target. The message's bytes on success.
    fn nd_valid<'a>(pkt: &'a P, meta: &IpMeta) -> Result<&'a [u8], DropReason> {
        let msg = pkt
            .data()
            .get(meta.l4_offset..meta.ip_end)
            .ok_or(DropReason::Malformed(wire::Error::Truncated))?;
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (meta.tuple.src.addr, meta.tuple.dst.addr) else {
            return Err(DropReason::Unsupported);
        };
        if meta.ttl != icmpv6::ND_HOP_LIMIT || msg.len() < icmpv6::NS_NA_LEN || msg[1] != 0 {
            return Err(DropReason::NdIgnored);
        }
        let p = icmpv6::Packet::new_checked(msg).map_err(DropReason::Malformed)?;
        if !p.verify_checksum(&src, &dst) {
            return Err(DropReason::Malformed(wire::Error::BadChecksum));
        }
        Ok(msg)
    }

    /// Learns `ip` at `mac` (releasing what waited for it) and shares it.
    fn learn6(&mut self, ip: Ipv6Addr, mac: [u8; 6], now_ms: u64) {
        let released = &mut self.released;
        self.neigh6.learn(ip, mac, now_ms, |(mut p, port), mac| {
            super::host::set_dst_mac(&mut p, mac);
            released.push((p, port));
        });
        if self.learned.len() < SIDE_CAP {
            self.learned.push(NeighUpdate { ip: ip.into(), mac });
        }
    }

    /// A neighbour solicitation: for one of our addresses (on the port it lives on, or
    /// any port with a single port), answered with an advertisement written into the
    /// scratch buffer; its sender learned from its source link-layer address option.
    fn nd_solicit(
        &mut self,
        pkt: P,
        meta: &IpMeta,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let msg = match Self::nd_valid(&pkt, meta) {
            Ok(m) => m,
            Err(r) => return self.drop(pkt, r),
        };
        let p = icmpv6::Packet::new_unchecked(msg);
        let Some(target) = p.target_addr().filter(|t| !t.is_multicast()) else {
            return self.drop(pkt, DropReason::NdIgnored);
        };
        let sender_mac =
            match icmpv6::link_layer_option(p.nd_options(), icmpv6::nd_option::SOURCE_LL_ADDR) {
                Ok(m) => m,
                Err(e) => return self.drop(pkt, DropReason::Malformed(e)),
            };
        let IpAddr::V6(src) = meta.tuple.src.addr else {
            return self.drop(pkt, DropReason::Unsupported);
        };
        let net = &snap.net;
        let ours = net.local6.get(&target).copied();
        if let Some(mac) = sender_mac {
            let known = self.neigh6.contains(src);
            if !src.is_unspecified() && !net.local6.contains_key(&src) && (ours.is_some() || known)
            {
                self.learn6(src, mac, now_ms);
            }
        }
        let silent = |kind: LocalKind| {
            net.passive && (kind != LocalKind::Dip || net.floating6.contains(&target))
        };
        let Some((kind, port)) = ours else {
            return Out::Consumed(pkt);
        };
        if silent(kind) || !(port == in_port || net.ports.len() == 1) {
            return Out::Consumed(pkt);
        }
        let Some(pn) = net.ports.get(usize::from(in_port)) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let l3 = meta.l3_offset();
        let frame = pkt.data();
        let Some(l2) = frame.get(..l3) else {
            return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
        };
        let out = &mut self.scratch;
        out[..l3].copy_from_slice(l2);
        out[..6].copy_from_slice(&frame[6..12]);
        out[6..12].copy_from_slice(&pn.mac);
        match icmpv6::emit_neighbor_advert(&mut out[l3..], &src, &target, pn.mac) {
            Ok(n) => {
                if src.is_unspecified() {
                    out[..6].copy_from_slice(&icmpv6::multicast_mac(&icmpv6::ALL_NODES));
                }
                self.counters.arp_replies += 1;
                self.originated(in_port, l3 + n);
                Out::Consumed(pkt)
            }
            Err(e) => self.drop(pkt, DropReason::Rewrite(e)),
        }
    }

    /// A neighbour advertisement: its target learned at its target link-layer address
    /// (else the frame's source) when it is sent to one of our addresses (the answer to
    /// a solicitation of any worker) or the cache has an entry for the target (an
    /// unsolicited one), and the target is not one of ours.
    fn nd_advert(&mut self, pkt: P, meta: &IpMeta, snap: &Snapshot, now_ms: u64) -> Out<P> {
        let msg = match Self::nd_valid(&pkt, meta) {
            Ok(m) => m,
            Err(r) => return self.drop(pkt, r),
        };
        let p = icmpv6::Packet::new_unchecked(msg);
        let Some(target) = p
            .target_addr()
            .filter(|t| !t.is_multicast() && !t.is_unspecified())
        else {
            return self.drop(pkt, DropReason::NdIgnored);
        };
        let mac = match icmpv6::link_layer_option(p.nd_options(), icmpv6::nd_option::TARGET_LL_ADDR)
        {
            Ok(m) => m.unwrap_or(meta.l2.src_mac.0),
            Err(e) => return self.drop(pkt, DropReason::Malformed(e)),
        };
        if snap.net.local6.contains_key(&target) {
            // Another host answering for one of our addresses (or our own frame seen
            // again): never learned.
            let own = snap.net.ports.iter().any(|p| p.mac == mac);
            return match own || snap.net.passive {
                true => Out::Consumed(pkt),
                false => self.drop(pkt, DropReason::ArpConflict),
            };
        }
        // An advertisement sent to us (the answer to a solicitation: another worker may
        // have sent it, so this one may not track the target) is learned and shared, as
        // an ARP reply to us is; one to all nodes (unsolicited) updates an entry the
        // cache has. An unsolicited advertisement of any other address is not learned,
        // so that a flood of forged ones cannot fill the cache.
        let to_us = match meta.tuple.dst.addr {
            IpAddr::V6(d) => {
                !d.is_multicast() && (snap.net.local6.contains_key(&d) || d.is_unicast_link_local())
            }
            IpAddr::V4(_) => false,
        };
        if to_us || self.neigh6.contains(target) {
            self.learn6(target, mac, now_ms);
        }
        Out::Consumed(pkt)
    }
}
