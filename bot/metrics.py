"""What the bot counts for an operator's monitoring, in Prometheus terms.

One registry per app (tests build many). Labels carry command names, outcomes and platform
names only: never a person, a room or anything typed. The core reports each command through
:meth:`Metrics.command`, which costs a dictionary lookup and two increments; gauges that need
the database (the outbox backlog) are read when ``/metrics`` is scraped, not before.
When several processes share one database, ``lease_held`` says which duties this process
serves (1) or waits for as a standby (0): summed over the processes, each duty should be 1.
"""

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NAMESPACE = "volunteer_bot"
# Command latency: an answer within 5 ms is the common case, 2 s is Discord's defer point.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 21600.0)


class Metrics:
    """The bot's metrics, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.commands = Counter(
            "commands", "Commands run, by command and outcome", ["command", "outcome"],
            namespace=NAMESPACE, registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "command_latency_seconds", "Time from invocation to reply, by command",
            ["command"], buckets=LATENCY_BUCKETS, namespace=NAMESPACE, registry=r,
        )  # fmt: skip
        self.outbox_backlog = Gauge(
            "outbox_backlog", "Bot posts waiting to be delivered", namespace=NAMESPACE, registry=r
        )
        self.outbox_oldest = Gauge(
            "outbox_oldest_age_seconds", "Age of the oldest post waiting to be delivered",
            namespace=NAMESPACE, registry=r,
        )  # fmt: skip
        self.connected = Gauge(
            "platform_connected", "1 when the platform connection is up", ["platform"],
            namespace=NAMESPACE, registry=r,
        )  # fmt: skip
        self.lease_held = Gauge(
            "lease_held", "1 when this process holds the duty's lease, 0 on a standby",
            ["duty"], namespace=NAMESPACE, registry=r,
        )  # fmt: skip
        self.sync_lag = Gauge(
            "sync_lag_seconds",
            "Matrix: time since the last completed sync; Discord: gateway heartbeat latency",
            ["platform"], namespace=NAMESPACE, registry=r,
        )  # fmt: skip
        self.reminder_lateness = Histogram(
            "reminder_lateness_seconds", "How late reminders were posted after their time",
            buckets=LATENESS_BUCKETS, namespace=NAMESPACE, registry=r,
        )  # fmt: skip
        self.web_requests = Counter(
            "web_requests", "Web requests, by page and status", ["page", "status"],
            namespace=NAMESPACE, registry=r,
        )  # fmt: skip
        self.signins = Counter(
            "web_signins", "Dashboard sign-ins, by outcome", ["outcome"],
            namespace=NAMESPACE, registry=r,
        )  # fmt: skip
        self._children: dict[tuple[str, str], tuple[Callable[[], None], Histogram]] = {}

    def command(self, name: str, outcome: str, started: float) -> None:
        """Count one command and its latency (``started`` from ``time.perf_counter()``)."""
        elapsed = time.perf_counter() - started
        key = (name, outcome)
        child = self._children.get(key)
        if child is None:
            child = (self.commands.labels(name, outcome).inc, self.latency.labels(name))
            self._children[key] = child
        child[0]()
        child[1].observe(elapsed)
