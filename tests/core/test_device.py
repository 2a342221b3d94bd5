"""--device / --compute-type: names checked by the config, the device resolved
against what CTranslate2 sees (injected here; the real one at the end)."""

from __future__ import annotations

import pytest

from streamserver.config import COMPUTE_TYPES, DEVICES, ConfigError, ServerConfig
from streamserver.engines.device import check_compute_type, resolve_asr_device, resolve_device

CPU_TYPES = {"int8", "int8_float32", "float32"}  # what this machine's CTranslate2 reports
CUDA_TYPES = {"int8", "int8_float16", "int8_float32", "float16", "float32"}


def _supported(device: str) -> set[str]:
    return CPU_TYPES if device == "cpu" else CUDA_TYPES


def test_defaults_are_cpu_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMSERVER_DEVICE", raising=False)
    monkeypatch.delenv("STREAMSERVER_COMPUTE_TYPE", raising=False)
    cfg = ServerConfig.from_env()
    assert (cfg.asr.device, cfg.asr.compute_type) == ("cpu", "int8")


def test_env_and_flags_set_device_and_compute_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSERVER_DEVICE", " CUDA ")
    monkeypatch.setenv("STREAMSERVER_COMPUTE_TYPE", "Float16")
    cfg = ServerConfig.from_env()
    assert (cfg.asr.device, cfg.asr.compute_type) == ("cuda", "float16")
    # Command-line flags (asr_* overrides) win over the environment.
    cfg = ServerConfig.from_env(asr_device="auto", asr_compute_type="int8_float16")
    assert (cfg.asr.device, cfg.asr.compute_type) == ("auto", "int8_float16")
    monkeypatch.setenv("STREAMSERVER_DEVICE", "")  # empty: the default
    assert ServerConfig.from_env(asr_compute_type="int8").asr.device == "cpu"


@pytest.mark.parametrize(("env", "match"), [
    ({"STREAMSERVER_DEVICE": "gpu"}, "device must be one of cpu, cuda, auto"),
    ({"STREAMSERVER_DEVICE": "cuda:1"}, "device must be one of"),
    ({"STREAMSERVER_COMPUTE_TYPE": "fp16"}, "compute_type must be one of"),
    ({"STREAMSERVER_COMPUTE_TYPE": "float16"}, "compute_type float16 needs device cuda"),
    ({"STREAMSERVER_DEVICE": "cpu", "STREAMSERVER_COMPUTE_TYPE": "int8_bfloat16"},
     "needs device cuda"),
])
def test_bad_device_settings_are_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                         match: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=match):
        ServerConfig.from_env()


def test_gpu_compute_types_pass_the_config_check_for_cuda_and_auto() -> None:
    for device in ("cuda", "auto"):
        cfg = ServerConfig.from_env(asr_device=device, asr_compute_type="float16")
        assert cfg.asr.compute_type == "float16"
    assert set(DEVICES) == {"cpu", "cuda", "auto"} and "int8" in COMPUTE_TYPES


@pytest.mark.parametrize(("requested", "count", "resolved"), [
    ("cpu", 0, "cpu"), ("cpu", 2, "cpu"),
    ("auto", 0, "cpu"), ("auto", 1, "cuda"), ("auto", 4, "cuda"),
    ("cuda", 1, "cuda"),
])
def test_device_resolution(requested: str, count: int, resolved: str) -> None:
    assert resolve_device(requested, lambda: count) == resolved


def test_cpu_never_asks_for_cuda_devices() -> None:
    def boom() -> int:
        raise AssertionError("cpu must not probe CUDA")

    assert resolve_device("cpu", boom) == "cpu"


def test_cuda_without_a_device_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sees no CUDA device"):
        resolve_device("cuda", lambda: 0)
    with pytest.raises(ConfigError, match="device must be one of"):
        resolve_device("tpu", lambda: 0)


def test_compute_type_must_be_supported_on_the_resolved_device() -> None:
    check_compute_type("cpu", "int8", _supported)
    check_compute_type("cpu", "auto", _supported)  # CTranslate2 chooses
    check_compute_type("cuda", "float16", _supported)
    with pytest.raises(ConfigError, match=r"int16 is not supported on cpu here \(supported: "
                                          r"float32, int8, int8_float32, default, auto\)"):
        check_compute_type("cpu", "int16", _supported)
    # auto on a machine without a GPU: float16 would be refused by CTranslate2.
    with pytest.raises(ConfigError, match="float16 is not supported on cpu"):
        resolve_asr_device("auto", "float16", lambda: 0, _supported)
    assert resolve_asr_device("auto", "float16", lambda: 1, _supported) == "cuda"


def test_real_ctranslate2_resolution_on_this_machine() -> None:
    import ctranslate2

    expected = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    assert resolve_asr_device("auto", "int8") == expected
    assert resolve_asr_device("cpu", "int8") == "cpu"
    assert "int8" in ctranslate2.get_supported_compute_types("cpu")
