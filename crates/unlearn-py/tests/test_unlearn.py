"""Tests of the `unlearn` Python package (run by .ci/run after the Rust tests).

- train -> forget -> evaluate from Python reproduce the `unlearn` binary's metrics for the same
  seed (the binary is run from the test: UNLEARN_BIN, else CARGO_TARGET_DIR/release/unlearn);
- bad input raises unlearn.UnlearnError with the library's one-line message, and the
  interpreter carries on;
- a safetensors file written here with numpy in PyTorch's key names and layout imports as the
  native model and evaluates to the same accuracy, which a numpy forward pass written as PyTorch
  computes it confirms;
- model stores, bench configs and the method registry from Python.
"""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import unlearn

ROOT = pathlib.Path(__file__).resolve().parents[3]
SEED = 3


def unlearn_bin():
    explicit = os.environ.get("UNLEARN_BIN")
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = pathlib.Path(explicit) if explicit else target / "release" / "unlearn"
    # Not a skip: the comparison with the CLI is what this suite is for.
    assert path.is_file(), f"the unlearn binary is missing at {path} (set UNLEARN_BIN)"
    return str(path)


def cli(*args):
    result = subprocess.run([unlearn_bin(), *args], capture_output=True, text=True)
    return result


def cli_json(*args):
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def embedded():
    return unlearn.Data.load("embedded")


@pytest.fixture(scope="module")
def experiment(embedded):
    return unlearn.Experiment(embedded, model="mlp:32", epochs=1, seed=SEED, quiet=True)


def test_train_forget_evaluate_reproduce_the_cli(tmp_path, experiment):
    model = tmp_path / "m.safetensors"
    cli_json("--quiet", "--json", "--seed", str(SEED), "train", "--data", "embedded",
             "--model", "mlp:32", "--epochs", "1", "--out", str(model))
    for method, params in [("finetune", ["--param", "epochs=1"]), ("retrain", [])]:
        cli_json("--quiet", "--json", "--seed", str(SEED), "forget", "--model", str(model),
                 "--method", method, *params, "--out", str(tmp_path / f"{method}.safetensors"))
    expected = cli_json("--json", "--seed", str(SEED), "eval",
                        "--model", str(tmp_path / "finetune.safetensors"),
                        "--reference", str(tmp_path / "retrain.safetensors"))

    original = experiment.train()
    assert original.hash == json.loads((tmp_path / "m.json").read_text())["model_hash"]
    forgot = experiment.forget(original, "finetune", epochs=1)
    reference = experiment.forget(original, "retrain")
    assert forgot.hash == json.loads((tmp_path / "finetune.json").read_text())["model_hash"]
    assert reference.hash == json.loads((tmp_path / "retrain.json").read_text())["model_hash"]
    metrics = experiment.evaluate(forgot, reference=reference)
    assert metrics == expected
    assert 0 < metrics["headline"]["test_accuracy"] <= 100
    assert metrics["reference"]["parameter_distance"] > 0

    # The split is the CLI's, and the models load in both directions.
    split = json.loads((tmp_path / "m.split.json").read_text())
    assert experiment.split["forget"].tolist() == split["forget"]
    saved = tmp_path / "py.safetensors"
    forgot.save(saved)
    again = unlearn.Model.load(saved)
    assert again.hash == forgot.hash
    assert again.metadata["method"] == "finetune"
    experiment.save_split(tmp_path / "py.split.json")
    from_cli = cli_json("--json", "--seed", str(SEED), "eval", "--model", str(saved),
                        "--reference", str(tmp_path / "retrain.safetensors"))
    assert from_cli == expected


def test_bad_input_raises_the_library_message(tmp_path, embedded):
    # The same message as the CLI's for the same mistake.
    result = cli("train", "--data", "embedded", "--model", "resnet",
                 "--out", str(tmp_path / "x.safetensors"))
    assert result.returncode != 0
    cli_message = result.stderr.strip().removeprefix("error: ")
    with pytest.raises(unlearn.UnlearnError) as error:
        unlearn.Experiment(embedded, model="resnet")
    assert str(error.value) == cli_message
    assert "\n" not in str(error.value)

    experiment = unlearn.Experiment(embedded, model="mlp:8", epochs=1, quiet=True)
    with pytest.raises(unlearn.UnlearnError, match="unknown method 'forget-it-all'"):
        experiment.forget(experiment.train(), "forget-it-all")
    with pytest.raises(unlearn.UnlearnError, match="absent.safetensors"):
        unlearn.Model.load(tmp_path / "absent.safetensors")
    with pytest.raises(unlearn.UnlearnError, match="random:200%"):
        unlearn.Experiment(embedded, forget="random:200%")
    with pytest.raises(unlearn.UnlearnError, match="unknown data source|data"):
        unlearn.Data.load("parquet:/nowhere")
    x = np.zeros((4, 3), dtype=np.float32)
    x[1, 2] = np.nan
    with pytest.raises(unlearn.UnlearnError, match="non-finite feature"):
        unlearn.Data.from_numpy(x, [0, 1, 0, 1], x[:2] * 0, [0, 1])
    with pytest.raises(unlearn.UnlearnError, match="not a non-negative"):
        unlearn.Data.from_numpy(x * 0, [0, -1, 0, 1], x[:2] * 0, [0, 1])
    with pytest.raises(unlearn.UnlearnError, match="does not fit the mlp"):
        experiment.import_pytorch(_pytorch_file(tmp_path, {"layers.0.weight": np.zeros((8, 3))}))
    with pytest.raises(unlearn.UnlearnError):
        unlearn.Store.open(tmp_path / "no-store")
    # The interpreter is still alive and the package still works.
    assert any(entry["name"] == "finetune" for entry in unlearn.methods())


def _pytorch_file(directory, tensors):
    path = directory / "state.safetensors"
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(path))
    return path


def _torch_mlp_logits(state, x):
    """The forward pass of docs/pytorch.md's MLP, in numpy: x @ W.T + b with ReLU between."""
    hidden = x.reshape(len(x), -1)
    count = len([k for k in state if k.endswith(".weight")])
    for i in range(count):
        hidden = hidden @ state[f"layers.{i}.weight"].T + state[f"layers.{i}.bias"]
        if i < count - 1:
            hidden = np.maximum(hidden, 0)
    return hidden


@pytest.mark.parametrize("architecture", ["mlp:24,12", "cnn:4,8,16"])
def test_a_numpy_made_pytorch_state_dict_loads_and_evaluates_as_the_native_model(
        tmp_path, embedded, architecture):
    experiment = unlearn.Experiment(embedded, model=architecture, epochs=1, seed=1, quiet=True)
    native = experiment.train()
    native.save(tmp_path / "native.safetensors")
    # Burn's own file: Linear weights [in, out]. PyTorch's: [out, in], same key names.
    burn_state = load_file(str(tmp_path / "native.safetensors"))
    torch_state = {
        key: value.T if key.startswith("layers.") and key.endswith(".weight") else value
        for key, value in burn_state.items()
    }
    for key, value in native.state_dict().items():
        np.testing.assert_array_equal(value, torch_state[key])
    assert set(native.state_dict()) == set(torch_state)

    imported = experiment.import_pytorch(_pytorch_file(tmp_path, torch_state))
    assert imported.hash == native.hash
    accuracy = experiment.test_accuracy(imported)
    assert accuracy == experiment.test_accuracy(native)
    assert experiment.evaluate(imported) == experiment.evaluate(native)
    test_x, test_y, _ = embedded.arrays("test")
    np.testing.assert_allclose(imported.predict(test_x[:50]), native.predict(test_x[:50]))

    if architecture.startswith("mlp"):
        # PyTorch's semantics, written independently: the same accuracy.
        predictions = _torch_mlp_logits(torch_state, test_x).argmax(1)
        numpy_accuracy = 100.0 * (predictions == test_y).mean()
        assert abs(numpy_accuracy - accuracy) <= 100.0 / len(test_y) + 1e-9

    # Out again: what Model.save_pytorch writes is the PyTorch state_dict.
    out = tmp_path / "out.safetensors"
    imported.save_pytorch(out)
    written = load_file(str(out))
    assert set(written) == set(torch_state)
    for key in written:
        np.testing.assert_array_equal(written[key], torch_state[key])

    # A transposed (Burn-layout) weight is refused with the key and both shapes.
    with pytest.raises(unlearn.UnlearnError, match=r"layers\.\d\.weight has shape"):
        experiment.import_pytorch(_pytorch_file(tmp_path, burn_state))


def test_numpy_data_trains_and_forgets_ids(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6)).astype(np.float32) * 3
    labels = rng.integers(0, 3, size=300)
    features = centres[labels] + rng.normal(size=(300, 6)).astype(np.float32)
    data = unlearn.Data.from_numpy(features[:240], labels[:240], features[240:], labels[240:])
    assert data.shape == (1, 1, 6) and data.num_classes == 3 and data.train_size == 240
    experiment = unlearn.Experiment(data, model="mlp:16", forget=[0, 5, 7], epochs=3,
                                    seed=2, quiet=True)
    assert experiment.split["forget"].tolist() == [0, 5, 7]
    original = experiment.train()
    forgot = experiment.forget(original, "gradient-ascent", params={"lr": 0.01})
    metrics = experiment.evaluate(forgot)
    assert metrics["headline"]["test_accuracy"] > 50
    logits = forgot.predict(features[240:])
    assert logits.shape == (60, 3)


def test_a_model_store_takes_deletions(tmp_path):
    experiment = unlearn.Experiment(unlearn.Data.load("embedded"), model="mlp:8", epochs=1,
                                    seed=4, quiet=True)
    model = experiment.train()
    model.save(tmp_path / "m.safetensors")
    experiment.save_split(tmp_path / "m.split.json")
    store = unlearn.Store.create(tmp_path / "store", tmp_path / "m.safetensors",
                                 method="gradient-ascent")
    assert store.kind == "neural"
    forget = experiment.split["forget"][:5]
    answer = store.submit(forget, key="first")
    assert answer["status"] == "applied" and answer["version"]["version"] == 1
    assert store.submit(forget, key="first")["duplicate"] is True
    assert len(store.versions()) == 2
    assert store.current()["model_hash"] != model.hash
    report = store.verify(replay=True)
    assert report["chain"]["current_version"] == 1 and report["replayed"] == 1, report
    reopened = unlearn.Store.open(tmp_path / "store")
    assert reopened.current()["version"] == 1
    with pytest.raises(unlearn.UnlearnError):
        store.submit([10 ** 9])
    # Current weights whose bytes changed are refused, as `unlearn verify --store` does.
    target = tmp_path / "store" / "objects" / store.current()["files"]["weights"]
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(unlearn.UnlearnError):
        unlearn.Store.open(tmp_path / "store").verify()


def test_a_certified_model_store_is_created_and_applies_a_removal(tmp_path, embedded):
    model = tmp_path / "cert.json"
    cli_json("--quiet", "--json", "train", "--data", "embedded", "--certified", "newton-guo",
             "--epsilon", "1", "--classes", "7,9", "--out", str(model))
    store = unlearn.Store.create(tmp_path / "store", model)
    assert store.kind == "certified"
    _, labels, ids = embedded.arrays()
    nines = [int(i) for i, label in zip(ids, labels) if label == 9][:3]
    answer = store.submit(nines)
    assert answer["status"] == "applied" and answer["version"]["version"] == 1, answer
    certificate = answer["version"]["info"]["certificate"]
    assert certificate["epsilon"] == 1.0 and answer["version"]["info"]["removed_count"] == 3
    report = store.verify(replay=True)
    assert report["chain"]["current_version"] == 1 and report["replayed"] == 1, report


def test_a_bench_config_runs_from_python(tmp_path):
    outcome = unlearn.bench(ROOT / "configs" / "smoke.toml", results_dir=tmp_path / "results",
                            cache_dir=tmp_path / "cache", jobs=1, quiet=True)
    assert outcome["runs_done"] == 8
    assert (tmp_path / "results" / "smoke" / "report.md").exists()
    with pytest.raises(unlearn.UnlearnError, match="absent.toml"):
        unlearn.bench(tmp_path / "absent.toml")
    with pytest.raises(unlearn.UnlearnError, match="absent.toml"):
        unlearn.audit(tmp_path / "absent.toml")


def test_the_readme_python_block_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python"):]
    start = section.index("```python\n") + len("```python\n")
    block = section[start:section.index("```", start)]
    assert len(block.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    written = load_file(str(tmp_path / "forgot.torch.safetensors"))
    assert written["layers.0.weight"].shape == (256, 784)


def test_a_resnet_state_dict_has_torchvision_keys_and_matches_save_pytorch(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.random(size=(48, 3, 8, 8), dtype=np.float32)
    labels = rng.integers(0, 3, size=48)
    data = unlearn.Data.from_numpy(images[:40], labels[:40], images[40:], labels[40:])
    experiment = unlearn.Experiment(data, model="resnet18", forget=[1, 2], epochs=1,
                                    batch_size=16, seed=3, quiet=True, augment="crop:2+flip")
    model = experiment.train()
    state = model.state_dict()
    # torchvision's resnet18 keys: 20 BatchNorms of 5 entries, 20 convolutions, fc.
    assert len(state) == 122
    assert state["conv1.weight"].shape == (64, 3, 3, 3)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["fc.weight"].shape == (3, 512)
    assert state["bn1.num_batches_tracked"].dtype == np.int64
    assert state["bn1.num_batches_tracked"].shape == ()
    # Training moved the running statistics away from their initial 0 and 1.
    assert np.abs(state["layer4.1.bn2.running_var"] - 1).max() > 0
    out = tmp_path / "resnet.safetensors"
    model.save_pytorch(out)
    written = load_file(str(out))
    assert set(written) == set(state)
    for key in written:
        np.testing.assert_array_equal(written[key], state[key])
    # amnesiac-sample is undefined under batch statistics: a one-line refusal.
    with pytest.raises(unlearn.UnlearnError, match="undefined under batch statistics"):
        experiment.forget(model, "amnesiac-sample")
