//! UDP (RFC 768) datagrams.
//!
//! ```text
//!  0       2       4       6       8
//!  | sport | dport | length| csum  | payload…
//! ```
//! Over IPv4 a checksum of 0 means "none"; a computed 0 is sent as `0xffff`.

use core::net::IpAddr;

use super::checksum;
use super::field::Field;
use super::ip::IpProtocol;
use super::{read_u16, write_u16, Error, Result};

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A read/write view of a UDP datagram.
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

    /// Shorter than 8 bytes → `Truncated`; length field < 8 → `BadUdpLen`; length
    /// field beyond the buffer → `Truncated`.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN {
            return Err(Error::BadUdpLen);
        }
        if l > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The length field (header included).
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Whether the datagram has no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field (0: none).
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Whether the checksum is right (an IPv4 checksum of 0 is "none" and passes).
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if src.is_ipv4() && self.checksum() == 0 {
            return true;
        }
        let d = &self.buffer.as_ref()[..usize::from(self.len())];
        let ph = checksum::pseudo_header(src, dst, IpProtocol::UDP.0, u32::from(self.len()));
        checksum::combine(&[ph, checksum::data(d)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the source port (checksum not updated).
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    /// Set the destination port (checksum not updated).
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    /// Set the length field. Voids `new_checked`.
    pub fn set_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Compute and write the checksum (a computed 0 is written as `0xffff`).
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let len = self.len();
        let d = &self.buffer.as_ref()[..usize::from(len)];
        let ph = checksum::pseudo_header(src, dst, IpProtocol::UDP.0, u32::from(len));
        let c = !checksum::combine(&[ph, checksum::data(d)]);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    static DATAGRAM: [u8; 12] = [0xbf, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 48896);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        let a: IpAddr = Ipv4Addr::new(1, 1, 1, 1).into();
        assert!(p.verify_checksum(&a, &a)); // 0 = no checksum over IPv4
    }

    #[test]
    fn construct_and_checksum() {
        let mut b = [0u8; 12];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(48896);
        p.set_dst_port(53);
        p.set_len(12);
        p.set_checksum(0);
        b[8..].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(b, DATAGRAM);
        let s: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        let d: IpAddr = Ipv4Addr::new(10, 0, 0, 2).into();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(&s, &d);
        assert_ne!(p.checksum(), 0);
        assert!(p.verify_checksum(&s, &d));
        p.set_checksum(p.checksum() ^ 0x0100);
        assert!(!p.verify_checksum(&s, &d));
    }

    #[test]
    fn impossible_len() {
        assert_eq!(
            Packet::new_checked(&DATAGRAM[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&DATAGRAM[..11]).unwrap_err(),
            Error::Truncated
        );
        let mut v = DATAGRAM;
        v[5] = 7;
        assert_eq!(Packet::new_checked(&v[..]).unwrap_err(), Error::BadUdpLen);
    }
}
