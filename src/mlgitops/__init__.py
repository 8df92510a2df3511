"""mlgitops: one Git commit fixes the data, the model, the bento, the image and the manifests."""

__version__ = "0.1.0"
