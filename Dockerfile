# The webhook listener and the Meltano project in one image: `docker run` starts the listener,
# whose runs (`meltano run moco-to-contacts` / `contacts-to-moco`) execute in the same container.
# Put it behind a TLS reverse proxy; keep the ledger and Meltano's state on PostgreSQL
# (TARGET_CONTACTS_LEDGER_URL, ..., MELTANO_DATABASE_URI) so that a new container loses nothing.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MELTANO_SEND_ANONYMOUS_USAGE_STATS=false \
    MELTANO_ENVIRONMENT=prod

# A user of its own: nothing runs as root.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin sync
WORKDIR /project
COPY --chown=sync:sync . /project

# meltano.yml installs the plugins with uv from this checkout (pip_url -e .).
RUN pip install --no-cache-dir "meltano>=4.4,<5" "uv>=0.4" ".[postgres]"

# Each run starts a Python process per plugin, and PYTHONDONTWRITEBYTECODE keeps them from
# caching compiled modules: compile everything once, here (uv's bytecode step for the plugins'
# venvs, compileall for this checkout they import editable). Without it every plugin start
# compiled singer-sdk, SQLAlchemy and the rest again (~1.4 s of CPU each on a 2-core VM).
USER sync
RUN UV_COMPILE_BYTECODE=1 meltano install \
 && python -m compileall -q contacts_api moco_api sync_ledger tap_contacts tap_moco \
    target_contacts target_moco sync_listener

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]

# 0.0.0.0 inside the container only: publish the port to the reverse proxy, not the internet.
CMD ["meltano", "invoke", "sync-listener", "--host", "0.0.0.0", "--port", "8080"]
