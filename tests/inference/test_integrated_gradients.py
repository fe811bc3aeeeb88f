"""The adaptive integrated gradients against a function whose integral is known in closed form."""

from __future__ import annotations

import torch

from nlp_lstm.inference.integrated_gradients import integrate

STEEPNESS, CENTRE = 80.0, 0.3


def steep(x: torch.Tensor) -> torch.Tensor:
    """(B, n) -> (B,): a sum of steep sigmoids, F(x) = sum_i sigmoid(k (x_i - c)). Separable, so the
    integrated gradient of feature i from 0 is exactly sigmoid(k (x_i - c)) - sigmoid(-k c)."""
    return torch.sigmoid(STEEPNESS * (x - CENTRE)).sum(dim=-1)


def test_a_steep_step_is_integrated_to_the_closed_form():
    x = torch.tensor([[1.0, 0.5, -0.7, 0.31, 2.0]], dtype=torch.float64)
    exact = torch.sigmoid(STEEPNESS * (x - CENTRE)) - torch.sigmoid(torch.tensor(-STEEPNESS * CENTRE, dtype=torch.float64))
    found = integrate(steep, x, torch.zeros_like(x), additional=(), steps=512)
    torch.testing.assert_close(found.attributions, exact, atol=2e-3, rtol=0)
    difference = float(steep(x) - steep(torch.zeros_like(x)))
    assert abs(found.residual) < 1e-3 * abs(difference)
    assert abs(float(found.attributions.sum()) - difference - found.residual) < 1e-9  # the residual is the gap
    assert found.segments > 1 and found.steps <= 512

    # One segment of 8 nodes (a budget with no room to cut) misses the step: the residual says so.
    coarse = integrate(steep, x, torch.zeros_like(x), additional=(), steps=8)
    assert coarse.segments == 1 and coarse.steps == 8
    assert abs(coarse.residual) > 10 * abs(found.residual)
    assert abs(float(coarse.attributions.sum()) - difference - coarse.residual) < 1e-9


def test_a_smooth_function_stops_early():
    x = torch.tensor([[0.2, -0.4, 0.9]], dtype=torch.float64)
    found = integrate(lambda v: (v ** 2).sum(dim=-1), x, torch.zeros_like(x), additional=(), steps=256)
    torch.testing.assert_close(found.attributions, x ** 2)  # exact for a quadratic with Gauss-Legendre
    assert found.steps == 8 and found.segments == 1
