"""The bridge's supervised task tree: MQTT -> parse -> batch -> COPY -> commit -> PUBACK, on one event loop.

`run(settings)` loads the routing table, opens the database pool and the MQTT session (resources built here and
closed on the way out), then runs its tasks in one TaskGroup. Messages need no task: the MQTT session calls
`take` on the loop thread with every PUBLISH of a socket read, which parses them with the current routing table
and adds them to the `Batcher`. `flush` writes each full or due batch (retrying until committed) and only then
acknowledges, in arrival order, the messages `Batcher.committed` releases; `reload` polls the routing file and
swaps the table atomically; the MQTT session's own `run` reconnects. Backpressure: once `max_unacked_batches`
batches' worth of messages are unacknowledged (the database is slow or down), `take` pauses the socket and a
commit that frees room resumes it (see `dtwin_bridge.mqtt`). SIGTERM/SIGINT: stop reading, write and commit
what was taken, ack it, disconnect; what the broker still holds was never acked and is redelivered to the
persistent session.

Tracing (`dtwin_core.tracing`, configured by the standard OTEL_* environment): each commit is a span
`bridge.commit` linked to the trace context of the messages in the batch that carried one (W3C `traceparent`
in MQTT v5 user properties; at most `MAX_LINKS`), with the database write as a child span; the alert events
published under it carry its context onward, so a trace runs device -> MQTT -> bridge -> PostgreSQL -> events.

Rules (`dtwin_bridge.alerts`): once a batch is committed, its readings go to the site's rules `Engine`; a
`ticker` task runs its stale/offline checks every second; a hot reload replaces its routes; every event goes
to `Alerts.emit` (metrics, MQTT `<prefix>/events/alerts`, the coalescing queue of the `alerts` writer task).
Committed readings are also published, QoS 0, on `<prefix>/events/telemetry` (`dtwin_bridge.live`) for the
API's live views. Messages on `<prefix>/events/...` are the bridge's own events coming back through
`<prefix>/#`: they are acked in order without being parsed (no dead letter). The engine lives in memory per
replica: see the limitation in `dtwin_bridge.alerts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from opentelemetry import trace

from dtwin_bridge import lease, live, site
from dtwin_bridge.alerts import Alerts, is_own_event, topic_prefix
from dtwin_bridge.batch import Batch, Batcher
from dtwin_bridge.db import Writer
from dtwin_bridge.metrics import Metrics
from dtwin_bridge.model import Reading
from dtwin_bridge.mqtt import Ack, Consumer
from dtwin_bridge.mqttwire import codec
from dtwin_bridge.mqttwire.codec import Publish
from dtwin_bridge.parse import parse
from dtwin_bridge.rules import Engine
from dtwin_bridge.settings import Settings
from dtwin_core import tracing

log = logging.getLogger(__name__)
tracer = trace.get_tracer("dtwin.bridge")
MAX_LINKS = 64  # per commit span: enough to follow a sample of messages, bounded for a 50,000-row batch


@dataclass
class State:
    """What the tasks share; they all run on the event loop thread, so plain attributes suffice."""

    config: site.SiteConfig
    batcher: Batcher
    writer: Writer
    metrics: Metrics
    max_unacked: int
    engine: Engine
    alerts: Alerts
    prefix: str
    consumer: Consumer | None = None
    live: bool = True  # publish committed readings on <prefix>/events/telemetry (dtwin_bridge.live)
    pending: dict[int, Ack] = field(default_factory=dict)  # batcher message id -> how to ack it
    traced: dict[int, trace.SpanContext] = field(default_factory=dict)  # message id -> its sender's span
    ready: list[Batch] = field(default_factory=list)  # full batches waiting for the writer
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # a batch is ready
    stopping: bool = False
    next_id: int = 0
    committed_messages: int = 0
    last_commit: float = 0.0  # wall clock, for the lease's health summary


def take(s: State, publishes: list[Publish], generation: int, received_at: datetime) -> None:
    """Every PUBLISH of one socket read: parse, batch, remember how to ack; pause the socket when full."""
    now = time.monotonic()
    table, prefix, batcher, pending = s.config.table, s.prefix, s.batcher, s.pending
    accepted = 0
    for topic, payload, packet_id, qos, _dup, props in publishes:
        # Our alert events come back through <prefix>/#: acked in order, never parsed.
        items = [] if is_own_event(topic, prefix) else parse(topic, payload, table, received_at)
        if props:  # rare: only messages that carry properties (trace context) pay for decoding them
            sender = _sender(props)
            if sender is not None:
                s.traced[s.next_id + 1] = sender
        for item in items:
            if isinstance(item, Reading):
                accepted += 1
            else:
                s.metrics.rejected(item.reason.value)
        s.next_id += 1
        pending[s.next_id] = Ack(generation, packet_id, qos)
        full = batcher.add(s.next_id, items, now)
        if full:
            s.ready.extend(full)
            s.wake.set()
    s.metrics.received(len(publishes))
    s.metrics.accepted(accepted)
    if batcher.unacked >= s.max_unacked and s.consumer is not None:
        s.consumer.pause()


def _sender(props: bytes) -> trace.SpanContext | None:
    try:
        pairs = codec.decode_properties(props).get(codec.USER_PROPERTY)
    except codec.ProtocolError:
        return None
    return tracing.span_context_from_user_properties(pairs) if isinstance(pairs, list) else None


async def _commit(s: State, batch: Batch) -> None:
    senders = [c for i in batch.messages if (c := s.traced.pop(i, None)) is not None]
    links = [trace.Link(c) for c in senders[:MAX_LINKS]]
    attributes: dict[str, str | int] = {
        "dtwin.site": s.config.site,
        "dtwin.batch.rows": batch.rows,
        "messaging.batch.message_count": len(batch.messages),
        "dtwin.batch.traced_messages": len(senders),
    }
    with tracer.start_as_current_span("bridge.commit", links=links, attributes=attributes):
        await _store_and_ack(s, batch)


async def _store_and_ack(s: State, batch: Batch) -> None:
    started = time.monotonic()
    await s.writer.write(batch)
    s.metrics.batch(batch.rows, time.monotonic() - started)
    if batch.readings:  # rules and live views see stored readings only
        s.alerts.emit(s.engine.on_readings(batch.readings, datetime.now(UTC)))
        if s.live and s.consumer is not None:
            for payload in live.payloads(s.config.site, batch.readings, s.config.table.by_sensor):
                s.consumer.publish(live.topic(s.prefix), payload, qos=0)
    ids = s.batcher.committed(batch)
    assert s.consumer is not None
    stale = s.consumer.ack([s.pending.pop(i) for i in ids])
    if stale:
        s.metrics.stale_acks(stale)
    s.committed_messages += len(ids)
    s.last_commit = time.time()
    s.metrics.committed(time.monotonic() - batch.opened_at)
    if s.batcher.unacked < s.max_unacked and not s.stopping:
        s.consumer.resume()


async def flush(s: State) -> None:
    """Writes batches in order; returns once stopping and everything taken is committed and acked."""
    tick = max(0.005, s.config.flush_interval_s / 4)
    while True:
        s.metrics.levels(s.batcher.buffered_rows, s.batcher.unacked)
        batch = s.ready.pop(0) if s.ready else (s.batcher.flush() if s.stopping else s.batcher.due(time.monotonic()))
        if batch is not None:
            await _commit(s, batch)
            continue
        if s.stopping:
            return
        s.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(s.wake.wait(), tick)


async def ticker(s: State, interval: float = 1.0) -> None:
    """The engine's stale and offline checks, on the wall clock."""
    while True:
        await asyncio.sleep(interval)
        s.alerts.emit(s.engine.tick(datetime.now(UTC)))


async def reload(s: State, path: Path, interval: float) -> None:
    seen = site.signature(path)
    while True:
        await asyncio.sleep(interval)
        try:
            now = site.signature(path)
            if now == seen:
                continue
            seen = now
            new = site.load(path)
        except (OSError, ValueError, KeyError) as err:
            log.error("routing table %s not reloaded, keeping the old one: %s", path, err)
            s.metrics.reloaded("error")
            continue
        if (new.schema, new.database, new.broker_host, new.broker_port) != (
            s.config.schema,
            s.config.database,
            s.config.broker_host,
            s.config.broker_port,
        ):
            log.warning("routing table changed schema/database/broker: that takes a restart; routes reloaded only")
        if new.filters() != s.config.filters():
            assert s.consumer is not None
            s.consumer.resubscribe(new.filters())
        s.config = new  # one assignment: ingest sees the old table or the new one, never half of each
        s.prefix = topic_prefix(new.site, new.subscriptions)
        s.alerts.prefix = s.prefix
        s.alerts.emit(s.engine.replace_routes(new.table.routes, datetime.now(UTC)))
        s.metrics.reloaded("ok")
        log.info("routing table reloaded: %d routes", len(new.table.routes))


async def run(settings: Settings) -> None:
    config = site.load(settings.routing)
    provider = tracing.setup("dtwin-bridge", **{"dtwin.site": config.site, "service.instance.id": settings.replica})
    metrics = Metrics(config.site)
    server = metrics.serve(settings.metrics_host, settings.metrics_port)
    loop = asyncio.get_running_loop()
    writer = await Writer.open(settings.dsn(config.database), config.schema, settings.db_pool_size)
    writer.on_retry = lambda _err: metrics.retried()
    batcher = Batcher(config.batch_size, config.flush_interval_s)
    prefix = topic_prefix(config.site, config.subscriptions)
    max_unacked = settings.max_unacked_batches * config.batch_size

    def publish(topic: str, payload: bytes) -> None:
        # `consumer` is bound below; events come only once the tasks run, inside a commit span.
        consumer.publish(topic, payload, tracing.user_properties())

    alerts = Alerts(config.site, prefix, publish, writer, metrics)
    engine = Engine(config.table.routes)
    restored = engine.restore(await writer.open_alerts())
    if restored:
        log.info("rules: %d open alerts restored from the database", restored)
    s = State(config, batcher, writer, metrics, max_unacked, engine, alerts, prefix, live=settings.live_events)
    consumer = s.consumer = Consumer(
        settings.mqtt_client_id(config.site),
        config.broker_host,
        config.broker_port,
        config.filters(),
        lambda publishes, generation, at: take(s, publishes, generation, at),
        tls=config.broker_tls,
        keepalive_s=settings.keepalive_s,
        session_expiry_s=settings.session_expiry_s,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as tg:
            session = tg.create_task(consumer.run(), name="mqtt")
            writing = tg.create_task(flush(s), name="flush")
            reloading = tg.create_task(reload(s, settings.routing, settings.reload_interval_s), name="reload")
            ticking = tg.create_task(ticker(s), name="ticker")
            alerting = tg.create_task(alerts.write(), name="alerts")
            # Heartbeat Lease for the operator's BridgeReady; returns once `stop` is set, deleting the Lease.
            beat = lease.heartbeat(lease.LeaseSettings(), config.site, settings.replica, lease.probe(consumer, metrics),
                                   stop=stop)  # fmt: skip
            tg.create_task(beat, name="lease")
            await stop.wait()
            log.info("stopping: flushing %d unacked messages", batcher.unacked)
            consumer.pause()
            reloading.cancel()
            s.stopping = True
            s.wake.set()
            await writing
            ticking.cancel()
            alerting.cancel()
            await alerts.drain(5.0)  # the last batches' events; bounded, so a dead database cannot hold shutdown
            await consumer.close()  # the PUBACKs of the last commit leave before the DISCONNECT
            await session
    finally:
        await consumer.close()
        await writer.close()
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
        if provider is not None:
            provider.shutdown()  # exports the last spans
        log.info("stopped")
