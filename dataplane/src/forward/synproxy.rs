//! The SYN proxy's bytes: SYN cookies as Linux's syncookies make them, the SYN options
//! parser, the frames the director writes in place (the cookie SYN-ACK from a client's
//! SYN, the SYN to the real server from the client's ACK, the ACK to the real server
//! from its SYN-ACK, a reset to the client) and the translation of an established
//! proxied connection's segments.
//!
//! **Cookies** (`net/ipv4/syncookies.c`): the SYN-ACK's sequence number is
//! `h1 + isn + (t << 24) + ((h2 + mssind) & 0xffffff)`, where `h1`, `h2` are the two
//! halves of a SipHash-2-4 of the 4-tuple and the minute counter `t` under the minute's
//! key, `isn` the client's initial sequence number and `mssind` the index of the
//! client's MSS in [`MSS_TABLE`]. The keys are derived from a random master secret per
//! minute; a cookie of this minute or the one before is accepted. With timestamps,
//! the client's window scale and SACK-permitted ride in the low 6 bits of the SYN-ACK's
//! TSval (the client echoes them in every TSecr), as Linux does; without timestamps
//! they are lost, and the SYN-ACK offers only the MSS (Linux clears them too).
//!
//! Nothing here allocates; every function works on a frame in place and changes
//! nothing when it refuses one.

use crate::buf::PacketBuf;
use crate::wire::checksum;
use crate::wire::tcp::{be16, be32, map_sack, next_option, set_be32_csum};

/// The MSS values a cookie can carry (Linux's `msstab`): the client's MSS rounds down
/// to one of them.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// The window scale the director offers a client that asked for scaling (the real
/// server's is most often this too: Linux's with its default buffers).
pub const OUR_WSCALE: u8 = 7;

/// The largest window scale (RFC 7323).
pub const MAX_WSCALE: u8 = 14;

/// The receive window the director's SYN-ACK offers (unscaled, as in every SYN).
pub const SYNACK_WINDOW: u16 = 65535;

/// The TTL of the frames the director originates.
const TTL: u8 = 64;

const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
/// Low bits of a cookie TSval holding options (4: window scale, 1: SACK).
const TS_OPT_BITS: u32 = 6;
const TS_OPT_MASK: u32 = (1 << TS_OPT_BITS) - 1;
/// "No window scale" in the TSval's option bits.
const WS_NONE: u32 = 0xf;
const SACK_BIT: u32 = 0x10;

/// SipHash-2-4 of `msg` under key `k`.
pub fn siphash24(k: [u64; 2], msg: &[u8]) -> u64 {
    let mut v = [
        k[0] ^ 0x736f_6d65_7073_6575,
        k[1] ^ 0x646f_7261_6e64_6f6d,
        k[0] ^ 0x6c79_6765_6e65_7261,
        k[1] ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = msg.chunks_exact(8);
    for c in &mut chunks {
        let m = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    last[7] = msg.len() as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    round(&mut v);
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// SipHash-2-4 of a 16-byte message given as its two little-endian words: the same
/// value as [`siphash24`] of those bytes, in straight-line code (two message blocks and
/// the length block, no buffer, no loop over bytes): the cookie's hash.
#[inline]
pub fn siphash24_16(k: [u64; 2], m0: u64, m1: u64) -> u64 {
    let mut v0 = k[0] ^ 0x736f_6d65_7073_6575;
    let mut v1 = k[1] ^ 0x646f_7261_6e64_6f6d;
    let mut v2 = k[0] ^ 0x6c79_6765_6e65_7261;
    let mut v3 = k[1] ^ 0x7465_6462_7974_6573;
    macro_rules! round {
        () => {
            v0 = v0.wrapping_add(v1);
            v1 = v1.rotate_left(13) ^ v0;
            v0 = v0.rotate_left(32);
            v2 = v2.wrapping_add(v3);
            v3 = v3.rotate_left(16) ^ v2;
            v0 = v0.wrapping_add(v3);
            v3 = v3.rotate_left(21) ^ v0;
            v2 = v2.wrapping_add(v1);
            v1 = v1.rotate_left(17) ^ v2;
            v2 = v2.rotate_left(32);
        };
    }
    // The length block of a 16-byte message: no bytes left, the length in the top byte.
    for m in [m0, m1, 16u64 << 56] {
        v3 ^= m;
        round!();
        round!();
        v0 ^= m;
    }
    v2 ^= 0xff;
    round!();
    round!();
    round!();
    round!();
    v0 ^ v1 ^ v2 ^ v3
}

/// A connection's ends as the client's SYN names them (IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    /// Client address.
    pub saddr: [u8; 4],
    /// Virtual address.
    pub daddr: [u8; 4],
    /// Client port.
    pub sport: u16,
    /// Virtual port.
    pub dport: u16,
}

/// A worker's cookie keys: one per minute, derived from a master secret; the keys of
/// this minute and the one before are kept (a cookie of either is accepted).
#[derive(Clone, Debug)]
pub struct Cookies {
    master: [u64; 2],
    /// The minute of `keys[0]` (`keys[1]` is the minute before's).
    minute: u64,
    keys: [[u64; 2]; 2],
}

impl Cookies {
    /// Keys derived from `master` (random: the cookies' secret).
    pub fn new(master: [u64; 2]) -> Cookies {
        let mut c = Cookies {
            master,
            minute: 0,
            keys: [[0; 2]; 2],
        };
        c.keys = [c.derive(0), c.derive(u64::MAX)];
        c
    }

    fn derive(&self, minute: u64) -> [u64; 2] {
        let m = minute.to_le_bytes();
        let mut b = [0u8; 9];
        b[..8].copy_from_slice(&m);
        let a = siphash24(self.master, &b);
        b[8] = 1;
        [a, siphash24(self.master, &b)]
    }

    /// Brings the keys to the minute of `now_ms` (the minute before's key kept).
    #[inline]
    fn advance(&mut self, now_ms: u64) {
        let minute = now_ms / 60_000;
        if minute == self.minute {
            return;
        }
        let prev = if minute == self.minute + 1 {
            self.keys[0]
        } else {
            self.derive(minute.wrapping_sub(1))
        };
        self.keys = [self.derive(minute), prev];
        self.minute = minute;
    }

    /// SipHash-2-4 of the 16 bytes saddr, daddr, sport and dport (network order), `t`
    /// (little-endian), as two words.
    #[inline]
    fn hash(key: [u64; 2], e: &Ends, t: u32) -> (u32, u32) {
        let m0 =
            u64::from(u32::from_le_bytes(e.saddr)) | u64::from(u32::from_le_bytes(e.daddr)) << 32;
        let ports = u32::from_le_bytes([
            (e.sport >> 8) as u8,
            e.sport as u8,
            (e.dport >> 8) as u8,
            e.dport as u8,
        ]);
        let m1 = u64::from(ports) | u64::from(t) << 32;
        let h = siphash24_16(key, m0, m1);
        ((h >> 32) as u32, h as u32)
    }

    /// The cookie (the SYN-ACK's sequence number) for a SYN of `e` with sequence number
    /// `isn` and MSS index `mssind` (< 4), at `now_ms`.
    pub fn make(&mut self, e: &Ends, isn: u32, mssind: u8, now_ms: u64) -> u32 {
        self.advance(now_ms);
        let t = self.minute as u32;
        let (h1, h2) = Self::hash(self.keys[0], e, t);
        h1.wrapping_add(isn)
            .wrapping_add(t << COOKIE_BITS)
            .wrapping_add(h2.wrapping_add(u32::from(mssind & 3)) & COOKIE_MASK)
    }

    /// The MSS index a cookie of `e` carries, for the client's ACK whose sequence number
    /// is `isn + 1` and acknowledgement `cookie + 1`, when the cookie was made this
    /// minute or the one before; `None` for a stale or forged one.
    pub fn check(&mut self, e: &Ends, isn: u32, cookie: u32, now_ms: u64) -> Option<u8> {
        self.advance(now_ms);
        for (k, key) in self.keys.iter().enumerate() {
            let t = self.minute.wrapping_sub(k as u64) as u32;
            let (h1, h2) = Self::hash(*key, e, t);
            let diff = cookie.wrapping_sub(h1).wrapping_sub(isn);
            if diff >> COOKIE_BITS != t & 0xff {
                continue;
            }
            let data = diff.wrapping_sub(t << COOKIE_BITS).wrapping_sub(h2) & COOKIE_MASK;
            if data < MSS_TABLE.len() as u32 {
                return Some(data as u8);
            }
        }
        None
    }
}

/// The index in [`MSS_TABLE`] of the largest entry not above `mss` (0 below the first).
pub fn mss_index(mss: u16) -> u8 {
    MSS_TABLE.iter().rposition(|m| *m <= mss).unwrap_or(0) as u8
}

/// What a SYN's options say (the ones the proxy keeps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynOptions {
    /// MSS (option 2); 0 or absent: none.
    pub mss: u16,
    /// Window scale (option 3), clamped to [`MAX_WSCALE`].
    pub wscale: Option<u8>,
    /// SACK permitted (option 4).
    pub sack: bool,
    /// Timestamps (option 8): TSval, TSecr.
    pub ts: Option<(u32, u32)>,
    /// An option had an absurd value the parser clamped (MSS 0, window scale above 14).
    pub clamped: bool,
}

/// Why a segment's options were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadOptions {
    /// An option's length is under 2 or runs past the header.
    Length,
    /// A known option has the wrong length.
    Size,
}

/// Parses TCP options (`opts`: the bytes between the 20-byte header and the data).
pub fn parse_options(opts: &[u8]) -> Result<SynOptions, BadOptions> {
    let mut o = SynOptions::default();
    let mut p = 0;
    while p < opts.len() {
        match opts[p] {
            0 => break,
            1 => p += 1,
            kind => {
                let len = usize::from(*opts.get(p + 1).ok_or(BadOptions::Length)?);
                if len < 2 || p + len > opts.len() {
                    return Err(BadOptions::Length);
                }
                let v = &opts[p + 2..p + len];
                match kind {
                    2 => {
                        let [a, b] = v else {
                            return Err(BadOptions::Size);
                        };
                        o.mss = u16::from_be_bytes([*a, *b]);
                        o.clamped |= o.mss == 0;
                    }
                    3 => {
                        let [w] = v else {
                            return Err(BadOptions::Size);
                        };
                        o.clamped |= *w > MAX_WSCALE;
                        o.wscale = Some((*w).min(MAX_WSCALE));
                    }
                    4 => {
                        if !v.is_empty() {
                            return Err(BadOptions::Size);
                        }
                        o.sack = true;
                    }
                    8 => {
                        if v.len() != 8 {
                            return Err(BadOptions::Size);
                        }
                        let val = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                        let ecr = u32::from_be_bytes([v[4], v[5], v[6], v[7]]);
                        o.ts = Some((val, ecr));
                    }
                    _ => {}
                }
                p += len;
            }
        }
    }
    Ok(o)
}

/// The options a cookie carries: MSS index, and with timestamps the client's window
/// scale and SACK-permitted (from the low bits of the TSecr its ACK echoes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieOptions {
    /// Index in [`MSS_TABLE`].
    pub mssind: u8,
    /// The client's window scale (only with timestamps).
    pub wscale: Option<u8>,
    /// SACK permitted (only with timestamps).
    pub sack: bool,
    /// The client's ACK carried timestamps: the TSval the director's SYN-ACK sent.
    pub ts: bool,
}

impl CookieOptions {
    /// Packed into a byte (for the session): mss index, wscale (0xf: none), SACK, TS.
    pub fn pack(self) -> u8 {
        let ws = self.wscale.map_or(0xf, |w| w & 0xf);
        (self.mssind & 3) | (ws << 2) | (u8::from(self.sack) << 6) | (u8::from(self.ts) << 7)
    }

    /// The inverse of [`CookieOptions::pack`].
    pub fn unpack(b: u8) -> CookieOptions {
        let ws = (b >> 2) & 0xf;
        CookieOptions {
            mssind: b & 3,
            wscale: (ws != 0xf).then_some(ws),
            sack: b & 0x40 != 0,
            ts: b & 0x80 != 0,
        }
    }
}

/// The TSval of the director's SYN-ACK at `now_ms` (its clock: milliseconds) carrying
/// the client's window scale and SACK-permitted in its low bits, never ahead of the
/// clock.
pub fn cookie_tsval(now_ms: u64, wscale: Option<u8>, sack: bool) -> u32 {
    let now = now_ms as u32;
    let bits =
        wscale.map_or(WS_NONE, |w| u32::from(w.min(MAX_WSCALE))) | if sack { SACK_BIT } else { 0 };
    let ts = (now & !TS_OPT_MASK) | bits;
    if (ts.wrapping_sub(now) as i32) > 0 {
        ts.wrapping_sub(1 << TS_OPT_BITS)
    } else {
        ts
    }
}

/// The window scale and SACK-permitted a TSecr echoing [`cookie_tsval`] carries.
pub fn decode_tsecr(tsecr: u32) -> (Option<u8>, bool) {
    let ws = tsecr & 0xf;
    let sack = tsecr & SACK_BIT != 0;
    ((ws != WS_NONE).then_some(ws as u8), sack)
}

/// Options of a SYN or SYN-ACK to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// MSS.
    pub mss: u16,
    /// Window scale.
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack: bool,
    /// Timestamps (TSval, TSecr).
    pub ts: Option<(u32, u32)>,
}

/// The length of the options [`write_options`] writes for `o` (a SYN's or SYN-ACK's:
/// `syn`), or of the timestamps alone (any other segment): a multiple of 4.
#[inline]
fn options_len(o: &WriteOptions, syn: bool) -> usize {
    if !syn {
        return if o.ts.is_some() { 12 } else { 0 };
    }
    4 + match (o.sack, o.ts) {
        (_, Some(_)) => 12,
        (true, None) => 4,
        (false, None) => 0,
    } + if o.wscale.is_some() { 4 } else { 0 }
}

/// Writes `o` as Linux lays them out (MSS; SACK-perm and timestamps; NOP and window
/// scale) into `out`, which is [`options_len`] bytes long; for a segment that is not a
/// SYN (`syn` false) only the timestamps (NOP, NOP, timestamps).
#[inline]
fn write_options(o: &WriteOptions, syn: bool, out: &mut [u8]) {
    let put_ts = |out: &mut [u8], val: u32, ecr: u32| {
        out[0..2].copy_from_slice(&[8, 10]);
        out[2..6].copy_from_slice(&val.to_be_bytes());
        out[6..10].copy_from_slice(&ecr.to_be_bytes());
    };
    if !syn {
        if let (Some((val, ecr)), Some(out)) = (o.ts, out.get_mut(..12)) {
            out[0..2].copy_from_slice(&[1, 1]);
            put_ts(&mut out[2..], val, ecr);
        }
        return;
    }
    let Some(mss) = out.get_mut(..4) else {
        return;
    };
    let m = o.mss.to_be_bytes();
    mss.copy_from_slice(&[2, 4, m[0], m[1]]);
    let mut n = 4;
    match (o.sack, o.ts, out.get_mut(4..16)) {
        (sack, Some((val, ecr)), Some(t)) => {
            t[0..2].copy_from_slice(if sack { &[4, 2] } else { &[1, 1] });
            put_ts(&mut t[2..], val, ecr);
            n = 16;
        }
        (true, None, _) => {
            if let Some(t) = out.get_mut(4..8) {
                t.copy_from_slice(&[1, 1, 4, 2]);
                n = 8;
            }
        }
        _ => {}
    }
    if let (Some(w), Some(t)) = (o.wscale, out.get_mut(n..n + 4)) {
        t.copy_from_slice(&[1, 3, 3, w]);
    }
}

/// Where a segment's headers are in its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    /// Offset of the IPv4 header.
    pub l3: usize,
    /// Offset of the TCP header.
    pub l4: usize,
}

/// The TCP options of the segment at `at` in `frame` (checked against the IPv4 total
/// length and the frame).
pub fn options_of(frame: &[u8], at: At) -> Option<&[u8]> {
    let tl = usize::from(be16(frame, at.l3 + 2)?);
    let doff = usize::from(*frame.get(at.l4 + 12)? >> 4) * 4;
    if doff < 20 || at.l4 + doff > at.l3 + tl {
        return None;
    }
    frame.get(at.l4 + 20..at.l4 + doff)
}

/// Writes a fresh TCP segment (no data) over the frame of `pkt` from offset `l4`:
/// ports, sequence, acknowledgement, flags, window, `opts`; sets the IPv4 header at
/// `l3` (kept, with its options) to the new total length, `ttl`, addresses `src` →
/// `dst` (`swap`: the frame's own, exchanged), and both checksums. The frame is
/// resized (trimmed, or grown into its headroom moving the headers).
#[allow(clippy::too_many_arguments)]
fn write_segment<P: PacketBuf>(
    pkt: &mut P,
    at: At,
    swap: bool,
    ports: (u16, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    opts: &WriteOptions,
) -> Option<()> {
    // The MSS is always first; a segment that is not a SYN carries only timestamps.
    let syn = flags & tcp_flags::SYN != 0;
    let olen = options_len(opts, syn);
    let len = at.l4 + 20 + olen;
    let cur = pkt.len();
    if at.l4 + 20 > cur || at.l3 + 20 > at.l4 {
        return None;
    }
    if len > cur {
        let grow = len - cur;
        let d = pkt.prepend(grow).ok()?;
        d.copy_within(grow..grow + at.l4, 0);
    } else if len < cur {
        pkt.trim(cur - len).ok()?;
    }
    let f = pkt.data_mut();
    if swap {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&f[0..6]);
        f.copy_within(6..12, 0);
        f[6..12].copy_from_slice(&mac);
        let mut a = [0u8; 4];
        a.copy_from_slice(&f[at.l3 + 12..at.l3 + 16]);
        f.copy_within(at.l3 + 16..at.l3 + 20, at.l3 + 12);
        f[at.l3 + 16..at.l3 + 20].copy_from_slice(&a);
    }
    let tl = (len - at.l3) as u16;
    f[at.l3 + 2..at.l3 + 4].copy_from_slice(&tl.to_be_bytes());
    f[at.l3 + 6..at.l3 + 8].copy_from_slice(&[0x40, 0]);
    f[at.l3 + 8] = TTL;
    f[at.l3 + 10..at.l3 + 12].copy_from_slice(&[0, 0]);
    let ihl = usize::from(f[at.l3] & 0x0f) * 4;
    let c = !checksum::data(f.get(at.l3..at.l3 + ihl)?);
    f[at.l3 + 10..at.l3 + 12].copy_from_slice(&c.to_be_bytes());
    let t = &mut f[at.l4..len];
    t[0..2].copy_from_slice(&ports.0.to_be_bytes());
    t[2..4].copy_from_slice(&ports.1.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = (((20 + olen) / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&window.to_be_bytes());
    t[16..20].copy_from_slice(&[0, 0, 0, 0]);
    write_options(opts, syn, &mut t[20..20 + olen]);
    // The pseudo-header's addresses are the IPv4 header's last 8 bytes: summed with the
    // segment in one pass.
    let sum = checksum::combine(&[
        checksum::data(&f[at.l3 + 12..at.l3 + 20]),
        6 + (20 + olen) as u16,
        checksum::data(&f[at.l4..len]),
    ]);
    f[at.l4 + 16..at.l4 + 18].copy_from_slice(&(!sum).to_be_bytes());
    Some(())
}

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// What the director answered a SYN with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynAck {
    /// The cookie (the SYN-ACK's sequence number).
    pub cookie: u32,
    /// The SYN's options had absurd values that were clamped.
    pub clamped: bool,
}

/// Turns the client's SYN in `pkt` (IPv4 at `at.l3`, TCP at `at.l4`; its options
/// already parsed as `o`) into the director's SYN-ACK in place: Ethernet and IPv4 ends
/// swapped, TTL 64, sequence number the cookie, acknowledgement the client's ISN + 1,
/// options MSS (the client's, rounded down to the table, at most `max_mss`) and, when the
/// client sent timestamps, SACK-permitted and window scale if it offered them and the
/// timestamps (TSval the cookie's option bits, TSecr the client's TSval). Any data the
/// SYN carried is dropped. `None`: the frame is not a segment this can answer.
pub fn synack<P: PacketBuf>(
    pkt: &mut P,
    at: At,
    o: &SynOptions,
    cookies: &mut Cookies,
    max_mss: u16,
    now_ms: u64,
) -> Option<SynAck> {
    let f = pkt.data();
    let e = Ends {
        saddr: f.get(at.l3 + 12..at.l3 + 16)?.try_into().ok()?,
        daddr: f.get(at.l3 + 16..at.l3 + 20)?.try_into().ok()?,
        sport: be16(f, at.l4)?,
        dport: be16(f, at.l4 + 2)?,
    };
    let isn = be32(f, at.l4 + 4)?;
    let mss = if o.mss == 0 { MSS_TABLE[0] } else { o.mss };
    let mssind = mss_index(mss.min(max_mss));
    let cookie = cookies.make(&e, isn, mssind, now_ms);
    let w = match o.ts {
        Some((val, _)) => WriteOptions {
            mss: MSS_TABLE[usize::from(mssind)],
            wscale: o.wscale.map(|_| OUR_WSCALE),
            sack: o.sack,
            ts: Some((cookie_tsval(now_ms, o.wscale, o.sack), val)),
        },
        None => WriteOptions {
            mss: MSS_TABLE[usize::from(mssind)],
            ..WriteOptions::default()
        },
    };
    let flags = tcp_flags::SYN | tcp_flags::ACK;
    let ports = (e.dport, e.sport);
    write_segment(
        pkt,
        at,
        true,
        ports,
        cookie,
        isn.wrapping_add(1),
        flags,
        SYNACK_WINDOW,
        &w,
    )?;
    Some(SynAck {
        cookie,
        clamped: o.clamped,
    })
}

/// A client's ACK checked against its cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The client's initial sequence number (the ACK's sequence number − 1).
    pub isn: u32,
    /// The cookie (the ACK's acknowledgement − 1).
    pub cookie: u32,
    /// The options the cookie recorded.
    pub opts: CookieOptions,
    /// The client's timestamps in this ACK (TSval, TSecr: the director's TSval).
    pub ts: Option<(u32, u32)>,
    /// The ACK's window (scaled by the client's window scale).
    pub window: u16,
}

/// Checks the client's ACK in `frame` (no SYN, no RST) against its cookie: `None` for a
/// stale or forged cookie, or options that do not parse.
pub fn check_ack(frame: &[u8], at: At, cookies: &mut Cookies, now_ms: u64) -> Option<Accepted> {
    let e = Ends {
        saddr: frame.get(at.l3 + 12..at.l3 + 16)?.try_into().ok()?,
        daddr: frame.get(at.l3 + 16..at.l3 + 20)?.try_into().ok()?,
        sport: be16(frame, at.l4)?,
        dport: be16(frame, at.l4 + 2)?,
    };
    let isn = be32(frame, at.l4 + 4)?.wrapping_sub(1);
    let cookie = be32(frame, at.l4 + 8)?.wrapping_sub(1);
    let mssind = cookies.check(&e, isn, cookie, now_ms)?;
    let o = parse_options(options_of(frame, at)?).ok()?;
    let (wscale, sack) = match o.ts {
        Some((_, ecr)) => decode_tsecr(ecr),
        None => (None, false),
    };
    Some(Accepted {
        isn,
        cookie,
        opts: CookieOptions {
            mssind,
            wscale,
            sack,
            ts: o.ts.is_some(),
        },
        ts: o.ts,
        window: be16(frame, at.l4 + 14)?,
    })
}

/// Turns a client's segment in `pkt` (its ACK, or data after it) into the SYN the real
/// server is sent, in place, before the session's rewrite: same ends, sequence number
/// `isn`, no acknowledgement, options from the cookie (`ts_val`: the client's TSval, when
/// it uses timestamps), window `window`, no data. `None`: not a frame this can rewrite.
pub fn syn_from_client<P: PacketBuf>(
    pkt: &mut P,
    at: At,
    isn: u32,
    opts: CookieOptions,
    ts_val: Option<u32>,
    window: u16,
) -> Option<()> {
    let f = pkt.data();
    let ports = (be16(f, at.l4)?, be16(f, at.l4 + 2)?);
    let w = WriteOptions {
        mss: MSS_TABLE[usize::from(opts.mssind & 3)],
        wscale: opts.wscale,
        sack: opts.sack,
        ts: ts_val.map(|v| (v, 0)),
    };
    write_segment(pkt, at, false, ports, isn, 0, tcp_flags::SYN, window, &w)
}

/// What a real server's SYN-ACK says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerSynAck {
    /// The server's initial sequence number.
    pub isn: u32,
    /// Its acknowledgement.
    pub ack: u32,
    /// Its options.
    pub opts: SynOptions,
}

/// Reads a real server's SYN-ACK.
pub fn read_synack(frame: &[u8], at: At) -> Option<ServerSynAck> {
    Some(ServerSynAck {
        isn: be32(frame, at.l4 + 4)?,
        ack: be32(frame, at.l4 + 8)?,
        opts: parse_options(options_of(frame, at)?).ok()?,
    })
}

/// Turns the real server's SYN-ACK in `pkt` (as it arrived, server → director) into the
/// director's ACK back to it, in place: ends swapped, sequence number its
/// acknowledgement, acknowledgement its ISN + 1, window `window`, timestamps echoed
/// (TSval `ts_val`) when it sent them.
pub fn ack_to_server<P: PacketBuf>(
    pkt: &mut P,
    at: At,
    s: &ServerSynAck,
    ts_val: Option<u32>,
    window: u16,
) -> Option<()> {
    let f = pkt.data();
    let ports = (be16(f, at.l4 + 2)?, be16(f, at.l4)?);
    let ts = match (s.opts.ts, ts_val) {
        (Some((sval, _)), Some(v)) => Some((v, sval)),
        _ => None,
    };
    let w = WriteOptions {
        ts,
        ..WriteOptions::default()
    };
    let flags = tcp_flags::ACK;
    write_segment(
        pkt,
        at,
        true,
        ports,
        s.ack,
        s.isn.wrapping_add(1),
        flags,
        window,
        &w,
    )
}

/// Turns a segment in `pkt` into a reset toward its sender, in place: ends swapped,
/// sequence number `seq`, RST alone, no options, no data.
pub fn reset_to_sender<P: PacketBuf>(pkt: &mut P, at: At, seq: u32) -> Option<()> {
    let f = pkt.data();
    let ports = (be16(f, at.l4 + 2)?, be16(f, at.l4)?);
    let w = WriteOptions::default();
    write_segment(pkt, at, true, ports, seq, 0, tcp_flags::RST, 0, &w)
}

/// Makes the TCP segment at `l4` a bare reset: flags RST alone, no acknowledgement,
/// sequence number `seq` when given (else its own); checksum incremental.
pub fn set_reset(frame: &mut [u8], l4: usize, seq: Option<u32>) -> Option<()> {
    let c = be16(frame, l4 + 16)?;
    let old = be16(frame, l4 + 12)?;
    let new = (old & 0xff00) | u16::from(tcp_flags::RST);
    let c = checksum::update_u16(c, old, new);
    frame[l4 + 12..l4 + 14].copy_from_slice(&new.to_be_bytes());
    frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    set_be32_csum(frame, l4 + 8, 0, l4 + 16);
    if let Some(seq) = seq {
        set_be32_csum(frame, l4 + 4, seq, l4 + 16);
    }
    Some(())
}

/// Window scales of a proxied connection's two legs: what each side was told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scales {
    /// The server's window scale (0: the server leg has no scaling).
    pub server: u8,
    /// The director's toward the client (0: the client leg has no scaling).
    pub to_client: u8,
    /// The client's, as the client leg has it.
    pub client: u8,
    /// The client's, as the server was told (0: the server leg has no scaling).
    pub client_at_server: u8,
}

impl Scales {
    /// Packed in a u16 (4 bits each).
    pub fn pack(self) -> u16 {
        u16::from(self.server & 0xf)
            | u16::from(self.to_client & 0xf) << 4
            | u16::from(self.client & 0xf) << 8
            | u16::from(self.client_at_server & 0xf) << 12
    }
    /// The inverse of [`Scales::pack`].
    pub fn unpack(v: u16) -> Scales {
        Scales {
            server: (v & 0xf) as u8,
            to_client: (v >> 4 & 0xf) as u8,
            client: (v >> 8 & 0xf) as u8,
            client_at_server: (v >> 12 & 0xf) as u8,
        }
    }
}

/// The window `w` of a segment scaled by `from`, for a reader who scales by `to`.
#[inline(always)]
fn rescale(w: u16, from: u8, to: u8) -> u16 {
    if from == to {
        return w;
    }
    let bytes = u64::from(w) << from;
    (bytes >> to).min(0xffff) as u16
}

/// Timestamps and SACK blocks of the TCP header at `l4` in `frame`: `ts` maps the
/// timestamp option's two words (TSval, TSecr), `sack` each SACK edge.
#[inline]
fn map_options(
    frame: &mut [u8],
    l4: usize,
    ts: impl Fn(u32, u32) -> (u32, u32),
    sack: Option<u32>,
) {
    let Some(doff) = frame.get(l4 + 12).map(|b| usize::from(b >> 4) * 4) else {
        return;
    };
    let end = (l4 + doff).min(frame.len());
    let mut p = l4 + 20;
    while let Some((kind, at, len)) = next_option(frame, p, end) {
        p = at + len;
        if kind == 8 && len == 10 {
            if let (Some(v), Some(e)) = (be32(frame, at + 2), be32(frame, at + 6)) {
                let (nv, ne) = ts(v, e);
                set_be32_csum(frame, at + 2, nv, l4 + 16);
                set_be32_csum(frame, at + 6, ne, l4 + 16);
            }
        } else if kind == 5 {
            if let Some(d) = sack {
                map_sack(frame, l4, at, len, |v| v.wrapping_sub(d));
            }
        }
    }
}

/// A real server → client segment of a proxied connection, already rewritten: its
/// sequence number up by `delta` (the server's ISN to the cookie), its TSval by
/// `ts_delta` (the server's clock to the director's), its window rescaled; checksum
/// incremental.
#[inline]
pub fn to_client(frame: &mut [u8], l4: usize, delta: u32, ts_delta: Option<u32>, sc: Scales) {
    if let Some(seq) = be32(frame, l4 + 4) {
        set_be32_csum(frame, l4 + 4, seq.wrapping_add(delta), l4 + 16);
    }
    if sc.server != sc.to_client {
        if let (Some(w), Some(c)) = (be16(frame, l4 + 14), be16(frame, l4 + 16)) {
            let n = rescale(w, sc.server, sc.to_client);
            let c = checksum::update_u16(c, w, n);
            frame[l4 + 14..l4 + 16].copy_from_slice(&n.to_be_bytes());
            frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        }
    }
    if let Some(d) = ts_delta {
        map_options(frame, l4, |v, e| (v.wrapping_add(d), e), None);
    }
}

/// A client → real server segment of a proxied connection, already rewritten: its
/// acknowledgement (with ACK) and SACK edges down by `delta`, its TSecr by `ts_delta`,
/// its window rescaled; checksum incremental.
#[inline]
pub fn to_server(frame: &mut [u8], l4: usize, delta: u32, ts_delta: Option<u32>, sc: Scales) {
    let Some(&flags) = frame.get(l4 + 13) else {
        return;
    };
    if flags & tcp_flags::ACK != 0 {
        if let Some(ack) = be32(frame, l4 + 8) {
            set_be32_csum(frame, l4 + 8, ack.wrapping_sub(delta), l4 + 16);
        }
    }
    if sc.client != sc.client_at_server {
        if let (Some(w), Some(c)) = (be16(frame, l4 + 14), be16(frame, l4 + 16)) {
            let n = rescale(w, sc.client, sc.client_at_server);
            let c = checksum::update_u16(c, w, n);
            frame[l4 + 14..l4 + 16].copy_from_slice(&n.to_be_bytes());
            frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        }
    }
    if frame.get(l4 + 12).is_some_and(|b| b >> 4 > 5) {
        let td = ts_delta.unwrap_or(0);
        map_options(frame, l4, |v, e| (v, e.wrapping_sub(td)), Some(delta));
    }
}

#[cfg(test)]
mod tests;
