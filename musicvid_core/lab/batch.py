"""Batch runs: a folder of videos, or a manifest (CSV or JSON) of videos and prompts, scored one by
one through the job pipeline into one output folder with one results table and a summary figure.

A failing input never stops the batch: its row records the error type, the stage and the one-line
reason (a missing file, a file that is not a video, a bad option, a job that failed), and the batch
goes on. Progress is a rich progress bar (terminal, or Jupyter with ipywidgets) plus one line per
finished input.

Manifest columns (CSV header, or keys of the JSON objects; JSON may be a list or ``{"items": [...]}``):
``video`` (required; relative paths are relative to the manifest's folder), ``prompt`` (required
unless a default prompt is given), and optionally ``seed``, ``label``, ``loudness``, ``target_lufs``,
``true_peak_dbtp``, ``source_music``, ``music`` (a music file, relative to the manifest's folder
when relative, edited to the video instead of composed; or ``library`` for a library track, or
``library:NAME`` for that one; with it ``prompt`` may be empty). Other columns are carried into the
results table unchanged.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicvid_core.domain.errors import BadInput, MusicVidError
from musicvid_core.services import Services
from musicvid_core.workflow.submit import VIDEO_EXTS

OPTION_COLUMNS = ("loudness", "target_lufs", "true_peak_dbtp", "source_music")
KNOWN_COLUMNS = ("video", "prompt", "seed", "label", "music", *OPTION_COLUMNS)
LIBRARY = "library"  # the music column's value for a library track (library:NAME for that one)
RECORDING_PROMPT = "music that fits the picture"  # scoring.RECORDING_PROMPT (lab may not import scoring)
_LABEL_RE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class BatchItem:
    video: str  # path as given (resolved against the manifest's folder when relative)
    prompt: str
    seed: int = 0
    label: str = ""
    options: dict = field(default_factory=dict)  # job options (loudness, target_lufs, ...), unvalidated
    extra: dict = field(default_factory=dict)  # other manifest columns, copied into the results row
    music: str = ""  # a music file (resolved like video), "library" or "library:NAME"; "": composed


@dataclass
class BatchResult:
    out_dir: Path
    rows: list[dict]
    table: Path  # results.csv (or .parquet)
    figure: Path | None  # summary.png
    seconds: float

    @property
    def failed(self) -> int:
        return sum(1 for r in self.rows if r.get("status") != "COMPLETED")

    @property
    def completed(self) -> int:
        return len(self.rows) - self.failed


# ---------------------------------------------------------------------------------------------
# reading the inputs
# ---------------------------------------------------------------------------------------------
def load_manifest(source: str | Path, *, prompt: str = "", seed: int = 0) -> list[BatchItem]:
    """The batch's inputs from ``source``: a folder (every video file in it, sorted by name, each
    with ``prompt`` and ``seed``), a ``.csv`` or a ``.json`` manifest (``prompt``/``seed`` fill rows
    that lack them). Raises BadInput for a missing source, an unreadable or empty manifest, a row
    without a video, or no prompt. A row's video is NOT checked here: a missing file fails its own
    row when the batch runs, not the whole batch."""
    source = Path(source).expanduser()
    if source.is_dir():
        videos = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTS)
        if not videos:
            raise BadInput(f"no video files in {source} (looked for {', '.join(sorted(VIDEO_EXTS))})")
        records = [{"video": str(p)} for p in videos]
    elif source.is_file():
        records = _read_records(source)
    else:
        raise BadInput(f"no such folder or manifest: {source}")
    base = source if source.is_dir() else source.parent
    items = []
    for n, rec in enumerate(records, 1):
        where = f"{source.name} item {n}"
        if not isinstance(rec, dict):
            raise BadInput(f"{where}: expected an object with video and prompt")
        rec = {str(k).strip(): v for k, v in rec.items() if k is not None}
        video = str(rec.get("video") or "").strip()
        if not video:
            raise BadInput(f"{where}: no video")
        music = str(rec.get("music") or "").strip()
        text = str(rec.get("prompt") or "").strip() or prompt or (RECORDING_PROMPT if music else "")
        if not text:
            raise BadInput(f"{where}: no prompt (give the row one, or a default prompt)")
        raw_seed = rec.get("seed")
        try:
            item_seed = int(raw_seed) if raw_seed not in (None, "") else int(seed)
        except (TypeError, ValueError):
            raise BadInput(f"{where}: seed must be a whole number, got {raw_seed!r}") from None
        path = Path(video).expanduser()
        if not path.is_absolute():
            path = base / path
        if music and music.split(":", 1)[0].lower() != LIBRARY:
            track = Path(music).expanduser()
            music = str(track if track.is_absolute() else base / track)
        options = {k: rec[k] for k in OPTION_COLUMNS if rec.get(k) not in (None, "")}
        extra = {k: v for k, v in rec.items() if k not in KNOWN_COLUMNS}
        label = str(rec.get("label") or "").strip() or f"{n:03d}-{path.stem}"
        items.append(BatchItem(video=str(path), prompt=text, seed=item_seed,
                               label=_LABEL_RE.sub("_", label).strip("_") or f"{n:03d}",
                               options=options, extra=extra, music=music))
    labels = [i.label for i in items]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise BadInput(f"{source.name}: labels must be unique, repeated: {', '.join(dupes)}")
    return items


def inputs(source: str | Path, *, prompt: str = "", seed: int = 0, sample_count: int = 3,
           sample_folder: str | Path | None = None) -> list[BatchItem]:
    """:func:`load_manifest` of ``source``; with an empty ``source``, a generated sample batch
    (``sample_count`` short clips plus one input that is not a video) in ``data/samples/batch``."""
    if not str(source).strip():
        from musicvid_core.lab.runs import project_root

        folder = Path(sample_folder) if sample_folder else project_root() / "data" / "samples" / "batch"
        source = make_sample_batch(folder, sample_count, broken=1)
    return load_manifest(source, prompt=prompt, seed=seed)


def _read_records(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the manifest {path.name}: {exc.__class__.__name__}") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path.name} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if isinstance(data, dict) and isinstance(data.get("items"), list):
            data = data["items"]
        if not isinstance(data, list):
            raise BadInput(f"{path.name}: expected a list of items or {{\"items\": [...]}}")
        records = data
    elif suffix in (".csv", ".tsv"):
        try:
            reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
            if not reader.fieldnames or "video" not in [f.strip() for f in reader.fieldnames]:
                raise BadInput(f"{path.name}: the header must name a 'video' column")
            records = [r for r in reader if any((v or "").strip() for v in r.values() if isinstance(v, str))]
        except csv.Error as exc:
            raise BadInput(f"{path.name} is not valid CSV: {exc}") from None
    else:
        raise BadInput(f"a manifest is a .csv, .tsv or .json file, or a folder of videos; got {path.name}")
    if not records:
        raise BadInput(f"the manifest {path.name} lists no videos")
    return records


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------
class _Display:
    """A rich progress bar (input i of n, completed and failed so far, elapsed, ETA) and one
    printed line per finished input. Silent when ``enabled`` is false."""

    def __init__(self, total: int, enabled: bool, console=None) -> None:
        self.enabled = enabled
        self.ok = self.failed = 0
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console or Console(stderr=True, highlight=False)
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(),
                                 TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=self.console, transient=False)
        self.task = self.progress.add_task("batch", total=total, ok=0, failed=0)

    def __enter__(self):
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.stop()

    def begin(self, item: BatchItem) -> None:
        if self.enabled:
            self.progress.update(self.task, description=f"{item.label} ({Path(item.video).name})")

    def done(self, n: int, total: int, row: dict) -> None:
        good = row.get("status") == "COMPLETED"
        self.ok += good
        self.failed += not good
        if not self.enabled:
            return
        secs = row.get("elapsed_s") or 0.0
        if good:
            line = (f"[green]ok[/]     {n}/{total} {row['label']}  {secs:.1f} s  {row.get('style')} "
                    f"{row.get('bpm')} bpm {row.get('key')}  {row.get('integrated_lufs')} LUFS")
        else:
            line = (f"[red]failed[/] {n}/{total} {row['label']}  {row.get('error_type')} at "
                    f"{row.get('stage')}: {row.get('error')}")
        self.progress.console.print(line, markup=True, soft_wrap=True)
        self.progress.update(self.task, advance=1, ok=self.ok, failed=self.failed)


def run_item(svc: Services, item: BatchItem, out_dir: Path, *, measure_music: bool = True) -> dict:
    """Score one input; any failure becomes the row's error (type, stage, reason), never an exception."""
    from musicvid_core.lab import experiments
    from musicvid_core.stages.mix.presets import job_options

    t0 = time.monotonic()
    stage = "submit"
    try:
        options = job_options(item.options)
        stage = "run"  # upload, submit and the pipeline; a failed job's row carries its own stage
        if item.music:
            options = {**options, "music": _music_option(svc, item.music)}
        scored = experiments.score(svc, item.video, item.prompt, seed=item.seed, out_dir=out_dir / "outputs",
                                   label=item.label, options=options, keep_stems=False,
                                   measure_music=measure_music)
        row = scored.row
    except MusicVidError as exc:
        row = experiments.failure_row(label=item.label, video=item.video, prompt=item.prompt, seed=item.seed,
                                      error=exc, stage=stage, elapsed_s=time.monotonic() - t0)
    except Exception as exc:  # an unexpected bug in one input must not lose the other inputs' results
        row = experiments.failure_row(label=item.label, video=item.video, prompt=item.prompt, seed=item.seed,
                                      error=exc, stage=stage, elapsed_s=time.monotonic() - t0)
    row.update(item.extra)
    return row


def _music_option(svc: Services, music: str) -> dict:
    """The ``music`` job option of a manifest's music column (a file is checked and uploaded)."""
    from musicvid_core.stages.compose.track.audio import load_track
    from musicvid_core.workflow.submit import track_option

    kind, _, name = music.partition(":")
    if kind.lower() == LIBRARY:
        return {"kind": "library", "track": name.strip() or None}
    load_track(music, 8000, channels=1)  # missing, not audio, silent or too short: this row's BadInput
    return track_option(svc, music, svc.settings.user)


def run_batch(svc: Services, items: Sequence[BatchItem], out_dir: str | Path, *, fmt: str = "csv",
              progress: bool = True, console=None, figure: bool = True, measure_music: bool = True,
              on_row: Callable[[dict], None] | None = None) -> BatchResult:
    """Score every item in order into ``out_dir`` (``outputs/<label>/output.EXT``), then write the
    results table (``results.csv``, and ``results.parquet`` with ``fmt="parquet"``) and, with
    ``figure``, the summary figure ``summary.png``. The table is rewritten after every input, so an
    interrupted batch keeps the rows it finished. ``measure_music`` false skips the music-fit
    columns (beat tracking and key estimation: about 40 % of a batch of short clips). Failures are
    rows, not exceptions; BadInput only for an empty batch or an unknown format."""
    from musicvid_core.lab import tables
    if not items:
        raise BadInput("the batch is empty")
    if fmt not in ("csv", "parquet"):
        raise BadInput(f"results format must be csv or parquet, not {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    rows: list[dict] = []
    with _Display(len(items), progress, console) as display:
        for n, item in enumerate(items, 1):
            display.begin(item)
            row = run_item(svc, item, out_dir, measure_music=measure_music)
            rows.append(row)
            tables.write_table(rows, out_dir)  # CSV as we go: a crash keeps finished rows
            display.done(n, len(items), row)
            if on_row is not None:
                on_row(row)
    table = tables.write_table(rows, out_dir, fmt=fmt)
    fig_path = None
    if figure:
        from musicvid_core.lab import viz
        fig = viz.batch_summary(rows, title=f"batch of {len(rows)}: {out_dir.name}")
        fig_path = viz.save(fig, out_dir / "summary.png")
        _close(fig)
    return BatchResult(out_dir=out_dir, rows=rows, table=table, figure=fig_path, seconds=time.monotonic() - t0)


def _close(fig: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def make_sample_batch(folder: str | Path, count: int = 4, *, broken: int = 1, prompts: Sequence[str] = (),
                      seconds: float = 6.0) -> Path:
    """Generate ``count`` short sample videos (distinct scenes, speech or tone) plus ``broken``
    inputs that are not videos, and a ``manifest.csv`` listing them all with prompts. Returns the
    manifest's path. For demonstrations and tests: the broken inputs' rows must fail with a reason."""
    from musicvid_core.lab.samples import make_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prompts = list(prompts) or ["upbeat 128 bpm house", "slow sad piano", "epic trailer build",
                                "warm acoustic folk", "lo-fi hip-hop, chill", "cinematic, tense"]
    audio = ("speech", "tone", "none", "music")
    rows = []
    for i in range(count):
        name = f"clip{i + 1:02d}.mp4"
        if not (folder / name).is_file():
            scenes = max(2, 2 + i % 3)
            make_video(folder / name, [seconds / scenes] * scenes, size=(320, 180), fps=25,
                       audio=audio[i % len(audio)])
        rows.append({"video": name, "prompt": prompts[i % len(prompts)], "seed": i})
    for j in range(broken):
        name = f"broken{j + 1:02d}.mp4"
        (folder / name).write_bytes(b"this is not a video, it is a text file named like one\n" * 20)
        rows.insert(min(len(rows), 1 + 2 * j), {"video": name, "prompt": "anything", "seed": 0})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["video", "prompt", "seed"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
