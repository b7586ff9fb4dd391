import pytest

from musicvid_core.domain.styles import DEFAULT_STYLE, GM_INSTRUMENTS, STYLES, instrument_program
from musicvid_core.stages.plan.intent import PromptIntent
from musicvid_core.stages.plan.prompt import parse_prompt, resolve_style


def test_slow_sad_piano():
    intent = parse_prompt("slow sad piano")
    assert isinstance(intent, PromptIntent)
    assert (intent.style, intent.mood, intent.mode, intent.tempo_hint) == ("piano", "sad", "minor", "slow")
    assert intent.instruments == ["piano"]
    assert intent.understood["ignored"] == []


def test_upbeat_house_keeps_the_exact_bpm():
    intent = parse_prompt("upbeat 128 bpm house")
    assert intent.style == "electronic"
    assert intent.bpm == 128.0 and intent.understood["bpm"] == 128.0
    assert intent.energy is not None and intent.energy >= 0.6


def test_epic_trailer_build():
    intent = parse_prompt("epic trailer build")
    assert intent.style in ("cinematic", "orchestral")
    assert intent.arc == "build" and intent.mood == "epic"


def test_warm_acoustic_slow_build_big_finish():
    intent = parse_prompt("warm acoustic, slow build, big finish")
    assert intent.style == "acoustic" and intent.mood == "warm"
    assert intent.arc in ("build", "peak_end")
    assert intent.tempo_hint is None  # "slow build" is an arc, not a tempo
    assert intent.understood["ignored"] == []


@pytest.mark.parametrize("text, key", [
    ("lofi in D minor", "D minor"),
    ("jazz in E flat major", "Eb major"),
    ("E flat major strings", "Eb major"),
    ("house, key of F#, minor", "F# minor"),
    ("Am jazzy groove", "A minor"),
    ("rock in Bb major at 140bpm", "Bb major"),
    ("ambient in c sharp minor", "C# minor"),
])
def test_explicit_key_is_honoured_exactly(text, key):
    assert parse_prompt(text).key == key


def test_key_without_mode_takes_the_mood_or_style_mode():
    assert parse_prompt("sad piano in G").key == "G minor"
    assert parse_prompt("house in G").key == f"G {STYLES['electronic'].default_mode}"


@pytest.mark.parametrize("text", ["I am in a slow mood", "A slow song", "a minor key change, sad"])
def test_ordinary_words_are_not_keys(text):
    assert parse_prompt(text).key is None


def test_minor_key_phrase_sets_only_the_mode():
    intent = parse_prompt("happy but in a minor key")
    assert intent.key is None and intent.mode == "minor"


@pytest.mark.parametrize("text, bpm", [("90 BPM lofi", 90.0), ("tempo: 100 rock", 100.0),
                                       ("bpm 72.5 piano", 72.5)])
def test_explicit_tempo_forms(text, bpm):
    assert parse_prompt(text).bpm == bpm


def test_out_of_range_bpm_is_clamped_and_recorded():
    intent = parse_prompt("drum and bass 300 bpm")
    assert intent.bpm == 240.0 and intent.understood["bpm_asked"] == 300.0


def test_unknown_words_fall_back_and_are_listed():
    intent = parse_prompt("zorgle blip with some florp")
    assert intent.style == DEFAULT_STYLE and intent.understood["style_from"] == "default"
    assert intent.mood == "neutral"
    assert intent.understood["ignored"] == ["zorgle", "blip", "florp"]


def test_empty_prompt():
    intent = parse_prompt("")
    assert intent.style == DEFAULT_STYLE and intent.understood["ignored"] == []


def test_instruments_are_matched_longest_first_and_suggest_a_style():
    intent = parse_prompt("acoustic guitar and cellos")
    assert intent.instruments == ["acoustic guitar", "cello"]
    assert intent.style == "acoustic" and intent.understood["style_from"] == "instruments"
    assert all(name in GM_INSTRUMENTS for name in intent.instruments)


def test_mood_suggests_a_style_when_no_genre_is_named():
    intent = parse_prompt("calm and dreamy")
    assert intent.style == "ambient" and intent.understood["style_from"] == "mood"


def test_negated_words_are_recorded_not_applied():
    intent = parse_prompt("house without piano")
    assert intent.instruments == [] and intent.understood["excluded"] == ["piano"]


def test_understood_records_every_decision():
    u = parse_prompt("dark cinematic strings in D minor at 80 bpm, fades out").understood
    assert {k: u[k] for k in ("style", "mood", "bpm", "key", "instruments", "arc")} == {
        "style": "cinematic", "mood": "dark", "bpm": 80.0, "key": "D minor",
        "instruments": ["strings"], "arc": "fade"}


def test_every_style_is_reachable_by_its_keywords():
    for name, style in STYLES.items():
        assert parse_prompt(style.keywords[0]).style == name


def test_parsing_is_deterministic():
    assert parse_prompt("chill lofi beats with rhodes") == parse_prompt("chill lofi beats with rhodes")


def test_resolve_style_accepts_keys_and_free_words():
    assert resolve_style("jazz").name == "jazz"
    assert resolve_style("lo-fi hip hop").name == "lofi"
    assert resolve_style("nonsense").name == DEFAULT_STYLE


def test_instrument_program_lookup():
    assert instrument_program("Cello") == 42
    assert instrument_program("pianos") == 0
    assert instrument_program("kazoo") is None
