//! Authenticated sync messages: an optional key shared by a sync group.
//!
//! IPVS sync is plain UDP (multicast by default): anyone who can send to the group's port
//! can install sessions on a backup and so steer live traffic. With a key, the master
//! appends a trailer to every message and a backup with the key refuses messages whose
//! trailer is missing or wrong, and messages it has already seen.
//!
//! ```text
//! message (size bytes, as the header announces) | trailer 32 B:
//!   4 B magic "RVS" 0x01 | be32 sender | be64 sequence | 16 B MAC
//! MAC = HMAC-SHA256(key, message | magic | sender | sequence), its first 16 bytes
//! ```
//!
//! The trailer lies after the `size` the header announces, so the datagram is longer than
//! its header says: a kernel backup (`ip_vs_process_message`: `buflen != size`, "bogus
//! message size") drops the whole message and installs nothing from it, and so does an
//! rvs backup without a key (counted as `auth_unexpected`).
//!
//! The sender is a 32-bit id of the master (its sync address); the sequence number starts
//! at the master's clock in microseconds since the Unix epoch and grows by one per
//! message, so it keeps growing across restarts of the master (as long as its clock does
//! not step back further than the time it ran). A backup keeps, per sender, the highest
//! sequence number seen and which of the [`WINDOW`] numbers below it were seen: a
//! message seen before is refused as replayed, one further behind as too old; messages
//! reordered within the window are accepted once each.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::wire::HEADER_V0_LEN;

/// The trailer's first bytes: "RVS" and the trailer's version.
pub const MAGIC: [u8; 4] = *b"RVS\x01";
/// Length of the MAC in the trailer (HMAC-SHA256 truncated).
pub const MAC_LEN: usize = 16;
/// Length of the trailer: magic, sender, sequence, MAC.
pub const TRAILER_LEN: usize = 4 + 4 + 8 + MAC_LEN;
/// How far behind the highest sequence number seen from a sender a message may be.
pub const WINDOW: u64 = 64;
/// Senders a backup keeps a window for; past this the one heard from least recently is
/// forgotten (only holders of the key can make senders).
pub const MAX_SENDERS: usize = 64;
/// The shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// HMAC's block size for SHA-256: longer keys are hashed first (RFC 2104).
const BLOCK: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// A sync group's key: the HMAC key as HMAC uses it (at most one SHA-256 block; a longer
/// key is replaced by its SHA-256 digest, which gives the same MACs). `Debug` does not
/// show it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SyncKey {
    bytes: [u8; BLOCK],
    len: u8,
}

impl std::fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncKey(..)")
    }
}

/// Why bytes are not a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the key has {0} bytes, fewer than {MIN_KEY_LEN}")]
pub struct KeyTooShort(pub usize);

impl SyncKey {
    /// The key made of `material` (at least [`MIN_KEY_LEN`] bytes).
    pub fn new(material: &[u8]) -> Result<SyncKey, KeyTooShort> {
        if material.len() < MIN_KEY_LEN {
            return Err(KeyTooShort(material.len()));
        }
        let mut k = SyncKey {
            bytes: [0; BLOCK],
            len: 0,
        };
        if material.len() > BLOCK {
            let d = Sha256::digest(material);
            k.bytes[..d.len()].copy_from_slice(&d);
            k.len = d.len() as u8;
        } else {
            k.bytes[..material.len()].copy_from_slice(material);
            k.len = material.len() as u8;
        }
        Ok(k)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length.
        HmacSha256::new_from_slice(&self.bytes[..usize::from(self.len)])
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }
}

/// The master's side: appends the trailer to each message.
#[derive(Clone)]
pub struct Signer {
    mac: HmacSha256,
    sender: u32,
    next: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("sender", &self.sender)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `sender` whose first message gets sequence number `first_seq`
    /// (see [`first_seq`]).
    pub fn new(key: &SyncKey, sender: u32, first_seq: u64) -> Signer {
        Signer {
            mac: key.mac(),
            sender,
            next: first_seq,
            buf: Vec::new(),
        }
    }

    /// The sequence number the next message gets.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// `msg` with its trailer, as it goes on the wire; the next message gets the next
    /// sequence number.
    pub fn sign(&mut self, msg: &[u8]) -> &[u8] {
        let seq = self.next;
        self.next = self.next.wrapping_add(1);
        self.buf.clear();
        self.buf.extend_from_slice(msg);
        self.buf.extend_from_slice(&MAGIC);
        self.buf.extend_from_slice(&self.sender.to_be_bytes());
        self.buf.extend_from_slice(&seq.to_be_bytes());
        let mut m = self.mac.clone();
        m.update(&self.buf);
        let tag = m.finalize().into_bytes();
        self.buf.extend_from_slice(&tag[..MAC_LEN]);
        &self.buf
    }
}

/// The first sequence number of a master starting now: microseconds since the Unix
/// epoch (so that it is above every number the previous run of the master used).
pub fn first_seq() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A trailer as read from a datagram (not yet checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer<'a> {
    /// The message before it.
    pub message: &'a [u8],
    /// The sender's id.
    pub sender: u32,
    /// The sequence number.
    pub seq: u64,
    /// The MAC.
    pub mac: &'a [u8],
}

/// The trailer of `datagram`, if it ends in one: the header's size is the datagram's
/// length less [`TRAILER_LEN`] and the magic follows the message.
pub fn trailer(datagram: &[u8]) -> Option<Trailer<'_>> {
    if datagram.len() < HEADER_V0_LEN + TRAILER_LEN {
        return None;
    }
    let size = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if size + TRAILER_LEN != datagram.len() {
        return None;
    }
    let (message, t) = datagram.split_at(size);
    if t[..4] != MAGIC {
        return None;
    }
    Some(Trailer {
        message,
        sender: u32::from_be_bytes(t[4..8].try_into().ok()?),
        seq: u64::from_be_bytes(t[8..16].try_into().ok()?),
        mac: &t[16..],
    })
}

/// Why a backup with a key refuses a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No trailer: a plain (kernel-format) message, or not a sync message at all.
    #[error("no authentication trailer")]
    Missing,
    /// The MAC is wrong: a forged or altered message, or another key.
    #[error("wrong MAC")]
    BadMac,
    /// The sender's sequence number was seen before (a duplicate or a replay).
    #[error("sequence number seen before")]
    Replayed,
    /// The sequence number is more than [`WINDOW`] behind the sender's highest.
    #[error("sequence number too old")]
    TooOld,
}

/// What a backup remembers of a sender's sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    sender: u32,
    /// The highest sequence number accepted.
    highest: u64,
    /// Bit `i`: `highest - i` was accepted.
    seen: u64,
    /// When this sender was last accepted (the verifier's message count).
    used: u64,
}

impl Window {
    /// Whether `seq` may be accepted: `Ok` without changing anything.
    fn check(&self, seq: u64) -> Result<(), AuthError> {
        if seq > self.highest {
            return Ok(());
        }
        let behind = self.highest - seq;
        if behind >= WINDOW {
            return Err(AuthError::TooOld);
        }
        if self.seen & (1 << behind) != 0 {
            return Err(AuthError::Replayed);
        }
        Ok(())
    }

    /// Records `seq` as accepted (after [`Window::check`]).
    fn accept(&mut self, seq: u64) {
        if seq > self.highest {
            let ahead = seq - self.highest;
            self.seen = if ahead >= WINDOW {
                0
            } else {
                self.seen << ahead
            };
            self.highest = seq;
            self.seen |= 1;
        } else {
            self.seen |= 1 << (self.highest - seq);
        }
    }
}

/// The backup's side: checks trailers and keeps each sender's replay window.
#[derive(Clone)]
pub struct Verifier {
    mac: HmacSha256,
    windows: Vec<Window>,
    clock: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("senders", &self.windows.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `key` that has seen nothing yet.
    pub fn new(key: &SyncKey) -> Verifier {
        Verifier {
            mac: key.mac(),
            windows: Vec::new(),
            clock: 0,
        }
    }

    /// Checks `datagram`'s trailer and sequence number; gives the message without the
    /// trailer and records its sequence number as seen. A refused datagram changes
    /// nothing.
    pub fn verify<'a>(&mut self, datagram: &'a [u8]) -> Result<&'a [u8], AuthError> {
        let t = trailer(datagram).ok_or(AuthError::Missing)?;
        let mut m = self.mac.clone();
        m.update(&datagram[..datagram.len() - MAC_LEN]);
        m.verify_truncated_left(t.mac)
            .map_err(|_| AuthError::BadMac)?;
        self.clock += 1;
        let clock = self.clock;
        match self.windows.iter_mut().find(|w| w.sender == t.sender) {
            Some(w) => {
                w.check(t.seq)?;
                w.accept(t.seq);
                w.used = clock;
            }
            None => {
                if self.windows.len() >= MAX_SENDERS {
                    if let Some(i) = (0..self.windows.len()).min_by_key(|&i| self.windows[i].used) {
                        self.windows.swap_remove(i);
                    }
                }
                self.windows.push(Window {
                    sender: t.sender,
                    highest: t.seq,
                    seen: 1,
                    used: clock,
                });
            }
        }
        Ok(t.message)
    }

    /// Senders with a window.
    pub fn senders(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::SyncConn;
    use crate::flow::Addr;
    use crate::sync::wire::{decode, MessageBuilder, Record};

    fn key(b: u8) -> SyncKey {
        SyncKey::new(&[b; 32]).unwrap()
    }

    fn message(cport: u16) -> Vec<u8> {
        let mut b = MessageBuilder::new(1, 1472);
        assert!(b.push(&crate::sync::test_conn(cport)));
        b.bytes().to_vec()
    }

    #[test]
    fn keys_shorter_than_16_bytes_are_refused_and_long_ones_hashed() {
        assert_eq!(SyncKey::new(b""), Err(KeyTooShort(0)));
        assert_eq!(SyncKey::new(&[1; 15]), Err(KeyTooShort(15)));
        assert!(SyncKey::new(&[1; 16]).is_ok());
        assert_eq!(format!("{:?}", key(7)), "SyncKey(..)");
        // A key longer than a block gives the MACs HMAC gives with the whole key.
        let long = [9u8; 100];
        let mut s = Signer::new(&SyncKey::new(&long).unwrap(), 1, 5);
        let signed = s.sign(&message(1)).to_vec();
        let mut m = HmacSha256::new_from_slice(&long).unwrap();
        m.update(&signed[..signed.len() - MAC_LEN]);
        assert_eq!(
            &m.finalize().into_bytes()[..MAC_LEN],
            &signed[signed.len() - MAC_LEN..]
        );
    }

    #[test]
    fn a_signed_message_verifies_and_decodes_to_the_same_records() {
        let msg = message(1000);
        let mut s = Signer::new(&key(1), 0x0a63_0001, 1_000_000);
        let signed = s.sign(&msg).to_vec();
        assert_eq!(signed.len(), msg.len() + TRAILER_LEN);
        assert_eq!(
            &signed[..msg.len()],
            msg.as_slice(),
            "the message is unchanged"
        );
        assert_eq!(&signed[msg.len()..msg.len() + 4], b"RVS\x01");
        assert_eq!(
            &signed[msg.len() + 4..msg.len() + 16],
            &[0x0a, 0x63, 0, 1, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]
        );
        assert_eq!(s.next_seq(), 1_000_001);
        let mut v = Verifier::new(&key(1));
        assert_eq!(v.verify(&signed), Ok(msg.as_slice()));
        let mut out = Vec::new();
        decode(v.verify(s.sign(&msg)).unwrap(), &mut out).unwrap();
        assert!(matches!(out[..], [Record::Conn(c)] if c.cport == 1000));
    }

    #[test]
    fn one_byte_changed_anywhere_is_refused() {
        let mut s = Signer::new(&key(1), 7, 100);
        let signed = s.sign(&message(1)).to_vec();
        for i in 0..signed.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = signed.clone();
                t[i] ^= bit;
                let mut v = Verifier::new(&key(1));
                let r = v.verify(&t);
                // The size and the magic tell whether there is a trailer at all.
                let want =
                    if (2..4).contains(&i) || (signed.len() - 32..signed.len() - 28).contains(&i) {
                        AuthError::Missing
                    } else {
                        AuthError::BadMac
                    };
                assert_eq!(r, Err(want), "byte {i} ^ {bit:#x}");
                assert_eq!(v.senders(), 0, "a refused message opens no window");
            }
        }
        // Truncated or extended: no trailer where the size says.
        let mut v = Verifier::new(&key(1));
        assert_eq!(
            v.verify(&signed[..signed.len() - 1]),
            Err(AuthError::Missing)
        );
        let mut longer = signed.clone();
        longer.push(0);
        assert_eq!(v.verify(&longer), Err(AuthError::Missing));
        assert_eq!(v.verify(&signed).map(<[u8]>::len), Ok(signed.len() - 32));
    }

    #[test]
    fn another_key_is_refused() {
        let signed = Signer::new(&key(1), 7, 100).sign(&message(1)).to_vec();
        assert_eq!(
            Verifier::new(&key(2)).verify(&signed),
            Err(AuthError::BadMac)
        );
    }

    #[test]
    fn a_plain_message_is_refused_when_a_key_is_set() {
        let mut v = Verifier::new(&key(1));
        assert_eq!(v.verify(&message(1)), Err(AuthError::Missing));
        assert_eq!(v.verify(&[]), Err(AuthError::Missing));
        assert_eq!(v.verify(&[0; 35]), Err(AuthError::Missing));
        assert_eq!(trailer(&message(1)), None);
    }

    #[test]
    fn duplicates_and_replays_are_refused() {
        let mut s = Signer::new(&key(1), 7, 500);
        let a = s.sign(&message(1)).to_vec();
        let b = s.sign(&message(2)).to_vec();
        let mut v = Verifier::new(&key(1));
        assert!(v.verify(&a).is_ok());
        assert_eq!(v.verify(&a), Err(AuthError::Replayed));
        assert!(v.verify(&b).is_ok());
        assert_eq!(v.verify(&b), Err(AuthError::Replayed));
        assert_eq!(v.verify(&a), Err(AuthError::Replayed));
    }

    #[test]
    fn reordered_messages_within_the_window_are_accepted_once() {
        let mut s = Signer::new(&key(1), 7, 10_000);
        let msgs: Vec<Vec<u8>> = (0..WINDOW as u16 + 10)
            .map(|i| s.sign(&message(i)).to_vec())
            .collect();
        let mut v = Verifier::new(&key(1));
        // The newest first, then the others backwards: all but the 10 oldest fit.
        let last = msgs.len() - 1;
        assert!(v.verify(&msgs[last]).is_ok());
        for i in (0..last).rev() {
            let r = v.verify(&msgs[i]);
            if last - i < WINDOW as usize {
                assert_eq!(r.map(|_| ()), Ok(()), "message {i}");
            } else {
                assert_eq!(r, Err(AuthError::TooOld), "message {i}");
            }
        }
        for m in &msgs[last + 1 - WINDOW as usize..] {
            assert_eq!(v.verify(m), Err(AuthError::Replayed));
        }
        // Interleaved: 0, 2, 1, 4, 3, ...
        let mut v = Verifier::new(&key(1));
        assert!(v.verify(&msgs[0]).is_ok());
        for i in (1..msgs.len() - 1).step_by(2) {
            assert!(v.verify(&msgs[i + 1]).is_ok());
            assert!(v.verify(&msgs[i]).is_ok());
        }
    }

    #[test]
    fn a_message_far_behind_is_too_old_and_a_jump_ahead_moves_the_window() {
        let mut old = Signer::new(&key(1), 7, 1_000);
        let stale = old.sign(&message(1)).to_vec();
        // The master restarted later: its numbers start from its clock.
        let mut new = Signer::new(&key(1), 7, 5_000_000);
        let fresh = new.sign(&message(2)).to_vec();
        let mut v = Verifier::new(&key(1));
        assert!(v.verify(&fresh).is_ok());
        assert_eq!(v.verify(&stale), Err(AuthError::TooOld));
        let next = new.sign(&message(3)).to_vec();
        assert!(v.verify(&next).is_ok());
        // Exactly WINDOW - 1 behind is in, WINDOW behind is out.
        let mut s = Signer::new(&key(1), 8, 100);
        let first = s.sign(&message(1)).to_vec();
        let mut s2 = Signer::new(&key(1), 8, 100 + WINDOW);
        let ahead = s2.sign(&message(1)).to_vec();
        let mut s3 = Signer::new(&key(1), 8, 101);
        let edge = s3.sign(&message(1)).to_vec();
        let mut v = Verifier::new(&key(1));
        assert!(v.verify(&ahead).is_ok());
        assert_eq!(v.verify(&first), Err(AuthError::TooOld));
        assert!(v.verify(&edge).is_ok());
    }

    #[test]
    fn senders_have_their_own_windows_and_their_number_is_bounded() {
        let mut v = Verifier::new(&key(1));
        let mut a = Signer::new(&key(1), 1, 1_000);
        let mut b = Signer::new(&key(1), 2, 10);
        assert!(v.verify(a.sign(&message(1))).is_ok());
        assert!(v.verify(b.sign(&message(1))).is_ok());
        assert_eq!(v.senders(), 2);
        for id in 100..100 + MAX_SENDERS as u32 * 2 {
            let m = Signer::new(&key(1), id, 1).sign(&message(1)).to_vec();
            assert!(v.verify(&m).is_ok());
        }
        assert_eq!(v.senders(), MAX_SENDERS);
    }

    /// The seeds of the `sync_auth` fuzz target (`dataplane/fuzz/seeds/sync_auth`): a
    /// message signed with the target's key (`[0x5a; 32]`, sender 1, sequence 1) and the
    /// same message plain (which the target signs itself).
    #[test]
    fn fuzz_seeds_verify_and_are_current() {
        // RVS_WRITE_FUZZ_SEEDS=1 cargo test -p rvs-dataplane fuzz_seeds  (re)writes them.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/sync_auth");
        let write = std::env::var_os("RVS_WRITE_FUZZ_SEEDS").is_some();
        if write {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let key = SyncKey::new(&[0x5a; 32]).unwrap();
        let mut b = MessageBuilder::new(1, 1472);
        for i in 0..3 {
            let mut c = SyncConn {
                protocol: 6,
                v6: false,
                flags: 5,
                state: 1,
                cport: 40000 + i,
                vport: 80,
                dport: 9000,
                fwmark: 0,
                timeout: 900,
                caddr: Addr::v4(203, 0, 113, 5),
                vaddr: Addr::v4(192, 168, 1, 100),
                daddr: Addr::v4(10, 1, 1, 2),
                local: None,
                in_seq: None,
                out_seq: None,
            };
            if i == 1 {
                c.local = Some((Addr::v4(10, 1, 1, 200), 2048));
            }
            assert!(b.push(&c));
        }
        let plain = b.bytes().to_vec();
        let signed = Signer::new(&key, 1, 1).sign(&plain).to_vec();
        assert_eq!(Verifier::new(&key).verify(&signed), Ok(plain.as_slice()));
        for (name, m) in [("v1_plain", plain.clone()), ("v1_signed", signed)] {
            let path = dir.join(name);
            if write {
                std::fs::write(&path, &m).unwrap();
            }
            assert_eq!(std::fs::read(&path).ok(), Some(m), "seed {name} is current");
        }
    }

    #[test]
    fn first_sequence_numbers_follow_the_clock() {
        let a = first_seq();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = first_seq();
        assert!(b > a + 1000, "{a} {b}");
        assert!(a > 1_600_000_000_000_000, "microseconds since 1970: {a}");
    }
}
