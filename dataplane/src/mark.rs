//! Firewall marks: the dataplane's `iptables -t mangle ... -j MARK`. An ordered list of
//! rules (protocol, source and destination prefixes, destination port ranges, ingress
//! port) gives a packet without a session its mark; the first rule that matches wins, no
//! rule is mark 0. [`crate::service::ServiceSet::find`] then looks up a fwmark service
//! for a non-zero mark before the address services, as IPVS does with `skb->mark`.
//!
//! The rules are compiled once (prefixes as masks, ports as ranges) when the
//! configuration is read and travel in the [`crate::pipeline::NetConfig`] of each
//! snapshot; matching a packet is a linear scan that allocates nothing.

use std::net::Ipv4Addr;

use crate::flow::Proto;
use crate::service::{ServiceKey, ServiceSet};

/// An IPv4 prefix as an address and mask (host order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix4 {
    addr: u32,
    mask: u32,
}

impl Prefix4 {
    /// `addr/len` (`len` 0..=32; the host bits of `addr` are ignored).
    pub fn new(addr: Ipv4Addr, len: u8) -> Prefix4 {
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len.min(32)))
        };
        Prefix4 {
            addr: u32::from(addr) & mask,
            mask,
        }
    }

    /// Every address (`0.0.0.0/0`).
    pub const ANY: Prefix4 = Prefix4 { addr: 0, mask: 0 };

    /// Whether `a` is inside.
    #[inline(always)]
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask == self.addr
    }

    /// The address, when the prefix is one host (`/32`).
    pub fn host(&self) -> Option<Ipv4Addr> {
        (self.mask == u32::MAX).then(|| Ipv4Addr::from(self.addr))
    }
}

/// One rule: every condition given must hold; the packet then gets `mark`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRule {
    /// TCP or UDP only (`None`: both).
    pub proto: Option<Proto>,
    /// Source prefix.
    pub src: Prefix4,
    /// Destination prefix.
    pub dst: Prefix4,
    /// Destination port ranges, inclusive (empty: any port).
    pub dports: Vec<(u16, u16)>,
    /// The rvs port the packet arrived on (`None`: any).
    pub in_port: Option<u16>,
    /// The mark, 1..=u32::MAX.
    pub mark: u32,
}

impl MarkRule {
    /// A rule giving `mark` to every TCP and UDP packet (narrow it with the fields).
    pub fn new(mark: u32) -> MarkRule {
        MarkRule {
            proto: None,
            src: Prefix4::ANY,
            dst: Prefix4::ANY,
            dports: Vec::new(),
            in_port: None,
            mark,
        }
    }

    /// Whether the packet matches.
    #[inline]
    fn matches(
        &self,
        proto: Proto,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        dport: u16,
        in_port: u16,
    ) -> bool {
        (self.proto.is_none() || self.proto == Some(proto))
            && (self.in_port.is_none() || self.in_port == Some(in_port))
            && self.src.contains(src)
            && self.dst.contains(dst)
            && (self.dports.is_empty()
                || self
                    .dports
                    .iter()
                    .any(|&(lo, hi)| lo <= dport && dport <= hi))
    }
}

/// The ordered rules of a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkRules {
    rules: Vec<MarkRule>,
}

impl MarkRules {
    /// The rules, in the order they are tried.
    pub fn new(rules: Vec<MarkRule>) -> MarkRules {
        MarkRules { rules }
    }

    /// The rules.
    pub fn rules(&self) -> &[MarkRule] {
        &self.rules
    }

    /// The mark of a TCP or UDP packet: the first matching rule's, 0 when none matches.
    #[inline]
    pub fn mark(
        &self,
        proto: Proto,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        dport: u16,
        in_port: u16,
    ) -> u32 {
        self.rules
            .iter()
            .find(|r| r.matches(proto, src, dst, dport, in_port))
            .map_or(0, |r| r.mark)
    }

    /// The addresses the director answers for as VIPs because of the rules: the
    /// single-host destination (`/32`) of each rule whose mark has an IPv4 fwmark service
    /// in `services` (as an IPVS director holds the VIP its mangle rule matches).
    pub fn vips<'a>(&'a self, services: &'a ServiceSet) -> impl Iterator<Item = Ipv4Addr> + 'a {
        self.rules.iter().filter_map(move |r| {
            let served = services.services().iter().any(|s| {
                s.key
                    == ServiceKey::Fwmark {
                        v6: false,
                        mark: r.mark,
                    }
            });
            r.dst.host().filter(|_| served)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 100);

    #[test]
    fn first_matching_rule_wins_and_every_condition_counts() {
        let web = MarkRule {
            proto: Some(Proto::Tcp),
            dst: Prefix4::new(VIP, 32),
            dports: vec![(80, 80), (443, 443)],
            ..MarkRule::new(1)
        };
        let udp_range = MarkRule {
            proto: Some(Proto::Udp),
            src: Prefix4::new(Ipv4Addr::new(10, 10, 0, 0), 24),
            dports: vec![(5000, 5010)],
            in_port: Some(0),
            ..MarkRule::new(2)
        };
        let rest = MarkRule {
            dst: Prefix4::new(VIP, 32),
            ..MarkRule::new(3)
        };
        let r = MarkRules::new(vec![web, udp_range, rest]);
        assert_eq!(r.mark(Proto::Tcp, C, VIP, 80, 0), 1);
        assert_eq!(r.mark(Proto::Tcp, C, VIP, 443, 1), 1);
        // Not port 80/443: the catch-all of the VIP.
        assert_eq!(r.mark(Proto::Tcp, C, VIP, 8080, 0), 3);
        assert_eq!(r.mark(Proto::Udp, C, VIP, 80, 0), 3);
        assert_eq!(r.mark(Proto::Udp, C, Ipv4Addr::new(1, 1, 1, 1), 5000, 0), 2);
        assert_eq!(r.mark(Proto::Udp, C, Ipv4Addr::new(1, 1, 1, 1), 5010, 0), 2);
        assert_eq!(r.mark(Proto::Udp, C, Ipv4Addr::new(1, 1, 1, 1), 5011, 0), 0);
        // Wrong ingress port, wrong source.
        assert_eq!(r.mark(Proto::Udp, C, Ipv4Addr::new(1, 1, 1, 1), 5000, 1), 0);
        let other = Ipv4Addr::new(10, 11, 0, 2);
        assert_eq!(
            r.mark(Proto::Udp, other, Ipv4Addr::new(1, 1, 1, 1), 5000, 0),
            0
        );
        assert_eq!(MarkRules::default().mark(Proto::Tcp, C, VIP, 80, 0), 0);
    }

    #[test]
    fn host_destinations_of_served_marks_are_vips() {
        use crate::service::{SchedKind, ServiceConfig, ServiceTable};
        let r = MarkRules::new(vec![
            MarkRule {
                dst: Prefix4::new(VIP, 32),
                ..MarkRule::new(1)
            },
            MarkRule {
                dst: Prefix4::new(Ipv4Addr::new(10, 10, 0, 0), 24),
                ..MarkRule::new(1)
            },
            MarkRule {
                dst: Prefix4::new(Ipv4Addr::new(10, 10, 0, 101), 32),
                ..MarkRule::new(2)
            },
        ]);
        let mut t = ServiceTable::new();
        assert_eq!(r.vips(&t.snapshot()).count(), 0);
        let key = ServiceKey::Fwmark { v6: false, mark: 1 };
        t.add_service(ServiceConfig::new(key, SchedKind::Rr))
            .unwrap();
        assert_eq!(r.vips(&t.snapshot()).collect::<Vec<_>>(), vec![VIP]);
    }

    #[test]
    fn prefixes() {
        let p = Prefix4::new(Ipv4Addr::new(10, 1, 2, 3), 16);
        assert!(p.contains(Ipv4Addr::new(10, 1, 255, 1)));
        assert!(!p.contains(Ipv4Addr::new(10, 2, 0, 1)));
        assert_eq!(p.host(), None);
        assert!(Prefix4::ANY.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(Prefix4::new(VIP, 32).host(), Some(VIP));
    }
}
