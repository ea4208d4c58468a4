//! rvs benchmarks.
//!
//! - `benches/`: criterion micro-benchmarks (parse, rewrite, lookup, schedule).
//! - `rvs-bench` (`src/bin/rvs-bench.rs`): the line-rate harness that runs the real
//!   engine (`rvs_dataplane::engine::Engine`) on DPDK devices and an I/O floor on the same
//!   devices; see BENCHMARKS.md. This library holds its pure parts: test traffic and pcap
//!   files ([`capture`]), the benchmark network and service table ([`plan`]), and the
//!   results and table ([`report`]), the core clock probe ([`clock`]), and the sweep over session and worker counts with its
//!   plot ([`sweep`]).

#![forbid(unsafe_code)]

pub mod capture;
pub mod clock;
pub mod plan;
pub mod report;
pub mod sweep;

#[cfg(test)]
mod tests {
    use super::capture::{
        build_frame, read_pcap, Kind, PcapWriter, CLIENT_ISN, IPV6_EXTRA, L4, MAX_FRAME, SERVER_ISN,
    };
    use super::plan::{self, Family, Mode};
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use std::net::{IpAddr, Ipv6Addr};

    #[test]
    fn frames_have_the_asked_size_and_valid_checksums() {
        let f = plan::flow(12345, 0);
        for (l4, kind) in [
            (L4::Tcp, Kind::First),
            (L4::Tcp, Kind::Established),
            (L4::Tcp, Kind::Ack),
            (L4::Tcp, Kind::ServerAck(1029)),
            (L4::Udp, Kind::First),
        ] {
            for size in [64usize, 128, 1518] {
                let frame = build_frame(&f, l4, kind, size, 7);
                assert_eq!(frame.len(), size - 4);
                let p = SlicedPacket::from_ethernet(&frame).expect("parses");
                let Some(NetSlice::Ipv4(ip)) = &p.net else {
                    panic!("not IPv4")
                };
                let h = ip.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum());
                assert_eq!(IpAddr::V4(ip.header().source_addr()), f.caddr);
                assert_eq!(ip.header().destination_addr(), plan::VIP);
                let payload = ip.payload().payload;
                match p.transport {
                    Some(TransportSlice::Tcp(t)) => {
                        assert_eq!(t.syn(), kind == Kind::First);
                        assert_eq!(t.ack(), kind != Kind::First);
                        match kind {
                            Kind::Ack => {
                                assert_eq!(t.sequence_number(), CLIENT_ISN + 1);
                                assert!(t.payload().is_empty());
                            }
                            Kind::ServerAck(a) => {
                                assert_eq!(t.sequence_number(), SERVER_ISN + 1);
                                assert_eq!(t.acknowledgment_number(), a);
                                assert!(t.payload().is_empty());
                            }
                            _ => {}
                        }
                        let want = t
                            .to_header()
                            .calc_checksum_ipv4(&h, t.payload())
                            .expect("checksum");
                        assert_eq!(t.checksum(), want);
                        assert_eq!(t.destination_port(), plan::VPORT);
                    }
                    Some(TransportSlice::Udp(u)) => {
                        let want = u
                            .to_header()
                            .calc_checksum_ipv4(&h, u.payload())
                            .expect("checksum");
                        assert_eq!(u.checksum(), want);
                        assert_eq!(usize::from(u.length()), payload.len());
                    }
                    _ => panic!("no transport"),
                }
            }
        }
    }

    /// The kinds of frame the harness sends.
    const KINDS: [(L4, Kind); 5] = [
        (L4::Tcp, Kind::First),
        (L4::Tcp, Kind::Established),
        (L4::Tcp, Kind::Ack),
        (L4::Tcp, Kind::ServerAck(1029)),
        (L4::Udp, Kind::First),
    ];

    #[test]
    fn ipv6_frames_parse_with_valid_checksums_and_carry_the_ipv4_frames_payload() {
        let f6 = plan::flow_of(Family::V6, 12345, 0);
        let f4 = plan::flow_of(Family::V4, 12345, 0);
        assert_eq!(f6.cport, f4.cport);
        for (l4, kind) in KINDS {
            for size in [64usize, 128, 1000, 1498] {
                let frame = build_frame(&f6, l4, kind, size, 7);
                assert_eq!(frame.len(), size + IPV6_EXTRA - 4, "{l4:?} {kind:?} {size}");
                let p = SlicedPacket::from_ethernet(&frame).expect("parses");
                let Some(NetSlice::Ipv6(ip)) = &p.net else {
                    panic!("not IPv6")
                };
                let h = ip.header().to_header();
                assert_eq!(IpAddr::V6(h.source.into()), f6.caddr);
                assert_eq!(Ipv6Addr::from(h.destination), plan::VIP6);
                assert_eq!(h.hop_limit, 64);
                // Frames with data have no padding: the payload fills the frame (a SYN or
                // a bare ACK is padded, as its IPv4 twin).
                if kind == Kind::Established || l4 == L4::Udp {
                    assert_eq!(usize::from(h.payload_length), frame.len() - 14 - 40);
                }
                let frame4 = build_frame(&f4, l4, kind, size, 7);
                let p4 = SlicedPacket::from_ethernet(&frame4).expect("parses");
                let data = |p: &SlicedPacket| match &p.transport {
                    Some(TransportSlice::Tcp(t)) => t.payload().to_vec(),
                    Some(TransportSlice::Udp(u)) => u.payload().to_vec(),
                    _ => panic!("no transport"),
                };
                assert_eq!(data(&p), data(&p4), "the IPv4 frame's payload");
                match &p.transport {
                    Some(TransportSlice::Tcp(t)) => {
                        assert_eq!(t.syn(), kind == Kind::First);
                        assert_eq!(t.ack(), kind != Kind::First);
                        assert_eq!(t.source_port(), f6.cport);
                        assert_eq!(t.destination_port(), plan::VPORT);
                        let want = t
                            .to_header()
                            .calc_checksum_ipv6(&h, t.payload())
                            .expect("checksum");
                        assert_eq!(t.checksum(), want);
                    }
                    Some(TransportSlice::Udp(u)) => {
                        let want = u
                            .to_header()
                            .calc_checksum_ipv6(&h, u.payload())
                            .expect("checksum");
                        assert_eq!(u.checksum(), want);
                        assert_eq!(usize::from(u.length()), usize::from(h.payload_length));
                    }
                    _ => panic!("no transport"),
                }
            }
        }
        // The largest IPv4 frame has no IPv6 twin of the same payload: the frame stays
        // within an Ethernet frame (MTU 1500).
        let big = build_frame(&f6, L4::Tcp, Kind::Established, MAX_FRAME, 0);
        assert_eq!(big.len(), MAX_FRAME - 4);
        assert!(SlicedPacket::from_ethernet(&big).is_ok());
    }

    #[test]
    fn ipv6_flows_are_distinct_clients_of_the_client_prefix_owned_like_the_engine() {
        let prefix = u128::from(plan::CLIENT_BASE6) >> 64;
        let mut seen = std::collections::HashSet::new();
        for i in 0..300_000 {
            let f = plan::flow_of(Family::V6, i, 0);
            let IpAddr::V6(c) = f.caddr else {
                panic!("an IPv4 client")
            };
            assert_eq!(u128::from(c) >> 64, prefix);
            assert_eq!(f.vaddr, IpAddr::V6(plan::VIP6));
            assert!(seen.insert((f.caddr, f.cport)));
        }
        for workers in [1, 2, 3] {
            let sets = plan::partition_of(Family::V6, 10_000, 5, workers);
            assert_eq!(sets.iter().map(Vec::len).sum::<usize>(), 10_000);
            for (w, s) in sets.iter().enumerate() {
                assert!(s.iter().all(|f| rvs_dataplane::steer::owner_of_client6(
                    match f.caddr {
                        IpAddr::V6(a) => a,
                        IpAddr::V4(_) => unreachable!(),
                    },
                    workers
                ) == w));
                assert!(s.len() > 10_000 / workers / 2, "{workers}: {}", s.len());
            }
        }
    }

    #[test]
    fn ipv6_services_and_ports_are_ipv6_everywhere() {
        for mode in [Mode::Nat, Mode::Dr, Mode::Tun, Mode::Fullnat] {
            let p = plan::services_of(Family::V6, mode, L4::Tcp, 3, 0).unwrap();
            assert_eq!(p.vips, vec![IpAddr::V6(plan::VIP6)]);
            let svc = &p.services.services()[0];
            assert_eq!(svc.dests.len(), usize::from(plan::REAL_SERVERS));
            assert!(
                svc.dests.iter().all(|d| d.addr.to_ip().is_ipv6()),
                "{mode:?}"
            );
            let lips: Vec<&IpAddr> = p.laddrs.values().flatten().collect();
            assert_eq!(lips.len(), if mode == Mode::Fullnat { 3 } else { 0 });
            assert!(lips.iter().all(|l| l.is_ipv6()));
        }
        let cfg = plan::engine_config(Vec::new(), "c", Some("s"), "w", 1, 1000, 1000);
        assert_eq!(cfg.ports[0].addrs6, vec![plan::DIP_CLIENT6]);
        assert_eq!(cfg.ports[1].addrs6, vec![plan::DIP_SERVER6]);
        // Every real server of both families is a static neighbour with its MAC.
        for i in 0..plan::REAL_SERVERS {
            for f in [Family::V4, Family::V6] {
                assert!(cfg
                    .static_neighbours
                    .contains(&(plan::real_server_of(f, i), plan::real_server_mac(i))));
            }
        }
        // Real servers are on the server port's IPv6 prefix.
        let (dip, len) = plan::DIP_SERVER6;
        let mask = u128::MAX << (128 - u32::from(len));
        assert_eq!(
            u128::from(plan::real_server6(7)) & mask,
            u128::from(dip) & mask
        );
    }

    #[test]
    fn pcap_round_trip() {
        let dir = std::env::temp_dir().join(format!("rvs-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pcap");
        let mut w = PcapWriter::create(&path).unwrap();
        let frames: Vec<Vec<u8>> = (0..10)
            .map(|i| build_frame(&plan::flow(i, 0), L4::Tcp, Kind::First, 64, 0))
            .collect();
        for f in &frames {
            w.write(f).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 10);
        assert_eq!(read_pcap(&path).unwrap(), frames);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn partition_gives_each_worker_only_its_flows_and_all_flows_once() {
        for workers in [1, 2, 3, 4] {
            let sets = plan::partition(10_000, 0, workers);
            assert_eq!(sets.iter().map(Vec::len).sum::<usize>(), 10_000);
            for (w, s) in sets.iter().enumerate() {
                assert!(s.iter().all(|f| plan::owner(f, workers) == w));
                // Even enough that no worker idles.
                assert!(s.len() > 10_000 / workers / 2, "{workers}: {}", s.len());
            }
        }
        let mut seen = std::collections::HashSet::new();
        for i in 0..300_000 {
            let f = plan::flow(i, 0);
            assert!(seen.insert((f.caddr, f.cport)));
        }
    }

    #[test]
    fn enough_local_addresses_for_the_sessions() {
        for workers in [1usize, 2, 4] {
            for per_worker in [1_000u64, 1_000_000, 10_000_000] {
                let lips = u64::from(plan::lips_needed(per_worker, workers));
                let ports_per_lip = (1025u32..=65535)
                    .filter(|p| (*p as usize).is_multiple_of(workers))
                    .count() as u64;
                assert!(lips * ports_per_lip >= per_worker);
            }
        }
    }

    #[test]
    fn services_build_for_every_mode() {
        for mode in ["nat", "dr", "tun", "fullnat"] {
            let m = Mode::parse(mode).unwrap();
            let p = plan::services(m, L4::Tcp, 3, 0).unwrap();
            assert_eq!(p.services.services().len(), 1);
            assert_eq!(
                p.services.services()[0].dests.len(),
                usize::from(plan::REAL_SERVERS)
            );
            assert_eq!(p.laddrs.len(), usize::from(m == Mode::Fullnat));
        }
        assert!(Mode::parse("bogus").is_none());
    }
}
