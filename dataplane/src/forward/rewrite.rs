//! The bytes of a rewrite: the MACs, the TTL, and the NAT/FULLNAT address-and-port
//! rewrite of an IPv4 TCP or UDP packet with incremental checksums (RFC 1624). What to
//! rewrite is decided by [`super::Plan`].

use core::net::IpAddr;

use crate::wire::checksum::Adjust;
use crate::wire::{ipv4, ipv6, tcp, udp, Error, EthernetAddress, IpVersion, Result};

/// The Ethernet addresses of the transmitted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MacRewrite {
    /// Source: the director's egress port MAC.
    pub src: EthernetAddress,
    /// Destination: the next hop (the real server, or the gateway toward the client).
    pub dst: EthernetAddress,
}

/// Write the MACs into the first 12 bytes of the frame.
pub(crate) fn set_macs(frame: &mut [u8], macs: &MacRewrite) -> Result<()> {
    let hdr = frame.get_mut(..12).ok_or(Error::Truncated)?;
    hdr[..6].copy_from_slice(&macs.dst.0);
    hdr[6..].copy_from_slice(&macs.src.0);
    Ok(())
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

/// The TTL / hop limit of the IP header at the start of `ip`, checked before it is
/// decremented ([`write_ttl`]): `TtlExpired` (nothing written) at ≤ 1.
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

/// A new IPv4 address and port for one end of a packet.
pub type V4End = ([u8; 4], u16);

/// [`checksum::fold`] without a loop: a sum folded to 16 bits with end-around carries
/// (the same value: 0 only for 0).
#[inline(always)]
fn fold64(a: u64) -> u16 {
    let (a, c) = (a as u32).overflowing_add((a >> 32) as u32);
    // At most 2^32 - 2 with a carry: adding it back cannot overflow.
    let a = a + u32::from(c);
    let (a, c) = (a as u16).overflowing_add((a >> 16) as u16);
    a + u16::from(c)
}

/// The 16-bit word at `at` of `b`, in the machine's byte order (checksum arithmetic here
/// is done in that order: see [`rewrite_v4`]).
#[inline(always)]
fn ne16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

/// Writes `port` (host order) at `at` of the L4 header `seg` and returns the checksum
/// delta (RFC 1624: ~old + new) in the machine's byte order.
#[inline(always)]
fn replace_port(seg: &mut [u8], at: usize, port: u16) -> u64 {
    let old = ne16(seg, at);
    let new = u16::from_ne_bytes(port.to_be_bytes());
    seg[at..at + 2].copy_from_slice(&new.to_ne_bytes());
    u64::from(!old) + u64::from(new)
}

/// Adjusts the TCP or UDP checksum at `csum_at` of `seg` by the deltas summed in `acc`
/// (the machine's byte order). A UDP datagram without a checksum keeps none (over IPv6,
/// where UDP must carry one, the receiver drops it as it would have without the
/// director); a computed 0 is sent as 0xffff (0 and 0xffff read the same in either
/// byte order).
#[inline(always)]
fn adjust_l4_checksum(seg: &mut [u8], csum_at: usize, udp: bool, acc: u64) {
    let old = ne16(seg, csum_at);
    if !(udp && old == 0) {
        let mut new = !fold64(u64::from(!old) + acc);
        if udp && new == 0 {
            new = 0xffff;
        }
        seg[csum_at..csum_at + 2].copy_from_slice(&new.to_ne_bytes());
    }
}

/// The NAT/FULLNAT rewrite of an IPv4 TCP or UDP packet with software checksums, the
/// case every established packet of a NAT or FULLNAT session takes: TTL − 1, the new
/// source and/or destination address and port, both checksums adjusted incrementally
/// (RFC 1624), the MACs. `l3`, `l4`, `ip_end`: offsets of the IPv4 header, the L4 header
/// and the end of the IP packet in `frame`.
///
/// Everything is checked before anything is written: on `Err` the frame is unchanged.
///
/// A ones' complement sum comes out the same in either byte order, byte-swapped (RFC
/// 1071, 2.B): every word here, the checksums' included, is read and written in the
/// machine's order, and the sums need no byte swap (only the new ports, given in host
/// order, are turned into their wire bytes).
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
    // The MACs (12 bytes before `l3`), a 20-byte header between `l3` and `l4`, the L4
    // header before `ip_end`, all within the frame: each slice checks its part, once (an
    // up-front test of the offsets made the compiler check the splits again).
    let split = frame
        .get_mut(..ip_end)
        .and_then(|f| f.split_at_mut_checked(l4))
        .and_then(|(head, seg)| Some((head.split_at_mut_checked(l3)?, seg)));
    let Some(((l2, ip), seg)) = split else {
        return Err(Error::Truncated);
    };
    let (Some(l2), Some(ip), Some(seg)) = (
        l2.first_chunk_mut::<12>(),
        ip.first_chunk_mut::<20>(),
        seg.get_mut(..min_l4),
    ) else {
        return Err(Error::Truncated);
    };
    let word =
        |b: &[u8; 20], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    // The TTL's word (TTL, protocol), in the machine's order.
    let ttl_word = ne16(ip, ipv4::TTL_OFFSET);
    let ttl = ip[ipv4::TTL_OFFSET];
    if ttl <= 1 {
        return Err(Error::TtlExpired);
    }
    // Nothing fails from here on. The deltas (RFC 1624: ~old + new) are summed in 32-bit
    // words (an address, both ports) and folded once: ones' complement sums of 16-bit
    // words fold the same from any wider word. The IPv4 header: the TTL's word and the
    // addresses; L4: the addresses (pseudo-header) and the ports.
    ip[ipv4::TTL_OFFSET] = ttl - 1;
    let ttl_new = u16::from_ne_bytes([ttl - 1, ip[ipv4::TTL_OFFSET + 1]]);
    let (mut addr_acc, mut port_acc) = (0u64, 0u64);
    for (new, at, port_at) in [
        (src, ipv4::SRC_ADDR_OFFSET, 0),
        (dst, ipv4::DST_ADDR_OFFSET, 2),
    ] {
        if let Some((addr, port)) = new {
            addr_acc += u64::from(!word(ip, at)) + u64::from(u32::from_ne_bytes(addr));
            ip[at..at + 4].copy_from_slice(&addr);
            port_acc += replace_port(seg, port_at, port);
        }
    }
    let at = ipv4::CHECKSUM_OFFSET;
    let old = ne16(ip, at);
    let ip_acc = addr_acc + u64::from(!ttl_word) + u64::from(ttl_new) + u64::from(!old);
    ip[at..at + 2].copy_from_slice(&(!fold64(ip_acc)).to_ne_bytes());
    adjust_l4_checksum(seg, csum_at, udp, addr_acc + port_acc);
    l2[..6].copy_from_slice(&macs.dst.0);
    l2[6..].copy_from_slice(&macs.src.0);
    Ok(())
}

/// A new IPv6 address and port for one end of a packet.
pub type V6End = ([u8; 16], u16);

/// The ones'-complement difference of replacing the 16 bytes `old` by `new`, as a sum of
/// 64-bit words in the machine's byte order with the carries kept (folded by the caller:
/// ones' complement sums of 16-bit words fold the same from any wider word).
#[inline(always)]
fn delta16(old: &[u8], new: &[u8; 16]) -> u64 {
    let w = |b: &[u8], i: usize| {
        u64::from_ne_bytes([
            b[i],
            b[i + 1],
            b[i + 2],
            b[i + 3],
            b[i + 4],
            b[i + 5],
            b[i + 6],
            b[i + 7],
        ])
    };
    let mut acc = 0u128;
    for i in [0, 8] {
        acc += u128::from(!w(old, i)) + u128::from(w(new, i));
    }
    // Fold the (at most 66-bit) sum to 64 bits with its end-around carries.
    let lo = acc as u64;
    let (sum, carry) = lo.overflowing_add((acc >> 64) as u64);
    (sum & 0xffff_ffff) + (sum >> 32) + u64::from(carry)
}

/// The NAT/FULLNAT rewrite of an IPv6 TCP or UDP packet, as [`rewrite_v4`] for IPv4:
/// hop limit − 1, the new source and/or destination address and port, the L4 checksum
/// adjusted incrementally for the pseudo-header's addresses and the ports (IPv6 has no
/// header checksum), the MACs. `l4` is past any extension headers.
///
/// Everything is checked before anything is written: on `Err` the frame is unchanged.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn rewrite_v6(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    ip_end: usize,
    udp: bool,
    src: Option<V6End>,
    dst: Option<V6End>,
    macs: &MacRewrite,
) -> Result<()> {
    let (csum_at, min_l4) = if udp {
        (udp::CHECKSUM_OFFSET, udp::HEADER_LEN)
    } else {
        (tcp::CHECKSUM_OFFSET, tcp::HEADER_LEN)
    };
    // As rewrite_v4's: each slice checks its part, once.
    let split = frame
        .get_mut(..ip_end)
        .and_then(|f| f.split_at_mut_checked(l4))
        .and_then(|(head, seg)| Some((head.split_at_mut_checked(l3)?, seg)));
    let Some(((l2, ip), seg)) = split else {
        return Err(Error::Truncated);
    };
    let (Some(l2), Some(ip), Some(seg)) = (
        l2.first_chunk_mut::<12>(),
        ip.first_chunk_mut::<{ ipv6::HEADER_LEN }>(),
        seg.get_mut(..min_l4),
    ) else {
        return Err(Error::Truncated);
    };
    let hops = ip[ipv6::HOP_LIMIT_OFFSET];
    if hops <= 1 {
        return Err(Error::TtlExpired);
    }
    ip[ipv6::HOP_LIMIT_OFFSET] = hops - 1;
    let mut l4_acc = 0u64;
    for (new, at, port_at) in [
        (src, ipv6::SRC_ADDR_OFFSET, 0),
        (dst, ipv6::DST_ADDR_OFFSET, 2),
    ] {
        if let Some((addr, port)) = new {
            l4_acc += delta16(&ip[at..at + 16], &addr);
            ip[at..at + 16].copy_from_slice(&addr);
            l4_acc += replace_port(seg, port_at, port);
        }
    }
    adjust_l4_checksum(seg, csum_at, udp, l4_acc);
    l2[..6].copy_from_slice(&macs.dst.0);
    l2[6..].copy_from_slice(&macs.src.0);
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared helpers for the rewrite tests: packets built and checked with etherparse.

    use super::*;
    use crate::flow::FwdMethod;
    use crate::forward::plan::Plan;
    use crate::wire::{classify, ChecksumMode, Classified, Endpoint, IpMeta};
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

    /// NAT request: dst VIP:vport → RIP:rport.
    pub fn nat_request() -> Plan {
        Plan {
            fwd: FwdMethod::Masq,
            src: None,
            dst: Some((RIP, RPORT)),
            toward: RIP.into(),
            encap: Default::default(),
        }
    }

    /// NAT reply: src RIP:rport → VIP:vport.
    pub fn nat_reply() -> Plan {
        Plan {
            fwd: FwdMethod::Masq,
            src: Some((VIP, VPORT)),
            dst: None,
            toward: CIP.into(),
            encap: Default::default(),
        }
    }

    /// FULLNAT request: src → LIP:lport, dst → RIP:rport.
    pub fn fullnat_request() -> Plan {
        Plan {
            fwd: FwdMethod::FullNat,
            src: Some((LIP, LPORT)),
            dst: Some((RIP, RPORT)),
            toward: RIP.into(),
            encap: Default::default(),
        }
    }

    /// FULLNAT reply: src → VIP:vport, dst → CIP:cport.
    pub fn fullnat_reply() -> Plan {
        Plan {
            fwd: FwdMethod::FullNat,
            src: Some((VIP, VPORT)),
            dst: Some((CIP, CPORT)),
            toward: CIP.into(),
            encap: Default::default(),
        }
    }

    /// The MACs of a frame sent by the director to `dst`.
    pub fn from_director(dst: [u8; 6]) -> MacRewrite {
        MacRewrite {
            src: EthernetAddress(DIRECTOR_MAC),
            dst: EthernetAddress(dst),
        }
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
    use crate::wire::{checksum, IpMeta, IpProtocol, TcpPacket};
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

    /// `rewrite_v4` of a classified packet.
    fn rewrite(
        frame: &mut [u8],
        m: &IpMeta,
        src: Option<V4End>,
        dst: Option<V4End>,
        macs: &MacRewrite,
    ) -> Result<()> {
        let udp = m.tuple.protocol == IpProtocol::UDP;
        rewrite_v4(
            frame,
            m.l3_offset(),
            m.l4_offset,
            m.ip_end,
            udp,
            src,
            dst,
            macs,
        )
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
            let macs = MacRewrite::default();
            rewrite(
                &mut f, &m,
                change_src.then_some((nsrc, nsport)), change_dst.then_some((ndst, ndport)),
                &macs,
            ).unwrap();
            let (ip_sum, l4_sum) = full_sums(&f, &m);
            prop_assert_eq!(u16::from_be_bytes([f[24], f[25]]), ip_sum);
            let at = m.l4_offset + if udp { 6 } else { 16 };
            prop_assert_eq!(u16::from_be_bytes([f[at], f[at + 1]]), l4_sum);
            check_v4(&f);
            prop_assert_eq!(f[22], ttl - 1);
        }

        /// The loop-free fold gives the checksum module's fold for any sum, with the
        /// end-around carries of the widest ones.
        #[test]
        fn fold64_equals_fold(a in any::<u64>(), edge in 0usize..5) {
            let a = [a, 0xffff_ffff, u64::MAX, 0x7fff_ffff_ffff_ffff, 0xffff_0000_ffff][edge];
            prop_assert_eq!(fold64(a), checksum::fold(a));
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

    /// An IPv6 TCP or UDP frame built by etherparse, with a destination-options header
    /// when `ext`.
    fn frame6(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, udp: bool) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC).ipv6(src, dst, 64);
        let mut v = Vec::new();
        if udp {
            b.udp(sport, dport).write(&mut v, b"datagram").unwrap();
        } else {
            b.tcp(sport, dport, 7, 1000)
                .ack(9)
                .write(&mut v, b"segment")
                .unwrap();
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// The incremental L4 checksum of an IPv6 rewrite equals etherparse's full one.
        #[test]
        fn v6_incremental_equals_full(
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
            nsrc in any::<[u8; 16]>(), ndst in any::<[u8; 16]>(),
            sport in any::<u16>(), dport in any::<u16>(), np in any::<(u16, u16)>(),
            udp in any::<bool>(), change_src in any::<bool>(), change_dst in any::<bool>(),
        ) {
            let mut f = frame6(src, sport, dst, dport, udp);
            let m = meta(&f);
            rewrite_v6(
                &mut f, m.l3_offset(), m.l4_offset, m.ip_end, udp,
                change_src.then_some((nsrc, np.0)), change_dst.then_some((ndst, np.1)),
                &from_director(RS_MAC),
            ).unwrap();
            let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
            let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else { panic!("not IPv6") };
            let h = ip.header();
            prop_assert_eq!(h.hop_limit(), 63);
            prop_assert_eq!(h.source(), if change_src { nsrc } else { src });
            prop_assert_eq!(h.destination(), if change_dst { ndst } else { dst });
            match &p.transport {
                Some(etherparse::TransportSlice::Tcp(t)) => {
                    let want = t.calc_checksum_ipv6(h.source(), h.destination()).unwrap();
                    prop_assert_eq!(t.checksum(), want);
                    prop_assert_eq!(t.source_port(), if change_src { np.0 } else { sport });
                    prop_assert_eq!(t.destination_port(), if change_dst { np.1 } else { dport });
                }
                Some(etherparse::TransportSlice::Udp(u)) => {
                    let want = u.to_header().calc_checksum_ipv6(&h.to_header(), u.payload()).unwrap();
                    prop_assert_eq!(u.checksum(), want);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn v6_hop_limit_one_changes_nothing() {
        let mut f = frame6([1; 16], 1, [2; 16], 2, false);
        f[14 + 7] = 1;
        let (g, m) = (f.clone(), meta(&f));
        let r = rewrite_v6(
            &mut f,
            14,
            m.l4_offset,
            m.ip_end,
            false,
            None,
            Some(([3; 16], 3)),
            &MacRewrite::default(),
        );
        assert_eq!(r, Err(Error::TtlExpired));
        assert_eq!(f, g);
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut f = frame4(CIP, CPORT, VIP, VPORT, true, 64, b"x");
        let m = meta(&f);
        f[m.l4_offset + 6] = 0;
        f[m.l4_offset + 7] = 0;
        let mut g = f.clone();
        rewrite(&mut g, &m, None, Some((RIP, RPORT)), &MacRewrite::default()).unwrap();
        assert_eq!(&g[m.l4_offset + 6..m.l4_offset + 8], &[0, 0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The offsets a rewrite is given are refused (`Truncated`, nothing written)
        /// exactly when they do not describe a frame of at least the MACs, a whole IP
        /// header and the L4 header up to its checksum, each part within the next: the
        /// slices' own checks against this rule, written out. Each offset is drawn
        /// within three bytes of the edge it must respect (the MACs' end, the header's,
        /// the L4 header's, the frame's), so every check is crossed both ways.
        #[test]
        fn offsets_outside_the_frame_are_refused_and_change_nothing(
            v6 in any::<bool>(),
            udp in any::<bool>(),
            d3 in -3isize..=3,
            d4 in -3isize..=3,
            d_end in -3isize..=3,
            d_cut in -3isize..=3,
        ) {
            let full = if v6 {
                frame6([1; 16], 1000, [2; 16], 80, udp)
            } else {
                frame4(CIP, CPORT, VIP, VPORT, udp, 64, b"")
            };
            let (header, min_l4) = match (v6, udp) {
                (false, false) => (20, 20),
                (false, true) => (20, 8),
                (true, false) => (40, 20),
                (true, true) => (40, 8),
            };
            let at = |base: usize, d: isize| base.saturating_add_signed(d);
            let l3 = at(12, d3);
            let l4 = at(l3 + header, d4);
            let ip_end = at(l4 + min_l4, d_end);
            let mut f = full[..at(ip_end, d_cut).min(full.len())].to_vec();
            let before = f.clone();
            let outside = l3 < 12
                || l4 < l3 + header
                || l4 + min_l4 > ip_end
                || ip_end > f.len();
            let macs = MacRewrite::default();
            let r = if v6 {
                rewrite_v6(&mut f, l3, l4, ip_end, udp, None, Some(([3; 16], 8080)), &macs)
            } else {
                rewrite_v4(&mut f, l3, l4, ip_end, udp, None, Some((RIP, 8080)), &macs)
            };
            if outside {
                prop_assert_eq!(r, Err(Error::Truncated));
                prop_assert_eq!(&f, &before);
            } else {
                prop_assert_ne!(r, Err(Error::Truncated));
            }
        }
    }

    #[test]
    fn errors_change_nothing() {
        let f = frame4(CIP, CPORT, VIP, VPORT, false, 64, b"");
        let m = meta(&f);
        // offsets that do not fit the buffer
        let mut short = f[..40].to_vec();
        let r = rewrite(&mut short, &m, None, Some((RIP, 1)), &MacRewrite::default());
        assert_eq!(r, Err(Error::Truncated));
        assert_eq!(short, f[..40]);
    }
}
