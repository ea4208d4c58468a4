//! The director's own addresses: ARP requests for them answered (and senders learned),
//! ICMP echo to them answered, and the ARP frames the director originates.

use std::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::forward::tun::ICMP_TTL;
use crate::wire::icmpv4::Message;
use crate::wire::{
    self, ethernet, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, IpMeta,
};

use super::{Core, DropReason, LocalKind, NeighUpdate, Out, Snapshot, SIDE_CAP};

/// The shortest Ethernet frame (without the FCS): what an ARP frame is padded to.
pub const MIN_FRAME_LEN: usize = 60;

impl<P: PacketBuf> Core<P> {
    /// ARP: answer requests for our addresses, learn senders.
    pub(super) fn arp(
        &mut self,
        mut pkt: P,
        l3: usize,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let Some(body) = pkt.data().get(l3..) else {
            return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
        };
        let repr = match ArpPacket::new_checked(body).and_then(|p| ArpRepr::parse(&p)) {
            Ok(r) => r,
            Err(e) => return self.drop(pkt, DropReason::Malformed(e)),
        };
        let ours = snap.net.local.get(&repr.target_protocol_addr).copied();
        let sender = repr.source_protocol_addr;
        // Learn the sender when the packet is for us or when we already track it.
        if (ours.is_some() || self.neigh.contains(sender)) && sender != Ipv4Addr::UNSPECIFIED {
            let mac = repr.source_hardware_addr.0;
            let released = &mut self.released;
            self.neigh.learn(sender, mac, now_ms, |(mut p, port), mac| {
                set_dst_mac(&mut p, mac);
                released.push((p, port));
            });
            if self.learned.len() < SIDE_CAP {
                self.learned.push(NeighUpdate { ip: sender, mac });
            }
        }
        let silent = |(kind, _): (LocalKind, u16)| {
            snap.net.passive
                && (kind != LocalKind::Dip
                    || snap.net.floating.contains(&repr.target_protocol_addr))
        };
        match (repr.operation, ours.filter(|o| !silent(*o))) {
            (ArpOperation::Request, Some((_, port)))
                if port == in_port || snap.net.ports.len() == 1 =>
            {
                let Some(pn) = snap.net.ports.get(usize::from(in_port)) else {
                    return self.drop(pkt, DropReason::NoRoute);
                };
                let reply = ArpRepr {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: EthernetAddress(pn.mac),
                    source_protocol_addr: repr.target_protocol_addr,
                    target_hardware_addr: repr.source_hardware_addr,
                    target_protocol_addr: repr.source_protocol_addr,
                };
                let data = pkt.data_mut();
                let Some(arp) = data.get_mut(l3..) else {
                    return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
                };
                if let Err(e) = reply.emit(arp) {
                    return self.drop(pkt, DropReason::Rewrite(e));
                }
                data[ethernet::field::DESTINATION].copy_from_slice(&repr.source_hardware_addr.0);
                data[ethernet::field::SOURCE].copy_from_slice(&pn.mac);
                self.counters.arp_replies += 1;
                Out::Tx(pkt, in_port)
            }
            _ => Out::Consumed(pkt),
        }
    }

    /// ICMP echo request to one of our addresses: answer in place.
    pub(super) fn echo_reply(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        in_port: u16,
        snap: &Snapshot,
    ) -> Out<P> {
        let Some(pn) = snap.net.ports.get(usize::from(in_port)) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let mac = pn.mac;
        let l3 = meta.l3_offset();
        let l4 = meta.l4_offset;
        let end = meta.ip_end;
        let data = pkt.data_mut();
        if data.len() < end || l4 + 4 > end {
            return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
        }
        // Ethernet: back to the sender.
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(&data[ethernet::field::SOURCE]);
        data[ethernet::field::DESTINATION].copy_from_slice(&src_mac);
        data[ethernet::field::SOURCE].copy_from_slice(&mac);
        // IPv4: swap addresses, fresh TTL, recomputed header checksum.
        {
            let mut ip = wire::Ipv4Packet::new_unchecked(&mut data[l3..end]);
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            ip.set_src_addr(d);
            ip.set_dst_addr(s);
            ip.set_ttl(ICMP_TTL);
            ip.fill_checksum();
        }
        // ICMP: echo request -> echo reply, checksum adjusted.
        let old = u16::from_be_bytes([data[l4], data[l4 + 1]]);
        data[l4] = Message::ECHO_REPLY.0;
        let new = u16::from_be_bytes([data[l4], data[l4 + 1]]);
        let ck = u16::from_be_bytes([data[l4 + 2], data[l4 + 3]]);
        let ck = wire::checksum::update_u16(ck, old, new);
        data[l4 + 2..l4 + 4].copy_from_slice(&ck.to_be_bytes());
        self.counters.echo_replies += 1;
        Out::Tx(pkt, in_port)
    }
}

/// Sets the destination MAC of a held packet whose next hop resolved.
pub(super) fn set_dst_mac<P: PacketBuf>(p: &mut P, mac: [u8; 6]) {
    if let Some(d) = p.data_mut().get_mut(ethernet::field::DESTINATION) {
        d.copy_from_slice(&mac);
    }
}

/// Writes an ARP request (broadcast) from `src_mac`/`src_ip` for `target` into `buf`
/// (at least [`MIN_FRAME_LEN`] bytes: the frame is padded to it); returns the frame length.
pub fn build_arp_request(
    buf: &mut [u8],
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Option<usize> {
    let frame = buf.get_mut(..MIN_FRAME_LEN)?;
    frame.fill(0);
    frame[ethernet::field::DESTINATION].copy_from_slice(&EthernetAddress::BROADCAST.0);
    frame[ethernet::field::SOURCE].copy_from_slice(&src_mac);
    frame[ethernet::field::ETHERTYPE].copy_from_slice(&EtherType::ARP.0.to_be_bytes());
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(src_mac),
        source_protocol_addr: src_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    repr.emit(&mut frame[ethernet::HEADER_LEN..]).ok()?;
    Some(MIN_FRAME_LEN)
}

/// Writes a gratuitous ARP (a request for `ip` from `ip`) into `buf`; returns the length.
pub fn build_gratuitous_arp(buf: &mut [u8], mac: [u8; 6], ip: Ipv4Addr) -> Option<usize> {
    build_arp_request(buf, mac, ip, ip)
}
