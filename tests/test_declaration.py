"""Bad declarations: each is one error, at declaration, naming the thing and the fix.

The table holds the keyword arguments that break a ``Claim`` (or an ``Experiment``)
and the message expected, with the reason a user would write it."""

import dataclasses
import math

import pytest

from cnnclaims.article import ARTICLE
from cnnclaims.declaration import Claim, Metric

pytestmark = pytest.mark.unit

METRIC = Metric("m", ("conv2d_5",), lambda acts, y: acts["conv2d_5"].mean(axis=(1, 2, 3)))
GOOD = dict(id="X1", slug="a-claim", text="a is greater than b", metric=METRIC, sesoi=0.02)

BAD_CLAIMS = [
    # (changes, error, message, why a user writes it)
    ({"sesoi": -0.02}, ValueError, "sesoi must be a positive number", "a sign slip"),
    ({"sesoi": math.nan}, ValueError, "sesoi must be a positive number", "no SESOI thought of"),
    ({"kind": "comapre"}, ValueError, "kind must be 'compare' or 'threshold'", "a typo"),
    (
        {"scopes": ("frogs",)},
        ValueError,
        "declared as 'images' whatever name the experiment gives it",
        "the test ids' name of the images scope",
    ),
    (
        {"scopes": "seeds"},
        TypeError,
        r"got the string 'seeds'; write \('seeds',\)",
        "a one-element tuple without comma",
    ),
    ({"id": "X 1"}, ValueError, "without spaces", "ids name tests"),
]


@pytest.mark.parametrize("changes,error,message,why", BAD_CLAIMS, ids=[w for *_, w in BAD_CLAIMS])
def test_a_bad_claim_is_one_clear_error(changes, error, message, why):
    with pytest.raises(error, match=message):
        Claim(**{**GOOD, **changes})


def test_the_good_claim_of_the_table_is_accepted():
    # the table's claims fail for their change alone
    assert Claim(**GOOD).scopes == ("probe", "images", "seeds", "sizes")


def test_repeated_claim_ids_name_both_claims_and_the_fix():
    twin = dataclasses.replace(ARTICLE.claims[1], id=ARTICLE.claims[0].id)
    with pytest.raises(
        ValueError,
        match=r"claim ids repeat: \['C1'\] \(C1: first-layer-processing, "
        r"first-layer-redundancy\); give each claim its own id",
    ):
        dataclasses.replace(ARTICLE, claims=(ARTICLE.claims[0], twin, *ARTICLE.claims[2:]))


# --- closed vocabularies: kind, subject, plot, model_metric (issue 20, item 4) --------


@pytest.mark.parametrize(
    "name,bad,allowed,fix",
    [
        (
            "plot",
            "histgram",
            "'histogram', 'feature_maps', 'input', 'entropy', 'softmax' or 'accuracy'",
            "did you mean plot='histogram'",
        ),
        ("kind", "comapre", "'compare' or 'threshold'", "did you mean kind='compare'"),
        ("subject", "everyone", "'a', 'b', 'input' or 'both'", "e.g. subject='a'"),
        ("model_metric", "accuracy", "None or 'test_accuracy'", "did you mean model_metric='test_accuracy'"),
    ],
)
def test_a_value_outside_a_claim_vocabulary_names_it_the_choices_and_the_fix(name, bad, allowed, fix):
    with pytest.raises(ValueError) as err:
        Claim(**{**GOOD, name: bad})
    assert f"claim 'X1': {name} must be {allowed}, got {bad!r}; " in str(err.value) and fix in str(err.value)


def test_an_unknown_plot_fails_at_declaration_instead_of_drawing_a_histogram():
    # It used to be accepted, and diagnostics.claim_plots drew a histogram for it.
    with pytest.raises(ValueError, match="plot must be 'histogram', 'feature_maps'"):
        Claim(**{**GOOD, "plot": "feature-maps"})


def test_strings_and_members_declare_the_same_claim():
    from cnnclaims.declaration import ClaimKind, ModelMetric, Plot, Subject

    as_strings = Claim(
        **{
            **GOOD,
            "kind": "threshold",
            "threshold": 0.5,
            "subject": "both",
            "plot": "softmax",
            "model_metric": "test_accuracy",
            "scopes": ("probe", "seeds"),
        }
    )
    as_members = Claim(
        **{
            **GOOD,
            "kind": ClaimKind.THRESHOLD,
            "threshold": 0.5,
            "subject": Subject.BOTH,
            "plot": Plot.SOFTMAX,
            "model_metric": ModelMetric.TEST_ACCURACY,
            "scopes": ("probe", "seeds"),
        }
    )
    assert as_strings == as_members and hash(as_strings) == hash(as_members)
    # Stored as members, still equal to (and hashed, formatted as) the strings that older code compares with.
    assert as_strings.kind is ClaimKind.THRESHOLD and as_strings.kind == "threshold"
    assert {"softmax": 1}[as_strings.plot] == 1 and f"{as_strings.plot}" == "softmax"
    assert dataclasses.replace(as_strings, plot="input").plot is Plot.INPUT


def test_claims_key_holds_every_claim_field():
    """A new Claim field is in the verdicts' cache key without an edit of claims_key
    (it listed the fields by hand, so one could be left out)."""
    from cnnclaims.declaration import claims_key

    key = claims_key(ARTICLE)
    assert [list(k) for k in key[-1]] == [[f.name for f in dataclasses.fields(Claim)]] * len(ARTICLE.claims)
    changed = {
        "sesoi_reason": "another reason",
        "figure": "Fig. 9",
        "plot": "softmax",
        "alpha": 0.01,
        "text": "other words",
        "sesoi": 0.5,
        "primary": not ARTICLE.claims[0].primary,
    }
    for name, value in changed.items():
        other = dataclasses.replace(
            ARTICLE, claims=(dataclasses.replace(ARTICLE.claims[0], **{name: value}), *ARTICLE.claims[1:])
        )
        assert claims_key(other) != key, name


def test_figures_is_a_declared_field_and_extra_figures_still_works_with_a_warning():
    def figures(run, folder, progress=print):
        return {}

    assert ARTICLE.figures is not None and dataclasses.replace(ARTICLE, figures=figures).figures is figures
    with pytest.warns(
        DeprecationWarning,
        match=r"extra\['figures'\] is deprecated; declare Experiment\(\.\.\., "
        r"figures=\.\.\.\)",
    ):
        old = dataclasses.replace(ARTICLE, figures=None, extra={"figures": figures})
    assert old.figures is figures
    with pytest.raises(TypeError, match="figures must be a function"):
        dataclasses.replace(ARTICLE, figures="fig.png")
