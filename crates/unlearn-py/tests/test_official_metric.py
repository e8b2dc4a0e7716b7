"""Our challenge scorer against the official one.

`official/metric.py` is the NeurIPS 2023 machine-unlearning challenge's scorer, unchanged, from
google-deepmind/unlearning_evaluation (commit ffae0fff4c3e9523b22618c47df6c26e4eebe0df,
Apache 2.0, `official/LICENSE`). It calls PyTorch on a GPU; `official/torch_on_numpy.py`
supplies the few torch functions it uses on numpy (see that file for what is kept of torch's
semantics), so CI needs neither. The published file asserts the truth value of a numpy array of
kept thresholds, which raises whenever more than one threshold survives; it is executed with
assertions off, as `python -O` runs it.

On fixed random inputs — continuous values, values with ties, a peaky side, identical
distributions, separated ones — for N = 16 and N = 512 models per side, the per-example ε of
`unlearn.challenge_forget_quality` (the Rust library's scorer) must equal the official ones up to
the float32 arithmetic the official code does its rates and logarithms in, and F must be equal.
"""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

import unlearn

OFFICIAL = pathlib.Path(__file__).resolve().parent / "official"

# The official code takes logarithms of zero rates and discards the results itself.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def load_official_metric():
    """Imports official/metric.py with the numpy `torch` and assertions off."""
    spec = importlib.util.spec_from_file_location(
        "torch_on_numpy", OFFICIAL / "torch_on_numpy.py"
    )
    torch_on_numpy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(torch_on_numpy)
    saved = sys.modules.get("torch")
    sys.modules["torch"] = torch_on_numpy
    try:
        source = (OFFICIAL / "metric.py").read_text()
        module = type(sys)("official_metric")
        module.__file__ = str(OFFICIAL / "metric.py")
        exec(compile(source, module.__file__, "exec", optimize=1), module.__dict__)
    finally:
        if saved is None:
            del sys.modules["torch"]
        else:
            sys.modules["torch"] = saved
    return module


@pytest.fixture(scope="module")
def official():
    return load_official_metric()


def official_scores(official, unlearned, retrained):
    """The official per-example ε and F for [models × examples] confidences: F from
    `compute_forget_score_from_confs`, the ε it computed on the way from its call of
    `_get_epsilons` (looked up in the module at call time, so a wrapper sees it)."""
    computed = []
    get_epsilons = official._get_epsilons

    def recording(*args, **kwargs):
        computed.append(get_epsilons(*args, **kwargs))
        return computed[-1]

    official._get_epsilons = recording
    try:
        forget_quality = official.compute_forget_score_from_confs(unlearned, retrained)
    finally:
        official._get_epsilons = get_epsilons
    assert len(computed) == 1
    return np.asarray(computed[0], dtype=np.float64), forget_quality


def cases(models, examples, seed):
    """Named [models × examples] pairs (unlearned, retrained), float64, seeded."""
    rng = np.random.default_rng(seed)
    shape = (models, examples)
    same = rng.normal(0.0, 1.0, shape), rng.normal(0.0, 1.0, shape)
    # Per-example shifts from none to far beyond the models' spread.
    shifts = np.linspace(0.0, 4.0, examples)
    shifted = rng.normal(shifts, 1.0, shape), rng.normal(0.0, 1.0, shape)
    # Different spreads: the double-threshold family's case.
    spread = rng.normal(0.0, 0.3, shape), rng.normal(0.2, 1.5, shape)
    # Ties: values on a grid of 0.1 (not exact in binary, so the float32 single thresholds
    # of the official scorer fall beside them) and on a grid of 0.25 (exact).
    tenth = np.round(rng.normal(0.0, 0.5, shape), 1), np.round(rng.normal(0.3, 0.5, shape), 1)
    quarter = (
        np.round(rng.normal(0.0, 1.0, shape) * 4) / 4,
        np.round(rng.normal(0.5, 1.0, shape) * 4) / 4,
    )
    # A peaky unlearned side: its range under 1% of the retrained side's.
    peaky = rng.normal(1.0, 0.001, shape), rng.normal(0.0, 1.0, shape)
    return {
        "same": same,
        "shifted": shifted,
        "spread": spread,
        "ties-0.1": tenth,
        "ties-0.25": quarter,
        "peaky": peaky,
    }


def compare(official, unlearned, retrained):
    ours = unlearn.challenge_forget_quality(unlearned, retrained)
    theirs_epsilons, theirs_quality = official_scores(official, unlearned, retrained)
    our_epsilons = np.asarray(ours["epsilons"])
    assert our_epsilons.shape == theirs_epsilons.shape
    # The official rates and logarithms are float32: about 1e-6 relative.
    np.testing.assert_allclose(our_epsilons, theirs_epsilons, rtol=1e-5, atol=1e-5)
    assert ours["forget_quality"] == pytest.approx(theirs_quality, abs=1e-12)
    return our_epsilons, ours["forget_quality"]


@pytest.mark.parametrize(
    "name", ["same", "shifted", "spread", "ties-0.1", "ties-0.25", "peaky"]
)
def test_sixteen_models_agree_with_the_official_scorer(official, name):
    unlearned, retrained = cases(16, 12, seed=16)[name]
    epsilons, quality = compare(official, unlearned, retrained)
    if name == "peaky":
        assert np.all(epsilons == 50.0) and quality == 0.0
    if name == "same":
        # Not vacuous: identical distributions score the noise floor of F (about 0.1-0.2 for
        # 16 models), well above zero.
        assert quality > 0.1
    if name == "shifted":
        assert epsilons[-1] > epsilons[0]


@pytest.mark.parametrize("name", ["same", "shifted", "ties-0.1"])
def test_512_models_agree_with_the_official_scorer(official, name):
    # 512 models per side as in the challenge; three examples each (the official scorer tiles
    # [512 × 160,000] float64 threshold matrices per example).
    unlearned, retrained = cases(512, 3, seed=512)[name]
    compare(official, unlearned, retrained)


def test_scorer_refuses_mismatched_inputs():
    with pytest.raises(unlearn.UnlearnError):
        unlearn.challenge_forget_quality(np.zeros((4, 3)), np.zeros((5, 3)))
    with pytest.raises(unlearn.UnlearnError):
        unlearn.challenge_forget_quality(np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(unlearn.UnlearnError):
        unlearn.challenge_forget_quality(np.zeros(3), np.zeros(3))
