"""Pure serving logic for the raw-text model, importable without Triton.

knobs      one ``config.pbtxt`` parameter defined once (name, type, default, choices, doc); ``ConfigError``
settings   the model's knobs (``TokenizeOptions``), model-config ``parameters`` → a frozen ``TextSettings``,
           and the facts read from the token model at load (its ``max_batch_size``, its checkpoint's labels)
validation one request's BYTES tensors and parameters → checked ``TextItem`` rows, or ``InvalidText``
encoding   rows of every request of an execute → token ids in one batched fast-tokenizer call per
           option group, checked against the model's maximum length, padded per request
batching   rows of all requests → chunks for the token model, its answers split back per request
relay      the token model's refusals and failures → this model's errors
outcomes   what each request of an execute comes to, and the Prometheus counters (shared with the token model)
metrics    the text model's counters: rows tokenized, time spent, requests dropped
"""
