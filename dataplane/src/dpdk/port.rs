//! Ethernet ports.

use std::ffi::CStr;
use std::fmt;

use dpdk_sys as sys;

use super::{
    call_error, cstring, with_log_capture, DpdkError, Eal, MbufBatch, Mempool, Result, Ring,
};

/// A DPDK ethdev port number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// A queue number on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// DPDK RSS bits rvs uses (`RTE_BIT64` macros bindgen cannot expand).
pub mod bits {
    /// `RTE_ETH_RSS_IPV4`
    const RSS_IPV4: u64 = 1 << 2;
    /// `RTE_ETH_RSS_FRAG_IPV4`
    const RSS_FRAG_IPV4: u64 = 1 << 3;
    /// `RTE_ETH_RSS_NONFRAG_IPV4_TCP`
    const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
    /// `RTE_ETH_RSS_NONFRAG_IPV4_UDP`
    const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
    /// `RTE_ETH_RSS_NONFRAG_IPV4_OTHER`
    const RSS_NONFRAG_IPV4_OTHER: u64 = 1 << 7;
    /// `RTE_ETH_RSS_IPV6`
    const RSS_IPV6: u64 = 1 << 8;
    /// `RTE_ETH_RSS_NONFRAG_IPV6_TCP`
    const RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
    /// `RTE_ETH_RSS_NONFRAG_IPV6_UDP`
    const RSS_NONFRAG_IPV6_UDP: u64 = 1 << 11;
    /// The hash functions rvs asks for: IPv4 (fragments, TCP, UDP, other) and IPv6 (TCP,
    /// UDP).
    pub const RSS_IP_TCP_UDP: u64 = RSS_IPV4
        | RSS_FRAG_IPV4
        | RSS_NONFRAG_IPV4_TCP
        | RSS_NONFRAG_IPV4_UDP
        | RSS_NONFRAG_IPV4_OTHER
        | RSS_IPV6
        | RSS_NONFRAG_IPV6_TCP
        | RSS_NONFRAG_IPV6_UDP;
}

/// The RSS key rvs programs into every multi-queue port (the well-known Microsoft
/// Toeplitz key, 40 bytes). The FULLNAT local-port picker computes reply hashes with it.
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// What a port's driver reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Driver name, e.g. `net_af_packet`.
    pub driver: String,
    /// Device name, e.g. `net_af_packet0`.
    pub name: String,
    /// Maximum rx queues.
    pub max_rx_queues: u16,
    /// Maximum tx queues.
    pub max_tx_queues: u16,
    /// RSS hash functions the port supports (`RTE_ETH_RSS_*`).
    pub rss_offloads: u64,
    /// RSS key size in bytes (0: no RSS).
    pub hash_key_size: u8,
    /// RSS redirection table size.
    pub reta_size: u16,
    /// Largest MTU.
    pub max_mtu: u16,
}

/// How to configure a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConf {
    /// Rx queues (one per worker that polls this port).
    pub rx_queues: u16,
    /// Tx queues (one per worker that sends on this port).
    pub tx_queues: u16,
    /// Rx descriptors per queue.
    pub rx_desc: u16,
    /// Tx descriptors per queue.
    pub tx_desc: u16,
    /// Spread received packets over the rx queues with RSS ([`RSS_KEY`]) when the port
    /// has more than one rx queue and supports it.
    pub rss: bool,
    /// Accept every frame (needed on virtual devices attached to shared segments).
    pub promiscuous: bool,
    /// Accept every multicast frame: IPv6 neighbour discovery reaches the director at
    /// the solicited-node groups of its addresses (`33:33:ff:..`) and all-nodes
    /// (`33:33:00:00:00:01`), which a NIC without it filters out. Asked besides
    /// `promiscuous`, for drivers (SR-IOV VFs) that refuse promiscuous mode but allow
    /// all-multicast.
    pub allmulticast: bool,
}

/// Rx and tx descriptors per queue of [`PortConf::default`].
const DEFAULT_DESC: u16 = 1024;

impl Default for PortConf {
    fn default() -> Self {
        PortConf {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: DEFAULT_DESC,
            tx_desc: DEFAULT_DESC,
            rss: true,
            promiscuous: true,
            allmulticast: true,
        }
    }
}

/// Port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the NIC dropped for lack of rx descriptors.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Whether the link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// An ethdev port. The handle is a port number; it is `Copy` and may be used from every
/// lcore (each lcore on its own queues).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port {
    id: PortId,
}

impl Port {
    /// The port whose device is called `name` (e.g. `net_null0`).
    pub fn by_name(name: &str) -> Result<Port> {
        let cname = cstring(name)?;
        let mut id: u16 = 0;
        // SAFETY: cname is a valid C string and `id` a valid out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(call_error(
                format!("rte_eth_dev_get_port_by_name({name})"),
                ret,
                "",
            ));
        }
        Ok(Port { id: PortId(id) })
    }

    /// Hot-plugs a device from a devargs string (a vdev such as
    /// `net_af_packet0,iface=veth0` or a PCI address) and returns its port. A refused
    /// string comes back as `Err` with DPDK's message.
    pub fn attach(devargs: &str) -> Result<Port> {
        if Eal::get().is_none() {
            return Err(DpdkError::EalNotInitialized);
        }
        let c = cstring(devargs)?;
        let (ret, log) = with_log_capture(|| {
            // SAFETY: EAL is initialised; c is a valid devargs C string DPDK copies.
            unsafe { sys::rte_dev_probe(c.as_ptr()) }
        });
        if ret != 0 {
            return Err(call_error(format!("rte_dev_probe({devargs})"), ret, &log));
        }
        let name = devargs.split(',').next().unwrap_or(devargs);
        Port::by_name(name)
    }

    /// Creates a `net_ring` port that receives from `rx` rings and transmits into `tx`
    /// rings (`rte_eth_from_rings`); DPDK names it `net_ring_<name>` (keep `name` short:
    /// the derived names are limited to 31 bytes). Two such ports with crossed rings form
    /// a wire.
    pub fn from_rings(name: &str, rx: &[&Ring], tx: &[&Ring]) -> Result<Port> {
        let c = cstring(name)?;
        let rxp: Vec<*mut sys::rte_ring> = rx.iter().map(|r| r.as_ptr()).collect();
        let txp: Vec<*mut sys::rte_ring> = tx.iter().map(|r| r.as_ptr()).collect();
        let (ret, log) = with_log_capture(|| {
            // SAFETY: the ring pointers are live rings that the caller keeps alive as long
            // as the port is used; the arrays are valid for their lengths; DPDK copies them.
            unsafe {
                sys::rte_eth_from_rings(
                    c.as_ptr(),
                    rxp.as_ptr(),
                    rxp.len() as u32,
                    txp.as_ptr(),
                    txp.len() as u32,
                    sys::rte_socket_id(),
                )
            }
        });
        if ret < 0 {
            return Err(call_error(format!("rte_eth_from_rings({name})"), ret, &log));
        }
        Ok(Port {
            id: PortId(ret as u16),
        })
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// The device name (`rte_eth_dev_get_name_by_port`).
    pub fn name(&self) -> Result<String> {
        let mut buf = [0 as std::ffi::c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: buf has room for RTE_ETH_NAME_MAX_LEN bytes as the API requires.
        let ret = unsafe { sys::rte_eth_dev_get_name_by_port(self.id.0, buf.as_mut_ptr()) };
        if ret != 0 {
            return Err(call_error("rte_eth_dev_get_name_by_port", ret, ""));
        }
        // SAFETY: DPDK wrote a NUL-terminated name into buf.
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }

    /// What the driver reports.
    pub fn info(&self) -> Result<PortInfo> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid out-struct.
        let ret = unsafe { sys::rte_eth_dev_info_get(self.id.0, &mut info) };
        if ret != 0 {
            return Err(call_error(
                format!("rte_eth_dev_info_get({})", self.id.0),
                ret,
                "",
            ));
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a static NUL-terminated string of the driver.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver,
            name: self.name()?,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            hash_key_size: info.hash_key_size,
            reta_size: info.reta_size,
            max_mtu: info.max_mtu,
        })
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: addr is a valid out-struct.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.id.0, &mut addr) };
        if ret != 0 {
            return Err(call_error("rte_eth_macaddr_get", ret, ""));
        }
        Ok(addr.addr_bytes)
    }

    /// Configures the port's queues (the port must be stopped); rx queues take buffers
    /// from `pool`, which must outlive the port's use.
    pub fn configure(&self, conf: &PortConf, pool: &Mempool) -> Result<()> {
        let info = self.info()?;
        let mut eth = sys::rte_eth_conf::default();
        let mut key = RSS_KEY;
        if conf.rss && conf.rx_queues > 1 && info.rss_offloads != 0 {
            eth.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            eth.rx_adv_conf.rss_conf.rss_hf = bits::RSS_IP_TCP_UDP & info.rss_offloads;
            if usize::from(info.hash_key_size) == key.len() {
                eth.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                eth.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
            }
        }
        let pid = self.id.0;
        let (ret, log) = with_log_capture(|| {
            // SAFETY: eth is a fully initialised config; `key` outlives the call (DPDK
            // copies the key during configure).
            unsafe { sys::rte_eth_dev_configure(pid, conf.rx_queues, conf.tx_queues, &eth) }
        });
        if ret != 0 {
            return Err(call_error(
                format!("rte_eth_dev_configure(port {pid})"),
                ret,
                &log,
            ));
        }
        let mut nb_rx = conf.rx_desc;
        let mut nb_tx = conf.tx_desc;
        // SAFETY: valid out-pointers; the port is configured.
        let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(pid, &mut nb_rx, &mut nb_tx) };
        if ret != 0 {
            return Err(call_error("rte_eth_dev_adjust_nb_rx_tx_desc", ret, ""));
        }
        // SAFETY: no preconditions.
        let socket = unsafe { sys::rte_eth_dev_socket_id(pid) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..conf.rx_queues {
            let (ret, log) = with_log_capture(|| {
                // SAFETY: configured port, queue index < rx_queues, NULL conf = driver
                // defaults, a live packet mempool.
                unsafe {
                    sys::rte_eth_rx_queue_setup(
                        pid,
                        q,
                        nb_rx,
                        socket,
                        std::ptr::null(),
                        pool.as_ptr(),
                    )
                }
            });
            if ret != 0 {
                return Err(call_error(
                    format!("rte_eth_rx_queue_setup(port {pid}, queue {q})"),
                    ret,
                    &log,
                ));
            }
        }
        // A zeroed tx queue configuration (no offloads), as rvs has always passed: not
        // NULL, which would mean the driver's `default_txconf`.
        let txconf = sys::rte_eth_txconf::default();
        for q in 0..conf.tx_queues {
            let (ret, log) = with_log_capture(|| {
                // SAFETY: configured port, queue index < tx_queues, txconf valid for the call.
                unsafe { sys::rte_eth_tx_queue_setup(pid, q, nb_tx, socket, &txconf) }
            });
            if ret != 0 {
                return Err(call_error(
                    format!("rte_eth_tx_queue_setup(port {pid}, queue {q})"),
                    ret,
                    &log,
                ));
            }
        }
        if conf.promiscuous {
            // SAFETY: configured port. Some virtual drivers cannot; that is not an error.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(pid) };
        }
        if conf.allmulticast {
            // SAFETY: configured port. Drivers that filter no multicast (af_packet, which
            // promiscuous mode opens fully, net_null, net_ring) refuse; not an error.
            let _ = unsafe { sys::rte_eth_allmulticast_enable(pid) };
        }
        Ok(())
    }

    /// Starts the port.
    pub fn start(&self) -> Result<()> {
        let pid = self.id.0;
        let (ret, log) = with_log_capture(|| {
            // SAFETY: starting a configured port; DPDK checks the state.
            unsafe { sys::rte_eth_dev_start(pid) }
        });
        if ret != 0 {
            return Err(call_error(
                format!("rte_eth_dev_start(port {pid})"),
                ret,
                &log,
            ));
        }
        Ok(())
    }

    /// Stops the port.
    pub fn stop(&self) -> Result<()> {
        // SAFETY: stopping a port; DPDK checks the state.
        let ret = unsafe { sys::rte_eth_dev_stop(self.id.0) };
        if ret != 0 {
            return Err(call_error(
                format!("rte_eth_dev_stop(port {})", self.id.0),
                ret,
                "",
            ));
        }
        Ok(())
    }

    /// Stops (if needed) and closes the port, releasing its queues and the device.
    pub fn close(self) -> Result<()> {
        // SAFETY: close releases the port; the handle is consumed so rvs cannot use it again.
        let ret = unsafe { sys::rte_eth_dev_close(self.id.0) };
        if ret != 0 {
            return Err(call_error(
                format!("rte_eth_dev_close(port {})", self.id.0),
                ret,
                "",
            ));
        }
        Ok(())
    }

    /// Port counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: s is a valid out-struct.
        let ret = unsafe { sys::rte_eth_stats_get(self.id.0, &mut s) };
        if ret != 0 {
            return Err(call_error("rte_eth_stats_get", ret, ""));
        }
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Link state, without waiting.
    pub fn link(&self) -> Result<Link> {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: l is a valid out-struct.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.id.0, &mut l) };
        if ret != 0 {
            return Err(call_error("rte_eth_link_get_nowait", ret, ""));
        }
        Ok(Link {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        })
    }

    /// Receives up to the batch's free room from `queue` into the batch; returns how many
    /// arrived. Only the lcore that owns `queue` may call this.
    #[inline]
    pub fn rx_burst(&self, queue: QueueId, batch: &mut MbufBatch) -> usize {
        let (ptr, room) = batch.raw_tail();
        if room == 0 {
            return 0;
        }
        // SAFETY: ptr points at `room` free slots of the batch's array; the driver writes at
        // most `room` mbuf pointers, whose ownership passes to the batch via commit().
        let n = unsafe { sys::rvs_eth_rx_burst(self.id.0, queue.0, ptr, room as u16) } as usize;
        batch.commit(n);
        n
    }

    /// Transmits every mbuf of the batch on `queue`: the driver takes what it accepts, the
    /// rest is freed (counted by the caller as tx drops), and the batch is left empty.
    /// Returns `(sent, dropped)`. Only the lcore that owns `queue` may call this.
    #[inline]
    pub fn tx_burst(&self, queue: QueueId, batch: &mut MbufBatch) -> (usize, usize) {
        let (ptr, len) = batch.raw_all();
        if len == 0 {
            return (0, 0);
        }
        // SAFETY: ptr holds `len` owned mbufs; the driver takes ownership of the first
        // `sent` ones; consume_sent frees the others.
        let sent = unsafe { sys::rvs_eth_tx_burst(self.id.0, queue.0, ptr, len as u16) } as usize;
        let dropped = batch.consume_sent(sent);
        (sent, dropped)
    }
}
