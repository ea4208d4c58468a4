//! Next-hop choice: connected subnets of the ports, static routes, a default gateway.

use std::net::Ipv4Addr;

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

/// An immutable routing table, longest prefix first. Director route tables are small
/// (connected subnets, a few static routes, a default), so lookup walks a sorted slice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Builds the table (sorts longest prefix first; ties keep insertion order).
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        routes.sort_by_key(|r| std::cmp::Reverse(r.len));
        RouteTable { routes }
    }

    /// The next hop for `dst`, or `None` when no route matches.
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        self.routes
            .iter()
            .find(|r| r.matches(dst))
            .map(|r| NextHop {
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
}
