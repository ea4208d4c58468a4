//! SipHash and the kernel's `hsiphash` as built on 64-bit Linux.
//!
//! On 64-bit kernels `hsiphash` is SipHash-1-3 (one compression round, three finalization
//! rounds) keyed with `hsiphash_key_t { unsigned long key[2] }` (two 64-bit words) and
//! truncated to 32 bits (`lib/siphash.c`, `HSIPROUND = SIPROUND`). The mh scheduler hashes a
//! 4-byte `u32` with it, read little-endian as on x86.

const C0: u64 = 0x736f_6d65_7073_6575;
const C1: u64 = 0x646f_7261_6e64_6f6d;
const C2: u64 = 0x6c79_6765_6e65_7261;
const C3: u64 = 0x7465_6462_7974_6573;

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-c-d of `data` with key `(k0, k1)`, 64-bit output.
pub fn siphash(c_rounds: u32, d_rounds: u32, k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v = [C0 ^ k0, C1 ^ k1, C2 ^ k0, C3 ^ k1];
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let m = u64::from_le_bytes(w);
        v[3] ^= m;
        for _ in 0..c_rounds {
            round(&mut v);
        }
        v[0] ^= m;
    }
    let mut b = (data.len() as u64) << 56;
    for (i, &x) in chunks.remainder().iter().enumerate() {
        b |= u64::from(x) << (8 * i);
    }
    v[3] ^= b;
    for _ in 0..c_rounds {
        round(&mut v);
    }
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..d_rounds {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The kernel's `hsiphash(&v, sizeof(u32), key)` on a 64-bit little-endian machine.
#[inline]
pub fn hsiphash_u32(v: u32, key: [u64; 2]) -> u32 {
    let mut s = [C0 ^ key[0], C1 ^ key[1], C2 ^ key[0], C3 ^ key[1]];
    let b = (4u64 << 56) | u64::from(v);
    s[3] ^= b;
    round(&mut s);
    s[0] ^= b;
    s[2] ^= 0xff;
    round(&mut s);
    round(&mut s);
    round(&mut s);
    (s[0] ^ s[1] ^ s[2] ^ s[3]) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash24_reference_vector() {
        // The SipHash paper's example: key 00..0f, message 00..0e.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash(2, 4, k0, k1, &msg), 0xa129_ca61_49be_45e5);
        // First entry of the reference vectors (empty message): 0x726fdb47dd0e0e31.
        assert_eq!(siphash(2, 4, k0, k1, &[]), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    fn hsiphash_is_siphash13_truncated() {
        for v in [0u32, 1, 0xc0a8_0164, u32::MAX] {
            let k = [2_654_435_761u64, 2_654_435_761];
            assert_eq!(
                hsiphash_u32(v, k),
                siphash(1, 3, k[0], k[1], &v.to_le_bytes()) as u32
            );
        }
    }

    #[test]
    fn siphash13_matches_std_default_hasher_with_zero_key() {
        // std's DefaultHasher::new() is SipHash-1-3 with a zero key.
        use std::hash::Hasher;
        #[allow(deprecated)]
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write(&[1, 2, 3, 4]);
        assert_eq!(h.finish(), siphash(1, 3, 0, 0, &[1, 2, 3, 4]));
    }
}
