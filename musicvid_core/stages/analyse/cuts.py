"""Scene changes, frame by frame: where each new shot starts, exact to the frame (issue 17).

Three detectors see the small BGR frames of the one analysis decode (features.py), and their
candidates are settled together:

1. PySceneDetect's AdaptiveDetector (HSV content score >= 15 and >= 3x the average of the two
   frames either side), its algorithm run here frame by frame (_Adaptive: the same scores and cuts,
   tests/test_analysis_features.py compares them with the library's; the library's per-frame
   objects were a third of the analysis of a long input, and its import 25 MB and 0.17 s); a
   detected change is kept only if the picture's coarse layout or colour distribution changed (an
   encoder keyframe "pop" in noisy texture changes neither).
2. Jumps: a 16x9 colour thumbnail (grain averages out) that differs from the previous frame's by
   JUMP_MIN and JUMP_RATIO x the median of the frames around it. It finds the hard cuts between
   busy, noisy shots where every frame's HSV score is high and none stands out (measured: three
   of five such cuts missed by (1) alone).
3. Gradual changes (fades through black, dissolves): the picture WIDE_SPAN frames before against
   the one WIDE_SPAN after (each the median thumbnail of WIDE_ENDS frames, so a flash does not
   count), at its peak and WIDE_RATIO x the same measure around it: the change is the peak's frame
   (a dissolve's middle). Fades through black: a run of dark frames (BLACK_LUMA) between two
   pictures that differ (WIDE_MIN, each brightness-normalised, taken 2 x WIDE_SPAN frames off the
   run so a fade's dim frames do not count) is a change at the run's darkest frame (its last, if
   several: the new shot rises from there); a wide peak next to dark frames is left to this test.
   Only where no hard cut is near.

Settling: a change after which the picture before it comes back within FLASH_FRAMES is a flash
inside a shot, not a cut. Of changes closer than the minimum scene length, those within SAME_FRAMES
of each other are one change seen by two detectors: the earliest frame is the cut (no detector's
lateness shows); farther apart, the bigger jump from the frame before stays (a gap in a variable-frame-rate
clip's timestamps jumps too, but less than the cut next to it). Figures per kind of
change: docs/analysis.md ("Cuts").
"""

from __future__ import annotations

from array import array
from collections import deque

import cv2
import numpy as np

# PySceneDetect AdaptiveDetector settings (its defaults, with the minimum scene in seconds so it
# means the same at any frame rate).
MIN_SCENE_S = 0.5
ADAPTIVE_THRESHOLD = 3.0
MIN_CONTENT_VAL = 15.0
ADAPTIVE_WINDOW = 2  # frames either side whose average score a frame's is compared with
# A detected cut is dropped when neither the picture's coarse layout (a 16x9 grey thumbnail, mean
# abs difference in 0..255) nor its colour distribution (8x8x8 BGR histogram correlation) changed:
# that is an encoder keyframe "pop" in noisy, heavily compressed texture (thumbnail ~2, correlation
# ~1.0), while cuts between shots measured 24+ and 0.55 or less on the sample footage.
POP_MAX_THUMB_DIFF = 4.0
POP_MIN_HIST_CORREL = 0.98
# Jumps (see the module docstring); the frame after a jump is left out of its baseline, since a
# one-frame flash cut jumps twice.
JUMP_MIN = 8.0
JUMP_RATIO = 3.0
JUMP_CONTEXT = 5  # frames each side whose median is the baseline
# A flash inside one shot (a camera flash, a white frame) is not a cut: when a frame within
# FLASH_FRAMES after the change looks like one within FLASH_FRAMES before it again, the picture
# came back and the change is dropped. "Looks like": closer than the shot's own movement over
# FLASH_FRAMES frames (its median jump before the change, at least JUMP_MIN / 2) and than half
# the change's jump. Measured (16x9 thumbnails): a white flash in a moving test pattern comes back
# within 8.0 (the pattern moves 2.5 a frame); shots around a flash cut stay 23.6 apart.
FLASH_FRAMES = 4
# Gradual changes: thumbnails WIDE_SPAN frames apart (0.23 s at 30 fps), compared with the same
# measure WIDE_SPAN..3 x WIDE_SPAN frames away on both sides.
WIDE_SPAN = 7
WIDE_ENDS = 5  # frames whose median thumbnail stands for each end
WIDE_MIN = 12.0  # a dissolve between two busy textures of like brightness peaked at 19
WIDE_RATIO = 3.0
BLACK_LUMA = 24.0  # 0..255: a thumbnail this dark on average is a fade's black
# ... and at most this fraction of the pictures' brightness either side: measured, the dark ground of
# lavfi's `life` pattern (luma ~26) dims to ~22 as its cells die, which is no fade (0.85 of it).
FADE_DEPTH = 0.5
SAME_FRAMES = 2
_THUMB = (16, 9)


class CutDetector:
    """Feed every analysis frame (``add``); ``frames()`` gives the first frame of each new shot."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.count = 0
        self.scores = array("d")  # the adaptive detector's content score per frame (0 for the first)
        self._adaptive = _Adaptive(fps)
        # The adaptive detector reports a cut a few frames late; keep enough frames to look back at it.
        self._recent: deque[tuple[int, np.ndarray]] = deque(maxlen=ADAPTIVE_WINDOW + 2)
        self._jumps = array("d")  # thumbnail difference to the previous frame
        self._wide = array("d")  # thumbnail WIDE_SPAN before against WIDE_SPAN after (0 near the ends)
        self._luma = array("d")  # mean of each thumbnail, 0..255
        self._ends: deque[tuple[int, np.ndarray]] = deque(maxlen=2 * WIDE_SPAN + 2)
        self._thumbs: deque[tuple[int, np.ndarray]] = deque(maxlen=self.delay + 2 * WIDE_SPAN + WIDE_ENDS + 3)
        self._hard: dict[int, float] = {}  # candidate hard cut -> its thumbnail jump
        self._gradual: set[int] = set()
        self._faded: set[int] = set()  # changes through black
        self._dark: tuple[int, np.ndarray | None] | None = None  # (first dark frame, the picture before)
        self._kept: list[int] = []

    @property
    def delay(self) -> int:
        """Frames after a change before it is settled (the widest look-ahead, the gradual one's)."""
        return 4 * WIDE_SPAN + WIDE_ENDS + FLASH_FRAMES + 1

    def add(self, frame: np.ndarray) -> None:
        """One BGR frame (the analysis size), in display order."""
        n = self.count
        self._recent.append((n, frame))
        thumb = cv2.resize(frame, _THUMB, interpolation=cv2.INTER_AREA).astype(np.int16)
        self._jumps.append(_distance(thumb, self._thumbs[-1][1]) if self._thumbs else 0.0)
        self._thumbs.append((n, thumb))
        self._luma.append(float(thumb.mean()))
        self._wide.append(0.0)
        thumbs = dict(self._thumbs)
        if n >= WIDE_ENDS - 1:  # the median picture of the last WIDE_ENDS frames, kept for the wide measure
            self._ends.append((n, _median([thumbs[k] for k in range(n - WIDE_ENDS + 1, n + 1)])))
        span = 2 * WIDE_SPAN + WIDE_ENDS - 1  # frames from the first of one end to the last of the other
        if n >= span:
            ends = dict(self._ends)
            self._wide[n - span // 2] = _distance(ends[n - span + WIDE_ENDS - 1], ends[n])
        index = self._adaptive.add(n, frame)
        if index is not None:
            recent = dict(self._recent)
            if index - 1 not in recent or _picture_changed(recent[index - 1], recent[index]):
                self._hard[index] = self._jumps[index]
        self.scores.append(self._adaptive.score)  # the frame's content score: its cut's strength
        self.count += 1
        self._watch_dark(n, thumbs)
        self._look(n - JUMP_CONTEXT - 1, n - 4 * WIDE_SPAN - WIDE_ENDS // 2)
        self._settle(n - self.delay, thumbs)

    def frames(self) -> list[int]:
        """The first frame of every new shot seen so far (all of them once every frame was added)."""
        last = self.count - 1
        for index in range(max(1, last - JUMP_CONTEXT - 1), last + 1):
            self._look(index, None)
        for index in range(max(1, last - 4 * WIDE_SPAN - WIDE_ENDS // 2 + 1), last + 1):
            self._look(None, index)
        self._settle(last, dict(self._thumbs))
        return list(self._kept)

    def _look(self, jump_at: int | None, wide_at: int | None) -> None:
        """Test frame ``jump_at`` for a jump and ``wide_at`` for a gradual change, when their
        context has been seen (near the end: as much of it as there is)."""
        if jump_at is not None and jump_at > 0 and self._stands_out(jump_at):
            self._hard[jump_at] = self._jumps[jump_at]
        if wide_at is not None and wide_at >= WIDE_SPAN:
            wide = np.frombuffer(self._wide, dtype=np.float64)
            value = wide[wide_at]
            peak = wide[max(0, wide_at - WIDE_SPAN):wide_at + WIDE_SPAN + 1]
            around = np.concatenate([wide[max(WIDE_SPAN, wide_at - 3 * WIDE_SPAN):max(WIDE_SPAN, wide_at - WIDE_SPAN)],
                                     wide[wide_at + WIDE_SPAN + 1:wide_at + 3 * WIDE_SPAN + 1]])
            around = around[around > 0]
            baseline = _mid(around)
            luma = np.frombuffer(self._luma, dtype=np.float64)
            dim = luma[max(0, wide_at - WIDE_SPAN - WIDE_ENDS):wide_at + WIDE_SPAN + WIDE_ENDS + 1].min()
            if (value >= WIDE_MIN and value >= peak.max() and value >= WIDE_RATIO * (baseline + 1.0)
                    and dim > BLACK_LUMA):  # next to black: a fade's, judged by _watch_dark
                self._gradual.add(wide_at)

    def _stands_out(self, index: int) -> bool:
        """Whether frame ``index``'s thumbnail jump is a hard cut's: JUMP_MIN and JUMP_RATIO x the
        median jump around it (a fade or a dissolve raises every frame's jump alike)."""
        jumps = np.frombuffer(self._jumps, dtype=np.float64)
        around = np.concatenate([jumps[max(1, index - JUMP_CONTEXT):index],
                                 jumps[index + 2:index + 2 + JUMP_CONTEXT]])
        baseline = _mid(around)
        return bool(jumps[index] >= JUMP_MIN and jumps[index] >= JUMP_RATIO * (baseline + 1.0))

    def _watch_dark(self, n: int, thumbs: dict[int, np.ndarray]) -> None:
        """Follow runs of dark frames: note the picture before one starts; once WIDE_SPAN +
        WIDE_ENDS frames after it ended are seen, a different picture there makes it a fade."""
        away = 2 * WIDE_SPAN
        if self._dark is None:
            if self._luma[n] <= BLACK_LUMA:
                self._dark = (n, self._median(thumbs, n - away - WIDE_ENDS, n - away))
            return
        start, before = self._dark
        lit = next((k for k in range(start, n + 1) if self._luma[k] > BLACK_LUMA), None)
        if lit is None or n < lit - 1 + away + WIDE_ENDS:
            return
        self._dark = None
        end = lit - 1  # the run's last dark frame
        after = self._median(thumbs, end + away + 1, end + away + WIDE_ENDS + 1)
        if before is not None and after is not None and _distance(_level(before), _level(after)) >= WIDE_MIN:
            luma = np.frombuffer(self._luma, dtype=np.float64)[start:end + 1]
            # A fade goes down to black from both pictures; a dark shot that only dims a little
            # (a sparse pattern on a dark ground, night footage) is not one (FADE_DEPTH).
            if luma.min() <= FADE_DEPTH * min(float(before.mean()), float(after.mean())):
                self._faded.add(start + int(np.flatnonzero(luma <= luma.min() + 2.0)[-1]))

    @staticmethod
    def _median(thumbs: dict[int, np.ndarray], lo: int, hi: int) -> np.ndarray | None:
        frames = [thumbs[k] for k in range(max(0, lo), hi) if k in thumbs]
        return _median(frames) if frames else None

    def _settle(self, upto: int, thumbs: dict[int, np.ndarray]) -> None:
        """Decide the candidates at or before frame ``upto`` (module docstring)."""
        min_gap = MIN_SCENE_S * self.fps
        changes = {i for i in self._faded | self._gradual if i <= upto}
        self._faded -= changes
        self._gradual -= changes
        for index in sorted(changes):
            near = [i for i in self._hard if abs(i - index) <= WIDE_SPAN]
            if any(self._stands_out(i) for i in near):
                continue  # a hard cut is there: that frame is the change
            for i in near:  # the adaptive detector's guess inside a fade: the gradual frame is the change
                del self._hard[i]
            self._hard[index] = -1.0  # gradual: no flash test
        for index in sorted(i for i in self._hard if i <= upto):
            jump = self._hard.pop(index)
            if jump >= 0 and self._comes_back(index, thumbs):
                continue  # a flash, not a new shot
            if self._kept and index - self._kept[-1] < min_gap:
                if index - self._kept[-1] > SAME_FRAMES and self._jumps[index] > self._jumps[self._kept[-1]]:
                    self._kept[-1] = index
                continue
            self._kept.append(index)

    def _comes_back(self, index: int, thumbs: dict[int, np.ndarray]) -> bool:
        """Whether the picture before the change at ``index`` is seen again just after it."""
        jumps = np.frombuffer(self._jumps, dtype=np.float64)
        moving = jumps[max(1, index - JUMP_CONTEXT):index]
        own = FLASH_FRAMES * _mid(moving)
        near = min(0.5 * jumps[index], max(JUMP_MIN / 2, own))
        before = [thumbs[k] for k in range(index - FLASH_FRAMES - 1, index) if k in thumbs]
        after = [thumbs[k] for k in range(index, index + FLASH_FRAMES + 1) if k in thumbs]
        return any(_distance(a, b) < near for b in before for a in after)


class _Adaptive:
    """PySceneDetect 0.7's AdaptiveDetector(adaptive_threshold=ADAPTIVE_THRESHOLD,
    min_scene_len=MIN_SCENE_S, min_content_val=MIN_CONTENT_VAL), default weights (hue, saturation,
    value 1, edges 0) and window, frame by frame: the same arithmetic in the same order, so the same
    scores bit for bit and the same cuts (tests compare them with the library's). Written out
    because the library makes a FrameTimecode (a Fraction) per frame and compares them, ~85 us a
    frame of Python against ~20 here, and its import brings moviepy and PIL (25 MB, 0.17 s)."""

    def __init__(self, fps: float) -> None:
        # The library's minimum scene: round(seconds x its Fraction of the rate), in frames.
        self.min_frames = round(MIN_SCENE_S * fps)
        self.score = 0.0  # the last frame's content score
        self._last: np.ndarray | None = None
        self._buffer: deque[tuple[int, float]] = deque(maxlen=2 * ADAPTIVE_WINDOW + 1)
        self._last_cut: int | None = None

    def add(self, n: int, frame: np.ndarray) -> int | None:
        """Frame ``n`` (BGR); the frame of a cut found ADAPTIVE_WINDOW frames back, if any."""
        hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
        if self._last is None:
            score = 0.0
        else:
            # Each channel's mean |difference|: an exact integer sum over the pixel count, as the
            # library's int32 numpy sum; then its weighted mean, summed in its order.
            sums = cv2.sumElems(cv2.absdiff(hsv, self._last))
            pixels = float(hsv.shape[0] * hsv.shape[1])
            score = sum(c * w for c, w in zip((sums[0] / pixels, sums[1] / pixels, sums[2] / pixels, 0.0),
                                              (1.0, 1.0, 1.0, 0.0))) / 3.0
        self._last = hsv
        self.score = score
        if self._last_cut is None:
            self._last_cut = n
        self._buffer.append((n, score))
        if len(self._buffer) < self._buffer.maxlen:
            return None
        target, target_score = self._buffer[ADAPTIVE_WINDOW]
        average = sum(s for i, (_n, s) in enumerate(self._buffer) if i != ADAPTIVE_WINDOW) / (2.0 * ADAPTIVE_WINDOW)
        ratio = 0.0
        if abs(average) >= 0.00001:
            ratio = min(target_score / average, 255.0)
        elif target_score >= MIN_CONTENT_VAL:
            ratio = 255.0
        if ratio >= ADAPTIVE_THRESHOLD and target_score >= MIN_CONTENT_VAL and target - self._last_cut >= self.min_frames:
            self._last_cut = target
            return target
        return None


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two int16 thumbnails: np.mean's value (an exact integer sum over
    the size), without its dispatch (a third of the time, at every frame)."""
    return float(np.abs(a - b).sum()) / a.size


def _median(frames: list[np.ndarray]) -> np.ndarray:
    """Element-wise median (the upper one for an even count) of a few thumbnails: a sort, cheaper
    than np.median's general path at this size."""
    return np.sort(np.stack(frames), axis=0)[len(frames) // 2]


def _mid(values: np.ndarray) -> float:
    """Median of a short 1-D array (0 when empty)."""
    return float(np.sort(values)[len(values) // 2]) if len(values) else 0.0


def _level(thumb: np.ndarray) -> np.ndarray:
    """A thumbnail scaled to a mean of 128: two moments of a fade compare by picture, not brightness."""
    return thumb * (128.0 / (float(thumb.mean()) + 1.0))


def _picture_changed(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether two BGR frames differ in coarse layout or colour distribution (see POP_*)."""
    thumbs = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), _THUMB, interpolation=cv2.INTER_AREA)
              for f in (before, after)]
    if cv2.mean(cv2.absdiff(*thumbs))[0] >= POP_MAX_THUMB_DIFF:
        return True
    hists = [cv2.normalize(cv2.calcHist([f], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3), None).flatten()
             for f in (before, after)]
    return cv2.compareHist(*hists, cv2.HISTCMP_CORREL) < POP_MIN_HIST_CORREL
