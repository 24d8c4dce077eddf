"""Audit image-classification datasets laid out as ROOT/<class>/<images>."""

__version__ = "0.1.0"
