//! The sync decoder over arbitrary datagrams (v0 and v1): a typed error or records, never
//! a panic; never more records than the header announces; and what it decodes round-trips:
//! the installable records, re-encoded by `MessageBuilder` (v1) and decoded again, are the
//! same records.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::sync::wire::{decode, decode_header, MessageBuilder, Record, MAX_UDP_PAYLOAD};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let res = decode(data, &mut out);
    match res {
        Ok(h) => {
            assert_eq!(usize::from(h.size), data.len());
            assert!(out.len() <= usize::from(h.nr_conns));
            assert_eq!(
                out.len(),
                usize::from(h.nr_conns),
                "a decoded message has all its records"
            );
        }
        Err(_) => match decode_header(data) {
            // Records before a malformed one stay (the kernel applies them).
            Ok(h) => assert!(out.len() < usize::from(h.nr_conns)),
            Err(_) => assert!(out.is_empty()),
        },
    }
    let conns: Vec<_> = out
        .iter()
        .filter_map(|r| match r {
            Record::Conn(c) => Some(*c),
            Record::Skipped(_) => None,
        })
        .collect();
    if conns.is_empty() {
        return;
    }
    let mut b = MessageBuilder::new(data.get(1).copied().unwrap_or(0), MAX_UDP_PAYLOAD);
    for c in &conns {
        assert!(
            b.push(c),
            "at most 255 records of at most 92 bytes fit a datagram"
        );
    }
    let mut again = Vec::new();
    let h = decode(b.bytes(), &mut again).expect("the encoder's message decodes");
    assert_eq!((h.version, usize::from(h.nr_conns)), (1, conns.len()));
    let again: Vec<_> = again
        .iter()
        .map(|r| match r {
            Record::Conn(c) => *c,
            Record::Skipped(s) => panic!("re-encoded record skipped: {s:?}"),
        })
        .collect();
    assert_eq!(again, conns);
});
