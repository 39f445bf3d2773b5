# One image runs the whole supervisor (every tenant bot) as a Render web service.
# Production reads DATABASE_URL and MASTER_KEYS from the environment; nothing secret is baked in.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENV=production \
    PORT=10000

# Dependencies first, exactly as locked (requirements.lock: every package pinned, every file hashed; the
# same file `make test` installs): this layer is rebuilt only when the lock changes, not on every code
# edit. Only the runtime dependencies (and the build backend for the step below): production needs no
# embedded Postgres nor dev tools.
COPY requirements.lock /tmp/deps/
RUN pip install --require-hashes --no-deps -r /tmp/deps/requirements.lock \
    && rm -rf /tmp/deps

# The project itself, non-editable: packages go to site-packages, sql/ and models/ to
# /usr/local/share/tg-tenant-supervisor (found by shared.paths), so the source tree is not needed at run time.
# README* may match nothing; pyproject.toml keeps this COPY valid either way. No build isolation: the
# build backend is the locked one installed above, not whatever PyPI serves today.
COPY pyproject.toml README* /tmp/src/
COPY shared /tmp/src/shared
COPY supervisor /tmp/src/supervisor
COPY tenant_runtime /tmp/src/tenant_runtime
COPY sql /tmp/src/sql
COPY models /tmp/src/models
RUN pip install --no-deps --no-build-isolation /tmp/src \
    && rm -rf /tmp/src \
    && python -c "from shared.paths import data_dir; data_dir('sql'); data_dir('models')"

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/app app
# A directory with no source in it: `python -m` puts the cwd first on sys.path.
WORKDIR /home/app
USER 10001:10001

EXPOSE 10000
# Render probes healthCheckPath itself; this is for `docker run` and other orchestrators. No curl in slim.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '10000'), timeout=4)"]

# Exec form: python is PID 1 and gets SIGTERM itself; the supervisor releases its locks and drains.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "supervisor", "run"]
