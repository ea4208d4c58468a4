//! ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861): echo, the error messages that
//! embed the invoking packet, Neighbor Solicitation/Advertisement and the ND options.
//!
//! ```text
//!  0      1      2        4              8                        24
//!  | type | code | csum   | rest of header | data…
//!    echo:                | ident | seq    | payload
//!    dest unreachable:    | unused         | as much of the invoking packet as fits
//!    packet too big:      | MTU (32 bits)  | invoking packet
//!    time exceeded:       | unused         | invoking packet
//!    parameter problem:   | pointer        | invoking packet
//!    neighbor solicit:    | reserved       | target address         | options…
//!    neighbor advert:     | R S O reserved | target address         | options…
//! ```
//!
//! A [`Packet`] wraps exactly the ICMPv6 message: the caller slices the IPv6 payload by
//! its payload length (after any extension headers), because the checksum covers the
//! whole message and the pseudo-header carries its length.
//!
//! Neighbor Discovery messages must arrive with an IPv6 hop limit of 255
//! ([`ND_HOP_LIMIT`]): a receiver **must** drop an NS/NA/RS/RA/Redirect whose hop limit is
//! anything else (RFC 4861 §6.1, §7.1.1, §7.1.2), since only an on-link sender can send
//! one that still has 255. This module only reads the ICMPv6 message; the check is the
//! caller's, on the IPv6 header. The emitters here always send 255.

use core::fmt;
use core::net::Ipv6Addr;

use super::checksum;
use super::field::{Field, Rest};
use super::ip::IpProtocol;
use super::ipv6;
use super::{read_u16, read_u32, write_u16, write_u32, Error, Result};

mod field {
    use super::{Field, Rest};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const MTU: Field = 4..8;
    pub const POINTER: Field = 4..8;
    pub const DATA: Rest = 8..;
    pub const ND_FLAGS: usize = 4;
    pub const ND_TARGET: Field = 8..24;
    pub const NS_NA_OPTIONS: Rest = 24..;
    pub const RS_OPTIONS: Rest = 8..;
    pub const RA_OPTIONS: Rest = 16..;
    pub const REDIRECT_OPTIONS: Rest = 40..;
}

/// Length of the header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;
/// Length of a Neighbor Solicitation or Advertisement without options.
pub const NS_NA_LEN: usize = 24;
/// Length of a Router Advertisement without options.
pub const RA_LEN: usize = 16;
/// Length of a Redirect without options.
pub const REDIRECT_LEN: usize = 40;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// The IPv6 minimum link MTU (RFC 8200 §5): a Packet Too Big below it is refused.
pub const MIN_MTU: u32 = 1280;
/// The IPv6 hop limit every Neighbor Discovery message is sent with, and the only one a
/// receiver may accept.
pub const ND_HOP_LIMIT: u8 = 255;
/// Length of an Ethernet source/target link-layer address option (type, length 1, MAC).
pub const LL_OPTION_LEN: usize = 8;
/// Length of the IPv6 packet [`emit_neighbor_advert`] writes (header, NA, target
/// link-layer address option).
pub const NA_PACKET_LEN: usize = ipv6::HEADER_LEN + NS_NA_LEN + LL_OPTION_LEN;
/// Length of the IPv6 packet [`emit_neighbor_solicit`] writes from a unicast source
/// (header, NS, source link-layer address option); from `::` it is 8 bytes shorter.
pub const NS_PACKET_LEN: usize = ipv6::HEADER_LEN + NS_NA_LEN + LL_OPTION_LEN;

/// An ICMPv6 message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Message(pub u8);

impl Message {
    /// Destination unreachable.
    pub const DST_UNREACHABLE: Message = Message(1);
    /// Packet too big (carries the next-hop MTU).
    pub const PKT_TOO_BIG: Message = Message(2);
    /// Time exceeded.
    pub const TIME_EXCEEDED: Message = Message(3);
    /// Parameter problem (carries a pointer into the invoking packet).
    pub const PARAM_PROBLEM: Message = Message(4);
    /// Echo request.
    pub const ECHO_REQUEST: Message = Message(128);
    /// Echo reply.
    pub const ECHO_REPLY: Message = Message(129);
    /// Router Solicitation (ND).
    pub const ROUTER_SOLICIT: Message = Message(133);
    /// Router Advertisement (ND).
    pub const ROUTER_ADVERT: Message = Message(134);
    /// Neighbor Solicitation (ND).
    pub const NEIGHBOR_SOLICIT: Message = Message(135);
    /// Neighbor Advertisement (ND).
    pub const NEIGHBOR_ADVERT: Message = Message(136);
    /// Redirect (ND).
    pub const REDIRECT: Message = Message(137);

    /// Whether the message is an error (types 0–127) that embeds the invoking packet.
    pub const fn is_error(self) -> bool {
        self.0 < 128
    }

    /// Whether the message is one of the five Neighbor Discovery messages (133–137),
    /// which a receiver accepts only with hop limit [`ND_HOP_LIMIT`].
    pub const fn is_nd(self) -> bool {
        matches!(self.0, 133..=137)
    }

    /// Whether the message is router business that rvs, which is no IPv6 router nor
    /// host that autoconfigures, drops: Router Solicitation, Router Advertisement,
    /// Redirect.
    pub const fn is_router_nd(self) -> bool {
        matches!(self.0, 133 | 134 | 137)
    }

    /// Whether the message carries a target address at bytes 8..24 (NS, NA, Redirect).
    pub const fn has_target(self) -> bool {
        matches!(self.0, 135..=137)
    }

    /// The shortest valid message of this type (RFC 4861 §6.1.1, §6.1.2, §7.1.1,
    /// §7.1.2, §8.1: the fixed part without options; [`HEADER_LEN`] for others).
    pub const fn min_len(self) -> usize {
        match self.0 {
            134 => RA_LEN,
            135 | 136 => NS_NA_LEN,
            137 => REDIRECT_LEN,
            _ => HEADER_LEN,
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Message::DST_UNREACHABLE => f.write_str("destination unreachable"),
            Message::PKT_TOO_BIG => f.write_str("packet too big"),
            Message::TIME_EXCEEDED => f.write_str("time exceeded"),
            Message::PARAM_PROBLEM => f.write_str("parameter problem"),
            Message::ECHO_REQUEST => f.write_str("echo request"),
            Message::ECHO_REPLY => f.write_str("echo reply"),
            Message::ROUTER_SOLICIT => f.write_str("router solicitation"),
            Message::ROUTER_ADVERT => f.write_str("router advertisement"),
            Message::NEIGHBOR_SOLICIT => f.write_str("neighbor solicitation"),
            Message::NEIGHBOR_ADVERT => f.write_str("neighbor advertisement"),
            Message::REDIRECT => f.write_str("redirect"),
            Message(t) => write!(f, "type {t}"),
        }
    }
}

/// Destination-unreachable codes (RFC 4443 §3.1).
pub mod dst_unreachable {
    /// No route to destination.
    pub const NO_ROUTE: u8 = 0;
    /// Communication administratively prohibited.
    pub const PROHIBITED: u8 = 1;
    /// Beyond scope of source address.
    pub const BEYOND_SCOPE: u8 = 2;
    /// Address unreachable.
    pub const ADDRESS: u8 = 3;
    /// Port unreachable.
    pub const PORT: u8 = 4;
}

/// Time-exceeded codes (RFC 4443 §3.3).
pub mod time_exceeded {
    /// Hop limit exceeded in transit.
    pub const HOP_LIMIT: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const FRAG: u8 = 1;
}

/// Parameter-problem codes (RFC 4443 §3.4).
pub mod param_problem {
    /// Erroneous header field.
    pub const HEADER_FIELD: u8 = 0;
    /// Unrecognized next header type.
    pub const NEXT_HEADER: u8 = 1;
    /// Unrecognized IPv6 option.
    pub const OPTION: u8 = 2;
}

/// Neighbor Discovery option types (RFC 4861 §4.6).
pub mod nd_option {
    /// Source link-layer address.
    pub const SOURCE_LL_ADDR: u8 = 1;
    /// Target link-layer address.
    pub const TARGET_LL_ADDR: u8 = 2;
    /// Prefix information.
    pub const PREFIX_INFO: u8 = 3;
    /// Redirected header.
    pub const REDIRECTED_HEADER: u8 = 4;
    /// MTU.
    pub const MTU: u8 = 5;
}

/// The Neighbor Advertisement flags (RFC 4861 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a Neighbor Solicitation.
    pub solicited: bool,
    /// O: the advertisement overrides a cached link-layer address.
    pub override_: bool,
}

impl NaFlags {
    const ROUTER: u8 = 0x80;
    const SOLICITED: u8 = 0x40;
    const OVERRIDE: u8 = 0x20;

    /// The flags from the first byte after the checksum.
    pub const fn from_byte(b: u8) -> NaFlags {
        NaFlags {
            router: b & Self::ROUTER != 0,
            solicited: b & Self::SOLICITED != 0,
            override_: b & Self::OVERRIDE != 0,
        }
    }

    /// The flags as the first byte after the checksum (the reserved bits zero).
    pub const fn to_byte(self) -> u8 {
        (if self.router { Self::ROUTER } else { 0 })
            | (if self.solicited { Self::SOLICITED } else { 0 })
            | (if self.override_ { Self::OVERRIDE } else { 0 })
    }
}

/// A read/write view of an ICMPv6 message.
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

    /// Shorter than the 8-byte header, or than the fixed part of an ND message of its
    /// type ([`Message::min_len`]) → `Truncated`.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN || b.len() < Message(b[field::TYPE]).min_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The message type.
    pub fn msg_type(&self) -> Message {
        Message(self.buffer.as_ref()[field::TYPE])
    }

    /// The code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The four rest-of-header bytes.
    pub fn rest_of_header(&self) -> &[u8] {
        &self.buffer.as_ref()[field::REST]
    }

    /// The echo identifier (echo messages).
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// The echo sequence number (echo messages).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// The MTU of a Packet Too Big.
    pub fn mtu(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::MTU.start)
    }

    /// Whether this is a Packet Too Big whose MTU is below the IPv6 minimum of 1280
    /// ([`MIN_MTU`]): such a message is bogus (or an attack on path MTU) and rvs must
    /// refuse it rather than lower any path MTU.
    pub fn mtu_below_minimum(&self) -> bool {
        self.msg_type() == Message::PKT_TOO_BIG && self.mtu() < MIN_MTU
    }

    /// The pointer of a Parameter Problem: the offset in the invoking packet of the
    /// field in error.
    pub fn pointer(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::POINTER.start)
    }

    /// The data after the 8-byte header: the echo payload, or the invoking packet of an
    /// error message (its IPv6 header first, as much as fits).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// The Neighbor Advertisement flags (meaningful for NA only).
    pub fn na_flags(&self) -> NaFlags {
        NaFlags::from_byte(self.buffer.as_ref()[field::ND_FLAGS])
    }

    /// The target address of an NS, NA or Redirect; `None` for other types.
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        if !self.msg_type().has_target() {
            return None;
        }
        let b = self.buffer.as_ref().get(field::ND_TARGET)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Some(Ipv6Addr::from(a))
    }

    /// The ND options of an ND message (walk them with [`NdOptions`] or
    /// [`link_layer_option`]); empty for other types.
    pub fn nd_options(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let rest = match self.msg_type() {
            Message::ROUTER_SOLICIT => field::RS_OPTIONS,
            Message::ROUTER_ADVERT => field::RA_OPTIONS,
            Message::NEIGHBOR_SOLICIT | Message::NEIGHBOR_ADVERT => field::NS_NA_OPTIONS,
            Message::REDIRECT => field::REDIRECT_OPTIONS,
            _ => return &[],
        };
        b.get(rest).unwrap_or(&[])
    }

    /// The sum the checksum field must complete: the IPv6 pseudo-header (source,
    /// destination, the message length, next header 58) plus the message.
    fn sum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u16 {
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        checksum::combine(&[
            checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, len),
            checksum::data(b),
        ])
    }

    /// Whether the checksum over the IPv6 pseudo-header and the whole buffer is right.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        self.sum(src, dst) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the type. Voids `new_checked` if the new type needs a longer message.
    pub fn set_msg_type(&mut self, v: Message) {
        self.buffer.as_mut()[field::TYPE] = v.0;
    }

    /// Set the code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Set the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, v);
    }

    /// Set the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO.start, v);
    }

    /// Set the MTU of a Packet Too Big.
    pub fn set_mtu(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::MTU.start, v);
    }

    /// Set the pointer of a Parameter Problem.
    pub fn set_pointer(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::POINTER.start, v);
    }

    /// Zero the rest of header.
    pub fn clear_rest_of_header(&mut self) {
        self.buffer.as_mut()[field::REST].fill(0);
    }

    /// Set the Neighbor Advertisement flags and zero the reserved bits.
    pub fn set_na_flags(&mut self, f: NaFlags) {
        let b = self.buffer.as_mut();
        b[field::REST].fill(0);
        b[field::ND_FLAGS] = f.to_byte();
    }

    /// Set the target address (NS, NA, Redirect). A buffer shorter than
    /// [`NS_NA_LEN`] → `Truncated`, nothing written.
    pub fn set_target_addr(&mut self, a: &Ipv6Addr) -> Result<()> {
        let b = self
            .buffer
            .as_mut()
            .get_mut(field::ND_TARGET)
            .ok_or(Error::Truncated)?;
        b.copy_from_slice(&a.octets());
        Ok(())
    }

    /// The data, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Compute and write the checksum over the IPv6 pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let c = !self.sum(src, dst);
        self.set_checksum(c);
    }
}

/// A walk over ND options (RFC 4861 §4.6): each item is `(type, option)` where `option`
/// is the whole option (type and length bytes included), or the error that ends the walk:
/// a length of 0 → `BadIcmp` (RFC 4861 says to discard the message), an option running
/// past the end → `Truncated`. After an error the walk yields nothing more.
#[derive(Debug, Clone)]
pub struct NdOptions<'a> {
    rest: &'a [u8],
}

impl<'a> NdOptions<'a> {
    /// Walk the options in `opts` (from [`Packet::nd_options`]).
    pub const fn new(opts: &'a [u8]) -> NdOptions<'a> {
        NdOptions { rest: opts }
    }
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = Result<(u8, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        self.rest = &[];
        let (kind, units) = match rest {
            [k, l, ..] => (*k, usize::from(*l)),
            _ => return Some(Err(Error::Truncated)),
        };
        if units == 0 {
            return Some(Err(Error::BadIcmp));
        }
        let len = units * 8;
        if len > rest.len() {
            return Some(Err(Error::Truncated));
        }
        let (opt, tail) = rest.split_at(len);
        self.rest = tail;
        Some(Ok((kind, opt)))
    }
}

/// The Ethernet address of the first source ([`nd_option::SOURCE_LL_ADDR`]) or target
/// ([`nd_option::TARGET_LL_ADDR`]) link-layer address option of kind `kind` in `opts`.
///
/// Every option is walked, so a malformed one anywhere fails the whole message as RFC
/// 4861 asks: length 0 → `BadIcmp`, an option past the end → `Truncated`; a link-layer
/// option of kind `kind` that is not 8 bytes (not an Ethernet address) → `BadIcmp`.
pub fn link_layer_option(opts: &[u8], kind: u8) -> Result<Option<[u8; 6]>> {
    let mut found = None;
    for item in NdOptions::new(opts) {
        let (k, opt) = item?;
        if k != kind {
            continue;
        }
        if opt.len() != LL_OPTION_LEN {
            return Err(Error::BadIcmp);
        }
        if found.is_none() {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&opt[2..8]);
            found = Some(mac);
        }
    }
    Ok(found)
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1):
/// `ff02::1:ffXX:XXXX` with the low 24 bits of `addr`.
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet multicast address of an IPv6 multicast address (RFC 2464 §7):
/// `33:33` and its low 32 bits; for a solicited-node address `33:33:ff:XX:XX:XX`.
pub fn multicast_mac(group: &Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The Ethernet destination of a Neighbor Solicitation for `target`: the multicast MAC
/// of its solicited-node address, `33:33:ff:XX:XX:XX`.
pub fn solicited_node_mac(target: &Ipv6Addr) -> [u8; 6] {
    multicast_mac(&solicited_node(target))
}

/// All-nodes multicast `ff02::1`, where an advertisement answering a DAD probe goes.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Write an IPv6 header with hop limit [`ND_HOP_LIMIT`] and next header 58 for an ICMPv6
/// message of `len` bytes.
fn emit_ipv6_header(buf: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr, len: usize) {
    let mut ip = ipv6::Packet::new_unchecked(&mut buf[..ipv6::HEADER_LEN]);
    ip.set_version_tc_flow(0, 0);
    // The caller sized `len` from constants well below 65535.
    ip.set_payload_len(u16::try_from(len).unwrap_or(u16::MAX));
    ip.set_next_header(IpProtocol::ICMPV6);
    ip.set_hop_limit(ND_HOP_LIMIT);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
}

/// Write into `buf` the IPv6 packet (header and ICMPv6) of a Neighbor Advertisement
/// answering a Neighbor Solicitation from `ns_src` for `target`, an address this node
/// owns at `mac`; returns its length, [`NA_PACKET_LEN`]. A `buf` shorter → `BufferTooSmall`,
/// nothing written.
///
/// As RFC 4861 §7.2.4 says: the source is `target`; the destination is `ns_src`, or
/// all-nodes `ff02::1` with the S flag clear when `ns_src` is `::` (duplicate address
/// detection); O is set (the owner of the address answers); R is clear; the target
/// link-layer address option carries `mac`; the hop limit is 255.
pub fn emit_neighbor_advert(
    buf: &mut [u8],
    ns_src: &Ipv6Addr,
    target: &Ipv6Addr,
    mac: [u8; 6],
) -> Result<usize> {
    let buf = buf.get_mut(..NA_PACKET_LEN).ok_or(Error::BufferTooSmall)?;
    let dad = ns_src.is_unspecified();
    let dst = if dad { ALL_NODES } else { *ns_src };
    let icmp_len = NA_PACKET_LEN - ipv6::HEADER_LEN;
    emit_ipv6_header(buf, target, &dst, icmp_len);
    let mut p = Packet::new_unchecked(&mut buf[ipv6::HEADER_LEN..]);
    p.set_msg_type(Message::NEIGHBOR_ADVERT);
    p.set_msg_code(0);
    p.set_na_flags(NaFlags {
        router: false,
        solicited: !dad,
        override_: true,
    });
    p.set_target_addr(target)?;
    let opt = &mut p.buffer[NS_NA_LEN..];
    opt[0] = nd_option::TARGET_LL_ADDR;
    opt[1] = 1;
    opt[2..8].copy_from_slice(&mac);
    p.fill_checksum(target, &dst);
    Ok(NA_PACKET_LEN)
}

/// Write into `buf` the IPv6 packet (header and ICMPv6) of a Neighbor Solicitation from
/// `src` (at `mac`) for `target`, sent to `target`'s solicited-node multicast address
/// ([`solicited_node`]; its Ethernet destination is [`solicited_node_mac`]) with hop
/// limit 255; returns its length. From `::` (duplicate address detection) there is no
/// source link-layer address option (RFC 4861 §4.3) and the packet is 8 bytes shorter
/// than [`NS_PACKET_LEN`]. A `buf` too short → `BufferTooSmall`, nothing written.
pub fn emit_neighbor_solicit(
    buf: &mut [u8],
    src: &Ipv6Addr,
    target: &Ipv6Addr,
    mac: [u8; 6],
) -> Result<usize> {
    let with_opt = !src.is_unspecified();
    let total = if with_opt {
        NS_PACKET_LEN
    } else {
        NS_PACKET_LEN - LL_OPTION_LEN
    };
    let buf = buf.get_mut(..total).ok_or(Error::BufferTooSmall)?;
    let dst = solicited_node(target);
    emit_ipv6_header(buf, src, &dst, total - ipv6::HEADER_LEN);
    let mut p = Packet::new_unchecked(&mut buf[ipv6::HEADER_LEN..]);
    p.set_msg_type(Message::NEIGHBOR_SOLICIT);
    p.set_msg_code(0);
    p.clear_rest_of_header();
    p.set_target_addr(target)?;
    if with_opt {
        let opt = &mut p.buffer[NS_NA_LEN..];
        opt[0] = nd_option::SOURCE_LL_ADDR;
        opt[1] = 1;
        opt[2..8].copy_from_slice(&mac);
    }
    p.fill_checksum(src, &dst);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        icmpv6::{DestUnreachableCode, ParameterProblemCode, ParameterProblemHeader},
        IcmpEchoHeader, Icmpv6Slice, Icmpv6Type, Ipv6HeaderSlice, PacketBuilder,
    };

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xab, 0xcdef);
    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

    /// An IPv6 packet built by etherparse; returns the ICMPv6 message (the IPv6 payload).
    fn build(t: Icmpv6Type, payload: &[u8], hop: u8) -> Vec<u8> {
        let b = PacketBuilder::ipv6(SRC.octets(), DST.octets(), hop).icmpv6(t);
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).unwrap();
        out.split_off(ipv6::HEADER_LEN)
    }

    fn unknown(type_u8: u8, bytes5to8: [u8; 4]) -> Icmpv6Type {
        Icmpv6Type::Unknown {
            type_u8,
            code_u8: 0,
            bytes5to8,
        }
    }

    /// A Neighbor Solicitation for DST with `opts`, built by etherparse (which knows no
    /// ND types, so it is an "unknown" type with the target and options as payload).
    fn ns(opts: &[u8]) -> Vec<u8> {
        let mut payload = DST.octets().to_vec();
        payload.extend_from_slice(opts);
        build(unknown(135, [0; 4]), &payload, 255)
    }

    #[test]
    fn echo_request_and_checksum_both_ways() {
        let m = build(
            Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 0x1234, seq: 7 }),
            b"ping",
            64,
        );
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Message::ECHO_REQUEST);
        assert_eq!(p.msg_type().to_string(), "echo request");
        assert!(!p.msg_type().is_error() && !p.msg_type().is_nd());
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 7));
        assert_eq!(p.data(), b"ping");
        // etherparse's checksum verifies here...
        assert!(p.verify_checksum(&SRC, &DST));
        // ...but not with another address (the pseudo-header is covered)
        assert!(!p.verify_checksum(&SRC, &ALL_NODES));

        // ours, rebuilt from nothing, verifies with etherparse
        let mut b = vec![0u8; HEADER_LEN + 4];
        let mut q = Packet::new_unchecked(&mut b[..]);
        q.set_msg_type(Message::ECHO_REPLY);
        q.set_msg_code(0);
        q.set_echo_ident(0x1234);
        q.set_echo_seq_no(7);
        q.data_mut().copy_from_slice(b"ping");
        q.fill_checksum(&DST, &SRC);
        assert!(q.verify_checksum(&DST, &SRC));
        let s = Icmpv6Slice::from_slice(&b).unwrap();
        assert!(s.is_checksum_valid(DST.octets(), SRC.octets()));
        assert_eq!(
            s.icmp_type(),
            Icmpv6Type::EchoReply(IcmpEchoHeader { id: 0x1234, seq: 7 })
        );
        // a flipped bit fails
        b[9] ^= 1;
        assert!(!Packet::new_checked(&b[..])
            .unwrap()
            .verify_checksum(&DST, &SRC));
    }

    #[test]
    fn packet_too_big_1200_is_below_minimum() {
        let invoking = [0x60u8; 48];
        let m = build(Icmpv6Type::PacketTooBig { mtu: 1200 }, &invoking, 64);
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Message::PKT_TOO_BIG);
        assert!(p.msg_type().is_error());
        assert_eq!(p.mtu(), 1200);
        assert!(p.mtu_below_minimum());
        assert_eq!(p.data(), &invoking[..]);
        assert!(p.verify_checksum(&SRC, &DST));

        let m = build(Icmpv6Type::PacketTooBig { mtu: 1280 }, &invoking, 64);
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.mtu(), 1280);
        assert!(!p.mtu_below_minimum());
        // an MTU field below 1280 in another type is not a PTB
        let m = build(unknown(128, [0, 0, 0, 1]), &[], 64);
        assert!(!Packet::new_checked(&m[..]).unwrap().mtu_below_minimum());

        let mut b = m.clone();
        let mut q = Packet::new_checked(&mut b[..]).unwrap();
        q.set_msg_type(Message::PKT_TOO_BIG);
        q.set_mtu(1500);
        q.fill_checksum(&SRC, &DST);
        let s = Icmpv6Slice::from_slice(&b).unwrap();
        assert_eq!(s.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1500 });
        assert!(s.is_checksum_valid(SRC.octets(), DST.octets()));
    }

    #[test]
    fn errors_carry_the_invoking_packet() {
        // an invoking IPv6/UDP packet built by etherparse
        let inv = PacketBuilder::ipv6(DST.octets(), SRC.octets(), 3).udp(1000, 53);
        let mut invoking = Vec::new();
        inv.write(&mut invoking, b"q").unwrap();

        let m = build(
            Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port),
            &invoking,
            64,
        );
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Message::DST_UNREACHABLE);
        assert_eq!(p.msg_code(), dst_unreachable::PORT);
        assert_eq!(p.data(), &invoking[..]);
        let ip = Ipv6HeaderSlice::from_slice(p.data()).unwrap();
        assert_eq!(ip.source_addr(), DST);
        assert!(p.verify_checksum(&SRC, &DST));

        let m = build(
            Icmpv6Type::TimeExceeded(etherparse::icmpv6::TimeExceededCode::HopLimitExceeded),
            &invoking,
            64,
        );
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Message::TIME_EXCEEDED);
        assert_eq!(p.msg_code(), time_exceeded::HOP_LIMIT);
        assert_eq!(p.data(), &invoking[..]);

        let m = build(
            Icmpv6Type::ParameterProblem(ParameterProblemHeader {
                code: ParameterProblemCode::UnrecognizedNextHeader,
                pointer: 6,
            }),
            &invoking,
            64,
        );
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Message::PARAM_PROBLEM);
        assert_eq!(p.msg_code(), param_problem::NEXT_HEADER);
        assert_eq!(p.pointer(), 6);
        assert_eq!(p.data(), &invoking[..]);
        assert!(p.target_addr().is_none() && p.nd_options().is_empty());
    }

    #[test]
    fn truncated_messages() {
        let m = build(
            Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 1, seq: 1 }),
            &[],
            64,
        );
        assert_eq!(m.len(), HEADER_LEN);
        assert!(Packet::new_checked(&m[..]).is_ok());
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&m[..n]).unwrap_err(),
                Error::Truncated,
                "{n}"
            );
        }
        // an NS must have its target: 24 bytes
        let m = ns(&[]);
        assert_eq!(m.len(), NS_NA_LEN);
        assert!(Packet::new_checked(&m[..]).is_ok());
        assert_eq!(
            Packet::new_checked(&m[..NS_NA_LEN - 1]).unwrap_err(),
            Error::Truncated
        );
        // RA needs 16, Redirect 40
        let m = build(unknown(134, [64, 0, 0, 0]), &[0u8; 7], 255);
        assert_eq!(Packet::new_checked(&m[..]).unwrap_err(), Error::Truncated);
        let m = build(unknown(137, [0; 4]), &[0u8; 31], 255);
        assert_eq!(Packet::new_checked(&m[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn neighbor_solicitation_and_options() {
        let m = ns(&[1, 1, 2, 0, 0x5e, 0x10, 0x20, 0x30]);
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Message::NEIGHBOR_SOLICIT);
        assert!(p.msg_type().is_nd() && !p.msg_type().is_router_nd());
        assert_eq!(p.target_addr(), Some(DST));
        assert!(p.verify_checksum(&SRC, &DST));
        assert_eq!(
            link_layer_option(p.nd_options(), nd_option::SOURCE_LL_ADDR),
            Ok(Some(MAC))
        );
        assert_eq!(
            link_layer_option(p.nd_options(), nd_option::TARGET_LL_ADDR),
            Ok(None)
        );

        // another option (an MTU option, 8 bytes) first, then the link-layer address
        let m = ns(&[5, 1, 0, 0, 0, 0, 5, 220, 1, 1, 2, 0, 0x5e, 0x10, 0x20, 0x30]);
        let p = Packet::new_checked(&m[..]).unwrap();
        let opts: Vec<_> = NdOptions::new(p.nd_options()).collect();
        assert_eq!(opts.len(), 2);
        assert_eq!(opts[0].unwrap().0, nd_option::MTU);
        assert_eq!(
            link_layer_option(p.nd_options(), nd_option::SOURCE_LL_ADDR),
            Ok(Some(MAC))
        );

        // length 0 is an error, even after the option sought
        let m = ns(&[1, 1, 2, 0, 0x5e, 0x10, 0x20, 0x30, 3, 0, 0, 0, 0, 0, 0, 0]);
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(
            link_layer_option(p.nd_options(), nd_option::SOURCE_LL_ADDR),
            Err(Error::BadIcmp)
        );
        let m = ns(&[1, 0, 2, 0, 0x5e, 0x10, 0x20, 0x30]);
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(
            link_layer_option(p.nd_options(), nd_option::SOURCE_LL_ADDR),
            Err(Error::BadIcmp)
        );
        let mut walk = NdOptions::new(p.nd_options());
        assert_eq!(walk.next(), Some(Err(Error::BadIcmp)));
        assert_eq!(walk.next(), None);

        // an option running past the end, and a lone type byte
        let m = ns(&[1, 2, 2, 0, 0x5e, 0x10, 0x20, 0x30]);
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(
            link_layer_option(p.nd_options(), nd_option::SOURCE_LL_ADDR),
            Err(Error::Truncated)
        );
        assert_eq!(link_layer_option(&[1], 1), Err(Error::Truncated));
        assert_eq!(link_layer_option(&[], 1), Ok(None));
        // a 16-byte link-layer option is no Ethernet address
        let mut long = [0u8; 16];
        long[0] = 1;
        long[1] = 2;
        assert_eq!(link_layer_option(&long, 1), Err(Error::BadIcmp));
        assert_eq!(link_layer_option(&long, 2), Ok(None));
    }

    #[test]
    fn neighbor_advert_flags_and_router_messages() {
        let mut payload = DST.octets().to_vec();
        payload.extend_from_slice(&[2, 1, 2, 0, 0x5e, 0x10, 0x20, 0x30]);
        let m = build(unknown(136, [0xe0, 0, 0, 0]), &payload, 255);
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Message::NEIGHBOR_ADVERT);
        assert_eq!(
            p.na_flags(),
            NaFlags {
                router: true,
                solicited: true,
                override_: true
            }
        );
        assert_eq!(p.target_addr(), Some(DST));
        assert_eq!(
            link_layer_option(p.nd_options(), nd_option::TARGET_LL_ADDR),
            Ok(Some(MAC))
        );
        let m = build(unknown(136, [0x40, 0, 0, 0]), &payload, 255);
        let f = Packet::new_checked(&m[..]).unwrap().na_flags();
        assert!(f.solicited && !f.router && !f.override_);

        // RA, RS, Redirect are recognised as router business
        for (t, fixed) in [(133u8, 0usize), (134, 8), (137, 32)] {
            let m = build(unknown(t, [0; 4]), &vec![0u8; fixed], 255);
            let p = Packet::new_checked(&m[..]).unwrap();
            assert!(p.msg_type().is_nd() && p.msg_type().is_router_nd(), "{t}");
            assert!(p.nd_options().is_empty());
            assert_eq!(p.target_addr().is_some(), t == 137);
        }
    }

    #[test]
    fn solicited_node_address_and_mac() {
        let a: Ipv6Addr = "2001:db8::12:3456:789a".parse().unwrap();
        assert_eq!(
            solicited_node(&a),
            "ff02::1:ff56:789a".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(solicited_node_mac(&a), [0x33, 0x33, 0xff, 0x56, 0x78, 0x9a]);
        assert_eq!(multicast_mac(&ALL_NODES), [0x33, 0x33, 0, 0, 0, 1]);
    }

    /// Parse an emitted IPv6 packet with etherparse: its header and ICMPv6 message.
    fn parse_emitted(b: &[u8]) -> (etherparse::Ipv6Header, Vec<u8>) {
        let ip = Ipv6HeaderSlice::from_slice(b).unwrap();
        assert_eq!(ip.next_header(), etherparse::IpNumber::IPV6_ICMP);
        assert_eq!(ip.hop_limit(), 255);
        assert_eq!(usize::from(ip.payload_length()), b.len() - 40);
        let icmp = &b[40..];
        let s = Icmpv6Slice::from_slice(icmp).unwrap();
        assert!(s.is_checksum_valid(ip.source(), ip.destination()));
        (ip.to_header(), icmp.to_vec())
    }

    #[test]
    fn advert_answers_a_solicitation() {
        let m = ns(&[1, 1, 2, 0, 0x5e, 0x10, 0x20, 0x30]);
        let sol = Packet::new_checked(&m[..]).unwrap();
        let target = sol.target_addr().unwrap();
        let ours = [0x02, 0, 0, 0, 0, 0x99];
        let mut buf = [0u8; 128];
        let n = emit_neighbor_advert(&mut buf, &SRC, &target, ours).unwrap();
        assert_eq!(n, NA_PACKET_LEN);
        let (ip, icmp) = parse_emitted(&buf[..n]);
        assert_eq!(ip.source, DST.octets());
        assert_eq!(ip.destination, SRC.octets());
        let p = Packet::new_checked(&icmp[..]).unwrap();
        assert_eq!(p.msg_type(), Message::NEIGHBOR_ADVERT);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(
            p.na_flags(),
            NaFlags {
                router: false,
                solicited: true,
                override_: true
            }
        );
        assert_eq!(&icmp[4..8], &[0x60, 0, 0, 0]);
        assert_eq!(p.target_addr(), Some(DST));
        assert_eq!(
            link_layer_option(p.nd_options(), nd_option::TARGET_LL_ADDR),
            Ok(Some(ours))
        );

        // a DAD probe (from ::) is answered to all-nodes, not solicited
        let n = emit_neighbor_advert(&mut buf, &Ipv6Addr::UNSPECIFIED, &target, ours).unwrap();
        let (ip, icmp) = parse_emitted(&buf[..n]);
        assert_eq!(ip.destination, ALL_NODES.octets());
        let f = Packet::new_checked(&icmp[..]).unwrap().na_flags();
        assert!(!f.solicited && f.override_);

        // too small a buffer is an error and writes nothing
        let mut small = [0xaau8; NA_PACKET_LEN - 1];
        assert_eq!(
            emit_neighbor_advert(&mut small, &SRC, &target, ours),
            Err(Error::BufferTooSmall)
        );
        assert!(small.iter().all(|&b| b == 0xaa));
    }

    #[test]
    fn solicitation_to_solicited_node() {
        let mut buf = [0u8; NS_PACKET_LEN];
        let n = emit_neighbor_solicit(&mut buf, &SRC, &DST, MAC).unwrap();
        assert_eq!(n, NS_PACKET_LEN);
        let (ip, icmp) = parse_emitted(&buf[..n]);
        assert_eq!(ip.source, SRC.octets());
        assert_eq!(
            Ipv6Addr::from(ip.destination),
            "ff02::1:ffab:cdef".parse::<Ipv6Addr>().unwrap()
        );
        let p = Packet::new_checked(&icmp[..]).unwrap();
        assert_eq!(p.msg_type(), Message::NEIGHBOR_SOLICIT);
        assert_eq!(p.rest_of_header(), &[0; 4]);
        assert_eq!(p.target_addr(), Some(DST));
        assert_eq!(
            link_layer_option(p.nd_options(), nd_option::SOURCE_LL_ADDR),
            Ok(Some(MAC))
        );
        assert_eq!(
            solicited_node_mac(&DST),
            [0x33, 0x33, 0xff, 0xab, 0xcd, 0xef]
        );

        // DAD: from ::, no source link-layer address option
        let n = emit_neighbor_solicit(&mut buf, &Ipv6Addr::UNSPECIFIED, &DST, MAC).unwrap();
        assert_eq!(n, NS_PACKET_LEN - LL_OPTION_LEN);
        let (_, icmp) = parse_emitted(&buf[..n]);
        let p = Packet::new_checked(&icmp[..]).unwrap();
        assert!(p.nd_options().is_empty());
        assert_eq!(
            emit_neighbor_solicit(&mut buf[..NS_PACKET_LEN - 1], &SRC, &DST, MAC),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn target_setter_refuses_short_buffers() {
        let mut b = [0u8; HEADER_LEN];
        let mut p = Packet::new_unchecked(&mut b[..]);
        assert_eq!(p.set_target_addr(&DST), Err(Error::Truncated));
        assert_eq!(b, [0u8; HEADER_LEN]);
    }

    /// The committed fuzz seeds are real messages: they parse and their checksums verify.
    #[test]
    fn fuzz_seeds_are_valid() {
        let fe80: Ipv6Addr = "fe80::1".parse().unwrap();
        let a1: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let seeds: [(&[u8], Ipv6Addr, Ipv6Addr, Message); 4] = [
            (
                include_bytes!("../../fuzz/seeds/icmpv6/neighbor_solicit"),
                fe80,
                solicited_node(&DST),
                Message::NEIGHBOR_SOLICIT,
            ),
            (
                include_bytes!("../../fuzz/seeds/icmpv6/neighbor_advert"),
                DST,
                fe80,
                Message::NEIGHBOR_ADVERT,
            ),
            (
                include_bytes!("../../fuzz/seeds/icmpv6/packet_too_big_1200"),
                "2001:db8::fe".parse().unwrap(),
                a1,
                Message::PKT_TOO_BIG,
            ),
            (
                include_bytes!("../../fuzz/seeds/icmpv6/echo_request"),
                a1,
                "2001:db8::2".parse().unwrap(),
                Message::ECHO_REQUEST,
            ),
        ];
        for (b, src, dst, t) in seeds {
            let p = Packet::new_checked(b).unwrap();
            assert_eq!(p.msg_type(), t);
            assert!(p.verify_checksum(&src, &dst), "{t}");
            let s = Icmpv6Slice::from_slice(b).unwrap();
            assert!(s.is_checksum_valid(src.octets(), dst.octets()), "{t}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// `new_checked` then every getter and the option walk on random bytes.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), t in 125u8..140) {
            let mut bytes = bytes;
            if let Some(b) = bytes.first_mut() { *b = t; }
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.rest_of_header());
                let _ = (p.echo_ident(), p.echo_seq_no(), p.mtu(), p.mtu_below_minimum(), p.pointer());
                let _ = (p.data(), p.na_flags(), p.target_addr(), p.verify_checksum(&SRC, &DST));
                let _ = link_layer_option(p.nd_options(), 1);
                let _ = NdOptions::new(p.nd_options()).count();
            }
        }
    }
}
