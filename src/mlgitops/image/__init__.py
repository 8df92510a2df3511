"""Build, run and push the OCI image of a bento with buildah, without Docker (docs/image.md)."""

from mlgitops.image.base import BaseImage, BaseRecipe, ensure_base_image
from mlgitops.image.build import ImageResult, build_image, image_ref
from mlgitops.image.cache import default_cache_dir
from mlgitops.image.wheelhouse import Wheelhouse, ensure_wheelhouse

__all__ = [
    "BaseImage",
    "BaseRecipe",
    "ImageResult",
    "Wheelhouse",
    "build_image",
    "default_cache_dir",
    "ensure_base_image",
    "ensure_wheelhouse",
    "image_ref",
]
