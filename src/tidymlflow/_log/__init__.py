"""Logging building blocks shared by the layers: single and per-group fits and their
``evaluate()``, resampling and tuning runs, ranked comparisons (tuners and workflow sets) and
plots. Each takes a :class:`tidymlflow.layer.Call` and a run writer and logs what the pure
readers in ``tidymlflow._read`` extract; none of them patches anything."""
