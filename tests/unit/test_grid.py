"""The one grammar of a sweep's grid (client/flightbase/grid.py), as the CLI, the API and the dialog send it."""

import pytest

from flightbase.grid import SweepError, parse_grid


@pytest.mark.parametrize(("text", "grid"), [
    ("lr=[0.1,0.01] batch=[32,64]", {"lr": [0.1, 0.01], "batch": [32, 64]}),
    (" lr=[0.1,0.01]\nwarmup=[true,false] ", {"lr": [0.1, 0.01], "warmup": [True, False]}),  # the dialog's lines
    ("opt=[adam, sgd] bs=[32]", {"opt": ["adam", "sgd"], "bs": [32]}),
    ("name=['a b',\"c\"]", {"name": ["a b", "c"]}),  # one pair of quotes removed, spaces kept
    ("lr=[1e-3,2]", {"lr": [0.001, 2]}),
    ("flag=[True,FALSE,maybe]", {"flag": [True, False, "maybe"]}),
])
def test_parses(text, grid):
    assert parse_grid(text) == grid


@pytest.mark.parametrize(("text", "field", "words"), [
    ("", "sweep.grid", "is empty"),
    ("lr=0.1,0.01", "sweep.grid", "expected NAME=[v1,v2,...], got 'lr=0.1,0.01'"),
    ("lr=[]", "sweep.grid.lr", "at least one value"),
    ("lr=[1] lr=[2]", "sweep.grid.lr", "named twice"),
    ("1lr=[1]", "sweep.grid", "parameter name '1lr'"),
    ("lr=[1] junk", "sweep.grid", "got 'junk'"),
])
def test_refuses_naming_the_field(text, field, words):
    with pytest.raises(SweepError) as caught:
        parse_grid(text)
    assert caught.value.field == field and words in caught.value.message, caught.value

