"""NASGEP: neural architecture search with Gene Expression Programming."""
__version__ = "0.1.0"
