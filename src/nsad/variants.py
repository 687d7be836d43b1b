"""The two readings of NSA: the paper's text (``paper``, the default) and the authors' published code (``authors``).

The NSA paper's numbers (Schlüter et al., ECCV 2022) come from the authors' code, which departs from
the text in a few places that change the training data. ``variant="authors"`` reproduces each of
them; ``variant="paper"`` follows the text and is what nsad did before the option existed:

============================  =======================================  ==========================================
what                          ``paper``                                ``authors``
============================  =======================================  ==========================================
resize clip (eq. 9)           resized sides within ``[h_min, h_max]``  within half of them (bottle: at most 0.4 of
                              and ``[w_min, w_max]``                   the side, 90 px at 224), :mod:`nsad.synth.nsa`
source object test (eq. 8)    object pixels over ``w * h``             over the area of the box clipped at the border
destination test (eq. 11)     the destination box is > ``t_object``    the resized *source* object mask is: only
                              object                                   eq. 12 looks at the destination
label region (eq. 13)         the patch boxes                          patch ∩ (source ∪ destination object), later
                                                                       patches overwriting earlier ones
network                       batch-normed bottleneck, 5 upsampling    1x1 convolutions with bias and ReLU, the
                              residual stages                          authors' transposed-convolution decoder
                                                                       (:class:`nsad.models.net.NetConfig` ``decoder``)
rotation                      bilinear, mirrored border                nearest neighbour, black fill
textures                      random crop                              random crop and a random vertical flip
learning-rate schedule        cosine stepped every optimiser step      cosine stepped once per epoch
============================  =======================================  ==========================================
"""

from __future__ import annotations

from typing import Literal

from nsad._checks import check_choice

Variant = Literal["paper", "authors"]
VARIANTS: tuple[str, ...] = ("paper", "authors")
DEFAULT_VARIANT: Variant = "paper"


def check_variant(variant: str) -> Variant:
    """Return ``variant`` if it is ``paper`` or ``authors``.

    Raises:
        ValueError: naming the value and the accepted ones.
    """
    return check_choice("variant", variant, VARIANTS)  # type: ignore[return-value]
