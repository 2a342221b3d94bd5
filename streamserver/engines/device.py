"""Where CTranslate2 runs Whisper: ``--device cpu|cuda|auto`` and ``--compute-type``.

The config checks the names (:class:`~streamserver.config.AsrConfig`); this module
asks CTranslate2 what this machine has. :func:`resolve_asr_device` is called by
``serve`` before it binds (a bad choice is a start-up error, not a failed model
load) and by :class:`~streamserver.engines.whisper.WhisperEngine` when it loads.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import ConfigError

# Compute types CTranslate2 picks itself for the device: always allowed.
_SELF_CHOSEN = ("default", "auto")


def _cuda_device_count() -> int:
    import ctranslate2

    return int(ctranslate2.get_cuda_device_count())


def _supported_compute_types(device: str) -> set[str]:
    import ctranslate2

    return set(ctranslate2.get_supported_compute_types(device))


def resolve_device(requested: str,
                   cuda_device_count: Callable[[], int] = _cuda_device_count) -> str:
    """``cpu`` or ``cuda`` for ``requested`` (``cpu``, ``cuda`` or ``auto``).

    ``auto`` is ``cuda`` when CTranslate2 sees at least one CUDA device, else ``cpu``.
    ``cuda`` with no CUDA device visible is a ConfigError (it would fail to load).
    """
    if requested == "cpu":
        return "cpu"
    count = cuda_device_count()
    if requested == "auto":
        return "cuda" if count > 0 else "cpu"
    if requested == "cuda":
        if count < 1:
            raise ConfigError("device cuda: CTranslate2 sees no CUDA device (driver, "
                              "CUDA 12 runtime and cuDNN 9 needed; docs/deploy.md)")
        return "cuda"
    raise ConfigError("device must be one of cpu, cuda, auto")


def check_compute_type(device: str, compute_type: str,
                       supported: Callable[[str], set[str]] = _supported_compute_types) -> None:
    """ConfigError unless ``device`` here can run ``compute_type`` efficiently
    (CTranslate2 would refuse it at load time with a less helpful message)."""
    if compute_type in _SELF_CHOSEN:
        return
    have = supported(device)
    if compute_type not in have:
        raise ConfigError(f"compute_type {compute_type} is not supported on {device} here "
                          f"(supported: {', '.join(sorted(have))}, default, auto)")


def resolve_asr_device(device: str, compute_type: str,
                       cuda_device_count: Callable[[], int] = _cuda_device_count,
                       supported: Callable[[str], set[str]] = _supported_compute_types) -> str:
    """The device to load Whisper on, after checking that it can run ``compute_type``."""
    resolved = resolve_device(device, cuda_device_count)
    check_compute_type(resolved, compute_type, supported)
    return resolved
