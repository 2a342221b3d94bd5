# A runnable image of the server with its models (they ship inside the wheels).
FROM python:3.11-slim
WORKDIR /app
# jemalloc keeps RSS flat under load (README "Memory"); `serve` preloads it itself.
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 \
    && rm -rf /var/lib/apt/lists/*
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY streamserver ./streamserver
# The cluster extra (redis, psycopg, boto3): --redis-url, --database-url and an
# s3:// --storage-url work in the image (deploy/, docs/deploy.md).
RUN pip install ".[cluster]" && useradd --system --uid 10001 streamserver
USER streamserver
# Beyond loopback the server needs API keys (STREAMSERVER_API_KEYS or a mounted
# STREAMSERVER_API_KEY_FILE); without them it refuses to start unless
# STREAMSERVER_ALLOW_ANONYMOUS=true (docs/security.md).
ENV STREAMSERVER_HOST=0.0.0.0 STREAMSERVER_PORT=8080
EXPOSE 8080
# Liveness, not /readyz: /readyz is 503 while the server is full or draining, and
# an orchestrator that replaces "unhealthy" containers would cut live calls.
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status == 200 else 1)"
CMD ["streamserver", "serve"]
