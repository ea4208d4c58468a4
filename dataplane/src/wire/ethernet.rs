//! Ethernet II frames, with at most one 802.1Q VLAN tag.
//!
//! ```text
//!  0      6      12          14        16          18
//!  | dst  | src  | ethertype | payload…                      untagged
//!  | dst  | src  | 0x8100    | TCI     | ethertype | payload…  one 802.1Q tag
//! ```
//! The frame check sequence is not part of the buffer (NICs strip it). A second tag
//! (QinQ) is not unwrapped: [`Frame::payload_ethertype`] then reads `0x8100`/`0x88a8`.

use core::fmt;

use super::field::Field;
use super::{read_u16, write_u16, Error, Result};

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// Take the address from the first six bytes of `data`; `None` if shorter.
    pub fn from_bytes(data: &[u8]) -> Option<Address> {
        let b: [u8; 6] = data.get(..6)?.try_into().ok()?;
        Some(Address(b))
    }

    /// The six bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit is set (multicast or broadcast).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is a unicast address (group bit clear).
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// An EtherType value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// 802.1Q VLAN tag.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// 802.1ad service tag (QinQ outer tag).
    pub const QINQ: EtherType = EtherType(0x88a8);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86dd);
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04x}", self.0)
    }
}

/// Byte ranges of the Ethernet header's fields.
pub mod field {
    use super::Field;
    /// The destination MAC.
    pub const DESTINATION: Field = 0..6;
    /// The source MAC.
    pub const SOURCE: Field = 6..12;
    /// The EtherType (the TPID of a tagged frame).
    pub const ETHERTYPE: Field = 12..14;
    /// An 802.1Q tag's control information (priority, VID).
    pub const VLAN_TCI: Field = 14..16;
    /// The EtherType behind one 802.1Q tag.
    pub const INNER_ETHERTYPE: Field = 16..18;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of an Ethernet header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;

/// A read/write view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap a buffer without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wrap a buffer after [`Frame::check_len`].
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Check that the header (including a VLAN tag if the ethertype says so) is present.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if read_u16(b, field::ETHERTYPE.start) == EtherType::VLAN.0 && b.len() < VLAN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The destination MAC.
    pub fn dst_addr(&self) -> Address {
        let b = self.buffer.as_ref();
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[field::DESTINATION]);
        Address(a)
    }

    /// The source MAC.
    pub fn src_addr(&self) -> Address {
        let b = self.buffer.as_ref();
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[field::SOURCE]);
        Address(a)
    }

    /// The outer EtherType field (0x8100 for a tagged frame).
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE.start))
    }

    /// Whether the frame carries an 802.1Q tag.
    pub fn has_vlan(&self) -> bool {
        self.ethertype() == EtherType::VLAN
    }

    /// The 802.1Q tag control information (PCP, DEI, VID), if tagged.
    pub fn vlan_tci(&self) -> Option<u16> {
        self.has_vlan()
            .then(|| read_u16(self.buffer.as_ref(), field::VLAN_TCI.start))
    }

    /// The VLAN id (low 12 bits of the TCI), if tagged.
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|t| t & 0x0fff)
    }

    /// The header length: 14, or 18 when tagged.
    pub fn header_len(&self) -> usize {
        if self.has_vlan() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The EtherType of the payload (after the VLAN tag, if any).
    pub fn payload_ethertype(&self) -> EtherType {
        let at = self.header_len() - 2;
        EtherType(read_u16(self.buffer.as_ref(), at))
    }

    /// The payload (everything after the header, including any Ethernet padding).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Set the destination MAC.
    pub fn set_dst_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&a.0);
    }

    /// Set the source MAC.
    pub fn set_src_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&a.0);
    }

    /// Set the outer EtherType field. Setting it to or from 0x8100 changes the header
    /// length and voids the `new_checked` guarantee.
    pub fn set_ethertype(&mut self, t: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, t.0);
    }

    /// Set the VLAN TCI (only meaningful on a tagged frame).
    pub fn set_vlan_tci(&mut self, tci: u16) {
        write_u16(self.buffer.as_mut(), field::VLAN_TCI.start, tci);
    }

    /// Set the payload EtherType (after the VLAN tag, if any).
    pub fn set_payload_ethertype(&mut self, t: EtherType) {
        let at = if self.has_vlan() {
            field::INNER_ETHERTYPE.start
        } else {
            field::ETHERTYPE.start
        };
        write_u16(self.buffer.as_mut(), at, t.0);
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

/// A parsed Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source MAC.
    pub src_addr: Address,
    /// Destination MAC.
    pub dst_addr: Address,
    /// The VLAN TCI if the frame is tagged.
    pub vlan_tci: Option<u16>,
    /// The payload EtherType.
    pub ethertype: EtherType,
}

impl Repr {
    /// Parse the header of a checked frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            vlan_tci: frame.vlan_tci(),
            ethertype: frame.payload_ethertype(),
        })
    }

    /// The header length this representation emits.
    pub const fn buffer_len(&self) -> usize {
        if self.vlan_tci.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Write the header into the first [`Repr::buffer_len`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        let mut f = Frame::new_unchecked(buf);
        f.set_dst_addr(self.dst_addr);
        f.set_src_addr(self.src_addr);
        match self.vlan_tci {
            Some(tci) => {
                f.set_ethertype(EtherType::VLAN);
                f.set_vlan_tci(tci);
            }
            None => f.set_ethertype(self.ethertype),
        }
        f.set_payload_ethertype(self.ethertype);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 18] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb, 0xcc, 0xdd, // payload
    ];

    static VLAN_FRAME: [u8; 20] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x81, 0x00, 0x20, 0x64, // tag: PCP 1, VID 100
        0x86, 0xdd, // IPv6
        0xaa, 0xbb,
    ];

    #[test]
    fn deconstruct() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), Address([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.src_addr(), Address([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(f.vlan_tci(), None);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);

        let v = Frame::new_checked(&VLAN_FRAME[..]).unwrap();
        assert_eq!(v.ethertype(), EtherType::VLAN);
        assert_eq!(v.vlan_tci(), Some(0x2064));
        assert_eq!(v.vlan_id(), Some(100));
        assert_eq!(v.payload_ethertype(), EtherType::IPV6);
        assert_eq!(v.header_len(), 18);
        assert_eq!(v.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn construct() {
        let mut b = [0u8; 18];
        let r = Repr {
            dst_addr: Address([2, 0, 0, 0, 0, 1]),
            src_addr: Address([2, 0, 0, 0, 0, 2]),
            vlan_tci: None,
            ethertype: EtherType::IPV4,
        };
        r.emit(&mut b).unwrap();
        b[14..].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(b, FRAME);
        assert_eq!(
            Repr::parse(&Frame::new_checked(&b[..]).unwrap()).unwrap(),
            r
        );

        let mut v = [0u8; 20];
        let rv = Repr {
            vlan_tci: Some(0x2064),
            ethertype: EtherType::IPV6,
            ..r
        };
        rv.emit(&mut v).unwrap();
        v[18..].copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(v, VLAN_FRAME);
        assert_eq!(rv.emit(&mut [0u8; 17]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn impossible_len() {
        assert_eq!(
            Frame::new_checked(&FRAME[..13]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Frame::new_checked(&VLAN_FRAME[..17]).unwrap_err(),
            Error::Truncated
        );
        assert!(Frame::new_checked(&VLAN_FRAME[..18]).is_ok());
    }

    #[test]
    fn address_kinds() {
        assert!(Address::BROADCAST.is_broadcast());
        assert!(Address::BROADCAST.is_multicast());
        assert!(Address([2, 0, 0, 0, 0, 1]).is_unicast());
        assert_eq!(
            Address([2, 0, 0, 0, 0xab, 1]).to_string(),
            "02:00:00:00:ab:01"
        );
        assert_eq!(Address::from_bytes(&[1, 2, 3]), None);
        assert_eq!(
            Address::from_bytes(&[1, 2, 3, 4, 5, 6, 7]),
            Some(Address([1, 2, 3, 4, 5, 6]))
        );
    }
}
