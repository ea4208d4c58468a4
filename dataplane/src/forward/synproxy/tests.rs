//! The SYN proxy's pieces against frames built and re-parsed by etherparse, and
//! SipHash against its reference vector.

use super::*;
use crate::buf::VecBuf;
use crate::forward::rewrite::testutil::check_v4;
use etherparse::{PacketBuilder, TcpOptionElement, TransportSlice};

const C: [u8; 4] = [198, 51, 100, 7];
const VIP: [u8; 4] = [192, 0, 2, 1];
const AT: At = At { l3: 14, l4: 34 };

fn cookies() -> Cookies {
    Cookies::new([0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210])
}

fn ends() -> Ends {
    Ends {
        saddr: C,
        daddr: VIP,
        sport: 40000,
        dport: 80,
    }
}

/// A client segment C → VIP with `opts`.
fn client(
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    opts: &[TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(C, VIP, 63)
        .tcp(40000, 80, seq, 64240)
        .options(opts)
        .unwrap();
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn tcp_of(frame: &[u8]) -> etherparse::TcpSlice<'_> {
    match check_v4(frame).transport {
        Some(TransportSlice::Tcp(t)) => t,
        _ => panic!("not TCP"),
    }
}

const FULL: [TcpOptionElement; 5] = [
    TcpOptionElement::MaximumSegmentSize(1460),
    TcpOptionElement::SelectiveAcknowledgementPermitted,
    TcpOptionElement::Timestamp(777, 0),
    TcpOptionElement::Noop,
    TcpOptionElement::WindowScale(9),
];

#[test]
fn siphash_reference_vector() {
    // SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e.
    let k = [
        u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]),
        u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
    ];
    let m: Vec<u8> = (0..15).collect();
    assert_eq!(siphash24(k, &m), 0xa129_ca61_49be_45e5);
}

#[test]
fn the_cookies_16_byte_siphash_is_siphash24_of_those_bytes() {
    // The paper's key; messages of the cookie's layout, pseudo-random.
    let k = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
    let mut x = 0x243f_6a88_85a3_08d3u64;
    for _ in 0..1000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let y = x.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
        let mut m = [0u8; 16];
        m[..8].copy_from_slice(&x.to_le_bytes());
        m[8..].copy_from_slice(&y.to_le_bytes());
        assert_eq!(siphash24_16(k, x, y), siphash24(k, &m));
    }
    // The bytes 0, 1, .., 15.
    let m: Vec<u8> = (0..16).collect();
    let (m0, m1) = (
        u64::from_le_bytes(m[..8].try_into().unwrap()),
        u64::from_le_bytes(m[8..].try_into().unwrap()),
    );
    assert_eq!(siphash24_16(k, m0, m1), siphash24(k, &m));
}

#[test]
fn cookie_round_trip_this_minute_and_the_next() {
    let mut c = cookies();
    let e = ends();
    for mssind in 0..4u8 {
        let k = c.make(&e, 1000, mssind, 5_000);
        assert_eq!(c.check(&e, 1000, k, 5_000), Some(mssind));
        // The minute after: the previous key is still accepted.
        assert_eq!(c.check(&e, 1000, k, 65_000), Some(mssind));
        // Two minutes later: stale.
        assert_eq!(c.check(&e, 1000, k, 125_000), None);
    }
}

#[test]
fn forged_or_other_tuple_cookies_fail() {
    let mut c = cookies();
    let e = ends();
    let k = c.make(&e, 1000, 3, 5_000);
    assert_eq!(c.check(&e, 1010, k, 5_000), None, "other ISN");
    let other = Ends { sport: 40001, ..e };
    assert_eq!(c.check(&other, 1000, k, 5_000), None, "other port");
    // Another master secret.
    let mut d = Cookies::new([1, 2]);
    assert_eq!(d.check(&e, 1000, k, 5_000), None);
    // Random cookies: almost none passes (4 in 2^24 per minute's key).
    let mut ok = 0;
    let mut x = 0x1234_5678u32;
    for _ in 0..100_000 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        if c.check(&e, 1000, x, 5_000).is_some() {
            ok += 1;
        }
    }
    assert!(ok <= 1, "{ok} forged cookies passed");
}

#[test]
fn mss_rounds_down_to_the_table() {
    assert_eq!(mss_index(0), 0);
    assert_eq!(mss_index(535), 0);
    assert_eq!(mss_index(1299), 0);
    assert_eq!(mss_index(1300), 1);
    assert_eq!(mss_index(1459), 2);
    assert_eq!(mss_index(9000), 3);
}

#[test]
fn options_parse_and_absurd_values() {
    let o = parse_options(&[
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0, 1, 3, 3, 7,
    ])
    .unwrap();
    assert_eq!(o.mss, 1460);
    assert_eq!(o.wscale, Some(7));
    assert!(o.sack);
    assert_eq!(o.ts, Some((9, 0)));
    assert!(!o.clamped);
    // MSS 0 and window scale 255: clamped, noted.
    let o = parse_options(&[2, 4, 0, 0, 3, 3, 255, 0]).unwrap();
    assert_eq!((o.mss, o.wscale, o.clamped), (0, Some(14), true));
    // Lengths running past the header, or under 2, or wrong for the kind.
    assert_eq!(parse_options(&[2, 4, 5]), Err(BadOptions::Length));
    assert_eq!(parse_options(&[8, 40, 0, 0]), Err(BadOptions::Length));
    assert_eq!(parse_options(&[5, 1, 0, 0]), Err(BadOptions::Length));
    assert_eq!(parse_options(&[2]), Err(BadOptions::Length));
    assert_eq!(parse_options(&[2, 3, 5, 1]), Err(BadOptions::Size));
    assert_eq!(parse_options(&[8, 6, 0, 0, 0, 0]), Err(BadOptions::Size));
    // End of options stops the walk.
    assert_eq!(parse_options(&[0, 99, 99]).unwrap(), SynOptions::default());
}

#[test]
fn tsval_carries_the_options_and_never_runs_ahead() {
    for now in [0u64, 63, 64, 1_000_003, u64::from(u32::MAX)] {
        for ws in [None, Some(0), Some(7), Some(14)] {
            for sack in [false, true] {
                let ts = cookie_tsval(now, ws, sack);
                assert!((ts.wrapping_sub(now as u32) as i32) <= 0);
                assert_eq!(decode_tsecr(ts), (ws, sack));
            }
        }
    }
}

#[test]
fn syn_gets_a_cookie_synack_and_its_ack_checks() {
    let mut c = cookies();
    let syn = client(5000, None, true, &FULL, &[]);
    let mut pkt = VecBuf::with_default_headroom(&syn);
    let o = parse_options(options_of(pkt.data(), AT).unwrap()).unwrap();
    let sa = synack(&mut pkt, AT, &o, &mut c, 1460, 100_000).unwrap();
    let f = pkt.to_vec();
    let t = tcp_of(&f);
    assert!(t.syn() && t.ack() && !t.rst());
    assert_eq!(t.sequence_number(), sa.cookie);
    assert_eq!(t.acknowledgment_number(), 5001);
    assert_eq!((t.source_port(), t.destination_port()), (80, 40000));
    assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 1]);
    assert_eq!(&f[26..30], &VIP);
    assert_eq!(&f[30..34], &C);
    let opts: Vec<_> = t.options_iterator().map(|o| o.unwrap()).collect();
    assert!(opts.contains(&TcpOptionElement::MaximumSegmentSize(1460)));
    assert!(opts.contains(&TcpOptionElement::SelectiveAcknowledgementPermitted));
    assert!(opts.contains(&TcpOptionElement::WindowScale(OUR_WSCALE)));
    let tsval = opts
        .iter()
        .find_map(|o| match o {
            TcpOptionElement::Timestamp(v, e) => {
                assert_eq!(*e, 777);
                Some(*v)
            }
            _ => None,
        })
        .unwrap();
    // The client's ACK echoes it.
    let ack = client(
        5001,
        Some(sa.cookie.wrapping_add(1)),
        false,
        &[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(778, tsval),
        ],
        b"GET /",
    );
    let a = check_ack(&ack, AT, &mut c, 101_000).unwrap();
    assert_eq!(a.isn, 5000);
    assert_eq!(a.cookie, sa.cookie);
    assert_eq!(a.ts, Some((778, tsval)));
    assert_eq!(
        a.opts,
        CookieOptions {
            mssind: 3,
            wscale: Some(9),
            sack: true,
            ts: true
        }
    );
    assert_eq!(CookieOptions::unpack(a.opts.pack()), a.opts);
    // A wrong acknowledgement is refused.
    let bad = client(5001, Some(sa.cookie.wrapping_add(2)), false, &[], &[]);
    assert_eq!(check_ack(&bad, AT, &mut c, 101_000), None);

    // The SYN for the server, from the ACK: the client's ISN and options.
    let mut pkt = VecBuf::with_default_headroom(&ack);
    syn_from_client(&mut pkt, AT, a.isn, a.opts, Some(778), 501).unwrap();
    let f = pkt.to_vec();
    let t = tcp_of(&f);
    assert!(t.syn() && !t.ack());
    assert_eq!(t.sequence_number(), 5000);
    assert!(t.payload().is_empty());
    assert_eq!(t.window_size(), 501);
    let opts: Vec<_> = t.options_iterator().map(|o| o.unwrap()).collect();
    assert!(opts.contains(&TcpOptionElement::MaximumSegmentSize(1460)));
    assert!(opts.contains(&TcpOptionElement::SelectiveAcknowledgementPermitted));
    assert!(opts.contains(&TcpOptionElement::WindowScale(9)));
    assert!(opts.contains(&TcpOptionElement::Timestamp(778, 0)));
}

#[test]
fn syn_without_timestamps_gets_mss_only() {
    let mut c = cookies();
    let syn = client(
        1,
        None,
        true,
        &[
            TcpOptionElement::MaximumSegmentSize(1400),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ],
        &[],
    );
    let mut pkt = VecBuf::with_default_headroom(&syn);
    let o = parse_options(options_of(pkt.data(), AT).unwrap()).unwrap();
    synack(&mut pkt, AT, &o, &mut c, 1460, 0).unwrap();
    let f = pkt.to_vec();
    let t = tcp_of(&f);
    let opts: Vec<_> = t.options_iterator().map(|o| o.unwrap()).collect();
    assert_eq!(opts, vec![TcpOptionElement::MaximumSegmentSize(1300)]);
}

#[test]
fn synack_of_a_bare_syn_grows_into_headroom() {
    let mut c = cookies();
    let syn = client(1, None, true, &[], &[]);
    let mut pkt = VecBuf::with_default_headroom(&syn);
    let o = parse_options(options_of(pkt.data(), AT).unwrap()).unwrap();
    synack(&mut pkt, AT, &o, &mut c, 1460, 0).unwrap();
    let f = pkt.to_vec();
    assert_eq!(f.len(), 14 + 20 + 24);
    let t = tcp_of(&f);
    assert!(t.syn() && t.ack());
}

#[test]
fn server_synack_becomes_the_ack_and_reset() {
    // RIP → LIP SYN-ACK with timestamps.
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 1, 11], [10, 0, 1, 100], 64)
        .tcp(80, 50000, 9_000_000, 65160)
        .options(&[
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(4444, 778),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ])
        .unwrap()
        .syn()
        .ack(5001);
    let _ = &mut b;
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    let s = read_synack(&v, AT).unwrap();
    assert_eq!((s.isn, s.ack), (9_000_000, 5001));
    assert_eq!(s.opts.wscale, Some(7));
    let mut pkt = VecBuf::with_default_headroom(&v);
    ack_to_server(&mut pkt, AT, &s, Some(778), 502).unwrap();
    let f = pkt.to_vec();
    let t = tcp_of(&f);
    assert!(t.ack() && !t.syn());
    assert_eq!(
        (t.sequence_number(), t.acknowledgment_number()),
        (5001, 9_000_001)
    );
    assert_eq!((t.source_port(), t.destination_port()), (50000, 80));
    assert_eq!(&f[26..30], &[10, 0, 1, 100]);
    assert_eq!(t.window_size(), 502);
    let opts: Vec<_> = t.options_iterator().map(|o| o.unwrap()).collect();
    assert!(opts.contains(&TcpOptionElement::Timestamp(778, 4444)));

    let mut pkt = VecBuf::with_default_headroom(&v);
    reset_to_sender(&mut pkt, AT, 42).unwrap();
    let f = pkt.to_vec();
    let t = tcp_of(&f);
    assert!(t.rst() && !t.ack() && !t.syn());
    assert_eq!(t.sequence_number(), 42);
}

#[test]
fn established_translation_both_ways() {
    let sc = Scales {
        server: 9,
        to_client: 7,
        client: 6,
        client_at_server: 6,
    };
    // Server → client: seq + delta, TSval + ts_delta, window rescaled.
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 2])
        .ipv4(VIP, C, 64)
        .tcp(80, 40000, 100, 1000)
        .options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(10, 20),
        ])
        .unwrap()
        .ack(5);
    let _ = &mut b;
    let mut v = Vec::new();
    b.write(&mut v, b"hello").unwrap();
    to_client(&mut v, 34, 1000, Some(7), sc);
    let t = tcp_of(&v);
    assert_eq!(t.sequence_number(), 1100);
    assert_eq!(t.acknowledgment_number(), 5);
    assert_eq!(t.window_size(), 4000);
    let opts: Vec<_> = t.options_iterator().map(|o| o.unwrap()).collect();
    assert!(opts.contains(&TcpOptionElement::Timestamp(17, 20)));

    // Client → server: ack − delta, SACK edges − delta, TSecr − ts_delta.
    let mut v = client(
        5,
        Some(1100),
        false,
        &[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(30, 17),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::SelectiveAcknowledgement((2000, 3000), [None, None, None]),
        ],
        &[],
    );
    to_server(&mut v, 34, 1000, Some(7), sc);
    let t = tcp_of(&v);
    assert_eq!(t.acknowledgment_number(), 100);
    let opts: Vec<_> = t.options_iterator().map(|o| o.unwrap()).collect();
    assert!(opts.contains(&TcpOptionElement::Timestamp(30, 10)));
    assert!(opts.contains(&TcpOptionElement::SelectiveAcknowledgement(
        (1000, 2000),
        [None, None, None]
    )));
    assert_eq!(t.window_size(), 64240);
}

#[test]
fn scales_and_options_pack() {
    let s = Scales {
        server: 14,
        to_client: 7,
        client: 0,
        client_at_server: 3,
    };
    assert_eq!(Scales::unpack(s.pack()), s);
    let o = CookieOptions {
        mssind: 2,
        wscale: None,
        sack: false,
        ts: true,
    };
    assert_eq!(CookieOptions::unpack(o.pack()), o);
}

#[test]
fn garbage_frames_never_panic() {
    let mut c = cookies();
    let mut x = 7u32;
    for len in 0..120 {
        let mut f = vec![0u8; len];
        for b in f.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        if len > 14 {
            f[14] = 0x45;
        }
        let _ = check_ack(&f, AT, &mut c, 0);
        let _ = read_synack(&f, AT);
        let mut g = f.clone();
        to_client(&mut g, 34, 1, Some(1), Scales::default());
        to_server(&mut g, 34, 1, Some(1), Scales::default());
        let mut p = VecBuf::with_default_headroom(&f);
        if let Some(o) = options_of(&f, AT).and_then(|o| parse_options(o).ok()) {
            let _ = synack(&mut p, AT, &o, &mut c, 1460, 0);
        }
        let _ = reset_to_sender(&mut p, AT, 1);
    }
}

#[test]
fn options_at_odd_offsets_keep_the_checksum_right() {
    // A timestamp option after a single NOP (odd offset), then SACK after one NOP.
    let mut v = client(
        5,
        Some(1100),
        false,
        &[
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(30, 17),
            TcpOptionElement::Noop,
            TcpOptionElement::SelectiveAcknowledgement((2000, 3000), [None, None, None]),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
        ],
        b"abc",
    );
    to_server(&mut v, 34, 1000, Some(7), Scales::default());
    let t = tcp_of(&v);
    let opts: Vec<_> = t.options_iterator().map(|o| o.unwrap()).collect();
    assert!(opts.contains(&TcpOptionElement::Timestamp(30, 10)));
    assert!(opts.contains(&TcpOptionElement::SelectiveAcknowledgement(
        (1000, 2000),
        [None, None, None]
    )));
    to_client(&mut v, 34, 5, Some(9), Scales::default());
    tcp_of(&v);
}
