"""The bridge's supervised task tree: MQTT queue -> parse -> batch -> COPY -> commit -> PUBACK, in one TaskGroup.

`run(settings)` loads the routing table, opens the database pool and the MQTT consumer (resources built here and
closed on the way out), then runs four tasks: `ingest` takes messages off the bounded queue, parses them with
the current routing table and adds them to the `Batcher`; `flush` writes each full or due batch (retrying until
committed) and only then acknowledges, in arrival order, the messages `Batcher.committed` releases; `reload`
polls the routing file and swaps the table atomically; and the signal watcher. Backpressure: `ingest` stops
taking messages while `max_unacked_batches` batches' worth of messages are unacknowledged (the database is slow
or down), so the queue fills and the MQTT thread stops reading (see `dtwin_bridge.mqtt`). SIGTERM/SIGINT: stop
ingesting, write and commit what was taken, ack it, disconnect; what is still queued was never acked and is
redelivered by the broker to the persistent session.

Rules (`dtwin_bridge.alerts`): once a batch is committed, its readings go to the site's rules `Engine`; a
`ticker` task runs its stale/offline checks every second; a hot reload replaces its routes; every event goes
to `Alerts.emit` (metrics, MQTT `<prefix>/events/alerts`, the coalescing queue of the `alerts` writer task).
Messages on `<prefix>/events/...` are the bridge's own events coming back through `<prefix>/#`: they are
acked in order without being parsed (no dead letter). The engine lives in memory per replica: see the
limitation in `dtwin_bridge.alerts`.
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

from dtwin_bridge import site
from dtwin_bridge.alerts import Alerts, is_own_event, topic_prefix
from dtwin_bridge.batch import Batch, Batcher
from dtwin_bridge.db import Writer
from dtwin_bridge.metrics import Metrics
from dtwin_bridge.model import Reading
from dtwin_bridge.mqtt import Consumer, Delivery
from dtwin_bridge.parse import parse
from dtwin_bridge.rules import Engine
from dtwin_bridge.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class State:
    """What the tasks share; they all run on the event loop thread, so plain attributes suffice."""

    config: site.SiteConfig
    batcher: Batcher
    queue: asyncio.Queue[Delivery]
    consumer: Consumer
    writer: Writer
    metrics: Metrics
    max_unacked: int
    engine: Engine
    alerts: Alerts
    prefix: str
    pending: dict[int, Delivery] = field(default_factory=dict)  # batcher message id -> delivery
    ready: list[Batch] = field(default_factory=list)  # full batches waiting for the writer
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # a batch is ready
    room: asyncio.Event = field(default_factory=asyncio.Event)  # acks freed room for more messages
    stopping: bool = False
    next_id: int = 0


async def ingest(s: State) -> None:
    while True:
        while s.batcher.unacked >= s.max_unacked:
            s.room.clear()
            await s.room.wait()
        d = await s.queue.get()
        s.consumer.taken()
        s.metrics.received()
        own = is_own_event(d.topic, s.prefix)  # our alert events, back through <prefix>/#: ack, never parse
        items = [] if own else parse(d.topic, d.payload, s.config.table, d.received_at)
        accepted = 0
        for item in items:
            if isinstance(item, Reading):
                accepted += 1
            else:
                s.metrics.rejected(item.reason.value)
        s.metrics.accepted(accepted)
        s.next_id += 1
        s.pending[s.next_id] = d
        full = s.batcher.add(s.next_id, items, time.monotonic())
        if full:
            s.ready.extend(full)
            s.wake.set()


async def _commit(s: State, batch: Batch) -> None:
    started = time.monotonic()
    await s.writer.write(batch)
    s.metrics.batch(batch.rows, time.monotonic() - started)
    if batch.readings:  # rules see stored readings only
        s.alerts.emit(s.engine.on_readings(batch.readings))
    ids = s.batcher.committed(batch)
    stale = s.consumer.ack([s.pending.pop(i) for i in ids])
    if stale:
        s.metrics.stale_acks(stale)
    s.room.set()


async def flush(s: State) -> None:
    """Writes batches in order; returns once stopping and everything taken is committed and acked."""
    tick = max(0.005, s.config.flush_interval_s / 4)
    while True:
        s.metrics.levels(s.queue.qsize() + s.batcher.buffered_rows, s.batcher.unacked)
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
        if new.shared_filters() != s.config.shared_filters():
            s.consumer.resubscribe(new.shared_filters())
        s.config = new  # one assignment: ingest sees the old table or the new one, never half of each
        s.prefix = topic_prefix(new.site, new.subscriptions)
        s.alerts.prefix = s.prefix
        s.alerts.emit(s.engine.replace_routes(new.table.routes, datetime.now(UTC)))
        s.metrics.reloaded("ok")
        log.info("routing table reloaded: %d routes", len(new.table.routes))


async def run(settings: Settings) -> None:
    config = site.load(settings.routing)
    metrics = Metrics(config.site)
    server = metrics.serve(settings.metrics_host, settings.metrics_port)
    loop = asyncio.get_running_loop()
    writer = await Writer.open(settings.dsn(config.database), config.schema, settings.db_pool_size)
    writer.on_retry = lambda _err: metrics.retried()
    queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=settings.queue_size)
    consumer = Consumer(
        settings.mqtt_client_id(config.site),
        config.broker_host,
        config.broker_port,
        config.shared_filters(),
        queue,
        loop,
        tls=config.broker_tls,
        keepalive_s=settings.keepalive_s,
        session_expiry_s=settings.session_expiry_s,
    )
    batcher = Batcher(config.batch_size, config.flush_interval_s)
    prefix = topic_prefix(config.site, config.subscriptions)
    alerts = Alerts(config.site, prefix, consumer.publish, writer, metrics)
    engine = Engine(config.table.routes)
    max_unacked = settings.max_unacked_batches * config.batch_size
    s = State(config, batcher, queue, consumer, writer, metrics, max_unacked, engine, alerts, prefix)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer.start()
    try:
        async with asyncio.TaskGroup() as tg:
            taking = tg.create_task(ingest(s), name="ingest")
            writing = tg.create_task(flush(s), name="flush")
            reloading = tg.create_task(reload(s, settings.routing, settings.reload_interval_s), name="reload")
            ticking = tg.create_task(ticker(s), name="ticker")
            alerting = tg.create_task(alerts.write(), name="alerts")
            await stop.wait()
            log.info("stopping: flushing %d unacked messages", batcher.unacked)
            taking.cancel()
            reloading.cancel()
            s.stopping = True
            s.wake.set()
            await writing
            ticking.cancel()
            alerting.cancel()
        await alerts.drain(5.0)  # the last batches' events; bounded, so a dead database cannot hold shutdown
    finally:
        consumer.close()
        await writer.close()
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
        log.info("stopped")
