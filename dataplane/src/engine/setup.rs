//! DPDK bring-up of the engine: worker lcores, the mempool, the ports and their exception
//! taps, the handoff rings.

use std::net::Ipv4Addr;

use crate::dpdk::{lcore, LcoreId, Mempool, Port, PortConf, PortInfo, Ring, RING_SP_SC, RSS_KEY};
use crate::laddr::RssSteer;
use crate::pipeline::{LocalKind, NetConfig, PortNet};
use crate::route::{Route, Route6, RouteTable};

use super::{EngineConfig, EngineError, PortSpec};

/// Rx and tx descriptors per queue of a port.
const PORT_DESC: u16 = 1024;
/// Rx and tx descriptors per queue of an exception tap.
const TAP_DESC: u16 = 512;
/// Mbufs the pool holds at least per port (or tap) and worker: its queues' descriptors
/// and what is in flight in batches and rings.
const MBUFS_PER_PORT_WORKER: u32 = 2048 + 1024;
/// Mbufs the pool holds at least beyond [`MBUFS_PER_PORT_WORKER`]'s.
const SPARE_MBUFS: u32 = 8191;
/// Per-lcore cache of the mempool, in mbufs.
const MEMPOOL_CACHE: u32 = 256;
/// Slots of each handoff ring (a power of two).
const HANDOFF_RING: u32 = 4096;
/// The process id goes into handoff ring names modulo this (DPDK limits ring names).
const RING_NAME_PID_MODULUS: u32 = 100_000;

/// The director's ports, started, and the network configuration they make.
pub(super) struct Ports {
    /// The ports, by rvs port index.
    pub(super) ports: Vec<Port>,
    /// DPDK port id -> rvs port index (`None`: not ours).
    pub(super) port_index: Vec<Option<u16>>,
    /// Rx queues per port.
    pub(super) rx_queues: Vec<u16>,
    /// Source address of ARP requests per port (its first address).
    pub(super) arp_src: Vec<Option<Ipv4Addr>>,
    /// Ports, local addresses and routes (services and VIPs come with each publish).
    pub(super) net: NetConfig,
}

/// The exception-path taps, started.
pub(super) struct Taps {
    /// The taps; output index of tap `k` is `ports.len() + k`.
    pub(super) taps: Vec<Port>,
    /// Rx queues per tap.
    pub(super) rx_queues: Vec<u16>,
    /// Per tap: the rvs port it belongs to.
    pub(super) port: Vec<u16>,
    /// Per rvs port: the output index of its tap.
    pub(super) of_port: Vec<Option<usize>>,
}

/// The first `workers` worker lcores of EAL (refused when it has fewer).
pub(super) fn worker_lcores(workers: usize) -> Result<Vec<LcoreId>, EngineError> {
    let lcores: Vec<LcoreId> = lcore::workers().into_iter().take(workers).collect();
    if lcores.len() < workers {
        return Err(EngineError::NotEnoughLcores {
            workers,
            lcores: lcores.len(),
        });
    }
    Ok(lcores)
}

/// The engine's mempool: `cfg.mbufs`, or more when the ports' queues need more.
pub(super) fn mempool(
    cfg: &EngineConfig,
    workers: usize,
    data_room: u16,
) -> Result<Mempool, EngineError> {
    let ntaps = cfg
        .ports
        .iter()
        .filter(|p| p.kernel_iface.is_some())
        .count();
    let nports = (cfg.ports.len() + ntaps).max(1) as u32;
    // The SYN proxy's kept client segments, per worker.
    let held = crate::pipeline::SYN_PROXY_HELD_MAX as u32;
    let mbufs = cfg
        .mbufs
        .max(nports * MBUFS_PER_PORT_WORKER * workers as u32 + held * workers as u32 + SPARE_MBUFS);
    Ok(Mempool::new(
        &format!("rvs_pool_{}", std::process::id()),
        mbufs,
        MEMPOOL_CACHE,
        data_room,
    )?)
}

/// What opening a port needs: the configuration, the worker count, the mempool.
pub(super) struct Setup<'a> {
    /// The engine's configuration.
    pub(super) cfg: &'a EngineConfig,
    /// Workers (at least 1): each has an rx queue (as the driver allows) and a tx queue
    /// on every port.
    pub(super) workers: usize,
    /// The pool rx queues take mbufs from.
    pub(super) pool: &'a Mempool,
}

impl Setup<'_> {
    /// Opens and starts the ports of `cfg` and makes the network configuration of their
    /// addresses (each a local DIP and a connected route) and `cfg`'s routes.
    pub(super) fn open_ports(&self) -> Result<Ports, EngineError> {
        let (cfg, workers) = (self.cfg, self.workers);
        let mut out = Ports {
            ports: Vec::new(),
            port_index: Vec::new(),
            rx_queues: Vec::new(),
            arp_src: Vec::new(),
            net: NetConfig::new(workers),
        };
        out.net.lport_range = cfg.lport_range;
        out.net.marks = cfg.marks.clone();
        let mut routes = cfg.routes.clone();
        let mut routes6 = cfg.routes6.clone();
        for (i, spec) in cfg.ports.iter().enumerate() {
            let mut devargs = spec.devargs.clone();
            if devargs.starts_with("net_af_packet") && !devargs.contains("qpairs=") {
                devargs.push_str(&format!(",qpairs={workers}"));
            }
            let what = format!("port {} ({devargs})", spec.name);
            let (port, info, nrx) = self.open(&devargs, &what, PORT_DESC)?;
            let mac = port.mac()?;
            let pid = usize::from(port.id().0);
            if out.port_index.len() <= pid {
                out.port_index.resize(pid + 1, None);
            }
            out.port_index[pid] = Some(i as u16);
            out.rx_queues.push(nrx);
            out.net.rss.push(rss_steer(&info, nrx));
            out.ports.push(port);
            out.net.ports.push(PortNet {
                mac,
                mtu: spec.mtu,
                vlan: spec.vlan,
            });
            add_addresses(&mut out.net, &mut routes, &mut routes6, i as u16, spec);
            out.arp_src.push(spec.addrs.first().map(|a| a.0));
        }
        out.net.routes = RouteTable::new(routes).with_v6(routes6);
        Ok(out)
    }

    /// Exception path: one kernel tap per port that asks for it, with the port's MAC (the
    /// kernel then answers ARP for its host addresses with the port's MAC).
    pub(super) fn open_taps(&self, ports: &Ports) -> Result<Taps, EngineError> {
        let cfg = self.cfg;
        let mut out = Taps {
            taps: Vec::new(),
            rx_queues: Vec::new(),
            port: Vec::new(),
            of_port: vec![None; cfg.ports.len()],
        };
        for (i, spec) in cfg.ports.iter().enumerate() {
            let Some(iface) = &spec.kernel_iface else {
                continue;
            };
            let m = ports.net.ports[i].mac;
            let devargs = format!(
                "net_tap_rvs{i},iface={iface},mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            );
            let what = format!("port {} exception tap {iface}", spec.name);
            let (tap, _, nq) = self.open(&devargs, &what, TAP_DESC)?;
            out.of_port[i] = Some(ports.ports.len() + out.taps.len());
            out.rx_queues.push(nq);
            out.port.push(i as u16);
            out.taps.push(tap);
        }
        Ok(out)
    }

    /// The port of `devargs` (already probed, or hot-plugged now), started with `desc`
    /// descriptors per queue (see [`start_port`]).
    fn open(
        &self,
        devargs: &str,
        what: &str,
        desc: u16,
    ) -> Result<(Port, PortInfo, u16), EngineError> {
        let name = devargs.split(',').next().unwrap_or(devargs);
        let port = match Port::by_name(name) {
            Ok(p) => p,
            Err(_) => Port::attach(devargs)?,
        };
        let (info, nrx) = start_port(&port, what, self.workers, desc, self.pool)?;
        Ok((port, info, nrx))
    }
}

/// With RSS over several queues, FULLNAT picks lports whose replies hash to the owner's
/// queue. rvs programs [`RSS_KEY`]; the redirection table is taken to be the drivers'
/// default round robin over the rx queues.
fn rss_steer(info: &PortInfo, nrx: u16) -> Option<RssSteer> {
    (nrx > 1 && info.rss_offloads != 0 && usize::from(info.hash_key_size) == RSS_KEY.len()).then(
        || RssSteer {
            key: RSS_KEY,
            reta: (0..info.reta_size.max(nrx)).map(|i| i % nrx).collect(),
        },
    )
}

/// The addresses of port `port`: floating ones (all but the first of each family),
/// local DIPs, and their connected routes.
fn add_addresses(
    net: &mut NetConfig,
    routes: &mut Vec<Route>,
    routes6: &mut Vec<Route6>,
    port: u16,
    spec: &PortSpec,
) {
    net.floating
        .extend(spec.addrs.iter().skip(1).map(|&(a, _)| a));
    for &(addr, len) in &spec.addrs {
        net.local.insert(addr, (LocalKind::Dip, port));
        routes.push(Route {
            prefix: addr,
            len,
            port,
            gateway: None,
        });
    }
    net.floating6
        .extend(spec.addrs6.iter().skip(1).map(|&(a, _)| a));
    for &(addr, len) in &spec.addrs6 {
        net.local6.insert(addr, (LocalKind::Dip, port));
        routes6.push(Route6 {
            prefix: addr,
            len,
            port,
            gateway: None,
        });
    }
}

/// One SP/SC handoff ring per ordered pair of workers: `rings[src * workers + dst]`.
pub(super) fn handoff_rings(workers: usize) -> Result<Vec<Ring>, EngineError> {
    let mut rings = Vec::with_capacity(workers * workers);
    for s in 0..workers {
        for d in 0..workers {
            rings.push(Ring::new(
                &format!(
                    "rvs_ho_{}_{s}_{d}",
                    std::process::id() % RING_NAME_PID_MODULUS
                ),
                HANDOFF_RING,
                RING_SP_SC,
            )?);
        }
    }
    Ok(rings)
}

/// Configures and starts a port for `workers` workers: one tx queue per worker (refused,
/// naming `what`, when the driver has fewer), as many rx queues as the driver allows up to
/// one per worker. Returns the driver's info and the rx queue count.
fn start_port(
    port: &Port,
    what: &str,
    workers: usize,
    desc: u16,
    pool: &Mempool,
) -> Result<(PortInfo, u16), EngineError> {
    let info = port.info()?;
    if usize::from(info.max_tx_queues) < workers {
        return Err(EngineError::NotEnoughTxQueues {
            port: what.to_owned(),
            workers,
            max: info.max_tx_queues,
        });
    }
    let nrx = (workers as u16).min(info.max_rx_queues.max(1));
    let conf = PortConf {
        rx_queues: nrx,
        tx_queues: workers as u16,
        rx_desc: desc,
        tx_desc: desc,
        ..PortConf::default()
    };
    port.configure(&conf, pool)?;
    port.start()?;
    Ok((info, nrx))
}
