"""A tiny, randomly initialised causal LM with a byte-level BPE tokenizer, built from scratch.

It exercises the real export path (a local Hugging Face folder -> ONNX scorer) in seconds,
and its tokenizer splits Chinese characters into byte tokens like real ones do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from texts import sample_text

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def byte_level_bpe(
    vocab_size: int = 600, kinds: tuple[str, ...] = ("english", "code", "mixed")
) -> Tokenizer:
    """A byte-level BPE tokenizer (GPT-2's, SmolLM2's and Qwen's kind), trained in a blink.

    Its tokens may end inside a character and the next one start inside it too, so their
    character offsets overlap: what unit grouping exists for.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([sample_text(kind, 20_000, 7) for kind in kinds], trainer)
    return tokenizer


def whitespace_wordpiece() -> Tokenizer:
    """A BERT-style tokenizer: whitespace is dropped, so a text's first token may start
    after position 0 and characters may lie between tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordPieceTrainer(
        vocab_size=800, special_tokens=["[UNK]"], show_progress=False
    )
    corpus = [sample_text(kind, 20_000, 7) for kind in ("english", "code", "mixed")]
    tokenizer.train_from_iterator(corpus, trainer)
    return tokenizer


def build_tiny_model(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = byte_level_bpe()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>")

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        initializer_range=0.3,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
