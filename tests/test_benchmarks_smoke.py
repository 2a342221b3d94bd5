"""Smoke tests: the benchmark scripts run end to end on tiny inputs.

``quality_vs_delay.py`` on one pii_dev clip and one real ``a*`` clip (both in
``tests/fixtures``), ``capacity.py`` one short level, ``allocator.py`` one level per
setting, ``soak.py`` a few short calls, ``cpu_costs.py`` a few runs. They check the
JSON's shape, never a figure: figures are measured by the benchmarks themselves,
on a quiet machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streamserver import memory

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
A02 = "a02_fasterwhisper_stereo_diarization_left.wav"
A02_REF = ("He began a confused complaint against the wizard, who had vanished behind "
           "the curtain on the left.")

SHARES = ("audio_leak", "entity_leak", "over_redaction", "over_redaction_pii_dev",
          "over_redaction_real_a", "real_b_masked_share", "text_leak",
          "deadline_masked_share_pii_dev")


def run_benchmark(script: str, *args: str, env: dict[str, str] | None = None) -> None:
    """Run ``benchmarks/<script>`` from the project root; it must exit 0."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=None if env is None else {**os.environ, **env})
    assert done.returncode == 0, done.stderr[-3000:]


def test_quality_vs_delay_runs_on_fixtures(tmp_path: Path) -> None:
    manifest = tmp_path / "MANIFEST.tsv"
    manifest.write_text(
        "file\tduration_s\tsource_repo\tsource_path\tlicense\ttranscript\tpii_notes\n"
        f"{A02}\t5.00\tSYSTRAN/faster-whisper\ttests/data/stereo_diarization.wav\tMIT\t"
        f"{A02_REF}\tno PII\n"
    )
    out = tmp_path / "q.json"
    run_benchmark("quality_vs_delay.py", "--pii-manifest", str(FIXTURES / "pii_dev_manifest.json"),
                  "--real-manifest", str(manifest), "--real-clips", str(FIXTURES), "--delays",
                  "1000,3000", "--limit", "1", "--jobs", "1", "--out", str(out))
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 0

    assert result["delays_ms"] == [1000, 3000]
    assert result["clips"] == {"pii_dev": ["dev_001.wav"], "real_a": [A02], "real_b": []}
    res = result["results"]
    assert set(res) == {"default", "committed_only", "whole_clip"}
    assert set(res["default"]) == set(res["committed_only"]) == {"1000", "3000"}
    assert set(res["whole_clip"]) == {"inf"}
    for variant, by_delay in res.items():
        for delay, r in by_delay.items():
            where = f"{variant}@{delay}"
            for key in SHARES:
                assert 0.0 <= r[key] <= 1.0, (where, key, r[key])
            for ent, share in {**r["per_entity_leak"], **r["text_leak_per_entity"]}.items():
                assert 0.0 <= share <= 1.0, (where, ent, share)
            assert set(r["per_entity_leak"]) == {"PHONE_NUMBER"}
            assert r["entities"] == 1
            assert r["wer_clips"] == 1 and r["wer_real_a"] >= 0.0
            assert r["clips"] == {"pii_dev": 1, "real_a": 1, "real_b": 0}
    assert len(result["table"]) == 2 + 2 + 1
    assert len(result["per_clip"]["default"]["1000"]) == 2


def test_capacity_benchmark_runs_one_short_level(tmp_path: Path) -> None:
    """One real-time session for a few seconds through a real server; shape only."""
    out = tmp_path / "cap.json"
    run_benchmark("capacity.py", "--data", str(tmp_path), "--sessions", "1", "--seconds", "4",
                  "--delay-ms", "500", "--out", str(out))
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    # Where the server's Whisper ran (its /readyz): int8 on CPU is int8_float32; and
    # the event loop that ran the sessions (uvloop, a dependency, by default).
    assert (result["device"], result["compute_type"]) == ("cpu", "int8_float32")
    assert result["event_loop"] == "uvloop"
    assert result["sessions_in_step"] is False  # each session its own order of the clips
    (level,) = result["levels"]
    assert level["sessions"] == 1 and level["all_audio_back"] is True
    assert level["errors"] == []
    for key in ("jitter_ms_p50", "jitter_ms_p99", "cpu_s_per_audio_s", "peak_rss_mb"):
        assert isinstance(level[key], float)
    assert 0.0 <= level["deadline_masked_share"] <= 1.0


def test_capacity_dense_profile_reports_where_the_time_goes(tmp_path: Path) -> None:
    """The dense profile (fixtures back to back without shared data) and the
    per-stage profile read from the server's /metrics and /proc."""
    out = tmp_path / "dense.json"
    run_benchmark("capacity.py", "--data", str(tmp_path), "--profile", "dense", "--sessions", "1",
                  "--seconds", "6", "--delay-ms", "1000", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["profile"] == "dense"
    (level,) = result["levels"]
    assert level["speech_share"] > 0.5  # speech most of the time
    profile = level["profile"]
    for stage in ("asr_encode", "asr_decode", "asr_align", "pii_spacy", "vad", "core"):
        assert profile["stages"][stage]["calls"] > 0, stage
    assert profile["thread_cpu_s_per_audio_s"]["asr_runtime"] > 0
    assert profile["asr_jobs_per_audio_s"] > 0
    by_class = level["final_lag_by_class"]
    assert set(by_class) == {"utterance_end", "redacted", "held", "plain"}
    assert sum(c["share"] for c in by_class.values()) == pytest.approx(1.0, abs=0.01)


def test_asr_passes_benchmark_counts_tokens_and_stages(tmp_path: Path) -> None:
    out = tmp_path / "passes.json"
    run_benchmark("asr_passes.py", "--clips", str(ROOT / "tests" / "fixtures" / "dev_002.wav"),
                  "--asr", "default", "--asr", "prompt_chars=200", "--out", str(out))
    runs = json.loads(out.read_text())["runs"]
    assert [r["asr_overrides"] for r in runs] == [{}, {"prompt_chars": 200}]
    for run in runs:
        assert run["passes"] > 0 and run["final_words"] > 0
        assert set(run["stage_s"]) == {"asr_features", "asr_encode", "asr_decode", "asr_align"}
        assert 0.0 <= run["passes_at_token_limit"] <= 1.0


def test_capacity_benchmark_over_twilio_bridges_runs_one_short_level(tmp_path: Path) -> None:
    """Two Twilio legs of one bridge for a few seconds through a real server; shape only."""
    out = tmp_path / "cap_twilio.json"
    run_benchmark("capacity.py", "--data", str(tmp_path), "--transport", "twilio", "--sessions",
                  "2", "--seconds", "4", "--delay-ms", "500", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["transport"] == "twilio"
    (level,) = result["levels"]
    assert level["sessions"] == 2 and level["bridges"] == 1
    assert level["errors"] == [] and level["all_audio_back"] is True
    assert isinstance(level["jitter_ms_p99"], float)
    assert 0.0 <= level["deadline_masked_share"] <= 1.0


def test_soak_benchmark_runs_a_few_short_calls(tmp_path: Path) -> None:
    """One slot, ~18 s of short calls (one abrupt, one with a listener); shape only."""
    out = tmp_path / "soak.json"
    run_benchmark("soak.py", "--data", str(tmp_path), "--sessions", "1", "--minutes", "0.3",
                  "--sample-s", "1", "--call-min-s", "4", "--call-max-s", "6", "--delay-ms", "500",
                  "--abrupt", "0.3", "--listen", "0.5", "--out", str(out))
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    assert out.with_suffix(".log").exists()
    for key in ("command", "date", "commit", "machine", "samples", "calls", "rss_start_mb",
                "rss_end_mb", "rss_peak_mb", "rss_growth_mb", "rss_growth_mb_per_hour",
                "calls_completed", "audio_hours", "deadline_masked_share", "errors", "verdict"):
        assert key in result, key
    assert result["calls_completed"] >= 1 and len(result["calls"]) == result["calls_completed"]
    assert any("speech_ms" in c for c in result["calls"])  # a call ran to session.end
    assert len(result["samples"]) >= 3
    assert {"t_s", "rss_mb", "cpu_pct", "sessions", "calls_done"} <= set(result["samples"][0])
    assert isinstance(result["rss_growth_mb_per_hour"], float)
    assert 0.0 <= result["deadline_masked_share"] <= 1.0
    assert result["errors"] == {}
    assert set(result["verdict"]) == {"rss_growth_ok", "rss_steady_ok", "deadline_masked_ok",
                                      "errors_ok", "state_released_ok"}
    assert "rss_growth_late_mb_per_hour" in result and "late_fit" in result
    # The allocator's view of the heap beside RSS, from /metrics: a leak vs fragmentation.
    # The server runs the default malloc: jemalloc, which the test command installs.
    assert result["allocator"] == "jemalloc"
    assert {"anon_mb", "heap_in_use_mb", "heap_free_mb"} <= set(result["samples"][0])
    assert result["samples"][-1]["heap_in_use_mb"] > 10
    assert isinstance(result["heap_in_use_growth_mb_per_hour"], float)


def test_allocator_benchmark_runs(tmp_path: Path) -> None:
    """jemalloc, glibc's default and tuned glibc, one short session each; shape only."""
    out = tmp_path / "allocator.json"
    run_benchmark("allocator.py", "--data", str(tmp_path), "--sessions", "1", "--seconds", "4",
                  "--delay-ms", "500", "--repeats", "1", "--configs", "jemalloc", "0:0",
                  "2:4194304", "--out", str(out))
    jemalloc, default, tuned = json.loads(out.read_text())["runs"]
    assert jemalloc["allocator"] == "jemalloc" and jemalloc["applied"] == {}
    assert default["allocator"] == tuned["allocator"] == "glibc"
    # The server reports what it applied: nothing for glibc's defaults.
    assert default["applied"] == {}
    assert tuned["applied"] == {"arena_max": 2, "mmap_threshold_bytes": 4 << 20}
    for run in (jemalloc, default, tuned):
        assert run["all_audio_back"] is True and run["errors"] == []
        assert 0.0 <= run["deadline_masked_share"] <= 1.0
        assert run["rss_after_mb"] > 0 and run["heap_in_use_mb"] > 0
    assert out.with_suffix(".png").stat().st_size > 0


def test_cpu_costs_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "cpu_costs.json"
    run_benchmark("cpu_costs.py", "--runs", "5", "--session-seconds", "4", "--out", str(out))
    figures = json.loads(out.read_text())["figures"]
    for name in ("spoken_rules_window", "spoken_rules_everyday", "person_spans",
                 "detector_detect", "detector_detect_every_entity_40_words"):
        assert figures[name]["runs"] >= 5 and figures[name]["median_ms"] > 0
    assert figures["pathological_worst_ms"] > 0 and figures["dtmf_per_frame_us"]["best"] > 0
    assert figures["dtmf_per_frame_us_batched_60ms"]["best"] > 0
    for line in ("pcm16k", "mulaw8k"):
        per_frame = figures["session_per_frame_us"][line]
        assert per_frame["frames"] >= 150 and per_frame["push_audio"] > 0
        assert per_frame["release"] > 0


def test_realtime_leaks_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "realtime_leaks.json"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run_benchmark("realtime_leaks.py", "--clips", "dev_014.wav", "--sessions", "1",
                  "--rounds", "1", "--out", str(out), env={"TMPDIR": str(scratch)})
    # Its 8 kHz copy of the clip and the server's log are removed afterwards. (The
    # onnxruntime in the server leaves a ".ses" file of its own: a time and an id.)
    assert not list(scratch.glob("realtime-leaks-*"))
    clip = json.loads(out.read_text())["clips"]["dev_014.wav"]
    assert clip["entities"] == ["US_SSN"] and clip["sessions_run"] == 1
    # One real-time session on an idle machine: the SSN is masked.
    assert clip["sessions_with_a_value_25pct_audible"] == 0
    assert len(clip["sessions"][0]["audible"]) == 1


def test_allocator_faults_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "allocator_faults.json"
    run_benchmark("allocator_faults.py", "--calls", "2", "--out", str(out))
    configs = json.loads(out.read_text())["configs"]
    assert len(configs) == 3
    assert {c["malloc_conf"] for c in configs.values()} >= {memory.JEMALLOC_CONF}
    for result in configs.values():
        assert result["minor_faults"] > 0 and result["rss_peak_mb"] >= result["rss_mb"] > 0


def test_asr_memory_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "asr_memory.json"
    run_benchmark("asr_memory.py", "--calls", "4", "--configs", "50:0", "--out", str(out))
    result = json.loads(out.read_text())
    (run,) = result["results"]
    assert run["step_frames"] == 50 and run["onednn_primitive_cache_capacity"] == 0
    assert [c for c, _ in run["curve_calls_rss_mb"]] == [0, 4]
    assert run["rss_end_mb"] > 0 and run["seconds_per_call"] > 0
    assert out.with_suffix(".png").stat().st_size > 0


def test_load_memory_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "load_memory.json"
    run_benchmark("load_memory.py", "--variants", "default,keep", "--out", str(out))
    result = json.loads(out.read_text())
    rows = {row["key"]: row for row in result["variants"]}
    assert set(rows) == {"default", "keep"}
    assert rows["default"]["freeing_at_once"] and not rows["keep"]["freeing_at_once"]
    assert all(100 < row["rss_mb"] < row["mapped_mb"] for row in rows.values())


def test_heap_census_benchmark_runs(tmp_path: Path) -> None:
    clips = tmp_path / "data" / "pii_dev"
    clips.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "fixtures" / "dev_008.wav", clips / "dev_008.wav")
    out = tmp_path / "heap.json"
    run_benchmark("heap_census.py", "--data", str(tmp_path / "data"), "--warmup", "1", "--sessions",
                  "2", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["sessions"] == 2 and 15 < result["audio_s"] < 20  # dev_008 twice
    assert isinstance(result["python_heap_growth_kib"], float)
    assert result["objects_after"] > 0 and result["allocation_sites"]


@pytest.fixture(scope="module")
def dialogue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthesised dialogues (dialogue 0 is dev, dialogue 1 blind)."""
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed: benchmarks/dialogues.py synthesises with it "
                    "(scripts/test.sh installs espeak-ng and flite)")
    out = tmp_path_factory.mktemp("dialogues")
    run_benchmark("dialogues.py", "--data-dir", str(out), "--count", "2")
    return out


def test_dialogue_corpus_manifest_invariants(dialogue_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from streamserver.audio import read_wav

    manifest = json.loads((dialogue_dir / "manifest.json").read_text())
    assert {(c["layout"], c["channel"]) for c in manifest} == {
        (layout, channel) for layout in ("mono", "stereo") for channel in ("clean", "phone")}
    assert len(manifest) == 2 * 4
    for clip in manifest:
        where = clip["file"]
        samples, rate = read_wav(dialogue_dir / clip["file"])
        assert rate == clip["rate"] == (8000 if clip["channel"] == "phone" else 16000), where
        assert samples.shape[1] == (2 if clip["layout"] == "stereo" else 1), where
        duration = clip["duration_s"]
        assert abs(samples.shape[0] / rate - duration) < 0.01, where
        if clip["channel"] == "phone":
            wide, wide_rate = read_wav(dialogue_dir / clip["file_16k"])
            assert wide_rate == 16000 and wide.shape[1] == samples.shape[1], where
        turns = clip["turns"]
        assert 3 <= len(turns) <= 8, where
        assert turns[0]["role"] == "agent" and {t["role"] for t in turns} == {"agent", "caller"}
        assert turns[0]["start_s"] > 0 and turns[-1]["end_s"] < duration, where
        for i in range(1, len(turns)):  # in order, apart, never overlapping
            a, b = turns[i - 1], turns[i]
            assert a["start_s"] < a["end_s"] and 0.29 <= b["start_s"] - a["end_s"] <= 0.81, where
        for p in clip["pii"]:
            assert p["entity"] in {"PERSON", "US_SSN", "CREDIT_CARD", "ZIP_CODE", "DATE_OF_BIRTH",
                                   "EMAIL_ADDRESS", "LOCATION", "PHONE_NUMBER", "ACCOUNT_NUMBER"}
            assert isinstance(p["cued_in_question"], bool) and p["text"], where
            assert any(t["role"] == p["role"] and t["start_s"] <= p["start_s"] < p["end_s"]
                       <= t["end_s"] for t in turns), (where, p)
        if clip["layout"] == "stereo" and clip["channel"] == "clean":
            for t in turns:  # the other party's channel is silent during a turn
                other = 1 if t["role"] == "agent" else 0
                part = samples[int(t["start_s"] * rate) : int(t["end_s"] * rate), other]
                assert not part.any(), (where, t["text"])
        assert clip["voices"]["agent"] != clip["voices"]["caller"], where

    splits = {c["split"]: c for c in manifest}
    dev, blind = splits["dev"], splits["blind"]
    engine_voice = [{v.split(" ")[0] for v in c["voices"].values()} for c in (dev, blind)]
    assert not engine_voice[0] & engine_voice[1]
    assert dev["phrasings"] and not set(dev["phrasings"]) & set(blind["phrasings"])
    # The whole phrasebooks and name pools too, not only what two dialogues drew.
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from dialogue_templates import BLIND, DEV

    assert not DEV.phrasings() & BLIND.phrasings()
    for pool in ("first_names", "last_names", "agent_names"):
        assert not set(getattr(DEV, pool)) & set(getattr(BLIND, pool)), pool


def test_redaction_quality_scores_dialogues(dialogue_dir: Path, tmp_path: Path) -> None:
    """One dialogue, stereo over the phone, through redaction_quality.py; shape only."""
    out = tmp_path / "rq.json"
    run_benchmark("redaction_quality.py", "--sets", "dialogues", "--dialogue-dir",
                  str(dialogue_dir), "--dialogue-count", "2", "--limit", "1", "--layouts", "stereo",
                  "--channels", "phone", "--out", str(out))
    report = json.loads(out.read_text())["dialogues"]
    assert (report["device"], report["compute_type"]) == ("cpu", "int8_float32")
    assert set(report["groups"]) == {"dev/stereo/phone"} and set(report["splits"]) == {"dev"}
    group = report["groups"]["dev/stereo/phone"]
    for key in ("entity_leak", "audio_leak", "over_redaction", "hard_negative_masked_share",
                "text_leak", "entity_leak_cued_in_question", "unexplained_speech_share"):
        assert 0.0 <= group[key] <= 1.0, key
    assert group["clips"] == 1 and group["repeated_ngrams_per_clip"] >= 0
    (row,) = report["clips"]
    assert row["layout"] == "stereo" and row["values"]
    assert all(0.0 <= v["audible"] <= 1.0 for v in row["values"])
