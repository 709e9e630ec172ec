"""``python -m tidymlflow sync``."""

from tidymlflow.sync import main

raise SystemExit(main())
