"""Fuzz every public entry point on NumPy arrays: native and compat (issue 13).

Hostile combinations of shapes, dtypes, layouts, values and options (``fuzzing.py`` draws
them and says what each call must do): each call returns the plain reference's result or
raises a TypeError/ValueError naming one of its arguments, never anything else, and leaves its
inputs unchanged. Seeded and short; ``ROIOPS_FUZZ_EXAMPLES=2000`` runs 2000 random examples
per entry point.
"""
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fuzzing


@pytest.mark.parametrize("name", fuzzing.NUMPY_ENTRY_POINTS)
@fuzzing.SETTINGS
@given(data=st.data())
def test_entry_point_keeps_its_promises(name, data):
    fuzzing.check(data.draw(fuzzing.calls(name, fuzzing.NumpyMaker()), label="call"))
