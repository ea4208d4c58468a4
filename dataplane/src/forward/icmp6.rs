//! ICMPv6 for the director (RFC 4443): the errors it originates (time exceeded, Packet
//! Too Big for a tunnel), its echo replies, and the translation of errors about NAT and
//! FULLNAT sessions with IPv6 ends, as [`super::icmp`] does for IPv4:
//!
//! | session, error travels | plan used | outer | embedded |
//! |---|---|---|---|
//! | RS side → client | reply | src → VIP (NAT, FULLNAT), dst LIP → CIP (FULLNAT) | its source becomes the plan's destination, its destination the plan's source |
//! | client side → RS | request | dst VIP → RIP, src → LIP (FULLNAT) | likewise |
//!
//! The ICMPv6 checksum (with its pseudo-header) is verified first and recomputed over
//! the whole message after the rewrite; the embedded TCP/UDP checksum is adjusted
//! incrementally when it lies within the quoted bytes. The hop limit drops by one (the
//! director routes the error).

use core::net::{IpAddr, Ipv6Addr};

use crate::buf::PacketBuf;
use crate::wire::checksum::{self, Adjust};
use crate::wire::icmpv6::{self, Message};
use crate::wire::{ethernet, ipv6, Error, IpMeta, IpProtocol, IpVersion, Result};

use super::plan6::Plan6;
use super::rewrite::MacRewrite;

/// The hop limit of the ICMPv6 messages the director originates.
pub const HOP_LIMIT: u8 = 64;

/// The ICMPv6 checksum of `msg` (the whole message, its checksum field zero or not)
/// between `src` and `dst`: the value to write with the field zeroed.
fn sum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, msg.len() as u32);
    !checksum::combine(&[pseudo, checksum::data(msg)])
}

/// The addresses of the IPv6 header at `l3` of `frame`.
fn addrs(frame: &[u8], l3: usize) -> Result<(Ipv6Addr, Ipv6Addr)> {
    let h = frame
        .get(l3..l3 + ipv6::HEADER_LEN)
        .ok_or(Error::Truncated)?;
    let a = |at: usize| {
        let mut o = [0u8; 16];
        o.copy_from_slice(&h[at..at + 16]);
        Ipv6Addr::from(o)
    };
    Ok((a(ipv6::SRC_ADDR_OFFSET), a(ipv6::DST_ADDR_OFFSET)))
}

/// Builds into `out` an ICMPv6 error from `src` about the received IPv6 packet `frame`
/// (classified as `meta`), back to its sender; returns the frame's length.
///
/// `msg`: type, code and the 32-bit field after the checksum (the MTU of a Packet Too
/// Big, the pointer of a parameter problem, 0 otherwise). Ethernet: the received
/// frame's header with the MACs swapped (back to the previous hop, same VLAN tag).
/// IPv6: `src` → the packet's source, hop limit [`HOP_LIMIT`]. The message quotes as
/// much of the packet as keeps it within the minimum MTU (1280), as RFC 4443 asks.
pub fn originate(
    frame: &[u8],
    meta: &IpMeta,
    src: Ipv6Addr,
    msg: (Message, u8, u32),
    out: &mut [u8],
) -> Result<usize> {
    let l3 = meta.l3_offset();
    let ip = frame.get(l3..meta.ip_end).ok_or(Error::Truncated)?;
    if l3 < ethernet::HEADER_LEN || ip.len() < ipv6::HEADER_LEN || meta.version != IpVersion::V6 {
        return Err(Error::Truncated);
    }
    let (to, _) = addrs(frame, l3)?;
    let room = icmpv6::MIN_MTU as usize - ipv6::HEADER_LEN - icmpv6::HEADER_LEN;
    let quote = ip.len().min(room);
    let icmp_len = icmpv6::HEADER_LEN + quote;
    let total = l3 + ipv6::HEADER_LEN + icmp_len;
    let out = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;
    out[..l3].copy_from_slice(&frame[..l3]);
    out[ethernet::field::DESTINATION].copy_from_slice(&frame[ethernet::field::SOURCE]);
    out[ethernet::field::SOURCE].copy_from_slice(&frame[ethernet::field::DESTINATION]);
    {
        let mut h = ipv6::Packet::new_unchecked(&mut out[l3..l3 + ipv6::HEADER_LEN]);
        h.set_version_tc_flow(0, 0);
        h.set_payload_len(icmp_len as u16);
        h.set_next_header(IpProtocol::ICMPV6);
        h.set_hop_limit(HOP_LIMIT);
        h.set_src_addr(&src);
        h.set_dst_addr(&to);
    }
    let m = &mut out[l3 + ipv6::HEADER_LEN..];
    let (kind, code, field) = msg;
    m[0] = kind.0;
    m[1] = code;
    m[2..4].fill(0);
    m[4..8].copy_from_slice(&field.to_be_bytes());
    m[8..8 + quote].copy_from_slice(&ip[..quote]);
    let c = sum(&src, &to, &m[..icmp_len]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(total)
}

/// Turns an echo request to one of the director's addresses into its reply, in place:
/// addresses and MACs swapped, type 129, hop limit [`HOP_LIMIT`], checksum adjusted.
/// The checksum of the request is verified first ([`Error::BadChecksum`]).
pub fn echo_reply<B: PacketBuf + ?Sized>(buf: &mut B, meta: &IpMeta) -> Result<()> {
    let (l3, l4, end) = (meta.l3_offset(), meta.l4_offset, meta.ip_end);
    let frame = buf.data_mut();
    if l3 < 12 || l4 + icmpv6::HEADER_LEN > end || end > frame.len() {
        return Err(Error::Truncated);
    }
    let (src, dst) = addrs(frame, l3)?;
    if sum(&src, &dst, &frame[l4..end]) != 0 {
        return Err(Error::BadChecksum);
    }
    let (l2, rest) = frame.split_at_mut(l3);
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&l2[..6]);
    l2.copy_within(6..12, 0);
    l2[6..12].copy_from_slice(&mac);
    rest[ipv6::HOP_LIMIT_OFFSET] = HOP_LIMIT;
    rest[ipv6::SRC_ADDR_OFFSET..ipv6::SRC_ADDR_OFFSET + 16].copy_from_slice(&dst.octets());
    rest[ipv6::DST_ADDR_OFFSET..ipv6::DST_ADDR_OFFSET + 16].copy_from_slice(&src.octets());
    let m = &mut rest[l4 - l3..end - l3];
    let mut adj = Adjust::new();
    adj.replace(&[m[0], m[1]], &[Message::ECHO_REPLY.0, m[1]]);
    m[0] = Message::ECHO_REPLY.0;
    let c = u16::from_be_bytes([m[2], m[3]]);
    m[2..4].copy_from_slice(&adj.apply(c).to_be_bytes());
    Ok(())
}

/// Translates an ICMPv6 error about a NAT or FULLNAT session with IPv6 ends so that it
/// travels on in the direction whose plan is `plan` (see the module docs). The MACs are
/// `macs`. On `Err` the frame is unchanged.
pub fn translate<B: PacketBuf + ?Sized>(
    buf: &mut B,
    meta: &IpMeta,
    plan: &Plan6,
    macs: &MacRewrite,
) -> Result<()> {
    let frame = buf.data_mut();
    let v6 = |e: Option<(IpAddr, u16)>| match e {
        Some((IpAddr::V6(a), p)) => Ok(Some((a, p))),
        None => Ok(None),
        Some(_) => Err(Error::AddressFamily),
    };
    let (psrc, pdst) = (v6(plan.src)?, v6(plan.dst)?);
    if meta.version != IpVersion::V6 || meta.tuple.protocol != IpProtocol::ICMPV6 {
        return Err(Error::UnsupportedProto);
    }
    let inner = meta.icmp.and_then(|i| i.inner).ok_or(Error::BadIcmp)?;
    let l4_min = match inner.tuple.protocol {
        IpProtocol::TCP => 18usize,
        IpProtocol::UDP => 8,
        _ => return Err(Error::UnsupportedProto),
    };
    let (l3, l4, end) = (meta.l3_offset(), meta.l4_offset, meta.ip_end);
    if l3 < 12
        || end > frame.len()
        || l4 + icmpv6::HEADER_LEN > inner.l3_offset
        || inner.l3_offset + ipv6::HEADER_LEN > inner.l4_offset
        || inner.l4_offset + 8 > end
    {
        return Err(Error::Truncated);
    }
    let (src, dst) = addrs(frame, l3)?;
    if sum(&src, &dst, &frame[l4..end]) != 0 {
        return Err(Error::BadChecksum);
    }
    let hops = frame[l3 + ipv6::HOP_LIMIT_OFFSET];
    if hops <= 1 {
        return Err(Error::TtlExpired);
    }
    // Outer header: hop limit, addresses.
    frame[l3 + ipv6::HOP_LIMIT_OFFSET] = hops - 1;
    let put = |f: &mut [u8], at: usize, a: Ipv6Addr| f[at..at + 16].copy_from_slice(&a.octets());
    let (os, od) = (psrc.map_or(src, |e| e.0), pdst.map_or(dst, |e| e.0));
    put(frame, l3 + ipv6::SRC_ADDR_OFFSET, os);
    put(frame, l3 + ipv6::DST_ADDR_OFFSET, od);
    // Embedded packet: its source becomes the plan's destination and its destination
    // the plan's source; the ports with them; its L4 checksum adjusted when quoted.
    let mut l4_adj = Adjust::new();
    let il3 = inner.l3_offset;
    for (new, at, port_at) in [
        (pdst, ipv6::SRC_ADDR_OFFSET, 0usize),
        (psrc, ipv6::DST_ADDR_OFFSET, 2usize),
    ] {
        if let Some((a, port)) = new {
            let o = il3 + at;
            l4_adj.replace(&frame[o..o + 16], &a.octets());
            put(frame, o, a);
            let p = inner.l4_offset + port_at;
            l4_adj.replace(&frame[p..p + 2], &port.to_be_bytes());
            frame[p..p + 2].copy_from_slice(&port.to_be_bytes());
        }
    }
    if inner.l4_offset + l4_min <= end {
        let at = inner.l4_offset + l4_min - 2;
        let c = u16::from_be_bytes([frame[at], frame[at + 1]]);
        let udp_none = inner.tuple.protocol == IpProtocol::UDP && c == 0;
        if !udp_none {
            frame[at..at + 2].copy_from_slice(&l4_adj.apply(c).to_be_bytes());
        }
    }
    frame[l4 + 2..l4 + 4].fill(0);
    let c = sum(&os, &od, &frame[l4..end]);
    frame[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    frame[..6].copy_from_slice(&macs.dst.0);
    frame[6..12].copy_from_slice(&macs.src.0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::flow::FwdMethod;
    use crate::forward::rewrite::testutil::{meta, CLIENT_MAC, DIRECTOR_MAC, RS_MAC};
    use crate::wire::EthernetAddress;
    use etherparse::{Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    const C: [u8; 16] = [0x20, 1, 0xd, 0xb8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
    const V: [u8; 16] = [0x20, 1, 0xd, 0xb8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64];
    const R: [u8; 16] = [0x20, 1, 0xd, 0xb8, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b];
    const L: [u8; 16] = [0x20, 1, 0xd, 0xb8, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc8];

    fn icmp_of(f: &[u8]) -> (etherparse::Ipv6Header, etherparse::Icmpv6Slice<'_>) {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(NetSlice::Ipv6(ip)) = p.net else {
            panic!("not IPv6")
        };
        let Some(TransportSlice::Icmpv6(i)) = p.transport else {
            panic!("not ICMPv6")
        };
        let h = ip.header().to_header();
        let want = i
            .icmp_type()
            .calc_checksum(h.source, h.destination, i.payload());
        assert_eq!(i.checksum(), want.unwrap(), "ICMPv6 checksum");
        (h, i)
    }

    #[test]
    fn echo_is_answered_in_place() {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
            .ipv6(C, V, 60)
            .icmpv6_echo_request(7, 9)
            .write(&mut f, b"ping payload")
            .unwrap();
        let m = meta(&f);
        let mut b = VecBuf::new(0, &f);
        echo_reply(&mut b, &m).unwrap();
        let (h, i) = icmp_of(b.data());
        assert_eq!((h.source, h.destination, h.hop_limit), (V, C, HOP_LIMIT));
        assert!(matches!(i.icmp_type(), Icmpv6Type::EchoReply(e) if e.id == 7 && e.seq == 9));
        assert_eq!(&b.data()[..12], &[CLIENT_MAC, DIRECTOR_MAC].concat()[..]);
        // A corrupted request is refused, untouched.
        let mut bad = f.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        let mut b = VecBuf::new(0, &bad);
        assert_eq!(echo_reply(&mut b, &m), Err(Error::BadChecksum));
        assert_eq!(b.data(), &bad[..]);
    }

    #[test]
    fn packet_too_big_quotes_within_the_minimum_mtu() {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
            .ipv6(C, V, 60)
            .tcp(40000, 80, 1, 100)
            .write(&mut f, &[0x33; 1400])
            .unwrap();
        let m = meta(&f);
        let mut out = [0u8; 1600];
        let n = originate(&f, &m, L.into(), (Message::PKT_TOO_BIG, 0, 1460), &mut out).unwrap();
        let (h, i) = icmp_of(&out[..n]);
        assert_eq!((h.source, h.destination), (L, C));
        assert!(matches!(
            i.icmp_type(),
            Icmpv6Type::PacketTooBig { mtu: 1460 }
        ));
        assert_eq!(n - 14, 1280, "the error fills the minimum MTU");
        assert_eq!(&out[14 + 48..n], &f[14..14 + 1280 - 48]);
    }

    #[test]
    fn an_error_from_the_server_side_reaches_the_client_translated() {
        // FULLNAT: the request went LIP:4000 -> RIP:8080; a router past the director
        // says "too big" to the LIP about it.
        let mut quoted = Vec::new();
        PacketBuilder::ipv6(L, R, 63)
            .tcp(4000, 8080, 1, 100)
            .write(&mut quoted, &[1; 40])
            .unwrap();
        let mut f = Vec::new();
        PacketBuilder::ethernet2(RS_MAC, DIRECTOR_MAC)
            .ipv6(R, L, 64)
            .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1400 })
            .write(&mut f, &quoted)
            .unwrap();
        let m = meta(&f);
        let plan = Plan6 {
            fwd: FwdMethod::FullNat,
            src: Some((IpAddr::from(V), 80)),
            dst: Some((IpAddr::from(C), 5555)),
            toward: C.into(),
        };
        let macs = MacRewrite {
            src: EthernetAddress(DIRECTOR_MAC),
            dst: EthernetAddress(CLIENT_MAC),
        };
        let mut b = VecBuf::new(0, &f);
        translate(&mut b, &m, &plan, &macs).unwrap();
        let (h, i) = icmp_of(b.data());
        assert_eq!((h.source, h.destination, h.hop_limit), (V, C, 63));
        assert!(matches!(
            i.icmp_type(),
            Icmpv6Type::PacketTooBig { mtu: 1400 }
        ));
        // The quoted packet is the client's view: CIP:5555 -> VIP:80, checksum right.
        let q = SlicedPacket::from_ip(i.payload()).unwrap();
        let Some(NetSlice::Ipv6(qi)) = &q.net else {
            panic!()
        };
        assert_eq!((qi.header().source(), qi.header().destination()), (C, V));
        let Some(TransportSlice::Tcp(t)) = &q.transport else {
            panic!()
        };
        assert_eq!((t.source_port(), t.destination_port()), (5555, 80));
        assert_eq!(t.checksum(), t.calc_checksum_ipv6(C, V).unwrap());
    }
}
