"""``python -m tidymlflow._writer``: the writer process (:func:`tidymlflow._writer.server.main`)."""

from tidymlflow._writer.server import main

main()
