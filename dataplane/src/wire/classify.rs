//! One-pass classification of a received Ethernet frame: the pipeline's first step.
//!
//! [`classify`] validates Ethernet (+ one 802.1Q tag) → IPv4/IPv6 → TCP/UDP/ICMP and
//! returns where each header starts, the 5-tuple, the TCP flags and, for ICMP errors,
//! the 5-tuple of the embedded packet — or the typed [`Error`] to count the drop under.
//!
//! What it checks: every length (Ethernet, IPv4 IHL and total length, IPv6 payload
//! length and extension headers, TCP data offset, UDP length = IP payload length, ICMP
//! header, the embedded header of an ICMP error), the IPv4 header checksum (unless the
//! NIC verified it: [`ChecksumMode::Offload`]). A fragment (IPv4 MF or offset; IPv6 a
//! Fragment header of a real fragment) is reported in [`IpMeta::frag`]: a first fragment
//! with its ports (and TCP flags) as far as it holds them, a later one without ports
//! (its `l4_offset` is where its data starts). A fragment whose data is not a multiple
//! of 8 bytes while more follow, one that would end past 65535 bytes, and (IPv6) a
//! second Fragment header in the chain are [`Error::Fragment`].
//! What it does not: TCP/UDP/ICMP checksums (rewrites update them incrementally, so a
//! wrong sum stays wrong and the end host drops the packet; the ICMP translation checks
//! the ICMP sum itself), TTL (the rewrites that route check it).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::checksum::{self, ChecksumMode};
use super::ethernet::{Address as EthernetAddress, EtherType, Frame};
use super::icmpv4::Message;
use super::ip::{Endpoint, FiveTuple, IpProtocol, IpVersion};
use super::ipv4::Packet as Ipv4Packet;
use super::ipv6::{self, Packet as Ipv6Packet};
use super::tcp::{self, Packet as TcpPacket};
use super::udp::Packet as UdpPacket;
use super::{read_u16, Error, Result};

/// What the Ethernet header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Meta {
    /// Destination MAC.
    pub dst_mac: EthernetAddress,
    /// Source MAC.
    pub src_mac: EthernetAddress,
    /// The 802.1Q TCI when the frame is tagged.
    pub vlan_tci: Option<u16>,
    /// The payload EtherType (after the tag).
    pub ethertype: EtherType,
    /// Where the L3 header starts (14, or 18 when tagged).
    pub l3_offset: usize,
}

/// The embedded packet of an ICMP error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerMeta {
    /// Where the embedded IP header starts in the frame.
    pub l3_offset: usize,
    /// Where the embedded L4 header starts in the frame (at least 8 bytes follow).
    pub l4_offset: usize,
    /// The embedded packet's tuple as written (it travelled the other way: reverse it
    /// to look up the session of the packet that carries the error).
    pub tuple: FiveTuple,
}

/// What an ICMP or ICMPv6 header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpMeta {
    /// The type.
    pub msg_type: u8,
    /// The code.
    pub code: u8,
    /// The identifier of an echo request/reply (0 otherwise).
    pub echo_ident: u16,
    /// For error messages: the embedded packet.
    pub inner: Option<InnerMeta>,
}

impl IcmpMeta {
    /// Whether this is an error message carrying an embedded packet.
    pub const fn is_error(&self) -> bool {
        self.inner.is_some()
    }
}

/// A validated IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpMeta {
    /// The Ethernet layer.
    pub l2: L2Meta,
    /// IPv4 or IPv6.
    pub version: IpVersion,
    /// Where the L4 header starts (after IPv4 options or IPv6 extension headers).
    pub l4_offset: usize,
    /// Where the IP packet ends; bytes after it are Ethernet padding.
    pub ip_end: usize,
    /// The 5-tuple (ports 0 for protocols without ports).
    pub tuple: FiveTuple,
    /// TCP flags (empty for other protocols).
    pub tcp_flags: tcp::Flags,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 TOS or IPv6 traffic class.
    pub tos: u8,
    /// IPv4 DF flag (always true for IPv6, which routers never fragment).
    pub dont_frag: bool,
    /// ICMP details when the protocol is ICMP/ICMPv6.
    pub icmp: Option<IcmpMeta>,
    /// The fragment facts when the packet is a fragment (`None` for a whole datagram).
    pub frag: Option<FragMeta>,
}

/// What a fragment's headers say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragMeta {
    /// The identification: IPv4's 16 bits, IPv6's 32.
    pub ident: u32,
    /// The offset of this fragment's data in the datagram, in bytes (a multiple of 8).
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

impl FragMeta {
    /// Whether this is the first fragment (offset 0): the one carrying the L4 header.
    pub const fn is_first(&self) -> bool {
        self.offset == 0
    }
}

impl IpMeta {
    /// A placeholder that [`classify_into`] fills in place.
    const EMPTY: IpMeta = IpMeta {
        l2: L2Meta {
            dst_mac: EthernetAddress([0; 6]),
            src_mac: EthernetAddress([0; 6]),
            vlan_tci: None,
            ethertype: EtherType::IPV4,
            l3_offset: 0,
        },
        version: IpVersion::V4,
        l4_offset: 0,
        ip_end: 0,
        tuple: FiveTuple {
            protocol: IpProtocol::TCP,
            src: Endpoint {
                addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                port: 0,
            },
            dst: Endpoint {
                addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                port: 0,
            },
        },
        tcp_flags: tcp::Flags::NONE,
        ttl: 0,
        tos: 0,
        dont_frag: false,
        icmp: None,
        frag: None,
    };

    /// Where the IP header starts.
    pub const fn l3_offset(&self) -> usize {
        self.l2.l3_offset
    }

    /// The L4 length (header and payload).
    pub const fn l4_len(&self) -> usize {
        self.ip_end.saturating_sub(self.l4_offset)
    }
}

/// The outcome of [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    /// An IPv4 or IPv6 packet that passed every check.
    Ip(IpMeta),
    /// An ARP packet (the L3 bytes are not checked here; see [`super::ArpRepr::parse`]).
    Arp(L2Meta),
    /// Anything else (other EtherTypes, a second VLAN tag): for the exception path.
    Other(L2Meta),
}

/// Classify a received Ethernet frame.
///
/// `rx_checksum` says who verified the IPv4 header checksum: `Software` verifies it
/// here, `Offload` trusts the NIC (the caller has already dropped frames the NIC
/// flagged bad).
#[inline]
pub fn classify(frame: &[u8], rx_checksum: ChecksumMode) -> Result<Classified> {
    let mut out = Err(Error::Truncated);
    classify_into(frame, rx_checksum, &mut out);
    out
}

/// [`classify`] writing its result into `out` (the burst path keeps its results in
/// place: an [`IpMeta`] is 176 bytes, worth not copying around).
#[inline]
pub fn classify_into(frame: &[u8], rx_checksum: ChecksumMode, out: &mut Result<Classified>) {
    let eth = match Frame::new_checked(frame) {
        Ok(e) => e,
        Err(e) => {
            *out = Err(e);
            return;
        }
    };
    let l2 = || L2Meta {
        dst_mac: eth.dst_addr(),
        src_mac: eth.src_addr(),
        vlan_tci: eth.vlan_tci(),
        ethertype: eth.payload_ethertype(),
        l3_offset: eth.header_len(),
    };
    match eth.payload_ethertype() {
        EtherType::IPV4 => {
            // Every field is written below; a slot already holding an `IpMeta` is reused
            // as it is (no 176-byte copy).
            if !matches!(out, Ok(Classified::Ip(_))) {
                *out = Ok(Classified::Ip(IpMeta::EMPTY));
            }
            if let Ok(Classified::Ip(meta)) = out {
                // Field by field, straight from the frame (copying a whole `L2Meta` just
                // written on the stack stalls on store forwarding).
                meta.l2.dst_mac = eth.dst_addr();
                meta.l2.src_mac = eth.src_addr();
                meta.l2.vlan_tci = eth.vlan_tci();
                meta.l2.ethertype = EtherType::IPV4;
                meta.l2.l3_offset = eth.header_len();
                if let Err(e) = classify_ipv4(frame, rx_checksum, meta) {
                    *out = Err(e);
                }
            }
        }
        EtherType::IPV6 => *out = classify_ipv6(frame, l2()).map(Classified::Ip),
        EtherType::ARP => *out = Ok(Classified::Arp(l2())),
        _ => *out = Ok(Classified::Other(l2())),
    }
}

/// An IPv4 TCP or UDP packet's flow and offsets, as [`classify_v4_flow`] reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Flow {
    /// Offset of the IPv4 header: 14, or 18 behind a VLAN tag.
    pub l3: u16,
    /// Offset of the TCP or UDP header.
    pub l4: u16,
    /// Offset of the end of the IP packet (Ethernet padding after it).
    pub ip_end: u16,
    /// UDP (else TCP).
    pub udp: bool,
    /// The low eight bits of the TCP flags (0 for UDP).
    pub tcp_flags: u8,
    /// Source address, as on the wire.
    pub src: [u8; 4],
    /// Destination address, as on the wire.
    pub dst: [u8; 4],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// The L4 part of the lanes' readings ([`classify_v4_flow`], [`classify_v6_flow`]): a
/// well-formed TCP header (its data offset within the segment) or UDP header (its length
/// the segment's) of protocol `proto` in `seg`: whether it is UDP, and the low eight bits
/// of the TCP flags (0 for UDP). `None` for anything else.
#[inline(always)]
fn lane_l4(proto: u8, seg: &[u8]) -> Option<(bool, u8)> {
    match proto {
        6 => {
            let hl = usize::from(*seg.get(12)? >> 4) * 4;
            if seg.len() < 20 || hl < 20 || hl > seg.len() {
                return None;
            }
            Some((false, seg[13]))
        }
        17 => {
            if seg.len() < 8 || usize::from(u16::from_be_bytes([seg[4], seg[5]])) != seg.len() {
                return None;
            }
            Some((true, 0))
        }
        _ => None,
    }
}

/// The common case of [`classify`] with `Software` checksums, and only it: an IPv4
/// packet without options, not a fragment, whose header checksum is right, carrying a
/// well-formed TCP or UDP header; untagged or behind one VLAN tag. `None` for anything
/// else, which [`classify`] then decides. [`classify`] accepts every frame this accepts,
/// with the same tuple, offsets and flags.
///
/// What the receive path reads an established packet with: a few loads and compares
/// against a fixed layout, and no 176-byte [`IpMeta`] written.
#[inline(always)]
pub fn classify_v4_flow(frame: &[u8]) -> Option<V4Flow> {
    let l3 = match frame.get(12..14)? {
        [8, 0] => 14,
        [0x81, 0] if frame.get(16..18)? == [8, 0] => 18,
        _ => return None,
    };
    let ip: &[u8; 20] = frame.get(l3..l3 + 20)?.try_into().ok()?;
    // Version 4, no options; neither more fragments nor an offset.
    if ip[0] != 0x45 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return None;
    }
    let ip_end = l3 + usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip_end < l3 + 20 || ip_end > frame.len() || !checksum::header20_ok(ip) {
        return None;
    }
    let l4 = l3 + 20;
    let seg = frame.get(l4..ip_end)?;
    let (udp, tcp_flags) = lane_l4(ip[9], seg)?;
    Some(V4Flow {
        l3: l3 as u16,
        l4: l4 as u16,
        ip_end: u16::try_from(ip_end).ok()?,
        udp,
        tcp_flags,
        src: [ip[12], ip[13], ip[14], ip[15]],
        dst: [ip[16], ip[17], ip[18], ip[19]],
        sport: u16::from_be_bytes([seg[0], seg[1]]),
        dport: u16::from_be_bytes([seg[2], seg[3]]),
    })
}

/// An IPv6 TCP or UDP packet's flow and offsets, as [`classify_v6_flow`] reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V6Flow {
    /// Offset of the IPv6 header: 14, or 18 behind a VLAN tag.
    pub l3: u16,
    /// Offset of the TCP or UDP header (right after the IPv6 header).
    pub l4: u16,
    /// Offset of the end of the IP packet (Ethernet padding after it).
    pub ip_end: u16,
    /// UDP (else TCP).
    pub udp: bool,
    /// The low eight bits of the TCP flags (0 for UDP).
    pub tcp_flags: u8,
    /// The hop limit.
    pub hop_limit: u8,
    /// The traffic class.
    pub tclass: u8,
    /// Source address, as on the wire.
    pub src: [u8; 16],
    /// Destination address, as on the wire.
    pub dst: [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// The common IPv6 case of [`classify`]: an IPv6 packet without extension headers
/// carrying a well-formed TCP or UDP header, untagged or behind one VLAN tag. `None` for
/// anything else (extension headers, fragments, ICMPv6, …), which [`classify`] then
/// decides. [`classify`] accepts every frame this accepts, with the same tuple, offsets
/// and flags: the established lane's reading of an IPv6 packet, as
/// [`classify_v4_flow`] is of an IPv4 one.
#[inline(always)]
pub fn classify_v6_flow(frame: &[u8]) -> Option<V6Flow> {
    let l3 = match frame.get(12..14)? {
        [0x86, 0xdd] => 14,
        [0x81, 0] if frame.get(16..18)? == [0x86, 0xdd] => 18,
        _ => return None,
    };
    let ip: &[u8; 40] = frame.get(l3..l3 + 40)?.try_into().ok()?;
    if ip[0] >> 4 != 6 {
        return None;
    }
    let ip_end = l3 + 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if ip_end > frame.len() {
        return None;
    }
    let l4 = l3 + 40;
    let seg = frame.get(l4..ip_end)?;
    let (udp, tcp_flags) = lane_l4(ip[6], seg)?;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&ip[8..24]);
    dst.copy_from_slice(&ip[24..40]);
    Some(V6Flow {
        l3: l3 as u16,
        l4: l4 as u16,
        ip_end: u16::try_from(ip_end).ok()?,
        udp,
        tcp_flags,
        hop_limit: ip[7],
        tclass: ((u16::from_be_bytes([ip[0], ip[1]]) >> 4) & 0xff) as u8,
        src,
        dst,
        sport: u16::from_be_bytes([seg[0], seg[1]]),
        dport: u16::from_be_bytes([seg[2], seg[3]]),
    })
}

/// Fills `meta` (whose `l2` is set) from the IPv4 header on.
#[inline]
fn classify_ipv4(frame: &[u8], rx_checksum: ChecksumMode, meta: &mut IpMeta) -> Result<()> {
    let l3_offset = meta.l2.l3_offset;
    let l3 = frame.get(l3_offset..).ok_or(Error::Truncated)?;
    let ip = Ipv4Packet::new_checked(l3)?;
    if rx_checksum == ChecksumMode::Software && !ip.verify_checksum() {
        return Err(Error::BadChecksum);
    }
    meta.frag = None;
    if ip.is_fragment() {
        let data_len = usize::from(ip.total_len()).saturating_sub(ip.header_len());
        let end = usize::from(ip.frag_offset()) + data_len;
        if (ip.more_frags() && data_len % 8 != 0) || end > 65535 || data_len == 0 {
            return Err(Error::Fragment);
        }
        meta.frag = Some(FragMeta {
            ident: u32::from(ip.ident()),
            offset: ip.frag_offset(),
            more: ip.more_frags(),
        });
    }
    meta.version = IpVersion::V4;
    meta.l4_offset = l3_offset + ip.header_len();
    meta.ip_end = l3_offset + usize::from(ip.total_len());
    meta.tuple = FiveTuple {
        protocol: ip.protocol(),
        src: Endpoint::new(IpAddr::V4(ip.src_addr()), 0),
        dst: Endpoint::new(IpAddr::V4(ip.dst_addr()), 0),
    };
    meta.tcp_flags = tcp::Flags::NONE;
    meta.ttl = ip.ttl();
    meta.tos = ip.tos();
    meta.dont_frag = ip.dont_frag();
    meta.icmp = None;
    match meta.frag {
        None => classify_l4(frame, meta),
        Some(f) => classify_frag_l4(frame, f, meta),
    }
}

/// The L4 facts of a fragment: a first fragment's ports and TCP flags when it holds
/// them (whether it holds enough is the fragment table's check, RFC 1858), nothing for
/// a later one. No UDP length check (the UDP length is the whole datagram's), no ICMP.
#[inline]
fn classify_frag_l4(frame: &[u8], f: FragMeta, meta: &mut IpMeta) -> Result<()> {
    let l4 = frame
        .get(meta.l4_offset..meta.ip_end)
        .ok_or(Error::Truncated)?;
    if !f.is_first() {
        return Ok(());
    }
    if matches!(
        meta.tuple.protocol,
        IpProtocol::TCP | IpProtocol::UDP | IpProtocol::SCTP
    ) && l4.len() >= 4
    {
        meta.tuple.src.port = read_u16(l4, 0);
        meta.tuple.dst.port = read_u16(l4, 2);
    }
    if meta.tuple.protocol == IpProtocol::TCP && l4.len() >= 14 {
        meta.tcp_flags = tcp::Flags(u16::from(l4[13]) | (u16::from(l4[12] & 1) << 8));
    }
    Ok(())
}

fn classify_ipv6(frame: &[u8], l2: L2Meta) -> Result<IpMeta> {
    let l3 = frame.get(l2.l3_offset..).ok_or(Error::Truncated)?;
    let ip = Ipv6Packet::new_checked(l3)?;
    let (protocol, ext_len, frag) = ipv6::walk_ext_headers(ip.next_header(), ip.payload())?;
    let l4_rel = ipv6::HEADER_LEN + ext_len;
    let ip_end = l2.l3_offset + ipv6::HEADER_LEN + usize::from(ip.payload_len());
    let frag = match frag {
        None => None,
        Some(h) => {
            let data_len = usize::from(ip.payload_len()).saturating_sub(ext_len);
            let end = usize::from(h.offset) + data_len;
            if (h.more && data_len % 8 != 0) || end > 65535 || data_len == 0 {
                return Err(Error::Fragment);
            }
            Some(FragMeta {
                ident: h.ident,
                offset: h.offset,
                more: h.more,
            })
        }
    };
    let mut meta = IpMeta {
        l2,
        version: IpVersion::V6,
        l4_offset: l2.l3_offset + l4_rel,
        ip_end,
        tuple: FiveTuple {
            protocol,
            src: Endpoint::new(IpAddr::V6(ip.src_addr()), 0),
            dst: Endpoint::new(IpAddr::V6(ip.dst_addr()), 0),
        },
        tcp_flags: tcp::Flags::NONE,
        ttl: ip.hop_limit(),
        tos: ip.traffic_class(),
        dont_frag: true,
        icmp: None,
        frag,
    };
    match frag {
        None => classify_l4(frame, &mut meta)?,
        Some(f) => classify_frag_l4(frame, f, &mut meta)?,
    }
    Ok(meta)
}

#[inline]
fn classify_l4(frame: &[u8], meta: &mut IpMeta) -> Result<()> {
    let l4 = frame
        .get(meta.l4_offset..meta.ip_end)
        .ok_or(Error::Truncated)?;
    match meta.tuple.protocol {
        IpProtocol::TCP => {
            let tcp = TcpPacket::new_checked(l4)?;
            meta.tuple.src.port = tcp.src_port();
            meta.tuple.dst.port = tcp.dst_port();
            meta.tcp_flags = tcp.flags();
        }
        IpProtocol::UDP => {
            let udp = UdpPacket::new_checked(l4)?;
            if usize::from(udp.len()) != l4.len() {
                return Err(Error::BadUdpLen);
            }
            meta.tuple.src.port = udp.src_port();
            meta.tuple.dst.port = udp.dst_port();
        }
        IpProtocol::SCTP => {
            if l4.len() < 12 {
                return Err(Error::Truncated);
            }
            meta.tuple.src.port = read_u16(l4, 0);
            meta.tuple.dst.port = read_u16(l4, 2);
        }
        IpProtocol::ICMP if meta.version == IpVersion::V4 => {
            meta.icmp = Some(classify_icmp(l4, meta.l4_offset, false)?);
        }
        IpProtocol::ICMPV6 if meta.version == IpVersion::V6 => {
            meta.icmp = Some(classify_icmp(l4, meta.l4_offset, true)?);
        }
        _ => {}
    }
    Ok(())
}

fn classify_icmp(l4: &[u8], l4_offset: usize, v6: bool) -> Result<IcmpMeta> {
    if l4.len() < 8 {
        return Err(Error::Truncated);
    }
    let (msg_type, code) = (l4[0], l4[1]);
    let (is_echo, is_error) = if v6 {
        (matches!(msg_type, 128 | 129), matches!(msg_type, 1..=4))
    } else {
        (matches!(msg_type, 0 | 8), Message(msg_type).is_error())
    };
    let mut meta = IcmpMeta {
        msg_type,
        code,
        echo_ident: if is_echo { read_u16(l4, 4) } else { 0 },
        inner: None,
    };
    if is_error {
        let data = &l4[8..];
        let base = l4_offset + 8;
        meta.inner = Some(if v6 {
            embedded_ipv6(data, base)?
        } else {
            embedded_ipv4(data, base)?
        });
    }
    Ok(meta)
}

/// The embedded header of an ICMP error: lax about the total length (the packet is cut),
/// strict about the header and the first 8 bytes of L4 being present.
fn embedded_ipv4(data: &[u8], base: usize) -> Result<InnerMeta> {
    if data.len() < 20 || data[0] >> 4 != 4 {
        return Err(Error::BadIcmp);
    }
    let hl = usize::from(data[0] & 0x0f) * 4;
    if hl < 20 || data.len() < hl + 8 {
        return Err(Error::BadIcmp);
    }
    // A non-first fragment has no L4 header to match on.
    if read_u16(data, 6) & 0x1fff != 0 {
        return Err(Error::BadIcmp);
    }
    let protocol = IpProtocol(data[9]);
    let src = Ipv4Addr::new(data[12], data[13], data[14], data[15]);
    let dst = Ipv4Addr::new(data[16], data[17], data[18], data[19]);
    let (sp, dp) = embedded_ports(protocol, &data[hl..]);
    Ok(InnerMeta {
        l3_offset: base,
        l4_offset: base + hl,
        tuple: FiveTuple {
            protocol,
            src: Endpoint::new(IpAddr::V4(src), sp),
            dst: Endpoint::new(IpAddr::V4(dst), dp),
        },
    })
}

fn embedded_ipv6(data: &[u8], base: usize) -> Result<InnerMeta> {
    if data.len() < ipv6::HEADER_LEN || data[0] >> 4 != 6 {
        return Err(Error::BadIcmp);
    }
    let (protocol, off) = ipv6::skip_ext_headers(IpProtocol(data[6]), &data[ipv6::HEADER_LEN..])
        .map_err(|_| Error::BadIcmp)?;
    let l4 = ipv6::HEADER_LEN + off;
    if data.len() < l4 + 8 {
        return Err(Error::BadIcmp);
    }
    let addr = |r: core::ops::Range<usize>| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&data[r]);
        IpAddr::V6(Ipv6Addr::from(a))
    };
    let (sp, dp) = embedded_ports(protocol, &data[l4..]);
    Ok(InnerMeta {
        l3_offset: base,
        l4_offset: base + l4,
        tuple: FiveTuple {
            protocol,
            src: Endpoint::new(addr(8..24), sp),
            dst: Endpoint::new(addr(24..40), dp),
        },
    })
}

fn embedded_ports(protocol: IpProtocol, l4: &[u8]) -> (u16, u16) {
    if protocol.has_ports() && l4.len() >= 4 {
        (read_u16(l4, 0), read_u16(l4, 2))
    } else {
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    fn tcp_frame() -> Vec<u8> {
        let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([203, 0, 113, 5], [192, 168, 1, 100], 64)
            .tcp(51234, 80, 1000, 65535)
            .syn();
        let mut v = Vec::new();
        b.write(&mut v, b"hello").unwrap();
        v
    }

    /// A frame for the v4-flow tests: TCP (with `flags`) or UDP, optionally VLAN-tagged,
    /// with `opts` 4-byte words of IPv4 options, `pad` bytes of Ethernet padding.
    fn v4_frame(udp: bool, vlan: bool, opts: u8, flags: u8, payload: usize, pad: usize) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
        let payload = vec![0x5a; payload];
        let mut v = Vec::new();
        let hdr = || {
            let mut h = etherparse::Ipv4Header::new(
                0,
                64,
                etherparse::IpNumber::TCP,
                [203, 0, 113, 5],
                [192, 168, 1, 100],
            )
            .unwrap();
            h.options =
                etherparse::Ipv4Options::try_from(&[1u8; 40][..usize::from(opts) * 4]).unwrap();
            etherparse::IpHeaders::Ipv4(h, Default::default())
        };
        let b = if vlan {
            eth.single_vlan(7.try_into().unwrap()).ip(hdr())
        } else {
            eth.ip(hdr())
        };
        if udp {
            b.udp(5353, 53).write(&mut v, &payload).unwrap();
        } else {
            let mut t = b.tcp(51234, 80, 1000, 65535);
            if flags & 0x10 != 0 {
                t = t.ack(7);
            }
            if flags & 0x02 != 0 {
                t = t.syn();
            }
            if flags & 0x01 != 0 {
                t = t.fin();
            }
            if flags & 0x04 != 0 {
                t = t.rst();
            }
            t.write(&mut v, &payload).unwrap();
        }
        v.extend(std::iter::repeat_n(0u8, pad));
        v
    }

    /// `classify_v4_flow` agrees with `classify` wherever it answers.
    fn agrees(f: &[u8]) -> Option<V4Flow> {
        let v = classify_v4_flow(f)?;
        let Ok(Classified::Ip(m)) = classify(f, ChecksumMode::Software) else {
            panic!("v4 flow {v:?} of a frame classify refuses: {f:02x?}");
        };
        assert_eq!(m.version, IpVersion::V4);
        assert_eq!(usize::from(v.l3), m.l3_offset());
        assert_eq!(usize::from(v.l4), m.l4_offset);
        assert_eq!(usize::from(v.ip_end), m.ip_end);
        let proto = if v.udp {
            IpProtocol::UDP
        } else {
            IpProtocol::TCP
        };
        assert_eq!(m.tuple.protocol, proto);
        assert_eq!(m.tuple.src.addr, IpAddr::V4(Ipv4Addr::from(v.src)));
        assert_eq!(m.tuple.dst.addr, IpAddr::V4(Ipv4Addr::from(v.dst)));
        assert_eq!((m.tuple.src.port, m.tuple.dst.port), (v.sport, v.dport));
        assert_eq!(m.tcp_flags.0 as u8, v.tcp_flags);
        Some(v)
    }

    /// `classify_v6_flow` agrees with `classify` wherever it answers.
    fn agrees6(f: &[u8]) -> Option<V6Flow> {
        let v = classify_v6_flow(f)?;
        let Ok(Classified::Ip(m)) = classify(f, ChecksumMode::Software) else {
            panic!("v6 flow {v:?} of a frame classify refuses: {f:02x?}");
        };
        assert_eq!(m.version, IpVersion::V6);
        assert_eq!(usize::from(v.l3), m.l3_offset());
        assert_eq!(usize::from(v.l4), m.l4_offset);
        assert_eq!(usize::from(v.ip_end), m.ip_end);
        let proto = if v.udp {
            IpProtocol::UDP
        } else {
            IpProtocol::TCP
        };
        assert_eq!(m.tuple.protocol, proto);
        assert_eq!(m.tuple.src.addr, IpAddr::V6(Ipv6Addr::from(v.src)));
        assert_eq!(m.tuple.dst.addr, IpAddr::V6(Ipv6Addr::from(v.dst)));
        assert_eq!((m.tuple.src.port, m.tuple.dst.port), (v.sport, v.dport));
        assert_eq!(m.tcp_flags.0 as u8, v.tcp_flags);
        assert_eq!((m.ttl, m.tos), (v.hop_limit, v.tclass));
        Some(v)
    }

    fn v6_frame(udp: bool, vlan: bool, ext: bool, flags: u8, payload: usize) -> Vec<u8> {
        let mut v = Vec::new();
        let eth = etherparse::Ethernet2Header {
            source: [2, 0, 0, 0, 0, 1],
            destination: [2, 0, 0, 0, 0, 2],
            ether_type: if vlan {
                etherparse::EtherType::VLAN_TAGGED_FRAME
            } else {
                etherparse::EtherType::IPV6
            },
        };
        eth.write(&mut v).unwrap();
        if vlan {
            v.extend_from_slice(&[0, 7, 0x86, 0xdd]);
        }
        let b = PacketBuilder::ipv6([0x20; 16], [0x21; 16], 33);
        let mut ip = Vec::new();
        if udp {
            b.udp(5353, 53).write(&mut ip, &vec![1; payload]).unwrap();
        } else {
            let mut t = b.tcp(51234, 80, 7, 1000);
            if flags & 0x02 != 0 {
                t = t.syn();
            }
            if flags & 0x10 != 0 {
                t = t.ack(1);
            }
            t.write(&mut ip, &vec![1; payload]).unwrap();
        }
        ip[1] = 0xa0; // traffic class 0x0a
        if ext {
            let next = ip[6];
            ip[6] = 60;
            let plen = u16::from_be_bytes([ip[4], ip[5]]) + 8;
            ip[4..6].copy_from_slice(&plen.to_be_bytes());
            ip.splice(40..40, [next, 0, 1, 4, 0, 0, 0, 0]);
        }
        v.extend_from_slice(&ip);
        v
    }

    #[test]
    fn v6_flow_reads_plain_and_tagged_tcp_and_udp_and_leaves_the_rest_to_classify() {
        for vlan in [false, true] {
            let l3 = if vlan { 18 } else { 14 };
            let v = agrees6(&v6_frame(false, vlan, false, 0x10, 6)).expect("TCP ACK");
            assert_eq!((v.l3, v.l4, v.ip_end), (l3, l3 + 40, l3 + 66));
            assert_eq!(
                (v.sport, v.dport, v.tcp_flags, v.hop_limit),
                (51234, 80, 0x10, 33)
            );
            assert_eq!(v.tclass, 0x0a);
            let v = agrees6(&v6_frame(true, vlan, false, 0, 3)).expect("UDP");
            assert!(v.udp && v.dport == 53);
            // Extension headers: classify's.
            let f = v6_frame(false, vlan, true, 0x10, 0);
            assert_eq!(classify_v6_flow(&f), None);
            assert!(classify(&f, ChecksumMode::Software).is_ok());
        }
        // Truncated: nothing.
        let mut f = v6_frame(false, false, false, 0x10, 0);
        f.truncate(60);
        assert_eq!(classify_v6_flow(&f), None);
        assert_eq!(
            classify_v4_flow(&v6_frame(false, false, false, 0x10, 0)),
            None
        );
    }

    #[test]
    fn v4_flow_reads_plain_and_tagged_tcp_and_udp_and_leaves_the_rest_to_classify() {
        for vlan in [false, true] {
            let l3 = if vlan { 18 } else { 14 };
            let f = v4_frame(false, vlan, 0, 0x10, 6, 4);
            let v = agrees(&f).expect("plain TCP ACK");
            assert_eq!((v.l3, v.l4, v.ip_end), (l3, l3 + 20, l3 + 46));
            assert_eq!(
                (v.src, v.dst, v.sport, v.dport),
                ([203, 0, 113, 5], [192, 168, 1, 100], 51234, 80)
            );
            assert_eq!(v.tcp_flags, 0x10);
            let v = agrees(&v4_frame(true, vlan, 0, 0, 0, 0)).expect("UDP");
            assert!(v.udp && v.tcp_flags == 0 && v.dport == 53);
            // Options: classify's.
            assert_eq!(
                classify_v4_flow(&v4_frame(false, vlan, 2, 0x10, 0, 0)),
                None
            );
        }
        let good = v4_frame(false, false, 0, 0x10, 0, 0);
        let refused = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut f = good.clone();
            edit(&mut f);
            classify_v4_flow(&f)
        };
        // A fragment, a bad header checksum, a short TCP header, truncation: classify's.
        assert_eq!(refused(&|f| f[20] |= 0x20), None);
        assert_eq!(refused(&|f| f[24] ^= 1), None);
        assert_eq!(refused(&|f| f[46] = 0x40), None);
        assert_eq!(refused(&|f| f.truncate(40)), None);
        assert!(classify(
            &{
                let mut f = good.clone();
                f[24] ^= 1;
                f
            },
            ChecksumMode::Software
        )
        .is_err());
    }

    proptest! {
        /// Whatever the bytes, the v4 flow is either absent or exactly classify's reading;
        /// well-formed frames without options always have one.
        #[test]
        fn v4_flow_is_classify_wherever_it_answers(
            udp in any::<bool>(),
            vlan in any::<bool>(),
            opts in 0u8..3,
            flags in any::<u8>(),
            payload in 0usize..40,
            pad in 0usize..8,
            edits in proptest::collection::vec((0usize..120, any::<u8>()), 0..4),
            cut in proptest::option::of(0usize..120),
        ) {
            let mut f = v4_frame(udp, vlan, opts, flags & 0x17, payload, pad);
            if edits.is_empty() && cut.is_none() && opts == 0 {
                prop_assert!(agrees(&f).is_some());
            }
            for (at, b) in edits {
                if let Some(x) = f.get_mut(at) {
                    *x = b;
                }
            }
            if let Some(n) = cut {
                f.truncate(n);
            }
            agrees(&f);
        }

        /// Likewise for the v6 flow: absent or exactly classify's reading; a frame
        /// without extension headers always has one.
        #[test]
        fn v6_flow_is_classify_wherever_it_answers(
            udp in any::<bool>(),
            vlan in any::<bool>(),
            ext in any::<bool>(),
            flags in any::<u8>(),
            payload in 0usize..40,
            edits in proptest::collection::vec((0usize..120, any::<u8>()), 0..4),
            cut in proptest::option::of(0usize..120),
        ) {
            let mut f = v6_frame(udp, vlan, ext, flags & 0x12, payload);
            if edits.is_empty() && cut.is_none() && !ext {
                prop_assert!(agrees6(&f).is_some());
            }
            for (at, b) in edits {
                if let Some(x) = f.get_mut(at) {
                    *x = b;
                }
            }
            if let Some(n) = cut {
                f.truncate(n);
            }
            agrees6(&f);
        }
    }

    fn ip_mut(v: &mut [u8]) -> Ipv4Packet<&mut [u8]> {
        Ipv4Packet::new_unchecked(&mut v[14..])
    }

    #[test]
    fn tcp_ipv4() {
        let mut f = tcp_frame();
        f.extend_from_slice(&[0; 6]); // Ethernet padding
        let Classified::Ip(m) = classify(&f, ChecksumMode::Software).unwrap() else {
            panic!("not IP")
        };
        assert_eq!(m.version, IpVersion::V4);
        assert_eq!(m.l3_offset(), 14);
        assert_eq!(m.l4_offset, 34);
        assert_eq!(m.ip_end, 14 + 20 + 20 + 5);
        assert_eq!(m.l4_len(), 25);
        assert_eq!(m.tuple.protocol, IpProtocol::TCP);
        assert_eq!(m.tuple.src.to_string(), "203.0.113.5:51234");
        assert_eq!(m.tuple.dst.to_string(), "192.168.1.100:80");
        assert!(m.tcp_flags.syn() && !m.tcp_flags.ack());
        assert_eq!(m.ttl, 64);
        assert_eq!(m.l2.dst_mac, EthernetAddress(MAC_B));
        assert_eq!(m.l2.vlan_tci, None);
        assert!(m.icmp.is_none());
    }

    #[test]
    fn udp_vlan_ipv6_with_ext_header() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .single_vlan(etherparse::VlanId::try_new(100).unwrap())
            .ipv6([0x20; 16], [0x21; 16], 9)
            .udp(5000, 53)
            .write(&mut v, b"q")
            .unwrap();
        // Insert an 8-byte destination-options header between IPv6 and UDP.
        let l3 = 18;
        let mut f = v[..l3 + 40].to_vec();
        f[l3 + 6] = 60;
        let plen = u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]) + 8;
        f[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        f.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&v[l3 + 40..]);
        let Classified::Ip(m) = classify(&f, ChecksumMode::Software).unwrap() else {
            panic!()
        };
        assert_eq!(m.l2.vlan_tci.map(|t| t & 0xfff), Some(100));
        assert_eq!(m.version, IpVersion::V6);
        assert_eq!(m.l4_offset, 18 + 48);
        assert_eq!(m.tuple.protocol, IpProtocol::UDP);
        assert_eq!((m.tuple.src.port, m.tuple.dst.port), (5000, 53));
        assert_eq!(m.ttl, 9);
    }

    #[test]
    fn icmp_error_embedded_tuple() {
        // port unreachable from 192.168.1.100 about a UDP packet 203.0.113.5:4000 -> :53
        let mut inner = Vec::new();
        PacketBuilder::ipv4([203, 0, 113, 5], [192, 168, 1, 100], 64)
            .udp(4000, 53)
            .write(&mut inner, b"0123456789")
            .unwrap();
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([192, 168, 1, 100], [203, 0, 113, 5], 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut f, &inner[..28])
            .unwrap();
        let Classified::Ip(m) = classify(&f, ChecksumMode::Software).unwrap() else {
            panic!()
        };
        let icmp = m.icmp.unwrap();
        assert_eq!((icmp.msg_type, icmp.code), (3, 3));
        assert!(icmp.is_error());
        let inner_m = icmp.inner.unwrap();
        assert_eq!(inner_m.l3_offset, 14 + 20 + 8);
        assert_eq!(inner_m.l4_offset, 14 + 20 + 8 + 20);
        assert_eq!(
            inner_m.tuple.to_string(),
            "UDP 203.0.113.5:4000 -> 192.168.1.100:53"
        );

        // fewer than 8 bytes of the embedded L4 header
        let mut short = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([192, 168, 1, 100], [203, 0, 113, 5], 64)
            .icmpv4(etherparse::Icmpv4Type::TimeExceeded(
                etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
            ))
            .write(&mut short, &inner[..27])
            .unwrap();
        assert_eq!(
            classify(&short, ChecksumMode::Software),
            Err(Error::BadIcmp)
        );

        // echo
        let mut e = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64)
            .icmpv4_echo_request(0x77, 1)
            .write(&mut e, b"ping")
            .unwrap();
        let Classified::Ip(m) = classify(&e, ChecksumMode::Software).unwrap() else {
            panic!()
        };
        let icmp = m.icmp.unwrap();
        assert_eq!(
            (icmp.msg_type, icmp.echo_ident, icmp.inner),
            (8, 0x77, None)
        );
    }

    #[test]
    fn arp_and_other() {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[0; 28]);
        assert!(matches!(
            classify(&f, ChecksumMode::Software),
            Ok(Classified::Arp(L2Meta { l3_offset: 14, .. }))
        ));
        f[12..14].copy_from_slice(&[0x88, 0xcc]); // LLDP
        assert!(matches!(
            classify(&f, ChecksumMode::Software),
            Ok(Classified::Other(L2Meta {
                ethertype: EtherType(0x88cc),
                ..
            }))
        ));
    }

    /// Fixtures for every drop reason the classifier gives.
    #[test]
    fn drop_reasons() {
        let good = tcp_frame();
        let sw = ChecksumMode::Software;
        assert_eq!(classify(&good[..13], sw), Err(Error::Truncated));
        assert_eq!(classify(&good[..14 + 19], sw), Err(Error::Truncated));
        // IP total length says more than the frame holds
        assert_eq!(classify(&good[..good.len() - 1], sw), Err(Error::Truncated));

        let mut f = good.clone();
        f[14] = 0x44;
        assert_eq!(classify(&f, sw), Err(Error::BadIhl));
        let mut f = good.clone();
        f[14] = 0x65;
        assert_eq!(classify(&f, sw), Err(Error::BadVersion));
        let mut f = good.clone();
        ip_mut(&mut f).set_total_len(10);
        assert_eq!(classify(&f, sw), Err(Error::BadTotalLen));
        let mut f = good.clone();
        f[14 + 11] ^= 0xff;
        assert_eq!(classify(&f, sw), Err(Error::BadChecksum));
        // the NIC verified it: the classifier does not look
        assert!(classify(&f, ChecksumMode::Offload).is_ok());
        // A fragment with more to come whose data is not a multiple of 8 bytes; one
        // reaching past 65535 bytes.
        for flg in [0x2000u16, 0x1fff] {
            let mut f = good.clone();
            f[14 + 6..14 + 8].copy_from_slice(&flg.to_be_bytes());
            ip_mut(&mut f).fill_checksum();
            assert_eq!(classify(&f, sw), Err(Error::Fragment));
        }
        let mut f = good.clone();
        f[34 + 12] = 0x40; // data offset 4
        assert_eq!(classify(&f, sw), Err(Error::BadDataOffset));
        let mut f = good.clone();
        f[34 + 12] = 0xf0; // data offset 15: 60 bytes, more than the segment
        assert_eq!(classify(&f, sw), Err(Error::Truncated));
        // UDP length disagreeing with the IP payload
        let mut u = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64)
            .udp(1, 2)
            .write(&mut u, b"abcd")
            .unwrap();
        let mut f = u.clone();
        f[34 + 5] -= 1;
        assert_eq!(classify(&f, sw), Err(Error::BadUdpLen));
        let mut f = u;
        f[34 + 5] = 4;
        assert_eq!(classify(&f, sw), Err(Error::BadUdpLen));
        // IPv4 with options: skipped by IHL
        let mut f = good.clone();
        f.splice(34..34, [1u8, 1, 1, 0]);
        f[14] = 0x46;
        let tl = u16::from_be_bytes([f[16], f[17]]) + 4;
        ip_mut(&mut f).set_total_len(tl);
        ip_mut(&mut f).fill_checksum();
        let Classified::Ip(m) = classify(&f, sw).unwrap() else {
            panic!()
        };
        assert_eq!((m.l4_offset, m.tuple.dst.port), (38, 80));
        // a frame far larger than any IP packet: the IP length rules, the rest is padding
        let mut big = good.clone();
        big.resize(100_000, 0xee);
        assert!(classify(&big, sw).is_ok());
    }

    /// IPv4 fragments built by etherparse: the first reports its ports and flags, a
    /// later one its place and no ports.
    #[test]
    fn ipv4_fragments_report_their_facts() {
        let mut whole = Vec::new();
        PacketBuilder::ipv4([203, 0, 113, 5], [192, 168, 1, 100], 64)
            .tcp(51234, 80, 1000, 65535)
            .syn()
            .write(&mut whole, &[7u8; 60])
            .unwrap();
        let seg = &whole[20..];
        let frag = |data: &[u8], off: u16, more: bool| {
            let mut h = etherparse::Ipv4Header::new(
                data.len() as u16,
                64,
                etherparse::IpNumber::TCP,
                [203, 0, 113, 5],
                [192, 168, 1, 100],
            )
            .unwrap();
            h.dont_fragment = false;
            h.identification = 0xbeef;
            h.more_fragments = more;
            h.fragment_offset = etherparse::IpFragOffset::try_new(off / 8).unwrap();
            h.header_checksum = h.calc_header_checksum();
            let mut f = Vec::new();
            etherparse::Ethernet2Header {
                source: MAC_A,
                destination: MAC_B,
                ether_type: etherparse::EtherType::IPV4,
            }
            .write(&mut f)
            .unwrap();
            h.write(&mut f).unwrap();
            f.extend_from_slice(data);
            f
        };
        let sw = ChecksumMode::Software;
        let Ok(Classified::Ip(m)) = classify(&frag(&seg[..40], 0, true), sw) else {
            panic!("first fragment")
        };
        let want = FragMeta {
            ident: 0xbeef,
            offset: 0,
            more: true,
        };
        assert_eq!(m.frag, Some(want));
        assert!(want.is_first());
        assert_eq!((m.tuple.src.port, m.tuple.dst.port), (51234, 80));
        assert!(m.tcp_flags.syn());
        assert_eq!((m.l4_offset, m.ip_end), (34, 74));
        let Ok(Classified::Ip(m)) = classify(&frag(&seg[40..], 40, false), sw) else {
            panic!("last fragment")
        };
        assert_eq!(
            m.frag,
            Some(FragMeta {
                ident: 0xbeef,
                offset: 40,
                more: false
            })
        );
        assert_eq!((m.tuple.src.port, m.tuple.dst.port), (0, 0));
        assert_eq!(m.tcp_flags, tcp::Flags::NONE);
        // A tiny first fragment is reported (the fragment table refuses it), with the
        // ports it holds and no flags it does not; an empty one is malformed.
        let Ok(Classified::Ip(m)) = classify(&frag(&seg[..8], 0, true), sw) else {
            panic!("tiny first fragment")
        };
        assert_eq!((m.tuple.dst.port, m.tcp_flags), (80, tcp::Flags::NONE));
        assert_eq!(classify(&frag(&[], 0, true), sw), Err(Error::Fragment));
        // A whole packet has none.
        let Ok(Classified::Ip(m)) = classify(&tcp_frame(), sw) else {
            panic!()
        };
        assert_eq!(m.frag, None);
    }

    /// IPv6: the Fragment header found in the chain; a second one is an error.
    #[test]
    fn ipv6_fragments_report_their_facts() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6([1; 16], [2; 16], 64)
            .udp(5000, 53)
            .write(&mut v, &[9u8; 16])
            .unwrap();
        let l3 = 14;
        let build = |frag_hdrs: &[[u8; 8]], body: &[u8]| {
            let mut f = v[..l3 + 40].to_vec();
            f[l3 + 6] = 44;
            let plen = (frag_hdrs.len() * 8 + body.len()) as u16;
            f[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
            for h in frag_hdrs {
                f.extend_from_slice(h);
            }
            f.extend_from_slice(body);
            f
        };
        let sw = ChecksumMode::Software;
        // First fragment (M set): UDP header and 8 bytes.
        let first = build(
            &[[17, 0, 0, 1, 0x12, 0x34, 0x56, 0x78]],
            &v[l3 + 40..l3 + 56],
        );
        let Ok(Classified::Ip(m)) = classify(&first, sw) else {
            panic!("first")
        };
        assert_eq!(
            m.frag,
            Some(FragMeta {
                ident: 0x1234_5678,
                offset: 0,
                more: true
            })
        );
        assert_eq!((m.tuple.protocol, m.tuple.dst.port), (IpProtocol::UDP, 53));
        assert_eq!(m.l4_offset, l3 + 48);
        // Offset 16, last.
        let last = build(&[[17, 0, 0, 0x10, 0x12, 0x34, 0x56, 0x78]], &[9u8; 8]);
        let Ok(Classified::Ip(m)) = classify(&last, sw) else {
            panic!("last")
        };
        assert_eq!(m.frag.map(|f| (f.offset, f.more)), Some((16, false)));
        assert_eq!(m.tuple.dst.port, 0);
        // A fragment header inside a fragment.
        let twice = build(
            &[[44, 0, 0, 1, 0, 0, 0, 1], [17, 0, 0, 1, 0, 0, 0, 2]],
            &v[l3 + 40..l3 + 56],
        );
        assert_eq!(classify(&twice, sw), Err(Error::Fragment));
        // More to come with data not a multiple of 8.
        let odd = build(&[[17, 0, 0, 1, 0, 0, 0, 1]], &v[l3 + 40..l3 + 51]);
        assert_eq!(classify(&odd, sw), Err(Error::Fragment));
    }

    #[test]
    fn ipv6_drop_reasons() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6([1; 16], [2; 16], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut v, &[])
            .unwrap();
        let sw = ChecksumMode::Software;
        assert!(classify(&v, sw).is_ok());
        assert_eq!(classify(&v[..14 + 39], sw), Err(Error::Truncated));
        assert_eq!(classify(&v[..v.len() - 1], sw), Err(Error::Truncated));
        let mut f = v.clone();
        f[14 + 6] = 44; // fragment header instead of TCP
        f[14 + 40..14 + 48].copy_from_slice(&[6, 0, 0x00, 0x09, 0, 0, 0, 1]);
        assert_eq!(classify(&f, sw), Err(Error::Fragment));
    }

    #[test]
    fn checksum_helper_agrees_with_etherparse() {
        let f = tcp_frame();
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
        assert_eq!(checksum::data(&f[14..34]), 0xffff);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Random bytes never panic; any error is a typed reason.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = classify(&bytes, ChecksumMode::Software);
            let _ = classify(&bytes, ChecksumMode::Offload);
        }

        /// Random bytes behind a valid Ethernet + IPv4/IPv6 prefix get deeper.
        #[test]
        fn random_l3_never_panics(
            v6 in any::<bool>(),
            vlan in any::<bool>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            let mut f = vec![0u8; 12];
            if vlan {
                f.extend_from_slice(&[0x81, 0x00, 0, 1]);
            }
            f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
            let mut b = bytes;
            if let Some(first) = b.first_mut() {
                *first = if v6 { 0x60 | (*first & 0x0f) } else { 0x40 | (*first & 0x0f) };
            }
            f.extend_from_slice(&b);
            let _ = classify(&f, ChecksumMode::Offload);
        }

        /// Truncating a valid frame anywhere gives an error, never a panic.
        #[test]
        fn truncation_is_an_error(cut in 0usize..59) {
            let f = tcp_frame();
            prop_assert!(cut < f.len());
            prop_assert!(classify(&f[..cut], ChecksumMode::Software).is_err());
        }
    }
}
