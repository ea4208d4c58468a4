//! Scheduling a client packet without a session, as `ip_vs_in` does: `conn_reuse_mode` and
//! `expire_nodest_conn` on the session found, the service lookup, persistence templates,
//! the scheduler's choice, and the creation of the session.
//!
//! Two steps, so that the caller picks the FULLNAT local endpoint between them without the
//! table calling back into it: [`ConnTable::schedule`] answers with the existing session or
//! a [`NewSession`] (the real server chosen, the table held borrowed), then
//! [`NewSession::create`] makes the session with the local endpoint the caller chose.

use crate::flow::{Addr, FlowKey, FwdMethod, Proto, TcpFlags};
use crate::sched::{CoreSched, DestSlot, SchedCtx};
use crate::service::{svc_flags, DestId, RealServer, Service, SvcIdx};

use super::session::{cip, hash_flow, split_addrs, Session, NIL};
use super::state::{TcpState, NEW_CONN_TIMEOUT};
use super::table::{ConnTable, VACANT};
use super::{flags, ConnId, PacketMeta, Refuse};

/// FTP's control port: a persistent FTP service's templates have port 0, so that the data
/// connections share them.
const FTP_PORT: u16 = 21;

/// The ports an invalidated template gets (out of any lookup's reach).
const INVALID_PORT: u16 = 0xffff;

/// `conn_reuse_mode` bit 2: FIN_WAIT sessions with `NOOUTPUT` are rescheduled by a SYN too.
const REUSE_FIN_WAIT_NOOUTPUT: u8 = 2;

/// What [`ConnTable::schedule`] found for a client packet.
#[must_use]
#[derive(Debug)]
pub enum Scheduled<'t> {
    /// The packet's session exists and may go on.
    Existing(ConnId),
    /// A real server was chosen for a new session; [`NewSession::create`] makes it.
    New(NewSession<'t>),
}

/// A session chosen but not made yet: its real server and the packet's tuple, what the
/// caller needs to pick a FULLNAT local endpoint. It holds the table borrowed, so nothing
/// changes between the choice and [`NewSession::create`]. Dropped without `create`, no
/// session is made and nothing is counted (a persistence template made for it stays, armed,
/// as when the kernel fails to make a connection after `ip_vs_sched_persist`).
#[must_use]
#[derive(Debug)]
pub struct NewSession<'t> {
    table: &'t mut ConnTable,
    /// The index in the adopted snapshot of the service that chose the real server.
    svc: SvcIdx,
    dest: ChosenServer,
    slot: DestSlot,
    tmpl: u32,
    /// The client packet's tuple (borrowed: a copy moved along with the rest was read
    /// back in wider words than it had been written in).
    flow: &'t FlowKey,
    /// `flow`'s hash ([`ConnTable::flow_hash`]): the session's client-side index entry.
    hash: u64,
    fwmark: u32,
    one_packet: bool,
    /// What a FULLNAT session owes its real server about the client (`cip::*` bits).
    cip: u8,
    /// Opened by a TCP segment that is not a SYN (`sloppy_tcp`).
    sloppy: bool,
    now_ms: u64,
}

/// What making a session reads of the real server chosen for it: the [`RealServer`]'s
/// address, port and forwarding method, copied field by field. (The whole
/// [`RealServer`], copied and then moved into the [`NewSession`], was read back in wider
/// words than it had been written in: a store-forwarding stall on every new session.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChosenServer {
    /// Real server address.
    pub addr: Addr,
    /// Real server port (0 for fwmark services: the packet's port).
    pub port: u16,
    /// Forwarding method.
    pub fwd: FwdMethod,
}

/// The session of a client packet, and whether this packet created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The session.
    pub id: ConnId,
    /// True when the packet created it (false: it existed).
    pub created: bool,
}

impl NewSession<'_> {
    /// The real server chosen.
    pub fn dest(&self) -> &ChosenServer {
        &self.dest
    }

    /// The client packet's tuple.
    pub fn flow(&self) -> &FlowKey {
        self.flow
    }

    /// The index in the adopted snapshot ([`crate::service::ServiceSet`]) of the service
    /// that chose the real server (whose LIP pool a FULLNAT session takes its local
    /// address from).
    pub fn service_index(&self) -> SvcIdx {
        self.svc
    }

    /// The session table the session will be made in (to check a FULLNAT local endpoint
    /// against the sessions it holds before [`NewSession::create`]).
    pub fn table(&self) -> &ConnTable {
        self.table
    }

    /// True when the session needs a local endpoint (FULLNAT): pass one to
    /// [`NewSession::create`].
    pub fn needs_local(&self) -> bool {
        self.dest.fwd == FwdMethod::FullNat
    }

    /// Makes the session (state NONE; run [`ConnTable::state_transition`] for the packet
    /// afterwards). `local` is the FULLNAT local address and port (ignored otherwise; `None`
    /// refuses a FULLNAT session with [`Refuse::NoLocalAddr`]).
    pub fn create(self, local: Option<(Addr, u16)>) -> Result<ConnId, Refuse> {
        let NewSession {
            table: t,
            svc: _,
            dest: d,
            slot,
            tmpl,
            flow,
            hash,
            fwmark,
            one_packet,
            cip,
            sloppy,
            now_ms,
        } = self;
        let (laddr, lport) = if d.fwd == FwdMethod::FullNat {
            match local {
                Some(v) => v,
                None => {
                    t.stats.no_local_addr += 1;
                    return Err(Refuse::NoLocalAddr);
                }
            }
        } else {
            (flow.saddr, flow.sport)
        };
        let Some(i) = t.alloc() else {
            t.stats.table_full += 1;
            return Err(Refuse::TableFull);
        };
        let mut fl = flags::LIVE | flags::INACTIVE | d.fwd as u16;
        if !d.fwd.replies_via_director() {
            fl |= flags::NOOUTPUT;
        }
        if one_packet {
            fl |= flags::ONE_PACKET;
        }
        let cip = if d.fwd == FwdMethod::FullNat { cip } else { 0 };
        if cip != 0 {
            fl |= flags::CIP;
        }
        let (lo, hi, v6) = split_addrs([flow.saddr, flow.daddr, d.addr, laddr]);
        let dport = if d.port != 0 { d.port } else { flow.dport };
        t.slab[i as usize] = Session {
            lo,
            hi,
            v6,
            cport: flow.sport,
            vport: flow.dport,
            dport,
            lport,
            fwmark,
            timeout: if one_packet { 0 } else { NEW_CONN_TIMEOUT },
            dest: slot,
            control: tmpl,
            flags: fl,
            proto: flow.proto,
            cip,
            ..VACANT
        };
        t.dests.bind(slot, false, true);
        if tmpl != NIL {
            let c = &mut t.slab[tmpl as usize];
            c.n_control += 1;
        }
        if one_packet {
            t.push_dying(i);
        } else {
            t.hash_in_with(i, hash);
            if fl & flags::NOOUTPUT == 0 {
                // The session's `out_key`, from the values just written into it.
                let out = FlowKey {
                    proto: flow.proto,
                    saddr: d.addr,
                    daddr: laddr,
                    sport: dport,
                    dport: lport,
                };
                t.hash_out_with(i, hash_flow(t.seed, &out, false));
            }
            t.arm(i, now_ms);
        }
        t.stats.created += 1;
        if sloppy {
            t.stats.sloppy += 1;
        }
        Ok(ConnId(i))
    }
}

impl ConnTable {
    /// Finds or creates the session for a client packet in one call: [`ConnTable::schedule`]
    /// then [`NewSession::create`] with `local` as the FULLNAT local endpoint.
    pub fn resolve_in(
        &mut self,
        core: &mut CoreSched,
        pkt: &PacketMeta,
        now_ms: u64,
        local: Option<(Addr, u16)>,
    ) -> Result<Resolved, Refuse> {
        let hash = self.flow_hash(&pkt.flow);
        match self.schedule(core, pkt, hash, now_ms)? {
            Scheduled::Existing(id) => Ok(Resolved { id, created: false }),
            Scheduled::New(new) => new.create(local).map(|id| Resolved { id, created: true }),
        }
    }

    /// The session of a client packet whose tuple hashes to `hash` ([`ConnTable::flow_hash`]),
    /// as `ip_vs_in` finds it: lookup, then `conn_reuse_mode` and `expire_nodest_conn`
    /// handling, then the service lookup and, for a packet without a session, the
    /// scheduling of a real server (and the persistence template when needed). Only a TCP
    /// SYN without RST or a UDP datagram may get a new session; with `sloppy_tcp` any TCP
    /// segment without RST may, unless the server chosen is a FULLNAT one.
    pub fn schedule<'t>(
        &'t mut self,
        core: &mut CoreSched,
        pkt: &'t PacketMeta,
        hash: u64,
        now_ms: u64,
    ) -> Result<Scheduled<'t>, Refuse> {
        if let Some(id) = self.lookup_in_hashed(hash, &pkt.flow) {
            if self.may_go_on(id, pkt)? {
                return Ok(Scheduled::Existing(id));
            }
            self.stats.reused += 1;
            self.expire_now(id);
        }
        self.schedule_unseen(core, pkt, hash, now_ms)
            .map(Scheduled::New)
    }

    /// [`ConnTable::schedule`] for a packet whose tuple has no session: the caller has
    /// just looked it up (either side, [`ConnTable::lookup_hinted`]) and found none, so
    /// the lookup is not made again (the SYN lanes). Its service found, a real server
    /// scheduled, as `schedule` does it then.
    ///
    /// In line, with `schedule_new`: the [`NewSession`] is then built where
    /// the SYN lane uses it. Returned through memory, it was moved out of its `Result`
    /// with 16-byte loads of fields just written by narrower stores, which cannot be
    /// forwarded from the store buffer: a stall per new session (14 % of the SYN lane's
    /// samples on an AMD EPYC).
    #[inline(always)]
    pub fn schedule_unseen<'t>(
        &'t mut self,
        core: &mut CoreSched,
        pkt: &'t PacketMeta,
        hash: u64,
        now_ms: u64,
    ) -> Result<NewSession<'t>, Refuse> {
        let f = &pkt.flow;
        let Some(idx) = core
            .snapshot()
            .and_then(|s| s.find(f.proto, f.daddr, f.dport, pkt.fwmark))
        else {
            self.stats.no_service += 1;
            return Err(Refuse::NoService);
        };
        self.schedule_new(core, idx, pkt, hash, now_ms)
    }

    /// Whether a client packet goes on in its session `id` (true), or the session is to be
    /// expired and the packet rescheduled (false: `conn_reuse_mode`, or a removed server
    /// with `expire_nodest_conn`); a removed server without `expire_nodest_conn` refuses.
    fn may_go_on(&mut self, id: ConnId, pkt: &PacketMeta) -> Result<bool, Refuse> {
        let s = &self.slab[id.0 as usize];
        let rt = self.dests.get(s.dest);
        let usable = self.dest_usable(id);
        let mut resched = false;
        if self.cfg.conn_reuse_mode != 0
            && s.proto == Proto::Tcp
            && pkt.tcp_flags.has(TcpFlags::SYN)
        {
            let st = s.tcp_state();
            // Quiesced server with expire_nodest_conn, or is_new_conn_expected().
            let quiesced = self.cfg.expire_nodest_conn && rt.is_some_and(|d| d.weight == 0);
            let expected = s.control == NIL
                && (st == TcpState::TimeWait
                    || st == TcpState::Close
                    || (self.cfg.conn_reuse_mode & REUSE_FIN_WAIT_NOOUTPUT != 0
                        && st == TcpState::FinWait
                        && s.flags & flags::NOOUTPUT != 0));
            resched = quiesced || expected;
        }
        if !resched {
            if usable {
                return Ok(true);
            }
            if !self.cfg.expire_nodest_conn {
                self.stats.dest_unavailable += 1;
                return Err(Refuse::DestUnavailable);
            }
        }
        Ok(false)
    }

    /// Schedules a real server of service `svc` (index in the adopted snapshot) for a client
    /// packet without a session, making the persistence template when needed. In line
    /// (see [`ConnTable::schedule_unseen`]).
    #[inline(always)]
    fn schedule_new<'t>(
        &'t mut self,
        core: &mut CoreSched,
        svc: SvcIdx,
        pkt: &'t PacketMeta,
        hash: u64,
        now_ms: u64,
    ) -> Result<NewSession<'t>, Refuse> {
        let flow = &pkt.flow;
        // tcp_conn_schedule: `(th->syn || sysctl_sloppy_tcp) && !th->rst`.
        let mut sloppy = false;
        match flow.proto {
            Proto::Tcp => {
                let syn = pkt.tcp_flags.has(TcpFlags::SYN);
                if (!syn && !self.cfg.sloppy_tcp) || pkt.tcp_flags.has(TcpFlags::RST) {
                    self.stats.not_syn += 1;
                    return Err(Refuse::NotSyn);
                }
                sloppy = !syn;
            }
            Proto::Udp => {}
            Proto::Ip => {
                self.stats.no_service += 1;
                return Err(Refuse::NoService);
            }
        }
        if self.is_full() {
            self.stats.table_full += 1;
            return Err(Refuse::TableFull);
        }
        let Some((snap, svcs)) = core.parts() else {
            self.stats.no_service += 1;
            return Err(Refuse::NoService);
        };
        let (Some(service), Some(ss)) = (snap.service(svc), svcs.get_mut(svc as usize)) else {
            self.stats.no_service += 1;
            return Err(Refuse::NoService);
        };
        let ctx = SchedCtx {
            flow: *flow,
            svc_flags: service.flags,
            now_ms,
        };
        let (pos, tmpl) = if service.is_persistent() {
            // ip_vs_sched_persist
            let key = template_key(service, flow);
            let found = self.valid_template(&key, |rt_id| match snap.dest_location(rt_id) {
                Some((si, p)) if si == svc => Some(p as usize),
                _ => None,
            });
            match found {
                Some((ct, p)) => (p, ct),
                None => {
                    let Some(p) = ss.schedule(service, &self.dests, &ctx) else {
                        self.stats.no_dest += 1;
                        return Err(Refuse::NoDest);
                    };
                    let t =
                        self.make_template(&key, service, &service.dests[p], ss.slot(p), pkt)?;
                    (p, t)
                }
            }
        } else {
            if service.fwmark().is_none() && flow.dport != service.port() {
                // Port-zero services must be persistent.
                self.stats.no_dest += 1;
                return Err(Refuse::NoDest);
            }
            match ss.schedule(service, &self.dests, &ctx) {
                Some(p) => (p, NIL),
                None => {
                    self.stats.no_dest += 1;
                    return Err(Refuse::NoDest);
                }
            }
        };
        let Some(d) = service.dests.get(pos).map(|d| ChosenServer {
            addr: d.addr,
            port: d.port,
            fwd: d.fwd,
        }) else {
            self.stats.no_dest += 1;
            return Err(Refuse::NoDest);
        };
        if sloppy && d.fwd == FwdMethod::FullNat {
            // The server knows this flow by the local address and port of the director
            // that saw its SYN: a new session here would reach it as a stranger.
            self.stats.not_syn += 1;
            return Err(Refuse::NotSyn);
        }
        let slot = ss.slot(pos);
        let one_packet = service.flags & svc_flags::ONEPACKET != 0 && flow.proto == Proto::Udp;
        if tmpl != NIL {
            // ip_vs_conn_put(ct): every new session re-arms the template's timer.
            self.arm(tmpl, now_ms);
        }
        Ok(NewSession {
            table: self,
            svc,
            dest: d,
            slot,
            tmpl,
            flow,
            hash,
            fwmark: pkt.fwmark,
            one_packet,
            cip: client_addr_bits(service.flags, flow.proto),
            sloppy,
            now_ms,
        })
    }

    /// The persistence template of `key` if it is still good (`ip_vs_check_template`): its
    /// server is available (and not quiesced with `expire_quiescent_template`) and still
    /// in the service (`position` gives its place there). A bad one is invalidated.
    /// Returns the template and the server's position.
    fn valid_template(
        &mut self,
        key: &FlowKey,
        position: impl Fn(DestId) -> Option<usize>,
    ) -> Option<(u32, usize)> {
        let ct = self.lookup_template(key)?;
        let t = &self.slab[ct.0 as usize];
        let valid = self.dests.get(t.dest).and_then(|rt| {
            if !rt.available || (self.cfg.expire_quiescent_template && rt.weight == 0) {
                return None;
            }
            position(rt.id)
        });
        match valid {
            Some(p) => Some((ct.0, p)),
            None => {
                self.invalidate_template(ct.0);
                None
            }
        }
    }

    /// Makes the persistence template `key` pinning the client network to server `d`.
    fn make_template(
        &mut self,
        key: &FlowKey,
        service: &Service,
        d: &RealServer,
        slot: DestSlot,
        pkt: &PacketMeta,
    ) -> Result<u32, Refuse> {
        let Some(t) = self.alloc() else {
            self.stats.table_full += 1;
            return Err(Refuse::TableFull);
        };
        let snet = key.saddr;
        let (lo, hi, v6) = split_addrs([snet, key.daddr, d.addr, snet]);
        self.slab[t as usize] = Session {
            lo,
            hi,
            v6,
            vport: key.dport,
            dport: d.port,
            fwmark: pkt.fwmark,
            timeout: service.timeout,
            dest: slot,
            flags: flags::LIVE | flags::TEMPLATE | d.fwd as u16 | flags::INACTIVE,
            proto: key.proto,
            ..VACANT
        };
        self.dests.bind(slot, true, false);
        self.hash_in(t, true);
        self.stats.templates += 1;
        Ok(t)
    }

    /// `ip_vs_check_template` failure: the template leaves the index (the kernel rehashes it
    /// with ports 0xffff) and waits for its timer.
    fn invalidate_template(&mut self, i: u32) {
        self.unhash(i);
        let s = &mut self.slab[i as usize];
        s.vport = INVALID_PORT;
        s.dport = INVALID_PORT;
        s.cport = 0;
    }
}

/// The persistence template key of a packet: `<proto, caddr & mask, 0, vaddr, vport>`
/// (port 0 for FTP and port-zero services), or `<IP, caddr & mask, 0, mark, 0>` for a
/// firewall-mark service.
fn template_key(service: &Service, flow: &FlowKey) -> FlowKey {
    let snet = flow.saddr.masked(&service.netmask);
    let mut key = FlowKey {
        proto: flow.proto,
        saddr: snet,
        daddr: flow.daddr,
        sport: 0,
        dport: 0,
    };
    if flow.dport == service.port() {
        if service.port() != FTP_PORT {
            key.dport = flow.dport;
        }
    } else if let Some(mark) = service.fwmark() {
        key.proto = Proto::Ip;
        key.daddr = if service.is_v6() {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&mark.to_be_bytes());
            Addr(a)
        } else {
            Addr::from_v4_bits(mark)
        };
    }
    key
}

/// The client-address work (`cip::*`) a service's flags ask of its FULLNAT sessions of
/// protocol `proto`: PROXY v1 and TOA for TCP, PROXY v2 for TCP and UDP.
fn client_addr_bits(svc: u32, proto: Proto) -> u8 {
    let mut c = 0;
    match proto {
        Proto::Tcp => {
            if svc & svc_flags::PROXY_V2 != 0 {
                c |= cip::PP2;
            } else if svc & svc_flags::PROXY_V1 != 0 {
                c |= cip::PP1;
            }
            if svc & svc_flags::TOA != 0 {
                c |= cip::TOA;
            }
        }
        Proto::Udp if svc & svc_flags::PROXY_V2 != 0 => c |= cip::PP2,
        _ => {}
    }
    c
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn new_session_without_transition_lives_3s() {
        let mut h = H::tcp(SchedKind::Wlc, &[nat(RS1)]);
        let p = PacketMeta {
            flow: FlowKey {
                proto: Proto::Tcp,
                saddr: C1,
                daddr: VIP,
                sport: 9,
                dport: 80,
            },
            fwmark: 0,
            tcp_flags: TcpFlags::SYN,
        };
        let id = h.t.resolve_in(&mut h.core, &p, 0, None).unwrap().id;
        assert_eq!(h.state(id), "NONE");
        assert_eq!(h.counts(h.id_of(RS1)), (0, 1, 0));
        assert_eq!(h.expire(3 * SEC - 1), 0);
        assert_eq!(h.expire(3 * SEC), 1);
    }

    #[test]
    fn one_packet_udp_session_lives_for_one_datagram() {
        let key = vip_key(Proto::Udp, 53);
        let mut h = H::new(
            Proto::Udp,
            ServiceConfig::new(key, SchedKind::Rr).flags(svc_flags::ONEPACKET),
            &[DestConfig::new(RS1, 53, FwdMethod::Route)],
            8,
        );
        let id = h.pkt(C1, 40000, Proto::Udp, 53, TcpFlags::NONE, 0).unwrap();
        assert_ne!(h.t.get(id).unwrap().flags() & flags::ONE_PACKET, 0);
        assert_eq!(h.t.lookup_in(&h.t.get(id).unwrap().in_key()), None);
        assert_eq!(h.expire(0), 1);
        assert_eq!(h.counts(h.id_of(RS1)), (0, 0, 0));
    }

    #[test]
    fn non_syn_without_session_is_counted_and_refused() {
        let mut h = H::tcp(SchedKind::Wlc, &[nat(RS1)]);
        assert_eq!(
            h.pkt(C1, 5, Proto::Tcp, 80, TcpFlags::ACK, 0),
            Err(Refuse::NotSyn)
        );
        assert_eq!(
            h.pkt(C1, 5, Proto::Tcp, 80, TcpFlags::SYN | TcpFlags::RST, 0),
            Err(Refuse::NotSyn)
        );
        assert_eq!(h.t.stats().not_syn, 2);
        assert_eq!(h.t.len(), 0);
        // Not a service: NoService.
        assert_eq!(
            h.pkt(C1, 5, Proto::Tcp, 81, TcpFlags::SYN, 0),
            Err(Refuse::NoService)
        );
    }

    #[test]
    fn full_table_refuses_and_keeps_existing_sessions() {
        let key = vip_key(Proto::Tcp, 80);
        let mut h = H::new(
            Proto::Tcp,
            ServiceConfig::new(key, SchedKind::Rr),
            &[nat(RS1)],
            2,
        );
        let a = h.syn(C1, 1, 0).unwrap();
        let b = h.syn(C1, 2, 0).unwrap();
        assert_eq!(h.syn(C1, 3, 0), Err(Refuse::TableFull));
        assert_eq!(h.t.stats().table_full, 1);
        assert_eq!(h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, 1), Ok(a));
        assert_eq!(h.state(a), "ESTABLISHED");
        assert_eq!(h.state(b), "SYN_RECV");
        assert_eq!(h.counts(h.id_of(RS1)), (2, 0, 0));
        // Once one goes, a new one fits.
        h.expire(61 * SEC);
        assert!(h.syn(C1, 3, 61 * SEC).is_ok());
    }

    #[test]
    fn weight_zero_quiesces_and_thresholds_overload() {
        let mut h = H::tcp(SchedKind::Wlc, &[nat(RS1), nat(RS2)]);
        let (a, b) = (h.id_of(RS1), h.id_of(RS2));
        h.st.edit_dest(&h.key, nat(RS2).weight(0)).unwrap();
        h.publish();
        let x = h.syn(C1, 1, 0).unwrap();
        let y = h.syn(C1, 2, 0).unwrap();
        assert_eq!(h.t.dest_of(x), Some(a));
        assert_eq!(h.t.dest_of(y), Some(a));
        // Existing sessions of a quiesced server go on.
        h.st.edit_dest(&h.key, nat(RS1).weight(0)).unwrap();
        h.publish();
        assert_eq!(h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, 0), Ok(x));
        assert_eq!(h.syn(C1, 3, 0), Err(Refuse::NoDest));
        assert_eq!(h.t.stats().no_dest, 1);
        // Upper threshold 3 on B: the 3rd session overloads it; it clears at 1 (1*4 < 3*3? the
        // rule is total*4 < u*3: 2*4=8 < 9).
        h.st.edit_dest(&h.key, nat(RS2).weight(1).thresholds(3, 0))
            .unwrap();
        h.publish();
        let s: Vec<ConnId> = (10..13).map(|p| h.syn(C1, p, 0).unwrap()).collect();
        assert_eq!(h.counts(b), (3, 0, 0));
        assert_eq!(h.syn(C1, 13, 0), Err(Refuse::NoDest));
        h.pkt(C1, 10, Proto::Tcp, 80, TcpFlags::ACK, 0).unwrap();
        h.pkt(C1, 10, Proto::Tcp, 80, TcpFlags::RST, 0).unwrap(); // ES -> CLOSE, 10 s
        h.expire(10 * SEC);
        assert_eq!(h.counts(b), (2, 0, 0));
        assert!(h.syn(C1, 14, 10 * SEC).is_ok());
        let _ = s;
    }

    #[test]
    fn persistence_sticks_network_until_template_expires() {
        let key = vip_key(Proto::Tcp, 80);
        // rr over C, B, A (added A, B, C).
        let mut h = H::new(
            Proto::Tcp,
            ServiceConfig::new(key, SchedKind::Rr)
                .persistent(360)
                .netmask(Addr::v4_netmask(0xffff_ff00)),
            &[nat(RS1), nat(RS2), nat(RS3)],
            64,
        );
        let (a, b, c) = (h.id_of(RS1), h.id_of(RS2), h.id_of(RS3));
        let x = h.syn(Addr::v4(1, 2, 3, 4), 1000, 0).unwrap();
        assert_eq!(h.t.dest_of(x), Some(c));
        // Same /24: same server although rr would move on.
        let y = h.syn(Addr::v4(1, 2, 3, 77), 1000, SEC).unwrap();
        assert_eq!(h.t.dest_of(y), Some(c));
        // Another network: rr's next.
        let z = h.syn(Addr::v4(5, 6, 7, 8), 1000, SEC).unwrap();
        assert_eq!(h.t.dest_of(z), Some(b));
        assert_eq!(h.counts(c), (2, 0, 1));
        let tmpl: Vec<String> =
            h.t.list(SEC)
                .filter(|e| e.flags & flags::TEMPLATE != 0)
                .map(|e| e.format_row())
                .collect();
        assert!(
            tmpl.contains(
                &"TCP 06:00  NONE        1.2.3.0:0          192.168.1.100:80   10.1.1.3:8080"
                    .to_string()
            ),
            "{tmpl:?}"
        );
        // Sessions (SYN_RECV, 60 s) expire; templates live 360 s from the last new session.
        h.expire(62 * SEC);
        assert_eq!(h.t.len(), 2);
        let again = h.syn(Addr::v4(1, 2, 3, 4), 1001, 300 * SEC).unwrap();
        assert_eq!(h.t.dest_of(again), Some(c));
        // That re-armed the 1.2.3.0 template to 300 + 360 = 660 s.
        h.pkt(
            Addr::v4(1, 2, 3, 4),
            1001,
            Proto::Tcp,
            80,
            TcpFlags::RST,
            300 * SEC,
        )
        .unwrap();
        h.expire(659 * SEC);
        assert_eq!(h.t.len(), 1);
        h.expire(660 * SEC);
        assert_eq!(h.t.len(), 0);
        assert_eq!(h.counts(c), (0, 0, 0));
        // After expiry the network is scheduled afresh: rr's next after B is A.
        let n = h.syn(Addr::v4(1, 2, 3, 4), 1002, 700 * SEC).unwrap();
        assert_eq!(h.t.dest_of(n), Some(a));
    }

    #[test]
    fn removed_server_invalidates_template_and_nodest_handling() {
        let key = vip_key(Proto::Tcp, 80);
        let mut h = H::new(
            Proto::Tcp,
            ServiceConfig::new(key, SchedKind::Rr).persistent(360),
            &[nat(RS1), nat(RS2)],
            64,
        );
        let (a, b) = (h.id_of(RS1), h.id_of(RS2));
        let x = h.syn(C1, 1, 0).unwrap();
        assert_eq!(h.t.dest_of(x), Some(b));
        h.st.del_dest(&key, RS2, 8080).unwrap();
        h.publish();
        // expire_nodest_conn = 0: the session's packets are dropped.
        assert_eq!(
            h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, SEC),
            Err(Refuse::DestUnavailable)
        );
        assert!(h.t.dest_unavailable(x));
        // A new session from the client: the template is invalid -> rescheduled to A.
        let y = h.syn(C1, 2, SEC).unwrap();
        assert_eq!(h.t.dest_of(y), Some(a));
        // expire_nodest_conn = 1: the old session is expired and a SYN rescheduled.
        h.t.set_sysctls(1, true, false);
        let z = h.syn(C1, 1, 2 * SEC).unwrap();
        assert_eq!(h.t.dest_of(z), Some(a));
        h.expire(2 * SEC);
        // The sessions are gone; B's counters stay while its (invalid) template lives.
        assert_eq!(h.counts(b), (0, 0, 1));
        assert_eq!(h.t.stats().reused, 1);
    }

    #[test]
    fn sessions_resume_when_a_cleared_table_is_restored() {
        // ipvsadm -C then -R of the same table: the servers come back from the trash with
        // their ids, so their sessions (and counters) resume.
        let mut h = H::tcp(SchedKind::Rr, &[nat(RS1), nat(RS2)]);
        let x = h.syn(C1, 1, 0).unwrap();
        h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, 0).unwrap();
        let b = h.t.dest_of(x).unwrap();
        h.st.clear();
        h.publish();
        assert_eq!(
            h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, SEC),
            Err(Refuse::DestUnavailable)
        );
        let key = h.key;
        h.st.add_service(ServiceConfig::new(key, SchedKind::Rr))
            .unwrap();
        h.publish();
        // Service back, servers not yet: still dropped.
        assert_eq!(
            h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, SEC),
            Err(Refuse::DestUnavailable)
        );
        h.st.add_dest(&key, nat(RS1)).unwrap();
        h.st.add_dest(&key, nat(RS2)).unwrap();
        h.publish();
        assert_eq!(h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, 2 * SEC), Ok(x));
        assert_eq!(h.t.dest_of(x), Some(b));
        assert_eq!(h.counts(b), (1, 0, 0));
        assert_eq!(h.t.stats().dest_unavailable, 2);
    }

    #[test]
    fn quiesced_server_keeps_persistent_clients_unless_expire_quiescent_template() {
        let key = vip_key(Proto::Tcp, 80);
        let mut h = H::new(
            Proto::Tcp,
            ServiceConfig::new(key, SchedKind::Rr).persistent(360),
            &[nat(RS1), nat(RS2)],
            64,
        );
        let (a, b) = (h.id_of(RS1), h.id_of(RS2));
        assert_eq!(
            {
                let x = h.syn(C1, 1, 0).unwrap();
                h.t.dest_of(x)
            },
            Some(b)
        );
        h.st.edit_dest(&key, nat(RS2).weight(0)).unwrap();
        h.publish();
        // Quiesced: no new clients, but the persistent client still goes to B.
        assert_eq!(
            {
                let x = h.syn(C1, 2, 0).unwrap();
                h.t.dest_of(x)
            },
            Some(b)
        );
        assert_eq!(
            {
                let x = h.syn(Addr::v4(5, 5, 5, 5), 1, 0).unwrap();
                h.t.dest_of(x)
            },
            Some(a)
        );
        // expire_quiescent_template: the template is invalid, the client moves.
        h.t.set_sysctls(1, false, true);
        assert_eq!(
            {
                let x = h.syn(C1, 3, 0).unwrap();
                h.t.dest_of(x)
            },
            Some(a)
        );
        // Overload does not invalidate a template either (an edit sets no overload; the
        // next bind does).
        h.st.edit_dest(&key, nat(RS1).thresholds(1, 0)).unwrap();
        h.publish();
        assert!(!h.t.dests().by_id(a).unwrap().overloaded);
        let x = h.syn(C1, 4, 0).unwrap();
        assert_eq!(h.t.dest_of(x), Some(a));
        assert!(h.t.dests().by_id(a).unwrap().overloaded);
        let y = h.syn(C1, 5, 0).unwrap();
        assert_eq!(h.t.dest_of(y), Some(a));
        assert_eq!(h.syn(Addr::v4(6, 6, 6, 6), 1, 0), Err(Refuse::NoDest));
    }

    #[test]
    fn conn_reuse_reschedules_syn_on_time_wait() {
        let mut h = H::tcp(SchedKind::Rr, &[nat(RS1), nat(RS2)]);
        let (a, b) = (h.id_of(RS1), h.id_of(RS2));
        let x = h.syn(C1, 7, 0).unwrap();
        assert_eq!(h.t.dest_of(x), Some(b));
        h.pkt(C1, 7, Proto::Tcp, 80, TcpFlags::ACK, 0).unwrap();
        h.pkt(C1, 7, Proto::Tcp, 80, TcpFlags::FIN, 0).unwrap(); // CLOSE_WAIT
        h.reply(x, TcpFlags::FIN, 0); // TIME_WAIT
        assert_eq!(h.state(x), "TIME_WAIT");
        let y = h.syn(C1, 7, SEC).unwrap();
        assert_ne!(x, y);
        assert_eq!(h.t.dest_of(y), Some(a));
        assert_eq!(h.state(y), "SYN_RECV");
        assert_eq!(h.t.lookup_in(&h.t.get(y).unwrap().in_key()), Some(y));
        assert_eq!(h.expire(SEC), 1); // the old one is released
        assert_eq!(h.counts(b), (0, 0, 0));
        assert_eq!(h.t.stats().reused, 1);
        // conn_reuse_mode 0: the SYN goes to the existing session.
        h.t.set_sysctls(0, false, false);
        h.pkt(C1, 7, Proto::Tcp, 80, TcpFlags::RST, SEC).unwrap(); // CLOSE
        assert_eq!(h.syn(C1, 7, 2 * SEC), Ok(y));
    }

    #[test]
    fn fullnat_local_address_and_out_lookup() {
        let mut h = H::tcp(
            SchedKind::Wlc,
            &[DestConfig::new(RS1, 8080, FwdMethod::FullNat)],
        );
        let id = h.syn(C1, 3333, 0).unwrap();
        let s = h.t.get(id).unwrap().clone();
        assert_eq!((s.laddr(), s.lport()), (Addr::v4(172, 16, 0, 1), 40000));
        let out = FlowKey {
            proto: Proto::Tcp,
            saddr: RS1,
            sport: 8080,
            daddr: Addr::v4(172, 16, 0, 1),
            dport: 40000,
        };
        assert_eq!(h.t.lookup_out(&out), Some(id));
        h.reply(id, TcpFlags::SYN_ACK, 0);
        // INPUT rst on SYN_RECV keeps SYN_RECV (60 s).
        h.pkt(C1, 3333, Proto::Tcp, 80, TcpFlags::RST, 0).unwrap();
        assert_eq!(h.state(id), "SYN_RECV");
        h.expire(60 * SEC);
        assert_eq!(h.released, vec![(C1, 3333, Addr::v4(172, 16, 0, 1), 40000)]);
        // No local address: refused and counted.
        let p = PacketMeta {
            flow: FlowKey {
                proto: Proto::Tcp,
                saddr: C1,
                daddr: VIP,
                sport: 1,
                dport: 80,
            },
            fwmark: 0,
            tcp_flags: TcpFlags::SYN,
        };
        assert_eq!(
            h.t.resolve_in(&mut h.core, &p, 0, None),
            Err(Refuse::NoLocalAddr)
        );
        assert_eq!(h.t.stats().no_local_addr, 1);
        assert_eq!(h.t.len(), 0);
    }

    #[test]
    fn fwmark_persistence_template_key() {
        let key = ServiceKey::Fwmark { v6: false, mark: 1 };
        let mut h = H::new(
            Proto::Tcp,
            ServiceConfig::new(key, SchedKind::Rr).persistent(600),
            &[
                DestConfig::new(RS1, 0, FwdMethod::Tunnel),
                DestConfig::new(RS2, 0, FwdMethod::Tunnel),
            ],
            64,
        );
        let mut p = PacketMeta {
            flow: FlowKey {
                proto: Proto::Tcp,
                saddr: C1,
                daddr: VIP,
                sport: 1,
                dport: 443,
            },
            fwmark: 1,
            tcp_flags: TcpFlags::SYN,
        };
        let x = h.t.resolve_in(&mut h.core, &p, 0, None).unwrap().id;
        p.flow.dport = 80;
        let y = h.t.resolve_in(&mut h.core, &p, 0, None).unwrap().id;
        assert_eq!(h.t.dest_of(x), h.t.dest_of(y));
        assert_eq!(h.t.get(y).unwrap().dport(), 80); // port 0 server: the packet's port
        let t = h.t.iter().find(|(_, s)| s.is_template()).unwrap().1;
        assert_eq!(t.proto(), Proto::Ip);
        assert_eq!(t.vaddr(), Addr::from_v4_bits(1));
        assert_eq!(t.n_control(), 2);
    }
}
