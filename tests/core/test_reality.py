"""Is the VIP here now? Asked of real interfaces, in a network namespace the test creates."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from kahooks.system.reality import vip_present, vips_present


def test_loopback_is_here_and_a_documentation_address_is_not() -> None:
    assert vip_present("127.0.0.1")
    assert vip_present("127.0.0.1/8")
    assert not vip_present("192.0.2.10")
    assert vips_present(["192.0.2.10", "127.0.0.1"]) == ["127.0.0.1"]


@pytest.mark.root
def test_a_vip_added_and_removed_in_a_namespace() -> None:
    namespace = f"kh-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        def inside(*command: str) -> None:
            subprocess.run(["ip", "netns", "exec", namespace, *command], check=True)

        def present() -> bool:
            out = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c",
                                  "from kahooks.system.reality import vip_present; print(vip_present('192.0.2.10'))"],
                                 capture_output=True, text=True, check=True)
            return out.stdout.strip() == "True"

        inside("ip", "link", "add", "kh0", "type", "veth", "peer", "name", "kh1")  # no dummy module everywhere
        inside("ip", "link", "set", "kh0", "up")
        assert not present()
        inside("ip", "addr", "add", "192.0.2.10/32", "dev", "kh0")
        assert present()
        assert not vip_present("192.0.2.10")  # the host's namespace is untouched
        inside("ip", "addr", "del", "192.0.2.10/32", "dev", "kh0")
        assert not present()
    finally:
        subprocess.run(["ip", "netns", "delete", namespace], check=False)


def test_the_doctor_and_the_channels_read_addresses_here_alike() -> None:
    """`kahooks doctor --live` compares keepalived's VIPs with the same reading as the channels: an
    address with or without its prefix, and a word that is no address never present."""
    from kahooks.system.reality import addresses_here

    here = addresses_here()
    assert vips_present(["192.0.2.10", "127.0.0.1/8", "not an address", "::1"], here) == ["127.0.0.1/8", "::1"]
