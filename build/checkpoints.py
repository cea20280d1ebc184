"""Write offline DistilBERT checkpoints for tests and benchmarks (``distilbert_serving.checkpoints``; ``--help``)."""

from distilbert_serving.checkpoints import main

main()
