//! IP fragments to and from services, forwarded without reassembly in every mode.
//!
//! A fragment leaves the general path's [`Core::process_with`] for [`Core::fragment`]
//! (the fast path never sees one: `classify_v4_flow` refuses fragments). The worker's
//! [`FragTable`] keys each datagram by (source, destination, protocol, identification):
//!
//! - the first fragment (the L4 header, the ports) decides. If another worker owns its
//!   flow ([`crate::steer`], from its ports), the verdict here is "that worker" and the
//!   first fragment is handed over; else it takes the general path as a whole packet
//!   would (session found or scheduled, rewritten, the L4 checksum updated
//!   incrementally: it covers the whole datagram), and the verdict is its session and
//!   direction, or the reason it was dropped;
//! - later fragments take the verdict: handed over to the owner, forwarded with the
//!   session's plan (NAT and FULLNAT: addresses and TTL, [`rewrite_v4_fragment`]; DR:
//!   MACs; TUN: encapsulated whole), or dropped for the same reason as the first;
//! - fragments that come before the first are held, and on the first's verdict go out in
//!   the order they came ([`Core::take_frag_out`]: handed over behind the first, or
//!   sent). The owner's table is keyed alike, so it learns the verdict from the first
//!   fragment and applies it to the rest.
//!
//! A TUN packet too big for the tunnel without DF (every fragment: fragments never have
//! DF) is sent as two outer fragments, as the kernel sends an IPVS tunnel packet; the
//! real server reassembles the outer packet before decapsulating it.

use crate::buf::PacketBuf;
use crate::conn::{ConnId, Direction};
use crate::flow::{Addr, FlowKey, FwdMethod, Proto};
use crate::forward::frag::{
    rewrite_v4_fragment, rewrite_v6_fragment, split_outer_v4, split_outer_v6,
};
use crate::forward::{At6, Egress, Egress6, Layout, Plan, Plan6};
use crate::frag::{self as table, Admit, FragDrop, FragKey, FragTable, HELD_PER_DATAGRAM};
use crate::wire::{self, classify, ChecksumMode, Classified, IpMeta, IpProtocol, IpVersion};
use core::net::IpAddr;

use super::general::{egress, retag_for};
use super::{Core, DropReason, LocalKind, Out, Snapshot, SIDE_CAP};

/// What a datagram's first fragment decided, for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded here: the session and whether it is the reply direction.
    Here(ConnId, bool),
    /// Owned by another worker: handed over.
    There(u32),
    /// Dropped, for this reason.
    Refused(DropReason),
}

/// A worker's fragment table.
pub type Frags<P> = FragTable<P, Verdict>;

fn frag_reason(r: FragDrop) -> DropReason {
    match r {
        FragDrop::TableFull => DropReason::FragTableFull,
        FragDrop::Overlap => DropReason::FragOverlap,
        FragDrop::Duplicate => DropReason::FragDuplicate,
        FragDrop::Tiny => DropReason::FragTiny,
    }
}

impl<P: PacketBuf> Core<P> {
    /// An IPv4 fragment (`meta.frag` is set) from `process_with`, after the VLAN and
    /// martian checks: admitted to the fragment table, then decided (a first fragment),
    /// forwarded, handed over, held or dropped.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    pub(super) fn fragment(
        &mut self,
        snap: &Snapshot,
        pkt: P,
        cls: &wire::Result<Classified>,
        meta: &IpMeta,
        local: Option<(LocalKind, u16)>,
        in_port: u16,
        now_ms: u64,
        check_owner: bool,
    ) -> Out<P> {
        let Some(f) = meta.frag else {
            return self.drop(pkt, DropReason::Malformed(wire::Error::Fragment));
        };
        let proto = meta.tuple.protocol;
        if !matches!(proto, IpProtocol::TCP | IpProtocol::UDP) {
            return self.drop(pkt, DropReason::NotForUs);
        }
        let l4 = pkt.data().get(meta.l4_offset..meta.ip_end).unwrap_or(&[]);
        let len = l4.len() as u16;
        if (f.is_first() && table::tiny_first(proto.0, l4)) || table::tiny_offset(proto.0, f.offset)
        {
            return self.drop(pkt, DropReason::FragTiny);
        }
        let key = FragKey {
            src: meta.tuple.src.addr,
            dst: meta.tuple.dst.addr,
            proto: proto.0,
            ident: f.ident,
        };
        let overlap = &mut self.counters.drops[DropReason::FragOverlap.index()];
        let admitted = self
            .frags
            .admit(key, f.offset, len, f.more, pkt, now_ms, |_| *overlap += 1);
        match admitted {
            Admit::Drop(p, r) => self.drop(p, frag_reason(r)),
            Admit::Held => {
                self.counters.frags_held += 1;
                Out::Held
            }
            Admit::Known(p, v) => self.frag_verdict(p, meta, v, snap, now_ms),
            Admit::First(p) => {
                let owner = match (check_owner, meta.tuple.dst.addr) {
                    (false, _) => self.id,
                    (true, IpAddr::V6(dst)) => {
                        let to = super::ipv6::steer_toward6(&snap.net, dst, local);
                        self.owner6(snap, meta, to)
                    }
                    (true, IpAddr::V4(_)) => self.owner_with(snap, meta, local),
                };
                let (out, v) = if owner != self.id {
                    self.counters.handoff_out += 1;
                    (Out::Handoff(p, owner as u32), Verdict::There(owner as u32))
                } else {
                    self.frag_deciding = true;
                    let out = self.process_with(snap, p, cls, None, in_port, now_ms, false);
                    self.frag_deciding = false;
                    let v = self.verdict_of(&out, meta);
                    if matches!(v, Verdict::Here(..)) {
                        self.counters.frags_forwarded += 1;
                    }
                    (out, v)
                };
                let mut held: [Option<P>; HELD_PER_DATAGRAM] = [const { None }; HELD_PER_DATAGRAM];
                let mut n = 0;
                self.frags.decided(&key, v, |p, _| {
                    held[n] = Some(p);
                    n += 1;
                });
                for p in held.iter_mut().take(n).filter_map(Option::take) {
                    let o = match classify(p.data(), ChecksumMode::Software) {
                        Ok(Classified::Ip(m)) => self.frag_verdict(p, &m, v, snap, now_ms),
                        _ => self.drop(p, DropReason::Malformed(wire::Error::Fragment)),
                    };
                    self.frag_emit(o);
                }
                out
            }
        }
    }

    /// The verdict of a first fragment that took the general path with outcome `out`:
    /// the session it was forwarded with, or the reason it was dropped.
    fn verdict_of(&self, out: &Out<P>, meta: &IpMeta) -> Verdict {
        match out {
            Out::Drop(_, r) => return Verdict::Refused(*r),
            Out::Tx(..) | Out::Held => {}
            _ => return Verdict::Refused(DropReason::NotForUs),
        }
        let proto = if meta.tuple.protocol == IpProtocol::TCP {
            Proto::Tcp
        } else {
            Proto::Udp
        };
        let flow = FlowKey {
            proto,
            saddr: Addr::from(meta.tuple.src.addr),
            daddr: Addr::from(meta.tuple.dst.addr),
            sport: meta.tuple.src.port,
            dport: meta.tuple.dst.port,
        };
        if let Some(id) = self.conns.lookup_out(&flow) {
            return Verdict::Here(id, true);
        }
        match self.conns.lookup_in(&flow) {
            Some(id) => Verdict::Here(id, false),
            None => Verdict::Refused(DropReason::NoSession),
        }
    }

    /// A fragment whose datagram's verdict is `v`.
    fn frag_verdict(
        &mut self,
        pkt: P,
        meta: &IpMeta,
        v: Verdict,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        match v {
            Verdict::There(o) => {
                self.counters.handoff_out += 1;
                Out::Handoff(pkt, o)
            }
            Verdict::Refused(r) => self.drop(pkt, r),
            Verdict::Here(id, reply) => self.forward_fragment(pkt, meta, id, reply, snap, now_ms),
        }
    }

    /// A fragment of session `id` forwarded with the session's plan: no state
    /// transition (the first fragment made it), no ICMP error (a later fragment's TTL
    /// running out is only dropped, as routers answer only for first fragments).
    fn forward_fragment(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        id: ConnId,
        reply: bool,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let Some(s) = self.conns.get(id) else {
            return self.drop(pkt, DropReason::NoSession);
        };
        if s.v6 != 0 || meta.version == IpVersion::V6 {
            return self.forward_fragment_ip(pkt, meta, id, reply, snap, now_ms);
        }
        let Some(plan) = Plan::of(s, reply, &self.conns) else {
            return self.drop(pkt, DropReason::NotForUs);
        };
        let Some((nh, port)) = egress(snap, plan.toward, plan.fwd) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let mac = self.neigh_mac(nh.addr, nh.port, now_ms);
        let eg = self.egress_of(&plan, nh.port, port, mac.unwrap_or([0; 6]));
        let at = Layout::of(meta);
        let first = meta.frag.is_some_and(|f| f.is_first());
        let len = pkt.len() as u64;
        let res = match plan.fwd {
            FwdMethod::Masq | FwdMethod::FullNat if !first => rewrite_v4_fragment(
                pkt.data_mut(),
                at.l3,
                plan.src.map(|e| e.0),
                plan.dst.map(|e| e.0),
                &eg.macs,
            ),
            _ => plan.apply(&mut pkt, &at, &eg),
        };
        let dir = if reply {
            Direction::Output
        } else {
            Direction::Input
        };
        match res {
            Ok(()) => {}
            Err(wire::Error::Oversize) if plan.fwd == FwdMethod::Tunnel => {
                let hop = (nh.port, nh.addr, mac);
                let out = self.tun_split(pkt, id, dir, &plan, &at, &eg, hop, snap, meta);
                if !matches!(out, Out::Drop(..)) {
                    self.counters.frags_forwarded += 1;
                }
                return out;
            }
            Err(e) => return self.drop(pkt, DropReason::Rewrite(e)),
        }
        if self.vlans || meta.l2.vlan_tci.is_some() {
            if let Err(e) = retag_for(&mut pkt, snap, nh.port) {
                return self.drop(pkt, DropReason::Rewrite(e));
            }
        }
        self.count_forwarded(id, dir, len);
        self.counters.frags_forwarded += 1;
        self.emit(pkt, nh.port, nh.addr, mac)
    }

    /// [`Core::forward_fragment`] for a session with an IPv6 end: NAT and FULLNAT
    /// rewrite a later fragment's addresses and hop limit ([`rewrite_v6_fragment`]),
    /// the first one as a whole packet ([`Plan6::apply`]); DR sets the MACs; TUN
    /// encapsulates it whole (split into two outer fragments when too big,
    /// [`Core::tun_split6`]). NAT64 does not translate fragments: dropped as
    /// `rewrite:fragment`.
    fn forward_fragment_ip(
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
        if plan.translates(meta.version) {
            return self.drop(pkt, DropReason::Rewrite(wire::Error::Fragment));
        }
        let Some(r) = self.route_ip(plan.toward, plan.fwd, snap, now_ms) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let at = At6::of(meta);
        let first = meta.frag.is_some_and(|f| f.is_first());
        let len = pkt.len() as u64;
        let v6 = |e: Option<(IpAddr, u16)>| match e {
            Some((IpAddr::V6(a), _)) => Some(a.octets()),
            _ => None,
        };
        let res = match plan.fwd {
            FwdMethod::Masq | FwdMethod::FullNat if !first => rewrite_v6_fragment(
                pkt.data_mut(),
                at.at.l3,
                v6(plan.src),
                v6(plan.dst),
                &r.eg.macs,
            ),
            _ => plan.apply(&mut pkt, &at, &r.eg),
        };
        let dir = if reply {
            Direction::Output
        } else {
            Direction::Input
        };
        match res {
            Ok(()) => {}
            Err(wire::Error::Oversize) if plan.fwd == FwdMethod::Tunnel => {
                let hop = (r.port, r.nh, r.mac);
                let out = self.tun_split6(pkt, id, dir, &plan, &at, &r.eg, hop, snap, meta);
                if !matches!(out, Out::Drop(..)) {
                    self.counters.frags_forwarded += 1;
                }
                return out;
            }
            Err(e) => return self.drop(pkt, DropReason::Rewrite(e)),
        }
        if self.vlans || meta.l2.vlan_tci.is_some() {
            if let Err(e) = retag_for(&mut pkt, snap, r.port) {
                return self.drop(pkt, DropReason::Rewrite(e));
            }
        }
        self.count_forwarded(id, dir, len);
        self.counters.frags_forwarded += 1;
        self.emit_ip(pkt, r.port, r.nh, r.mac)
    }

    /// TUN toward an IPv6 server: a fragment too big for the tunnel (`Plan6::apply`
    /// refused it as oversize, changing nothing) encapsulated regardless and sent as two
    /// outer IPv6 fragments ([`split_outer_v6`]), the second from a copy of the buffer
    /// through [`Core::take_frag_out`], as the tunnel entry point of RFC 2473 fragments
    /// its own packet. A tunnel to an IPv4 server (IPv6 in IPIP, DF set) is refused as
    /// oversize.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tun_split6(
        &mut self,
        mut pkt: P,
        id: ConnId,
        dir: Direction,
        plan: &Plan6,
        at: &At6,
        eg: &Egress6,
        (port, nh, mac): (u16, IpAddr, Option<[u8; 6]>),
        snap: &Snapshot,
        meta: &IpMeta,
    ) -> Out<P> {
        let oversize = DropReason::Rewrite(wire::Error::Oversize);
        if !plan.toward.is_ipv6() {
            return self.drop(pkt, oversize);
        }
        let len = pkt.len() as u64;
        let unbounded = Egress6 {
            mtu: u16::MAX,
            ..*eg
        };
        if let Err(e) = plan.apply(&mut pkt, at, &unbounded) {
            return self.drop(pkt, DropReason::Rewrite(e));
        }
        let Some(mut second) = pkt.try_clone() else {
            return self.drop(pkt, oversize);
        };
        self.tun_ident = self.tun_ident.wrapping_add(1);
        let ident = (u32::from(self.tun_ident) << 8) | (self.id as u32 & 0xff);
        if let Err(e) = split_outer_v6(&mut pkt, &mut second, at.at.l3, eg.mtu, ident) {
            drop(second);
            return self.drop(pkt, DropReason::Rewrite(e));
        }
        self.send_outer_pair(pkt, second, (id, dir, len), (port, nh, mac), snap, meta)
    }

    /// TUN: a packet without DF too big for the tunnel (`Plan::apply` refused it as
    /// oversize, changing nothing) encapsulated regardless and sent as two outer
    /// fragments, the second from a copy of the buffer ([`PacketBuf::try_clone`]) through
    /// [`Core::take_frag_out`]. A packet with DF is the caller's (frag-needed).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tun_split(
        &mut self,
        mut pkt: P,
        id: ConnId,
        dir: Direction,
        plan: &Plan,
        at: &Layout,
        eg: &Egress,
        (port, nh, mac): (u16, core::net::Ipv4Addr, Option<[u8; 6]>),
        snap: &Snapshot,
        meta: &IpMeta,
    ) -> Out<P> {
        let oversize = DropReason::Rewrite(wire::Error::Oversize);
        if meta.dont_frag {
            return self.drop(pkt, oversize);
        }
        let len = pkt.len() as u64;
        let unbounded = Egress {
            mtu: u16::MAX,
            ..*eg
        };
        if let Err(e) = plan.apply(&mut pkt, at, &unbounded) {
            return self.drop(pkt, DropReason::Rewrite(e));
        }
        let Some(mut second) = pkt.try_clone() else {
            return self.drop(pkt, oversize);
        };
        self.tun_ident = self.tun_ident.wrapping_add(1);
        let ident = self.tun_ident.wrapping_mul(8) | (self.id as u16 & 7);
        if let Err(e) = split_outer_v4(&mut pkt, &mut second, at.l3, eg.mtu, ident) {
            drop(second);
            return self.drop(pkt, DropReason::Rewrite(e));
        }
        let nh = IpAddr::V4(nh);
        self.send_outer_pair(pkt, second, (id, dir, len), (port, nh, mac), snap, meta)
    }

    /// The two outer fragments of [`Core::tun_split`] or [`Core::tun_split6`], made: tags
    /// for the egress port, the session's traffic counted once (`len`, the packet as
    /// received), the first sent as the packet's outcome and the second beside it.
    #[allow(clippy::too_many_arguments)]
    fn send_outer_pair(
        &mut self,
        mut pkt: P,
        mut second: P,
        (id, dir, len): (ConnId, Direction, u64),
        (port, nh, mac): (u16, IpAddr, Option<[u8; 6]>),
        snap: &Snapshot,
        meta: &IpMeta,
    ) -> Out<P> {
        if self.vlans || meta.l2.vlan_tci.is_some() {
            let r =
                retag_for(&mut pkt, snap, port).and_then(|()| retag_for(&mut second, snap, port));
            if let Err(e) = r {
                drop(second);
                return self.drop(pkt, DropReason::Rewrite(e));
            }
        }
        self.count_forwarded(id, dir, len);
        self.counters.tun_outer_fragmented += 1;
        let out = self.emit_ip(pkt, port, nh, mac);
        let o2 = self.emit_ip(second, port, nh, mac);
        self.frag_emit(o2);
        out
    }

    /// Queues an outcome produced beside the packet being processed (a held fragment
    /// released, a TUN packet's second outer fragment) for the worker, drops included
    /// (already counted: the worker passes those not for a service to the kernel, as
    /// it does a packet's own outcome).
    fn frag_emit(&mut self, o: Out<P>) {
        match o {
            Out::Held => {}
            o if self.frag_out.len() < SIDE_CAP => self.frag_out.push(o),
            Out::Tx(p, _) | Out::Handoff(p, _) => {
                let _ = self.drop(p, DropReason::FragTableFull);
            }
            Out::Drop(..) | Out::Consumed(_) => {}
        }
    }

    /// Fragments ready beside the last burst: sent (`Out::Tx`), handed over in the
    /// order they came (`Out::Handoff`) or dropped (`Out::Drop`, counted). Drained by
    /// the worker after a burst, routed as the packets' own outcomes are.
    pub fn take_frag_out(&mut self) -> std::vec::Drain<'_, Out<P>> {
        self.frag_out.drain(..)
    }

    /// The fragment table's ageing, from [`Core::tick`]: datagrams older than its
    /// timeout are forgotten, fragments still held for them dropped (`frag-timeout`).
    pub(super) fn frag_tick(&mut self, now_ms: u64, drop_held: &mut impl FnMut(P)) {
        let n = self.frags.age(now_ms, drop_held);
        self.counters.drops[DropReason::FragTimeout.index()] += n;
    }

    /// The fragment table (its bounds and counters).
    pub fn frag_table(&self) -> &Frags<P> {
        &self.frags
    }

    /// Replaces the fragment table by an empty one of bounds `cfg` (at start-up).
    pub fn set_frag_config(&mut self, cfg: crate::frag::FragConfig) {
        self.frags = FragTable::new(cfg);
    }
}
