import json
import os

import pytest
import torch

import nsad
from nsad.models.net import AnomalyNet, NetConfig
from nsad.models.runfile import (
    METADATA_NAME,
    MODEL_KINDS,
    WEIGHTS_NAME,
    RunFormatError,
    RunMetadata,
    load_run,
    read_metadata,
    save_run,
    write_atomic,
)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def make_metadata(net_config=None, **changes):
    values = dict(
        method="nsa-logistic",
        net=net_config or NetConfig(),
        preset="mvtec/bottle",
        preset_values={"n_max": 3, "h_bounds": [0.06, 0.8], "y0": 24.0},
        resize_hw=(256, 256),
        crop_hw=(224, 224),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        score_rule="mean",
        training={"epochs": 320, "seed": 0, "batch_size": 64},
    )
    values.update(changes)
    return RunMetadata(**values)


@pytest.fixture(scope="module")
def trained_net():
    torch.manual_seed(0)
    net = AnomalyNet().train()
    with torch.no_grad():  # move the batch-norm statistics away from their initial values
        net(torch.randn(2, 3, 64, 64) * 2 + 1)
    return net.eval()


@pytest.fixture()
def run(tmp_path, trained_net):
    return save_run(tmp_path / "run", trained_net, make_metadata())


def test_round_trip_gives_identical_outputs(run, trained_net):
    loaded = load_run(run)
    assert not loaded.net.training
    assert loaded.metadata == make_metadata()
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(loaded.net(images), trained_net(images))
    assert sorted(os.listdir(run)) == [WEIGHTS_NAME, METADATA_NAME]  # no temporary files left


def test_round_trip_from_a_channels_last_network(tmp_path):
    torch.manual_seed(1)
    config = NetConfig(in_channels=1, label_kind="continuous", skip_connections=True)
    net = AnomalyNet(config).to(memory_format=torch.channels_last).eval()
    save_run(tmp_path, net, make_metadata(config, mean=(0.0,), std=(1.0,), crop_hw=None, threshold=0.5))
    loaded = load_run(tmp_path)
    assert loaded.metadata.label_kind == "continuous" and loaded.metadata.in_channels == 1
    assert loaded.metadata.threshold == 0.5 and loaded.metadata.crop_hw is None
    saved = net.state_dict()
    assert all(torch.equal(tensor, saved[name]) for name, tensor in loaded.net.state_dict().items())
    images = torch.randn(1, 1, 64, 64)
    with torch.no_grad():  # the loaded network is NCHW: other kernels, same numbers up to rounding
        torch.testing.assert_close(loaded.net(images), net(images), atol=1e-5, rtol=1e-4)


def test_metadata_file_is_plain_json_with_versions(run):
    data = json.loads((run / METADATA_NAME).read_text())
    assert data["format"] == "nsad-run" and data["format_version"] == 2 and data["model"] == "anomaly-net"
    assert data["nsad_version"] == nsad.__version__ and data["torch_version"] == torch.__version__
    assert data["net"]["label_kind"] == "bounded" and data["crop_hw"] == [224, 224]
    assert data["mean"] == list(IMAGENET_MEAN) and data["score_rule"] == "mean"
    assert RunMetadata.from_dict(data) == make_metadata()


def test_write_atomic_replaces_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "file.bin"
    write_atomic(path, b"old")
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and os.listdir(path.parent) == ["file.bin"]


def test_saving_over_a_run_replaces_it(run, trained_net):
    save_run(run, trained_net, make_metadata(threshold=0.25))
    assert load_run(run).metadata.threshold == 0.25


# ---- errors when loading ----


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run folder '.*nowhere' does not exist or is not a folder"):
        load_run(tmp_path / "nowhere")


def test_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "image.png").write_bytes(b"")
    with pytest.raises(
        FileNotFoundError,
        match=r"is not an nsad run: it has no run.json \(an nsad run holds run.json "
        r"and model.safetensors, written by 'nsad train'\)",
    ):
        load_run(tmp_path)


def test_json_of_something_else(tmp_path):
    (tmp_path / METADATA_NAME).write_text(json.dumps({"name": "my experiment"}))
    with pytest.raises(
        RunFormatError, match=r"run.json': not an nsad run: 'format' is None, expected 'nsad-run'"
    ):
        load_run(tmp_path)


def test_corrupt_metadata(run):
    (run / METADATA_NAME).write_text('{"format": "nsad-run", ')
    with pytest.raises(RunFormatError, match=r"run.json' is not valid JSON: "):
        load_run(run)


def test_unknown_format_version(run):
    data = json.loads((run / METADATA_NAME).read_text())
    data["format_version"] = 99
    (run / METADATA_NAME).write_text(json.dumps(data))
    with pytest.raises(
        RunFormatError,
        match=r"run.json': format_version 99 is not supported by nsad .*; it reads "
        r"versions \[1, 2, 3\] \(a newer nsad may read it\)",
    ):
        load_run(run)


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda d: d.update(colour="blue"),
            r"unknown keys \['colour'\] in run metadata; accepted keys are \[",
        ),
        (lambda d: d.pop("mean"), r"run metadata lacks required keys \['mean'\]"),
        (lambda d: d["net"].update(depth=18), r"unknown network config keys \['depth'\]"),
        (
            lambda d: d.update(std=[0.2, 0.2]),
            r"std must hold 3 finite numbers \(one per input channel\), got \[0.2, 0.2\]",
        ),
        (lambda d: d.update(std=[0.2, 0.0, 0.2]), r"std must be positive"),
        (
            lambda d: d.update(crop_hw=[224]),
            r"crop_hw must be \(height, width\) with positive ints or None, got \[224\]",
        ),
        (lambda d: d.update(threshold="high"), r"threshold must be a finite number or None, got 'high'"),
        (lambda d: d.update(method=""), r"method must be a non-empty string, got ''"),
        (lambda d: d["net"].update(label_kind="binary"), r"unknown label_kind 'binary'"),
    ],
    ids=[
        "unknown-key",
        "missing-key",
        "unknown-net-key",
        "std-length",
        "std-zero",
        "crop",
        "threshold",
        "method",
        "label-kind",
    ],
)
def test_invalid_metadata_names_the_file(run, edit, match):
    data = json.loads((run / METADATA_NAME).read_text())
    edit(data)
    (run / METADATA_NAME).write_text(json.dumps(data))
    with pytest.raises(RunFormatError, match=r"run.json': " + match):
        read_metadata(run)


def test_missing_weights(run):
    (run / WEIGHTS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=r"has run.json but no weights file '.*model.safetensors'"):
        load_run(run)


@pytest.mark.parametrize(
    "damage", [lambda b: b[: len(b) // 2], lambda b: b"not safetensors at all"], ids=["truncated", "garbage"]
)
def test_corrupt_weights(run, damage):
    path = run / WEIGHTS_NAME
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(RunFormatError, match=r"model.safetensors' is not a readable safetensors file: "):
        load_run(run)


def test_weights_that_do_not_match_the_metadata(run):
    data = json.loads((run / METADATA_NAME).read_text())
    data["net"]["skip_connections"] = True
    (run / METADATA_NAME).write_text(json.dumps(data))
    with pytest.raises(
        RunFormatError,
        match=r"model.safetensors' does not match the network described in run.json "
        r".*missing tensors: skips.0.weight, skips.1.weight",
    ):
        load_run(run)


def test_weights_with_other_shapes(run):
    data = json.loads((run / METADATA_NAME).read_text())
    data["net"]["in_channels"], data["mean"], data["std"] = 1, [0.5], [0.25]
    (run / METADATA_NAME).write_text(json.dumps(data))
    with pytest.raises(
        RunFormatError,
        match=r"shape mismatches: stem.0.weight: file \(64, 3, 7, 7\) vs network "
        r"\(64, 1, 7, 7\)",
    ):
        load_run(run)


def test_save_rejects_metadata_of_another_network(tmp_path, trained_net):
    with pytest.raises(ValueError, match=r"metadata.net .* does not describe the network to save"):
        save_run(tmp_path, trained_net, make_metadata(NetConfig(label_kind="continuous")))
    assert not (tmp_path / METADATA_NAME).exists()


def test_metadata_to_dict_from_dict_round_trip_and_replace():
    metadata = make_metadata(threshold=1)
    assert metadata.threshold == 1.0 and isinstance(metadata.threshold, float)
    assert RunMetadata.from_dict(json.loads(json.dumps(metadata.to_dict()))) == metadata
    assert metadata.replace(score_rule="max").score_rule == "max"
    with pytest.raises(ValueError, match=r"mean must hold 3 finite numbers"):
        metadata.replace(mean=(0.5, float("nan"), 0.5))
    with pytest.raises(ValueError, match=r"format_version 4 is not supported"):
        metadata.replace(format_version=4)
    with pytest.raises(ValueError, match=r"a geometry \(the whole-image protocol\) needs format_version 3"):
        metadata.replace(geometry={"protocol": "whole"})
    whole = metadata.replace(format_version=3, geometry={"protocol": "whole", "frame_hw": [96, 192]})
    assert RunMetadata.from_dict(json.loads(json.dumps(whole.to_dict()))) == whole
    assert "geometry" not in metadata.to_dict()  # the paper's protocol is written as version 2, as before


def test_version_1_files_are_read_as_anomaly_net_runs(run, trained_net):
    data = json.loads((run / METADATA_NAME).read_text())
    del data["model"], data["model_options"]
    data["format_version"] = 1
    (run / METADATA_NAME).write_text(json.dumps(data))
    loaded = load_run(run)
    assert loaded.metadata.model == "anomaly-net" and loaded.metadata.format_version == 1
    assert loaded.metadata.to_dict() == data  # re-written as version 1, without the version-2 keys
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.net(images), trained_net(images))
    data["model"] = "anomaly-net"
    (run / METADATA_NAME).write_text(json.dumps(data))
    with pytest.raises(RunFormatError, match=r"unknown keys \['model'\] in run metadata"):
        load_run(run)
    with pytest.raises(ValueError, match=r"format_version 1 holds anomaly-net runs"):
        loaded.metadata.replace(model_options={"sigma_px": 4.0})


def test_normalization_is_read_from_mean_and_std():
    assert make_metadata().normalization == "imagenet"
    assert make_metadata(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)).normalization == "unit"
    gray = make_metadata(net_config=NetConfig(in_channels=1), mean=(0.0,), std=(1.0,))
    assert gray.normalization == "unit"
    # run.json decides, not the preset's record of it
    assert make_metadata(preset_values={"normalization": "unit"}).normalization == "imagenet"
    assert RunMetadata.from_dict(json.loads(json.dumps(make_metadata().to_dict()))).normalization == "imagenet"
    with pytest.raises(ValueError, match=r"mean \[0.5, 0.5, 0.5\] and std \[0.5, 0.5, 0.5\] are neither"):
        _ = make_metadata(mean=(0.5,) * 3, std=(0.5,) * 3).normalization
    with pytest.raises(ValueError, match="neither ImageNet's statistics"):
        _ = make_metadata(net_config=NetConfig(in_channels=1), mean=(0.485,), std=(0.229,)).normalization


def test_a_loaded_run_names_run_json_when_its_normalisation_is_unknown(tmp_path, trained_net):
    folder = save_run(tmp_path / "odd", trained_net, make_metadata(mean=(0.5,) * 3, std=(0.5,) * 3))
    with pytest.raises(RunFormatError, match=r"odd/run.json'.*are neither ImageNet's statistics"):
        _ = load_run(folder).normalization


def test_the_model_packages_keep_their_old_import_paths():
    import nsad.models.cutpaste as cutpaste
    import nsad.models.density as density
    import nsad.models.ssae as ssae
    from nsad.models.cutpaste import density as cutpaste_density
    from nsad.models.cutpaste import module as cutpaste_module
    from nsad.models.cutpaste import net as cutpaste_net
    from nsad.models.ssae import heatmap, loss, module, net

    assert density.GaussianDensity is cutpaste_density.GaussianDensity is cutpaste.GaussianDensity
    assert cutpaste.CutPasteNet is cutpaste_net.CutPasteNet
    assert cutpaste.CutPasteModule is cutpaste_module.CutPasteModule
    assert (ssae.SSAENet, ssae.ssae_loss, ssae.reconstruction_anomaly_map, ssae.SSAEModule) == (
        net.SSAENet, loss.ssae_loss, heatmap.reconstruction_anomaly_map, module.SSAEModule)
    assert MODEL_KINDS["cutpaste"] == (cutpaste_net.CutPasteConfig, cutpaste_net.CutPasteNet)
    assert MODEL_KINDS["ssae"] == (net.SSAEConfig, net.SSAENet)
