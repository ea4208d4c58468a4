//! Next-hop choice: connected subnets of the ports, static routes, a default gateway —
//! for IPv4 ([`Route`], [`RouteTable::lookup`]) and IPv6 ([`Route6`],
//! [`RouteTable::lookup6`]) alike.

use std::net::{Ipv4Addr, Ipv6Addr};

/// One route: `prefix/len` reached through `port`, via `gateway` (or on-link when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Network address.
    pub prefix: Ipv4Addr,
    /// Prefix length 0..=32.
    pub len: u8,
    /// Egress port index (rvs's own numbering of configured ports).
    pub port: u16,
    /// Next-hop gateway; `None` for a connected (on-link) route.
    pub gateway: Option<Ipv4Addr>,
}

impl Route {
    fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len.min(32)))
        }
    }

    /// Whether `dst` falls in this route's prefix.
    #[inline]
    pub fn matches(&self, dst: Ipv4Addr) -> bool {
        (u32::from(dst) & self.mask()) == (u32::from(self.prefix) & self.mask())
    }
}

/// Where a packet to some address goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Egress port index.
    pub port: u16,
    /// The address whose MAC the frame is sent to (the destination itself when on-link).
    pub addr: Ipv4Addr,
}

/// One IPv6 route: `prefix/len` reached through `port`, via `gateway` (often a
/// link-local address) or on-link when `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route6 {
    /// Network address.
    pub prefix: Ipv6Addr,
    /// Prefix length 0..=128.
    pub len: u8,
    /// Egress port index.
    pub port: u16,
    /// Next-hop gateway; `None` for a connected (on-link) route.
    pub gateway: Option<Ipv6Addr>,
}

impl Route6 {
    fn mask(&self) -> u128 {
        match self.len {
            0 => 0,
            l => u128::MAX << (128 - u32::from(l.min(128))),
        }
    }

    /// Whether `dst` falls in this route's prefix.
    #[inline]
    pub fn matches(&self, dst: Ipv6Addr) -> bool {
        (u128::from(dst) & self.mask()) == (u128::from(self.prefix) & self.mask())
    }
}

/// Where an IPv6 packet to some address goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop6 {
    /// Egress port index.
    pub port: u16,
    /// The address whose MAC the frame is sent to (the destination itself when on-link).
    pub addr: Ipv6Addr,
}

/// An immutable routing table, longest prefix first. Director route tables are small
/// (connected subnets, a few static routes, a default), so lookup walks a sorted slice:
/// each route's mask and masked prefix, computed when the table is built (`nets`,
/// `nets6`, in the routes' order), so that a route costs the walk one AND and one compare.
/// IPv4 and IPv6 routes are kept apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<Route>,
    routes6: Vec<Route6>,
    nets: Vec<(u32, u32)>,
    nets6: Vec<(u128, u128)>,
}

impl RouteTable {
    /// Builds the table (sorts longest prefix first; ties keep insertion order).
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        routes.sort_by_key(|r| std::cmp::Reverse(r.len));
        let nets = routes
            .iter()
            .map(|r| (r.mask(), u32::from(r.prefix) & r.mask()))
            .collect();
        RouteTable {
            routes,
            routes6: Vec::new(),
            nets,
            nets6: Vec::new(),
        }
    }

    /// The table with IPv6 routes `routes6` (sorted as [`RouteTable::new`] sorts).
    pub fn with_v6(mut self, mut routes6: Vec<Route6>) -> RouteTable {
        routes6.sort_by_key(|r| std::cmp::Reverse(r.len));
        self.nets6 = routes6
            .iter()
            .map(|r| (r.mask(), u128::from(r.prefix) & r.mask()))
            .collect();
        self.routes6 = routes6;
        self
    }

    /// The IPv6 next hop for `dst`, or `None` when no route matches.
    #[inline]
    pub fn lookup6(&self, dst: Ipv6Addr) -> Option<NextHop6> {
        let d = u128::from(dst);
        let i = self.nets6.iter().position(|&(mask, net)| d & mask == net)?;
        let r = self.routes6.get(i)?;
        Some(NextHop6 {
            port: r.port,
            addr: r.gateway.unwrap_or(dst),
        })
    }

    /// The IPv6 routes, longest prefix first.
    pub fn routes6(&self) -> &[Route6] {
        &self.routes6
    }

    /// The next hop for `dst`, or `None` when no route matches.
    #[inline(always)]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let d = u32::from(dst);
        let i = self.nets.iter().position(|&(mask, net)| d & mask == net)?;
        let r = self.routes.get(i)?;
        Some(NextHop {
            port: r.port,
            addr: r.gateway.unwrap_or(dst),
        })
    }

    /// The routes, longest prefix first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: [u8; 4], len: u8, port: u16, gw: Option<[u8; 4]>) -> Route {
        Route {
            prefix: Ipv4Addr::from(p),
            len,
            port,
            gateway: gw.map(Ipv4Addr::from),
        }
    }

    proptest::proptest! {
        /// The lookups (over the masks computed when the table is built) give the first
        /// route, longest prefix first, whose prefix holds the address: a definition
        /// made of `Route::matches`. Prefixes of few distinct values and addresses near
        /// them, so that routes overlap and match often; lengths past the family's
        /// width (33-39, 132-156) included, as `Route::mask` allows.
        #[test]
        fn lookups_give_the_longest_matching_prefix(
            routes in proptest::collection::vec(
                (0u32..4, 0u8..40, 0u16..4, proptest::option::of(0u32..4)),
                0..8,
            ),
            dsts in proptest::collection::vec(0u32..4, 1..8),
            shift in 0u32..32,
        ) {
            let spread = |v: u32| v.rotate_right(shift) | (v & 1);
            let v4: Vec<Route> = routes
                .iter()
                .map(|&(p, len, port, gw)| Route {
                    prefix: Ipv4Addr::from(spread(p)),
                    len,
                    port,
                    gateway: gw.map(|g| Ipv4Addr::from(g + 100)),
                })
                .collect();
            let v6: Vec<Route6> = routes
                .iter()
                .map(|&(p, len, port, gw)| Route6 {
                    prefix: Ipv6Addr::from(u128::from(spread(p)) << 96),
                    len: len.saturating_mul(4),
                    port,
                    gateway: gw.map(|g| Ipv6Addr::from(u128::from(g) + 100)),
                })
                .collect();
            let t = RouteTable::new(v4).with_v6(v6);
            for d in dsts {
                let d4 = Ipv4Addr::from(spread(d));
                let want = t.routes().iter().find(|r| r.matches(d4)).map(|r| NextHop {
                    port: r.port,
                    addr: r.gateway.unwrap_or(d4),
                });
                proptest::prop_assert_eq!(t.lookup(d4), want);
                let d6 = Ipv6Addr::from(u128::from(spread(d)) << 96);
                let want6 = t.routes6().iter().find(|r| r.matches(d6)).map(|r| NextHop6 {
                    port: r.port,
                    addr: r.gateway.unwrap_or(d6),
                });
                proptest::prop_assert_eq!(t.lookup6(d6), want6);
            }
        }
    }

    #[test]
    fn longest_prefix_wins_and_gateway_is_the_next_hop() {
        let t = RouteTable::new(vec![
            r([0, 0, 0, 0], 0, 0, Some([10, 0, 0, 254])),
            r([10, 0, 0, 0], 24, 0, None),
            r([10, 1, 0, 0], 16, 1, None),
            r([10, 1, 5, 0], 24, 1, Some([10, 1, 0, 1])),
        ]);
        let nh = |a: [u8; 4]| t.lookup(Ipv4Addr::from(a));
        assert_eq!(
            nh([10, 0, 0, 7]),
            Some(NextHop {
                port: 0,
                addr: Ipv4Addr::new(10, 0, 0, 7)
            })
        );
        assert_eq!(
            nh([10, 1, 2, 3]),
            Some(NextHop {
                port: 1,
                addr: Ipv4Addr::new(10, 1, 2, 3)
            })
        );
        assert_eq!(
            nh([10, 1, 5, 9]),
            Some(NextHop {
                port: 1,
                addr: Ipv4Addr::new(10, 1, 0, 1)
            })
        );
        assert_eq!(
            nh([8, 8, 8, 8]),
            Some(NextHop {
                port: 0,
                addr: Ipv4Addr::new(10, 0, 0, 254)
            })
        );
    }

    #[test]
    fn no_default_means_no_route() {
        let t = RouteTable::new(vec![r([192, 168, 1, 0], 24, 0, None)]);
        assert_eq!(t.lookup(Ipv4Addr::new(192, 168, 2, 1)), None);
        assert!(t.lookup(Ipv4Addr::new(192, 168, 1, 255)).is_some());
    }

    #[test]
    fn ipv6_longest_prefix_wins() {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let t = RouteTable::new(Vec::new()).with_v6(vec![
            Route6 {
                prefix: a("::"),
                len: 0,
                port: 0,
                gateway: Some(a("fe80::1")),
            },
            Route6 {
                prefix: a("2001:db8:1::"),
                len: 64,
                port: 1,
                gateway: None,
            },
            Route6 {
                prefix: a("2001:db8:1::"),
                len: 48,
                port: 2,
                gateway: Some(a("2001:db8:2::1")),
            },
        ]);
        let nh = t.lookup6(a("2001:db8:1::5")).unwrap();
        assert_eq!((nh.port, nh.addr), (1, a("2001:db8:1::5")));
        let nh = t.lookup6(a("2001:db8:1:7::5")).unwrap();
        assert_eq!((nh.port, nh.addr), (2, a("2001:db8:2::1")));
        let nh = t.lookup6(a("2001:db9::1")).unwrap();
        assert_eq!((nh.port, nh.addr), (0, a("fe80::1")));
        assert_eq!(RouteTable::default().lookup6(a("::1")), None);
        assert_eq!(
            t.lookup(Ipv4Addr::new(10, 0, 0, 1)),
            None,
            "IPv6 routes never route IPv4"
        );
    }
}
