"""The compression service: ``tersify serve``, HTTP in front of a Compressor."""

from tersify.service.app import create_app

__all__ = ["create_app"]
