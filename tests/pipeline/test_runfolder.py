"""The run folder's life: made in one rename, undone completely, resumed only as the same run, rank 0 only."""

import json
import os

import pytest

from nsad.pipeline._runfolder import (
    check_out_folder,
    check_resume,
    create_run_folder,
    is_rank_zero,
    option_name,
    wait_for_run_folder,
    write_config,
)

SETTINGS = {"method": "nsa-logistic", "image_size": 80, "seed": 0, "options": {}, "data_folder": "/d",
            "train_images": 14, "holdout_images": 2, "devices": "auto", "epochs": 2, "out": "x", "workers": 0}


def test_created_whole_and_discarded_completely(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    made = create_run_folder(out, SETTINGS)
    assert json.loads((out / "config.json").read_text()) == SETTINGS
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "config.json", "run"]  # no staging left
    (out / "checkpoints").mkdir()
    made.discard()
    assert list(tmp_path.iterdir()) == []  # the parents made for it go too


def test_an_empty_folder_of_the_user_stays(tmp_path):
    (tmp_path / "run").mkdir()
    create_run_folder(tmp_path / "run", SETTINGS).discard()
    assert (tmp_path / "run").is_dir() and list((tmp_path / "run").iterdir()) == []


def test_out_folder_checks(tmp_path):
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    check_out_folder(tmp_path / "run", False, checkpoint)  # new: fine
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        check_out_folder(tmp_path / "run", True, checkpoint)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        check_out_folder(tmp_path / "file", False, checkpoint)
    with pytest.raises(NotADirectoryError, match="file is a file"):
        check_out_folder(tmp_path / "file" / "run", False, checkpoint)
    write_config(tmp_path / "run", SETTINGS)
    with pytest.raises(FileExistsError, match="stopped before its first step"):
        check_out_folder(tmp_path / "run", True, checkpoint)
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    with pytest.raises(FileExistsError, match="not empty; choose a new --out or pass --resume"):
        check_out_folder(tmp_path / "run", False, checkpoint)
    check_out_folder(tmp_path / "run", True, checkpoint)


def test_resume_allows_only_how_the_run_is_carried_out(tmp_path):
    write_config(tmp_path, SETTINGS)
    check_resume(tmp_path, {**SETTINGS, "devices": 2, "epochs": 5, "workers": 3, "out": "elsewhere/x"})
    with pytest.raises(ValueError, match=r"--method was 'nsa-logistic', now 'fpi'; --image-size was 80, now 96\)"):
        check_resume(tmp_path, {**SETTINGS, "method": "fpi", "image_size": 96})
    with pytest.raises(ValueError, match=r"--data was '/d', now '/e'"):
        check_resume(tmp_path, {**SETTINGS, "data_folder": "/e"})
    with pytest.raises(ValueError, match=r"--option was \{\}, now \{'stride_px': 4\}"):
        check_resume(tmp_path, {**SETTINGS, "options": {"stride_px": 4}})
    check_resume(tmp_path, {**SETTINGS, "variant": "paper"})  # a setting newer than the run, at its old value
    with pytest.raises(ValueError, match="--variant was 'paper', now 'authors'"):
        check_resume(tmp_path, {**SETTINGS, "variant": "authors"})
    check_resume(tmp_path, {**SETTINGS, "synth_note": None})  # a future setting at its default


def test_resume_compares_the_presets_values_not_only_its_name(tmp_path):
    values = {"kind": "texture", "standardize_input": False, "h_bounds": [0.1, 0.8]}
    write_config(tmp_path, {**SETTINGS, "preset": "estimated/parts", "preset_values": values})
    check_resume(tmp_path, {**SETTINGS, "preset": "estimated/parts", "preset_values": dict(values)})
    changed = {**values, "standardize_input": True}
    with pytest.raises(ValueError, match=r"the preset's values: standardize_input was False, now True\)"):
        check_resume(tmp_path, {**SETTINGS, "preset": "estimated/parts", "preset_values": changed})
    write_config(tmp_path, {**SETTINGS, "preset": "estimated/parts"})  # written before the values were recorded
    check_resume(tmp_path, {**SETTINGS, "preset": "estimated/parts", "preset_values": changed})


def test_messages_name_the_flags_the_config_declares():
    assert option_name("synth_device") == "--synth-on-device" and option_name("progress") == "--no-progress"
    assert option_name("options") == "--option" and option_name("image_size") == "--image-size"
    assert option_name("holdout_images") == "--holdout (held-out images)"


def test_resume_needs_the_runs_settings(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        check_resume(tmp_path, SETTINGS)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        check_resume(tmp_path, SETTINGS)


@pytest.mark.parametrize("variables, zero", [({}, True), ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
                                             ({"LOCAL_RANK": "1"}, False), ({"NODE_RANK": "1"}, False),
                                             ({"RANK": "3"}, False), ({"SLURM_NTASKS": "2", "SLURM_PROCID": "1"},
                                                                      False)])
def test_rank_zero_from_the_launchers_variables(monkeypatch, variables, zero):
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert is_rank_zero() is zero


def test_other_ranks_wait_for_rank_zero(tmp_path):
    with pytest.raises(TimeoutError, match="rank 0 did not create the run folder"):
        wait_for_run_folder(tmp_path / "run", seconds=0.3)
    write_config(tmp_path / "run", SETTINGS)
    wait_for_run_folder(tmp_path / "run", seconds=0.3)
    assert os.listdir(tmp_path / "run") == ["config.json"]
