"""The JSON description of an unfitted workflow (tidymlflow._read.restore): what it holds, what it
refuses and names, and that it rebuilds the same workflow through the library's classes."""

from __future__ import annotations

import json
import math

import pytest

from tidymlflow._read import restore
from tidymlflow.results import rebuild


def _wf(**args):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(**args))


def test_a_formula_workflow_round_trips_through_json():
    from py_tune import tune

    wf = _wf(penalty=tune("p"), mixture=0.25)
    text = json.dumps(restore.describe(wf))
    back = rebuild(json.loads(text))
    assert type(back) is type(wf) and back.preprocessor == wf.preprocessor
    assert (back.spec.model_type, back.spec.engine, back.spec.mode) == (wf.spec.model_type, wf.spec.engine,
                                                                        wf.spec.mode)
    assert back.spec.args["mixture"] == 0.25
    assert type(back.spec.args["penalty"]) is type(wf.spec.args["penalty"])
    assert back.spec.args["penalty"].id == "p"
    assert restore.describe(back) == restore.describe(wf)


@pytest.mark.parametrize("value, same", [
    ([1, 2.5, "a", None, True], lambda v: v == [1, 2.5, "a", None, True]),
    ((1, 2), lambda v: v == (1, 2) and isinstance(v, tuple)),
    (math.inf, lambda v: v == math.inf),
])
def test_plain_arguments_keep_their_type(value, same):
    description = json.loads(json.dumps(restore.describe(_wf(penalty=value))))
    assert same(rebuild(description).spec.args["penalty"])


def test_what_json_cannot_rebuild_is_named():
    from py_parsnip import linear_reg
    from py_recipes import all_numeric_predictors, recipe
    from py_workflows import workflow

    with pytest.raises(restore.NotDescribable, match="recipe"):
        restore.describe(workflow().add_recipe(recipe().step_normalize(all_numeric_predictors()))
                         .add_model(linear_reg()))
    with pytest.raises(restore.NotDescribable, match="argument 'penalty' is a object"):
        restore.describe(_wf(penalty=object()))
    with pytest.raises(restore.NotDescribable, match="without a model spec"):
        restore.describe(object())
