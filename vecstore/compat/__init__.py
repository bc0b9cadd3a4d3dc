"""Other vector stores' APIs over vecstore, for users who know them: ``compat.chroma``.
Nothing is imported from here; import the submodule itself."""
