"""Many linear softmax heads trained at once: one (seed, lr, weight decay) per head, AdamW + cosine.

All heads of one seed share its initialisation and mini-batch order (as separate runs seeded
alike would), so a head's result does not depend on which other heads are trained beside it.
Weights live in one (seeds, d, heads * classes) tensor; each step is one batched matmul.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

BETAS = (0.9, 0.999)
EPS = 1e-8


@dataclass
class Heads:
    """Trained heads: weight (S, d, G*C) and bias (S, 1, G*C) for S seeds, G candidates."""

    weight: torch.Tensor
    bias: torch.Tensor
    n_classes: int


@dataclass
class Scores:
    """Per (seed, candidate): number of top-1 / top-5 hits, summed cross-entropy, sample count."""

    hits1: torch.Tensor
    hits5: torch.Tensor
    loss_sum: torch.Tensor
    n: int


def init_heads(seeds: list[int], d: int, n_classes: int, n_candidates: int,
               device: str) -> Heads:
    """torch.nn.Linear's default initialisation drawn from each seed, repeated per candidate."""
    bound = 1.0 / math.sqrt(d)
    weights, biases = [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        w = (torch.rand(d, n_classes, generator=gen) * 2 - 1) * bound
        b = (torch.rand(1, n_classes, generator=gen) * 2 - 1) * bound
        weights.append(w.repeat(1, n_candidates))
        biases.append(b.repeat(1, n_candidates))
    return Heads(torch.stack(weights).to(device), torch.stack(biases).to(device), n_classes)


def batch_orders(seeds: list[int], n: int, epochs: int, device: str) -> torch.Tensor:
    """(S, epochs * n) positions: one random permutation of 0..n-1 per seed and epoch."""
    orders = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed + 1_000_003)
        orders.append(torch.cat([torch.randperm(n, generator=gen) for _ in range(epochs)]))
    return torch.stack(orders).to(device)


def train_heads(x: torch.Tensor, y: torch.Tensor, train_idx: torch.Tensor, seeds: list[int],
                lrs: list[float], wds: list[float], n_classes: int, epochs: int,
                batch_size: int, on_step: Callable[[], None] | None = None,
                lr_ref: float | None = None) -> Heads:
    """Train one head per (seed, candidate) on rows train_idx[s] of x with AdamW + cosine lr.

    x: (n, d) features, y: (n,) labels, train_idx: (S, n_train) row indices per seed (equal
    sizes), lrs/wds: base learning rate and decoupled weight decay of each of G candidates.
    Per-candidate learning rates ride on torch's fused (one-pass) AdamW by training
    theta = W / alpha with alpha = lr / lr_ref (lr_ref: default max(lrs)): Adam's step is
    invariant to the gradient's scale, so W moves by lr * m/(sqrt(v) + eps * lr_ref / lr) --
    AdamW exactly for lr = lr_ref, an eps relatively larger (still tiny) for smaller lrs.
    """
    n_seeds, n_train = train_idx.shape
    device, n_cand = x.device, len(lrs)
    lr_max = max(lrs) if lr_ref is None else lr_ref
    alpha = torch.tensor([lr / lr_max for lr in lrs], dtype=torch.float32,
                         device=device).repeat_interleave(n_classes)
    decay = torch.tensor([lr * wd for lr, wd in zip(lrs, wds, strict=True)],
                         dtype=torch.float32, device=device).repeat_interleave(n_classes)
    init = init_heads(seeds, x.shape[1], n_classes, n_cand, str(device))
    theta, beta = init.weight.div_(alpha), init.bias.div_(alpha)
    theta.grad, beta.grad = torch.empty_like(theta), torch.empty_like(beta)
    optimizer = torch.optim.AdamW([theta, beta], lr=lr_max, betas=BETAS, eps=EPS,
                                  weight_decay=0.0, fused=True)
    orders = batch_orders(seeds, n_train, epochs, str(device))
    steps_per_epoch = math.ceil(n_train / batch_size)
    total = epochs * steps_per_epoch
    seed_rows = torch.arange(n_seeds, device=device)[:, None]
    for step in range(total):
        epoch, start = divmod(step, steps_per_epoch)
        offset = epoch * n_train + start * batch_size
        rows = train_idx[seed_rows, orders[:, offset:min(offset + batch_size,
                                                       (epoch + 1) * n_train)]]
        xb, yb = x[rows], y[rows]
        _gradients(theta, beta, alpha, xb, yb, n_cand, n_classes)
        factor = 0.5 * (1 + math.cos(math.pi * step / total))
        theta.mul_(1 - factor * decay)  # AdamW's decoupled decay, W <- W (1 - lr_t wd)
        beta.mul_(1 - factor * decay)
        optimizer.param_groups[0]["lr"] = lr_max * factor
        optimizer.step()
        if on_step is not None:
            on_step()
    return Heads(theta.detach() * alpha, beta.detach() * alpha, n_classes)


def _gradients(theta: torch.Tensor, beta: torch.Tensor, alpha: torch.Tensor, xb: torch.Tensor,
               yb: torch.Tensor, n_cand: int, n_classes: int) -> None:
    """Store in theta.grad / beta.grad the gradient of every head's mean cross-entropy.

    Logits are (xb @ theta + beta) * alpha for the batch xb (S, b, d) with labels yb (S, b).
    """
    n_seeds, b, _ = xb.shape
    with torch.no_grad():
        logits = torch.baddbmm(beta, xb, theta).mul_(alpha)
        grad = torch.softmax(logits.view(n_seeds, b, n_cand, n_classes), dim=-1)
        index = yb[:, :, None, None].expand(n_seeds, b, n_cand, 1)
        grad.scatter_add_(-1, index, torch.full_like(index, -1, dtype=grad.dtype))
        grad = grad.view(n_seeds, b, -1).mul_(alpha / b)
        torch.bmm(xb.transpose(1, 2), grad, out=theta.grad)
        torch.sum(grad, dim=1, keepdim=True, out=beta.grad)


@torch.no_grad()
def score_heads(heads: Heads, x: torch.Tensor, y: torch.Tensor, eval_idx: torch.Tensor,
                chunk: int = 2048) -> Scores:
    """Top-1/top-5 hits and summed cross-entropy of every head on rows eval_idx[s] of x."""
    n_seeds, n_eval = eval_idx.shape
    n_cand = heads.weight.shape[-1] // heads.n_classes
    shape = (n_seeds, n_cand)
    hits1 = torch.zeros(shape, dtype=torch.long, device=x.device)
    hits5, loss = torch.zeros_like(hits1), torch.zeros(shape, dtype=torch.float64, device=x.device)
    k = min(5, heads.n_classes)
    for start in range(0, n_eval, chunk):
        rows = eval_idx[:, start:start + chunk]
        b = rows.shape[1]
        logits = torch.baddbmm(heads.bias, x[rows], heads.weight)
        logits = logits.view(n_seeds, b, n_cand, heads.n_classes)
        target = y[rows][:, :, None].expand(n_seeds, b, n_cand)
        top = logits.topk(k, dim=-1).indices
        hits1 += (top[..., 0] == target).sum(dim=1)
        hits5 += (top == target[..., None]).any(dim=-1).sum(dim=1)
        nll = -torch.log_softmax(logits, dim=-1).gather(-1, target[..., None])[..., 0]
        loss += nll.sum(dim=1, dtype=torch.float64)
    return Scores(hits1, hits5, loss, n_eval)
