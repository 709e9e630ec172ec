"""Warning category of tidymlflow."""


class TidyMLflowWarning(UserWarning):
    """A logging problem, or a note about what was logged; never raised for the user's call."""
