//! The general path: every packet the fast path does not take — new sessions, ICMP,
//! ARP, packets to the director, packets whose next hop is not resolved, and anything
//! malformed or refused. It decides with the same parts as the fast path: ownership from
//! [`steer`], the rewrite from [`Plan`].

use std::net::{IpAddr, Ipv4Addr};

use crate::buf::PacketBuf;
use crate::conn::{
    flags as conn_flags, ChosenServer, ConnId, ConnTable, Direction, NewSession, PacketMeta,
    Refuse, Scheduled,
};
use crate::flow::{Addr, FlowKey, FwdMethod, Proto, TcpFlags};
use crate::forward::plan::routes;
use crate::forward::{icmp, tun, vlan, Egress, Layout, MacRewrite, Plan};
use crate::laddr::LaddrPool;
use crate::route::NextHop;
use crate::steer::{self, Toward};
use crate::wire::{
    self,
    icmpv4::{time_exceeded, Message},
    Classified, EthernetAddress, IpMeta, IpProtocol, IpVersion,
};
#[cfg(any(test, feature = "reference"))]
use crate::wire::{classify, ChecksumMode};

use super::pools::LipPools;
use super::{Core, DropReason, LocalKind, NetConfig, Out, PortNet, Snapshot, SIDE_CAP};

/// What the destination `dst` of a packet is for ownership, from the local-address map
/// (`local`: its entry) and the former VIPs.
#[inline(always)]
pub(super) fn steer_toward(
    net: &NetConfig,
    dst: Ipv4Addr,
    local: Option<(LocalKind, u16)>,
) -> Toward {
    match local {
        Some((LocalKind::Vip, _)) => Toward::Service,
        Some((LocalKind::Lip, _)) => Toward::LocalAddr,
        Some((LocalKind::Dip, _)) => Toward::Director,
        None if net.former_vips.contains(&dst) => Toward::Service,
        None => Toward::Client,
    }
}

/// The next hop toward `toward` and the port it is on; under DR (`Route`) the real server
/// itself is the next hop (it must be on-link). `None`: no route, or a route to a port the
/// snapshot does not have.
#[inline(always)]
pub(super) fn egress(
    snap: &Snapshot,
    toward: Ipv4Addr,
    fwd: FwdMethod,
) -> Option<(NextHop, &PortNet)> {
    let mut nh = snap.net.routes.lookup(toward)?;
    if fwd == FwdMethod::Route {
        nh.addr = toward;
    }
    Some((nh, snap.net.ports.get(usize::from(nh.port))?))
}

/// The VLAN of the frames port `port` carries (`None`: untagged; also for a port the
/// snapshot does not have).
#[inline(always)]
pub(super) fn port_vlan(net: &NetConfig, port: u16) -> Option<u16> {
    net.ports.get(usize::from(port)).and_then(|p| p.vlan)
}

/// Gives a forwarded frame the tag of port `port`, the port it leaves by
/// ([`vlan::retag`]). Called only with VLAN ports configured or for a frame that came
/// tagged (without VLAN ports an untagged frame leaves as it is); out of line, so that
/// the paths keep only that test.
#[cold]
#[inline(never)]
pub(super) fn retag_for<P: PacketBuf>(pkt: &mut P, snap: &Snapshot, port: u16) -> wire::Result<()> {
    vlan::retag(pkt, port_vlan(&snap.net, port))
}

/// Whether the 802.1Q tag of `frame` (a classified frame) is not that of port `port`,
/// the port it arrived on. Out of line: the general path, inlined into the burst loop,
/// keeps only the gate before it.
#[cold]
#[inline(never)]
fn tag_mismatch(frame: &[u8], snap: &Snapshot, port: u16) -> bool {
    vlan::vid_of(frame) != port_vlan(&snap.net, port)
}

/// Whether an ACL denies the client of `meta`, a packet that would open a session
/// (`pm`): the global list ([`NetConfig::acl`]), then the list of the service the packet
/// is for ([`crate::service::Service::acl`], looked up only when some service has one).
#[inline]
pub(super) fn acl_denies(snap: &Snapshot, meta: &IpMeta, pm: &PacketMeta) -> bool {
    let denies = |acl: &crate::acl::Acl| match meta.tuple.src.addr {
        IpAddr::V4(a) => acl.denies_v4(a),
        IpAddr::V6(a) => acl.denies_v6(a),
    };
    if denies(&snap.net.acl) {
        return true;
    }
    let services = &snap.services;
    if !services.has_acls() {
        return false;
    }
    let f = &pm.flow;
    services
        .find(f.proto, f.daddr, f.dport, pm.fwmark)
        .and_then(|i| services.service(i))
        .and_then(|s| s.acl.as_deref())
        .is_some_and(denies)
}

/// A routed plan: where it leaves and with what, and whether its next hop's MAC is known
/// (`mac`: when it is not, the packet is held until the neighbour resolves).
struct Routed {
    nh: NextHop,
    eg: Egress,
    mac: Option<[u8; 6]>,
}

impl<P: PacketBuf> Core<P> {
    /// Processes one received packet that arrived on port `in_port`: the reference the
    /// tests hold [`Core::process_burst`] to.
    ///
    /// `check_owner`: when true, a packet owned by another worker comes back as
    /// [`Out::Handoff`]; a packet received from a handoff ring is processed with false.
    #[cfg(any(test, feature = "reference"))]
    pub fn process(&mut self, pkt: P, in_port: u16, now_ms: u64, check_owner: bool) -> Out<P> {
        let cls = classify(pkt.data(), ChecksumMode::Software);
        self.process_classified(pkt, &cls, None, in_port, now_ms, check_owner)
    }

    /// One packet already classified (and, for TCP/UDP over IPv4, its tuple's
    /// [`crate::conn::ConnTable::flow_hash`] computed) through the general path.
    pub(super) fn process_classified(
        &mut self,
        pkt: P,
        cls: &wire::Result<Classified>,
        hash: Option<u64>,
        in_port: u16,
        now_ms: u64,
        check_owner: bool,
    ) -> Out<P> {
        self.counters.packets += 1;
        // A malformed frame (a runt among them) is dropped before anything else, with or
        // without a configuration: never passed to the kernel.
        if let Err(e) = cls {
            return self.drop(pkt, DropReason::Malformed(*e));
        }
        // The snapshot is moved out for the packet and put back (borrowed by the handlers:
        // no reference counting per packet).
        let Some(snap) = self.snap.take() else {
            return self.drop(pkt, DropReason::NotForUs);
        };
        let out = self.process_with(&snap, pkt, cls, hash, in_port, now_ms, check_owner);
        self.snap = Some(snap);
        out
    }

    /// [`Core::process_classified`] under snapshot `snap`: what the packet is, who owns
    /// it, and which handler takes it.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn process_with(
        &mut self,
        snap: &Snapshot,
        pkt: P,
        cls: &wire::Result<Classified>,
        hash: Option<u64>,
        in_port: u16,
        now_ms: u64,
        check_owner: bool,
    ) -> Out<P> {
        // The frame's tag must be its port's: another VLAN's frame (or a tagged one on
        // an untagged port) goes nowhere, not even to the kernel. (The frame is at least
        // an Ethernet header long: `cls` is not an error.)
        let gate = cls.is_ok() && (self.vlans || vlan::vid_of(pkt.data()).is_some());
        if gate && tag_mismatch(pkt.data(), snap, in_port) {
            return self.drop(pkt, DropReason::Vlan);
        }
        let meta = match cls {
            Err(e) => return self.drop(pkt, DropReason::Malformed(*e)),
            Ok(Classified::Arp(l2)) => return self.arp(pkt, l2.l3_offset, in_port, snap, now_ms),
            Ok(Classified::Other(_)) => return self.drop(pkt, DropReason::Unsupported),
            Ok(Classified::Ip(m)) => m,
        };
        if meta.version == IpVersion::V6 {
            return self.process_v6(snap, pkt, cls, meta, in_port, now_ms, check_owner);
        }
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (meta.tuple.src.addr, meta.tuple.dst.addr) else {
            return self.drop(pkt, DropReason::Unsupported);
        };
        if martian_source(src, &snap.net) {
            // The answer of a DR real server to a health check sent through it to the VIP
            // (from the host's kernel, behind the exception tap): the kernel's.
            if probe_reply(src, dst, in_port, &snap.net) {
                return self.drop(pkt, DropReason::NotForUs);
            }
            return self.drop(pkt, DropReason::Martian);
        }
        let local = snap.net.local.get(&dst).copied();
        if meta.frag.is_some() && !self.frag_deciding {
            return self.fragment(snap, pkt, cls, meta, local, in_port, now_ms, check_owner);
        }
        if check_owner {
            let owner = self.owner_with(snap, meta, local);
            if owner != self.id {
                self.counters.handoff_out += 1;
                return Out::Handoff(pkt, owner as u32);
            }
        }
        let proto = match meta.tuple.protocol {
            IpProtocol::TCP => Proto::Tcp,
            IpProtocol::UDP => Proto::Udp,
            IpProtocol::ICMP => {
                return self.icmp(pkt, meta, local.is_some(), in_port, snap, now_ms)
            }
            _ => return self.drop(pkt, DropReason::NotForUs),
        };
        // Built once, in place (copying a freshly written key costs store-forwarding stalls).
        let mut pm = PacketMeta {
            flow: FlowKey {
                proto,
                saddr: Addr::from(IpAddr::V4(src)),
                daddr: Addr::from(IpAddr::V4(dst)),
                sport: meta.tuple.src.port,
                dport: meta.tuple.dst.port,
            },
            fwmark: 0,
            tcp_flags: TcpFlags(meta.tcp_flags.0 as u8),
        };
        let hash = hash.unwrap_or_else(|| self.conns.flow_hash(&pm.flow));
        let to = steer_toward(&snap.net, dst, local);
        if matches!(to, Toward::LocalAddr | Toward::Client) {
            // A FULLNAT reply (RIP:rport -> LIP:lport) or a NAT reply (RS -> client).
            if let Some(id) = self.conns.lookup_out_hashed(hash, &pm.flow) {
                let setup = |s: &crate::conn::Session| s.flags & conn_flags::SYNPROXY != 0;
                if self.conns.get(id).is_some_and(setup) {
                    let tf = pm.tcp_flags;
                    return self.syn_proxy_setup_server(pkt, meta, id, tf, in_port, snap, now_ms);
                }
                return self.forward(
                    pkt,
                    meta,
                    id,
                    Direction::Output,
                    pm.tcp_flags,
                    in_port,
                    snap,
                    now_ms,
                );
            }
        }
        match to {
            // A request to a service, or a packet to a client that may open a session
            // of a service matched on the destination (a fwmark service).
            Toward::Service | Toward::Client => {
                // Its firewall mark (`[[marks]]`): a fwmark service of that mark is looked
                // up before the address services, as IPVS does with `skb->mark`. A new
                // session is scheduled with it; a packet of an existing one ignores it.
                pm.fwmark = snap.net.marks.mark(proto, src, dst, pm.flow.dport, in_port);
                self.client_packet(pkt, meta, &pm, hash, in_port, snap, now_ms)
            }
            // Nothing but replies is served on a LIP; nothing at all on a DIP.
            Toward::LocalAddr | Toward::Director => self.drop(pkt, DropReason::NotForUs),
        }
    }

    /// An ICMP packet: an echo request to one of our addresses is answered, an error
    /// about a session translated; anything else is not for the director.
    fn icmp(
        &mut self,
        pkt: P,
        meta: &IpMeta,
        to_us: bool,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        match meta.icmp {
            Some(i) if i.msg_type == Message::ECHO_REQUEST.0 && to_us => {
                self.echo_reply(pkt, meta, in_port, snap)
            }
            Some(i) if i.inner.is_some() => self.icmp_error(pkt, meta, snap, now_ms),
            _ => self.drop(pkt, DropReason::NotForUs),
        }
    }

    /// A client's packet without a session reply: finds its session, or schedules a new
    /// one (counted in its real server's connections), and forwards it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn client_packet(
        &mut self,
        pkt: P,
        meta: &IpMeta,
        pm: &PacketMeta,
        hash: u64,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let mut pkt = pkt;
        if pm.flow.proto == Proto::Tcp && snap.services.has_syn_proxy() {
            if pm.tcp_flags.has(TcpFlags::SYN) {
                if self.overloaded && self.syn_shed(pm, snap) {
                    return self.drop(pkt, DropReason::SynShed);
                }
                self.pressure.count(now_ms);
            }
            match self.syn_proxy_client(pkt, meta, pm, hash, in_port, snap, now_ms) {
                Ok(out) => return out,
                Err(p) => pkt = p,
            }
        }
        let net = &snap.net;
        let me = self.id as u16;
        // A packet that may open a session (a SYN, a UDP datagram; with `sloppy_tcp` any
        // TCP segment without RST that has no session) opens none with a wrong checksum:
        // the real server would drop it, and the table would keep it.
        let opens = pm.flow.proto == Proto::Udp
            || pm.tcp_flags.has(TcpFlags::SYN)
            || (net.sloppy_tcp
                && !pm.tcp_flags.has(TcpFlags::RST)
                && !matches!(
                    self.conns.lookup_hinted(hash, &pm.flow, None),
                    Some((_, false))
                ));
        if opens && !segment_checksum_ok(pkt.data(), meta) {
            return self.drop(pkt, DropReason::Malformed(wire::Error::BadChecksum));
        }
        // A packet that would open a session from a client an ACL denies (the global
        // list, then its service's) opens none, and is not charged to the budget. Looked
        // up only when denied: a packet of an established session of that client still
        // goes through (an ACL change does not cut connections). A denied packet whose
        // session ends and is rescheduled below (`conn_reuse_mode`) is refused there.
        let denied = opens && acl_denies(snap, meta, pm);
        if denied
            && !matches!(
                self.conns.lookup_hinted(hash, &pm.flow, None),
                Some((_, false))
            )
        {
            return self.drop(pkt, DropReason::AclDeny);
        }
        // Above the worker's new-session budget, a packet that would open a session and
        // has none is refused before it is scheduled: no session, no persistence
        // template, no scheduler state. Only looked up while the budget is spent, so
        // the packets of established sessions never pay for a flood. (While it is spent,
        // such a packet for no service is counted here rather than as not-for-us.)
        if opens
            && !self.new_budget.allows(now_ms)
            && !matches!(
                self.conns.lookup_hinted(hash, &pm.flow, None),
                Some((_, false))
            )
        {
            return self.drop(pkt, DropReason::NewSessionBudget);
        }
        // Schedule, then pick the FULLNAT local endpoint, then create.
        let res = match self.conns.schedule(&mut self.sched, pm, hash, now_ms) {
            Ok(Scheduled::Existing(id)) => Ok(id),
            Ok(Scheduled::New(new)) if denied => {
                // A new connection on the tuple of an ended session: denied (dropping
                // `new` creates nothing).
                drop(new);
                return self.drop(pkt, DropReason::AclDeny);
            }
            Ok(Scheduled::New(new)) if routes(new.dest().fwd) && meta.ttl <= 1 => {
                // Not sent on: no session (dropping `new` creates nothing).
                drop(new);
                return self.time_exceeded_ip(pkt, meta, in_port, now_ms);
            }
            Ok(Scheduled::New(new)) if !self.new_budget.allows(now_ms) => {
                // A packet whose old session was just ended (`conn_reuse_mode`,
                // `expire_nodest_conn`) and that is rescheduled above the budget: refused
                // too (dropping `new` creates nothing).
                drop(new);
                return self.drop(pkt, DropReason::NewSessionBudget);
            }
            Ok(Scheduled::New(new)) => {
                let local = local_for(&new, &mut self.laddrs, net, (me, self.rss));
                let res = new.create(local);
                if let Ok(id) = res {
                    self.opened(id);
                }
                res
            }
            Err(e) => Err(e),
        };
        match res {
            Ok(id) => {
                let (dir, flags) = (Direction::Input, pm.tcp_flags);
                self.forward(pkt, meta, id, dir, flags, in_port, snap, now_ms)
            }
            Err(e) => self.drop(pkt, refusal(e)),
        }
    }

    /// A SYN the SYN lane made (or found) session `id` for, classified in full: forwarded
    /// as [`Core::client_packet`] forwards a packet after making its session.
    pub(super) fn forward_made(
        &mut self,
        pkt: P,
        cls: &wire::Result<Classified>,
        id: ConnId,
        flags: TcpFlags,
        in_port: u16,
        now_ms: u64,
    ) -> Out<P> {
        // A lane reads only what the full classification accepts as TCP over IP.
        let Ok(Classified::Ip(meta)) = cls else {
            return self.drop(pkt, DropReason::Unsupported);
        };
        let Some(snap) = self.snap.take() else {
            return self.drop(pkt, DropReason::NotForUs);
        };
        let dir = Direction::Input;
        let out = self.forward(pkt, meta, id, dir, flags, in_port, &snap, now_ms);
        self.snap = Some(snap);
        out
    }

    /// Counts a session a client packet just opened: against the new-session budget, in
    /// the worker's connections and in its real server's.
    #[inline]
    pub(super) fn opened(&mut self, id: ConnId) {
        self.new_budget.charge();
        self.counters.conns += 1;
        if let Some(t) = self.traffic_of(id) {
            t.conns += 1;
        }
    }

    /// The worker that owns a classified packet whose destination is `local` (when it
    /// is one of ours): [`steer::owner`], and for an ICMP error travelling to a client
    /// the owner of the session it embeds ([`steer::owner_of_embedded`]).
    pub(super) fn owner_with(
        &self,
        snap: &Snapshot,
        meta: &IpMeta,
        local: Option<(LocalKind, u16)>,
    ) -> usize {
        let workers = snap.net.workers;
        let t = &meta.tuple;
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (t.src.addr, t.dst.addr) else {
            return self.id;
        };
        let to = steer_toward(&snap.net, dst, local);
        if workers > 1 {
            let inner = meta.icmp.and_then(|i| i.inner).map(|i| i.tuple);
            if let Some((IpAddr::V4(isrc), IpAddr::V4(idst), isport)) =
                inner.map(|t| (t.src.addr, t.dst.addr, t.src.port))
            {
                let from_lip = matches!(snap.net.local.get(&isrc), Some((LocalKind::Lip, _)));
                let embedded = (isrc, isport, idst);
                if let Some(o) = steer::owner_of_embedded(to, embedded, from_lip, workers) {
                    return o;
                }
            }
        }
        let dport = t.protocol.has_ports().then_some(t.dst.port);
        steer::owner(to, src, dst, dport, workers).unwrap_or(self.id)
    }

    /// Counts a drop and hands the packet back to be freed.
    #[inline]
    pub(super) fn drop(&mut self, pkt: P, r: DropReason) -> Out<P> {
        self.counters.drops[r.index()] += 1;
        Out::Drop(pkt, r)
    }

    /// The egress of a plan leaving on port `port_id` (`port`) to a next hop of MAC `mac`.
    #[inline(always)]
    pub(super) fn egress_of(
        &self,
        plan: &Plan,
        port_id: u16,
        port: &PortNet,
        mac: [u8; 6],
    ) -> Egress {
        let tunnel_src = if plan.fwd == FwdMethod::Tunnel {
            self.tun_src.get(usize::from(port_id)).copied()
        } else {
            None
        };
        Egress {
            macs: MacRewrite {
                src: EthernetAddress(port.mac),
                dst: EthernetAddress(mac),
            },
            tunnel_src: tunnel_src.unwrap_or(Ipv4Addr::UNSPECIFIED),
            mtu: port.mtu,
        }
    }

    /// Routes a plan: the next hop and port toward [`Plan::toward`], and its MAC (on a
    /// miss, an ARP request is queued). `None`: no route.
    fn route(&mut self, plan: &Plan, snap: &Snapshot, now_ms: u64) -> Option<Routed> {
        let (nh, port) = egress(snap, plan.toward, plan.fwd)?;
        let mac = self.neigh_mac(nh.addr, nh.port, now_ms);
        let eg = self.egress_of(plan, nh.port, port, mac.unwrap_or([0; 6]));
        Some(Routed { nh, eg, mac })
    }

    /// A packet of session `id` in direction `dir` (client → RS: `Input`; RS → client
    /// under NAT and FULLNAT: `Output`): state transition, sync (requests), plan, route,
    /// rewrite, send.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn forward(
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
        let Some(s) = self.conns.get(id) else {
            return self.drop(pkt, DropReason::NoSession);
        };
        if s.v6 != 0 || meta.version == IpVersion::V6 {
            // A session with an IPv6 end (NAT64 included).
            return self.forward_ip(pkt, meta, id, dir, flags, in_port, snap, now_ms);
        }
        let Some(plan) = Plan::of(s, reply, &self.conns) else {
            let r = if reply {
                DropReason::NotForUs
            } else {
                DropReason::Unsupported
            };
            return self.drop(pkt, r);
        };
        if plan.routes() && meta.ttl <= 1 {
            // Not sent on: the session does not see it.
            return self.time_exceeded(pkt, meta, in_port, now_ms);
        }
        self.conns.state_transition(id, dir, flags, now_ms);
        if !reply {
            self.sync_after_input(id, now_ms);
        }
        let Some(Routed { nh, eg, mac }) = self.route(&plan, snap, now_ms) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let len = pkt.len() as u64;
        let at = Layout::of(meta);
        // A FULLNAT session with a PROXY header or TOA to give: after the rewrite.
        let mut due = false;
        let res = match plan.apply(&mut pkt, &at, &eg) {
            Ok(()) => {
                match self.client_addr(&mut pkt, id, reply, &at, flags, eg.mtu, now_ms) {
                    Ok(d) => due = d,
                    Err(r) => return self.drop(pkt, r),
                }
                self.syn_proxy_translate(&mut pkt, id, reply, at.l4);
                if self.vlans || meta.l2.vlan_tci.is_some() {
                    retag_for(&mut pkt, snap, nh.port)
                } else {
                    Ok(())
                }
            }
            r => r,
        };
        match res {
            Ok(()) => {
                self.count_forwarded(id, dir, len);
                // The header goes once the next hop is known (else with a later segment).
                if due && mac.is_some() {
                    self.proxy_segment(&pkt, id, nh.port, now_ms);
                }
                self.emit(pkt, nh.port, nh.addr, mac)
            }
            Err(wire::Error::Oversize) if plan.fwd == FwdMethod::Tunnel && meta.dont_frag => {
                self.frag_needed(pkt, meta, &plan, &eg, in_port, now_ms)
            }
            Err(wire::Error::Oversize) if plan.fwd == FwdMethod::Tunnel => {
                let hop = (nh.port, nh.addr, mac);
                self.tun_split(pkt, id, dir, &plan, &at, &eg, hop, snap, meta)
            }
            Err(e) => self.drop(pkt, DropReason::Rewrite(e)),
        }
    }

    /// TUN refused an oversize packet with DF: frag-needed goes back to the client (out
    /// of the port it came in on), the packet is dropped.
    fn frag_needed(
        &mut self,
        pkt: P,
        meta: &IpMeta,
        plan: &Plan,
        eg: &Egress,
        in_port: u16,
        now_ms: u64,
    ) -> Out<P> {
        if self.icmp_budget.take(now_ms) {
            match tun::frag_needed(pkt.data(), meta, &plan.tunnel(eg), &mut self.scratch) {
                Ok(len) => {
                    self.counters.frag_needed_sent += 1;
                    self.originated(in_port, len);
                }
                Err(e) => return self.drop(pkt, DropReason::Rewrite(e)),
            }
        } else {
            self.counters.icmp_rate_limited += 1;
        }
        self.drop(pkt, DropReason::Rewrite(wire::Error::Oversize))
    }

    /// A routed packet whose TTL runs out here: time-exceeded goes back to its sender,
    /// from the address of the port it came in on (as a router answers), within the
    /// worker's ICMP budget; the packet is dropped as `rewrite:ttl-expired`.
    pub(super) fn time_exceeded(
        &mut self,
        pkt: P,
        meta: &IpMeta,
        in_port: u16,
        now_ms: u64,
    ) -> Out<P> {
        let src = self.tun_src.get(usize::from(in_port)).copied();
        let src = src
            .filter(|a| !a.is_unspecified())
            .or(match meta.tuple.dst.addr {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            });
        match src {
            Some(_) if !self.icmp_budget.take(now_ms) => self.counters.icmp_rate_limited += 1,
            Some(src) => {
                let msg = (Message::TIME_EXCEEDED, time_exceeded::TTL, 0);
                if let Ok(len) = icmp::originate(pkt.data(), meta, src, msg, &mut self.scratch) {
                    self.counters.time_exceeded_sent += 1;
                    self.originated(in_port, len);
                }
            }
            None => {}
        }
        self.drop(pkt, DropReason::Rewrite(wire::Error::TtlExpired))
    }

    /// Queues the frame just written into the scratch buffer for port `port`.
    pub(super) fn originated(&mut self, port: u16, len: usize) {
        if self.generated.len() < SIDE_CAP {
            self.generated.push((port, len));
        }
    }

    /// An ICMP error about a session: from the real server's side about a NAT or FULLNAT
    /// request (translated for the client with the session's reply plan), or from the
    /// client's side about a reply (translated, or under DR and TUN relayed, to the real
    /// server with the session's request plan), as IPVS's `ip_vs_in_icmp` relays them.
    fn icmp_error(&mut self, mut pkt: P, meta: &IpMeta, snap: &Snapshot, now_ms: u64) -> Out<P> {
        let Some(inner) = meta.icmp.and_then(|i| i.inner) else {
            return self.drop(pkt, DropReason::NotForUs);
        };
        let t = inner.tuple;
        let proto = match t.protocol {
            IpProtocol::TCP => Proto::Tcp,
            IpProtocol::UDP => Proto::Udp,
            _ => return self.drop(pkt, DropReason::NotForUs),
        };
        // The embedded packet went the other way: its tuple reversed is the session's
        // server-side tuple (an error from the real server's side about a request as
        // forwarded, (LIP|CIP):port -> RIP:rport) or its client-side tuple (an error from
        // the client's side about a reply, VIP:vport -> CIP:cport), as `ip_vs_in_icmp`
        // finds it.
        let reversed = FlowKey {
            proto,
            saddr: Addr::from(t.dst.addr),
            daddr: Addr::from(t.src.addr),
            sport: t.dst.port,
            dport: t.src.port,
        };
        let (id, reply) = match self.conns.lookup_out(&reversed) {
            Some(id) => (id, true),
            None => match self.conns.lookup_in(&reversed) {
                Some(id) => (id, false),
                None => return self.drop(pkt, DropReason::NotForUs),
            },
        };
        let Some(s) = self.conns.get(id) else {
            return self.drop(pkt, DropReason::NoSession);
        };
        if s.v6 != 0 {
            // A session with an IPv6 end: NAT64 translates the error into IPv6.
            return self.icmp_error_ip(pkt, meta, id, reply, snap, now_ms);
        }
        let Some(plan) = Plan::of(s, reply, &self.conns) else {
            return self.drop(pkt, DropReason::NotForUs);
        };
        let Some(Routed { nh, eg, mac }) = self.route(&plan, snap, now_ms) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        // NAT and FULLNAT translate the error to the view of the side it goes to; DR and
        // TUN relay it to the real server as any packet of the session. Then the tag of
        // the port it leaves by.
        let res = match plan.fwd {
            FwdMethod::Masq | FwdMethod::FullNat => {
                icmp::translate(&mut pkt, meta, &plan, &eg.macs)
            }
            _ => plan.apply(&mut pkt, &Layout::of(meta), &eg),
        };
        let res = match res {
            Ok(()) if self.vlans || meta.l2.vlan_tci.is_some() => {
                retag_for(&mut pkt, snap, nh.port)
            }
            r => r,
        };
        match res {
            Ok(()) => {
                self.counters.icmp_translated += 1;
                self.emit(pkt, nh.port, nh.addr, mac)
            }
            Err(e) => self.drop(pkt, DropReason::Rewrite(e)),
        }
    }

    /// Resolves the next hop's MAC; on a miss queues an ARP request when one is due.
    #[inline]
    pub(super) fn neigh_mac(&mut self, nh: Ipv4Addr, port: u16, now_ms: u64) -> Option<[u8; 6]> {
        match self.neigh.lookup(nh, now_ms) {
            crate::neigh::Lookup::Hit(mac) => Some(mac),
            crate::neigh::Lookup::Miss { send_request } => {
                if send_request && self.arp_requests.len() < SIDE_CAP {
                    self.arp_requests.push((port, nh));
                }
                None
            }
            crate::neigh::Lookup::Full => None,
        }
    }

    /// Sends a rewritten packet, or holds it until the next hop resolves.
    #[inline]
    pub(super) fn emit(&mut self, pkt: P, port: u16, nh: Ipv4Addr, mac: Option<[u8; 6]>) -> Out<P> {
        if mac.is_some() {
            return Out::Tx(pkt, port);
        }
        match self.neigh.hold(nh, (pkt, port)) {
            Ok(()) => Out::Held,
            Err((pkt, _)) => self.drop(pkt, DropReason::Unresolved),
        }
    }
}

/// The local endpoint a scheduled session `new` is made with: under FULLNAT one from its
/// service's LIP pool ([`pick_local`]; `None` when there is none, which refuses the
/// session), else none.
#[inline]
pub(super) fn local_for(
    new: &NewSession<'_>,
    laddrs: &mut LipPools,
    net: &NetConfig,
    me: (u16, bool),
) -> Option<(Addr, u16)> {
    if !new.needs_local() {
        return None;
    }
    let (t, rs, fk) = (new.table(), new.dest(), new.flow());
    let pool = laddrs.of_service(new.service_index())?;
    pick_local(pool, t, net, me, rs, fk)
}

/// FULLNAT: the local address and port of a new session of flow `fk` to real server `rs`
/// from `pool`, its service's LIP pool ([`LipPools::of_service`]: its own; an
/// address service without one takes its port-0 service's, as [`super::pool_key`] finds
/// it again), preferring a port whose reply the NIC's RSS steers to this worker's queue
/// (`me`: the queue, and whether any port has RSS, which the core notes per snapshot).
/// A port whose tuple toward the real server (`rip:rport -> lip:lport`) is already in
/// the session table (`conns`) is never handed out: the pool counts it as a conflict on
/// its LIP (`ipvsadm -G`'s CONFLICTS) and tries the next. `None`: no free port.
pub(super) fn pick_local(
    pool: &mut LaddrPool,
    conns: &ConnTable,
    net: &NetConfig,
    (me, rss): (u16, bool),
    rs: &ChosenServer,
    fk: &FlowKey,
) -> Option<(Addr, u16)> {
    let rip = rs.addr.to_ip();
    let rport = if rs.port == 0 { fk.dport } else { rs.port };
    let prefer = |lip: IpAddr, lport: u16| {
        let port = match lip {
            IpAddr::V4(a) => net.local.get(&a),
            IpAddr::V6(a) => net.local6.get(&a),
        };
        let steer = port
            .and_then(|(_, port)| net.rss.get(usize::from(*port)))
            .and_then(Option::as_ref);
        steer.is_none_or(|r| r.reply_queue(rip, lip, rport, lport) == me)
    };
    let held = |lip: IpAddr, lport: u16| {
        let reply = FlowKey {
            proto: fk.proto,
            saddr: rs.addr,
            daddr: Addr::from(lip),
            sport: rport,
            dport: lport,
        };
        conns.lookup_out(&reply).is_some()
    };
    // A LIP of the real server's family only (an IPv6 service with IPv4 servers takes
    // IPv4 LIPs: NAT64).
    let family = rip.is_ipv4();
    let other = |lip: IpAddr, lport| lip.is_ipv4() != family || held(lip, lport);
    let ep = if rss {
        pool.alloc(
            |lip, lport| lip.is_ipv4() == family && prefer(lip, lport),
            other,
        )
    } else {
        // Without RSS on any port, every port is as good (no lookup of the LIP's port).
        pool.alloc(|lip, _| lip.is_ipv4() == family, other)
    };
    ep.map(|ep| (Addr::from(ep.addr), ep.port))
}

/// The drop reason of a packet no session was found or created for.
pub(super) fn refusal(e: Refuse) -> DropReason {
    match e {
        Refuse::NoService => DropReason::NotForUs,
        Refuse::NotSyn => DropReason::NoSession,
        Refuse::TableFull => DropReason::TableFull,
        Refuse::NoDest => DropReason::NoDest,
        Refuse::NoLocalAddr => DropReason::NoLocalAddr,
        Refuse::DestUnavailable => DropReason::DestUnavailable,
    }
}

/// A source Linux calls martian: "this network" (0/8), loopback (127/8), multicast
/// (224/4), reserved (240/4, with the limited broadcast), or an address of the director
/// itself (a VIP, DIP or LIP).
#[inline]
pub(super) fn martian_source(src: Ipv4Addr, net: &NetConfig) -> bool {
    let first = src.octets()[0];
    first == 0 || src.is_loopback() || first >= 224 || net.local.contains_key(&src)
}

/// Whether a packet from `src` to `dst` received on `in_port` answers a health check that
/// the host's kernel sent to a VIP through a DR real server: from a VIP, to an address on
/// a subnet of `in_port` itself that is none of the director's (the host address of the
/// port's exception tap). Nothing the dataplane forwards looks like this: a DR server's
/// answer to a client goes to the client's subnet, which is not where it came from.
#[inline]
fn probe_reply(src: Ipv4Addr, dst: Ipv4Addr, in_port: u16, net: &NetConfig) -> bool {
    matches!(net.local.get(&src), Some((LocalKind::Vip, _)))
        && !net.local.contains_key(&dst)
        && !dst.is_multicast()
        && !dst.is_broadcast()
        && net
            .routes
            .lookup(dst)
            .is_some_and(|nh| nh.port == in_port && nh.addr == dst)
}

/// Whether the TCP or UDP checksum of a classified IPv4 or IPv6 packet is right (an
/// IPv4 UDP checksum of 0 is "none": right). Only packets that may open a session pay for it; the
/// established path leaves checksums to the end hosts (its rewrites keep a wrong sum
/// wrong).
pub(super) fn segment_checksum_ok(frame: &[u8], meta: &IpMeta) -> bool {
    let Some(seg) = frame.get(meta.l4_offset..meta.ip_end) else {
        return false;
    };
    let udp = meta.tuple.protocol == IpProtocol::UDP;
    // A first fragment's sum covers the whole datagram: left to the real server.
    if meta.frag.is_some() {
        return true;
    }
    let Ok(len) = u16::try_from(seg.len()) else {
        return false;
    };
    let proto = meta.tuple.protocol.0;
    let pseudo = match (meta.tuple.src.addr, meta.tuple.dst.addr) {
        // IPv4: a UDP checksum of 0 is "none". IPv6 has no such thing (RFC 8200).
        (IpAddr::V4(_), _) if udp && seg.get(6..8) == Some(&[0, 0]) => return true,
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            wire::checksum::pseudo_header_v4(src, dst, proto, len)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            wire::checksum::pseudo_header_v6(&src, &dst, proto, u32::from(len))
        }
        _ => return false,
    };
    wire::checksum::combine(&[pseudo, wire::checksum::data(seg)]) == 0xffff
}
