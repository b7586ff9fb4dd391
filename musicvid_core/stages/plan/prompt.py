"""Free-text prompt -> PromptIntent: style, mood, tempo, key, instruments, energy and arc.

Rules over a small vocabulary, not a language model: deterministic, instant, pure Python, and
every decision is recorded in ``understood`` (with the words that were not used) so a user can see
why the music came out the way it did. Explicit numbers win: "128 bpm" and "in D minor" are kept
exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from musicvid_core.domain.styles import DEFAULT_STYLE, GM_INSTRUMENTS, STYLES, Style
from musicvid_core.stages.plan.intent import PromptIntent

BPM_LIMITS = (30.0, 240.0)  # what a plan Segment accepts


@dataclass(frozen=True)
class Mood:
    mode: str | None  # the mode it implies
    energy: float  # 0..1
    tempo: str | None  # the pace it implies
    style: str  # the style it suggests when no genre is named


MOODS: dict[str, Mood] = {
    "epic": Mood("minor", 0.85, None, "cinematic"),
    "tense": Mood("minor", 0.6, None, "cinematic"),
    "dark": Mood("minor", 0.5, None, "cinematic"),
    "sad": Mood("minor", 0.3, "slow", "piano"),
    "mysterious": Mood("minor", 0.35, None, "ambient"),
    "calm": Mood("major", 0.2, "slow", "ambient"),
    "dreamy": Mood("major", 0.3, "slow", "ambient"),
    "romantic": Mood("major", 0.35, "slow", "piano"),
    "warm": Mood("major", 0.45, None, "acoustic"),
    "nostalgic": Mood(None, 0.35, None, "lofi"),
    "playful": Mood("major", 0.6, None, "acoustic"),
    "happy": Mood("major", 0.7, None, "corporate"),
    "energetic": Mood("major", 0.85, "fast", "rock"),
}

MOOD_WORDS: dict[str, str] = {
    **dict.fromkeys(("epic", "heroic", "triumphant", "majestic", "grand", "anthemic", "victorious"), "epic"),
    **dict.fromkeys(("tense", "suspense", "suspenseful", "thriller", "anxious", "urgent", "nervous"), "tense"),
    **dict.fromkeys(("dark", "ominous", "sinister", "brooding", "menacing", "gritty", "horror", "scary"),
                    "dark"),
    **dict.fromkeys(("sad", "melancholy", "melancholic", "sorrowful", "somber", "sombre", "mournful",
                     "tragic", "emotional", "heartbreaking", "lonely", "grief", "tearful", "bittersweet"),
                    "sad"),
    **dict.fromkeys(("mysterious", "mystery", "eerie", "strange", "curious", "enigmatic"), "mysterious"),
    **dict.fromkeys(("calm", "peaceful", "relaxing", "relaxed", "serene", "tranquil", "soothing",
                     "mellow", "chill", "chilled", "laid back"), "calm"),
    **dict.fromkeys(("dreamy", "ethereal", "hazy", "floaty", "magical"), "dreamy"),
    **dict.fromkeys(("romantic", "love", "loving", "tender", "sentimental"), "romantic"),
    **dict.fromkeys(("warm", "cozy", "cosy", "heartfelt", "hopeful", "sweet", "gentle", "friendly"), "warm"),
    **dict.fromkeys(("nostalgic", "nostalgia", "wistful", "retro", "vintage"), "nostalgic"),
    **dict.fromkeys(("playful", "quirky", "whimsical", "bouncy", "cute", "silly", "fun", "funny"), "playful"),
    **dict.fromkeys(("happy", "joyful", "cheerful", "bright", "sunny", "positive", "uplifting", "upbeat",
                     "feel good", "feelgood", "optimistic", "celebratory", "inspiring"), "happy"),
    **dict.fromkeys(("energetic", "exciting", "hype", "hyped", "powerful", "aggressive", "fierce"),
                    "energetic"),
}

ENERGY_WORDS: dict[str, float] = {
    **dict.fromkeys(("quiet", "soft", "calm", "minimal", "subtle", "sparse", "still", "delicate"), 0.2),
    **dict.fromkeys(("gentle", "mellow", "chill", "relaxed", "laid back", "light"), 0.3),
    **dict.fromkeys(("moderate", "medium energy"), 0.5),
    **dict.fromkeys(("upbeat", "lively", "bouncy", "punchy", "groovy"), 0.7),
    **dict.fromkeys(("energetic", "driving", "big", "loud", "epic", "powerful", "strong", "hype"), 0.85),
    **dict.fromkeys(("intense", "huge", "aggressive", "explosive", "massive", "hard hitting"), 0.95),
}

TEMPO_WORDS: dict[str, str] = {
    **dict.fromkeys(("slow", "slowly", "slower", "downtempo", "down tempo", "ballad", "relaxed",
                     "laid back", "chill", "lazy", "unhurried"), "slow"),
    **dict.fromkeys(("medium", "moderate", "mid tempo", "midtempo", "walking pace"), "medium"),
    **dict.fromkeys(("fast", "faster", "quick", "rapid", "uptempo", "up tempo", "upbeat", "driving",
                     "frantic", "energetic", "speedy"), "fast"),
}

# Phrases for the energy shape over the video. "slow build" is an arc, not a tempo: longer
# phrases are matched first, so its words are not read again on their own.
ARC_WORDS: dict[str, str] = {
    **dict.fromkeys(("build", "builds", "building", "build up", "buildup", "builds up", "slow build",
                     "crescendo", "rising", "rises", "grows", "growing", "swells", "ramp up",
                     "gradual build"), "build"),
    **dict.fromkeys(("big finish", "grand finale", "finale", "big ending", "climax", "climactic",
                     "epic ending", "strong finish", "powerful ending", "ends big", "end big",
                     "big end", "peak at the end", "peaks at the end"), "peak_end"),
    **dict.fromkeys(("fade", "fades", "fade out", "fades out", "fading", "fading out", "wind down",
                     "winds down", "winding down", "dies down", "soft ending", "calm ending"), "fade"),
    **dict.fromkeys(("steady", "constant", "consistent", "even", "loop", "looping", "flat"), "steady"),
}

MODE_WORDS = {"minor": "minor", "major": "major", "minor key": "minor", "major key": "major"}

# Words that carry no musical request: never reported as ignored.
STOPWORDS = frozenset({
    "a", "an", "the", "and", "or", "with", "of", "in", "on", "for", "to", "some", "music", "song",
    "track", "tune", "vibe", "vibes", "feel", "feeling", "style", "kind", "sort", "like", "please",
    "very", "really", "bit", "little", "but", "then", "at", "by", "that", "this", "it", "is", "its",
    "my", "me", "i", "we", "as", "more", "less", "lots", "lot", "sound", "sounds", "sounding",
    "something", "background", "bgm", "type", "be", "should", "make", "want", "around", "about", "ish",
    "over", "under", "into", "from", "throughout", "whole", "video", "clip", "piece", "mostly",
    "slightly", "somewhat", "quite", "plus", "also", "just", "all", "am", "are", "tempo", "key",
})
NEGATIONS = frozenset(("no", "not", "without", "non"))

_BPM_RES = (re.compile(r"(?<![\d.])(\d{2,3}(?:\.\d+)?)\s*-?\s*bpm\b", re.IGNORECASE),
            re.compile(r"\b(?:bpm|tempo)\s*(?:of|=|:)?\s*(\d{2,3}(?:\.\d+)?)(?![\d.])", re.IGNORECASE))
_KEY_RE = re.compile(
    r"(?<![\w#])(?P<prefix>(?:in|key of|key:?)\s+)?(?P<letter>[A-Ga-g])"
    r"(?P<acc>\s?(?:#|sharp|flat)|b(?![a-z]))?"
    r"(?:(?P<gap>\s?)(?P<mode>major|minor|maj|min|m)(?![a-z]))?(?![\w#])")
_TOKEN_RE = re.compile(r"[a-z0-9]+")


def _lexicon() -> dict[tuple[str, ...], list[tuple[str, object]]]:
    """Phrase (tuple of words) -> what it means: (category, value) pairs, several per phrase."""
    lex: dict[tuple[str, ...], list[tuple[str, object]]] = {}

    def add(phrase: str, category: str, value: object) -> None:
        lex.setdefault(tuple(_TOKEN_RE.findall(phrase.lower())), []).append((category, value))

    for style in STYLES.values():
        for kw in style.keywords:
            add(kw, "style", style.name)
    for name in GM_INSTRUMENTS:
        add(name, "instrument", name)
    for table, category in ((MOOD_WORDS, "mood"), (ENERGY_WORDS, "energy"), (TEMPO_WORDS, "tempo"),
                            (ARC_WORDS, "arc"), (MODE_WORDS, "mode")):
        for phrase, value in table.items():
            add(phrase, category, value)
    return lex


_LEXICON = _lexicon()
_MAX_PHRASE = max(len(k) for k in _LEXICON)
_VOCABULARY = frozenset(w for k in _LEXICON for w in k)


def parse_prompt(text: str) -> PromptIntent:
    """Read a free-text music prompt into a PromptIntent (see intent.py for the fields).

    The style comes from genre words, else from the instruments named, else from the mood, else
    ``DEFAULT_STYLE``. Never raises for any string; ``understood`` records each decision and the
    ``ignored`` words.
    """
    text = (text or "").replace("♯", "#").replace("♭", "b")
    text, bpm, bpm_asked = _take_bpm(text)
    text, key, key_mode = _take_key(text)

    hits: list[tuple[str, object, str]] = []  # (category, value, phrase) in prompt order
    ignored: list[str] = []
    excluded: list[str] = []
    words = [_singular(w) for w in _TOKEN_RE.findall(text.lower().replace("'", ""))]
    i = 0
    while i < len(words):
        for n in range(min(_MAX_PHRASE, len(words) - i), 0, -1):
            phrase = tuple(words[i:i + n])
            if phrase in _LEXICON:
                if i and words[i - 1] in NEGATIONS:
                    excluded.append(" ".join(phrase))
                else:
                    hits += [(cat, val, " ".join(phrase)) for cat, val in _LEXICON[phrase]]
                i += n
                break
        else:
            if words[i] not in STOPWORDS and words[i] not in NEGATIONS and words[i] not in ignored:
                ignored.append(words[i])
            i += 1

    def found(category: str) -> list:
        return [val for cat, val, _ in hits if cat == category]

    instruments = list(dict.fromkeys(found("instrument")))
    mood_name = (found("mood") or ["neutral"])[0]
    mood = MOODS.get(mood_name)
    style, style_from = _choose_style(found("style"), instruments, mood)

    mode = key_mode or (found("mode") or [None])[-1] or (mood.mode if mood else None)
    if key is not None:
        key = f"{key} {mode or STYLES[style].default_mode}"
        mode = key.split()[1]
    energy_words = found("energy")
    energy = round(sum(energy_words) / len(energy_words), 2) if energy_words else (
        mood.energy if mood else None)
    tempo = (found("tempo") or [None])[0] or (mood.tempo if mood and bpm is None else None)
    arcs = found("arc")
    arc = "peak_end" if "peak_end" in arcs and "build" in arcs else (arcs or [None])[0]

    understood = {"style": style, "style_from": style_from, "mood": mood_name, "mode": mode,
                  "bpm": bpm, "key": key, "tempo": tempo, "energy": energy,
                  "instruments": instruments, "arc": arc, "ignored": ignored}
    if bpm is not None and bpm != bpm_asked:
        understood["bpm_asked"] = bpm_asked
    if excluded:
        understood["excluded"] = excluded
    return PromptIntent(style=style, mood=mood_name, bpm=bpm, key=key, mode=mode, tempo_hint=tempo,
                        instruments=instruments, energy=energy, arc=arc, understood=understood)


def resolve_style(name: str, prompt: str = "") -> Style:
    """The Style called ``name``, else the one its words (and ``prompt``'s) select: planners may
    write "house" or "lo-fi hip hop" where a style key is expected."""
    if name in STYLES:
        return STYLES[name]
    return STYLES[parse_prompt(f"{name} {prompt}").style]


# ---------------------------------------------------------------------------------------------
def _singular(word: str) -> str:
    """'pianos' -> 'piano' when only the singular is known (keeps 'bass', 'strings', ...)."""
    if word not in _VOCABULARY and word.endswith("s") and word[:-1] in _VOCABULARY:
        return word[:-1]
    return word


def _take_bpm(text: str) -> tuple[str, float | None, float | None]:
    """Remove the first explicit tempo ("128 bpm", "bpm 90", "tempo: 100") from ``text``; returns
    (rest, bpm within the plan's limits, bpm as written)."""
    for regex in _BPM_RES:
        m = regex.search(text)
        if m:
            asked = float(m.group(1))
            bpm = min(max(asked, BPM_LIMITS[0]), BPM_LIMITS[1])
            return text[:m.start()] + " " + text[m.end():], bpm, asked
    return text, None, None


def _take_key(text: str) -> tuple[str, str | None, str | None]:
    """Remove the first explicit key from ``text``; returns (rest, tonic like "F#", its mode or None).

    Accepted: "in D minor", "key of F#", "E flat major", "Bb", "Am", "C# min". A bare lower-case
    letter needs "in"/"key of" and a mode or accidental ("in a minor"), so "in a slow tempo" or
    "I am" are not keys; "a minor key" is an article plus a mode, not A minor.
    """
    for m in _KEY_RE.finditer(text):
        letter, acc, mode, prefix = m["letter"], m["acc"], m["mode"], m["prefix"]
        acc_word = (acc or "").strip().lower()
        if letter.islower():
            if not (prefix or acc_word in ("sharp", "flat")) or not (mode or acc):
                continue
            if letter == "a" and mode and re.match(r"\s+key\b", text[m.end():], re.IGNORECASE):
                continue
        elif not (prefix or mode or acc):
            continue  # a lone capital ("A slow song") is a word, not a key
        if mode == "m" and (letter.islower() or m["gap"]):
            continue  # "m" only as a chord suffix: "Am", "F#m"
        tonic = letter.upper() + {"#": "#", "sharp": "#", "b": "b", "flat": "b", "": ""}[acc_word]
        full = {"m": "minor", "min": "minor", "minor": "minor", "maj": "major", "major": "major"}
        return text[:m.start()] + " " + text[m.end():], tonic, full.get(mode or "")
    return text, None, None


def _choose_style(named: list[str], instruments: list[str], mood: Mood | None) -> tuple[str, str]:
    """(style, where it came from): the genre named most often (first mentioned on a tie), else
    what the first named instrument suggests, else the mood's, else the default."""
    if named:
        counts = {s: named.count(s) for s in named}
        return max(named, key=lambda s: (counts[s], -named.index(s))), "keywords"
    for name in instruments:
        style = _style_for_program(GM_INSTRUMENTS[name])
        if style:
            return style, "instruments"
    if mood:
        return mood.style, "mood"
    return DEFAULT_STYLE, "default"


def _style_for_program(program: int) -> str | None:
    if program <= 7:
        return "piano"
    if 24 <= program <= 25 or 104 <= program <= 110:
        return "acoustic"
    if 26 <= program <= 28 or 64 <= program <= 67:
        return "jazz"
    if 29 <= program <= 31:
        return "rock"
    if 40 <= program <= 79:
        return "orchestral"
    if program == 38 or 80 <= program <= 87 or program == 90:
        return "electronic"
    if 88 <= program <= 103:
        return "ambient"
    return None
