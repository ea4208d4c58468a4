//! Family-independent IP vocabulary: protocol numbers, versions, endpoints, 5-tuples.
//!
//! Addresses are `core::net::IpAddr` everywhere in the data model, so IPv6 services fit
//! the same types as IPv4 ones.

use core::fmt;
use core::net::IpAddr;

/// An IP protocol number (IPv4 protocol / IPv6 next header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// IPv6 hop-by-hop options.
    pub const HOPOPT: IpProtocol = IpProtocol(0);
    /// ICMP.
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// IPv4 in IP (IPIP).
    pub const IPIP: IpProtocol = IpProtocol(4);
    /// TCP.
    pub const TCP: IpProtocol = IpProtocol(6);
    /// UDP.
    pub const UDP: IpProtocol = IpProtocol(17);
    /// IPv6 in IP.
    pub const IPV6: IpProtocol = IpProtocol(41);
    /// IPv6 routing header.
    pub const IPV6_ROUTE: IpProtocol = IpProtocol(43);
    /// IPv6 fragment header.
    pub const IPV6_FRAG: IpProtocol = IpProtocol(44);
    /// GRE.
    pub const GRE: IpProtocol = IpProtocol(47);
    /// ESP.
    pub const ESP: IpProtocol = IpProtocol(50);
    /// Authentication header.
    pub const AH: IpProtocol = IpProtocol(51);
    /// ICMPv6.
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    /// IPv6 "no next header".
    pub const IPV6_NONXT: IpProtocol = IpProtocol(59);
    /// IPv6 destination options.
    pub const IPV6_OPTS: IpProtocol = IpProtocol(60);
    /// SCTP.
    pub const SCTP: IpProtocol = IpProtocol(132);

    /// Whether the protocol carries 16-bit ports at the start of its header.
    pub const fn has_ports(self) -> bool {
        matches!(self.0, 6 | 17 | 132)
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IpProtocol::TCP => f.write_str("TCP"),
            IpProtocol::UDP => f.write_str("UDP"),
            IpProtocol::ICMP => f.write_str("ICMP"),
            IpProtocol::ICMPV6 => f.write_str("ICMPv6"),
            IpProtocol::SCTP => f.write_str("SCTP"),
            IpProtocol(n) => write!(f, "proto {n}"),
        }
    }
}

/// The IP version of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpVersion {
    /// The version of an address.
    pub const fn of(addr: &IpAddr) -> IpVersion {
        match addr {
            IpAddr::V4(_) => IpVersion::V4,
            IpAddr::V6(_) => IpVersion::V6,
        }
    }

    /// The address length in bytes (4 or 16).
    pub const fn addr_len(self) -> usize {
        match self {
            IpVersion::V4 => 4,
            IpVersion::V6 => 16,
        }
    }
}

/// An address and a port (port 0 for protocols without ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The IP address.
    pub addr: IpAddr,
    /// The port.
    pub port: u16,
}

impl Endpoint {
    /// An endpoint.
    pub const fn new(addr: IpAddr, port: u16) -> Endpoint {
        Endpoint { addr, port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// The connection 5-tuple of a packet, as it appears on the wire (not normalised).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// The L4 protocol.
    pub protocol: IpProtocol,
    /// Source address and port.
    pub src: Endpoint,
    /// Destination address and port.
    pub dst: Endpoint,
}

impl FiveTuple {
    /// The tuple of the other direction (source and destination swapped).
    pub const fn reversed(&self) -> FiveTuple {
        FiveTuple {
            protocol: self.protocol,
            src: self.dst,
            dst: self.src,
        }
    }
}

impl fmt::Display for FiveTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.protocol, self.src, self.dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn display_and_reverse() {
        let t = FiveTuple {
            protocol: IpProtocol::TCP,
            src: Endpoint::new(Ipv4Addr::new(203, 0, 113, 5).into(), 51234),
            dst: Endpoint::new(Ipv6Addr::LOCALHOST.into(), 80),
        };
        assert_eq!(t.to_string(), "TCP 203.0.113.5:51234 -> [::1]:80");
        assert_eq!(t.reversed().reversed(), t);
        assert_eq!(t.reversed().src.port, 80);
        assert_eq!(IpProtocol(99).to_string(), "proto 99");
        assert!(IpProtocol::UDP.has_ports());
        assert!(!IpProtocol::ICMP.has_ports());
        assert_eq!(IpVersion::of(&t.dst.addr), IpVersion::V6);
        assert_eq!(IpVersion::V4.addr_len(), 4);
    }
}
