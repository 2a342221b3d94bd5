"""database_url in the one config: accepted forms, and its password never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamserver.cli import build_parser
from streamserver.config import ConfigError, ServerConfig, redact_url, url_secrets
from streamserver.server.recording import open_archive

SECRET = "s3cr%2Ft-Pw"  # percent-encoded "/" in the password
URL = f"postgresql://streamserver:{SECRET}@db.internal:5432/recordings?sslmode=require"


@pytest.mark.parametrize(("url", "shown"), [
    (URL, "postgresql://streamserver:***@db.internal:5432/recordings?sslmode=require"),
    ("postgres://u@h/db", "postgres://u@h/db"),
    ("postgresql://u@h/db?password=hunter2&sslmode=verify-full",
     "postgresql://u@h/db?password=***&sslmode=verify-full"),
    ("postgresql://:only-pw@h/db", "postgresql://:***@h/db"),
])
def test_redact_url_hides_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_url_secrets_names_every_form_of_the_password() -> None:
    assert set(url_secrets(URL)) == {SECRET, "s3cr/t-Pw"}
    assert url_secrets("postgresql://u@h/db?password=a%20b") == ("a b",)
    assert url_secrets("postgresql://u@h/db") == ()


@pytest.mark.parametrize("bad", [
    "mysql://u:pw-XYZ@h/db", "postgresql://u:pw-XYZ@h:port/db", "postgresql://u:pw XYZ@h/db",
    "http://u:pw-XYZ@h/db", "pw-XYZ"])
def test_only_postgres_urls_are_accepted_and_errors_do_not_quote_them(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        ServerConfig(database_url=bad).validate()
    assert "pw" not in str(err.value).replace("password", "")


def test_the_url_comes_from_env_a_file_or_the_flag_and_stays_out_of_repr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSERVER_DATABASE_URL", URL)
    cfg = ServerConfig.from_env()
    assert cfg.database_url == URL and SECRET not in repr(cfg)
    monkeypatch.delenv("STREAMSERVER_DATABASE_URL")
    (tmp_path / "db-url").write_text(URL + "\n")
    monkeypatch.setenv("STREAMSERVER_DATABASE_URL_FILE", str(tmp_path / "db-url"))
    assert ServerConfig.from_env().database_url == URL
    monkeypatch.delenv("STREAMSERVER_DATABASE_URL_FILE")
    args = build_parser().parse_args(["serve", "--database-url", URL])
    assert args.database_url == URL
    assert ServerConfig.from_env(database_url=args.database_url).database_url == URL
    with pytest.raises(ConfigError):
        ServerConfig.from_env(database_pool_size=0)


def test_a_database_url_without_data_keys_is_a_config_error(tmp_path: Path) -> None:
    # Recording (and so its metadata) needs data keys: say so at start.
    with pytest.raises(ConfigError, match="data keys") as err:
        open_archive(ServerConfig(database_url=URL, data_dir=str(tmp_path)), environ={})
    assert SECRET not in str(err.value)
