#!/usr/bin/python3
"""Hostile and odd frames at rvs's client port, built with scapy, one kind at a time.

Usage: hostile.py IFACE DIRECTOR_MAC CLIENT_IP VIP

For each kind it waits for a line on stdin, sends its frames and prints `sent KIND N`,
so the lab can read rvs's counters before and after each kind. At the end it
prints `time-exceeded N`: the ICMP time-exceeded messages the client received.
Hostile TCP and UDP segments use source ports 61000-61999, which the client's own
connections (ports 32768-60999) never use.
"""

import random
import sys

from scapy.all import (ARP, ICMP, IP, IPOption_NOP, TCP, UDP, AsyncSniffer, Dot1AD,
                       Dot1Q, Ether, Raw, conf, sendp)

conf.verb = 0
iface, dmac, cip, vip = sys.argv[1:5]
smac = open(f"/sys/class/net/{iface}/address").read().strip()
rng = random.Random(17)


def eth(**kw):
    return Ether(src=smac, dst=dmac, **kw)


def syn(src=cip, sport=61000, ttl=64, **kw):
    return eth() / IP(src=src, dst=vip, ttl=ttl, **kw) / TCP(sport=sport, dport=80, flags="S")


def raw(pkt):
    return bytes(pkt)


def kinds():
    # Martian sources, and the VIP itself as a source.
    yield "martian", [syn(src=s, sport=61001) for s in
                      ("0.0.0.0", "255.255.255.255", "127.0.0.1", "224.0.0.5", vip)]
    # TTL 0 and 1: not forwarded, answered with time-exceeded, no session.
    yield "ttl", [syn(sport=61010, ttl=0), syn(sport=61011, ttl=1)]
    # A forged ARP reply claiming the VIP.
    yield "arp-conflict", [Ether(src="02:66:66:66:66:66", dst=dmac) /
                           ARP(op=2, hwsrc="02:66:66:66:66:66", psrc=vip,
                               hwdst=smac, pdst=cip)]
    # Checksums: the IPv4 header's, the TCP segment's.
    bad_ip = bytearray(raw(syn(sport=61020)))
    bad_ip[24] ^= 0xff
    bad_tcp = bytearray(raw(syn(sport=61021)))
    bad_tcp[14 + 20 + 16] ^= 0xff
    yield "bad-checksum", [Raw(bytes(bad_ip)), Raw(bytes(bad_tcp))]
    # IHL below 5.
    ihl = bytearray(raw(syn(sport=61030)))
    ihl[14] = 0x44
    yield "bad-ihl", [Raw(bytes(ihl))]
    # Total length beyond the frame.
    yield "bad-total-len", [eth() / IP(src=cip, dst=vip, len=400) / TCP(sport=61040, dport=80, flags="S")]
    # UDP length lies: below the header, and short of the datagram.
    yield "bad-udp-len", [eth() / IP(src=cip, dst=vip) / UDP(sport=61050, dport=80, len=n) / Raw(b"x" * 8)
                          for n in (4, 12)]
    # A UDP length beyond the packet: the datagram is cut short.
    yield "udp-len-beyond", [eth() / IP(src=cip, dst=vip) / UDP(sport=61051, dport=80, len=200) /
                             Raw(b"x" * 8)]
    # TCP data offsets below 5.
    yield "bad-data-offset", [eth() / IP(src=cip, dst=vip) / TCP(sport=61060, dport=80, flags="S", dataofs=d)
                              for d in (0, 2, 4)]
    # Odd flag sets without a session: none may create one.
    yield "odd-flags", [eth() / IP(src=cip, dst=vip) / TCP(sport=61070 + i, dport=80, flags=f)
                        for i, f in enumerate(("", "F", "R", "SR", "FSRPAUEC", "PU", "A"))]
    # IP options on segments of no session.
    yield "ip-options", [eth() / IP(src=cip, dst=vip, options=[IPOption_NOP()] * 4) /
                         TCP(sport=61080, dport=80, flags="A")]
    # ICMP errors whose embedded header is garbage or names no session.
    yield "icmp-garbage", [eth() / IP(src=cip, dst=vip) / ICMP(type=3, code=3) / Raw(b"\x45\x00garbage"),
                           eth() / IP(src=cip, dst=vip) / ICMP(type=11, code=0) /
                           IP(src=vip, dst=cip) / UDP(sport=80, dport=61090)]
    # QinQ (a tagged frame on the untagged client port: dropped as `vlan`) and an
    # unknown EtherType.
    yield "other-ethertype", [eth() / Dot1AD(vlan=20) / Dot1Q(vlan=10) / IP(src=cip, dst=vip) /
                              TCP(sport=61100, dport=80, flags="S"),
                              eth(type=0x88b5) / Raw(b"\x00" * 46)]
    # ARP oddities: another hardware type; a hardware length the frame cannot hold.
    other_hw = bytearray(raw(Ether(src=smac, dst=dmac) / ARP(op=1, hwsrc=smac, psrc=cip, pdst=vip)))
    other_hw[15] = 6
    long_hw = bytearray(other_hw)
    long_hw[15] = 1
    long_hw[18] = 200
    yield "arp-odd", [Raw(bytes(other_hw)), Raw(bytes(long_hw))]
    # Runts: an IPv4 EtherType and fewer bytes than the headers need.
    frame = raw(syn(sport=61110))
    yield "runts", [Raw(frame[:n]) for n in range(14, 54)]
    # Jumbo frames (the client's link takes 9000 bytes): a segment of no session, and
    # an oversize segment for the VIP.
    yield "jumbo", [eth() / IP(src=cip, dst=vip) / TCP(sport=61120, dport=80, flags="A") / Raw(b"j" * 8900),
                    eth() / IP(src=cip, dst=vip) / UDP(sport=61121, dport=80) / Raw(b"j" * 8900)]
    # Random frames to the director's MAC.
    frames = []
    for _ in range(300):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200)))
        kind = rng.choice((0x0800, 0x0800, 0x86DD, 0x0806, rng.getrandbits(16)))
        frames.append(eth(type=kind) / Raw(body))
    yield "random", frames


sniffer = AsyncSniffer(iface=iface, store=True,
                       lfilter=lambda p: ICMP in p and p[ICMP].type == 11 and p[IP].dst == cip)
sniffer.start()
for name, frames in kinds():
    if not sys.stdin.readline():
        break
    sendp(frames, iface=iface)
    print(f"sent {name} {len(frames)}", flush=True)
sys.stdin.readline()
got = sniffer.stop()
print(f"time-exceeded {len(got or [])}", flush=True)
