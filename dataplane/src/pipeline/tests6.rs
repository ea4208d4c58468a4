//! IPv6 through the pipeline, against packets built with etherparse: neighbour
//! discovery, echo, every mode, NAT64, errors, ownership.

use super::*;
use crate::buf::VecBuf;
use crate::flow::{Addr, Proto, Tunnel};
use crate::route::{Route, Route6};
use crate::service::{DestConfig, SchedKind, ServiceConfig, ServiceTable};
use etherparse::{
    Icmpv6Type, IpNumber, Ipv6Header, NetSlice, PacketBuilder, SlicedPacket, TransportSlice,
};

pub(super) const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
pub(super) const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xd0];
pub(super) const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xd1];
pub(super) const RS1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
pub(super) const RS2_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x12];

pub(super) fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub(super) const CIP: &str = "2001:db8:1::2";
pub(super) const VIP: &str = "2001:db8:1::100";
pub(super) const DIP0: &str = "2001:db8:1::1";
pub(super) const DIP1: &str = "2001:db8:2::1";
pub(super) const RS1: &str = "2001:db8:2::11";
pub(super) const RS2: &str = "2001:db8:2::12";
pub(super) const LIP: &str = "2001:db8:2::200";
/// NAT64: the IPv4 side.
pub(super) const RS1_4: [u8; 4] = [10, 20, 0, 11];
pub(super) const RS2_4: [u8; 4] = [10, 20, 0, 12];
pub(super) const LIP_4: [u8; 4] = [10, 20, 0, 200];
pub(super) const DIP1_4: [u8; 4] = [10, 20, 0, 1];

pub(super) fn o(s: &str) -> [u8; 16] {
    v6(s).octets()
}

/// An IPv6 TCP service VIP:80 with RS1 and RS2 (IPv4 ones with `nat64`), mode `fwd`.
pub(super) fn snapshot6(fwd: FwdMethod, workers: usize, nat64: bool) -> Snapshot {
    snapshot6_proto(fwd, workers, nat64, Proto::Tcp)
}

/// [`snapshot6`] of a `proto` service.
fn snapshot6_proto(fwd: FwdMethod, workers: usize, nat64: bool, proto: Proto) -> Snapshot {
    let key = ServiceKey::Addr {
        proto,
        addr: Addr::from(IpAddr::V6(v6(VIP))),
        port: 80,
    };
    let mut t = ServiceTable::new();
    t.add_service(ServiceConfig::new(key, SchedKind::Rr))
        .unwrap();
    let rport = if fwd == FwdMethod::Masq { 8080 } else { 80 };
    let (r1, r2): (IpAddr, IpAddr) = if nat64 {
        (Ipv4Addr::from(RS1_4).into(), Ipv4Addr::from(RS2_4).into())
    } else {
        (v6(RS1).into(), v6(RS2).into())
    };
    let tun = Tunnel::IPIP;
    t.add_dest(
        &key,
        DestConfig::new(Addr::from(r1), rport, fwd).tunnel(tun),
    )
    .unwrap();
    t.add_dest(
        &key,
        DestConfig::new(Addr::from(r2), rport, fwd).tunnel(tun),
    )
    .unwrap();
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
    net.local6.insert(v6(DIP0), (LocalKind::Dip, 0));
    net.local6.insert(v6(VIP), (LocalKind::Vip, 0));
    net.local6.insert(v6(DIP1), (LocalKind::Dip, 1));
    net.local6.insert(v6(LIP), (LocalKind::Lip, 1));
    net.local
        .insert(Ipv4Addr::from(DIP1_4), (LocalKind::Dip, 1));
    net.local.insert(Ipv4Addr::from(LIP_4), (LocalKind::Lip, 1));
    net.routes = RouteTable::new(vec![Route {
        prefix: Ipv4Addr::new(10, 20, 0, 0),
        len: 24,
        port: 1,
        gateway: None,
    }])
    .with_v6(vec![
        Route6 {
            prefix: v6("2001:db8:1::"),
            len: 64,
            port: 0,
            gateway: None,
        },
        Route6 {
            prefix: v6("2001:db8:2::"),
            len: 64,
            port: 1,
            gateway: None,
        },
    ]);
    if fwd == FwdMethod::FullNat {
        let lip: IpAddr = if nat64 {
            Ipv4Addr::from(LIP_4).into()
        } else {
            v6(LIP).into()
        };
        net.laddrs.insert(key, vec![lip]);
    }
    Snapshot {
        generation: 1,
        services: t.snapshot(),
        net: Arc::new(net),
    }
}

/// Worker `id` of `workers` with the neighbours resolved.
pub(super) fn core6(fwd: FwdMethod, id: usize, workers: usize, nat64: bool) -> Core<VecBuf> {
    let mut c = Core::new(id, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snapshot6(fwd, workers, nat64));
    c.add_static_neighbour(v6(CIP).into(), CLIENT_MAC);
    c.add_static_neighbour(v6(RS1).into(), RS1_MAC);
    c.add_static_neighbour(v6(RS2).into(), RS2_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS1_4).into(), RS1_MAC);
    c.add_static_neighbour(Ipv4Addr::from(RS2_4).into(), RS2_MAC);
    c
}

fn tcp6(src: &str, sport: u16, dst: &str, dport: u16, syn: bool, payload: &[u8]) -> VecBuf {
    let mut v = Vec::new();
    let b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv6(o(src), o(dst), 64)
        .tcp(sport, dport, 1000, 64000);
    let b = if syn { b.syn() } else { b.ack(5) };
    b.write(&mut v, payload).unwrap();
    VecBuf::new(128, &v)
}

fn tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> VecBuf {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(RS1_MAC, PORT1_MAC)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1000, 64000)
        .ack(5)
        .write(&mut v, payload)
        .unwrap();
    VecBuf::new(128, &v)
}

/// The transmitted frame of `out` (port, bytes).
fn tx(out: Out<VecBuf>) -> (u16, Vec<u8>) {
    match out {
        Out::Tx(b, port) => (port, b.data().to_vec()),
        other => panic!("not transmitted: {other:?}"),
    }
}

/// IPv6 header and TCP (ports, checksum checked) of a frame.
fn tcp_of(f: &[u8]) -> (Ipv6Header, u16, u16) {
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!("not IPv6: {p:?}")
    };
    let h = ip.header().to_header();
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("not TCP")
    };
    assert_eq!(
        t.checksum(),
        t.calc_checksum_ipv6(h.source, h.destination).unwrap()
    );
    (h, t.source_port(), t.destination_port())
}

/// A Neighbor Advertisement for `target` at `mac`, from `target` to `dst` (`ff02::1`:
/// unsolicited, to all nodes), built with etherparse: the Ethernet frame.
fn na_frame(dst: Ipv6Addr, target: Ipv6Addr, mac: [u8; 6]) -> VecBuf {
    let unsolicited = dst.is_multicast();
    let eth_dst = match unsolicited {
        true => [0x33, 0x33, 0, 0, 0, 1],
        false => PORT1_MAC,
    };
    // R clear, S set when solicited, O set; then the target and its link-layer option.
    let flags = if unsolicited { 0x20 } else { 0x60 };
    let mut body = target.octets().to_vec();
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&mac);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(mac, eth_dst)
        .ipv6(target.octets(), dst.octets(), 255)
        .icmpv6(etherparse::Icmpv6Type::Unknown {
            type_u8: 136,
            code_u8: 0,
            bytes5to8: [flags, 0, 0, 0],
        })
        .write(&mut f, &body)
        .unwrap();
    VecBuf::new(0, &f)
}

#[test]
fn a_solicitation_for_the_vip_is_answered_and_its_sender_learned() {
    let mut c = core6(FwdMethod::Masq, 0, 1, false);
    let client = v6("2001:db8:1::77");
    let mut f = Vec::new();
    let mut ns = vec![0u8; 96];
    let n =
        crate::wire::icmpv6::emit_neighbor_solicit(&mut ns, &client, &v6(VIP), CLIENT_MAC).unwrap();
    // etherparse frames the ICMPv6 message our emitter wrote; its checksum is checked
    // again below by the director.
    let msg = &ns[40..n];
    let t = Icmpv6Type::Unknown {
        type_u8: msg[0],
        code_u8: msg[1],
        bytes5to8: [msg[4], msg[5], msg[6], msg[7]],
    };
    PacketBuilder::ethernet2(CLIENT_MAC, [0x33, 0x33, 0xff, 0, 1, 0])
        .ipv6(
            client.octets(),
            crate::wire::icmpv6::solicited_node(&v6(VIP)).octets(),
            255,
        )
        .icmpv6(t)
        .write(&mut f, &msg[8..])
        .unwrap();
    let out = c.process(VecBuf::new(0, &f), 0, 0, true);
    assert!(matches!(out, Out::Consumed(_)), "{out:?}");
    let (port, len) = c.take_generated().expect("an advertisement");
    assert_eq!(port, 0);
    let na = &c.scratch()[..len];
    let p = SlicedPacket::from_ethernet(na).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), o(VIP));
    assert_eq!(ip.header().destination(), client.octets());
    assert_eq!(ip.header().hop_limit(), 255);
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    let h = ip.header().to_header();
    assert_eq!(
        i.checksum(),
        i.icmp_type()
            .calc_checksum(h.source, h.destination, i.payload())
            .unwrap()
    );
    assert_eq!(i.type_u8(), 136);
    let m = crate::wire::icmpv6::Packet::new_checked(&na[54..]).unwrap();
    assert_eq!(m.target_addr(), Some(v6(VIP)));
    let flags = m.na_flags();
    assert!(flags.solicited && flags.override_ && !flags.router);
    assert_eq!(&na[..6], &CLIENT_MAC);
    assert_eq!(&na[6..12], &PORT0_MAC);
    assert_eq!(
        c.neigh6().get(client),
        Some(CLIENT_MAC),
        "the sender is learned"
    );
    // The same solicitation with hop limit 64 (not from the link) is ignored.
    let mut g = f.clone();
    g[14 + 7] = 64;
    let out = c.process(VecBuf::new(0, &g), 0, 0, true);
    assert!(
        matches!(out, Out::Drop(_, DropReason::NdIgnored)),
        "{out:?}"
    );
    assert!(c.take_generated().is_none());
}

#[test]
fn router_advertisements_and_redirects_are_dropped_and_counted() {
    let mut c = core6(FwdMethod::Masq, 0, 1, false);
    for t in [133u8, 134, 137] {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv6(o("fe80::1"), o("ff02::1"), 255)
            .icmpv6(Icmpv6Type::Unknown {
                type_u8: t,
                code_u8: 0,
                bytes5to8: [0; 4],
            })
            .write(&mut f, &[0; 40])
            .unwrap();
        let out = c.process(VecBuf::new(0, &f), 0, 0, true);
        assert!(
            matches!(out, Out::Drop(_, DropReason::NdIgnored)),
            "{t}: {out:?}"
        );
    }
    assert_eq!(c.counters().drops_of(DropReason::NdIgnored), 3);
    assert_eq!(c.conns().len(), 0);
}

#[test]
fn an_advertisement_resolves_held_packets() {
    let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snapshot6(FwdMethod::Masq, 1, false));
    c.add_static_neighbour(v6(CIP).into(), CLIENT_MAC);
    let out = c.process(tcp6(CIP, 40000, VIP, 80, true, b""), 0, 0, true);
    assert!(matches!(out, Out::Held), "{out:?}");
    let ns: Vec<_> = c.take_ns_requests().collect();
    let rs = c
        .conns()
        .iter()
        .map(|(_, s)| s.daddr().to_ip())
        .next()
        .unwrap();
    assert_eq!(
        ns,
        vec![(1, rs)]
            .into_iter()
            .map(|(p, a)| (
                p,
                match a {
                    IpAddr::V6(a) => a,
                    IpAddr::V4(_) => panic!(),
                }
            ))
            .collect::<Vec<_>>()
    );
    let (rs, rs_mac) = if rs == IpAddr::V6(v6(RS1)) {
        (RS1, RS1_MAC)
    } else {
        (RS2, RS2_MAC)
    };
    // RS1 advertises itself (unsolicited, to all nodes).
    let na = na_frame(v6("ff02::1"), v6(rs), rs_mac);
    let out = c.process(na, 1, 5, true);
    assert!(matches!(out, Out::Consumed(_)), "{out:?}");
    let released: Vec<_> = c.take_released().collect();
    assert_eq!(released.len(), 1);
    assert_eq!(&released[0].0.data()[..6], &rs_mac);
}

#[test]
fn nat_dr_tun_and_fullnat_forward_ipv6_both_ways() {
    for fwd in [
        FwdMethod::Masq,
        FwdMethod::FullNat,
        FwdMethod::Route,
        FwdMethod::Tunnel,
    ] {
        let mut c = core6(fwd, 0, 1, false);
        let mut servers = Vec::new();
        for cport in [40001u16, 40002] {
            let (port, f) = tx(c.process(tcp6(CIP, cport, VIP, 80, true, b""), 0, 0, true));
            assert_eq!(port, 1, "{fwd:?}");
            let rs_mac: [u8; 6] = f[..6].try_into().unwrap();
            servers.push(rs_mac);
            match fwd {
                FwdMethod::Masq => {
                    let (h, sp, dp) = tcp_of(&f);
                    assert_eq!((h.source, sp), (o(CIP), cport));
                    assert_eq!(dp, 8080);
                    assert_eq!(h.hop_limit, 63);
                }
                FwdMethod::FullNat => {
                    let (h, _, dp) = tcp_of(&f);
                    assert_eq!(h.source, o(LIP));
                    assert_eq!(dp, 80);
                }
                FwdMethod::Route => {
                    let (h, _, dp) = tcp_of(&f);
                    assert_eq!((h.source, h.destination, h.hop_limit), (o(CIP), o(VIP), 64));
                    assert_eq!(dp, 80);
                }
                _ => {
                    let outer = etherparse::Ipv6HeaderSlice::from_slice(&f[14..]).unwrap();
                    assert_eq!(outer.source(), o(DIP1));
                    assert_eq!(outer.next_header(), IpNumber::IPV6);
                    let (h, _, _) = tcp_of(&[&f[..12], &[0x86, 0xdd], &f[54..]].concat());
                    assert_eq!((h.source, h.destination), (o(CIP), o(VIP)));
                }
            }
        }
        assert_ne!(servers[0], servers[1], "{fwd:?}: rr alternates");
        if matches!(fwd, FwdMethod::Masq | FwdMethod::FullNat) {
            // The first server's reply goes back to the client as VIP:80.
            let rs = if servers[0] == RS1_MAC { RS1 } else { RS2 };
            let rport = if fwd == FwdMethod::Masq { 8080 } else { 80 };
            let (dst, dport) = if fwd == FwdMethod::FullNat {
                let first = c.conns().iter().find(|(_, s)| s.cport() == 40001);
                (LIP, first.unwrap().1.lport())
            } else {
                (CIP, 40001)
            };
            let (port, f) = tx(c.process(tcp6(rs, rport, dst, dport, false, b"ok"), 1, 1, true));
            assert_eq!(port, 0);
            let (h, sp, dp) = tcp_of(&f);
            assert_eq!((h.source, sp, h.destination), (o(VIP), 80, o(CIP)));
            assert_eq!(dp, 40001);
            assert_eq!(&f[..6], &CLIENT_MAC);
        }
    }
}

#[test]
fn a_packet_too_big_for_the_tunnel_gets_packet_too_big() {
    let mut c = core6(FwdMethod::Tunnel, 0, 1, false);
    // The opening segment fits; a full-size one (1500 bytes of IPv6) does not with
    // the 40-byte outer header.
    let _ = tx(c.process(tcp6(CIP, 40001, VIP, 80, true, b""), 0, 0, true));
    let out = c.process(tcp6(CIP, 40001, VIP, 80, false, &[0; 1440]), 0, 1, true);
    assert!(
        matches!(
            out,
            Out::Drop(_, DropReason::Rewrite(wire::Error::Oversize))
        ),
        "{out:?}"
    );
    let (port, len) = c.take_generated().expect("packet too big");
    assert_eq!(port, 0);
    let p = SlicedPacket::from_ethernet(&c.scratch()[..len]).unwrap();
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    assert!(
        matches!(i.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1460 }),
        "{:?}",
        i.icmp_type()
    );
}

#[test]
fn echo_to_the_vip_is_answered_and_hop_limit_one_gets_time_exceeded() {
    let mut c = core6(FwdMethod::Masq, 0, 1, false);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv6(o(CIP), o(VIP), 64)
        .icmpv6_echo_request(1, 2)
        .write(&mut f, b"abc")
        .unwrap();
    let (port, r) = tx(c.process(VecBuf::new(0, &f), 0, 0, true));
    assert_eq!(port, 0);
    let p = SlicedPacket::from_ethernet(&r).unwrap();
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    assert!(matches!(i.icmp_type(), Icmpv6Type::EchoReply(_)));
    let mut syn = tcp6(CIP, 40009, VIP, 80, true, b"");
    syn.data_mut()[14 + 7] = 1;
    let out = c.process(syn, 0, 0, true);
    assert!(matches!(
        out,
        Out::Drop(_, DropReason::Rewrite(wire::Error::TtlExpired))
    ));
    assert_eq!(c.conns().len(), 0, "no session for an expiring packet");
    let (_, len) = c.take_generated().expect("time exceeded");
    let p = SlicedPacket::from_ethernet(&c.scratch()[..len]).unwrap();
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    assert!(matches!(i.icmp_type(), Icmpv6Type::TimeExceeded(_)));
}

#[test]
fn ipv6_sessions_belong_to_their_clients_worker_and_fullnat_replies_to_the_ports() {
    let w = 4;
    let mut owners = std::collections::HashSet::new();
    for k in 0..32u16 {
        let cip = format!("2001:db8:1::{:x}", 0x1000 + k);
        let want = crate::steer::owner_of_client6(v6(&cip), w);
        owners.insert(want);
        for id in 0..w {
            let mut c = core6(FwdMethod::FullNat, id, w, false);
            let out = c.process(tcp6(&cip, 40000 + k, VIP, 80, true, b""), 0, 0, true);
            match out {
                Out::Handoff(_, o) => assert_eq!((o as usize, id != want), (want, true)),
                Out::Tx(b, _) => {
                    assert_eq!(id, want);
                    let (_, lport, _) = tcp_of(b.data());
                    assert_eq!(crate::steer::owner_of_port(lport, w), want);
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(owners.len(), w, "clients spread over every worker");
}

#[test]
fn an_ipv6_syn_with_a_bad_checksum_opens_nothing() {
    let mut c = core6(FwdMethod::Masq, 0, 1, false);
    let mut syn = tcp6(CIP, 40001, VIP, 80, true, b"");
    let n = syn.data().len();
    syn.data_mut()[n - 1] ^= 0x40; // the urgent pointer: the checksum no longer holds
    let out = c.process(syn, 0, 0, true);
    assert!(matches!(
        out,
        Out::Drop(_, DropReason::Malformed(wire::Error::BadChecksum))
    ));
    assert_eq!(c.conns().len(), 0);
}

#[test]
fn ipv6_acls_deny_new_clients() {
    let mut snap = snapshot6(FwdMethod::Masq, 1, false);
    let rule = crate::acl::AclRule::new(v6("2001:db8:1::").into(), 64, crate::acl::AclAction::Deny);
    Arc::make_mut(&mut snap.net).acl = Arc::new(crate::acl::Acl::new(&[rule]));
    let mut c = Core::new(0, ConnConfig::new(64), NeighConfig::default());
    c.adopt(snap);
    let out = c.process(tcp6(CIP, 40001, VIP, 80, true, b""), 0, 0, true);
    assert!(matches!(out, Out::Drop(_, DropReason::AclDeny)), "{out:?}");
}

#[test]
fn martian_ipv6_sources_are_dropped() {
    let mut c = core6(FwdMethod::Masq, 0, 1, false);
    for src in ["::1", "ff02::1", VIP] {
        let out = c.process(tcp6(src, 1, VIP, 80, true, b""), 0, 0, true);
        assert!(
            matches!(out, Out::Drop(_, DropReason::Martian)),
            "{src}: {out:?}"
        );
    }
    assert_eq!(c.conns().len(), 0);
}

#[test]
fn an_error_about_a_reply_reaches_the_real_server_translated() {
    // NAT: the reply VIP:80 -> CIP:40001 was too big for a link on the client's side.
    let mut c = core6(FwdMethod::Masq, 0, 1, false);
    let _ = tx(c.process(tcp6(CIP, 40001, VIP, 80, true, b""), 0, 0, true));
    let mut quoted = Vec::new();
    PacketBuilder::ipv6(o(VIP), o(CIP), 63)
        .tcp(80, 40001, 9, 100)
        .write(&mut quoted, &[0; 64])
        .unwrap();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv6(o("2001:db8:1::fe"), o(VIP), 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1400 })
        .write(&mut f, &quoted)
        .unwrap();
    let rs = c
        .conns()
        .iter()
        .map(|(_, s)| s.daddr().to_ip())
        .next()
        .unwrap();
    let IpAddr::V6(rs) = rs else { panic!() };
    let (port, r) = tx(c.process(VecBuf::new(0, &f), 0, 1, true));
    assert_eq!(port, 1);
    let p = SlicedPacket::from_ethernet(&r).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().destination(), rs.octets());
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    let h = ip.header().to_header();
    assert_eq!(
        i.checksum(),
        i.icmp_type()
            .calc_checksum(h.source, h.destination, i.payload())
            .unwrap()
    );
    let q = SlicedPacket::from_ip(i.payload()).unwrap();
    let Some(NetSlice::Ipv6(qi)) = &q.net else {
        panic!()
    };
    assert_eq!(
        qi.header().source(),
        rs.octets(),
        "the quoted reply as the server sent it"
    );
    let Some(TransportSlice::Tcp(t)) = &q.transport else {
        panic!()
    };
    assert_eq!(t.source_port(), 8080);
    // An MTU under 1280 is never relayed.
    let mut g = f.clone();
    g[14 + 40 + 4..14 + 40 + 8].copy_from_slice(&1000u32.to_be_bytes());
    let out = c.process(VecBuf::new(0, &g), 0, 1, true);
    assert!(
        matches!(
            out,
            Out::Drop(_, DropReason::Malformed(wire::Error::BadIcmp))
        ),
        "{out:?}"
    );
}

#[test]
fn an_extension_header_chain_is_walked() {
    let mut c = core6(FwdMethod::Masq, 0, 1, false);
    let mut f = tcp6(CIP, 40001, VIP, 80, true, b"").data().to_vec();
    // Insert an 8-byte destination-options header (PadN) between IPv6 and TCP.
    let next = f[14 + 6];
    f[14 + 6] = 60;
    let plen = u16::from_be_bytes([f[18], f[19]]) + 8;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    f.splice(54..54, [next, 0, 1, 4, 0, 0, 0, 0]);
    let (_, r) = tx(c.process(VecBuf::new(128, &f), 0, 0, true));
    let p = SlicedPacket::from_ethernet(&r).unwrap();
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("{p:?}")
    };
    assert_eq!(t.destination_port(), 8080);
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    let h = ip.header();
    assert_eq!(
        t.checksum(),
        t.calc_checksum_ipv6(h.source(), h.destination()).unwrap()
    );
}

/// IPv4 header and TCP (ports, checksums checked) of a frame.
fn tcp4_of(f: &[u8]) -> (etherparse::Ipv4Header, u16, u16) {
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4: {p:?}")
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("not TCP")
    };
    assert_eq!(
        t.checksum(),
        t.calc_checksum_ipv4(h.source, h.destination).unwrap()
    );
    (h, t.source_port(), t.destination_port())
}

#[test]
fn nat64_carries_an_ipv6_client_to_ipv4_servers_and_back() {
    let mut c = core6(FwdMethod::FullNat, 0, 1, true);
    let (port, f) = tx(c.process(tcp6(CIP, 40001, VIP, 80, true, b""), 0, 0, true));
    assert_eq!(port, 1);
    let (h, lport, rport) = tcp4_of(&f);
    assert_eq!(h.source, LIP_4);
    assert!(h.destination == RS1_4 || h.destination == RS2_4);
    assert_eq!((rport, h.time_to_live), (80, 63));
    let rs = h.destination;
    // The server's reply, IPv4 to the LIP, reaches the client as IPv6 from the VIP.
    let (port, r) = tx(c.process(tcp4(rs, 80, LIP_4, lport, b"hello"), 1, 1, true));
    assert_eq!(port, 0);
    let (h6, sp, dp) = tcp_of(&r);
    assert_eq!(
        (h6.source, sp, h6.destination, dp),
        (o(VIP), 80, o(CIP), 40001)
    );
    assert_eq!(&r[..6], &CLIENT_MAC);
    assert!(r.ends_with(b"hello"));
    // The client's next segment: the same session, IPv4 again.
    let (_, f) = tx(c.process(tcp6(CIP, 40001, VIP, 80, false, b"data"), 0, 2, true));
    let (h, lp, _) = tcp4_of(&f);
    assert_eq!((h.destination, lp), (rs, lport));
    assert_eq!(c.conns().len(), 1);

    // A router on the IPv4 side says the request was too big (MTU 1400): the client
    // gets Packet Too Big for 1420 about its own packet.
    let mut quoted = Vec::new();
    PacketBuilder::ipv4(LIP_4, rs, 63)
        .tcp(lport, 80, 1, 100)
        .write(&mut quoted, &[0; 16])
        .unwrap();
    let mut e = Vec::new();
    PacketBuilder::ethernet2(RS1_MAC, PORT1_MAC)
        .ipv4([10, 20, 0, 254], LIP_4, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut e, &quoted[..28])
        .unwrap();
    let (port, r) = tx(c.process(VecBuf::new(128, &e), 1, 3, true));
    assert_eq!(port, 0);
    let p = SlicedPacket::from_ethernet(&r).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(
        (ip.header().source(), ip.header().destination()),
        (o(VIP), o(CIP))
    );
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    let h = ip.header().to_header();
    assert_eq!(
        i.checksum(),
        i.icmp_type()
            .calc_checksum(h.source, h.destination, i.payload())
            .unwrap()
    );
    assert!(
        matches!(i.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1420 }),
        "{:?}",
        i.icmp_type()
    );
    let q = etherparse::Ipv6HeaderSlice::from_slice(i.payload()).unwrap();
    assert_eq!((q.source(), q.destination()), (o(CIP), o(VIP)));

    // A full-size IPv4 reply with DF does not fit the IPv6 side: fragmentation-needed
    // back to the server for 1480.
    let mut big = Vec::new();
    PacketBuilder::ethernet2(RS1_MAC, PORT1_MAC)
        .ipv4(rs, LIP_4, 64)
        .tcp(80, lport, 1, 100)
        .ack(1)
        .write(&mut big, &[0; 1460])
        .unwrap();
    big[14 + 6] |= 0x40;
    let sum = {
        big[24] = 0;
        big[25] = 0;
        !crate::wire::checksum::data(&big[14..34])
    };
    big[24..26].copy_from_slice(&sum.to_be_bytes());
    let out = c.process(VecBuf::new(128, &big), 1, 4, true);
    assert!(
        matches!(
            out,
            Out::Drop(_, DropReason::Rewrite(wire::Error::Oversize))
        ),
        "{out:?}"
    );
    let (port, len) = c.take_generated().expect("fragmentation needed");
    assert_eq!(port, 1);
    let p = SlicedPacket::from_ethernet(&c.scratch()[..len]).unwrap();
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!("{p:?}")
    };
    assert!(
        matches!(
            i.icmp_type(),
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1480
                }
            )
        ),
        "{:?}",
        i.icmp_type()
    );

    // The client's side says a reply was too big (1300): the server gets
    // fragmentation-needed for 1280 about its own packet.
    let mut quoted = Vec::new();
    PacketBuilder::ipv6(o(VIP), o(CIP), 63)
        .tcp(80, 40001, 1, 100)
        .write(&mut quoted, &[0; 16])
        .unwrap();
    let mut e = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv6(o("2001:db8:1::fe"), o(VIP), 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1300 })
        .write(&mut e, &quoted)
        .unwrap();
    let (port, r) = tx(c.process(VecBuf::new(128, &e), 0, 5, true));
    assert_eq!(port, 1);
    let p = SlicedPacket::from_ethernet(&r).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(
        (ip.header().source(), ip.header().destination()),
        (LIP_4, rs)
    );
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!()
    };
    assert!(
        matches!(
            i.icmp_type(),
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1280
                }
            )
        ),
        "{:?}",
        i.icmp_type()
    );
}

/// An IPv6 client address (2001:db8:1::1100 and up) that another worker of `w` than
/// `me` owns.
fn client6_of_another_worker(me: usize, w: usize) -> String {
    (0x100..0x200u32)
        .map(|i| format!("2001:db8:1::{:x}", i + 0x1000))
        .find(|a| crate::steer::owner_of_client6(v6(a), w) != me)
        .unwrap()
}

#[test]
fn an_ipv6_burst_is_processed_exactly_as_packet_by_packet() {
    // Per mode, two workers: SYNs of 20 flows of our client, then (compared) their
    // ACKs with data, the servers' replies (NAT, FULLNAT), another client's packets
    // (handed over), a frame with a destination-options header, a truncated one and a
    // ping. One core takes them one by one, the other as a burst.
    let w = 2;
    let me = crate::steer::owner_of_client6(v6(CIP), w);
    let other = client6_of_another_worker(me, w);
    for fwd in [
        FwdMethod::Masq,
        FwdMethod::FullNat,
        FwdMethod::Route,
        FwdMethod::Tunnel,
    ] {
        let mut one = core6(fwd, me, w, false);
        let mut burst = core6(fwd, me, w, false);
        for port in 41000..41020u16 {
            let a = one.process(tcp6(CIP, port, VIP, 80, true, b""), 0, 0, true);
            let b = burst.process(tcp6(CIP, port, VIP, 80, true, b""), 0, 0, true);
            assert_eq!(tx(a), tx(b));
        }
        let mut pkts: Vec<(VecBuf, u16)> = Vec::new();
        for port in 41000..41020u16 {
            pkts.push((tcp6(CIP, port, VIP, 80, false, b"request"), 0));
        }
        if matches!(fwd, FwdMethod::Masq | FwdMethod::FullNat) {
            let sessions: Vec<_> = one
                .conns()
                .iter()
                .map(|(_, s)| (s.daddr().to_ip(), s.dport(), s.laddr().to_ip(), s.lport()))
                .collect();
            for (rs, rport, l, lport) in sessions {
                let (IpAddr::V6(rs), IpAddr::V6(l)) = (rs, l) else {
                    panic!()
                };
                let mut v = Vec::new();
                PacketBuilder::ethernet2(RS1_MAC, PORT1_MAC)
                    .ipv6(rs.octets(), l.octets(), 64)
                    .tcp(rport, lport, 1, 100)
                    .ack(2)
                    .write(&mut v, b"reply")
                    .unwrap();
                pkts.push((VecBuf::new(128, &v), 1));
            }
        }
        for port in 50000..50005u16 {
            pkts.push((tcp6(&other, port, VIP, 80, true, b""), 0));
            pkts.push((tcp6(&other, port, VIP, 80, false, b"x"), 0));
        }
        let mut ext = tcp6(CIP, 41001, VIP, 80, false, b"").data().to_vec();
        let next = ext[14 + 6];
        ext[14 + 6] = 60;
        let plen = u16::from_be_bytes([ext[18], ext[19]]) + 8;
        ext[18..20].copy_from_slice(&plen.to_be_bytes());
        ext.splice(54..54, [next, 0, 1, 4, 0, 0, 0, 0]);
        pkts.push((VecBuf::new(128, &ext), 0));
        let mut short = tcp6(CIP, 41002, VIP, 80, false, b"").data().to_vec();
        short.truncate(60);
        pkts.push((VecBuf::new(128, &short), 0));
        let mut ping = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv6(o(CIP), o(VIP), 64)
            .icmpv6_echo_request(1, 1)
            .write(&mut ping, b"p")
            .unwrap();
        pkts.push((VecBuf::new(128, &ping), 0));
        let want = super::tests::same_by_burst(&mut one, &mut burst, pkts, 1);
        let sent = want.iter().filter(|v| v.0 == 0).count();
        assert!(sent >= 22, "{fwd:?}: {sent} sent");
        assert_eq!(one.counters(), burst.counters(), "{fwd:?}");
    }
}

#[test]
fn ipv6_persistence_pins_a_prefix_to_one_server() {
    // `-p 300 -M 64`: every client of a /64 goes to the same server; another /64 may
    // not.
    let key = ServiceKey::Addr {
        proto: Proto::Tcp,
        addr: Addr::from(IpAddr::V6(v6(VIP))),
        port: 80,
    };
    let mut t = ServiceTable::new();
    let sc = ServiceConfig::new(key, SchedKind::Rr)
        .persistent(300)
        .netmask(Addr::v6_prefix(64));
    t.add_service(sc).unwrap();
    for rs in [RS1, RS2] {
        let d = DestConfig::new(Addr::from(IpAddr::V6(v6(rs))), 80, FwdMethod::Masq);
        t.add_dest(&key, d).unwrap();
    }
    let mut snap = snapshot6(FwdMethod::Masq, 1, false);
    snap.services = t.snapshot();
    let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snap);
    c.add_static_neighbour(v6(RS1).into(), RS1_MAC);
    c.add_static_neighbour(v6(RS2).into(), RS2_MAC);
    c.add_static_neighbour(v6(CIP).into(), CLIENT_MAC);
    let server = |c: &mut Core<VecBuf>, cip: &str, port: u16| {
        let (_, f) = tx(c.process(tcp6(cip, port, VIP, 80, true, b""), 0, 0, true));
        <[u8; 6]>::try_from(&f[..6]).unwrap()
    };
    let first = server(&mut c, "2001:db8:1::2", 40000);
    for (i, cip) in [
        "2001:db8:1::3",
        "2001:db8:1::ffff:1",
        "2001:db8:1:0:8000::9",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(
            server(&mut c, cip, 40001 + i as u16),
            first,
            "{cip} is in the /64"
        );
    }
    // rr moves on for a client of another /64.
    let other = server(&mut c, "2001:db8:1:1::2", 40010);
    assert_ne!(other, first, "another /64 is scheduled anew");
}

/// A UDP datagram `src:sport -> dst:dport` of `len` payload bytes (built by etherparse),
/// cut into IPv6 fragments of at most `size` bytes of fragmentable part each (a multiple
/// of 8 but the last), identification `ident`. The Fragment header is written by hand
/// (RFC 8200 §4.5): etherparse 0.16 orders its offset and M bits differently.
fn frags6(
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    len: usize,
    size: usize,
    ident: u32,
) -> (Vec<Vec<u8>>, Vec<u8>) {
    let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
    let mut whole = Vec::new();
    PacketBuilder::ipv6(o(src), o(dst), 64)
        .udp(sport, dport)
        .write(&mut whole, &payload)
        .unwrap();
    let body = &whole[40..];
    let mut out = Vec::new();
    for (k, chunk) in body.chunks(size).enumerate() {
        let off = k * size;
        let more = off + chunk.len() < body.len();
        let mut f = Vec::new();
        f.extend_from_slice(&PORT0_MAC);
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&[0x86, 0xdd]);
        let mut h = whole[..40].to_vec();
        h[4..6].copy_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
        h[6] = 44;
        f.extend_from_slice(&h);
        let field = (off as u16) | u16::from(more);
        f.extend_from_slice(&[17, 0]);
        f.extend_from_slice(&field.to_be_bytes());
        f.extend_from_slice(&ident.to_be_bytes());
        f.extend_from_slice(chunk);
        out.push(f);
    }
    (out, payload)
}

/// Reassembles IPv6 fragments (frames) into the upper-layer bytes; checks each
/// fragment's addresses against `want` (source, destination).
fn reassemble6(frames: &[Vec<u8>], want: ([u8; 16], [u8; 16])) -> Vec<u8> {
    let mut parts: Vec<(usize, Vec<u8>)> = Vec::new();
    for f in frames {
        let ip = &f[14..];
        assert_eq!((&ip[8..24], &ip[24..40]), (&want.0[..], &want.1[..]));
        assert_eq!(ip[6], 44, "a fragment");
        let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
        let field = u16::from_be_bytes([ip[42], ip[43]]);
        parts.push((usize::from(field & 0xfff8), ip[48..40 + plen].to_vec()));
    }
    parts.sort();
    let mut out = Vec::new();
    for (off, p) in parts {
        assert_eq!(off, out.len(), "no gap, no overlap");
        out.extend_from_slice(&p);
    }
    out
}

#[test]
fn ipv6_fragments_are_forwarded_in_order_and_reversed_without_reassembly() {
    for fwd in [FwdMethod::Masq, FwdMethod::FullNat, FwdMethod::Route] {
        for reverse in [false, true] {
            let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
            c.adopt(snapshot6_proto(fwd, 1, false, Proto::Udp));
            c.add_static_neighbour(v6(RS1).into(), RS1_MAC);
            c.add_static_neighbour(v6(RS2).into(), RS2_MAC);
            let (mut frames, payload) = frags6(CIP, 5353, VIP, 80, 4000, 1448, 0x1234_5678);
            assert_eq!(frames.len(), 3);
            if reverse {
                frames.reverse();
            }
            let mut sent = Vec::new();
            for f in frames {
                match c.process(VecBuf::new(128, &f), 0, 0, true) {
                    Out::Tx(b, port) => {
                        assert_eq!(port, 1);
                        sent.push(b.data().to_vec());
                    }
                    Out::Held => {}
                    other => panic!("{fwd:?}: {other:?}"),
                }
                sent.extend(c.take_frag_out().map(|o| match o {
                    Out::Tx(b, _) => b.data().to_vec(),
                    other => panic!("{other:?}"),
                }));
            }
            assert_eq!(sent.len(), 3, "{fwd:?} reverse {reverse}");
            let rs = c
                .conns()
                .iter()
                .map(|(_, s)| s.daddr().to_ip())
                .next()
                .unwrap();
            let IpAddr::V6(rs) = rs else { panic!() };
            let src = if fwd == FwdMethod::FullNat {
                o(LIP)
            } else {
                o(CIP)
            };
            let dst = if fwd == FwdMethod::Route {
                o(VIP)
            } else {
                rs.octets()
            };
            let udp = reassemble6(&sent, (src, dst));
            // The first fragment's rewrite updated the checksum for the whole datagram.
            let u = etherparse::UdpSlice::from_slice(&udp).unwrap();
            assert_eq!(u.payload(), &payload[..]);
            let want = u
                .to_header()
                .calc_checksum_ipv6_raw(src, dst, u.payload())
                .unwrap();
            assert_eq!(u.checksum(), want, "{fwd:?}");
            let dport = if fwd == FwdMethod::Masq { 8080 } else { 80 };
            assert_eq!(u.destination_port(), dport);
            assert_eq!(c.counters().frags_forwarded, 3);
        }
    }
}

#[test]
fn an_ipv6_fragment_too_big_for_the_tunnel_is_sent_as_two_outer_fragments() {
    let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    c.adopt(snapshot6_proto(FwdMethod::Tunnel, 1, false, Proto::Udp));
    c.add_static_neighbour(v6(RS1).into(), RS1_MAC);
    c.add_static_neighbour(v6(RS2).into(), RS2_MAC);
    let (frames, _) = frags6(CIP, 5353, VIP, 80, 4000, 1448, 7);
    let mut outer = Vec::new();
    for f in &frames {
        match c.process(VecBuf::new(128, f), 0, 0, true) {
            Out::Tx(b, _) => outer.push(b.data().to_vec()),
            other => panic!("{other:?}"),
        }
        outer.extend(c.take_frag_out().map(|o| match o {
            Out::Tx(b, _) => b.data().to_vec(),
            other => panic!("{other:?}"),
        }));
    }
    // Each 1496-byte inner fragment + 40 does not fit 1500: two outer fragments each.
    assert_eq!(outer.len(), 5, "two, two, and the short last one whole");
    assert!(outer.iter().all(|f| f.len() - 14 <= 1500));
    assert_eq!(c.counters().tun_outer_fragmented, 2);
    // The outer fragments of each inner fragment reassemble to it.
    let inner = reassemble_outer(&outer[..2]);
    assert_eq!(&inner[..], &frames[0][14..]);
}

/// Reassembles two outer IPv6 fragments (of ip6ip6) into the inner packet.
fn reassemble_outer(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut parts: Vec<(usize, Vec<u8>)> = frames
        .iter()
        .map(|f| {
            let ip = &f[14..];
            assert_eq!((ip[6], ip[40]), (44, 41));
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let field = u16::from_be_bytes([ip[42], ip[43]]);
            (usize::from(field & 0xfff8), ip[48..40 + plen].to_vec())
        })
        .collect();
    parts.sort();
    parts.into_iter().flat_map(|(_, p)| p).collect()
}

#[test]
fn advertisements_for_addresses_not_tracked_are_not_learned() {
    // A flood of forged unsolicited advertisements cannot fill the neighbour cache.
    let mut c = core6(FwdMethod::Masq, 0, 1, false);
    let before = c.neigh6().len();
    for k in 0..100u16 {
        let target = v6(&format!("2001:db8:2::{:x}", 0x1000 + k));
        let out = c.process(na_frame(v6("ff02::1"), target, RS1_MAC), 1, 0, true);
        assert!(matches!(out, Out::Consumed(_)), "{out:?}");
    }
    assert_eq!(c.neigh6().len(), before);
    assert_eq!(c.neigh6().get(v6("2001:db8:2::1000")), None);
}

#[test]
fn an_answer_to_another_workers_solicitation_is_learned_and_shared() {
    // Worker 0 solicited RS1 for a held SYN; RS1's answer (unicast to the port's
    // address) reaches worker 1, which tracks nothing: it learns it and shares it, and
    // worker 0 then releases the SYN.
    let mut w0 = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
    let mut w1 = Core::new(1, ConnConfig::new(1024), NeighConfig::default());
    for w in [&mut w0, &mut w1] {
        w.adopt(snapshot6(FwdMethod::Masq, 1, false));
        w.add_static_neighbour(v6(CIP).into(), CLIENT_MAC);
    }
    let out = w0.process(tcp6(CIP, 40000, VIP, 80, true, b""), 0, 0, true);
    assert!(matches!(out, Out::Held), "{out:?}");
    let rs = match w0.take_ns_requests().next() {
        Some((_, a)) => a,
        None => panic!("a solicitation"),
    };
    let rs_mac = if rs == v6(RS1) { RS1_MAC } else { RS2_MAC };
    let out = w1.process(na_frame(v6(DIP1), rs, rs_mac), 1, 1, true);
    assert!(matches!(out, Out::Consumed(_)), "{out:?}");
    let learned: Vec<_> = w1.take_learned().collect();
    assert_eq!(
        learned,
        vec![NeighUpdate {
            ip: rs.into(),
            mac: rs_mac
        }]
    );
    w0.learn_neighbour(learned[0], 2);
    let released: Vec<_> = w0.take_released().collect();
    assert_eq!(released.len(), 1, "the held SYN goes out");
}

/// An IPv6 TCP segment from the client's MAC, built with etherparse: flags `flags` (of
/// "SAFR"), hop limit `hops`.
pub(super) fn seg6(src: &str, sport: u16, dst: &str, flags: &str, hops: u8) -> VecBuf {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv6(o(src), o(dst), hops)
        .tcp(sport, 80, 1000, 64000);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(5),
            'F' => b.fin(),
            'R' => b.rst(),
            _ => panic!("flag {f}"),
        };
    }
    let mut v = Vec::new();
    b.write(&mut v, b"").unwrap();
    VecBuf::new(128, &v)
}

#[test]
fn ipv6_syns_of_new_flows_take_the_syn_lane_and_open_what_the_general_path_opens() {
    // 40 SYNs of new IPv6 flows in one burst, in every mode, with one worker and as the
    // client's worker of two: the burst core opens them in the SYN lane (it never asks a
    // packet's port: only the general path does), with the same frames out (FULLNAT's
    // local address and ports too), sessions and counters as a core that takes them
    // packet by packet. A NAT64 service's sessions are made in the lane and forwarded
    // by the general path, which translates them: the same, asking each packet's port.
    let modes = [
        (FwdMethod::Masq, false),
        (FwdMethod::FullNat, false),
        (FwdMethod::Route, false),
        (FwdMethod::Tunnel, false),
        (FwdMethod::FullNat, true),
    ];
    for (fwd, nat64) in modes {
        for w in [1, 2] {
            let me = crate::steer::owner_of_client6(v6(CIP), w);
            let mut one = core6(fwd, me, w, nat64);
            let mut burst = core6(fwd, me, w, nat64);
            let syns: Vec<VecBuf> = (0..40u16)
                .map(|i| seg6(CIP, 40000 + i, VIP, "S", 64))
                .collect();
            let want: Vec<_> = syns
                .iter()
                .map(|p| super::tests::verdict(one.process(p.clone(), 0, 3, true)))
                .collect();
            let (got, asked) = super::tests::burst_asking_ports(&mut burst, syns, 3);
            let what = format!("{fwd:?}, nat64 {nat64}, {w} workers");
            let lane = if nat64 { 40 } else { 0 };
            assert_eq!(asked, lane, "{what}: SYNs the general path forwarded");
            assert_eq!(got, want, "{what}");
            assert!(got.iter().all(|v| v.0 == 0), "{what}: all forwarded");
            for (_, _, f) in &got {
                if !nat64 && fwd != FwdMethod::Tunnel {
                    tcp_of(f); // IPv6 TCP with a right checksum
                }
            }
            assert_eq!(one.counters(), burst.counters(), "{what}");
            assert_eq!(burst.conns().len(), 40, "{what}");
            assert_eq!(burst.counters().conns, 40, "{what}");
            assert_eq!(
                super::tests::sessions_of(&one),
                super::tests::sessions_of(&burst),
                "{what}"
            );
        }
    }
}

#[test]
fn the_ipv6_syn_lane_leaves_every_other_syn_to_the_general_path() {
    // SYNs the lane must not open, mixed with ones it opens, in one burst: a wrong TCP
    // checksum, a hop limit of 1, SYN with ACK and with FIN, martian sources (loopback,
    // multicast, the director's own), a DIP as the destination, a client the global ACL
    // denies, a second SYN of an open flow, and another worker's client; each gets the
    // general path's verdict, and the cores end with the same sessions and counters.
    let w = 2;
    let me = crate::steer::owner_of_client6(v6(CIP), w);
    let other = client6_of_another_worker(me, w);
    // A client of this worker in 2001:db8:1:0:ff::/80, which the ACL denies.
    let denied = (1..0x100u32)
        .map(|i| format!("2001:db8:1:0:ff::{i:x}"))
        .find(|a| crate::steer::owner_of_client6(v6(a), w) == me)
        .unwrap();
    for fwd in [FwdMethod::FullNat, FwdMethod::Masq, FwdMethod::Tunnel] {
        let make = || {
            let mut snap = snapshot6(fwd, w, false);
            let net: IpAddr = v6("2001:db8:1:0:ff::").into();
            let rule = crate::acl::AclRule::new(net, 80, crate::acl::AclAction::Deny);
            Arc::make_mut(&mut snap.net).acl = Arc::new(crate::acl::Acl::new(&[rule]));
            let mut c = Core::new(me, ConnConfig::new(1024), NeighConfig::default());
            c.adopt(snap);
            c.add_static_neighbour(v6(CIP).into(), CLIENT_MAC);
            c.add_static_neighbour(v6(RS1).into(), RS1_MAC);
            c.add_static_neighbour(v6(RS2).into(), RS2_MAC);
            c
        };
        let (mut one, mut burst) = (make(), make());
        let mut bad_sum = seg6(CIP, 41001, VIP, "S", 64);
        bad_sum.data_mut()[14 + 40 + 16] ^= 0x5a;
        let pkts: Vec<(VecBuf, u16)> = vec![
            seg6(CIP, 41000, VIP, "S", 64),
            bad_sum,
            seg6(CIP, 41002, VIP, "S", 1),
            seg6(CIP, 41003, VIP, "SA", 64),
            seg6(CIP, 41004, VIP, "SF", 64),
            seg6("::1", 41005, VIP, "S", 64),
            seg6("ff02::1", 41006, VIP, "S", 64),
            seg6(DIP1, 41007, VIP, "S", 64),
            seg6(CIP, 41008, DIP0, "S", 64),
            seg6(&denied, 41009, VIP, "S", 64),
            seg6(CIP, 41000, VIP, "S", 64),
            seg6(&other, 41010, VIP, "S", 64),
            seg6(CIP, 41011, VIP, "S", 64),
        ]
        .into_iter()
        .map(|p| (p, 0))
        .collect();
        let want = super::tests::same_by_burst(&mut one, &mut burst, pkts, 3);
        // The packets' own verdicts (not the time-exceeded error originated on the way).
        let want: Vec<_> = want.into_iter().filter(|v| v.0 != 9).collect();
        let reasons: Vec<&str> = want.iter().map(|v| v.1.as_str()).collect();
        assert_eq!(want[0].0, 0, "{fwd:?}: {reasons:?}");
        assert_eq!(reasons[1], "malformed:bad_checksum", "{fwd:?}");
        assert_eq!(reasons[2], "rewrite:ttl_expired", "{fwd:?}");
        assert_eq!(reasons[5..8], ["martian"; 3], "{fwd:?}");
        assert_eq!(reasons[9], "acl-deny", "{fwd:?}");
        assert_eq!(
            want[10].0, 0,
            "{fwd:?}: the flow's second SYN goes on in it"
        );
        assert_eq!(want[11].0, 1, "{fwd:?}: handed to its worker");
        assert_eq!(want.last().map(|v| v.0), Some(0), "{fwd:?}");
        assert_eq!(one.counters(), burst.counters(), "{fwd:?}");
        assert_eq!(
            super::tests::sessions_of(&one),
            super::tests::sessions_of(&burst),
            "{fwd:?}"
        );
    }
}

#[test]
fn an_ipv6_syn_whose_real_server_is_unresolved_is_held_as_the_general_path_holds_it() {
    // The IPv6 SYN lane makes the session, then hands the SYN to the general path's
    // forwarding, which holds it and solicits the real server's address: the same
    // verdicts, solicitations, sessions and counters as packet by packet.
    for fwd in [FwdMethod::FullNat, FwdMethod::Route] {
        let make = || {
            let mut c = Core::new(0, ConnConfig::new(1024), NeighConfig::default());
            c.adopt(snapshot6(fwd, 1, false));
            c
        };
        let (mut one, mut burst) = (make(), make());
        let pkts: Vec<(VecBuf, u16)> = (0..4u16)
            .map(|i| (seg6(CIP, 42000 + i, VIP, "S", 64), 0))
            .collect();
        let want = super::tests::same_by_burst(&mut one, &mut burst, pkts, 3);
        assert!(want.iter().any(|v| v.0 == 4), "{fwd:?}: held: {want:?}");
        assert!(
            want.iter().all(|v| v.0 != 2),
            "{fwd:?}: none dropped: {want:?}"
        );
        assert_eq!(one.counters(), burst.counters(), "{fwd:?}");
        assert_eq!(burst.conns().len(), 4, "{fwd:?}");
        assert_eq!(
            super::tests::sessions_of(&one),
            super::tests::sessions_of(&burst),
            "{fwd:?}"
        );
    }
}
