//! rvs benchmarks.
//!
//! - `benches/`: criterion micro-benchmarks (parse, rewrite, lookup, schedule).
//! - `rvs-bench` (`src/bin/rvs-bench.rs`): the line-rate harness that runs the real
//!   engine (`rvs_dataplane::engine::Engine`) on DPDK devices and an I/O floor on the same
//!   devices; see BENCHMARKS.md. This library holds its pure parts: test traffic and pcap
//!   files ([`capture`]), the benchmark network and service table ([`plan`]), and the
//!   results and table ([`report`]), and the sweep over session and worker counts with its
//!   plot ([`sweep`]).

#![forbid(unsafe_code)]

pub mod capture;
pub mod plan;
pub mod report;
pub mod sweep;

#[cfg(test)]
mod tests {
    use super::capture::{build_frame, read_pcap, Kind, PcapWriter, CLIENT_ISN, L4, SERVER_ISN};
    use super::plan::{self, Mode};
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

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
                assert_eq!(ip.header().source_addr(), f.caddr);
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
