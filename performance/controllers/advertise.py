"""Found on the network: the OSC port advertised over Zeroconf/Bonjour (`_osc._udp`), so TouchOSC
and Open Stage Control list Lectern without anyone typing an address.

Only when OSC listens beyond loopback (`--osc-host 0.0.0.0` or a LAN address) and `--no-advertise`
is not given: a loopback-only run is invisible by design. Registration probes the network for a
second or two, so it runs on its own thread; the frame loop only starts and stops it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading

log = logging.getLogger("lectern.advertise")
SERVICE = "_osc._udp.local."


def should_advertise(host: str, no_advertise: bool = False) -> bool:
    """Advertise when OSC is open beyond loopback and nobody said --no-advertise."""
    if no_advertise or host == "localhost":
        return False
    if host == "":  # binds every interface
        return True
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: advertise unless it resolves to loopback
        try:
            return not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False


def _addresses(host: str) -> list[str]:
    """The IPv4 addresses the service is reachable at: the bound one, or every non-loopback one."""
    if host not in ("", "0.0.0.0", "::"):
        return [host]
    # lazy: the network libraries load only when this service actually starts
    import ifaddr

    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and not ipaddress.ip_address(ip.ip).is_loopback:
                out.append(ip.ip)
    return out


class Advertiser:
    """Registers one `_osc._udp` service on a thread of its own; stop() unregisters it.

    name: the instance name browsers show ("Lectern gallery on host"); port: the OSC UDP port;
    host: what OSC is bound to; interfaces: where to announce (default: the host's addresses)."""

    def __init__(self, name: str, port: int, host: str, properties: dict[str, str] | None = None,
                 interfaces: list[str] | None = None) -> None:
        self.name = name[:63]  # a DNS label
        self.port = port
        self.addresses = interfaces or _addresses(host)
        self.properties = properties or {}
        self.registered = threading.Event()
        self.error: str | None = None
        self._zc = None
        self._info = None
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._register, name="lectern-zeroconf", daemon=True)

    def start(self) -> None:
        """Begin registration in the background (takes a second or two; never blocks the caller)."""
        self._thread.start()

    def _register(self) -> None:
        try:
            # lazy: the network libraries load only when this service actually starts
            from zeroconf import ServiceInfo, Zeroconf

            if not self.addresses:
                raise OSError("no non-loopback IPv4 address to announce")
            zc = Zeroconf(interfaces=self.addresses)
            host = socket.gethostname().split(".")[0] or "lectern"
            info = ServiceInfo(SERVICE, f"{self.name}.{SERVICE}", port=self.port, properties=self.properties,
                               addresses=[socket.inet_aton(a) for a in self.addresses], server=f"{host}.local.")
            with self._lock:
                if self._stopped:
                    zc.close()
                    return
                self._zc, self._info = zc, info
            zc.register_service(info, allow_name_change=True)  # a second Lectern gets "name (2)"
            self.registered.set()
            log.info("advertising %s on %s port %d", info.name, ", ".join(self.addresses), self.port)
        except Exception as e:  # no network is not a reason to stop the show
            self.error = str(e)
            log.warning("Zeroconf advertising unavailable: %s", e)

    def stop(self) -> None:
        """Unregister (browsers see the service go) and close the sockets."""
        with self._lock:
            self._stopped = True
        if self._thread.is_alive():
            self._thread.join(5.0)
        with self._lock:
            zc, info, self._zc = self._zc, self._info, None
        if zc is None:
            return
        try:
            if self.registered.is_set():
                zc.unregister_service(info)
        finally:
            zc.close()
