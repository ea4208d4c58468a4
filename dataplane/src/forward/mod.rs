//! Forwarding: how a packet of a session is rewritten, one [`Plan`] for every mode and
//! both directions, plus TUN encapsulation and ICMP error translation.
//!
//! - [`plan`]: the plan of a session's packet ([`Plan::of`]: new ends, routed toward)
//!   and the rewrite that carries it out ([`Plan::apply`]); the table of the four
//!   modes is in its docs.
//! - [`plan6`]: the same table for sessions with IPv6 ends ([`Plan6`]), NAT64 included.
//! - [`rewrite`]: the bytes: MACs, TTL, the IPv4 and IPv6 NAT/FULLNAT rewrites with
//!   incremental checksums.
//! - [`tun`]: the TUN encapsulations (IPIP, GUE, GRE) and the fragmentation-needed
//!   error for a packet too big for the tunnel.
//! - [`frag`]: the bytes of forwarding fragments: a later fragment's NAT/FULLNAT
//!   rewrite (no L4 header), the split of a TUN packet too big for the egress MTU.
//! - [`icmp`]: ICMP errors about NAT and FULLNAT sessions, translated from the plan of
//!   the direction they travel.
//! - [`icmp6`]: ICMPv6: the errors the director originates, its echo replies, errors
//!   about sessions with IPv6 ends translated.
//! - [`vlan`]: the 802.1Q tag of the port a frame leaves by.
//! - [`synproxy`]: the SYN proxy: cookies, the frames it writes in place, the
//!   translation of a proxied connection.
//! - [`cip`]: the client's address under FULLNAT: PROXY protocol headers, TOA, and the
//!   sequence shift a PROXY header brings.
//! - [`nat64`]: NAT64 (RFC 7915): an IPv6 frame translated to IPv4 and back, ICMP
//!   errors with the packet they quote.
//!
//! Every rewrite works in place on a [`crate::buf::PacketBuf`] (TUN prepends into its
//! headroom), never allocates, never panics (offsets that do not fit the buffer are
//! [`crate::wire::Error::Truncated`]; NAT64 has its own [`nat64::Nat64Error`]), and
//! changes nothing when it returns an error.
//! Checksums are computed in software on every port. A UDP checksum of 0 ("none",
//! IPv4) stays 0.

pub mod cip;
pub mod frag;
pub mod icmp;
pub mod icmp6;
pub mod nat64;
pub mod plan;
pub mod plan6;
pub mod rewrite;
pub mod synproxy;
pub mod tun;
pub mod vlan;

pub use self::plan::{Egress, Layout, Plan};
pub use self::plan6::{At6, Egress6, Plan6, V6Ends};
pub use self::rewrite::{MacRewrite, V4End};
pub use self::tun::{Encap, TunParams};
