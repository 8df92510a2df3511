"""The pipeline's stages, one module each, run by `dvc repro` through `mlgitops stage NAME`.

Each module reads params.yaml and its inputs, and writes its outputs atomically (dvc.yaml lists
them with the modules each stage imports).
"""
