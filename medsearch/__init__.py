"""MedSearch: medical search over Chinese and English text, sparse and dense."""

from medsearch.records import Chunk, Document, Hit, MedSearchError

__version__ = "0.1.0"
__all__ = ["Chunk", "Document", "Hit", "MedSearchError", "__version__"]
