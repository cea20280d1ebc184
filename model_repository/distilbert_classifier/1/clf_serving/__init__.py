"""Pure serving logic for the DistilBERT classifier model, importable without Triton.

knobs       one ``config.pbtxt`` parameter defined once (name, type, default, choices, doc); ``ConfigError``
settings    the model's knobs, and model-config ``parameters`` → a frozen ``ServingSettings``
validation  one request's tensors → checked ``Sequence`` rows, or ``InvalidRequest``
batching    sequence lengths → length-sorted forward chunks with little padding; rows ↔ requests
scores      ``problem_type`` → the score function applied to logits
engine      checkpoint → ``ClassifierEngine`` that runs the forward passes
deadlines   the requests' timeouts and the measured speed → forwards short enough for the deadlines
"""
