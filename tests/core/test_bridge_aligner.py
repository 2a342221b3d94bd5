"""LegAligner: two legs on their own clocks as one stream, every sample once."""

from __future__ import annotations

import numpy as np
import pytest

from streamserver.core.bridge import LegAligner


def _ramp(start: int, n: int) -> np.ndarray:
    return (np.arange(start, start + n) % 30000 + 1).astype(np.int16)


def test_lockstep_legs_come_out_side_by_side() -> None:
    al = LegAligner(2, max_skew=200)
    al.join(0), al.join(1)
    out = [al.push(0, _ramp(0, 160)), al.push(1, -_ramp(0, 160))]
    frames = np.concatenate(out)
    assert frames.shape == (160, 2)
    assert np.array_equal(frames[:, 0], _ramp(0, 160))
    assert np.array_equal(frames[:, 1], -_ramp(0, 160))
    assert al.padded == [0, 0]


def test_absent_leg_is_silence_and_never_holds_the_other_back() -> None:
    al = LegAligner(2, max_skew=100)
    al.join(1)
    frames = al.push(1, _ramp(0, 320))
    assert frames.shape == (320, 2)
    assert not frames[:, 0].any()
    assert np.array_equal(frames[:, 1], _ramp(0, 320))


def test_a_late_leg_is_padded_beyond_the_skew_and_loses_nothing() -> None:
    al = LegAligner(2, max_skew=100)
    al.join(0), al.join(1)
    got = [al.push(0, _ramp(0, 160))]  # leg 1 silent for a while
    assert got[0].shape[0] == 60  # the leader waits at most max_skew
    got.append(al.push(0, _ramp(160, 160)))
    got.append(al.push(1, -_ramp(0, 400)))  # leg 1 catches up, late
    got.append(al.leave(1))
    got.append(al.leave(0))
    frames = np.concatenate(got)
    leg0 = frames[:, 0]
    assert np.array_equal(leg0[:320], _ramp(0, 320))  # leg 0: in order, once
    leg1 = frames[:, 1]
    late = leg1[leg1 != 0]
    assert np.array_equal(late, -_ramp(0, 400))  # leg 1: every sample once, in order
    assert al.padded[1] > 0


@pytest.mark.parametrize("seed", range(5))
def test_random_arrivals_deliver_each_sample_exactly_once(seed: int) -> None:
    rng = np.random.default_rng(seed)
    al = LegAligner(2, max_skew=int(rng.integers(0, 400)))
    al.join(0), al.join(1)
    sent = [0, 0]
    frames = []
    for _ in range(300):
        ch = int(rng.integers(0, 2))
        n = int(rng.integers(0, 400))
        frames.append(al.push(ch, _ramp(sent[ch], n) * (1 if ch == 0 else -1)))
        sent[ch] += n
    frames += [al.leave(0), al.leave(1)]
    out = np.concatenate(frames)
    for ch, sign in ((0, 1), (1, -1)):
        nonzero = out[:, ch][out[:, ch] != 0]
        assert np.array_equal(nonzero, _ramp(0, sent[ch]) * sign)
        assert out.shape[0] == sent[ch] + al.padded[ch]
