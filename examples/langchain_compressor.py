"""LangChain: TersifyCompressor in place of LLMLinguaCompressor (tersify[langchain])."""

from langchain_core.documents import Document

from tersify import Compressor
from tersify.integrations.langchain import TersifyCompressor

documents = [
    Document(page_content="The library's roof was repaired in March.", metadata={"id": 1}),
    Document(page_content="The committee approved the budget on Tuesday.", metadata={"id": 2}),
    Document(page_content="Tea is served in the reading room at four.", metadata={"id": 3}),
]
compressor = TersifyCompressor(compressor=Compressor("smollm2-135m"), rate=0.5)
# In a pipeline: ContextualCompressionRetriever(base_compressor=compressor, base_retriever=...)
for doc in compressor.compress_documents(documents, query="When was the budget approved?"):
    print(doc.metadata["tersify_rank"], doc.metadata["tersify_kept_fraction"], doc.page_content)
