"""The decoding core: one room for what turns a session's split into decoders and scores.

- `task`: what a target is (an image class; a cursor velocity), its loss, metrics with
  intervals, chance level, shots and prediction table (`ClassificationTask`, `RegressionTask`)
- `training`: the training loop (`fit`, `fit_fixed`, `predict_logits`)
- `session`: one model on one session: build from params, train, score
- `fewshot`: few-shot draws, the strict/transductive protocol and the loop over draws
- `batched`: a k's few-shot draws trained together as one vmapped batch
- `shared`: one decoder shared across sessions (read-ins + core) and new read-ins
- `transfer`: the shared decoder's few-shot transfer to held-out mice, by folds
- `adapt`: fit a new session's read-in on a trained shared decoder (also a command)

The model registry (name -> params section, model class) is `npdecode.models`.
"""
