"""Mix settings per style, as data: what a mix engineer would set up for each genre (production.py
runs them).

Each stem (a composer role, or one group of the drum kit: kick, snare, hats, toms, cymbals, perc)
goes through a channel strip (:class:`Strip`): high-pass, optional low-pass, EQ bands, compressor,
a place in the stereo field (pan; width spreads a mono part with a delayed copy in the side
channel, which cancels in a mono fold-down), sends to the style's reverb and tempo delay, and
optionally the house sidechain pump. :class:`Mix` holds the strips, the reverb (a hall for
cinematic and orchestral, a small room for lo-fi), the delay, the pump, the drum-bus glue, the
lo-fi colour (tape drive, vinyl, a low-passed top) and where the master's tonal balance should sit
against the real recordings' median (``tone``, dB per region of musicvid_core.metrics.sound).

Levels are dB; thresholds dBFS on the rendered stems (level-matched presets: a reference note at
-20 dBFS RMS, so one threshold means the same with any SoundFont); times ms; sends linear 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["MIXES", "Mix", "Strip", "mix_for"]

Band = tuple[str, float, float, float]  # ("low" | "peak" | "high", Hz, gain dB, Q)
Comp = tuple[float, float, float, float]  # threshold dBFS, ratio, attack ms, release ms


@dataclass(frozen=True)
class Strip:
    pan: float = 0.0  # -1 left .. 1 right, constant power
    width: float = 0.0  # 0 as rendered .. 1: a delayed copy in the side; -1 .. 0: a stereo sample narrowed
    highpass: float = 0.0  # Hz; 0: none (the master high-passes at 30 Hz anyway)
    lowpass: float | None = None  # Hz
    eq: tuple[Band, ...] = ()
    comp: Comp | None = None
    reverb: float = 0.0  # send into the style's reverb
    delay: float = 0.0  # send into the tempo delay
    pump: bool = False  # ducked by the kick (Mix.pump_db)
    gain: float = 0.0  # fader, dB: the renderer matches presets to one level; a ride cymbal is not a kick


@dataclass(frozen=True)
class Mix:
    strips: dict[str, Strip]
    room: float = 0.5  # reverb room size 0..1 (Freeverb)
    damping: float = 0.5  # reverb damping 0..1 (more: darker tail)
    reverb_return: float = 0.3  # reverb return level, linear
    predelay_ms: float = 15.0
    reverb_width: float = 1.0  # stereo spread of the reverb's tail 0..1
    delay_beats: float = 0.75  # a dotted eighth
    delay_feedback: float = 0.3
    pump_db: float = 0.0  # sidechain ducking depth on the ``pump`` strips
    glue: Comp | None = (-20.0, 2.5, 10.0, 150.0)  # drum-bus compressor
    tape: float = 0.0  # 0..1 tape saturation drive
    vinyl_db: float | None = None  # vinyl hiss and crackle, dB under the mix
    top_hz: float | None = None  # master low-pass (a lo-fi record's dull top)
    tone: dict[str, float] = field(default_factory=dict)  # region -> dB from the references' median
    exciter_db: float | None = None  # harmonics made from the 3 kHz+ band, mixed in this far under the mix
    master: Comp = (-16.0, 2.0, 25.0, 200.0)  # master bus compressor after levelling to -20 LUFS
    crest_db: float = 13.0  # the master limiter holds sample peaks this far above the mix's RMS


_DRUMS = {
    "kick": Strip(eq=(("peak", 350, -3.0, 1.2), ("high", 4000, 1.5, 0.7)), comp=(-22, 4.0, 8, 90), reverb=0.02),
    "snare": Strip(pan=0.05, highpass=90, eq=(("high", 5000, 2.0, 0.7),), comp=(-24, 3.0, 4, 120), reverb=0.18),
    "hats": Strip(pan=0.35, highpass=300, reverb=0.06),
    "toms": Strip(width=0.7, highpass=60, comp=(-22, 3.0, 5, 150), reverb=0.15),
    "cymbals": Strip(pan=-0.2, width=0.6, highpass=300, reverb=0.1, gain=-5.0),
    "perc": Strip(pan=-0.35, highpass=200, reverb=0.12),
}
_MELODIC = {
    "bass": Strip(lowpass=7000, comp=(-26, 4.0, 8, 120)),
    "chords": Strip(pan=-0.3, width=0.5, highpass=110, eq=(("peak", 300, -2.0, 1.0),), comp=(-28, 2.0, 15, 150),
                    reverb=0.25),
    "pad": Strip(pan=0.2, width=0.9, highpass=160, eq=(("peak", 400, -2.0, 1.0),), reverb=0.45),
    "lead": Strip(pan=0.15, width=0.15, highpass=180, eq=(("peak", 3000, 1.5, 1.0),), comp=(-26, 2.5, 10, 120),
                  reverb=0.25, delay=0.12),
    "mix": Strip(),  # one stem from a renderer that cannot split (pyfluidsynth)
}
BASE = {**_DRUMS, **_MELODIC}


def _with(changes: dict[str, dict]) -> dict[str, Strip]:
    return {**BASE, **{name: replace(BASE[name], **c) for name, c in changes.items()}}


HALL = {"room": 0.92, "damping": 0.35, "predelay_ms": 30.0}
MIXES: dict[str, Mix] = {
    "cinematic": Mix(
        _with({"chords": {"pan": -0.2, "width": 0.8, "reverb": 0.4}, "pad": {"width": 0.9, "reverb": 0.5},
               "bass": {"width": 0.25, "reverb": 0.12}, "lead": {"pan": 0.1, "reverb": 0.4, "delay": 0.0},
               "snare": {"reverb": 0.35}, "toms": {"reverb": 0.35}, "kick": {"reverb": 0.1}}),
        reverb_return=0.45, tone={"low": 1.5}, crest_db=14.0, **HALL),
    "orchestral": Mix(
        _with({"chords": {"pan": -0.4, "width": 0.4, "reverb": 0.35}, "pad": {"width": 0.9, "reverb": 0.45},
               "bass": {"pan": 0.15, "width": 0.3, "reverb": 0.2}, "lead": {"pan": 0.25, "reverb": 0.35, "delay": 0.0},
               "kick": {"reverb": 0.2}, "cymbals": {"reverb": 0.3}}),
        reverb_return=0.4, glue=None, crest_db=14.5, **HALL),
    "electronic": Mix(
        _with({"bass": {"pump": True}, "chords": {"pump": True, "width": 0.8, "delay": 0.12}, "pad": {"pump": True},
               "lead": {"pan": 0.0, "width": 0.5, "delay": 0.22}, "kick": {"comp": (-20, 5.0, 5, 60)},
               "hats": {"pan": 0.3, "width": 0.3}}),
        room=0.6, damping=0.5, reverb_return=0.25, pump_db=7.0, tone={"low": 1.5}, crest_db=11.5),
    "lofi": Mix(
        _with({"chords": {"pan": -0.2, "width": 0.9, "lowpass": 6000}, "lead": {"pan": 0.3, "width": 0.4,
                                                                                 "lowpass": 7000, "delay": 0.18},
               "snare": {"highpass": 150, "reverb": 0.12}, "hats": {"lowpass": 7000, "pan": 0.25},
               "kick": {"comp": (-20, 4.0, 15, 100)}}),
        room=0.45, damping=0.7, reverb_return=0.3, delay_feedback=0.35, glue=(-22, 3.0, 20, 120), tape=0.6,
        vinyl_db=-32.0, top_hz=7500.0, tone={"presence": -2.0, "air": -5.0}, crest_db=12.5),
    "ambient": Mix(
        _with({"chords": {"width": 0.6, "reverb": 0.5, "delay": 0.15}, "pad": {"width": 0.7, "reverb": 0.6},
               "lead": {"width": 0.3, "reverb": 0.5, "delay": 0.35}, "bass": {"width": 0.3, "reverb": 0.2}}),
        room=0.95, damping=0.5, reverb_return=0.45, predelay_ms=40.0, reverb_width=0.6, delay_beats=1.5, delay_feedback=0.45,
        glue=None, crest_db=14.0),
    "rock": Mix(
        _with({"chords": {"pan": 0.0, "width": 1.0, "comp": (-26, 3.0, 10, 120), "reverb": 0.12},
               "lead": {"pan": 0.25, "width": 0.3, "reverb": 0.18, "delay": 0.1}, "snare": {"reverb": 0.22},
               "kick": {"comp": (-20, 4.0, 6, 80)}}),
        room=0.4, damping=0.5, reverb_return=0.2, glue=(-20, 3.0, 10, 120), master=(-16.0, 3.0, 20, 150),
        crest_db=12.0),
    "jazz": Mix(
        _with({"chords": {"pan": -0.3, "width": 0.6, "comp": None}, "lead": {"pan": 0.25, "width": 0.3, "delay": 0.0},
               "cymbals": {"pan": 0.35, "width": 0.4, "gain": -9.0, "eq": (("high", 6000, -2.0, 0.7),)},
               "hats": {"pan": -0.3}, "bass": {"comp": (-26, 2.5, 15, 150)}}),
        room=0.55, damping=0.55, reverb_return=0.25, glue=(-22, 2.0, 20, 200), crest_db=14.0),
    "acoustic": Mix(
        _with({"chords": {"pan": -0.2, "width": 0.7, "highpass": 90}, "lead": {"pan": 0.3, "delay": 0.0},
               "pad": {"width": 0.9}}),
        room=0.5, damping=0.5, reverb_return=0.25, glue=(-22, 2.0, 20, 200), crest_db=13.5),
    "corporate": Mix(
        _with({"chords": {"width": 0.5}, "pad": {"width": 0.9, "pump": True}, "lead": {"pan": 0.3, "delay": 0.2}}),
        room=0.5, damping=0.5, reverb_return=0.22, pump_db=2.0, crest_db=12.5),
    "piano": Mix(  # one piano: left hand left, right hand right, as the player hears it
        _with({"bass": {"pan": -0.3, "width": -0.5, "lowpass": None, "comp": None, "reverb": 0.3},
               "chords": {"pan": 0.0, "width": -0.5, "comp": None, "reverb": 0.3},
               "lead": {"pan": 0.3, "width": -0.5, "comp": None, "reverb": 0.3, "delay": 0.0}}),
        room=0.75, damping=0.45, reverb_return=0.3, predelay_ms=25.0, reverb_width=0.5, glue=None,
        tone={"presence": -3.0, "air": -3.0}, master=(-16.0, 1.5, 30, 250), crest_db=14.5, exciter_db=-18.0),
}


def mix_for(style: str) -> Mix:
    """The style's mix (a key of domain.styles.STYLES); an unknown style gets the plain BASE strips."""
    return MIXES.get(style) or Mix(dict(BASE))
