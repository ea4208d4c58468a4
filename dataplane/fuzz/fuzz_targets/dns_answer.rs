//! rvsd's `DNS_CHECK` (rvs-control's `checks::dns`, included by path: it uses `std` only):
//! the answer check over arbitrary datagrams never panics and accepts only a message with
//! the query's id, QR set and RCODE 0; queries built from arbitrary names never panic and
//! carry the id and one question.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../control/src/checks/dns.rs"]
mod dns;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let id = u16::from_be_bytes([data[0], data[1]]);
    let answer = &data[2..];
    if dns::check_answer(id, answer).is_ok() {
        assert!(answer.len() >= 12);
        assert_eq!(u16::from_be_bytes([answer[0], answer[1]]), id);
        assert!(answer[2] & 0x80 != 0 && answer[3] & 0x0f == 0);
    }
    let name = String::from_utf8_lossy(answer);
    let q = dns::query(id, &name, 1);
    assert_eq!(&q[..2], &id.to_be_bytes());
    assert_eq!(&q[4..6], &[0, 1]);
});
