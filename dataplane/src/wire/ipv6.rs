//! IPv6 (RFC 8200): the fixed header, and the extension-header chain recognised and
//! skipped to find the upper-layer protocol.
//!
//! ```text
//!  0       1       2       3
//!  |ver| traffic class | flow label    |
//!  | payload length | next hdr | hops  |
//!  | source address (16)               |
//!  | destination address (16)          |
//! ```

use core::net::Ipv6Addr;

use super::field::Field;
use super::ip::IpProtocol;
use super::{read_u16, read_u32, write_u16, write_u32, Error, Result};

mod field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Offset of the source address.
pub const SRC_ADDR_OFFSET: usize = field::SRC_ADDR.start;
/// Offset of the destination address.
pub const DST_ADDR_OFFSET: usize = field::DST_ADDR.start;
/// Offset of the hop limit.
pub const HOP_LIMIT_OFFSET: usize = field::HOP_LIMIT;
/// The most extension headers [`skip_ext_headers`] walks before giving up.
pub const MAX_EXT_HEADERS: usize = 8;

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Shorter than 40 bytes → `Truncated`; version ≠ 6 → `BadVersion`; payload length
    /// beyond the buffer → `Truncated`. (A zero payload length, jumbograms included,
    /// is accepted here; an upper layer then finds no room.)
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::BadVersion);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version nibble.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// The traffic class.
    pub fn traffic_class(&self) -> u8 {
        ((read_u32(self.buffer.as_ref(), field::VER_TC_FLOW.start) >> 20) & 0xff) as u8
    }

    /// The flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW.start) & 0x000f_ffff
    }

    /// The payload length (extension headers included).
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The first next-header value.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(a)
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(a)
    }

    /// The payload (extension headers included), padding excluded.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Walk the extension headers: the upper-layer protocol and its offset from the start
    /// of the IPv6 header. See [`skip_ext_headers`].
    pub fn upper_layer(&self) -> Result<(IpProtocol, usize)> {
        let (proto, off) = skip_ext_headers(self.next_header(), self.payload())?;
        Ok((proto, HEADER_LEN + off))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set version 6, the traffic class and the flow label.
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let v = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW.start, v);
    }

    /// Set the payload length. Voids `new_checked`.
    pub fn set_payload_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Set the next header.
    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = v.0;
    }

    /// Set the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Set the source address.
    pub fn set_src_addr(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Set the destination address.
    pub fn set_dst_addr(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }
}

/// Whether `p` is an extension header [`skip_ext_headers`] steps over.
pub const fn is_ext_header(p: IpProtocol) -> bool {
    // hop-by-hop, routing, fragment, destination options, AH, mobility, HIP, shim6
    matches!(p.0, 0 | 43 | 44 | 60 | 51 | 135 | 139 | 140)
}

/// Walk an extension-header chain starting with `first` over `data` (the bytes after
/// the fixed header). Returns the upper-layer protocol (which may be ESP or "no next
/// header": they are not extension headers one can skip) and its offset in `data`.
///
/// Errors: a header running past `data` → `Truncated`; more than [`MAX_EXT_HEADERS`]
/// headers, or a hop-by-hop header not first → `BadExtHeader`; a fragment header of a
/// real fragment (offset ≠ 0 or M set) → `Fragment` (an atomic fragment is skipped).
pub fn skip_ext_headers(first: IpProtocol, data: &[u8]) -> Result<(IpProtocol, usize)> {
    match walk_ext_headers(first, data)? {
        (_, _, Some(_)) => Err(Error::Fragment),
        (proto, off, None) => Ok((proto, off)),
    }
}

/// The Fragment extension header of a real fragment, as [`walk_ext_headers`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragHeader {
    /// The identification (32 bits).
    pub ident: u32,
    /// The fragment offset in bytes.
    pub offset: u16,
    /// The M (more fragments) flag.
    pub more: bool,
}

/// [`skip_ext_headers`] that reports a real fragment's Fragment header instead of
/// refusing it: the upper-layer protocol, its offset in `data` (for a non-first
/// fragment: where the fragment's data starts) and the Fragment header, if any.
/// A second Fragment header in the chain (a fragment inside a fragment) is `Fragment`;
/// for a non-first fragment the walk stops at the Fragment header (what follows is
/// fragment data, not headers).
pub fn walk_ext_headers(
    first: IpProtocol,
    data: &[u8],
) -> Result<(IpProtocol, usize, Option<FragHeader>)> {
    let mut frag: Option<FragHeader> = None;
    let mut seen_frag = false;
    let mut proto = first;
    let mut off = 0usize;
    let mut count = 0usize;
    while is_ext_header(proto) {
        if count == MAX_EXT_HEADERS || (proto == IpProtocol::HOPOPT && count != 0) {
            return Err(Error::BadExtHeader);
        }
        count += 1;
        let hdr = data.get(off..off + 8).ok_or(Error::Truncated)?;
        let len = match proto {
            IpProtocol::IPV6_FRAG => {
                if seen_frag {
                    return Err(Error::Fragment);
                }
                seen_frag = true;
                let offset_flags = read_u16(hdr, 2);
                if offset_flags & 0xfff9 != 0 {
                    let offset = offset_flags & 0xfff8;
                    frag = Some(FragHeader {
                        ident: u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]),
                        offset,
                        more: offset_flags & 1 != 0,
                    });
                    if offset != 0 {
                        return Ok((IpProtocol(hdr[0]), off + 8, frag));
                    }
                }
                8
            }
            IpProtocol::AH => (usize::from(hdr[1]) + 2) * 4,
            _ => (usize::from(hdr[1]) + 1) * 8,
        };
        if off + len > data.len() {
            return Err(Error::Truncated);
        }
        proto = IpProtocol(hdr[0]);
        off += len;
    }
    Ok((proto, off, frag))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2001:db8::1 -> 2001:db8::2, TC 0x12, flow 0x34567, hop-by-hop (8 bytes) then UDP
    // (8 bytes), hop limit 64.
    static PACKET: [u8; 56] = [
        0x61, 0x23, 0x45, 0x67, 0x00, 0x10, 0x00, 0x40, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, //
        17, 0, 1, 4, 0, 0, 0, 0, // hop-by-hop: next UDP, len 0, PadN
        0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00, // UDP
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x12);
        assert_eq!(p.flow_label(), 0x34567);
        assert_eq!(p.payload_len(), 16);
        assert_eq!(p.next_header(), IpProtocol::HOPOPT);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.upper_layer().unwrap(), (IpProtocol::UDP, 48));
    }

    #[test]
    fn construct() {
        let mut b = [0u8; 56];
        b[40..].copy_from_slice(&PACKET[40..]);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_tc_flow(0x12, 0x34567);
        p.set_payload_len(16);
        p.set_next_header(IpProtocol::HOPOPT);
        p.set_hop_limit(64);
        p.set_src_addr(&"2001:db8::1".parse().unwrap());
        p.set_dst_addr(&"2001:db8::2".parse().unwrap());
        assert_eq!(b, PACKET);
    }

    #[test]
    fn impossible_len() {
        assert_eq!(
            Packet::new_checked(&PACKET[..39]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&PACKET[..55]).unwrap_err(),
            Error::Truncated
        );
        let mut v = PACKET;
        v[0] = 0x41;
        assert_eq!(Packet::new_checked(&v[..]).unwrap_err(), Error::BadVersion);
    }

    #[test]
    fn the_walk_reports_the_fragment_header() {
        // dest opts (8) -> fragment (first, M, ID 0x01020304) -> UDP
        let mut d = vec![44, 0, 0, 0, 0, 0, 0, 0];
        d.extend_from_slice(&[17, 0, 0, 1, 1, 2, 3, 4]);
        d.extend_from_slice(&[0; 8]);
        let first = FragHeader {
            ident: 0x0102_0304,
            offset: 0,
            more: true,
        };
        assert_eq!(
            walk_ext_headers(IpProtocol::IPV6_OPTS, &d),
            Ok((IpProtocol::UDP, 16, Some(first)))
        );
        assert_eq!(
            skip_ext_headers(IpProtocol::IPV6_OPTS, &d),
            Err(Error::Fragment)
        );
        // Offset 24, last: the walk stops at the fragment header (data follows).
        d[10..12].copy_from_slice(&[0, 24]);
        assert_eq!(
            walk_ext_headers(IpProtocol::IPV6_OPTS, &d),
            Ok((
                IpProtocol::UDP,
                16,
                Some(FragHeader {
                    ident: 0x0102_0304,
                    offset: 24,
                    more: false
                })
            ))
        );
        // A fragment header after a fragment header.
        let mut twice = vec![44, 0, 0, 1, 0, 0, 0, 1];
        twice.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 2]);
        twice.extend_from_slice(&[0; 8]);
        assert_eq!(
            walk_ext_headers(IpProtocol::IPV6_FRAG, &twice),
            Err(Error::Fragment)
        );
        // An atomic fragment (offset 0, no M) is skipped as before.
        let atomic = [17, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_ext_headers(IpProtocol::IPV6_FRAG, &atomic),
            Ok((IpProtocol::UDP, 8, None))
        );
    }

    #[test]
    fn ext_header_chain() {
        // routing (16 bytes) -> dest opts (8) -> atomic fragment (8) -> TCP
        let mut d = vec![60, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        d.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
        d.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 1]);
        d.extend_from_slice(&[0; 20]);
        assert_eq!(
            skip_ext_headers(IpProtocol::IPV6_ROUTE, &d).unwrap(),
            (IpProtocol::TCP, 32)
        );
        // a real fragment
        let mut f = d.clone();
        f[27] = 1; // M flag
        assert_eq!(
            skip_ext_headers(IpProtocol::IPV6_ROUTE, &f),
            Err(Error::Fragment)
        );
        let mut f = d.clone();
        f[26] = 0x08; // offset 1
        assert_eq!(
            skip_ext_headers(IpProtocol::IPV6_ROUTE, &f),
            Err(Error::Fragment)
        );
        // a header longer than the data
        assert_eq!(
            skip_ext_headers(IpProtocol::IPV6_ROUTE, &d[..12]),
            Err(Error::Truncated)
        );
        let mut long = d.clone();
        long[1] = 200;
        assert_eq!(
            skip_ext_headers(IpProtocol::IPV6_ROUTE, &long),
            Err(Error::Truncated)
        );
        // hop-by-hop not first
        let hbh_late = [0u8, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            skip_ext_headers(IpProtocol::IPV6_OPTS, &hbh_late),
            Err(Error::BadExtHeader)
        );
        // too many
        let many = [60u8, 0, 0, 0, 0, 0, 0, 0].repeat(20);
        assert_eq!(
            skip_ext_headers(IpProtocol::IPV6_OPTS, &many),
            Err(Error::BadExtHeader)
        );
        // AH uses 4-byte units: len 1 => 12 bytes
        let mut ah = vec![17u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        ah.extend_from_slice(&[0; 8]);
        assert_eq!(
            skip_ext_headers(IpProtocol::AH, &ah).unwrap(),
            (IpProtocol::UDP, 12)
        );
        // ESP is an upper layer for our purposes
        assert_eq!(
            skip_ext_headers(IpProtocol::ESP, &[]).unwrap(),
            (IpProtocol::ESP, 0)
        );
    }
}
