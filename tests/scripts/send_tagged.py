#!/usr/bin/python3
"""Sends TCP SYNs from CIP to VIP:80 out of IFACE to the MAC DMAC: COUNT frames per
VID given (`none`: untagged), source ports from SPORT on, one more per frame. Prints
`sent N`."""

import sys

from scapy.all import IP, TCP, Dot1Q, Ether, conf, get_if_hwaddr, sendp

conf.verb = 0
iface, dmac, cip, vip, sport, count = sys.argv[1:7]
vids = sys.argv[7:]
sport, count = int(sport), int(count)
frames = []
for v in vids:
    for _ in range(count):
        eth = Ether(src=get_if_hwaddr(iface), dst=dmac)
        if v != "none":
            eth = eth / Dot1Q(vlan=int(v))
        frames.append(eth / IP(src=cip, dst=vip) / TCP(sport=sport, dport=80, flags="S"))
        sport += 1
sendp(frames, iface=iface)
print(f"sent {len(frames)}", flush=True)
