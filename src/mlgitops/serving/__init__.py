"""Serving: the BentoML service that runs in every pod, and nothing else.

`mlgitops.serving.service` is what `bentoml serve` imports. The modules in between are pure: the
request validator and encoder (`features`), the compiled model (`model`), the prediction log
(`predlog`) and the HTTP app (`app`). File names shared with packaging live in `layout`.
"""
