"""Serve HuggingFace DistilBERT sequence classifiers on Triton Inference Server.

One installed package holds all the server-side code; Triton runs it through two Python-based
backends (``backends``), so a model repository holds configuration and checkpoints only.

contract     the wire contract shared with the client: names, problem types, refusal reasons (no torch)
knobs        one ``config.pbtxt`` parameter defined once (name, type, default, choices, doc); ``ConfigError``
outcomes     what each request of an execute comes to, and the Prometheus counters (both models)
deadlines    the requests' timeouts and the measured speed → forwards short enough for the deadlines
token_model  the token model: token ids in, logits and scores out (backend ``distilbert``)
text_model   the text model: strings in, tokenized, sent to the token model (backend ``distilbert_text``)
backends     the two backends' ``model.py``, installed into a server's backend directory
export       checkpoint → model-repository configuration (``build/export.py``)
checkpoints  offline checkpoints for tests and benchmarks (``build/checkpoints.py``)
server_flags the server's flags, one source for the local launcher and the container's entrypoint
launch       the local ``tritonserver`` from the ``nvidia-pytriton`` wheel (``build/launch.py``)

Importing this package or ``contract`` loads neither torch nor Triton; the modules that need
them import them themselves.
"""
