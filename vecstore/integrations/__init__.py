"""Adapters that let other frameworks use a vecstore collection: LangChain
(``integrations.langchain``), LlamaIndex (``integrations.llamaindex``) and Arrow / pandas
(``integrations.arrow``). Each imports its framework when it is itself imported, never from
here, so ``import vecstore`` stays cheap; they use only vecstore's public API.
"""
