"""``python -m distilbert_client``: the ``distilbert-classify`` command."""

import sys

from .cli import main

sys.exit(main())
