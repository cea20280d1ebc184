"""The text model: raw text in, the token model's classification out. Only ``model`` needs Triton.

model      ``TritonPythonModel``: execute as stages (decode → validate → tokenize → forward via BLS → encode)
settings   the model's knobs (``TokenizeOptions``, ``TextLimits``), model-config ``parameters`` → a frozen
           ``TextSettings``, and the facts read from the token model at load (its ``max_batch_size``, its
           checkpoint's labels)
validation one request's BYTES tensors and parameters → checked ``TextItem`` rows (sizes first), or ``InvalidText``
encoding   rows of every request of an execute → token ids in one batched fast-tokenizer call per
           option group, checked against the model's maximum length, padded per request
bounded    how much of a long text that call reads: only what can reach the model, with the same tokens
batching   rows of all requests → chunks for the token model, its answers split back per request
relay      the token model's refusals and failures → this model's errors
metrics    the text model's counters: rows tokenized, time spent, requests dropped
"""
