//! No rewrite allocates: classify + every forwarding rewrite (NAT64 included), an ACL
//! lookup, the fragment table and a worker's burst path (new FULLNAT sessions and their
//! established packets) run under a counting global allocator and the count of
//! allocations on the test's thread stays 0.
//!
//! This file is its own test binary, so the `#[global_allocator]` affects nothing else.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use etherparse::{icmpv4::DestUnreachableHeader, Icmpv4Type, PacketBuilder};
use rvs_dataplane::buf::{PacketBuf, VecBuf};
use rvs_dataplane::flow::FwdMethod;
use rvs_dataplane::forward::{self, icmp, nat64, tun, Egress, MacRewrite, Plan};
use rvs_dataplane::wire::{
    classify, classify_v4_flow, ChecksumMode, Classified, Error, EthernetAddress, IpMeta,
};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    // try_with: the slot may already be gone while a thread is being torn down.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System`, which upholds the `GlobalAlloc` contract;
// counting touches only a const-initialised thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(|c| c.get())
}

const CIP: [u8; 4] = [203, 0, 113, 5];
const VIP: [u8; 4] = [192, 168, 1, 100];
const RIP: [u8; 4] = [10, 1, 1, 2];
const LIP: [u8; 4] = [10, 1, 1, 250];
const MAC_C: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_D: [u8; 6] = [2, 0, 0, 0, 0, 2];

type End = Option<([u8; 4], u16)>;

fn plan(fwd: FwdMethod, src: End, dst: End, toward: [u8; 4]) -> Plan {
    Plan {
        fwd,
        src,
        dst,
        toward: toward.into(),
        encap: Default::default(),
    }
}

/// `plan` applied to the classified packet in `buf`.
fn apply(plan: &Plan, buf: &mut VecBuf, eg: &Egress) -> Result<(), Error> {
    let m = meta(buf.data());
    plan.apply(buf, &forward::Layout::of(&m), eg)
}

fn tcp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, ttl: u8, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv4(src, dst, ttl)
        .tcp(sp, dp, 1, 1000)
        .write(&mut v, &vec![7u8; len])
        .unwrap();
    v
}

fn meta(frame: &[u8]) -> IpMeta {
    match classify(frame, ChecksumMode::Software) {
        Ok(Classified::Ip(m)) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn rewrites_do_not_allocate() {
    use rvs_dataplane::acl::{Acl, AclAction, AclRule};
    let acl = Acl::new(
        &(0..1000u32)
            .map(|i| {
                let a = std::net::Ipv4Addr::from(i.wrapping_mul(0x9e37_79b9));
                let action = if i % 3 == 0 {
                    AclAction::Allow
                } else {
                    AclAction::Deny
                };
                AclRule::new(a.into(), 4 + (i % 29) as u8, action)
            })
            .collect::<Vec<_>>(),
    );
    let eg = Egress {
        macs: MacRewrite {
            src: EthernetAddress(MAC_D),
            dst: EthernetAddress([2, 0, 0, 0, 0, 3]),
        },
        tunnel_src: [10, 1, 1, 1].into(),
        mtu: 1500,
    };
    let nat_req = plan(FwdMethod::Masq, None, Some((RIP, 8080)), RIP);
    let nat_rep = plan(FwdMethod::Masq, Some((VIP, 80)), None, CIP);
    let fn_req = plan(
        FwdMethod::FullNat,
        Some((LIP, 40000)),
        Some((RIP, 8080)),
        RIP,
    );
    let fn_rep = plan(FwdMethod::FullNat, Some((VIP, 80)), Some((CIP, 5555)), CIP);
    let drp = plan(FwdMethod::Route, None, None, RIP);
    let tunp = plan(FwdMethod::Tunnel, None, None, RIP);

    let req = tcp(CIP, 5555, VIP, 80, 64, 10);
    let rep = tcp(RIP, 8080, CIP, 5555, 64, 10);
    let frep = tcp(RIP, 8080, LIP, 40000, 64, 10);
    let big = tcp(CIP, 5555, VIP, 80, 64, 1500 - 40);
    let dead = tcp(CIP, 5555, VIP, 80, 1, 10);
    let mut inner = Vec::new();
    PacketBuilder::ipv4(CIP, RIP, 60)
        .udp(5555, 8080)
        .write(&mut inner, b"abcdefgh")
        .unwrap();
    let mut icmp_err = Vec::new();
    PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv4(RIP, CIP, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            DestUnreachableHeader::Port,
        ))
        .write(&mut icmp_err, &inner[..28])
        .unwrap();

    // NAT64: a client's IPv6 segment, a server's IPv4 one, a packet-too-big about a
    // reply and a fragmentation-needed about a request.
    let (cip6, vip6, router6) = (
        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80],
        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    let mut tcp6 = Vec::new();
    PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv6(cip6, vip6, 64)
        .tcp(5555, 80, 1, 1000)
        .write(&mut tcp6, b"request")
        .unwrap();
    let mut reply6 = Vec::new();
    PacketBuilder::ipv6(vip6, cip6, 64)
        .udp(80, 5555)
        .write(&mut reply6, b"reply")
        .unwrap();
    let mut ptb = Vec::new();
    PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv6(router6, vip6, 64)
        .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1400 })
        .write(&mut ptb, &reply6)
        .unwrap();
    let mut sent4 = Vec::new();
    PacketBuilder::ipv4(LIP, RIP, 63)
        .tcp(40000, 8080, 1, 1000)
        .write(&mut sent4, b"request")
        .unwrap();
    let mut frag_needed = Vec::new();
    PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv4(RIP, LIP, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut frag_needed, &sent4)
        .unwrap();
    let ends4 = nat64::V4Ends {
        src: LIP.into(),
        dst: RIP.into(),
        sport: 40000,
        dport: 8080,
    };
    let ends6 = nat64::V6Ends {
        src: vip6.into(),
        dst: cip6.into(),
        sport: 80,
        dport: 5555,
    };

    // Sized for the largest frame, so `refill` never grows the Vec.
    let mut buf = VecBuf::new(128, &big);
    let mut out = vec![0u8; 256];
    // Warm up anything lazily initialised (nothing should be, but be fair).
    let _ = classify(&req, ChecksumMode::Software);

    let before = allocs();
    buf.refill(128, &req);
    assert!(apply(&nat_req, &mut buf, &eg).is_ok());

    buf.refill(128, &rep);
    assert!(apply(&nat_rep, &mut buf, &eg).is_ok());

    buf.refill(128, &req);
    assert!(apply(&drp, &mut buf, &eg).is_ok());

    buf.refill(128, &req);
    assert!(matches!(apply(&tunp, &mut buf, &eg), Ok(())));

    // Too big for the tunnel with DF: refused, and frag-needed built for the client.
    buf.refill(128, &big);
    let m = meta(buf.data());
    assert_eq!(apply(&tunp, &mut buf, &eg), Err(Error::Oversize));
    assert!(tun::frag_needed(buf.data(), &m, &tunp.tunnel(&eg), &mut out).is_ok());

    // The established lane's reading and encapsulation.
    buf.refill(128, &req);
    assert!(classify_v4_flow(buf.data()).is_some());
    let inner = tun::Inner::of(&meta(buf.data()));
    assert!(tun::encapsulate(&mut buf, &inner, &tunp.tunnel(&eg)).is_ok());

    buf.refill(128, &req);
    assert!(apply(&fn_req, &mut buf, &eg).is_ok());

    buf.refill(128, &frep);
    assert!(apply(&fn_rep, &mut buf, &eg).is_ok());

    buf.refill(128, &icmp_err);
    let m = meta(buf.data());
    assert!(icmp::translate(&mut buf, &m, &nat_rep, &eg.macs).is_ok());

    buf.refill(128, &dead);
    assert_eq!(apply(&nat_req, &mut buf, &eg), Err(Error::TtlExpired));

    // The established lane: its layout read from the flow, then the plan applied.
    buf.refill(128, &req);
    let f = classify_v4_flow(buf.data()).unwrap();
    let at = forward::Layout {
        l3: usize::from(f.l3),
        l4: usize::from(f.l4),
        ip_end: usize::from(f.ip_end),
        udp: f.udp,
    };
    assert!(fn_req.apply(&mut buf, &at, &eg).is_ok());

    // NAT64 both ways, and its ICMP errors.
    buf.refill(128, &tcp6);
    assert!(nat64::v6_to_v4(&mut buf, &ends4, true).is_ok());
    assert!(nat64::v4_to_v6(&mut buf, &ends6, true).is_ok());
    buf.refill(128, &ptb);
    let outer4 = (LIP.into(), RIP.into());
    assert!(nat64::icmp6_error_to_v4(&mut buf, outer4, &ends4, true, 1500).is_ok());
    buf.refill(128, &frag_needed);
    let outer6 = (vip6.into(), cip6.into());
    assert!(nat64::icmp4_error_to_v6(&mut buf, outer6, &ends6, true, 1500).is_ok());
    assert!(nat64::v6_to_v4(&mut buf, &ends4, true).is_err());

    // Garbage is rejected without allocating either.
    assert!(classify(&req[..20], ChecksumMode::Software).is_err());

    // An ACL lookup (the list built before counting).
    let hits = (0..1000u32)
        .filter(|i| acl.denies_v4(std::net::Ipv4Addr::from(i.wrapping_mul(2654435761))))
        .count();
    assert!(hits > 0 && hits < 1000);
    let after = allocs();
    assert_eq!(
        after - before,
        0,
        "rewrites allocated {} times",
        after - before
    );

    // The counter works.
    let v = vec![1u8; 100];
    assert!(allocs() > after);
    drop(v);
}

#[test]
fn ipv6_rewrites_and_messages_do_not_allocate() {
    use rvs_dataplane::forward::{icmp6, At6, Egress6, Plan6};
    use rvs_dataplane::wire::{classify_v6_flow, icmpv6};
    use std::net::{IpAddr, Ipv6Addr};
    let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let (c, v, r, l, d) = (
        a("2001:db8::2"),
        a("2001:db8::100"),
        a("2001:db8:2::11"),
        a("2001:db8:2::200"),
        a("2001:db8:2::1"),
    );
    let eg = Egress6 {
        macs: MacRewrite {
            src: EthernetAddress(MAC_D),
            dst: EthernetAddress([2, 0, 0, 0, 0, 3]),
        },
        tunnel_src: IpAddr::V6(d),
        mtu: 1500,
    };
    let plan6 =
        |fwd, src: Option<(Ipv6Addr, u16)>, dst: Option<(Ipv6Addr, u16)>, toward: Ipv6Addr| Plan6 {
            fwd,
            src: src.map(|(a, p)| (IpAddr::V6(a), p)),
            dst: dst.map(|(a, p)| (IpAddr::V6(a), p)),
            toward: IpAddr::V6(toward),
        };
    let plans = [
        plan6(FwdMethod::Masq, None, Some((r, 8080)), r),
        plan6(FwdMethod::FullNat, Some((l, 40000)), Some((r, 8080)), r),
        plan6(FwdMethod::Route, None, None, r),
        plan6(FwdMethod::Tunnel, None, None, r),
    ];
    let tcp6 = |len: usize| {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_C, MAC_D)
            .ipv6(c.octets(), v.octets(), 64)
            .tcp(5555, 80, 1, 1000)
            .write(&mut f, &vec![0u8; len])
            .unwrap();
        f
    };
    let req = tcp6(10);
    let big = tcp6(1500 - 60);
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv6(c.octets(), v.octets(), 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut ping, b"ping")
        .unwrap();
    let mut buf = VecBuf::new(128, &big);
    let mut out = vec![0u8; 1600];
    let _ = classify(&req, ChecksumMode::Software);
    let before = allocs();
    for p in &plans {
        buf.refill(128, &req);
        let f = classify_v6_flow(buf.data()).unwrap();
        let at = At6 {
            at: forward::Layout {
                l3: usize::from(f.l3),
                l4: usize::from(f.l4),
                ip_end: usize::from(f.ip_end),
                udp: f.udp,
            },
            version: rvs_dataplane::wire::IpVersion::V6,
            tos: f.tclass,
            dont_frag: true,
        };
        assert!(p.apply(&mut buf, &at, &eg).is_ok());
    }
    // Too big for ip6ip6: refused, Packet Too Big built.
    buf.refill(128, &big);
    let m = meta(buf.data());
    assert_eq!(
        plans[3].apply(&mut buf, &At6::of(&m), &eg),
        Err(Error::Oversize)
    );
    let msg = (icmpv6::Message::PKT_TOO_BIG, 0, 1460);
    assert!(icmp6::originate(buf.data(), &m, d, msg, &mut out).is_ok());
    buf.refill(128, &ping);
    let m = meta(buf.data());
    assert!(icmp6::echo_reply(&mut buf, &m).is_ok());
    let mut na = [0u8; 96];
    assert!(icmpv6::emit_neighbor_advert(&mut na, &c, &v, MAC_D).is_ok());
    let after = allocs();
    assert_eq!(
        after - before,
        0,
        "IPv6 paths allocated {} times",
        after - before
    );
}

/// The fragment table allocates nothing after it is made: datagrams come and go (held,
/// decided, completed, refused when it is full, timed out) many times over its bound.
#[test]
fn the_fragment_table_does_not_allocate() {
    use rvs_dataplane::frag::{Admit, FragConfig, FragKey, FragTable};
    use std::net::{IpAddr, Ipv4Addr};
    let cfg = FragConfig {
        max_datagrams: 64,
        max_held: 128,
        timeout_ms: 50,
    };
    let mut t: FragTable<u32, u8> = FragTable::new(cfg);
    let before = allocs();
    let mut seen = 0u64;
    for i in 0..20_000u32 {
        let key = FragKey {
            src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i % 97))),
            dst: IpAddr::V4(Ipv4Addr::new(10, 10, 0, 100)),
            proto: 17,
            ident: i,
        };
        let now = u64::from(i);
        // Later fragments first (held), then the first, which releases them; every
        // seventh datagram's first never comes (it times out).
        for off in [2960u16, 1480] {
            let more = off != 2960;
            match t.admit(
                key,
                off,
                if more { 1480 } else { 1048 },
                more,
                i,
                now,
                |_| {},
            ) {
                Admit::Held | Admit::Drop(..) => {}
                other => panic!("{other:?}"),
            }
        }
        if i % 7 != 0 {
            if let Admit::First(_) = t.admit(key, 0, 1480, true, i, now, |_| {}) {
                t.decided(&key, 1, |_, _| seen += 1);
            }
        }
        t.age(now, |_| {});
    }
    assert_eq!(allocs(), before, "the fragment table allocated");
    assert!(seen > 10_000, "datagrams were released: {seen}");
}

/// A worker's burst path allocates nothing once its core is made: SYNs of new FULLNAT
/// flows over IPv4 and IPv6 (the SYN lanes: scheduling, the LIP port, the session and
/// both index entries) and the flows' established packets (the fast paths), bursts after
/// bursts.
#[test]
fn new_sessions_and_established_packets_in_bursts_do_not_allocate() {
    use rvs_dataplane::conn::ConnConfig;
    use rvs_dataplane::flow::{Addr, Proto};
    use rvs_dataplane::neigh::NeighConfig;
    use rvs_dataplane::pipeline::{Core, Emit, LocalKind, NetConfig, Out, PortNet, Snapshot};
    use rvs_dataplane::route::{Route, Route6, RouteTable};
    use rvs_dataplane::service::{DestConfig, SchedKind, ServiceConfig, ServiceKey, ServiceTable};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;

    let (vip, lip, rs) = ([10, 10, 0, 100], [10, 20, 0, 200], [10, 20, 0, 11]);
    let v6 = |s: &str| s.parse::<Ipv6Addr>().expect("IPv6 address");
    let (cip6, vip6, lip6, rs6) = (
        v6("2001:db8:1::2"),
        v6("2001:db8:1::100"),
        v6("2001:db8:2::200"),
        v6("2001:db8:2::11"),
    );
    let mut t = ServiceTable::new();
    let mut keys = Vec::new();
    for (vip, rs) in [
        (IpAddr::from(vip), IpAddr::from(rs)),
        (vip6.into(), rs6.into()),
    ] {
        let key = ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: Addr::from(vip),
            port: 80,
        };
        t.add_service(ServiceConfig::new(key, SchedKind::Rr))
            .expect("service");
        let dest = DestConfig::new(Addr::from(rs), 80, FwdMethod::FullNat);
        t.add_dest(&key, dest).expect("rs");
        keys.push(key);
    }
    let mut net = NetConfig::new(1);
    let port = |last| PortNet {
        mac: [2, 0, 0, 0, 0, last],
        mtu: 1500,
        vlan: None,
    };
    net.ports = vec![port(0xd0), port(0xd1)];
    net.local.insert(Ipv4Addr::from(vip), (LocalKind::Vip, 0));
    net.local.insert(Ipv4Addr::from(lip), (LocalKind::Lip, 1));
    let route = |prefix: [u8; 4], port| Route {
        prefix: Ipv4Addr::from(prefix),
        len: 24,
        port,
        gateway: None,
    };
    net.local6.insert(vip6, (LocalKind::Vip, 0));
    net.local6.insert(lip6, (LocalKind::Lip, 1));
    let route6 = |prefix: &str, port| Route6 {
        prefix: v6(prefix),
        len: 64,
        port,
        gateway: None,
    };
    net.routes = RouteTable::new(vec![route([10, 10, 0, 0], 0), route([10, 20, 0, 0], 1)])
        .with_v6(vec![route6("2001:db8:1::", 0), route6("2001:db8:2::", 1)]);
    net.laddrs.insert(keys[0], vec![IpAddr::from(lip)]);
    net.laddrs.insert(keys[1], vec![lip6.into()]);
    let mut core = Core::new(0, ConnConfig::new(8192), NeighConfig::default());
    core.adopt(Snapshot {
        generation: 1,
        services: t.snapshot(),
        net: Arc::new(net),
    });
    core.add_static_neighbour(IpAddr::from(rs), [2, 0, 0, 0, 0, 0x11]);
    core.add_static_neighbour(IpAddr::from([10, 10, 0, 2]), [2, 0, 0, 0, 0, 0xc1]);
    core.add_static_neighbour(rs6.into(), [2, 0, 0, 0, 0, 0x11]);
    core.add_static_neighbour(cip6.into(), [2, 0, 0, 0, 0, 0xc1]);

    // Flows of even source ports over IPv4, of odd ones over IPv6.
    let frame = |sport: u16, syn: bool| {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xc1], [2, 0, 0, 0, 0, 0xd0]);
        let b = if sport.is_multiple_of(2) {
            b.ipv4([10, 10, 0, 2], vip, 64)
        } else {
            b.ipv6(cip6.octets(), vip6.octets(), 64)
        };
        let mut b = b.tcp(sport, 80, 1000, 65535);
        b = if syn { b.syn() } else { b.ack(1) };
        let mut v = Vec::new();
        b.write(&mut v, b"").expect("build");
        v
    };
    // Frames and buffers made up front, the buffers refilled: the test allocates nothing
    // in the measured loop either.
    let rounds = 64u16;
    let syns: Vec<Vec<u8>> = (0..32 * (rounds + 1))
        .map(|i| frame(1000 + i, true))
        .collect();
    let acks: Vec<Vec<u8>> = (0..32 * (rounds + 1))
        .map(|i| frame(1000 + i, false))
        .collect();
    let mut bufs: Vec<VecBuf> = (0..32).map(|_| VecBuf::new(64, &syns[0])).collect();
    let mut out: Vec<VecBuf> = Vec::with_capacity(32);
    let mut run = |core: &mut Core<VecBuf>, bufs: &mut Vec<VecBuf>, frames: &[Vec<u8>]| {
        for (b, f) in bufs.iter_mut().zip(frames) {
            b.refill(64, f);
        }
        let mut sent = 0;
        core.process_burst(
            bufs.drain(..),
            5,
            true,
            |_| 0,
            |e| {
                if let Emit::Packet(Out::Tx(p, _)) = e {
                    sent += 1;
                    out.push(p);
                }
            },
        );
        std::mem::swap(bufs, &mut out);
        sent
    };
    // A first round (the core's burst buffers take their size), then the measured ones.
    assert_eq!(run(&mut core, &mut bufs, &syns[..32]), 32);
    assert_eq!(run(&mut core, &mut bufs, &acks[..32]), 32);
    let before = allocs();
    let mut sent = 0;
    for round in 1..=usize::from(rounds) {
        let chunk = round * 32..(round + 1) * 32;
        sent += run(&mut core, &mut bufs, &syns[chunk.clone()]);
        sent += run(&mut core, &mut bufs, &acks[chunk]);
    }
    assert_eq!(allocs(), before, "the burst path allocated");
    assert_eq!(sent, 64 * 64, "every SYN and every ACK forwarded");
    assert_eq!(core.conns().len(), 32 * (u32::from(rounds) + 1));
}
