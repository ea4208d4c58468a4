//! The pipeline against packets built with etherparse: every path, every mode.

use super::*;
use crate::buf::VecBuf;
use crate::flow::{Addr, Proto, TunCsum, TunKind, Tunnel};
use crate::route::Route;
use crate::service::{DestConfig, SchedKind, ServiceConfig, ServiceTable};
use crate::steer::{owner_of_client, owner_of_port};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

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

fn snapshot(fwd: FwdMethod, workers: usize) -> Snapshot {
    snapshot_tun(fwd, workers, [Tunnel::IPIP; 2])
}

/// [`snapshot`] with the tunnels of RS1 and RS2 (under TUN).
fn snapshot_tun(fwd: FwdMethod, workers: usize, tunnels: [Tunnel; 2]) -> Snapshot {
    snapshot_with(fwd, workers, tunnels, Proto::Tcp, 0)
}

/// [`snapshot_tun`] of a `proto` service with service flags `svc_flags`.
fn snapshot_with(
    fwd: FwdMethod,
    workers: usize,
    tunnels: [Tunnel; 2],
    proto: Proto,
    svc_flags: u32,
) -> Snapshot {
    snapshot_sched(fwd, workers, tunnels, proto, svc_flags, SchedKind::Rr)
}

/// [`snapshot_with`] with scheduler `sched`.
fn snapshot_sched(
    fwd: FwdMethod,
    workers: usize,
    tunnels: [Tunnel; 2],
    proto: Proto,
    svc_flags: u32,
    sched: SchedKind,
) -> Snapshot {
    let key = ServiceKey::Addr {
        proto,
        addr: a(VIP),
        port: 80,
    };
    let mut t = ServiceTable::new();
    t.add_service(ServiceConfig::new(key, sched).flags(svc_flags))
        .expect("service");
    let rport = if fwd == FwdMethod::Masq { 8080 } else { 80 };
    t.add_dest(&key, DestConfig::new(a(RS1), rport, fwd).tunnel(tunnels[0]))
        .expect("rs1");
    t.add_dest(&key, DestConfig::new(a(RS2), 80, fwd).tunnel(tunnels[1]))
        .expect("rs2");
    let mut net = NetConfig::new(workers);
    net.ports = vec![
        PortNet {
            mac: PORT0_MAC,
            mtu: 1500,
            vlan: None,
        },
        PortNet {
            mac: PORT1_MAC,
            mtu: 1500,
            vlan: None,
        },
    ];
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

fn core(fwd: FwdMethod, id: usize, workers: usize) -> Core<VecBuf> {
    core_tun(fwd, [Tunnel::IPIP; 2], id, workers)
}

/// [`core`] with the tunnels of RS1 and RS2.
fn core_tun(fwd: FwdMethod, tunnels: [Tunnel; 2], id: usize, workers: usize) -> Core<VecBuf> {
    let mut c = Core::new(id, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snapshot_tun(fwd, workers, tunnels));
    c
}

/// The modes of the equivalence tests: NAT, FULLNAT, DR, TUN with IPIP servers, and TUN
/// with a GUE server (RS1, port 6080) and a GRE one (RS2), with and without checksums.
fn modes() -> Vec<(FwdMethod, [Tunnel; 2])> {
    let gue = |csum| Tunnel {
        kind: TunKind::Gue,
        port: 6080,
        csum,
    };
    let gre = |csum| Tunnel {
        kind: TunKind::Gre,
        port: 0,
        csum,
    };
    let ipip = [Tunnel::IPIP; 2];
    vec![
        (FwdMethod::Masq, ipip),
        (FwdMethod::FullNat, ipip),
        (FwdMethod::Route, ipip),
        (FwdMethod::Tunnel, ipip),
        (FwdMethod::Tunnel, [gue(TunCsum::Csum), gre(TunCsum::Csum)]),
        (
            FwdMethod::Tunnel,
            [gue(TunCsum::NoCsum), gre(TunCsum::NoCsum)],
        ),
    ]
}

/// A frame sent to a real server in TUN mode is encapsulated as the server's tunnel
/// says: the outer protocol (4, 17 to port 6080, 47) by the destination MAC.
fn assert_tunnelled_as_configured(out: &[u8], tunnels: [Tunnel; 2]) {
    let t = match &out[..6] {
        m if m == RS1_MAC => tunnels[0],
        m if m == RS2_MAC => tunnels[1],
        _ => return,
    };
    let p = SlicedPacket::from_ethernet(out).expect("parses");
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("outer IPv4")
    };
    let proto = ip.header().protocol();
    match t.kind {
        TunKind::Ipip => assert_eq!(proto, etherparse::IpNumber::IPV4),
        TunKind::Gre => assert_eq!(proto, etherparse::IpNumber::GRE),
        TunKind::Gue => {
            let Some(TransportSlice::Udp(u)) = &p.transport else {
                panic!("UDP")
            };
            assert_eq!(u.destination_port(), 6080);
            assert_eq!(u.checksum() != 0, t.csum != TunCsum::NoCsum);
        }
    }
}

/// `core_tun` with the clients' port (0) on 802.1Q VLAN `vid`.
fn core_tun_vlan(
    fwd: FwdMethod,
    tunnels: [Tunnel; 2],
    id: usize,
    workers: usize,
    vid: Option<u16>,
) -> Core<VecBuf> {
    let mut snap = snapshot_tun(fwd, workers, tunnels);
    let mut net = (*snap.net).clone();
    net.ports[0].vlan = vid;
    snap.net = Arc::new(net);
    let mut c = Core::new(id, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snap);
    c
}

/// `core` with the clients' port (0) on 802.1Q VLAN `vid`.
fn core_vlan(fwd: FwdMethod, id: usize, workers: usize, vid: Option<u16>) -> Core<VecBuf> {
    let mut snap = snapshot(fwd, workers);
    let mut net = (*snap.net).clone();
    net.ports[0].vlan = vid;
    snap.net = Arc::new(net);
    let mut c = Core::new(id, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snap);
    c
}

/// The frame of `p` behind an 802.1Q tag of VID `vid` (`None`: unchanged).
fn tagged(p: VecBuf, vid: Option<u16>) -> VecBuf {
    let Some(v) = vid else {
        return p;
    };
    let mut f = p.data().to_vec();
    f.splice(12..12, [0x81, 0x00, (v >> 8) as u8, v as u8]);
    VecBuf::new(VecBuf::DEFAULT_HEADROOM, &f)
}

/// The VID of a frame's 802.1Q tag as etherparse reads it (`None`: untagged).
fn vid(frame: &[u8]) -> Option<u16> {
    match SlicedPacket::from_ethernet(frame)
        .expect("etherparse parses it")
        .vlan
    {
        None => None,
        Some(etherparse::VlanSlice::SingleVlan(v)) => Some(v.vlan_identifier().value()),
        Some(etherparse::VlanSlice::DoubleVlan(_)) => panic!("two tags"),
    }
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    s: [u8; 4],
    sp: u16,
    d: [u8; 4],
    dp: u16,
    syn: bool,
    ack: bool,
) -> VecBuf {
    let mut b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(s, d, 64)
        .tcp(sp, dp, 1000, 65535);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(1);
    }
    let payload = b"GET / HTTP/1.0\r\n\r\n";
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("build");
    VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v)
}

fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> VecBuf {
    let mut f = vec![0u8; 42];
    f[..6].copy_from_slice(if op == 1 { &[0xff; 6] } else { &tha });
    f[6..12].copy_from_slice(&sha);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, op as u8]);
    f[22..28].copy_from_slice(&sha);
    f[28..32].copy_from_slice(&spa);
    f[32..38].copy_from_slice(&tha);
    f[38..42].copy_from_slice(&tpa);
    VecBuf::new(64, &f)
}

/// Parses a frame with etherparse and returns (src ip, sport, dst ip, dport) after
/// checking the IPv4 and TCP checksums.
fn check(frame: &[u8]) -> ([u8; 4], u16, [u8; 4], u16) {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses it");
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let h = ip.header();
    let hdr = h.to_header();
    assert_eq!(
        hdr.calc_header_checksum(),
        hdr.header_checksum,
        "IPv4 checksum"
    );
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    let want = t
        .to_header()
        .calc_checksum_ipv4(&hdr, t.payload())
        .expect("checksum");
    assert_eq!(want, t.checksum(), "TCP checksum");
    (
        h.source(),
        t.source_port(),
        h.destination(),
        t.destination_port(),
    )
}

fn tx(out: Out<VecBuf>) -> (VecBuf, u16) {
    match out {
        Out::Tx(p, port) => (p, port),
        other => panic!("expected Tx, got {other:?}"),
    }
}

#[test]
fn arp_for_the_vip_is_answered_and_the_client_learned() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    let (p, port) = tx(c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, true));
    assert_eq!(port, 0);
    let f = p.data();
    assert_eq!(&f[..6], &CLIENT_MAC);
    assert_eq!(&f[6..12], &PORT0_MAC);
    assert_eq!(&f[20..22], &[0, 2], "ARP reply");
    assert_eq!(&f[22..28], &PORT0_MAC, "sender MAC is the director's");
    assert_eq!(&f[28..32], &VIP);
    assert_eq!(&f[32..38], &CLIENT_MAC);
    assert_eq!(c.neigh().get(Ipv4Addr::from(CIP)), Some(CLIENT_MAC));
    // Not ours: consumed, not answered.
    assert!(matches!(
        c.process(arp(1, CLIENT_MAC, CIP, [0; 6], [10, 10, 0, 77]), 0, 0, true),
        Out::Consumed(_)
    ));
}

#[test]
fn a_tagged_frame_on_an_untagged_port_is_dropped_and_counted() {
    // Issue 17: a client's frame with one 802.1Q tag (VID 10) on an untagged port was
    // NATed and left for the real server with the tag on. It is dropped as `vlan`: no
    // session, nothing forwarded, nothing for the kernel (an ARP request neither).
    let mut c = core(FwdMethod::Masq, 0, 1);
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
    let out = c.process(tagged(syn, Some(10)), 0, 1, true);
    assert!(matches!(out, Out::Drop(_, DropReason::Vlan)), "{out:?}");
    let arp_req = tagged(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), Some(10));
    let out = c.process(arp_req, 0, 1, true);
    assert!(matches!(out, Out::Drop(_, DropReason::Vlan)), "{out:?}");
    assert_eq!(c.conns().len(), 0, "no session from a tagged SYN");
    assert_eq!(c.neigh().get(Ipv4Addr::from(CIP)), None, "nothing learned");
    // An established session's tagged segment is dropped on the fast path too.
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40001, VIP, 80, true, false);
    tx(c.process(syn, 0, 2, true));
    let ack = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40001, VIP, 80, false, true);
    let mut got = Vec::new();
    c.process_burst(
        [tagged(ack.clone(), Some(10)), ack],
        3,
        true,
        |_| 0,
        |e| match e {
            Emit::Packet(o) => got.push(verdict(o)),
            Emit::Generated(..) => panic!("nothing originated"),
        },
    );
    assert_eq!((got[0].0, got[0].1.as_str()), (2, "vlan"));
    assert_eq!(
        (got[1].0, got[1].1.as_str()),
        (0, "1"),
        "the untagged one goes on"
    );
    assert_eq!(vid(&got[1].2), None);
    assert_eq!(c.counters().drops_of(DropReason::Vlan), 3);
    assert_eq!(DropReason::Vlan.name(), "vlan");
}

#[test]
fn a_vlan_port_takes_its_vid_and_tags_what_leaves_by_it() {
    // The clients' port is on VLAN 10, the servers' untagged.
    let mut c = core_vlan(FwdMethod::Masq, 0, 1, Some(10));
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
    let v10 = Some(10);
    // ARP for the VIP, tagged: answered with the tag.
    let (p, port) = tx(c.process(
        tagged(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), v10),
        0,
        0,
        true,
    ));
    assert_eq!((port, vid(p.data())), (0, v10));
    assert_eq!(&p.data()[24..26], &[0, 2], "an ARP reply behind the tag");
    assert_eq!(c.neigh().get(Ipv4Addr::from(CIP)), Some(CLIENT_MAC));
    // The SYN of VID 10 reaches the real server untagged, NATed.
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
    let (p, port) = tx(c.process(tagged(syn, v10), 0, 1, true));
    assert_eq!((port, vid(p.data())), (1, None));
    assert_eq!(check(p.data()), (CIP, 40000, RS2, 80));
    assert_eq!(&p.data()[..6], &RS2_MAC);
    assert_eq!(&p.data()[6..12], &PORT1_MAC);
    // The reply gets the tag back.
    let synack = tcp(RS2_MAC, PORT1_MAC, RS2, 80, CIP, 40000, true, true);
    let (p, port) = tx(c.process(synack, 1, 2, true));
    assert_eq!((port, vid(p.data())), (0, v10));
    assert_eq!(check(p.data()), (VIP, 80, CIP, 40000));
    assert_eq!(&p.data()[..6], &CLIENT_MAC);
    assert_eq!(&p.data()[6..12], &PORT0_MAC);
    // A ping of the VIP is answered on the VLAN.
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .single_vlan(etherparse::VlanId::try_new(10).unwrap())
        .ipv4(CIP, VIP, 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut ping, b"ping")
        .expect("build");
    let (p, port) = tx(c.process(VecBuf::new(64, &ping), 0, 3, true));
    assert_eq!((port, vid(p.data())), (0, v10));
    // No tag, another VID, or a tag on the untagged port: dropped and counted.
    let syn = |sp| tcp(CLIENT_MAC, PORT0_MAC, CIP, sp, VIP, 80, true, false);
    for (p, port) in [
        (syn(40001), 0),
        (tagged(syn(40002), Some(20)), 0),
        (tagged(syn(40003), Some(0)), 0),
        (
            tagged(
                tcp(RS2_MAC, PORT1_MAC, RS2, 80, CIP, 40000, false, true),
                v10,
            ),
            1,
        ),
    ] {
        let out = c.process(p, port, 4, true);
        assert!(matches!(out, Out::Drop(_, DropReason::Vlan)), "{out:?}");
    }
    assert_eq!(c.counters().drops_of(DropReason::Vlan), 4);
    assert_eq!(c.conns().len(), 1);
}

#[test]
fn nat_request_and_reply_walk_through_arp_resolution() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    tx(c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, true));
    // SYN: RS unresolved -> held, ARP request queued on port 1.
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
    assert!(matches!(c.process(syn, 0, 1, true), Out::Held));
    let reqs: Vec<_> = c.take_arp_requests().collect();
    // rr over the newest-first list: RS2 (added last) is first.
    assert_eq!(reqs, vec![(1, Ipv4Addr::from(RS2))]);
    let mut buf = [0u8; 64];
    let n = build_arp_request(
        &mut buf,
        PORT1_MAC,
        Ipv4Addr::from(DIP1),
        Ipv4Addr::from(RS2),
    )
    .expect("arp");
    assert_eq!(n, 60);
    // The RS answers: the held SYN is released toward it.
    assert!(matches!(
        c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 2, true),
        Out::Consumed(_)
    ));
    let rel: Vec<_> = c.take_released().collect();
    assert_eq!(rel.len(), 1);
    let (p, port) = &rel[0];
    assert_eq!(*port, 1);
    assert_eq!(&p.data()[..6], &RS2_MAC);
    assert_eq!(&p.data()[6..12], &PORT1_MAC);
    assert_eq!(check(p.data()), (CIP, 40000, RS2, 80));
    // The reply SYN-ACK from RS2 goes back as from the VIP.
    let synack = tcp(RS2_MAC, PORT1_MAC, RS2, 80, CIP, 40000, true, true);
    let (p, port) = tx(c.process(synack, 1, 3, true));
    assert_eq!(port, 0);
    assert_eq!(&p.data()[..6], &CLIENT_MAC);
    assert_eq!(check(p.data()), (VIP, 80, CIP, 40000));
    // Second connection goes to RS1 (rr) on port 8080.
    c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 4, true);
    let syn2 = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40001, VIP, 80, true, false);
    let (p, _) = tx(c.process(syn2, 0, 5, true));
    assert_eq!(check(p.data()), (CIP, 40001, RS1, 8080));
    let ctr = c.counters();
    assert_eq!((ctr.in_packets, ctr.out_packets), (2, 1));
    assert_eq!(c.conns().len(), 2);
    // Per-server traffic, as --stats shows it: one session each.
    let traffic: Vec<DestTraffic> = c.dest_traffic().map(|(_, t)| t).collect();
    assert_eq!(traffic.iter().map(|t| t.conns).sum::<u64>(), 2);
    assert_eq!(traffic.iter().map(|t| t.inpkts).sum::<u64>(), 2);
    assert_eq!(traffic.iter().map(|t| t.outpkts).sum::<u64>(), 1);
    // The worker's own count of new connections (the exported IPVS total) agrees, and a
    // packet of an existing session does not add to it.
    assert_eq!(ctr.conns, 2);
    let data = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40001, VIP, 80, false, true);
    tx(c.process(data, 0, 6, true));
    assert_eq!(c.counters().conns, 2);
    assert_eq!(c.counters().in_packets, 3);
}

#[test]
fn fullnat_rewrites_both_ends_and_replies_find_their_owner() {
    // Two workers: the client's owner schedules and picks an lport of its own slice.
    let owner = owner_of_client(Ipv4Addr::from(CIP), 2);
    let mut c = core(FwdMethod::FullNat, owner, 2);
    let mut other = core(FwdMethod::FullNat, 1 - owner, 2);
    c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, false);
    c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, false);
    c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, false);
    // The other worker received the SYN: it hands it over.
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
    let syn = match other.process(syn, 0, 1, true) {
        Out::Handoff(p, w) => {
            assert_eq!(w as usize, owner);
            p
        }
        o => panic!("expected handoff, got {o:?}"),
    };
    let (p, port) = tx(c.process(syn, 0, 1, false));
    assert_eq!(port, 1);
    let (src, lport, dst, dport) = check(p.data());
    assert_eq!(src, LIP);
    assert_eq!((dst, dport), (RS2, 80));
    assert_eq!(owner_of_port(lport, 2), owner, "the lport names the owner");
    // The reply to LIP:lport: the non-owner hands it over, the owner maps it back.
    let reply = tcp(RS2_MAC, PORT1_MAC, RS2, 80, LIP, lport, true, true);
    let reply = match other.process(reply, 1, 2, true) {
        Out::Handoff(p, w) => {
            assert_eq!(w as usize, owner);
            p
        }
        o => panic!("expected handoff, got {o:?}"),
    };
    let (p, port) = tx(c.process(reply, 1, 2, true));
    assert_eq!(port, 0);
    assert_eq!(check(p.data()), (VIP, 80, CIP, 40000));
    assert_eq!(other.counters().handoff_out, 2);
}

#[test]
fn malformed_and_sessionless_packets_are_counted_by_reason() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    // Truncated IPv4.
    let mut syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false)
        .data()
        .to_vec();
    syn.truncate(30);
    let out = c.process(VecBuf::new(64, &syn), 0, 0, true);
    assert!(matches!(out, Out::Drop(_, DropReason::Malformed(_))));
    // Bad IPv4 header checksum.
    let mut bad = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false)
        .data()
        .to_vec();
    bad[24] ^= 0xff;
    let out = c.process(VecBuf::new(64, &bad), 0, 0, true);
    assert!(matches!(
        out,
        Out::Drop(_, DropReason::Malformed(wire::Error::BadChecksum))
    ));
    // ACK without a session.
    let ack = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, false, true);
    assert!(matches!(
        c.process(ack, 0, 0, true),
        Out::Drop(_, DropReason::NoSession)
    ));
    // A fragment.
    let mut frag = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false)
        .data()
        .to_vec();
    frag[20] |= 0x20; // MF
    let ck = crate::wire::checksum::data(&{
        let mut h = frag[14..34].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    frag[24..26].copy_from_slice(&(!ck).to_be_bytes());
    let out = c.process(VecBuf::new(64, &frag), 0, 0, true);
    assert!(
        matches!(
            out,
            Out::Drop(_, DropReason::Malformed(wire::Error::Fragment))
        ),
        "{out:?}"
    );
    let ctr = c.counters();
    assert_eq!(ctr.drops_of(DropReason::NoSession), 1);
    assert_eq!(
        ctr.drops_of(DropReason::Malformed(wire::Error::BadChecksum)),
        1
    );
    assert_eq!(
        ctr.drops_of(DropReason::Malformed(wire::Error::Fragment)),
        1
    );
    assert_eq!(ctr.dropped(), 4);
    for i in 0..DropReason::COUNT {
        assert_eq!(DropReason::from_index(i).map(DropReason::index), Some(i));
    }
}

/// `pkts` through `c`'s burst path at `now`: the packets' verdicts, and how many times
/// it asked a packet's port (only the general path asks; every port is 0).
pub(super) fn burst_asking_ports(
    c: &mut Core<VecBuf>,
    pkts: Vec<VecBuf>,
    now: u64,
) -> (Vec<(u8, String, Vec<u8>)>, usize) {
    let (mut got, mut asked) = (Vec::new(), 0);
    c.process_burst(
        pkts,
        now,
        true,
        |_| {
            asked += 1;
            0
        },
        |e| {
            if let Emit::Packet(out) = e {
                got.push(verdict(out));
            }
        },
    );
    (got, asked)
}

/// The sessions of `c`, each as its Debug text, sorted: what two cores that took the same
/// packets two ways are compared on.
pub(super) fn sessions_of(c: &Core<VecBuf>) -> Vec<String> {
    let mut v: Vec<_> = c.conns().iter().map(|(_, s)| format!("{s:?}")).collect();
    v.sort();
    v
}

/// A verdict reduced to what can be compared across two cores: the kind, the port /
/// owner / reason, and the frame's bytes.
pub(super) fn verdict(out: Out<VecBuf>) -> (u8, String, Vec<u8>) {
    match out {
        Out::Tx(p, port) => (0, port.to_string(), p.data().to_vec()),
        Out::Handoff(p, w) => (1, w.to_string(), p.data().to_vec()),
        Out::Drop(p, r) => (2, r.name(), p.data().to_vec()),
        Out::Consumed(p) => (3, String::new(), p.data().to_vec()),
        Out::Held => (4, String::new(), Vec::new()),
    }
}

#[test]
fn a_burst_is_processed_exactly_as_packet_by_packet() {
    // 90 packets (three chunks of the pipeline's 32): neighbours, new and established
    // flows of one client (ours) and of another (handed over), malformed frames, a
    // sessionless ACK, a ping. One core takes them one by one, the other as a burst.
    let owner = owner_of_client(Ipv4Addr::from(CIP), 2);
    let other_client = (3..=250u8)
        .map(|i| [10, 10, 0, i])
        .find(|a| owner_of_client(Ipv4Addr::from(*a), 2) != owner)
        .expect("a client of the other worker");
    let mut pkts: Vec<(VecBuf, u16)> = vec![
        (arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0),
        (arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1),
        (arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1),
    ];
    for port in 40000..40030u16 {
        pkts.push((
            tcp(CLIENT_MAC, PORT0_MAC, CIP, port, VIP, 80, true, false),
            0,
        ));
    }
    for port in 40000..40030u16 {
        pkts.push((
            tcp(CLIENT_MAC, PORT0_MAC, CIP, port, VIP, 80, false, true),
            0,
        ));
    }
    for port in 50000..50010u16 {
        let p = tcp(
            CLIENT_MAC,
            PORT0_MAC,
            other_client,
            port,
            VIP,
            80,
            true,
            false,
        );
        pkts.push((p, 0));
    }
    let mut bad = tcp(CLIENT_MAC, PORT0_MAC, CIP, 41000, VIP, 80, true, false)
        .data()
        .to_vec();
    bad[24] ^= 0xff;
    let mut short = bad.clone();
    short.truncate(30);
    for _ in 0..5 {
        pkts.push((VecBuf::new(64, &bad), 0));
        pkts.push((VecBuf::new(64, &short), 0));
        pkts.push((
            tcp(CLIENT_MAC, PORT0_MAC, CIP, 42000, VIP, 80, false, true),
            0,
        ));
    }
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CIP, VIP, 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut ping, b"ping")
        .expect("build");
    pkts.push((VecBuf::new(64, &ping), 0));
    for port in 40000..40001u16 {
        pkts.push((
            tcp(CLIENT_MAC, PORT0_MAC, CIP, port, VIP, 80, false, true),
            0,
        ));
    }
    assert_eq!(pkts.len(), 90);

    // FULLNAT, and TUN toward a GUE and a GRE server.
    for (fwd, tunnels) in modes()
        .into_iter()
        .filter(|(f, t)| *f == FwdMethod::FullNat || t[0].kind == TunKind::Gue)
    {
        let pkts: Vec<(VecBuf, u16)> = pkts.iter().map(|(p, port)| (p.clone(), *port)).collect();
        let mut one = core_tun(fwd, tunnels, owner, 2);
        let mut burst = core_tun(fwd, tunnels, owner, 2);
        let want = same_by_burst(&mut one, &mut burst, pkts, 5);
        // The outcomes are the interesting ones, not all drops.
        let kinds = |k: u8| want.iter().filter(|v| v.0 == k).count();
        assert_eq!(
            kinds(0),
            63,
            "ARP and ping answered, 30 SYNs and 31 ACKs forwarded"
        );
        assert_eq!(kinds(1), 10, "the other client's SYNs handed over");
        assert_eq!(one.counters(), burst.counters());
        assert_eq!(one.conns().len(), burst.conns().len());
        assert_eq!(burst.conns().len(), 30);
        if fwd == FwdMethod::Tunnel {
            for out in want.iter().filter(|v| v.0 == 0) {
                assert_tunnelled_as_configured(&out.2, tunnels);
            }
        }
    }
}

/// A TCP segment with any flags and TTL, built with etherparse.
#[allow(clippy::too_many_arguments)]
fn segment(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    s: ([u8; 4], u16),
    d: ([u8; 4], u16),
    flags: &str,
    ttl: u8,
    payload: &[u8],
) -> VecBuf {
    let mut b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(s.0, d.0, ttl)
        .tcp(s.1, d.1, 7000, 65535);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(9000),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            _ => panic!("flag {f}"),
        };
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("build");
    VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v)
}

/// Runs `pkts` (frame, in-port) through `one` packet by packet and through `burst` in
/// one burst; asserts the same verdicts and output bytes, and the same frames
/// originated on the way (kind 9, after their packet's verdict); returns the verdicts.
pub(super) fn same_by_burst(
    one: &mut Core<VecBuf>,
    burst: &mut Core<VecBuf>,
    pkts: Vec<(VecBuf, u16)>,
    now: u64,
) -> Vec<(u8, String, Vec<u8>)> {
    let generated = |port: u16, frame: &[u8]| (9, format!("to port {port}"), frame.to_vec());
    let mut want = Vec::new();
    for (p, port) in &pkts {
        want.push(verdict(one.process(p.clone(), *port, now, true)));
        if let Some((port, len)) = one.take_generated() {
            want.push(generated(port, &one.scratch()[..len]));
        }
    }
    let mut got = Vec::new();
    let ports: Vec<u16> = pkts.iter().map(|(_, port)| *port).collect();
    let frames: Vec<Vec<u8>> = pkts.iter().map(|(p, _)| p.data().to_vec()).collect();
    burst.process_burst(
        pkts.into_iter().map(|(p, _)| p),
        now,
        true,
        // Called only for the packets the full path takes: find the frame's port.
        |p| {
            let i = frames
                .iter()
                .position(|f| f == p.data())
                .expect("a frame of the burst");
            ports[i]
        },
        |e| match e {
            Emit::Packet(out) => got.push(verdict(out)),
            Emit::Generated(port, frame) => got.push(generated(port, frame)),
        },
    );
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "packet {i}");
    }
    want
}

#[test]
fn tunnel_source_is_the_ports_own_address() {
    let mut net = NetConfig::new(1);
    for _ in 0..3 {
        net.ports.push(PortNet {
            mac: PORT0_MAC,
            mtu: 1500,
            vlan: None,
        });
    }
    let a = |d: u8| Ipv4Addr::new(10, 20, 0, d);
    // Port 0: a floating address sorting first and the port's own one.
    net.local.insert(a(5), (LocalKind::Dip, 0));
    net.local.insert(a(9), (LocalKind::Dip, 0));
    net.floating.push(a(5));
    // Port 1: two own addresses (the lowest is taken); a VIP on it does not count.
    net.local.insert(a(30), (LocalKind::Dip, 1));
    net.local.insert(a(20), (LocalKind::Dip, 1));
    net.local.insert(a(1), (LocalKind::Vip, 1));
    // Port 2: none.
    assert_eq!(
        tunnel_sources(&net),
        vec![a(9), a(20), Ipv4Addr::UNSPECIFIED]
    );
}

#[test]
fn established_fast_path_has_the_full_paths_effects_in_every_mode() {
    // Whole TCP conversations (handshake, data both ways, FIN, RST, a TTL-1 packet, an
    // unknown flow, a packet of another worker's client) in NAT, FULLNAT, DR and TUN,
    // with one worker and with two, with sync on: one core packet by packet (the full
    // path only), the other in bursts (the fast path wherever it applies). Verdicts,
    // output bytes, counters, per-server traffic, session states and timers and the
    // sync messages must be the same.
    // With the clients' port on VLAN 10 too: the client's frames tagged, what leaves
    // toward the clients tagged, toward the servers not, and frames of the wrong tag
    // dropped alike.
    for ((fwd, tunnels), cvid) in modes()
        .into_iter()
        .flat_map(|m| [(m, None), (m, Some(10u16))])
    {
        for workers in [1usize, 2] {
            let me = owner_of_client(Ipv4Addr::from(CIP), workers);
            let mut one = core_tun_vlan(fwd, tunnels, me, workers, cvid);
            let mut burst = core_tun_vlan(fwd, tunnels, me, workers, cvid);
            for c in [&mut one, &mut burst] {
                c.set_sync_master(Some(SyncRules::default()));
            }
            let cl = |sp: u16, flags: &str, ttl: u8| {
                let p = segment(
                    CLIENT_MAC,
                    PORT0_MAC,
                    (CIP, sp),
                    (VIP, 80),
                    flags,
                    ttl,
                    b"GET /",
                );
                (tagged(p, cvid), 0u16)
            };
            let mut pkts = vec![
                (tagged(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), cvid), 0),
                (arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1),
                (arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1),
            ];
            let ports = 40000..40012u16;
            pkts.extend(ports.clone().map(|sp| cl(sp, "S", 64)));
            same_by_burst(&mut one, &mut burst, pkts, 10);

            // The real servers' side of each session (as the full path set it up).
            let sessions: Vec<_> = one
                .conns()
                .iter()
                .map(|(_, s)| (s.cport(), s.out_key()))
                .collect();
            assert_eq!(sessions.len(), 12, "{fwd:?}/{workers}");
            let rs = |sp: u16, flags: &str| {
                let k = sessions.iter().find(|(c, _)| *c == sp).expect("session").1;
                let (IpAddr::V4(s), IpAddr::V4(d)) = (k.saddr.to_ip(), k.daddr.to_ip()) else {
                    panic!("v4")
                };
                let mac = if s.octets() == RS1 { RS1_MAC } else { RS2_MAC };
                let p = segment(
                    mac,
                    PORT1_MAC,
                    (s.octets(), k.sport),
                    (d.octets(), k.dport),
                    flags,
                    64,
                    b"200 OK",
                );
                (p, 1u16)
            };
            let replies = matches!(fwd, FwdMethod::Masq | FwdMethod::FullNat);
            let mut pkts = Vec::new();
            for sp in ports.clone() {
                if replies {
                    pkts.push(rs(sp, "SA"));
                }
                pkts.push(cl(sp, "A", 64));
                pkts.push(cl(sp, "PA", 64));
                if replies {
                    pkts.push(rs(sp, "PA"));
                }
            }
            // Endings: FIN from the client, from the server, an RST, a TTL-1 packet.
            pkts.push(cl(40000, "FA", 64));
            if replies {
                pkts.push(rs(40000, "FA"));
                pkts.push(rs(40001, "R"));
            }
            pkts.push(cl(40000, "A", 64));
            pkts.push(cl(40002, "R", 64));
            pkts.push(cl(40003, "A", 1));
            pkts.push(cl(45000, "A", 64)); // no session
            if fwd == FwdMethod::Tunnel {
                // Too big once encapsulated (1500 + 20 > MTU 1500), with DF: refused
                // with a frag-needed error for the client.
                let p = segment(
                    CLIENT_MAC,
                    PORT0_MAC,
                    (CIP, 40004),
                    (VIP, 80),
                    "PA",
                    64,
                    &[b'x'; 1460],
                );
                pkts.push((tagged(p, cvid), 0));
            }
            // Frames of the wrong tag: the client's established segment untagged on
            // the VLAN port (tagged on the untagged one), with VID 20, and a real
            // server's segment tagged.
            let wrong = if cvid.is_some() { None } else { Some(10) };
            let ack = segment(
                CLIENT_MAC,
                PORT0_MAC,
                (CIP, 40005),
                (VIP, 80),
                "A",
                64,
                b"GET /",
            );
            pkts.push((tagged(ack.clone(), wrong), 0));
            pkts.push((tagged(ack, Some(20)), 0));
            if replies {
                pkts.push((tagged(rs(40006, "A").0, Some(10)), 1));
            }
            let strays = 2 + usize::from(replies) as u64;
            if workers == 2 {
                let other = (3..=250u8)
                    .map(|i| [10, 10, 0, i])
                    .find(|a| owner_of_client(Ipv4Addr::from(*a), 2) != me)
                    .expect("a client of the other worker");
                let p = segment(
                    CLIENT_MAC,
                    PORT0_MAC,
                    (other, 40000),
                    (VIP, 80),
                    "A",
                    64,
                    b"x",
                );
                pkts.push((tagged(p, cvid), 0));
            }
            let v = same_by_burst(&mut one, &mut burst, pkts, 20);
            let forwarded = v.iter().filter(|v| v.0 == 0).count();
            if fwd == FwdMethod::Tunnel {
                for out in v.iter().filter(|v| v.0 == 0) {
                    assert_tunnelled_as_configured(&out.2, tunnels);
                }
            }
            let vlan_drops = v.iter().filter(|v| v.0 == 2 && v.1 == "vlan").count() as u64;
            assert_eq!(vlan_drops, strays, "{fwd:?}/{workers}/{cvid:?}");
            assert_eq!(one.counters().drops_of(DropReason::Vlan), strays);
            // What leaves toward the clients carries their port's tag, toward the
            // servers none.
            for (kind, to, frame) in &v {
                if *kind == 0 || *kind == 9 {
                    let want = if to.ends_with('0') { cvid } else { None };
                    assert_eq!(vid(frame), want, "{fwd:?}/{workers}: to port {to}");
                }
            }
            // Originated: time-exceeded for the TTL-1 packet in the modes that route
            // it, and TUN's frag-needed.
            let originated = v.iter().filter(|v| v.0 == 9).count();
            assert_eq!(
                originated,
                usize::from(fwd != FwdMethod::Route) + usize::from(fwd == FwdMethod::Tunnel),
                "{fwd:?}"
            );
            let (want, sent) = match fwd {
                FwdMethod::Masq | FwdMethod::FullNat => (
                    12 * 4 + 5,
                    "every segment but the TTL-1 one and the strangers'",
                ),
                // DR leaves the TTL alone (the packet is delivered, not routed).
                FwdMethod::Route => (12 * 2 + 4, "every client segment but the stranger's"),
                _ => (
                    12 * 2 + 3,
                    "every client segment but the TTL-1 one and the stranger's",
                ),
            };
            assert_eq!(forwarded, want, "{fwd:?}/{workers}: {sent}");
            assert_eq!(one.counters(), burst.counters(), "{fwd:?}/{workers}");
            let traffic = |c: &Core<VecBuf>| c.dest_traffic().collect::<Vec<_>>();
            assert_eq!(traffic(&one), traffic(&burst), "{fwd:?}/{workers}");
            let rows = |c: &Core<VecBuf>| {
                let mut r: Vec<_> = c.conns().list(30_000).map(|e| e.format_row()).collect();
                r.sort();
                r
            };
            assert_eq!(rows(&one), rows(&burst), "{fwd:?}/{workers}");
            assert!(rows(&one).iter().any(|r| r.contains("ESTABLISHED")));
            let sync = |c: &mut Core<VecBuf>| c.take_sync().collect::<Vec<_>>();
            let (s1, s2) = (sync(&mut one), sync(&mut burst));
            assert!(!s1.is_empty(), "sync messages were sent");
            assert_eq!(s1, s2, "{fwd:?}/{workers}");
        }
    }
}

#[test]
fn ping_to_the_vip_is_answered() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CIP, VIP, 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut v, b"ping")
        .expect("build");
    let (p, port) = tx(c.process(VecBuf::new(64, &v), 0, 0, true));
    assert_eq!(port, 0);
    let s = SlicedPacket::from_ethernet(p.data()).expect("parse");
    let Some(NetSlice::Ipv4(ip)) = s.net else {
        panic!()
    };
    let hdr = ip.header().to_header();
    assert_eq!(hdr.calc_header_checksum(), hdr.header_checksum);
    assert_eq!(
        (ip.header().source(), ip.header().destination()),
        (VIP, CIP)
    );
    let Some(TransportSlice::Icmpv4(icmp)) = s.transport else {
        panic!()
    };
    assert!(matches!(
        icmp.icmp_type(),
        etherparse::Icmpv4Type::EchoReply(_)
    ));
    let want = icmp.header().icmp_type.calc_checksum(icmp.payload());
    assert_eq!(icmp.checksum(), want, "ICMP checksum");
    assert_eq!(c.counters().echo_replies, 1);
}

#[test]
fn dr_changes_only_the_macs() {
    let mut c = core(FwdMethod::Route, 0, 1);
    c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, true);
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
    let before = syn.data().to_vec();
    let (p, port) = tx(c.process(syn, 0, 1, true));
    assert_eq!(port, 1);
    assert_eq!(&p.data()[..6], &RS2_MAC);
    assert_eq!(&p.data()[6..12], &PORT1_MAC);
    assert_eq!(&p.data()[12..], &before[12..], "L3 and up untouched");
}

#[test]
fn expiry_returns_fullnat_ports() {
    let mut c = core(FwdMethod::FullNat, 0, 1);
    c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, true);
    c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, true);
    c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, true);
    let free0: usize = c.laddr_pools().map(|(_, p)| p.free()).sum();
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
    tx(c.process(syn, 0, 0, true));
    let free1: usize = c.laddr_pools().map(|(_, p)| p.free()).sum();
    assert_eq!(free1 + 1, free0);
    // SYN_RECV lasts 60 s.
    c.tick(61_000, drop);
    let free2: usize = c.laddr_pools().map(|(_, p)| p.free()).sum();
    assert_eq!(free2, free0, "the port came back");
    assert_eq!(c.conns().len(), 0);
}

#[test]
fn an_icmp_error_about_a_nat_request_goes_to_the_clients_worker() {
    // Two workers, a client hashed to another worker than its real server: the error
    // the real server sends toward the client is the client's worker's to translate.
    let rs_owner = owner_of_client(Ipv4Addr::from(RS2), 2);
    let cip = (2..=250u8)
        .map(|x| [10, 10, 0, x])
        .find(|c| owner_of_client(Ipv4Addr::from(*c), 2) != rs_owner)
        .expect("a client of the other worker");
    let owner = 1 - rs_owner;
    let mut c = core(FwdMethod::Masq, owner, 2);
    let mut other = core(FwdMethod::Masq, rs_owner, 2);
    for w in [&mut c, &mut other] {
        w.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
        w.add_static_neighbour(Ipv4Addr::from(cip).into(), CLIENT_MAC);
    }
    let syn = tcp(CLIENT_MAC, PORT0_MAC, cip, 40000, VIP, 80, true, false);
    let (fwd, _) = tx(c.process(syn, 0, 1, true));
    assert_eq!(check(fwd.data()), (cip, 40000, RS2, 80));
    // RS2 answers the forwarded SYN with fragmentation-needed, quoting its IP header
    // and first 8 bytes.
    let quote = &fwd.data()[14..14 + 28];
    let mut v = Vec::new();
    PacketBuilder::ethernet2(RS2_MAC, PORT1_MAC)
        .ipv4(RS2, cip, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut v, quote)
        .expect("build");
    let err = VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v);
    match other.process(err.clone(), 1, 2, true) {
        Out::Handoff(_, o) => assert_eq!(o as usize, owner, "handed to the client's worker"),
        o => panic!("not handed off: {o:?}"),
    }
    let (p, port) = tx(c.process(err, 1, 2, false));
    assert_eq!(port, 0);
    assert_eq!(&p.data()[..6], &CLIENT_MAC);
    let sliced = SlicedPacket::from_ethernet(p.data()).expect("parse");
    let Some(NetSlice::Ipv4(ip)) = &sliced.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().source(), VIP, "the error comes from the VIP");
    assert_eq!(ip.header().destination(), cip);
    assert_eq!(c.counters().icmp_translated, 1);
}

/// A TCP segment from `s:sp` to `d:dp` with this TTL (SYN or a bare ACK).
fn tcp_ttl(s: [u8; 4], sp: u16, d: [u8; 4], dp: u16, ttl: u8, syn: bool) -> VecBuf {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(s, d, ttl)
        .tcp(sp, dp, 1000, 65535);
    b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, b"").expect("build");
    VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v)
}

#[test]
fn martian_sources_are_dropped_and_create_nothing() {
    let mut c = core(FwdMethod::FullNat, 0, 1);
    let martians: [[u8; 4]; 9] = [
        [0, 0, 0, 0],
        [0, 1, 2, 3],
        [255, 255, 255, 255],
        [127, 0, 0, 1],
        [224, 0, 0, 5],
        [240, 0, 0, 1],
        VIP,
        DIP0,
        LIP,
    ];
    for (i, src) in martians.iter().enumerate() {
        let syn = tcp_ttl(*src, 40000 + i as u16, VIP, 80, 64, true);
        match c.process(syn, 0, i as u64, true) {
            Out::Drop(_, DropReason::Martian) => {}
            o => panic!("{src:?}: {o:?}"),
        }
    }
    assert_eq!(c.conns().len(), 0, "no session for a martian");
    assert_eq!(c.counters().drops_of(DropReason::Martian), 9);
    // TCP or UDP to a multicast or broadcast address is never forwarded: the kernel's.
    for dst in [[224, 0, 0, 5], [255, 255, 255, 255]] {
        let p = tcp_ttl(CIP, 40100, dst, 80, 64, true);
        assert!(matches!(
            c.process(p, 0, 20, true),
            Out::Drop(_, DropReason::NotForUs)
        ));
    }
    assert_eq!(c.conns().len(), 0);
    // A client with an ordinary address is served.
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    let syn = tcp_ttl(CIP, 40200, VIP, 80, 64, true);
    tx(c.process(syn, 0, 30, true));
    assert_eq!(c.conns().len(), 1);
}

#[test]
fn a_dr_servers_answer_from_the_vip_to_the_host_goes_to_the_kernel() {
    // The host's kernel (behind the exception tap, 10.20.0.2) probed VIP:80 through a DR
    // server; the server answers from the VIP to the host address, on the server port.
    let mut c = core(FwdMethod::Route, 0, 1);
    let host = [10, 20, 0, 2];
    let answer = |c: &mut Core<VecBuf>, dst: [u8; 4], port: u16| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(RS1_MAC, PORT1_MAC)
            .ipv4(VIP, dst, 64)
            .tcp(80, 41000, 1, 65535)
            .syn()
            .ack(1001)
            .write(&mut v, b"")
            .expect("build");
        c.process(VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v), port, 1, true)
    };
    assert!(matches!(
        answer(&mut c, host, 1),
        Out::Drop(_, DropReason::NotForUs)
    ));
    assert_eq!(c.counters().drops_of(DropReason::NotForUs), 1);
    // Every other packet from the VIP stays martian: to a client (a DR answer that came
    // to the director), to the host address on the other port, to a director address.
    for (dst, port) in [(CIP, 1), (host, 0), (DIP1, 1), (LIP, 1)] {
        match answer(&mut c, dst, port) {
            Out::Drop(_, DropReason::Martian) => {}
            o => panic!("{dst:?} on {port}: {o:?}"),
        }
    }
    assert_eq!(c.conns().len(), 0);
}

/// The ICMP time-exceeded frame originated after the last packet: (src, dst, quoted
/// source and destination of the expired packet).
fn time_exceeded(c: &mut Core<VecBuf>) -> ([u8; 4], [u8; 4], [u8; 4], [u8; 4]) {
    let (port, len) = c.take_generated().expect("an ICMP error was originated");
    assert_eq!(port, 0, "back out of the port it came in on");
    let frame = &c.scratch()[..len];
    assert_eq!(&frame[..6], &CLIENT_MAC);
    let s = SlicedPacket::from_ethernet(frame).expect("parse");
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not IPv4")
    };
    let hdr = ip.header().to_header();
    assert_eq!(hdr.calc_header_checksum(), hdr.header_checksum);
    let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
        panic!("not ICMP")
    };
    assert!(matches!(
        icmp.icmp_type(),
        etherparse::Icmpv4Type::TimeExceeded(
            etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit
        )
    ));
    assert_eq!(
        icmp.checksum(),
        icmp.header().icmp_type.calc_checksum(icmp.payload())
    );
    let quoted = etherparse::Ipv4HeaderSlice::from_slice(icmp.payload()).expect("quote");
    (
        ip.header().source(),
        ip.header().destination(),
        quoted.source(),
        quoted.destination(),
    )
}

#[test]
fn a_packet_whose_ttl_runs_out_creates_no_session_and_is_answered() {
    for ttl in [0u8, 1] {
        let mut c = core(FwdMethod::Masq, 0, 1);
        c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
        let syn = tcp_ttl(CIP, 40000, VIP, 80, ttl, true);
        match c.process(syn, 0, 1, true) {
            Out::Drop(_, DropReason::Rewrite(wire::Error::TtlExpired)) => {}
            o => panic!("ttl {ttl}: {o:?}"),
        }
        assert_eq!(c.conns().len(), 0, "ttl {ttl}: no session");
        assert_eq!(time_exceeded(&mut c), (DIP0, CIP, CIP, VIP));
        assert_eq!(c.counters().time_exceeded_sent, 1);
    }
    // An established session's packet with TTL 1 is answered the same and changes
    // nothing in the session.
    let mut c = core(FwdMethod::Masq, 0, 1);
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    tx(c.process(tcp_ttl(CIP, 40001, VIP, 80, 64, true), 0, 1, true));
    let before: Vec<_> = c.conns().list(2).map(|r| r.state).collect();
    let expired = tcp_ttl(CIP, 40001, VIP, 80, 1, false);
    assert!(matches!(
        c.process(expired, 0, 2, true),
        Out::Drop(_, DropReason::Rewrite(wire::Error::TtlExpired))
    ));
    let after: Vec<_> = c.conns().list(2).map(|r| r.state).collect();
    assert_eq!(before, after, "the session did not see the packet");
    assert_eq!(time_exceeded(&mut c).1, CIP);
    // DR does not route: TTL 1 goes on.
    let mut c = core(FwdMethod::Route, 0, 1);
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    tx(c.process(tcp_ttl(CIP, 40002, VIP, 80, 1, true), 0, 1, true));
    assert_eq!(c.conns().len(), 1);
}

#[test]
fn originated_icmp_errors_are_rate_limited() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    let mut sent = 0;
    for i in 0..80u16 {
        c.process(tcp_ttl(CIP, 40000 + i, VIP, 80, 1, true), 0, 5_000, true);
        if c.take_generated().is_some() {
            sent += 1;
        }
    }
    assert_eq!(sent, 50, "a burst of 50");
    assert_eq!(c.counters().icmp_rate_limited, 30);
    // A second later the budget is back.
    c.process(tcp_ttl(CIP, 41000, VIP, 80, 1, true), 0, 6_000, true);
    assert!(c.take_generated().is_some());
}

#[test]
fn arp_claiming_our_addresses_is_a_conflict_never_learned() {
    const FORGER: [u8; 6] = [2, 0, 0, 0, 0, 0xee];
    let mut c = core(FwdMethod::Masq, 0, 1);
    // A forged reply for the VIP, and a gratuitous ARP for a DIP.
    let forged = arp(2, FORGER, VIP, PORT0_MAC, CIP);
    assert!(matches!(
        c.process(forged, 0, 1, true),
        Out::Drop(_, DropReason::ArpConflict)
    ));
    let garp = arp(1, FORGER, DIP0, [0; 6], DIP0);
    assert!(matches!(
        c.process(garp, 0, 2, true),
        Out::Drop(_, DropReason::ArpConflict)
    ));
    assert!(!c.neigh().contains(Ipv4Addr::from(VIP)));
    assert!(!c.neigh().contains(Ipv4Addr::from(DIP0)));
    assert_eq!(c.counters().drops_of(DropReason::ArpConflict), 2);
    let reported: Vec<_> = c.take_arp_conflicts().map(|r| r.ip).collect();
    assert_eq!(reported, vec![Ipv4Addr::from(VIP), Ipv4Addr::from(DIP0)]);
    // Once per address per minute.
    c.process(arp(2, FORGER, VIP, PORT0_MAC, CIP), 0, 30_000, true);
    assert_eq!(c.take_arp_conflicts().count(), 0);
    c.process(arp(2, FORGER, VIP, PORT0_MAC, CIP), 0, 61_000, true);
    assert_eq!(c.take_arp_conflicts().count(), 1);
    assert_eq!(c.counters().drops_of(DropReason::ArpConflict), 4);
    // Our own frames are no conflict.
    let own = arp(1, PORT0_MAC, VIP, [0; 6], VIP);
    assert!(matches!(c.process(own, 0, 62_000, true), Out::Consumed(_)));
    assert_eq!(c.counters().drops_of(DropReason::ArpConflict), 4);
}

#[test]
fn a_standby_takes_the_active_directors_announcements_quietly() {
    const ACTIVE: [u8; 6] = [2, 0, 0, 0, 0, 0xaa];
    let mut snap = snapshot(FwdMethod::Masq, 1);
    let mut net = (*snap.net).clone();
    net.passive = true;
    snap.net = Arc::new(net);
    let mut c = Core::new(0, ConnConfig::new(64), NeighConfig::default());
    c.adopt(snap);
    let garp = arp(1, ACTIVE, VIP, [0; 6], VIP);
    assert!(matches!(c.process(garp, 0, 1, true), Out::Consumed(_)));
    assert!(!c.neigh().contains(Ipv4Addr::from(VIP)), "never learned");
    assert_eq!(c.counters().drops_of(DropReason::ArpConflict), 0);
    // A DIP is the standby's own even while passive.
    let garp = arp(1, ACTIVE, DIP0, [0; 6], DIP0);
    assert!(matches!(
        c.process(garp, 0, 2, true),
        Out::Drop(_, DropReason::ArpConflict)
    ));
}

#[test]
fn a_segment_that_would_open_a_session_needs_a_right_checksum() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    let mut syn = tcp_ttl(CIP, 40000, VIP, 80, 64, true).data().to_vec();
    syn[14 + 20 + 16] ^= 0xff;
    match c.process(VecBuf::new(64, &syn), 0, 1, true) {
        Out::Drop(_, DropReason::Malformed(wire::Error::BadChecksum)) => {}
        o => panic!("{o:?}"),
    }
    assert_eq!(
        c.conns().len(),
        0,
        "no session for a SYN with a wrong checksum"
    );
    // The same SYN with its checksum right opens one.
    tx(c.process(tcp_ttl(CIP, 40000, VIP, 80, 64, true), 0, 2, true));
    assert_eq!(c.conns().len(), 1);
}

#[test]
fn runt_frames_are_dropped_as_malformed_and_cost_no_session() {
    // An established NAT flow, then a burst of runts of every length 0..60 (prefixes of
    // the flow's own data segment, and of a VLAN-tagged one) interleaved with the flow's
    // segments: each runt is a malformed drop (shorter than an Ethernet header:
    // `Truncated`), each segment is forwarded, and no session is created. One core takes
    // the burst packet by packet, the other through `process_burst`.
    let setup = |c: &mut Core<VecBuf>| {
        c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, true);
        c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, true);
        c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, true);
        let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
        tx(c.process(syn, 0, 1, true));
        assert_eq!(c.conns().len(), 1);
    };
    let (mut one, mut burst) = (core(FwdMethod::Masq, 0, 1), core(FwdMethod::Masq, 0, 1));
    setup(&mut one);
    setup(&mut burst);
    let before = (one.counters().dropped(), one.counters().packets);
    assert_eq!(
        before,
        (burst.counters().dropped(), burst.counters().packets)
    );

    let ack = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, false, true);
    let full = ack.data().to_vec();
    assert!(full.len() > 60, "every prefix below 60 bytes is cut short");
    let mut vlan = full.clone();
    vlan.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
    let mut runts: Vec<Vec<u8>> = (0..60).map(|n| full[..n].to_vec()).collect();
    runts.extend((12..18).map(|n| vlan[..n].to_vec()));
    let mut pkts = Vec::new();
    for r in &runts {
        pkts.push((VecBuf::new(64, r), 0));
        pkts.push((ack.clone(), 0));
    }
    let verdicts = same_by_burst(&mut one, &mut burst, pkts, 2);

    let too_short = |r: &[u8]| r.len() < 14 || (r.len() < 18 && r[12..14] == [0x81, 0]);
    let malformed = |reason: &str| {
        wire::Error::ALL
            .iter()
            .any(|e| DropReason::Malformed(*e).name() == reason)
    };
    for (i, r) in runts.iter().enumerate() {
        let (kind, reason, _) = &verdicts[2 * i];
        assert_eq!(*kind, 2, "runt of {} bytes dropped", r.len());
        if too_short(r) {
            assert_eq!(*reason, "malformed:truncated", "runt of {} bytes", r.len());
        } else {
            assert!(malformed(reason), "runt of {} bytes: {reason}", r.len());
        }
        let (kind, _, frame) = &verdicts[2 * i + 1];
        assert_eq!(*kind, 0, "the flow's segment after runt {i} forwarded");
        assert_eq!(check(frame), (CIP, 40000, RS2, 80));
    }
    let short = runts.iter().filter(|r| too_short(r)).count() as u64;
    // 0..14 bytes, and of the VLAN-tagged frame 12..18 (no room for the tag's ethertype).
    assert_eq!(short, 14 + 6);
    for c in [&one, &burst] {
        let ctr = c.counters();
        assert_eq!(ctr.dropped() - before.0, runts.len() as u64);
        let by_malformed: u64 = wire::Error::ALL
            .iter()
            .map(|e| ctr.drops_of(DropReason::Malformed(*e)))
            .sum();
        assert_eq!(by_malformed, runts.len() as u64, "every runt is malformed");
        assert!(ctr.drops_of(DropReason::Malformed(wire::Error::Truncated)) >= short);
        assert_eq!(c.conns().len(), 1, "no session from a runt");
    }
    // Before any configuration too: a malformed drop, not a frame for the kernel.
    let mut bare = Core::<VecBuf>::new(0, ConnConfig::new(16), NeighConfig::default());
    for r in &runts {
        let out = bare.process(VecBuf::new(64, r), 0, 0, true);
        assert!(
            matches!(out, Out::Drop(_, DropReason::Malformed(_))),
            "runt of {} bytes without a snapshot: {out:?}",
            r.len()
        );
    }
}

/// FULLNAT with `lips` as the service's pool (every LIP a local address on port 1).
fn fullnat_with_lips(lips: &[[u8; 4]], generation: u64) -> Snapshot {
    let mut snap = snapshot(FwdMethod::FullNat, 1);
    let mut net = (*snap.net).clone();
    let key = *net.laddrs.keys().next().expect("the service's pool");
    net.laddrs.insert(
        key,
        lips.iter().map(|l| Ipv4Addr::from(*l).into()).collect(),
    );
    for l in lips {
        net.local.insert(Ipv4Addr::from(*l), (LocalKind::Lip, 1));
    }
    snap.net = Arc::new(net);
    snap.generation = generation;
    snap
}

/// A SYN from the client's port `cport` through the FULLNAT core: (LIP, lport, RIP).
fn fullnat_syn(c: &mut Core<VecBuf>, cport: u16) -> ([u8; 4], u16, [u8; 4]) {
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, cport, VIP, 80, true, false);
    let (p, _) = tx(c.process(syn, 0, 0, true));
    let (lip, lport, rip, _) = check(p.data());
    (lip, lport, rip)
}

/// With RSS on the LIP's port, every FULLNAT session gets a local port whose replies the
/// NIC steers to the worker's own queue; without, about half would reach the other.
#[test]
fn fullnat_local_ports_are_those_whose_replies_reach_the_workers_queue() {
    let steer = crate::laddr::RssSteer {
        key: std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x6d),
        reta: vec![0, 1],
    };
    for rss in [true, false] {
        let mut snap = snapshot(FwdMethod::FullNat, 1);
        let mut net = (*snap.net).clone();
        net.rss = vec![None, rss.then(|| steer.clone())];
        snap.net = Arc::new(net);
        let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
        c.adopt(snap);
        c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
        c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
        let queues: Vec<u16> = (0..20)
            .map(|i| {
                let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000 + i, VIP, 80, true, false);
                let (p, _) = tx(c.process(syn, 0, 0, true));
                let (lip, lport, rip, rport) = check(p.data());
                let (lip, rip) = (Ipv4Addr::from(lip).into(), Ipv4Addr::from(rip).into());
                steer.reply_queue(rip, lip, rport, lport)
            })
            .collect();
        if rss {
            assert!(queues.iter().all(|&q| q == 0), "{queues:?}");
        } else {
            assert!(queues.contains(&1), "{queues:?}");
        }
    }
}

#[test]
fn a_lip_pool_change_never_hands_out_a_port_of_a_live_session() {
    const LIP2: [u8; 4] = [10, 20, 0, 201];
    let mut c = core(FwdMethod::FullNat, 0, 1);
    c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    c.add_static_neighbour(Ipv4Addr::from(CIP).into(), CLIENT_MAC);
    let mut live: Vec<([u8; 4], u16, [u8; 4])> =
        (0..6).map(|i| fullnat_syn(&mut c, 40000 + i)).collect();
    // A LIP joins the pool: the sessions of the first keep their ports.
    c.adopt(fullnat_with_lips(&[LIP, LIP2], 2));
    for i in 0..6 {
        let got = fullnat_syn(&mut c, 41000 + i);
        assert!(!live.contains(&got), "{got:?} is a live session's");
        live.push(got);
    }
    assert!(
        live.iter().any(|(l, _, _)| *l == LIP2),
        "the new LIP is used"
    );
    // The first LIP leaves, then the second: the sessions of the one left keep theirs.
    c.adopt(fullnat_with_lips(&[LIP2], 3));
    c.adopt(fullnat_with_lips(&[LIP2, LIP], 4));
    for i in 0..6 {
        let got = fullnat_syn(&mut c, 42000 + i);
        assert!(!live.contains(&got), "{got:?} is a live session's");
        live.push(got);
    }
    let (_, pool) = c.laddr_pools().next().expect("pool");
    let on = |lip: [u8; 4]| live.iter().filter(|(l, _, _)| *l == lip).count() as u32;
    assert_eq!(pool.in_use_of(Ipv4Addr::from(LIP).into()), on(LIP));
    assert_eq!(pool.in_use_of(Ipv4Addr::from(LIP2).into()), on(LIP2));
    assert_eq!(pool.conflicts_of(Ipv4Addr::from(LIP).into()), 0);
}

#[test]
fn a_port_another_services_session_holds_is_a_conflict() {
    // Two services share the LIP and the real server: each has its own pool, so both
    // would start at the same port. The second service's SYN passes over it, counted.
    let mut snap = snapshot(FwdMethod::FullNat, 1);
    let key80 = ServiceKey::Addr {
        proto: Proto::Tcp,
        addr: a(VIP),
        port: 80,
    };
    let key81 = ServiceKey::Addr {
        proto: Proto::Tcp,
        addr: a(VIP),
        port: 81,
    };
    let mut t = ServiceTable::new();
    for key in [key80, key81] {
        t.add_service(ServiceConfig::new(key, SchedKind::Rr))
            .expect("service");
        t.add_dest(&key, DestConfig::new(a(RS1), 80, FwdMethod::FullNat))
            .expect("rs1");
    }
    let mut net = (*snap.net).clone();
    net.laddrs.insert(key81, vec![Ipv4Addr::from(LIP).into()]);
    snap.services = t.snapshot();
    snap.net = Arc::new(net);
    let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snap);
    c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
    let first = fullnat_syn(&mut c, 40000);
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40001, VIP, 81, true, false);
    let (p, _) = tx(c.process(syn, 0, 0, true));
    let (lip, lport, rip, rport) = check(p.data());
    assert_eq!((lip, rip, rport), (LIP, RS1, 80));
    assert_ne!(
        lport, first.1,
        "the port of the first service's live session"
    );
    let conflicts: u64 = c
        .laddr_pools()
        .map(|(_, p)| p.conflicts_of(Ipv4Addr::from(LIP).into()))
        .sum();
    assert_eq!(conflicts, 1);
}

#[test]
fn a_lip_of_a_removed_service_with_live_sessions_is_checked_in_its_new_pool() {
    // Service 80 (LIP, RS1:80) has live sessions when it is removed; service 81 comes
    // with the same LIP and server. The new pool cannot account the old sessions'
    // ports (no pool of theirs is left to reserve them in): it must ask the session
    // table and pass over every port they hold.
    let key81 = ServiceKey::Addr {
        proto: Proto::Tcp,
        addr: a(VIP),
        port: 81,
    };
    let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(fullnat_with_lips(&[LIP], 1));
    c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    let live: Vec<(u16, [u8; 4])> = (0..8)
        .map(|i| fullnat_syn(&mut c, 40000 + i))
        .map(|(_, lport, rip)| (lport, rip))
        .collect();
    let mut snap = fullnat_with_lips(&[LIP], 2);
    let mut t = ServiceTable::new();
    t.add_service(ServiceConfig::new(key81, SchedKind::Rr))
        .expect("service");
    t.add_dest(&key81, DestConfig::new(a(RS1), 80, FwdMethod::FullNat))
        .expect("rs1");
    let mut net = (*snap.net).clone();
    net.laddrs.clear();
    net.laddrs.insert(key81, vec![Ipv4Addr::from(LIP).into()]);
    snap.services = t.snapshot();
    snap.net = Arc::new(net);
    c.adopt(snap);
    let (_, pool) = c.laddr_pools().next().expect("pool");
    assert!(pool.checks_held(Ipv4Addr::from(LIP).into()));
    for i in 0..8 {
        let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 41000 + i, VIP, 81, true, false);
        let (p, _) = tx(c.process(syn, 0, 0, true));
        let (lip, lport, rip, rport) = check(p.data());
        assert_eq!((lip, rip, rport), (LIP, RS1, 80));
        assert!(
            !live.contains(&(lport, rip)),
            "port {lport} toward RS1 is a live session's"
        );
    }
    // A LIP in one pool only, whose sessions are all its own: no table lookups.
    let mut d: Core<VecBuf> = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    d.adopt(fullnat_with_lips(&[LIP], 1));
    let (_, pool) = d.laddr_pools().next().expect("pool");
    assert!(!pool.checks_held(Ipv4Addr::from(LIP).into()));
}

/// `[[marks]]`: a persistent fwmark service over ports 80 and 443 (the classic
/// `iptables -t mangle ... -j MARK` use): a client's connections to both ports land on one
/// real server, and the marked packet finds the fwmark service before the address service
/// of its destination, as in IPVS.
#[test]
fn marked_packets_find_the_fwmark_service_first_and_persist_across_ports() {
    use crate::mark::{MarkRule, MarkRules, Prefix4};
    let addr_key = ServiceKey::Addr {
        proto: Proto::Tcp,
        addr: a(VIP),
        port: 80,
    };
    let fwm = ServiceKey::Fwmark { v6: false, mark: 1 };
    let mut t = ServiceTable::new();
    t.add_service(ServiceConfig::new(addr_key, SchedKind::Rr))
        .expect("address service");
    t.add_dest(&addr_key, DestConfig::new(a(RS2), 8080, FwdMethod::Masq))
        .expect("rs2");
    t.add_service(ServiceConfig::new(fwm, SchedKind::Rr).persistent(300))
        .expect("fwmark service");
    for rs in [RS1, RS2] {
        t.add_dest(&fwm, DestConfig::new(a(rs), 0, FwdMethod::Masq))
            .expect("rs");
    }
    let mut snap = snapshot(FwdMethod::Masq, 1);
    let mut net = (*snap.net).clone();
    net.marks = MarkRules::new(vec![MarkRule {
        proto: Some(Proto::Tcp),
        dst: Prefix4::new(Ipv4Addr::from(VIP), 32),
        dports: vec![(80, 80), (443, 443)],
        in_port: Some(0),
        ..MarkRule::new(1)
    }]);
    snap.net = Arc::new(net);
    snap.services = t.snapshot();
    let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snap);
    c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, true);
    c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, true);
    let mut servers = Vec::new();
    for (i, port) in [80u16, 443, 80, 443].into_iter().enumerate() {
        let syn = tcp(
            CLIENT_MAC,
            PORT0_MAC,
            CIP,
            40000 + i as u16,
            VIP,
            port,
            true,
            false,
        );
        let (p, out_port) = tx(c.process(syn, 0, 1 + i as u64, true));
        assert_eq!(out_port, 1);
        let (_, _, rs, rport) = check(p.data());
        assert_eq!(rport, port, "the fwmark service keeps the packet's port");
        servers.push(rs);
    }
    assert!(servers.iter().all(|s| *s == servers[0]), "{servers:?}");
    // Arriving on another port the rule does not match: the address service of VIP:80.
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 41000, VIP, 80, true, false);
    let (p, _) = tx(c.process(syn, 1, 9, true));
    assert_eq!(check(p.data()), (CIP, 41000, RS2, 8080));
}

/// A router on the client's side answers a reply too big for its next link with
/// fragmentation-needed, sent to the reply's source (the VIP), quoting the reply.
fn frag_needed_from_router(reply_quote: &[u8]) -> VecBuf {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4([10, 10, 0, 254], VIP, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1280 },
        ))
        .write(&mut v, reply_quote)
        .expect("build");
    VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v)
}

/// The IPv4 header and first 8 bytes of a reply VIP:80 -> CIP:cport, as the client's
/// side saw it.
fn reply_quote(cport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(VIP, CIP, 63)
        .tcp(80, cport, 5000, 65535)
        .ack(1)
        .write(&mut v, &[0u8; 32])
        .expect("build");
    v.truncate(28);
    v
}

#[test]
fn an_icmp_error_from_the_clients_side_reaches_the_real_server_in_every_mode() {
    for fwd in [
        FwdMethod::Masq,
        FwdMethod::FullNat,
        FwdMethod::Route,
        FwdMethod::Tunnel,
    ] {
        // Two workers, the error sent by a router hashed to another worker than the
        // client: it goes to the client's worker, which owns the session.
        let owner = owner_of_client(Ipv4Addr::from(CIP), 2);
        let mut c = core(fwd, owner, 2);
        c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
        let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
        let (fwd_syn, _) = tx(c.process(syn, 0, 1, true));
        let err = frag_needed_from_router(&reply_quote(40000));
        let router_owner = owner_of_client(Ipv4Addr::new(10, 10, 0, 254), 2);
        if router_owner != owner {
            let mut other = core(fwd, router_owner, 2);
            match other.process(err.clone(), 0, 2, true) {
                Out::Handoff(_, o) => assert_eq!(o as usize, owner, "{fwd:?}"),
                o => panic!("{fwd:?}: not handed to the client's worker: {o:?}"),
            }
        }
        let (p, port) = tx(c.process(err, 0, 2, false));
        assert_eq!(port, 1, "{fwd:?}: toward the real server");
        assert_eq!(&p.data()[..6], &RS2_MAC, "{fwd:?}");
        assert_eq!(c.counters().icmp_translated, 1, "{fwd:?}");
        let s = SlicedPacket::from_ethernet(p.data()).expect("parse");
        let Some(NetSlice::Ipv4(ip)) = &s.net else {
            panic!("{fwd:?}: not IPv4")
        };
        let h = ip.header();
        match fwd {
            FwdMethod::Tunnel => {
                // IPIP from the director to the real server around the untouched error.
                assert_eq!((h.source(), h.destination()), (DIP1, RS2), "{fwd:?}");
                assert_eq!(h.protocol(), etherparse::IpNumber::IPV4);
                continue;
            }
            FwdMethod::Route => {
                assert_eq!(h.destination(), VIP, "DR: only the MACs change");
                continue;
            }
            _ => {}
        }
        // NAT and FULLNAT: to the real server, about the packet it sent.
        assert_eq!(h.destination(), RS2, "{fwd:?}");
        let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
            panic!("{fwd:?}: not ICMP")
        };
        assert_eq!(
            icmp.checksum(),
            icmp.header().icmp_type.calc_checksum(icmp.payload())
        );
        let quoted = etherparse::Ipv4HeaderSlice::from_slice(icmp.payload()).expect("quote");
        let ports = &icmp.payload()[20..24];
        let (qsport, qdport) = (
            u16::from_be_bytes([ports[0], ports[1]]),
            u16::from_be_bytes([ports[2], ports[3]]),
        );
        assert_eq!((quoted.source(), qsport), (RS2, 80), "{fwd:?}");
        // Its destination: where the real server sent its reply (the client, or the LIP).
        let (fsrc, fsport, _, _) = check(fwd_syn.data());
        assert_eq!((quoted.destination(), qdport), (fsrc, fsport), "{fwd:?}");
    }
}

#[test]
fn a_new_server_in_a_freed_slot_starts_its_traffic_from_zero() {
    let key = ServiceKey::Addr {
        proto: Proto::Tcp,
        addr: a(VIP),
        port: 80,
    };
    let mut t = ServiceTable::new();
    t.add_service(ServiceConfig::new(key, SchedKind::Rr))
        .expect("service");
    t.add_dest(&key, DestConfig::new(a(RS2), 80, FwdMethod::Masq))
        .expect("rs2");
    let with = |t: &mut ServiceTable, generation: u64| {
        let mut s = snapshot(FwdMethod::Masq, 1);
        s.generation = generation;
        s.services = t.snapshot();
        s
    };
    let mut c = Core::new(0, ConnConfig::new(64), NeighConfig::default());
    c.adopt(with(&mut t, 1));
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
    tx(c.process(tcp_ttl(CIP, 40000, VIP, 80, 64, true), 0, 1, true));
    let before: Vec<_> = c.dest_traffic().map(|(_, t)| t.inpkts).collect();
    assert_eq!(before, vec![1]);
    // RS2 goes; its session expires, which frees its slot; RS1 comes and takes it.
    t.del_dest(&key, a(RS2), 80).expect("del");
    c.adopt(with(&mut t, 2));
    c.tick(10 * 60 * 1000, |_| {});
    assert_eq!(c.conns().len(), 0);
    t.add_dest(&key, DestConfig::new(a(RS1), 80, FwdMethod::Masq))
        .expect("rs1");
    c.adopt(with(&mut t, 3));
    let after: Vec<_> = c.dest_traffic().map(|(_, t)| (t.conns, t.inpkts)).collect();
    assert_eq!(after, vec![(0, 0)], "RS1 did not inherit RS2's traffic");
}

#[test]
fn packets_to_a_former_vip_still_find_the_worker_of_their_session() {
    // The table was cleared (`-C`) and its servers wait in the trash: the VIP is no
    // longer ours, but its sessions may come back with `-R`. A client's packet that
    // arrives on another worker is handed to the client's worker, which holds the
    // session, instead of being taken for a NAT reply to the VIP.
    let owner = owner_of_client(Ipv4Addr::from(CIP), 2);
    let mut other = core(FwdMethod::Masq, 1 - owner, 2);
    let mut snap = snapshot(FwdMethod::Masq, 2);
    let mut net = (*snap.net).clone();
    net.local.remove(&Ipv4Addr::from(VIP));
    snap.services = ServiceTable::new().snapshot();
    let mut gone = snap.clone();
    gone.net = Arc::new(net.clone());
    net.former_vips = vec![Ipv4Addr::from(VIP)];
    snap.net = Arc::new(net);
    snap.generation = 2;
    other.adopt(snap);
    let ack = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, false, true);
    match other.process(ack.clone(), 0, 1, true) {
        Out::Handoff(_, o) => assert_eq!(o as usize, owner),
        o => panic!("not handed to the client's worker: {o:?}"),
    }
    // Without the former VIP the packet would be owned as if sent to a client (the VIP).
    let mut blind = core(FwdMethod::Masq, 1 - owner, 2);
    blind.adopt(gone);
    let vip_owner = owner_of_client(Ipv4Addr::from(VIP), 2);
    match blind.process(ack, 0, 1, true) {
        Out::Handoff(_, o) => assert_eq!(o as usize, vip_owner),
        Out::Drop(_, r) => assert_eq!(vip_owner, 1 - owner, "{r:?}"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn a_kernel_probe_to_a_tun_servers_probe_mac_leaves_encapsulated_to_it() {
    // The host's kernel (behind the exception tap of port 1, 10.20.0.2) checks VIP:80
    // through TUN server RS2 (GUE, port 6080) and RS1 (IPIP): it sends the probe to their
    // probe MACs.
    let gue = Tunnel {
        kind: TunKind::Gue,
        port: 6080,
        csum: TunCsum::Csum,
    };
    let mut snap = snapshot_tun(FwdMethod::Tunnel, 1, [Tunnel::IPIP, gue]);
    let (vip, rs1, rs2) = (VIP.into(), RS1.into(), RS2.into());
    let gone = Ipv4Addr::new(10, 20, 0, 13);
    let checked = [(vip, rs1), (vip, rs2), (vip, gone)];
    let mut net = (*snap.net).clone();
    net.probe_tunnels = probe_tunnels(&snap.services, &checked);
    // A server checked through the VIP but out of the service (its check failed) keeps
    // its entry, with the configured servers' tunnel.
    assert_eq!(net.probe_tunnels.get(&(vip, rs2)), Some(&gue));
    assert_eq!(net.probe_tunnels.get(&(vip, gone)), Some(&Tunnel::IPIP));
    snap.net = Arc::new(net);
    let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snap);
    c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
    let host = [10, 20, 0, 2];
    let host_mac = [2, 0, 0, 0, 0, 0x42];
    let probe = |rip: [u8; 4], dst: [u8; 4]| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(host_mac, probe_mac(Ipv4Addr::from(rip)))
            .ipv4(host, dst, 64)
            .tcp(41000, 80, 1, 65535)
            .syn()
            .write(&mut v, b"")
            .expect("build");
        v
    };
    let frame = probe(RS1, VIP);
    assert_eq!(probe_target(&frame), Some(Ipv4Addr::from(RS1)));
    assert_eq!(
        probe_target(tcp(CLIENT_MAC, PORT0_MAC, CIP, 1, VIP, 80, true, false).data()),
        None
    );
    let b = VecBuf::new(VecBuf::DEFAULT_HEADROOM, &frame);
    let (out, port) = tx(c.probe_from_kernel(b, Ipv4Addr::from(RS1), 5));
    assert_eq!(port, 1, "out of the server-side port");
    let out = out.data().to_vec();
    assert_eq!(&out[..6], &RS1_MAC, "to the real server's MAC");
    assert_eq!(&out[6..12], &PORT1_MAC, "from the port's MAC");
    let p = SlicedPacket::from_ethernet(&out).expect("parses");
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("outer IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.protocol, etherparse::IpNumber::IPV4, "IP in IP");
    assert_eq!(h.source, DIP1, "outer source: the port's address");
    assert_eq!(h.destination, RS1, "outer destination: the real server");
    assert_eq!(h.time_to_live, 63);
    assert_eq!(h.calc_header_checksum(), h.header_checksum);
    assert_eq!(&out[34..], &frame[14..], "the probe inside, untouched");
    let inner = [&out[..14], &out[34..]].concat();
    assert_eq!(check(&inner), (host, 41000, VIP, 80));

    // RS2's tunnel is GUE: the probe goes as TUN forwarding sends to it (held until RS2
    // resolves, an ARP request queued).
    let b = VecBuf::new(VecBuf::DEFAULT_HEADROOM, &probe(RS2, VIP));
    assert!(matches!(
        c.probe_from_kernel(b, Ipv4Addr::from(RS2), 6),
        Out::Held
    ));
    assert_eq!(
        c.take_arp_requests().collect::<Vec<_>>(),
        vec![(1, Ipv4Addr::from(RS2))]
    );
    c.learn_neighbour(
        NeighUpdate {
            ip: Ipv4Addr::from(RS2).into(),
            mac: RS2_MAC,
        },
        7,
    );
    let (out, port) = c.take_released().next().expect("released");
    assert_eq!(port, 1);
    assert_eq!(&out.data()[..6], &RS2_MAC);
    assert_tunnelled_as_configured(out.data(), [Tunnel::IPIP, gue]);

    // Not checked through the VIP, or not to the VIP: dropped and counted.
    let unknown = [10, 20, 0, 99];
    for (rip, dst) in [(unknown, VIP), (RS1, CIP)] {
        let b = VecBuf::new(VecBuf::DEFAULT_HEADROOM, &probe(rip, dst));
        match c.probe_from_kernel(b, Ipv4Addr::from(rip), 8) {
            Out::Drop(_, DropReason::ProbeUnknown) => {}
            o => panic!("{rip:?} {dst:?}: {o:?}"),
        }
    }
    assert_eq!(c.counters().drops_of(DropReason::ProbeUnknown), 2);
    assert_eq!(DropReason::ProbeUnknown.name(), "probe-unknown");
    assert_eq!(c.conns().len(), 0, "a probe opens no session");

    // Without a published table (no server checked so), every probe is unknown.
    let mut dr = core(FwdMethod::Tunnel, 0, 1);
    let b = VecBuf::new(VecBuf::DEFAULT_HEADROOM, &probe(RS1, VIP));
    assert!(matches!(
        dr.probe_from_kernel(b, Ipv4Addr::from(RS1), 1),
        Out::Drop(_, DropReason::ProbeUnknown)
    ));
}

#[test]
fn above_the_new_session_budget_new_flows_are_refused_and_established_ones_go_on() {
    // `[sessions] new_per_second = 4` on one worker, in every mode, packet by packet
    // and in bursts (the fast path) alike: two connections are established, then a
    // flood of SYNs of new flows arrives mixed with the established flows' packets.
    // Only what is left of the second's budget (2) becomes sessions; the other SYNs
    // are dropped as `new-session-budget`; every established packet is forwarded. Half
    // a second later half the budget (2) is back, and no more.
    for (fwd, tunnels) in modes() {
        let mut one = core_tun(fwd, tunnels, 0, 1);
        let mut burst = core_tun(fwd, tunnels, 0, 1);
        for c in [&mut one, &mut burst] {
            c.set_new_session_budget(4);
        }
        let cl = |sp: u16, flags: &str| {
            let p = segment(
                CLIENT_MAC,
                PORT0_MAC,
                (CIP, sp),
                (VIP, 80),
                flags,
                64,
                b"GET /",
            );
            (p, 0u16)
        };
        let mut pkts = vec![
            (arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0),
            (arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1),
            (arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1),
            cl(40000, "S"),
            cl(40001, "S"),
        ];
        pkts.extend([cl(40000, "A"), cl(40001, "A")]);
        same_by_burst(&mut one, &mut burst, pkts, 0);
        assert_eq!(one.conns().len(), 2, "{fwd:?}");

        // The flood, 12 SYNs of new flows, each followed by packets of both
        // established flows.
        let mut pkts = Vec::new();
        for sp in 50000..50012u16 {
            pkts.push(cl(sp, "S"));
            pkts.push(cl(40000, "PA"));
            pkts.push(cl(40001, "PA"));
        }
        let v = same_by_burst(&mut one, &mut burst, pkts, 10);
        for (i, (kind, what, _)) in v.iter().enumerate() {
            let syn = 50000 + (i / 3) as u16;
            match (i % 3, i / 3) {
                (0, 0..=1) => assert_eq!(*kind, 0, "{fwd:?}: SYN {syn} is sent on"),
                (0, _) => assert_eq!(
                    (*kind, what.as_str()),
                    (2, "new-session-budget"),
                    "{fwd:?}: SYN {syn} is refused"
                ),
                _ => assert_eq!(*kind, 0, "{fwd:?}: an established packet is sent on"),
            }
        }
        for c in [&one, &burst] {
            assert_eq!(c.conns().len(), 4, "{fwd:?}");
            assert_eq!(c.counters().conns, 4, "{fwd:?}");
            assert_eq!(
                c.counters().drops_of(DropReason::NewSessionBudget),
                10,
                "{fwd:?}"
            );
        }

        // Half a second later: two more new sessions, the rest refused again.
        let pkts = (51000..51004u16).map(|sp| cl(sp, "S")).collect();
        let v = same_by_burst(&mut one, &mut burst, pkts, 510);
        let kinds: Vec<u8> = v.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(kinds, vec![0, 0, 2, 2], "{fwd:?}");
        for c in [&one, &burst] {
            assert_eq!(c.conns().len(), 6, "{fwd:?}");
            assert_eq!(
                c.counters().drops_of(DropReason::NewSessionBudget),
                12,
                "{fwd:?}"
            );
        }
    }
    assert_eq!(DropReason::NewSessionBudget.name(), "new-session-budget");
}

#[test]
fn without_a_budget_a_flood_of_new_flows_all_become_sessions() {
    let mut c = core(FwdMethod::Masq, 0, 1);
    c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, true);
    c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, true);
    for sp in 50000..50100u16 {
        let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, sp, VIP, 80, true, false);
        tx(c.process(syn, 0, 0, true));
    }
    assert_eq!(c.conns().len(), 100);
    assert_eq!(c.counters().drops_of(DropReason::NewSessionBudget), 0);
}

// ----- ACLs -----

/// `snap` with the global ACL `global` and the service's ACL `svc` (prefixes of the
/// form `"10.10.0.2/32"`).
fn with_acls(
    snap: &Snapshot,
    generation: u64,
    global: &[(&str, crate::acl::AclAction)],
    svc: &[(&str, crate::acl::AclAction)],
) -> Snapshot {
    use crate::acl::{Acl, AclRule};
    let rules = |v: &[(&str, crate::acl::AclAction)]| {
        v.iter()
            .map(|(p, act)| {
                let (a, l) = p.split_once('/').expect("a prefix");
                AclRule::new(a.parse().expect("address"), l.parse().expect("len"), *act)
            })
            .collect::<Vec<_>>()
    };
    let mut net = (*snap.net).clone();
    net.acl = Arc::new(Acl::new(&rules(global)));
    let mut services: Vec<crate::service::Service> = snap.services.services().to_vec();
    for s in &mut services {
        s.acl = Some(Arc::new(Acl::new(&rules(svc))));
    }
    Snapshot {
        generation,
        services: Arc::new(crate::service::ServiceSet::new(generation, services)),
        net: Arc::new(net),
    }
}

#[test]
fn an_acl_denied_client_opens_no_session_and_its_established_ones_go_on() {
    use crate::acl::AclAction::{Allow, Deny};
    // In every mode, packet by packet and in bursts alike: client CIP establishes a
    // connection; then a deny of CIP/32 is published. CIP's established connection
    // goes on (the fast path never looks at the ACL), its new SYNs are dropped as
    // `acl-deny` and create nothing; another client (CIP2) is not affected. Removing
    // the deny lets CIP's next SYN through; an allow-list of the service's that does
    // not name CIP denies it again, and a global deny wins over a service's allow.
    const CIP2: [u8; 4] = [10, 10, 0, 3];
    for (fwd, tunnels) in modes() {
        let mut one = core_tun(fwd, tunnels, 0, 1);
        let mut burst = core_tun(fwd, tunnels, 0, 1);
        let base = one.snapshot().expect("snapshot").clone();
        let pkt = |src: [u8; 4], sp: u16, flags: &str| {
            let p = segment(
                CLIENT_MAC,
                PORT0_MAC,
                (src, sp),
                (VIP, 80),
                flags,
                64,
                b"GET /",
            );
            (p, 0u16)
        };
        let kinds = |v: &[(u8, String, Vec<u8>)]| -> Vec<(u8, String)> {
            v.iter()
                .map(|(k, w, _)| (*k, if *k == 2 { w.clone() } else { String::new() }))
                .collect()
        };
        let sent = (0u8, String::new());
        let denied = (2u8, "acl-deny".to_string());
        let mut pkts = vec![
            (arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0),
            (arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1),
            (arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1),
        ];
        pkts.extend([pkt(CIP, 40000, "S"), pkt(CIP, 40000, "A")]);
        same_by_burst(&mut one, &mut burst, pkts, 0);
        assert_eq!(one.conns().len(), 1, "{fwd:?}");

        // Deny CIP: established packets go on, new SYNs (a few, then more mixed with
        // the established flow) are refused, CIP2 is not affected.
        for c in [&mut one, &mut burst] {
            c.adopt(with_acls(&base, 2, &[("10.10.0.2/32", Deny)], &[]));
        }
        let pkts = vec![
            pkt(CIP, 40000, "PA"),
            pkt(CIP, 40001, "S"),
            pkt(CIP, 40002, "S"),
            pkt(CIP, 40000, "PA"),
            pkt(CIP2, 40000, "S"),
            pkt(CIP, 40003, "S"),
            pkt(CIP, 40000, "A"),
        ];
        let v = same_by_burst(&mut one, &mut burst, pkts, 10);
        assert_eq!(
            kinds(&v),
            vec![
                sent.clone(),
                denied.clone(),
                denied.clone(),
                sent.clone(),
                sent.clone(),
                denied.clone(),
                sent.clone()
            ],
            "{fwd:?}"
        );
        for c in [&one, &burst] {
            assert_eq!(c.conns().len(), 2, "{fwd:?}: CIP's first and CIP2's");
            assert_eq!(c.counters().conns, 2, "{fwd:?}");
            assert_eq!(c.counters().drops_of(DropReason::AclDeny), 3, "{fwd:?}");
        }

        // The deny removed: the next SYN opens a session.
        for c in [&mut one, &mut burst] {
            c.adopt(with_acls(&base, 3, &[], &[]));
        }
        let v = same_by_burst(&mut one, &mut burst, vec![pkt(CIP, 40004, "S")], 20);
        assert_eq!(kinds(&v), vec![sent.clone()], "{fwd:?}");

        // The service's allow-list names CIP2 only; a global deny of CIP2 wins over it.
        for c in [&mut one, &mut burst] {
            c.adopt(with_acls(&base, 4, &[], &[("10.10.0.3/32", Allow)]));
        }
        let pkts = vec![
            pkt(CIP, 40005, "S"),
            pkt(CIP2, 40005, "S"),
            pkt(CIP, 40004, "A"),
        ];
        let v = same_by_burst(&mut one, &mut burst, pkts, 30);
        assert_eq!(
            kinds(&v),
            vec![denied.clone(), sent.clone(), sent.clone()],
            "{fwd:?}"
        );
        for c in [&mut one, &mut burst] {
            c.adopt(with_acls(
                &base,
                5,
                &[("10.10.0.0/24", Deny)],
                &[("10.10.0.3/32", Allow)],
            ));
        }
        let v = same_by_burst(&mut one, &mut burst, vec![pkt(CIP2, 40006, "S")], 40);
        assert_eq!(kinds(&v), vec![denied.clone()], "{fwd:?}");
        for c in [&one, &burst] {
            assert_eq!(c.conns().len(), 4, "{fwd:?}");
            assert_eq!(c.counters().drops_of(DropReason::AclDeny), 5, "{fwd:?}");
        }
    }
    assert_eq!(DropReason::AclDeny.name(), "acl-deny");
    assert_eq!(
        DropReason::from_index(DropReason::AclDeny.index()),
        Some(DropReason::AclDeny),
        "listed by rvsadm --dataplane and the metrics endpoint"
    );
}

#[test]
fn an_acl_denied_udp_client_opens_no_session_but_its_flow_goes_on() {
    use crate::acl::AclAction::Deny;
    let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    let base = snapshot_with(FwdMethod::Masq, 1, [Tunnel::IPIP; 2], Proto::Udp, 0);
    c.adopt(base.clone());
    c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, true);
    c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, true);
    let dgram = |sp: u16| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CIP, VIP, 64)
            .udp(sp, 80)
            .write(&mut v, b"q")
            .unwrap();
        VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v)
    };
    tx(c.process(dgram(5000), 0, 0, true));
    c.adopt(with_acls(&base, 2, &[("10.10.0.0/16", Deny)], &[]));
    // The flow that has a session goes on; a new one is refused.
    tx(c.process(dgram(5000), 0, 1, true));
    assert!(matches!(
        c.process(dgram(5001), 0, 1, true),
        Out::Drop(_, DropReason::AclDeny)
    ));
    assert_eq!(c.conns().len(), 1);
    assert_eq!(c.counters().drops_of(DropReason::AclDeny), 1);
}

// ----- FULLNAT: the client's address (PROXY protocol, TOA) -----

/// A one-worker FULLNAT core of a `proto` service with service flags `svc`, its
/// neighbours known.
fn cip_core(proto: Proto, svc: u32) -> Core<VecBuf> {
    let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snapshot_with(
        FwdMethod::FullNat,
        1,
        [Tunnel::IPIP; 2],
        proto,
        svc,
    ));
    c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, false);
    c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, false);
    c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, false);
    c
}

/// A TCP segment built by etherparse with timestamps: `flags` of S, A, P, F, R.
#[allow(clippy::too_many_arguments)]
fn seg_ts(
    macs: ([u8; 6], [u8; 6]),
    s: ([u8; 4], u16),
    d: ([u8; 4], u16),
    seq: u32,
    ack: u32,
    flags: &str,
    opts: &[etherparse::TcpOptionElement],
    payload: &[u8],
) -> VecBuf {
    let mut b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(s.0, d.0, 64)
        .tcp(s.1, d.1, seq, 65535)
        .options(opts)
        .expect("options");
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(ack),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            _ => panic!("flag {f}"),
        };
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("build");
    VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v)
}

const TS: [etherparse::TcpOptionElement; 3] = [
    etherparse::TcpOptionElement::Noop,
    etherparse::TcpOptionElement::Noop,
    etherparse::TcpOptionElement::Timestamp(100, 200),
];

/// A client segment CIP:40000 -> VIP:80 with timestamps ([`seg_ts`]).
fn from_client(seq: u32, ack: u32, flags: &str, payload: &[u8]) -> VecBuf {
    seg_ts(
        (CLIENT_MAC, PORT0_MAC),
        (CIP, 40000),
        (VIP, 80),
        seq,
        ack,
        flags,
        &TS,
        payload,
    )
}

/// The TCP header of a frame (checksums checked), as etherparse reads it.
fn tcp_hdr(frame: &[u8]) -> (etherparse::TcpHeader, Vec<u8>) {
    check(frame);
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("TCP")
    };
    (t.to_header(), t.payload().to_vec())
}

/// The client's handshake through a PROXY-protocol (or TOA) FULLNAT service, client ISN
/// 7000, server ISN 50000: returns (the real server's end, the LIP port, the frames
/// the client's ACK produced: forwarded, then any originated).
struct Shaken {
    rs: ([u8; 4], u16),
    rs_mac: [u8; 6],
    lport: u16,
    ack_out: VecBuf,
    generated: Option<Vec<u8>>,
}

fn handshake(c: &mut Core<VecBuf>, now: u64) -> Shaken {
    let syn = from_client(7000, 0, "S", b"");
    let (p, _) = tx(c.process(syn, 0, now, false));
    let (h, _) = tcp_hdr(p.data());
    assert_eq!(h.sequence_number, 7000, "a SYN is not shifted");
    let (_, lport, rs, rport) = check(p.data());
    let rs_mac = if rs == RS1 { RS1_MAC } else { RS2_MAC };
    let synack = seg_ts(
        (rs_mac, PORT1_MAC),
        (rs, rport),
        (LIP, lport),
        50000,
        7001,
        "SA",
        &TS,
        b"",
    );
    let (p, _) = tx(c.process(synack, 1, now, false));
    assert_eq!(tcp_hdr(p.data()).0.acknowledgment_number, 7001);
    let ack = from_client(7001, 50001, "A", b"");
    let (ack_out, _) = tx(c.process(ack, 0, now, false));
    let generated = c.take_generated().map(|(port, len)| {
        assert_eq!(port, 1, "the header leaves toward the real server");
        c.scratch()[..len].to_vec()
    });
    Shaken {
        rs: (rs, rport),
        rs_mac,
        lport,
        ack_out,
        generated,
    }
}

/// The PROXY v2 header of client CIP:40000 to VIP:80 over TCP, written out by hand
/// from the specification.
fn v2_expected() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&CIP);
    h.extend_from_slice(&VIP);
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

#[test]
fn proxy_v2_header_goes_first_and_the_stream_is_shifted_both_ways() {
    let mut c = cip_core(Proto::Tcp, svc_flags_pp2());
    let sh = handshake(&mut c, 1000);
    // The handshake's ACK goes on shifted, then the header as its own segment with the
    // client's first sequence number, the ACK's timestamps and the header as payload.
    let (h, payload) = tcp_hdr(sh.ack_out.data());
    assert_eq!(h.sequence_number, 7001 + 28);
    assert!(payload.is_empty());
    let g = sh.generated.expect("the header segment");
    assert_eq!(&g[..6], &sh.rs_mac);
    let (_, lport, rs, _) = check(&g);
    assert_eq!((lport, rs), (sh.lport, sh.rs.0));
    let (gh, gp) = tcp_hdr(&g);
    assert_eq!(gh.sequence_number, 7001);
    assert_eq!(gh.acknowledgment_number, 50001);
    assert!(gh.ack && gh.psh && !gh.fin && !gh.syn && !gh.rst);
    assert_eq!(gp, v2_expected());
    assert!(gh
        .options_iterator()
        .any(|o| matches!(o, Ok(etherparse::TcpOptionElement::Timestamp(100, 200)))));
    assert_eq!(c.counters().proxy_headers, 1);
    // The client's request: shifted, no second header before 300 ms.
    let get = b"GET / HTTP/1.1\r\n\r\n";
    let req = from_client(7001, 50001, "AP", get);
    let (p, _) = tx(c.process(req, 0, 1100, false));
    assert_eq!(tcp_hdr(p.data()).0.sequence_number, 7029);
    assert!(c.take_generated().is_none());
    // The server acknowledges header and request: the client sees its request acked.
    let rs_ack = seg_ts(
        (sh.rs_mac, PORT1_MAC),
        sh.rs,
        (LIP, sh.lport),
        50001,
        7001 + 28 + get.len() as u32,
        "A",
        &TS,
        b"",
    );
    let (p, port) = tx(c.process(rs_ack, 1, 1100, false));
    assert_eq!(port, 0);
    assert_eq!(
        tcp_hdr(p.data()).0.acknowledgment_number,
        7001 + get.len() as u32
    );
    // Settled: the established packets take the fast path, with the same effects as
    // the general path (a twin core, packet by packet), the shift included.
    let mut twin = cip_core(Proto::Tcp, svc_flags_pp2());
    let tsh = handshake(&mut twin, 1000);
    assert_eq!(tsh.lport, sh.lport);
    let req = from_client(7001, 50001, "AP", get);
    tx(twin.process(req, 0, 1100, false));
    let rs_ack = seg_ts(
        (sh.rs_mac, PORT1_MAC),
        sh.rs,
        (LIP, sh.lport),
        50001,
        7001 + 28 + get.len() as u32,
        "A",
        &TS,
        b"",
    );
    tx(twin.process(rs_ack, 1, 1100, false));
    let next = 7001 + get.len() as u32;
    let sack = [
        etherparse::TcpOptionElement::Noop,
        etherparse::TcpOptionElement::Noop,
        etherparse::TcpOptionElement::SelectiveAcknowledgement(
            (next + 28 + 1000, next + 28 + 2000),
            [Some((7001 + 3, 7001 + 20)), None, None],
        ),
    ];
    let pkts = vec![
        (from_client(next, 50001, "AP", b"more"), 0),
        (
            seg_ts(
                (sh.rs_mac, PORT1_MAC),
                sh.rs,
                (LIP, sh.lport),
                50001,
                next + 28 + 4,
                "AP",
                &sack,
                b"reply",
            ),
            1,
        ),
    ];
    let out = same_by_burst(&mut twin, &mut c, pkts, 1200);
    let (h, _) = tcp_hdr(&out[0].2);
    assert_eq!(h.sequence_number, next + 28);
    let (h, p) = tcp_hdr(&out[1].2);
    assert_eq!(h.acknowledgment_number, next + 4);
    assert_eq!(p, b"reply");
    let blocks = h
        .options_iterator()
        .find_map(|o| match o {
            Ok(etherparse::TcpOptionElement::SelectiveAcknowledgement(a, r)) => Some((a, r)),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        blocks.0,
        (next + 1000, next + 2000),
        "above the header: shifted"
    );
    assert_eq!(
        blocks.1[0],
        Some((7001, 7001)),
        "inside the header: the first byte"
    );
}

fn svc_flags_pp2() -> u32 {
    crate::service::svc_flags::PROXY_V2
}

#[test]
fn a_header_the_server_has_not_acknowledged_is_sent_again_with_the_first_byte() {
    let mut c = cip_core(Proto::Tcp, svc_flags_pp2());
    let sh = handshake(&mut c, 1000);
    assert!(sh.generated.is_some());
    let first = || from_client(7001, 50001, "AP", b"hi");
    // 200 ms later: not yet.
    tx(c.process(first(), 0, 1200, false));
    assert!(c.take_generated().is_none());
    // The client retransmits its first byte 400 ms after the header: the header again.
    let (p, _) = tx(c.process(first(), 0, 1400, false));
    assert_eq!(tcp_hdr(p.data()).0.sequence_number, 7029);
    let (_, len) = c.take_generated().expect("the header again");
    let (gh, gp) = tcp_hdr(&c.scratch()[..len]);
    assert_eq!((gh.sequence_number, gp), (7001, v2_expected()));
    assert_eq!(c.counters().proxy_resent, 1);
    assert_eq!(c.counters().proxy_headers, 2);
    // A later segment (not the first byte) never brings it.
    let later = from_client(7003, 50001, "AP", b"x");
    tx(c.process(later, 0, 3000, false));
    assert!(c.take_generated().is_none());
    let _ = sh;
}

#[test]
fn proxy_v1_line_names_the_client_and_shifts_by_its_length() {
    let mut c = cip_core(Proto::Tcp, crate::service::svc_flags::PROXY_V1);
    let sh = handshake(&mut c, 0);
    let line = b"PROXY TCP4 10.10.0.2 10.10.0.100 40000 80\r\n";
    let (gh, gp) = tcp_hdr(&sh.generated.expect("header"));
    assert_eq!(gh.sequence_number, 7001);
    assert_eq!(gp, line);
    assert_eq!(
        tcp_hdr(sh.ack_out.data()).0.sequence_number,
        7001 + line.len() as u32
    );
}

#[test]
fn a_client_that_sends_a_proxy_header_itself_comes_after_ours() {
    let mut c = cip_core(Proto::Tcp, svc_flags_pp2());
    let sh = handshake(&mut c, 0);
    assert_eq!(tcp_hdr(&sh.generated.unwrap()).1, v2_expected());
    let spoof = b"PROXY TCP4 1.2.3.4 10.10.0.100 1 80\r\nGET / HTTP/1.0\r\n\r\n";
    let p = from_client(7001, 50001, "AP", spoof);
    let (p, _) = tx(c.process(p, 0, 10, false));
    let (h, payload) = tcp_hdr(p.data());
    // The spoofed line is the client's data, after the director's header.
    assert_eq!(h.sequence_number, 7001 + 28);
    assert_eq!(payload, spoof);
}

#[test]
fn toa_rides_on_the_handshakes_ack_once() {
    let mut c = cip_core(Proto::Tcp, crate::service::svc_flags::TOA);
    let sh = handshake(&mut c, 0);
    assert!(sh.generated.is_none(), "no PROXY header without the option");
    let (h, _) = tcp_hdr(sh.ack_out.data());
    assert_eq!(h.sequence_number, 7001, "no shift with TOA alone");
    let opts = h.options.as_slice();
    let at = opts.windows(2).position(|w| w == [254, 8]).expect("TOA");
    assert_eq!(&opts[at + 2..at + 4], &40000u16.to_be_bytes());
    assert_eq!(&opts[at + 4..at + 8], &CIP);
    assert_eq!(c.counters().toa_added, 1);
    // The next segment has none, and the session now takes the fast path.
    let p = from_client(7001, 50001, "AP", b"GET");
    let (p, _) = tx(c.process(p, 0, 10, false));
    let (h, _) = tcp_hdr(p.data());
    assert!(!h.options.as_slice().windows(2).any(|w| w == [254, 8]));
    assert_eq!(c.counters().toa_added, 1);
    let s = c.conns().iter().next().unwrap().1;
    assert_eq!(s.flags & crate::conn::flags::CIP, 0);
}

#[test]
fn toa_without_room_is_counted_and_the_segment_goes_on() {
    let mut c = cip_core(Proto::Tcp, crate::service::svc_flags::TOA);
    let syn = from_client(7000, 0, "S", b"");
    tx(c.process(syn, 0, 0, false));
    // The handshake's ACK lost: the first data segment fills the MTU.
    let full = vec![b'x'; 1500 - 20 - 32];
    let p = from_client(7001, 50001, "AP", &full);
    let (p, _) = tx(c.process(p, 0, 1, false));
    assert_eq!(tcp_hdr(p.data()).1, full);
    assert_eq!((c.counters().toa_added, c.counters().toa_no_room), (0, 1));
}

#[test]
fn udp_datagrams_get_a_v2_header_each() {
    let mut c = cip_core(Proto::Udp, svc_flags_pp2());
    let dgram = |payload: &[u8]| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CIP, VIP, 64)
            .udp(40000, 80)
            .write(&mut v, payload)
            .unwrap();
        VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v)
    };
    let mut want = v2_expected();
    want[13] = 0x12; // AF_INET, DGRAM
    for (i, payload) in [&b"one"[..], b"two"].iter().enumerate() {
        let (p, port) = tx(c.process(dgram(payload), 0, i as u64, false));
        assert_eq!(port, 1);
        let s = SlicedPacket::from_ethernet(p.data()).unwrap();
        let Some(TransportSlice::Udp(u)) = s.transport else {
            panic!()
        };
        let Some(NetSlice::Ipv4(ip)) = s.net else {
            panic!()
        };
        let hdr = ip.header().to_header();
        assert_eq!(hdr.calc_header_checksum(), hdr.header_checksum);
        assert_eq!(
            u.to_header().calc_checksum_ipv4(&hdr, u.payload()).unwrap(),
            u.checksum()
        );
        assert_eq!(&u.payload()[..28], &want[..]);
        assert_eq!(&u.payload()[28..], *payload);
    }
    assert_eq!(c.counters().proxy_headers, 2);
    // A datagram that would not fit the MTU with the header: dropped and counted.
    let out = c.process(dgram(&[0u8; 1500 - 28 - 10]), 0, 5, false);
    assert!(matches!(out, Out::Drop(_, DropReason::ProxyNoRoom)));
    assert_eq!(c.counters().drops_of(DropReason::ProxyNoRoom), 1);
    assert_eq!(DropReason::ProxyNoRoom.name(), "proxy-no-room");
}

#[test]
fn a_standby_keeps_shifting_a_synced_proxy_session() {
    use crate::sync::wire::{decode, MessageBuilder, Record};
    let mut c = cip_core(Proto::Tcp, svc_flags_pp2());
    let sh = handshake(&mut c, 0);
    let (id, _) = c.conns().iter().next().unwrap();
    let rec = c.conns().sync_record(id).unwrap();
    assert_eq!(rec.in_seq, Some((7000, 28)));
    assert_ne!(rec.flags & 0x0400, 0, "IP_VS_CONN_F_IN_SEQ");
    // Through the wire format: the kernel's IPVS_OPT_SEQ_DATA.
    let mut m = MessageBuilder::new(1, 1500);
    assert!(m.push(&rec));
    let mut recs = Vec::new();
    decode(m.bytes(), &mut recs).unwrap();
    let Record::Conn(got) = recs[0] else {
        panic!("{recs:?}")
    };
    assert_eq!(got.in_seq, Some((7000, 28)));
    // The standby installs it established (as the master sends it after its state
    // change) and takes over: a client segment is shifted, a server ack shifted back.
    let mut standby = cip_core(Proto::Tcp, svc_flags_pp2());
    let mut est = got;
    est.state = crate::conn::TcpState::Established as u16;
    assert!(standby.install_synced(&est, 0).unwrap());
    let p = from_client(7101, 50001, "AP", b"x");
    let mut got = Vec::new();
    standby.process_burst(
        [p],
        10,
        true,
        |_| 0,
        |e| {
            if let Emit::Packet(o) = e {
                got.push(tx(o).0)
            }
        },
    );
    assert_eq!(tcp_hdr(got[0].data()).0.sequence_number, 7101 + 28);
    assert!(
        standby.take_generated().is_none(),
        "the master sent the header"
    );
    let r = seg_ts(
        (sh.rs_mac, PORT1_MAC),
        sh.rs,
        (LIP, sh.lport),
        50001,
        7101 + 28 + 1,
        "A",
        &TS,
        b"",
    );
    let (p, _) = tx(standby.process(r, 1, 10, false));
    assert_eq!(tcp_hdr(p.data()).0.acknowledgment_number, 7102);
}

#[test]
fn a_reset_during_the_handshake_is_not_shifted_and_sends_no_header() {
    let mut c = cip_core(Proto::Tcp, svc_flags_pp2());
    let syn = from_client(7000, 0, "S", b"");
    tx(c.process(syn, 0, 0, false));
    // The client gives up before completing the handshake: its RST carries the
    // sequence number the server expects (no header is in the server's stream).
    let rst = from_client(7001, 0, "R", b"");
    let (p, _) = tx(c.process(rst, 0, 1, false));
    assert_eq!(tcp_hdr(p.data()).0.sequence_number, 7001);
    assert!(c.take_generated().is_none());
    assert_eq!(c.counters().proxy_headers, 0);
}

#[test]
fn a_first_segment_that_fills_the_mss_is_not_grown_and_its_retransmission_keeps_the_shift() {
    let mut c = cip_core(Proto::Tcp, svc_flags_pp2());
    let syn = from_client(7000, 0, "S", b"");
    let (p, _) = tx(c.process(syn, 0, 0, false));
    let (_, lport, rs, rport) = check(p.data());
    let rs_mac = if rs == RS1 { RS1_MAC } else { RS2_MAC };
    // The handshake's ACK is lost; the first segment fills the path (1500-byte packet).
    let full = vec![b'a'; 1500 - 20 - 32];
    let first = || from_client(7001, 50001, "AP", &full);
    let (p, _) = tx(c.process(first(), 0, 10, false));
    assert_eq!(p.data().len(), 14 + 1500, "not grown");
    let (h, payload) = tcp_hdr(p.data());
    assert_eq!((h.sequence_number, payload.len()), (7029, full.len()));
    let (_, len) = c.take_generated().expect("the header segment");
    assert_eq!(tcp_hdr(&c.scratch()[..len]).1, v2_expected());
    // The server acknowledges the header and the segment; the client, not having seen
    // that ack (lost), retransmits the segment: shifted the same, no header again.
    let ack = 7001 + 28 + full.len() as u32;
    let r = seg_ts(
        (rs_mac, PORT1_MAC),
        (rs, rport),
        (LIP, lport),
        50001,
        ack,
        "A",
        &TS,
        b"",
    );
    let (p, _) = tx(c.process(r, 1, 20, false));
    assert_eq!(
        tcp_hdr(p.data()).0.acknowledgment_number,
        7001 + full.len() as u32
    );
    let (p, _) = tx(c.process(first(), 0, 2000, false));
    assert_eq!(tcp_hdr(p.data()).0.sequence_number, 7029);
    assert!(c.take_generated().is_none());
    assert_eq!(c.counters().proxy_headers, 1);
}

#[test]
fn with_two_workers_the_sessions_owner_sends_the_header() {
    let owner = owner_of_client(Ipv4Addr::from(CIP), 2);
    let mk = |id| {
        let mut c = Core::new(id, ConnConfig::new(1024), NeighConfig::default());
        c.adopt(snapshot_with(
            FwdMethod::FullNat,
            2,
            [Tunnel::IPIP; 2],
            Proto::Tcp,
            svc_flags_pp2(),
        ));
        c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, false);
        c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, false);
        c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, false);
        c
    };
    let (mut c, mut other) = (mk(owner), mk(1 - owner));
    let syn = from_client(7000, 0, "S", b"");
    tx(c.process(syn, 0, 0, false));
    // The handshake's ACK arrives at the other worker: handed over, no header there.
    let ack = from_client(7001, 50001, "A", b"");
    let ack = match other.process(ack, 0, 1, true) {
        Out::Handoff(p, w) => {
            assert_eq!(w as usize, owner);
            p
        }
        o => panic!("expected handoff, got {o:?}"),
    };
    assert!(other.take_generated().is_none());
    let (p, _) = tx(c.process(ack, 0, 1, false));
    assert_eq!(tcp_hdr(p.data()).0.sequence_number, 7029);
    let (_, len) = c.take_generated().expect("the owner sends the header");
    assert_eq!(tcp_hdr(&c.scratch()[..len]).1, v2_expected());
}

/// Two members of an active/active group, each sending and installing: a record is
/// emitted only after a client packet of the director's own; installing a peer's record
/// emits nothing (no loop); a synced session then used by a local client is sent on and
/// installed back as an update, which emits nothing either (no ping-pong).
#[test]
fn a_group_member_sends_only_after_its_own_packets() {
    let mk = || {
        let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
        c.adopt(snapshot_with(
            FwdMethod::Masq,
            1,
            [Tunnel::IPIP; 2],
            Proto::Udp,
            0,
        ));
        c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, true);
        c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, true);
        c.set_sync_master(Some(SyncRules::default()));
        c
    };
    let dgram = || {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CIP, VIP, 64)
            .udp(5000, 80)
            .write(&mut v, b"q")
            .unwrap();
        VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v)
    };
    let (mut a, mut b) = (mk(), mk());
    let mut sent_a = Vec::new();
    for t in 0..10 {
        tx(a.process(dgram(), 0, t, true));
        sent_a.extend(a.take_sync());
    }
    assert!(!sent_a.is_empty(), "a's own client: a sends");
    for r in &sent_a {
        b.install_synced(r, 20).unwrap();
    }
    assert_eq!(b.conns().len(), 1, "installed once, updated after");
    assert_eq!(
        b.take_sync().count(),
        0,
        "b does not send what it installed"
    );
    // The flow moves to b (ECMP): b's own packets make it send, a updates its session.
    // As in the kernel, an installed session counts the threshold's packets already: it
    // is sent after a period (50) of local packets, not at once.
    let mut sent_b = Vec::new();
    for t in 30..90 {
        tx(b.process(dgram(), 0, t, true));
        sent_b.extend(b.take_sync());
        if t == 30 + 48 {
            assert!(sent_b.is_empty(), "not before the period's packets");
        }
    }
    assert_eq!(sent_b.len(), 1, "b's own client now: b sends");
    for r in &sent_b {
        assert!(
            !a.install_synced(r, 50).unwrap(),
            "an update, not a second session"
        );
    }
    assert_eq!(a.conns().len(), 1);
    assert_eq!(a.take_sync().count(), 0, "a does not send it back");
}

/// A director of an mh service in mode `fwd` (worker `id` of one), `sloppy_tcp` on or
/// off, its real servers' MACs known.
fn mh_director(fwd: FwdMethod, id: usize, sloppy: bool) -> Core<VecBuf> {
    let mut snap = snapshot_sched(fwd, 1, [Tunnel::IPIP; 2], Proto::Tcp, 0, SchedKind::Mh);
    let mut net = (*snap.net).clone();
    net.sloppy_tcp = sloppy;
    snap.net = Arc::new(net);
    let mut c = Core::new(id, ConnConfig::new(4096), NeighConfig::default());
    c.adopt(snap);
    c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    c
}

/// The real server a forwarded frame goes to: its destination MAC (DR, NAT, FULLNAT:
/// the server is on-link) names it.
fn server_of(frame: &[u8]) -> [u8; 6] {
    let mac: [u8; 6] = frame[..6].try_into().expect("six bytes");
    assert!(mac == RS1_MAC || mac == RS2_MAC, "{mac:?}");
    mac
}

#[test]
fn with_sloppy_tcp_a_flow_another_director_saw_the_syn_of_goes_on_to_the_same_server() {
    // (Worker ids other than 0 give the schedulers other seeds; ownership is not
    // checked.) Director A sees the SYNs of 200 flows; director B (another worker id, so another
    // scheduler seed) sees only their next segment, an ACK with data, as after an ECMP
    // rehash. With sloppy_tcp B gives each flow a session, ESTABLISHED, to the server A
    // chose; without it B drops them as no-session.
    for fwd in [FwdMethod::Route, FwdMethod::Masq] {
        let mut a_dir = mh_director(fwd, 0, false);
        let mut b_dir = mh_director(fwd, 3, true);
        let mut strict = mh_director(fwd, 5, false);
        let mut servers = std::collections::HashSet::new();
        for (i, cport) in (30000..30200u16).enumerate() {
            let t = i as u64 * 3;
            let client = [10, 10, 0, 2 + (i % 90) as u8];
            let syn = segment(
                CLIENT_MAC,
                PORT0_MAC,
                (client, cport),
                (VIP, 80),
                "S",
                64,
                b"",
            );
            let (out, _) = tx(a_dir.process(syn, 0, t, false));
            let home = server_of(out.data());
            servers.insert(home);
            let ack = || {
                segment(
                    CLIENT_MAC,
                    PORT0_MAC,
                    (client, cport),
                    (VIP, 80),
                    "AP",
                    64,
                    b"x",
                )
            };
            let (out, port) = tx(b_dir.process(ack(), 0, t + 1, false));
            assert_eq!(port, 1);
            assert_eq!(server_of(out.data()), home, "flow {i} ({fwd:?})");
            let (_, sport, _, dport) = check(out.data());
            assert_eq!(sport, cport);
            // Under NAT RS1 listens on 8080.
            let nat_rs1 = fwd == FwdMethod::Masq && home == RS1_MAC;
            assert_eq!(dport, if nat_rs1 { 8080 } else { 80 });
            match strict.process(ack(), 0, t + 1, false) {
                Out::Drop(_, DropReason::NoSession) => {}
                o => panic!("{o:?}"),
            }
        }
        assert_eq!(servers.len(), 2, "both servers chosen");
        assert_eq!(b_dir.conns().len(), 200);
        assert_eq!(b_dir.conns().stats().sloppy, 200);
        assert_eq!(a_dir.conns().stats().sloppy, 0);
        assert_eq!(strict.conns().len(), 0);
        for (_, s) in b_dir.conns().iter() {
            assert_eq!(s.tcp_state(), crate::conn::TcpState::Established, "{fwd:?}");
        }
    }
}

#[test]
fn with_sloppy_tcp_a_reset_and_a_fullnat_flow_open_nothing() {
    // A RST never opens a session; a FULLNAT server is never given one by a segment
    // that is not a SYN (it knows the flow by the other director's LIP and port): both
    // dropped as no-session, nothing created. A SYN still opens one.
    let mut c = mh_director(FwdMethod::Masq, 0, true);
    let rst = segment(CLIENT_MAC, PORT0_MAC, (CIP, 31000), (VIP, 80), "R", 64, b"");
    assert!(matches!(
        c.process(rst, 0, 1, true),
        Out::Drop(_, DropReason::NoSession)
    ));
    let rst = segment(
        CLIENT_MAC,
        PORT0_MAC,
        (CIP, 31000),
        (VIP, 80),
        "AR",
        64,
        b"",
    );
    assert!(matches!(
        c.process(rst, 0, 1, true),
        Out::Drop(_, DropReason::NoSession)
    ));
    assert_eq!(c.conns().len(), 0);
    let mut f = mh_director(FwdMethod::FullNat, 0, true);
    let ack = segment(
        CLIENT_MAC,
        PORT0_MAC,
        (CIP, 31000),
        (VIP, 80),
        "A",
        64,
        b"x",
    );
    assert!(matches!(
        f.process(ack, 0, 1, true),
        Out::Drop(_, DropReason::NoSession)
    ));
    assert_eq!(
        f.conns().len(),
        0,
        "no FULLNAT session, no template, no port"
    );
    assert_eq!(f.conns().stats().sloppy, 0);
    let syn = segment(CLIENT_MAC, PORT0_MAC, (CIP, 31000), (VIP, 80), "S", 64, b"");
    let (out, _) = tx(f.process(syn, 0, 2, true));
    assert_eq!(check(out.data()).0, LIP);
    // A segment that would open a sloppy session needs a right checksum too.
    let mut bad = segment(
        CLIENT_MAC,
        PORT0_MAC,
        (CIP, 31001),
        (VIP, 80),
        "A",
        64,
        b"x",
    )
    .data()
    .to_vec();
    bad[14 + 20 + 16] ^= 0xff;
    assert!(matches!(
        c.process(VecBuf::new(64, &bad), 0, 3, true),
        Out::Drop(_, DropReason::Malformed(wire::Error::BadChecksum))
    ));
    assert_eq!(c.conns().len(), 0);
}

#[test]
fn sloppy_sessions_are_the_same_by_burst_as_packet_by_packet() {
    // Unseen flows' ACKs, FINs and RSTs, then more of the same flows (now with a session:
    // the fast path), in DR, NAT and FULLNAT: the burst and the packet-by-packet paths
    // agree on every verdict and byte, on the sessions and the counters.
    for fwd in [FwdMethod::Route, FwdMethod::Masq, FwdMethod::FullNat] {
        let mut pkts = Vec::new();
        for round in 0..2 {
            for cport in 32000..32020u16 {
                let flags = match cport % 5 {
                    0 => "R",
                    1 => "AF",
                    _ => "AP",
                };
                let flags = if round == 1 && flags == "R" {
                    "A"
                } else {
                    flags
                };
                let p = segment(
                    CLIENT_MAC,
                    PORT0_MAC,
                    (CIP, cport),
                    (VIP, 80),
                    flags,
                    64,
                    b"data",
                );
                pkts.push((p, 0u16));
            }
        }
        let mut one = mh_director(fwd, 0, true);
        let mut burst = mh_director(fwd, 0, true);
        let want = same_by_burst(&mut one, &mut burst, pkts, 7);
        let forwarded = want.iter().filter(|v| v.0 == 0).count();
        let opened = burst.conns().stats().sloppy;
        if fwd == FwdMethod::FullNat {
            assert_eq!((forwarded, opened), (0, 0));
        } else {
            // 16 opened by the first round (not the 4 RSTs), all 36 forwarded after: the
            // RST flows' second-round ACKs open theirs too.
            assert_eq!(opened, 20, "{fwd:?}");
            assert_eq!(forwarded, 36, "{fwd:?}");
        }
        assert_eq!(one.counters(), burst.counters());
        assert_eq!(one.conns().len(), burst.conns().len());
    }
}

#[test]
fn with_sloppy_tcp_a_nat_servers_reply_without_a_session_opens_nothing() {
    // A reply from a NAT server to a client whose flow this director never saw: the
    // reply does not name the VIP, so no session is made from it; it is not rewritten,
    // and counted as not-for-us (the client's next segment opens the session, or sync
    // brings it).
    let mut c = mh_director(FwdMethod::Masq, 0, true);
    c.add_static_neighbour(Ipv4Addr::from(CIP).into(), CLIENT_MAC);
    let reply = segment(
        RS1_MAC,
        PORT1_MAC,
        (RS1, 8080),
        (CIP, 33000),
        "AP",
        64,
        b"y",
    );
    assert!(matches!(
        c.process(reply, 1, 1, true),
        Out::Drop(_, DropReason::NotForUs)
    ));
    assert_eq!(c.conns().len(), 0);
    let ack = segment(CLIENT_MAC, PORT0_MAC, (CIP, 33000), (VIP, 80), "A", 64, b"");
    let (out, _) = tx(c.process(ack, 0, 2, true));
    let to = server_of(out.data());
    let (rip, rport) = if to == RS1_MAC {
        (RS1, 8080)
    } else {
        (RS2, 80)
    };
    let reply = segment(
        RS1_MAC,
        PORT1_MAC,
        (rip, rport),
        (CIP, 33000),
        "AP",
        64,
        b"y",
    );
    let (out, port) = tx(c.process(reply, 1, 3, true));
    assert_eq!(port, 0);
    assert_eq!(check(out.data()), (VIP, 80, CIP, 33000));
}

#[test]
fn a_synced_session_carries_an_unseen_flow_without_sloppy_tcp() {
    // Director A sees the handshake; its session record is installed on director B
    // (sloppy_tcp off). The flow's next segments reach B: forwarded to A's server by
    // the synced session, in DR and NAT, by both paths.
    for fwd in [FwdMethod::Route, FwdMethod::Masq] {
        let mut a_dir = mh_director(fwd, 0, false);
        let syn = segment(CLIENT_MAC, PORT0_MAC, (CIP, 34000), (VIP, 80), "S", 64, b"");
        let home = server_of(tx(a_dir.process(syn, 0, 1, true)).0.data());
        let ack = || {
            segment(
                CLIENT_MAC,
                PORT0_MAC,
                (CIP, 34000),
                (VIP, 80),
                "A",
                64,
                b"z",
            )
        };
        tx(a_dir.process(ack(), 0, 2, true));
        let (id, _) = a_dir.conns().iter().next().unwrap();
        let rec = a_dir.conns().sync_record(id).unwrap();
        let mut one = mh_director(fwd, 0, false);
        let mut burst = mh_director(fwd, 0, false);
        assert!(one.install_synced(&rec, 3).unwrap());
        assert!(burst.install_synced(&rec, 3).unwrap());
        let pkts = (0..3).map(|_| (ack(), 0u16)).collect();
        let want = same_by_burst(&mut one, &mut burst, pkts, 4);
        for v in &want {
            assert_eq!(v.0, 0, "forwarded ({fwd:?})");
            assert_eq!(server_of(&v.2), home);
        }
        assert_eq!(burst.conns().stats().sloppy, 0);
        assert_eq!(burst.conns().len(), 1);
    }
}

/// A director of the FULLNAT service with two workers whose own pool is `own` and that
/// holds `held` for a dead peer (a local LIP, in no pool: as the engine publishes a LIP
/// taken over), neighbours known.
fn fullnat_director(id: usize, own: [u8; 4], held: Option<[u8; 4]>) -> Core<VecBuf> {
    let mut snap = snapshot(FwdMethod::FullNat, 2);
    let mut net = (*snap.net).clone();
    let key = *net.laddrs.keys().next().expect("the service's pool");
    net.local.remove(&Ipv4Addr::from(LIP));
    net.laddrs.insert(key, vec![Ipv4Addr::from(own).into()]);
    net.local.insert(Ipv4Addr::from(own), (LocalKind::Lip, 1));
    if let Some(h) = held {
        net.local.insert(Ipv4Addr::from(h), (LocalKind::Lip, 1));
    }
    snap.net = Arc::new(net);
    let mut c = Core::new(id, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snap);
    for d in 2..=51 {
        c.add_static_neighbour(Ipv4Addr::new(10, 10, 0, d).into(), CLIENT_MAC);
    }
    c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    c
}

#[test]
fn a_held_lip_carries_a_dead_peers_fullnat_sessions_and_opens_none() {
    // Director A (LIP 10.20.0.210) opens FULLNAT sessions and dies; director B (own LIP
    // 10.20.0.200) holds A's LIP. A's synced sessions land on B's worker owning their
    // port (the other worker refuses them), the servers' replies to A's LIP reach that
    // worker and go back to the client as from the VIP, ARP for A's LIP is answered,
    // and B's new sessions use its own LIP only.
    const PEER_LIP: [u8; 4] = [10, 20, 0, 210];
    let mut recs = Vec::new();
    for w in 0..2 {
        let mut a_dir = fullnat_director(w, PEER_LIP, None);
        for cport in 41000..41040u16 {
            if owner_of_client(Ipv4Addr::from([10, 10, 0, (cport % 50) as u8 + 2]), 2) != w {
                continue;
            }
            let client = [10, 10, 0, (cport % 50) as u8 + 2];
            let syn = segment(
                CLIENT_MAC,
                PORT0_MAC,
                (client, cport),
                (VIP, 80),
                "S",
                64,
                b"",
            );
            tx(a_dir.process(syn, 0, 1, true));
            let ack = segment(
                CLIENT_MAC,
                PORT0_MAC,
                (client, cport),
                (VIP, 80),
                "A",
                64,
                b"",
            );
            tx(a_dir.process(ack, 0, 2, true));
        }
        for (id, _) in a_dir.conns().iter() {
            recs.push(a_dir.conns().sync_record(id).unwrap());
        }
    }
    assert!(recs.len() > 20);
    let mut b = [
        fullnat_director(0, LIP, Some(PEER_LIP)),
        fullnat_director(1, LIP, Some(PEER_LIP)),
    ];
    for r in &recs {
        let (lip, lport) = r.local.expect("FULLNAT");
        assert_eq!(lip, a(PEER_LIP));
        let w = crate::steer::sync_owner(r, 2);
        assert_eq!(w, owner_of_port(lport, 2));
        assert!(
            b[w].install_synced(r, 3).unwrap(),
            "installed on its port's owner"
        );
        assert!(
            b[1 - w].install_synced(r, 3).is_err(),
            "never on another worker"
        );
    }
    // Replies from the servers to A's LIP: handed to the port's owner, then sent on.
    let mut replies = Vec::new();
    for r in &recs {
        let (_, lport) = r.local.unwrap();
        let rip: [u8; 4] = r.daddr.0[12..16].try_into().unwrap();
        let mac = if rip == RS1 { RS1_MAC } else { RS2_MAC };
        let reply = segment(
            mac,
            PORT1_MAC,
            (rip, r.dport),
            (PEER_LIP, lport),
            "AP",
            64,
            b"r",
        );
        let w = owner_of_port(lport, 2);
        match b[1 - w].process(reply.clone(), 1, 4, true) {
            Out::Handoff(_, to) => assert_eq!(to as usize, w),
            o => panic!("{o:?}"),
        }
        let (out, port) = tx(b[w].process(reply.clone(), 1, 4, true));
        assert_eq!(port, 0);
        let caddr: [u8; 4] = r.caddr.0[12..16].try_into().unwrap();
        assert_eq!(check(out.data()), (VIP, 80, caddr, r.cport));
        replies.push((w, reply));
    }
    // The burst path does the same.
    for w in 0..2 {
        let mut one = fullnat_director(w, LIP, Some(PEER_LIP));
        let mut burst = fullnat_director(w, LIP, Some(PEER_LIP));
        let pkts: Vec<(VecBuf, u16)> = replies.iter().map(|(_, p)| (p.clone(), 1)).collect();
        for r in recs.iter().filter(|r| crate::steer::sync_owner(r, 2) == w) {
            one.install_synced(r, 3).unwrap();
            burst.install_synced(r, 3).unwrap();
        }
        let want = same_by_burst(&mut one, &mut burst, pkts, 5);
        let mine = replies.iter().filter(|(o, _)| *o == w).count();
        assert_eq!(want.iter().filter(|v| v.0 == 0).count(), mine);
        assert_eq!(
            want.iter().filter(|v| v.0 == 1).count(),
            replies.len() - mine
        );
    }
    // ARP for the held LIP is answered with B's port MAC.
    let req = arp(1, RS1_MAC, RS1, [0; 6], PEER_LIP);
    let (ans, port) = tx(b[0].process(req, 1, 6, false));
    assert_eq!(port, 1);
    assert_eq!(&ans.data()[20..22], &[0, 2], "an ARP reply");
    assert_eq!(&ans.data()[22..28], &PORT1_MAC);
    // New sessions on B: its own LIP, never the held one.
    for cport in 42000..42060u16 {
        let client = [10, 10, 0, (cport % 50) as u8 + 2];
        let w = owner_of_client(Ipv4Addr::from(client), 2);
        let syn = segment(
            CLIENT_MAC,
            PORT0_MAC,
            (client, cport),
            (VIP, 80),
            "S",
            64,
            b"",
        );
        let (out, _) = tx(b[w].process(syn, 0, 7, true));
        assert_eq!(check(out.data()).0, LIP);
    }
}

#[test]
fn in_a_sync_group_a_session_of_no_service_here_is_refused_and_counted() {
    // A record for VIP:443, which this director does not have: a standby installs it as
    // the kernel does (no server bound); a group member refuses it and counts it. The
    // same director's records for VIP:80 are installed either way.
    let mut rec = crate::sync::test_conn(45000);
    rec.vport = 443;
    let mut ok = crate::sync::test_conn(45001);
    ok.dport = 8080;
    for group in [false, true] {
        let mut snap = snapshot(FwdMethod::Masq, 1);
        let mut net = (*snap.net).clone();
        net.sync_group = group;
        snap.net = Arc::new(net);
        let mut c = Core::<VecBuf>::new(0, ConnConfig::new(64), NeighConfig::default());
        c.adopt(snap);
        let r = c.install_synced(&rec, 1);
        if group {
            assert_eq!(r, Err(crate::conn::SyncRefuse::NoService));
        } else {
            assert_eq!(r, Ok(true));
        }
        assert_eq!(c.install_synced(&ok, 1), Ok(true));
        assert_eq!(
            c.install_synced(&ok, 2),
            Ok(false),
            "a duplicate is an update"
        );
        let s = c.sync_counters();
        assert_eq!(
            (s.installed, s.updated, s.refused, s.no_service),
            if group { (1, 1, 1, 1) } else { (2, 1, 0, 0) }
        );
        assert_eq!(c.conns().len(), if group { 1 } else { 2 });
    }
}

// ----- SYN proxy -----

use crate::service::svc_flags as sf;
use etherparse::TcpOptionElement as Opt;

/// A core of one worker with a `fwd` service of flags `svc` and its neighbours known,
/// cookies of a fixed secret.
fn sp_core(fwd: FwdMethod, svc: u32) -> Core<VecBuf> {
    let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    c.set_cookie_secret([0x5eed, 0xc0c0]);
    c.adopt(snapshot_with(fwd, 1, [Tunnel::IPIP; 2], Proto::Tcp, svc));
    c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, false);
    c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, false);
    c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, false);
    c
}

/// The client's SYN options: MSS 1460, SACK, timestamps (TSval 100), window scale 6.
const SP_SYN: [Opt; 5] = [
    Opt::MaximumSegmentSize(1460),
    Opt::SelectiveAcknowledgementPermitted,
    Opt::Timestamp(100, 0),
    Opt::Noop,
    Opt::WindowScale(6),
];

fn ts_opts(val: u32, ecr: u32) -> [Opt; 3] {
    [Opt::Noop, Opt::Noop, Opt::Timestamp(val, ecr)]
}

fn opts_of(h: &etherparse::TcpHeader) -> Vec<Opt> {
    h.options_iterator().map(|o| o.expect("option")).collect()
}

fn ts_of(h: &etherparse::TcpHeader) -> (u32, u32) {
    opts_of(h)
        .into_iter()
        .find_map(|o| match o {
            Opt::Timestamp(v, e) => Some((v, e)),
            _ => None,
        })
        .expect("timestamps")
}

fn client_seg(seq: u32, ack: u32, flags: &str, opts: &[Opt], payload: &[u8]) -> VecBuf {
    seg_ts(
        (CLIENT_MAC, PORT0_MAC),
        (CIP, 40000),
        (VIP, 80),
        seq,
        ack,
        flags,
        opts,
        payload,
    )
}

/// A proxied connection after its handshakes (client ISN 7000, server ISN 50000).
struct Proxied {
    cookie: u32,
    tsval: u32,
    /// The real server's end and its MAC.
    rs: ([u8; 4], u16),
    rs_mac: [u8; 6],
    /// The server's view of the client (the LIP under FULLNAT, the client under NAT).
    peer: ([u8; 4], u16),
}

/// SYN → cookie SYN-ACK; ACK with data → the server's SYN (data held); the server's
/// SYN-ACK → the director's ACK to it, then the held data, translated.
fn sp_handshake(c: &mut Core<VecBuf>, now: u64, shift: u32) -> Proxied {
    let before = c.counters().clone();
    let (p, port) = tx(c.process(client_seg(7000, 0, "S", &SP_SYN, b""), 0, now, false));
    assert_eq!(port, 0, "the SYN-ACK goes back to the client");
    assert_eq!(&p.data()[..6], &CLIENT_MAC);
    assert_eq!(check(p.data()), (VIP, 80, CIP, 40000));
    let (h, _) = tcp_hdr(p.data());
    assert!(h.syn && h.ack && !h.rst);
    assert_eq!(h.acknowledgment_number, 7001);
    let o = opts_of(&h);
    assert!(o.contains(&Opt::MaximumSegmentSize(1460)));
    assert!(o.contains(&Opt::SelectiveAcknowledgementPermitted));
    assert!(o.contains(&Opt::WindowScale(7)));
    let (tsval, ecr) = ts_of(&h);
    assert_eq!(ecr, 100);
    let cookie = h.sequence_number;
    assert_eq!(c.conns().len(), 0, "a SYN creates no session");
    assert_eq!(c.counters().syn_cookies_sent, before.syn_cookies_sent + 1);

    // The ACK, with the request: the server gets the SYN with the client's ISN and
    // options, the request is held until the server's handshake completes.
    let ack = client_seg(7001, cookie + 1, "AP", &ts_opts(101, tsval), b"GET /");
    let (p, port) = tx(c.process(ack, 0, now, false));
    assert_eq!(port, 1);
    let (src, sport, dst, dport) = check(p.data());
    let (h, payload) = tcp_hdr(p.data());
    assert!(h.syn && !h.ack);
    assert_eq!(h.sequence_number, 7000);
    assert!(payload.is_empty());
    let o = opts_of(&h);
    assert!(o.contains(&Opt::MaximumSegmentSize(1460)));
    assert!(o.contains(&Opt::SelectiveAcknowledgementPermitted));
    assert!(o.contains(&Opt::WindowScale(6)));
    assert!(o.contains(&Opt::Timestamp(101, 0)));
    assert_eq!(c.conns().len(), 1);
    assert_eq!(
        c.counters().syn_proxy_sessions,
        before.syn_proxy_sessions + 1
    );
    assert_eq!(
        c.counters().drops_of(DropReason::SynProxySetup),
        before.drops_of(DropReason::SynProxySetup)
    );
    assert_eq!(c.counters().syn_proxy_held, before.syn_proxy_held + 1);
    assert_eq!(
        c.take_released().count(),
        0,
        "nothing sent before the server answers"
    );
    let rs_mac = if dst == RS1 { RS1_MAC } else { RS2_MAC };

    // The server's SYN-ACK: the director's ACK goes back to it.
    let synack = seg_ts(
        (rs_mac, PORT1_MAC),
        (dst, dport),
        (src, sport),
        50000,
        7001,
        "SA",
        &[
            Opt::MaximumSegmentSize(1400),
            Opt::SelectiveAcknowledgementPermitted,
            Opt::Timestamp(9000, 101),
            Opt::Noop,
            Opt::WindowScale(7),
        ],
        b"",
    );
    let (p, port) = tx(c.process(synack, 1, now, false));
    assert_eq!(port, 1);
    assert_eq!(&p.data()[..6], &rs_mac);
    assert_eq!(check(p.data()), (src, sport, dst, dport));
    let (h, _) = tcp_hdr(p.data());
    assert!(h.ack && !h.syn);
    assert_eq!(
        (h.sequence_number, h.acknowledgment_number),
        (7001 + shift, 50001)
    );
    assert_eq!(ts_of(&h), (101, 9000));
    assert_eq!(
        c.counters().syn_proxy_established,
        before.syn_proxy_established + 1
    );
    // Right after the ACK: the held request, byte-exact, in the server's sequence
    // space and clock (and shifted by a PROXY header when there is one).
    let released: Vec<_> = c.take_released().collect();
    assert_eq!(released.len(), 1, "the held request");
    let (p, port) = &released[0];
    assert_eq!(*port, 1);
    assert_eq!(&p.data()[..6], &rs_mac);
    assert_eq!(check(p.data()), (src, sport, dst, dport));
    let (h, payload) = tcp_hdr(p.data());
    assert!(h.ack && h.psh && !h.syn);
    assert_eq!(
        (h.sequence_number, h.acknowledgment_number),
        (7001 + shift, 50001)
    );
    assert_eq!(ts_of(&h), (101, 9000));
    assert_eq!(payload, b"GET /");
    assert_eq!(
        c.counters().syn_proxy_held_sent,
        before.syn_proxy_held_sent + 1
    );
    Proxied {
        cookie,
        tsval,
        rs: (dst, dport),
        rs_mac,
        peer: (src, sport),
    }
}

/// A server segment of a proxied connection.
fn server_seg(p: &Proxied, seq: u32, ack: u32, flags: &str, opts: &[Opt], data: &[u8]) -> VecBuf {
    seg_ts(
        (p.rs_mac, PORT1_MAC),
        p.rs,
        p.peer,
        seq,
        ack,
        flags,
        opts,
        data,
    )
}

#[test]
fn a_proxied_connection_is_translated_both_ways_in_nat_and_fullnat() {
    for fwd in [FwdMethod::Masq, FwdMethod::FullNat] {
        let mut c = sp_core(fwd, sf::SYNPROXY);
        let px = sp_handshake(&mut c, 1000, 0);
        // The client sends its request again: the server sees its own sequence space
        // and clock.
        let req = client_seg(7001, px.cookie + 1, "AP", &ts_opts(102, px.tsval), b"GET /");
        let (p, port) = tx(c.process(req, 0, 1300, false));
        assert_eq!(port, 1);
        let (h, payload) = tcp_hdr(p.data());
        assert_eq!((h.sequence_number, h.acknowledgment_number), (7001, 50001));
        assert_eq!(ts_of(&h), (102, 9000));
        assert_eq!(payload, b"GET /");
        // The answer: the client sees the cookie's space and the director's clock.
        let ans = server_seg(&px, 50001, 7006, "AP", &ts_opts(9005, 102), b"200 OK");
        let (p, port) = tx(c.process(ans, 1, 1300, false));
        assert_eq!(port, 0);
        assert_eq!(check(p.data()), (VIP, 80, CIP, 40000));
        let (h, _) = tcp_hdr(p.data());
        assert_eq!(
            (h.sequence_number, h.acknowledgment_number),
            (px.cookie + 1, 7006)
        );
        assert_eq!(ts_of(&h), (px.tsval + 5, 102));
        // SACK edges of the client's ACK are in the server's space once forwarded.
        let sack = [
            Opt::Noop,
            Opt::Noop,
            Opt::Timestamp(103, px.tsval + 5),
            Opt::Noop,
            Opt::Noop,
            Opt::SelectiveAcknowledgement((px.cookie + 101, px.cookie + 201), [None; 3]),
        ];
        let ack = client_seg(7006, px.cookie + 7, "A", &sack, b"");
        let (p, _) = tx(c.process(ack, 0, 1300, false));
        let (h, _) = tcp_hdr(p.data());
        assert_eq!(h.acknowledgment_number, 50007);
        assert!(opts_of(&h).contains(&Opt::SelectiveAcknowledgement((50101, 50201), [None; 3])));
        assert!(opts_of(&h).contains(&Opt::Timestamp(103, 9005)));
        assert_eq!(c.conns().len(), 1);
    }
}

#[test]
fn established_proxied_packets_take_the_fast_path_with_the_same_effects() {
    for fwd in [FwdMethod::Masq, FwdMethod::FullNat] {
        let mut one = sp_core(fwd, sf::SYNPROXY);
        let mut burst = sp_core(fwd, sf::SYNPROXY);
        let px = sp_handshake(&mut one, 1000, 0);
        let tw = sp_handshake(&mut burst, 1000, 0);
        assert_eq!((px.cookie, px.rs, px.peer), (tw.cookie, tw.rs, tw.peer));
        let mut pkts = Vec::new();
        for k in 0..20u32 {
            pkts.push((
                client_seg(
                    7001 + 10 * k,
                    px.cookie + 1 + 100 * k,
                    "AP",
                    &ts_opts(200 + k, px.tsval + k),
                    b"0123456789",
                ),
                0,
            ));
            pkts.push((
                server_seg(
                    &px,
                    50001 + 100 * k,
                    7011 + 10 * k,
                    "A",
                    &ts_opts(9000 + k, 200 + k),
                    &[b'x'; 100],
                ),
                1,
            ));
        }
        let want = same_by_burst(&mut one, &mut burst, pkts, 1500);
        assert!(want.iter().all(|v| v.0 == 0), "all forwarded");
        assert_eq!(one.counters(), burst.counters());
        // The translated numbers, from the burst's output.
        let (h, _) = tcp_hdr(&want[1].2);
        assert_eq!(h.sequence_number, px.cookie + 1);
        let (h, _) = tcp_hdr(&want[0].2);
        assert_eq!(h.acknowledgment_number, 50001);
    }
}

#[test]
fn flood_of_acks_syn_acks_and_resets_creates_nothing() {
    let mut c = sp_core(FwdMethod::FullNat, sf::SYNPROXY);
    let mut x = 0x9e37_79b9u32;
    let mut next = || {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        x
    };
    for i in 0..3000u32 {
        let src = [10, 10, (next() >> 24) as u8 | 1, 2 + (i % 200) as u8];
        let flags = ["A", "SA", "R"][(i % 3) as usize];
        let p = seg_ts(
            (CLIENT_MAC, PORT0_MAC),
            (src, 1024 + (next() >> 20) as u16),
            (VIP, 80),
            next(),
            next(),
            flags,
            &[],
            b"",
        );
        let out = c.process(p, 0, 1000, false);
        assert!(matches!(out, Out::Drop(..)), "{flags} dropped");
    }
    assert_eq!(c.conns().len(), 0);
    assert_eq!(c.counters().drops_of(DropReason::SynProxyBadCookie), 1000);
    assert_eq!(c.counters().drops_of(DropReason::NoSession), 2000);
    assert_eq!(c.counters().syn_proxy_sessions, 0);
}

/// Recomputes the IPv4 and TCP checksums of a frame whose bytes a test changed (RFC
/// 1071, written here: not the code under test).
fn fix_checksums(f: &mut [u8]) {
    fn sum(b: &[u8], mut acc: u32) -> u32 {
        for w in b.chunks(2) {
            acc += u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0));
        }
        acc
    }
    fn fold(mut acc: u32) -> u16 {
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }
    f[24..26].copy_from_slice(&[0, 0]);
    let c = fold(sum(&f[14..34], 0));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let tl = usize::from(u16::from_be_bytes([f[16], f[17]]));
    f[50..52].copy_from_slice(&[0, 0]);
    let mut ph = Vec::new();
    ph.extend_from_slice(&f[26..34]);
    ph.extend_from_slice(&[0, 6]);
    ph.extend_from_slice(&((tl - 20) as u16).to_be_bytes());
    let c = fold(sum(&f[34..14 + tl], sum(&ph, 0)));
    f[50..52].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn syns_with_absurd_options_are_clamped_or_dropped_never_a_session() {
    let mut c = sp_core(FwdMethod::Masq, sf::SYNPROXY);
    // MSS 0 and window scale 255: answered with the smallest MSS and the options noted.
    let syn = client_seg(
        1,
        0,
        "S",
        &[
            Opt::MaximumSegmentSize(0),
            Opt::Timestamp(5, 0),
            Opt::WindowScale(255),
            Opt::Noop,
        ],
        b"",
    );
    let (p, _) = tx(c.process(syn, 0, 0, false));
    let (h, _) = tcp_hdr(p.data());
    assert!(opts_of(&h).contains(&Opt::MaximumSegmentSize(536)));
    assert_eq!(c.counters().syn_options_clamped, 1);
    // An option whose length runs past the header, and one of length 1.
    for bad in [[8u8, 40, 1, 1], [3, 1, 1, 1]] {
        let noops = [Opt::Noop, Opt::Noop, Opt::Noop, Opt::Noop];
        let mut f = client_seg(1, 0, "S", &noops, b"").data().to_vec();
        f[54..58].copy_from_slice(&bad);
        fix_checksums(&mut f);
        let out = c.process(VecBuf::new(64, &f), 0, 0, false);
        assert!(matches!(out, Out::Drop(_, DropReason::SynProxyBadOptions)));
    }
    assert_eq!(c.counters().drops_of(DropReason::SynProxyBadOptions), 2);
    assert_eq!(c.conns().len(), 0);
}

#[test]
fn a_server_reset_reaches_the_client_in_the_cookies_space() {
    let mut c = sp_core(FwdMethod::FullNat, sf::SYNPROXY);
    let (p, _) = tx(c.process(client_seg(7000, 0, "S", &SP_SYN, b""), 0, 0, false));
    let (h, _) = tcp_hdr(p.data());
    let (cookie, tsval) = (h.sequence_number, ts_of(&h).0);
    let (p, _) = tx(c.process(
        client_seg(7001, cookie + 1, "A", &ts_opts(101, tsval), b""),
        0,
        0,
        false,
    ));
    let (src, sport, dst, dport) = check(p.data());
    let rs_mac = if dst == RS1 { RS1_MAC } else { RS2_MAC };
    let rst = seg_ts(
        (rs_mac, PORT1_MAC),
        (dst, dport),
        (src, sport),
        0,
        7001,
        "RA",
        &[],
        b"",
    );
    let (p, port) = tx(c.process(rst, 1, 10, false));
    assert_eq!(port, 0);
    assert_eq!(check(p.data()), (VIP, 80, CIP, 40000));
    let (h, _) = tcp_hdr(p.data());
    assert!(h.rst && !h.ack);
    assert_eq!(h.sequence_number, cookie + 1);
    assert_eq!(c.counters().syn_proxy_refused, 1);
}

/// A SYN-proxied connection up to the server's SYN: the SYN's cookie SYN-ACK and the
/// ACK (with `data`) that opens the session. Returns the cookie, the director's TSval
/// and the SYN the server got.
fn sp_open(c: &mut Core<VecBuf>, cport: u16, data: &[u8], now: u64) -> (u32, u32, VecBuf) {
    let syn = seg_ts(
        (CLIENT_MAC, PORT0_MAC),
        (CIP, cport),
        (VIP, 80),
        7000,
        0,
        "S",
        &SP_SYN,
        b"",
    );
    let (p, _) = tx(c.process(syn, 0, now, false));
    let (h, _) = tcp_hdr(p.data());
    let (cookie, tsval) = (h.sequence_number, ts_of(&h).0);
    let flags = if data.is_empty() { "A" } else { "AP" };
    let ack = seg_ts(
        (CLIENT_MAC, PORT0_MAC),
        (CIP, cport),
        (VIP, 80),
        7001,
        cookie + 1,
        flags,
        &ts_opts(101, tsval),
        data,
    );
    let (p, port) = tx(c.process(ack, 0, now, false));
    assert_eq!(port, 1);
    assert!(tcp_hdr(p.data()).0.syn);
    (cookie, tsval, p)
}

#[test]
fn a_server_that_never_answers_gets_syns_at_one_and_three_seconds_then_the_client_a_reset() {
    let mut c = sp_core(FwdMethod::Masq, sf::SYNPROXY);
    let (cookie, tsval, _) = sp_open(&mut c, 40000, b"GET /", 0);
    assert_eq!(c.counters().syn_proxy_held, 1);
    let data = |t: u32| client_seg(7001, cookie + 1, "AP", &ts_opts(102 + t, tsval), b"GET /");
    // The client's retransmission of the held data: one is held already, dropped.
    assert!(matches!(
        c.process(data(0), 0, 500, false),
        Out::Drop(_, DropReason::SynProxySetup)
    ));
    assert_eq!(c.counters().syn_proxy_held_full, 1);
    let mut drop_held = |_p: VecBuf| {};
    // The clock alone (the core's tick, every 10 ms): SYNs at 1 s and 3 s.
    let mut syns = Vec::new();
    let mut resets = Vec::new();
    for t in (10..=8000u64).step_by(10) {
        c.tick(t, &mut drop_held);
        for (p, port) in c.take_released() {
            let (h, _) = tcp_hdr(p.data());
            if h.syn {
                assert_eq!(port, 1);
                assert_eq!(h.sequence_number, 7000, "the client's ISN");
                assert!(opts_of(&h).contains(&Opt::MaximumSegmentSize(1460)));
                assert!(opts_of(&h).contains(&Opt::WindowScale(6)));
                syns.push(t);
            } else {
                assert!(h.rst, "{h:?}");
                assert_eq!(port, 0);
                assert_eq!(&p.data()[..6], &CLIENT_MAC);
                assert_eq!(check(p.data()), (VIP, 80, CIP, 40000));
                assert_eq!(h.sequence_number, cookie + 1);
                resets.push(t);
            }
        }
    }
    assert_eq!(syns, [1000, 3000]);
    assert_eq!(resets, [7000], "the client reset 4 s after the third SYN");
    assert_eq!(c.counters().syn_proxy_retries, 2);
    assert_eq!(c.counters().syn_proxy_timeouts, 1);
    assert_eq!(
        c.counters().syn_proxy_held_freed,
        1,
        "the held request freed"
    );
    assert_eq!(c.counters().syn_proxy_held_sent, 0);
    // The session is closed: a later segment opens nothing and sends no SYN.
    assert!(matches!(c.process(data(1), 0, 8000, false), Out::Drop(..)));
}

#[test]
fn held_data_is_freed_when_the_server_or_the_client_resets() {
    for server in [true, false] {
        let mut c = sp_core(FwdMethod::FullNat, sf::SYNPROXY);
        let (_, _, syn) = sp_open(&mut c, 40000, b"GET /", 0);
        let (src, sport, dst, dport) = check(syn.data());
        let rs_mac = if dst == RS1 { RS1_MAC } else { RS2_MAC };
        if server {
            let rst = seg_ts(
                (rs_mac, PORT1_MAC),
                (dst, dport),
                (src, sport),
                0,
                7001,
                "RA",
                &[],
                b"",
            );
            assert_eq!(tx(c.process(rst, 1, 10, false)).1, 0);
        } else {
            let rst = client_seg(7001, 0, "R", &[], b"");
            assert_eq!(tx(c.process(rst, 0, 10, false)).1, 1);
        }
        assert_eq!(c.counters().syn_proxy_held_freed, 1);
        assert_eq!(c.take_released().count(), 0);
        // Nothing is sent again for it.
        for t in (20..=8000u64).step_by(10) {
            c.tick(t, |_| {});
        }
        assert_eq!(c.take_released().count(), 0);
        assert_eq!(c.counters().syn_proxy_retries, 0);
        assert_eq!(c.counters().syn_proxy_held_freed, 1);
    }
}

#[test]
fn a_data_segment_after_a_bare_ack_is_held_and_sent_after_the_handshake() {
    let mut c = sp_core(FwdMethod::Masq, sf::SYNPROXY);
    let (cookie, tsval, syn) = sp_open(&mut c, 40000, b"", 0);
    assert_eq!(c.counters().syn_proxy_held, 0);
    let req = client_seg(
        7001,
        cookie + 1,
        "AP",
        &ts_opts(102, tsval),
        b"GET /index.html",
    );
    assert!(matches!(c.process(req, 0, 5, false), Out::Held));
    assert_eq!(c.counters().syn_proxy_held, 1);
    let (src, sport, dst, dport) = check(syn.data());
    let rs_mac = if dst == RS1 { RS1_MAC } else { RS2_MAC };
    let synack = seg_ts(
        (rs_mac, PORT1_MAC),
        (dst, dport),
        (src, sport),
        90000,
        7001,
        "SA",
        &[Opt::MaximumSegmentSize(1400), Opt::Timestamp(555, 101)],
        b"",
    );
    let (ack, _) = tx(c.process(synack, 1, 10, false));
    assert_eq!(tcp_hdr(ack.data()).0.acknowledgment_number, 90001);
    let released: Vec<_> = c.take_released().collect();
    assert_eq!(released.len(), 1);
    let (p, port) = &released[0];
    assert_eq!(*port, 1);
    assert_eq!(check(p.data()), (src, sport, dst, dport));
    let (h, payload) = tcp_hdr(p.data());
    assert_eq!((h.sequence_number, h.acknowledgment_number), (7001, 90001));
    assert_eq!(ts_of(&h), (102, 555));
    assert_eq!(payload, b"GET /index.html");
    assert_eq!(c.counters().syn_proxy_held_sent, 1);
    // No SYN is sent again once the server answered.
    for t in (20..=8000u64).step_by(10) {
        c.tick(t, |_| {});
    }
    assert_eq!(c.take_released().count(), 0);
    assert_eq!(c.counters().syn_proxy_retries, 0);
}

#[test]
fn held_segments_are_bounded_per_worker_the_excess_dropped_and_counted() {
    let mut c = Core::new(0, ConnConfig::new(8192), NeighConfig::default());
    c.set_cookie_secret([0x5eed, 0xc0c0]);
    c.adopt(snapshot_with(
        FwdMethod::Masq,
        1,
        [Tunnel::IPIP; 2],
        Proto::Tcp,
        sf::SYNPROXY,
    ));
    c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, false);
    c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, false);
    c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, false);
    let n = SYN_PROXY_HELD_MAX as u16 + 3;
    for k in 0..n {
        sp_open(&mut c, 20000 + k, b"hello", 0);
    }
    assert_eq!(c.conns().len(), u32::from(n), "every session opened");
    assert_eq!(c.counters().syn_proxy_held, SYN_PROXY_HELD_MAX as u64);
    assert_eq!(c.counters().syn_proxy_held_full, 3);
    assert_eq!(c.counters().drops_of(DropReason::SynProxySetup), 3);
    // Sessions without a kept copy still get their SYN again when the client sends
    // again after a second; the others from the timer.
    let last = seg_ts(
        (CLIENT_MAC, PORT0_MAC),
        (CIP, 20000 + n - 1),
        (VIP, 80),
        7001,
        0,
        "A",
        &[],
        b"",
    );
    let (p, port) = tx(c.process(last, 0, 1000, false));
    assert_eq!(port, 1);
    assert!(tcp_hdr(p.data()).0.syn);
    let mut retried = 0;
    for t in (1000..=1500u64).step_by(10) {
        c.tick(t, |_| {});
        retried += c.take_released().count();
    }
    assert_eq!(retried, SYN_PROXY_HELD_MAX, "64 sessions a tick");
    assert_eq!(
        c.counters().syn_proxy_retries,
        SYN_PROXY_HELD_MAX as u64 + 1
    );
}

#[test]
fn auto_proxies_only_under_pressure() {
    let mut c = sp_core(FwdMethod::Masq, sf::SYNPROXY_AUTO);
    c.set_syn_proxy_thresholds(5, 90);
    let mut to_server = 0;
    let mut cookies = 0;
    for port in 0..20u16 {
        let syn = seg_ts(
            (CLIENT_MAC, PORT0_MAC),
            (CIP, 30000 + port),
            (VIP, 80),
            1,
            0,
            "S",
            &SP_SYN,
            b"",
        );
        match tx(c.process(syn, 0, 1000, false)) {
            (_, 1) => to_server += 1,
            (_, 0) => cookies += 1,
            _ => unreachable!(),
        }
    }
    assert_eq!((to_server, cookies), (5, 15));
    assert_eq!(c.conns().len(), 5);
    // Two seconds later the pressure is gone: a SYN opens a session again.
    let syn = client_seg(1, 0, "S", &SP_SYN, b"");
    assert_eq!(tx(c.process(syn, 0, 3000, false)).1, 1);
}

#[test]
fn proxy_protocol_composes_with_the_syn_proxy() {
    let mut c = sp_core(FwdMethod::FullNat, sf::SYNPROXY | sf::PROXY_V2);
    let px = sp_handshake(&mut c, 1000, 28);
    // After the director's ACK, the header segment with the client's first sequence
    // number; the ACK itself is shifted.
    let (port, len) = c.take_generated().expect("the PROXY header");
    assert_eq!(port, 1);
    let g = c.scratch()[..len].to_vec();
    let (gh, gp) = tcp_hdr(&g);
    assert_eq!(
        (gh.sequence_number, gh.acknowledgment_number),
        (7001, 50001)
    );
    assert_eq!(gp, v2_expected());
    // The request: shifted by the header and translated.
    let req = client_seg(7001, px.cookie + 1, "AP", &ts_opts(102, px.tsval), b"GET /");
    let (p, _) = tx(c.process(req, 0, 1300, false));
    let (h, _) = tcp_hdr(p.data());
    assert_eq!(
        (h.sequence_number, h.acknowledgment_number),
        (7001 + 28, 50001)
    );
    // The answer acknowledges header and request: the client sees its request acked,
    // in the cookie's space.
    let ans = server_seg(&px, 50001, 7001 + 28 + 5, "AP", &ts_opts(9001, 102), b"200");
    let (p, _) = tx(c.process(ans, 1, 1300, false));
    let (h, _) = tcp_hdr(p.data());
    assert_eq!(
        (h.sequence_number, h.acknowledgment_number),
        (px.cookie + 1, 7006)
    );
}

#[test]
fn a_standby_keeps_translating_a_synced_proxied_session() {
    use crate::sync::wire::{decode, MessageBuilder, Record};
    for fwd in [FwdMethod::Masq, FwdMethod::FullNat] {
        let mut c = sp_core(fwd, sf::SYNPROXY);
        let px = sp_handshake(&mut c, 0, 0);
        let (id, _) = c.conns().iter().next().unwrap();
        let rec = c.conns().sync_record(id).unwrap();
        assert_ne!(rec.flags & 0x0200, 0, "IP_VS_CONN_F_OUT_SEQ");
        let (_, delta, ts_delta) = rec.out_seq.expect("out_seq");
        assert_eq!(delta, px.cookie.wrapping_sub(50000));
        assert_eq!(ts_delta, px.tsval.wrapping_sub(9000));
        // Through the wire format: the kernel's IPVS_OPT_SEQ_DATA.
        let mut m = MessageBuilder::new(1, 1500);
        assert!(m.push(&rec));
        let mut recs = Vec::new();
        decode(m.bytes(), &mut recs).unwrap();
        let Record::Conn(got) = recs[0] else {
            panic!("{recs:?}")
        };
        assert_eq!(got.out_seq, rec.out_seq);
        // The standby (its own cookie secret) takes over: both directions translated.
        let mut standby = sp_core(fwd, sf::SYNPROXY);
        standby.set_cookie_secret([9, 9]);
        let mut est = got;
        est.state = crate::conn::TcpState::Established as u16;
        assert!(standby.install_synced(&est, 0).unwrap());
        let req = client_seg(7001, px.cookie + 1, "AP", &ts_opts(150, px.tsval), b"GET /");
        let mut out = Vec::new();
        standby.process_burst(
            [req],
            10,
            true,
            |_| 0,
            |e| {
                if let Emit::Packet(o) = e {
                    out.push(tx(o).0)
                }
            },
        );
        let (h, _) = tcp_hdr(out[0].data());
        assert_eq!(h.acknowledgment_number, 50001);
        assert_eq!(ts_of(&h), (150, 9000));
        let ans = server_seg(&px, 50001, 7006, "AP", &ts_opts(9010, 150), b"200");
        let (p, _) = tx(standby.process(ans, 1, 10, false));
        let (h, _) = tcp_hdr(p.data());
        assert_eq!(h.sequence_number, px.cookie + 1);
        assert_eq!(ts_of(&h), (px.tsval + 10, 150));
    }
}

#[test]
fn sloppy_tcp_opens_no_session_for_a_syn_proxied_service_without_a_valid_cookie() {
    for svc in [sf::SYNPROXY, sf::SYNPROXY_AUTO] {
        let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
        c.set_cookie_secret([0x5eed, 0xc0c0]);
        let mut snap = snapshot_with(FwdMethod::Masq, 1, [Tunnel::IPIP; 2], Proto::Tcp, svc);
        Arc::make_mut(&mut snap.net).sloppy_tcp = true;
        c.adopt(snap);
        c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, false);
        c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, false);
        c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, false);
        // A mid-flow segment (another director's connection, or a forged one): its
        // acknowledgement is no cookie of this director's, so it opens nothing.
        for (k, flags) in ["A", "AP"].into_iter().enumerate() {
            let seg = client_seg(7001 + k as u32, 123_456, flags, &ts_opts(5, 6), b"data");
            assert!(matches!(
                c.process(seg, 0, 10, false),
                Out::Drop(_, DropReason::SynProxyBadCookie)
            ));
        }
        assert_eq!(c.conns().len(), 0);
        assert_eq!(c.conns().stats().sloppy, 0);
        // With a valid cookie it opens the proxied session, as without sloppy_tcp.
        if svc == sf::SYNPROXY {
            sp_open(&mut c, 40001, b"", 20);
            assert_eq!(c.conns().len(), 1);
            assert_eq!(c.conns().stats().sloppy, 0);
        }
    }
}

#[test]
fn while_overloaded_syns_to_a_proxied_service_are_shed_and_established_packets_served() {
    let mut c = sp_core(FwdMethod::Masq, sf::SYNPROXY);
    let px = sp_handshake(&mut c, 1000, 0);
    c.set_overloaded(true);
    let before = c.counters().clone();
    for k in 0..100u16 {
        let syn = seg_ts(
            (CLIENT_MAC, PORT0_MAC),
            ([10, 9, (k >> 8) as u8, k as u8], 1024 + k),
            (VIP, 80),
            u32::from(k),
            0,
            "S",
            &SP_SYN,
            b"",
        );
        assert!(matches!(
            c.process(syn, 0, 1100, false),
            Out::Drop(_, DropReason::SynShed)
        ));
    }
    assert_eq!(c.counters().drops_of(DropReason::SynShed), 100);
    assert_eq!(
        c.counters().syn_cookies_sent,
        before.syn_cookies_sent,
        "no cookie made"
    );
    // The established connection goes on, both ways, translated.
    let req = client_seg(7006, px.cookie + 1, "AP", &ts_opts(110, px.tsval), b"more");
    let (p, port) = tx(c.process(req, 0, 1100, false));
    assert_eq!(port, 1);
    assert_eq!(tcp_hdr(p.data()).0.acknowledgment_number, 50001);
    let ans = server_seg(&px, 50001, 7010, "A", &ts_opts(9010, 110), b"ok");
    let (p, port) = tx(c.process(ans, 1, 1100, false));
    assert_eq!(port, 0);
    assert_eq!(tcp_hdr(p.data()).0.sequence_number, px.cookie + 1);
    // The overload over: cookies again.
    c.set_overloaded(false);
    let syn = seg_ts(
        (CLIENT_MAC, PORT0_MAC),
        (CIP, 40002),
        (VIP, 80),
        1,
        0,
        "S",
        &SP_SYN,
        b"",
    );
    let (p, port) = tx(c.process(syn, 0, 1200, false));
    assert_eq!(port, 0);
    assert!(tcp_hdr(p.data()).0.syn);
    assert_eq!(c.counters().syn_cookies_sent, before.syn_cookies_sent + 1);
    // A service without the proxy is not shed: its SYN opens a session as before.
    let mut plain = sp_core(FwdMethod::Masq, 0);
    plain.set_overloaded(true);
    let syn = client_seg(1, 0, "S", &SP_SYN, b"");
    assert_eq!(tx(plain.process(syn, 0, 0, false)).1, 1);
    assert_eq!(plain.conns().len(), 1);
}

#[test]
fn an_overloaded_burst_sheds_the_same_syns_as_the_general_path_and_forwards_the_rest() {
    let mut one = sp_core(FwdMethod::Masq, sf::SYNPROXY);
    let mut burst = sp_core(FwdMethod::Masq, sf::SYNPROXY);
    let px = sp_handshake(&mut one, 1000, 0);
    sp_handshake(&mut burst, 1000, 0);
    one.set_overloaded(true);
    burst.set_overloaded(true);
    let mut pkts = Vec::new();
    for k in 0..40u32 {
        let syn = seg_ts(
            (CLIENT_MAC, PORT0_MAC),
            ([10, 9, 0, k as u8], 2000 + k as u16),
            (VIP, 80),
            k,
            0,
            "S",
            &SP_SYN,
            b"",
        );
        pkts.push((syn, 0u16));
        let seg = client_seg(
            7001 + 10 * k,
            px.cookie + 1,
            "AP",
            &ts_opts(200 + k, px.tsval),
            b"0123456789",
        );
        pkts.push((seg, 0));
    }
    let mut want: Vec<_> = pkts
        .iter()
        .map(|(p, port)| verdict(one.process(p.clone(), *port, 1100, true)))
        .collect();
    let mut got = Vec::new();
    burst.process_burst(
        pkts.into_iter().map(|(p, _)| p),
        1100,
        true,
        |_| 0,
        |e| {
            if let Emit::Packet(out) = e {
                got.push(verdict(out))
            }
        },
    );
    // Shed SYNs leave the burst at its first stage, ahead of the packets in flight.
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(one.counters(), burst.counters());
    assert_eq!(burst.counters().drops_of(DropReason::SynShed), 40);
    assert_eq!(burst.counters().in_packets, one.counters().in_packets);
    assert!(
        burst.counters().in_packets >= 40,
        "the established segments forwarded"
    );
}

#[test]
fn a_fragmented_segment_to_a_proxied_service_opens_nothing() {
    // A SYN with 400 bytes of data cut into two IPv4 fragments: the first (with the TCP
    // header) is neither answered with a cookie nor passed on; no session.
    let mut c = sp_core(FwdMethod::Masq, sf::SYNPROXY);
    let whole = client_seg(7000, 0, "S", &SP_SYN, &[0x42; 400])
        .data()
        .to_vec();
    let ip = &whole[14..];
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let cut = 200usize;
    let mut first = whole[..14 + hl + cut].to_vec();
    {
        let h = &mut first[14..14 + hl];
        h[2..4].copy_from_slice(&((hl + cut) as u16).to_be_bytes());
        h[6..8].copy_from_slice(&0x2000u16.to_be_bytes()); // MF, offset 0
        h[10..12].fill(0);
        let sum = !crate::wire::checksum::data(h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    let out = c.process(VecBuf::new(64, &first), 0, 1000, false);
    assert!(
        matches!(
            out,
            Out::Drop(_, DropReason::Malformed(wire::Error::Fragment))
        ),
        "{out:?}"
    );
    assert!(c.take_generated().is_none(), "no cookie SYN-ACK");
    assert_eq!(c.conns().len(), 0);
}

/// Mark 1 on TCP to VIP:80 (arriving on `in_port`, any port without).
fn vip80_marked(in_port: Option<u16>) -> crate::mark::MarkRules {
    use crate::mark::{MarkRule, MarkRules, Prefix4};
    MarkRules::new(vec![MarkRule {
        proto: Some(Proto::Tcp),
        dst: Prefix4::new(Ipv4Addr::from(VIP), 32),
        dports: vec![(80, 80)],
        in_port,
        ..MarkRule::new(1)
    }])
}

/// A FULLNAT firewall-mark service (`-f 1` with `-P` local addresses): a marked SYN gets a
/// session from the fwmark service's LIP pool; a standby installing the session reserves
/// its port there; the port returns to that pool when the session expires.
#[test]
fn a_fullnat_fwmark_service_takes_its_local_addresses_from_its_own_pool() {
    let fwm = ServiceKey::Fwmark { v6: false, mark: 1 };
    let director = || {
        let mut t = ServiceTable::new();
        t.add_service(ServiceConfig::new(fwm, SchedKind::Rr))
            .expect("fwmark service");
        t.add_dest(&fwm, DestConfig::new(a(RS1), 0, FwdMethod::FullNat))
            .expect("rs");
        let mut snap = snapshot(FwdMethod::FullNat, 1);
        let mut net = (*snap.net).clone();
        net.marks = vip80_marked(None);
        net.laddrs = [(fwm, vec![Ipv4Addr::from(LIP).into()])]
            .into_iter()
            .collect();
        snap.net = Arc::new(net);
        snap.services = t.snapshot();
        let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
        c.adopt(snap);
        c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
        c
    };
    let in_use = |c: &Core<VecBuf>| {
        let (k, pool) = c.laddr_pools().next().expect("the pool");
        assert_eq!(*k, fwm);
        pool.in_use_of(Ipv4Addr::from(LIP).into())
    };
    let (mut c, mut standby) = (director(), director());
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
    let (p, port) = tx(c.process(syn, 0, 1, true));
    assert_eq!(port, 1);
    let (lip, _, rs, rport) = check(p.data());
    assert_eq!((lip, rs, rport), (LIP, RS1, 80));
    assert_eq!(in_use(&c), 1);
    let (id, _) = c.conns().iter().next().expect("the session");
    let rec = c.conns().sync_record(id).expect("its record");
    assert!(standby.install_synced(&rec, 1).expect("installed"));
    assert_eq!(in_use(&standby), 1, "the standby reserved the port");
    // The session expires: its port goes back to the fwmark service's pool.
    c.tick(3_600_000, |_| {});
    assert_eq!(c.conns().len(), 0);
    assert_eq!(in_use(&c), 0, "the port returned");
}

/// A FULLNAT fwmark service without local addresses opens no session, even where the
/// address service of the same VIP and port has some: a service's LIPs are its own.
#[test]
fn a_fullnat_fwmark_service_without_local_addresses_does_not_take_anothers() {
    let fwm = ServiceKey::Fwmark { v6: false, mark: 1 };
    let mut snap = snapshot(FwdMethod::FullNat, 1);
    let mut t = ServiceTable::new();
    let addr_key = *snap
        .net
        .laddrs
        .keys()
        .next()
        .expect("the address service's pool");
    t.add_service(ServiceConfig::new(addr_key, SchedKind::Rr))
        .expect("address service");
    t.add_dest(&addr_key, DestConfig::new(a(RS2), 80, FwdMethod::FullNat))
        .expect("rs2");
    t.add_service(ServiceConfig::new(fwm, SchedKind::Rr))
        .expect("fwmark service");
    t.add_dest(&fwm, DestConfig::new(a(RS1), 0, FwdMethod::FullNat))
        .expect("rs1");
    let mut net = (*snap.net).clone();
    net.marks = vip80_marked(Some(0));
    snap.net = Arc::new(net);
    snap.services = t.snapshot();
    let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snap);
    c.add_static_neighbour(Ipv4Addr::from(RS1).into(), RS1_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS2).into(), RS2_MAC);
    // Marked (from port 0): the fwmark service, which has no pool.
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
    match c.process(syn, 0, 1, true) {
        Out::Drop(_, DropReason::NoLocalAddr) => {}
        o => panic!("expected a no-local-addr drop, got {o:?}"),
    }
    assert_eq!(c.conns().len(), 0);
    // Unmarked (another port): the address service, with its own pool.
    let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40001, VIP, 80, true, false);
    let (p, _) = tx(c.process(syn, 1, 2, true));
    assert_eq!(check(p.data()).2, RS2);
}

/// The client's, RS1's and RS2's addresses learned by `c` (ARP), as the equivalence
/// tests start.
fn learn_neighbours(c: &mut Core<VecBuf>) {
    c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, false);
    c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, false);
    c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, false);
}

#[test]
fn syns_of_new_flows_take_the_syn_lane_and_open_what_the_general_path_opens() {
    // 40 SYNs of new flows in one burst, in every mode: the burst core opens them in
    // the SYN lane (it never asks a packet's port: only the general path does), with
    // the same frames out (FULLNAT's local addresses and ports too), sessions and
    // counters as a core that takes them packet by packet.
    for (fwd, tunnels) in modes() {
        let mut one = core_tun(fwd, tunnels, 0, 1);
        let mut burst = core_tun(fwd, tunnels, 0, 1);
        learn_neighbours(&mut one);
        learn_neighbours(&mut burst);
        let syns: Vec<VecBuf> = (0..40u16)
            .map(|i| tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000 + i, VIP, 80, true, false))
            .collect();
        let want: Vec<_> = syns
            .iter()
            .map(|p| verdict(one.process(p.clone(), 0, 3, true)))
            .collect();
        let (got, asked) = burst_asking_ports(&mut burst, syns, 3);
        assert_eq!(asked, 0, "{fwd:?}: every SYN in the lane");
        assert_eq!(got, want, "{fwd:?}");
        assert!(got.iter().all(|v| v.0 == 0), "{fwd:?}: all forwarded");
        assert_eq!(one.counters(), burst.counters(), "{fwd:?}");
        assert_eq!(burst.conns().len(), 40);
        assert_eq!(burst.counters().conns, 40);
        assert_eq!(sessions_of(&one), sessions_of(&burst), "{fwd:?}");
    }
}

#[test]
fn the_syn_lane_leaves_every_other_syn_to_the_general_path() {
    // SYNs the lane must not open, mixed with ones it opens, in one burst: a wrong TCP
    // checksum, a TTL of 1, SYN with ACK and with FIN, a martian source, a DIP as the
    // destination, a second SYN of an open flow; each gets the general path's verdict.
    for fwd in [FwdMethod::FullNat, FwdMethod::Masq, FwdMethod::Tunnel] {
        let mut one = core(fwd, 0, 1);
        let mut burst = core(fwd, 0, 1);
        learn_neighbours(&mut one);
        learn_neighbours(&mut burst);
        let seg = |s: [u8; 4], sp: u16, d: [u8; 4], flags: &str, ttl: u8| {
            (
                segment(CLIENT_MAC, PORT0_MAC, (s, sp), (d, 80), flags, ttl, b""),
                0u16,
            )
        };
        let mut bad_sum = seg(CIP, 41001, VIP, "S", 64);
        bad_sum.0.data_mut()[14 + 20 + 16] ^= 0x5a;
        let pkts = vec![
            seg(CIP, 41000, VIP, "S", 64),
            bad_sum,
            seg(CIP, 41002, VIP, "S", 1),
            seg(CIP, 41003, VIP, "SA", 64),
            seg(CIP, 41004, VIP, "SF", 64),
            seg([127, 0, 0, 1], 41005, VIP, "S", 64),
            seg(DIP1, 41006, VIP, "S", 64),
            seg(CIP, 41007, DIP0, "S", 64),
            seg(CIP, 41000, VIP, "S", 64),
            seg(CIP, 41008, VIP, "S", 64),
        ];
        let want = same_by_burst(&mut one, &mut burst, pkts, 3);
        // The packets' own verdicts (not the time-exceeded error originated on the way).
        let want: Vec<_> = want.into_iter().filter(|v| v.0 != 9).collect();
        let reasons: Vec<&str> = want.iter().map(|v| v.1.as_str()).collect();
        assert_eq!(want[0].0, 0, "{fwd:?}: {reasons:?}");
        assert_eq!(reasons[1], "malformed:bad_checksum", "{fwd:?}");
        assert_eq!(reasons[2], "rewrite:ttl_expired", "{fwd:?}");
        assert_eq!(reasons[5], "martian", "{fwd:?}");
        assert_eq!(reasons[6], "martian", "{fwd:?}");
        assert_eq!(want[8].0, 0, "{fwd:?}: the flow's second SYN goes on in it");
        assert_eq!(want.last().map(|v| v.0), Some(0), "{fwd:?}");
        assert_eq!(one.counters(), burst.counters(), "{fwd:?}");
        assert_eq!(one.conns().len(), burst.conns().len(), "{fwd:?}");
    }
}

#[test]
fn a_syn_whose_session_needs_the_general_forwarding_gets_it() {
    // The SYN lane opens the session, then hands the packet to the general path's
    // forwarding where the established path would not send it: a FULLNAT service with
    // TOA (the option goes into the SYN), and a real server whose MAC is unknown (the
    // SYN is held and an ARP request goes out). Both as the general path does it.
    let syns = || -> Vec<(VecBuf, u16)> {
        (0..4u16)
            .map(|i| {
                let p = tcp(CLIENT_MAC, PORT0_MAC, CIP, 42000 + i, VIP, 80, true, false);
                (p, 0)
            })
            .collect()
    };
    let mut one = cip_core(Proto::Tcp, crate::service::svc_flags::TOA);
    let mut burst = cip_core(Proto::Tcp, crate::service::svc_flags::TOA);
    let want = same_by_burst(&mut one, &mut burst, syns(), 3);
    assert!(want.iter().all(|v| v.0 == 0));
    assert_eq!(one.counters(), burst.counters());
    assert_eq!(burst.conns().len(), 4);

    let mut one = core(FwdMethod::FullNat, 0, 1);
    let mut burst = core(FwdMethod::FullNat, 0, 1);
    let want = same_by_burst(&mut one, &mut burst, syns(), 3);
    assert!(want.iter().all(|v| v.0 == 4), "held: {want:?}");
    assert_eq!(one.counters(), burst.counters());
    assert_eq!(burst.conns().len(), 4);
    let arps = |c: &mut Core<VecBuf>| c.take_arp_requests().collect::<Vec<_>>();
    assert_eq!(arps(&mut one), arps(&mut burst));
}

#[test]
fn pipeline_fuzz_seeds_are_current() {
    // The `pipeline` fuzz target's seeds (`dataplane/fuzz/seeds/pipeline`): a mode byte
    // (checksums put right), then length-prefixed frames: the neighbours' ARP, SYNs of
    // new flows, their ACKs and data, a second SYN of a flow; then IPv6's SYNs and ACK.
    // RVS_WRITE_FUZZ_SEEDS=1 cargo test -p rvs-dataplane pipeline_fuzz_seeds  (re)writes them.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/pipeline");
    let seg = |sport, syn, ack| {
        tcp(CLIENT_MAC, PORT0_MAC, CIP, sport, VIP, 80, syn, ack)
            .data()
            .to_vec()
    };
    let mut frames: Vec<Vec<u8>> = vec![
        arp(1, CLIENT_MAC, CIP, [0; 6], VIP).data().to_vec(),
        seg(40000, true, false),
        seg(40001, true, false),
        seg(40000, false, true),
        seg(40000, true, false),
    ];
    // The same flows over IPv6, to the target's IPv6 service (tests6's addresses).
    use super::tests6::{seg6, CIP as CIP6, VIP as VIP6};
    let seg6 = |sport, flags| seg6(CIP6, sport, VIP6, flags, 64).data().to_vec();
    let frames6 = [
        seg6(40000, "S"),
        seg6(40001, "S"),
        seg6(40000, "A"),
        seg6(40000, "S"),
    ];
    frames.extend(frames6);
    for (name, mode) in [("fullnat", 4u8), ("nat", 5), ("dr", 6), ("tun", 7)] {
        let mut seed = vec![mode];
        for f in &frames {
            seed.push(f.len() as u8);
            seed.extend_from_slice(f);
        }
        let path = dir.join(name);
        if std::env::var_os("RVS_WRITE_FUZZ_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &seed).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).ok(),
            Some(seed),
            "seed {name} is current"
        );
    }
}
