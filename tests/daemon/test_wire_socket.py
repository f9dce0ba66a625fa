"""daemon/wire_kernel.py's packet socket, in network namespaces: the kernel's filter lets VRRP, ARP and IPv6
Neighbor Advertisements through and nothing else, so a flood of other traffic on the interface (other ICMPv6
included) never wakes Python; the kernel's addresses are read through netlink."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kahooks.lab.netns import Network
from tests.support.packets import GARP, SEND_ICMPV6

pytestmark = pytest.mark.root

LISTEN = """
import json, select, sys, time
from kahooks.daemon.wire_kernel import kernel_addresses, open_socket
from kahooks.system.vrrp_wire import decode, Advert, Arp
sock = open_socket("eth0")
print("ready", flush=True)
wakes = packets = adverts = arps = 0
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    ready, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
    if not ready:
        continue
    wakes += 1
    while True:
        try:
            data, address = sock.recvfrom(4096)
        except BlockingIOError:
            break
        packets += 1
        found = decode(address[1], data)
        adverts += isinstance(found, Advert)
        arps += isinstance(found, Arp)
print(json.dumps({"wakes": wakes, "packets": packets, "adverts": adverts, "arps": arps,
                  "addresses": sorted(kernel_addresses())}))
"""

SEND = """
import socket, struct, sys
from kahooks.system.vrrp_wire import checksum
target = sys.argv[1]
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for index in range(int(sys.argv[2])):
    udp.sendto(b"x" * 64, (target, 9))
body = struct.pack("!BBBBBBH", 0x21, 51, 150, 1, 0, 1, 0) + socket.inet_aton("192.0.2.100") + bytes(8)
body = body[:6] + struct.pack("!H", checksum(body)) + body[8:]
vrrp = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
vrrp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
for index in range(int(sys.argv[3])):
    vrrp.sendto(body, ("224.0.0.18", 0))
"""


def test_only_vrrp_and_arp_reach_python_a_udp_flood_never_wakes_it() -> None:
    with Network("khlwsock") as network:
        listener, sender = network.add_node("a", 11, own_pids=False), network.add_node("b", 12, own_pids=False)
        sender.run(["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"], check=False)
        listening = listener.popen([sys.executable, "-c", LISTEN, "4"], stdout=subprocess.PIPE, text=True)
        assert listening.stdout is not None
        assert listening.stdout.readline().strip() == "ready"
        sender.run([sys.executable, "-c", SEND, listener.address or "", "20000", "5"])
        out, _ = listening.communicate(timeout=20)
        seen = json.loads(out)
        assert seen["adverts"] == 5, seen
        # 20,000 UDP packets arrived on eth0: not one reached Python. What did: the adverts, and the
        # ARP that resolved the listener's address for the flood.
        assert seen["packets"] == seen["adverts"] + seen["arps"] and seen["arps"] <= 4, seen
        assert seen["wakes"] <= seen["packets"], seen
        assert listener.address in seen["addresses"] and "127.0.0.1" in seen["addresses"]


OBSERVE = """
import json, sys, threading, time
from kahooks.daemon.segment import Local
from kahooks.daemon.wire_observer import Observer
local = Local("VI_1", "eth0", 51, int(sys.argv[1]), 100, 1.0, 2, frozenset({sys.argv[2]}))
observer = Observer([local], lambda: {"VI_1": ("MASTER", 100)}, lambda event: None)
stop = threading.Event()
thread = threading.Thread(target=observer.run, args=(stop,), daemon=True)
thread.start()
time.sleep(0.5)
print("ready", flush=True)
sys.stdin.readline()  # the ARP has been sent
time.sleep(0.3)
observer.judge(time.time())
print(json.dumps([finding.sentence for finding in observer.findings]), flush=True)
stop.set()
thread.join(5)
"""



def test_an_arp_this_node_sends_is_its_own_one_from_a_neighbour_a_duplicate_vip() -> None:
    """keepalived's gratuitous ARP for the VIP leaves this node, whatever MAC it names (a VMAC, a MAC
    the sandbox hides): it is ours. The same ARP from another node is finding 4."""
    with Network("khlwarp") as network:
        here, neighbour = network.add_node("a", 11, own_pids=False), network.add_node("b", 12, own_pids=False)
        here.run(["ip", "address", "add", "192.0.2.100/32", "dev", "eth0"])
        for sender, expected in ((here, []), (neighbour, ["duplicate VIP on eth0 for VRID 51 (VI_1): 192.0.2.100 "
                                                          "is held here, and ARP from 00:00:5e:00:01:33 claims it too"])):
            observing = here.popen([sys.executable, "-c", OBSERVE, "4", "192.0.2.100"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
            assert observing.stdin is not None and observing.stdout is not None
            assert observing.stdout.readline().strip() == "ready"
            sender.run([sys.executable, "-c", GARP, "00:00:5e:00:01:33"])
            out, _ = observing.communicate("sent\n", timeout=20)
            assert json.loads(out) == expected, out


LISTEN6 = """
import json, select, sys, time
from kahooks.daemon.wire_kernel import open_socket
from kahooks.system.vrrp_wire import decode, Arp
sock = open_socket("eth0")
print("ready", flush=True)
sys.stdin.readline()  # all has been sent
time.sleep(0.3)
ipv6, claims = [], []
for _ in range(10000):
    try:
        data, address = sock.recvfrom(4096)
    except BlockingIOError:
        break
    if address[1] == 0x86DD:
        ipv6.append([data[6], data[40] if len(data) > 40 else None])
        found = decode(address[1], data)
        if isinstance(found, Arp):
            claims.append([found.sender_ip, found.sender_mac])
print(json.dumps({"ipv6": ipv6, "claims": claims}))
"""


def test_of_ipv6_only_vrrp_and_neighbor_advertisements_reach_python_not_other_icmpv6() -> None:
    """Echo, router solicitation and advertisement, neighbour solicitation and MLD (types 128, 133, 134, 135,
    130), an NA behind a hop-by-hop header (not followed, by design) and UDP: none passes the kernel's
    filter. The NAs do, each once."""
    with Network("khlwndp") as network:
        listener, sender = network.add_node("a", 11, own_pids=False), network.add_node("b", 12, own_pids=False)
        listening = listener.popen([sys.executable, "-c", LISTEN6], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True)
        assert listening.stdin is not None and listening.stdout is not None
        assert listening.stdout.readline().strip() == "ready"
        sender.run([sys.executable, "-c", SEND_ICMPV6, "128,133,134,135,130,hop-by-hop,udp,136,128,136,135,136",
                    "2001:db8::100", "00:00:5e:00:02:33"])
        out, _ = listening.communicate("sent\n", timeout=20)
        seen = json.loads(out)
        assert seen["ipv6"] and all(item == [58, 136] for item in seen["ipv6"]), seen
        assert seen["claims"].count(["2001:db8::100", "00:00:5e:00:02:33"]) == 3, seen


def test_a_neighbor_advertisement_for_an_ipv6_vip_from_another_mac_is_a_duplicate_vip_our_own_is_not() -> None:
    """Finding 4 for IPv6: an NA from the neighbour claims the VIP held here, named by its target link-layer
    option or, without one, by the frame's source MAC. The same NA sent by this node (keepalived's
    unsolicited NA, whatever MAC it names) is its own."""
    with Network("khlwna") as network:
        here, neighbour = network.add_node("a", 11, own_pids=False), network.add_node("b", 12, own_pids=False)
        here.run(["ip", "-6", "address", "add", "2001:db8::100/128", "dev", "eth0", "nodad"])
        neighbour_mac = neighbour.run(["cat", "/sys/class/net/eth0/address"]).stdout.strip()
        claimed = "duplicate VIP on eth0 for VRID 51 (VI_1): 2001:db8::100 is held here, and a Neighbor " \
                  "Advertisement from {} claims it too"
        for sender, mac, expected in ((here, "00:00:5e:00:02:33", []),
                                      (neighbour, "00:00:5e:00:02:33", [claimed.format("00:00:5e:00:02:33")]),
                                      (neighbour, "-", [claimed.format(neighbour_mac)])):
            observing = here.popen([sys.executable, "-c", OBSERVE, "6", "2001:db8::100"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
            assert observing.stdin is not None and observing.stdout is not None
            assert observing.stdout.readline().strip() == "ready"
            sender.run([sys.executable, "-c", SEND_ICMPV6, "136", "2001:db8::100", mac])
            out, _ = observing.communicate("sent\n", timeout=20)
            assert json.loads(out) == expected, (sender.namespace, mac, out)
