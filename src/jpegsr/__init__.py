"""jpegsr: x4 super-resolution of heavily compressed JPEGs."""

__version__ = "0.1.0"
