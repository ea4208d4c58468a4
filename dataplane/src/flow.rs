//! The vocabulary every layer of the dataplane shares: transport protocol, address, a
//! packet's 5-tuple, forwarding method and TCP flags.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Transport protocol of a service or a session (IANA protocol numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Proto {
    /// `IPPROTO_IP`: only the persistence templates of firewall-mark services use it.
    #[default]
    Ip = 0,
    /// TCP.
    Tcp = 6,
    /// UDP.
    Udp = 17,
}

impl Proto {
    /// The name `ipvsadm` prints: `TCP`, `UDP`, or `IP` for fwmark templates.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Ip => "IP",
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }

    /// The protocol for an IANA protocol number, if rvs balances it.
    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            0 => Some(Proto::Ip),
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// The first twelve bytes of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
pub(crate) const V4_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// An IPv4 or IPv6 address in 16 bytes: IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`).
///
/// Byte-aligned (no padding in the session struct) and cheap to compare.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Addr(pub [u8; 16]);

/// One 128-bit word, not a length and a slice of 16 bytes: the service, pool and
/// neighbour maps a new session looks up hash it in one step.
impl core::hash::Hash for Addr {
    #[inline]
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.0));
    }
}

impl Addr {
    /// The all-zero IPv6 address `::`.
    pub const UNSPECIFIED: Addr = Addr([0; 16]);

    /// An IPv4 address from its host-order value (`0x0a010102` is 10.1.1.2).
    pub const fn from_v4_bits(bits: u32) -> Addr {
        let b = bits.to_be_bytes();
        Addr([
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, b[0], b[1], b[2], b[3],
        ])
    }

    /// An IPv4 address from four octets.
    pub const fn v4(a: u8, b: u8, c: u8, d: u8) -> Addr {
        Addr::from_v4_bits(u32::from_be_bytes([a, b, c, d]))
    }

    /// True for an IPv4 (IPv4-mapped) address.
    pub fn is_v4(&self) -> bool {
        self.0[..12] == V4_PREFIX
    }

    /// The host-order IPv4 value, for an IPv4 address.
    pub fn v4_bits(&self) -> Option<u32> {
        if self.is_v4() {
            Some(u32::from_be_bytes([
                self.0[12], self.0[13], self.0[14], self.0[15],
            ]))
        } else {
            None
        }
    }

    /// The address as a std `IpAddr`.
    pub fn to_ip(&self) -> IpAddr {
        match self.v4_bits() {
            Some(b) => IpAddr::V4(Ipv4Addr::from(b)),
            None => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }

    /// The kernel's `ntohl(addr_fold)`: the IPv4 address, or for IPv6 the XOR of its four
    /// 32-bit words, in host order (used by sh, dh and mh).
    pub fn fold(&self) -> u32 {
        if let Some(b) = self.v4_bits() {
            return b;
        }
        let w =
            |i: usize| u32::from_be_bytes([self.0[i], self.0[i + 1], self.0[i + 2], self.0[i + 3]]);
        w(0) ^ w(4) ^ w(8) ^ w(12)
    }

    /// The address ANDed with a mask built by [`Addr::v4_netmask`] or [`Addr::v6_prefix`].
    pub fn masked(&self, mask: &Addr) -> Addr {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i] & mask.0[i];
        }
        Addr(out)
    }

    /// An IPv4 netmask (`-M 255.255.255.0` is `v4_netmask(0xffffff00)`); it keeps the
    /// IPv4-mapped prefix when applied.
    pub const fn v4_netmask(mask: u32) -> Addr {
        let b = mask.to_be_bytes();
        Addr([
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b[0], b[1],
            b[2], b[3],
        ])
    }

    /// An IPv6 netmask of `len` leading one bits (clamped to 128).
    pub fn v6_prefix(len: u8) -> Addr {
        let bits = u128::MAX
            .checked_shl(128 - u32::from(len.min(128)))
            .unwrap_or(0);
        Addr(bits.to_be_bytes())
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(a: Ipv4Addr) -> Addr {
        Addr::from_v4_bits(u32::from(a))
    }
}

impl From<Ipv6Addr> for Addr {
    fn from(a: Ipv6Addr) -> Addr {
        Addr(a.octets())
    }
}

impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Addr {
        match a {
            IpAddr::V4(v) => v.into(),
            IpAddr::V6(v) => v.into(),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_ip(), f)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_ip(), f)
    }
}

/// Formats `addr:port` the way `ipvsadm -n` does (`[v6]:port` for IPv6).
pub fn endpoint(addr: &Addr, port: u16) -> String {
    if addr.is_v4() {
        format!("{addr}:{port}")
    } else {
        format!("[{addr}]:{port}")
    }
}

/// The 5-tuple of a packet as seen on the wire: source and destination address and port.
///
/// A client packet gives the session's client-side (in) tuple `caddr:cport -> vaddr:vport`;
/// a server reply gives its server-side (out) tuple `daddr:dport -> laddr:lport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// Transport protocol.
    pub proto: Proto,
    /// Source address.
    pub saddr: Addr,
    /// Destination address.
    pub daddr: Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// The 5-tuple of an IPv4 packet as the established fast path compares it with a
/// session's: [`FlowKey`] of two IPv4 addresses, kept as their octets (the session's own
/// form of an IPv4 address) instead of widened to IPv4-mapped IPv6.
///
/// The addresses are one word and the ports another, each written whole: the compare
/// reads them as the words they are, and a word written as two halves just before (a
/// key made on the stack) would be read back only after the store buffer drained (a
/// store-forwarding stall, on every packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey4 {
    /// Both addresses: the source's in the low half, the destination's in the high half
    /// ([`FlowKey4::addrs`]).
    addrs: u64,
    /// Both ports: the source port in the low half ([`FlowKey4::ports`]).
    ports: u32,
    /// Transport protocol.
    pub proto: Proto,
}

impl FlowKey4 {
    /// The tuple `saddr:sport -> daddr:dport` of `proto` (addresses as on the wire).
    #[inline(always)]
    pub fn new(proto: Proto, saddr: [u8; 4], daddr: [u8; 4], sport: u16, dport: u16) -> Self {
        FlowKey4 {
            addrs: Self::addrs(saddr, daddr),
            ports: Self::ports(sport, dport),
            proto,
        }
    }

    /// Two addresses as one word, the way a key holds them (for a session's to compare):
    /// `a` in the low half. Where the two lie side by side in memory (a session's), the
    /// compiler reads the word in one load.
    #[inline(always)]
    pub fn addrs(a: [u8; 4], b: [u8; 4]) -> u64 {
        u64::from(u32::from_ne_bytes(a)) | (u64::from(u32::from_ne_bytes(b)) << 32)
    }

    /// Two ports as one word, the way a key holds them: `a` in the low half.
    #[inline(always)]
    pub fn ports(a: u16, b: u16) -> u32 {
        u32::from(a) | (u32::from(b) << 16)
    }

    /// Whether the tuple is `addrs` (from [`FlowKey4::addrs`]) and `ports` (from
    /// [`FlowKey4::ports`]) of `proto`.
    #[inline(always)]
    pub fn is(&self, proto: Proto, addrs: u64, ports: u32) -> bool {
        self.addrs == addrs && self.ports == ports && self.proto == proto
    }

    /// The same tuple as a [`FlowKey`] (IPv4-mapped addresses).
    #[inline(always)]
    pub fn key(&self) -> FlowKey {
        let [a, b, c, d] = (self.addrs as u32).to_ne_bytes();
        let [e, f, g, h] = ((self.addrs >> 32) as u32).to_ne_bytes();
        FlowKey {
            proto: self.proto,
            saddr: Addr::v4(a, b, c, d),
            daddr: Addr::v4(e, f, g, h),
            sport: self.ports as u16,
            dport: (self.ports >> 16) as u16,
        }
    }
}

/// The forwarding-method bits of IPVS conn flags (`IP_VS_CONN_F_FWD_MASK`).
const FWD_MASK: u16 = 0x0007;

/// Forwarding method of a real server (the kernel's `IP_VS_CONN_F_FWD_MASK` values; FullNat
/// uses DPVS's value 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum FwdMethod {
    /// NAT (`-m`): "Masq".
    Masq = 0,
    /// Local node: "Local".
    Local = 1,
    /// IP tunnel (`-i`): "Tunnel".
    Tunnel = 2,
    /// Direct routing (`-g`, ipvsadm's default): "Route".
    #[default]
    Route = 3,
    /// Full NAT (source and destination rewritten, DPVS's `-b`): "FullNat".
    FullNat = 5,
}

impl FwdMethod {
    /// The name in `ipvsadm -L`'s Forward column.
    pub fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Local => "Local",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::Route => "Route",
            FwdMethod::FullNat => "FullNat",
        }
    }

    /// The method for the low 3 bits of IPVS conn flags.
    pub fn from_flags(flags: u16) -> FwdMethod {
        match flags & FWD_MASK {
            0 => FwdMethod::Masq,
            1 => FwdMethod::Local,
            2 => FwdMethod::Tunnel,
            5 => FwdMethod::FullNat,
            _ => FwdMethod::Route,
        }
    }

    /// True when replies come back through the director (NAT, FULLNAT); the others get
    /// `IP_VS_CONN_F_NOOUTPUT` and use the INPUT-ONLY TCP state rows.
    pub fn replies_via_director(self) -> bool {
        matches!(self, FwdMethod::Masq | FwdMethod::FullNat)
    }
}

/// The encapsulation of a TUN real server (ipvsadm's `--tun-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum TunKind {
    /// IP in IP (the default).
    #[default]
    Ipip = 0,
    /// Generic UDP Encapsulation to the real server's `--tun-port`.
    Gue = 1,
    /// GRE.
    Gre = 2,
}

/// The checksum option of a GUE or GRE tunnel (`--tun-nocsum`, `--tun-csum`,
/// `--tun-remcsum`; the kernel's `IP_VS_TUNNEL_ENCAP_FLAG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum TunCsum {
    /// No checksum (the default): GUE's UDP checksum 0, GRE without the checksum field.
    #[default]
    NoCsum = 0,
    /// GUE: the UDP checksum; GRE: the GRE checksum.
    Csum = 1,
    /// GUE remote checksum offload. For a forwarded packet (its own checksum complete)
    /// IPVS sends the UDP checksum and no offload option, as with `Csum`.
    RemCsum = 2,
}

/// A TUN real server's tunnel: its kind, the GUE destination port, the checksum option.
/// Read per packet of a TUN session from the per-core real-server table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Tunnel {
    /// The encapsulation.
    pub kind: TunKind,
    /// GUE: the UDP destination port (`--tun-port`).
    pub port: u16,
    /// The checksum option.
    pub csum: TunCsum,
}

impl Tunnel {
    /// IPIP, the default.
    pub const IPIP: Tunnel = Tunnel {
        kind: TunKind::Ipip,
        port: 0,
        csum: TunCsum::NoCsum,
    };
}

/// TCP header flags as they appear in byte 13 of the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No flag (also what UDP packets pass).
    pub const NONE: TcpFlags = TcpFlags(0);
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// SYN+ACK.
    pub const SYN_ACK: TcpFlags = TcpFlags(0x12);
    /// FIN+ACK.
    pub const FIN_ACK: TcpFlags = TcpFlags(0x11);

    /// True when every flag of `other` is set.
    pub fn has(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_methods_read_from_conn_flags_as_ipvs_and_dpvs_number_them() {
        use FwdMethod::*;
        let want = [Masq, Local, Tunnel, Route, Route, FullNat, Route, Route];
        for bits in 0u16..8 {
            // The bits above the mask are other flags.
            for high in [0, 0x0100, 0xfff8] {
                assert_eq!(FwdMethod::from_flags(bits | high), want[usize::from(bits)]);
            }
        }
        for m in [Masq, Local, Tunnel, Route, FullNat] {
            assert_eq!(FwdMethod::from_flags(m as u16), m);
        }
    }

    #[test]
    fn addr_roundtrip_fold_and_mask() {
        let a = Addr::v4(192, 168, 1, 100);
        assert!(a.is_v4());
        assert_eq!(a.v4_bits(), Some(0xc0a8_0164));
        assert_eq!(a.to_string(), "192.168.1.100");
        assert_eq!(a.fold(), 0xc0a8_0164);
        let m = a.masked(&Addr::v4_netmask(0xffff_ff00));
        assert_eq!(m, Addr::v4(192, 168, 1, 0));
        let v6: Addr = "2001:db8::1".parse::<Ipv6Addr>().unwrap().into();
        assert!(!v6.is_v4());
        assert_eq!(v6.fold(), 0x2001_0db8 ^ 1);
        assert_eq!(
            v6.masked(&Addr::v6_prefix(32)),
            "2001:db8::".parse::<Ipv6Addr>().unwrap().into()
        );
        assert_eq!(Addr::v6_prefix(0), Addr([0; 16]));
        assert_eq!(endpoint(&v6, 80), "[2001:db8::1]:80");
        assert_eq!(endpoint(&a, 80), "192.168.1.100:80");
    }
}
