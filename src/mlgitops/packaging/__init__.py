"""Packaging: put the trained model into the BentoML store and build the bento that serves it.

Runs at build time (the package stage), never in the pod: the runtime reads only the file names
of `mlgitops.serving.layout`.
"""
