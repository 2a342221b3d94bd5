"""Session policy parsing: entity names, aliases, thresholds, clear errors."""

from __future__ import annotations

import pytest

from streamserver.config import (
    DEFAULT_ENTITIES,
    SUPPORTED_ENTITIES,
    ConfigError,
    SessionConfig,
)
from streamserver.core.pii.entities import ALIASES, CATALOGUE

HOSTED_API_NAMES = (
    "person_name", "phone_number", "email_address", "credit_card_number",
    "credit_card_expiration", "credit_card_cvv", "us_social_security_number",
    "date_of_birth", "account_number", "banking_information", "drivers_license",
    "passport_number", "ip_address", "url", "location", "organization", "person_age",
    "healthcare_number", "money_amount", "date", "time", "password", "username",
    "vehicle_id", "number_sequence",
)  # fmt: skip


def test_catalogue_has_at_least_25_text_entities_and_every_one_has_an_alias() -> None:
    assert len([e for e in CATALOGUE if e != "DTMF"]) >= 25
    assert set(ALIASES.values()) == set(CATALOGUE)


@pytest.mark.parametrize("name", HOSTED_API_NAMES)
def test_hosted_api_policy_names_are_accepted(name: str) -> None:
    cfg = SessionConfig.from_params({"entities": name})
    assert cfg.entities == (ALIASES[name],)


def test_names_mix_case_aliases_default_and_all() -> None:
    cfg = SessionConfig.from_params({"entities": "PERSON, phone_number,ssn,person"})
    assert cfg.entities == ("PERSON", "PHONE_NUMBER", "US_SSN")
    cfg = SessionConfig.from_params({"entities": "default,organization"})
    assert cfg.entities == (*DEFAULT_ENTITIES, "ORGANIZATION")
    assert SessionConfig.from_params({"entities": "all"}).entities == SUPPORTED_ENTITIES
    # JSON lists (configure message) work like the query string.
    cfg = SessionConfig.from_params({"entities": ["Credit-Card-Number", "cvv"]})
    assert cfg.entities == ("CREDIT_CARD", "CREDIT_CARD_CVV")


def test_default_policy_is_identifiers_not_business_talk() -> None:
    cfg = SessionConfig()
    for must in ("PERSON", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "PIN", "DTMF"):
        assert must in cfg.entities
    for not_default in ("MONEY_AMOUNT", "TIME", "DATE", "ORGANIZATION"):
        assert not_default not in cfg.entities


def test_unknown_entity_names_are_listed_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        SessionConfig.from_params({"entities": "person,shoe_size,<script>"})
    msg = str(err.value)
    assert "shoe_size" in msg and "<script>" not in msg
    assert "PHONE_NUMBER" in msg and "all" in msg
    with pytest.raises(ConfigError):
        SessionConfig.from_params({"entities": " , "})


@pytest.mark.parametrize("raw", ["-0.1", "1.5", "high", True])
def test_score_threshold_is_validated(raw: object) -> None:
    with pytest.raises(ConfigError, match="score_threshold"):
        SessionConfig.from_params({"score_threshold": raw})


def test_score_threshold_accepts_text_and_numbers() -> None:
    assert SessionConfig.from_params({"score_threshold": "0.8"}).score_threshold == 0.8
    assert SessionConfig.from_params({"score_threshold": 1}).score_threshold == 1.0


def test_docs_list_every_entity_and_alias() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "entities.md").read_text()
    for entity in CATALOGUE:
        assert f"`{entity}`" in doc
    for alias in ALIASES:
        assert f"`{alias}`" in doc or alias.upper() in CATALOGUE


def test_api_keys_are_kept_only_as_hashes(monkeypatch) -> None:
    import hashlib

    from streamserver.config import ServerConfig, hash_api_key

    other = hashlib.sha256(b"from-a-vault").hexdigest()
    monkeypatch.setenv("STREAMSERVER_API_KEYS", "env-key-1")
    monkeypatch.setenv("STREAMSERVER_API_KEY_HASHES", other.upper())
    cfg = ServerConfig.from_env(api_keys=("flag-key-2",))
    assert set(cfg.api_key_hashes) == {hash_api_key("env-key-1"), hash_api_key("flag-key-2"),
                                       other}
    assert "env-key-1" not in repr(cfg) and "flag-key-2" not in repr(cfg)
    monkeypatch.setenv("STREAMSERVER_API_KEY_HASHES", "not-a-digest")
    with pytest.raises(ConfigError, match="SHA-256"):
        ServerConfig.from_env()


def test_channel_roles_name_each_channel() -> None:
    cfg = SessionConfig.from_params({"channels": "2", "channel_roles": "Agent, caller"})
    assert cfg.channel_roles == ("agent", "caller")
    cfg = SessionConfig.from_params({"channels": 2, "channel_roles": ["caller", "agent"]})
    assert cfg.channel_roles == ("caller", "agent")
    assert SessionConfig.from_params({"channels": 2}).channel_roles == ()


@pytest.mark.parametrize(("params", "match"), [
    ({"channels": 2, "channel_roles": "agent,robot"}, "unknown channel role"),
    ({"channels": 2, "channel_roles": "agent,<script>"}, r"unknown channel role\(s\): \?script\?"),
    ({"channel_roles": "agent,caller"}, "channels=2"),  # roles on a mono stream
    ({"channels": 2, "channel_roles": "agent"}, "one role per channel"),
    ({"channels": 2, "channel_roles": "agent,caller,agent"}, "one role per channel"),
    ({"encoding": "mulaw", "sample_rate": 8000, "channel_roles": "agent,caller"}, "channels=2"),
    ({"channels": 2, "channel_roles": 7}, "invalid value for channel_roles"),
])
def test_bad_channel_roles_are_refused(params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SessionConfig.from_params(params)


@pytest.mark.parametrize(("trim", "context", "ok"), [
    (0, 1500, True), (6000, 2500, True), (3000, 2000, True),
    (2000, 1500, False),  # less than context + 1 s: nothing left to transcribe
    (6000, 400, False), (20_000, 2500, False),  # too little context; past max_buffer_ms
])
def test_buffer_trim_settings_are_validated(
    monkeypatch: pytest.MonkeyPatch, trim: int, context: int, ok: bool
) -> None:
    from streamserver.config import ServerConfig

    monkeypatch.setenv("STREAMSERVER_ASR_TRIM_BUFFER_MS", str(trim))
    monkeypatch.setenv("STREAMSERVER_ASR_TRIM_CONTEXT_MS", str(context))
    if ok:
        cfg = ServerConfig.from_env()
        assert (cfg.asr.trim_buffer_ms, cfg.asr.trim_context_ms) == (trim, context)
    else:
        with pytest.raises(ConfigError, match="trim_buffer_ms"):
            ServerConfig.from_env()


@pytest.mark.parametrize(("value", "expected"), [
    ("", "auto"), ("uvloop", "uvloop"), ("AsyncIO", "asyncio"), ("trio", None),
])
def test_event_loop_setting(monkeypatch: pytest.MonkeyPatch, value: str,
                            expected: str | None) -> None:
    from streamserver.config import ServerConfig

    monkeypatch.setenv("STREAMSERVER_EVENT_LOOP", value)
    if expected is None:
        with pytest.raises(ConfigError, match="event_loop must be one of"):
            ServerConfig.from_env()
    else:
        assert ServerConfig.from_env().event_loop == expected


def test_uvloop_asked_for_but_not_installed_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from streamserver.config import ServerConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvloop" else real(name, *a))
    monkeypatch.setenv("STREAMSERVER_EVENT_LOOP", "uvloop")
    with pytest.raises(ConfigError, match="uvloop package is not installed"):
        ServerConfig.from_env()
    monkeypatch.setenv("STREAMSERVER_EVENT_LOOP", "auto")  # falls back quietly
    assert ServerConfig.from_env().event_loop == "auto"
