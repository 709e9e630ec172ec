"""autolog(log_models=True): every single fit and per-group fit as an MLflow model linked to its
run, registered when asked, found again with tidymlflow.run_id()."""

from __future__ import annotations

import pandas as pd
import pytest

import tidymlflow


def _wf():
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg())


def test_log_models_links_a_loadable_model_to_the_fit_run(store, split):
    import mlflow

    train, test = split
    tidymlflow.autolog(log_models=True, log_plots=False)
    fit = _wf().fit(train)
    run = store.client.get_run(tidymlflow.run_id(fit))
    uri = run.data.tags["tidymlflow.model_uri"]
    assert uri.startswith("models:/")
    model = mlflow.pyfunc.load_model(uri)
    pd.testing.assert_frame_equal(model.predict(test), fit.predict(test).reset_index(drop=True))
    logged = mlflow.get_logged_model(uri.split("/", 1)[1].lstrip("/"))
    assert logged.source_run_id == run.info.run_id and logged.name == "model"


def test_registered_model_name_registers_every_logged_model(store, split, data):
    import mlflow

    tidymlflow.autolog(log_models=True, registered_model_name="sales", log_plots=False)
    fit = _wf().fit(split[0])
    nested = _wf().fit_nested(data.drop(columns=["date"]), "store", per_group_prep=False)
    versions = sorted(store.client.search_model_versions("name = 'sales'"), key=lambda v: int(v.version))
    assert [v.run_id for v in versions] == [tidymlflow.run_id(fit), tidymlflow.run_id(nested)]
    store.client.set_registered_model_alias("sales", "champion", versions[1].version)
    model = mlflow.pyfunc.load_model("models:/sales@champion")
    frame = data.drop(columns=["date"]).iloc[::7]
    expected = nested.predict(frame)
    got = model.predict(frame)
    assert got[".pred"].to_numpy() == pytest.approx(expected[".pred"].to_numpy(), rel=1e-12, abs=1e-12)


def test_without_log_models_nothing_is_logged_and_bad_names_raise(store, split):
    tidymlflow.autolog(log_plots=False)
    fit = _wf().fit(split[0])
    run = store.client.get_run(tidymlflow.run_id(fit))
    assert "tidymlflow.model_uri" not in run.data.tags
    assert tidymlflow.run_id(object()) is None
    with pytest.raises(ValueError, match="registered_model_name needs log_models=True"):
        tidymlflow.autolog(registered_model_name="m")
    with pytest.raises(TypeError, match="registered_model_name"):
        tidymlflow.autolog(log_models=True, registered_model_name="")
