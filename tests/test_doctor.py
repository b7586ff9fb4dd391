"""`musicvid doctor`: one table of what this machine has, exit 0 only when the embedded default can run."""

import json
import os
import socket
import subprocess
import sys

import pytest

from musicvid_core import doctor
from musicvid_core.stages.compose import render

SECRET_KEY_ID, SECRET_KEY = "AKIADOCTORTEST7Q2X", "doctor/secret+never-printed"


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test: doctor looks for credentials offline only."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"doctor opened a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    for var in [v for v in os.environ if v.startswith("AWS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


def by_name(checks):
    return {c.name: c for c in checks}


def test_this_machine_can_run_the_embedded_default(settings, no_network, no_aws):
    checks = doctor.run_checks(settings)
    found = by_name(checks)
    assert doctor.healthy(checks), [c for c in checks if c.status == "fail"]
    assert {"ffmpeg", "SoundFont renderer", "SoundFont", "espeak-ng", "torch / GPU", "AWS", "store",
            "workflow definition", "media stack"} <= set(found)
    assert all(c.status in ("ok", "note", "missing") for c in checks)
    assert "ffmpeg version" in found["ffmpeg"].detail
    assert render.renderer() in found["SoundFont renderer"].detail
    assert str(render.find_soundfont(settings)) in found["SoundFont"].detail
    assert str(settings.store_root) in found["store"].detail and "GiB free" in found["store"].detail
    assert found["AWS"].status == "missing" and "us-east-1" in found["AWS"].detail
    if found["SoundFont"].status == "note":  # TimGM6mb or FluidR3: say how to get MuseScore General
        assert "apt install musescore-general-soundfont" in found["SoundFont"].fix
        assert "apt install fluid-soundfont-gm" in found["SoundFont"].fix  # what midirenderer (.sf2 only) can use
    else:
        assert "MuseScore" in found["SoundFont"].detail


def test_a_missing_ffmpeg_fails_with_its_fix(settings, monkeypatch):
    monkeypatch.setenv("MUSICVID_FFMPEG", "/nonexistent/ffmpeg")
    checks = doctor.run_checks()  # through Settings, as the command does
    ffmpeg = by_name(checks)["ffmpeg"]
    assert ffmpeg.status == "fail" and "/nonexistent/ffmpeg" in ffmpeg.detail and "MUSICVID_FFMPEG" in ffmpeg.fix
    assert not doctor.healthy(checks) and doctor.report(checks)["ok"] is False


def test_no_renderer_fails_and_names_the_pip_install(settings, monkeypatch):
    monkeypatch.setattr(render, "RENDERERS", ("musicvid_no_such_renderer",))
    checks = doctor.run_checks(settings)
    check = by_name(checks)["SoundFont renderer"]
    assert check.status == "fail" and "pip install midirenderer" in check.fix
    assert not doctor.healthy(checks)


def test_midirenderer_is_a_working_renderer_with_a_faster_one_suggested(settings, monkeypatch):
    pytest.importorskip("midirenderer")
    monkeypatch.setattr(render, "RENDERERS", ("midirenderer",))
    checks = doctor.run_checks(settings)
    check = by_name(checks)["SoundFont renderer"]
    assert check.status == "note" and "tinysoundfont" in check.fix and doctor.healthy(checks)


def test_a_broken_workflow_or_store_fails(settings, tmp_path, monkeypatch):
    bad = tmp_path / "workflow.asl.json"
    bad.write_text("{not json")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    checks = by_name(doctor.run_checks(settings.model_copy(update={"workflow": bad, "home": blocker / "home"})))
    assert checks["workflow definition"].status == "fail" and str(bad) in checks["workflow definition"].detail
    assert checks["store"].status == "fail" and "MUSICVID_HOME" in checks["store"].fix


def test_a_skipped_soundfont_setting_is_reported(settings, tmp_path):
    checks = by_name(doctor.run_checks(settings.model_copy(update={"soundfont": tmp_path / "gone.sf2"})))
    assert checks["SoundFont"].status == "note" and "gone.sf2 skipped" in checks["SoundFont"].detail


def test_aws_credentials_are_found_offline_and_never_printed(settings, monkeypatch, no_network, no_aws, capsys):
    pytest.importorskip("botocore")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SECRET_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    checks = doctor.run_checks(settings.model_copy(update={"region": "eu-west-3"}))
    aws = by_name(checks)["AWS"]
    assert aws.status == "ok" and "credentials present (env)" in aws.detail and "eu-west-3" in aws.detail
    from rich.console import Console

    Console(width=300).print(doctor.table(checks))
    shown = capsys.readouterr().out + json.dumps(doctor.report(checks))
    assert "AWS" in shown and SECRET_KEY_ID not in shown and SECRET_KEY not in shown


def test_a_profile_role_is_reported_without_being_assumed(settings, monkeypatch, no_network, no_aws, tmp_path):
    pytest.importorskip("botocore")
    config = tmp_path / "config"
    config.write_text("[profile work]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = base\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "work")
    aws = by_name(doctor.run_checks(settings))["AWS"]
    assert aws.status == "ok" and "assume-role (resolved when used)" in aws.detail
    monkeypatch.setenv("AWS_PROFILE", "nope")
    assert by_name(doctor.run_checks(settings))["AWS"].status == "note"  # a named profile that is not there


@pytest.mark.parametrize(("env", "code"), [({}, 0), ({"MUSICVID_FFMPEG": "/nonexistent"}, 1),
                                           ({"MUSICVID_TARGET_LUFS": "loud"}, 1)])
def test_the_command_exit_codes(tmp_path, env, code):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MUSICVID_", "AWS_"))}
    clean.update(MUSICVID_HOME=str(tmp_path / "home"), COLUMNS="200", **env)
    table = subprocess.run([sys.executable, "-m", "musicvid_core.cli", "doctor"], capture_output=True, text=True,
                           env=clean, timeout=120)
    assert table.returncode == code, table.stdout + table.stderr
    assert "Traceback" not in table.stderr and "SoundFont renderer" in table.stdout
    as_json = subprocess.run([sys.executable, "-m", "musicvid_core.cli", "doctor", "--json"], capture_output=True,
                             text=True, env=clean, timeout=120)
    result = json.loads(as_json.stdout)
    assert as_json.returncode == code and result["ok"] is (code == 0)
    failed = {c["name"] for c in result["checks"] if c["status"] == "fail"}
    assert failed == ({"ffmpeg"} if "MUSICVID_FFMPEG" in env else {"settings"} if env else set())
