"""cnnclaims: the qualitative claims of a Keras experiment as statistical tests.

The public API (README's "Your own claim" shows it at work):

- ``Experiment``, ``Condition``, ``Claim``, ``Metric``, ``Probe``, ``Profile``:
  declare an experiment (``cnnclaims.declaration``); ``EarlyStopping``: which images
  choose the epoch (default: the article's test set, leakage); ``ClaimKind``, ``Subject``,
  ``Plot``, ``ModelMetric``: the closed vocabularies of a Claim's fields (their plain
  strings work too);
- ``parametrize_claims(experiment)``: its claims as tests in your own test file;
- ``cnnclaims.article.ARTICLE``: the article "Exploring Feature Extraction with CNNs",
  declared with the same API.
"""

__version__ = "0.2.0"

from .declaration import (  # noqa: E402
    Claim,
    ClaimKind,
    Condition,
    EarlyStopping,
    Experiment,
    Metric,
    ModelMetric,
    Plot,
    Probe,
    Profile,
    Subject,
    softmax_metric,
)

__all__ = [
    "Claim",
    "ClaimKind",
    "Condition",
    "EarlyStopping",
    "Experiment",
    "Metric",
    "ModelMetric",
    "Plot",
    "Probe",
    "Profile",
    "Subject",
    "__version__",
    "parametrize_claims",
    "softmax_metric",
]


def parametrize_claims(experiment, null: bool = False):
    """Mark a test function to run once per (claim, scope) of ``experiment`` (or of
    its null control with ``null=True``), as scikit-learn's
    ``parametrize_with_checks``; see ``cnnclaims.pytest_plugin``."""
    from .pytest_plugin import parametrize_claims as _parametrize

    return _parametrize(experiment, null)
