"""Deprecated: ``cnnclaims.experiment`` is now ``cnnclaims.run`` (``Run`` and its
helpers); this alias warns and will be removed."""

import warnings

from .run import CODE_DIGEST, Run, claims_key  # noqa: F401 - the old names, re-exported

__all__ = ["CODE_DIGEST", "Run", "claims_key"]

warnings.warn("cnnclaims.experiment is deprecated: import Run from cnnclaims.run", DeprecationWarning, stacklevel=2)
