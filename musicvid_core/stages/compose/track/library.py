"""The music library: the bundled tracks of the MIT-licensed ``immich-memories-music`` package (the
``[library]`` extra: 28 ACE-Step clips of ~30 s in five mood folders) plus any folders of the
user's own (``MUSICVID_LIBRARY``, read by Settings and handed in here).

A track's *tags* are the words of its folder and file name ("energetic", "electronic", ...);
a folder named after a mood gives the mood. The index is built once: every file's analysis is
cached by the SHA-256 of its bytes (analysis.analyse_file) and ``index.json`` in the cache folder
remembers each path's size, modification time and hash, so an unchanged file is neither re-hashed
nor re-analysed; a changed one is analysed again.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from musicvid_core.domain.errors import BadInput, ConfigurationError
from musicvid_core.stages.compose.track.analysis import ANALYSIS_VERSION, TrackAnalysis, analyse_file
from musicvid_core.stages.compose.track.audio import AUDIO_EXTENSIONS, file_sha256

BUNDLED_PACKAGE = "immich_memories_music"
MOODS = ("calm", "energetic", "happy", "nostalgic", "tender")
INDEX_FILE = "index.json"


@dataclass(frozen=True)
class LibraryTrack:
    path: Path
    mood: str | None  # from the folder name when it is one of MOODS
    tags: tuple[str, ...]  # lower-case words of the folder and file name
    bundled: bool


@dataclass(frozen=True)
class IndexedTrack:
    track: LibraryTrack
    analysis: TrackAnalysis

    @property
    def name(self) -> str:
        return self.track.path.stem


def bundled_dir() -> Path | None:
    """The bundled tracks' folder, or None when the ``[library]`` extra is not installed."""
    try:
        import immich_memories_music
    except ImportError:
        return None
    folder = Path(immich_memories_music.tracks_dir())
    return folder if folder.is_dir() else None


def list_tracks(folders: list[str | os.PathLike] = (), *, bundled: bool = True) -> list[LibraryTrack]:
    """Every audio file (by extension) under ``folders`` and, with ``bundled``, the bundled ones,
    sorted by path. Raises BadInput for a folder that does not exist, ConfigurationError when no
    track is found at all."""
    roots: list[tuple[Path, bool]] = []
    if bundled and bundled_dir() is not None:
        roots.append((bundled_dir(), True))
    for folder in folders:
        p = Path(folder).expanduser()
        if not p.is_dir():
            raise BadInput(f"music library folder not found: {p}")
        roots.append((p, False))
    out = []
    for root, is_bundled in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
                words = re.findall(r"[a-z]+", f"{path.parent.name} {path.stem}".lower())
                mood = path.parent.name.lower() if path.parent.name.lower() in MOODS else None
                out.append(LibraryTrack(path=path, mood=mood, tags=tuple(dict.fromkeys(words)), bundled=is_bundled))
    if not out:
        raise ConfigurationError("no music library: install the [library] extra (immich-memories-music) "
                                 "or set MUSICVID_LIBRARY to a folder of tracks")
    return out


def build_index(tracks: list[LibraryTrack], cache_dir: str | os.PathLike) -> list[IndexedTrack]:
    """Each track with its analysis (see the module docstring). A track that cannot be analysed (not
    audio, silent, too short) is left out of the index, not fatal. Raises ConfigurationError when
    none is left."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    known = _read_index(cache / INDEX_FILE)
    seen: dict[str, dict] = {}
    out = []
    for t in tracks:
        st = t.path.stat()
        key = str(t.path.resolve())
        entry = known.get(key)
        if not entry or entry.get("size") != st.st_size or entry.get("mtime_ns") != st.st_mtime_ns:
            entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(t.path)}
        seen[key] = entry
        cached = cache / f"{entry['sha256']}.json"
        try:
            analysis = (TrackAnalysis.model_validate_json(cached.read_text()) if _valid(cached)
                        else analyse_file(t.path, cache_dir=cache))
        except BadInput:
            continue
        out.append(IndexedTrack(track=t, analysis=analysis))
    _write_index(cache / INDEX_FILE, {**known, **seen})
    if not out:
        raise ConfigurationError("no usable track in the music library")
    return out


def _valid(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("version") == ANALYSIS_VERSION
    except (OSError, ValueError):
        return False


def _read_index(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_index(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def ship_analyses(out: Path | None = None) -> int:
    """Analyse every bundled track and write the shipped analyses (track/shipped.py) to ``out``
    (default: the package's own file); returns how many were written. Raises ConfigurationError
    when the ``[library]`` extra is not installed."""
    import gzip

    from musicvid_core.stages.compose.track import shipped
    from musicvid_core.stages.compose.track.analysis import dump

    out = Path(out) if out is not None else shipped.SHIPPED
    tracks = [t for t in list_tracks([]) if t.bundled]
    if not tracks:
        raise ConfigurationError("the bundled library is not installed (pip install 'musicvid[library]')")
    analyses = {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in tracks:
            a = analyse_file(t.path, cache_dir=tmp, shipped=False)  # measured now, never copied
            analyses[a.sha256] = dump(a)
    body = json.dumps({"version": ANALYSIS_VERSION, "analyses": analyses}, sort_keys=True,
                      separators=(",", ":")).encode()
    fd, part = tempfile.mkstemp(dir=out.parent, suffix=".part")
    with os.fdopen(fd, "wb") as fh:
        fh.write(gzip.compress(body, compresslevel=9, mtime=0))  # mtime 0: the same bytes every build
    os.chmod(part, 0o644)  # package data: readable by whoever installs it (mkstemp makes it 0600)
    os.replace(part, out)
    shipped._records.cache_clear()
    return len(analyses)
