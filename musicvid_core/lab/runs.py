"""Run folders and papermill: where a checkout's notebooks and runs live, and executing a notebook.

``musicvid experiment NOTEBOOK -p name value …`` (:func:`run_notebook`) takes a notebook (path or
short name) and text parameters, and gives a fresh ``data/runs/<timestamp>-<name>/`` holding the
executed notebook, its outputs and its results table (:mod:`musicvid_core.lab.tables`). papermill comes
with the ``[notebooks]`` extra and is imported on use. Errors: BadInput (unknown notebook or parameter),
ExperimentError (a cell failed, no results table), ConfigurationError (papermill missing).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicvid_core.domain.errors import BadInput, ConfigurationError, ExperimentError, MusicVidError
from musicvid_core.lab.tables import RESULTS_NAME, read_table
from musicvid_core.settings import Settings

__all__ = ["DEFAULT_KERNEL", "NAME_RE", "NotebookRun", "coerce_parameters", "find_notebook", "new_run_dir",
           "notebook_parameters", "notebooks_dir", "project_root", "run_notebook", "runs_root", "start"]

DEFAULT_KERNEL = "python3"  # the ipykernel of the interpreter running papermill (this venv)
NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")  # what a run folder or label may not contain


# ---------------------------------------------------------------------------------------------
# where things live
# ---------------------------------------------------------------------------------------------
def project_root(start: str | Path | None = None) -> Path:
    """The checkout this runs in: the nearest folder (from ``start``, default the current one, up)
    holding both ``pyproject.toml`` and ``notebooks/``; else the checkout this package was installed
    from in editable mode; else the current folder."""
    here = Path(start or Path.cwd()).resolve()
    package_checkout = Path(__file__).resolve().parents[2]  # musicvid_core/lab/runs.py -> the checkout
    for folder in (here, *here.parents, package_checkout):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return here


def runs_root() -> Path:
    """Where runs go: ``$MUSICVID_RUNS_DIR``, else ``data/runs`` of the project."""
    configured = Settings().runs_dir
    return Path(configured).expanduser().resolve() if configured else project_root() / "data" / "runs"


def new_run_dir(name: str, root: str | Path | None = None) -> Path:
    """A fresh ``<root>/<YYYYmmdd-HHMMSS>-<name>/`` (a numeric suffix when two start in one second)."""
    root = Path(root) if root else runs_root()
    stem = f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{NAME_RE.sub('_', name).strip('_') or 'run'}"
    for i in range(1000):
        path = root / (stem if i == 0 else f"{stem}-{i + 1}")
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise ExperimentError(f"cannot make a run folder under {root}")


def start(output_dir: str, name: str) -> Path:
    """The folder a notebook writes to: ``output_dir`` when set (papermill runs pass their run
    folder), else a fresh run folder named ``name`` (a notebook opened in Jupyter)."""
    if output_dir:
        path = Path(output_dir).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve()
    return new_run_dir(name)


# ---------------------------------------------------------------------------------------------
# running notebooks with papermill
# ---------------------------------------------------------------------------------------------
def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def find_notebook(name: str | Path) -> Path:
    """A notebook by path, or by name in ``notebooks/`` (``01_quickstart``, ``quickstart``,
    ``01``). BadInput naming the choices when nothing matches."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    folder = notebooks_dir()
    found = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    stem = path.name.removesuffix(".ipynb")
    for nb in found:
        parts = nb.stem.split("_", 1)
        if stem in (nb.stem, parts[0], parts[-1]):
            return nb
    choices = ", ".join(nb.stem for nb in found) or "none found"
    raise BadInput(f"no notebook {str(name)!r}; choose one of: {choices}")


def notebook_parameters(notebook: str | Path) -> dict[str, dict]:
    """The notebook's ``parameters`` cell: name -> {type, default, help}. ExperimentError when it
    has none (every musicvid notebook has exactly one)."""
    import papermill

    nb = find_notebook(notebook)
    tagged = [c for c in json.loads(nb.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ExperimentError(f"{nb.name} must have exactly one cell tagged 'parameters' (found {len(tagged)})")
    found = papermill.inspect_notebook(str(nb))
    return {name: {"type": p.get("inferred_type_name"), "default": p.get("default"), "help": p.get("help", "")}
            for name, p in found.items()}


def coerce_parameters(raw: Mapping[str, Any], declared: Mapping[str, dict]) -> dict[str, Any]:
    """Values given as text on the command line, converted to each parameter's declared type
    (int, float, bool, str, list[...]: YAML/JSON text, a lone value becomes a one-item list).
    BadInput for an unknown name or a value of the wrong type."""
    import yaml

    out = {}
    for name, value in raw.items():
        if name not in declared:
            raise BadInput(f"unknown parameter {name!r}; this notebook takes: {', '.join(declared)}")
        kind = (declared[name].get("type") or "str").replace(" ", "")
        if not isinstance(value, str) or kind == "str":
            out[name] = value
            continue
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            raise BadInput(f"parameter {name}: cannot read {value!r} as {kind}") from None
        out[name] = _check_type(name, kind, parsed, value)
    return out


def _check_type(name: str, kind: str, parsed: Any, text: str) -> Any:
    base = kind.split("[", 1)[0]
    if base == "bool":
        if isinstance(parsed, bool):
            return parsed
    elif base == "int":
        if isinstance(parsed, int) and not isinstance(parsed, bool):
            return parsed
    elif base == "float":
        if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            return float(parsed)
    elif base == "list":
        items = parsed if isinstance(parsed, list) else [parsed]
        inner = kind[5:-1] if kind.startswith("list[") else ""
        return [_check_type(name, inner, item, str(item)) if inner else item for item in items]
    elif base == "dict":
        if isinstance(parsed, dict):
            return parsed
    else:
        return parsed
    raise BadInput(f"parameter {name} must be {kind}, got {text!r}")


@dataclass
class NotebookRun:
    dir: Path  # data/runs/<timestamp>-<name>/
    notebook: Path  # the executed notebook in it
    results: Path  # its results table
    rows: int  # rows in the results table
    seconds: float  # wall time of the execution


def run_notebook(notebook: str | Path, parameters: Mapping[str, Any] | None = None, *, name: str | None = None,
                 root: str | Path | None = None, kernel: str = DEFAULT_KERNEL, start_timeout: int = 120,
                 log_output: bool = False) -> NotebookRun:
    """Execute ``notebook`` with papermill into a fresh run folder ``<root>/<timestamp>-<name>/``
    (root: :func:`runs_root`; name: the notebook's) with ``parameters`` (text values are converted to
    the declared types, see :func:`coerce_parameters`) plus ``output_dir`` = the run folder. The
    kernel runs in the project folder, so relative paths mean the same as on the command line.

    Returns where the executed notebook and its results table are. Raises BadInput for an unknown
    notebook or parameter, ExperimentError when a cell fails (with the cell's error; the partly
    executed notebook is kept in the run folder) or when no non-empty results table was written."""
    try:
        import papermill
    except ImportError:
        raise ConfigurationError("notebook runs need papermill: install the [notebooks] extra") from None
    nb = find_notebook(notebook)
    declared = notebook_parameters(nb)
    params = coerce_parameters(dict(parameters or {}), declared)
    if "output_dir" not in declared:
        raise ExperimentError(f"{nb.name} has no output_dir parameter to write its results to")
    run_dir = new_run_dir(name or nb.stem, root)
    params["output_dir"] = str(run_dir)
    (run_dir / "parameters.json").write_text(json.dumps(params, indent=1, default=str))
    executed = run_dir / nb.name
    t0 = time.monotonic()
    try:
        papermill.execute_notebook(str(nb), str(executed), parameters=params, kernel_name=kernel,
                                   cwd=str(project_root()), progress_bar=False, log_output=log_output,
                                   start_timeout=start_timeout)
    except papermill.PapermillExecutionError as exc:
        reason = " ".join(str(exc.evalue).split())[:300]
        raise ExperimentError(f"{nb.name} failed in cell {exc.exec_count}: {exc.ename}: {reason} "
                              f"(executed notebook: {executed})", notebook=str(executed)) from None
    except Exception as exc:  # kernel missing or died: papermill and jupyter_client raise many types
        if isinstance(exc, MusicVidError):
            raise
        raise ExperimentError(f"could not run {nb.name}: {type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:300]}", notebook=str(executed)) from None
    seconds = time.monotonic() - t0
    results = next((p for p in (run_dir / f"{RESULTS_NAME}.parquet", run_dir / f"{RESULTS_NAME}.csv")
                    if p.is_file()), None)
    if results is None:
        raise ExperimentError(f"{nb.name} ran but wrote no results table into {run_dir}", notebook=str(executed))
    rows = len(read_table(results))
    if rows == 0:
        raise ExperimentError(f"{nb.name} wrote an empty results table ({results})", notebook=str(executed))
    return NotebookRun(dir=run_dir, notebook=executed, results=results, rows=rows, seconds=seconds)
