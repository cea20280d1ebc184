"""The overload test (``distilbert_serving.load_test``; ``--help``)."""

from distilbert_serving.load_test import main

raise SystemExit(main())
