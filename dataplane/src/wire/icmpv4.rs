//! ICMPv4 (RFC 792): echo, and the error messages that embed the offending packet's IP
//! header plus its first 8 bytes.
//!
//! ```text
//!  0      1      2        4              8
//!  | type | code | csum   | rest of header | data…
//!    echo:                | ident | seq    | payload
//!    dest unreachable:    | 0     | mtu    | IP header + 8 bytes of the offending packet
//!    time exceeded:       | 0 (4 bytes)    | IP header + 8 bytes
//! ```

use core::fmt;

use super::checksum;
use super::field::{Field, Rest};
use super::{read_u16, write_u16, Error, Result};

mod field {
    use super::{Field, Rest};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const UNUSED: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const MTU: Field = 6..8;
    pub const DATA: Rest = 8..;
}

/// Length of the header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// An ICMPv4 message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Message(pub u8);

impl Message {
    /// Echo reply.
    pub const ECHO_REPLY: Message = Message(0);
    /// Destination unreachable.
    pub const DST_UNREACHABLE: Message = Message(3);
    /// Source quench (deprecated, still an error message).
    pub const SOURCE_QUENCH: Message = Message(4);
    /// Redirect.
    pub const REDIRECT: Message = Message(5);
    /// Echo request.
    pub const ECHO_REQUEST: Message = Message(8);
    /// Time exceeded.
    pub const TIME_EXCEEDED: Message = Message(11);
    /// Parameter problem.
    pub const PARAM_PROBLEM: Message = Message(12);

    /// Whether the message is an error that embeds the offending packet.
    pub const fn is_error(self) -> bool {
        matches!(self.0, 3 | 4 | 5 | 11 | 12)
    }

    /// Whether IPVS translates the message for a NAT session (`ip_vs_in_icmp`):
    /// destination unreachable, source quench, time exceeded.
    pub const fn is_translated_error(self) -> bool {
        matches!(self.0, 3 | 4 | 11)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Message::ECHO_REPLY => f.write_str("echo reply"),
            Message::DST_UNREACHABLE => f.write_str("destination unreachable"),
            Message::SOURCE_QUENCH => f.write_str("source quench"),
            Message::REDIRECT => f.write_str("redirect"),
            Message::ECHO_REQUEST => f.write_str("echo request"),
            Message::TIME_EXCEEDED => f.write_str("time exceeded"),
            Message::PARAM_PROBLEM => f.write_str("parameter problem"),
            Message(t) => write!(f, "type {t}"),
        }
    }
}

/// Destination-unreachable codes.
pub mod dst_unreachable {
    /// Network unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set (the rest of header carries the next-hop MTU).
    pub const FRAG_NEEDED: u8 = 4;
}

/// Time-exceeded codes.
pub mod time_exceeded {
    /// TTL exceeded in transit.
    pub const TTL: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const FRAG: u8 = 1;
}

/// A read/write view of an ICMPv4 message.
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

    /// Shorter than the 8-byte header → `Truncated`.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
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

    /// The echo identifier (echo messages).
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// The echo sequence number (echo messages).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// The next-hop MTU (destination unreachable, fragmentation needed).
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::MTU.start)
    }

    /// The four rest-of-header bytes.
    pub fn rest_of_header(&self) -> &[u8] {
        &self.buffer.as_ref()[field::UNUSED]
    }

    /// The data after the header: the echo payload, or the embedded packet of an error.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Whether the checksum over the whole buffer (the message) is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the type.
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

    /// Set the rest of header to `unused = 0, mtu` (fragmentation needed).
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        write_u16(self.buffer.as_mut(), field::UNUSED.start, 0);
        write_u16(self.buffer.as_mut(), field::MTU.start, mtu);
    }

    /// Zero the rest of header.
    pub fn clear_rest_of_header(&mut self) {
        self.buffer.as_mut()[field::UNUSED].fill(0);
    }

    /// The data, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Compute and write the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = !checksum::data(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static ECHO: [u8; 12] = [
        0x08, 0x00, 0x91, 0xc9, 0x12, 0x34, 0x00, 0x01, 0xaa, 0x00, 0xaa, 0x00,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.msg_type(), Message::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), &[0xaa, 0, 0xaa, 0]);
        assert!(p.verify_checksum());
        assert!(!p.msg_type().is_error());
        assert_eq!(p.msg_type().to_string(), "echo request");
    }

    #[test]
    fn construct() {
        let mut b = [0u8; 12];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(Message::ECHO_REQUEST);
        p.set_msg_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(1);
        p.data_mut().copy_from_slice(&[0xaa, 0, 0xaa, 0]);
        p.fill_checksum();
        assert_eq!(b, ECHO);
    }

    #[test]
    fn frag_needed_fields() {
        let mut b = [0u8; 8];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(Message::DST_UNREACHABLE);
        p.set_msg_code(dst_unreachable::FRAG_NEEDED);
        p.set_next_hop_mtu(1480);
        assert_eq!(p.next_hop_mtu(), 1480);
        assert_eq!(p.rest_of_header(), &[0, 0, 0x05, 0xc8]);
        assert!(p.msg_type().is_error() && p.msg_type().is_translated_error());
        p.clear_rest_of_header();
        assert_eq!(p.rest_of_header(), &[0; 4]);
        assert!(!Message::PARAM_PROBLEM.is_translated_error());
    }

    #[test]
    fn impossible_len() {
        assert_eq!(
            Packet::new_checked(&ECHO[..7]).unwrap_err(),
            Error::Truncated
        );
        assert!(Packet::new_checked(&ECHO[..8]).is_ok());
    }
}
