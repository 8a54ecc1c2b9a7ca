"""mo-gp's reference point: BoTorch's front rule, with a floor on its margin."""

import pytest
import torch

from metatune.optimizers.multi_objective import MultiObjectiveGP

# Model outputs (maximized): the first trial dominates the others, so the front is one point.
ONE_POINT_FRONT = torch.tensor([[0.0, 0.0], [-1.0, -2.0], [-3.0, -1.0]], dtype=torch.float64)
EVERY_ROW = torch.ones(3, dtype=torch.bool)


def test_a_one_point_front_leaves_room_to_improve_on_it():
    # BoTorch's rule alone puts the point a tenth of |value| beyond the front: here ~0, so
    # no new point could add hypervolume without beating the best trial in every objective.
    ref = MultiObjectiveGP()._ref_point(ONE_POINT_FRONT, EVERY_ROW)
    span = torch.tensor([3.0, 2.0], dtype=torch.float64)  # the observed range per objective
    assert torch.all(ref <= -0.1 * span + 1e-12)


def test_the_floor_is_off_at_zero_and_bounded():
    ref = MultiObjectiveGP(reference_floor=0)._ref_point(ONE_POINT_FRONT, EVERY_ROW)
    assert torch.all(ref > -1e-3)  # BoTorch's rule as it is
    wide = torch.tensor([[0.0, -4.0], [-4.0, 0.0], [-5.0, -5.0]], dtype=torch.float64)
    ref = MultiObjectiveGP()._ref_point(wide, EVERY_ROW)
    # The front spans 4 of the observed 5: the larger margin, a tenth of 5, is the one used.
    assert torch.allclose(ref, torch.tensor([-4.5, -4.5], dtype=torch.float64))
    for bad in (-0.1, 1.0, True, "0.1"):
        with pytest.raises(ValueError, match="reference_floor"):
            MultiObjectiveGP(reference_floor=bad)
