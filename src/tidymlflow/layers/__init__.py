"""Built-in layers, one module per py-tidymodels package, registered as entry points."""
