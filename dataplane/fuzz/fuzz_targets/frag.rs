//! Fragments: the classifier's facts about any frame that it calls a fragment, and the
//! fragment table's decisions over an arbitrary sequence of frames (each record: a
//! two-byte length, a control byte, the frame). Every fragment the table takes comes
//! back exactly once (forwarded, dropped, released with its datagram's verdict or timed
//! out); the bounds hold; nothing panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::frag::{self, Admit, FragConfig, FragKey, FragTable};
use rvs_dataplane::wire::{classify, ChecksumMode, Classified};

fuzz_target!(|data: &[u8]| {
    let cfg = FragConfig {
        max_datagrams: 4,
        max_held: 8,
        timeout_ms: 100,
    };
    let mut t: FragTable<usize, u8> = FragTable::new(cfg);
    let (mut admitted, mut returned) = (0usize, 0usize);
    let mut now = 0u64;
    let mut rest = data;
    let mut n = 0usize;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 3);
        let ctl = rest[2];
        let frame = &rest[3..3 + len];
        rest = &rest[3 + len..];
        now += u64::from(ctl & 0x3f);
        if ctl & 0x40 != 0 {
            returned += t.age(now, |_| {}) as usize;
        }
        let Ok(Classified::Ip(m)) = classify(frame, ChecksumMode::Software) else {
            continue;
        };
        let Some(f) = m.frag else {
            continue;
        };
        let data_len = m.ip_end - m.l4_offset;
        assert!(data_len > 0);
        assert_eq!(f.offset % 8, 0);
        assert!(!f.more || data_len % 8 == 0);
        assert!(usize::from(f.offset) + data_len <= 65535);
        if !f.is_first() {
            assert_eq!((m.tuple.src.port, m.tuple.dst.port), (0, 0));
        }
        let l4 = &frame[m.l4_offset..m.ip_end];
        let proto = m.tuple.protocol.0;
        if (f.is_first() && frag::tiny_first(proto, l4)) || frag::tiny_offset(proto, f.offset) {
            continue;
        }
        let key = FragKey {
            src: m.tuple.src.addr,
            dst: m.tuple.dst.addr,
            proto,
            ident: f.ident,
        };
        n += 1;
        admitted += 1;
        let mut freed = 0;
        let answer = t.admit(key, f.offset, data_len as u16, f.more, n, now, |_| {
            freed += 1
        });
        returned += freed;
        match answer {
            Admit::Held => {}
            Admit::Drop(p, _) | Admit::Known(p, _) => {
                assert_eq!(p, n);
                returned += 1;
            }
            Admit::First(p) => {
                assert_eq!(p, n);
                returned += 1;
                t.decided(&key, ctl, |_, v| {
                    assert_eq!(v, ctl);
                    returned += 1;
                });
            }
        }
        assert!(t.len() <= cfg.max_datagrams);
        assert!(t.held() <= cfg.max_held);
        assert_eq!(admitted, returned + t.held());
    }
    returned += t.age(u64::MAX, |_| {}) as usize;
    assert_eq!(admitted, returned);
    assert!(t.is_empty());
});
