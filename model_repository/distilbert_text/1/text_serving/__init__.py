"""Pure serving logic for the raw-text model, importable without Triton.

settings   model-config ``parameters`` → a frozen ``TextSettings``
validation one request's BYTES tensors and parameters → checked ``TextItem`` rows, or ``InvalidText``
encoding   rows of every request of an execute → token ids in one batched fast-tokenizer call per
           option group, checked against the model's maximum length, padded per request
"""
