//! The IPVS sync message, version 1 (and version 0 for reading), byte-compatible with
//! the kernel's `ip_vs_sync.c`.
//!
//! ```text
//! header 8 B: u8 reserved=0 | u8 syncid | be16 size | u8 nr_conns | s8 version=1 | be16 spare=0
//! conn (IPv4 36 B, IPv6 72 B): u8 type (bit 0: IPv6) | u8 protocol | be16 ver_size
//!   (version << 12 | length including options) | be32 flags | be16 state | be16 cport,
//!   vport, dport | be32 fwmark | be32 timeout (s) | caddr, vaddr, daddr
//! options: u8 type | u8 len | data; type | 64 marks an option a receiver may skip.
//! Records start on 4-byte boundaries (padding counts in the message size).
//! ```
//! rvs adds one optional option, [`OPT_FULLNAT`] (`0x60`), carrying the FULLNAT local
//! address and port (4 or 16 bytes, then be16); a kernel skips it as optional. A
//! session whose client stream carries a PROXY header (`IP_VS_CONN_F_IN_SEQ`) has the
//! kernel's own [`OPT_SEQ_DATA`] with its `in_seq` (initial sequence number, delta).
//!
//! Address families. The record's type bit covers caddr, vaddr and daddr together, as
//! the kernel's `ip_vs_sync_v4`/`ip_vs_sync_v6`: a session with any IPv6 one of them is
//! an IPv6 record (72 bytes, `struct ip_vs_sync_v6` byte for byte), and an IPv4 address
//! in it is written IPv4-mapped (`::ffff:a.b.c.d`) and read back as IPv4. So a NAT64
//! session (IPv6 client and VIP, IPv4 real server and LIP) is an IPv6 record whose
//! daddr is its real server IPv4-mapped. The FULLNAT option carries the LIP in its own
//! family, told by the option's length: 6 bytes for an IPv4 LIP, 18 for an IPv6 one,
//! whatever the record's family (an IPv4-mapped address in 18 bytes reads as IPv4). A
//! kernel backup reads an IPv6 record of a NAT, DR or TUN session as its own; it cannot
//! forward a FULLNAT session of either family (it has no FULLNAT, and skips the option).
//!
//! A sync group's heartbeat (a message without records) carries rvs's [`Hello`] after the
//! header, within the size the header announces: the sender's worker count, FULLNAT local
//! port range and LIPs. A kernel backup reads no record of a message with `nr_conns` 0
//! and ignores the rest, so it still takes the heartbeat as an empty message.
//!
//! ```text
//! hello: "RVSG" | u8 version=1 | u8 0 | be16 workers | be16 lport_lo | be16 lport_hi
//!   | be16 count | count x IPv4 LIP | be64 incarnation | be64 bulk_done_for
//! ```
//! The last 16 bytes came later: a hello without them (an older rvs) reads as incarnation
//! 0 and no bulk sync done, and an older rvs reading them ignores them.
//!
//! Decoding never panics: every length is checked, and errors are typed ([`DecodeError`]).

use std::net::Ipv4Addr;

use crate::conn::replica::SyncConn;
use crate::flow::Addr;

/// The protocol version this module writes.
pub const SYNC_PROTO_VER: u8 = 1;
/// Length of the v1 message header.
pub const HEADER_LEN: usize = 8;
/// Length of the v0 message header.
pub const HEADER_V0_LEN: usize = 4;
/// Length of an IPv4 v1 record without options.
pub const CONN_V4_LEN: usize = 36;
/// Length of an IPv6 v1 record without options.
pub const CONN_V6_LEN: usize = 72;
/// Length of a v0 record (IPv4 only) without its sequence data.
pub const CONN_V0_LEN: usize = 24;
/// Length of the v0 sequence data (`struct ip_vs_sync_conn_options`).
pub const SEQ_DATA_LEN: usize = 24;
/// Record type bit: IPv6 addresses.
pub const STYPE_F_INET6: u8 = 1;
/// Option: TCP sequence adjustments (`IPVS_OPT_SEQ_DATA`).
pub const OPT_SEQ_DATA: u8 = 1;
/// Option: persistence-engine data (`IPVS_OPT_PE_DATA`).
pub const OPT_PE_DATA: u8 = 2;
/// Option: persistence-engine name (`IPVS_OPT_PE_NAME`).
pub const OPT_PE_NAME: u8 = 3;
/// Option flag: a receiver that does not know the option skips it.
pub const OPT_F_OPTIONAL: u8 = 64;
/// rvs's option: the FULLNAT local address and port (optional, so kernels skip it).
pub const OPT_FULLNAT: u8 = OPT_F_OPTIONAL | 32;
/// Largest record rvs writes (IPv6 with the FULLNAT option and sequence data, padded).
pub const MAX_RECORD_LEN: usize = CONN_V6_LEN + 2 + 18 + 2 + SEQ_DATA_LEN;
/// The kernel's `IP_VS_CONN_F_SEQ_MASK` (in and out sequence adjustments present).
pub const F_SEQ_MASK: u32 = 0x0600;

/// An option's header: type and length bytes.
const OPT_HEADER_LEN: usize = 2;
/// `ver_size`: the version is in the top 4 bits, the record length in the low 12.
const VERSION_SHIFT: u16 = 12;
/// `ver_size`: the record length bits.
const SIZE_MASK: u16 = 0x0fff;
/// Longest persistence-engine name (`IP_VS_PENAME_MAXLEN`).
const PE_NAME_MAXLEN: usize = 16;
/// The largest UDP payload over IPv4 (65535 - 20 - 8).
pub const MAX_UDP_PAYLOAD: usize = 65507;

/// Length of the FULLNAT option's data: the local address in its own family (4 bytes
/// for IPv4, 16 for IPv6) and the port.
fn fullnat_opt_len(lip: &Addr) -> usize {
    (if lip.is_v4() { 4 } else { 16 }) + 2
}

/// Whether `c` is written as an IPv6 record: its type bit says so, or one of the
/// addresses the record's family covers (caddr, vaddr, daddr) is IPv6, which an IPv4
/// record could not carry.
pub fn is_v6_record(c: &SyncConn) -> bool {
    c.v6 || !(c.caddr.is_v4() && c.vaddr.is_v4() && c.daddr.is_v4())
}

/// Encoded length of a record without trailing padding.
pub fn encoded_len(c: &SyncConn) -> usize {
    let base = if is_v6_record(c) {
        CONN_V6_LEN
    } else {
        CONN_V4_LEN
    };
    base + c
        .local
        .map_or(0, |(a, _)| OPT_HEADER_LEN + fullnat_opt_len(&a))
        + if c.in_seq.is_some() || c.out_seq.is_some() {
            OPT_HEADER_LEN + SEQ_DATA_LEN
        } else {
            0
        }
}

/// The `in_seq` of the sequence data (`struct ip_vs_sync_conn_options`: `in_seq`, then
/// `out_seq`, each `init_seq`, `delta`, `previous_delta`, network order): initial
/// sequence number and delta, `None` without a delta.
fn seq_data(d: &[u8]) -> Option<(u32, u32)> {
    let (init, delta) = (be32(d, 0)?, be32(d, 4)?);
    (delta != 0).then_some((init, delta))
}

/// The `out_seq` of the sequence data: `init_seq`, `delta`, `previous_delta`; `None`
/// without a delta (see [`crate::conn::SyncConn::out_seq`]).
fn out_seq_data(d: &[u8]) -> Option<(u32, u32, u32)> {
    let (init, delta, prev) = (be32(d, 12)?, be32(d, 16)?, be32(d, 20)?);
    (delta != 0).then_some((init, delta, prev))
}

/// A decoded message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version (0 or 1).
    pub version: u8,
    /// Sync id of the sender.
    pub syncid: u8,
    /// Number of records announced.
    pub nr_conns: u8,
    /// Message size announced (equals the datagram length).
    pub size: u16,
}

/// Why a message (or a record of it) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than a header.
    #[error("message too short ({0} bytes)")]
    TooShort(usize),
    /// The header's size differs from the datagram's length (`buflen != size`).
    #[error("size {header} in the header, {actual} received")]
    SizeMismatch {
        /// Size announced.
        header: u16,
        /// Bytes received.
        actual: usize,
    },
    /// A record runs past the end of the message.
    #[error("record {0} truncated")]
    Truncated(u8),
    /// A record's length field is smaller than its fixed part.
    #[error("record {0} has a bad length")]
    BadLength(u8),
    /// A record has a version other than 0 in its `ver_size`.
    #[error("record {0} has an unknown version")]
    RecordVersion(u8),
    /// A malformed option (zero length, past the record, duplicate, wrong size).
    #[error("record {0} has a malformed option")]
    BadOption(u8),
}

/// Why a well-formed record is not installed (the kernel skips it and goes on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// An unknown option without the optional flag.
    MandatoryOption(u8),
    /// A persistence-engine name (rvs has no persistence engines).
    PersistenceEngine,
}

/// The message's records: decoded ones, and records skipped for a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// A record to install.
    Conn(SyncConn),
    /// A well-formed record the receiver skips.
    Skipped(Skip),
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn addr(b: &[u8], at: usize, v6: bool) -> Option<Addr> {
    if v6 {
        let a: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
        Some(Addr(a))
    } else {
        be32(b, at).map(Addr::from_v4_bits)
    }
}

fn put_addr(out: &mut Vec<u8>, a: &Addr, v6: bool) {
    if v6 {
        out.extend_from_slice(&a.0);
    } else {
        out.extend_from_slice(&a.0[12..16]);
    }
}

/// Reads a message header; checks the length and tells v1 from v0 as the kernel does
/// (v1 only when version == 1, reserved == 0 and spare == 0).
pub fn decode_header(buf: &[u8]) -> Result<Header, DecodeError> {
    if buf.len() < HEADER_V0_LEN {
        return Err(DecodeError::TooShort(buf.len()));
    }
    let size = be16(buf, 2).ok_or(DecodeError::TooShort(buf.len()))?;
    if usize::from(size) != buf.len() {
        return Err(DecodeError::SizeMismatch {
            header: size,
            actual: buf.len(),
        });
    }
    if buf.len() >= HEADER_LEN && buf[0] == 0 && buf[5] == SYNC_PROTO_VER && buf[6..8] == [0, 0] {
        return Ok(Header {
            version: 1,
            syncid: buf[1],
            nr_conns: buf[4],
            size,
        });
    }
    Ok(Header {
        version: 0,
        syncid: buf[1],
        nr_conns: buf[0],
        size,
    })
}

/// Decodes a whole message into `out` (cleared first), in order. On a malformed record
/// the records before it stay in `out` and the error is returned (the kernel applies
/// them too and drops the rest).
pub fn decode(buf: &[u8], out: &mut Vec<Record>) -> Result<Header, DecodeError> {
    out.clear();
    let h = decode_header(buf)?;
    if h.version == 0 {
        decode_v0(buf, &h, out)?;
    } else {
        decode_v1(buf, &h, out)?;
    }
    Ok(h)
}

fn decode_v1(buf: &[u8], h: &Header, out: &mut Vec<Record>) -> Result<(), DecodeError> {
    let mut p = HEADER_LEN;
    for i in 0..h.nr_conns {
        let rec = buf.get(p..).ok_or(DecodeError::Truncated(i))?;
        if rec.len() < CONN_V4_LEN {
            return Err(DecodeError::Truncated(i));
        }
        let ver_size = be16(rec, 2).ok_or(DecodeError::Truncated(i))?;
        if ver_size >> VERSION_SHIFT != 0 {
            return Err(DecodeError::RecordVersion(i));
        }
        let size = usize::from(ver_size & SIZE_MASK);
        if size > rec.len() {
            return Err(DecodeError::Truncated(i));
        }
        if size < CONN_V4_LEN {
            return Err(DecodeError::BadLength(i));
        }
        let rec = &rec[..size];
        let v6 = rec[0] & STYPE_F_INET6 != 0;
        let fixed = if v6 { CONN_V6_LEN } else { CONN_V4_LEN };
        if size < fixed {
            return Err(DecodeError::BadLength(i));
        }
        let t = DecodeError::Truncated(i);
        let mut c = SyncConn {
            protocol: rec[1],
            v6,
            flags: be32(rec, 4).ok_or(t)?,
            state: be16(rec, 8).ok_or(t)?,
            cport: be16(rec, 10).ok_or(t)?,
            vport: be16(rec, 12).ok_or(t)?,
            dport: be16(rec, 14).ok_or(t)?,
            fwmark: be32(rec, 16).ok_or(t)?,
            timeout: be32(rec, 20).ok_or(t)?,
            caddr: addr(rec, 24, v6).ok_or(t)?,
            vaddr: addr(rec, if v6 { 40 } else { 28 }, v6).ok_or(t)?,
            daddr: addr(rec, if v6 { 56 } else { 32 }, v6).ok_or(t)?,
            local: None,
            in_seq: None,
            out_seq: None,
        };
        let mut skip = None;
        let mut seen = 0u32;
        let mut q = fixed;
        while q < size {
            let bad = DecodeError::BadOption(i);
            if q + 2 > size {
                return Err(bad);
            }
            let (ty, len) = (rec[q], usize::from(rec[q + 1]));
            q += 2;
            if len == 0 || q + len > size {
                return Err(bad);
            }
            let data = &rec[q..q + len];
            let base = ty & !OPT_F_OPTIONAL;
            if base < 32 {
                if seen & (1 << base) != 0 {
                    return Err(bad);
                }
                seen |= 1 << base;
            }
            match ty {
                OPT_FULLNAT => {
                    // The LIP's own family, by the length (not the record's).
                    let lip_v6 = match len {
                        6 => false,
                        18 => true,
                        _ => return Err(bad),
                    };
                    if c.local.is_some() {
                        return Err(bad);
                    }
                    let a = addr(data, 0, lip_v6).ok_or(bad)?;
                    let port = be16(data, len - 2).ok_or(bad)?;
                    c.local = Some((a, port));
                }
                _ => match base {
                    OPT_SEQ_DATA => {
                        if len != SEQ_DATA_LEN {
                            return Err(bad);
                        }
                        c.in_seq = seq_data(data);
                        c.out_seq = out_seq_data(data);
                    }
                    OPT_PE_DATA => {}
                    OPT_PE_NAME => {
                        if len > PE_NAME_MAXLEN {
                            return Err(bad);
                        }
                        skip.get_or_insert(Skip::PersistenceEngine);
                    }
                    _ if ty & OPT_F_OPTIONAL != 0 => {}
                    _ => {
                        skip.get_or_insert(Skip::MandatoryOption(ty));
                    }
                },
            }
            q += len;
        }
        out.push(match skip {
            Some(s) => Record::Skipped(s),
            None => Record::Conn(c),
        });
        // Next record on a 4-byte boundary.
        p += (size + 3) & !3;
    }
    Ok(())
}

fn decode_v0(buf: &[u8], h: &Header, out: &mut Vec<Record>) -> Result<(), DecodeError> {
    let mut p = HEADER_V0_LEN;
    for i in 0..h.nr_conns {
        let t = DecodeError::Truncated(i);
        let rec = buf.get(p..p + CONN_V0_LEN).ok_or(t)?;
        let flags = u32::from(be16(rec, 20).ok_or(t)?);
        // The kernel drops a record whose sequence data runs past the end, and the rest.
        let len = if flags & F_SEQ_MASK != 0 {
            CONN_V0_LEN + SEQ_DATA_LEN
        } else {
            CONN_V0_LEN
        };
        if buf.len() < p + len {
            return Err(t);
        }
        out.push(Record::Conn(SyncConn {
            protocol: rec[1],
            v6: false,
            flags,
            state: be16(rec, 22).ok_or(t)?,
            cport: be16(rec, 2).ok_or(t)?,
            vport: be16(rec, 4).ok_or(t)?,
            dport: be16(rec, 6).ok_or(t)?,
            fwmark: 0,
            timeout: 0,
            caddr: addr(rec, 8, false).ok_or(t)?,
            vaddr: addr(rec, 12, false).ok_or(t)?,
            daddr: addr(rec, 16, false).ok_or(t)?,
            local: None,
            in_seq: if len > CONN_V0_LEN {
                seq_data(&buf[p + CONN_V0_LEN..p + len])
            } else {
                None
            },
            out_seq: if len > CONN_V0_LEN {
                out_seq_data(&buf[p + CONN_V0_LEN..p + len])
            } else {
                None
            },
        }));
        p += len;
    }
    Ok(())
}

/// The magic of a [`Hello`] block.
pub const HELLO_MAGIC: [u8; 4] = *b"RVSG";
/// The version of a [`Hello`] block this module writes and reads.
pub const HELLO_VERSION: u8 = 1;
/// Length of a [`Hello`] block without its LIPs.
pub const HELLO_FIXED_LEN: usize = 14;
/// Length of the block's tail after the LIPs (incarnation, bulk sync done).
pub const HELLO_TAIL_LEN: usize = 16;

/// What a group member tells its peers in each heartbeat: how it slices FULLNAT ports
/// (its worker count and local port range, which must be the group's) and its own LIPs
/// (those a survivor takes over when it dies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    /// Worker count.
    pub workers: u16,
    /// FULLNAT local port range (inclusive).
    pub lport_range: (u16, u16),
    /// Its own LIPs (the union of its services' pools), sorted, without duplicates.
    pub lips: Vec<Ipv4Addr>,
    /// A number fixed for the life of the sender's rvsd and new at each start (0: an
    /// older rvs that sends none): a peer whose incarnation changes restarted, however
    /// short its silence, and is due a bulk sync.
    pub incarnation: u64,
    /// The incarnation of the receiver to which the sender has completed a bulk sync
    /// (0: none): what tells a joining director that this peer's sessions have all
    /// arrived.
    pub bulk_done_for: u64,
}

/// Why a hello block was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The message is not a v1 message without records.
    #[error("not a heartbeat")]
    NotHeartbeat,
    /// The block is shorter than its fixed part or its LIP count says.
    #[error("hello truncated")]
    Truncated,
    /// An unknown version.
    #[error("hello version {0}")]
    Version(u8),
    /// A port range whose low end is above its high end, or no worker.
    #[error("bad worker count or port range")]
    Bad,
}

/// A heartbeat from `syncid` carrying `hello` (as many LIPs as fit `maxlen`).
pub fn encode_hello(syncid: u8, hello: &Hello, maxlen: usize) -> Vec<u8> {
    let room = maxlen.saturating_sub(HEADER_LEN + HELLO_FIXED_LEN + HELLO_TAIL_LEN) / 4;
    let lips = &hello.lips[..hello.lips.len().min(room).min(usize::from(u16::MAX))];
    let mut b = Vec::with_capacity(HEADER_LEN + HELLO_FIXED_LEN + 4 * lips.len() + HELLO_TAIL_LEN);
    b.extend_from_slice(&[0, syncid, 0, 0, 0, SYNC_PROTO_VER, 0, 0]);
    b.extend_from_slice(&HELLO_MAGIC);
    b.extend_from_slice(&[HELLO_VERSION, 0]);
    b.extend_from_slice(&hello.workers.to_be_bytes());
    b.extend_from_slice(&hello.lport_range.0.to_be_bytes());
    b.extend_from_slice(&hello.lport_range.1.to_be_bytes());
    b.extend_from_slice(&(lips.len() as u16).to_be_bytes());
    for l in lips {
        b.extend_from_slice(&l.octets());
    }
    b.extend_from_slice(&hello.incarnation.to_be_bytes());
    b.extend_from_slice(&hello.bulk_done_for.to_be_bytes());
    let size = b.len() as u16;
    b[2..4].copy_from_slice(&size.to_be_bytes());
    b
}

/// The hello block of a message: `Ok(None)` for a message without one (a kernel's empty
/// message, an older rvs's heartbeat), an error for a v1 heartbeat whose block is
/// malformed, and [`HelloError::NotHeartbeat`] for anything but a v1 message without
/// records.
pub fn decode_hello(msg: &[u8]) -> Result<Option<Hello>, HelloError> {
    let h = decode_header(msg).map_err(|_| HelloError::NotHeartbeat)?;
    if h.version != 1 || h.nr_conns != 0 {
        return Err(HelloError::NotHeartbeat);
    }
    let b = &msg[HEADER_LEN..];
    if b.len() < HELLO_MAGIC.len() || b[..4] != HELLO_MAGIC {
        return Ok(None);
    }
    if b.len() < HELLO_FIXED_LEN {
        return Err(HelloError::Truncated);
    }
    if b[4] != HELLO_VERSION {
        return Err(HelloError::Version(b[4]));
    }
    let t = HelloError::Truncated;
    let workers = be16(b, 6).ok_or(t)?;
    let lport_range = (be16(b, 8).ok_or(t)?, be16(b, 10).ok_or(t)?);
    let count = usize::from(be16(b, 12).ok_or(t)?);
    if workers == 0 || lport_range.0 > lport_range.1 {
        return Err(HelloError::Bad);
    }
    let end = HELLO_FIXED_LEN + 4 * count;
    let list = b.get(HELLO_FIXED_LEN..end).ok_or(t)?;
    // The tail: absent from an older rvs's hello, else whole.
    let (incarnation, bulk_done_for) = match b.len() - end {
        0 => (0, 0),
        n if n >= HELLO_TAIL_LEN => (be64(b, end).ok_or(t)?, be64(b, end + 8).ok_or(t)?),
        _ => return Err(t),
    };
    let mut lips: Vec<Ipv4Addr> = list
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect();
    lips.sort();
    lips.dedup();
    Ok(Some(Hello {
        workers,
        lport_range,
        lips,
        incarnation,
        bulk_done_for,
    }))
}

/// Builds v1 messages of at most `maxlen` bytes (the sync daemon's `sync_maxlen`).
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    maxlen: usize,
    syncid: u8,
}

impl MessageBuilder {
    /// A builder for messages of at most `maxlen` bytes (raised to fit one record) from
    /// `syncid`. Allocates its buffer once.
    pub fn new(syncid: u8, maxlen: usize) -> MessageBuilder {
        let maxlen = maxlen.clamp(HEADER_LEN + MAX_RECORD_LEN, MAX_UDP_PAYLOAD);
        let mut b = MessageBuilder {
            buf: Vec::with_capacity(maxlen),
            maxlen,
            syncid,
        };
        b.reset();
        b
    }

    /// Empties the message.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf
            .extend_from_slice(&[0, self.syncid, 0, HEADER_LEN as u8, 0, SYNC_PROTO_VER, 0, 0]);
    }

    /// Records in the message.
    pub fn len(&self) -> usize {
        usize::from(self.buf[4])
    }

    /// True when the message holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a record; `false` (and nothing written) when it does not fit: send
    /// [`MessageBuilder::bytes`], [`MessageBuilder::reset`], and push again.
    pub fn push(&mut self, c: &SyncConn) -> bool {
        let len = encoded_len(c);
        let pad = (4 - self.buf.len() % 4) % 4;
        if self.buf.len() + pad + len > self.maxlen || self.buf[4] == u8::MAX {
            return false;
        }
        self.buf.resize(self.buf.len() + pad, 0);
        let v6 = is_v6_record(c);
        let b = &mut self.buf;
        b.push(if v6 { STYPE_F_INET6 } else { 0 });
        b.push(c.protocol);
        b.extend_from_slice(&(len as u16 & SIZE_MASK).to_be_bytes());
        b.extend_from_slice(&c.flags.to_be_bytes());
        b.extend_from_slice(&c.state.to_be_bytes());
        b.extend_from_slice(&c.cport.to_be_bytes());
        b.extend_from_slice(&c.vport.to_be_bytes());
        b.extend_from_slice(&c.dport.to_be_bytes());
        b.extend_from_slice(&c.fwmark.to_be_bytes());
        b.extend_from_slice(&c.timeout.to_be_bytes());
        put_addr(b, &c.caddr, v6);
        put_addr(b, &c.vaddr, v6);
        put_addr(b, &c.daddr, v6);
        if let Some((a, port)) = c.local {
            b.push(OPT_FULLNAT);
            b.push(fullnat_opt_len(&a) as u8);
            put_addr(b, &a, !a.is_v4());
            b.extend_from_slice(&port.to_be_bytes());
        }
        if c.in_seq.is_some() || c.out_seq.is_some() {
            let (init, delta) = c.in_seq.unwrap_or((0, 0));
            let (oinit, odelta, oprev) = c.out_seq.unwrap_or((0, 0, 0));
            b.push(OPT_SEQ_DATA);
            b.push(SEQ_DATA_LEN as u8);
            for w in [init, delta, 0, oinit, odelta, oprev] {
                b.extend_from_slice(&w.to_be_bytes());
            }
        }
        let size = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&size.to_be_bytes());
        self.buf[4] += 1;
        true
    }

    /// The message as it goes on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// True when no further IPv4 record with the FULLNAT option would fit.
    pub fn is_full(&self) -> bool {
        self.buf.len() + CONN_V4_LEN + 8 > self.maxlen || self.buf[4] == u8::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FwdMethod;
    use proptest::prelude::*;

    /// The spec's hand-built example (ipvs.md §5): one DR conn, ESTABLISHED, syncid 1,
    /// 203.0.113.5:51234 -> 192.168.1.100:80 -> 10.1.1.2:80.
    const EXAMPLE: &str =
        "00 01 00 2c 01 01 00 00 00 06 00 24 00 00 00 83 00 01 c8 22 00 50 00 50 \
                           00 00 00 00 00 00 03 84 cb 00 71 05 c0 a8 01 64 0a 01 01 02";

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn example_conn() -> SyncConn {
        SyncConn {
            protocol: 6,
            v6: false,
            flags: 0x83, // DROUTE | NOOUTPUT
            state: 1,    // ESTABLISHED
            cport: 51234,
            vport: 80,
            dport: 80,
            fwmark: 0,
            timeout: 900,
            caddr: Addr::v4(203, 0, 113, 5),
            vaddr: Addr::v4(192, 168, 1, 100),
            daddr: Addr::v4(10, 1, 1, 2),
            local: None,
            in_seq: None,
            out_seq: None,
        }
    }

    #[test]
    fn encoder_writes_the_spec_example_byte_for_byte() {
        let mut b = MessageBuilder::new(1, 1472);
        assert!(b.push(&example_conn()));
        assert_eq!(b.bytes(), hex(EXAMPLE).as_slice());
        assert_eq!(b.bytes().len(), 44);
    }

    #[test]
    fn decoder_reads_the_spec_example() {
        let mut out = Vec::new();
        let h = decode(&hex(EXAMPLE), &mut out).unwrap();
        assert_eq!(
            h,
            Header {
                version: 1,
                syncid: 1,
                nr_conns: 1,
                size: 44
            }
        );
        assert_eq!(out, vec![Record::Conn(example_conn())]);
    }

    #[test]
    fn fullnat_option_round_trips_and_is_optional_for_kernels() {
        let mut c = example_conn();
        c.flags = 5;
        c.local = Some((Addr::v4(10, 20, 0, 200), 40001));
        let mut b = MessageBuilder::new(7, 1472);
        assert!(b.push(&c));
        assert!(b.push(&example_conn()));
        let m = b.bytes().to_vec();
        assert_eq!(m.len(), 8 + 44 + 36);
        // The option: type 0x60 (optional flag 0x40 set), length 6, LIP, lport.
        assert_eq!(&m[8 + 36..8 + 44], &[0x60, 6, 10, 20, 0, 200, 0x9c, 0x41]);
        assert_eq!(
            u16::from_be_bytes([m[10], m[11]]),
            44,
            "ver_size counts the option"
        );
        let mut out = Vec::new();
        decode(&m, &mut out).unwrap();
        assert_eq!(out, vec![Record::Conn(c), Record::Conn(example_conn())]);
    }

    #[test]
    fn batching_respects_maxlen_and_record_count() {
        let mut b = MessageBuilder::new(0, 1472);
        let mut n = 0;
        while b.push(&example_conn()) {
            n += 1;
        }
        assert_eq!(n, (1472 - 8) / 36);
        assert!(b.bytes().len() <= 1472);
        assert!(b.is_full());
        let mut big = MessageBuilder::new(0, 65507);
        let mut n = 0;
        while big.push(&example_conn()) {
            n += 1;
        }
        assert_eq!(n, 255, "nr_conns is one byte");
    }

    #[test]
    fn header_checks_like_the_kernel() {
        let mut m = hex(EXAMPLE);
        m.push(0);
        assert_eq!(
            decode(&m, &mut Vec::new()),
            Err(DecodeError::SizeMismatch {
                header: 44,
                actual: 45
            })
        );
        assert_eq!(
            decode(&[0, 1], &mut Vec::new()),
            Err(DecodeError::TooShort(2))
        );
        // spare != 0: not a v1 message; read as v0 whose record runs past the end.
        let mut m = hex(EXAMPLE);
        m[7] = 1;
        let mut out = Vec::new();
        assert!(decode(&m, &mut out).is_err() || decode_header(&m).unwrap().version == 0);
    }

    #[test]
    fn version_0_messages_are_decoded() {
        // v0: nr_conns 1, syncid 3, size 28; record: reserved, proto, cport, vport, dport,
        // caddr, vaddr, daddr, be16 flags (Masq|INACTIVE), be16 state (SYN_RECV).
        let m = hex(
            "01 03 00 1c 00 06 c8 22 00 50 1f 90 cb 00 71 05 c0 a8 01 64 0a 01 01 02 01 00 00 03",
        );
        let mut out = Vec::new();
        let h = decode(&m, &mut out).unwrap();
        assert_eq!((h.version, h.syncid, h.nr_conns), (0, 3, 1));
        let Record::Conn(c) = out[0] else { panic!() };
        assert_eq!(
            (c.cport, c.vport, c.dport, c.flags, c.state),
            (51234, 80, 8080, 0x100, 3)
        );
        assert_eq!(c.daddr, Addr::v4(10, 1, 1, 2));
        assert_eq!(c.timeout, 0, "v0 carries no timeout");
    }

    #[test]
    fn unknown_options_mandatory_skip_optional_ignored() {
        let mut m = hex(EXAMPLE);
        // Record grows by an option of 4 bytes (2 header + 2 data).
        m.extend_from_slice(&[0x45, 2, 0xaa, 0xbb]);
        m[3] = 48;
        m[11] = 40;
        let mut out = Vec::new();
        decode(&m, &mut out).unwrap();
        assert_eq!(out, vec![Record::Conn(example_conn())]);
        m[44] = 0x05;
        decode(&m, &mut out).unwrap();
        assert_eq!(out, vec![Record::Skipped(Skip::MandatoryOption(5))]);
        m[45] = 0;
        assert_eq!(decode(&m, &mut out), Err(DecodeError::BadOption(0)));
    }

    #[test]
    fn ipv6_records_round_trip() {
        let mut c = example_conn();
        c.v6 = true;
        c.caddr = Addr([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
        c.vaddr = Addr([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        c.daddr = Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        c.local = Some((
            Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]),
            2048,
        ));
        let mut b = MessageBuilder::new(1, 1472);
        assert!(b.push(&c));
        assert_eq!(b.bytes().len(), 8 + 92);
        let mut out = Vec::new();
        decode(b.bytes(), &mut out).unwrap();
        assert_eq!(out, vec![Record::Conn(c)]);
    }

    /// An IPv6 address from its text.
    fn a6(s: &str) -> Addr {
        Addr::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    /// An IPv6 NAT session, ESTABLISHED: [2001:db8:1::2]:40001 -> [2001:db8:1::100]:80
    /// -> [2001:db8:2::11]:8080.
    fn nat6_conn() -> SyncConn {
        SyncConn {
            protocol: 6,
            v6: true,
            flags: 0, // MASQ
            state: 1, // ESTABLISHED
            cport: 40001,
            vport: 80,
            dport: 8080,
            fwmark: 0,
            timeout: 900,
            caddr: a6("2001:db8:1::2"),
            vaddr: a6("2001:db8:1::100"),
            daddr: a6("2001:db8:2::11"),
            local: None,
            in_seq: None,
            out_seq: None,
        }
    }

    /// The kernel's message for [`nat6_conn`], written from `struct ip_vs_sync_mesg` and
    /// `struct ip_vs_sync_v6` (include/net/ip_vs.h, net/netfilter/ipvs/ip_vs_sync.c).
    const KERNEL_V6_NAT: &str = concat!(
        // ip_vs_sync_mesg: reserved 0, syncid 1, size 80, nr_conns 1, version 1, spare 0
        "00 01 00 50 01 01 00 00 ",
        // type STYPE_F_INET6, protocol TCP, ver_size (0 << 12 | 72)
        "01 06 00 48 ",
        // flags (IP_VS_CONN_F_MASQ), state (ESTABLISHED)
        "00 00 00 00 00 01 ",
        // cport 40001, vport 80, dport 8080
        "9c 41 00 50 1f 90 ",
        // fwmark 0, timeout 900 s
        "00 00 00 00 00 00 03 84 ",
        // caddr 2001:db8:1::2
        "20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 02 ",
        // vaddr 2001:db8:1::100
        "20 01 0d b8 00 01 00 00 00 00 00 00 00 00 01 00 ",
        // daddr 2001:db8:2::11
        "20 01 0d b8 00 02 00 00 00 00 00 00 00 00 00 11",
    );

    #[test]
    fn an_ipv6_nat_record_is_the_kernels_ip_vs_sync_v6() {
        let mut b = MessageBuilder::new(1, 1472);
        assert!(b.push(&nat6_conn()));
        assert_eq!(b.bytes(), hex(KERNEL_V6_NAT).as_slice());
        assert_eq!(b.bytes().len(), HEADER_LEN + CONN_V6_LEN);
        let mut out = Vec::new();
        decode(&hex(KERNEL_V6_NAT), &mut out).unwrap();
        assert_eq!(out, vec![Record::Conn(nat6_conn())]);
    }

    #[test]
    fn a_nat64_session_is_an_ipv6_record_with_its_server_mapped_and_an_ipv4_lip() {
        // [2001:db8:1::2]:40001 -> [2001:db8:1::100]:80, FULLNAT over LIP 10.20.0.200:1027
        // to 10.20.0.11:80.
        let mut c = nat6_conn();
        c.flags = FwdMethod::FullNat as u32;
        c.dport = 80;
        c.daddr = Addr::v4(10, 20, 0, 11);
        c.local = Some((Addr::v4(10, 20, 0, 200), 1027));
        let mut b = MessageBuilder::new(1, 1472);
        assert!(b.push(&c));
        let m = b.bytes().to_vec();
        // 72 + 2 + 6 = 80 bytes, no padding.
        assert_eq!(m.len(), HEADER_LEN + 80);
        assert_eq!(m[HEADER_LEN], STYPE_F_INET6);
        assert_eq!(u16::from_be_bytes([m[10], m[11]]), 80);
        let daddr = &m[HEADER_LEN + 56..HEADER_LEN + 72];
        assert_eq!(
            daddr,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 20, 0, 11]
        );
        assert_eq!(
            &m[HEADER_LEN + 72..],
            &[0x60, 6, 10, 20, 0, 200, 0x04, 0x03],
            "the option: the IPv4 LIP in 4 bytes, then the port"
        );
        let mut out = Vec::new();
        decode(&m, &mut out).unwrap();
        assert_eq!(out, vec![Record::Conn(c)]);
        let Record::Conn(d) = out[0] else { panic!() };
        assert!(d.daddr.is_v4() && d.local.unwrap().0.is_v4());
        // An IPv4 LIP written in 16 bytes (IPv4-mapped) reads as the same IPv4 LIP; any
        // other length is refused.
        let mut long = m[..HEADER_LEN + 72].to_vec();
        long.extend_from_slice(&[0x60, 18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        long.extend_from_slice(&[10, 20, 0, 200, 0x04, 0x03, 0, 0]);
        long[10..12].copy_from_slice(&92u16.to_be_bytes());
        let n = long.len() as u16;
        long[2..4].copy_from_slice(&n.to_be_bytes());
        decode(&long, &mut out).unwrap();
        assert_eq!(out, vec![Record::Conn(c)]);
        let mut bad = m.clone();
        bad[HEADER_LEN + 73] = 5;
        assert_eq!(decode(&bad, &mut out), Err(DecodeError::BadOption(0)));
    }

    #[test]
    fn a_record_with_an_ipv6_address_is_never_written_as_ipv4() {
        // The type bit unset but the real server IPv6 (an IPv4 service's IPv6 tunnel
        // server): written as an IPv6 record, the IPv4 addresses mapped.
        let mut c = example_conn();
        c.daddr = a6("2001:db8:2::11");
        let mut b = MessageBuilder::new(1, 1472);
        assert!(b.push(&c));
        assert_eq!(b.bytes().len(), HEADER_LEN + CONN_V6_LEN);
        let mut out = Vec::new();
        decode(b.bytes(), &mut out).unwrap();
        assert_eq!(out, vec![Record::Conn(SyncConn { v6: true, ..c })]);
    }

    #[test]
    fn a_record_whose_length_is_zero_is_refused() {
        // Found by the sync_wire fuzz target: the spec example with ver_size 0 (and 4
        // bytes missing) made the decoder index an empty record and panic.
        let mut m = hex(EXAMPLE);
        m[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(decode(&m, &mut Vec::new()), Err(DecodeError::BadLength(0)));
        // Any length below the fixed part, up to the IPv4 record's.
        for len in 0..CONN_V4_LEN as u16 {
            m[10..12].copy_from_slice(&len.to_be_bytes());
            assert_eq!(decode(&m, &mut Vec::new()), Err(DecodeError::BadLength(0)));
        }
    }

    #[test]
    fn a_v0_record_with_truncated_sequence_data_is_not_decoded() {
        // Found by the sync_wire fuzz target: the record was returned with the error (the
        // kernel drops it: only the records before a malformed one are applied).
        let rec = "00 06 c8 22 00 50 1f 90 cb 00 71 05 c0 a8 01 64 0a 01 01 02 02 00 00 01";
        let mut m = hex("02 03 00 00");
        m.extend(hex(&rec.replace("02 00 00 01", "01 00 00 01")));
        m.extend(hex(rec));
        m.extend([0; SEQ_DATA_LEN - 1]);
        let len = m.len() as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        let mut out = Vec::new();
        assert_eq!(decode(&m, &mut out), Err(DecodeError::Truncated(1)));
        assert_eq!(
            out.len(),
            1,
            "only the record before the truncated one: {out:?}"
        );
    }

    /// The seed messages of the `sync_wire` fuzz target (`dataplane/fuzz/seeds/sync_wire`),
    /// built by the encoder (and the v0 example by hand): the NAT/DR record of the spec,
    /// FULLNAT with its option next to a plain record, IPv6 FULLNAT, the kernel's IPv6
    /// NAT record, NAT64 (IPv4 server and LIP in an IPv6 record), a record with the
    /// kernel's options (sequence data, an unknown optional one), and v0 with sequence
    /// data.
    fn fuzz_seeds() -> Vec<(&'static str, Vec<u8>)> {
        let mut seeds = vec![("v1_dr", hex(EXAMPLE))];
        let mut fnat = example_conn();
        fnat.flags = 5;
        fnat.local = Some((Addr::v4(10, 20, 0, 200), 40001));
        let mut b = MessageBuilder::new(7, 1472);
        assert!(b.push(&fnat) && b.push(&example_conn()));
        seeds.push(("v1_fullnat", b.bytes().to_vec()));
        let mut v6 = fnat;
        v6.v6 = true;
        v6.caddr = Addr([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
        v6.vaddr = Addr([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        v6.daddr = Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v6.local = Some((
            Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]),
            2048,
        ));
        let mut b = MessageBuilder::new(1, 1472);
        assert!(b.push(&v6) && b.push(&example_conn()));
        seeds.push(("v1_ipv6", b.bytes().to_vec()));
        // The kernel's IPv6 NAT record, and a NAT64 one (IPv6 record, IPv4-mapped real
        // server, 6-byte FULLNAT option) next to an IPv4 record.
        seeds.push(("v1_ipv6_nat", hex(KERNEL_V6_NAT)));
        let mut n64 = nat6_conn();
        n64.flags = FwdMethod::FullNat as u32;
        n64.daddr = Addr::v4(10, 20, 0, 11);
        n64.local = Some((Addr::v4(10, 20, 0, 200), 1027));
        let mut b = MessageBuilder::new(1, 1472);
        assert!(b.push(&n64) && b.push(&example_conn()));
        seeds.push(("v1_nat64", b.bytes().to_vec()));
        // The spec's record with the kernel's sequence data (24 bytes) and an unknown
        // optional option: 36 + 26 + 4 = 66 bytes, padded to 68.
        let mut m = hex(EXAMPLE);
        m.extend_from_slice(&[OPT_SEQ_DATA, SEQ_DATA_LEN as u8]);
        m.extend((0..SEQ_DATA_LEN as u8).map(|i| i * 7));
        m.extend_from_slice(&[0x45, 2, 0xaa, 0xbb, 0, 0]);
        m[10..12].copy_from_slice(&66u16.to_be_bytes());
        let len = m.len() as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        seeds.push(("v1_options", m));
        // v0: two records, the first with sequence data (flags 0x0600).
        let mut m = hex("02 03 00 00");
        m.extend(hex(
            "00 06 c8 22 00 50 1f 90 cb 00 71 05 c0 a8 01 64 0a 01 01 02 06 00 00 01",
        ));
        m.extend((0..SEQ_DATA_LEN as u8).map(|i| i * 3));
        m.extend(hex(
            "00 11 c8 23 00 35 00 35 cb 00 71 06 c0 a8 01 64 0a 01 01 03 01 00 00 00",
        ));
        let len = m.len() as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        seeds.push(("v0_seq", m));
        seeds
    }

    #[test]
    fn hello_fuzz_seed_is_current() {
        // RVS_WRITE_FUZZ_SEEDS=1 cargo test -p rvs-dataplane hello_fuzz_seed  (re)writes it.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/sync_hello");
        let m = encode_hello(7, &hello(), 1472);
        let path = dir.join("v1_hello");
        if std::env::var_os("RVS_WRITE_FUZZ_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &m).unwrap();
        }
        assert_eq!(std::fs::read(&path).ok(), Some(m), "seed is current");
    }

    fn hello() -> Hello {
        Hello {
            workers: 2,
            lport_range: (1025, 65535),
            lips: vec![Ipv4Addr::new(10, 20, 0, 200), Ipv4Addr::new(10, 20, 0, 201)],
            incarnation: 0x0102_0304_0506_0708,
            bulk_done_for: 0x1112_1314_1516_1718,
        }
    }

    #[test]
    fn a_heartbeat_carries_the_hello_and_stays_an_empty_message() {
        let m = encode_hello(7, &hello(), 1472);
        assert_eq!(m.len(), HEADER_LEN + HELLO_FIXED_LEN + 8 + HELLO_TAIL_LEN);
        // What a kernel (and this decoder) reads: a v1 message of syncid 7, no record.
        let mut out = Vec::new();
        let h = decode(&m, &mut out).unwrap();
        assert_eq!((h.version, h.syncid, h.nr_conns), (1, 7, 0));
        assert_eq!(usize::from(h.size), m.len());
        assert!(out.is_empty());
        assert_eq!(decode_hello(&m), Ok(Some(hello())));
        // An empty message without the block (a kernel's, an older rvs's): no hello.
        let empty = MessageBuilder::new(7, 1472);
        assert_eq!(decode_hello(empty.bytes()), Ok(None));
        // A message with records is not a heartbeat.
        let mut b = MessageBuilder::new(7, 1472);
        b.push(&example_conn());
        assert_eq!(decode_hello(b.bytes()), Err(HelloError::NotHeartbeat));
        // Truncated, another version, a bad range, no worker: refused, never a panic.
        let lips_end = HEADER_LEN + HELLO_FIXED_LEN + 8;
        for cut in (HEADER_LEN + 4..m.len()).filter(|&c| c != lips_end) {
            let mut t = m[..cut].to_vec();
            t[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
            assert_eq!(decode_hello(&t), Err(HelloError::Truncated), "{cut}");
        }
        // An older rvs's hello (no tail): incarnation 0, no bulk sync done.
        let mut old = m[..lips_end].to_vec();
        old[2..4].copy_from_slice(&(lips_end as u16).to_be_bytes());
        let h = decode_hello(&old).unwrap().unwrap();
        assert_eq!((h.incarnation, h.bulk_done_for, h.lips.len()), (0, 0, 2));
        let mut v = m.clone();
        v[HEADER_LEN + 4] = 9;
        assert_eq!(decode_hello(&v), Err(HelloError::Version(9)));
        let mut r = m.clone();
        r[HEADER_LEN + 10..HEADER_LEN + 12].copy_from_slice(&1024u16.to_be_bytes());
        assert_eq!(decode_hello(&r), Err(HelloError::Bad));
        let mut w = m.clone();
        w[HEADER_LEN + 6..HEADER_LEN + 8].copy_from_slice(&[0, 0]);
        assert_eq!(decode_hello(&w), Err(HelloError::Bad));
        // Only the LIPs that fit the length given go.
        let many = Hello {
            lips: (0..1000u32)
                .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
                .collect(),
            ..hello()
        };
        let m = encode_hello(7, &many, 1472);
        assert!(m.len() <= 1472);
        assert_eq!(decode_hello(&m).unwrap().unwrap().lips.len(), 358);
    }

    #[test]
    fn fuzz_seeds_decode_and_are_current() {
        // RVS_WRITE_FUZZ_SEEDS=1 cargo test -p rvs-dataplane fuzz_seeds  (re)writes them.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/sync_wire");
        let write = std::env::var_os("RVS_WRITE_FUZZ_SEEDS").is_some();
        if write {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for (name, m) in fuzz_seeds() {
            let mut out = Vec::new();
            let h = decode(&m, &mut out).unwrap_or_else(|e| panic!("seed {name}: {e}"));
            assert_eq!(out.len(), usize::from(h.nr_conns), "seed {name}");
            assert!(out.iter().all(|r| matches!(r, Record::Conn(_))), "{name}");
            let path = dir.join(name);
            if write {
                std::fs::write(&path, &m).unwrap();
            }
            assert_eq!(std::fs::read(&path).ok(), Some(m), "seed {name} is current");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut out = Vec::new();
            let _ = decode(&data, &mut out);
        }

        #[test]
        fn random_messages_with_a_valid_header_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..600), nr in any::<u8>()
        ) {
            let mut m = vec![0, 1, 0, 0, nr, 1, 0, 0];
            m.extend_from_slice(&body);
            let len = m.len() as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
            let mut out = Vec::new();
            let _ = decode(&m, &mut out);
            prop_assert!(out.len() <= usize::from(nr));
        }

        #[test]
        fn encoded_records_decode_to_themselves(
            cport in any::<u16>(), state in 0u16..11, timeout in any::<u32>(), flags in any::<u32>(),
            lport in proptest::option::of(any::<u16>()), n in 1usize..60
        ) {
            let mut c = example_conn();
            c.cport = cport; c.state = state; c.timeout = timeout; c.flags = flags;
            c.local = lport.map(|p| (Addr::v4(10, 2, 0, 1), p));
            let mut b = MessageBuilder::new(9, 1472);
            let mut pushed = 0;
            for _ in 0..n { if b.push(&c) { pushed += 1; } }
            let mut out = Vec::new();
            let h = decode(b.bytes(), &mut out).unwrap();
            prop_assert_eq!(usize::from(h.nr_conns), pushed);
            prop_assert!(out.iter().all(|r| *r == Record::Conn(c)));
        }

        #[test]
        fn ipv6_and_nat64_records_decode_to_themselves(
            words in proptest::array::uniform4(any::<u32>()), cport in any::<u16>(),
            lport in any::<u16>(), server_v4 in any::<bool>(), lip in 0u8..3
        ) {
            let mut c = nat6_conn();
            let mut a = [0u8; 16];
            for (i, w) in words.iter().enumerate() {
                a[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
            }
            a[0] = 0x20; // never IPv4-mapped
            c.caddr = Addr(a);
            c.cport = cport;
            if server_v4 {
                c.daddr = Addr::from_v4_bits(words[3]);
            }
            c.flags = FwdMethod::FullNat as u32;
            c.local = match lip {
                0 => None,
                1 => Some((Addr::from_v4_bits(words[2]), lport)),
                _ => Some((Addr(a), lport)),
            };
            let mut b = MessageBuilder::new(9, 1472);
            prop_assert!(b.push(&c) && b.push(&example_conn()) && b.push(&c));
            let mut out = Vec::new();
            decode(b.bytes(), &mut out).unwrap();
            prop_assert_eq!(out, vec![Record::Conn(c), Record::Conn(example_conn()), Record::Conn(c)]);
        }
    }
}
