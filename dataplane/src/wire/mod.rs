//! Zero-copy views over packet bytes, and Internet checksums.
//!
//! The layout follows smoltcp's `wire` module: one file per protocol, each with a private
//! `mod field` of byte ranges and a `Packet<T: AsRef<[u8]>>` (or `Frame<T>`) view whose
//! getters need `AsRef<[u8]>` and whose setters need `AsMut<[u8]>`.
//!
//! # The contract
//! * `new_unchecked` wraps any buffer; its accessors may panic if the buffer is too short.
//!   Use it only on buffers the code itself sized (emitting headers).
//! * `new_checked` (which calls `check_len`) validates the lengths once, against the
//!   buffer and against the header's own length fields. After it returns `Ok`, **no
//!   getter panics**, and setters of fixed-offset fields do not either. Setters that
//!   change a length field (`set_header_len`, `set_total_len`, …) can void the guarantee;
//!   their docs say so.
//! * Multi-byte fields are read with `from_be_bytes` on byte slices; nothing casts
//!   unaligned bytes to wider integers.
//! * Failures are a [`Error`]: a small `Copy` enum with one typed reason per failure. The
//!   dataplane counts drops by reason, so every reason has a stable [`Error::index`] (for
//!   a counter array of [`Error::COUNT`] slots) and a stable [`Error::as_str`] name.
//!
//! [`classify`] is the entry point of the pipeline: one pass over an Ethernet frame that
//! validates Ethernet (+ one 802.1Q tag), IPv4/IPv6 and TCP/UDP/ICMP and returns the
//! offsets, the 5-tuple and the TCP flags, or the reason to drop.

use core::fmt;

pub mod arp;
pub mod checksum;
pub mod classify;
pub mod ethernet;
pub mod gre;
pub mod gue;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use self::arp::{Operation as ArpOperation, Packet as ArpPacket, Repr as ArpRepr};
pub use self::checksum::ChecksumMode;
pub use self::classify::{
    classify, classify_into, classify_v4_flow, classify_v6_flow, Classified, FragMeta, IcmpMeta,
    IpMeta, L2Meta, V4Flow, V6Flow,
};
pub use self::ethernet::{
    Address as EthernetAddress, EtherType, Frame as EthernetFrame, Repr as EthernetRepr,
};
pub use self::gre::Packet as GrePacket;
pub use self::gue::Packet as GuePacket;
pub use self::icmpv4::{Message as Icmpv4Message, Packet as Icmpv4Packet};
pub use self::icmpv6::{Message as Icmpv6Message, Packet as Icmpv6Packet};
pub use self::ip::{Endpoint, FiveTuple, IpProtocol, IpVersion};
pub use self::ipip::Packet as IpipPacket;
pub use self::ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use self::ipv6::Packet as Ipv6Packet;
pub use self::tcp::Packet as TcpPacket;
pub use self::udp::Packet as UdpPacket;

/// Byte-range helpers shared by the per-protocol `field` modules.
pub(crate) mod field {
    /// A fixed byte range inside a header.
    pub type Field = core::ops::Range<usize>;
    /// The bytes from an offset to the end of the buffer.
    pub type Rest = core::ops::RangeFrom<usize>;
}

/// Why a packet could not be parsed or rewritten: the drop reason the dataplane counts.
///
/// The discriminants are stable: [`Error::index`] is the slot of the reason in a counter
/// array of length [`Error::COUNT`], [`Error::as_str`] its name in statistics output.
/// New reasons are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Error {
    /// The buffer is shorter than a header, or than a length field says.
    Truncated = 0,
    /// The IP version nibble is not the expected one.
    BadVersion = 1,
    /// The IPv4 IHL is below 5 (a header shorter than 20 bytes).
    BadIhl = 2,
    /// The IPv4 total length is shorter than the header (or an IPv6 length is inconsistent).
    BadTotalLen = 3,
    /// A checksum (IPv4 header, ICMP, or an L4 checksum that was checked) is wrong.
    BadChecksum = 4,
    /// A malformed fragment (data not a multiple of 8 bytes with more to come, past
    /// 65535 bytes, empty; an IPv6 Fragment header inside a fragment), or where a whole
    /// datagram is required (`Repr::parse`, [`ipv6::skip_ext_headers`]) any fragment.
    Fragment = 5,
    /// The IPv6 extension-header chain is too long or malformed.
    BadExtHeader = 6,
    /// The TCP data offset is below 5 (a header shorter than 20 bytes).
    BadDataOffset = 7,
    /// The UDP length field disagrees with the IP payload length.
    BadUdpLen = 8,
    /// An ARP packet that is not Ethernet/IPv4.
    BadArp = 9,
    /// An ICMP error whose embedded packet is unusable.
    BadIcmp = 10,
    /// A protocol the operation does not handle (e.g. NAT of a protocol without ports).
    UnsupportedProto = 11,
    /// The session's addresses are of another family than the packet.
    AddressFamily = 12,
    /// The TTL (hop limit) would reach zero at the director.
    TtlExpired = 13,
    /// The packet is larger than the egress MTU and may not be sent as is.
    Oversize = 14,
    /// The packet buffer has no headroom left for a header to prepend.
    NoHeadroom = 15,
    /// A caller-supplied output buffer is too small.
    BufferTooSmall = 16,
}

impl Error {
    /// The number of reasons: the length of a per-reason counter array.
    pub const COUNT: usize = 17;

    /// Every reason, in [`Error::index`] order.
    pub const ALL: [Error; Error::COUNT] = [
        Error::Truncated,
        Error::BadVersion,
        Error::BadIhl,
        Error::BadTotalLen,
        Error::BadChecksum,
        Error::Fragment,
        Error::BadExtHeader,
        Error::BadDataOffset,
        Error::BadUdpLen,
        Error::BadArp,
        Error::BadIcmp,
        Error::UnsupportedProto,
        Error::AddressFamily,
        Error::TtlExpired,
        Error::Oversize,
        Error::NoHeadroom,
        Error::BufferTooSmall,
    ];

    /// The stable slot of this reason in a counter array (`0..Error::COUNT`).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The stable snake_case name of this reason, as shown in statistics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadVersion => "bad_version",
            Error::BadIhl => "bad_ihl",
            Error::BadTotalLen => "bad_total_len",
            Error::BadChecksum => "bad_checksum",
            Error::Fragment => "fragment",
            Error::BadExtHeader => "bad_ext_header",
            Error::BadDataOffset => "bad_data_offset",
            Error::BadUdpLen => "bad_udp_len",
            Error::BadArp => "bad_arp",
            Error::BadIcmp => "bad_icmp",
            Error::UnsupportedProto => "unsupported_proto",
            Error::AddressFamily => "address_family",
            Error::TtlExpired => "ttl_expired",
            Error::Oversize => "oversize",
            Error::NoHeadroom => "no_headroom",
            Error::BufferTooSmall => "buffer_too_small",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Error {}

/// The result of parsing or rewriting.
pub type Result<T> = core::result::Result<T, Error>;

/// Big-endian reads from byte slices whose length the caller has already checked.
#[inline]
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Big-endian read of four bytes at `at`.
#[inline]
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Big-endian write of two bytes at `at`.
#[inline]
pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Big-endian write of four bytes at `at`.
#[inline]
pub(crate) fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_indices_are_dense_and_names_unique() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(!e.as_str().is_empty());
            assert_eq!(e.to_string(), e.as_str());
        }
        let mut names: Vec<_> = Error::ALL.iter().map(|e| e.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Error::COUNT);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Every parser over random bytes: `new_checked` either fails with a typed reason
        /// or yields a view whose getters do not panic.
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            use core::net::{IpAddr, Ipv4Addr};
            let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let b = &bytes[..];
            if let Ok(f) = EthernetFrame::new_checked(b) {
                let _ = (f.dst_addr(), f.src_addr(), f.vlan_id(), f.payload_ethertype(), f.payload());
                proptest::prop_assert!(EthernetRepr::parse(&f).is_ok());
            }
            if let Ok(p) = ArpPacket::new_checked(b) {
                let _ = (p.operation(), p.source_hardware_addr(), p.target_protocol_addr());
                let _ = ArpRepr::parse(&p);
            }
            if let Ok(p) = Ipv4Packet::new_checked(b) {
                let _ = (p.src_addr(), p.dst_addr(), p.options(), p.payload(), p.verify_checksum());
                let _ = Ipv4Repr::parse(&p, true);
            }
            if let Ok(p) = Ipv6Packet::new_checked(b) {
                let _ = (p.src_addr(), p.flow_label(), p.payload(), p.upper_layer());
            }
            if let Ok(p) = TcpPacket::new_checked(b) {
                let _ = (p.flags(), p.options(), p.payload(), p.verify_checksum(&a, &a));
            }
            if let Ok(p) = UdpPacket::new_checked(b) {
                let _ = (p.payload(), p.verify_checksum(&a, &a));
            }
            if let Ok(p) = Icmpv4Packet::new_checked(b) {
                let _ = (p.msg_type(), p.next_hop_mtu(), p.data(), p.verify_checksum());
            }
            if let Ok(p) = Icmpv6Packet::new_checked(b) {
                let _ = (p.msg_type(), p.mtu(), p.target_addr(), p.data(), p.nd_options());
                let _ = icmpv6::link_layer_option(p.nd_options(), icmpv6::nd_option::SOURCE_LL_ADDR);
            }
            if let Ok(p) = IpipPacket::new_checked(b) {
                let _ = (p.inner(), p.inner_version());
            }
        }
    }

    #[test]
    fn be_helpers() {
        let mut b = [0u8; 6];
        write_u16(&mut b, 0, 0x1234);
        write_u32(&mut b, 2, 0xdead_beef);
        assert_eq!(b, [0x12, 0x34, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(read_u16(&b, 1), 0x34de);
        assert_eq!(read_u32(&b, 2), 0xdead_beef);
    }
}
