"""Export a checkpoint into a Triton model repository (``distilbert_serving.export``; ``--help``)."""

from distilbert_serving.export import main

main()
