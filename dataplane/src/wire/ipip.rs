//! IP in IP (RFC 2003): an outer IPv4 header, protocol 4 (IPv4 inside) or 41 (IPv6
//! inside), around an untouched inner packet. The TUN forwarding mode emits it; the view
//! lets tests and the exception path look inside.

use core::net::Ipv4Addr;

use super::ip::{IpProtocol, IpVersion};
use super::ipv4::{self, Packet as Ipv4Packet, Repr as Ipv4Repr};
use super::{Error, Result};

/// Length of the outer header rvs emits (no options).
pub const OUTER_HEADER_LEN: usize = ipv4::HEADER_LEN;

/// A read/write view of an IPIP datagram (outer IPv4 header + inner packet).
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

    /// The outer header must pass [`ipv4::Packet::check_len`], carry protocol 4 or 41
    /// (else `UnsupportedProto`), and the inner packet must have a version nibble that
    /// matches the protocol (else `BadVersion`; empty → `Truncated`).
    pub fn check_len(&self) -> Result<()> {
        let outer = Ipv4Packet::new_checked(self.buffer.as_ref())?;
        let want = match outer.protocol() {
            IpProtocol::IPIP => 4,
            IpProtocol::IPV6 => 6,
            _ => return Err(Error::UnsupportedProto),
        };
        let first = *outer.payload().first().ok_or(Error::Truncated)?;
        if first >> 4 != want {
            return Err(Error::BadVersion);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The outer IPv4 header view.
    pub fn outer(&self) -> Ipv4Packet<&[u8]> {
        Ipv4Packet::new_unchecked(self.buffer.as_ref())
    }

    /// The family of the inner packet.
    pub fn inner_version(&self) -> IpVersion {
        if self.outer().protocol() == IpProtocol::IPV6 {
            IpVersion::V6
        } else {
            IpVersion::V4
        }
    }

    /// The inner packet (the outer payload).
    pub fn inner(&self) -> &[u8] {
        let o = self.outer();
        let range = o.header_len()..usize::from(o.total_len());
        &self.buffer.as_ref()[range]
    }
}

/// The outer header rvs writes for a TUN packet: `local -> remote`, protocol 4 or 41,
/// TOS, TTL, identification and DF as given (the TUN rewrite copies them from the inner
/// packet).
#[allow(clippy::too_many_arguments)]
pub fn outer_repr(
    local: Ipv4Addr,
    remote: Ipv4Addr,
    inner: IpVersion,
    inner_len: usize,
    tos: u8,
    ttl: u8,
    ident: u16,
    dont_frag: bool,
) -> Ipv4Repr {
    Ipv4Repr {
        src_addr: local,
        dst_addr: remote,
        protocol: match inner {
            IpVersion::V4 => IpProtocol::IPIP,
            IpVersion::V6 => IpProtocol::IPV6,
        },
        payload_len: inner_len,
        ttl,
        tos,
        ident,
        dont_frag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ChecksumMode;

    fn inner() -> Vec<u8> {
        let mut v = vec![
            0x45, 0, 0, 28, 0, 1, 0x40, 0, 63, 17, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
        ];
        v.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        let mut p = Ipv4Packet::new_unchecked(&mut v[..]);
        p.fill_checksum();
        v
    }

    #[test]
    fn construct_and_deconstruct() {
        let inner = inner();
        let mut b = vec![0u8; 20 + inner.len()];
        let r = outer_repr(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            IpVersion::V4,
            inner.len(),
            0x10,
            63,
            1,
            true,
        );
        r.emit(&mut b, ChecksumMode::Software).unwrap();
        b[20..].copy_from_slice(&inner);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.inner(), &inner[..]);
        assert_eq!(p.inner_version(), IpVersion::V4);
        assert_eq!(p.outer().protocol(), IpProtocol::IPIP);
        assert_eq!(p.outer().total_len() as usize, 48);
        assert!(p.outer().verify_checksum());
        assert!(p.outer().dont_frag());
        assert_eq!(Ipv4Repr::parse(&p.outer(), true).unwrap(), r);
    }

    #[test]
    fn rejects() {
        let inner = inner();
        // not an IPIP packet
        assert_eq!(
            Packet::new_checked(&inner[..]).unwrap_err(),
            Error::UnsupportedProto
        );
        let mut b = vec![0u8; 20 + inner.len()];
        let r = outer_repr(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            IpVersion::V6,
            inner.len(),
            0,
            64,
            0,
            false,
        );
        r.emit(&mut b, ChecksumMode::Software).unwrap();
        b[20..].copy_from_slice(&inner);
        // protocol 41 around an IPv4 packet
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        let mut e = vec![0u8; 20];
        r.emit(&mut e, ChecksumMode::Software).unwrap();
        e[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&e[..]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..10]).unwrap_err(), Error::Truncated);
    }
}
