//! ICMP error translation for NAT and FULLNAT sessions (IPVS `ip_vs_nat_icmp`).
//!
//! An ICMP destination-unreachable (fragmentation-needed included), source-quench or
//! time-exceeded error about a NAT/FULLNAT connection embeds the offending packet's IP
//! header and first 8 bytes, with the addresses as *the sender of the error* saw them.
//! The director rewrites the outer header and the embedded one so each side sees its
//! own view of the connection:
//!
//! | session, error travels | plan used | outer | embedded (the packet it is about) |
//! |---|---|---|---|
//! | NAT, RS side → client | reply | src → VIP | dst RIP:rport → VIP:vport |
//! | NAT, client side → RS | request | dst VIP → RIP | src VIP:vport → RIP:rport |
//! | FULLNAT, RS side → client | reply | src → VIP, dst LIP → CIP | src LIP:lport → CIP:cport, dst RIP:rport → VIP:vport |
//! | FULLNAT, client side → RS | request | src → LIP, dst VIP → RIP | src VIP:vport → RIP:rport, dst CIP:cport → LIP:lport |
//!
//! Checksums: the ICMP checksum is verified first ([`Error::BadChecksum`]) and then
//! recomputed over the whole message; the outer IPv4 checksum is updated incrementally
//! (with the TTL decrement: the director routes the error); the embedded IPv4 header
//! checksum is recomputed; the embedded TCP/UDP checksum is updated incrementally for
//! the address and port changes when it lies within the embedded bytes (UDP: always,
//! unless 0; TCP: only if at least 18 bytes are embedded), as Linux's NAT does.
//! Software checksums only (the result needs no offload).
//!
//! DR and TUN sessions need no translation: errors about them are forwarded like any
//! packet of the session ([`super::Plan::apply`]).

use core::net::{IpAddr, Ipv4Addr};

use crate::buf::PacketBuf;
use crate::wire::checksum::{self, Adjust};
use crate::wire::icmpv4::{self, Message, Packet as Icmpv4Packet};
use crate::wire::{
    ethernet, ipv4, ChecksumMode, Endpoint, Error, IpMeta, IpProtocol, IpVersion, Ipv4Repr, Result,
};

use super::plan::Plan;
use super::rewrite::{addr_bytes, check_ttl, set_macs, write_ttl, MacRewrite, V4End};

/// Translates an ICMP error about a NAT or FULLNAT session so that it can travel on in
/// the direction whose plan is `plan`: toward the client (`plan` of a reply: the error
/// came from the real server's side about a request) or toward the real server (`plan`
/// of a request: the error came from the client's side about a reply). The outer
/// header gets the plan's new ends; the embedded packet went the other way, so its
/// source becomes the plan's new destination and its destination the plan's new
/// source (see the module docs' table). The MACs are `macs`.
pub fn translate<B: PacketBuf + ?Sized>(
    buf: &mut B,
    meta: &IpMeta,
    plan: &Plan,
    macs: &MacRewrite,
) -> Result<()> {
    let ep = |e: Option<V4End>| e.map(|(a, port)| Endpoint::new(IpAddr::from(a), port));
    translate_frame(
        buf.data_mut(),
        meta,
        &Translation {
            outer_src: ep(plan.src).map(|e| e.addr),
            outer_dst: ep(plan.dst).map(|e| e.addr),
            inner_src: ep(plan.dst),
            inner_dst: ep(plan.src),
            macs: *macs,
        },
    )
}

/// The TTL of the ICMP errors the director originates.
pub const ICMP_TTL: u8 = 64;
/// The TOS of the ICMP errors the director originates (precedence "internetwork
/// control", as Linux's `icmp_send`).
pub const ICMP_TOS: u8 = 0xc0;

/// Builds into `out` an ICMP error from `src` about the received IPv4 packet `frame`
/// (classified as `meta`), back to its sender; returns the frame's length.
///
/// `msg`: the type, the code and, for fragmentation-needed, the next-hop MTU (0
/// otherwise). Ethernet: the received frame's header with the MACs swapped (back out
/// of the port it came in on, to the previous hop; same VLAN tag). IPv4: `src` → the
/// packet's source, TTL [`ICMP_TTL`], TOS [`ICMP_TOS`]. ICMP: the original IP header and
/// the first 8 bytes of its payload, as RFC 792 asks.
pub fn originate(
    frame: &[u8],
    meta: &IpMeta,
    src: Ipv4Addr,
    msg: (Message, u8, u16),
    out: &mut [u8],
) -> Result<usize> {
    let l3 = meta.l3_offset();
    let ip = frame.get(l3..meta.ip_end).ok_or(Error::Truncated)?;
    if l3 < ethernet::HEADER_LEN || ip.len() < ipv4::HEADER_LEN || meta.version != IpVersion::V4 {
        return Err(Error::Truncated);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let quote = (ihl + 8).min(ip.len());
    let icmp_len = icmpv4::HEADER_LEN + quote;
    let total = l3 + ipv4::HEADER_LEN + icmp_len;
    let out = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;

    out[..l3].copy_from_slice(&frame[..l3]);
    out[ethernet::field::DESTINATION].copy_from_slice(&frame[ethernet::field::SOURCE]);
    out[ethernet::field::SOURCE].copy_from_slice(&frame[ethernet::field::DESTINATION]);
    let to = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    Ipv4Repr {
        src_addr: src,
        dst_addr: to,
        protocol: IpProtocol::ICMP,
        payload_len: icmp_len,
        ttl: ICMP_TTL,
        tos: ICMP_TOS,
        ident: 0,
        dont_frag: false,
    }
    .emit(&mut out[l3..], ChecksumMode::Software)?;
    let (kind, code, mtu) = msg;
    let mut icmp = Icmpv4Packet::new_unchecked(&mut out[l3 + ipv4::HEADER_LEN..]);
    icmp.set_msg_type(kind);
    icmp.set_msg_code(code);
    icmp.set_next_hop_mtu(mtu);
    icmp.data_mut().copy_from_slice(&ip[..quote]);
    icmp.fill_checksum();
    Ok(total)
}

struct Translation {
    outer_src: Option<IpAddr>,
    outer_dst: Option<IpAddr>,
    inner_src: Option<Endpoint>,
    inner_dst: Option<Endpoint>,
    macs: MacRewrite,
}

fn translate_frame(frame: &mut [u8], meta: &IpMeta, t: &Translation) -> Result<()> {
    // Validate everything before writing anything.
    if meta.version != IpVersion::V4 || meta.tuple.protocol != IpProtocol::ICMP {
        return Err(Error::UnsupportedProto);
    }
    let icmp = meta.icmp.ok_or(Error::UnsupportedProto)?;
    if !Message(icmp.msg_type).is_translated_error() {
        return Err(Error::UnsupportedProto);
    }
    let inner = icmp.inner.ok_or(Error::BadIcmp)?;
    let (csum_at, l4_min) = match inner.tuple.protocol {
        IpProtocol::TCP => (16usize, 18usize),
        IpProtocol::UDP => (6, 8),
        _ => return Err(Error::UnsupportedProto),
    };
    let l3 = meta.l3_offset();
    let (l4, end) = (meta.l4_offset, meta.ip_end);
    if frame.len() < 12
        || end > frame.len()
        || l4 < l3 + ipv4::HEADER_LEN
        || l4 + 8 > inner.l3_offset
        || inner.l3_offset + ipv4::HEADER_LEN > inner.l4_offset
        || inner.l4_offset + 8 > end
    {
        return Err(Error::Truncated);
    }
    let v = IpVersion::V4;
    let os = t.outer_src.map(|a| addr_bytes(&a, v)).transpose()?;
    let od = t.outer_dst.map(|a| addr_bytes(&a, v)).transpose()?;
    let is = t.inner_src.map(|e| addr_bytes(&e.addr, v)).transpose()?;
    let id = t.inner_dst.map(|e| addr_bytes(&e.addr, v)).transpose()?;
    if checksum::data(&frame[l4..end]) != 0xffff {
        return Err(Error::BadChecksum);
    }
    let ttl = check_ttl(&frame[l3..], v)?;

    // Outer IPv4 header: TTL and addresses, incremental checksum.
    let mut ip_adj = Adjust::new();
    {
        let ip = &mut frame[l3..l4];
        write_ttl(ip, v, ttl, &mut ip_adj);
        for (new, at) in [(os, ipv4::SRC_ADDR_OFFSET), (od, ipv4::DST_ADDR_OFFSET)] {
            if let Some((b, n)) = new {
                ip_adj.replace(&ip[at..at + n], &b[..n]);
                ip[at..at + n].copy_from_slice(&b[..n]);
            }
        }
        let c = u16::from_be_bytes([ip[10], ip[11]]);
        ip[10..12].copy_from_slice(&ip_adj.apply(c).to_be_bytes());
    }

    // Embedded IPv4 header and ports.
    let mut l4_adj = Adjust::new();
    {
        let eh = &mut frame[inner.l3_offset..inner.l4_offset];
        for (new, at) in [(is, ipv4::SRC_ADDR_OFFSET), (id, ipv4::DST_ADDR_OFFSET)] {
            if let Some((b, n)) = new {
                l4_adj.replace(&eh[at..at + n], &b[..n]);
                eh[at..at + n].copy_from_slice(&b[..n]);
            }
        }
        eh[10] = 0;
        eh[11] = 0;
        let c = !checksum::data(eh);
        eh[10..12].copy_from_slice(&c.to_be_bytes());
    }
    {
        let el4 = &mut frame[inner.l4_offset..end];
        for (new, at) in [(t.inner_src, 0usize), (t.inner_dst, 2usize)] {
            if let Some(e) = new {
                l4_adj.replace_u16(u16::from_be_bytes([el4[at], el4[at + 1]]), e.port);
                el4[at..at + 2].copy_from_slice(&e.port.to_be_bytes());
            }
        }
        if el4.len() >= l4_min {
            let old = u16::from_be_bytes([el4[csum_at], el4[csum_at + 1]]);
            let udp = inner.tuple.protocol == IpProtocol::UDP;
            if !(udp && old == 0) {
                let mut c = l4_adj.apply(old);
                if udp && c == 0 {
                    c = 0xffff;
                }
                el4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
            }
        }
    }

    // The ICMP checksum over the whole message.
    {
        let msg = &mut frame[l4..end];
        msg[2] = 0;
        msg[3] = 0;
        let c = !checksum::data(msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
    }
    set_macs(frame, &t.macs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::forward::rewrite::testutil::*;
    use etherparse::{
        icmpv4::{DestUnreachableHeader, TimeExceededCode},
        Icmpv4Type, Ipv4Header, Ipv4HeaderSlice, PacketBuilder, SlicedPacket, TcpHeader,
        TransportSlice, UdpHeader,
    };

    /// The MACs of the NAT tests' translated errors.
    fn nat_macs() -> MacRewrite {
        from_director(GW_MAC)
    }

    /// The MACs of the FULLNAT tests' translated errors.
    fn fullnat_macs() -> MacRewrite {
        from_director(RS_MAC)
    }

    /// The IP packet (no Ethernet) an error is about, built by etherparse.
    fn offending(src: Endpoint, dst: Endpoint, udp: bool) -> Vec<u8> {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (src.addr, dst.addr) else {
            panic!()
        };
        let b = PacketBuilder::ipv4(s.octets(), d.octets(), 61);
        let mut v = Vec::new();
        if udp {
            b.udp(src.port, dst.port)
                .write(&mut v, b"datagram!")
                .unwrap();
        } else {
            b.tcp(src.port, dst.port, 1, 100)
                .write(&mut v, b"segment!")
                .unwrap();
        }
        v
    }

    /// An ICMP error frame from `from` to `to` embedding the first `quote` bytes.
    fn error_frame(
        from: [u8; 4],
        to: [u8; 4],
        ty: Icmpv4Type,
        inner: &[u8],
        quote: usize,
    ) -> Vec<u8> {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(RS_MAC, DIRECTOR_MAC)
            .ipv4(from, to, 64)
            .icmpv4(ty)
            .write(&mut f, &inner[..quote.min(inner.len())])
            .unwrap();
        f
    }

    /// Check the translated frame with etherparse: outer header and its checksum, the
    /// ICMP checksum, the embedded header fields and checksum; return the embedded
    /// header and the embedded L4 bytes.
    fn check(frame: &[u8], outer: ([u8; 4], [u8; 4])) -> (Ipv4Header, Vec<u8>) {
        let p = check_v4(frame);
        let h = ipv4_header(frame);
        assert_eq!((h.source, h.destination), outer);
        assert_eq!(h.time_to_live, 63);
        let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
            panic!()
        };
        check_icmp(i);
        let eh = Ipv4HeaderSlice::from_slice(i.payload())
            .unwrap()
            .to_header();
        assert_eq!(
            eh.header_checksum,
            eh.calc_header_checksum(),
            "embedded IPv4 checksum"
        );
        (eh, i.payload()[20..].to_vec())
    }

    /// The embedded L4 checksum, when fully present, is what a full computation over the
    /// *whole* original segment with the new addresses/ports would give (the
    /// incremental update is exact even though only part of the segment is embedded).
    fn check_embedded_l4(eh: &Ipv4Header, l4: &[u8], full_orig: &[u8], udp: bool) {
        let mut seg = full_orig[20..].to_vec();
        seg[..4].copy_from_slice(&l4[..4]);
        if udp {
            let (mut uh, payload) = UdpHeader::from_slice(&seg).unwrap();
            uh.checksum = uh.calc_checksum_ipv4(eh, payload).unwrap();
            assert_eq!(
                &l4[6..8],
                &uh.checksum.to_be_bytes(),
                "embedded UDP checksum"
            );
        } else if l4.len() >= 18 {
            let (th, payload) = TcpHeader::from_slice(&seg).unwrap();
            let want = th.calc_checksum_ipv4(eh, payload).unwrap();
            assert_eq!(&l4[16..18], &want.to_be_bytes(), "embedded TCP checksum");
        }
    }

    #[test]
    fn nat_reply_port_unreachable_from_rs() {
        for udp in [true, false] {
            // The RS got CIP:cport -> RIP:rport and answers with port unreachable.
            let orig = offending(ep(CIP, CPORT), ep(RIP, RPORT), udp);
            let ty = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
            let f = error_frame(RIP, CIP, ty, &orig, 28);
            let m = meta(&f);
            let mut b = VecBuf::new(0, &f);
            assert_eq!(translate(&mut b, &m, &nat_reply(), &nat_macs()), Ok(()));
            let (eh, l4) = check(b.data(), (VIP, CIP));
            assert_eq!((eh.source, eh.destination), (CIP, VIP));
            assert_eq!(
                &l4[..4],
                &[CPORT.to_be_bytes(), VPORT.to_be_bytes()].concat()[..]
            );
            assert_eq!(eh.time_to_live, 61, "embedded header otherwise untouched");
            check_embedded_l4(&eh, &l4, &orig, udp);
            let p = SlicedPacket::from_ethernet(b.data()).unwrap();
            assert_eq!(macs(&p), (DIRECTOR_MAC, GW_MAC));
        }
    }

    #[test]
    fn nat_request_time_exceeded_from_client_side() {
        for udp in [true, false] {
            // A router toward the client got VIP:vport -> CIP:cport and expired it.
            let orig = offending(ep(VIP, VPORT), ep(CIP, CPORT), udp);
            let ty = Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit);
            // TCP with the full 20-byte header embedded: checksum present
            let quote = if udp { 28 } else { 40 };
            let router = [198, 51, 100, 1];
            let f = error_frame(router, VIP, ty, &orig, quote);
            let m = meta(&f);
            let mut b = VecBuf::new(0, &f);
            translate(&mut b, &m, &nat_request(), &nat_macs()).unwrap();
            let (eh, l4) = check(b.data(), (router, RIP));
            assert_eq!((eh.source, eh.destination), (RIP, CIP));
            assert_eq!(
                &l4[..4],
                &[RPORT.to_be_bytes(), CPORT.to_be_bytes()].concat()[..]
            );
            check_embedded_l4(&eh, &l4, &orig, udp);
        }
    }

    #[test]
    fn fullnat_both_directions() {
        for udp in [true, false] {
            // RS side: RS got LIP:lport -> RIP:rport; frag needed on the way back.
            let orig = offending(ep(LIP, LPORT), ep(RIP, RPORT), udp);
            let ty =
                Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1400,
                });
            let f = error_frame(RIP, LIP, ty, &orig, 28);
            let m = meta(&f);
            let mut b = VecBuf::new(0, &f);
            translate(&mut b, &m, &fullnat_reply(), &fullnat_macs()).unwrap();
            let (eh, l4) = check(b.data(), (VIP, CIP));
            assert_eq!((eh.source, eh.destination), (CIP, VIP));
            assert_eq!(
                &l4[..4],
                &[CPORT.to_be_bytes(), VPORT.to_be_bytes()].concat()[..]
            );
            check_embedded_l4(&eh, &l4, &orig, udp);
            // the MTU in the rest of header is untouched
            assert_eq!(&b.data()[34 + 6..34 + 8], &1400u16.to_be_bytes());

            // client side: a router got VIP:vport -> CIP:cport
            let orig = offending(ep(VIP, VPORT), ep(CIP, CPORT), udp);
            let ty = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Host);
            let f = error_frame([198, 51, 100, 1], VIP, ty, &orig, 48);
            let m = meta(&f);
            let mut b = VecBuf::new(0, &f);
            translate(&mut b, &m, &fullnat_request(), &fullnat_macs()).unwrap();
            let (eh, l4) = check(b.data(), (LIP, RIP));
            assert_eq!((eh.source, eh.destination), (RIP, LIP));
            assert_eq!(
                &l4[..4],
                &[RPORT.to_be_bytes(), LPORT.to_be_bytes()].concat()[..]
            );
            check_embedded_l4(&eh, &l4, &orig, udp);
        }
    }

    #[test]
    fn refusals() {
        let orig = offending(ep(CIP, CPORT), ep(RIP, RPORT), true);
        // bad ICMP checksum
        let ty = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
        let mut f = error_frame(RIP, CIP, ty.clone(), &orig, 28);
        f[34 + 2] ^= 0x55;
        let m = meta(&f);
        let mut b = VecBuf::new(0, &f);
        assert_eq!(
            translate(&mut b, &m, &nat_reply(), &nat_macs()),
            Err(Error::BadChecksum)
        );
        assert_eq!(b.data(), &f[..]);
        // TTL expiry
        let mut f = error_frame(RIP, CIP, ty.clone(), &orig, 28);
        f[22] = 1;
        let mut ip = crate::wire::Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.fill_checksum();
        let m = meta(&f);
        let mut b = VecBuf::new(0, &f);
        assert_eq!(
            translate(&mut b, &m, &nat_reply(), &nat_macs()),
            Err(Error::TtlExpired)
        );
        // not an error message
        let mut e = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
            .ipv4(CIP, VIP, 64)
            .icmpv4_echo_request(1, 2)
            .write(&mut e, b"")
            .unwrap();
        let m = meta(&e);
        let mut b = VecBuf::new(0, &e);
        assert_eq!(
            translate(&mut b, &m, &nat_reply(), &nat_macs()),
            Err(Error::UnsupportedProto)
        );
        // a TCP packet is not ICMP
        let t = frame4(CIP, CPORT, VIP, VPORT, false, 64, b"");
        let m = meta(&t);
        let mut b = VecBuf::new(0, &t);
        assert_eq!(
            translate(&mut b, &m, &nat_reply(), &nat_macs()),
            Err(Error::UnsupportedProto)
        );
        // redirect is an error but not translated
        let f = error_frame(
            RIP,
            CIP,
            Icmpv4Type::Unknown {
                type_u8: 5,
                code_u8: 0,
                bytes5to8: [0; 4],
            },
            &orig,
            28,
        );
        let m = meta(&f);
        let mut b = VecBuf::new(0, &f);
        assert_eq!(
            translate(&mut b, &m, &nat_reply(), &nat_macs()),
            Err(Error::UnsupportedProto)
        );
    }
}
