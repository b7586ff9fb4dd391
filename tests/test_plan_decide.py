"""The plan stage's one entry (stages/plan/decide.py): re-roll or plan, hits, open timing, options."""

import pytest

from musicvid_core.adapters.local import FolderObjectStore
from musicvid_core.domain.errors import BadInput
from musicvid_core.domain.features import Curve, Cut, MediaInfo, VideoFeatures
from musicvid_core.domain.job import Job
from musicvid_core.ports import JobPlanner
from musicvid_core.stages.plan.decide import decide_plan
from musicvid_core.stages.plan.planner import RulePlanner, lock_timing


def _features(duration=24.0, cuts=(8.0, 16.0)):
    media = MediaInfo(duration=duration, width=320, height=180, fps=25, video_codec="h264")
    times = [i * 0.5 for i in range(int(duration * 2))]
    return VideoFeatures(media=media, cuts=[Cut(time=t, strength=1.0) for t in cuts],
                         motion=Curve(times=times, values=[0.4] * len(times)),
                         brightness=Curve(times=times, values=[0.5] * len(times)))


def _job(**kw):
    return Job(user_id="u", s3_url="local://uploads/u/x.mp4", prompts=["warm acoustic"], seed=3, **kw)


class _ModelPlanner:
    """A model planner: wants the whole job, leaves the beat grids open (as Bedrock does)."""

    name = "model"

    def __init__(self):
        self.calls = []

    def plan(self, features, prompt, seed):
        raise AssertionError("a JobPlanner is asked for the job's plan, not plan()")

    def plan_for_job(self, job, features, objects):
        self.calls.append((job.job_id, objects))
        return RulePlanner().draft(features, job.prompt, job.seed)


@pytest.fixture
def objects(tmp_path):
    return FolderObjectStore(tmp_path / "store")


def test_a_plain_planner_plans_from_features_prompt_and_seed(objects):
    features, job = _features(), _job()
    plan = decide_plan(RulePlanner(), job, features, objects)
    assert plan == RulePlanner().plan(features, job.prompt, job.seed)  # its grids kept, not refitted
    assert plan.source_music_policy == "duck" and all(s.beats for s in plan.segments)


def test_a_job_planner_gets_the_job_and_its_open_timing_is_locked(objects):
    planner, features, job = _ModelPlanner(), _features(), _job()
    assert isinstance(planner, JobPlanner) and not isinstance(RulePlanner(), JobPlanner)
    plan = decide_plan(planner, job, features, objects)
    assert planner.calls == [(job.job_id, objects)]
    assert all(s.beats for s in plan.segments)
    assert plan == lock_timing(RulePlanner().draft(features, job.prompt, job.seed), features)


def test_hits_refit_the_grids_and_the_source_music_option_wins(objects):
    features = _features()
    job = _job(options={"hits": [5.0, 13.0], "source_music": "replace"})
    plan = decide_plan(RulePlanner(), job, features, objects)
    assert plan.hits == [5.0, 13.0] and plan.source_music_policy == "replace"
    assert all(any(abs(b - h) < 0.05 for b in plan.segments[i].beats) for i, h in ((0, 5.0), (1, 13.0)))
    # an empty list is a request too (it clears the planner's hits), unlike no hits at all
    assert decide_plan(RulePlanner(), _job(options={"hits": []}), features, objects).hits == []


def test_a_reroll_changes_one_segment_of_the_previous_plan_only(objects):
    features = _features()
    previous = RulePlanner().plan(features, "warm acoustic", 3)
    planner = _ModelPlanner()  # never asked: a re-roll starts from the previous plan
    job = _job(attempt=2, reroll={"segment": 1, "prompt": "dark techno", "attempt": 1})
    plan = decide_plan(planner, job, features, objects, previous)
    assert planner.calls == []
    assert len(previous.segments) >= 2
    assert [s for s in plan.segments if s.index != 1] == [s for s in previous.segments if s.index != 1]
    assert plan.segments[1].variation == previous.segments[1].variation + 1
    assert plan.segments[1].style != previous.segments[1].style
    with pytest.raises(BadInput):
        decide_plan(planner, job, features, objects)  # no previous plan
    with pytest.raises(BadInput):
        decide_plan(planner, _job(attempt=2, reroll={"segment": 9, "attempt": 1}), features, objects, previous)
