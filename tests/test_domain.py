import pytest

from musicvid_core.domain import (
    ArtifactLayout,
    BadInput,
    InvalidTransition,
    Job,
    JobOptions,
    OperationType,
    Plan,
    Reroll,
    Segment,
    Status,
    check_transition,
    clean_prompt,
    parse_job_id,
)
from musicvid_core.domain.errors import PlanValidationError

LEGAL = {
    (Status.SCHEDULED, Status.PROCESSING), (Status.SCHEDULED, Status.FAILED),
    (Status.PROCESSING, Status.COMPLETED), (Status.PROCESSING, Status.FAILED),
    (Status.COMPLETED, Status.SCHEDULED), (Status.FAILED, Status.SCHEDULED),
}


@pytest.mark.parametrize("a", list(Status))
@pytest.mark.parametrize("b", list(Status))
def test_transition_table(a, b):
    if (a, b) in LEGAL:
        check_transition(a, b)
    else:
        with pytest.raises(InvalidTransition):
            check_transition(a, b)


def test_job_defaults_and_validation():
    job = Job(user_id="u", s3_url="local://uploads/u/x.mp4", prompts=["calm"])
    assert job.status == Status.SCHEDULED and job.operation_type == OperationType.NEW
    assert parse_job_id(job.job_id) == job.job_id
    assert job.prefix == f"jobs/{job.job_id}/1/"
    assert "version" not in job.public()
    with pytest.raises(ValueError):
        Job(user_id="u", s3_url="x", prompts=[], job_id=job.job_id)
    with pytest.raises(ValueError):
        Job(user_id="u", s3_url="x", prompts=["a"], job_id="not-a-uuid")


@pytest.mark.parametrize("bad", ["", "   ", "\x00\x01", "x" * 2001])
def test_clean_prompt_rejects(bad):
    with pytest.raises(BadInput):
        clean_prompt(bad)


def test_clean_prompt_normalises():
    assert clean_prompt("  warm\tacoustic\n build ") == "warm acoustic build"


def test_parse_job_id_rejects_non_uuid():
    with pytest.raises(BadInput):
        parse_job_id("../../etc/passwd")


def _seg(i, a, b, **kw):
    return Segment(index=i, start=a, end=b, prompt="p", style="ambient", mood="calm", bpm=90,
                   key="A minor", energy=0.5, **kw)


def test_plan_must_tile_the_video():
    plan = Plan(duration=10, prompt="p", segments=[_seg(0, 0, 4), _seg(1, 4, 10)])
    assert plan.tail_s(0) == plan.crossfade_s and plan.tail_s(1) == 0
    assert plan.clip_samples(1, 48000) == 6 * 48000
    assert plan.clip_samples(0, 48000) == 4 * 48000 + round(plan.crossfade_s * 48000)
    for segs in ([_seg(0, 0, 4), _seg(1, 5, 10)],  # gap
                 [_seg(0, 0, 6), _seg(1, 4, 10)],  # overlap
                 [_seg(0, 1, 10)],                 # late start
                 [_seg(0, 0, 9)]):                 # short
        with pytest.raises(PlanValidationError):
            Plan.parse({"duration": 10, "prompt": "p", "segments": [s.model_dump() for s in segs]})


def test_segment_field_ranges():
    with pytest.raises(ValueError):
        _seg(0, 0, 1).model_validate({**_seg(0, 0, 1).model_dump(), "key": "H minor"})
    with pytest.raises(ValueError):
        Segment.model_validate({**_seg(0, 0, 1).model_dump(), "energy": 1.5})


# --- job options: validated once, at submit ------------------------------------------------------
@pytest.mark.parametrize("bad, message", [
    ({"loudness": "tv"}, "unknown loudness preset 'tv'; choose one of: web, apple, broadcast"),
    ({"target_lufs": -3}, "target_lufs must be between -40 and -5 LUFS"),
    ({"target_lufs": float("nan")}, "target_lufs must be between -40 and -5 LUFS"),
    ({"target_lufs": "loud"}, "target_lufs must be a number"),
    ({"target_lufs": True}, "target_lufs must be a number"),
    ({"true_peak_dbtp": 1}, "true_peak_dbtp must be between -9 and 0 dBTP"),
    ({"source_music": "mute"}, "unknown source music policy 'mute'; choose one of: keep, duck, replace"),
    ({"preview": "maybe"}, "preview must be true or false"),
    ({"stems": [1]}, "stems must be true or false"),
    ({"hits": 3.0}, "hits must be a list of seconds"),
    ({"hits": [1.0, -2]}, "a hit must be a number of seconds >= 0, got -2"),
    ({"hits": [float("inf")]}, "a hit must be a number of seconds >= 0, got inf"),
    ({"reroll": {"segment": 0}}, "unknown job option 'reroll'"),
    ({"client_token": "t"}, "unknown job option 'client_token'"),
    ([("preview", True)], "job options must map option names to values"),
])
def test_job_options_refuse_bad_values_in_one_line(bad, message):
    from musicvid_core.domain.errors import MusicVidError

    with pytest.raises(BadInput) as info:
        JobOptions.parse(bad)
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text and "pydantic" not in text
    assert isinstance(info.value, MusicVidError)


def test_job_options_resolve_presets_and_remember_what_was_given():
    opts = JobOptions.parse({"loudness": "apple", "true_peak_dbtp": -2, "target_lufs": None, "stems": True,
                             "hits": [3, 1.23456, 1.2349]})
    assert (opts.target_lufs, opts.true_peak_dbtp, opts.stems, opts.preview) == (-16.0, -2.0, True, False)
    assert opts.hits == [1.235, 3.0]  # sorted, unique, ms
    assert opts.given() == {"target_lufs": -16.0, "true_peak_dbtp": -2.0, "stems": True, "hits": [1.235, 3.0]}
    assert JobOptions.parse(None) == JobOptions() and JobOptions.parse(opts) is opts
    assert JobOptions.parse({"target_lufs": "-23"}).target_lufs == -23.0  # CSV cells (lab batch) are text
    # a regeneration's options replace those of the same name only; an empty hits list is kept (not None)
    merged = opts.merged(JobOptions.parse({"preview": True, "hits": []}))
    assert (merged.preview, merged.stems, merged.target_lufs, merged.hits) == (True, True, -16.0, [])


def test_job_options_are_validated_when_a_job_is_built():
    with pytest.raises(ValueError):
        Job(user_id="u", s3_url="local://uploads/u/x.mp4", prompts=["a"], options={"target_lufs": 3})
    with pytest.raises(ValueError):
        Job(user_id="u", s3_url="local://uploads/u/x.mp4", prompts=["a"], options={"what": 1})


def test_a_job_stored_with_the_old_settings_map_loads_typed():
    """Rows written before JobOptions kept options and bookkeeping in one ``settings`` dict."""
    job = Job(user_id="u", s3_url="local://uploads/u/x.mp4", prompts=["a", "b"], attempt=3)
    old = job.model_dump(mode="json", exclude={"options", "reroll", "resumes", "client_token"})
    old["settings"] = {"target_lufs": -23.0, "true_peak_dbtp": -1.0, "preview": True, "stems": True,
                       "source_music": "replace", "music_metrics": True, "hits": [1.5, 4.0],
                       "reroll": {"segment": 1, "prompt": "darker", "from": f"jobs/{job.job_id}/2/"},
                       "resumes": 1, "client_token": "req-7", "someday": "never read"}
    import json

    loaded = Job.model_validate_json(json.dumps(old))
    assert loaded.options == JobOptions(target_lufs=-23.0, true_peak_dbtp=-1.0, preview=True, stems=True,
                                        source_music="replace", music_metrics=True, hits=[1.5, 4.0])
    assert loaded.reroll == Reroll(segment=1, prompt="darker", attempt=2)
    assert loaded.layout.at(loaded.reroll.attempt).prefix == old["settings"]["reroll"]["from"]
    assert (loaded.resumes, loaded.client_token) == (1, "req-7")
    assert "settings" not in loaded.model_dump() and "settings" not in loaded.public()
    # round trip in the new shape
    assert Job.model_validate_json(loaded.model_dump_json()) == loaded
    empty = Job.model_validate({**old, "settings": {}})
    assert (empty.options, empty.reroll, empty.resumes, empty.client_token) == (JobOptions(), None, 0, None)


def test_public_view_hides_options_and_bookkeeping():
    job = Job(user_id="u", s3_url="local://uploads/u/x.mp4", prompts=["a"], options={"preview": True},
              reroll={"segment": 0, "attempt": 1}, resumes=1, client_token="t")
    assert not {"options", "reroll", "resumes", "client_token", "version", "settings"} & set(job.public())


# --- the artifact layout: stored keys must not move -----------------------------------------------
def test_artifact_layout_names_every_key_as_stored():
    jid = "0b7a4c1e-8f7e-4a43-9d2c-2b7f2c1d9e10"
    job = Job(job_id=jid, user_id="u", s3_url="s3://bucket/uploads/u/abc.MOV", prompts=["a"], attempt=2)
    lay = job.layout
    assert lay == ArtifactLayout(jid, 2) and job.prefix == lay.prefix == f"jobs/{jid}/2/"
    assert lay.job_prefix == f"jobs/{jid}/"
    assert lay.features == f"jobs/{jid}/2/features.json" and lay.plan == f"jobs/{jid}/2/plan.json"
    assert lay.segment(7) == f"jobs/{jid}/2/segments/007.wav"
    assert lay.music_record(12) == f"jobs/{jid}/2/music/012.json"
    assert lay.music_request(3, 1) == f"jobs/{jid}/2/music/requests/003-1.json"
    assert ArtifactLayout.music_request_under("adhoc/", 3, 0) == "adhoc/music/requests/003-0.json"
    assert lay.conversation == f"jobs/{jid}/2/planner/conversation.json"
    assert lay.output(job.s3_url) == f"jobs/{jid}/2/output.mov"
    assert lay.output(job.s3_url, preview=True) == f"jobs/{jid}/2/output_preview.mov"
    assert lay.output("local://uploads/u/x.webm") == f"jobs/{jid}/2/output.mkv"
    assert lay.stem("music") == f"jobs/{jid}/2/stems/music.wav"
    assert lay.features_cache == f"jobs/{jid}/cache/features-v2.json"
    assert lay.proxy == f"jobs/{jid}/cache/proxy.mp4"
    assert lay.at(1).plan == f"jobs/{jid}/1/plan.json"
    assert ArtifactLayout.holding(lay.plan) == lay and ArtifactLayout.holding(lay.features_cache) is None
    assert ArtifactLayout.holding("uploads/u/x.mp4") is None
    assert ArtifactLayout.upload_prefix("u") == "uploads/u/"
    key = ArtifactLayout.new_upload("u", ".mp4")
    assert key.startswith("uploads/u/") and key.endswith(".mp4") and key != ArtifactLayout.new_upload("u", ".mp4")
