from tests.cluster.postgres import pg_url, postgres  # noqa: F401 - PostgreSQL fixtures
