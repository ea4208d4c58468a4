//! The forwarding rewrites: one file per IPVS mode, plus ICMP error translation.
//!
//! | mode | request (client → RS) | reply (RS → client, seen by the director) |
//! |---|---|---|
//! | [`nat`] | dst VIP:vport → RIP:rport, TTL − 1 | src RIP:rport → VIP:vport, TTL − 1 |
//! | [`dr`] | only the MACs change | not seen |
//! | [`tun`] | outer IPv4 DIP → RIP (proto 4/41) around the untouched packet | not seen |
//! | [`fullnat`] | src CIP:cport → LIP:lport, dst VIP:vport → RIP:rport, TTL − 1 | src RIP:rport → VIP:vport, dst LIP:lport → CIP:cport, TTL − 1 |
//! | [`icmp`] | ICMP errors about NAT/FULLNAT sessions: outer and embedded headers | both directions |
//!
//! Every rewrite works in place on a [`PacketBuf`] (TUN prepends into its headroom),
//! takes the [`IpMeta`] that [`crate::wire::classify`] returned for the same bytes and a
//! small parameter struct, never allocates, never panics (offsets that do not fit the
//! buffer are [`Error::Truncated`]), and changes nothing when it returns an error.
//!
//! Checksums are updated incrementally (RFC 1624) in [`ChecksumMode::Software`]; in
//! [`ChecksumMode::Offload`] the IPv4 header checksum is written as 0 and the TCP/UDP
//! checksum as the pseudo-header sum, and the returned [`TxOffload`] says which mbuf
//! offload flags to set. A UDP checksum of 0 ("none", IPv4) stays 0 in both modes.

pub mod dr;
pub mod fullnat;
pub mod icmp;
pub mod nat;
pub mod tun;

use core::net::IpAddr;

use crate::buf::PacketBuf;
use crate::wire::checksum::{self, Adjust};
use crate::wire::{
    ipv4, ipv6, tcp, udp, ChecksumMode, Endpoint, Error, EthernetAddress, IpMeta, IpProtocol,
    IpVersion, Result,
};

pub use self::dr::DrParams;
pub use self::fullnat::FullNatParams;
pub use self::nat::NatParams;
pub use self::tun::TunParams;

/// The Ethernet addresses of the transmitted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MacRewrite {
    /// Source: the director's egress port MAC.
    pub src: EthernetAddress,
    /// Destination: the next hop (the real server, or the gateway toward the client).
    pub dst: EthernetAddress,
}

/// The L4 checksum the NIC must compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Offload {
    /// `RTE_MBUF_F_TX_TCP_CKSUM`.
    Tcp,
    /// `RTE_MBUF_F_TX_UDP_CKSUM`.
    Udp,
}

/// The TX checksum offload a rewritten packet needs, for the mbuf's `ol_flags`,
/// `l2_len` and `l3_len`. All-false in [`ChecksumMode::Software`].
///
/// Packed into one word: returned from every rewrite, a struct of five small fields was
/// assembled on the stack field by field and read back whole, a store-forwarding stall on
/// every packet.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct TxOffload(u64);

const OFF_IPV4: u64 = 1 << 32;
const OFF_IPV4_CSUM: u64 = 1 << 33;
const OFF_TCP: u64 = 1 << 34;
const OFF_UDP: u64 = 1 << 35;

impl TxOffload {
    /// No offload needed.
    pub const NONE: TxOffload = TxOffload(0);

    /// The offload of a packet with `l2_len` bytes of L2 header and `l3_len` of (outer)
    /// L3 header; `ipv4`: `RTE_MBUF_F_TX_IPV4`; `ipv4_checksum`: the NIC computes the IPv4
    /// header checksum; `l4`: the NIC computes this L4 checksum.
    #[inline]
    pub const fn new(
        l2_len: u16,
        l3_len: u16,
        ipv4: bool,
        ipv4_checksum: bool,
        l4: Option<L4Offload>,
    ) -> TxOffload {
        let mut bits = l2_len as u64 | (l3_len as u64) << 16;
        if ipv4 {
            bits |= OFF_IPV4;
        }
        if ipv4_checksum {
            bits |= OFF_IPV4_CSUM;
        }
        bits |= match l4 {
            Some(L4Offload::Tcp) => OFF_TCP,
            Some(L4Offload::Udp) => OFF_UDP,
            None => 0,
        };
        TxOffload(bits)
    }

    /// Length of the L2 header (`mbuf.l2_len`).
    pub const fn l2_len(self) -> u16 {
        self.0 as u16
    }

    /// Length of the (outer) L3 header (`mbuf.l3_len`).
    pub const fn l3_len(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// Whether the packet is IPv4 (`RTE_MBUF_F_TX_IPV4`; else IPv6 when `l4` is set).
    pub const fn ipv4(self) -> bool {
        self.0 & OFF_IPV4 != 0
    }

    /// The NIC computes the IPv4 header checksum (`RTE_MBUF_F_TX_IP_CKSUM`).
    pub const fn ipv4_checksum(self) -> bool {
        self.0 & OFF_IPV4_CSUM != 0
    }

    /// The NIC computes this L4 checksum (the field holds the pseudo-header sum).
    pub const fn l4(self) -> Option<L4Offload> {
        if self.0 & OFF_TCP != 0 {
            Some(L4Offload::Tcp)
        } else if self.0 & OFF_UDP != 0 {
            Some(L4Offload::Udp)
        } else {
            None
        }
    }

    /// Whether any offload flag must be set on the mbuf.
    pub const fn is_needed(self) -> bool {
        self.0 & (OFF_IPV4_CSUM | OFF_TCP | OFF_UDP) != 0
    }
}

impl std::fmt::Debug for TxOffload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxOffload")
            .field("l2_len", &self.l2_len())
            .field("l3_len", &self.l3_len())
            .field("ipv4", &self.ipv4())
            .field("ipv4_checksum", &self.ipv4_checksum())
            .field("l4", &self.l4())
            .finish()
    }
}

/// What to do with the packet after a rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the rewritten buffer, with these TX offloads.
    Forward(TxOffload),
    /// Do not transmit the buffer (drop it); transmit instead the ICMP error that was
    /// written into the caller's reply buffer: its first `len` bytes are an Ethernet
    /// frame back toward the client (TUN's fragmentation-needed).
    IcmpReply {
        /// Length of the frame in the reply buffer.
        len: usize,
    },
}

/// A session's forwarding parameters, one variant per mode: the dispatcher the
/// pipeline can call without matching on the mode itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Params {
    /// NAT (masquerading).
    Nat(NatParams),
    /// Direct routing.
    Dr(DrParams),
    /// IPIP tunnelling.
    Tun(TunParams),
    /// Full NAT.
    FullNat(FullNatParams),
}

impl Params {
    /// Rewrite a client → real-server packet. `icmp_out` receives an ICMP error frame
    /// when the verdict is [`Verdict::IcmpReply`] (TUN only; other modes ignore it).
    pub fn request<B: PacketBuf + ?Sized>(
        &self,
        buf: &mut B,
        meta: &IpMeta,
        icmp_out: &mut [u8],
    ) -> Result<Verdict> {
        match self {
            Params::Nat(p) => nat::request(buf, meta, p),
            Params::Dr(p) => dr::request(buf, meta, p),
            Params::Tun(p) => tun::request(buf, meta, p, icmp_out),
            Params::FullNat(p) => fullnat::request(buf, meta, p),
        }
    }

    /// Rewrite a real-server → client packet. DR and TUN replies never reach the
    /// director: `UnsupportedProto`.
    pub fn reply<B: PacketBuf + ?Sized>(&self, buf: &mut B, meta: &IpMeta) -> Result<Verdict> {
        match self {
            Params::Nat(p) => nat::reply(buf, meta, p),
            Params::FullNat(p) => fullnat::reply(buf, meta, p),
            Params::Dr(_) | Params::Tun(_) => Err(Error::UnsupportedProto),
        }
    }
}

/// Write the MACs into the first 12 bytes of the frame.
pub(crate) fn set_macs(frame: &mut [u8], macs: &MacRewrite) -> Result<()> {
    let hdr = frame.get_mut(..12).ok_or(Error::Truncated)?;
    hdr[..6].copy_from_slice(&macs.dst.0);
    hdr[6..].copy_from_slice(&macs.src.0);
    Ok(())
}

/// Offsets of the IP header fields of a packet of the given version.
pub(crate) struct IpLayout {
    pub src: usize,
    pub dst: usize,
    pub addr_len: usize,
}

impl IpLayout {
    pub(crate) const fn of(version: IpVersion) -> IpLayout {
        match version {
            IpVersion::V4 => IpLayout {
                src: ipv4::SRC_ADDR_OFFSET,
                dst: ipv4::DST_ADDR_OFFSET,
                addr_len: 4,
            },
            IpVersion::V6 => IpLayout {
                src: ipv6::SRC_ADDR_OFFSET,
                dst: ipv6::DST_ADDR_OFFSET,
                addr_len: 16,
            },
        }
    }
}

/// The octets of an address, checked against the packet's family.
pub(crate) fn addr_bytes(addr: &IpAddr, version: IpVersion) -> Result<([u8; 16], usize)> {
    if IpVersion::of(addr) != version {
        return Err(Error::AddressFamily);
    }
    let mut out = [0u8; 16];
    let n = match addr {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            4
        }
        IpAddr::V6(a) => {
            out.copy_from_slice(&a.octets());
            16
        }
    };
    Ok((out, n))
}

/// Decrement the TTL / hop limit of the IP header at the start of `ip`, recording the
/// IPv4 header-checksum change in `ip_adj`. `TtlExpired` (nothing written) at ≤ 1.
pub(crate) fn check_ttl(ip: &[u8], version: IpVersion) -> Result<u8> {
    let at = match version {
        IpVersion::V4 => ipv4::TTL_OFFSET,
        IpVersion::V6 => ipv6::HOP_LIMIT_OFFSET,
    };
    let ttl = *ip.get(at).ok_or(Error::Truncated)?;
    if ttl <= 1 {
        return Err(Error::TtlExpired);
    }
    Ok(ttl)
}

/// Write the decremented TTL (already checked by [`check_ttl`]).
pub(crate) fn write_ttl(ip: &mut [u8], version: IpVersion, ttl: u8, ip_adj: &mut Adjust) {
    match version {
        IpVersion::V4 => {
            let proto = ip[ipv4::TTL_OFFSET + 1];
            ip_adj.replace_u16(
                u16::from_be_bytes([ttl, proto]),
                u16::from_be_bytes([ttl - 1, proto]),
            );
            ip[ipv4::TTL_OFFSET] = ttl - 1;
        }
        IpVersion::V6 => ip[ipv6::HOP_LIMIT_OFFSET] = ttl - 1,
    }
}

/// Writes the first `N` bytes of `new` over the address at `ip[at..at + N]`, recording
/// the change in both checksum adjustments (the caller checked the bounds).
#[inline(always)]
fn replace_addr_field<const N: usize>(
    ip: &mut [u8],
    at: usize,
    new: &[u8; 16],
    ip_adj: &mut Adjust,
    l4_adj: &mut Adjust,
) {
    let (Some(field), Some(new)) = (ip.get_mut(at..at + N), new.first_chunk::<N>()) else {
        return;
    };
    ip_adj.replace(field, new);
    l4_adj.replace(field, new);
    field.copy_from_slice(new);
}

/// A new IPv4 address and port for one end of a packet.
pub(crate) type V4End = ([u8; 4], u16);

/// [`checksum::fold`] without a loop: a sum of at most 2^63 folded to 16 bits (the same
/// value: 0 only for 0).
#[inline(always)]
fn fold64(a: u64) -> u16 {
    let a = (a & 0xffff_ffff) + (a >> 32);
    let a = (a & 0xffff) + (a >> 16);
    let a = (a & 0xffff) + (a >> 16);
    ((a & 0xffff) + (a >> 16)) as u16
}

/// The NAT/FULLNAT rewrite of an IPv4 TCP or UDP packet with software checksums, the
/// case every established packet of a NAT or FULLNAT session takes: TTL − 1, the new
/// source and/or destination address and port, both checksums adjusted incrementally
/// (RFC 1624), the MACs. `l3`, `l4`, `ip_end`: offsets of the IPv4 header, the L4 header
/// and the end of the IP packet in `frame`.
///
/// Everything is checked before anything is written: on `Err` the frame is unchanged.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn rewrite_v4(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    ip_end: usize,
    udp: bool,
    src: Option<V4End>,
    dst: Option<V4End>,
    macs: &MacRewrite,
) -> Result<()> {
    let (csum_at, min_l4) = if udp {
        (udp::CHECKSUM_OFFSET, udp::HEADER_LEN)
    } else {
        (tcp::CHECKSUM_OFFSET, tcp::HEADER_LEN)
    };
    if l3 < 12 || l4 < l3 + 20 || l4 + min_l4 > ip_end || ip_end > frame.len() {
        return Err(Error::Truncated);
    }
    let (head, seg) = frame.split_at_mut(l4);
    let (l2, ip) = head.split_at_mut(l3);
    let (Some(ip), Some(seg)) = (ip.first_chunk_mut::<20>(), seg.get_mut(..min_l4)) else {
        return Err(Error::Truncated);
    };
    let ttl = ip[ipv4::TTL_OFFSET];
    if ttl <= 1 {
        return Err(Error::TtlExpired);
    }
    // Nothing fails from here on. The checksum deltas (RFC 1624) are summed in 32-bit
    // words (an address, both ports) and folded once: ones' complement sums of 16-bit
    // words fold the same from any wider word.
    // The IPv4 header: TTL (its word with the protocol), addresses; L4: addresses
    // (pseudo-header), ports.
    let mut ip_acc = u64::from(!u16::from_be_bytes([ttl, 0])) + u64::from(ttl - 1) * 256;
    let mut l4_acc = 0u64;
    ip[ipv4::TTL_OFFSET] = ttl - 1;
    let (mut ports, old_ports) = {
        let p: [u8; 4] = [seg[0], seg[1], seg[2], seg[3]];
        (p, u32::from_be_bytes(p))
    };
    for (new, at, port_at) in [
        (src, ipv4::SRC_ADDR_OFFSET, 0),
        (dst, ipv4::DST_ADDR_OFFSET, 2),
    ] {
        if let Some((addr, port)) = new {
            let old = u32::from_be_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
            let d = u64::from(!old) + u64::from(u32::from_be_bytes(addr));
            ip_acc += d;
            l4_acc += d;
            ip[at..at + 4].copy_from_slice(&addr);
            ports[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
        }
    }
    l4_acc += u64::from(!old_ports) + u64::from(u32::from_be_bytes(ports));
    seg[..4].copy_from_slice(&ports);
    let at = ipv4::CHECKSUM_OFFSET;
    let old = u16::from_be_bytes([ip[at], ip[at + 1]]);
    let new = !fold64(u64::from(!old) + ip_acc);
    ip[at..at + 2].copy_from_slice(&new.to_be_bytes());
    let old = u16::from_be_bytes([seg[csum_at], seg[csum_at + 1]]);
    // A UDP datagram without a checksum keeps none; a computed 0 is sent as 0xffff.
    if !(udp && old == 0) {
        let mut new = !fold64(u64::from(!old) + l4_acc);
        if udp && new == 0 {
            new = 0xffff;
        }
        seg[csum_at..csum_at + 2].copy_from_slice(&new.to_be_bytes());
    }
    l2[..6].copy_from_slice(&macs.dst.0);
    l2[6..12].copy_from_slice(&macs.src.0);
    Ok(())
}

/// The IPv4 address and port of an endpoint ([`Error::AddressFamily`] for IPv6).
fn v4_end(e: &Endpoint) -> Result<V4End> {
    match e.addr {
        IpAddr::V4(a) => Ok((a.octets(), e.port)),
        IpAddr::V6(_) => Err(Error::AddressFamily),
    }
}

/// The shared NAT/FULLNAT rewrite: decrement the TTL, replace the source and/or
/// destination address and port of a TCP or UDP packet, fix every checksum (or prepare
/// them for offload), set the MACs.
pub(crate) fn rewrite_l3l4(
    frame: &mut [u8],
    meta: &IpMeta,
    new_src: Option<&Endpoint>,
    new_dst: Option<&Endpoint>,
    macs: &MacRewrite,
    mode: ChecksumMode,
) -> Result<TxOffload> {
    let proto = meta.tuple.protocol;
    let (csum_at, min_l4) = match proto {
        IpProtocol::TCP => (tcp::CHECKSUM_OFFSET, tcp::HEADER_LEN),
        IpProtocol::UDP => (udp::CHECKSUM_OFFSET, udp::HEADER_LEN),
        _ => return Err(Error::UnsupportedProto),
    };
    let version = meta.version;
    let lay = IpLayout::of(version);
    let l3 = meta.l3_offset();
    let l4 = meta.l4_offset;
    if version == IpVersion::V4 && mode == ChecksumMode::Software {
        let src = new_src.map(v4_end).transpose()?;
        let dst = new_dst.map(v4_end).transpose()?;
        let udp = proto == IpProtocol::UDP;
        rewrite_v4(frame, l3, l4, meta.ip_end, udp, src, dst, macs)?;
        return Ok(TxOffload::new(
            l3 as u16,
            (l4 - l3) as u16,
            true,
            false,
            None,
        ));
    }
    if frame.len() < 12
        || meta.ip_end > frame.len()
        || l4 < l3 + lay.dst + lay.addr_len
        || l4 + min_l4 > meta.ip_end
    {
        return Err(Error::Truncated);
    }
    let src = new_src.map(|e| addr_bytes(&e.addr, version)).transpose()?;
    let dst = new_dst.map(|e| addr_bytes(&e.addr, version)).transpose()?;
    let ttl = check_ttl(&frame[l3..], version)?;

    // Nothing fails from here on.
    let mut ip_adj = Adjust::new();
    let mut l4_adj = Adjust::new();
    {
        let ip = &mut frame[l3..l4];
        write_ttl(ip, version, ttl, &mut ip_adj);
        for (new, at) in [(src, lay.src), (dst, lay.dst)] {
            if let Some((bytes, n)) = new {
                // Fixed-size copies (no memcpy call per address).
                if n == 4 {
                    replace_addr_field::<4>(ip, at, &bytes, &mut ip_adj, &mut l4_adj);
                } else {
                    replace_addr_field::<16>(ip, at, &bytes, &mut ip_adj, &mut l4_adj);
                }
            }
        }
    }
    {
        let seg = &mut frame[l4..meta.ip_end];
        for (new, at) in [(new_src, 0usize), (new_dst, 2usize)] {
            if let Some(e) = new {
                let old = u16::from_be_bytes([seg[at], seg[at + 1]]);
                l4_adj.replace_u16(old, e.port);
                seg[at..at + 2].copy_from_slice(&e.port.to_be_bytes());
            }
        }
    }

    // The offload request is assembled from locals at the end (a struct written field by
    // field on the stack and then returned stalls on store forwarding).
    let mut ipv4_checksum = false;
    let mut l4_offload = None;
    if version == IpVersion::V4 {
        let at = l3 + ipv4::CHECKSUM_OFFSET;
        let old = u16::from_be_bytes([frame[at], frame[at + 1]]);
        let new = match mode {
            ChecksumMode::Software => ip_adj.apply(old),
            ChecksumMode::Offload => {
                ipv4_checksum = true;
                0
            }
        };
        frame[at..at + 2].copy_from_slice(&new.to_be_bytes());
    }
    let at = l4 + csum_at;
    let old = u16::from_be_bytes([frame[at], frame[at + 1]]);
    let udp_none = proto == IpProtocol::UDP && old == 0 && version == IpVersion::V4;
    if !udp_none {
        let new = match mode {
            ChecksumMode::Software => {
                let c = l4_adj.apply(old);
                if proto == IpProtocol::UDP && c == 0 {
                    0xffff
                } else {
                    c
                }
            }
            ChecksumMode::Offload => {
                l4_offload = Some(if proto == IpProtocol::TCP {
                    L4Offload::Tcp
                } else {
                    L4Offload::Udp
                });
                pseudo_sum(frame, l3, &lay, proto, meta.ip_end - l4)
            }
        };
        frame[at..at + 2].copy_from_slice(&new.to_be_bytes());
    }
    set_macs(frame, macs)?;
    Ok(TxOffload::new(
        l3 as u16,
        (l4 - l3) as u16,
        version == IpVersion::V4,
        ipv4_checksum,
        l4_offload,
    ))
}

/// The pseudo-header sum (uncomplemented) from the addresses now in the header, as
/// `rte_ipv4_phdr_cksum`/`rte_ipv6_phdr_cksum` compute it for TX L4 offload.
fn pseudo_sum(frame: &[u8], l3: usize, lay: &IpLayout, proto: IpProtocol, l4_len: usize) -> u16 {
    let s = &frame[l3 + lay.src..l3 + lay.src + lay.addr_len];
    let d = &frame[l3 + lay.dst..l3 + lay.dst + lay.addr_len];
    let len = l4_len as u32;
    checksum::combine(&[
        checksum::data(s),
        checksum::data(d),
        u16::from(proto.0),
        (len >> 16) as u16,
        (len & 0xffff) as u16,
    ])
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared helpers for the rewrite tests: packets built and checked with etherparse.

    use super::*;
    use crate::wire::{classify, Classified};
    use etherparse::{
        Icmpv4Slice, Ipv4HeaderSlice, NetSlice, PacketBuilder, SlicedPacket, TransportSlice,
    };

    pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xd1];
    pub const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x05];
    pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
    pub const CIP: [u8; 4] = [203, 0, 113, 5];
    pub const VIP: [u8; 4] = [192, 168, 1, 100];
    pub const RIP: [u8; 4] = [10, 1, 1, 2];
    pub const LIP: [u8; 4] = [10, 1, 1, 250];
    pub const DIP: [u8; 4] = [10, 1, 1, 1];
    pub const CPORT: u16 = 51234;
    pub const VPORT: u16 = 80;
    pub const RPORT: u16 = 8080;
    pub const LPORT: u16 = 40001;

    pub fn ep(a: [u8; 4], port: u16) -> Endpoint {
        Endpoint::new(IpAddr::from(a), port)
    }

    /// An IPv4 TCP or UDP frame built by etherparse.
    pub fn frame4(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        udp: bool,
        ttl: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC).ipv4(src, dst, ttl);
        let mut v = Vec::new();
        if udp {
            b.udp(sport, dport).write(&mut v, payload).unwrap();
        } else {
            b.tcp(sport, dport, 0x0102_0304, 29200)
                .syn()
                .ack(7)
                .write(&mut v, payload)
                .unwrap();
        }
        v
    }

    pub fn meta(frame: &[u8]) -> IpMeta {
        match classify(frame, ChecksumMode::Software).unwrap() {
            Classified::Ip(m) => m,
            other => panic!("not IP: {other:?}"),
        }
    }

    /// Re-parse with etherparse and check every checksum by recomputing it with
    /// etherparse's calculators; return the sliced packet.
    pub fn check_v4(frame: &[u8]) -> SlicedPacket<'_> {
        let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses the result");
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        let h = ip.header().to_header();
        assert_eq!(
            h.header_checksum,
            h.calc_header_checksum(),
            "IPv4 header checksum"
        );
        match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                let want = t
                    .calc_checksum_ipv4(ip.header().source(), ip.header().destination())
                    .unwrap();
                assert_eq!(t.checksum(), want, "TCP checksum");
            }
            Some(TransportSlice::Udp(u)) if u.checksum() != 0 => {
                let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
                assert_eq!(u.checksum(), want, "UDP checksum");
            }
            Some(TransportSlice::Icmpv4(i)) => check_icmp(i),
            _ => {}
        }
        p
    }

    pub fn check_icmp(i: &Icmpv4Slice<'_>) {
        let want = i.icmp_type().calc_checksum(i.payload());
        assert_eq!(i.checksum(), want, "ICMP checksum");
    }

    pub fn ipv4_header(frame: &[u8]) -> etherparse::Ipv4Header {
        Ipv4HeaderSlice::from_slice(&frame[14..])
            .unwrap()
            .to_header()
    }

    /// Ports and addresses of the rewritten packet.
    pub fn endpoints(p: &SlicedPacket<'_>) -> (Endpoint, Endpoint) {
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        let (s, d) = (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
        );
        let (sp, dp) = match &p.transport {
            Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
            Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
            _ => (0, 0),
        };
        (Endpoint::new(s, sp), Endpoint::new(d, dp))
    }

    pub fn macs(p: &SlicedPacket<'_>) -> ([u8; 6], [u8; 6]) {
        let Some(etherparse::LinkSlice::Ethernet2(e)) = &p.link else {
            panic!("not Ethernet")
        };
        (e.source(), e.destination())
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::buf::VecBuf;
    use crate::wire::TcpPacket;
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    /// Full recomputation of the IPv4 header and L4 checksums with our own code.
    fn full_sums(frame: &[u8], m: &IpMeta) -> (u16, u16) {
        let ip = crate::wire::Ipv4Packet::new_checked(&frame[m.l3_offset()..]).unwrap();
        let mut hdr = frame[m.l3_offset()..m.l4_offset].to_vec();
        hdr[10] = 0;
        hdr[11] = 0;
        let ip_sum = !checksum::data(&hdr);
        let mut seg = frame[m.l4_offset..m.ip_end].to_vec();
        let (s, d) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
        let l4 = if m.tuple.protocol == IpProtocol::TCP {
            let mut t = TcpPacket::new_unchecked(&mut seg[..]);
            t.fill_checksum(&s, &d);
            t.checksum()
        } else {
            let mut u = crate::wire::UdpPacket::new_unchecked(&mut seg[..]);
            u.fill_checksum(&s, &d);
            u.checksum()
        };
        (ip_sum, l4)
    }

    fn arb_v4() -> impl Strategy<Value = [u8; 4]> {
        any::<[u8; 4]>()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// The incremental checksums of a NAT/FULLNAT rewrite equal a full recomputation
        /// (ours and etherparse's), for random packets and random new addresses/ports.
        #[test]
        fn incremental_equals_full(
            src in arb_v4(), dst in arb_v4(), sport in any::<u16>(), dport in any::<u16>(),
            nsrc in arb_v4(), ndst in arb_v4(), nsport in any::<u16>(), ndport in any::<u16>(),
            udp in any::<bool>(), ttl in 2u8..=255,
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            change_src in any::<bool>(), change_dst in any::<bool>(),
        ) {
            let mut f = frame4(src, sport, dst, dport, udp, ttl, &payload);
            let m = meta(&f);
            let ns = ep(nsrc, nsport);
            let nd = ep(ndst, ndport);
            let macs = MacRewrite::default();
            rewrite_l3l4(
                &mut f, &m,
                change_src.then_some(&ns), change_dst.then_some(&nd),
                &macs, ChecksumMode::Software,
            ).unwrap();
            let (ip_sum, l4_sum) = full_sums(&f, &m);
            prop_assert_eq!(u16::from_be_bytes([f[24], f[25]]), ip_sum);
            let at = m.l4_offset + if udp { 6 } else { 16 };
            prop_assert_eq!(u16::from_be_bytes([f[at], f[at + 1]]), l4_sum);
            check_v4(&f);
            prop_assert_eq!(f[22], ttl - 1);
        }

        /// Same for raw checksum updates on arbitrary even-length data.
        #[test]
        fn update_equals_full(
            mut data in proptest::collection::vec(any::<u8>(), 2..80),
            at in any::<prop::sample::Index>(),
            new in any::<[u8; 4]>(),
        ) {
            if data.len() % 2 == 1 { data.pop(); }
            let words = data.len() / 2;
            let w = at.index(words) * 2;
            let n = (data.len() - w).min(4) & !1;
            let c = !checksum::data(&data);
            let c2 = checksum::update(c, &data[w..w + n], &new[..n]);
            data[w..w + n].copy_from_slice(&new[..n]);
            let full = !checksum::data(&data);
            // 0x0000 and 0xffff are the same number in ones' complement; a header with
            // any non-zero word never sums to -0, so rewrites never hit the difference.
            prop_assert!(c2 == full || (c2 ^ full) == 0xffff && (c2 == 0 || full == 0));
        }
    }

    #[test]
    fn offload_mode_writes_pseudo_header() {
        for udp in [false, true] {
            let mut f = frame4(CIP, CPORT, VIP, VPORT, udp, 64, b"payload!");
            let m = meta(&f);
            let rs = ep(RIP, RPORT);
            let off = rewrite_l3l4(
                &mut f,
                &m,
                None,
                Some(&rs),
                &MacRewrite::default(),
                ChecksumMode::Offload,
            )
            .unwrap();
            assert!(off.is_needed() && off.ipv4() && off.ipv4_checksum());
            assert_eq!((off.l2_len(), off.l3_len()), (14, 20));
            assert_eq!(
                off.l4(),
                Some(if udp { L4Offload::Udp } else { L4Offload::Tcp })
            );
            assert_eq!(&f[24..26], &[0, 0], "IPv4 checksum left to the NIC");
            let at = m.l4_offset + if udp { 6 } else { 16 };
            let l4_len = (m.ip_end - m.l4_offset) as u16;
            let want = checksum::pseudo_header_v4(
                Ipv4Addr::from(CIP),
                Ipv4Addr::from(RIP),
                if udp { 17 } else { 6 },
                l4_len,
            );
            assert_eq!(u16::from_be_bytes([f[at], f[at + 1]]), want);
            // What the NIC then does: fill the IPv4 sum, complement the full L4 sum.
            let mut ip = crate::wire::Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.fill_checksum();
            let seg_sum = checksum::data(&f[m.l4_offset..m.ip_end]);
            f[at..at + 2].copy_from_slice(&(!seg_sum).to_be_bytes());
            check_v4(&f);
        }
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut f = frame4(CIP, CPORT, VIP, VPORT, true, 64, b"x");
        let m = meta(&f);
        f[m.l4_offset + 6] = 0;
        f[m.l4_offset + 7] = 0;
        for mode in [ChecksumMode::Software, ChecksumMode::Offload] {
            let mut g = f.clone();
            let off = rewrite_l3l4(
                &mut g,
                &m,
                None,
                Some(&ep(RIP, RPORT)),
                &MacRewrite::default(),
                mode,
            )
            .unwrap();
            assert_eq!(&g[m.l4_offset + 6..m.l4_offset + 8], &[0, 0]);
            assert_eq!(off.l4(), None);
        }
    }

    #[test]
    fn errors_change_nothing() {
        let f = frame4(CIP, CPORT, VIP, VPORT, false, 64, b"");
        let m = meta(&f);
        let v6 = Endpoint::new("2001:db8::1".parse().unwrap(), 1);
        let mut g = f.clone();
        let r = rewrite_l3l4(
            &mut g,
            &m,
            None,
            Some(&v6),
            &MacRewrite::default(),
            ChecksumMode::Software,
        );
        assert_eq!(r, Err(Error::AddressFamily));
        assert_eq!(g, f);
        // offsets that do not fit the buffer
        let mut short = f[..40].to_vec();
        let r = rewrite_l3l4(
            &mut short,
            &m,
            None,
            Some(&ep(RIP, 1)),
            &MacRewrite::default(),
            ChecksumMode::Software,
        );
        assert_eq!(r, Err(Error::Truncated));
        // ICMP has no ports to NAT
        let mut e = Vec::new();
        etherparse::PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
            .ipv4(CIP, VIP, 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut e, b"")
            .unwrap();
        let me = meta(&e);
        let r = rewrite_l3l4(
            &mut e,
            &me,
            None,
            Some(&ep(RIP, 1)),
            &MacRewrite::default(),
            ChecksumMode::Software,
        );
        assert_eq!(r, Err(Error::UnsupportedProto));
    }

    #[test]
    fn params_dispatch() {
        let f = frame4(CIP, CPORT, VIP, VPORT, false, 64, b"");
        let m = meta(&f);
        let mut out = [0u8; 128];
        let dr = Params::Dr(DrParams {
            macs: MacRewrite {
                src: EthernetAddress(DIRECTOR_MAC),
                dst: EthernetAddress(RS_MAC),
            },
        });
        let mut b = VecBuf::new(64, &f);
        assert!(matches!(
            dr.request(&mut b, &m, &mut out),
            Ok(Verdict::Forward(_))
        ));
        assert_eq!(dr.reply(&mut b, &m), Err(Error::UnsupportedProto));
    }
}
