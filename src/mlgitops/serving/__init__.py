"""Serving: the BentoML service that runs in every pod.

`mlgitops.serving.service` is what `bentoml serve` imports; it mounts the HTTP app (`app`: routes
and plumbing) and gives each worker its state (`runtime`: pin, model loading, metadata, request
ids, logs). Below those: the request validator and encoder (`features`), the scorer choice and
its checks (`model`, which compiles its fast path with `mlgitops.export`'s IR and ONNX graph),
the credentials and signed request ids (`auth`), recording labels (`feedback`), online statistics
and the join cache (`stats`), the OpenAPI document (`openapi`), the prediction log (`predlog`) and
metrics (`metrics`). File names shared with packaging live in `layout`. Nothing here starts a
server: `mlgitops serve` (operator side, not in the bento) runs `bentoml serve` on this package.
"""
