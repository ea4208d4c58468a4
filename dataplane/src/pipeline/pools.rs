//! A worker's FULLNAT LIP pools: found by service key (expiry, reservations, synced
//! sessions, the control plane's view) and, for a new session, by the index its service
//! has in the adopted snapshot, which costs no hashing.

use hashbrown::HashMap;

use crate::laddr::LaddrPool;
use crate::service::{Service, ServiceKey, SvcIdx};

/// No pool for a service (`LipPools::by_service`).
const NONE: u32 = u32::MAX;

/// The key of the pool of `keys` the service of `key` takes local addresses from: its
/// own, else (an address service) its address's port-0 service's.
fn pool_key_in(keys: &HashMap<ServiceKey, u32>, key: ServiceKey) -> Option<ServiceKey> {
    if keys.contains_key(&key) {
        return Some(key);
    }
    super::port0_key(key).filter(|k| keys.contains_key(k))
}

/// The LIP pools of one worker, one per service that has local addresses.
#[derive(Debug, Default)]
pub(super) struct LipPools {
    pools: Vec<(ServiceKey, LaddrPool)>,
    /// Each pool's place in `pools`.
    keys: HashMap<ServiceKey, u32>,
    /// Per service of the adopted snapshot (by [`SvcIdx`]): the place of the pool its new
    /// sessions take local addresses from (its own, else the port-0 service's of its
    /// address), or [`NONE`].
    by_service: Vec<u32>,
}

impl LipPools {
    /// The pools of `pools`, indexed for the snapshot's `services` (a configuration
    /// change: allocates).
    pub(super) fn new(pools: HashMap<ServiceKey, LaddrPool>, services: &[Service]) -> LipPools {
        let pools: Vec<(ServiceKey, LaddrPool)> = pools.into_iter().collect();
        let keys: HashMap<ServiceKey, u32> =
            (0u32..).zip(&pools).map(|(i, (k, _))| (*k, i)).collect();
        let by_service = services
            .iter()
            .map(|s| match pool_key_in(&keys, s.key) {
                Some(k) => keys[&k],
                None => NONE,
            })
            .collect();
        LipPools {
            pools,
            keys,
            by_service,
        }
    }

    /// Takes the pools out by key (to be carried into the next configuration).
    pub(super) fn into_map(self) -> HashMap<ServiceKey, LaddrPool> {
        self.pools.into_iter().collect()
    }

    /// Whether a pool of `key` exists.
    pub(super) fn contains_key(&self, key: &ServiceKey) -> bool {
        self.keys.contains_key(key)
    }

    /// The key of the pool the service of `key` takes local addresses from: its own,
    /// else (an address service) its address's port-0 service's.
    pub(super) fn pool_key(&self, key: ServiceKey) -> Option<ServiceKey> {
        pool_key_in(&self.keys, key)
    }

    /// The pool of `key`.
    pub(super) fn get_mut(&mut self, key: &ServiceKey) -> Option<&mut LaddrPool> {
        let i = *self.keys.get(key)?;
        self.pools.get_mut(i as usize).map(|(_, p)| p)
    }

    /// The pool new sessions of the snapshot's service `svc` take local addresses from:
    /// its own, else its address's port-0 service's.
    #[inline]
    pub(super) fn of_service(&mut self, svc: SvcIdx) -> Option<&mut LaddrPool> {
        let i = *self.by_service.get(svc as usize)?;
        self.pools.get_mut(i as usize).map(|(_, p)| p)
    }

    /// Every pool with its key.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&ServiceKey, &LaddrPool)> {
        self.pools.iter().map(|(k, p)| (k, p))
    }

    /// Every pool.
    pub(super) fn values(&self) -> impl Iterator<Item = &LaddrPool> {
        self.pools.iter().map(|(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::flow::{Addr, Proto};
    use crate::service::{SchedKind, ServiceConfig, ServiceTable};

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: Addr::from(Ipv4Addr::new(10, 0, 0, 1)),
            port,
        }
    }

    fn pool(last: u8) -> LaddrPool {
        let lip = IpAddr::V4(Ipv4Addr::new(10, 9, 0, last));
        LaddrPool::new(&[lip], (1025, 2000), 0, 1)
    }

    #[test]
    fn a_service_uses_its_own_pool_else_its_port_zero_services_and_a_fwmark_service_only_its_own() {
        let mut t = ServiceTable::new();
        let fw = ServiceKey::Fwmark { mark: 7, v6: false };
        for k in [key(80), key(443), key(0), key(8080), fw] {
            t.add_service(ServiceConfig::new(k, SchedKind::Rr)).unwrap();
        }
        let snap = t.snapshot();
        let services = snap.services();
        let mut map = HashMap::new();
        map.insert(key(80), pool(1));
        map.insert(key(0), pool(2));
        let mut pools = LipPools::new(map, services);
        let lip_of = |pools: &mut LipPools, k: ServiceKey| {
            let i = services.iter().position(|s| s.key == k).unwrap() as SvcIdx;
            pools.of_service(i).map(|p| p.addrs().next().unwrap())
        };
        let lip = |last| Some(IpAddr::V4(Ipv4Addr::new(10, 9, 0, last)));
        assert_eq!(lip_of(&mut pools, key(80)), lip(1));
        assert_eq!(lip_of(&mut pools, key(443)), lip(2));
        assert_eq!(lip_of(&mut pools, key(8080)), lip(2));
        assert_eq!(lip_of(&mut pools, key(0)), lip(2));
        assert_eq!(lip_of(&mut pools, fw), None);
        assert!(pools.of_service(services.len() as SvcIdx).is_none());
        assert!(pools.contains_key(&key(0)) && !pools.contains_key(&key(443)));
        assert_eq!(pools.values().count(), 2);
        let back = pools.into_map();
        assert_eq!(back.len(), 2);
        assert!(back.contains_key(&key(80)) && back.contains_key(&key(0)));
    }
}
