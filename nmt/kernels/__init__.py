"""Fast kernels: faster forms of plain model functions, with the same values and gradients.

The model modules (embeddings, encoder, attention, decoder, loss) are the specification, written
with standard PyTorch modules and autograd. Where a hand-written form is faster, it lives here and
names the plain function it replaces and the test that holds the two equal:

    encoder.py     one call per direction over the padded batch   Encoder._packed
    attention.py   the sigmoid form of the energy, and the training loop with a fused backward
                                                                   AdditiveAttention.attend
    steplinear.py  the decoder loop's weight gradients once over all steps   nn.Linear per step
    loss.py        output layer + cross-entropy in one node        loss.sequence_loss
    shapes.py      rows and columns padded to the shapes oneDNN / MKL run fast   the bare multiply

One setting picks them, `kernels` (`nmt train --kernels auto|plain`): "auto" takes each kernel
where it is faster, "plain" runs the specification. `use` sets it for a block of code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

Kernels = Literal["auto", "plain"]

_SETTING: ContextVar[Kernels] = ContextVar("nmt_kernels", default="auto")


@contextmanager
def use(kernels: Kernels) -> Iterator[None]:
    """Run the block with the fast kernels ("auto") or the plain model ("plain")."""
    if kernels not in ("auto", "plain"):
        raise ValueError(f"kernels must be 'auto' or 'plain', got {kernels!r}")
    token = _SETTING.set(kernels)
    try:
        yield
    finally:
        _SETTING.reset(token)


def enabled() -> bool:
    """Whether the fast kernels may be taken (each one still checks where it is faster)."""
    return _SETTING.get() == "auto"
