import pytest

from musicvid_core.domain import (
    BadInput,
    InvalidTransition,
    Job,
    OperationType,
    Plan,
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
