//! The authenticated sync receiver (a backup with a key), with a fixed key:
//!
//! - any datagram is accepted or refused for one counted reason, never a panic, and a
//!   refused one delivers nothing; an accepted one verifies on its own;
//! - the fuzzer's bytes signed by a key holder: when they are a message of the right
//!   size they pass once and deliver exactly what a backup without a key delivers for the
//!   plain bytes, and again they are a replay; otherwise they are refused as carrying no
//!   trailer;
//! - one bit changed in the signed datagram: refused.
#![no_main]
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::conn::SyncConn;
use rvs_dataplane::sync::auth::{trailer, Signer, SyncKey, Verifier};
use rvs_dataplane::sync::net::{Receiver, Stats, SyncNetConfig};

/// The key of the target and of its signed seed (`sync::auth`'s `fuzz_seed` test).
const KEY: [u8; 32] = [0x5a; 32];

fn run(rx: &mut Receiver, d: &[u8], stats: &Stats) -> Vec<SyncConn> {
    let mut got = Vec::new();
    rx.process(d, stats, &mut |c| {
        got.push(c);
        true
    });
    got
}

fn refusals(s: &Stats) -> [u64; 5] {
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    [
        l(&s.auth_missing),
        l(&s.auth_bad_mac),
        l(&s.auth_replayed),
        l(&s.auth_too_old),
        l(&s.auth_unexpected),
    ]
}

fuzz_target!(|data: &[u8]| {
    let key = SyncKey::new(&KEY).unwrap();
    let keyed = SyncNetConfig {
        key: Some(key),
        ..SyncNetConfig::default()
    };

    // The datagram as it came.
    let stats = Stats::default();
    let got = run(&mut Receiver::new(&keyed), data, &stats);
    let r = refusals(&stats);
    assert!(r.iter().sum::<u64>() <= 1, "one reason at most: {r:?}");
    assert_eq!(r[4], 0, "a backup with a key has no unexpected trailers");
    if r.iter().sum::<u64>() == 1 {
        assert!(got.is_empty(), "a refused datagram delivers nothing");
    } else {
        assert!(trailer(data).is_some());
        assert!(Verifier::new(&key).verify(data).is_ok());
    }

    // The bytes as a key holder's message.
    let signed = Signer::new(&key, 7, 1_000).sign(data).to_vec();
    let mut rx = Receiver::new(&keyed);
    let (sa, sb) = (Stats::default(), Stats::default());
    let a = run(&mut rx, &signed, &sa);
    let sized =
        data.len() >= 4 && usize::from(u16::from_be_bytes([data[2], data[3]])) == data.len();
    if sized {
        assert_eq!(refusals(&sa), [0; 5]);
        let b = run(&mut Receiver::new(&SyncNetConfig::default()), data, &sb);
        assert_eq!(a, b, "the key changes nothing in what is delivered");
        assert_eq!(refusals(&sb), [0; 5]);
        assert!(run(&mut rx, &signed, &sa).is_empty());
        assert_eq!(
            refusals(&sa),
            [0, 0, 1, 0, 0],
            "the second time is a replay"
        );
    } else {
        assert!(a.is_empty());
        assert_eq!(refusals(&sa), [1, 0, 0, 0, 0]);
    }

    // One bit changed anywhere.
    let at = data.iter().fold(data.len(), |h, &b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    let mut t = signed.clone();
    let i = at % t.len();
    t[i] ^= 1 << (at % 8);
    assert!(
        Verifier::new(&key).verify(&t).is_err(),
        "bit {} of byte {i}",
        at % 8
    );
});
