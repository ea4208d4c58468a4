//! What a worker counts: drops by reason, packets and bytes each way, and the traffic
//! of each real server (ipvsadm's `--stats` columns).

use crate::buf::PacketBuf;
use crate::conn::{ConnId, Direction};
use crate::service::DestId;
use crate::wire;

use super::Core;

/// Why a packet was dropped. Every reason has a counter slot ([`DropReason::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The frame failed validation (truncated, bad IHL, bad length, bad checksum,
    /// fragment, …): the wire layer's reason.
    Malformed(wire::Error),
    /// The rewrite refused the packet (TTL expired, oversize, no headroom, …).
    Rewrite(wire::Error),
    /// Neither for a service, nor for the director, nor a reply of a session.
    NotForUs,
    /// TCP without SYN and no session.
    NoSession,
    /// The session table is full.
    TableFull,
    /// No real server available (IPVS answers ICMP port-unreachable).
    NoDest,
    /// FULLNAT: no local address/port free.
    NoLocalAddr,
    /// The session's real server was removed.
    DestUnavailable,
    /// No route to the next hop.
    NoRoute,
    /// The next hop does not resolve: table full or hold queue full.
    Unresolved,
    /// An EtherType other than IPv4, IPv6 and ARP, or a session whose plan cannot be
    /// carried out (a family the mode does not translate).
    Unsupported,
    /// A martian, as Linux drops it before IPVS sees it: a source in 0/8, 127/8, 224/4,
    /// 240/4 (the limited broadcast included) or one of the director's own addresses;
    /// or a TCP or UDP packet to a multicast or broadcast destination.
    Martian,
    /// An ARP reply or gratuitous ARP from another host claiming one of the director's
    /// addresses: never learned, logged once per address per minute.
    ArpConflict,
    /// The frame's 802.1Q tag does not match its port: a tag on a port without `vlan`,
    /// no tag or another VID on a port with one (a priority tag, VID 0, is a tag).
    Vlan,
    /// A frame the host's kernel sent to the probe MAC of a real server (a health check
    /// through the VIP) that is not IPv4 to a VIP of which that server is a TUN server.
    ProbeUnknown,
    /// A packet that would open a session above the worker's new-session budget
    /// (`[sessions] new_per_second`): refused, no session created.
    NewSessionBudget,
    /// A UDP datagram of a FULLNAT service with PROXY protocol v2 that would exceed the
    /// egress MTU (or the buffer's headroom) with the header in front of it; a fragmented
    /// datagram of such a service, or a client's TCP fragment while its session still
    /// has a PROXY header or TOA to give (a fragment can take neither).
    ProxyNoRoom,
    /// A packet that would open a session from a client the global ACL or its service's
    /// ACL denies (`--add-blklst`, `--add-whtlst`, `[acl]`): no session created. Packets
    /// of established sessions are never checked.
    AclDeny,
    /// SYN proxy: a client's ACK without a session whose cookie is stale or forged (an
    /// ACK flood with random cookies): no session.
    SynProxyBadCookie,
    /// SYN proxy: a SYN whose options do not parse (a length under 2 or running past
    /// the header): not answered.
    SynProxyBadOptions,
    /// SYN proxy: a client segment of a session whose real server has not answered the
    /// director's SYN yet (data sent with or after the ACK: the client sends it again),
    /// or a server segment other than its SYN-ACK or a reset then.
    SynProxySetup,
    /// A SYN to a SYN-proxied service shed while the worker is overloaded (its receive
    /// bursts keep coming back full): dropped before its cookie is computed, so that
    /// established packets keep being served.
    SynShed,
    /// An ICMPv6 message the director does not act on: a router advertisement, router
    /// solicitation or redirect sent at it (rvs routes by its configuration only), or
    /// a neighbour-discovery message that fails RFC 4861's checks (hop limit not 255,
    /// code not 0, a multicast target).
    NdIgnored,
    /// A fragment the worker's fragment table had no room for (datagrams tracked,
    /// fragments held waiting for their first, ranges per datagram).
    FragTableFull,
    /// A fragment overlapping one seen before of its datagram (or reaching past its
    /// last fragment): it and every later fragment of the datagram are dropped.
    FragOverlap,
    /// A duplicate fragment: wholly within what was seen of its datagram.
    FragDuplicate,
    /// A tiny fragment (RFC 1858): a first fragment too short for its L4 header, a TCP
    /// fragment at offset 8.
    FragTiny,
    /// A fragment held for its datagram's first fragment, which did not come in time.
    FragTimeout,
}

impl DropReason {
    /// Slots in a counter array: one per wire error twice (malformed, rewrite) plus the
    /// other reasons.
    pub const COUNT: usize = 2 * wire::Error::COUNT + 26;

    /// The counter slot.
    pub fn index(self) -> usize {
        let w = wire::Error::COUNT;
        match self {
            DropReason::Malformed(e) => e.index(),
            DropReason::Rewrite(e) => w + e.index(),
            DropReason::NotForUs => 2 * w,
            DropReason::NoSession => 2 * w + 1,
            DropReason::TableFull => 2 * w + 2,
            DropReason::NoDest => 2 * w + 3,
            DropReason::NoLocalAddr => 2 * w + 4,
            DropReason::DestUnavailable => 2 * w + 5,
            DropReason::NoRoute => 2 * w + 6,
            DropReason::Unresolved => 2 * w + 7,
            DropReason::Unsupported => 2 * w + 8,
            DropReason::Martian => 2 * w + 9,
            DropReason::ArpConflict => 2 * w + 10,
            DropReason::Vlan => 2 * w + 11,
            DropReason::ProbeUnknown => 2 * w + 12,
            DropReason::NewSessionBudget => 2 * w + 13,
            DropReason::ProxyNoRoom => 2 * w + 14,
            DropReason::AclDeny => 2 * w + 15,
            DropReason::SynProxyBadCookie => 2 * w + 16,
            DropReason::SynProxyBadOptions => 2 * w + 17,
            DropReason::SynProxySetup => 2 * w + 18,
            DropReason::SynShed => 2 * w + 19,
            DropReason::NdIgnored => 2 * w + 20,
            DropReason::FragTableFull => 2 * w + 21,
            DropReason::FragOverlap => 2 * w + 22,
            DropReason::FragDuplicate => 2 * w + 23,
            DropReason::FragTiny => 2 * w + 24,
            DropReason::FragTimeout => 2 * w + 25,
        }
    }

    /// The reason of a counter slot (inverse of [`DropReason::index`]).
    pub fn from_index(i: usize) -> Option<DropReason> {
        let w = wire::Error::COUNT;
        Some(match i {
            i if i < w => DropReason::Malformed(wire::Error::ALL[i]),
            i if i < 2 * w => DropReason::Rewrite(wire::Error::ALL[i - w]),
            i => match i - 2 * w {
                0 => DropReason::NotForUs,
                1 => DropReason::NoSession,
                2 => DropReason::TableFull,
                3 => DropReason::NoDest,
                4 => DropReason::NoLocalAddr,
                5 => DropReason::DestUnavailable,
                6 => DropReason::NoRoute,
                7 => DropReason::Unresolved,
                8 => DropReason::Unsupported,
                9 => DropReason::Martian,
                10 => DropReason::ArpConflict,
                11 => DropReason::Vlan,
                12 => DropReason::ProbeUnknown,
                13 => DropReason::NewSessionBudget,
                14 => DropReason::ProxyNoRoom,
                15 => DropReason::AclDeny,
                16 => DropReason::SynProxyBadCookie,
                17 => DropReason::SynProxyBadOptions,
                18 => DropReason::SynProxySetup,
                19 => DropReason::SynShed,
                20 => DropReason::NdIgnored,
                21 => DropReason::FragTableFull,
                22 => DropReason::FragOverlap,
                23 => DropReason::FragDuplicate,
                24 => DropReason::FragTiny,
                25 => DropReason::FragTimeout,
                _ => return None,
            },
        })
    }

    /// A stable name for listings, e.g. `malformed:truncated`.
    pub fn name(self) -> String {
        match self {
            DropReason::Malformed(e) => format!("malformed:{}", e.as_str()),
            DropReason::Rewrite(e) => format!("rewrite:{}", e.as_str()),
            DropReason::NotForUs => "not-for-us".into(),
            DropReason::NoSession => "no-session".into(),
            DropReason::TableFull => "table-full".into(),
            DropReason::NoDest => "no-dest".into(),
            DropReason::NoLocalAddr => "no-laddr".into(),
            DropReason::DestUnavailable => "dest-unavailable".into(),
            DropReason::NoRoute => "no-route".into(),
            DropReason::Unresolved => "unresolved".into(),
            DropReason::Unsupported => "unsupported".into(),
            DropReason::Martian => "martian".into(),
            DropReason::ArpConflict => "arp-conflict".into(),
            DropReason::Vlan => "vlan".into(),
            DropReason::ProbeUnknown => "probe-unknown".into(),
            DropReason::NewSessionBudget => "new-session-budget".into(),
            DropReason::ProxyNoRoom => "proxy-no-room".into(),
            DropReason::AclDeny => "acl-deny".into(),
            DropReason::SynProxyBadCookie => "syn-proxy-bad-cookie".into(),
            DropReason::SynProxyBadOptions => "syn-proxy-bad-options".into(),
            DropReason::SynProxySetup => "syn-proxy-setup".into(),
            DropReason::SynShed => "syn-shed".into(),
            DropReason::NdIgnored => "nd-ignored".into(),
            DropReason::FragTableFull => "frag-table-full".into(),
            DropReason::FragOverlap => "frag-overlap".into(),
            DropReason::FragDuplicate => "frag-duplicate".into(),
            DropReason::FragTiny => "frag-tiny".into(),
            DropReason::FragTimeout => "frag-timeout".into(),
        }
    }
}

/// Per-worker counters (only the owning worker writes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Packets processed by this worker (after handoff).
    pub packets: u64,
    /// New connections scheduled to a real server (IPVS's `conns`: what
    /// `/proc/net/ip_vs_stats` counts; persistence templates and synced sessions are not
    /// connections scheduled here).
    pub conns: u64,
    /// Packets forwarded toward real servers (client → RS).
    pub in_packets: u64,
    /// Bytes of those.
    pub in_bytes: u64,
    /// Replies forwarded toward clients (RS → client, NAT/FULLNAT).
    pub out_packets: u64,
    /// Bytes of those.
    pub out_bytes: u64,
    /// Packets handed to other workers.
    pub handoff_out: u64,
    /// ARP requests and IPv6 neighbour solicitations answered.
    pub arp_replies: u64,
    /// ICMP and ICMPv6 echo requests answered.
    pub echo_replies: u64,
    /// ICMP errors about sessions translated (NAT, FULLNAT) or relayed (DR, TUN).
    pub icmp_translated: u64,
    /// ICMP fragmentation-needed errors originated (TUN).
    pub frag_needed_sent: u64,
    /// ICMP time-exceeded errors originated (a routed packet whose TTL ran out).
    pub time_exceeded_sent: u64,
    /// ICMP errors not originated because the worker's ICMP rate limit was reached.
    pub icmp_rate_limited: u64,
    /// PROXY protocol headers sent to real servers: TCP header segments (resent ones
    /// included) and UDP datagrams that got one.
    pub proxy_headers: u64,
    /// TCP header segments sent again (the real server had not acknowledged the header
    /// when the client's first byte came again).
    pub proxy_resent: u64,
    /// TOA options added to a client's first segment after the SYN.
    pub toa_added: u64,
    /// TOA options not added for want of room (TCP options full, or the segment would
    /// exceed the MTU).
    pub toa_no_room: u64,
    /// SYN proxy: SYN-ACKs with a cookie sent to clients (no session created).
    pub syn_cookies_sent: u64,
    /// SYN proxy: SYNs whose absurd options were clamped (MSS 0, window scale above 14).
    pub syn_options_clamped: u64,
    /// SYN proxy: clients' ACKs with a valid cookie (stale or forged ones are the drop
    /// reason `syn-proxy-bad-cookie`).
    pub syn_proxy_acks: u64,
    /// SYN proxy: sessions opened by a valid ACK (a SYN sent to a real server).
    pub syn_proxy_sessions: u64,
    /// SYN proxy: sessions whose real server answered with its SYN-ACK (translated from
    /// then on).
    pub syn_proxy_established: u64,
    /// SYN proxy: SYNs sent to a real server again (it had not answered 1 s, then 3 s,
    /// after the first).
    pub syn_proxy_retries: u64,
    /// SYN proxy: real servers that refused the SYN (a reset, passed to the client).
    pub syn_proxy_refused: u64,
    /// SYN proxy: real servers that never answered (three SYNs): the client was reset.
    pub syn_proxy_timeouts: u64,
    /// SYN proxy: clients that reset a connection before its real server answered.
    pub syn_proxy_client_resets: u64,
    /// SYN proxy: client data segments (with the ACK or after it) held until the real
    /// server's handshake completes.
    pub syn_proxy_held: u64,
    /// SYN proxy: held segments sent on to the real server after its handshake.
    pub syn_proxy_held_sent: u64,
    /// SYN proxy: held segments freed because the connection failed (the server's or
    /// the client's reset, no answer, the session gone).
    pub syn_proxy_held_freed: u64,
    /// SYN proxy: data segments not held (the worker's table of held segments full, or
    /// one already held for the session): dropped as `syn-proxy-setup`, for the client
    /// to send again.
    pub syn_proxy_held_full: u64,
    /// IP fragments forwarded (every mode, both directions; first fragments included).
    pub frags_forwarded: u64,
    /// IP fragments held until their datagram's first fragment arrived.
    pub frags_held: u64,
    /// TUN: packets without DF too big for the tunnel, sent as two outer fragments.
    pub tun_outer_fragmented: u64,
    /// Drops by reason ([`DropReason::index`]).
    pub drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            packets: 0,
            conns: 0,
            in_packets: 0,
            in_bytes: 0,
            out_packets: 0,
            out_bytes: 0,
            handoff_out: 0,
            arp_replies: 0,
            echo_replies: 0,
            icmp_translated: 0,
            frag_needed_sent: 0,
            time_exceeded_sent: 0,
            icmp_rate_limited: 0,
            proxy_headers: 0,
            proxy_resent: 0,
            toa_added: 0,
            toa_no_room: 0,
            syn_cookies_sent: 0,
            syn_options_clamped: 0,
            syn_proxy_acks: 0,
            syn_proxy_sessions: 0,
            syn_proxy_established: 0,
            syn_proxy_retries: 0,
            syn_proxy_refused: 0,
            syn_proxy_timeouts: 0,
            syn_proxy_client_resets: 0,
            syn_proxy_held: 0,
            syn_proxy_held_sent: 0,
            syn_proxy_held_freed: 0,
            syn_proxy_held_full: 0,
            frags_forwarded: 0,
            frags_held: 0,
            tun_outer_fragmented: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// Total drops.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Drops of one reason.
    pub fn drops_of(&self, r: DropReason) -> u64 {
        self.drops[r.index()]
    }
}

/// Traffic of one real server on one worker (ipvsadm's --stats columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestTraffic {
    /// Sessions scheduled to it.
    pub conns: u64,
    /// Packets client -> server.
    pub inpkts: u64,
    /// Packets server -> client (seen by the director: NAT, FULLNAT).
    pub outpkts: u64,
    /// Bytes client -> server.
    pub inbytes: u64,
    /// Bytes server -> client.
    pub outbytes: u64,
}

/// Per-worker connection-sync counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounters {
    /// Records emitted for the sync thread (master).
    pub emitted: u64,
    /// Records lost because the per-burst buffer or the queue to the sync thread was full.
    pub dropped: u64,
    /// Sessions installed from the standby's sync messages.
    pub installed: u64,
    /// Existing sessions updated from sync messages.
    pub updated: u64,
    /// Synced records refused (bad protocol/state, table full, local port busy, and
    /// `no_service`).
    pub refused: u64,
    /// Of `refused`: in a sync group, sessions of a service this director does not have.
    pub no_service: u64,
}

impl<P: PacketBuf> Core<P> {
    /// Per-server traffic: (server id, traffic) for every server this worker knows.
    pub fn dest_traffic(&self) -> impl Iterator<Item = (DestId, DestTraffic)> + '_ {
        self.conns
            .dests()
            .slots()
            .iter()
            .zip(self.traffic.iter())
            .filter(|(rt, _)| rt.id != DestId(u32::MAX))
            .map(|(rt, t)| (rt.id, t.1))
    }

    pub(super) fn traffic_of(&mut self, id: ConnId) -> Option<&mut DestTraffic> {
        let slot = self.conns.dest_slot(id)?;
        self.traffic.get_mut(slot as usize).map(|t| &mut t.1)
    }

    /// Counts a forwarded packet of `len` bytes of session `id`: the worker's in/out
    /// counters and its real server's traffic.
    #[inline(always)]
    pub(super) fn count_forwarded(&mut self, id: ConnId, dir: Direction, len: u64) {
        let input = dir == Direction::Input;
        if input {
            self.counters.in_packets += 1;
            self.counters.in_bytes += len;
        } else {
            self.counters.out_packets += 1;
            self.counters.out_bytes += len;
        }
        if let Some(t) = self.traffic_of(id) {
            if input {
                t.inpkts += 1;
                t.inbytes += len;
            } else {
                t.outpkts += 1;
                t.outbytes += len;
            }
        }
    }
}
