"""The ONNX Runtime embedder: exported locally from the shipped weights, same vectors as torch."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from supportdesk.cpu import chosen_path
from supportdesk.kb.embeddings import MODEL_NAME, MiniLMEmbeddings
from supportdesk.kb.onnx_embedder import OnnxMiniLMEmbeddings
from supportdesk.settings import EmbeddingSettings

TEXTS = ["How do I factory reset a Perch satellite?", "The amber light means the router has no internet.",
         "Warranty: two years from the date of purchase, parts and labour."]


@pytest.mark.slow  # exports and loads the real model
def test_float32_export_gives_the_torch_vectors(tmp_path):
    onnx = OnnxMiniLMEmbeddings(precision="float32", cache_dir=tmp_path)
    torch = MiniLMEmbeddings(precision="float32")
    a = np.asarray(onnx.embed_documents(TEXTS))
    b = np.asarray(torch.embed_documents(TEXTS))
    assert np.all(np.sum(a * b, axis=1) > 0.9999)
    assert onnx.info.name == MODEL_NAME and onnx.info.dim == 384
    assert list(tmp_path.glob("*.onnx")), "the export is cached for the next process"
    again = OnnxMiniLMEmbeddings(precision="float32", cache_dir=tmp_path)  # reuses the file
    assert np.allclose(again.embed_query(TEXTS[0]), a[0], atol=1e-5)


@pytest.mark.slow  # exports and loads the real model
def test_int8_is_a_different_vector_space_with_the_same_ranking(tmp_path):
    int8 = OnnxMiniLMEmbeddings(precision="int8", cache_dir=tmp_path)
    assert int8.info.name != MODEL_NAME  # an index built in fp32 is re-embedded, never mixed
    docs = np.asarray(int8.embed_documents(TEXTS))
    query = np.asarray(int8.embed_query("my extender keeps dropping, how to reset it"))
    assert int(np.argmax(docs @ query)) == 0


def test_precision_must_fit_the_runtime():
    with pytest.raises(ValidationError, match="int8"):
        EmbeddingSettings(runtime="torch", precision="int8")
    with pytest.raises(ValidationError, match="bfloat16"):
        EmbeddingSettings(runtime="onnx", precision="bfloat16")
    assert chosen_path(EmbeddingSettings(runtime="onnx")) == ("onnx", "float32")


@pytest.mark.slow  # the real model
def test_a_build_on_every_worker_gives_each_text_its_own_vector_in_order(tmp_path):
    """Texts run concurrently on the workers (and on one worker while an answer is written)
    come back in the caller's order, each the vector of that text embedded alone."""
    embedder = OnnxMiniLMEmbeddings(precision="float32", threads=2, cache_dir=tmp_path)
    texts = [f"{text} (variant {i})" for i in range(5) for text in TEXTS]
    alone = np.asarray([embedder.embed_query(text) for text in texts])
    together = np.asarray(embedder.embed_documents(texts))
    assert together.shape == (15, 384)
    assert np.allclose(together, alone, atol=1e-5)
    embedder.set_threads(1)
    assert np.allclose(np.asarray(embedder.embed_documents(texts)), alone, atol=1e-5)
    embedder.set_threads(8)  # never more workers than it was made with
    assert embedder._workers == 2
