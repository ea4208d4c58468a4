//! The SYN proxy of NAT and FULLNAT TCP services (`-j enable|auto`, `syn_proxy`): the
//! general path's part (the bytes are [`crate::forward::synproxy`]; the fast path's part
//! is [`Core::syn_proxy_translate`]).
//!
//! - A client's **SYN** to a proxied service is answered by the director with a SYN-ACK
//!   whose sequence number is a cookie; no session is created (`syn_cookies_sent`). A
//!   SYN whose options do not parse is dropped (`syn-proxy-bad-options`).
//! - A client's **ACK** without a session is checked against its cookie: a stale or
//!   forged one is dropped (`syn-proxy-bad-cookie`: an ACK flood costs a SipHash or two
//!   per packet and creates nothing). A valid one is scheduled as a SYN would be (ACL,
//!   new-session budget, scheduler, FULLNAT local address), the session is created in
//!   the SYN-proxy state, and the ACK itself becomes the SYN the real server is sent:
//!   the client's ISN and the options the cookie recorded (MSS, window scale,
//!   SACK-permitted, the client's timestamp). A copy of the ACK is **kept** (an mbuf
//!   of the pool, per session, in a table of at most [`HELD_MAX`] per worker): the
//!   timed SYN retries are made of it, and when it carries data, or the client sends
//!   a data segment before the server answered, that segment is **held**
//!   (`syn_proxy_held`, at most one per session) and sent right after the director's
//!   ACK to the server, translated as every later segment (`syn_proxy_held_sent`).
//!   A second data segment, or one when the table is full, is dropped
//!   (`syn-proxy-setup`, `syn_proxy_held_full`): the client sends it again.
//! - The server's **SYN-ACK** settles the session: the sequence delta (cookie − server
//!   ISN), the timestamp delta (the director's TSval − the server's) and the legs'
//!   window scales are kept, and the SYN-ACK becomes the director's ACK back to the
//!   server (the PROXY header segment, when the service has one, follows it). From
//!   then on every segment is translated, on the fast path too (flag
//!   [`flags::OUT_SEQ`]): server → client sequence numbers and TSval up, client →
//!   server acknowledgements, SACK edges and TSecr down, windows rescaled when the
//!   server's window scale is not the one the director offered.
//! - The server's **RST** is passed to the client (as a reset of the cookie's sequence
//!   space) and counted (`syn_proxy_refused`); a client's RST before the server
//!   answered goes to the server (`syn_proxy_client_resets`). A server that does not
//!   answer gets the SYN again from [`Core::tick`], 1 s and 3 s after the first (at
//!   most 3 SYNs, `syn_proxy_retries`); 4 s after the third the client gets a reset
//!   (`syn_proxy_timeouts`) and the session is closed. (A session without a kept copy,
//!   the table being full, gets its retries when the client sends again.) A held
//!   segment of a connection that fails is freed (`syn_proxy_held_freed`).
//! - **Auto**: cookies only while the worker is under pressure: more TCP SYNs in this
//!   or the last second than `[sessions] syn_proxy_rate`, or the table fuller than
//!   `syn_proxy_fill` percent. Otherwise a SYN opens a session as without the
//!   proxy; an ACK without a session is still checked against the cookies (one issued
//!   while under pressure stays good for a minute or two).

use crate::buf::PacketBuf;
use crate::conn::{flags, ConnId, Direction, PacketMeta, Refuse, Scheduled, SynProxyState};
use crate::flow::{FwdMethod, TcpFlags};
use crate::forward::synproxy::{self as sp, At, CookieOptions, Scales, OUR_WSCALE};
use crate::forward::Layout;
use crate::service::SynProxy;
use crate::wire::{self, IpMeta};

use super::{Core, DropReason, Out, Snapshot};

/// SYNs the real server is sent before the client is reset.
const MAX_SYNS: u8 = 3;
/// Client segments kept per worker (sessions in setup with a copy of their ACK or a
/// held data segment); the mbuf pool is sized for them.
pub const HELD_MAX: usize = 2048;
/// Sessions in setup [`Core::tick`] acts on at most per call (SYNs sent again, clients
/// reset, kept segments freed).
const TICK_BATCH: usize = 64;

/// Milliseconds after the `tries`-th SYN when the next is due, or (after the last) the
/// client is reset: 1 s, 2 s, 4 s (SYNs at 0, 1 and 3 s, the reset at 7 s).
fn retry_after(tries: u8) -> u32 {
    1000 << tries.saturating_sub(1).min(2)
}

/// A client segment kept for a session in setup.
#[derive(Debug)]
struct Kept<P> {
    pkt: P,
    meta: IpMeta,
    port: u16,
    /// The session's cookie (its delta while in setup): a session freed and its slot
    /// reused is told apart.
    cookie: u32,
    /// The segment carries data (held, to be sent after the server's handshake);
    /// otherwise it is only the model of the SYN retries.
    data: bool,
}

/// The SYN proxy's kept client segments of one worker, by session: bounded, with its
/// capacity reserved up front (no allocation per packet).
#[derive(Debug)]
pub(super) struct Held<P> {
    map: hashbrown::HashMap<u32, Kept<P>>,
}

impl<P> Default for Held<P> {
    fn default() -> Self {
        // Twice the bound: removals leave tombstones, which hashbrown clears by
        // rehashing in place as long as at most half the capacity is used.
        Held {
            map: hashbrown::HashMap::with_capacity(2 * HELD_MAX),
        }
    }
}

impl<P> Held<P> {
    /// Segments kept.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

/// Whether a classified TCP segment carries data.
fn has_data(frame: &[u8], meta: &IpMeta) -> bool {
    let doff = frame.get(meta.l4_offset + 12).map_or(0, |b| b >> 4);
    meta.ip_end > meta.l4_offset + usize::from(doff) * 4
}
/// The MSS the director's SYN-ACK offers at most.
const MAX_MSS: u16 = 1460;

/// `auto`'s measure of pressure: TCP SYNs per second, and the thresholds
/// (`[sessions] syn_proxy_rate`, `syn_proxy_fill`).
#[derive(Debug, Clone)]
pub(super) struct Pressure {
    rate: u32,
    fill_pct: u32,
    second: u64,
    this: u32,
    last: u32,
}

impl Default for Pressure {
    fn default() -> Self {
        Pressure {
            rate: DEFAULT_RATE,
            fill_pct: DEFAULT_FILL,
            second: 0,
            this: 0,
            last: 0,
        }
    }
}

/// Default of `[sessions] syn_proxy_rate`: TCP SYNs per second per
/// worker above which `auto` services are proxied.
pub const DEFAULT_RATE: u32 = 20_000;
/// Default of `[sessions] syn_proxy_fill`: percent of the session table above which
/// `auto` services are proxied.
pub const DEFAULT_FILL: u32 = 50;

impl Pressure {
    /// Counts a TCP SYN.
    #[inline(always)]
    pub(super) fn count(&mut self, now_ms: u64) {
        let sec = now_ms / 1000;
        if sec != self.second {
            self.last = if sec == self.second + 1 { self.this } else { 0 };
            self.this = 0;
            self.second = sec;
        }
        self.this = self.this.saturating_add(1);
    }

    /// Whether the worker is under pressure: the rate of this second or the last above
    /// the threshold, or `len` sessions of `cap` above the fill threshold.
    fn on(&self, len: u32, cap: u32) -> bool {
        self.this.max(self.last) > self.rate
            || u64::from(len) * 100 > u64::from(cap) * u64::from(self.fill_pct)
    }
}

/// The headers of a classified TCP packet.
fn at_of(meta: &IpMeta) -> At {
    At {
        l3: meta.l3_offset(),
        l4: meta.l4_offset,
    }
}

/// A classified packet rewritten in place to a segment without data: its layout with
/// the new end.
fn resized(meta: &IpMeta, len: usize) -> IpMeta {
    let mut m = *meta;
    m.ip_end = len;
    m
}

impl<P: PacketBuf> Core<P> {
    /// Sets `auto`'s thresholds (`[sessions] syn_proxy_rate`, per second and worker;
    /// `syn_proxy_fill`, percent of the table).
    pub fn set_syn_proxy_thresholds(&mut self, rate: u32, fill_pct: u32) {
        self.pressure.rate = rate;
        self.pressure.fill_pct = fill_pct.min(100);
    }

    /// Sets the secret of the SYN cookies (random by default; a fixed one makes two
    /// workers answer alike, for tests and benchmarks).
    pub fn set_cookie_secret(&mut self, secret: [u64; 2]) {
        self.cookies = sp::Cookies::new(secret);
    }

    /// Sets whether the worker is overloaded (its receive bursts keep coming back full:
    /// the NIC's queue holds more than the worker takes). While it is, a SYN to a
    /// SYN-proxied service is shed ([`DropReason::SynShed`]) before its cookie is made,
    /// so that established packets keep being served. SYNs of other services are not
    /// shed: they open sessions as before, bounded by the new-session budget.
    pub fn set_overloaded(&mut self, on: bool) {
        self.overloaded = on;
    }

    /// Whether the worker is overloaded (see [`Core::set_overloaded`]).
    pub fn overloaded(&self) -> bool {
        self.overloaded
    }

    /// Whether a client's SYN (flags: SYN, without ACK or RST), while overloaded, is to
    /// be shed: its service is SYN-proxied (`enable` or `auto`). The cheapest test there
    /// is: the service lookup alone, no session lookup, no checksum, no hash.
    #[inline]
    pub(super) fn syn_shed(&self, pm: &PacketMeta, snap: &Snapshot) -> bool {
        let tf = pm.tcp_flags;
        if tf.has(TcpFlags::ACK) || tf.has(TcpFlags::RST) {
            return false;
        }
        let f = &pm.flow;
        let services = &snap.services;
        services
            .find(f.proto, f.daddr, f.dport, pm.fwmark)
            .and_then(|i| services.service(i))
            .is_some_and(|s| s.syn_proxy() != SynProxy::Off)
    }

    /// [`Core::syn_shed`] at the burst's first stage, from the packet's first reading
    /// alone: a pure SYN of an untagged frame to a SYN-proxied service (looked up by
    /// address and port: not when firewall-mark rules or VLAN ports could make it
    /// another service's, which the general path then decides).
    #[inline]
    pub(super) fn shed_v4(&self, v: &wire::V4Flow) -> bool {
        use crate::forward::synproxy::tcp_flags as tf;
        let tagged = usize::from(v.l3) != crate::wire::ethernet::HEADER_LEN;
        if v.udp || v.tcp_flags & (tf::SYN | tf::ACK | tf::RST) != tf::SYN || self.vlans || tagged {
            return false;
        }
        let Some(snap) = &self.snap else {
            return false;
        };
        let services = &snap.services;
        if !services.has_syn_proxy() || !snap.net.marks.rules().is_empty() {
            return false;
        }
        let [a, b, c, d] = v.dst;
        services
            .find(
                crate::flow::Proto::Tcp,
                crate::flow::Addr::v4(a, b, c, d),
                v.dport,
                0,
            )
            .and_then(|i| services.service(i))
            .is_some_and(|s| s.syn_proxy() != SynProxy::Off)
    }

    /// A client's TCP packet to a VIP, when some service is SYN-proxied. `Err`: not the
    /// proxy's (the general path goes on with it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn syn_proxy_client(
        &mut self,
        pkt: P,
        meta: &IpMeta,
        pm: &PacketMeta,
        hash: u64,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Result<Out<P>, P> {
        let tf = pm.tcp_flags;
        if let Some((id, reply)) = self.conns.lookup_hinted(hash, &pm.flow, None) {
            let setup = self
                .conns
                .get(id)
                .is_some_and(|s| s.flags & flags::SYNPROXY != 0);
            if !reply && setup {
                return Ok(self.syn_proxy_setup_client(pkt, meta, id, tf, in_port, snap, now_ms));
            }
            return Err(pkt);
        }
        let f = &pm.flow;
        let services = &snap.services;
        let Some(svc) = services
            .find(f.proto, f.daddr, f.dport, pm.fwmark)
            .and_then(|i| services.service(i))
        else {
            return Err(pkt);
        };
        let mode = svc.syn_proxy();
        if mode == SynProxy::Off {
            return Err(pkt);
        }
        if meta.frag.is_some() {
            // A fragmented segment opens no proxied connection: a cookie SYN-ACK or the
            // server's SYN written over a fragment would go out as a fragment, and
            // passing it on would open a session without a cookie.
            return Ok(self.drop(pkt, DropReason::Malformed(crate::wire::Error::Fragment)));
        }
        let syn = tf.has(TcpFlags::SYN);
        let ack = tf.has(TcpFlags::ACK);
        let rst = tf.has(TcpFlags::RST);
        let at = at_of(meta);
        if syn && !ack && !rst {
            let cap = self.conns.capacity();
            if mode == SynProxy::Auto && !self.pressure.on(self.conns.len(), cap) {
                return Err(pkt);
            }
            return Ok(self.syn_cookie(pkt, meta, at, pm, snap, in_port, now_ms));
        }
        if syn || rst || !ack {
            // A SYN-ACK, a reset, a segment without ACK: nothing a session opens on (a
            // flood of them costs a lookup).
            return Ok(self.drop(pkt, DropReason::NoSession));
        }
        // An ACK without a session: its cookie, then the checks of a SYN.
        let Some(acc) = sp::check_ack(pkt.data(), at, &mut self.cookies, now_ms) else {
            return Ok(self.drop(pkt, DropReason::SynProxyBadCookie));
        };
        if !super::general::segment_checksum_ok(pkt.data(), meta) {
            return Ok(self.drop(pkt, DropReason::Malformed(wire::Error::BadChecksum)));
        }
        self.counters.syn_proxy_acks += 1;
        Ok(self.syn_proxy_open(pkt, meta, at, pm, hash, &acc, in_port, snap, now_ms))
    }

    /// Answers a client's SYN with the cookie SYN-ACK.
    #[allow(clippy::too_many_arguments)]
    fn syn_cookie(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        at: At,
        pm: &PacketMeta,
        snap: &Snapshot,
        in_port: u16,
        now_ms: u64,
    ) -> Out<P> {
        if !super::general::segment_checksum_ok(pkt.data(), meta) {
            return self.drop(pkt, DropReason::Malformed(wire::Error::BadChecksum));
        }
        if super::general::acl_denies(snap, meta, pm) {
            return self.drop(pkt, DropReason::AclDeny);
        }
        let o = match sp::options_of(pkt.data(), at).map(sp::parse_options) {
            Some(Ok(o)) => o,
            _ => return self.drop(pkt, DropReason::SynProxyBadOptions),
        };
        let mtu = snap
            .net
            .ports
            .get(usize::from(in_port))
            .map_or(1500, |p| p.mtu);
        let max_mss = MAX_MSS.min(mtu.saturating_sub(40));
        match sp::synack(&mut pkt, at, &o, &mut self.cookies, max_mss, now_ms) {
            Some(a) => {
                self.counters.syn_cookies_sent += 1;
                if a.clamped {
                    self.counters.syn_options_clamped += 1;
                }
                // Back where it came from: the sender's MAC, the port's own.
                if let (Some(p), Some(d)) = (
                    snap.net.ports.get(usize::from(in_port)),
                    pkt.data_mut().get_mut(6..12),
                ) {
                    d.copy_from_slice(&p.mac);
                }
                Out::Tx(pkt, in_port)
            }
            None => self.drop(pkt, DropReason::Malformed(wire::Error::Truncated)),
        }
    }

    /// A valid ACK: schedules the connection as a SYN, creates the session in the
    /// SYN-proxy state and sends the real server the SYN made of the ACK.
    #[allow(clippy::too_many_arguments)]
    fn syn_proxy_open(
        &mut self,
        pkt: P,
        meta: &IpMeta,
        at: At,
        pm: &PacketMeta,
        hash: u64,
        acc: &sp::Accepted,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        if super::general::acl_denies(snap, meta, pm) {
            return self.drop(pkt, DropReason::AclDeny);
        }
        if !self.new_budget.allows(now_ms) {
            return self.drop(pkt, DropReason::NewSessionBudget);
        }
        let syn_pm = PacketMeta {
            tcp_flags: TcpFlags::SYN,
            ..*pm
        };
        let res = match self.conns.schedule(&mut self.sched, &syn_pm, hash, now_ms) {
            Ok(Scheduled::New(new)) => {
                if !matches!(new.dest().fwd, FwdMethod::Masq | FwdMethod::FullNat) {
                    // A DR or TUN server of a proxied service (refused by the
                    // configuration): the proxy cannot translate for it.
                    drop(new);
                    return self.drop(pkt, DropReason::Unsupported);
                }
                let me = (self.id as u16, self.rss);
                let local = super::general::local_for(&new, &mut self.laddrs, &snap.net, me);
                new.create(local)
            }
            Ok(Scheduled::Existing(_)) => Err(Refuse::NotSyn),
            Err(e) => Err(e),
        };
        let id = match res {
            Ok(id) => id,
            Err(e) => return self.drop(pkt, super::general::refusal(e)),
        };
        self.opened(id);
        self.counters.syn_proxy_sessions += 1;
        let st = SynProxyState {
            delta: acc.cookie,
            ts_delta: acc.ts.map_or(0, |t| t.1),
            scales: 0,
            window: acc.window,
            syn_at: now_ms as u32,
            opts: acc.opts.pack(),
            tries: 1,
            ts: false,
        };
        let ok = match self.conns.get_mut(id) {
            Some(s) => {
                s.flags |= flags::SYNPROXY;
                s.seq_init = acc.isn;
                s.set_synproxy(st)
            }
            None => false,
        };
        if !ok {
            self.conns.expire_now(id);
            return self.drop(pkt, DropReason::Unsupported);
        }
        // A copy of the ACK: the model of the timed SYN retries and, with data, held
        // until the server's handshake completes.
        let data = has_data(pkt.data(), meta);
        let room = self.held.map.len() < HELD_MAX;
        match pkt.try_clone().filter(|_| room) {
            Some(copy) => {
                if data {
                    self.counters.syn_proxy_held += 1;
                }
                let k = Kept {
                    pkt: copy,
                    meta: *meta,
                    port: in_port,
                    cookie: acc.cookie,
                    data,
                };
                self.held.map.insert(id.0, k);
            }
            None if data => {
                // Not held: the client sends it again.
                self.counters.syn_proxy_held_full += 1;
                self.counters.drops[DropReason::SynProxySetup.index()] += 1;
            }
            None => {}
        }
        self.syn_to_server(pkt, meta, at, id, in_port, snap, now_ms)
    }

    /// Rewrites a client segment of session `id` (in the SYN-proxy state) into the SYN
    /// for the real server and forwards it.
    #[allow(clippy::too_many_arguments)]
    fn syn_to_server(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        at: At,
        id: ConnId,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let Some(s) = self.conns.get(id) else {
            return self.drop(pkt, DropReason::NoSession);
        };
        let (isn, st) = (s.seq_init, s.synproxy());
        let opts = CookieOptions::unpack(st.opts);
        // The client's TSval, the one its ACK sent (read again from this segment).
        let ts_val = if opts.ts {
            sp::options_of(pkt.data(), at)
                .and_then(|o| sp::parse_options(o).ok())
                .and_then(|o| o.ts)
                .map(|t| t.0)
        } else {
            None
        };
        // A SYN's window is never scaled.
        let ws = opts.wscale.unwrap_or(0);
        let window = (u32::from(st.window) << ws).min(0xffff) as u16;
        if sp::syn_from_client(&mut pkt, at, isn, opts, ts_val, window).is_none() {
            return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
        }
        let m = resized(meta, pkt.len());
        self.forward(
            pkt,
            &m,
            id,
            Direction::Input,
            TcpFlags::SYN,
            in_port,
            snap,
            now_ms,
        )
    }

    /// A client segment of a session whose real server has not answered.
    #[allow(clippy::too_many_arguments)]
    fn syn_proxy_setup_client(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        id: ConnId,
        tf: TcpFlags,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let at = at_of(meta);
        if tf.has(TcpFlags::RST) {
            // To the server, which has the SYN: its acknowledgement is of the cookie's
            // space, so it goes without one.
            self.counters.syn_proxy_client_resets += 1;
            self.free_kept(id);
            if sp::set_reset(pkt.data_mut(), at.l4, None).is_none() {
                return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
            }
            let f = TcpFlags::RST;
            return self.forward(pkt, meta, id, Direction::Input, f, in_port, snap, now_ms);
        }
        if tf.has(TcpFlags::SYN) {
            return self.drop(pkt, DropReason::SynProxySetup);
        }
        if self
            .conns
            .get(id)
            .is_none_or(|s| s.synproxy().tries > MAX_SYNS)
        {
            // Given up (the client was reset): nothing more is held or sent.
            return self.drop(pkt, DropReason::SynProxySetup);
        }
        let data = has_data(pkt.data(), meta);
        let kept = self.held.map.get(&id.0).map(|k| k.data);
        match kept {
            // A data segment: held in place of the ACK's copy (one per session).
            Some(false) | None if data => {
                let cookie = self.conns.get(id).map_or(0, |s| s.synproxy().delta);
                if kept.is_none() && self.held.map.len() >= HELD_MAX {
                    self.counters.syn_proxy_held_full += 1;
                    return self.drop(pkt, DropReason::SynProxySetup);
                }
                self.counters.syn_proxy_held += 1;
                let k = Kept {
                    pkt,
                    meta: *meta,
                    port: in_port,
                    cookie,
                    data: true,
                };
                // The ACK's copy it replaces is freed here.
                self.held.map.insert(id.0, k);
                return Out::Held;
            }
            Some(true) if data => {
                self.counters.syn_proxy_held_full += 1;
                return self.drop(pkt, DropReason::SynProxySetup);
            }
            // The timer sends the SYNs again, from the kept copy.
            Some(_) => return self.drop(pkt, DropReason::SynProxySetup),
            None => {}
        }
        let Some(s) = self.conns.get_mut(id) else {
            return self.drop(pkt, DropReason::NoSession);
        };
        let mut st = s.synproxy();
        let due = retry_after(st.tries);
        if (now_ms as u32).wrapping_sub(st.syn_at) < due || st.tries > MAX_SYNS {
            return self.drop(pkt, DropReason::SynProxySetup);
        }
        st.syn_at = now_ms as u32;
        if st.tries < MAX_SYNS {
            st.tries += 1;
            s.set_synproxy(st);
            self.counters.syn_proxy_retries += 1;
            return self.syn_to_server(pkt, meta, at, id, in_port, snap, now_ms);
        }
        // Three SYNs unanswered: the client is reset (in its own sequence space: the
        // acknowledgement it sent), the session closed.
        st.tries = MAX_SYNS + 1;
        s.set_synproxy(st);
        self.counters.syn_proxy_timeouts += 1;
        self.conns
            .state_transition(id, Direction::Input, TcpFlags::RST, now_ms);
        self.reset_client(pkt, meta, in_port, snap)
    }

    /// A real server's segment of a session in the SYN-proxy state: its SYN-ACK settles
    /// the session and becomes the director's ACK; its RST goes to the client.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn syn_proxy_setup_server(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        id: ConnId,
        tf: TcpFlags,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let at = at_of(meta);
        let Some(s) = self.conns.get(id) else {
            return self.drop(pkt, DropReason::NoSession);
        };
        let (isn, mut st) = (s.seq_init, s.synproxy());
        if tf.has(TcpFlags::RST) {
            // The server refused: the client gets the reset in the cookie's space.
            self.counters.syn_proxy_refused += 1;
            self.free_kept(id);
            if sp::set_reset(pkt.data_mut(), at.l4, Some(st.delta.wrapping_add(1))).is_none() {
                return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
            }
            let f = TcpFlags::RST;
            return self.forward(pkt, meta, id, Direction::Output, f, in_port, snap, now_ms);
        }
        if !(tf.has(TcpFlags::SYN) && tf.has(TcpFlags::ACK)) {
            return self.drop(pkt, DropReason::SynProxySetup);
        }
        let Some(sa) = sp::read_synack(pkt.data(), at) else {
            return self.drop(pkt, DropReason::SynProxySetup);
        };
        if sa.ack != isn.wrapping_add(1) {
            return self.drop(pkt, DropReason::SynProxySetup);
        }
        let opts = CookieOptions::unpack(st.opts);
        let cookie = st.delta;
        st.delta = cookie.wrapping_sub(sa.isn);
        // Timestamps: both sides use them, the server's clock moved to the director's
        // (the TSval of its SYN-ACK).
        st.ts = opts.ts && sa.opts.ts.is_some();
        st.ts_delta = match sa.opts.ts {
            Some((sval, _)) if st.ts => st.ts_delta.wrapping_sub(sval),
            _ => 0,
        };
        let scaled = opts.wscale.is_some();
        let server_scaled = scaled && sa.opts.wscale.is_some();
        st.scales = Scales {
            server: if server_scaled {
                sa.opts.wscale.unwrap_or(0)
            } else {
                0
            },
            to_client: if scaled { OUR_WSCALE } else { 0 },
            client: opts.wscale.unwrap_or(0),
            client_at_server: if server_scaled {
                opts.wscale.unwrap_or(0)
            } else {
                0
            },
        }
        .pack();
        let window = st.window;
        if let Some(s) = self.conns.get_mut(id) {
            s.set_synproxy(st);
            s.flags = (s.flags & !flags::SYNPROXY) | flags::OUT_SEQ;
        }
        self.counters.syn_proxy_established += 1;
        self.conns.state_transition(
            id,
            Direction::Output,
            TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0),
            now_ms,
        );
        self.conns
            .state_transition(id, Direction::Input, TcpFlags::ACK, now_ms);
        // The ACK back to the server: its TSval is the client's (the one the server
        // echoes).
        let ts_val = sa.opts.ts.map(|t| t.1);
        if sp::ack_to_server(&mut pkt, at, &sa, ts_val, window).is_none() {
            return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
        }
        let m = resized(meta, pkt.len());
        let lay = Layout::of(&m);
        let mtu = snap
            .net
            .ports
            .get(usize::from(in_port))
            .map_or(1500, |p| p.mtu);
        let due = match self.client_addr(&mut pkt, id, false, &lay, TcpFlags::ACK, mtu, now_ms) {
            Ok(d) => d,
            Err(r) => return self.drop(pkt, r),
        };
        self.count_forwarded(id, Direction::Input, pkt.len() as u64);
        if due {
            self.proxy_segment(&pkt, id, in_port, now_ms);
        }
        // The held data segment follows the director's ACK, translated as any later
        // client segment (it goes out after the burst, behind the ACK).
        if let Some(k) = self.held.map.remove(&id.0) {
            if k.data {
                self.counters.syn_proxy_held_sent += 1;
                let cls = Ok(wire::Classified::Ip(k.meta));
                let out = self.process_with(snap, k.pkt, &cls, None, k.port, now_ms, false);
                self.side_release(out);
            }
        }
        Out::Tx(pkt, in_port)
    }

    /// A packet the SYN proxy sends outside a burst's verdicts: a transmission goes to
    /// the released packets (sent after the burst), anything else is already counted.
    fn side_release(&mut self, out: Out<P>) {
        if let Out::Tx(p, port) = out {
            if self.released.len() < self.released.capacity() {
                self.released.push((p, port));
            } else {
                self.counters.drops[DropReason::SynProxySetup.index()] += 1;
            }
        }
    }

    /// Frees the segment kept for session `id` (its connection failed).
    fn free_kept(&mut self, id: ConnId) {
        if let Some(k) = self.held.map.remove(&id.0) {
            if k.data {
                self.counters.syn_proxy_held_freed += 1;
            }
        }
    }

    /// Forgets the segment kept for a session that expired (from the table's expiry).
    pub(super) fn held_expired(held: &mut Held<P>, counters: &mut super::Counters, id: ConnId) {
        if let Some(k) = held.map.remove(&id.0) {
            if k.data {
                counters.syn_proxy_held_freed += 1;
            }
        }
    }

    /// The SYN proxy's timers, from [`Core::tick`]: a session in setup whose real server
    /// has not answered gets its SYN again (made of the kept copy) 1 s and 3 s after the
    /// first; 4 s after the third the client is reset and the session closed. Kept
    /// segments of sessions gone or settled are freed.
    pub(super) fn syn_proxy_tick(&mut self, now_ms: u64) {
        if self.held.map.is_empty() {
            return;
        }
        let Some(snap) = self.snap.take() else {
            return;
        };
        // What is due, collected first (a bounded batch; the rest waits for the next tick).
        let mut due = [(0u32, false); TICK_BATCH];
        let mut n = 0;
        for (&i, k) in &self.held.map {
            if n == TICK_BATCH {
                break;
            }
            let live = self
                .conns
                .get(ConnId(i))
                .filter(|s| s.flags & flags::SYNPROXY != 0 && s.synproxy().delta == k.cookie);
            match live {
                None => {
                    due[n] = (i, false);
                    n += 1;
                }
                Some(s) => {
                    let st = s.synproxy();
                    if (now_ms as u32).wrapping_sub(st.syn_at) >= retry_after(st.tries) {
                        due[n] = (i, true);
                        n += 1;
                    }
                }
            }
        }
        for &(i, live) in &due[..n] {
            let id = ConnId(i);
            if !live {
                self.free_kept(id);
                continue;
            }
            let Some(s) = self.conns.get_mut(id) else {
                continue;
            };
            let mut st = s.synproxy();
            st.syn_at = now_ms as u32;
            if st.tries < MAX_SYNS {
                st.tries += 1;
                s.set_synproxy(st);
                let Some(k) = self.held.map.get(&i) else {
                    continue;
                };
                let (meta, port) = (k.meta, k.port);
                let Some(copy) = k.pkt.try_clone() else {
                    // The pool is empty: this SYN is lost as on the wire.
                    continue;
                };
                self.counters.syn_proxy_retries += 1;
                let at = at_of(&meta);
                let out = self.syn_to_server(copy, &meta, at, id, port, &snap, now_ms);
                self.side_release(out);
                continue;
            }
            // Three SYNs unanswered: the client is reset (in its own sequence space: the
            // acknowledgement its segment carried), the session closed.
            st.tries = MAX_SYNS + 1;
            s.set_synproxy(st);
            self.counters.syn_proxy_timeouts += 1;
            self.conns
                .state_transition(id, Direction::Input, TcpFlags::RST, now_ms);
            let Some(k) = self.held.map.remove(&i) else {
                continue;
            };
            if k.data {
                self.counters.syn_proxy_held_freed += 1;
            }
            let out = self.reset_client(k.pkt, &k.meta, k.port, &snap);
            self.side_release(out);
        }
        self.snap = Some(snap);
    }

    /// Rewrites client segment `pkt` into a reset of the client (in its own sequence
    /// space: the acknowledgement the segment carried), back out of the port it came in.
    fn reset_client(&mut self, mut pkt: P, meta: &IpMeta, in_port: u16, snap: &Snapshot) -> Out<P> {
        let at = at_of(meta);
        let seq = pkt
            .data()
            .get(at.l4 + 8..at.l4 + 12)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if sp::reset_to_sender(&mut pkt, at, seq).is_none() {
            return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
        }
        if let (Some(p), Some(d)) = (
            snap.net.ports.get(usize::from(in_port)),
            pkt.data_mut().get_mut(6..12),
        ) {
            d.copy_from_slice(&p.mac);
        }
        Out::Tx(pkt, in_port)
    }

    /// An established proxied segment of session `id`, rewritten for its destination:
    /// translated (both paths; nothing unless the session has [`flags::OUT_SEQ`]).
    #[inline]
    pub(super) fn syn_proxy_translate(&self, pkt: &mut P, id: ConnId, reply: bool, l4: usize) {
        let Some(s) = self.conns.get(id) else {
            return;
        };
        if s.flags & flags::OUT_SEQ == 0 || s.v6 != 0 {
            return;
        }
        let st = s.synproxy();
        let ts = st.ts.then_some(st.ts_delta);
        let sc = Scales::unpack(st.scales);
        if reply {
            sp::to_client(pkt.data_mut(), l4, st.delta, ts, sc);
        } else {
            sp::to_server(pkt.data_mut(), l4, st.delta, ts, sc);
        }
    }
}
