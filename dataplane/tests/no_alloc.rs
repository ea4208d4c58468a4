//! No rewrite allocates: classify + every forwarding rewrite runs under a counting
//! global allocator and the count of allocations on the test's thread stays 0.
//!
//! This file is its own test binary, so the `#[global_allocator]` affects nothing else.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;

use etherparse::{icmpv4::DestUnreachableHeader, Icmpv4Type, PacketBuilder};
use rvs_dataplane::buf::{PacketBuf, VecBuf};
use rvs_dataplane::forward::{
    dr, fullnat, icmp, nat, tun, DrParams, FullNatParams, MacRewrite, NatParams, Params, TunParams,
    Verdict,
};
use rvs_dataplane::wire::{
    classify, classify_v4_flow, ChecksumMode, Classified, Endpoint, Error, EthernetAddress, IpMeta,
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

fn ep(a: [u8; 4], port: u16) -> Endpoint {
    Endpoint::new(IpAddr::from(a), port)
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
    let macs = MacRewrite {
        src: EthernetAddress(MAC_D),
        dst: EthernetAddress([2, 0, 0, 0, 0, 3]),
    };
    let natp = NatParams {
        virt: ep(VIP, 80),
        real: ep(RIP, 8080),
        macs,
        csum: ChecksumMode::Software,
    };
    let fnp = FullNatParams {
        client: ep(CIP, 5555),
        virt: ep(VIP, 80),
        local: ep(LIP, 40000),
        real: ep(RIP, 8080),
        macs,
        csum: ChecksumMode::Software,
    };
    let tunp = TunParams {
        local: [10, 1, 1, 1].into(),
        real: RIP.into(),
        mtu: 1500,
        macs,
        csum: ChecksumMode::Software,
    };
    let drp = DrParams { macs };

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

    // Sized for the largest frame, so `refill` never grows the Vec.
    let mut buf = VecBuf::new(128, &big);
    let mut out = vec![0u8; 256];
    // Warm up anything lazily initialised (nothing should be, but be fair).
    let _ = classify(&req, ChecksumMode::Software);

    let before = allocs();
    for mode in [ChecksumMode::Software, ChecksumMode::Offload] {
        let natp = NatParams { csum: mode, ..natp };
        let fnp = FullNatParams { csum: mode, ..fnp };
        let tunp = TunParams { csum: mode, ..tunp };

        buf.refill(128, &req);
        let m = meta(buf.data());
        assert!(nat::request(&mut buf, &m, &natp).is_ok());

        buf.refill(128, &rep);
        let m = meta(buf.data());
        assert!(nat::reply(&mut buf, &m, &natp).is_ok());

        buf.refill(128, &req);
        let m = meta(buf.data());
        assert!(dr::request(&mut buf, &m, &drp).is_ok());

        buf.refill(128, &req);
        let m = meta(buf.data());
        assert!(matches!(
            tun::request(&mut buf, &m, &tunp, &mut out),
            Ok(Verdict::Forward(_))
        ));

        buf.refill(128, &big);
        let m = meta(buf.data());
        assert!(matches!(
            tun::request(&mut buf, &m, &tunp, &mut out),
            Ok(Verdict::IcmpReply { .. })
        ));

        // The established lane's reading and encapsulation.
        buf.refill(128, &req);
        assert!(classify_v4_flow(buf.data()).is_some());
        let inner = tun::Inner::of(&meta(buf.data()));
        assert!(tun::encapsulate(&mut buf, &inner, &tunp).is_ok());

        buf.refill(128, &req);
        let m = meta(buf.data());
        assert!(fullnat::request(&mut buf, &m, &fnp).is_ok());

        buf.refill(128, &frep);
        let m = meta(buf.data());
        assert!(fullnat::reply(&mut buf, &m, &fnp).is_ok());

        buf.refill(128, &icmp_err);
        let m = meta(buf.data());
        assert!(icmp::nat_reply(&mut buf, &m, &natp).is_ok());

        buf.refill(128, &dead);
        let m = meta(buf.data());
        assert_eq!(nat::request(&mut buf, &m, &natp), Err(Error::TtlExpired));

        buf.refill(128, &req);
        let m = meta(buf.data());
        assert!(Params::FullNat(fnp).request(&mut buf, &m, &mut out).is_ok());

        // Garbage is rejected without allocating either.
        assert!(classify(&req[..20], ChecksumMode::Software).is_err());
    }
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
