//! Internet checksums: RFC 1071 full sums and RFC 1624 incremental updates.
//!
//! All sums are over big-endian 16-bit words read with `from_be_bytes` (never by casting
//! unaligned bytes). [`data`] returns the folded ones' complement *sum*; a header's
//! checksum field holds its complement (`!sum`).
//!
//! Incremental updates use RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`, which has no
//! `-0` pitfall: for real headers the result equals a full recomputation (the property
//! tests check this against random packets and rewrites). [`Adjust`] accumulates several
//! field changes and applies them to a checksum in one step.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Who checks the checksums of received packets ([`crate::wire::classify`]) and fills
/// those of headers the wire layer emits ([`crate::wire::Ipv4Repr::emit`]).
///
/// rvs computes every checksum in software on every port (`Software`). `Offload` trusts
/// a NIC that verified the sums on receive and leaves an emitted IPv4 header checksum 0
/// for a NIC to fill; the tests and fuzz targets use it to reach past checksum checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// The CPU computes every checksum (incrementally where possible).
    #[default]
    Software,
    /// The NIC verifies (receive) and fills (transmit) the sums.
    Offload,
}

/// Sum `data` as big-endian 16-bit words into a wide accumulator (odd length: the last
/// byte is the high half of a zero-padded word). Not folded.
#[inline]
fn sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        // A 32-bit big-endian word is hi*2^16 + lo, and 2^16 = 1 (mod 2^16 - 1): adding
        // whole 32-bit words and folding later gives the 16-bit ones' complement sum.
        acc += u64::from(u32::from_be_bytes([q[0], q[1], q[2], q[3]]));
    }
    let rem = quads.remainder();
    let mut pairs = rem.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [b] = pairs.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Fold a wide ones' complement accumulator to 16 bits (end-around carry).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// RFC 1071: the folded ones' complement sum of `data` (not complemented).
///
/// An odd trailing byte is padded with a zero byte. The checksum field of a header is
/// `!data(header_with_checksum_zeroed)`; a buffer whose checksum is right sums to `0xffff`.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    fold(sum(data))
}

/// Whether an IPv4 header without options (20 bytes) has a right checksum:
/// `data(ip) == 0xffff` without a loop or a fold. The five words are summed in the
/// machine's byte order (RFC 1071 2.B: all ones is all ones in either order). A ones'
/// complement fold of a sum is the sum modulo 0xffff, written 0xffff where that is 0, and
/// is 0 only for a sum of 0; 32-bit words give the same residue as their 16-bit halves
/// (2^16 is 1 modulo 0xffff). So the fold is all ones exactly when the sum is a nonzero
/// multiple of 0xffff: a division by a constant, which is a multiply.
#[inline(always)]
pub fn header20_ok(ip: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_ne_bytes([ip[i], ip[i + 1], ip[i + 2], ip[i + 3]]));
    let acc = w(0) + w(4) + w(8) + w(12) + w(16);
    acc != 0 && acc % 0xffff == 0
}

/// Ones' complement sum of several partial sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The IPv4 pseudo-header sum (RFC 793/768): source, destination, protocol, L4 length.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u16 {
    fold(sum(&src.octets()) + sum(&dst.octets()) + u64::from(protocol) + u64::from(len))
}

/// The IPv6 pseudo-header sum (RFC 8200 §8.1): source, destination, 32-bit upper-layer
/// length, next header.
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, protocol: u8, len: u32) -> u16 {
    fold(
        sum(&src.octets())
            + sum(&dst.octets())
            + u64::from(protocol)
            + u64::from(len >> 16)
            + u64::from(len & 0xffff),
    )
}

/// The pseudo-header sum for either family. Mixed families sum each address as is
/// (no real packet has them; the result is then meaningless but does not panic).
#[inline]
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, protocol: u8, len: u32) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(*s, *d, protocol, len as u16),
        (IpAddr::V6(s), IpAddr::V6(d)) => pseudo_header_v6(s, d, protocol, len),
        _ => {
            let (s, sl) = addr_octets(src);
            let (d, dl) = addr_octets(dst);
            fold(
                sum(&s[..sl])
                    + sum(&d[..dl])
                    + u64::from(protocol)
                    + u64::from(len >> 16)
                    + u64::from(len & 0xffff),
            )
        }
    }
}

/// The octets of an address in a fixed array, with the number that are used (4 or 16).
#[inline]
pub(crate) fn addr_octets(a: &IpAddr) -> ([u8; 16], usize) {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (out, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}

/// RFC 1624 eqn. 3: the new checksum field after the bytes `old` (at an even offset of
/// the summed data) were replaced by `new` of the same length.
#[inline]
pub fn update(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut adj = Adjust::new();
    adj.replace(old, new);
    adj.apply(checksum)
}

/// [`update`] for one 16-bit word.
#[inline]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    let mut adj = Adjust::new();
    adj.replace_u16(old, new);
    adj.apply(checksum)
}

/// Accumulated field changes to apply to a checksum with RFC 1624 eqn. 3.
///
/// ```
/// use rvs_dataplane::wire::checksum::{self, Adjust};
/// let mut hdr = [0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
/// let sum = !checksum::data(&hdr);
/// let mut adj = Adjust::new();
/// adj.replace(&hdr[16..20], &[10, 0, 0, 9]);
/// hdr[16..20].copy_from_slice(&[10, 0, 0, 9]);
/// assert_eq!(adj.apply(sum), !checksum::data(&hdr));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adjust {
    acc: u64,
}

impl Adjust {
    /// No changes.
    #[inline]
    pub const fn new() -> Adjust {
        Adjust { acc: 0 }
    }

    /// Record that `old` (at an even offset) becomes `new`; the lengths must be equal.
    #[inline]
    pub fn replace(&mut self, old: &[u8], new: &[u8]) {
        // ~m summed word by word equals the complement of the folded sum of m.
        self.acc += u64::from(!data(old)) + sum(new);
    }

    /// Record that a 16-bit word changes from `old` to `new`.
    #[inline]
    pub fn replace_u16(&mut self, old: u16, new: u16) {
        self.acc += u64::from(!old) + u64::from(new);
    }

    /// Record that an address changes (both of the same family).
    #[inline]
    pub fn replace_addr(&mut self, old: &IpAddr, new: &IpAddr) {
        let (o, ol) = addr_octets(old);
        let (n, nl) = addr_octets(new);
        self.replace(&o[..ol], &n[..nl]);
    }

    /// Whether nothing was recorded.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.acc == 0
    }

    /// The new checksum field given the old one.
    #[inline]
    pub fn apply(&self, checksum: u16) -> u16 {
        !fold(u64::from(!checksum) + self.acc)
    }

    /// Apply to a *pseudo-header sum* kept in an L4 checksum field for offload (which
    /// holds the uncomplemented sum rather than its complement).
    #[inline]
    pub fn apply_sum(&self, sum_field: u16) -> u16 {
        fold(u64::from(sum_field) + self.acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// `header20_ok` says what `data(ip) == 0xffff` says, for any 20 bytes and for
        /// headers whose checksum field is made right (the case that matters).
        #[test]
        fn header20_ok_is_data_all_ones(
            mut ip in proptest::array::uniform20(proptest::num::u8::ANY),
            right in proptest::bool::ANY,
        ) {
            if right {
                ip[10] = 0;
                ip[11] = 0;
                let c = !data(&ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
            }
            proptest::prop_assert_eq!(header20_ok(&ip), data(&ip) == 0xffff);
        }
    }

    #[test]
    fn header20_ok_at_the_edges() {
        let with = |words: &[(usize, u16)]| {
            let mut h = [0u8; 20];
            for &(at, w) in words {
                h[at..at + 2].copy_from_slice(&w.to_be_bytes());
            }
            h
        };
        for (ip, ok) in [
            ([0u8; 20], false), // sums to 0: never all ones
            ([0xff; 20], true), // ten words of all ones
            (with(&[(0, 0xffff)]), true),
            (with(&[(0, 0xffff), (18, 0xffff)]), true), // 0x1fffe folds to 0xffff
            (with(&[(0, 0xfffe)]), false),
            (with(&[(0, 0x8000), (2, 0x7fff)]), true), // one 32-bit word's two halves
            (with(&[(0, 0x8000), (4, 0x8000)]), false), // 0x10000 folds to 1
        ] {
            assert_eq!(header20_ok(&ip), ok, "{ip:?}");
            assert_eq!(data(&ip) == 0xffff, ok, "{ip:?}");
        }
    }

    // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    #[test]
    fn rfc1071_example() {
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        // odd length pads with zero
        assert_eq!(data(&[0x01]), 0x0100);
        assert_eq!(data(&[]), 0);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
    }

    // A classic IPv4 header (from Wikipedia's checksum example): checksum b861.
    #[test]
    fn ipv4_header_checksum() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(!data(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(data(&h), 0xffff);
    }

    #[test]
    fn incremental_matches_full() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = !data(&h);
        let new = [10, 1, 2, 3];
        let c2 = update(c, &h[16..20], &new);
        h[16..20].copy_from_slice(&new);
        assert_eq!(c2, !data(&h));
        let c3 = update_u16(c2, u16::from_be_bytes([h[8], h[9]]), 0x3f11);
        h[8] = 0x3f;
        assert_eq!(c3, !data(&h));
    }

    #[test]
    fn pseudo_headers() {
        let s = Ipv4Addr::new(192, 168, 0, 1);
        let d = Ipv4Addr::new(192, 168, 0, 199);
        let p = pseudo_header_v4(s, d, 17, 0x5f);
        assert_eq!(p, data(&[192, 168, 0, 1, 192, 168, 0, 199, 0, 17, 0, 0x5f]));
        assert_eq!(pseudo_header(&s.into(), &d.into(), 17, 0x5f), p);
        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut b = Vec::new();
        b.extend_from_slice(&s6.octets());
        b.extend_from_slice(&d6.octets());
        b.extend_from_slice(&0x0001_0004u32.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 6]);
        assert_eq!(pseudo_header_v6(&s6, &d6, 6, 0x0001_0004), data(&b));
        // mixed families do not panic
        let _ = pseudo_header(&s.into(), &d6.into(), 6, 20);
    }
}
