"""Admission from measured headroom: runtime.LoadGauge (pure; the caller passes time)."""

from __future__ import annotations

from streamserver.runtime import LoadGauge


def test_idle_gauge_admits_and_reports_no_pressure() -> None:
    g = LoadGauge()
    assert g.pressure(100.0) == 0.0
    assert g.room(100.0)


def test_pressure_is_the_peak_of_the_window_then_forgotten() -> None:
    g = LoadGauge(window_s=5.0, refuse_at=0.8)
    g.observe(10.0, 0.5)
    g.observe(10.02, 0.9)  # same bucket: the higher one counts
    g.observe(10.04, 0.3)
    g.observe(12.0, 0.4)
    assert g.pressure(12.0) == 0.9
    assert not g.room(12.0)
    # Five seconds after the peak it no longer counts: room again.
    assert g.pressure(15.2) == 0.4
    assert g.room(15.2)
    assert g.pressure(30.0) == 0.0


def test_a_newcomer_must_settle_before_the_next_gets_the_full_limit() -> None:
    g = LoadGauge(window_s=5.0, refuse_at=0.8, settle_s=4.0, settle_at=0.7)
    g.observe(1.0, 0.75)
    assert g.room(1.0)  # under refuse_at, nobody admitted lately
    g.admitted(1.0)
    assert not g.room(2.0)  # 0.75 >= settle_at while the newcomer settles
    assert g.room(5.5)  # settled: the full limit again


def test_memory_stays_bounded_under_a_flood_of_reports() -> None:
    g = LoadGauge(window_s=5.0)
    t = 0.0
    for i in range(100_000):
        t = i * 0.001
        g.observe(t, (i % 97) / 100)
    assert len(g._peaks) <= 52  # one per 100 ms bucket of the window
    assert 0.9 <= g.pressure(t) <= 0.96


def test_disabled_limit_never_refuses() -> None:
    g = LoadGauge(refuse_at=0.0, settle_at=-0.15)  # admission_max_pressure 0
    g.observe(0.0, 5.0)
    g.admitted(0.0)
    assert g.room(0.1)
