//! IPv4 (RFC 791). Options are not interpreted: they are skipped by IHL.
//!
//! ```text
//!  0       1       2       3
//!  |ver|ihl| tos   | total length  |
//!  | identification|flags|frag off |
//!  | ttl   | proto | checksum      |
//!  | source address                |
//!  | destination address           |
//!  | options (ihl*4 - 20) …        |
//! ```
//! [`Packet::check_len`] validates version, IHL and total length against the buffer
//! (the buffer may be longer than the datagram: Ethernet padding). Checksum and
//! fragmentation are semantic checks, done by [`Repr::parse`] and by the classifier.

use core::net::Ipv4Addr;

use super::checksum::{self, ChecksumMode};
use super::field::Field;
use super::ip::IpProtocol;
use super::{read_u16, write_u16, Error, Result};

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Offset of the source address in the header.
pub const SRC_ADDR_OFFSET: usize = field::SRC_ADDR.start;
/// Offset of the destination address in the header.
pub const DST_ADDR_OFFSET: usize = field::DST_ADDR.start;
/// Offset of the checksum in the header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// Offset of the TTL byte (the TTL/protocol word starts here).
pub const TTL_OFFSET: usize = field::TTL;
/// Offset of the TOS (DSCP and ECN) byte in the IPv4 header.
pub const TOS_OFFSET: usize = field::TOS;
/// Offset of the flags-and-fragment-offset word in the IPv4 header.
pub const FLAGS_OFFSET: usize = field::FLG_OFF.start;
/// The don't-fragment bit in the first byte at [`FLAGS_OFFSET`].
pub const DF_BIT: u8 = 0x40;
/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 datagram.
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

    /// Validate version, IHL and total length against the buffer:
    /// shorter than 20 bytes → `Truncated`; version ≠ 4 → `BadVersion`; IHL < 5 →
    /// `BadIhl`; header beyond the buffer → `Truncated`; total length < header →
    /// `BadTotalLen`; total length beyond the buffer → `Truncated`.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::BadIhl);
        }
        if hl > b.len() {
            return Err(Error::Truncated);
        }
        let tl = usize::from(self.total_len());
        if tl < hl {
            return Err(Error::BadTotalLen);
        }
        if tl > b.len() {
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
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The type-of-service byte (DSCP << 2 | ECN).
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// The total length field.
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    fn flg_off(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start)
    }

    /// The don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flg_off() & FLAG_DF != 0
    }

    /// The more-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flg_off() & FLAG_MF != 0
    }

    /// The fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.flg_off() & OFFSET_MASK) << 3
    }

    /// Whether this is a fragment, first (MF set) or non-first (offset ≠ 0).
    pub fn is_fragment(&self) -> bool {
        self.flg_off() & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// The time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Whether the header checksum is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }

    /// The options (between the fixed header and the payload).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload: from the end of the header to the total length (padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the version nibble.
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Set the header length in bytes (a multiple of 4). Voids `new_checked`.
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) as u8 & 0x0f);
    }

    /// Set the type-of-service byte.
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }

    /// Set the total length. Voids `new_checked`.
    pub fn set_total_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Set the identification.
    pub fn set_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, v);
    }

    /// Set the flags and fragment offset: DF as given, MF clear, offset 0.
    pub fn set_unfragmented(&mut self, dont_frag: bool) {
        let v = if dont_frag { FLAG_DF } else { 0 };
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, v);
    }

    /// Set the TTL (the checksum is not updated).
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Set the protocol.
    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = v.0;
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Set the source address (the checksum is not updated).
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Set the destination address (the checksum is not updated).
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Compute and write the header checksum (RFC 1071).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = !checksum::data(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }

    /// Decrement the TTL and update the checksum incrementally (RFC 1624).
    /// `TtlExpired` (nothing changed) if the TTL is 0 or 1.
    pub fn decrement_ttl(&mut self) -> Result<()> {
        let ttl = self.ttl();
        if ttl <= 1 {
            return Err(Error::TtlExpired);
        }
        let proto = self.protocol().0;
        let old = u16::from_be_bytes([ttl, proto]);
        let new = u16::from_be_bytes([ttl - 1, proto]);
        self.set_ttl(ttl - 1);
        let c = checksum::update_u16(self.checksum(), old, new);
        self.set_checksum(c);
        Ok(())
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// A parsed IPv4 header without options, or one to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Type of service.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
}

impl Repr {
    /// Parse a checked datagram: fragments are `Fragment`; with `verify_checksum`, a
    /// wrong header checksum is `BadChecksum`.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, verify_checksum: bool) -> Result<Repr> {
        p.check_len()?;
        if verify_checksum && !p.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        if p.is_fragment() {
            return Err(Error::Fragment);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.payload().len(),
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        })
    }

    /// The emitted header length: 20.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write a 20-byte header into the start of `buf`. In `Software` mode the checksum
    /// is filled, in `Offload` mode it is left 0 for the NIC.
    ///
    /// Inlined: a `Repr` built field by field just before would otherwise be read back
    /// from memory, with loads the compiler merges across fields stored apart.
    #[inline(always)]
    pub fn emit(&self, buf: &mut [u8], mode: ChecksumMode) -> Result<()> {
        let total = HEADER_LEN + self.payload_len;
        if total > usize::from(u16::MAX) {
            return Err(Error::Oversize);
        }
        let buf = buf.get_mut(..HEADER_LEN).ok_or(Error::BufferTooSmall)?;
        let mut p = Packet::new_unchecked(buf);
        p.set_version(4);
        p.set_header_len(HEADER_LEN);
        p.set_tos(self.tos);
        p.set_total_len(total as u16);
        p.set_ident(self.ident);
        p.set_unfragmented(self.dont_frag);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.set_checksum(match mode {
            ChecksumMode::Software => self.header_checksum(total as u16),
            ChecksumMode::Offload => 0,
        });
        Ok(())
    }

    /// The header checksum of the header [`Repr::emit`] writes (total length `total`),
    /// summed from the fields rather than read back from the buffer: reading back wide
    /// words just written as bytes and halves would wait on the store buffer (a
    /// store-forwarding stall) on every encapsulated packet. Inlined with `emit`, so that
    /// the fields stay in registers.
    #[inline(always)]
    fn header_checksum(&self, total: u16) -> u16 {
        let flags = if self.dont_frag { FLAG_DF } else { 0 };
        let (src, dst) = (u32::from(self.src_addr), u32::from(self.dst_addr));
        let words = [
            0x4500 | u32::from(self.tos),
            u32::from(total),
            u32::from(self.ident),
            u32::from(flags),
            u32::from(self.ttl) << 8 | u32::from(self.protocol.0),
            src >> 16,
            src & 0xffff,
            dst >> 16,
            dst & 0xffff,
        ];
        !checksum::fold(words.iter().map(|&w| u64::from(w)).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.168.0.1 -> 192.168.0.199, UDP, total 0x73, DF, TTL 64 (checksum b861), plus
    // 4 bytes of payload and 2 bytes of Ethernet padding after the datagram.
    fn packet_bytes() -> Vec<u8> {
        let mut v = vec![
            0x45, 0x00, 0x00, 0x18, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00,
        ];
        let c = !checksum::data(&v[..20]);
        v[10..12].copy_from_slice(&c.to_be_bytes());
        v
    }

    fn repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(192, 168, 0, 1),
            dst_addr: Ipv4Addr::new(192, 168, 0, 199),
            protocol: IpProtocol::UDP,
            payload_len: 4,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: true,
        }
    }

    #[test]
    fn deconstruct() {
        let b = packet_bytes();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(Repr::parse(&p, true).unwrap(), repr());
    }

    #[test]
    fn construct() {
        let mut b = vec![0u8; 26];
        repr().emit(&mut b, ChecksumMode::Software).unwrap();
        b[20..24].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(b, packet_bytes());
        repr().emit(&mut b, ChecksumMode::Offload).unwrap();
        assert_eq!(&b[10..12], &[0, 0]);
        assert_eq!(
            repr().emit(&mut [0u8; 19], ChecksumMode::Software),
            Err(Error::BufferTooSmall)
        );
    }

    proptest::proptest! {
        /// The checksum summed from the fields is the one etherparse computes over the
        /// emitted header's bytes, whatever the fields.
        #[test]
        fn emitted_checksum_is_etherparse_s(
            src: u32, dst: u32, proto: u8, len in 0usize..65515, ttl: u8, tos: u8,
            ident: u16, dont_frag: bool,
        ) {
            let r = Repr {
                src_addr: Ipv4Addr::from(src),
                dst_addr: Ipv4Addr::from(dst),
                protocol: IpProtocol(proto),
                payload_len: len,
                ttl,
                tos,
                ident,
                dont_frag,
            };
            let mut b = [0xa5u8; 20];
            r.emit(&mut b, ChecksumMode::Software).unwrap();
            let (h, _) = etherparse::Ipv4Header::from_slice(&b).unwrap();
            proptest::prop_assert_eq!(h.header_checksum, h.calc_header_checksum());
            proptest::prop_assert_eq!(h.total_len, (len + 20) as u16);
            proptest::prop_assert_eq!(h.dont_fragment, dont_frag);
        }
    }

    #[test]
    fn options_are_skipped_by_ihl() {
        let mut b = vec![
            0x46u8, 0, 0, 28, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        b.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        b.extend_from_slice(&[9, 9, 9, 9]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[9, 9, 9, 9]);
    }

    #[test]
    fn impossible_len() {
        let b = packet_bytes();
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
        let mut v = b.clone();
        v[0] = 0x65;
        assert_eq!(Packet::new_checked(&v[..]).unwrap_err(), Error::BadVersion);
        let mut v = b.clone();
        v[0] = 0x44;
        assert_eq!(Packet::new_checked(&v[..]).unwrap_err(), Error::BadIhl);
        let mut v = b.clone();
        v[0] = 0x4f; // 60-byte header in a 26-byte buffer
        assert_eq!(Packet::new_checked(&v[..]).unwrap_err(), Error::Truncated);
        let mut v = b.clone();
        v[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&v[..]).unwrap_err(), Error::BadTotalLen);
        let mut v = b.clone();
        v[2..4].copy_from_slice(&27u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&v[..]).unwrap_err(), Error::Truncated);
        let mut v = b;
        v[2..4].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(Packet::new_checked(&v[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn semantic_checks() {
        let mut b = packet_bytes();
        b[11] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p, true), Err(Error::BadChecksum));
        assert!(Repr::parse(&p, false).is_ok());
        for flg in [0x2000u16, 0x0001, 0x3fff] {
            let mut b = packet_bytes();
            b[6..8].copy_from_slice(&flg.to_be_bytes());
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            p.fill_checksum();
            assert!(p.is_fragment());
            assert_eq!(Repr::parse(&p, true), Err(Error::Fragment));
        }
    }

    #[test]
    fn ttl_decrement() {
        let mut b = packet_bytes();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.decrement_ttl().unwrap();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        p.set_ttl(1);
        p.fill_checksum();
        assert_eq!(p.decrement_ttl(), Err(Error::TtlExpired));
        assert_eq!(p.ttl(), 1);
    }
}
