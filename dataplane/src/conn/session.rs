//! The session record kept in the per-core slab.

use crate::flow::{Addr, FlowKey, FlowKey4, FwdMethod, Proto, V4_PREFIX};
use crate::sched::DestSlot;

use super::flags;
use super::state::{SessionState, TcpState, TEMPLATE_ASSURED};

/// "No entry" marker for slab links.
pub(crate) const NIL: u32 = u32::MAX;
/// Slots of the timer wheel (100 ms each: 27 minutes around; longer timeouts go round).
pub(super) const SLOTS: usize = 1 << 14;
/// `wheel_at` of a session waiting on the dying list (not in a wheel slot).
pub(super) const DYING: u32 = u32::MAX;

/// One IPVS connection (or persistence template) owned by one core.
///
/// Client side: `caddr:cport -> vaddr:vport`; server side: `daddr:dport <- laddr:lport`,
/// where `laddr:lport` is `caddr:cport` except under FULLNAT (the chosen LIP and port).
/// Everything sync needs is here: protocol, state, flags (forwarding method, `NOOUTPUT`,
/// `INACTIVE`, `TEMPLATE`, ...), the full state timeout, the firewall mark, `in_pkts`.
///
/// Laid out as exactly two cache lines (`repr(C, align(64))`, 128 bytes). The first holds
/// everything a packet of an IPv4 session needs: the four addresses' last four bytes
/// (the whole address for IPv4), the ports, state, flags, timer, real server and sync
/// marks. The second holds the addresses' first twelve bytes, read only for IPv6
/// addresses (bit `k` of `v6` set for address `k`), and what only templates and sync
/// messages use. An IPv4 packet touches one line of its session, an IPv6 packet two.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct Session {
    /// Last four bytes of caddr, vaddr, daddr, laddr (in that order, see `CADDR`..).
    pub(crate) lo: [[u8; 4]; 4],
    pub(crate) cport: u16,
    pub(crate) vport: u16,
    pub(crate) dport: u16,
    pub(crate) lport: u16,
    /// Full timeout of the current state, seconds.
    pub(crate) timeout: u32,
    /// Expiry tick.
    pub(crate) expires: u32,
    /// Tick of the wheel slot the entry is linked in (or `DYING`).
    pub(crate) wheel_at: u32,
    pub(crate) next: u32,
    pub(crate) prev: u32,
    pub(crate) dest: DestSlot,
    /// Controlling template (slab index) or `NIL`.
    pub(crate) control: u32,
    pub(crate) in_pkts: u32,
    pub(crate) flags: u16,
    pub(crate) proto: Proto,
    pub(crate) state: u8,
    /// Sync (master): state at the last send (`old_state`).
    pub(crate) sync_old: u8,
    /// Bit `k` set: address `k` is not IPv4 and its first twelve bytes are `hi[k]`.
    pub(crate) v6: u8,
    /// Sync (master): announced end time, seconds, low 2 bits retries (`sync_endtime`).
    pub(crate) sync_end: u16,
    // ----- second line -----
    /// First twelve bytes of the four addresses (meaningful where `v6` has the bit).
    pub(crate) hi: [[u8; 12]; 4],
    pub(crate) fwmark: u32,
    /// Number of sessions this template controls.
    pub(crate) n_control: u32,
    /// PROXY protocol (with [`flags::IN_SEQ`]): the client's initial sequence number;
    /// client segments after it are shifted by `seq_delta` (the kernel's `in_seq`).
    pub(crate) seq_init: u32,
    /// PROXY protocol: the header's length, the shift of the client's sequence numbers.
    pub(crate) seq_delta: u16,
    /// Client-address work of a FULLNAT session (`cip::*` bits; 0 for the others).
    pub(crate) cip: u8,
    /// PROXY protocol: when the header segment was last sent, in 100 ms ticks (mod 256).
    pub(crate) cip_at: u8,
}

/// Bits of [`Session::cip`]: what a FULLNAT service asks for the client's address, and
/// how far it got.
pub(crate) mod cip {
    /// PROXY protocol v1 header.
    pub const PP1: u8 = 0x01;
    /// PROXY protocol v2 header.
    pub const PP2: u8 = 0x02;
    /// TOA option.
    pub const TOA: u8 = 0x04;
    /// The PROXY header segment was sent to the real server.
    pub const SENT: u8 = 0x08;
    /// The real server acknowledged the whole header.
    pub const ACKED: u8 = 0x10;
    /// The TOA option was added (or found no room): never again.
    pub const TOA_DONE: u8 = 0x20;
    /// Either PROXY version.
    pub const PP: u8 = PP1 | PP2;
    /// Length of a PROXY v2 header with IPv4 addresses (v1's is never this short).
    pub const V2_LEN_V4: usize = 28;
    /// Length of a PROXY v2 header with IPv6 addresses.
    pub const V2_LEN_V6: usize = 52;

    /// Whether nothing is left to do but the sequence shift (the session may take the
    /// fast path).
    pub fn settled(c: u8) -> bool {
        (c & PP == 0 || c & (SENT | ACKED) == SENT | ACKED) && (c & TOA == 0 || c & TOA_DONE != 0)
    }
}

/// What a SYN-proxied session keeps (the proxy's translation and its handshake with the
/// real server). A proxied session is IPv4 (IPv6 services refuse the SYN proxy), so the
/// first twelve bytes of its real server's and local addresses (`hi`) are free: it is
/// kept there, on the session's second line, next to the PROXY protocol's shift.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SynProxyState {
    /// Before the server answers: the cookie (the director's ISN toward the client).
    /// After: what the server's sequence numbers gain toward the client (the kernel's
    /// `out_seq` delta).
    pub delta: u32,
    /// Before the server answers: the director's TSval in its SYN-ACK. After: what the
    /// server's TSval gains toward the client (when both sides use timestamps).
    pub ts_delta: u32,
    /// The legs' window scales ([`crate::forward::synproxy::Scales::pack`]).
    pub scales: u16,
    /// The client's window in its ACK (the window the SYN and ACK to the server offer).
    pub window: u16,
    /// When the last SYN went to the real server (milliseconds, low 32 bits).
    pub syn_at: u32,
    /// The cookie's options ([`crate::forward::synproxy::CookieOptions::pack`]).
    pub opts: u8,
    /// SYNs sent to the real server.
    pub tries: u8,
    /// Timestamps are translated (both sides use them).
    pub ts: bool,
}

/// Index of the client address in [`Session`]'s address parts.
pub(crate) const CADDR: usize = 0;
/// Index of the virtual address.
pub(crate) const VADDR: usize = 1;
/// Index of the real server address.
pub(crate) const DADDR: usize = 2;
/// Index of the local (source toward the real server) address.
pub(crate) const LADDR: usize = 3;

/// The stored parts of a session's four addresses (caddr, vaddr, daddr, laddr): the
/// last four bytes, the first twelve, and which of them are not IPv4.
pub(crate) fn split_addrs(a: [Addr; 4]) -> ([[u8; 4]; 4], [[u8; 12]; 4], u8) {
    let mut lo = [[0u8; 4]; 4];
    let mut hi = [[0u8; 12]; 4];
    let mut v6 = 0u8;
    for (k, a) in a.iter().enumerate() {
        let (h, l) = a.0.split_at(12);
        lo[k].copy_from_slice(l);
        hi[k].copy_from_slice(h);
        if !a.is_v4() {
            v6 |= 1 << k;
        }
    }
    (lo, hi, v6)
}

impl Session {
    /// The SYN proxy's state (meaningful for an IPv4 session with [`flags::SYNPROXY`] or
    /// [`flags::OUT_SEQ`]).
    #[inline(always)]
    pub(crate) fn synproxy(&self) -> SynProxyState {
        let (d, l) = (&self.hi[DADDR], &self.hi[LADDR]);
        let w = |b: &[u8; 12], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        SynProxyState {
            delta: w(d, 0),
            ts_delta: w(d, 4),
            scales: u16::from_ne_bytes([d[8], d[9]]),
            window: u16::from_ne_bytes([d[10], d[11]]),
            syn_at: w(l, 0),
            opts: l[4],
            tries: l[5],
            ts: l[6] != 0,
        }
    }

    /// Keeps the SYN proxy's state; `false` (nothing kept) for a session with an IPv6
    /// real server or local address.
    pub(crate) fn set_synproxy(&mut self, st: SynProxyState) -> bool {
        if self.v6 & (1 << DADDR | 1 << LADDR) != 0 {
            return false;
        }
        let d = &mut self.hi[DADDR];
        d[0..4].copy_from_slice(&st.delta.to_ne_bytes());
        d[4..8].copy_from_slice(&st.ts_delta.to_ne_bytes());
        d[8..10].copy_from_slice(&st.scales.to_ne_bytes());
        d[10..12].copy_from_slice(&st.window.to_ne_bytes());
        let l = &mut self.hi[LADDR];
        l[0..4].copy_from_slice(&st.syn_at.to_ne_bytes());
        l[4] = st.opts;
        l[5] = st.tries;
        l[6] = u8::from(st.ts);
        true
    }

    /// Address `k` (`CADDR`, `VADDR`, `DADDR` or `LADDR`), put together from its parts.
    #[inline]
    pub(crate) fn addr(&self, k: usize) -> Addr {
        let mut a = [0u8; 16];
        a[..12].copy_from_slice(if self.v6 & (1 << k) != 0 {
            &self.hi[k]
        } else {
            &V4_PREFIX
        });
        a[12..].copy_from_slice(&self.lo[k]);
        Addr(a)
    }

    /// Address `k` as IPv6 octets when it is IPv6 (`None` for IPv4): what the IPv6 fast
    /// path reads, without building an [`Addr`] first.
    #[inline(always)]
    pub(crate) fn v6_octets(&self, k: usize) -> Option<[u8; 16]> {
        if self.v6 & (1 << k) == 0 {
            return None;
        }
        let mut a = [0u8; 16];
        a[..12].copy_from_slice(&self.hi[k]);
        a[12..].copy_from_slice(&self.lo[k]);
        Some(a)
    }

    /// The port of end `k` (`CADDR`: cport, `VADDR`: vport, `DADDR`: dport, `LADDR`:
    /// lport).
    #[inline(always)]
    pub(crate) fn port_of(&self, k: usize) -> u16 {
        match k {
            CADDR => self.cport,
            VADDR => self.vport,
            DADDR => self.dport,
            _ => self.lport,
        }
    }

    /// Address `k` as IPv4 octets, read from the first line only; `None` for IPv6 (the
    /// tests' reading of the split; the fast path tests the `v6` bits it needs at once).
    #[cfg(test)]
    pub(crate) fn v4(&self, k: usize) -> Option<[u8; 4]> {
        (self.v6 & (1 << k) == 0).then_some(self.lo[k])
    }

    /// Whether address `k` is `a` (for an IPv4 `a`, without reading the second line).
    #[inline(always)]
    fn addr_is(&self, k: usize, a: &Addr) -> bool {
        let (h, l) = a.0.split_at(12);
        self.lo[k] == l
            && if self.v6 & (1 << k) == 0 {
                h == V4_PREFIX
            } else {
                self.hi[k] == h
            }
    }

    /// Client address.
    pub fn caddr(&self) -> Addr {
        self.addr(CADDR)
    }
    /// Client port (0 in templates).
    pub fn cport(&self) -> u16 {
        self.cport
    }
    /// Virtual address (the fwmark for fwmark templates).
    pub fn vaddr(&self) -> Addr {
        self.addr(VADDR)
    }
    /// Virtual port.
    pub fn vport(&self) -> u16 {
        self.vport
    }
    /// Real server address.
    pub fn daddr(&self) -> Addr {
        self.addr(DADDR)
    }
    /// Real server port.
    pub fn dport(&self) -> u16 {
        self.dport
    }
    /// Source address towards the real server (the LIP under FULLNAT, else `caddr`).
    pub fn laddr(&self) -> Addr {
        self.addr(LADDR)
    }
    /// Source port towards the real server (the FULLNAT lport, else `cport`).
    pub fn lport(&self) -> u16 {
        self.lport
    }
    /// Protocol (`Ip` for fwmark templates).
    pub fn proto(&self) -> Proto {
        self.proto
    }
    /// Firewall mark of the packet that created the session (0 if none).
    pub fn fwmark(&self) -> u32 {
        self.fwmark
    }
    /// Raw state number (TCP: [`TcpState`]; UDP and templates: 0).
    pub fn state(&self) -> u8 {
        self.state
    }
    /// The TCP state (meaningful for TCP sessions).
    pub fn tcp_state(&self) -> TcpState {
        TcpState::from_u8(self.state)
    }
    /// The state `ipvsadm -Lc` lists (templates and UDP sessions have their own).
    pub fn session_state(&self) -> SessionState {
        if self.is_template() {
            return SessionState::Template {
                assured: self.state == TEMPLATE_ASSURED,
            };
        }
        match self.proto {
            Proto::Tcp => SessionState::Tcp(self.tcp_state()),
            Proto::Udp => SessionState::Udp,
            Proto::Ip => SessionState::Other,
        }
    }
    /// The state name `ipvsadm -Lc` prints (`NONE` for templates, `UDP` for UDP).
    pub fn state_name(&self) -> &'static str {
        self.session_state().name()
    }
    /// IPVS conn flags (`IP_VS_CONN_F_*`), without rvs's private bits.
    pub fn flags(&self) -> u16 {
        self.flags & !flags::PRIVATE
    }
    /// Forwarding method.
    pub fn fwd(&self) -> FwdMethod {
        FwdMethod::from_flags(self.flags)
    }
    /// A persistence template.
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }
    /// Counted in InActConn.
    pub fn is_inactive(&self) -> bool {
        self.flags & flags::INACTIVE != 0
    }
    /// Full timeout of the current state, in seconds (what sync sends).
    pub fn timeout_secs(&self) -> u32 {
        self.timeout
    }
    /// Client packets seen.
    pub fn in_pkts(&self) -> u32 {
        self.in_pkts
    }
    /// Sessions controlled by this template.
    pub fn n_control(&self) -> u32 {
        self.n_control
    }
    /// True when the session has a controlling template.
    pub fn has_control(&self) -> bool {
        self.control != NIL
    }

    pub(crate) fn is_live(&self) -> bool {
        self.flags & flags::LIVE != 0
    }

    /// The client-side tuple (as the client's packets carry it).
    pub fn in_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            saddr: self.addr(CADDR),
            daddr: self.addr(VADDR),
            sport: self.cport,
            dport: self.vport,
        }
    }

    /// The server-side tuple (as the real server's replies carry it).
    pub fn out_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            saddr: self.addr(DADDR),
            daddr: self.addr(LADDR),
            sport: self.dport,
            dport: self.lport,
        }
    }

    pub(crate) fn in_eq(&self, k: &FlowKey) -> bool {
        self.cport == k.sport
            && self.vport == k.dport
            && self.proto == k.proto
            && self.addr_is(CADDR, &k.saddr)
            && self.addr_is(VADDR, &k.daddr)
    }

    pub(crate) fn out_eq(&self, k: &FlowKey) -> bool {
        self.dport == k.sport
            && self.lport == k.dport
            && self.proto == k.proto
            && self.addr_is(DADDR, &k.saddr)
            && self.addr_is(LADDR, &k.daddr)
    }

    /// [`Session::in_eq`] of an IPv4 tuple: both addresses IPv4 (their `v6` bits clear)
    /// and equal, compared as the adjacent words they are.
    #[inline(always)]
    pub(crate) fn in_eq4(&self, k: &FlowKey4) -> bool {
        self.ends_eq4(k, (CADDR, VADDR), (self.cport, self.vport))
    }

    /// [`Session::out_eq`] of an IPv4 tuple, as [`Session::in_eq4`].
    #[inline(always)]
    pub(crate) fn out_eq4(&self, k: &FlowKey4) -> bool {
        self.ends_eq4(k, (DADDR, LADDR), (self.dport, self.lport))
    }

    /// Whether addresses `src` and `dst` (of `CADDR`..`LADDR`) are IPv4 and, with
    /// `ports`, the tuple `k`.
    #[inline(always)]
    fn ends_eq4(&self, k: &FlowKey4, (src, dst): (usize, usize), ports: (u16, u16)) -> bool {
        self.v6 & ((1 << src) | (1 << dst)) == 0
            && k.is(
                self.proto,
                FlowKey4::addrs(self.lo[src], self.lo[dst]),
                FlowKey4::ports(ports.0, ports.1),
            )
    }
}

#[inline(always)]
fn fm(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Keyed hash of a tuple (folded multiplies, wyhash/foldhash style); `template` keeps
/// templates and sessions with equal tuples apart.
#[inline]
pub(crate) fn hash_flow(seed: u64, k: &FlowKey, template: bool) -> u64 {
    const K1: u64 = 0x243f_6a88_85a3_08d3;
    const K2: u64 = 0x1319_8a2e_0370_7344;
    const K3: u64 = 0xa409_3822_299f_31d0;
    const K4: u64 = 0x082e_fa98_ec4e_6c89;
    let s = u128::from_le_bytes(k.saddr.0);
    let d = u128::from_le_bytes(k.daddr.0);
    let ports = (u64::from(k.sport) << 32)
        | (u64::from(k.dport) << 16)
        | (u64::from(k.proto as u8) << 1)
        | u64::from(template);
    let h1 = fm((s as u64) ^ seed, ((s >> 64) as u64) ^ K1);
    let h2 = fm((d as u64) ^ K2, ((d >> 64) as u64) ^ seed.rotate_left(29));
    fm(h1 ^ ports ^ K3, h2 ^ K4 ^ seed)
}

/// [`hash_flow`] of a session's tuple with IPv4 addresses `src` and `dst` (as
/// [`crate::flow::Addr::v4`] maps them), computed from the four bytes of each address:
/// the same value, without building the 16-byte addresses first. The burst's IPv4 lane
/// hashes every packet so, straight from its reading; a tuple written to memory and
/// read back as wider words would stall the load on the store (store forwarding fails
/// across several narrower stores).
#[inline(always)]
pub(crate) fn hash_flow_v4(
    seed: u64,
    proto: Proto,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
) -> u64 {
    const K1: u64 = 0x243f_6a88_85a3_08d3;
    const K2: u64 = 0x1319_8a2e_0370_7344;
    const K3: u64 = 0xa409_3822_299f_31d0;
    const K4: u64 = 0x082e_fa98_ec4e_6c89;
    // An IPv4-mapped address's octets 8..16 (00 00 ff ff a b c d) read little-endian;
    // its octets 0..8 are zero.
    let high = |a: [u8; 4]| (u64::from(u32::from_le_bytes(a)) << 32) | 0xffff_0000;
    let ports = (u64::from(sport) << 32) | (u64::from(dport) << 16) | (u64::from(proto as u8) << 1);
    let h1 = fm(seed, high(src) ^ K1);
    let h2 = fm(K2, high(dst) ^ seed.rotate_left(29));
    fm(h1 ^ ports ^ K3, h2 ^ K4 ^ seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv4_hash_is_the_tuple_hash_of_the_mapped_addresses() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (src, dst) = ((x as u32).to_be_bytes(), ((x >> 32) as u32).to_be_bytes());
            let (sport, dport) = ((x >> 7) as u16, (x >> 23) as u16);
            let proto = if x & 1 == 0 { Proto::Tcp } else { Proto::Udp };
            let seed = x.rotate_left(17);
            let key = FlowKey {
                proto,
                saddr: Addr::v4(src[0], src[1], src[2], src[3]),
                daddr: Addr::v4(dst[0], dst[1], dst[2], dst[3]),
                sport,
                dport,
            };
            assert_eq!(
                hash_flow_v4(seed, proto, src, dst, sport, dport),
                hash_flow(seed, &key, false),
                "{key:?}"
            );
        }
    }

    fn session(a: [Addr; 4]) -> Session {
        let (lo, hi, v6) = split_addrs(a);
        Session {
            lo,
            cport: 1000,
            vport: 80,
            dport: 8080,
            lport: 2000,
            timeout: 0,
            expires: 0,
            wheel_at: 0,
            next: NIL,
            prev: NIL,
            dest: 0,
            control: NIL,
            in_pkts: 0,
            flags: 0,
            proto: Proto::Tcp,
            state: 0,
            sync_old: 0,
            v6,
            sync_end: 0,
            hi,
            fwmark: 0,
            n_control: 0,
            seq_init: 0,
            seq_delta: 0,
            cip: 0,
            cip_at: 0,
        }
    }

    fn v6(s: &str) -> Addr {
        Addr(s.parse::<std::net::Ipv6Addr>().unwrap().octets())
    }

    #[test]
    fn addresses_stored_in_two_parts_read_back_whole() {
        let v4 = [
            Addr::v4(192, 168, 1, 10),
            Addr::v4(10, 0, 0, 1),
            Addr::v4(172, 16, 0, 5),
            Addr::v4(172, 16, 0, 1),
        ];
        let six = [
            v6("2001:db8::10"),
            v6("2001:db8::1"),
            v6("fd00::5"),
            v6("fd00::1"),
        ];
        // Mixed families too: an IPv6 client in front of IPv4 servers.
        let mixed = [six[0], six[1], v4[2], v4[3]];
        for a in [v4, six, mixed] {
            let s = session(a);
            assert_eq!([s.caddr(), s.vaddr(), s.daddr(), s.laddr()], a);
            for (k, addr) in a.iter().enumerate() {
                let bits = addr.v4_bits().map(u32::to_be_bytes);
                assert_eq!(s.v4(k), bits, "address {k} of {a:?}");
            }
            assert!(s.in_eq(&s.in_key()) && s.out_eq(&s.out_key()));
            assert_eq!(s.in_key().saddr, a[CADDR]);
            assert_eq!(s.out_key().daddr, a[LADDR]);
        }
    }

    #[test]
    fn addresses_equal_in_their_last_four_bytes_only_do_not_match() {
        // ::ffff:10.0.0.1 (IPv4) and ::10.0.0.1, 2001:db8::a00:1 share the last four bytes.
        let v4 = session([
            Addr::v4(192, 168, 1, 10),
            Addr::v4(10, 0, 0, 1),
            Addr::v4(172, 16, 0, 5),
            Addr::v4(172, 16, 0, 1),
        ]);
        let mut k = v4.in_key();
        for other in [v6("::10.0.0.1"), v6("2001:db8::a00:1")] {
            k.daddr = other;
            assert!(!v4.in_eq(&k), "{other:?}");
        }
        let six = session([
            v6("2001:db8::10"),
            v6("2001:db8::a00:1"),
            v6("fd00::5"),
            v6("fd00::1"),
        ]);
        let mut k = six.in_key();
        k.daddr = Addr::v4(10, 0, 0, 1);
        assert!(!six.in_eq(&k));
        k.daddr = v6("2001:db9::a00:1");
        assert!(!six.in_eq(&k));
        let mut k = six.out_key();
        k.saddr = v6("fd01::5");
        assert!(!six.out_eq(&k));
    }

    /// An address for the proptest: IPv4 `lo`, or an IPv6 one ending in `lo`.
    fn addr_of(lo: [u8; 4], six: bool) -> Addr {
        let [a, b, c, d] = lo;
        match six {
            false => Addr::v4(a, b, c, d),
            true => v6(&format!("2001:db8::{a:x}{b:02x}:{c:x}{d:02x}")),
        }
    }

    proptest::proptest! {
        /// The fast path's IPv4 comparisons (`in_eq4`, `out_eq4`) say what `in_eq` and
        /// `out_eq` say of the same tuple widened to IPv4-mapped addresses, for sessions
        /// of every family mix (an IPv6 address sharing the tuple's last four bytes
        /// included). Addresses, ports and tuples are drawn from three values each, so
        /// that a tuple often equals a session's or differs from it in a field or two.
        #[test]
        fn ipv4_comparisons_equal_the_general_ones(
            lows in proptest::array::uniform4(proptest::array::uniform4(0u8..3)),
            sixes in proptest::array::uniform4(proptest::bool::ANY),
            ports in proptest::array::uniform4(0u16..3),
            udp in proptest::bool::ANY,
            tuple in (proptest::array::uniform2(proptest::array::uniform4(0u8..3)),
                      proptest::array::uniform2(0u16..3), proptest::bool::ANY),
        ) {
            let a = [0, 1, 2, 3].map(|k| addr_of(lows[k], sixes[k]));
            let mut s = session(a);
            [s.cport, s.vport, s.dport, s.lport] = ports;
            s.proto = if udp { Proto::Udp } else { Proto::Tcp };
            let ([saddr, daddr], [sport, dport], tudp) = tuple;
            let proto = if tudp { Proto::Udp } else { Proto::Tcp };
            let k = FlowKey4::new(proto, saddr, daddr, sport, dport);
            proptest::prop_assert_eq!(s.in_eq4(&k), s.in_eq(&k.key()));
            proptest::prop_assert_eq!(s.out_eq4(&k), s.out_eq(&k.key()));
            // The session's own tuples, where both their addresses are IPv4, match.
            if let (Some(saddr), Some(daddr)) = (s.v4(CADDR), s.v4(VADDR)) {
                let (sport, dport) = (s.cport, s.vport);
                let k = FlowKey4::new(s.proto, saddr, daddr, sport, dport);
                proptest::prop_assert!(s.in_eq4(&k));
                proptest::prop_assert_eq!(k.key(), s.in_key());
            }
            if let (Some(saddr), Some(daddr)) = (s.v4(DADDR), s.v4(LADDR)) {
                let (sport, dport) = (s.dport, s.lport);
                let k = FlowKey4::new(s.proto, saddr, daddr, sport, dport);
                proptest::prop_assert!(s.out_eq4(&k));
                proptest::prop_assert_eq!(k.key(), s.out_key());
            }
        }
    }
}
