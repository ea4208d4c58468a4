//! Test traffic: 64-byte-and-up TCP/UDP frames over IPv4 or IPv6 with valid checksums,
//! and pcap files.

use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;

/// Layer-4 protocol of the generated flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum L4 {
    /// TCP: a SYN opens each flow, ACKs with payload follow.
    Tcp,
    /// UDP: every packet is a datagram; the first one opens the session.
    Udp,
}

/// What a generated frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The flow's first packet (TCP SYN, or a UDP datagram).
    First,
    /// A packet of the established flow (TCP ACK with payload, or a UDP datagram).
    Established,
    /// TCP: the client's ACK that ends the handshake (sequence number
    /// [`CLIENT_ISN`] + 1, no payload).
    Ack,
    /// TCP: a real server's ACK without payload, with this acknowledgement number; the
    /// flow's fields are the reply's (real server address and port, then the FULLNAT
    /// local address and port).
    ServerAck(u32),
}

/// The initial sequence number of every client: the sequence number of the SYN.
pub const CLIENT_ISN: u32 = 1000;
/// The initial sequence number the real servers are taken to have chosen (the clients'
/// packets acknowledge [`SERVER_ISN`] + 1).
pub const SERVER_ISN: u32 = 5000;

/// One client -> VIP flow (both addresses of one family; [`build_frame`] maps an IPv4
/// one to IPv6 when the other is IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
}

/// MAC of the simulated clients' router.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// MAC the frames are addressed to (ports run promiscuous; the pipeline does not filter).
pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

/// Smallest frame size (on the wire, FCS included) this generator writes.
pub const MIN_FRAME: usize = 64;
/// Largest frame size (on the wire, FCS included).
pub const MAX_FRAME: usize = 1518;
/// Bytes an IPv6 header has over an IPv4 one: an IPv6 frame carries the payload of an
/// IPv4 frame this much shorter.
pub const IPV6_EXTRA: usize = 20;

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Builds one frame of `frame_size` bytes on the wire (the returned buffer is 4 bytes
/// shorter: no FCS) for an IPv4 flow; for an IPv6 flow the frame carries the payload of
/// that IPv4 frame and is [`IPV6_EXTRA`] bytes longer (capped at [`MAX_FRAME`]), so that
/// per-packet figures of the two families compare. IPv4 header and TCP/UDP checksums are
/// correct. SYNs carry no payload (the frame is padded); other packets fill the frame
/// with payload.
pub fn build_frame(flow: &Flow, l4: L4, kind: Kind, frame_size: usize, seq: u32) -> Vec<u8> {
    let frame_size = frame_size.clamp(MIN_FRAME, MAX_FRAME);
    let l4_hdr = match l4 {
        L4::Tcp => 20,
        L4::Udp => 8,
    };
    let proto: u8 = match l4 {
        L4::Tcp => 6,
        L4::Udp => 17,
    };
    let payload_of = |len: usize, ip_hdr: usize| match (l4, kind) {
        (L4::Tcp, Kind::First | Kind::Ack | Kind::ServerAck(_)) => 0,
        _ => len - 14 - ip_hdr - l4_hdr,
    };
    let (mut f, l4_at, payload, pseudo) = match (flow.caddr, flow.vaddr) {
        (IpAddr::V4(c), IpAddr::V4(v)) => {
            let len = frame_size - 4;
            let payload = payload_of(len, 20);
            let ip_len = 20 + l4_hdr + payload;
            let mut f = vec![0u8; len];
            f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut f[14..34];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
            ip[6] = 0x40; // DF
            ip[8] = 64;
            ip[9] = proto;
            ip[12..16].copy_from_slice(&c.octets());
            ip[16..20].copy_from_slice(&v.octets());
            let ck = fold(sum16(ip, 0));
            ip[10..12].copy_from_slice(&ck.to_be_bytes());
            let pseudo = sum16(&v.octets(), sum16(&c.octets(), 0));
            (f, 34, payload, pseudo)
        }
        (c, v) => {
            let six = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            let (c, v) = (six(c), six(v));
            // The IPv4 frame's payload, clamped so the frame stays within MAX_FRAME.
            let len = (frame_size + IPV6_EXTRA).min(MAX_FRAME) - 4;
            let payload = payload_of(len, 40);
            let mut f = vec![0u8; len];
            f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let ip = &mut f[14..54];
            // Version 6; the flow label from the sequence (like IPv4's identification).
            ip[0..4].copy_from_slice(&(0x6000_0000u32 | (seq & 0xf_ffff)).to_be_bytes());
            ip[4..6].copy_from_slice(&((l4_hdr + payload) as u16).to_be_bytes());
            ip[6] = proto;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&c.octets());
            ip[24..40].copy_from_slice(&v.octets());
            let pseudo = sum16(&v.octets(), sum16(&c.octets(), 0));
            (f, 54, payload, pseudo)
        }
    };
    f[0..6].copy_from_slice(&DIRECTOR_MAC);
    f[6..12].copy_from_slice(&CLIENT_MAC);
    let l4_end = l4_at + l4_hdr + payload;
    for (i, b) in f[l4_at + l4_hdr..l4_end].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7).wrapping_add(0x41);
    }
    let seg = &mut f[l4_at..l4_end];
    seg[0..2].copy_from_slice(&flow.cport.to_be_bytes());
    seg[2..4].copy_from_slice(&flow.vport.to_be_bytes());
    match l4 {
        L4::Tcp => {
            let (flags, seqno, ack) = match kind {
                Kind::First => (0x02u8, CLIENT_ISN, 0u32),
                Kind::Established => (0x10, (CLIENT_ISN + 1).wrapping_add(seq), SERVER_ISN + 1),
                Kind::Ack => (0x10, CLIENT_ISN + 1, SERVER_ISN + 1),
                Kind::ServerAck(ack) => (0x10, SERVER_ISN + 1, ack),
            };
            seg[4..8].copy_from_slice(&seqno.to_be_bytes());
            seg[8..12].copy_from_slice(&ack.to_be_bytes());
            seg[12] = 5 << 4;
            seg[13] = flags;
            seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
        }
        L4::Udp => {
            seg[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        }
    }
    // Pseudo-header checksum (the same sum for both families: addresses, protocol,
    // segment length).
    let acc = pseudo + u32::from(proto) + (l4_hdr + payload) as u32;
    let mut ck = fold(sum16(seg, acc));
    let off = match l4 {
        L4::Tcp => 16,
        L4::Udp => {
            if ck == 0 {
                ck = 0xffff;
            }
            6
        }
    };
    seg[off..off + 2].copy_from_slice(&ck.to_be_bytes());
    f
}

/// Writes frames to a classic pcap file (microsecond timestamps, Ethernet link type).
pub struct PcapWriter {
    out: BufWriter<std::fs::File>,
    count: u64,
}

impl PcapWriter {
    /// Creates `path` and writes the global header.
    pub fn create(path: &Path) -> io::Result<PcapWriter> {
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&65535u32.to_le_bytes())?;
        out.write_all(&1u32.to_le_bytes())?;
        Ok(PcapWriter { out, count: 0 })
    }

    /// Appends one frame.
    pub fn write(&mut self, frame: &[u8]) -> io::Result<()> {
        let us = self.count;
        self.out
            .write_all(&((us / 1_000_000) as u32).to_le_bytes())?;
        self.out
            .write_all(&((us % 1_000_000) as u32).to_le_bytes())?;
        let n = frame.len() as u32;
        self.out.write_all(&n.to_le_bytes())?;
        self.out.write_all(&n.to_le_bytes())?;
        self.out.write_all(frame)?;
        self.count += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Flushes and closes the file.
    pub fn finish(mut self) -> io::Result<u64> {
        self.out.flush()?;
        Ok(self.count)
    }
}

/// Reads back the frames of a pcap file written by [`PcapWriter`] (for tests and checks).
pub fn read_pcap(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not a pcap file");
    if data.len() < 24 || data[0..4] != 0xa1b2_c3d4u32.to_le_bytes() {
        return Err(bad());
    }
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let n = u32::from_le_bytes([data[off + 8], data[off + 9], data[off + 10], data[off + 11]])
            as usize;
        off += 16;
        let frame = data.get(off..off + n).ok_or_else(bad)?;
        out.push(frame.to_vec());
        off += n;
    }
    Ok(out)
}
