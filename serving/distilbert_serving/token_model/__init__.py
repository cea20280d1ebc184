"""Pure serving logic for the DistilBERT classifier model, importable without Triton.

knobs       one ``config.pbtxt`` parameter defined once (name, type, default, choices, doc); ``ConfigError``
settings    the model's knobs, and model-config ``parameters`` → a frozen ``ServingSettings``
device      the instance's device and threads, what it can compute in, and the process-wide torch defaults
cores       CPU instances sharing the cores among those busy at each layer; OpenMP's idle spin kept short
validation  one request's tensors → checked ``Sequence`` rows, or ``InvalidRequest``
batching    sequence lengths → length-sorted forward chunks with little padding; rows ↔ requests
gemm        the linear layers through the fastest GEMM path of this CPU (timed at load), or int8
packed      the forward over packed real tokens (no compute on padding)
engine      checkpoint → ``ClassifierEngine`` that runs the forward passes
scores      ``problem_type`` → the score function applied to logits
deadlines   the requests' timeouts and the measured speed → forwards short enough for the deadlines
outcomes    what each request of an execute comes to, and the Prometheus counters (shared with the text model)
metrics     the token model's counters: how full and how padded each forward is
"""
