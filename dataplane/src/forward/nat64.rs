//! NAT64 header translation (RFC 7915, the stateless IP/ICMP translation algorithm) for
//! FULLNAT services whose VIP is IPv6 and whose real servers and local addresses are
//! IPv4: a client's `CIP6:cport → VIP6:vport` leaves as `LIP4:lport → RIP4:rport`
//! ([`v6_to_v4`]), the reply `RIP4:rport → LIP4:lport` as `VIP6:vport → CIP6:cport`
//! ([`v4_to_v6`]); ICMP errors about such packets are translated with the packet they
//! quote ([`icmp6_error_to_v4`], [`icmp4_error_to_v6`]). The caller (the session's plan)
//! gives every new address and port; this file does the bytes only.
//!
//! The frame is Ethernet, untagged or with one 802.1Q tag. The Ethernet header is kept
//! (only its EtherType changes; the caller sets the MACs) and moved so that the frame
//! stays contiguous: the transport header and payload never move, the IP (and ICMP)
//! headers in front of them are rebuilt and the Ethernet header is moved in front of
//! those. An IPv6 packet becomes 20 bytes shorter ([`GROWTH`], plus the extension
//! headers dropped), an IPv4 one 20 bytes longer (prepended into the headroom; less
//! when it had options, which are dropped as RFC 7915 4.1 says).
//!
//! | field | IPv6 → IPv4 (5.1) | IPv4 → IPv6 (4.1) |
//! |---|---|---|
//! | TOS / traffic class | copied | copied; flow label 0 |
//! | TTL / hop limit | copied, − 1 when `decrement` (≤ 1: [`Nat64Error::HopLimit`]) | the same |
//! | identification, flags | 0, DF set (see below) | — |
//! | protocol | TCP, UDP; ICMPv6 58 → ICMP 1 | TCP, UDP; ICMP 1 → ICMPv6 58 |
//! | extension headers / options | hop-by-hop, destination options and routing (segments left 0) dropped; a fragment header refused ([`Nat64Error::Fragment`]) | options dropped; fragments refused |
//!
//! RFC 7915 5.1 sets DF only on packets longer than 1260 bytes and a fresh
//! identification on the others; rvs always sets DF with identification 0 (a pure
//! function has no identification counter, and the IPv4 side of a NAT64 service is the
//! director's own network, where path MTU discovery works), so IPv4 routers never
//! fragment what the director sends.
//!
//! Checksums: the IPv4 header checksum is computed; TCP and UDP checksums are updated
//! incrementally (RFC 1624) for the pseudo-header and the ports, the payload is never
//! read, except for an IPv4 UDP datagram without a checksum (0), whose IPv6 checksum is
//! computed in full (IPv6 requires one; RFC 7915 4.5). ICMP echo request and reply
//! (8/0 ↔ 128/129) are translated with their identifier and an incremental checksum
//! (the ICMPv6 pseudo-header added or removed); other informational messages are
//! [`Nat64Error::Untranslatable`].
//!
//! ICMP errors (RFC 7915 4.2, 4.3, 5.2, 5.3): type and code mapped as the RFC's tables
//! (destination unreachable, time exceeded, parameter problem with its pointer,
//! fragmentation needed ↔ packet too big with the MTU of [`ptb_mtu`] /
//! [`frag_needed_mtu`]); anything the RFC drops is [`Nat64Error::Untranslatable`]. The
//! quoted packet is translated too (its TTL kept, its length fields those of the
//! original packet) with the caller's embedded addresses and ports; its TCP/UDP/echo
//! checksum is updated incrementally whenever the checksum field is quoted, which is
//! exact even when the rest is cut off (as Jool and Linux's NAT do); a quoted IPv4 UDP
//! datagram without checksum gets one only when quoted whole. An ICMPv6 error is cut to
//! 1280 bytes (RFC 4443 2.4 (c)), an ICMPv4 error to 576 (RFC 1812 4.3.2.3). ICMP
//! extensions (RFC 4884) are not interpreted: the length attribute is cleared and
//! whatever follows the quoted packet stays part of the quote. The error's own
//! checksum is verified first ([`Nat64Error::BadChecksum`]) and then computed over the
//! new message.
//!
//! Every function validates everything before it writes: on an error the buffer is
//! unchanged. Nothing allocates; nothing panics on any input (the `nat64` fuzz target).

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::buf::PacketBuf;
use crate::wire::checksum::{self, Adjust};
use crate::wire::{ethernet, ipv4, ipv6, ChecksumMode, EtherType, IpProtocol, Ipv4Repr};

/// How much longer an IPv4 packet gets as IPv6 (and an IPv6 one shorter as IPv4), its
/// options and extension headers aside: the difference of the fixed headers.
pub const GROWTH: usize = ipv6::HEADER_LEN - ipv4::HEADER_LEN;

/// The largest ICMPv6 error the translation sends (RFC 4443 2.4 (c): the IPv6 minimum
/// MTU); a longer translated error loses the end of the quoted packet.
pub const ICMPV6_ERROR_MAX: usize = 1280;

/// The largest ICMPv4 error the translation sends (RFC 1812 4.3.2.3: 576 bytes, as
/// Linux and Jool); a longer translated error loses the end of the quoted packet.
pub const ICMPV4_ERROR_MAX: usize = 576;

/// The IPv6 minimum link MTU (RFC 8200 5).
pub const IPV6_MIN_MTU: u32 = 1280;

/// The smallest MTU an IPv4 fragmentation-needed message carries (RFC 791's 68).
pub const IPV4_MIN_MTU: u16 = 68;

/// Why a frame could not be translated. The caller drops the frame and counts the
/// reason ([`Nat64Error::HopLimit`]: the caller may answer with time-exceeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Nat64Error {
    /// Shorter than its headers, or than one of its length fields says (the IPv4
    /// total length, the IPv6 payload length, the TCP data offset, the UDP length).
    Truncated,
    /// Not a frame of the family translated from (EtherType, IP version, IHL, or an
    /// IPv4 total length shorter than the header).
    NotIp,
    /// The IPv4 header checksum is wrong, or (ICMP errors) the ICMP checksum.
    BadChecksum,
    /// A fragment (IPv4 MF or offset, any IPv6 fragment header): not translated here.
    Fragment,
    /// An IPv6 extension-header chain that is too long, malformed, or has a header
    /// RFC 7915 does not skip (AH, ESP, mobility, …, hop-by-hop not first).
    ExtHeader,
    /// An IPv6 routing header with segments left ≠ 0 (RFC 7915 5.1: not translated; the
    /// sender may be told with a parameter problem pointing at the field).
    SegmentsLeft,
    /// Neither TCP, UDP nor ICMP.
    UnsupportedProto,
    /// The TTL or hop limit is 1 or 0 and was to be decremented.
    HopLimit,
    /// An ICMP message with no counterpart in the other family (RFC 7915 drops it).
    Untranslatable,
    /// An ICMP error given to [`v6_to_v4`] or [`v4_to_v6`]: the error functions
    /// translate it, with the addresses of the packet it quotes.
    IcmpError,
    /// An ICMP error whose quoted packet cannot be translated (too short, a fragment,
    /// not TCP, UDP or an echo, or not an error at all given to an error function).
    BadIcmp,
    /// Not enough headroom in front of the frame for the longer headers.
    NoHeadroom,
    /// The translated IPv4 packet would be longer than 65535 bytes.
    Oversize,
}

impl Nat64Error {
    /// The number of reasons: the length of a per-reason counter array.
    pub const COUNT: usize = 13;

    /// Every reason, in [`Nat64Error::index`] order.
    pub const ALL: [Nat64Error; Nat64Error::COUNT] = [
        Nat64Error::Truncated,
        Nat64Error::NotIp,
        Nat64Error::BadChecksum,
        Nat64Error::Fragment,
        Nat64Error::ExtHeader,
        Nat64Error::SegmentsLeft,
        Nat64Error::UnsupportedProto,
        Nat64Error::HopLimit,
        Nat64Error::Untranslatable,
        Nat64Error::IcmpError,
        Nat64Error::BadIcmp,
        Nat64Error::NoHeadroom,
        Nat64Error::Oversize,
    ];

    /// The stable slot of this reason in a counter array (`0..Nat64Error::COUNT`).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The stable snake_case name of the reason, as shown in statistics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Nat64Error::Truncated => "truncated",
            Nat64Error::NotIp => "not_ip",
            Nat64Error::BadChecksum => "bad_checksum",
            Nat64Error::Fragment => "fragment",
            Nat64Error::ExtHeader => "ext_header",
            Nat64Error::SegmentsLeft => "segments_left",
            Nat64Error::UnsupportedProto => "unsupported_proto",
            Nat64Error::HopLimit => "hop_limit",
            Nat64Error::Untranslatable => "untranslatable",
            Nat64Error::IcmpError => "icmp_error",
            Nat64Error::BadIcmp => "bad_icmp",
            Nat64Error::NoHeadroom => "no_headroom",
            Nat64Error::Oversize => "oversize",
        }
    }
}

impl core::fmt::Display for Nat64Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Nat64Error {}

/// The result of a translation.
pub type Result<T> = core::result::Result<T, Nat64Error>;

impl From<Nat64Error> for crate::wire::Error {
    /// The wire reason a translation failure is counted under (`rewrite:<reason>`).
    fn from(e: Nat64Error) -> Self {
        use crate::wire::Error as W;
        match e {
            Nat64Error::Truncated => W::Truncated,
            Nat64Error::NotIp => W::BadVersion,
            Nat64Error::BadChecksum => W::BadChecksum,
            Nat64Error::Fragment => W::Fragment,
            Nat64Error::ExtHeader | Nat64Error::SegmentsLeft => W::BadExtHeader,
            Nat64Error::HopLimit => W::TtlExpired,
            Nat64Error::BadIcmp => W::BadIcmp,
            Nat64Error::NoHeadroom => W::NoHeadroom,
            Nat64Error::Oversize => W::Oversize,
            Nat64Error::UnsupportedProto | Nat64Error::Untranslatable | Nat64Error::IcmpError => {
                W::UnsupportedProto
            }
        }
    }
}

/// The new IPv4 ends of a packet translated to IPv4. For ICMP echo the identifier
/// plays the port: an echo request's becomes `sport`, an echo reply's `dport` (the
/// identifier is the requester's "port" both ways, as in conntrack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Ends {
    /// The new source address.
    pub src: Ipv4Addr,
    /// The new destination address.
    pub dst: Ipv4Addr,
    /// The new source port (echo request: identifier).
    pub sport: u16,
    /// The new destination port (echo reply: identifier).
    pub dport: u16,
}

/// The new IPv6 ends of a packet translated to IPv6 (ICMP echo: as [`V4Ends`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V6Ends {
    /// The new source address.
    pub src: Ipv6Addr,
    /// The new destination address.
    pub dst: Ipv6Addr,
    /// The new source port (echo request: identifier).
    pub sport: u16,
    /// The new destination port (echo reply: identifier).
    pub dport: u16,
}

/// The MTU of the ICMPv6 packet-too-big made of an IPv4 fragmentation-needed that
/// says `v4_mtu` (RFC 7915 4.2): 20 more, no more than the IPv6 side's `v6_link_mtu`,
/// and never below the IPv6 minimum of 1280. Also the MTU of the packet too big the
/// director owes an IPv6 client whose packet, translated, is too big for the IPv4
/// link (`v4_mtu` that link's MTU).
pub fn ptb_mtu(v4_mtu: u16, v6_link_mtu: u32) -> u32 {
    (u32::from(v4_mtu) + GROWTH as u32)
        .min(v6_link_mtu)
        .max(IPV6_MIN_MTU)
}

/// The MTU of the IPv4 fragmentation-needed made of an ICMPv6 packet-too-big that says
/// `v6_mtu` (RFC 7915 5.2): 20 less, no more than the IPv4 side's `v4_link_mtu`, and
/// never below IPv4's minimum of 68. Also the MTU of the fragmentation-needed the
/// director owes an IPv4 server whose DF packet, translated, is too big for the IPv6
/// link (`v6_mtu` that link's MTU).
pub fn frag_needed_mtu(v6_mtu: u32, v4_link_mtu: u16) -> u16 {
    let m = v6_mtu
        .saturating_sub(GROWTH as u32)
        .min(u32::from(v4_link_mtu));
    (m.min(u32::from(u16::MAX)) as u16).max(IPV4_MIN_MTU)
}

/// RFC 1191's MTU plateaus, for a fragmentation-needed without an MTU (an old router):
/// RFC 7915 4.2 takes the largest plateau below the quoted packet's total length.
const PLATEAUS: [u16; 11] = [
    65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68,
];

/// The RFC 1191 plateau for a packet of `total_len` bytes that was too big.
fn plateau(total_len: u16) -> u16 {
    PLATEAUS
        .iter()
        .copied()
        .find(|&p| p < total_len)
        .unwrap_or(IPV4_MIN_MTU)
}

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

/// The Ethernet header's length (14, or 18 with an 802.1Q tag) when its payload is of
/// `want`'s EtherType.
fn l2_len(data: &[u8], want: EtherType) -> Result<usize> {
    let et = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (l2, ty) = match et(12).ok_or(Nat64Error::Truncated)? {
        t if t == EtherType::VLAN.0 => (
            ethernet::VLAN_HEADER_LEN,
            et(16).ok_or(Nat64Error::Truncated)?,
        ),
        t => (ethernet::HEADER_LEN, t),
    };
    if ty != want.0 {
        return Err(Nat64Error::NotIp);
    }
    Ok(l2)
}

/// What the translation needs of an IPv6 header (outer or quoted).
#[derive(Debug, Clone, Copy)]
struct V6Hdr {
    tc: u8,
    hop: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    /// The upper-layer protocol.
    proto: u8,
    /// The upper layer's offset from the start of the IPv6 header.
    l4: usize,
    /// The upper layer's length as the payload length says (the original packet's).
    l4_len: usize,
}

/// Parses an IPv6 header and walks its extension headers. `ip` runs to the end of the
/// bytes there are; `quoted`: the packet is quoted in an ICMP error and may be cut
/// short after its headers (else the payload length must fit in `ip`).
fn parse_v6(ip: &[u8], quoted: bool) -> Result<V6Hdr> {
    let bad = if quoted {
        Nat64Error::BadIcmp
    } else {
        Nat64Error::Truncated
    };
    if ip.len() < ipv6::HEADER_LEN {
        return Err(bad);
    }
    let p = ipv6::Packet::new_unchecked(ip);
    if p.version() != 6 {
        return Err(if quoted {
            Nat64Error::BadIcmp
        } else {
            Nat64Error::NotIp
        });
    }
    let payload = usize::from(p.payload_len());
    if !quoted && ipv6::HEADER_LEN + payload > ip.len() {
        return Err(Nat64Error::Truncated);
    }
    let (proto, ext) = walk_ext(p.next_header().0, &ip[ipv6::HEADER_LEN..], quoted)?;
    let l4_len = payload.checked_sub(ext).ok_or(bad)?;
    Ok(V6Hdr {
        tc: p.traffic_class(),
        hop: p.hop_limit(),
        src: p.src_addr(),
        dst: p.dst_addr(),
        proto,
        l4: ipv6::HEADER_LEN + ext,
        l4_len,
    })
}

/// Walks the extension headers RFC 7915 5.1 translates by dropping them (hop-by-hop
/// first only, destination options, routing with segments left 0; in a quoted packet
/// any segments left): the upper-layer protocol and the chain's length.
fn walk_ext(first: u8, data: &[u8], quoted: bool) -> Result<(u8, usize)> {
    const HOPOPT: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const DSTOPTS: u8 = 60;
    let (mut proto, mut off) = (first, 0usize);
    for count in 0..=ipv6::MAX_EXT_HEADERS {
        match proto {
            HOPOPT | ROUTING | DSTOPTS if count < ipv6::MAX_EXT_HEADERS => {
                if proto == HOPOPT && count != 0 {
                    return Err(Nat64Error::ExtHeader);
                }
                let hdr = data.get(off..off + 8).ok_or(if quoted {
                    Nat64Error::BadIcmp
                } else {
                    Nat64Error::Truncated
                })?;
                if proto == ROUTING && hdr[3] != 0 && !quoted {
                    return Err(Nat64Error::SegmentsLeft);
                }
                proto = hdr[0];
                off += (usize::from(hdr[1]) + 1) * 8;
                if off > data.len() {
                    return Err(if quoted {
                        Nat64Error::BadIcmp
                    } else {
                        Nat64Error::Truncated
                    });
                }
            }
            FRAGMENT => return Err(Nat64Error::Fragment),
            HOPOPT | ROUTING | DSTOPTS => return Err(Nat64Error::ExtHeader),
            p if ipv6::is_ext_header(IpProtocol(p)) => return Err(Nat64Error::ExtHeader),
            p => return Ok((p, off)),
        }
    }
    Err(Nat64Error::ExtHeader)
}

/// What the translation needs of an IPv4 header (outer or quoted).
#[derive(Debug, Clone, Copy)]
struct V4Hdr {
    tos: u8,
    ttl: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    /// The header length (IHL × 4).
    ihl: usize,
    /// The total length.
    total: usize,
}

/// Parses an IPv4 header: `ip` runs to the end of the bytes there are; a quoted one
/// may be cut short after its header, an outer one's checksum must be right. Fragments
/// are refused.
fn parse_v4(ip: &[u8], quoted: bool) -> Result<V4Hdr> {
    let (bad, not_ip) = if quoted {
        (Nat64Error::BadIcmp, Nat64Error::BadIcmp)
    } else {
        (Nat64Error::Truncated, Nat64Error::NotIp)
    };
    if ip.len() < ipv4::HEADER_LEN {
        return Err(bad);
    }
    let p = ipv4::Packet::new_unchecked(ip);
    let ihl = p.header_len();
    let total = usize::from(p.total_len());
    if p.version() != 4 || ihl < ipv4::HEADER_LEN || total < ihl {
        return Err(not_ip);
    }
    if ihl > ip.len() || (!quoted && total > ip.len()) {
        return Err(bad);
    }
    if !quoted && checksum::data(&ip[..ihl]) != 0xffff {
        return Err(Nat64Error::BadChecksum);
    }
    if p.is_fragment() {
        return Err(if quoted {
            Nat64Error::BadIcmp
        } else {
            Nat64Error::Fragment
        });
    }
    Ok(V4Hdr {
        tos: p.tos(),
        ttl: p.ttl(),
        src: p.src_addr(),
        dst: p.dst_addr(),
        proto: p.protocol().0,
        ihl,
        total,
    })
}

/// The new TTL / hop limit.
fn next_hop(hop: u8, decrement: bool) -> Result<u8> {
    if !decrement {
        Ok(hop)
    } else if hop <= 1 {
        Err(Nat64Error::HopLimit)
    } else {
        Ok(hop - 1)
    }
}

/// ICMP message types used here.
mod icmp_type {
    pub const V4_ECHO_REPLY: u8 = 0;
    pub const V4_DST_UNREACH: u8 = 3;
    pub const V4_ECHO_REQUEST: u8 = 8;
    pub const V4_TIME_EXCEEDED: u8 = 11;
    pub const V4_PARAM_PROBLEM: u8 = 12;
    pub const V6_DST_UNREACH: u8 = 1;
    pub const V6_PKT_TOO_BIG: u8 = 2;
    pub const V6_TIME_EXCEEDED: u8 = 3;
    pub const V6_PARAM_PROBLEM: u8 = 4;
    pub const V6_ECHO_REQUEST: u8 = 128;
    pub const V6_ECHO_REPLY: u8 = 129;
}
use icmp_type::*;

/// Which way a transport header is translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ToV4,
    ToV6,
}

/// The checks of a transport header before anything is written: the protocol is one
/// that is translated, the header (or, quoted, its first 8 bytes) is there, an ICMP
/// message is an echo. Returns the echo's new type for ICMP.
fn check_l4(proto: u8, l4: &[u8], dir: Dir, quoted: bool) -> Result<Option<u8>> {
    let min = match proto {
        PROTO_TCP if !quoted => 20,
        PROTO_TCP | PROTO_UDP => 8,
        PROTO_ICMP if dir == Dir::ToV6 => 8,
        PROTO_ICMPV6 if dir == Dir::ToV4 => 8,
        _ => {
            return Err(if quoted {
                Nat64Error::BadIcmp
            } else {
                Nat64Error::UnsupportedProto
            })
        }
    };
    if l4.len() < min {
        return Err(if quoted {
            Nat64Error::BadIcmp
        } else {
            Nat64Error::Truncated
        });
    }
    if !quoted {
        // the lengths the transport header states must fit the packet
        let ok = match proto {
            PROTO_TCP => {
                let doff = usize::from(l4[12] >> 4) * 4;
                (20..=l4.len()).contains(&doff)
            }
            PROTO_UDP => {
                let len = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
                (8..=l4.len()).contains(&len)
            }
            _ => true,
        };
        if !ok {
            return Err(Nat64Error::Truncated);
        }
    }
    if proto == PROTO_TCP || proto == PROTO_UDP {
        return Ok(None);
    }
    let new = match (dir, l4[0]) {
        (Dir::ToV4, V6_ECHO_REQUEST) => V4_ECHO_REQUEST,
        (Dir::ToV4, V6_ECHO_REPLY) => V4_ECHO_REPLY,
        (Dir::ToV6, V4_ECHO_REQUEST) => V6_ECHO_REQUEST,
        (Dir::ToV6, V4_ECHO_REPLY) => V6_ECHO_REPLY,
        (_, t) if quoted || is_icmp_error(dir, t) => {
            return Err(if quoted {
                Nat64Error::BadIcmp
            } else {
                Nat64Error::IcmpError
            })
        }
        _ => return Err(Nat64Error::Untranslatable),
    };
    if l4[1] != 0 {
        return Err(Nat64Error::Untranslatable);
    }
    Ok(Some(new))
}

/// Whether ICMP type `t` of the family translated from is an error message.
fn is_icmp_error(dir: Dir, t: u8) -> bool {
    match dir {
        Dir::ToV4 => t < 128,
        Dir::ToV6 => matches!(t, 3 | 4 | 5 | 11 | 12),
    }
}

/// Rewrites a transport header in place (checked by [`check_l4`]): ports or echo
/// identifier, echo type, and the checksum updated for `old_pseudo` → `new_pseudo`
/// (0 for ICMPv4, which has no pseudo-header). `l4` holds the bytes there are (quoted:
/// maybe cut short), `l4_len` the transport length of the original packet. An IPv4
/// UDP datagram without checksum going to IPv6 gets one computed in full when it is
/// all there (`new_pseudo` must then be its IPv6 pseudo-header sum).
fn rewrite_l4(
    l4: &mut [u8],
    proto: u8,
    echo: Option<u8>,
    ports: (u16, u16),
    pseudo: (u16, u16),
    dir: Dir,
) {
    let mut adj = Adjust::new();
    adj.replace_u16(pseudo.0, pseudo.1);
    let csum_at = match echo {
        Some(new_type) => {
            let id = if matches!(new_type, V4_ECHO_REQUEST | V6_ECHO_REQUEST) {
                ports.0
            } else {
                ports.1
            };
            adj.replace_u16(u16::from_be_bytes([l4[0], l4[1]]), u16::from(new_type) << 8);
            l4[0] = new_type;
            adj.replace_u16(u16::from_be_bytes([l4[4], l4[5]]), id);
            l4[4..6].copy_from_slice(&id.to_be_bytes());
            2
        }
        None => {
            for (at, port) in [(0usize, ports.0), (2, ports.1)] {
                adj.replace_u16(u16::from_be_bytes([l4[at], l4[at + 1]]), port);
                l4[at..at + 2].copy_from_slice(&port.to_be_bytes());
            }
            if proto == PROTO_TCP {
                16
            } else {
                6
            }
        }
    };
    let Some(field) = l4.get(csum_at..csum_at + 2) else {
        return; // a quoted TCP header cut before its checksum
    };
    let old = u16::from_be_bytes([field[0], field[1]]);
    let udp = proto == PROTO_UDP;
    let new = if udp && old == 0 {
        let udp_len = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
        match (dir, l4.get(..udp_len)) {
            (Dir::ToV6, Some(dgram)) if udp_len >= 8 => {
                !checksum::combine(&[pseudo.1, checksum::data(dgram)])
            }
            // IPv4 allows "no checksum"; a cut-off quote cannot be summed
            _ => return,
        }
    } else {
        adj.apply(old)
    };
    let new = if udp && new == 0 { 0xffff } else { new };
    l4[csum_at..csum_at + 2].copy_from_slice(&new.to_be_bytes());
}

/// The transport length the pseudo-header uses: UDP's own length field (when it is no
/// longer than the packet says), else the IP layer's.
fn pseudo_len(proto: u8, l4: &[u8], ip_l4_len: usize) -> usize {
    if proto == PROTO_UDP {
        let u = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
        if (8..=ip_l4_len).contains(&u) {
            return u;
        }
    }
    ip_l4_len
}

/// Re-lays the frame so that the bytes from `old_l4` on stay as they are while the
/// headers in front of them take `new_l4 - l2` bytes: cuts the data at `end` (Ethernet
/// padding, a too long ICMPv6 error), then prepends or removes at the front and moves
/// the `l2`-byte Ethernet header to the new start. The caller has checked the headroom
/// and the offsets (`l2 <= old_l4 <= end <= len`, `new_l4 >= l2`).
fn relayout<B: PacketBuf + ?Sized>(
    buf: &mut B,
    l2: usize,
    old_l4: usize,
    new_l4: usize,
    end: usize,
) {
    let cut = buf.len() - end;
    let _ = buf.trim(cut);
    if new_l4 > old_l4 {
        let g = new_l4 - old_l4;
        if let Ok(data) = buf.prepend(g) {
            data.copy_within(g..g + l2, 0);
        }
    } else {
        let g = old_l4 - new_l4;
        buf.data_mut().copy_within(..l2, g);
        let _ = buf.adj(g);
    }
}

/// Whether the headroom allows the headers in front of `old_l4` to become `new_l4`.
fn room<B: PacketBuf + ?Sized>(buf: &B, old_l4: usize, new_l4: usize) -> Result<()> {
    if new_l4 > old_l4 && buf.headroom() < new_l4 - old_l4 {
        return Err(Nat64Error::NoHeadroom);
    }
    Ok(())
}

/// Writes a 20-byte IPv4 header (DF, identification 0, checksum computed).
fn emit_v4(out: &mut [u8], h: &V4Hdr) -> Result<()> {
    Ipv4Repr {
        src_addr: h.src,
        dst_addr: h.dst,
        protocol: IpProtocol(h.proto),
        payload_len: h.total - ipv4::HEADER_LEN,
        ttl: h.ttl,
        tos: h.tos,
        ident: 0,
        dont_frag: true,
    }
    .emit(out, ChecksumMode::Software)
    .map_err(|_| Nat64Error::Oversize)
}

/// Writes a 40-byte IPv6 header (flow label 0).
fn emit_v6(out: &mut [u8], h: &V6Hdr) {
    let mut p = ipv6::Packet::new_unchecked(&mut out[..ipv6::HEADER_LEN]);
    p.set_version_tc_flow(h.tc, 0);
    p.set_payload_len(h.l4_len as u16);
    p.set_next_header(IpProtocol(h.proto));
    p.set_hop_limit(h.hop);
    p.set_src_addr(&h.src);
    p.set_dst_addr(&h.dst);
}

/// The IPv4 protocol of an IPv6 upper layer, and back.
const fn proto_to_v4(p: u8) -> u8 {
    if p == PROTO_ICMPV6 {
        PROTO_ICMP
    } else {
        p
    }
}
const fn proto_to_v6(p: u8) -> u8 {
    if p == PROTO_ICMP {
        PROTO_ICMPV6
    } else {
        p
    }
}

/// The pseudo-header sums of a transport header moving between families: the IPv6
/// one (ICMPv6 included) and the IPv4 one (0 for ICMP, which has none).
fn pseudo_v6(h: &V6Hdr, len: usize) -> u16 {
    checksum::pseudo_header_v6(&h.src, &h.dst, h.proto, len as u32)
}
fn pseudo_v4(h: &V4Hdr, len: usize) -> u16 {
    if h.proto == PROTO_ICMP {
        0
    } else {
        checksum::pseudo_header_v4(h.src, h.dst, h.proto, len as u16)
    }
}

/// Translates the IPv6 TCP, UDP or ICMPv6 echo packet in the Ethernet frame in `buf`
/// into IPv4 with the new ends `ends` (see the module docs); `decrement`: the hop limit
/// becomes the TTL less one (a hop limit ≤ 1 is then [`Nat64Error::HopLimit`]).
/// ICMPv6 errors are [`Nat64Error::IcmpError`] ([`icmp6_error_to_v4`] translates them).
pub fn v6_to_v4<B: PacketBuf + ?Sized>(buf: &mut B, ends: &V4Ends, decrement: bool) -> Result<()> {
    let data = buf.data();
    let l2 = l2_len(data, EtherType::IPV6)?;
    let ip = data.get(l2..).ok_or(Nat64Error::Truncated)?;
    let h6 = parse_v6(ip, false)?;
    let (old_l4, l4_len) = (l2 + h6.l4, h6.l4_len);
    let end = old_l4 + l4_len;
    let l4 = &data[old_l4..end];
    let echo = check_l4(h6.proto, l4, Dir::ToV4, false)?;
    let hop = next_hop(h6.hop, decrement)?;
    if ipv4::HEADER_LEN + l4_len > usize::from(u16::MAX) {
        return Err(Nat64Error::Oversize);
    }
    let h4 = V4Hdr {
        tos: h6.tc,
        ttl: hop,
        src: ends.src,
        dst: ends.dst,
        proto: proto_to_v4(h6.proto),
        ihl: ipv4::HEADER_LEN,
        total: ipv4::HEADER_LEN + l4_len,
    };
    let plen = pseudo_len(h6.proto, l4, l4_len);
    let pseudo = (pseudo_v6(&h6, plen), pseudo_v4(&h4, plen));
    let new_l4 = l2 + ipv4::HEADER_LEN;
    room(buf, old_l4, new_l4)?;

    let l4 = &mut buf.data_mut()[old_l4..end];
    rewrite_l4(
        l4,
        h6.proto,
        echo,
        (ends.sport, ends.dport),
        pseudo,
        Dir::ToV4,
    );
    relayout(buf, l2, old_l4, new_l4, end);
    let data = buf.data_mut();
    data[l2 - 2..l2].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
    emit_v4(&mut data[l2..new_l4], &h4)
}

/// Translates the IPv4 TCP, UDP or ICMP echo packet in the Ethernet frame in `buf` into
/// IPv6 with the new ends `ends` (see the module docs); `decrement`: the TTL becomes
/// the hop limit less one (a TTL ≤ 1 is then [`Nat64Error::HopLimit`]). The frame
/// grows by [`GROWTH`] bytes into the headroom ([`Nat64Error::NoHeadroom`]). ICMP
/// errors are [`Nat64Error::IcmpError`] ([`icmp4_error_to_v6`] translates them).
pub fn v4_to_v6<B: PacketBuf + ?Sized>(buf: &mut B, ends: &V6Ends, decrement: bool) -> Result<()> {
    let data = buf.data();
    let l2 = l2_len(data, EtherType::IPV4)?;
    let ip = data.get(l2..).ok_or(Nat64Error::Truncated)?;
    let h4 = parse_v4(ip, false)?;
    let (old_l4, l4_len) = (l2 + h4.ihl, h4.total - h4.ihl);
    let end = l2 + h4.total;
    let l4 = &data[old_l4..end];
    let echo = check_l4(h4.proto, l4, Dir::ToV6, false)?;
    let hop = next_hop(h4.ttl, decrement)?;
    let h6 = V6Hdr {
        tc: h4.tos,
        hop,
        src: ends.src,
        dst: ends.dst,
        proto: proto_to_v6(h4.proto),
        l4: ipv6::HEADER_LEN,
        l4_len,
    };
    let plen = pseudo_len(h4.proto, l4, l4_len);
    let pseudo = (pseudo_v4(&h4, plen), pseudo_v6(&h6, plen));
    let new_l4 = l2 + ipv6::HEADER_LEN;
    room(buf, old_l4, new_l4)?;

    let l4 = &mut buf.data_mut()[old_l4..end];
    rewrite_l4(
        l4,
        h4.proto,
        echo,
        (ends.sport, ends.dport),
        pseudo,
        Dir::ToV6,
    );
    relayout(buf, l2, old_l4, new_l4, end);
    let data = buf.data_mut();
    data[l2 - 2..l2].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
    emit_v6(&mut data[l2..new_l4], &h6);
    Ok(())
}

/// The ICMPv4 type, code and rest of header of an ICMPv6 error (RFC 7915 5.2), given
/// its type, code and rest of header; a packet too big's MTU by [`frag_needed_mtu`]
/// with the IPv4 side's `v4_link_mtu`.
fn map_error_to_v4(t: u8, code: u8, rest: [u8; 4], v4_link_mtu: u16) -> Result<(u8, u8, [u8; 4])> {
    let word = u32::from_be_bytes(rest);
    Ok(match (t, code) {
        (V6_DST_UNREACH, 0 | 2 | 3) => (V4_DST_UNREACH, 1, [0; 4]),
        (V6_DST_UNREACH, 1) => (V4_DST_UNREACH, 10, [0; 4]),
        (V6_DST_UNREACH, 4) => (V4_DST_UNREACH, 3, [0; 4]),
        (V6_PKT_TOO_BIG, 0) => {
            let m = frag_needed_mtu(word, v4_link_mtu).to_be_bytes();
            (V4_DST_UNREACH, 4, [0, 0, m[0], m[1]])
        }
        (V6_TIME_EXCEEDED, 0 | 1) => (V4_TIME_EXCEEDED, code, [0; 4]),
        (V6_PARAM_PROBLEM, 0) => {
            // RFC 7915 figure 6
            let ptr = match word {
                0 => 0,
                1 => 1,
                4 | 5 => 2,
                6 => 9,
                7 => 8,
                8..=23 => 12,
                24..=39 => 16,
                _ => return Err(Nat64Error::Untranslatable),
            };
            (V4_PARAM_PROBLEM, 0, [ptr, 0, 0, 0])
        }
        (V6_PARAM_PROBLEM, 1) => (V4_DST_UNREACH, 2, [0; 4]),
        _ => return Err(Nat64Error::Untranslatable),
    })
}

/// The ICMPv6 type, code and rest of header of an ICMPv4 error (RFC 7915 4.2).
/// `quoted_total`: the quoted packet's total length (for a fragmentation-needed
/// without MTU).
fn map_error_to_v6(
    t: u8,
    code: u8,
    rest: [u8; 4],
    quoted_total: u16,
    v6_link_mtu: u32,
) -> Result<(u8, u8, [u8; 4])> {
    Ok(match (t, code) {
        (V4_DST_UNREACH, 0 | 1 | 5 | 6 | 7 | 8 | 11 | 12) => (V6_DST_UNREACH, 0, [0; 4]),
        (V4_DST_UNREACH, 9 | 10 | 13 | 15) => (V6_DST_UNREACH, 1, [0; 4]),
        (V4_DST_UNREACH, 3) => (V6_DST_UNREACH, 4, [0; 4]),
        (V4_DST_UNREACH, 2) => (V6_PARAM_PROBLEM, 1, 6u32.to_be_bytes()),
        (V4_DST_UNREACH, 4) => {
            let mtu = match u16::from_be_bytes([rest[2], rest[3]]) {
                0 => plateau(quoted_total),
                m => m,
            };
            (V6_PKT_TOO_BIG, 0, ptb_mtu(mtu, v6_link_mtu).to_be_bytes())
        }
        (V4_TIME_EXCEEDED, 0 | 1) => (V6_TIME_EXCEEDED, code, [0; 4]),
        (V4_PARAM_PROBLEM, 0 | 2) => {
            // RFC 7915 figure 3
            let ptr: u32 = match rest[0] {
                0 => 0,
                1 => 1,
                2 | 3 => 4,
                8 => 7,
                9 => 6,
                12..=15 => 8,
                16..=19 => 24,
                _ => return Err(Nat64Error::Untranslatable),
            };
            (V6_PARAM_PROBLEM, 0, ptr.to_be_bytes())
        }
        _ => return Err(Nat64Error::Untranslatable),
    })
}

/// Translates the ICMPv6 error in the Ethernet frame in `buf` into an ICMPv4 error
/// from `outer.0` to `outer.1`; the packet it quotes (the original packet, as the IPv6
/// side saw it) becomes the IPv4 packet with the ends `inner` (as the IPv4 side sent
/// it). `decrement`: the hop limit becomes the TTL less one. `v4_link_mtu`: the IPv4
/// side's MTU, the most a fragmentation-needed made of a packet too big says
/// ([`frag_needed_mtu`]). An error longer than [`ICMPV4_ERROR_MAX`] loses the end of
/// its quote.
pub fn icmp6_error_to_v4<B: PacketBuf + ?Sized>(
    buf: &mut B,
    outer: (Ipv4Addr, Ipv4Addr),
    inner: &V4Ends,
    decrement: bool,
    v4_link_mtu: u16,
) -> Result<()> {
    let data = buf.data();
    let l2 = l2_len(data, EtherType::IPV6)?;
    let ip = data.get(l2..).ok_or(Nat64Error::Truncated)?;
    let o6 = parse_v6(ip, false)?;
    let (icmp_at, end) = (l2 + o6.l4, l2 + o6.l4 + o6.l4_len);
    if o6.proto != PROTO_ICMPV6 {
        return Err(Nat64Error::BadIcmp);
    }
    let msg = &data[icmp_at..end];
    if msg.len() < 8 || !is_icmp_error(Dir::ToV4, msg[0]) {
        return Err(Nat64Error::BadIcmp);
    }
    let sum = checksum::combine(&[pseudo_v6(&o6, msg.len()), checksum::data(msg)]);
    if sum != 0xffff {
        return Err(Nat64Error::BadChecksum);
    }
    let (t, c, rest) = map_error_to_v4(
        msg[0],
        msg[1],
        [msg[4], msg[5], msg[6], msg[7]],
        v4_link_mtu,
    )?;
    let i6 = parse_v6(&msg[8..], true)?;
    let old_l4 = icmp_at + 8 + i6.l4;
    let l4 = &data[old_l4..end];
    let echo = check_l4(i6.proto, l4, Dir::ToV4, true)?;
    let hop = next_hop(o6.hop, decrement)?;
    if ipv4::HEADER_LEN + i6.l4_len > usize::from(u16::MAX) {
        return Err(Nat64Error::BadIcmp);
    }
    let i4 = V4Hdr {
        tos: i6.tc,
        ttl: i6.hop,
        src: inner.src,
        dst: inner.dst,
        proto: proto_to_v4(i6.proto),
        ihl: ipv4::HEADER_LEN,
        total: ipv4::HEADER_LEN + i6.l4_len,
    };
    let plen = pseudo_len(i6.proto, l4, i6.l4_len);
    let pseudo = (pseudo_v6(&i6, plen), pseudo_v4(&i4, plen));
    // the translated error: IPv4, ICMP, quoted IPv4, and the quoted transport bytes
    // there are, cut to ICMPV4_ERROR_MAX
    let headers = ipv4::HEADER_LEN + 8 + ipv4::HEADER_LEN;
    let keep = (end - old_l4).min(ICMPV4_ERROR_MAX - headers);
    let icmp_len = 8 + ipv4::HEADER_LEN + keep;
    let o4 = V4Hdr {
        tos: o6.tc,
        ttl: hop,
        src: outer.0,
        dst: outer.1,
        proto: PROTO_ICMP,
        ihl: ipv4::HEADER_LEN,
        total: ipv4::HEADER_LEN + icmp_len,
    };
    let new_l4 = l2 + headers;
    room(buf, old_l4, new_l4)?;

    let l4 = &mut buf.data_mut()[old_l4..end];
    rewrite_l4(
        l4,
        i6.proto,
        echo,
        (inner.sport, inner.dport),
        pseudo,
        Dir::ToV4,
    );
    relayout(buf, l2, old_l4, new_l4, old_l4 + keep);
    let data = buf.data_mut();
    data[l2 - 2..l2].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
    let icmp_at = l2 + ipv4::HEADER_LEN;
    emit_v4(&mut data[icmp_at + 8..new_l4], &i4)?;
    emit_v4(&mut data[l2..icmp_at], &o4)?;
    let msg = &mut data[icmp_at..];
    msg[..4].copy_from_slice(&[t, c, 0, 0]);
    msg[4..8].copy_from_slice(&rest);
    let sum = !checksum::data(msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Translates the ICMPv4 error in the Ethernet frame in `buf` into an ICMPv6 error
/// from `outer.0` to `outer.1`; the packet it quotes (the original packet, as the IPv4
/// side saw it) becomes the IPv6 packet with the ends `inner` (as the IPv6 side sent
/// it). `decrement`: the TTL becomes the hop limit less one. `v6_link_mtu`: the IPv6
/// side's MTU, the most a packet too big made of a fragmentation-needed says
/// ([`ptb_mtu`]). The frame grows by 40 bytes into the headroom (less the IPv4
/// options dropped); an error longer than [`ICMPV6_ERROR_MAX`] loses the end of its
/// quote.
pub fn icmp4_error_to_v6<B: PacketBuf + ?Sized>(
    buf: &mut B,
    outer: (Ipv6Addr, Ipv6Addr),
    inner: &V6Ends,
    decrement: bool,
    v6_link_mtu: u32,
) -> Result<()> {
    let data = buf.data();
    let l2 = l2_len(data, EtherType::IPV4)?;
    let ip = data.get(l2..).ok_or(Nat64Error::Truncated)?;
    let o4 = parse_v4(ip, false)?;
    let (icmp_at, end) = (l2 + o4.ihl, l2 + o4.total);
    if o4.proto != PROTO_ICMP {
        return Err(Nat64Error::BadIcmp);
    }
    let msg = &data[icmp_at..end];
    if msg.len() < 8 || !is_icmp_error(Dir::ToV6, msg[0]) {
        return Err(Nat64Error::BadIcmp);
    }
    if checksum::data(msg) != 0xffff {
        return Err(Nat64Error::BadChecksum);
    }
    let i4 = parse_v4(&msg[8..], true)?;
    let quoted_total = i4.total as u16;
    let (t, c, rest) = map_error_to_v6(
        msg[0],
        msg[1],
        [msg[4], msg[5], msg[6], msg[7]],
        quoted_total,
        v6_link_mtu,
    )?;
    let old_l4 = icmp_at + 8 + i4.ihl;
    let l4 = &data[old_l4..end];
    let echo = check_l4(i4.proto, l4, Dir::ToV6, true)?;
    let hop = next_hop(o4.ttl, decrement)?;
    let i6 = V6Hdr {
        tc: i4.tos,
        hop: i4.ttl,
        src: inner.src,
        dst: inner.dst,
        proto: proto_to_v6(i4.proto),
        l4: ipv6::HEADER_LEN,
        l4_len: i4.total - i4.ihl,
    };
    let plen = pseudo_len(i4.proto, l4, i6.l4_len);
    let pseudo = (pseudo_v4(&i4, plen), pseudo_v6(&i6, plen));
    // the translated error: IPv6, ICMPv6, quoted IPv6, and the quoted transport bytes
    // there are, cut to ICMPV6_ERROR_MAX
    let headers = ipv6::HEADER_LEN + 8 + ipv6::HEADER_LEN;
    let keep = (end - old_l4).min(ICMPV6_ERROR_MAX - headers);
    let new_end = old_l4 + keep;
    let new_l4 = l2 + headers;
    room(buf, old_l4, new_l4)?;
    let o6 = V6Hdr {
        tc: o4.tos,
        hop,
        src: outer.0,
        dst: outer.1,
        proto: PROTO_ICMPV6,
        l4: ipv6::HEADER_LEN,
        l4_len: 8 + ipv6::HEADER_LEN + keep,
    };

    let l4 = &mut buf.data_mut()[old_l4..end];
    rewrite_l4(
        l4,
        i4.proto,
        echo,
        (inner.sport, inner.dport),
        pseudo,
        Dir::ToV6,
    );
    relayout(buf, l2, old_l4, new_l4, new_end);
    let data = buf.data_mut();
    data[l2 - 2..l2].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
    let icmp_at = l2 + ipv6::HEADER_LEN;
    emit_v6(&mut data[icmp_at + 8..new_l4], &i6);
    emit_v6(&mut data[l2..icmp_at], &o6);
    let msg = &mut data[icmp_at..];
    msg[..4].copy_from_slice(&[t, c, 0, 0]);
    msg[4..8].copy_from_slice(&rest);
    let sum = !checksum::combine(&[pseudo_v6(&o6, msg.len()), checksum::data(msg)]);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests;
