//! IP fragments through the pipeline, built with etherparse and checked by reassembling
//! what leaves: every mode, both directions, in order and reversed, interleaved, with
//! one and two workers; and what is refused (overlaps, duplicates, tiny fragments, the
//! table's bounds, the timeout).

use std::collections::BTreeMap;

use super::*;
use crate::buf::VecBuf;
use crate::flow::{Addr, Proto, Tunnel};
use crate::frag::FragConfig;
use crate::route::Route;
use crate::service::{DestConfig, SchedKind, ServiceConfig, ServiceTable};
use crate::steer::{owner_of_client, owner_of_port};
use etherparse::{
    Ethernet2Header, IpFragOffset, IpNumber, Ipv4Header, Ipv4HeaderSlice, PacketBuilder,
};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xd0];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xd1];
const RS1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
const RS2_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x12];
const CIP: [u8; 4] = [10, 10, 0, 2];
const VIP: [u8; 4] = [10, 10, 0, 100];
const DIP0: [u8; 4] = [10, 10, 0, 1];
const DIP1: [u8; 4] = [10, 20, 0, 1];
const RS1: [u8; 4] = [10, 20, 0, 11];
const RS2: [u8; 4] = [10, 20, 0, 12];
const LIP: [u8; 4] = [10, 20, 0, 200];

fn a(x: [u8; 4]) -> Addr {
    Addr::from(IpAddr::V4(Ipv4Addr::from(x)))
}

/// A UDP service VIP:80 with RS1 and RS2 in mode `fwd`, ports of MTU 1500.
fn snapshot(fwd: FwdMethod, workers: usize) -> Snapshot {
    snapshot_flags(fwd, workers, 0)
}

/// [`snapshot`] with service flags `svc_flags`.
fn snapshot_flags(fwd: FwdMethod, workers: usize, svc_flags: u32) -> Snapshot {
    let key = ServiceKey::Addr {
        proto: Proto::Udp,
        addr: a(VIP),
        port: 80,
    };
    let mut t = ServiceTable::new();
    t.add_service(ServiceConfig::new(key, SchedKind::Rr).flags(svc_flags))
        .expect("service");
    let rport = if fwd == FwdMethod::Masq { 8080 } else { 80 };
    t.add_dest(
        &key,
        DestConfig::new(a(RS1), rport, fwd).tunnel(Tunnel::IPIP),
    )
    .expect("rs1");
    t.add_dest(
        &key,
        DestConfig::new(a(RS2), rport, fwd).tunnel(Tunnel::IPIP),
    )
    .expect("rs2");
    let mut net = NetConfig::new(workers);
    net.ports = [PORT0_MAC, PORT1_MAC]
        .map(|mac| PortNet {
            mac,
            mtu: 1500,
            vlan: None,
        })
        .to_vec();
    net.local.insert(Ipv4Addr::from(DIP0), (LocalKind::Dip, 0));
    net.local.insert(Ipv4Addr::from(VIP), (LocalKind::Vip, 0));
    net.local.insert(Ipv4Addr::from(DIP1), (LocalKind::Dip, 1));
    net.local.insert(Ipv4Addr::from(LIP), (LocalKind::Lip, 1));
    net.routes = RouteTable::new(vec![
        Route {
            prefix: Ipv4Addr::new(10, 10, 0, 0),
            len: 24,
            port: 0,
            gateway: None,
        },
        Route {
            prefix: Ipv4Addr::new(10, 20, 0, 0),
            len: 24,
            port: 1,
            gateway: None,
        },
    ]);
    if fwd == FwdMethod::FullNat {
        net.laddrs.insert(key, vec![Ipv4Addr::from(LIP).into()]);
    }
    Snapshot {
        generation: 1,
        services: t.snapshot(),
        net: Arc::new(net),
    }
}

/// Worker `id` of `workers` with every neighbour resolved.
fn core(fwd: FwdMethod, id: usize, workers: usize) -> Core<VecBuf> {
    core_with(snapshot(fwd, workers), id)
}

/// Worker `id` of snapshot `snap` with every neighbour resolved.
fn core_with(snap: Snapshot, id: usize) -> Core<VecBuf> {
    let mut c = Core::new(id, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snap);
    c.add_static_neighbour(Ipv4Addr::from(CIP).into(), CLIENT_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    c
}

/// The payload of datagram `seq`: a pattern any reordering or corruption breaks.
fn pattern(seq: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq * 7) as u8)
        .collect()
}

/// The UDP datagram `s:sp -> d:dp` carrying `payload`, as IPv4 fragments of at most
/// `mtu` bytes with identification `ident`, each an Ethernet frame from `mac`.
#[allow(clippy::too_many_arguments)]
fn fragments(
    mac: [u8; 6],
    s: [u8; 4],
    sp: u16,
    d: [u8; 4],
    dp: u16,
    ident: u16,
    payload: &[u8],
    mtu: usize,
) -> Vec<Vec<u8>> {
    let mut whole = Vec::new();
    PacketBuilder::ipv4(s, d, 64)
        .udp(sp, dp)
        .write(&mut whole, payload)
        .expect("build");
    let data = &whole[20..];
    let step = (mtu - 20) & !7;
    data.chunks(step)
        .enumerate()
        .map(|(i, chunk)| {
            let mut h = Ipv4Header::new(chunk.len() as u16, 64, IpNumber::UDP, s, d).unwrap();
            h.dont_fragment = false;
            h.identification = ident;
            h.more_fragments = (i + 1) * step < data.len();
            h.fragment_offset = IpFragOffset::try_new((i * step / 8) as u16).unwrap();
            h.header_checksum = h.calc_header_checksum();
            let mut f = Vec::new();
            Ethernet2Header {
                source: mac,
                destination: PORT0_MAC,
                ether_type: etherparse::EtherType::IPV4,
            }
            .write(&mut f)
            .unwrap();
            h.write(&mut f).unwrap();
            f.extend_from_slice(chunk);
            f
        })
        .collect()
}

fn buf(f: &[u8]) -> VecBuf {
    VecBuf::new(VecBuf::DEFAULT_HEADROOM, f)
}

/// Processes `frames` on `c` (arriving on `port`), collecting what leaves: the outcome
/// of each, then the fragments released beside it.
fn run(
    c: &mut Core<VecBuf>,
    frames: &[Vec<u8>],
    port: u16,
    now: u64,
    owner: bool,
) -> Vec<Out<VecBuf>> {
    let mut outs = Vec::new();
    for f in frames {
        outs.push(c.process(buf(f), port, now, owner));
        outs.extend(c.take_frag_out());
    }
    outs
}

/// The frames sent (`Out::Tx`): (frame, port). Panics on anything but Tx and Held.
fn sent(outs: Vec<Out<VecBuf>>) -> Vec<(Vec<u8>, u16)> {
    outs.into_iter()
        .filter_map(|o| match o {
            Out::Tx(p, port) => Some((p.data().to_vec(), port)),
            Out::Held => None,
            o => panic!("expected Tx, got {o:?}"),
        })
        .collect()
}

/// A fragment as the reassembly sorts it: offset, MF, header, data.
type Piece = (u16, bool, Ipv4Header, Vec<u8>);
/// A datagram as the tests compare it: source, source port, destination, destination
/// port, payload.
type Datagram = ([u8; 4], u16, [u8; 4], u16, Vec<u8>);

/// Reassembles IPv4 packets (header at the start of each; every header checksum is
/// checked): the whole datagrams, as (header of the first, payload), by (src, dst, ID).
fn reassemble(packets: &[&[u8]]) -> Vec<(Ipv4Header, Vec<u8>)> {
    let mut by: BTreeMap<([u8; 4], [u8; 4], u16), Vec<Piece>> = BTreeMap::new();
    for p in packets {
        let h = Ipv4HeaderSlice::from_slice(p).expect("IPv4");
        let hdr = h.to_header();
        assert_eq!(
            hdr.calc_header_checksum(),
            hdr.header_checksum,
            "IP checksum"
        );
        let body = p[h.slice().len()..usize::from(h.total_len())].to_vec();
        by.entry((h.source(), h.destination(), h.identification()))
            .or_default()
            .push((
                h.fragments_offset().value() * 8,
                h.more_fragments(),
                hdr,
                body,
            ));
    }
    by.into_values()
        .map(|mut parts| {
            parts.sort_by_key(|p| p.0);
            let mut data = Vec::new();
            for (off, _, _, body) in &parts {
                assert_eq!(usize::from(*off), data.len(), "contiguous fragments");
                data.extend_from_slice(body);
            }
            assert!(!parts.last().unwrap().1, "the last fragment has no MF");
            (parts[0].2.clone(), data)
        })
        .collect()
}

/// The UDP datagram of a reassembled IPv4 payload, its checksum checked over the whole
/// datagram: (src, sport, dst, dport, payload).
fn udp_of(h: &Ipv4Header, data: &[u8]) -> Datagram {
    let (u, rest) = etherparse::UdpHeader::from_slice(data).expect("UDP");
    assert_eq!(usize::from(u.length), data.len(), "UDP length");
    let want = u.calc_checksum_ipv4(h, rest).unwrap();
    assert_eq!(u.checksum, want, "UDP checksum over the whole datagram");
    (
        h.source,
        u.source_port,
        h.destination,
        u.destination_port,
        rest.to_vec(),
    )
}

/// The datagrams in `frames` (Ethernet frames; under TUN the outer packets are
/// reassembled, then the inner ones).
fn datagrams(frames: &[(Vec<u8>, u16)], tun: bool) -> Vec<Datagram> {
    let ips: Vec<&[u8]> = frames.iter().map(|(f, _)| &f[14..]).collect();
    let inner: Vec<Vec<u8>> = if tun {
        reassemble(&ips)
            .into_iter()
            .map(|(h, d)| {
                assert_eq!(h.protocol, IpNumber::IPV4, "IPIP");
                d
            })
            .collect()
    } else {
        ips.iter().map(|p| p.to_vec()).collect()
    };
    let refs: Vec<&[u8]> = inner.iter().map(|v| v.as_slice()).collect();
    reassemble(&refs)
        .iter()
        .map(|(h, d)| udp_of(h, d))
        .collect()
}

const MODES: [FwdMethod; 4] = [
    FwdMethod::Masq,
    FwdMethod::FullNat,
    FwdMethod::Route,
    FwdMethod::Tunnel,
];

#[test]
fn a_fragmented_datagram_reaches_the_real_server_intact_in_every_mode_in_any_order() {
    for fwd in MODES {
        let mut c = core(fwd, 0, 1);
        let tun = fwd == FwdMethod::Tunnel;
        for (seq, reverse) in [(1u16, false), (2, true)] {
            let payload = pattern(u32::from(seq), 4000);
            let mut frags = fragments(CLIENT_MAC, CIP, 40000, VIP, 80, seq, &payload, 1500);
            assert_eq!(frags.len(), 3);
            if reverse {
                frags.reverse();
            }
            let outs = run(&mut c, &frags, 0, 1, true);
            if reverse {
                assert!(matches!(outs[0], Out::Held) && matches!(outs[1], Out::Held));
            }
            let out = sent(outs);
            // TUN: each 1500-byte fragment with its 20-byte IPIP header is two outer
            // fragments on an MTU of 1500.
            assert_eq!(out.len(), if tun { 5 } else { 3 }, "{fwd:?}");
            for (f, port) in &out {
                assert_eq!(*port, 1);
                assert!(f.len() <= 14 + 1500);
                assert!([RS1_MAC, RS2_MAC].contains(&f[..6].try_into().unwrap()));
                assert_eq!(&f[6..12], &PORT1_MAC);
            }
            let d = datagrams(&out, tun);
            assert_eq!(d.len(), 1, "{fwd:?}");
            let (src, sport, dst, dport, data) = &d[0];
            assert_eq!(data, &payload, "{fwd:?}");
            let rs = [RS1, RS2];
            match fwd {
                FwdMethod::Masq => {
                    assert_eq!((*src, *sport), (CIP, 40000));
                    assert!(rs.contains(dst) && *dport == 8080);
                }
                FwdMethod::FullNat => {
                    assert_eq!(*src, LIP);
                    assert!(rs.contains(dst) && *dport == 80);
                }
                _ => assert_eq!((*src, *sport, *dst, *dport), (CIP, 40000, VIP, 80)),
            }
        }
        // One session: the fragments took the first one's.
        assert_eq!(c.conns().len(), 1, "{fwd:?}");
        let ctr = c.counters();
        assert_eq!(ctr.frags_forwarded, 6, "{fwd:?}");
        assert_eq!(ctr.frags_held, 2);
        assert_eq!(ctr.dropped(), 0, "{:?}", ctr.drops);
        assert_eq!(ctr.tun_outer_fragmented, if tun { 4 } else { 0 });
        assert!(
            c.frag_table().is_empty(),
            "complete datagrams are forgotten"
        );
    }
}

/// The session's reply tuple toward the director: (RS, rport, dst, dport).
fn reply_ends(c: &Core<VecBuf>) -> ([u8; 4], u16, [u8; 4], u16) {
    let (_, s) = c.conns().iter().next().expect("a session");
    let v4 = |a: Addr| match a.to_ip() {
        IpAddr::V4(x) => x.octets(),
        IpAddr::V6(_) => panic!(),
    };
    let dst = if s.fwd() == FwdMethod::FullNat {
        (v4(s.laddr()), s.lport())
    } else {
        (CIP, 40000)
    };
    (v4(s.daddr()), s.dport(), dst.0, dst.1)
}

#[test]
fn fragmented_replies_reach_the_client_as_from_the_vip() {
    for fwd in [FwdMethod::Masq, FwdMethod::FullNat] {
        let mut c = core(fwd, 0, 1);
        let req = fragments(CLIENT_MAC, CIP, 40000, VIP, 80, 1, &pattern(1, 4000), 1500);
        sent(run(&mut c, &req, 0, 1, true));
        let (rs, rport, dst, dport) = reply_ends(&c);
        let rs_mac = if rs == RS1 { RS1_MAC } else { RS2_MAC };
        for (seq, reverse) in [(7u16, false), (8, true)] {
            let payload = pattern(u32::from(seq), 4000);
            let mut frags = fragments(rs_mac, rs, rport, dst, dport, seq, &payload, 1500);
            if reverse {
                frags.reverse();
            }
            let out = sent(run(&mut c, &frags, 1, 2, true));
            assert_eq!(out.len(), 3);
            assert!(out.iter().all(|(f, p)| *p == 0 && f[..6] == CLIENT_MAC));
            let d = datagrams(&out, false);
            assert_eq!(d, [(VIP, 80, CIP, 40000, payload)], "{fwd:?}");
        }
        assert_eq!(c.counters().out_packets, 6);
    }
}

#[test]
fn interleaved_datagrams_are_kept_apart() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    let (p1, p2) = (pattern(1, 4000), pattern(2, 3000));
    let f1 = fragments(CLIENT_MAC, CIP, 40000, VIP, 80, 11, &p1, 1500);
    let f2 = fragments(CLIENT_MAC, CIP, 40001, VIP, 80, 12, &p2, 1500);
    // 2's last, 1's middle, 1's last, 2's first, 1's first.
    let order = [&f2[2], &f1[1], &f1[2], &f2[0], &f2[1], &f1[0]];
    let frames: Vec<Vec<u8>> = order.iter().map(|f| f.to_vec()).collect();
    let out = sent(run(&mut c, &frames, 0, 1, true));
    assert_eq!(out.len(), 6);
    let mut d = datagrams(&out, false);
    d.sort_by_key(|x| x.1);
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].1, &d[0].4), (40000, &p1));
    assert_eq!((d[1].1, &d[1].4), (40001, &p2));
    assert_eq!(c.conns().len(), 2);
}

#[test]
fn duplicates_overlaps_and_tiny_fragments_are_dropped_and_counted() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    let payload = pattern(3, 4000);
    let f = fragments(CLIENT_MAC, CIP, 40000, VIP, 80, 21, &payload, 1500);
    sent(run(&mut c, &f[..2], 0, 1, true));
    // The middle fragment again: a duplicate.
    let o = c.process(buf(&f[1]), 0, 1, true);
    assert!(
        matches!(o, Out::Drop(_, DropReason::FragDuplicate)),
        "{o:?}"
    );
    // A fragment overlapping the first two: the datagram is refused from then on.
    let over = fragments(CLIENT_MAC, CIP, 40000, VIP, 80, 21, &payload, 1004);
    let o = c.process(buf(&over[1]), 0, 1, true);
    assert!(
        matches!(o, Out::Drop(_, DropReason::FragDuplicate)),
        "within: {o:?}"
    );
    let o = c.process(buf(&over[3]), 0, 1, true);
    assert!(matches!(o, Out::Drop(_, DropReason::FragOverlap)), "{o:?}");
    let o = c.process(buf(&f[2]), 0, 1, true);
    assert!(matches!(o, Out::Drop(_, DropReason::FragOverlap)), "{o:?}");
    // Tiny first fragments (RFC 1858): 8 bytes of data is a UDP header, but the
    // datagram's first 8 bytes of a TCP segment are not its header.
    let tiny = fragments(CLIENT_MAC, CIP, 40002, VIP, 80, 22, &payload, 28);
    let o = c.process(buf(&tiny[0]), 0, 1, true);
    assert!(
        !matches!(o, Out::Drop(_, DropReason::FragTiny)),
        "8 bytes hold UDP's header"
    );
    let mut tcp = tiny[0].clone();
    tcp[14 + 9] = 6;
    let mut h = Ipv4HeaderSlice::from_slice(&tcp[14..]).unwrap().to_header();
    h.header_checksum = h.calc_header_checksum();
    tcp[14..34].copy_from_slice(&h.to_bytes());
    let o = c.process(buf(&tcp), 0, 1, true);
    assert!(matches!(o, Out::Drop(_, DropReason::FragTiny)), "{o:?}");
    // A TCP fragment at offset 8.
    let mut at8 = tiny[1].clone();
    at8[14 + 9] = 6;
    let mut h = Ipv4HeaderSlice::from_slice(&at8[14..]).unwrap().to_header();
    h.identification = 23;
    h.header_checksum = h.calc_header_checksum();
    at8[14..34].copy_from_slice(&h.to_bytes());
    let o = c.process(buf(&at8), 0, 1, true);
    assert!(matches!(o, Out::Drop(_, DropReason::FragTiny)), "{o:?}");
    let ctr = c.counters();
    assert_eq!(ctr.drops_of(DropReason::FragDuplicate), 2);
    assert_eq!(ctr.drops_of(DropReason::FragOverlap), 2);
    assert_eq!(ctr.drops_of(DropReason::FragTiny), 2);
    // No TCP session from any of it (the service is UDP; nothing TCP was scheduled).
    assert!(c.conns().iter().all(|(_, s)| s.proto() == Proto::Udp));
}

#[test]
fn malformed_fragments_stay_malformed() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    let f = fragments(CLIENT_MAC, CIP, 40000, VIP, 80, 31, &pattern(1, 4000), 1500);
    // MF with data not a multiple of 8.
    let mut odd = f[0].clone();
    odd.truncate(odd.len() - 3);
    let mut h = Ipv4HeaderSlice::from_slice(&odd[14..]).unwrap().to_header();
    h.total_len -= 3;
    h.header_checksum = h.calc_header_checksum();
    odd[14..34].copy_from_slice(&h.to_bytes());
    let o = c.process(buf(&odd), 0, 1, true);
    assert!(
        matches!(
            o,
            Out::Drop(_, DropReason::Malformed(crate::wire::Error::Fragment))
        ),
        "{o:?}"
    );
    assert_eq!(c.conns().len(), 0);
}

#[test]
fn the_tables_bounds_and_timeout_drop_what_waits_too_long() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    c.set_frag_config(FragConfig {
        max_datagrams: 2,
        max_held: 3,
        timeout_ms: 1000,
    });
    let later = |ident: u16| {
        fragments(
            CLIENT_MAC,
            CIP,
            40000,
            VIP,
            80,
            ident,
            &pattern(1, 4000),
            1500,
        )
    };
    let (d1, d2, d3) = (later(41), later(42), later(43));
    assert!(matches!(c.process(buf(&d1[1]), 0, 10, true), Out::Held));
    assert!(matches!(c.process(buf(&d1[2]), 0, 10, true), Out::Held));
    assert!(matches!(c.process(buf(&d2[2]), 0, 10, true), Out::Held));
    // Held in all: 3.
    let o = c.process(buf(&d2[1]), 0, 10, true);
    assert!(
        matches!(o, Out::Drop(_, DropReason::FragTableFull)),
        "{o:?}"
    );
    // Datagrams: 2.
    let o = c.process(buf(&d3[2]), 0, 10, true);
    assert!(
        matches!(o, Out::Drop(_, DropReason::FragTableFull)),
        "{o:?}"
    );
    // Datagram 1 completes.
    assert_eq!(sent(run(&mut c, &d1[..1], 0, 20, true)).len(), 3);
    // Datagram 2's first never comes: its held fragment times out.
    let mut freed = 0;
    c.tick(500, |_| freed += 1);
    assert_eq!(freed, 0);
    c.tick(1010, |_| freed += 1);
    assert_eq!(freed, 1);
    let ctr = c.counters();
    assert_eq!(ctr.drops_of(DropReason::FragTimeout), 1);
    assert_eq!(ctr.drops_of(DropReason::FragTableFull), 2);
    assert!(c.frag_table().is_empty());
    assert_eq!(c.frag_table().held(), 0);
}

#[test]
fn a_refused_first_fragment_refuses_the_rest() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    // To a port with no service.
    let f = fragments(CLIENT_MAC, CIP, 40000, VIP, 81, 51, &pattern(1, 4000), 1500);
    let outs = run(
        &mut c,
        &[f[2].clone(), f[0].clone(), f[1].clone()],
        0,
        1,
        true,
    );
    let reasons: Vec<_> = outs
        .iter()
        .map(|o| match o {
            Out::Drop(_, r) => Some(*r),
            _ => None,
        })
        .collect();
    // Held, the first refused, the held one dropped beside it (for the worker to pass
    // to the kernel, as the first), the last refused.
    assert_eq!(
        reasons,
        [
            None,
            Some(DropReason::NotForUs),
            Some(DropReason::NotForUs),
            Some(DropReason::NotForUs)
        ]
    );
    assert_eq!(c.counters().drops_of(DropReason::NotForUs), 3);
    assert_eq!(c.conns().len(), 0);
}

#[test]
fn fragments_reach_the_worker_owning_their_flow_in_order() {
    // FULLNAT with two workers: the reply's owner is named by the LIP port only the
    // first fragment carries.
    let owner = owner_of_client(Ipv4Addr::from(CIP), 2);
    let mut w = [
        core(FwdMethod::FullNat, 0, 2),
        core(FwdMethod::FullNat, 1, 2),
    ];
    let other = 1 - owner;
    let payload = pattern(5, 4000);
    let mut req = fragments(CLIENT_MAC, CIP, 40000, VIP, 80, 61, &payload, 1500);
    req.reverse();
    // The other worker holds the later fragments, hands the first over, then the rest.
    let outs = run(&mut w[other], &req, 0, 1, true);
    let handed: Vec<VecBuf> = outs
        .into_iter()
        .filter_map(|o| match o {
            Out::Handoff(p, to) => {
                assert_eq!(to as usize, owner);
                Some(p)
            }
            Out::Held => None,
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(handed.len(), 3);
    let first = Ipv4HeaderSlice::from_slice(&handed[0].data()[14..]).unwrap();
    assert_eq!(first.fragments_offset().value(), 0, "the first goes first");
    let frames: Vec<Vec<u8>> = handed.iter().map(|p| p.data().to_vec()).collect();
    let out = sent(run(&mut w[owner], &frames, 0, 1, false));
    let d = datagrams(&out, false);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].0, LIP);
    assert_eq!(d[0].4, payload);
    let lport = d[0].1;
    let rs = d[0].2;
    assert_eq!(owner_of_port(lport, 2), owner);
    // The reply, reversed, to the other worker: handed over the same way.
    let rs_mac = if rs == RS1 { RS1_MAC } else { RS2_MAC };
    let mut rep = fragments(rs_mac, rs, 80, LIP, lport, 62, &payload, 1500);
    rep.reverse();
    let handed: Vec<Vec<u8>> = run(&mut w[other], &rep, 1, 2, true)
        .into_iter()
        .filter_map(|o| match o {
            Out::Handoff(p, to) if to as usize == owner => Some(p.data().to_vec()),
            Out::Held => None,
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(handed.len(), 3);
    let out = sent(run(&mut w[owner], &handed, 1, 2, false));
    assert_eq!(datagrams(&out, false), [(VIP, 80, CIP, 40000, payload)]);
    assert_eq!(w[other].conns().len(), 0, "no session on the other worker");
    assert_eq!(w[other].counters().handoff_out, 6);
}

/// An outcome reduced to what two cores can be compared on.
fn outcome(o: Out<VecBuf>) -> (u8, String, Vec<u8>) {
    match o {
        Out::Tx(p, port) => (0, port.to_string(), p.data().to_vec()),
        Out::Handoff(p, w) => (1, w.to_string(), p.data().to_vec()),
        Out::Drop(p, r) => (2, r.name(), p.data().to_vec()),
        Out::Consumed(p) => (3, String::new(), p.data().to_vec()),
        Out::Held => (4, String::new(), Vec::new()),
    }
}

#[test]
fn a_burst_of_fragments_is_processed_as_packet_by_packet() {
    for fwd in MODES {
        let (mut one, mut burst) = (core(fwd, 0, 1), core(fwd, 0, 1));
        let mut frames = fragments(CLIENT_MAC, CIP, 40000, VIP, 80, 71, &pattern(1, 4000), 1500);
        frames.reverse();
        let mut small = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CIP, VIP, 64)
            .udp(40001, 80)
            .write(&mut small, b"whole")
            .unwrap();
        frames.insert(1, small);
        frames.extend(fragments(
            CLIENT_MAC,
            CIP,
            40002,
            VIP,
            80,
            72,
            &pattern(2, 3000),
            1500,
        ));
        let mut got = Vec::new();
        burst.process_burst(
            frames.iter().map(|f| buf(f)),
            1,
            true,
            |_| 0,
            |e| {
                if let Emit::Packet(o) = e {
                    got.push(outcome(o));
                }
            },
        );
        let side: Vec<_> = burst.take_frag_out().map(outcome).collect();
        // The burst's side outputs come after the burst; packet by packet, after each
        // packet: the same frames, in the same order among themselves.
        let (mut want_main, mut want_side) = (Vec::new(), Vec::new());
        for f in &frames {
            want_main.push(outcome(one.process(buf(f), 0, 1, true)));
            want_side.extend(one.take_frag_out().map(outcome));
        }
        assert_eq!(got, want_main, "{fwd:?}");
        assert_eq!(side, want_side, "{fwd:?}");
        // Something was forwarded: two datagrams' fragments and the whole one.
        assert!(got.iter().filter(|o| o.0 == 0).count() + side.len() >= 7);
        assert_eq!(one.counters(), burst.counters(), "{fwd:?}");
    }
}

#[test]
fn a_fragmented_datagram_cannot_take_a_proxy_header_and_is_refused_whole() {
    let snap = snapshot_flags(FwdMethod::FullNat, 1, crate::service::svc_flags::PROXY_V2);
    let mut c = core_with(snap, 0);
    // A whole datagram gets its v2 header (the service does PROXY protocol).
    let mut small = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CIP, VIP, 64)
        .udp(40000, 80)
        .write(&mut small, b"whole")
        .unwrap();
    let out = sent(run(&mut c, &[small], 0, 1, true));
    assert_eq!(out.len(), 1);
    assert_eq!(c.counters().proxy_headers, 1);
    // A fragmented one of the same flow: every fragment refused, nothing corrupt sent.
    let mut f = fragments(CLIENT_MAC, CIP, 40000, VIP, 80, 81, &pattern(1, 4000), 1500);
    f.swap(0, 2);
    let outs = run(&mut c, &f, 0, 2, true);
    assert!(
        outs.iter()
            .all(|o| matches!(o, Out::Held | Out::Drop(_, DropReason::ProxyNoRoom))),
        "{outs:?}"
    );
    assert_eq!(c.counters().drops_of(DropReason::ProxyNoRoom), 3);
    assert_eq!(c.counters().proxy_headers, 1);
}

/// TUN toward a VLAN port: a datagram without DF too big for the tunnel leaves as two
/// outer fragments, both tagged with the egress port's VLAN, both to the real server.
#[test]
fn both_outer_fragments_of_a_tunnelled_packet_carry_the_egress_vlan() {
    let mut snap = snapshot(FwdMethod::Tunnel, 1);
    let mut net = (*snap.net).clone();
    net.ports[1].vlan = Some(20);
    snap.net = Arc::new(net);
    let mut c = core_with(snap, 0);
    let payload = pattern(9, 1472);
    let frames = fragments(CLIENT_MAC, CIP, 40000, VIP, 80, 77, &payload, 1500);
    assert_eq!(frames.len(), 1, "one whole datagram, without DF");
    let out = sent(run(&mut c, &frames, 0, 1, true));
    assert_eq!(out.len(), 2, "two outer fragments");
    for (f, port) in &out {
        assert_eq!(*port, 1);
        let p = etherparse::SlicedPacket::from_ethernet(f).expect("a frame");
        let Some(etherparse::VlanSlice::SingleVlan(tag)) = &p.vlan else {
            panic!("untagged: {f:02x?}")
        };
        assert_eq!(tag.vlan_identifier().value(), 20);
        assert!([RS1_MAC, RS2_MAC].contains(&f[..6].try_into().unwrap()));
    }
    assert_eq!(c.counters().tun_outer_fragmented, 1);
}
