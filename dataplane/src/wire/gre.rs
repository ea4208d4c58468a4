//! GRE (RFC 2784) as IPVS's GRE tunnel (`--tun-type gre`) writes it: version 0, no key
//! or sequence number, protocol 0x0800 (IPv4 inside) or 0x86DD (IPv6 inside), and with
//! `--tun-csum` the checksum bit and a checksum over the GRE header and the packet it
//! carries (what `gre_build_header` does with `TUNNEL_CSUM`). The view lets tests and
//! the fuzzer read it back.

use super::checksum;
use super::ethernet::EtherType;
use super::{Error, Result};

/// The header without the optional fields.
pub const HEADER_LEN: usize = 4;
/// The header with the checksum (and reserved) field.
pub const CSUM_HEADER_LEN: usize = 8;
/// The checksum-present bit of the flags word.
pub const FLAG_CSUM: u16 = 0x8000;
/// The key-present bit (RFC 2890).
pub const FLAG_KEY: u16 = 0x2000;
/// The sequence-number-present bit (RFC 2890).
pub const FLAG_SEQ: u16 = 0x1000;
/// The routing-present bit (RFC 1701, deprecated by RFC 2784).
pub const FLAG_ROUTING: u16 = 0x4000;
/// The version bits.
pub const VERSION_MASK: u16 = 0x0007;

/// The length of the header rvs writes, with or without the checksum.
#[inline(always)]
pub const fn header_len(csum: bool) -> usize {
    if csum {
        CSUM_HEADER_LEN
    } else {
        HEADER_LEN
    }
}

/// Writes a header into `buf[..header_len(csum)]` (checksum field zero: fill it with
/// [`fill_checksum`] once the payload is in place). `buf` must be long enough.
#[inline]
pub fn emit(buf: &mut [u8], protocol: EtherType, csum: bool) {
    let flags = if csum { FLAG_CSUM } else { 0 };
    buf[0..2].copy_from_slice(&flags.to_be_bytes());
    buf[2..4].copy_from_slice(&protocol.0.to_be_bytes());
    if csum {
        buf[4..8].fill(0);
    }
}

/// Sets the checksum of the GRE packet `buf` (header with the checksum bit, then the
/// payload): the ones' complement of the sum of everything with the field zero.
#[inline]
pub fn fill_checksum(buf: &mut [u8]) {
    buf[4..6].fill(0);
    let c = !checksum::data(buf);
    buf[4..6].copy_from_slice(&c.to_be_bytes());
}

/// A read view of a GRE packet (header and payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// Version 0 (else `BadVersion`) without routing (else `UnsupportedProto`), and long
    /// enough for the fields its flags announce (else `Truncated`).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let f = self.flags();
        if f & VERSION_MASK != 0 {
            return Err(Error::BadVersion);
        }
        if f & FLAG_ROUTING != 0 {
            return Err(Error::UnsupportedProto);
        }
        if b.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The flags and version word.
    pub fn flags(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The protocol (EtherType) of the payload.
    pub fn protocol(&self) -> EtherType {
        let b = self.buffer.as_ref();
        EtherType(u16::from_be_bytes([b[2], b[3]]))
    }

    /// The checksum field, if present.
    pub fn checksum(&self) -> Option<u16> {
        let b = self.buffer.as_ref();
        (self.flags() & FLAG_CSUM != 0).then(|| u16::from_be_bytes([b[4], b[5]]))
    }

    /// Whether the checksum (if present) is right; `true` without one.
    pub fn verify_checksum(&self) -> bool {
        self.checksum().is_none() || checksum::data(self.buffer.as_ref()) == 0xffff
    }

    /// The header's length: 4, plus 4 for each of checksum, key and sequence number.
    pub fn header_len(&self) -> usize {
        let f = self.flags();
        HEADER_LEN
            + 4 * (usize::from(f & FLAG_CSUM != 0)
                + usize::from(f & FLAG_KEY != 0)
                + usize::from(f & FLAG_SEQ != 0))
    }

    /// The carried packet.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_without_checksum_is_four_bytes() {
        let mut b = [0xaau8; 4];
        emit(&mut b, EtherType::IPV4, false);
        assert_eq!(b, [0, 0, 0x08, 0x00]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.protocol(), p.checksum(), p.header_len()),
            (EtherType::IPV4, None, 4)
        );
        assert!(p.verify_checksum());
    }

    /// Hand-checked: header 80 00 86 dd 00 00 00 00 + payload 01 02 03: sum
    /// 0x8000 + 0x86dd + 0x0102 + 0x0300 = 0x10adf → 0x0ae0, checksum !0x0ae0 = 0xf51f.
    #[test]
    fn checksum_covers_header_and_payload() {
        let mut b = [0u8; 11];
        emit(&mut b, EtherType::IPV6, true);
        b[8..].copy_from_slice(&[1, 2, 3]);
        fill_checksum(&mut b);
        assert_eq!(&b[..8], &[0x80, 0, 0x86, 0xdd, 0xf5, 0x1f, 0, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.checksum(), Some(0xf51f));
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[1, 2, 3]);
        b[9] ^= 1;
        assert!(!Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }

    #[test]
    fn rejects() {
        assert_eq!(
            Packet::new_checked(&[0u8; 3][..]).unwrap_err(),
            Error::Truncated
        );
        // checksum announced, not there
        assert_eq!(
            Packet::new_checked(&[0x80u8, 0, 8, 0, 0][..]).unwrap_err(),
            Error::Truncated
        );
        // version 1 (PPTP), routing
        assert_eq!(
            Packet::new_checked(&[0u8, 1, 8, 0][..]).unwrap_err(),
            Error::BadVersion
        );
        assert_eq!(
            Packet::new_checked(&[0x40u8, 0, 8, 0][..]).unwrap_err(),
            Error::UnsupportedProto
        );
        // key and sequence number: 12 bytes of header
        let p = Packet::new_checked(&[0x30u8, 0, 8, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0x45][..]).unwrap();
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.payload(), &[0x45]);
    }
}
