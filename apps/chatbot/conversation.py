"""A conversation with a chatbot export: each reply becomes the next turn's context."""

from __future__ import annotations

import tensorflow as tf

from apps.chatbot.retrieval import GENERATED
from apps.common.app import Export
from apps.common.seq2seq.settings import DecodingOptions


class Conversation:
    """Replies turn by turn, with the bot's previous reply as the next turn's context.

    Decoding settings left as ""/None are the export's own (from its metadata).
    """

    def __init__(self, export: Export, decoding: str = "", temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None, use_context: bool = True):
        own = DecodingOptions(**export.metadata.get("decoding", {}))
        self.converse = export.signature("converse")
        self.settings = {
            "decoding": tf.constant(decoding),
            "temperature": tf.constant(own.temperature if temperature is None else temperature,
                                       tf.float32),
            "top_k": tf.constant(own.top_k if top_k is None else top_k, tf.int32),
            "top_p": tf.constant(own.top_p if top_p is None else top_p, tf.float32),
        }
        self.use_context = use_context
        self.context = ""
        self.source = ""  # "retrieved" or "generated": where the last reply came from

    def reset(self) -> None:
        self.context = ""

    def reply(self, text: str) -> str:
        """The export's reply to `text`; `source` then says where it came from."""
        result = self.converse(
            text=tf.constant([text]), context=tf.constant([self.context]), **self.settings
        )
        answer = result["reply"].numpy()[0].decode("utf-8")
        # A generative export has no "source": every reply is generated.
        self.source = result["source"].numpy()[0].decode("utf-8") if "source" in result else GENERATED
        if self.use_context:
            self.context = answer
        return answer
