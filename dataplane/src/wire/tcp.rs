//! TCP (RFC 9293) segment headers; the options walked one at a time (`next_option`) and
//! 32-bit fields rewritten in place with the checksum following (`set_be32_csum`).
//!
//! ```text
//!  0       2       4               8              12      14      16      18      20
//!  | sport | dport | seq           | ack           |off|flg| window| csum  | urg   |
//! ```

use core::fmt;
use core::net::IpAddr;

use super::checksum;
use super::field::Field;
use super::ip::IpProtocol;
use super::{read_u16, read_u32, write_u16, write_u32, Error, Result};

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const FLAGS: Field = 12..14;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// TCP control flags (the low 9 bits of the offset/flags word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// FIN.
    pub const FIN: Flags = Flags(0x001);
    /// SYN.
    pub const SYN: Flags = Flags(0x002);
    /// RST.
    pub const RST: Flags = Flags(0x004);
    /// PSH.
    pub const PSH: Flags = Flags(0x008);
    /// ACK.
    pub const ACK: Flags = Flags(0x010);
    /// URG.
    pub const URG: Flags = Flags(0x020);
    /// ECE.
    pub const ECE: Flags = Flags(0x040);
    /// CWR.
    pub const CWR: Flags = Flags(0x080);
    /// NS (historic).
    pub const NS: Flags = Flags(0x100);
    /// No flags.
    pub const NONE: Flags = Flags(0);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// SYN set.
    pub const fn syn(self) -> bool {
        self.contains(Flags::SYN)
    }

    /// FIN set.
    pub const fn fin(self) -> bool {
        self.contains(Flags::FIN)
    }

    /// RST set.
    pub const fn rst(self) -> bool {
        self.contains(Flags::RST)
    }

    /// ACK set.
    pub const fn ack(self) -> bool {
        self.contains(Flags::ACK)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Flags, &str); 9] = [
            (Flags::SYN, "S"),
            (Flags::FIN, "F"),
            (Flags::RST, "R"),
            (Flags::PSH, "P"),
            (Flags::ACK, "."),
            (Flags::URG, "U"),
            (Flags::ECE, "E"),
            (Flags::CWR, "W"),
            (Flags::NS, "N"),
        ];
        f.write_str("[")?;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                f.write_str(name)?;
            }
        }
        f.write_str("]")
    }
}

/// A read/write view of a TCP segment (header and payload).
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

    /// Shorter than 20 bytes → `Truncated`; data offset < 5 → `BadDataOffset`; header
    /// (options included) beyond the buffer → `Truncated`.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::BadDataOffset);
        }
        if hl > b.len() {
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// Acknowledgement number.
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::FLAGS.start] >> 4) * 4
    }

    /// The control flags.
    pub fn flags(&self) -> Flags {
        Flags(read_u16(self.buffer.as_ref(), field::FLAGS.start) & 0x01ff)
    }

    /// The window.
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// The options bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload (the rest of the buffer after the header).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum over the whole buffer (the segment) with the pseudo-header
    /// of `src`/`dst` is right.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::TCP.0, b.len() as u32);
        checksum::combine(&[ph, checksum::data(b)]) == 0xffff
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

    /// Set the sequence number.
    pub fn set_seq_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM.start, v);
    }

    /// Set the acknowledgement number.
    pub fn set_ack_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM.start, v);
    }

    /// Set the header length (a multiple of 4) and the flags together. Voids
    /// `new_checked` if the length grows.
    pub fn set_header_len_and_flags(&mut self, header_len: usize, flags: Flags) {
        let v = (((header_len / 4) as u16 & 0x0f) << 12) | (flags.0 & 0x01ff);
        write_u16(self.buffer.as_mut(), field::FLAGS.start, v);
    }

    /// Set the window.
    pub fn set_window_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE.start, v);
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Set the urgent pointer.
    pub fn set_urgent_at(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT.start, v);
    }

    /// Compute and write the checksum over the whole buffer with the pseudo-header.
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::TCP.0, b.len() as u32);
        let c = !checksum::combine(&[ph, checksum::data(b)]);
        self.set_checksum(c);
    }
}

/// The big-endian 32-bit word at `at` in `b` (`None` past its end).
#[inline(always)]
pub fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The big-endian 16-bit word at `at` in `b` (`None` past its end).
#[inline(always)]
pub fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Writes the 32-bit field at `at` of a TCP segment in `b` whose checksum is at
/// `csum_at` (the TCP header's offset + 16), updating the checksum incrementally
/// (RFC 1624). The sum runs over 16-bit words from the TCP header: a field at an odd
/// offset (an option's: options need no alignment) is updated within its aligned 6
/// bytes. Nothing changes when a byte is past the buffer's end.
#[inline(always)]
pub fn set_be32_csum(b: &mut [u8], at: usize, v: u32, csum_at: usize) {
    let (Some(old), Some(c)) = (be32(b, at), be16(b, csum_at)) else {
        return;
    };
    if old == v || at + 16 < csum_at {
        return;
    }
    let c = if (at + 16 - csum_at).is_multiple_of(2) {
        checksum::update(c, &old.to_be_bytes(), &v.to_be_bytes())
    } else {
        let (Some(&first), Some(&last)) = (b.get(at - 1), b.get(at + 4)) else {
            return;
        };
        let (o, n) = (old.to_be_bytes(), v.to_be_bytes());
        let old6 = [first, o[0], o[1], o[2], o[3], last];
        let new6 = [first, n[0], n[1], n[2], n[3], last];
        checksum::update(c, &old6, &new6)
    };
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    b[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
}

/// The TCP option at or after offset `p` of `b`, in options ending at `end`: its kind,
/// offset and length (1 for a NOP). `None` at `end`, at the end-of-list option, and at an
/// option whose length is under 2 or runs past `end` (what follows a malformed option
/// cannot be read). The caller goes on at offset + length:
///
/// ```
/// # use rvs_dataplane::wire::tcp::next_option;
/// let opts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0];
/// let (mut p, mut kinds) = (0, Vec::new());
/// while let Some((kind, at, len)) = next_option(&opts, p, opts.len()) {
///     kinds.push(kind);
///     p = at + len;
/// }
/// assert_eq!(kinds, [1, 1, 8]);
/// ```
#[inline]
pub fn next_option(b: &[u8], p: usize, end: usize) -> Option<(u8, usize, usize)> {
    let end = end.min(b.len());
    if p >= end {
        return None;
    }
    match b[p] {
        0 => None,
        1 => Some((1, p, 1)),
        kind => {
            let len = usize::from(*b.get(p + 1)?);
            (len >= 2 && p + len <= end).then_some((kind, p, len))
        }
    }
}

/// Maps each edge of the SACK option (kind 5) at `at`, `len` bytes long, in the TCP
/// segment whose header is at `l4` in `b`, the checksum following.
#[inline]
pub fn map_sack(b: &mut [u8], l4: usize, at: usize, len: usize, f: impl Fn(u32) -> u32) {
    let mut e = at + 2;
    while e + 4 <= at + len {
        if let Some(v) = be32(b, e) {
            set_be32_csum(b, e, f(v), l4 + 16);
        }
        e += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    // 192.168.1.1:49152 -> 192.168.1.2:80 SYN|ACK, seq 1, ack 2, window 0xffff,
    // one NOP+NOP+EOL+EOL option word, payload "hi".
    static SEGMENT: [u8; 26] = [
        0xc0, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x60, 0x12, 0xff,
        0xff, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, b'h', b'i',
    ];

    fn addrs() -> (IpAddr, IpAddr) {
        (
            Ipv4Addr::new(192, 168, 1, 1).into(),
            Ipv4Addr::new(192, 168, 1, 2).into(),
        )
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(p.src_port(), 49152);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.ack_number(), 2);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), Flags::SYN | Flags::ACK);
        assert!(p.flags().syn() && p.flags().ack() && !p.flags().fin() && !p.flags().rst());
        assert_eq!(p.flags().to_string(), "[S.]");
        assert_eq!(p.window_len(), 0xffff);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options(), &[1, 1, 0, 0]);
        assert_eq!(p.payload(), b"hi");
    }

    #[test]
    fn construct_and_checksum() {
        let mut b = [0u8; 26];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(49152);
        p.set_dst_port(80);
        p.set_seq_number(1);
        p.set_ack_number(2);
        p.set_header_len_and_flags(24, Flags::SYN | Flags::ACK);
        p.set_window_len(0xffff);
        p.set_urgent_at(0);
        b[20..].copy_from_slice(&SEGMENT[20..]);
        assert_eq!(b, SEGMENT);
        let (s, d) = addrs();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(&s, &d);
        assert!(p.verify_checksum(&s, &d));
        assert!(!p.verify_checksum(&d, &Ipv4Addr::new(1, 2, 3, 4).into()));
    }

    #[test]
    fn impossible_len() {
        assert_eq!(
            Packet::new_checked(&SEGMENT[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&SEGMENT[..23]).unwrap_err(),
            Error::Truncated
        );
        let mut v = SEGMENT;
        v[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&v[..]).unwrap_err(),
            Error::BadDataOffset
        );
    }
}
