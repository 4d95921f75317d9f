# Every dtwin image, one stage each over a shared base (the runtime dependencies are installed once):
#
#   docker build --target operator -t dtwin/operator:0.1.0 .   # kopf run -m dtwin_operator.main
#   docker build --target api      -t dtwin/api:0.1.0 .        # the API gateway and its bootstrap Job
#   docker build --target bridge   -t dtwin/bridge:0.1.0 .     # one StatefulSet per Site
#   docker build --target model    -t dtwin/model:0.1.0 .      # every bento, /app/bentos/<task>
#   docker build --target trainer  -t dtwin/trainer:0.1.0 .    # retraining and recommendations CronJobs
#   docker build --target scorer   -t dtwin/scorer:0.1.0 .     # one scorer per ModelDeployment
#
# Only the runtime dependencies of pyproject.toml ([project].dependencies, not the dev extra) are installed, and
# each stage copies only the packages its entrypoint imports, on PYTHONPATH as in the development venv: the
# project's packages live in several folders, so installing the project itself would need the whole tree.
# charts/tests/test_images.py lays each stage's files out and runs its entrypoint with a runtime-only venv.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/pyproject.toml /tmp/requirements.txt

# A fixed numeric UID (the chart's runAsUser), so the kubelet can verify runAsNonRoot; the passwd entry matters
# too: Kopf names itself after getpass.getuser().
RUN groupadd --system --gid 10001 dtwin \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin dtwin
WORKDIR /app


FROM base AS operator
COPY libs/dtwin_core/dtwin_core /app/dtwin_core
COPY operator/dtwin_operator /app/dtwin_operator
# Precompile (in every stage): the Pod's root filesystem is read-only.
RUN python -m compileall -q /app
USER 10001:10001
EXPOSE 8080 9464
ENTRYPOINT ["kopf"]
CMD ["run", "--standalone", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz", "-m", "dtwin_operator.main"]


FROM base AS api
COPY libs/dtwin_core/dtwin_core /app/dtwin_core
COPY services/api/dtwin_api /app/dtwin_api
RUN python -m compileall -q /app
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "dtwin_api"]
CMD ["serve"]


# The operator renders only the bridge's args (`--routing /etc/dtwin/routing/routing.json`).
FROM base AS bridge
COPY libs/dtwin_core/dtwin_core /app/dtwin_core
COPY services/bridge/dtwin_bridge /app/dtwin_bridge
RUN python -m compileall -q /app
USER 10001:10001
EXPOSE 9465
ENTRYPOINT ["python", "-m", "dtwin_bridge", "run"]


# The serving Deployments run `bentoml serve service:<Task>Service` in /app/bentos/<task>, the model store at /models.
FROM base AS model
COPY libs/dtwin_ml/dtwin_ml /app/dtwin_ml
COPY bentos/anomaly/service.py /app/bentos/anomaly/service.py
COPY bentos/failure/service.py /app/bentos/failure/service.py
COPY bentos/rul/service.py /app/bentos/rul/service.py
COPY bentos/energy/service.py /app/bentos/energy/service.py
RUN python -m compileall -q /app
ENV BENTOML_HOME=/models \
    BENTOML_DO_NOT_TRACK=true
USER 10001:10001
EXPOSE 3000


# The CronJobs give the whole command (`python -m dtwin_trainer train|recommend ... --schema ...`). The simulator
# and what it imports (the bridge's parser, the operator's routing tables) come along because the trainer's
# modules import them at load time for the `sim` source, which needs the checkout's examples/ and is not for
# the image.
FROM base AS trainer
COPY libs/dtwin_core/dtwin_core /app/dtwin_core
COPY libs/dtwin_ml/dtwin_ml /app/dtwin_ml
COPY services/bridge/dtwin_bridge /app/dtwin_bridge
COPY operator/dtwin_operator /app/dtwin_operator
COPY services/simulator/dtwin_simulator /app/dtwin_simulator
COPY services/trainer/dtwin_trainer /app/dtwin_trainer
RUN python -m compileall -q /app
USER 10001:10001
CMD ["python", "-m", "dtwin_trainer", "--help"]


# The scorer reads buckets with the trainer's own query and grid (dtwin_trainer.dbsource, .csvsource).
FROM base AS scorer
COPY libs/dtwin_core/dtwin_core /app/dtwin_core
COPY libs/dtwin_ml/dtwin_ml /app/dtwin_ml
COPY services/trainer/dtwin_trainer /app/dtwin_trainer
COPY services/scorer/dtwin_scorer /app/dtwin_scorer
RUN python -m compileall -q /app
USER 10001:10001
EXPOSE 9466
ENTRYPOINT ["python", "-m", "dtwin_scorer"]
CMD ["run"]
