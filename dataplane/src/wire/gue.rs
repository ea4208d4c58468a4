//! Generic UDP Encapsulation (draft-ietf-intarea-gue) as IPVS's GUE tunnel
//! (`--tun-type gue`) writes it inside a UDP datagram: a 4-byte header, version 0, not a
//! control message, no optional fields (`hlen` 0), flags 0, and the protocol of the
//! packet it carries (4: IPv4, 41: IPv6). IPVS adds the remote-checksum-offload option
//! only to a packet whose checksum is left to the hardware (`CHECKSUM_PARTIAL`, a
//! locally generated packet), never to a forwarded one, so rvs never writes options.
//! The view reads any version-0 header (options skipped) for tests and the fuzzer.

use super::ip::IpProtocol;
use super::{Error, Result};

/// The base header.
pub const HEADER_LEN: usize = 4;
/// The control bit of the first byte.
pub const CONTROL_BIT: u8 = 0x20;

/// Writes the header rvs sends into `buf[..4]`: version 0, data, `hlen` 0, flags 0.
#[inline(always)]
pub fn emit(buf: &mut [u8], protocol: IpProtocol) {
    buf[..4].copy_from_slice(&[0, protocol.0, 0, 0]);
}

/// A read view of a GUE packet (the UDP payload).
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

    /// Version 0 (else `BadVersion`: version 1 is the header-less direct IP
    /// encapsulation) and as long as the header and its options (else `Truncated`).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        let Some(&first) = b.first() else {
            return Err(Error::Truncated);
        };
        if first >> 6 != 0 {
            return Err(Error::BadVersion);
        }
        if b.len() < HEADER_LEN || b.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// A control message (else data).
    pub fn is_control(&self) -> bool {
        self.buffer.as_ref()[0] & CONTROL_BIT != 0
    }

    /// The header's length with its optional fields (`4 + 4 × hlen`).
    pub fn header_len(&self) -> usize {
        HEADER_LEN + 4 * usize::from(self.buffer.as_ref()[0] & 0x1f)
    }

    /// The protocol of the payload (data messages).
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[1])
    }

    /// The flags word.
    pub fn flags(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
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
    fn emit_and_read() {
        let mut b = [0xffu8; 6];
        emit(&mut b, IpProtocol::IPIP);
        b[4..].copy_from_slice(&[0x45, 0]);
        assert_eq!(&b[..4], &[0, 4, 0, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.protocol(), IpProtocol::IPIP);
        assert_eq!((p.is_control(), p.flags(), p.header_len()), (false, 0, 4));
        assert_eq!(p.payload(), &[0x45, 0]);
        emit(&mut b, IpProtocol::IPV6);
        assert_eq!(&b[..4], &[0, 41, 0, 0]);
    }

    #[test]
    fn options_and_rejects() {
        // hlen 2: eight bytes of options (the remote checksum offload's private flags
        // and option, as IPVS sends it for a local packet)
        let b = [0x02u8, 4, 0x00, 0x01, 0x80, 0, 0, 0, 0, 0x14, 0, 0x24, 0x45];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.payload(), &[0x45]);
        assert_eq!(Packet::new_checked(&b[..11]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&[][..]).unwrap_err(), Error::Truncated);
        assert_eq!(
            Packet::new_checked(&[0u8, 4][..]).unwrap_err(),
            Error::Truncated
        );
        // version 1: an IPv4 header right after UDP
        assert_eq!(
            Packet::new_checked(&[0x45u8, 0, 0, 20][..]).unwrap_err(),
            Error::BadVersion
        );
        let c = [CONTROL_BIT, 0, 0, 0];
        assert!(Packet::new_checked(&c[..]).unwrap().is_control());
    }
}
