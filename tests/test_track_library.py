"""The music library (stages/compose/track/library.py: bundled tracks, a user folder, the index built
once) and choosing a track for a prompt and a picture (choose.py)."""

from __future__ import annotations

import shutil

import pytest

from musicvid_core.domain.errors import BadInput, ConfigurationError
from musicvid_core.stages.compose.track import analysis as A
from musicvid_core.stages.compose.track.choose import choose_track
from musicvid_core.stages.compose.track.library import IndexedTrack, build_index, list_tracks

pytest.importorskip("immich_memories_music")

PICKS = ("calm/calm_acoustic_1", "energetic/energetic_electronic_2", "happy/happy_acoustic_2")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three bundled tracks copied into a user folder, keeping their mood folders."""
    from musicvid_core.stages.compose.track.library import bundled_dir

    root = tmp_path_factory.mktemp("mylib")
    for name in PICKS:
        dest = root / f"{name}.opus"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bundled_dir() / f"{name}.opus", dest)
    return root


@pytest.fixture(scope="module")
def index(folder, tmp_path_factory):
    cache = tmp_path_factory.mktemp("libcache")
    return build_index(list_tracks([folder], bundled=False), cache), cache


def test_bundled_library_lists_28_tracks_with_moods():
    tracks = [t for t in list_tracks() if t.bundled]
    assert len(tracks) == 28
    assert {t.mood for t in tracks} == {"calm", "energetic", "happy", "nostalgic", "tender"}
    assert all("acoustic" in t.tags or "electronic" in t.tags for t in tracks)


def test_index_is_built_once_and_redone_for_a_changed_file(folder, index, monkeypatch):
    entries, cache = index
    assert len(entries) == 3 and (cache / "index.json").is_file()
    monkeypatch.setattr(A, "analyse_audio", lambda *a, **k: pytest.fail("re-analysed an unchanged file"))
    again = build_index(list_tracks([folder], bundled=False), cache)
    assert [e.analysis for e in again] == [e.analysis for e in entries]
    changed = folder / f"{PICKS[0]}.opus"
    changed.write_bytes(changed.read_bytes() + b"\0")  # other bytes (ffmpeg still decodes it)
    with pytest.raises(pytest.fail.Exception):
        build_index(list_tracks([folder], bundled=False), cache)


def test_library_errors_are_one_liners(tmp_path):
    with pytest.raises(BadInput):
        list_tracks([tmp_path / "nowhere"], bundled=False)
    with pytest.raises(ConfigurationError):
        list_tracks([tmp_path], bundled=False)
    with pytest.raises(BadInput):
        choose_track([], duration=10.0)


def test_choice_follows_mood_genre_and_pace(index):
    entries, _ = index
    fast = [i * 1.8 for i in range(1, 30)]
    pick = choose_track(entries, prompt="energetic electronic", duration=55.0, cuts=fast, energy=[0.8] * 10)
    assert pick.track.name == "energetic_electronic_2" and "\n" not in pick.why and pick.why.startswith(pick.track.name)
    calm = choose_track(entries, prompt="calm and peaceful", duration=55.0, cuts=[12.0, 30.0], energy=[0.2] * 10)
    assert calm.track.name == "calm_acoustic_1"
    assert [name for name, _ in calm.ranking][0] == "calm_acoustic_1" and len(calm.ranking) == 3


def test_seed_breaks_near_ties(index):
    entries, _ = index
    twin = [entries[1], IndexedTrack(track=entries[1].track.__class__(path=entries[1].track.path.with_name("twin.opus"),
                                                                       mood=entries[1].track.mood,
                                                                       tags=entries[1].track.tags, bundled=False),
                                     analysis=entries[1].analysis)]
    names = {choose_track(twin, prompt="energetic", duration=30.0, seed=s).track.name for s in range(8)}
    assert names == {"energetic_electronic_2", "twin"}


def test_a_tempo_word_matches_a_track_read_at_double_time_at_a_cost():
    # a 68 bpm ballad of even sixteenths is tracked (and edited) at 136: "slow" still fits it,
    # less than a track read at its own slow tempo, more than a fast one
    from musicvid_core.stages.compose.track.choose import _tempo_score
    from musicvid_core.stages.plan.prompt import parse_prompt

    slow = parse_prompt("slow")
    assert slow.tempo_hint == "slow"
    at, double, fast = _tempo_score(68.0, slow)[0], _tempo_score(136.0, slow)[0], _tempo_score(250.0, slow)[0]
    assert at == 1.0 and 0.3 < double < at and fast < double
    assert _tempo_score(136.0, parse_prompt("fast"))[0] == 1.0
