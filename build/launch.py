"""Start the local Triton server on a model repository (``distilbert_serving.launch``; ``--help``)."""

from distilbert_serving.launch import main

raise SystemExit(main())
