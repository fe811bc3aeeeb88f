"""Our own LSTM cell, with peephole connections (Gers & Schmidhuber 2000): the forward recurrence and
its hand-derived backward through time (`docs/lstm.md`, equations B1-B5), as one autograd Function.

`peephole_lstm_scan` runs one layer and one direction over a whole sequence; `nn.lstm.LSTM` calls it
for `peephole="diagonal" | "full"`. Gradients are checked with `torch.autograd.gradcheck` in float64.
"""

from __future__ import annotations

import torch

def _scan_forward(xproj, h0, c0, weight_hh, peephole_i, peephole_f, peephole_o, peephole, keep):
    """The cell's forward recurrence (DESIGN.md section 2) over all time steps.

    Args:
        xproj: `(time, batch, 4H)` = `W_ih x_t + b_ih + b_hh`, gate order i, f, g, o; projected for
            all steps in one matmul by the caller, so the loop only does the recurrent matmul.
        h0, c0: `(batch, H)`.
        weight_hh: `(4H, H)`.
        peephole_i, peephole_f, peephole_o: `(H,)` for "diagonal", `(H, H)` for "full", None for
            "none".
        keep: also return the gates for the backward pass.
    Returns:
        hs, cs `(time, batch, H)` and, if `keep`, gates `(i_f (T, B, 2, H), g (T, B, H), o (T, B, H))`.
    """
    batch, hidden_size = h0.shape
    weight_hh_t = weight_hh.t()  # (H, 4H)
    if peephole == "diagonal":
        peephole_if = torch.stack([peephole_i, peephole_f])  # (2, H)
    elif peephole == "full":
        peephole_if_t = torch.cat([peephole_i, peephole_f]).t()  # (H, 2H)
        peephole_o_t = peephole_o.t()
    time = xproj.shape[0]
    # Written in place step by step (out=): stacking lists afterwards cost an extra copy of each.
    hs, cs = xproj.new_empty(time, batch, hidden_size), xproj.new_empty(time, batch, hidden_size)
    if keep:
        gates_if = xproj.new_empty(time, batch, 2, hidden_size)
        gates_g, gates_o = xproj.new_empty(time, batch, hidden_size), xproj.new_empty(time, batch, hidden_size)
    hidden, cell = h0, c0
    # unbind, not xproj[t]: indexing made autograd's backward quadratic in T (NOTES.md).
    for t, step_input in enumerate(xproj.unbind(0)):
        pre = torch.addmm(step_input, hidden, weight_hh_t).view(batch, 4, hidden_size)
        if peephole == "diagonal":
            pre[:, :2].addcmul_(cell.unsqueeze(1), peephole_if)  # + P_i c_{t-1}, P_f c_{t-1}
        elif peephole == "full":
            pre[:, :2].add_((cell @ peephole_if_t).view(batch, 2, hidden_size))
        input_forget = torch.sigmoid(pre[:, :2], out=gates_if[t] if keep else None)  # (B, 2, H): i, f
        candidate = torch.tanh(pre[:, 2], out=gates_g[t] if keep else None)  # g_t
        cell = torch.addcmul(input_forget[:, 1] * cell, input_forget[:, 0], candidate, out=cs[t])
        pre_output = pre[:, 3]
        if peephole == "diagonal":  # the output gate peeks at the new c_t
            pre_output = torch.addcmul(pre_output, cell, peephole_o)
        elif peephole == "full":
            pre_output = torch.addmm(pre_output, cell, peephole_o_t)
        output_gate = torch.sigmoid(pre_output, out=gates_o[t] if keep else None)
        hidden = torch.mul(output_gate, torch.tanh(cell), out=hs[t])
    if not keep:
        return hs, cs
    return hs, cs, (gates_if, gates_g, gates_o)


class _PeepholeScan(torch.autograd.Function):
    """Forward and backward through time for one layer and direction (docs/lstm.md, "Backward").

    Autograd over the Python loop records ~15 nodes per step; this backward instead precomputes
    every factor that does not depend on the recurrence over all steps at once, leaving ~6 small
    ops per step.
    """

    @staticmethod
    def forward(ctx, xproj, h0, c0, weight_hh, peephole_i, peephole_f, peephole_o, peephole):
        hs, cs, (gates_if, gates_g, gates_o) = _scan_forward(
            xproj, h0, c0, weight_hh, peephole_i, peephole_f, peephole_o, peephole, keep=True
        )
        ctx.peephole = peephole
        ctx.save_for_backward(h0, c0, weight_hh, peephole_i, peephole_f, peephole_o, hs, cs,
                              gates_if, gates_g, gates_o)  # fmt: skip
        return hs, cs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_hs, grad_cs):
        (h0, c0, weight_hh, peephole_i, peephole_f, peephole_o, hs, cs,
         gates_if, gates_g, gates_o) = ctx.saved_tensors  # fmt: skip
        peephole = ctx.peephole
        time, batch, hidden_size = hs.shape
        input_gate, forget_gate = gates_if[:, :, 0], gates_if[:, :, 1]  # (T, B, H)
        cell_prev = torch.cat([c0.unsqueeze(0), cs[:-1]])  # c_{t-1}: (T, B, H)
        tanh_c = torch.tanh(cs)

        # Local derivatives, all steps at once (docs/lstm.md, eqs. B1-B4):
        d_h_d_pre_o = tanh_c * gates_o * (1 - gates_o)  # dh_t / d pre_o
        d_h_d_c = gates_o * (1 - tanh_c * tanh_c)  # dh_t / dc_t through tanh(c_t)
        d_c_d_pre = torch.stack(  # dc_t / d pre_{i, f, g}: (T, B, 3, H)
            [
                gates_g * input_gate * (1 - input_gate),
                cell_prev * forget_gate * (1 - forget_gate),
                input_gate * (1 - gates_g * gates_g),
            ],
            dim=2,
        )
        if peephole == "diagonal":
            # Fold the peephole paths into the per-step factors, so each costs no extra op:
            # dc_t += dh_t * (dh/dc + dh/dpre_o * p_o);  dc_{t-1} = dc_t * (f + dc/dpre_i p_i + ...)
            d_h_d_c = d_h_d_c + d_h_d_pre_o * peephole_o
            carry = forget_gate + d_c_d_pre[:, :, 0] * peephole_i + d_c_d_pre[:, :, 1] * peephole_f
        else:
            carry = forget_gate
        if peephole == "full":
            peephole_if = torch.cat([peephole_i, peephole_f])  # (2H, H)

        grad_pre = hs.new_empty(time, batch, 4, hidden_size)  # d loss / d pre-activations
        grad_h = grad_hs[time - 1]
        grad_c_carry = torch.zeros_like(c0)
        for t in range(time - 1, -1, -1):
            if t < time - 1:  # h_t also feeds step t+1 through W_hh
                grad_h = torch.addmm(grad_hs[t], grad_pre[t + 1].view(batch, -1), weight_hh)
            grad_c = torch.addcmul(grad_cs[t], grad_h, d_h_d_c[t]).add_(grad_c_carry)
            torch.mul(grad_h, d_h_d_pre_o[t], out=grad_pre[t, :, 3])
            if peephole == "full":  # pre_o = ... + c_t P_o^T
                grad_c = torch.addmm(grad_c, grad_pre[t, :, 3], peephole_o)
            torch.mul(grad_c.unsqueeze(1), d_c_d_pre[t], out=grad_pre[t, :, :3])
            grad_c_carry = grad_c * carry[t]
            if peephole == "full":  # pre_{i,f} = ... + c_{t-1} P_{i,f}^T
                grad_pre_if = grad_pre[t, :, :2].reshape(batch, 2 * hidden_size)
                grad_c_carry = torch.addmm(grad_c_carry, grad_pre_if, peephole_if)

        grad_pre_flat = grad_pre.view(time * batch, 4 * hidden_size)
        hidden_prev = torch.cat([h0.unsqueeze(0), hs[:-1]]).view(time * batch, hidden_size)
        grad_weight_hh = grad_pre_flat.t() @ hidden_prev  # sum_t dpre_t^T h_{t-1}: (4H, H)
        grad_h0 = grad_pre[0].view(batch, -1) @ weight_hh
        grad_peepholes = _peephole_grads(peephole, grad_pre, cell_prev, cs)
        return (grad_pre.view(time, batch, 4 * hidden_size), grad_h0, grad_c_carry, grad_weight_hh,
                *grad_peepholes, None)  # fmt: skip


def _peephole_grads(peephole, grad_pre, cell_prev, cs):
    """Gradients of P_i, P_f (which see c_{t-1}) and P_o (which sees c_t), summed over time and batch.

    Args:
        grad_pre: `(T, B, 4, H)` d loss / d pre-activations; cell_prev, cs: `(T, B, H)`.
    Returns:
        three `(H,)` ("diagonal"), three `(H, H)` ("full"), or three None ("none").
    """
    if peephole == "none":
        return None, None, None
    if peephole == "diagonal":
        return (
            (grad_pre[:, :, 0] * cell_prev).sum((0, 1)),
            (grad_pre[:, :, 1] * cell_prev).sum((0, 1)),
            (grad_pre[:, :, 3] * cs).sum((0, 1)),
        )
    hidden_size = cs.shape[-1]
    cell_prev, cs = cell_prev.reshape(-1, hidden_size), cs.reshape(-1, hidden_size)
    grad_pre = grad_pre.reshape(-1, 4, hidden_size)
    return (grad_pre[:, 0].t() @ cell_prev, grad_pre[:, 1].t() @ cell_prev, grad_pre[:, 3].t() @ cs)


def peephole_lstm_scan(
    xproj: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    weight_hh: torch.Tensor,
    peephole_i: torch.Tensor | None = None,
    peephole_f: torch.Tensor | None = None,
    peephole_o: torch.Tensor | None = None,
    *,
    peephole: str = "diagonal",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Our own LSTM cell over a whole sequence (one layer, one direction).

    Args:
        xproj: `(time, batch, 4H)` projected inputs `W_ih x_t + b_ih + b_hh`, gate order i, f, g, o.
        h0, c0: `(batch, H)` initial state.
        weight_hh: `(4H, H)` recurrent weights.
        peephole_i, peephole_f, peephole_o: `(H,)` ("diagonal") or `(H, H)` ("full"); None ("none").
        peephole: one of `PEEPHOLES`.
    Returns:
        hs, cs: `(time, batch, H)` hidden and cell state after every step.
    """
    tensors = (xproj, h0, c0, weight_hh, peephole_i, peephole_f, peephole_o)
    # Under autocast (bfloat16 training) the recurrence still runs in the weights' dtype: its hand-written
    # backward mixes saved states with the weights, and a long product of gates is where low precision
    # hurts. The input projection before it is the big matmul, and that one autocast keeps.
    tensors = tuple(t.to(weight_hh.dtype) if t is not None else None for t in tensors)
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    with torch.autocast(xproj.device.type, enabled=False):
        if not needs_grad:  # inference: skip keeping the gates
            return _scan_forward(*tensors, peephole, keep=False)
        return _PeepholeScan.apply(*tensors, peephole)


# ---------------------------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------------------------


