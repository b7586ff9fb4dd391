"""The notebooks: committed clean and thin, parameters papermill can read, and every notebook
executed with papermill on tiny parameters (results table non-empty, one figure exported to PNG)."""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from musicvid_core.cli import main
from musicvid_core.domain.errors import BadInput, ExperimentError
from musicvid_core.lab import experiments, runs, tables
from musicvid_core.stages.compose.fonts import BUNDLED

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
NAMES = ["01_quickstart", "02_prompt_experiments", "03_mixing_experiments", "04_batch", "05_sound",
         "06_music_sources"]
PARAM_LINE = re.compile(r"^(?P<name>[a-z_]+): (?P<type>[a-z\[\], ]+) = (?P<value>.+?)  # (?P<help>\S.*)$")


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _code(cell) -> str:
    return "".join(cell["source"])


def test_the_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_stripped_of_outputs(path):
    nb = _load(path)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name} has outputs"
    assert nb["metadata"]["kernelspec"]["name"] == "musicvid"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_git_filter_leaves_committed_notebooks_unchanged(path):
    nbstripout = pytest.importorskip("nbstripout")
    nbformat = pytest.importorskip("nbformat")
    committed = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    stripped = nbstripout.strip_output(copy.deepcopy(committed), keep_output=False, keep_count=False, keep_id=True)
    assert stripped == committed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_with_typed_literal_values_and_help(path):
    cells = [c for c in _load(path)["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1
    names = []
    for line in _code(cells[0]).splitlines():
        m = PARAM_LINE.match(line)
        assert m, f"{path.name}: parameter line must be `name: type = literal  # help`: {line!r}"
        ast.literal_eval(m["value"])  # no computed values
        names.append(m["name"])
    assert "output_dir" in names
    declared = runs.notebook_parameters(path)  # what papermill --help-notebook shows
    assert list(declared) == names and all(p["help"] and p["type"] for p in declared.values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_other_cells_are_thin_calls_into_musicvid_core(path):
    for cell in _load(path)["cells"]:
        if cell["cell_type"] != "code" or "parameters" in cell["metadata"].get("tags", []):
            continue
        tree = ast.parse(_code(cell))
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef, ast.Lambda)), \
                f"{path.name}: define helpers in musicvid_core, not in a cell"
            if isinstance(node, ast.Import):
                pytest.fail(f"{path.name}: import from musicvid_core only ({ast.unparse(node)})")
            if isinstance(node, ast.ImportFrom):
                assert node.module and node.module.split(".")[0] == "musicvid_core", ast.unparse(node)
        assert len(_code(cell).splitlines()) <= 8, f"{path.name}: a cell this long belongs in the package"


def test_outputs_are_stripped_by_git_and_the_tools_are_in_the_notebooks_extra():
    attributes = (ROOT / ".gitattributes").read_text()
    assert re.search(r"^\*\.ipynb\s+filter=nbstripout\s*$", attributes, re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    extra = pyproject.split("\nnotebooks = [", 1)[1].split("\n]", 1)[0]  # the extra's list, one item a line
    for package in ("papermill", "ipykernel", "jupyterlab", "matplotlib", "nbstripout", "pandas", "pyarrow"):
        assert package in extra
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r'install -q -e "\.\[[^\]]*\bnotebooks\b', makefile)
    assert "nbstripout --install" in makefile and "experiments:" in makefile
    assert "ipykernel install" in makefile and "--name musicvid" in makefile


# --- running --------------------------------------------------------------------------------------
def test_find_notebook_by_name_number_or_path():
    assert runs.find_notebook("01").name == "01_quickstart.ipynb"
    assert runs.find_notebook("batch").name == "04_batch.ipynb"
    assert runs.find_notebook("03_mixing_experiments.ipynb").stem == "03_mixing_experiments"
    assert runs.find_notebook(NOTEBOOKS[1]) == NOTEBOOKS[1]
    with pytest.raises(BadInput, match="choose one of: 01_quickstart"):
        runs.find_notebook("nope")


def test_command_line_values_become_the_declared_types():
    declared = runs.notebook_parameters("03_mixing_experiments")
    got = runs.coerce_parameters({"seed": "3", "duck_db": "[6, 12.5]", "loudness": "web",
                                         "prompt": "1984 synth"}, declared)
    assert got == {"seed": 3, "duck_db": [6.0, 12.5], "loudness": ["web"], "prompt": "1984 synth"}
    for bad, message in [({"seed": "x"}, "must be int"), ({"duck_db": "[a]"}, "must be"),
                         ({"nope": "1"}, "unknown parameter 'nope'")]:
        with pytest.raises(BadInput, match=message):
            runs.coerce_parameters(bad, declared)


def test_mix_sweep_checks_its_grid_before_any_work(services, tmp_path):
    video = tmp_path / "missing.mp4"
    for grid, message in [({"volume": [1]}, "unknown mix parameter"), ({"duck_db": ["x"]}, "numbers from 0 to 60"),
                          ({"fade_out_s": [-1.0]}, "numbers from 0 to 60"), ({"loudness": ["loud"]}, "unknown loudness"),
                          ({"duck_db": [6.0]}, "no such video")]:
        with pytest.raises(BadInput, match=message):
            experiments.mix_sweep(services, video, "p", out_dir=tmp_path, grid=grid)


def test_cli_experiment_rejects_bad_parameters_before_running(settings, capsys):
    for argv in (["experiment", "01", "-p", "seed", "x"], ["experiment", "01", "-p", "seed"],
                 ["experiment", "01", "stray"], ["experiment", "nope"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err
    main_out = None
    with pytest.raises(SystemExit) as exc:
        main(["experiment", "02", "--list-params"])
    main_out = capsys.readouterr().out
    assert exc.value.code == 0 and "prompts: list[str] = " in main_out and "# prompts to compare" in main_out


# Tiny parameters: one short sample video, two runs or mixes at most per notebook.
TINY = {
    "01_quickstart": ({"prompt": "slow sad piano"}, "timeline.png"),
    "02_prompt_experiments": ({"prompts": '["upbeat 128 bpm house", "slow sad piano"]', "seeds": "[0]"}, "compare.png"),
    "03_mixing_experiments": ({"duck_db": "[6, 18]", "loudness": "[web]"}, "loudness.png"),
    "04_batch": ({"sample_count": "2"}, "summary.png"),
    # the bundled 6 MB bank only: MuseScore General costs ~5 s and 1 GB to load
    "05_sound": ({"soundfonts": f'["{BUNDLED}"]', "production": '["on", "off"]'}, "sound.png"),
    # a named library track: choosing one analyses all 28 the first time
    "06_music_sources": ({"library_track": "happy_acoustic_1"}, "timeline_track.png"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_with_papermill_and_writes_results_and_a_figure(name, settings, tmp_path, request):
    pytest.importorskip("papermill")
    params, figure = TINY[name]
    run = runs.run_notebook(name, params, root=tmp_path / "runs")
    assert run.dir.parent == tmp_path / "runs" and re.match(r"\d{8}-\d{6}-" + name, run.dir.name)
    assert run.notebook.is_file() and run.results.name == "results.csv" and run.rows >= 1
    table = tables.read_table(run.results)
    assert len(table) == run.rows and "status" in table
    png = run.dir / figure
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    executed = _load(run.notebook)
    images = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, "the executed notebook shows its figures inline"
    assert json.loads((run.dir / "parameters.json").read_text())["output_dir"] == str(run.dir)
    if name == "04_batch":  # the sample batch has one input that is not a video: recorded, not fatal
        assert sorted(table["status"]) == ["COMPLETED", "COMPLETED", "FAILED"]
        assert list(table.loc[table["status"] == "FAILED", "error_type"]) == ["UnsupportedMedia"]
    else:
        assert set(table["status"]) == {"COMPLETED"}
    if name == "02_prompt_experiments":
        assert list(table["prompt"]) == ["upbeat 128 bpm house", "slow sad piano"]
        assert set(table["style"]) == {"electronic", "piano"} and list(table["bpm"])[0] == 128
    if name == "03_mixing_experiments":
        assert list(table["param_duck_db"]) == [6.0, 18.0] and all(table["speech_music_lu"] >= 10)
    if name == "05_sound":  # one plan, production on and off, measured beside the references
        assert list(table["production"]) == ["on", "off"] and all(table["crest_db"] > 3)
        assert table["width"][0] > table["width"][1]  # the mix places the parts; the dry chain leaves them narrow
    if name == "06_music_sources":  # composed, edited from a generated track, edited from the library
        assert list(table["source"]) == ["procedural", "track", "library"]
        assert list(table["edit_length_error_samples"])[1:] == [0, 0]
        assert list(table["edit_track"])[2] == "happy_acoustic_1"
    # Keep a copy where a person can look at it: --basetemp=DIR puts them in DIR/figures.
    keep = Path(str(request.config._tmp_path_factory.getbasetemp())) / "figures"
    keep.mkdir(exist_ok=True)
    shutil.copyfile(png, keep / f"{name}.png")


@pytest.mark.slow
def test_a_failing_cell_is_one_clear_error_with_the_notebook_kept(settings, tmp_path):
    pytest.importorskip("papermill")
    with pytest.raises(ExperimentError, match=r"01_quickstart.ipynb failed in cell \d+: BadInput: no such video") as exc:
        runs.run_notebook("01", {"video": str(tmp_path / "missing.mp4")}, root=tmp_path)
    assert Path(exc.value.context["notebook"]).is_file()
