"""The knowledge base: product documents → chunks → a persisted hybrid (FAISS + BM25) index.

Headless: nothing here imports Textual.
"""

from supportdesk.kb.index import KnowledgeBase, ReloadReport
from supportdesk.kb.search import SearchHit

__all__ = ["KnowledgeBase", "ReloadReport", "SearchHit"]
