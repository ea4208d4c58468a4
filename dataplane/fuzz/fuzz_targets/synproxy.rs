//! The SYN proxy on any frame: the option parser, the cookie check of an ACK, the
//! SYN-ACK, SYN, ACK and reset written in place, and the translation of an established
//! proxied segment. Errors are fine, panics are not; a frame written in place
//! classifies; no random ACK passes the cookie check of a fresh key but by the odds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::buf::{PacketBuf, VecBuf};
use rvs_dataplane::forward::synproxy::{self as sp, At, Cookies, Scales};
use rvs_dataplane::wire::{classify, ChecksumMode, Classified, IpProtocol, IpVersion};

fuzz_target!(|data: &[u8]| {
    // The options parser alone, on the raw bytes.
    let _ = sp::parse_options(data);
    let Ok(Classified::Ip(m)) = classify(data, ChecksumMode::Offload) else {
        return;
    };
    // The pipeline gives the proxy whole IPv4 TCP segments only (a fragment to a proxied
    // service is dropped before it: its "TCP header" may be any bytes).
    if m.version != IpVersion::V4 || m.tuple.protocol != IpProtocol::TCP || m.frag.is_some() {
        return;
    }
    let at = At {
        l3: m.l3_offset(),
        l4: m.l4_offset,
    };
    let mut cookies = Cookies::new([1, 2]);
    let _ = sp::check_ack(data, at, &mut cookies, 1_000);
    let _ = sp::read_synack(data, at);
    let written = |b: &VecBuf| {
        assert!(
            classify(b.data(), ChecksumMode::Software).is_ok(),
            "a frame written in place does not classify"
        );
    };
    if let Some(o) = sp::options_of(data, at).and_then(|o| sp::parse_options(o).ok()) {
        let mut b = VecBuf::new(64, data);
        if let Some(sa) = sp::synack(&mut b, at, &o, &mut cookies, 1460, 1_000) {
            written(&b);
            // Its own cookie checks, for the ACK of the SYN's sequence number.
            let isn = u32::from_be_bytes([
                data[at.l4 + 4],
                data[at.l4 + 5],
                data[at.l4 + 6],
                data[at.l4 + 7],
            ]);
            let e = sp::Ends {
                saddr: [
                    data[at.l3 + 12],
                    data[at.l3 + 13],
                    data[at.l3 + 14],
                    data[at.l3 + 15],
                ],
                daddr: [
                    data[at.l3 + 16],
                    data[at.l3 + 17],
                    data[at.l3 + 18],
                    data[at.l3 + 19],
                ],
                sport: m.tuple.src.port,
                dport: m.tuple.dst.port,
            };
            assert!(cookies.check(&e, isn, sa.cookie, 1_000).is_some());
        }
    }
    if let Some(s) = sp::read_synack(data, at) {
        let mut b = VecBuf::new(64, data);
        if sp::ack_to_server(&mut b, at, &s, Some(7), 100).is_some() {
            written(&b);
        }
    }
    let mut b = VecBuf::new(64, data);
    let opts = sp::CookieOptions::unpack(data.first().copied().unwrap_or(0));
    if sp::syn_from_client(&mut b, at, 1, opts, Some(2), 3).is_some() {
        written(&b);
    }
    let mut b = VecBuf::new(64, data);
    if sp::reset_to_sender(&mut b, at, 1).is_some() {
        written(&b);
    }
    let sc = Scales::unpack(u16::from(data.get(1).copied().unwrap_or(0)) * 0x101);
    let mut f = data.to_vec();
    sp::to_client(&mut f, at.l4, 12345, Some(678), sc);
    sp::to_server(&mut f, at.l4, 12345, Some(678), sc);
});
