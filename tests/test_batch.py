"""Batch runs: manifests, per-row failures that never stop the batch, the results table and figure."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest

pytest.importorskip("pandas")

from musicvid_core.cli import main
from musicvid_core.domain.errors import BadInput
from musicvid_core.lab import batch, experiments, tables


def _write_csv(path, rows, fields):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


# --- manifests ------------------------------------------------------------------------------------
def test_csv_manifest_resolves_paths_fills_defaults_and_carries_extra_columns(tmp_path):
    m = _write_csv(tmp_path / "m.csv", [
        {"video": "a.mp4", "prompt": "slow piano", "seed": "3", "loudness": "broadcast", "notes": "first"},
        {"video": "/abs/b.mov", "prompt": "", "seed": "", "loudness": "", "notes": ""},
    ], ["video", "prompt", "seed", "loudness", "notes"])
    items = batch.load_manifest(m, prompt="default prompt", seed=7)
    assert [i.video for i in items] == [str(tmp_path / "a.mp4"), "/abs/b.mov"]
    assert [i.prompt for i in items] == ["slow piano", "default prompt"]
    assert [i.seed for i in items] == [3, 7]
    assert items[0].options == {"loudness": "broadcast"} and items[1].options == {}
    assert items[0].extra == {"notes": "first"}
    assert [i.label for i in items] == ["001-a", "002-b"]


def test_json_manifest_list_or_items(tmp_path):
    (tmp_path / "l.json").write_text(json.dumps([{"video": "x.mp4", "prompt": "p", "label": "my clip"}]))
    (tmp_path / "d.json").write_text(json.dumps({"items": [{"video": "y.mp4", "prompt": "q", "seed": 2}]}))
    assert batch.load_manifest(tmp_path / "l.json")[0].label == "my_clip"
    assert batch.load_manifest(tmp_path / "d.json")[0].seed == 2


def test_folder_source_takes_every_video_sorted(tmp_path):
    for name in ("b.mp4", "a.MOV", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    items = batch.load_manifest(tmp_path, prompt="p")
    assert [i.video for i in items] == [str(tmp_path / "a.MOV"), str(tmp_path / "b.mp4")]


@pytest.mark.parametrize("name, content, message", [
    ("m.csv", "file,prompt\na.mp4,p\n", "'video' column"),
    ("m.csv", "video,prompt\na.mp4,\n", "no prompt"),
    ("m.csv", "video,prompt,seed\na.mp4,p,three\n", "seed must be a whole number"),
    ("m.csv", "video,prompt\n", "lists no videos"),
    ("m.csv", "video,prompt,label\na.mp4,p,same\nb.mp4,p,same\n", "labels must be unique"),
    ("m.json", "[{\"video\": \"a.mp4\", ", "not valid JSON"),
    ("m.json", "{\"videos\": []}", "expected a list"),
    ("m.json", "[{\"prompt\": \"p\"}]", "no video"),
    ("m.txt", "a.mp4", "a manifest is a .csv"),
])
def test_bad_manifests_are_one_clear_error(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(BadInput, match=message):
        batch.load_manifest(tmp_path / name)


def test_missing_source_or_empty_folder(tmp_path):
    with pytest.raises(BadInput, match="no such folder or manifest"):
        batch.load_manifest(tmp_path / "nope")
    with pytest.raises(BadInput, match="no video files"):
        batch.load_manifest(tmp_path)


def test_project_root_falls_back_to_the_checkout_this_package_runs_from(tmp_path):
    """Outside any checkout (a notebook opened elsewhere) sample and run folders still land in the
    project, found from the package's own location (musicvid_core/lab/ is two levels down)."""
    from pathlib import Path

    from musicvid_core.lab.runs import project_root

    checkout = Path(__file__).resolve().parents[1]
    assert project_root(tmp_path) == checkout
    assert project_root(checkout / "musicvid_core" / "lab") == checkout


# --- running --------------------------------------------------------------------------------------
def test_an_unexpected_error_in_one_input_does_not_stop_the_batch(services, tmp_path, monkeypatch):
    """A bug in one row becomes that row's reason; the rows around it still run and the table and
    figure are written. (score is replaced by a fake: no media needed to check the loop.)"""
    calls = []

    def fake_score(svc, video, prompt, *, seed, out_dir, label, options, keep_stems, measure_music):
        assert keep_stems is False and measure_music is False
        calls.append(label)
        if "boom" in label:
            raise ZeroDivisionError("division by zero")
        row = dict.fromkeys(tables.COLUMNS)
        row.update(label=label, video=video, prompt=prompt, seed=seed, status="COMPLETED", elapsed_s=1.0,
                   integrated_lufs=-14.0, target_lufs=-14.0)
        return experiments.Scored(job=None, row=row, output=None, stems=None)

    monkeypatch.setattr(experiments, "score", fake_score)
    items = [batch.BatchItem(video=f"/v/{n}.mp4", prompt="p", label=n) for n in ("one", "boom", "three")]
    seen = []
    result = batch.run_batch(services, items, tmp_path / "out", progress=True, on_row=seen.append,
                             measure_music=False)
    assert calls == ["one", "boom", "three"] and len(seen) == 3
    assert [r["status"] for r in result.rows] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert result.rows[1]["error_type"] == "ZeroDivisionError" and result.rows[1]["error"] == "division by zero"
    assert (result.completed, result.failed) == (2, 1)
    table = tables.read_table(result.table)
    assert list(table["label"]) == ["one", "boom", "three"]
    assert result.figure.is_file() and result.figure.stat().st_size > 10_000


def test_parquet_table_round_trips(tmp_path):
    pytest.importorskip("pyarrow")
    rows = [dict(label="a", seed=1, segments=2, bpm=120.5, status="COMPLETED"),
            dict(label="b", seed=2, status="FAILED", error="broken")]
    path = tables.write_table(rows, tmp_path, fmt="parquet")
    assert path.name == "results.parquet" and (tmp_path / "results.csv").is_file()
    back = tables.read_table(path)
    assert list(back["label"]) == ["a", "b"] and back["segments"].iloc[0] == 2
    assert str(back["seed"].dtype) == "Int64"  # whole numbers stay whole next to a failed row
    with pytest.raises(BadInput):
        tables.write_table(rows, tmp_path, fmt="xlsx")


@pytest.mark.slow
def test_a_broken_input_is_recorded_and_the_others_complete(services, tmp_path):
    """Real pipeline: two good clips, a file that is not a video, a missing file and a bad option."""
    manifest = batch.make_sample_batch(tmp_path / "in", 2, broken=1, seconds=4.0)
    with open(manifest, "a", newline="") as fh:
        fh.write("missing.mp4,anything,0\nclip01.mp4,too loud,0\n")
    rows = list(csv.DictReader(open(manifest)))
    rows[-1]["loudness"] = "deafening"
    _write_csv(manifest, rows, ["video", "prompt", "seed", "loudness"])
    items = batch.load_manifest(manifest)
    result = batch.run_batch(services, items, tmp_path / "out", progress=False, fmt="csv")
    by_video = {(r["video"].rsplit("/", 1)[-1], r["prompt"]): r for r in result.rows}
    assert len(result.rows) == 5 and result.completed == 2 and result.failed == 3
    broken = by_video[("broken01.mp4", "anything")]
    assert broken["status"] == "FAILED" and broken["error_type"] == "UnsupportedMedia" and broken["stage"] == "analyze"
    assert "not a media file" in broken["error"]
    missing = by_video[("missing.mp4", "anything")]
    assert missing["error_type"] == "BadInput" and "no such file" in missing["error"]
    bad_option = by_video[("clip01.mp4", "too loud")]
    assert bad_option["error_type"] == "BadInput" and "unknown loudness preset" in bad_option["error"]
    measured = importlib.util.find_spec("musicvid_core.metrics.music") is not None
    for r in result.rows:
        if r["status"] == "COMPLETED":
            assert abs(r["integrated_lufs"] - (-14.0)) < 1.0 and r["style"] and r["bpm"] > 0
            if measured:  # the music fit, measured on the rendered music stem
                assert 0.0 <= r["hit_rate"] <= 1.0 and r["median_cut_beat_ms"] >= 0
                assert r["tempo_measured_bpm"] is None or r["tempo_measured_bpm"] > 0  # 4 s may be too short
            assert (tmp_path / "out" / "outputs" / r["label"] / "output.mp4").is_file()
    table = tables.read_table(result.table)
    assert len(table) == 5 and set(table["status"]) == {"COMPLETED", "FAILED"}
    assert result.figure.is_file()


def test_cli_batch_exits_1_when_an_input_failed_and_2_for_a_bad_manifest(settings, tmp_path, capsys):
    (tmp_path / "not_video.mp4").write_text("nope")
    with pytest.raises(SystemExit) as exc:
        main(["batch", str(tmp_path), "--prompt", "p", "--out", str(tmp_path / "out"), "--quiet",
              "--no-music-metrics"])
    assert exc.value.code == 1
    out = capsys.readouterr()
    table = tables.read_table(out.out.strip())
    assert list(table["error_type"]) == ["UnsupportedMedia"]
    assert "0 completed, 1 failed" in out.err
    with pytest.raises(SystemExit) as exc:
        main(["batch", str(tmp_path / "none.csv")])
    assert exc.value.code == 2


def test_music_columns_summarise_the_music_report_by_segment_duration():
    from musicvid_core.domain.plan import Plan, Segment

    seg = dict(prompt="x", style="piano", mood="sad", energy=0.5)
    plan = Plan(duration=10.0, prompt="x", segments=[Segment(index=0, start=0, end=2, bpm=60, key="A minor", **seg),
                                                      Segment(index=1, start=2, end=10, bpm=120, key="C major", **seg)])
    report = {"cut_beat_hit_rate": 0.75, "cut_beat_median_distance_s": 0.0123, "tempo_within_2pct": 0.5,
              "mode_agreement": 1.0,
              "segments": [{"index": 0, "bpm_estimated": 61.0, "key_estimated": "A minor"},
                           {"index": 1, "bpm_estimated": 121.0, "key_estimated": "G major"}]}
    cols = experiments.music_from_report(report, plan)
    assert cols == {"hit_rate": 0.75, "median_cut_beat_ms": 12.3, "tempo_measured_bpm": 109.0,
                    "key_measured": "G major", "tempo_within_2pct": 0.5, "mode_agreement": 1.0}
    empty = experiments.music_from_report({"segments": [{"index": 0, "bpm_estimated": None}]}, plan)
    assert empty["tempo_measured_bpm"] is None and empty["key_measured"] is None and empty["hit_rate"] is None
    assert experiments.plan_columns(plan) == {"duration_s": 10.0, "segments": 2, "style": "piano", "bpm": 108.0,
                                              "key": "C major", "cuts": 0}
