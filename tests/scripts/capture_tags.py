#!/usr/bin/python3
"""Prints every IPv4 TCP or UDP frame seen on IFACE for SECONDS, one line each:
`vid src sport dst dport`, where vid is the 802.1Q VLAN id of the frame's tag or `-`
for an untagged frame. A real server's view of what the director sent it, tags
included (scapy puts back the tag the kernel took off into the packet's metadata)."""

import sys

from scapy.all import IP, TCP, UDP, Dot1Q, conf, sniff

conf.verb = 0
iface, secs = sys.argv[1], float(sys.argv[2])


def show(p):
    l4 = p[TCP] if TCP in p else p[UDP]
    vid = p[Dot1Q].vlan if Dot1Q in p else "-"
    print(vid, p[IP].src, l4.sport, p[IP].dst, l4.dport, flush=True)


print("ready", flush=True)
sniff(iface=iface, timeout=secs, store=False, prn=show,
      lfilter=lambda p: IP in p and (TCP in p or UDP in p))
