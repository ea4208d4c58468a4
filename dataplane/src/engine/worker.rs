//! The poll loop of one worker: its [`Core`], rx from its queues, the exception taps and
//! the handoff rings, buffered tx, control commands between bursts.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

use crate::conn::ConnConfig;
use crate::dpdk::{self, Mbuf, MbufBatch, Mempool, QueueId, Ring};
use crate::forward::vlan;
use crate::neigh::NeighConfig;
use crate::pipeline::{
    announced_addresses, announced_addresses6, build_arp_request, build_gratuitous_arp,
    build_neighbor_solicit, build_unsolicited_na, probe_target, Core, DropReason, Emit, Out,
    ND_FRAME_LEN,
};

use super::{read_locked, Command, Shared, WorkerReport};

/// Synced sessions a worker installs per loop at most (forwarding goes on meanwhile).
const SYNC_INSTALL_BURST: usize = 512;
/// Receive bursts a worker reads from one queue per loop after the first, as its pipeline
/// gets to them (so up to `(1 + RX_MORE) * MAX_BURST` packets before it polls anything
/// else): the packets of one burst are in flight while the next is received.
const RX_MORE: usize = 3;
/// Receive bursts in a row that come back full (every descriptor asked for had a
/// packet) after which the worker counts as overloaded: the NIC's queue keeps more than
/// the worker takes, and SYNs to SYN-proxied services are shed
/// ([`crate::pipeline::Core::set_overloaded`]) until a burst comes back short.
const OVERLOAD_BURSTS: u32 = 8;
/// Session table capacity of a worker at least.
const MIN_CONN_CAPACITY: u32 = 1024;
/// Slow work (session expiry, neighbour aging) runs this many times a second.
const TICKS_PER_SECOND: u64 = 100;
/// The TSC frequency assumed at least (a clock of fewer Hz would not count milliseconds).
const MIN_TSC_HZ: u64 = 1000;
/// Milliseconds in a second.
const MS_PER_SECOND: u64 = 1000;
/// Length of an ARP frame the worker originates (the Ethernet minimum, padded).
const ARP_FRAME_LEN: usize = 60;
/// Gratuitous ARP frames (IPv6: unsolicited neighbour advertisements) sent per announced
/// address.
const GARP_REPEAT: usize = 2;
/// The busy ratio a worker reports is over windows of this many slow-path ticks (1 s).
const BUSY_WINDOW_TICKS: u64 = TICKS_PER_SECOND;
/// The making clock ([`Clock::making_cycles`]) leaves out turns of a
/// `MAKING_TURNS_PER_SECOND`th of a second (100 µs) or more: such a turn was not spent
/// making sessions only (its thread was preempted, or the slow path ran in it); a full
/// turn of SYNs takes about a tenth of that.
const MAKING_TURNS_PER_SECOND: u64 = 10_000;
/// The busy ratio's unit: parts per million.
const PPM: u128 = 1_000_000;
/// Idle workers that sleep: turns that found every queue empty, in a row, before the
/// worker starts to pause (about 20-50 µs of polling on a modern core).
const IDLE_TURNS_BEFORE_SLEEP: u32 = 256;
/// The first pause of an idle worker, in microseconds (then doubled up to the bound).
const IDLE_SLEEP_MIN_US: u32 = 4;

/// Runs worker `w` until the engine stops, then frees what it still holds.
pub(super) fn run(w: usize, sh: &Shared, pool: &Mempool) {
    let mut worker = Worker::new(w, sh, pool);
    while !sh.stop.load(Ordering::Acquire) {
        worker.poll();
    }
    worker.shutdown();
}

/// The TSC clock of a worker: milliseconds since it started, the slow-path timer, and
/// the poll loop's busy accounting (TSC cycles of the turns that had packets to work on,
/// against all; read from the TSC the turn reads anyway, so it costs no extra clock read).
struct Clock {
    hz: u64,
    start: u64,
    tick_every: u64,
    last_tick: u64,
    /// TSC at the start of the current turn.
    turn_start: u64,
    /// Cycles of every turn, and of the turns that received packets.
    poll_cycles: u64,
    busy_cycles: u64,
    /// Cycles of the turns that made sessions without adopting a configuration and
    /// within [`MAKING_TURNS_PER_SECOND`]'s bound, and the sessions those turns made.
    making_cycles: u64,
    making_sessions: u64,
    /// That bound, in cycles.
    long_turn: u64,
    /// The busy window: slow-path ticks into it, and the counts at its start.
    window_ticks: u64,
    window_poll: u64,
    window_busy: u64,
    /// Busy share of the last full window, in parts per million.
    busy_ppm: u32,
}

impl Clock {
    fn new() -> Clock {
        let hz = dpdk::tsc_hz().max(MIN_TSC_HZ);
        let start = dpdk::rdtsc();
        Clock {
            hz,
            start,
            tick_every: hz / TICKS_PER_SECOND,
            last_tick: start,
            turn_start: start,
            poll_cycles: 0,
            busy_cycles: 0,
            making_cycles: 0,
            making_sessions: 0,
            long_turn: hz / MAKING_TURNS_PER_SECOND,
            window_ticks: 0,
            window_poll: 0,
            window_busy: 0,
            busy_ppm: 0,
        }
    }

    /// Starts a turn: accounts the cycles of the previous one (busy when it had packets;
    /// making when it made `made` sessions, unless it also `adopted` a configuration or
    /// took as long as a preempted turn) and returns the milliseconds since the worker
    /// started.
    #[inline]
    fn turn(&mut self, previous_busy: bool, made: u64, adopted: bool) -> u64 {
        let t = dpdk::rdtsc();
        let spent = t.wrapping_sub(self.turn_start);
        self.turn_start = t;
        self.poll_cycles = self.poll_cycles.wrapping_add(spent);
        if previous_busy {
            self.busy_cycles = self.busy_cycles.wrapping_add(spent);
        }
        if made != 0 && !adopted && spent < self.long_turn {
            self.making_cycles = self.making_cycles.wrapping_add(spent);
            self.making_sessions = self.making_sessions.wrapping_add(made);
        }
        t.wrapping_sub(self.start) / (self.hz / MS_PER_SECOND).max(1)
    }

    /// Closes the busy window once a second (called on slow-path ticks).
    fn busy_window(&mut self) {
        self.window_ticks += 1;
        if self.window_ticks < BUSY_WINDOW_TICKS {
            return;
        }
        let poll = self.poll_cycles.wrapping_sub(self.window_poll);
        let busy = self.busy_cycles.wrapping_sub(self.window_busy);
        self.busy_ppm = if poll == 0 {
            0
        } else {
            (u128::from(busy.min(poll)) * PPM / u128::from(poll)) as u32
        };
        self.window_ticks = 0;
        self.window_poll = self.poll_cycles;
        self.window_busy = self.busy_cycles;
    }

    /// Whether the slow path is due (and if so, restarts its timer).
    #[inline]
    fn tick_due(&mut self) -> bool {
        let t = dpdk::rdtsc();
        if t.wrapping_sub(self.last_tick) < self.tick_every {
            return false;
        }
        self.last_tick = t;
        true
    }
}

/// Idle workers that sleep (`[workers] idle_sleep_max_us`): after
/// [`IDLE_TURNS_BEFORE_SLEEP`] turns in a row that received nothing, each further empty
/// turn ends with a pause of [`IDLE_SLEEP_MIN_US`], doubled at each empty turn up to
/// `max_us`; a turn that receives anything resets it (full polling again). The turn's
/// control work (commands, synced sessions, the 10 ms tick) runs every turn, so it is at
/// most one pause late. `max_us == 0`: never pauses (pure polling).
struct Idle {
    max_us: u32,
    empty_turns: u32,
    pause_us: u32,
    /// Pauses taken (reported as `idle_sleeps`).
    sleeps: u64,
}

impl Idle {
    fn new(max_us: u32) -> Idle {
        Idle {
            max_us,
            empty_turns: 0,
            pause_us: IDLE_SLEEP_MIN_US,
            sleeps: 0,
        }
    }

    /// The end of a turn: `busy` if it received packets. Returns the pause to take now,
    /// if any.
    #[inline]
    fn after_turn(&mut self, busy: bool) -> Option<std::time::Duration> {
        if self.max_us == 0 {
            return None;
        }
        if busy {
            self.empty_turns = 0;
            self.pause_us = IDLE_SLEEP_MIN_US;
            return None;
        }
        if self.empty_turns < IDLE_TURNS_BEFORE_SLEEP {
            self.empty_turns += 1;
            return None;
        }
        let pause = self.pause_us.min(self.max_us);
        self.pause_us = pause.saturating_mul(2).min(self.max_us);
        self.sleeps += 1;
        Some(std::time::Duration::from_micros(u64::from(pause)))
    }
}

/// Where a worker's packets leave: per output (port or tap) a tx batch, per worker a
/// handoff batch, and the counters of what could not leave.
struct Outputs<'a> {
    sh: &'a Shared,
    pool: &'a Mempool,
    w: usize,
    /// The worker's tx queue on every output.
    queue: QueueId,
    tx: Vec<MbufBatch>,
    handoff: Vec<MbufBatch>,
    tx_dropped: u64,
    to_kernel: u64,
    /// Per port: its VLAN (`[[ports]] vlan`), from the adopted snapshot.
    port_vlans: Vec<Option<u16>>,
}

impl Outputs<'_> {
    /// Sends a verdict of the pipeline (or a frame it originated) where it goes.
    #[inline]
    fn emit(&mut self, e: Emit<'_, Mbuf>) {
        let out = match e {
            Emit::Packet(out) => out,
            Emit::Generated(port, frame) => match self.pool.alloc_with(frame) {
                Some(m) => Out::Tx(m, port),
                None => return,
            },
        };
        self.route(out);
    }

    /// Sends a processed packet where it goes.
    #[inline]
    fn route(&mut self, out: Out<Mbuf>) {
        match out {
            Out::Tx(m, port) => self.push(m, usize::from(port)),
            Out::Handoff(m, owner) => self.hand_off(m, owner as usize),
            Out::Drop(m, DropReason::NotForUs | DropReason::Unsupported) | Out::Consumed(m) => {
                self.pass_to_kernel(m)
            }
            Out::Drop(m, _) => drop(m),
            Out::Held => {}
        }
    }

    /// Pushes `m` on output `p` (a port or a tap), flushing a full batch first.
    #[inline]
    fn push(&mut self, m: Mbuf, p: usize) {
        if let (Some(b), Some(port)) = (self.tx.get_mut(p), self.sh.out_port(p)) {
            if b.is_full() {
                let (_, d) = port.tx_burst(self.queue, b);
                self.tx_dropped += d as u64;
            }
            let _ = b.push(m);
        }
    }

    /// Pushes `m` on the handoff batch to worker `owner`, flushing a full batch first.
    #[inline]
    fn hand_off(&mut self, m: Mbuf, owner: usize) {
        if let Some(b) = self.handoff.get_mut(owner) {
            if b.is_full() {
                let ring = &self.sh.rings[self.w * self.sh.workers + owner];
                self.tx_dropped += enqueue_all(ring, b);
            }
            let _ = b.push(m);
        }
    }

    /// Exception path: what the pipeline does not own goes to its port's kernel tap. The
    /// tap is the port's VLAN interface: a frame of a VLAN port reaches it untagged.
    #[inline]
    fn pass_to_kernel(&mut self, mut m: Mbuf) {
        let port = self.sh.port_of(m.port());
        let tap = port
            .and_then(|p| self.sh.tap_of.get(usize::from(p)))
            .copied()
            .flatten();
        let vlan = port.and_then(|p| self.port_vlans.get(usize::from(p)).copied().flatten());
        if vlan.is_some() && vlan::retag(&mut m, None).is_err() {
            return;
        }
        match tap {
            Some(t) => {
                self.to_kernel += 1;
                self.push(m, t);
            }
            None => drop(m),
        }
    }

    /// Sends every batch: tx batches on their outputs, handoff batches into their rings.
    #[inline]
    fn flush(&mut self) {
        let sh = self.sh;
        for (p, b) in self.tx.iter_mut().enumerate() {
            if let (false, Some(port)) = (b.is_empty(), sh.out_port(p)) {
                let (_, d) = port.tx_burst(self.queue, b);
                self.tx_dropped += d as u64;
            }
        }
        for (o, b) in self.handoff.iter_mut().enumerate() {
            if !b.is_empty() {
                self.tx_dropped += enqueue_all(&sh.rings[self.w * sh.workers + o], b);
            }
        }
    }

    /// Frees every mbuf still in a batch.
    fn clear(&mut self) {
        for b in self.tx.iter_mut().chain(&mut self.handoff) {
            b.clear();
        }
    }
}

/// Moves the batch into `ring`; frees what did not fit and returns how many that was.
#[inline]
fn enqueue_all(ring: &Ring, b: &mut MbufBatch) -> u64 {
    ring.enqueue_burst(b);
    let dropped = b.len() as u64;
    b.clear();
    dropped
}

/// One burst through the pipeline, every verdict sent where it goes; `default_port` for
/// mbufs of a DPDK port that is not ours.
#[inline(always)]
fn process<I: Iterator<Item = Mbuf>>(
    core: &mut Core<Mbuf>,
    out: &mut Outputs<'_>,
    pkts: I,
    now: u64,
    check_owner: bool,
    default_port: u16,
) {
    let sh = out.sh;
    let in_port = |m: &Mbuf| sh.port_of(m.port()).unwrap_or(default_port);
    core.process_burst(pkts, now, check_owner, in_port, |e| out.emit(e));
}

/// An mbuf holding the ARP frame `build` writes, tagged with `vlan` when the port has
/// one, or `None` (nothing held) when the pool is empty or `build` refuses.
#[inline]
fn arp_frame(
    pool: &Mempool,
    vlan: Option<u16>,
    build: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Option<Mbuf> {
    own_frame(pool, vlan, ARP_FRAME_LEN, build)
}

/// An mbuf holding the `len`-byte frame `build` writes (ARP, neighbour discovery), tagged
/// with `vlan` when the port has one, or `None` (nothing held) when the pool is empty or
/// `build` refuses.
#[inline]
fn own_frame(
    pool: &Mempool,
    vlan: Option<u16>,
    len: usize,
    build: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Option<Mbuf> {
    let mut m = pool.alloc()?;
    build(m.append(len)?)?;
    vlan::retag(&mut m, vlan).ok()?;
    Some(m)
}

/// The state of one worker.
struct Worker<'a> {
    w: usize,
    sh: &'a Shared,
    pool: &'a Mempool,
    core: Core<Mbuf>,
    out: Outputs<'a>,
    /// The receive batch (also for handoff rings and taps).
    rx: MbufBatch,
    /// The configuration generation adopted.
    generation: u64,
    /// Per port: source address of ARP requests, and MAC.
    arp_src: Vec<Option<Ipv4Addr>>,
    port_macs: Vec<[u8; 6]>,
    handoff_in: u64,
    from_kernel: u64,
    clock: Clock,
    /// Whether the current turn received packets (from a port, a tap or a handoff ring).
    busy: bool,
    /// Sessions the table had made when the current turn started.
    created_at_turn: u64,
    /// Whether the current turn adopted a configuration snapshot (its cycles are then
    /// not a measure of making sessions).
    adopted: bool,
    /// The pauses of an idle worker.
    idle: Idle,
    /// Receive bursts from the ports that came back full, in a row (the overload signal).
    rx_full: u32,
}

impl<'a> Worker<'a> {
    fn new(w: usize, sh: &'a Shared, pool: &'a Mempool) -> Worker<'a> {
        let mut conn = ConnConfig::new(sh.conn_capacity.max(MIN_CONN_CAPACITY));
        conn.expire_nodest_conn = sh.expire_nodest_conn;
        conn.expire_quiescent_template = sh.expire_quiescent_template;
        let mut core = Core::new(w, conn, NeighConfig::default());
        core.set_new_session_budget(sh.new_sessions_per_second);
        core.set_frag_config(sh.frag);
        core.set_syn_proxy_thresholds(sh.syn_proxy_auto.0, sh.syn_proxy_auto.1);
        for &(ip, mac) in &sh.static_neighbours {
            core.add_static_neighbour(ip, mac);
        }
        let nports = sh.ports.len() + sh.taps.len();
        Worker {
            w,
            sh,
            pool,
            core,
            out: Outputs {
                sh,
                pool,
                w,
                queue: QueueId(w as u16),
                tx: (0..nports).map(|_| MbufBatch::new()).collect(),
                handoff: (0..sh.workers).map(|_| MbufBatch::new()).collect(),
                tx_dropped: 0,
                to_kernel: 0,
                port_vlans: Vec::new(),
            },
            rx: MbufBatch::new(),
            generation: 0,
            arp_src: Vec::new(),
            port_macs: Vec::new(),
            handoff_in: 0,
            from_kernel: 0,
            clock: Clock::new(),
            busy: false,
            created_at_turn: 0,
            adopted: false,
            idle: Idle::new(sh.idle_sleep_max_us),
            rx_full: 0,
        }
    }

    /// One turn of the loop: control between bursts, then every input, the side outputs,
    /// the flush, and the slow path when due.
    #[inline]
    fn poll(&mut self) {
        let created = self.core.conns().stats().created;
        let made = created.wrapping_sub(self.created_at_turn);
        let now = self.clock.turn(self.busy, made, self.adopted);
        self.created_at_turn = created;
        self.adopted = false;
        self.busy = false;
        self.adopt_published();
        super::testing::turn_gap();
        self.serve_commands(now);
        self.take_from_peers(now);
        self.poll_ports(now);
        self.poll_taps(now);
        self.drain_handoff(now);
        self.side_outputs();
        self.out.flush();
        if self.clock.tick_due() {
            self.core.tick(now, drop);
            self.clock.busy_window();
        }
        if let Some(pause) = self.idle.after_turn(self.busy) {
            // Between turns, never with a packet in hand (the batches were flushed).
            std::thread::sleep(pause);
        }
    }

    /// Adopts the configuration snapshot if a new one was published.
    #[inline]
    fn adopt_published(&mut self) {
        let g = self.sh.generation.load(Ordering::Acquire);
        if g == self.generation {
            return;
        }
        if let Some(s) = read_locked(&self.sh.snapshot) {
            self.port_macs = s.net.ports.iter().map(|p| p.mac).collect();
            self.out.port_vlans = s.net.ports.iter().map(|p| p.vlan).collect();
            self.core.adopt(s);
            self.adopted = true;
        }
        self.arp_src = read_locked(&self.sh.arp_src);
        self.generation = g;
    }

    /// Answers the commands in the worker's inbox.
    #[inline]
    fn serve_commands(&mut self, now: u64) {
        let sh = self.sh;
        while let Some(cmd) = sh.inboxes[self.w].pop() {
            match cmd {
                Command::Report(reply) => {
                    let _ = reply.try_send(self.report());
                }
                Command::Connections(reply) => {
                    let _ = reply.try_send(self.core.conns().list(now).collect());
                }
                Command::SetTimeouts(a, b, c) => self.core.conns_mut().set_timeouts(a, b, c),
                Command::SyncMaster(r) => self.core.set_sync_master(r),
                Command::SyncCounters(reply) => {
                    let _ = reply.try_send((self.w, self.core.sync_counters()));
                }
                Command::Announce => {
                    // Announced from the configuration published with the command (a
                    // held LIP, an active director's VIPs): the turn adopted the one
                    // before it if the publication fell between that and this.
                    self.adopt_published();
                    self.announce();
                }
                Command::BulkChunk(cursor, mut buf, reply) => {
                    buf.clear();
                    let next = self.core.conns().sync_records_from(
                        cursor,
                        super::BULK_CHUNK_RECORDS,
                        super::BULK_CHUNK_SLOTS,
                        &mut buf,
                    );
                    let _ = reply.try_send((buf, next));
                }
            }
        }
    }

    /// Sends gratuitous ARP for the IPv4 addresses the snapshot announces, and
    /// unsolicited neighbour advertisements (override set, to all-nodes) for the IPv6
    /// ones.
    fn announce(&mut self) {
        let (targets, targets6) = self
            .core
            .snapshot()
            .map(|s| (announced_addresses(&s.net), announced_addresses6(&s.net)))
            .unwrap_or_default();
        for (port, ip) in targets6 {
            let Some(mac) = self.port_macs.get(usize::from(port)) else {
                continue;
            };
            let vlan = self
                .out
                .port_vlans
                .get(usize::from(port))
                .copied()
                .flatten();
            for _ in 0..GARP_REPEAT {
                let m = own_frame(self.pool, vlan, ND_FRAME_LEN, |buf| {
                    build_unsolicited_na(buf, *mac, ip)
                });
                if let Some(m) = m {
                    self.out.route(Out::Tx(m, port));
                }
            }
        }
        for (port, ip) in targets {
            let Some(mac) = self.port_macs.get(usize::from(port)) else {
                continue;
            };
            let vlan = self
                .out
                .port_vlans
                .get(usize::from(port))
                .copied()
                .flatten();
            for _ in 0..GARP_REPEAT {
                let m = arp_frame(self.pool, vlan, |buf| build_gratuitous_arp(buf, *mac, ip));
                if let Some(m) = m {
                    self.out.route(Out::Tx(m, port));
                }
            }
        }
    }

    /// Installs sessions the sync backup thread received for this worker, and learns the
    /// neighbours other workers learned.
    #[inline]
    fn take_from_peers(&mut self, now: u64) {
        let sh = self.sh;
        for _ in 0..SYNC_INSTALL_BURST {
            let Some(c) = sh.sync_in[self.w].pop() else {
                break;
            };
            let _ = self.core.install_synced(&c, now);
        }
        while let Some(u) = sh.neigh[self.w].pop() {
            self.core.learn_neighbour(u, now);
        }
    }

    /// Receives from the worker's queue of every port and processes what arrives.
    #[inline]
    fn poll_ports(&mut self, now: u64) {
        let (sh, q) = (self.sh, self.out.queue);
        for (p, port) in sh.ports.iter().enumerate() {
            if q.0 >= sh.rx_queues[p] {
                continue;
            }
            let n = port.rx_burst(q, &mut self.rx);
            if n == 0 {
                continue;
            }
            self.busy = true;
            // The overload signal: full bursts in a row (an empty one says nothing, a
            // short one ends the run). Set before the packets are processed; the bursts
            // received while processing count for the next poll.
            let full = &mut self.rx_full;
            *full = if n == dpdk::MAX_BURST { *full + 1 } else { 0 };
            let shed = sh.syn_shed.load(Ordering::Relaxed);
            self.core.set_overloaded(shed && *full >= OVERLOAD_BURSTS);
            // Up to RX_MORE more bursts as the pipeline gets to them.
            let refill = |b: &mut MbufBatch| {
                let n = port.rx_burst(q, b);
                if n == dpdk::MAX_BURST {
                    *full += 1;
                } else if n > 0 {
                    *full = 0;
                }
                n
            };
            let stream = self.rx.stream(refill, RX_MORE);
            process(&mut self.core, &mut self.out, stream, now, true, p as u16);
        }
    }

    /// Exception path: what the kernel sends on a tap leaves through its port unchanged,
    /// but for the port's VLAN tag (the kernel sends untagged frames on the tap); a health
    /// check to a TUN server's probe MAC is encapsulated to that server instead
    /// ([`Core::probe_from_kernel`]).
    #[inline]
    fn poll_taps(&mut self, now: u64) {
        let (sh, q) = (self.sh, self.out.queue);
        for (k, tap) in sh.taps.iter().enumerate() {
            if q.0 >= sh.tap_rx_queues[k] || tap.rx_burst(q, &mut self.rx) == 0 {
                continue;
            }
            self.busy = true;
            let port = sh.tap_port[k];
            let vlan = self
                .out
                .port_vlans
                .get(usize::from(port))
                .copied()
                .flatten();
            for mut m in self.rx.drain() {
                self.from_kernel += 1;
                if let Some(rip) = probe_target(m.data()) {
                    let out = self.core.probe_from_kernel(m, rip, now);
                    self.out.route(out);
                    continue;
                }
                if vlan.is_some() && vlan::retag(&mut m, vlan).is_err() {
                    continue;
                }
                self.out.route(Out::Tx(m, port));
            }
        }
    }

    /// Processes the packets other workers received for this one.
    #[inline]
    fn drain_handoff(&mut self, now: u64) {
        let (sh, w) = (self.sh, self.w);
        let n = sh.workers;
        for src in 0..n {
            if src == w || sh.rings[src * n + w].dequeue_burst(&mut self.rx) == 0 {
                continue;
            }
            self.busy = true;
            self.handoff_in += self.rx.len() as u64;
            process(
                &mut self.core,
                &mut self.out,
                self.rx.drain(),
                now,
                false,
                0,
            );
        }
    }

    /// Side outputs of the pipeline: ARP requests and neighbour solicitations, released
    /// packets, sync records, ARP conflicts to log, learned neighbours.
    #[inline]
    fn side_outputs(&mut self) {
        for (port, target) in self.core.take_ns_requests() {
            let p = usize::from(port);
            let (Some(mac), Some(src)) = (self.port_macs.get(p), self.sh.ns_src.get(p)) else {
                continue;
            };
            let vlan = self.out.port_vlans.get(p).copied().flatten();
            let m = own_frame(self.pool, vlan, ND_FRAME_LEN, |buf| {
                build_neighbor_solicit(buf, *mac, *src, target)
            });
            if let Some(m) = m {
                self.out.route(Out::Tx(m, port));
            }
        }
        for (port, target) in self.core.take_arp_requests() {
            let p = usize::from(port);
            let (Some(mac), Some(Some(src))) = (self.port_macs.get(p), self.arp_src.get(p)) else {
                continue;
            };
            let vlan = self.out.port_vlans.get(p).copied().flatten();
            let m = arp_frame(self.pool, vlan, |buf| {
                build_arp_request(buf, *mac, *src, target)
            });
            if let Some(m) = m {
                self.out.route(Out::Tx(m, port));
            }
        }
        for (m, port) in self.core.take_released() {
            self.out.route(Out::Tx(m, port));
        }
        for o in self.core.take_frag_out() {
            self.out.route(o);
        }
        let mut sync_lost = 0u64;
        for c in self.core.take_sync() {
            if self.sh.sync_out[self.w].push(c).is_err() {
                sync_lost += 1;
            }
        }
        if sync_lost > 0 {
            self.core.count_sync_dropped(sync_lost);
        }
        for c in self.core.take_arp_conflicts() {
            // At most once per address per minute (the pipeline limits it).
            tracing::warn!(
                worker = self.w,
                address = %c.ip,
                mac = %crate::wire::EthernetAddress(c.mac),
                "ARP from another host claims an address of this director; not learned"
            );
        }
        for u in self.core.take_learned() {
            for (o, q) in self.sh.neigh.iter().enumerate() {
                if o != self.w {
                    let _ = q.push(u);
                }
            }
        }
    }

    /// Frees what is still held here: batches, and what other workers handed over.
    fn shutdown(mut self) {
        self.rx.clear();
        self.out.clear();
        let (sh, w) = (self.sh, self.w);
        let n = sh.workers;
        for src in 0..n {
            while sh.rings[src * n + w].dequeue_burst(&mut self.rx) > 0 {
                self.rx.clear();
            }
        }
    }

    /// The worker's counters and table statistics.
    fn report(&self) -> WorkerReport {
        let core = &self.core;
        let rt = core.conns().dests();
        let dests = core
            .dest_traffic()
            .map(|(id, t)| {
                let c = rt
                    .by_id(id)
                    .map_or([0; 3], |d| [d.active, d.inactive, d.persist]);
                (id, c, t)
            })
            .collect();
        let laddrs = core
            .laddr_pools()
            .flat_map(|(k, p)| {
                p.addrs()
                    .map(move |a| (*k, a, p.in_use_of(a), p.conflicts_of(a)))
                    .collect::<Vec<_>>()
            })
            .collect();
        WorkerReport {
            worker: self.w,
            counters: core.counters().clone(),
            handoff_in: self.handoff_in,
            tx_dropped: self.out.tx_dropped,
            to_kernel: self.out.to_kernel,
            from_kernel: self.from_kernel,
            dests,
            sessions: core.conns().len(),
            laddrs,
            sessions_created: core.conns().stats().created,
            conn_capacity: core.conns().capacity(),
            conn_memory_bytes: core.conns().memory_bytes(),
            poll_cycles: self.clock.poll_cycles,
            busy_cycles: self.clock.busy_cycles,
            making_cycles: self.clock.making_cycles,
            making_sessions: self.clock.making_sessions,
            busy_ppm: self.clock.busy_ppm,
            idle_sleeps: self.idle.sleeps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The making clock counts the turns that made sessions and the sessions they made,
    /// and leaves out a turn that also adopted a configuration (a snapshot's LIP pools
    /// take far longer to build than a burst of SYNs takes to serve) and a turn as long
    /// as a preempted one.
    #[test]
    fn the_making_clock_counts_only_turns_that_made_sessions_without_adopting() {
        let mut c = Clock::new();
        // The bound of a 2.5 GHz TSC (without EAL the clock knows no frequency).
        c.long_turn = 250_000;
        let spin = || {
            let t = dpdk::rdtsc();
            while dpdk::rdtsc() == t {}
        };
        c.turn(false, 0, false);
        spin();
        c.turn(true, 0, false);
        assert_eq!((c.making_cycles, c.making_sessions), (0, 0), "made nothing");
        spin();
        c.turn(true, 32, true);
        assert_eq!((c.making_cycles, c.making_sessions), (0, 0), "adopted too");
        spin();
        let before = c.poll_cycles;
        c.turn(true, 32, false);
        assert_eq!(c.making_sessions, 32);
        assert!(c.making_cycles > 0);
        assert_eq!(
            c.making_cycles,
            c.poll_cycles - before,
            "that turn's cycles"
        );
        spin();
        c.turn(true, 5, false);
        assert_eq!(c.making_sessions, 37);
        assert!(c.making_cycles < c.poll_cycles && c.making_cycles <= c.busy_cycles);
        // A turn the thread was preempted in.
        let t = dpdk::rdtsc();
        while dpdk::rdtsc().wrapping_sub(t) <= c.long_turn {}
        let making = c.making_cycles;
        c.turn(true, 32, false);
        assert_eq!(
            (c.making_cycles, c.making_sessions),
            (making, 37),
            "a long turn"
        );
    }

    #[test]
    fn an_idle_worker_pauses_after_empty_turns_doubling_to_the_bound_and_wakes_on_a_packet() {
        let us = |d: Option<std::time::Duration>| d.map(|d| d.as_micros());
        let mut off = Idle::new(0);
        for _ in 0..10_000 {
            assert_eq!(off.after_turn(false), None, "0: pure polling");
        }
        let mut i = Idle::new(100);
        for _ in 0..IDLE_TURNS_BEFORE_SLEEP {
            assert_eq!(i.after_turn(false), None, "polls a while first");
        }
        let pauses: Vec<_> = (0..7).map(|_| us(i.after_turn(false))).collect();
        assert_eq!(
            pauses,
            [4, 8, 16, 32, 64, 100, 100].map(Some),
            "doubling up to the bound"
        );
        assert_eq!(i.sleeps, 7);
        // A turn with packets: full polling again, and the pauses start small.
        assert_eq!(i.after_turn(true), None);
        for _ in 0..IDLE_TURNS_BEFORE_SLEEP {
            assert_eq!(i.after_turn(false), None);
        }
        assert_eq!(us(i.after_turn(false)), Some(4));
        // A bound below the first pause is the pause.
        let mut small = Idle::new(2);
        for _ in 0..IDLE_TURNS_BEFORE_SLEEP {
            small.after_turn(false);
        }
        assert_eq!(us(small.after_turn(false)), Some(2));
        assert_eq!(us(small.after_turn(false)), Some(2));
    }
}
