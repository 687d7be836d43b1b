"""The Gaussian density of CutPaste's second stage; it lives in :mod:`nsad.models.cutpaste.density`.

This module keeps the import path ``nsad.models.density`` working.
"""

from nsad.models.cutpaste.density import STATE_KEYS, GaussianDensity, estimate_ledoit_wolf

__all__ = ["STATE_KEYS", "GaussianDensity", "estimate_ledoit_wolf"]
