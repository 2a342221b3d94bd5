"""Coverage-guided fuzzing (atheris / libFuzzer) of everything that parses client bytes.

    .venv/bin/python tests/fuzz/protocol_target.py -runs=200000 [-seed=1] [corpus_dir]

Hypothesis (tests/e2e/test_fuzz.py) attacks a real server with cases it builds
from the protocol's grammar; this drives the same parsing code in-process, guided
by which branches it reaches, so it also finds inputs nobody thought to write down.
One input is one session's worth of wire data: a query string, a text frame and
binary frames. The contract for each layer: ``parse_client_text`` raises only
``ProtocolError``; ``SessionConfig.from_params`` (query and JSON values) only
``ConfigError``; ``audio.decode`` only ``AudioFormatError``, and a valid PCM frame
decodes and encodes back byte for byte; the streaming resampler takes any decoded
frame and returns finite samples; the same binary frames, read as Asterisk
AudioSocket bytes, give frames or ``AudioSocketError`` only. Anything else —
another exception type, a wrong round trip — is a crash, and libFuzzer exits
non-zero with the input that caused it.

``--self-test`` makes ``ConfigError`` count as a crash, to show the harness does
report one (tests/test_protocol_fuzz_atheris.py).
"""

from __future__ import annotations

import sys
import urllib.parse
from pathlib import Path

import atheris
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["streamserver"]):
    from streamserver import audio
    from streamserver.config import ConfigError, SessionConfig
    from streamserver.protocol import ProtocolError, parse_client_text
    from streamserver.server.audiosocket import (
        KIND_AUDIO,
        MAX_PAYLOAD,
        AudioSocketError,
        AudioSocketParser,
    )
    from streamserver.server.auth import TokenIssuer
    from streamserver.server.guard import _authority, _hostname
    from streamserver.server.webrtc import filter_candidates
    from streamserver.webhooks import (
        DestinationPolicy,
        WebhookDestinationError,
        WebhookUrlError,
        validate_url,
    )

TOKENS = TokenIssuer(b"fuzz-secret-0123456789abcdef0123")

SELF_TEST = "--self-test" in sys.argv
if SELF_TEST:
    sys.argv.remove("--self-test")


def _config(params: dict[str, object]) -> SessionConfig | None:
    try:
        return SessionConfig.from_params(params)
    except ConfigError:
        if SELF_TEST:
            raise
        return None


def _untrusted_strings(fdp: atheris.FuzzedDataProvider) -> None:
    """URL shapes clients control besides the session's own: a webhook URL, a
    browser token, Host/Origin values, an SDP offer's candidates. Each layer raises
    only its own typed error, and the answers are sane."""
    url = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 120))
    try:
        checked = validate_url(url)
        assert checked.isascii()
        DestinationPolicy().check_literal(checked)
    except (WebhookUrlError, WebhookDestinationError):
        pass
    token = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 120))
    assert TOKENS.redeem(token) is None  # nothing made up ever redeems
    netloc = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 60))
    assert isinstance(_hostname(netloc), str) and isinstance(_authority(netloc, "http"), str)
    sdp = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 400))
    try:
        kept = filter_candidates(sdp, allow_private=False)
        assert kept.count("a=candidate:") <= 16
    except ProtocolError:
        pass


def _audiosocket(parser: AudioSocketParser, chunk: bytes) -> None:
    """The same binary frames as AudioSocket bytes: frames or AudioSocketError only."""
    try:
        for frame in parser.feed(chunk):
            assert len(frame.payload) <= MAX_PAYLOAD
            assert frame.kind != KIND_AUDIO or len(frame.payload) % 2 == 0
    except AudioSocketError:
        pass


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    _untrusted_strings(fdp)
    # The URL's query string, as the server receives it (text values).
    query = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 200))
    params: dict[str, object] = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    # A text frame: JSON (or not); a configure message's fields join the query's.
    text = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 400))
    try:
        msg = parse_client_text(text)
    except ProtocolError:
        msg = None
    if msg is not None and msg.type == "configure":
        params.update(msg.fields)
    cfg = _config(params)
    if cfg is None:  # fall back to a valid format chosen by the input, to reach decode
        encoding = fdp.PickValueInList(["pcm_s16le", "mulaw", "alaw"])
        rate = fdp.PickValueInList(list(audio.PCM_RATES)) if encoding == "pcm_s16le" else 8000
        channels = fdp.PickValueInList([1, 2]) if encoding == "pcm_s16le" else 1
        cfg = _config({"encoding": encoding, "sample_rate": rate, "channels": channels})
        assert cfg is not None
    fmt = audio.AudioFormat(cfg.encoding, cfg.sample_rate, cfg.channels)
    resampler = audio.StreamingResampler(cfg.sample_rate, 16000)
    audiosocket = AudioSocketParser()
    while fdp.remaining_bytes():
        frame = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2000))
        _audiosocket(audiosocket, frame)
        try:
            samples = audio.decode(frame, fmt)
        except audio.AudioFormatError:
            continue
        if fmt.encoding == "pcm_s16le":
            assert audio.encode(samples, fmt) == frame, "PCM round trip changed the bytes"
        out = resampler.push(audio.to_mono_float(samples))
        assert out.dtype == np.float32 and np.isfinite(out).all()
    assert np.isfinite(resampler.flush()).all()


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
