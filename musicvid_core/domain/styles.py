"""Musical styles as data: what the procedural composer plays for each genre a prompt can name.

A style fixes the arrangement (which General MIDI instruments take which role), the drum grooves,
the chord progressions per mode, how each role plays a bar (pattern names the composer knows),
registers, swing and the reverb the fx stage adds. Keeping this as plain data means a new style is
one entry here, not new code in the composer.

Conventions
- GM program numbers are 0-based (0 = Acoustic Grand Piano). ``instruments["drums"]`` is a GM
  drum *kit* (bank 128: 0 standard, 16 power, 24 electronic, 32 jazz, 40 brush).
- Grooves are 16 steps per 4/4 bar (16th notes), one string per drum; ``X`` accent, ``x`` normal,
  ``o`` ghost, ``.`` rest. ``main`` is the groove at medium energy, ``peak`` at high energy; the
  composer derives a sparse variant for low energy.
- Progressions are roman numerals relative to the key, each starting on the tonic chord (a loop
  that starts elsewhere leaves the mode ambiguous to a listener, and to the key metric): upper case major, lower case minor, ``°``
  diminished, ``ø`` half-diminished; suffixes ``7``, ``maj7``, ``6``, ``9``, ``add9``, ``sus2``,
  ``sus4``; a ``b``/``#`` prefix borrows a chromatic root (``bVII``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("drums", "bass", "chords", "pad", "lead")

# Where each melodic role sits when a style does not say otherwise (MIDI note numbers, inclusive).
DEFAULT_REGISTERS: dict[str, tuple[int, int]] = {
    "bass": (36, 55),
    "chords": (52, 76),
    "pad": (55, 79),
    "lead": (67, 88),
}

# Mix level per role, dB (<= 0), for a role a style does not balance itself (a named instrument
# can add one). The renderer level-matches SoundFont presets first, so these numbers only weigh
# what the parts play: a sustained five-note chord sums louder than a single bass line.
DEFAULT_BALANCE: dict[str, float] = {"drums": 0.0, "bass": -6.0, "chords": -10.0, "pad": -12.0,
                                     "lead": -7.0}


@dataclass(frozen=True)
class Style:
    name: str
    label: str
    keywords: tuple[str, ...]  # words / phrases in a prompt that select this style
    bpm_range: tuple[int, int]  # tempos that still sound like the style (for the planner)
    default_bpm: int
    default_mode: str  # "major" / "minor" when neither key nor mood says
    default_mood: str
    instruments: dict[str, int]  # role -> GM program ("drums" -> GM drum kit)
    grooves: dict[str, dict[str, str]]  # "main" / "peak" -> drum -> 16-step pattern
    fill: tuple[str, ...]  # drums of a fill, cycled over its 16th notes (high to low)
    progressions: dict[str, tuple[tuple[str, ...], ...]]  # mode -> progressions (roman numerals)
    bars_per_chord: int  # harmonic rhythm: a chord lasts this many bars
    chord_pattern: str  # how the chords role plays a bar (stages/compose/patterns.CHORD_PATTERNS)
    bass_pattern: str  # how the bass plays a bar (stages/compose/patterns.BASS_PATTERNS)
    lead_rhythm: str  # rhythm cells the melody is built from (stages/compose/patterns.LEAD_RHYTHMS)
    spread: str  # chord voicing: "close", "open", "wide", "shell", "power", "guitar"
    registers: dict[str, tuple[int, int]] = field(default_factory=dict)  # role -> (low, high)
    swing: float = 0.0  # delay of off-beat notes, as a fraction of the swung unit
    swing_unit: int = 8  # 8: swing the off-beat eighths; 16: swing the off-beat sixteenths
    humanize_s: float = 0.008  # standard deviation of onset jitter, seconds (0 = quantised)
    density: float = 0.5  # 0..1 baseline of how many melody notes survive thinning
    min_energy: dict[str, float] = field(default_factory=dict)  # role -> bar energy it enters at
    reverb: float = 0.3  # 0..1: how much room the fx stage adds
    balance: dict[str, float] = field(default_factory=dict)  # role -> mix level, dB (<= 0)

    def register(self, role: str) -> tuple[int, int]:
        return self.registers.get(role, DEFAULT_REGISTERS[role])

    def level_db(self, role: str) -> float:
        return self.balance.get(role, DEFAULT_BALANCE[role])


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            name="cinematic", label="Cinematic / trailer",
            keywords=("cinematic", "film", "movie", "trailer", "score", "film score", "soundtrack",
                      "dramatic", "blockbuster", "heroic", "adventure", "action", "hans zimmer"),
            bpm_range=(70, 110), default_bpm=90, default_mode="minor", default_mood="epic",
            # Cellos drive the ostinato (short notes: the section patch's long release would
            # smear them and cost many voices), the string section holds the harmony, horns carry
            # the theme and a choir joins at the top: the usual trailer stack.
            instruments={"drums": 16, "bass": 42, "chords": 48, "pad": 52, "lead": 60},
            grooves={
                "main": {"kick": "X.......x.x.....", "tom_lo": "....x.......x..."},
                "peak": {"kick": "X..x..x.X..x..x.", "tom_lo": "X...x..xX...x.x.",
                         "snare": "....X.......X..."},
            },
            fill=("tom_hi", "tom_mid", "tom_lo", "tom_lo"),
            progressions={
                "minor": (("i", "VI", "III", "VII"), ("i", "VI", "iv", "V"), ("i", "iv", "VI", "V"),
                          ("i", "VII", "VI", "VII")),
                "major": (("I", "V", "vi", "IV"), ("I", "vi", "IV", "V"), ("I", "iii", "vi", "IV"),
                          ("I", "IV", "vi", "V")),
            },
            bars_per_chord=1, chord_pattern="sustain", bass_pattern="ostinato", lead_rhythm="sparse",
            spread="wide", registers={"bass": (36, 52), "chords": (55, 79), "lead": (60, 79)},
            min_energy={"drums": 0.3, "pad": 0.55, "lead": 0.4}, density=0.5, reverb=0.65,
            balance={"drums": 0.0, "bass": -5.0, "chords": -10.0, "pad": -7.0, "lead": -3.0},
        ),
        Style(
            name="lofi", label="Lo-fi hip-hop",
            keywords=("lofi", "lo fi", "hip hop", "hiphop", "chillhop", "boom bap", "study", "beats"),
            bpm_range=(70, 92), default_bpm=82, default_mode="major", default_mood="nostalgic",
            instruments={"drums": 0, "bass": 33, "chords": 4, "lead": 11},
            grooves={
                "main": {"kick": "X......x..x.....", "snare": "....X.......X...",
                         "hat": "x.x.x.x.x.x.x.x."},
                "peak": {"kick": "X......x.xx.....", "snare": "....X..o....X..o",
                         "hat": "x.xxx.x.x.xxx.x."},
            },
            fill=("snare",),
            progressions={
                "major": (("Imaj7", "IVmaj7", "ii7", "V7"), ("Imaj7", "vi7", "ii7", "V7"),
                          ("Imaj7", "IVmaj7", "iii7", "ii7")),
                "minor": (("i7", "iv7", "VII7", "IIImaj7"), ("i7", "VImaj7", "iv7", "v7"),
                          ("i7", "i7", "iv7", "v7")),
            },
            bars_per_chord=1, chord_pattern="syncopated", bass_pattern="lofi", lead_rhythm="lyrical",
            spread="close", registers={"chords": (50, 72), "lead": (67, 84)},
            swing=0.3, swing_unit=16, humanize_s=0.012, density=0.35,
            min_energy={"drums": 0.15, "lead": 0.45}, reverb=0.35,
            balance={"drums": 0.0, "bass": -9.0, "chords": -15.0, "lead": -7.0},
        ),
        Style(
            name="electronic", label="Electronic / house",
            keywords=("electronic", "house", "deep house", "edm", "dance", "club", "techno", "electro",
                      "synthwave", "four on the floor", "rave", "trance"),
            bpm_range=(118, 130), default_bpm=124, default_mode="minor", default_mood="energetic",
            instruments={"drums": 24, "bass": 38, "chords": 90, "pad": 89, "lead": 81},
            grooves={
                # Closed hats on the beats keep the pulse on the kick: with only the open hat,
                # the stabs and the bass on the off-beats, a listener (and a beat tracker) can
                # hear the off-beats as the beat.
                "main": {"kick": "X...X...X...X...", "clap": "....X.......X...",
                         "ohat": "..o...o...o...o.", "hat": "X...X...X...X..."},
                "peak": {"kick": "X...X...X...X...", "clap": "....X.......X...",
                         "ohat": "..o...o...o...o.", "hat": "X.o.X.o.X.o.X.o."},
            },
            fill=("snare",),
            progressions={
                "minor": (("i", "VI", "III", "VII"), ("i", "iv", "VI", "VII"), ("i", "VII", "VI", "VII")),
                "major": (("I", "V", "vi", "IV"), ("I", "vi", "IV", "V"), ("I", "IV", "V", "vi")),
            },
            bars_per_chord=2, chord_pattern="stabs", bass_pattern="offbeat", lead_rhythm="riff",
            spread="close", registers={"bass": (33, 50), "chords": (55, 76), "lead": (67, 84)},
            humanize_s=0.0, density=0.6, min_energy={"drums": 0.12, "lead": 0.6}, reverb=0.25,
            balance={"drums": 0.0, "bass": -9.0, "chords": -12.0, "pad": -15.0, "lead": -6.0},
        ),
        Style(
            name="ambient", label="Ambient",
            keywords=("ambient", "atmospheric", "drone", "meditation", "meditative", "ethereal",
                      "soundscape", "new age", "spacey", "floating"),
            bpm_range=(56, 80), default_bpm=68, default_mode="major", default_mood="calm",
            # A low pad drone, glassy chords, a halo pad above and sparse crystal bells.
            # A soft shaker pulse (and a ghost kick on the bar line) keeps the beat audible under the
            # pads, so cuts are felt on it; it enters only above the calmest energies.
            instruments={"drums": 0, "bass": 89, "chords": 92, "pad": 94, "lead": 98},
            grooves={"main": {"kick": "o...............", "shaker": "x.o.x.o.x.o.x.o."},
                     "peak": {"kick": "o.......o.......", "shaker": "x.oox.oox.oox.oo"}},
            fill=(),
            progressions={
                "major": (("Imaj7", "IVmaj7"), ("Iadd9", "IVadd9", "vi7", "IVmaj7"), ("I", "iii7", "IV", "I")),
                "minor": (("i7", "VImaj7"), ("iadd9", "iv7", "VImaj7", "VII"), ("i", "VI", "III", "VII")),
            },
            bars_per_chord=2, chord_pattern="sustain", bass_pattern="sustain", lead_rhythm="sparse",
            spread="open", registers={"bass": (36, 50), "chords": (55, 76), "pad": (60, 84),
                                      "lead": (72, 91)},
            humanize_s=0.015, density=0.25, min_energy={"drums": 0.15, "lead": 0.25}, reverb=0.9,
            balance={"drums": -6.0, "bass": -2.0, "chords": 0.0, "pad": -1.0, "lead": -3.0},
        ),
        Style(
            name="rock", label="Rock",
            keywords=("rock", "indie rock", "hard rock", "punk", "grunge", "alternative", "garage",
                      "stadium", "guitar rock"),
            bpm_range=(100, 150), default_bpm=126, default_mode="major", default_mood="energetic",
            instruments={"drums": 16, "bass": 34, "chords": 29, "lead": 30},
            grooves={
                "main": {"kick": "X.....x.X.......", "snare": "....X.......X...",
                         "hat": "x.x.x.x.x.x.x.x."},
                "peak": {"kick": "X.....x.X.x.....", "snare": "....X.......X...",
                         "ohat": "X.x.X.x.X.x.X.x."},
            },
            fill=("tom_hi", "tom_hi", "tom_mid", "tom_lo"),
            progressions={
                "major": (("I", "V", "vi", "IV"), ("I", "bVII", "IV", "I"), ("I", "IV", "V", "IV"),
                          ("I", "vi", "IV", "V")),
                "minor": (("i", "VII", "VI", "VII"), ("i", "VI", "III", "VII"), ("i", "iv", "VII", "i")),
            },
            bars_per_chord=1, chord_pattern="power8", bass_pattern="eighths", lead_rhythm="lyrical",
            spread="power", registers={"bass": (33, 52), "chords": (40, 67), "lead": (64, 86)},
            humanize_s=0.006, density=0.7, min_energy={"drums": 0.1, "lead": 0.6}, reverb=0.2,
            balance={"drums": 0.0, "bass": -8.0, "chords": -10.0, "lead": -10.0},
        ),
        Style(
            name="orchestral", label="Orchestral",
            keywords=("orchestral", "orchestra", "symphonic", "symphony", "classical", "baroque",
                      "chamber", "fantasy", "fairy tale", "storybook"),
            bpm_range=(60, 120), default_bpm=92, default_mode="major", default_mood="epic",
            # Light orchestra: cellos on the bass line, pizzicato arpeggios, sustained string
            # section and a flute melody; concert bass drum and snare only when it gets big.
            instruments={"drums": 0, "bass": 42, "chords": 45, "pad": 48, "lead": 73},
            grooves={
                "main": {"kick2": "X.......X......."},
                "peak": {"kick2": "X.......X.......", "snare": "x..o..x.x..o..x.",
                         "tom_lo": "X.......X...x.x."},
            },
            fill=("snare",),
            progressions={
                "major": (("I", "vi", "IV", "V"), ("I", "IV", "V", "I"),
                          ("I", "V", "vi", "iii", "IV", "I", "IV", "V")),
                "minor": (("i", "iv", "V", "i"), ("i", "VI", "III", "VII"),
                          ("i", "iv", "VII", "III", "VI", "iiø7", "V", "i")),
            },
            bars_per_chord=1, chord_pattern="arpeggio", bass_pattern="halves", lead_rhythm="lyrical",
            spread="open", registers={"bass": (36, 57), "chords": (55, 79), "pad": (52, 76),
                                      "lead": (69, 91)},
            density=0.55, min_energy={"drums": 0.45, "lead": 0.3}, reverb=0.6,
            balance={"drums": -2.0, "bass": -8.0, "chords": 0.0, "pad": -11.0, "lead": -8.0},
        ),
        Style(
            name="jazz", label="Jazz (swing)",
            keywords=("jazz", "jazzy", "swing", "bebop", "lounge", "cafe", "coffee shop", "noir",
                      "piano bar", "smooth jazz", "big band"),
            bpm_range=(90, 180), default_bpm=132, default_mode="major", default_mood="playful",
            instruments={"drums": 32, "bass": 32, "chords": 0, "lead": 66},
            grooves={
                "main": {"ride": "x...X.x.x...X.x.", "pedal": "....x.......x...",
                         "kick": "o...o...o...o..."},
                "peak": {"ride": "x...X.x.x...X.x.", "pedal": "....x.......x...",
                         "kick": "o...o...o..xo...", "snare": "......o...o...o."},
            },
            fill=("snare",),
            progressions={
                "major": (("Imaj7", "IVmaj7", "ii7", "V7"), ("Imaj7", "vi7", "ii7", "V7"),
                          ("Imaj7", "VI7", "ii7", "V7")),
                "minor": (("i7", "i7", "iiø7", "V7"), ("i7", "iv7", "iiø7", "V7"),
                          ("i7", "VI7", "iiø7", "V7")),
            },
            bars_per_chord=1, chord_pattern="comp", bass_pattern="walking", lead_rhythm="swing",
            spread="shell", registers={"bass": (28, 50), "chords": (52, 72), "lead": (58, 80)},
            swing=0.33, swing_unit=8, humanize_s=0.01, density=0.6,
            min_energy={"drums": 0.1, "lead": 0.3}, reverb=0.3,
            balance={"drums": 0.0, "bass": -7.0, "chords": -14.0, "lead": -12.0},
        ),
        Style(
            name="acoustic", label="Acoustic / folk",
            keywords=("acoustic", "folk", "indie folk", "singer songwriter", "campfire", "country",
                      "americana", "unplugged", "organic", "strummed", "strumming"),
            bpm_range=(76, 120), default_bpm=96, default_mode="major", default_mood="warm",
            instruments={"drums": 40, "bass": 32, "chords": 25, "pad": 49, "lead": 73},
            grooves={
                "main": {"kick": "X.......X.......", "rim": "....x.......x...",
                         "shaker": "xoxoxoxoxoxoxoxo"},
                "peak": {"kick": "X.....x.X.......", "snare": "....X.......X...",
                         "shaker": "xoxoxoxoxoxoxoxo", "tamb": "....x.......x..."},
            },
            fill=("snare",),
            progressions={
                "major": (("I", "V", "vi", "IV"), ("I", "IV", "vi", "V"), ("I", "vi", "ii", "V"),
                          ("I", "iii", "IV", "V")),
                "minor": (("i", "VII", "VI", "VII"), ("i", "III", "VII", "iv"), ("i", "iv", "VII", "III")),
            },
            bars_per_chord=1, chord_pattern="strum", bass_pattern="root_fifth", lead_rhythm="lyrical",
            spread="guitar", registers={"chords": (40, 76), "lead": (67, 88)},
            humanize_s=0.01, density=0.5, min_energy={"drums": 0.2, "pad": 0.65, "lead": 0.4},
            reverb=0.3,
            balance={"drums": 0.0, "bass": -3.0, "chords": -6.0, "pad": -12.0, "lead": -9.0},
        ),
        Style(
            name="corporate", label="Upbeat corporate",
            keywords=("corporate", "business", "presentation", "commercial", "advert", "advertising",
                      "promo", "promotional", "explainer", "motivational", "inspirational", "startup",
                      "tech", "product"),
            bpm_range=(100, 128), default_bpm=116, default_mode="major", default_mood="happy",
            # Driving piano eighths, strings underneath, a glockenspiel hook and claps.
            instruments={"drums": 0, "bass": 33, "chords": 0, "pad": 48, "lead": 9},
            grooves={
                "main": {"kick": "X.......X.x.....", "clap": "....X.......X...",
                         "hat": "x.x.x.x.x.x.x.x."},
                "peak": {"kick": "X...X...X...X...", "clap": "....X.......X...",
                         "hat": "xoxoxoxoxoxoxoxo"},
            },
            fill=("snare",),
            progressions={
                "major": (("I", "V", "vi", "IV"), ("I", "vi", "IV", "V"), ("I", "iii", "vi", "IV"),
                          ("I", "IV", "V", "IV")),
                "minor": (("i", "VI", "III", "VII"), ("i", "i", "VI", "VII"), ("i", "iv", "VI", "VII")),
            },
            bars_per_chord=1, chord_pattern="pulse8", bass_pattern="eighths", lead_rhythm="lyrical",
            spread="close", registers={"chords": (55, 76), "lead": (72, 91)},
            humanize_s=0.004, density=0.55, min_energy={"drums": 0.15, "lead": 0.45}, reverb=0.3,
            balance={"drums": 0.0, "bass": -10.0, "chords": -11.0, "pad": -18.0, "lead": -8.0},
        ),
        Style(
            name="piano", label="Solo piano",
            keywords=("piano", "solo piano", "piano solo", "felt piano", "neoclassical", "ballad",
                      "lullaby"),
            bpm_range=(56, 100), default_bpm=72, default_mode="major", default_mood="calm",
            # One piano: the left hand (bass role) breaks the chord, the right hand (lead) sings,
            # inner chords (chords role) only thicken the texture when the energy rises.
            instruments={"bass": 0, "chords": 0, "lead": 0},
            grooves={}, fill=(),
            progressions={
                "major": (("I", "V", "vi", "IV"), ("I", "vi", "IV", "V"), ("I", "IV", "vi", "V"),
                          ("I", "iii", "IV", "V"), ("I", "vi", "ii", "V")),
                "minor": (("i", "VI", "III", "VII"), ("i", "iv", "VII", "III"), ("i", "VI", "iv", "V"),
                          ("i", "III", "VII", "VI")),
            },
            bars_per_chord=1, chord_pattern="halves", bass_pattern="broken", lead_rhythm="lyrical",
            spread="close", registers={"bass": (36, 60), "chords": (57, 74), "lead": (65, 86)},
            humanize_s=0.012, density=0.5, min_energy={"chords": 0.55}, reverb=0.45,
            balance={"bass": -3.0, "chords": -7.0, "lead": 0.0},
        ),
    )
}

DEFAULT_STYLE = "cinematic"

# Instrument names people type -> GM program (0-based). Multi-word names are matched first.
GM_INSTRUMENTS: dict[str, int] = {
    # keys
    "piano": 0, "grand piano": 0, "acoustic piano": 0, "felt piano": 0, "bright piano": 1,
    "honky tonk": 3, "electric piano": 4, "rhodes": 4, "wurlitzer": 5, "harpsichord": 6,
    "clavinet": 7, "celesta": 8, "glockenspiel": 9, "glock": 9, "music box": 10, "vibraphone": 11,
    "vibes": 11, "marimba": 12, "xylophone": 13, "bells": 14, "tubular bells": 14, "chimes": 14,
    "dulcimer": 15, "organ": 16, "hammond": 16, "rock organ": 18, "church organ": 19,
    "pipe organ": 19, "accordion": 21, "harmonica": 22,
    # guitars
    "guitar": 25, "acoustic guitar": 25, "steel guitar": 25, "nylon guitar": 24,
    "classical guitar": 24, "ukulele": 24, "jazz guitar": 26, "electric guitar": 27,
    "clean guitar": 27, "overdriven guitar": 29, "distorted guitar": 30, "distortion guitar": 30,
    # basses
    "bass": 33, "bass guitar": 33, "electric bass": 33, "acoustic bass": 32, "upright bass": 32,
    "double bass": 32, "fretless bass": 35, "slap bass": 36, "synth bass": 38, "808": 38,
    "sub bass": 38,
    # strings
    "violin": 40, "viola": 41, "cello": 42, "contrabass": 43, "tremolo strings": 44,
    "pizzicato": 45, "pizzicato strings": 45, "harp": 46, "timpani": 47, "strings": 48,
    "string section": 48, "string ensemble": 48, "slow strings": 49, "synth strings": 50,
    # voices
    "choir": 52, "voices": 52, "vocals": 52, "voice": 53, "synth choir": 54,
    # brass
    "trumpet": 56, "trombone": 57, "tuba": 58, "muted trumpet": 59, "french horn": 60,
    "horn": 60, "horns": 60, "brass": 61, "brass section": 61, "synth brass": 62,
    # reeds and pipes
    "saxophone": 65, "sax": 65, "alto sax": 65, "tenor sax": 66, "soprano sax": 64,
    "baritone sax": 67, "oboe": 68, "english horn": 69, "bassoon": 70, "clarinet": 71,
    "piccolo": 72, "flute": 73, "recorder": 74, "pan flute": 75, "shakuhachi": 77, "whistle": 78,
    "ocarina": 79,
    # synths
    "synth": 81, "synth lead": 81, "lead synth": 81, "saw": 81, "square": 80, "chiptune": 80,
    "synth pad": 89, "pad": 89, "warm pad": 89, "poly synth": 90, "polysynth": 90, "halo pad": 94,
    "sweep pad": 95, "atmosphere": 99,
    # world
    "sitar": 104, "banjo": 105, "shamisen": 106, "koto": 107, "kalimba": 108, "bagpipe": 109,
    "bagpipes": 109, "fiddle": 110, "steel drums": 114, "steel drum": 114,
}


def instrument_program(name: str) -> int | None:
    """The GM program for an instrument name ("Cello", "strings", "pianos"), or None if unknown."""
    key = " ".join(name.lower().replace("-", " ").split())
    if key in GM_INSTRUMENTS:
        return GM_INSTRUMENTS[key]
    if key.endswith("s") and key[:-1] in GM_INSTRUMENTS:  # plural
        return GM_INSTRUMENTS[key[:-1]]
    return None
