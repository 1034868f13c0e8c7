"""Where the web server listens and who a request comes from."""

import ipaddress
from collections.abc import Collection

LOCALHOST = {"localhost": "127.0.0.1"}


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` or ``"[::1]:8080"`` as (address, port); raises ValueError.

    Only literal addresses (and ``localhost``, read as 127.0.0.1): a host name could resolve
    to several addresses, and the server listens on exactly the one configured.
    """
    host, colon, port_text = value.rpartition(":")
    if not colon or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r} is not an address like 127.0.0.1:8080 or [::1]:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = LOCALHOST.get(host, host)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{value!r}: listen on an address (127.0.0.1, 0.0.0.0, [::1]), not a host name"
        ) from None
    return host, int(port_text)


def client_address(remote: str | None, forwarded: str | None, proxies: Collection[str]) -> str:
    """The client's address: the peer, or the last hop a trusted proxy reports."""
    peer = remote or "unknown"
    if forwarded and peer in proxies:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        # The nearest hop not itself a trusted proxy; anything left of it may be forged.
        for hop in reversed(hops):
            if hop not in proxies:
                return hop[:64]
    return peer
