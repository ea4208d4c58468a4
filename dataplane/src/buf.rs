//! The packet-buffer trait: what the rewrites need from a packet's storage.
//!
//! The same rewrite code runs on a [`VecBuf`] in tests and benchmarks and on a DPDK
//! mbuf in the dataplane (implemented next to the mbuf wrapper). The operations mirror
//! `rte_pktmbuf_{mtod, prepend, adj, trim}` on a single-segment mbuf: the data is one
//! contiguous slice with *headroom* in front of it that [`PacketBuf::prepend`] can claim
//! (failing when there is not enough), and bytes can be removed from either end.

/// Why a buffer operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufError {
    /// Not enough headroom in front of the data to prepend.
    NoHeadroom,
    /// Asked to remove more bytes than the data holds.
    TooShort,
}

impl core::fmt::Display for BufError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BufError::NoHeadroom => "no headroom",
            BufError::TooShort => "buffer too short",
        })
    }
}

impl std::error::Error for BufError {}

/// Packet storage with headroom: a contiguous data slice that can grow at the front
/// and shrink at both ends, in place.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];

    /// The packet bytes, mutably.
    fn data_mut(&mut self) -> &mut [u8];

    /// How many bytes [`PacketBuf::prepend`] can still claim.
    fn headroom(&self) -> usize;

    /// Grow the data by `len` bytes at the front (like `rte_pktmbuf_prepend`) and return
    /// the whole data, whose first `len` bytes are the new (unspecified) ones.
    /// Fails with [`BufError::NoHeadroom`], changing nothing, when the headroom is short.
    fn prepend(&mut self, len: usize) -> Result<&mut [u8], BufError>;

    /// Remove `len` bytes from the front (like `rte_pktmbuf_adj`); they become headroom.
    /// Fails with [`BufError::TooShort`], changing nothing, if the data is shorter.
    fn adj(&mut self, len: usize) -> Result<(), BufError>;

    /// Remove `len` bytes from the end (like `rte_pktmbuf_trim`).
    /// Fails with [`BufError::TooShort`], changing nothing, if the data is shorter.
    fn trim(&mut self, len: usize) -> Result<(), BufError>;

    /// The data length.
    fn len(&self) -> usize {
        self.data().len()
    }

    /// Whether the data is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new buffer holding a copy of the data (an mbuf from the same pool), or `None`
    /// when the storage cannot be copied (the pool is empty, a plain slice). For the
    /// general path only (the SYN proxy keeps a client's segment).
    fn try_clone(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// A `Vec`-backed [`PacketBuf`]: `buf[start..]` is the data, `buf[..start]` headroom.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VecBuf {
    /// The storage: headroom followed by the data.
    pub buf: Vec<u8>,
    /// Where the data starts (= the headroom).
    pub start: usize,
}

impl VecBuf {
    /// The default headroom, DPDK's `RTE_PKTMBUF_HEADROOM`.
    pub const DEFAULT_HEADROOM: usize = 128;

    /// A buffer holding a copy of `data` behind `headroom` bytes of headroom.
    pub fn new(headroom: usize, data: &[u8]) -> VecBuf {
        let mut buf = Vec::with_capacity(headroom + data.len());
        buf.resize(headroom, 0);
        buf.extend_from_slice(data);
        VecBuf {
            buf,
            start: headroom,
        }
    }

    /// A buffer holding a copy of `data` with [`VecBuf::DEFAULT_HEADROOM`].
    pub fn with_default_headroom(data: &[u8]) -> VecBuf {
        Self::new(Self::DEFAULT_HEADROOM, data)
    }

    /// Refill in place with `headroom` + `data`, reusing the allocation (no allocation
    /// once the capacity suffices): the benchmarks' per-iteration reset.
    /// The headroom keeps whatever bytes it held (headroom content is unspecified).
    pub fn refill(&mut self, headroom: usize, data: &[u8]) {
        self.buf.resize(headroom, 0);
        self.buf.extend_from_slice(data);
        self.start = headroom;
    }

    /// The data as a new `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data().to_vec()
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }

    fn data_mut(&mut self) -> &mut [u8] {
        let start = self.start.min(self.buf.len());
        &mut self.buf[start..]
    }

    fn headroom(&self) -> usize {
        self.start.min(self.buf.len())
    }

    fn prepend(&mut self, len: usize) -> Result<&mut [u8], BufError> {
        if len > self.headroom() {
            return Err(BufError::NoHeadroom);
        }
        self.start -= len;
        Ok(self.data_mut())
    }

    fn adj(&mut self, len: usize) -> Result<(), BufError> {
        if len > self.len() {
            return Err(BufError::TooShort);
        }
        self.start += len;
        Ok(())
    }

    fn trim(&mut self, len: usize) -> Result<(), BufError> {
        if len > self.len() {
            return Err(BufError::TooShort);
        }
        let new_len = self.buf.len() - len;
        self.buf.truncate(new_len);
        Ok(())
    }

    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

/// A plain slice is a buffer without headroom that cannot change length (`adj`/`trim`
/// of 0 bytes succeed): enough for the in-place rewrites (NAT, DR, FULLNAT).
impl PacketBuf for &mut [u8] {
    fn data(&self) -> &[u8] {
        self
    }

    fn data_mut(&mut self) -> &mut [u8] {
        self
    }

    fn headroom(&self) -> usize {
        0
    }

    fn prepend(&mut self, len: usize) -> Result<&mut [u8], BufError> {
        if len > 0 {
            return Err(BufError::NoHeadroom);
        }
        Ok(self)
    }

    fn adj(&mut self, len: usize) -> Result<(), BufError> {
        if len > self.len() {
            return Err(BufError::TooShort);
        }
        let s = core::mem::take(self);
        *self = &mut s[len..];
        Ok(())
    }

    fn trim(&mut self, len: usize) -> Result<(), BufError> {
        if len > self.len() {
            return Err(BufError::TooShort);
        }
        let s = core::mem::take(self);
        let keep = s.len() - len;
        *self = &mut s[..keep];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vecbuf_prepend_adj_trim() {
        let mut b = VecBuf::new(4, &[1, 2, 3]);
        assert_eq!(b.data(), &[1, 2, 3]);
        assert_eq!(b.headroom(), 4);
        let d = b.prepend(2).unwrap();
        d[..2].copy_from_slice(&[8, 9]);
        assert_eq!(b.data(), &[8, 9, 1, 2, 3]);
        assert_eq!(b.headroom(), 2);
        assert_eq!(b.prepend(3).unwrap_err(), BufError::NoHeadroom);
        assert_eq!(b.data(), &[8, 9, 1, 2, 3]);
        b.adj(1).unwrap();
        assert_eq!(b.data(), &[9, 1, 2, 3]);
        assert_eq!(b.headroom(), 3);
        b.trim(2).unwrap();
        assert_eq!(b.data(), &[9, 1]);
        assert_eq!(b.trim(3).unwrap_err(), BufError::TooShort);
        assert_eq!(b.adj(3).unwrap_err(), BufError::TooShort);
        b.data_mut()[0] = 7;
        assert_eq!(b.to_vec(), vec![7, 1]);
        assert_eq!(b.len(), 2);
        b.trim(2).unwrap();
        assert!(b.is_empty());
        b.refill(16, &[5; 10]);
        assert_eq!((b.headroom(), b.len()), (16, 10));
        assert_eq!(VecBuf::with_default_headroom(&[1]).headroom(), 128);
        assert_eq!(BufError::NoHeadroom.to_string(), "no headroom");
    }

    #[test]
    fn slice_buf() {
        let mut storage = [1u8, 2, 3, 4];
        let mut s: &mut [u8] = &mut storage[..];
        assert_eq!(s.headroom(), 0);
        assert_eq!(s.prepend(1).unwrap_err(), BufError::NoHeadroom);
        assert!(s.prepend(0).is_ok());
        s.adj(1).unwrap();
        s.trim(1).unwrap();
        assert_eq!(PacketBuf::data(&s), &[2, 3]);
        assert_eq!(s.trim(3).unwrap_err(), BufError::TooShort);
        s.data_mut()[0] = 9;
        assert_eq!(storage, [1, 9, 3, 4]);
    }
}
