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
//!   SACK-permitted, the client's timestamp). Data the client sent with the ACK, or
//!   after it before the server answered, is dropped (`syn-proxy-setup`): the client
//!   sends it again once its retransmission timer fires (no mbuf is held per session).
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
//!   answer gets the SYN again when the client sends again after a second (at most 3
//!   SYNs, `syn_proxy_retries`); after that the client gets a reset
//!   (`syn_proxy_timeouts`).
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
/// Time after which a client's segment brings the SYN to the real server again.
const RETRY_MS: u32 = 1000;
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
                let local = match new.needs_local() {
                    true => {
                        let (t, rs, fk) = (new.table(), new.dest(), new.flow());
                        let me = self.id as u16;
                        super::general::pick_local(&mut self.laddrs, t, &snap.net, me, rs, fk)
                    }
                    false => None,
                };
                new.create(local)
            }
            Ok(Scheduled::Existing(_)) => Err(Refuse::NotSyn),
            Err(e) => Err(e),
        };
        let id = match res {
            Ok(id) => id,
            Err(e) => return self.drop(pkt, super::general::refusal(e)),
        };
        self.new_budget.charge();
        self.counters.conns += 1;
        self.counters.syn_proxy_sessions += 1;
        if let Some(t) = self.traffic_of(id) {
            t.conns += 1;
        }
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
        if meta.ip_end > at.l4 + usize::from(pkt.data().get(at.l4 + 12).map_or(0, |b| b >> 4)) * 4 {
            // Data with the ACK: not held; the client sends it again.
            self.counters.drops[DropReason::SynProxySetup.index()] += 1;
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
            if sp::set_reset(pkt.data_mut(), at.l4, None).is_none() {
                return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
            }
            let f = TcpFlags::RST;
            return self.forward(pkt, meta, id, Direction::Input, f, in_port, snap, now_ms);
        }
        if tf.has(TcpFlags::SYN) {
            return self.drop(pkt, DropReason::SynProxySetup);
        }
        let Some(s) = self.conns.get_mut(id) else {
            return self.drop(pkt, DropReason::NoSession);
        };
        let mut st = s.synproxy();
        if (now_ms as u32).wrapping_sub(st.syn_at) < RETRY_MS || st.tries > MAX_SYNS {
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
        let seq = pkt
            .data()
            .get(at.l4 + 8..at.l4 + 12)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        self.conns
            .state_transition(id, Direction::Input, TcpFlags::RST, now_ms);
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
