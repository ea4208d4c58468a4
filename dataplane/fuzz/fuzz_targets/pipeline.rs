//! A worker's packet core on any frames: the input is cut into frames (a length byte,
//! then that many bytes; the first byte picks the forwarding mode and whether IPv4 and
//! IPv6 TCP checksums are put right, so that SYNs to the services open sessions), which go through
//! one core packet by packet (the general path) and through another as one burst (the
//! established fast path and the SYN lane). Panics are bugs, and so is any difference:
//! the same verdicts, the same frames out, the same counters and sessions.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::buf::{PacketBuf, VecBuf};
use rvs_dataplane::conn::ConnConfig;
use rvs_dataplane::flow::{Addr, FwdMethod, Proto};
use rvs_dataplane::neigh::NeighConfig;
use rvs_dataplane::pipeline::{Core, Emit, LocalKind, NetConfig, Out, PortNet, Snapshot};
use rvs_dataplane::route::{Route, Route6, RouteTable};
use rvs_dataplane::service::{DestConfig, SchedKind, ServiceConfig, ServiceKey, ServiceTable};
use rvs_dataplane::wire::checksum;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

const VIP: [u8; 4] = [10, 10, 0, 100];
const CIP: [u8; 4] = [10, 10, 0, 2];
const LIP: [u8; 4] = [10, 20, 0, 200];
const RS: [[u8; 4]; 2] = [[10, 20, 0, 11], [10, 20, 0, 12]];
/// The IPv6 service's addresses: 2001:db8:1::100, the client 2001:db8:1::2, the local
/// address 2001:db8:2::200, the real servers 2001:db8:2::11 and ::12.
const VIP6: u128 = 0x2001_0db8_0001_0000_0000_0000_0000_0100;
const CIP6: u128 = 0x2001_0db8_0001_0000_0000_0000_0000_0002;
const LIP6: u128 = 0x2001_0db8_0002_0000_0000_0000_0000_0200;
const RS6: [u128; 2] = [
    0x2001_0db8_0002_0000_0000_0000_0000_0011,
    0x2001_0db8_0002_0000_0000_0000_0000_0012,
];

fn ip6(a: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

/// One worker of one with the services VIP:80 and VIP6:80 (TCP), to RS1 and RS2 of
/// their family, in mode `fwd`, the neighbours known.
fn core(fwd: FwdMethod) -> Core<VecBuf> {
    let key = ServiceKey::Addr {
        proto: Proto::Tcp,
        addr: Addr::from(IpAddr::from(VIP)),
        port: 80,
    };
    let key6 = ServiceKey::Addr {
        proto: Proto::Tcp,
        addr: Addr::from(ip6(VIP6)),
        port: 80,
    };
    let mut t = ServiceTable::new();
    t.add_service(ServiceConfig::new(key, SchedKind::Rr))
        .expect("service");
    t.add_service(ServiceConfig::new(key6, SchedKind::Rr))
        .expect("IPv6 service");
    for rs in RS {
        t.add_dest(&key, DestConfig::new(Addr::from(IpAddr::from(rs)), 80, fwd))
            .expect("rs");
    }
    for rs in RS6 {
        t.add_dest(&key6, DestConfig::new(Addr::from(ip6(rs)), 80, fwd))
            .expect("IPv6 rs");
    }
    let mut net = NetConfig::new(1);
    let port = |last| PortNet {
        mac: [2, 0, 0, 0, 0, last],
        mtu: 1500,
        vlan: None,
    };
    net.ports = vec![port(0xd0), port(0xd1)];
    net.local.insert(Ipv4Addr::from(VIP), (LocalKind::Vip, 0));
    net.local
        .insert(Ipv4Addr::new(10, 10, 0, 1), (LocalKind::Dip, 0));
    net.local
        .insert(Ipv4Addr::new(10, 20, 0, 1), (LocalKind::Dip, 1));
    net.local.insert(Ipv4Addr::from(LIP), (LocalKind::Lip, 1));
    let route = |prefix: [u8; 4], port| Route {
        prefix: Ipv4Addr::from(prefix),
        len: 24,
        port,
        gateway: None,
    };
    let v6 = |a: u128| Ipv6Addr::from(a);
    net.local6.insert(v6(VIP6), (LocalKind::Vip, 0));
    net.local6.insert(v6(VIP6 - 0xff), (LocalKind::Dip, 0));
    net.local6.insert(v6(LIP6 - 0x1ff), (LocalKind::Dip, 1));
    net.local6.insert(v6(LIP6), (LocalKind::Lip, 1));
    let route6 = |prefix: u128, port| Route6 {
        prefix: v6(prefix),
        len: 64,
        port,
        gateway: None,
    };
    net.routes = RouteTable::new(vec![route([10, 10, 0, 0], 0), route([10, 20, 0, 0], 1)])
        .with_v6(vec![route6(VIP6 & !0xffff, 0), route6(LIP6 & !0xffff, 1)]);
    net.lport_range = (1025, 1100);
    net.laddrs.insert(key, vec![IpAddr::from(LIP)]);
    net.laddrs.insert(key6, vec![ip6(LIP6)]);
    let mut c = Core::new(0, ConnConfig::new(256), NeighConfig::default());
    c.adopt(Snapshot {
        generation: 1,
        services: t.snapshot(),
        net: Arc::new(net),
    });
    for (i, rs) in RS.iter().enumerate() {
        c.add_static_neighbour(IpAddr::from(*rs), [2, 0, 0, 0, 0, 0x11 + i as u8]);
    }
    c.add_static_neighbour(IpAddr::from(CIP), [2, 0, 0, 0, 0, 0xc1]);
    for (i, rs) in RS6.iter().enumerate() {
        c.add_static_neighbour(ip6(*rs), [2, 0, 0, 0, 0, 0x11 + i as u8]);
    }
    c.add_static_neighbour(ip6(CIP6), [2, 0, 0, 0, 0, 0xc1]);
    c
}

/// Puts the IPv4 header and TCP checksums of an untagged IPv4 TCP frame right, or the TCP
/// checksum of an untagged IPv6 TCP frame without extension headers (frames that are
/// neither are left as they are).
fn fix_sums(f: &mut [u8]) {
    if f.len() >= 74 && f[12..14] == [0x86, 0xdd] && f[14] >> 4 == 6 && f[20] == 6 {
        let end = 54 + usize::from(u16::from_be_bytes([f[18], f[19]]));
        if end < 74 || end > f.len() {
            return;
        }
        f[54 + 16..54 + 18].fill(0);
        let addr = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&f[at..at + 16]).unwrap());
        let (src, dst) = (addr(22), addr(38));
        let pseudo = checksum::pseudo_header_v6(&src, &dst, 6, (end - 54) as u32);
        let sum = !checksum::combine(&[pseudo, checksum::data(&f[54..end])]);
        f[54 + 16..54 + 18].copy_from_slice(&sum.to_be_bytes());
        return;
    }
    if f.len() < 34 || f[12..14] != [8, 0] || f[14] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    if ihl < 20 || total < ihl || 14 + total > f.len() {
        return;
    }
    f[24..26].fill(0);
    let sum = !checksum::data(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    let (l4, end) = (14 + ihl, 14 + total);
    if f[23] != 6 || end - l4 < 20 {
        return;
    }
    f[l4 + 16..l4 + 18].fill(0);
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let pseudo = checksum::pseudo_header_v4(src, dst, 6, (end - l4) as u16);
    let sum = !checksum::combine(&[pseudo, checksum::data(&f[l4..end])]);
    f[l4 + 16..l4 + 18].copy_from_slice(&sum.to_be_bytes());
}

/// A verdict reduced to what two cores can be compared on.
fn verdict(out: Out<VecBuf>) -> (u8, String, Vec<u8>) {
    match out {
        Out::Tx(p, port) => (0, port.to_string(), p.data().to_vec()),
        Out::Handoff(p, w) => (1, w.to_string(), p.data().to_vec()),
        Out::Drop(p, r) => (2, r.name(), p.data().to_vec()),
        Out::Consumed(p) => (3, String::new(), p.data().to_vec()),
        Out::Held => (4, String::new(), Vec::new()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, mut rest)) = data.split_first() else {
        return;
    };
    let fwd = [
        FwdMethod::FullNat,
        FwdMethod::Masq,
        FwdMethod::Route,
        FwdMethod::Tunnel,
    ][usize::from(how & 3)];
    let mut frames = Vec::new();
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let mut f = tail[..n].to_vec();
        if how & 4 != 0 {
            fix_sums(&mut f);
        }
        frames.push(f);
        rest = &tail[n..];
        if frames.len() == 64 {
            break;
        }
    }
    let (mut one, mut burst) = (core(fwd), core(fwd));
    let mut want = Vec::new();
    for f in &frames {
        want.push(verdict(one.process(VecBuf::new(64, f), 0, 7, true)));
        if let Some((port, len)) = one.take_generated() {
            want.push((9, port.to_string(), one.scratch()[..len].to_vec()));
        }
    }
    let mut got = Vec::new();
    burst.process_burst(
        frames.iter().map(|f| VecBuf::new(64, f)),
        7,
        true,
        |_| 0,
        |e| match e {
            Emit::Packet(out) => got.push(verdict(out)),
            Emit::Generated(port, frame) => got.push((9, port.to_string(), frame.to_vec())),
        },
    );
    assert_eq!(got, want);
    assert_eq!(one.counters(), burst.counters());
    assert_eq!(one.conns().len(), burst.conns().len());
});
