"""Serving: the BentoML service that runs in every pod, and packaging of the model into a bento.

`mlgitops.serving.bento` is what the package stage calls; `mlgitops.serving.service` is what
`bentoml serve` imports. The modules in between are pure: the request validator and encoder
(`features`), the compiled model (`model`), the prediction log (`predlog`) and the HTTP app
(`app`).
"""
