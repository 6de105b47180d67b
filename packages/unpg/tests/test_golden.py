"""Our UNPG loss against the official implementation (spec section 7.2).

``golden_official.json`` holds only numbers: the losses and gradient norms that the official
``head.py`` / ``build.py`` produced once, offline, on the seeded inputs of
``unpg_official_compare.inputs``. Set ``UNPG_OFFICIAL_REPO`` to a checkout of the official
repository to compare losses and full gradients directly.
"""

import json
import os
from pathlib import Path

import pytest
import unpg_official_compare as oc

GOLDEN = json.loads((Path(__file__).parent / "golden_official.json").read_text())


def test_inputs_are_the_golden_ones():
    x, y, w = oc.inputs()
    assert x.sum().item() == pytest.approx(GOLDEN["input_sums"]["x"], abs=1e-12)
    assert w.sum().item() == pytest.approx(GOLDEN["input_sums"]["w"], abs=1e-12)
    assert int(y.sum()) == GOLDEN["input_sums"]["y"]


def test_losses_and_gradients_match_official_numbers():
    ours = oc.our_losses()
    assert set(ours) == set(GOLDEN["cases"])
    for key, (loss, gx, gw) in ours.items():
        expected = GOLDEN["cases"][key]
        assert loss == pytest.approx(expected["loss"], abs=1e-10), key
        assert gx.norm().item() == pytest.approx(expected["grad_x_norm"], abs=1e-10), key
        assert gw.norm().item() == pytest.approx(expected["grad_w_norm"], abs=1e-10), key


@pytest.mark.skipif("UNPG_OFFICIAL_REPO" not in os.environ, reason="needs an official checkout")
def test_against_official_checkout():
    official = oc.official_losses(os.environ["UNPG_OFFICIAL_REPO"])
    ours = oc.our_losses()
    for key, (loss, gx, gw) in official.items():
        o_loss, o_gx, o_gw = ours[key]
        assert o_loss == pytest.approx(loss, abs=1e-10)
        assert (o_gx - gx).abs().max() < 1e-10 and (o_gw - gw).abs().max() < 1e-10
