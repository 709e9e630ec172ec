"""The warning and error categories of tidymlflow."""


class TidyMLflowWarning(UserWarning):
    """A logging problem, or a note about what was logged; never raised for the user's call."""


class TidyMLflowError(RuntimeError):
    """tidymlflow and the installed py-tidymodels (or a layer) disagree; raised in strict mode."""
