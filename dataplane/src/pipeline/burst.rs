//! [`Core::process_burst`]: a burst of packets through a prefetching software pipeline,
//! and the established fast path that most packets take.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::buf::PacketBuf;
use crate::conn::{flags as conn_flags, ConnId, Direction, LookupHint, PacketMeta};
use crate::flow::{Addr, FlowKey, FlowKey4, FwdMethod, Proto, TcpFlags};
use crate::forward::{vlan, At6, Egress, Layout, Plan, V6Ends};
use crate::route::NextHop;
use crate::steer::{self, Toward};
use crate::wire::{
    self, ethernet, ipv4, ChecksumMode, Classified, IpMeta, IpProtocol, IpVersion, V4Flow, V6Flow,
};

use super::general::{port_vlan, retag_for, steer_toward};
use super::{Core, DropReason, LocalKind, Out, Snapshot};

/// The session tuple of a classified TCP or UDP packet (IPv4 or IPv6).
#[inline]
fn flow_key(meta: &IpMeta) -> Option<FlowKey> {
    let proto = match meta.tuple.protocol {
        IpProtocol::TCP => Proto::Tcp,
        IpProtocol::UDP => Proto::Udp,
        _ => return None,
    };
    Some(FlowKey {
        proto,
        saddr: Addr::from(meta.tuple.src.addr),
        daddr: Addr::from(meta.tuple.dst.addr),
        sport: meta.tuple.src.port,
        dport: meta.tuple.dst.port,
    })
}

/// The session tuple of an IPv6 TCP or UDP packet read by [`wire::classify_v6_flow`].
#[inline(always)]
fn v6_flow_key(v: &V6Flow) -> FlowKey {
    FlowKey {
        proto: if v.udp { Proto::Udp } else { Proto::Tcp },
        saddr: Addr(v.src),
        daddr: Addr(v.dst),
        sport: v.sport,
        dport: v.dport,
    }
}

/// The session tuple of an IPv4 TCP or UDP packet read by [`wire::classify_v4_flow`], as
/// the fast path compares it with a session's ([`FlowKey4::key`] is [`flow_key`] of its
/// classification). Made from the reading where it is used, never stored: the reading
/// holds it.
#[inline(always)]
fn v4_flow_key(v: &V4Flow) -> FlowKey4 {
    let proto = if v.udp { Proto::Udp } else { Proto::Tcp };
    FlowKey4::new(proto, v.src, v.dst, v.sport, v.dport)
}

/// A packet's session tuple in [`Core::process_burst`]: its hash, the index entry its
/// session prefetch saw, and the tuple itself.
#[derive(Clone, Copy)]
struct Flow {
    hash: u64,
    hint: Option<LookupHint>,
    tuple: Tuple,
}

/// The tuple of a [`Flow`].
#[derive(Clone, Copy)]
enum Tuple {
    /// An IPv4 packet's lane reading, which holds its tuple ([`v4_flow_key`]): the
    /// packet is not classified unless it leaves the fast path, and its tuple is never
    /// widened to a [`FlowKey`] on the way.
    V4(V4Flow),
    /// Any other packet's tuple.
    Key(FlowKey),
}

/// The flow slot of a packet without an IPv4 lane reading: its tuple from its IPv6 lane
/// reading ([`wire::classify_v6_flow`], kept in `lane6`), else from its full
/// classification (into `cls`), hashed and its index bucket prefetched; `None` for a
/// packet without a TCP or UDP tuple. Writes the slot itself (a returned tuple copied
/// into it would stall on store forwarding). Out of line: [`Core::process_burst`]'s IPv4
/// lane does not pay for it.
#[inline(never)]
fn lane_flow(
    frame: &[u8],
    cls: &mut wire::Result<Classified>,
    lane6: &mut Option<V6Flow>,
    conns: &crate::conn::ConnTable,
    slot: &mut Option<Flow>,
) {
    *lane6 = wire::classify_v6_flow(frame);
    let key = match lane6 {
        Some(v) => v6_flow_key(v),
        None => {
            wire::classify_into(frame, ChecksumMode::Software, cls);
            let key = match cls {
                Ok(Classified::Ip(m)) => flow_key(m),
                _ => None,
            };
            let Some(key) = key else {
                *slot = None;
                return;
            };
            key
        }
    };
    let hash = conns.flow_hash(&key);
    conns.prefetch_flow(hash);
    *slot = Some(Flow {
        hash,
        hint: None,
        tuple: Tuple::Key(key),
    });
}

/// Whether the TCP segment at `l4..end` of `frame` (a lane's reading, never a fragment)
/// has a right checksum under the pseudo header `pseudo` makes of its length:
/// [`super::general::segment_checksum_ok`] for that case.
#[inline]
fn lane_checksum_ok(frame: &[u8], l4: u16, end: u16, pseudo: impl FnOnce(u16) -> u16) -> bool {
    let Some(seg) = frame.get(usize::from(l4)..usize::from(end)) else {
        return false;
    };
    // At most `end`, a u16.
    let len = seg.len() as u16;
    wire::checksum::combine(&[pseudo(len), wire::checksum::data(seg)]) == 0xffff
}

/// Whether the TCP checksum of an IPv4 segment read by [`wire::classify_v4_flow`] is right.
#[inline]
fn tcp_checksum_ok(frame: &[u8], v4: &V4Flow) -> bool {
    let (src, dst) = (Ipv4Addr::from(v4.src), Ipv4Addr::from(v4.dst));
    lane_checksum_ok(frame, v4.l4, v4.ip_end, |len| {
        wire::checksum::pseudo_header_v4(src, dst, IpProtocol::TCP.0, len)
    })
}

/// Whether the TCP checksum of an IPv6 segment read by [`wire::classify_v6_flow`] is right.
#[inline]
fn tcp_checksum_ok6(frame: &[u8], v6: &V6Flow) -> bool {
    let (src, dst) = (Ipv6Addr::from(v6.src), Ipv6Addr::from(v6.dst));
    lane_checksum_ok(frame, v6.l4, v6.ip_end, |len| {
        wire::checksum::pseudo_header_v6(&src, &dst, IpProtocol::TCP.0, u32::from(len))
    })
}

/// Whether a segment is one a SYN lane takes: TCP with SYN and neither ACK, RST nor FIN.
#[inline(always)]
fn opens_alone(udp: bool, flags: TcpFlags) -> bool {
    let (syn, ack, rst, fin) = (
        TcpFlags::SYN.0,
        TcpFlags::ACK.0,
        TcpFlags::RST.0,
        TcpFlags::FIN.0,
    );
    !udp && flags.0 & (syn | ack | rst | fin) == syn
}

/// Whether the SYN lanes may open sessions under snapshot `snap`: no SYN-proxied
/// service, no ACL of a service and no firewall-mark rule (each of those needs the
/// general path's steps for a SYN).
#[inline(always)]
fn lanes_open(snap: &Snapshot) -> bool {
    let services = &snap.services;
    !(services.has_syn_proxy() || services.has_acls() || !snap.net.marks.rules().is_empty())
}

/// What [`Core::ready6`] found an IPv6 packet can be sent with: the egress port, the
/// frame's MACs, the tunnel source (TUN), the egress MTU and the packet's layout.
struct Ready6 {
    port: u16,
    macs: crate::forward::MacRewrite,
    tunnel_src: Ipv6Addr,
    mtu: u16,
    at: At6,
}

/// Session flags whose packets need the general path's client-address or SYN-proxy work
/// (a PROXY header or TOA still to give, a PROXY shift, a SYN proxy's setup or
/// translation): the SYN lane and IPv6's fast path leave them to it.
const SPECIAL: u16 =
    conn_flags::CIP | conn_flags::IN_SEQ | conn_flags::SYNPROXY | conn_flags::OUT_SEQ;

/// Prefetch distance of [`Core::process_burst`], in packets: how far the bucket prefetch
/// runs ahead of the session prefetch, and that ahead of the processing. About twice
/// the memory latency of this machine (~180 ns) in packets at full speed.
const AHEAD: usize = 8;

/// Slots for the packets in flight in [`Core::process_burst`] (at least `2 * AHEAD + 1`).
pub(super) const RING: usize = 32;
const _: () = assert!(RING > 2 * AHEAD);

/// The outcome of [`Core::fast_path`].
enum Fast {
    /// Rewritten: transmit on this port.
    Tx(u16),
    /// The session's packet, refused by the rewrite (after its state transition).
    Drop(DropReason),
    /// Another worker owns it (counted as handed off): pass it on unchanged.
    Handoff(u32),
    /// Not a case of the fast path; nothing was changed.
    Slow,
    /// A SYN's session was made (or found) by the SYN lane, but its packet needs the
    /// general path's forwarding: classified in full, it goes to [`Core::forward`] as
    /// the general path sends it after making the session.
    Made(ConnId),
}

/// What [`Core::process_burst`] hands back, packet by packet.
#[derive(Debug)]
pub enum Emit<'a, P> {
    /// A packet's verdict.
    Packet(Out<P>),
    /// A frame the director originated while processing the packet before (an ICMP
    /// fragmentation-needed error): send it on the port.
    Generated(u16, &'a [u8]),
}

impl<P: PacketBuf> Core<P> {
    /// Processes a burst: the packets of `pkts` in order, each exactly as the general
    /// path would process it alone, handing every verdict, and every frame originated on
    /// the way, to `emit`. `in_port` names the rvs port a packet arrived on; it is asked
    /// only for the packets that take the general path. `check_owner`: a packet another
    /// worker owns comes back as [`Out::Handoff`] (false for packets received from a
    /// handoff ring).
    ///
    /// The packets run through a software pipeline, so that their cache misses overlap
    /// instead of each packet stalling on its own: a packet is classified and its
    /// session-index bucket prefetched; [`AHEAD`] packets later the session that bucket
    /// points at is prefetched; [`AHEAD`] more later the packet is processed, with its
    /// classification and tuple hash at hand. The common IPv4 TCP or UDP packet is
    /// read by [`wire::classify_v4_flow`] (its tuple and offsets only), and classified
    /// in full only if it leaves the fast path. The pipeline runs on across the whole of
    /// `pkts`, which may receive more packets as it is read (the engine's receive stream
    /// does): the prefetches for the packets in flight overlap that receive too. An
    /// established packet of a NAT, FULLNAT, DR or TUN session takes a fast path (the same
    /// effects without the generic steps); any other the general one.
    pub fn process_burst<I, F, E>(
        &mut self,
        pkts: I,
        now_ms: u64,
        check_owner: bool,
        mut in_port: F,
        mut emit: E,
    ) where
        I: IntoIterator<Item = P>,
        F: FnMut(&P) -> u16,
        E: FnMut(Emit<'_, P>),
    {
        let mut pkts = pkts.into_iter();
        // Packets in flight, by sequence number modulo `RING`. Classifications stay in
        // place (176 bytes each): kept in a buffer owned by the core, taken out for the
        // call so that packets can borrow them. A packet with a `v4` reading is not
        // classified until it leaves the fast path.
        let mut ring: [Option<P>; RING] = std::array::from_fn(|_| None);
        let mut flows = [None::<Flow>; RING];
        // The lane's reading of an IPv6 packet, apart from `flows` so that IPv4's
        // entries stay as small as they were (written for packets without a `v4`; kept
        // in the core, as the classifications are, not made anew per call).
        let mut lanes6 = std::mem::take(&mut self.burst_lanes6);
        lanes6.resize(RING, None);
        let mut cls = std::mem::take(&mut self.burst_cls);
        cls.resize(RING, Err(wire::Error::Truncated));
        // Sequence number of the first packet `pkts` did not have.
        let mut end = usize::MAX;
        for i in 0.. {
            if i < end {
                match pkts.next() {
                    Some(p) => {
                        let r = i % RING;
                        let v4 = wire::classify_v4_flow(p.data());
                        if self.overloaded && v4.as_ref().is_some_and(|v| self.shed_v4(v)) {
                            // Shed at the cheapest point: no hash, no prefetch; the
                            // slot stays empty.
                            self.counters.packets += 1;
                            let out = self.drop(p, DropReason::SynShed);
                            emit(Emit::Packet(out));
                            ring[r] = None;
                            flows[r] = None;
                        } else {
                            // Each lane writes its slot itself: a tuple merged from
                            // both lanes would go through memory, and the IPv4 lane's
                            // hash or copy would then load wide words just stored as
                            // narrow ones (a store-forwarding stall per packet).
                            match v4 {
                                Some(v) => {
                                    // Hashed from the reading, not from the key.
                                    let proto = if v.udp { Proto::Udp } else { Proto::Tcp };
                                    let c = &self.conns;
                                    let hash =
                                        c.flow_hash_v4(proto, v.src, v.dst, v.sport, v.dport);
                                    c.prefetch_flow(hash);
                                    flows[r] = Some(Flow {
                                        hash,
                                        hint: None,
                                        tuple: Tuple::V4(v),
                                    });
                                }
                                // IPv6's lane reading, else a full classification: out
                                // of line, so that IPv4's lane stays as tight as it was.
                                None => lane_flow(
                                    p.data(),
                                    &mut cls[r],
                                    &mut lanes6[r],
                                    &self.conns,
                                    &mut flows[r],
                                ),
                            }
                            ring[r] = Some(p);
                        }
                    }
                    None => end = i,
                }
            }
            if let Some(j) = i.checked_sub(AHEAD).filter(|j| *j < end) {
                if let Some(f) = &mut flows[j % RING] {
                    f.hint = match &f.tuple {
                        Tuple::V4(_) => self.conns.prefetch_session4(f.hash),
                        Tuple::Key(key) => self.conns.prefetch_session(f.hash, key),
                    };
                }
            }
            let Some(j) = i.checked_sub(2 * AHEAD) else {
                continue;
            };
            if j >= end {
                break;
            }
            let r = j % RING;
            let Some(mut p) = ring[r].take() else {
                continue;
            };
            // The session the SYN lane made for the packet, when the general path is to
            // forward it (`Fast::Made`).
            let mut made = None;
            if let Some(
                f @ Flow {
                    tuple: Tuple::V4(v),
                    ..
                },
            ) = &flows[r]
            {
                // The frame's tag must be its port's (else the general path drops it):
                // without VLAN ports, that it has none.
                let untagged = usize::from(v.l3) == ethernet::HEADER_LEN;
                if (untagged && !self.vlans) || self.tag_matches(p.data(), in_port(&p)) {
                    // A SYN may open a session in the SYN lane; any other packet of a
                    // session takes the established fast path.
                    let fast = if !v.udp && v.tcp_flags & TcpFlags::SYN.0 != 0 {
                        self.syn_lane(&mut p, v, f, now_ms, check_owner)
                    } else {
                        self.fast_path(&mut p, v, f, now_ms, check_owner)
                    };
                    match fast {
                        Fast::Tx(port) => {
                            emit(Emit::Packet(Out::Tx(p, port)));
                            continue;
                        }
                        Fast::Drop(reason) => {
                            let out = self.drop(p, reason);
                            emit(Emit::Packet(out));
                            continue;
                        }
                        Fast::Handoff(owner) => {
                            emit(Emit::Packet(Out::Handoff(p, owner)));
                            continue;
                        }
                        Fast::Made(id) => made = Some((id, TcpFlags(v.tcp_flags))),
                        Fast::Slow => {}
                    }
                }
                wire::classify_into(p.data(), ChecksumMode::Software, &mut cls[r]);
            } else if let (
                Some(
                    f @ Flow {
                        tuple: Tuple::Key(key),
                        ..
                    },
                ),
                Some(v),
            ) = (&flows[r], &lanes6[r])
            {
                let untagged = usize::from(v.l3) == ethernet::HEADER_LEN;
                if (untagged && !self.vlans) || self.tag_matches(p.data(), in_port(&p)) {
                    // As IPv4's: a SYN may open a session in the SYN lane.
                    let fast = if !v.udp && v.tcp_flags & TcpFlags::SYN.0 != 0 {
                        self.syn_lane6(&mut p, v, (f, key), now_ms, check_owner)
                    } else {
                        self.fast_path6(&mut p, v, (f, key), now_ms, check_owner)
                    };
                    match fast {
                        Fast::Tx(port) => {
                            emit(Emit::Packet(Out::Tx(p, port)));
                            continue;
                        }
                        Fast::Drop(reason) => {
                            let out = self.drop(p, reason);
                            emit(Emit::Packet(out));
                            continue;
                        }
                        Fast::Handoff(owner) => {
                            emit(Emit::Packet(Out::Handoff(p, owner)));
                            continue;
                        }
                        Fast::Made(id) => made = Some((id, TcpFlags(v.tcp_flags))),
                        Fast::Slow => {}
                    }
                }
                wire::classify_into(p.data(), ChecksumMode::Software, &mut cls[r]);
            }
            let port = in_port(&p);
            let out = match made {
                Some((id, flags)) => self.forward_made(p, &cls[r], id, flags, port, now_ms),
                None => {
                    let hash = flows[r].as_ref().map(|f| f.hash);
                    self.process_classified(p, &cls[r], hash, port, now_ms, check_owner)
                }
            };
            emit(Emit::Packet(out));
            if let Some((port, len)) = self.generated.pop() {
                emit(Emit::Generated(port, &self.scratch[..len]));
            }
        }
        self.burst_cls = cls;
        self.burst_lanes6 = lanes6;
        self.conns.flush_pending();
    }

    /// The established fast path: a TCP or UDP packet over IPv4 of a NAT, FULLNAT, DR or
    /// TUN session, whose next hop is resolved. It has exactly the effects the general
    /// path ([`Core::process_classified`]) has on such a packet (counters, TCP state and
    /// timer, sync, rewrite, traffic per real server) without its generic steps (full
    /// classification, verdicts moved through the call chain): ownership from the same
    /// [`steer::owner`], the rewrite from the same [`Plan`]. A packet another worker
    /// owns is handed to it at once ([`Fast::Handoff`]). [`Fast::Slow`] when anything
    /// is out of the ordinary (no session, a SYN, an unresolved next hop, a TTL about
    /// to expire, a TUN packet too big for the tunnel, ...): nothing has been changed
    /// then. The caller has checked the frame's 802.1Q tag against its port (without
    /// VLAN ports: that it has none); the packet leaves with its egress port's tag.
    #[inline(always)]
    fn fast_path(
        &mut self,
        pkt: &mut P,
        v4: &V4Flow,
        f: &Flow,
        now_ms: u64,
        check_owner: bool,
    ) -> Fast {
        let Some(snap) = self.snap.as_ref() else {
            return Fast::Slow;
        };
        let flags = TcpFlags(v4.tcp_flags);
        // A SYN may reuse or reschedule a session (conn_reuse_mode): the SYN lane or the
        // general path.
        if !v4.udp && flags.0 & TcpFlags::SYN.0 != 0 {
            return Fast::Slow;
        }
        let workers = snap.net.workers;
        let check_owner = check_owner && workers > 1;
        let Some((id, reply)) = self.conns.lookup_hinted4(f.hash, &v4_flow_key(v4), f.hint) else {
            // No session here: most often a packet of another worker's session.
            return match check_owner {
                true => self.handoff_by_address(v4),
                false => Fast::Slow,
            };
        };
        let Some(s) = self.conns.get(id) else {
            return Fast::Slow;
        };
        // Client-address work left (a PROXY header not yet acknowledged, a TOA option
        // to add, PROXY over UDP): the general path.
        let shifted = s.flags & (conn_flags::CIP | conn_flags::IN_SEQ);
        // A SYN-proxied session: waiting for its real server (the general path), or
        // translated.
        let proxied = s.flags & (conn_flags::SYNPROXY | conn_flags::OUT_SEQ);
        if (shifted & conn_flags::CIP) | (proxied & conn_flags::SYNPROXY) != 0 {
            return Fast::Slow;
        }
        let Some(plan) = Plan::of(s, reply, &self.conns) else {
            return Fast::Slow;
        };
        if check_owner {
            // The destination is what the session says it is: the VIP of a request, the
            // LIP of a FULLNAT reply, the client of a NAT reply.
            let to = match (reply, plan.fwd) {
                (false, _) => Toward::Service,
                (true, FwdMethod::FullNat) => Toward::LocalAddr,
                (true, _) => Toward::Client,
            };
            let (src, dst) = (Ipv4Addr::from(v4.src), Ipv4Addr::from(v4.dst));
            match steer::owner(to, src, dst, Some(v4.dport), workers) {
                Some(o) if o == self.id => {}
                Some(o) => return self.handoff(o),
                None => return Fast::Slow,
            }
        }
        let Some(ready) = self.ready(pkt, v4, id, reply, &plan) else {
            return Fast::Slow;
        };
        // Decided: from here on the packet is this session's.
        self.counters.packets += 1;
        self.send(
            pkt,
            id,
            reply,
            flags,
            (&plan, ready),
            (shifted, proxied),
            now_ms,
        )
    }

    /// Whether the fast path can send session `id`'s packet on with `plan` (its server
    /// usable for a request, its next hop resolved, its TTL not running out, a TUN
    /// packet not too big for the tunnel): its next hop, egress and layout, found
    /// without changing anything; `None` when the general path is to take it.
    #[inline(always)]
    fn ready(
        &self,
        pkt: &P,
        v4: &V4Flow,
        id: ConnId,
        reply: bool,
        plan: &Plan,
    ) -> Option<(NextHop, Egress, Layout)> {
        let snap = self.snap.as_ref()?;
        if !reply && !self.conns.dest_usable(id) {
            return None;
        }
        let (nh, port) = super::general::egress(snap, plan.toward, plan.fwd)?;
        let mac = self.neigh.get(nh.addr)?;
        let eg = self.egress_of(plan, nh.port, port, mac);
        let at = Layout {
            l3: usize::from(v4.l3),
            l4: usize::from(v4.l4),
            ip_end: usize::from(v4.ip_end),
            udp: v4.udp,
        };
        let ttl = pkt.data().get(at.l3 + ipv4::TTL_OFFSET);
        if plan.routes() && ttl.is_none_or(|ttl| *ttl <= 1) {
            return None; // dropped as TtlExpired, after the state transition
        }
        // TUN: a packet too big once encapsulated is refused (with a frag-needed error
        // for the client when it has DF) by the general path.
        if !plan.fits(at.l3, at.ip_end, eg.mtu) {
            return None;
        }
        Some((nh, eg, at))
    }

    /// Sends session `id`'s packet on as [`Core::ready`] found it can go: the TCP state
    /// transition, the sync record, the rewrite, a PROXY-protocol shift (`shifted`) or a
    /// SYN proxy's translation (`proxied`), the egress port's tag, the counters.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn send(
        &mut self,
        pkt: &mut P,
        id: ConnId,
        reply: bool,
        flags: TcpFlags,
        (plan, (nh, eg, at)): (&Plan, (NextHop, Egress, Layout)),
        (shifted, proxied): (u16, u16),
        now_ms: u64,
    ) -> Fast {
        let dir = if reply {
            Direction::Output
        } else {
            Direction::Input
        };
        self.conns.state_transition(id, dir, flags, now_ms);
        if !reply {
            self.sync_after_input(id, now_ms);
        }
        let len = pkt.len() as u64;
        if let Err(e) = plan.apply(pkt, &at, &eg) {
            return Fast::Drop(DropReason::Rewrite(e));
        }
        // A PROXY-protocol session after its header: one shift.
        if shifted != 0 {
            self.shift_established(pkt, id, reply, at.l4);
        }
        // A SYN-proxied session: its translation.
        if proxied != 0 {
            self.syn_proxy_translate(pkt, id, reply, at.l4);
        }
        // Without VLAN ports the frame came untagged (the caller checked) and leaves so.
        if self.vlans {
            if let Some(Err(e)) = self.snap.as_ref().map(|s| retag_for(pkt, s, nh.port)) {
                return Fast::Drop(DropReason::Rewrite(e));
            }
        }
        self.count_forwarded(id, dir, len);
        Fast::Tx(nh.port)
    }

    /// The SYN lane: a TCP SYN over IPv4 (neither ACK, RST nor FIN) that opens a session,
    /// without the general path's generic steps — the same checks and effects as
    /// [`Core::process_classified`] and [`Core::client_packet`] on it (the packet
    /// counted, its real server scheduled, the FULLNAT local endpoint picked, the session
    /// made and counted), then the established path's [`Core::ready`] and [`Core::send`].
    /// [`Fast::Slow`], with nothing changed, for anything out of the ordinary: a
    /// configuration with SYN-proxied services, ACLs or firewall-mark rules; a martian
    /// source; a destination that is not a VIP; a packet another worker owns, whose TTL
    /// runs out, with a wrong checksum, of a flow that has a session; the new-session
    /// budget spent. [`Fast::Made`] when the session is made but its packet needs the
    /// general path's forwarding (a client address to give, an unresolved next hop, a
    /// TUN packet too big, ...).
    #[inline(never)]
    fn syn_lane(
        &mut self,
        pkt: &mut P,
        v4: &V4Flow,
        f: &Flow,
        now_ms: u64,
        check_owner: bool,
    ) -> Fast {
        let Some(snap) = self.snap.as_ref() else {
            return Fast::Slow;
        };
        let flags = TcpFlags(v4.tcp_flags);
        if !opens_alone(v4.udp, flags) {
            return Fast::Slow;
        }
        let net = &snap.net;
        if !lanes_open(snap) {
            return Fast::Slow;
        }
        let (src, dst) = (Ipv4Addr::from(v4.src), Ipv4Addr::from(v4.dst));
        if super::general::martian_source(src, net)
            || !matches!(net.local.get(&dst), Some((LocalKind::Vip, _)))
            || net.acl.denies_v4(src)
        {
            return Fast::Slow;
        }
        let workers = net.workers;
        if check_owner
            && workers > 1
            && steer::owner(Toward::Service, src, dst, Some(v4.dport), workers) != Some(self.id)
        {
            return Fast::Slow;
        }
        let ttl = pkt.data().get(usize::from(v4.l3) + ipv4::TTL_OFFSET);
        if ttl.is_none_or(|ttl| *ttl <= 1)
            || !self.unseen_within_budget(
                self.conns
                    .lookup_hinted4(f.hash, &v4_flow_key(v4), f.hint)
                    .is_none(),
                now_ms,
            )
            || !tcp_checksum_ok(pkt.data(), v4)
        {
            return Fast::Slow;
        }
        // Decided: the packet opens its session here.
        let id = match self.open_in_lane(f.hash, v4_flow_key(v4).key(), flags, now_ms) {
            Ok(id) => id,
            Err(fast) => return fast,
        };
        let Some(s) = self.conns.get(id) else {
            return Fast::Made(id);
        };
        if s.flags & SPECIAL != 0 {
            return Fast::Made(id);
        }
        let Some(plan) = Plan::of(s, false, &self.conns) else {
            return Fast::Made(id);
        };
        match self.ready(pkt, v4, id, false, &plan) {
            Some(ready) => self.send(pkt, id, false, flags, (&plan, ready), (0, 0), now_ms),
            None => Fast::Made(id),
        }
    }

    /// The established fast path of an IPv6 TCP or UDP packet without extension
    /// headers ([`wire::classify_v6_flow`]) of a NAT, FULLNAT, DR or TUN session with
    /// IPv6 ends: [`Core::fast_path`]'s steps with [`Plan6`] — the effects the general
    /// path ([`Core::forward_ip`]) has on it, ownership from [`steer::owner_ip`].
    /// [`Fast::Slow`] (nothing changed) for anything out of the ordinary, and for NAT64
    /// sessions (their family changes: the general path translates them).
    #[inline(always)]
    fn fast_path6(
        &mut self,
        pkt: &mut P,
        v6: &V6Flow,
        (f, flow): (&Flow, &FlowKey),
        now_ms: u64,
        check_owner: bool,
    ) -> Fast {
        let Some(snap) = self.snap.as_ref() else {
            return Fast::Slow;
        };
        let flags = TcpFlags(v6.tcp_flags);
        if flow.proto == Proto::Tcp && flags.0 & TcpFlags::SYN.0 != 0 {
            return Fast::Slow;
        }
        let workers = snap.net.workers;
        let check_owner = check_owner && workers > 1;
        let Some((id, reply)) = self.conns.lookup_hinted(f.hash, flow, f.hint) else {
            return match check_owner {
                true => self.handoff_by_address6(v6),
                false => Fast::Slow,
            };
        };
        let Some(s) = self.conns.get(id) else {
            return Fast::Slow;
        };
        if s.flags & SPECIAL != 0 {
            return Fast::Slow;
        }
        // All-IPv6 ends (a NAT64 session: the general path).
        let Some(plan) = V6Ends::of(s, reply) else {
            return Fast::Slow;
        };
        if check_owner {
            let to = match (reply, plan.fwd) {
                (false, _) => Toward::Service,
                (true, FwdMethod::FullNat) => Toward::LocalAddr,
                (true, _) => Toward::Client,
            };
            let (src, dst) = (Ipv6Addr::from(v6.src), Ipv6Addr::from(v6.dst));
            match steer::owner_ip(to, src.into(), dst.into(), Some(v6.dport), workers) {
                Some(o) if o == self.id => {}
                Some(o) => return self.handoff(o),
                None => return Fast::Slow,
            }
        }
        // Read where `ready6` wrote it, not moved: its MACs are written as a 4- and a
        // 2-byte store, and a move reads them back in words across both (a
        // store-forwarding stall per packet).
        let ready = self.ready6(v6, id, reply, &plan);
        let Some(ready) = ready.as_ref() else {
            return Fast::Slow;
        };
        // Decided: from here on the packet is this session's.
        self.counters.packets += 1;
        self.send6(pkt, id, reply, flags, (&plan, ready), now_ms)
    }

    /// IPv6's [`Core::ready`]: whether the fast path can send session `id`'s packet on
    /// with `plan` (its server usable for a request, a route and a resolved neighbour,
    /// the tunnel source of a TUN egress, the hop limit not running out, the packet
    /// within the egress MTU once encapsulated); `None`, with nothing changed, when the
    /// general path is to take it.
    #[inline(always)]
    fn ready6(&self, v6: &V6Flow, id: ConnId, reply: bool, plan: &V6Ends) -> Option<Ready6> {
        let snap = self.snap.as_ref()?;
        if !reply && !self.conns.dest_usable(id) {
            return None;
        }
        let toward = Ipv6Addr::from(plan.toward);
        let nh = snap.net.routes.lookup6(toward)?;
        let nh_addr = if plan.fwd == FwdMethod::Route {
            toward
        } else {
            nh.addr
        };
        let pn = snap.net.ports.get(usize::from(nh.port))?;
        let mac = self.neigh6.get(nh_addr)?;
        let tunnel_src = match plan.fwd {
            FwdMethod::Tunnel => *self.tun_src6.get(usize::from(nh.port))?,
            _ => Ipv6Addr::UNSPECIFIED,
        };
        let macs = crate::forward::MacRewrite {
            src: wire::EthernetAddress(pn.mac),
            dst: wire::EthernetAddress(mac),
        };
        let mtu = pn.mtu;
        let at = At6 {
            at: Layout {
                l3: usize::from(v6.l3),
                l4: usize::from(v6.l4),
                ip_end: usize::from(v6.ip_end),
                udp: v6.udp,
            },
            version: IpVersion::V6,
            tos: v6.tclass,
            dont_frag: true,
        };
        let routed = !matches!(plan.fwd, FwdMethod::Route | FwdMethod::Local);
        if routed && v6.hop_limit <= 1 {
            return None;
        }
        let overhead = if plan.fwd == FwdMethod::Tunnel {
            crate::forward::tun::OVERHEAD6
        } else {
            0
        };
        if at.at.ip_end - at.at.l3 + overhead > usize::from(mtu) {
            return None;
        }
        Some(Ready6 {
            port: nh.port,
            macs,
            tunnel_src,
            mtu,
            at,
        })
    }

    /// IPv6's [`Core::send`]: sends session `id`'s packet on as [`Core::ready6`] found it
    /// can go (the TCP state transition, the sync record, the rewrite, the egress port's
    /// tag, the counters).
    #[inline(always)]
    fn send6(
        &mut self,
        pkt: &mut P,
        id: ConnId,
        reply: bool,
        flags: TcpFlags,
        (plan, r): (&V6Ends, &Ready6),
        now_ms: u64,
    ) -> Fast {
        let dir = if reply {
            Direction::Output
        } else {
            Direction::Input
        };
        self.conns.state_transition(id, dir, flags, now_ms);
        if !reply {
            self.sync_after_input(id, now_ms);
        }
        let len = pkt.len() as u64;
        if let Err(e) = plan.apply(pkt, &r.at, &r.macs, r.tunnel_src, r.mtu) {
            return Fast::Drop(DropReason::Rewrite(e));
        }
        if self.vlans {
            if let Some(Err(e)) = self.snap.as_ref().map(|s| retag_for(pkt, s, r.port)) {
                return Fast::Drop(DropReason::Rewrite(e));
            }
        }
        self.count_forwarded(id, dir, len);
        Fast::Tx(r.port)
    }

    /// The SYN lane of IPv6: [`Core::syn_lane`] for a TCP SYN over IPv6 without extension
    /// headers ([`wire::classify_v6_flow`]), with the checks IPv6's general path
    /// ([`Core::process_v6`], then [`Core::client_packet`]) makes on it, then
    /// [`Core::ready6`] and [`Core::send6`]. A session whose ends are not all IPv6 (a
    /// NAT64 service) is made here and forwarded by the general path ([`Fast::Made`]).
    #[inline(never)]
    fn syn_lane6(
        &mut self,
        pkt: &mut P,
        v6: &V6Flow,
        (f, key): (&Flow, &FlowKey),
        now_ms: u64,
        check_owner: bool,
    ) -> Fast {
        let Some(snap) = self.snap.as_ref() else {
            return Fast::Slow;
        };
        let flags = TcpFlags(v6.tcp_flags);
        if !opens_alone(v6.udp, flags) {
            return Fast::Slow;
        }
        let net = &snap.net;
        if !lanes_open(snap) {
            return Fast::Slow;
        }
        let (src, dst) = (Ipv6Addr::from(v6.src), Ipv6Addr::from(v6.dst));
        if super::ipv6::martian_source6(src, net)
            || !matches!(net.local6.get(&dst), Some((LocalKind::Vip, _)))
            || net.acl.denies_v6(src)
        {
            return Fast::Slow;
        }
        let workers = net.workers;
        if check_owner
            && workers > 1
            && steer::owner_ip(
                Toward::Service,
                src.into(),
                dst.into(),
                Some(v6.dport),
                workers,
            ) != Some(self.id)
        {
            return Fast::Slow;
        }
        if v6.hop_limit <= 1
            || !self.unseen_within_budget(
                self.conns.lookup_hinted(f.hash, key, f.hint).is_none(),
                now_ms,
            )
            || !tcp_checksum_ok6(pkt.data(), v6)
        {
            return Fast::Slow;
        }
        // Decided: the packet opens its session here.
        let id = match self.open_in_lane(f.hash, *key, flags, now_ms) {
            Ok(id) => id,
            Err(fast) => return fast,
        };
        let Some(s) = self.conns.get(id) else {
            return Fast::Made(id);
        };
        if s.flags & SPECIAL != 0 {
            return Fast::Made(id);
        }
        let Some(plan) = V6Ends::of(s, false) else {
            return Fast::Made(id);
        };
        // As in `fast_path6`: read where `ready6` wrote it.
        match &self.ready6(v6, id, false, &plan) {
            Some(ready) => self.send6(pkt, id, false, flags, (&plan, ready), now_ms),
            None => Fast::Made(id),
        }
    }

    /// Whether a SYN lane may open a flow's session as far as the table and the budget
    /// go: no session for its tuple (`unseen`: the lookup found none on either side;
    /// [`Core::open_in_lane`] relies on it), and the new-session budget not spent (asked
    /// only then).
    #[inline(always)]
    fn unseen_within_budget(&mut self, unseen: bool, now_ms: u64) -> bool {
        unseen && self.new_budget.allows(now_ms)
    }

    /// The step both SYN lanes share once they decided a SYN opens its session here
    /// (their lookup found none for its tuple): the packet counted, its real server
    /// scheduled, the FULLNAT local endpoint picked, the session made and counted
    /// ([`Core::opened`]) — [`Core::client_packet`]'s effects on it. `Err` is the lane's
    /// verdict when no session was made: a refusal ([`Fast::Drop`]).
    #[inline(always)]
    fn open_in_lane(
        &mut self,
        hash: u64,
        flow: FlowKey,
        flags: TcpFlags,
        now_ms: u64,
    ) -> Result<ConnId, Fast> {
        let Some(snap) = self.snap.as_ref() else {
            return Err(Fast::Slow);
        };
        self.counters.packets += 1;
        let pm = PacketMeta {
            flow,
            fwmark: 0,
            tcp_flags: flags,
        };
        let me = (self.id as u16, self.rss);
        let res = match self
            .conns
            .schedule_unseen(&mut self.sched, &pm, hash, now_ms)
        {
            Ok(new) => {
                let local = super::general::local_for(&new, &mut self.laddrs, &snap.net, me);
                new.create(local)
            }
            Err(e) => Err(e),
        };
        match res {
            Ok(id) => {
                self.opened(id);
                Ok(id)
            }
            Err(e) => Err(Fast::Drop(super::general::refusal(e))),
        }
    }

    /// [`Core::handoff_by_address`] for an IPv6 packet.
    #[cold]
    fn handoff_by_address6(&mut self, v6: &V6Flow) -> Fast {
        let Some(snap) = self.snap.as_ref() else {
            return Fast::Slow;
        };
        let (src, dst) = (Ipv6Addr::from(v6.src), Ipv6Addr::from(v6.dst));
        let local = snap.net.local6.get(&dst).copied();
        let to = super::ipv6::steer_toward6(&snap.net, dst, local);
        match steer::owner_ip(to, src.into(), dst.into(), Some(v6.dport), snap.net.workers) {
            Some(o) if o != self.id => self.handoff(o),
            _ => Fast::Slow,
        }
    }

    /// Whether a frame's 802.1Q tag is that of port `port`, the port it arrived on
    /// (asked for every frame with VLAN ports configured, else only for a tagged one;
    /// without a snapshot the general path decides).
    #[cold]
    fn tag_matches(&self, frame: &[u8], port: u16) -> bool {
        self.snap
            .as_ref()
            .is_none_or(|s| vlan::vid_of(frame) == port_vlan(&s.net, port))
    }

    /// A TCP or UDP packet without a session here: handed to its owner when that is
    /// another worker, as the general path's [`Core::owner_with`] would decide it
    /// (from what its destination address is), without classifying it in full.
    #[cold]
    fn handoff_by_address(&mut self, v4: &V4Flow) -> Fast {
        let Some(snap) = self.snap.as_ref() else {
            return Fast::Slow;
        };
        let (src, dst) = (Ipv4Addr::from(v4.src), Ipv4Addr::from(v4.dst));
        let to = steer_toward(&snap.net, dst, snap.net.local.get(&dst).copied());
        match steer::owner(to, src, dst, Some(v4.dport), snap.net.workers) {
            Some(o) if o != self.id => self.handoff(o),
            _ => Fast::Slow,
        }
    }

    /// Hands a packet to worker `owner`, counted as the general path counts it.
    #[inline]
    fn handoff(&mut self, owner: usize) -> Fast {
        self.counters.packets += 1;
        self.counters.handoff_out += 1;
        Fast::Handoff(owner as u32)
    }
}
