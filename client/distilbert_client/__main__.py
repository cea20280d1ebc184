"""``python -m distilbert_client``: the ``distilbert-classify`` command."""

from .cli import main

raise SystemExit(main())
