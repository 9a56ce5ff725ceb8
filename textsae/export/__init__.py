"""Trained runs in other libraries' formats (sentence-transformers); imported only when exporting."""
