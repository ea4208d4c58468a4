//! The client's address under FULLNAT: what a real server that sees only the LIP needs
//! to learn who the client is.
//!
//! - **PROXY protocol** (HAProxy's, v1 text or v2 binary): TCP sessions get the header as
//!   a segment of its own, sent to the real server right after the handshake with the
//!   sequence number of the client's first byte; from then on every client segment's
//!   sequence number is shifted up by the header's length and every server segment's
//!   acknowledgement (and SACK block) down by it ([`shift_seq`], [`unshift_ack`]), so
//!   the header is exactly once in the stream, before everything the client sends,
//!   whichever side speaks first. The shift is the kernel's `in_seq` adjustment
//!   (`IP_VS_CONN_F_IN_SEQ`: after `init_seq`, add `delta`), which is how it is synced.
//!   UDP sessions get a v2 header in front of every datagram ([`prepend_udp`]).
//! - **TOA** (TCP option 254, DPVS's `toa.ko`): the client's address and port as an
//!   option in the client's first segment after the SYN, the one that completes the
//!   real server's handshake ([`insert_toa`]).
//!
//! Everything here works on a frame already rewritten for the real server (or the
//! client), in place, without allocation; the per-packet part of an established session
//! is [`shift_seq`] or [`unshift_ack`].

use std::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::flow::Addr;
use crate::wire::checksum;
use crate::wire::tcp::{be32, map_sack, next_option, set_be32_csum};

/// The PROXY protocol v2 signature.
pub const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Length of a v2 header with IPv4 addresses (16 + 12).
pub const V2_LEN_V4: usize = crate::conn::cip::V2_LEN_V4;
/// Length of a v2 header with IPv6 addresses (16 + 36).
pub const V2_LEN_V6: usize = crate::conn::cip::V2_LEN_V6;
/// The longest header rvs writes (a v1 line is at most 107 bytes).
pub const MAX_HEADER: usize = 108;
/// The TOA option's kind (DPVS's `TCPOPT_TOA`).
pub const TOA_KIND: u8 = 254;
/// The IPv4 TOA option's length: kind, length, port, address.
pub const TOA_LEN_V4: usize = 8;

/// A PROXY protocol header, built without allocation.
#[derive(Clone, Copy)]
pub struct ProxyHeader {
    buf: [u8; MAX_HEADER],
    len: usize,
}

impl core::fmt::Debug for ProxyHeader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("ProxyHeader").field(&self.bytes()).finish()
    }
}

impl ProxyHeader {
    /// The header's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty (never, for a built header).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, b: &[u8]) {
        let end = (self.len + b.len()).min(MAX_HEADER);
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&b[..n]);
        self.len = end;
    }

    fn push_dec(&mut self, mut v: u32) {
        let mut d = [0u8; 10];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&d[i..]);
    }

    fn push_v4(&mut self, a: Ipv4Addr) {
        for (k, o) in a.octets().iter().enumerate() {
            if k > 0 {
                self.push(b".");
            }
            self.push_dec(u32::from(*o));
        }
    }

    /// A v1 line for a TCP connection from `client` to `vip`:
    /// `PROXY TCP4 <client> <vip> <cport> <vport>\r\n`. IPv4 only (the dataplane forwards
    /// IPv4); `None` for an IPv6 address.
    pub fn v1(client: Addr, cport: u16, vip: Addr, vport: u16) -> Option<ProxyHeader> {
        let (c, v) = (v4_of(client)?, v4_of(vip)?);
        let mut h = ProxyHeader {
            buf: [0; MAX_HEADER],
            len: 0,
        };
        h.push(b"PROXY TCP4 ");
        h.push_v4(c);
        h.push(b" ");
        h.push_v4(v);
        h.push(b" ");
        h.push_dec(u32::from(cport));
        h.push(b" ");
        h.push_dec(u32::from(vport));
        h.push(b"\r\n");
        Some(h)
    }

    /// A v2 header (command PROXY) for a connection (`udp`: a datagram) from `client` to
    /// `vip`: IPv4 addresses if both are IPv4, else IPv6 (an IPv4 one mapped).
    pub fn v2(client: Addr, cport: u16, vip: Addr, vport: u16, udp: bool) -> ProxyHeader {
        let mut h = ProxyHeader {
            buf: [0; MAX_HEADER],
            len: 0,
        };
        h.push(&V2_SIG);
        let trans = if udp { 0x02 } else { 0x01 };
        match (v4_of(client), v4_of(vip)) {
            (Some(c), Some(v)) => {
                h.push(&[0x21, 0x10 | trans, 0, 12]);
                h.push(&c.octets());
                h.push(&v.octets());
            }
            _ => {
                h.push(&[0x21, 0x20 | trans, 0, 36]);
                h.push(&client.0);
                h.push(&vip.0);
            }
        }
        h.push(&cport.to_be_bytes());
        h.push(&vport.to_be_bytes());
        h
    }
}

/// The IPv4 address `a` is, if it is one.
fn v4_of(a: Addr) -> Option<Ipv4Addr> {
    match a.to_ip() {
        std::net::IpAddr::V4(v) => Some(v),
        std::net::IpAddr::V6(_) => None,
    }
}

/// `a` is after `b` in sequence space.
#[inline(always)]
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The client's view of an acknowledgement (or SACK edge) `ack` the real server sent
/// for a stream shifted by `delta` after sequence number `init` (the client's SYN): an
/// edge past the header moves down by `delta`; an edge inside the header (the server
/// has the header, or part of it, and nothing of the client's) is the client's first
/// byte; an edge at or before it is unchanged.
#[inline(always)]
pub fn map_ack(ack: u32, init: u32, delta: u32) -> u32 {
    let first = init.wrapping_add(1);
    if !after(first.wrapping_add(delta), ack) {
        ack.wrapping_sub(delta)
    } else if after(ack, first) {
        first
    } else {
        ack
    }
}

/// Whether acknowledgement `ack` covers the whole header (the server has it).
#[inline]
pub fn header_acked(ack: u32, init: u32, delta: u32) -> bool {
    !after(init.wrapping_add(1).wrapping_add(delta), ack)
}

/// A client → real server TCP segment (not a SYN) of a shifted session: its sequence
/// number moves up by `delta` (the TCP checksum follows incrementally). `l4` is the TCP
/// header's offset in `frame`.
#[inline]
pub fn shift_seq(frame: &mut [u8], l4: usize, delta: u32) {
    if let Some(seq) = be32(frame, l4 + 4) {
        set_be32_csum(frame, l4 + 4, seq.wrapping_add(delta), l4 + 16);
    }
}

/// A real server → client TCP segment of a shifted session: its acknowledgement (with
/// ACK set) and the edges of its SACK blocks are mapped back by [`map_ack`], the TCP
/// checksum following incrementally. Returns the acknowledgement as the server sent it
/// (`None` without ACK).
#[inline]
pub fn unshift_ack(frame: &mut [u8], l4: usize, init: u32, delta: u32) -> Option<u32> {
    let flags = *frame.get(l4 + 13)?;
    let doff = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
    if doff > 20 {
        unshift_sack(frame, l4, doff, init, delta);
    }
    if flags & 0x10 == 0 {
        return None;
    }
    let ack = be32(frame, l4 + 8)?;
    set_be32_csum(frame, l4 + 8, map_ack(ack, init, delta), l4 + 16);
    Some(ack)
}

/// The SACK blocks (option 5) of a TCP header of `doff` bytes at `l4`, mapped back.
fn unshift_sack(frame: &mut [u8], l4: usize, doff: usize, init: u32, delta: u32) {
    let end = (l4 + doff).min(frame.len());
    let mut p = l4 + 20;
    while let Some((kind, at, len)) = next_option(frame, p, end) {
        p = at + len;
        if kind == 5 {
            map_sack(frame, l4, at, len, |v| map_ack(v, init, delta));
        }
    }
}

/// Why a header or option could not be added to a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoRoom {
    /// The packet would exceed the egress MTU.
    Mtu,
    /// The TCP header has no room for another option (60 bytes at most).
    Options,
    /// The buffer has too little headroom.
    Headroom,
    /// Not a packet this can work on (truncated, not IPv4).
    Malformed,
}

/// The IPv4 header at `l3`: its total length and the IPv4 header checksum rewritten
/// for a packet `grow` bytes longer.
fn grow_ipv4(frame: &mut [u8], l3: usize, grow: u16) -> Option<()> {
    let tl = u16::from_be_bytes(frame.get(l3 + 2..l3 + 4)?.try_into().ok()?);
    let new = tl.checked_add(grow)?;
    let c = u16::from_be_bytes(frame.get(l3 + 10..l3 + 12)?.try_into().ok()?);
    let c = checksum::update_u16(c, tl, new);
    frame[l3 + 2..l3 + 4].copy_from_slice(&new.to_be_bytes());
    frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    Some(())
}

/// The IPv4 addresses and total length of the header at `l3`.
fn ipv4_ends(frame: &[u8], l3: usize) -> Option<(Ipv4Addr, Ipv4Addr, usize)> {
    let h = frame.get(l3..l3 + 20)?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let tl = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let s = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let d = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    Some((s, d, tl))
}

/// The TCP or UDP checksum of the segment at `l4` (IPv4 at `l3`), computed in full.
fn l4_checksum(frame: &mut [u8], l3: usize, l4: usize, proto: u8) -> Option<()> {
    let (s, d, tl) = ipv4_ends(frame, l3)?;
    let end = l3 + tl;
    let seg_len = end.checked_sub(l4)?;
    let at = if proto == 17 { l4 + 6 } else { l4 + 16 };
    frame.get_mut(at..at + 2)?.copy_from_slice(&[0, 0]);
    let seg = frame.get(l4..end)?;
    let sum = checksum::combine(&[
        checksum::pseudo_header_v4(s, d, proto, seg_len as u16),
        checksum::data(seg),
    ]);
    let mut c = !sum;
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Some(())
}

/// Opens a gap of `len` bytes at offset `at` of the packet by claiming headroom and
/// moving the `at` bytes before it to the front (the headers; the payload stays).
fn open_gap<P: PacketBuf>(pkt: &mut P, at: usize, len: usize) -> Result<(), NoRoom> {
    let d = pkt.prepend(len).map_err(|_| NoRoom::Headroom)?;
    d.copy_within(len..len + at, 0);
    Ok(())
}

/// TOA: the IPv4 client address `client:cport` as TCP option 254 (DPVS's layout: kind,
/// length 8, port, address, network order) added at the end of the options of the TCP
/// segment at `l4` (IPv4 header at `l3`), the data offset, lengths and checksums
/// following. Refused, changing nothing, when the options are full or the packet would
/// exceed `mtu`.
pub fn insert_toa<P: PacketBuf>(
    pkt: &mut P,
    l3: usize,
    l4: usize,
    client: Ipv4Addr,
    cport: u16,
    mtu: u16,
) -> Result<(), NoRoom> {
    let f = pkt.data();
    let (_, _, tl) = ipv4_ends(f, l3).ok_or(NoRoom::Malformed)?;
    let doff = usize::from(*f.get(l4 + 12).ok_or(NoRoom::Malformed)? >> 4) * 4;
    if doff < 20 || l4 + doff > l3 + tl || l3 + tl > f.len() {
        return Err(NoRoom::Malformed);
    }
    if doff + TOA_LEN_V4 > 60 {
        return Err(NoRoom::Options);
    }
    if tl + TOA_LEN_V4 > usize::from(mtu) {
        return Err(NoRoom::Mtu);
    }
    let hdr_end = l4 + doff;
    open_gap(pkt, hdr_end, TOA_LEN_V4)?;
    let f = pkt.data_mut();
    let p = cport.to_be_bytes();
    let a = client.octets();
    f[hdr_end..hdr_end + TOA_LEN_V4].copy_from_slice(&[
        TOA_KIND,
        TOA_LEN_V4 as u8,
        p[0],
        p[1],
        a[0],
        a[1],
        a[2],
        a[3],
    ]);
    f[l4 + 12] = (f[l4 + 12] & 0x0f) | (((doff + TOA_LEN_V4) / 4) as u8) << 4;
    grow_ipv4(f, l3, TOA_LEN_V4 as u16).ok_or(NoRoom::Malformed)?;
    l4_checksum(f, l3, l4, 6).ok_or(NoRoom::Malformed)
}

/// A PROXY header in front of the payload of the UDP datagram at `l4` (IPv4 at `l3`),
/// lengths and checksums following. Refused, changing nothing, when the datagram would
/// exceed `mtu` or the buffer lacks the headroom.
pub fn prepend_udp<P: PacketBuf>(
    pkt: &mut P,
    l3: usize,
    l4: usize,
    header: &[u8],
    mtu: u16,
) -> Result<(), NoRoom> {
    let f = pkt.data();
    let (_, _, tl) = ipv4_ends(f, l3).ok_or(NoRoom::Malformed)?;
    if l4 + 8 > l3 + tl || l3 + tl > f.len() {
        return Err(NoRoom::Malformed);
    }
    if tl + header.len() > usize::from(mtu) {
        return Err(NoRoom::Mtu);
    }
    let n = header.len();
    open_gap(pkt, l4 + 8, n)?;
    let f = pkt.data_mut();
    f[l4 + 8..l4 + 8 + n].copy_from_slice(header);
    let ul = u16::from_be_bytes([f[l4 + 4], f[l4 + 5]]).wrapping_add(n as u16);
    f[l4 + 4..l4 + 6].copy_from_slice(&ul.to_be_bytes());
    grow_ipv4(f, l3, n as u16).ok_or(NoRoom::Malformed)?;
    // A datagram sent without a checksum (0, IPv4) stays without one.
    if f[l4 + 6..l4 + 8] == [0, 0] {
        return Ok(());
    }
    l4_checksum(f, l3, l4, 17).ok_or(NoRoom::Malformed)
}

/// The segment carrying a PROXY header to the real server, written into `out` from
/// `frame`, a client segment of the session already rewritten for the real server
/// (Ethernet, VLAN tag, IPv4 and TCP headers with their options, e.g. timestamps, are
/// copied): sequence number `seq` (the client's first byte), flags ACK and PSH, the
/// header as its payload, lengths and checksums recomputed. Returns its length.
pub fn header_segment(
    frame: &[u8],
    l3: usize,
    l4: usize,
    seq: u32,
    header: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    ipv4_ends(frame, l3)?;
    let doff = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
    if doff < 20 {
        return None;
    }
    let hdr_end = l4 + doff;
    let len = hdr_end + header.len();
    let o = out.get_mut(..len)?;
    o[..hdr_end].copy_from_slice(frame.get(..hdr_end)?);
    o[hdr_end..].copy_from_slice(header);
    let tl = (len - l3) as u16;
    o[l3 + 2..l3 + 4].copy_from_slice(&tl.to_be_bytes());
    o[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let ihl = usize::from(o[l3] & 0x0f) * 4;
    let c = !checksum::data(o.get(l3..l3 + ihl)?);
    o[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    o[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
    // ACK and PSH only (a FIN or RST of the client's segment is not the header's), no
    // urgent data.
    o[l4 + 13] = 0x18;
    o[l4 + 18..l4 + 20].copy_from_slice(&[0, 0]);
    l4_checksum(o, l3, l4, 6)?;
    Some(len)
}

#[cfg(test)]
mod tests;
