//! The forwarding plan of one packet of a session: what its new ends are, where it is
//! routed, and the one rewrite that carries it out. The established fast path and the
//! general path both build a [`Plan`] from the session and the direction
//! ([`Plan::of`]) and both rewrite with [`Plan::apply`]; ICMP errors about the session
//! are translated from the plan of the direction they travel ([`super::icmp::translate`]).
//!
//! | mode | request (client → RS) | reply (RS → client, seen by the director) |
//! |---|---|---|
//! | NAT (`-m`) | dst VIP:vport → RIP:rport, TTL − 1 | src RIP:rport → VIP:vport, TTL − 1 |
//! | DR (`-g`) | only the MACs change | not seen |
//! | TUN (`-i`) | outer IPv4 DIP → RIP (and the server's UDP + GUE or GRE header) around the untouched packet | not seen |
//! | FULLNAT (`-b`) | src CIP:cport → LIP:lport, dst VIP:vport → RIP:rport, TTL − 1 | src RIP:rport → VIP:vport, dst LIP:lport → CIP:cport, TTL − 1 |

use core::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::conn::{ConnTable, Session, CADDR, DADDR, LADDR, VADDR};
use crate::flow::FwdMethod;
use crate::wire::{Error, IpMeta, IpVersion, Result};

use super::rewrite::{rewrite_v4, set_macs, MacRewrite, V4End};
use super::tun::{self, Encap, TunParams};

/// How a packet of a session leaves the director. `Copy`, built once per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The session's forwarding method.
    pub fwd: FwdMethod,
    /// The packet's new source address and port (`None`: unchanged).
    pub src: Option<V4End>,
    /// The packet's new destination address and port (`None`: unchanged).
    pub dst: Option<V4End>,
    /// The address the packet is routed toward: the real server (requests; under DR it
    /// is also the next hop; under TUN the outer destination), or the client (replies).
    pub toward: Ipv4Addr,
    /// TUN: the real server's encapsulation (IPIP in the other modes, unused).
    pub encap: Encap,
}

/// Where the IP and L4 headers of an IPv4 TCP or UDP packet lie, and what an
/// encapsulation copies from its header: read from the fast path's
/// [`crate::wire::V4Flow`] or from a full classification ([`Layout::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the IPv4 header.
    pub l3: usize,
    /// Offset of the TCP or UDP header.
    pub l4: usize,
    /// Offset of the end of the IP packet (Ethernet padding after it).
    pub ip_end: usize,
    /// UDP (else TCP).
    pub udp: bool,
}

impl Layout {
    /// The layout of a classified IPv4 TCP or UDP packet.
    #[inline]
    pub fn of(meta: &IpMeta) -> Layout {
        Layout {
            l3: meta.l3_offset(),
            l4: meta.l4_offset,
            ip_end: meta.ip_end,
            udp: meta.tuple.protocol == crate::wire::IpProtocol::UDP,
        }
    }
}

/// The egress side of a plan: the frame's MACs and, for TUN, the tunnel's source and
/// the egress MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// The MACs of the transmitted frame.
    pub macs: MacRewrite,
    /// TUN: the outer source address (the egress port's own address).
    pub tunnel_src: Ipv4Addr,
    /// The egress port's L3 MTU.
    pub mtu: u16,
}

/// Whether a mode routes the packets it forwards (TTL − 1): every mode but DR and a
/// local server, which re-address the frame only.
#[inline(always)]
pub fn routes(fwd: FwdMethod) -> bool {
    !matches!(fwd, FwdMethod::Route | FwdMethod::Local)
}

impl Plan {
    /// The plan of a packet of session `s` (of table `conns`): a request (client → real
    /// server) or a `reply`. `None` for a direction the mode does not see (DR, TUN and
    /// local replies) and for a session whose addresses are not IPv4. A local server
    /// (`Local`) is reached as under DR, by its MAC, through the route toward it. A TUN
    /// session's encapsulation is its real server's tunnel as configured now (read from
    /// `conns`' per-core real-server table by the session's slot; IPIP for a session
    /// without one).
    #[inline(always)]
    pub fn of(s: &Session, reply: bool, conns: &ConnTable) -> Option<Plan> {
        // The ends the plan reads (and the one it is routed toward) must all be IPv4:
        // one test of their `v6` bits (`ends`).
        let end = |k: usize, port: u16| Some((s.lo[k], port));
        let bit = |k: usize| 1u8 << k;
        let fwd = s.fwd();
        let (src, dst, toward, ends) = match (reply, fwd) {
            (false, FwdMethod::FullNat) => (
                end(LADDR, s.lport),
                end(DADDR, s.dport),
                DADDR,
                bit(LADDR) | bit(DADDR),
            ),
            (false, FwdMethod::Masq) => (None, end(DADDR, s.dport), DADDR, bit(DADDR)),
            (false, FwdMethod::Route | FwdMethod::Tunnel | FwdMethod::Local) => {
                (None, None, DADDR, bit(DADDR))
            }
            (true, FwdMethod::FullNat) => (
                end(VADDR, s.vport),
                end(CADDR, s.cport),
                CADDR,
                bit(VADDR) | bit(CADDR),
            ),
            (true, FwdMethod::Masq) => (end(VADDR, s.vport), None, CADDR, bit(VADDR) | bit(CADDR)),
            _ => return None,
        };
        if s.v6 & ends != 0 {
            return None;
        }
        let encap = match fwd {
            FwdMethod::Tunnel => tunnel_encap(s, conns),
            _ => Encap::Ipip,
        };
        Some(Plan {
            fwd,
            src,
            dst,
            toward: Ipv4Addr::from(s.lo[toward]),
            encap,
        })
    }

    /// Whether the packet is routed (TTL − 1): every mode but DR (and a local server),
    /// which re-address the frame only.
    #[inline(always)]
    pub fn routes(&self) -> bool {
        routes(self.fwd)
    }

    /// Whether an IPv4 packet of `l3..ip_end` fits `mtu` after this plan: TUN adds the
    /// outer headers ([`Encap::overhead`]).
    #[inline(always)]
    pub fn fits(&self, l3: usize, ip_end: usize, mtu: u16) -> bool {
        self.fwd != FwdMethod::Tunnel || ip_end - l3 + self.encap.overhead() <= usize::from(mtu)
    }

    /// Rewrites the IPv4 TCP or UDP packet in `buf` (headers at `at`; the caller has
    /// classified it as such: nothing here checks the protocol again) as planned: NAT
    /// and FULLNAT replace its ends (TTL − 1, checksums updated incrementally), DR sets
    /// the MACs only, TUN encapsulates it toward [`Plan::toward`] ([`Plan::encap`]). On `Err`
    /// nothing was changed; a TUN packet too big for the tunnel is
    /// [`Error::Oversize`] (the general path answers frag-needed when it has DF).
    #[inline(always)]
    pub fn apply<B: PacketBuf + ?Sized>(
        &self,
        buf: &mut B,
        at: &Layout,
        eg: &Egress,
    ) -> Result<()> {
        match self.fwd {
            FwdMethod::Route | FwdMethod::Local => set_macs(buf.data_mut(), &eg.macs),
            FwdMethod::Tunnel => self.encapsulate(buf, at, eg),
            _ => rewrite_v4(
                buf.data_mut(),
                at.l3,
                at.l4,
                at.ip_end,
                at.udp,
                self.src,
                self.dst,
                &eg.macs,
            ),
        }
    }

    /// [`Plan::apply`] of a TUN plan: the packet encapsulated toward [`Plan::toward`].
    /// One call out of the caller's loop with [`tun::encapsulate`] inlined here: the
    /// encapsulation's parameters stay in registers, and the loop of the other modes
    /// keeps its registers too (encapsulate inlined into it cost DR and FULLNAT about
    /// 30 instructions a packet in spills).
    #[inline(never)]
    fn encapsulate<B: PacketBuf + ?Sized>(
        &self,
        buf: &mut B,
        at: &Layout,
        eg: &Egress,
    ) -> Result<()> {
        let data = buf.data();
        let header = data.get(at.l3..at.l3 + crate::wire::ipv4::HEADER_LEN);
        let Some(h) = header else {
            return Err(Error::Truncated);
        };
        let inner = tun::Inner {
            l3: at.l3,
            end: at.ip_end,
            version: IpVersion::V4,
            tos: h[crate::wire::ipv4::TOS_OFFSET],
            dont_frag: h[crate::wire::ipv4::FLAGS_OFFSET] & crate::wire::ipv4::DF_BIT != 0,
        };
        tun::encapsulate(buf, &inner, &self.tunnel(eg))
    }

    /// The tunnel of a TUN plan leaving through `eg`.
    #[inline(always)]
    pub fn tunnel(&self, eg: &Egress) -> TunParams {
        TunParams {
            local: eg.tunnel_src,
            real: self.toward,
            mtu: eg.mtu,
            macs: eg.macs,
            encap: self.encap,
        }
    }
}

/// A TUN session's encapsulation: its real server's tunnel, with the flow's GUE source
/// port.
#[inline]
fn tunnel_encap(s: &Session, conns: &ConnTable) -> Encap {
    let t = conns.tunnel_of(s);
    let sport = match t.kind {
        crate::flow::TunKind::Gue => tun::flow_src_port(s.lo[CADDR], s.cport, s.lo[VADDR], s.vport),
        _ => 0,
    };
    Encap::of(t, sport)
}

#[cfg(test)]
mod tests {
    //! The rewrites of every mode through [`Plan::apply`] (the old per-mode NAT,
    //! FULLNAT and DR tests).
    use super::*;
    use crate::buf::VecBuf;
    use crate::forward::rewrite::testutil::*;
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    /// The egress of a frame sent by the director to `dst`.
    fn egress(dst: [u8; 6]) -> Egress {
        Egress {
            macs: from_director(dst),
            tunnel_src: DIP.into(),
            mtu: 1500,
        }
    }

    /// `plan` applied to the classified packet in `buf`, leaving toward `dst`.
    fn apply<B: PacketBuf + ?Sized>(
        plan: &Plan,
        buf: &mut B,
        meta: &IpMeta,
        dst: [u8; 6],
    ) -> Result<()> {
        plan.apply(buf, &Layout::of(meta), &egress(dst))
    }

    fn dr() -> Plan {
        Plan {
            fwd: FwdMethod::Route,
            src: None,
            dst: None,
            toward: RIP.into(),
            encap: Encap::Ipip,
        }
    }

    // ----- NAT -----

    /// Everything but the rewritten fields is what etherparse built.
    fn assert_rest_unchanged(before: &[u8], after: &[u8]) {
        let b = SlicedPacket::from_ethernet(before).unwrap();
        let a = SlicedPacket::from_ethernet(after).unwrap();
        let (Some(NetSlice::Ipv4(bi)), Some(NetSlice::Ipv4(ai))) = (&b.net, &a.net) else {
            panic!()
        };
        let (bh, ah) = (bi.header(), ai.header());
        assert_eq!(ah.ttl(), bh.ttl() - 1);
        assert_eq!(ah.identification(), bh.identification());
        assert_eq!(ah.dont_fragment(), bh.dont_fragment());
        assert_eq!(ah.total_len(), bh.total_len());
        assert_eq!(ah.protocol(), bh.protocol());
        match (&b.transport, &a.transport) {
            (Some(TransportSlice::Tcp(bt)), Some(TransportSlice::Tcp(at))) => {
                assert_eq!(at.sequence_number(), bt.sequence_number());
                assert_eq!(at.acknowledgment_number(), bt.acknowledgment_number());
                assert_eq!((at.syn(), at.ack()), (bt.syn(), bt.ack()));
                assert_eq!(at.window_size(), bt.window_size());
                assert_eq!(at.payload(), bt.payload());
            }
            (Some(TransportSlice::Udp(bu)), Some(TransportSlice::Udp(au))) => {
                assert_eq!(au.length(), bu.length());
                assert_eq!(au.payload(), bu.payload());
            }
            _ => panic!("transport changed"),
        }
    }

    #[test]
    fn nat_request_tcp_and_udp() {
        for udp in [false, true] {
            let orig = frame4(CIP, CPORT, VIP, VPORT, udp, 64, b"GET / HTTP/1.0\r\n\r\n");
            let m = meta(&orig);
            let mut b = VecBuf::new(0, &orig);
            apply(&nat_request(), &mut b, &m, RS_MAC).unwrap();
            let out = b.to_vec();
            let p = check_v4(&out);
            assert_eq!(endpoints(&p), (ep(CIP, CPORT), ep(RIP, RPORT)));
            assert_eq!(macs(&p), (DIRECTOR_MAC, RS_MAC));
            assert_rest_unchanged(&orig, &out);
        }
    }

    #[test]
    fn nat_reply_tcp_and_udp() {
        for udp in [false, true] {
            let orig = frame4(RIP, RPORT, CIP, CPORT, udp, 64, b"HTTP/1.0 200 OK\r\n");
            let m = meta(&orig);
            let mut b = VecBuf::new(0, &orig);
            apply(&nat_reply(), &mut b, &m, GW_MAC).unwrap();
            let out = b.to_vec();
            let p = check_v4(&out);
            assert_eq!(endpoints(&p), (ep(VIP, VPORT), ep(CIP, CPORT)));
            assert_eq!(macs(&p), (DIRECTOR_MAC, GW_MAC));
            assert_rest_unchanged(&orig, &out);
        }
    }

    #[test]
    fn nat_round_trip_restores_the_original_l3_l4() {
        let orig = frame4(CIP, CPORT, VIP, VPORT, false, 64, b"abc");
        let m = meta(&orig);
        let mut b = VecBuf::new(0, &orig);
        apply(&nat_request(), &mut b, &m, RS_MAC).unwrap();
        // Rewrite dst back to VIP with a second request-side plan.
        let back = Plan {
            dst: Some((VIP, VPORT)),
            ..nat_request()
        };
        let m2 = meta(b.data());
        apply(&back, &mut b, &m2, RS_MAC).unwrap();
        let out = b.to_vec();
        // Only the TTL (and so the header checksum) differs from the original.
        assert_eq!(out[34..], orig[34..]);
        assert_eq!(out[22], orig[22] - 2);
        check_v4(&out);
    }

    #[test]
    fn nat_ttl_expiry_is_a_typed_drop() {
        for ttl in [0u8, 1] {
            let orig = frame4(CIP, CPORT, VIP, VPORT, false, ttl, b"");
            let m = meta(&orig);
            let mut b = VecBuf::new(0, &orig);
            assert_eq!(
                apply(&nat_request(), &mut b, &m, RS_MAC),
                Err(Error::TtlExpired)
            );
            assert_eq!(b.data(), &orig[..], "nothing changed");
            assert_eq!(
                apply(&nat_reply(), &mut b, &m, RS_MAC),
                Err(Error::TtlExpired)
            );
        }
        let orig = frame4(CIP, CPORT, VIP, VPORT, false, 2, b"");
        let m = meta(&orig);
        let mut b = VecBuf::new(0, &orig);
        apply(&nat_request(), &mut b, &m, RS_MAC).unwrap();
        assert!(check_v4(b.data()).net.is_some());
        assert_eq!(ipv4_header(b.data()).time_to_live, 1);
    }

    #[test]
    fn nat_vlan_tagged_frame() {
        let mut orig = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
            .single_vlan(etherparse::VlanId::try_new(42).unwrap())
            .ipv4(CIP, VIP, 64)
            .tcp(CPORT, VPORT, 1, 1000)
            .write(&mut orig, b"x")
            .unwrap();
        let m = meta(&orig);
        let mut b = VecBuf::new(0, &orig);
        apply(&nat_request(), &mut b, &m, RS_MAC).unwrap();
        let p = SlicedPacket::from_ethernet(b.data()).unwrap();
        assert!(p.vlan.is_some());
        let Some(TransportSlice::Tcp(t)) = &p.transport else {
            panic!()
        };
        assert_eq!(t.destination_port(), RPORT);
    }

    // ----- FULLNAT -----

    #[test]
    fn fullnat_request_tcp_and_udp() {
        for udp in [false, true] {
            let orig = frame4(CIP, CPORT, VIP, VPORT, udp, 64, b"hello fullnat");
            let m = meta(&orig);
            let mut b = VecBuf::new(0, &orig);
            apply(&fullnat_request(), &mut b, &m, RS_MAC).unwrap();
            let p = check_v4(b.data());
            assert_eq!(endpoints(&p), (ep(LIP, LPORT), ep(RIP, RPORT)));
            assert_eq!(macs(&p), (DIRECTOR_MAC, RS_MAC));
            assert_eq!(ipv4_header(b.data()).time_to_live, 63);
            match &p.transport {
                Some(TransportSlice::Tcp(t)) => {
                    assert_eq!(t.payload(), b"hello fullnat");
                    assert_eq!(t.sequence_number(), 0x0102_0304);
                }
                Some(TransportSlice::Udp(u)) => assert_eq!(u.payload(), b"hello fullnat"),
                _ => panic!(),
            }
        }
    }

    #[test]
    fn fullnat_reply_tcp_and_udp() {
        for udp in [false, true] {
            let orig = frame4(RIP, RPORT, LIP, LPORT, udp, 64, b"answer");
            let m = meta(&orig);
            let mut b = VecBuf::new(0, &orig);
            apply(&fullnat_reply(), &mut b, &m, GW_MAC).unwrap();
            let sp = check_v4(b.data());
            assert_eq!(endpoints(&sp), (ep(VIP, VPORT), ep(CIP, CPORT)));
            assert_eq!(macs(&sp), (DIRECTOR_MAC, GW_MAC));
            assert_eq!(ipv4_header(b.data()).time_to_live, 63);
        }
    }

    #[test]
    fn fullnat_ttl_expiry() {
        let orig = frame4(CIP, CPORT, VIP, VPORT, true, 1, b"");
        let m = meta(&orig);
        let mut b = VecBuf::new(0, &orig);
        assert_eq!(
            apply(&fullnat_request(), &mut b, &m, RS_MAC),
            Err(Error::TtlExpired)
        );
        assert_eq!(
            apply(&fullnat_reply(), &mut b, &m, RS_MAC),
            Err(Error::TtlExpired)
        );
        assert_eq!(b.data(), &orig[..]);
    }

    // ----- DR -----

    #[test]
    fn dr_only_the_macs_change() {
        for udp in [false, true] {
            let orig = frame4(CIP, CPORT, VIP, VPORT, udp, 64, b"direct");
            let m = meta(&orig);
            let mut b = VecBuf::new(0, &orig);
            assert_eq!(apply(&dr(), &mut b, &m, RS_MAC), Ok(()));
            let out = b.data();
            let sp = check_v4(out);
            assert_eq!(macs(&sp), (DIRECTOR_MAC, RS_MAC));
            assert_eq!(endpoints(&sp), (ep(CIP, CPORT), ep(VIP, VPORT)));
            assert_eq!(&out[12..], &orig[12..], "L3 and up byte-identical");
            assert_eq!(ipv4_header(out).time_to_live, 64);
        }
    }

    #[test]
    fn dr_short_buffer_is_an_error() {
        let orig = frame4(CIP, CPORT, VIP, VPORT, false, 64, b"");
        let m = meta(&orig);
        let mut short: &mut [u8] = &mut [0u8; 11];
        let p = dr();
        let eg = Egress {
            macs: MacRewrite::default(),
            ..egress(RS_MAC)
        };
        assert_eq!(
            p.apply(&mut short, &Layout::of(&m), &eg),
            Err(Error::Truncated)
        );
    }

    // ----- TUN -----

    /// `apply` of a TUN plan is [`tun::encapsulate`] toward `toward` from the egress's
    /// tunnel source, with the inner TOS and DF read from the packet; a packet too big
    /// for the egress MTU is `Oversize`, unchanged.
    #[test]
    fn tunnel_is_encapsulate() {
        let plan = Plan {
            fwd: FwdMethod::Tunnel,
            src: None,
            dst: None,
            toward: RIP.into(),
            encap: Encap::Ipip,
        };
        let orig = frame4(CIP, CPORT, VIP, VPORT, false, 64, b"tunnelled");
        let m = meta(&orig);
        let mut b = VecBuf::new(64, &orig);
        apply(&plan, &mut b, &m, RS_MAC).unwrap();
        let mut want = VecBuf::new(64, &orig);
        tun::encapsulate(
            &mut want,
            &tun::Inner::of(&m),
            &plan.tunnel(&egress(RS_MAC)),
        )
        .unwrap();
        assert_eq!(b.data(), want.data());
        let outer = ipv4_header(b.data());
        assert_eq!((outer.source, outer.destination), (DIP, RIP));

        let eg = Egress {
            mtu: (orig.len() - 14 + 19) as u16,
            ..egress(RS_MAC)
        };
        let mut b = VecBuf::new(64, &orig);
        assert_eq!(
            plan.apply(&mut b, &Layout::of(&m), &eg),
            Err(Error::Oversize)
        );
        assert_eq!(b.data(), &orig[..]);
        assert!(!plan.fits(m.l3_offset(), m.ip_end, eg.mtu));
    }
}
