//! The forwarding plan of a packet of a session with an IPv6 end: the same table of
//! modes as [`super::Plan`] (whose sessions are IPv4 from end to end, the established
//! fast path's case), read from the session's full addresses.
//!
//! | mode | request (client → RS) | reply (RS → client) |
//! |---|---|---|
//! | NAT (`-m`) | dst VIP:vport → RIP:rport, hop limit − 1 | src RIP:rport → VIP:vport, hop limit − 1 |
//! | DR (`-g`) | only the MACs change | not seen |
//! | TUN (`-i`) | outer IPv6 (ip6ip6) to an IPv6 RIP, outer IPv4 (IPv6 in IPIP) to an IPv4 one | not seen |
//! | FULLNAT (`-b`) | src CIP:cport → LIP:lport, dst VIP:vport → RIP:rport | src RIP:rport → VIP:vport, dst LIP:lport → CIP:cport |
//!
//! A FULLNAT session whose client side is IPv6 and whose server side (LIP and RIP) is
//! IPv4 is NAT64: its packets change family on the way ([`super::nat64`]).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::buf::PacketBuf;
use crate::conn::{Session, CADDR, DADDR, LADDR, VADDR};
use crate::flow::FwdMethod;
use crate::wire::{Error, IpMeta, IpVersion, Result};

use super::plan::Layout;
use super::rewrite::{rewrite_v4, rewrite_v6, set_macs, MacRewrite};
use super::tun::{self, Encap, Inner, TunParams};

/// How a packet of a session with IPv6 ends leaves the director. `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan6 {
    /// The session's forwarding method.
    pub fwd: FwdMethod,
    /// The packet's new source address and port (`None`: unchanged).
    pub src: Option<(IpAddr, u16)>,
    /// The packet's new destination address and port (`None`: unchanged).
    pub dst: Option<(IpAddr, u16)>,
    /// The address the packet is routed toward (the real server, or the client).
    pub toward: IpAddr,
}

/// What [`Plan6::apply`] needs to know of the packet: its layout, family, traffic
/// class (TOS) and DF bit (for a tunnel's outer header). From a full classification
/// ([`At6::of`]) or from the established lane's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At6 {
    /// Offsets of the IP and L4 headers, end of the packet, UDP or TCP.
    pub at: Layout,
    /// The packet's family.
    pub version: IpVersion,
    /// IPv4 TOS or IPv6 traffic class.
    pub tos: u8,
    /// IPv4 DF (always set for IPv6).
    pub dont_frag: bool,
}

impl At6 {
    /// The parts of a classified TCP or UDP packet.
    #[inline]
    pub fn of(meta: &IpMeta) -> At6 {
        At6 {
            at: Layout::of(meta),
            version: meta.version,
            tos: meta.tos,
            dont_frag: meta.dont_frag,
        }
    }

    fn inner(&self) -> Inner {
        Inner {
            l3: self.at.l3,
            end: self.at.ip_end,
            version: self.version,
            tos: self.tos,
            dont_frag: self.dont_frag,
        }
    }
}

/// The egress side of a [`Plan6`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress6 {
    /// The MACs of the transmitted frame.
    pub macs: MacRewrite,
    /// TUN: the outer source (the egress port's own address of the tunnel's family).
    pub tunnel_src: IpAddr,
    /// The egress port's L3 MTU.
    pub mtu: u16,
}

impl Plan6 {
    /// The plan of a packet of session `s`: a request or a `reply`. `None` for a
    /// direction the mode does not see (DR, TUN and local replies).
    pub fn of(s: &Session, reply: bool) -> Option<Plan6> {
        let (src, dst, toward) = ends_of(reply, s.fwd())?;
        let end = |k: usize| (s.addr(k).to_ip(), s.port_of(k));
        Some(Plan6 {
            fwd: s.fwd(),
            src: src.map(end),
            dst: dst.map(end),
            toward: s.addr(toward).to_ip(),
        })
    }

    /// Whether the packet is routed (hop limit − 1): every mode but DR and local.
    #[inline]
    pub fn routes(&self) -> bool {
        super::plan::routes(self.fwd)
    }

    /// The bytes the plan adds to a packet of family `version`: TUN's outer header,
    /// NAT64's growth from IPv4 to IPv6 (0 otherwise).
    #[inline]
    pub fn overhead(&self, version: IpVersion) -> usize {
        match (self.fwd, self.toward) {
            (FwdMethod::Tunnel, IpAddr::V6(_)) => tun::OVERHEAD6,
            (FwdMethod::Tunnel, IpAddr::V4(_)) => Encap::Ipip.overhead(),
            _ if version == IpVersion::V4 && self.translates(version) => super::nat64::GROWTH,
            _ => 0,
        }
    }

    /// NAT64: translates an ICMP error about the session (ICMPv6 from the client's side
    /// about a reply, ICMPv4 from the server's side about a request) so that it travels
    /// on in the direction of this plan, as [`super::icmp6::translate`] does within one
    /// family: the outer header gets the plan's new ends, the quoted packet becomes
    /// the one the other side sent (its source the plan's destination, its destination
    /// the plan's source). `eg.mtu` caps the MTU a Packet Too Big or a
    /// fragmentation-needed made of it says.
    pub fn translate_error<B: PacketBuf + ?Sized>(
        &self,
        buf: &mut B,
        version: IpVersion,
        eg: &Egress6,
    ) -> Result<()> {
        use super::nat64::{icmp4_error_to_v6, icmp6_error_to_v4, V4Ends, V6Ends};
        match (version, self.src, self.dst) {
            (IpVersion::V6, Some((IpAddr::V4(s), sp)), Some((IpAddr::V4(d), dp))) => {
                let inner = V4Ends {
                    src: d,
                    dst: s,
                    sport: dp,
                    dport: sp,
                };
                icmp6_error_to_v4(buf, (s, d), &inner, true, eg.mtu)?;
            }
            (IpVersion::V4, Some((IpAddr::V6(s), sp)), Some((IpAddr::V6(d), dp))) => {
                let inner = V6Ends {
                    src: d,
                    dst: s,
                    sport: dp,
                    dport: sp,
                };
                icmp4_error_to_v6(buf, (s, d), &inner, true, u32::from(eg.mtu))?;
            }
            _ => return Err(Error::AddressFamily),
        }
        set_macs(buf.data_mut(), &eg.macs)
    }

    /// Whether the plan changes the packet's family (NAT64: an IPv6 client of IPv4
    /// servers), given the family of the packet.
    #[inline]
    pub fn translates(&self, version: IpVersion) -> bool {
        let fam = |e: Option<(IpAddr, u16)>| e.map(|(a, _)| IpVersion::of(&a));
        matches!(self.fwd, FwdMethod::Masq | FwdMethod::FullNat)
            && (fam(self.src).is_some_and(|v| v != version)
                || fam(self.dst).is_some_and(|v| v != version))
    }

    /// Rewrites the classified TCP or UDP packet in `buf` as planned (see the module
    /// docs). On `Err` nothing was changed; a TUN packet too big for the tunnel is
    /// [`Error::Oversize`] (the general path answers it), a change of family goes to
    /// [`super::nat64`].
    #[inline]
    pub fn apply<B: PacketBuf + ?Sized>(&self, buf: &mut B, p: &At6, eg: &Egress6) -> Result<()> {
        let (l3, l4, end, udp) = (p.at.l3, p.at.l4, p.at.ip_end, p.at.udp);
        match self.fwd {
            FwdMethod::Route | FwdMethod::Local => set_macs(buf.data_mut(), &eg.macs),
            FwdMethod::Tunnel => match (self.toward, eg.tunnel_src) {
                (IpAddr::V6(real), IpAddr::V6(local)) => {
                    tun::encapsulate6(buf, &p.inner(), local, real, eg.mtu, &eg.macs)
                }
                (IpAddr::V4(real), IpAddr::V4(local)) => {
                    let t = TunParams {
                        local,
                        real,
                        mtu: eg.mtu,
                        macs: eg.macs,
                        encap: Encap::Ipip,
                    };
                    tun::encapsulate(buf, &p.inner(), &t)
                }
                _ => Err(Error::AddressFamily),
            },
            _ if self.translates(p.version) => {
                if p.version == IpVersion::V4
                    && end - l3 + super::nat64::GROWTH > usize::from(eg.mtu)
                {
                    // Too big for the IPv6 side once translated (the general path
                    // answers fragmentation-needed when it has DF).
                    return Err(Error::Oversize);
                }
                match (self.src, self.dst) {
                    (Some((IpAddr::V4(src), sport)), Some((IpAddr::V4(dst), dport))) => {
                        let ends = super::nat64::V4Ends {
                            src,
                            dst,
                            sport,
                            dport,
                        };
                        super::nat64::v6_to_v4(buf, &ends, true)?;
                    }
                    (Some((IpAddr::V6(src), sport)), Some((IpAddr::V6(dst), dport))) => {
                        let ends = super::nat64::V6Ends {
                            src,
                            dst,
                            sport,
                            dport,
                        };
                        super::nat64::v4_to_v6(buf, &ends, true)?;
                    }
                    _ => return Err(Error::AddressFamily),
                }
                set_macs(buf.data_mut(), &eg.macs)
            }
            _ => match p.version {
                IpVersion::V6 => {
                    let v6 = |e: Option<(IpAddr, u16)>| match e {
                        Some((IpAddr::V6(a), p)) => Ok(Some((a.octets(), p))),
                        None => Ok(None),
                        Some(_) => Err(Error::AddressFamily),
                    };
                    let (src, dst) = (v6(self.src)?, v6(self.dst)?);
                    rewrite_v6(buf.data_mut(), l3, l4, end, udp, src, dst, &eg.macs)
                }
                IpVersion::V4 => {
                    let v4 = |e: Option<(IpAddr, u16)>| match e {
                        Some((IpAddr::V4(a), p)) => Ok(Some((a.octets(), p))),
                        None => Ok(None),
                        Some(_) => Err(Error::AddressFamily),
                    };
                    let (src, dst) = (v4(self.src)?, v4(self.dst)?);
                    rewrite_v4(buf.data_mut(), l3, l4, end, udp, src, dst, &eg.macs)
                }
            },
        }
    }
}

/// Which of a session's ends (`CADDR`, `VADDR`, `DADDR`, `LADDR`) become a packet's new
/// source and destination, and which it is routed toward, by direction and mode: the
/// table of the module docs, read by [`Plan6::of`] and by the IPv6 fast path
/// ([`V6Ends::of`]). `None` for a direction the mode does not see.
#[inline(always)]
pub fn ends_of(reply: bool, fwd: FwdMethod) -> Option<(Option<usize>, Option<usize>, usize)> {
    Some(match (reply, fwd) {
        (false, FwdMethod::FullNat) => (Some(LADDR), Some(DADDR), DADDR),
        (false, FwdMethod::Masq) => (None, Some(DADDR), DADDR),
        (false, FwdMethod::Route | FwdMethod::Tunnel | FwdMethod::Local) => (None, None, DADDR),
        (true, FwdMethod::FullNat) => (Some(VADDR), Some(CADDR), CADDR),
        (true, FwdMethod::Masq) => (Some(VADDR), None, CADDR),
        _ => return None,
    })
}

/// A plan whose ends are all IPv6 (no NAT64), as the IPv6 fast path uses it: octets,
/// no [`IpAddr`] to match on. Built from the same table as [`Plan6::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V6Ends {
    /// The session's forwarding method.
    pub fwd: FwdMethod,
    /// New source address and port.
    pub src: Option<([u8; 16], u16)>,
    /// New destination address and port.
    pub dst: Option<([u8; 16], u16)>,
    /// Routed toward.
    pub toward: [u8; 16],
}

impl V6Ends {
    /// The all-IPv6 plan of a packet of session `s`; `None` when the mode does not see
    /// the direction or an end the plan needs is IPv4 (NAT64: the general path).
    #[inline(always)]
    pub fn of(s: &Session, reply: bool) -> Option<V6Ends> {
        let fwd = s.fwd();
        let (src, dst, toward) = ends_of(reply, fwd)?;
        let end = |k: Option<usize>| match k {
            Some(k) => s.v6_octets(k).map(|a| Some((a, s.port_of(k)))),
            None => Some(None),
        };
        Some(V6Ends {
            fwd,
            src: end(src)?,
            dst: end(dst)?,
            toward: s.v6_octets(toward)?,
        })
    }

    /// Rewrites the IPv6 TCP or UDP packet (headers at `at`) as planned: NAT and FULLNAT
    /// with [`rewrite_v6`], DR by the MACs, TUN into ip6ip6 from `tunnel_src`. On `Err`
    /// nothing was changed.
    #[inline(always)]
    pub fn apply<B: PacketBuf + ?Sized>(
        &self,
        buf: &mut B,
        at: &At6,
        macs: &MacRewrite,
        tunnel_src: Ipv6Addr,
        mtu: u16,
    ) -> Result<()> {
        match self.fwd {
            FwdMethod::Masq | FwdMethod::FullNat => {
                let a = &at.at;
                rewrite_v6(
                    buf.data_mut(),
                    a.l3,
                    a.l4,
                    a.ip_end,
                    a.udp,
                    self.src,
                    self.dst,
                    macs,
                )
            }
            FwdMethod::Tunnel => {
                let real = Ipv6Addr::from(self.toward);
                tun::encapsulate6(buf, &at.inner(), tunnel_src, real, mtu, macs)
            }
            _ => set_macs(buf.data_mut(), macs),
        }
    }
}

/// The IPv4 address of an end, for the IPv4 parts of a plan (`0.0.0.0` for IPv6).
pub fn v4_of(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}
