//! Sync of IPv6 sessions, master to standby, against packets built with etherparse: a
//! master worker opens NAT, FULLNAT (IPv6 LIP) and NAT64 FULLNAT (IPv6 client, IPv4
//! LIP and real servers) sessions; its records go through the wire format
//! ([`crate::sync::wire`]) to a standby worker of the same configuration, which then
//! forwards the session's next client packet and its server's reply as the master does.

use super::*;
use crate::buf::VecBuf;
use crate::conn::SyncRules;
use crate::flow::Addr;
use crate::steer::{owner_of_client6, owner_of_port, sync_owner};
use crate::sync::wire::{decode, MessageBuilder, Record};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

// The configuration of `tests6.rs`: an IPv6 TCP service VIP:80 with RS1 and RS2 (IPv4
// ones for NAT64), and its workers.
use super::tests6::{
    core6, o, v6, CIP, CLIENT_MAC, LIP, LIP_4, PORT0_MAC, PORT1_MAC, RS1, RS1_4, RS1_MAC, RS2_MAC,
    VIP,
};

/// A TCP segment from the client side (`flags`: "S" a SYN, else an ACK with data).
fn from_client(src: Ipv6Addr, sport: u16, seq: u32, syn: bool, payload: &[u8]) -> VecBuf {
    let mut v = Vec::new();
    let b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv6(src.octets(), o(VIP), 64)
        .tcp(sport, 80, seq, 64000);
    let b = if syn { b.syn() } else { b.ack(9001).psh() };
    b.write(&mut v, payload).unwrap();
    VecBuf::new(128, &v)
}

/// A TCP segment from a real server `rs:rport` to `dst:dport` (either family).
fn from_server(rs: IpAddr, rport: u16, dst: IpAddr, dport: u16, syn: bool) -> VecBuf {
    let mac = if rs == IpAddr::from(v6(RS1)) || rs == IpAddr::from(Ipv4Addr::from(RS1_4)) {
        RS1_MAC
    } else {
        RS2_MAC
    };
    let b = PacketBuilder::ethernet2(mac, PORT1_MAC);
    let b = match (rs, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
        (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    let b = b.tcp(rport, dport, 9000, 64000);
    let b = if syn {
        b.syn().ack(1001)
    } else {
        b.ack(1006).psh()
    };
    let mut v = Vec::new();
    b.write(&mut v, if syn { b"" } else { b"hello" }).unwrap();
    VecBuf::new(128, &v)
}

/// What a worker did with a packet, comparable across workers.
#[derive(Debug, PartialEq)]
enum Seen {
    /// Sent on this port, these bytes.
    Tx(u16, Vec<u8>),
    /// Handed to this worker.
    Handoff(u32),
    /// Dropped for this reason.
    Drop(String),
    /// Anything else.
    Other(String),
}

fn seen(out: Out<VecBuf>) -> Seen {
    match out {
        Out::Tx(b, port) => Seen::Tx(port, b.data().to_vec()),
        Out::Handoff(_, w) => Seen::Handoff(w),
        Out::Drop(_, r) => Seen::Drop(format!("{r:?}")),
        other => Seen::Other(format!("{other:?}")),
    }
}

/// Source, destination (addresses and ports) of a transmitted TCP frame of either
/// family, its TCP checksum checked.
fn ends(f: &[u8]) -> ((IpAddr, u16), (IpAddr, u16)) {
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("not TCP: {p:?}")
    };
    let (s, d): (IpAddr, IpAddr) = match &p.net {
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let sum = t.calc_checksum_ipv6(h.source(), h.destination()).unwrap();
            assert_eq!(t.checksum(), sum);
            (h.source_addr().into(), h.destination_addr().into())
        }
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let sum = t.calc_checksum_ipv4(h.source(), h.destination()).unwrap();
            assert_eq!(t.checksum(), sum);
            (h.source_addr().into(), h.destination_addr().into())
        }
        other => panic!("{other:?}"),
    };
    ((s, t.source_port()), (d, t.destination_port()))
}

/// The records a master sends for a connection from `cip:cport` on worker `id` of
/// `workers` (SYN, the server's SYN-ACK, the client's ACK and first data: the record
/// goes at its third client packet, ESTABLISHED), through the wire format and back.
/// Returns the master too.
fn master_records(
    fwd: FwdMethod,
    nat64: bool,
    id: usize,
    workers: usize,
    cip: Ipv6Addr,
    cport: u16,
) -> (Core<VecBuf>, Vec<SyncConn>, Vec<u8>) {
    let mut m = core6(fwd, id, workers, nat64);
    m.set_sync_master(Some(SyncRules::default()));
    let _ = m.process(from_client(cip, cport, 1000, true, b""), 0, 0, true);
    let (_, s) = m.conns().iter().next().expect("the SYN opened a session");
    let (rs, rport, lip, lport) = (s.daddr().to_ip(), s.dport(), s.laddr().to_ip(), s.lport());
    let to = if fwd == FwdMethod::FullNat {
        (lip, lport)
    } else {
        (cip.into(), cport)
    };
    let _ = m.process(from_server(rs, rport, to.0, to.1, true), 1, 1, true);
    let _ = m.process(from_client(cip, cport, 1001, false, b""), 0, 2, true);
    assert_eq!(m.take_sync().count(), 0, "not before the third packet");
    let _ = m.process(from_client(cip, cport, 1001, false, b"GET /"), 0, 3, true);
    let sent: Vec<SyncConn> = m.take_sync().collect();
    assert_eq!(sent.len(), 1, "{fwd:?} nat64 {nat64}: {sent:?}");
    let mut b = MessageBuilder::new(1, 1472);
    assert!(sent.iter().all(|r| b.push(r)));
    let msg = b.bytes().to_vec();
    let mut recs = Vec::new();
    decode(&msg, &mut recs).unwrap();
    let got: Vec<SyncConn> = recs
        .iter()
        .map(|r| match r {
            Record::Conn(c) => *c,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, sent, "the wire format keeps every field");
    (m, got, msg)
}

/// The session's next client segment and its server's reply, on master and standby
/// (and in one burst on `sb`, a second standby): the same frames out, or the same
/// verdict.
fn next_packets(
    fwd: FwdMethod,
    m: &mut Core<VecBuf>,
    s: &mut Core<VecBuf>,
    sb: &mut Core<VecBuf>,
    cport: u16,
) {
    let cip = v6(CIP);
    let (_, ses) = m.conns().iter().next().unwrap();
    let (rs, rport, lip, lport) = (
        ses.daddr().to_ip(),
        ses.dport(),
        ses.laddr().to_ip(),
        ses.lport(),
    );
    let req = || from_client(cip, cport, 1006, false, b"more");
    let (a, b) = (
        seen(m.process(req(), 0, 10, true)),
        seen(s.process(req(), 0, 10, true)),
    );
    assert_eq!(b, a, "{fwd:?}: the client's next segment");
    let to = if fwd == FwdMethod::FullNat {
        (lip, lport)
    } else {
        (cip.into(), cport)
    };
    let rep = || from_server(rs, rport, to.0, to.1, false);
    let (c, d) = (
        seen(m.process(rep(), 1, 11, true)),
        seen(s.process(rep(), 1, 11, true)),
    );
    assert_eq!(d, c, "{fwd:?}: the server's reply");
    let mut by_burst = Vec::new();
    sb.process_burst(
        [req(), rep()],
        10,
        true,
        |p| u16::from(p.data()[6..12] != CLIENT_MAC),
        |e| {
            if let Emit::Packet(o) = e {
                by_burst.push(seen(o));
            }
        },
    );
    assert_eq!(by_burst, [a, c], "{fwd:?}: the burst path does the same");
    // NAT, FULLNAT and NAT64 forward (NAT64: IPv4 toward the server, IPv6 back).
    {
        let Seen::Tx(port, f) = b else {
            panic!("{fwd:?}: {b:?}")
        };
        assert_eq!(port, 1);
        let want_src = if fwd == FwdMethod::FullNat {
            (lip, lport)
        } else {
            (cip.into(), cport)
        };
        assert_eq!(ends(&f), (want_src, (rs, rport)));
        let Seen::Tx(port, f) = d else {
            panic!("{fwd:?}: {d:?}")
        };
        assert_eq!(port, 0);
        assert_eq!(ends(&f), ((v6(VIP).into(), 80), (cip.into(), cport)));
        assert_eq!(&f[..6], &CLIENT_MAC);
    }
}

#[test]
fn ipv6_nat_fullnat_and_nat64_sessions_are_synced_and_forwarded_alike_by_the_standby() {
    for (fwd, nat64) in [
        (FwdMethod::Masq, false),
        (FwdMethod::FullNat, false),
        (FwdMethod::FullNat, true),
    ] {
        let (mut m, recs, _) = master_records(fwd, nat64, 0, 1, v6(CIP), 40001);
        let r = recs[0];
        assert!(r.v6, "an IPv6 record");
        assert_eq!((r.caddr, r.cport), (Addr::from(v6(CIP)), 40001));
        assert_eq!((r.vaddr, r.vport), (Addr::from(v6(VIP)), 80));
        assert_eq!(r.daddr.is_v4(), nat64, "{fwd:?}: the server's family");
        match (fwd, nat64) {
            (FwdMethod::Masq, _) => assert_eq!(r.local, None),
            (_, false) => assert_eq!(r.local.map(|l| l.0), Some(Addr::from(v6(LIP)))),
            (_, true) => assert_eq!(
                r.local.map(|l| l.0),
                Some(Addr::from(Ipv4Addr::from(LIP_4)))
            ),
        }
        let mut s = core6(fwd, 0, 1, nat64);
        assert_eq!(s.install_synced(&r, 5), Ok(true), "{fwd:?} nat64 {nat64}");
        assert_eq!(s.sync_counters().installed, 1);
        // The standby's session is the master's.
        let (_, a) = m.conns().iter().next().unwrap();
        let (_, b) = s.conns().iter().next().unwrap();
        let view = |x: &crate::conn::Session| {
            (
                (x.caddr(), x.cport(), x.vaddr(), x.vport()),
                (x.daddr(), x.dport(), x.laddr(), x.lport()),
                (x.fwd(), x.state_name()),
            )
        };
        assert_eq!(view(b), view(a));
        if fwd == FwdMethod::FullNat {
            // Its local port is taken in the standby's pool: a second record for it
            // (another client) is refused.
            let mut other = r;
            other.cport += 1;
            assert_eq!(
                s.install_synced(&other, 5),
                Err(crate::conn::SyncRefuse::LocalPortBusy)
            );
        }
        let mut sb = core6(fwd, 0, 1, nat64);
        assert_eq!(sb.install_synced(&r, 5), Ok(true));
        next_packets(fwd, &mut m, &mut s, &mut sb, 40001);
    }
}

#[test]
fn an_ipv6_nat_record_from_the_master_is_the_kernels_ip_vs_sync_v6() {
    let (m, recs, msg) = master_records(FwdMethod::Masq, false, 0, 1, v6(CIP), 40001);
    let (_, s) = m.conns().iter().next().unwrap();
    let rs = if s.daddr() == Addr::from(v6(RS1)) {
        "11"
    } else {
        "12"
    };
    // struct ip_vs_sync_mesg, then struct ip_vs_sync_v6 (include/net/ip_vs.h), written
    // from the kernel's definitions: what a kernel backup reads.
    let want = [
        // reserved 0, syncid 1, size 80, nr_conns 1, version 1, spare 0
        "00 01 00 50 01 01 00 00",
        // type STYPE_F_INET6, protocol TCP, ver_size (version 0, 72 bytes)
        "01 06 00 48",
        // flags: IP_VS_CONN_F_MASQ; state: IP_VS_TCP_S_ESTABLISHED
        "00 00 00 00 00 01",
        // cport 40001, vport 80, dport 8080
        "9c 41 00 50 1f 90",
        // fwmark 0, timeout 900 s (the ESTABLISHED timeout)
        "00 00 00 00 00 00 03 84",
        // caddr 2001:db8:1::2, vaddr 2001:db8:1::100
        "20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 02",
        "20 01 0d b8 00 01 00 00 00 00 00 00 00 00 01 00",
        // daddr 2001:db8:2::11 or ::12
        "20 01 0d b8 00 02 00 00 00 00 00 00 00 00 00",
        rs,
    ]
    .join(" ");
    let want: Vec<u8> = want
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    assert_eq!(msg, want, "{recs:?}");
}

#[test]
fn a_synced_ipv6_session_lands_on_the_worker_its_packets_reach() {
    // Two workers on each director. The master opens sessions on the worker owning the
    // client; the standby's workers install a record only where `sync_owner` puts it,
    // and that is the worker its client's packets and its server's replies are steered
    // to (the others hand them over).
    let workers = 2;
    for (fwd, nat64) in [
        (FwdMethod::Masq, false),
        (FwdMethod::FullNat, false),
        (FwdMethod::FullNat, true),
    ] {
        let mut owners = std::collections::HashSet::new();
        for k in 0..8u16 {
            let cip = v6(&format!("2001:db8:1::{:x}", 0x1000 + k));
            let cport = 41000 + k;
            let w = owner_of_client6(cip, workers);
            let (mut m, recs, _) = master_records(fwd, nat64, w, workers, cip, cport);
            let r = recs[0];
            let owner = sync_owner(&r, workers);
            owners.insert(owner);
            assert_eq!(owner, w, "{fwd:?}: the master's worker");
            let mut s: Vec<Core<VecBuf>> = (0..workers)
                .map(|i| core6(fwd, i, workers, nat64))
                .collect();
            assert_eq!(s[owner].install_synced(&r, 5), Ok(true));
            if fwd == FwdMethod::FullNat {
                // Its local port is in the owner's slice only.
                assert_eq!(
                    s[1 - owner].install_synced(&r, 5),
                    Err(crate::conn::SyncRefuse::LocalPortBusy)
                );
            }
            let (_, ses) = m.conns().iter().next().unwrap();
            let (rs, rport, lip, lport) = (
                ses.daddr().to_ip(),
                ses.dport(),
                ses.laddr().to_ip(),
                ses.lport(),
            );
            let req = || from_client(cip, cport, 1006, false, b"more");
            let other = 1 - owner;
            assert_eq!(
                seen(s[other].process(req(), 0, 10, true)),
                Seen::Handoff(owner as u32)
            );
            assert_eq!(
                seen(s[owner].process(req(), 0, 10, true)),
                seen(m.process(req(), 0, 10, true)),
                "{fwd:?} nat64 {nat64}: the owner forwards as the master"
            );
            let to = if fwd == FwdMethod::FullNat {
                assert_eq!(owner_of_port(lport, workers), owner);
                (lip, lport)
            } else {
                (cip.into(), cport)
            };
            let rep = || from_server(rs, rport, to.0, to.1, false);
            assert_eq!(
                seen(s[other].process(rep(), 1, 11, true)),
                Seen::Handoff(owner as u32),
                "{fwd:?} nat64 {nat64}: the reply goes to the owner"
            );
            assert_eq!(
                seen(s[owner].process(rep(), 1, 11, true)),
                seen(m.process(rep(), 1, 11, true)),
                "{fwd:?} nat64 {nat64}: the reply"
            );
        }
        assert_eq!(owners.len(), workers, "{fwd:?}: both workers own some");
    }
}
