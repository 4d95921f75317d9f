"""Startup: Kopf's storage and timeouts, the API client, metrics endpoint."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from dtwin_operator import names
from dtwin_operator.db.storage import Storage
from dtwin_operator.k8s.client import Kube, connect
from dtwin_operator.render.context import Images
from dtwin_operator.runtime import Runtime
from dtwin_operator.settings import OperatorSettings


def register(registry: kopf.OperatorRegistry, cfg: OperatorSettings) -> None:
    @kopf.on.startup(id="configure", registry=registry)
    async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
        # Progress and last-handled state go to annotations under our own prefix, never into
        # status: the structural schema would prune unknown status fields, and handlers
        # would re-run forever.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.ANNOTATION_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=names.ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{names.ANNOTATION_PREFIX}/finalizer"
        # Servers close idle watches only after ~30-60 min by default; a shorter server-side
        # timeout (with a client timeout just above it) recycles stuck connections promptly.
        settings.watching.server_timeout = cfg.watch_server_timeout
        settings.watching.client_timeout = cfg.watch_server_timeout + 30
        settings.watching.connect_timeout = 10
        settings.networking.request_timeout = 60
        settings.posting.level = logging.INFO
        api = await asyncio.to_thread(connect)
        kube = await asyncio.to_thread(Kube, api)  # discovery is a few blocking requests
        storage = Storage(cfg.database_url) if cfg.database_url else None
        images = Images(bridge=cfg.bridge_image, model=cfg.model_image, trainer=cfg.trainer_image)
        memo["runtime"] = Runtime(settings=cfg, kube=kube, images=images, storage=storage)
        if cfg.metrics_port:
            start_http_server(cfg.metrics_port, addr=cfg.metrics_host)
        logger.info(
            "dtwin operator configured: drift interval %ss, site schemas %s",
            cfg.drift_interval,
            "managed" if storage else "not managed (no DTWIN_OPERATOR_DATABASE_URL)",
        )

    @kopf.on.cleanup(id="close", registry=registry)
    async def close(memo: kopf.Memo, **_: Any) -> None:
        rt = memo.get("runtime")
        if isinstance(rt, Runtime) and rt.storage is not None:
            await rt.storage.close()
