"""The token model: token ids in, logits and scores out. Only ``model`` needs Triton.

model       ``TritonPythonModel``: execute as stages (drop abandoned → decode → validate → forward → encode)
settings    the model's knobs, and model-config ``parameters`` → a frozen ``ServingSettings``
device      the instance's device and threads, what it can compute in, and the process-wide torch defaults
cores       CPU instances sharing the cores among those busy at each layer; OpenMP's idle spin kept short
validation  one request's tensors → checked ``Sequence`` rows, or ``InvalidRequest``
batching    sequence lengths → length-sorted forward chunks with little padding; rows ↔ requests
gemm        the linear layers through the fastest GEMM path of this CPU (timed at load), or int8
packed      the forward over packed real tokens (no compute on padding)
engine      checkpoint → ``ClassifierEngine`` that runs the forward passes
scores      ``problem_type`` → the score function applied to logits
metrics     the token model's counters: how full and how padded each forward is
"""
