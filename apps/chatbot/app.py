"""The chatbot app: `gru-suite train|evaluate|predict chatbot`, and the interactive `chat`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apps.chatbot.conversation import Conversation
from apps.chatbot.data import DialogSplits, all_pairs, evaluation_pairs, load_splits, with_unconditioned
from apps.chatbot.model import APP, generate_replies, make_signatures
from apps.chatbot.page import chatbot_tab
from apps.chatbot.quality import (
    DECODING_CANDIDATES,
    HITS_CANDIDATES,
    RANKING,
    REPLY_SAMPLE,
    answer_share,
    choose_decoding,
    distinct_n,
    hits_at_1,
    measure_decodings,
    perplexity,
)
from apps.chatbot.settings import ChatbotEvaluate, ChatbotPredict, ChatbotTrain, ChatConfig, DataSettings
from apps.common.app import Evaluation, Export, Fitting, Trained
from apps.common.config import arguments_configurer, from_arguments
from apps.common.errors import InputError
from apps.common.running import load_export, register_app
from apps.common.seq2seq.app import Seq2SeqApp
from apps.common.seq2seq.pairs import NamedPairs
from apps.common.seq2seq.serving import seq2seq_serving
from apps.common.seq2seq.training import train_seq2seq
from apps.registry import Command, register

DEMO_UTTERANCES = ["hello", "what is your name", "do you like music"]


class ChatbotApp(Seq2SeqApp[DialogSplits]):
    """A GRU encoder-decoder that replies to an utterance (and the turn before it)."""

    name = APP
    help = {
        "train": "train a chatbot (GRU encoder-decoder) on conversation pairs and export it",
        "evaluate": "score a chatbot export: perplexity, hits@1 of 20, distinct-1/2",
        "predict": "run a chatbot export on utterances: one reply each",
    }
    Train = ChatbotTrain
    Evaluate = ChatbotEvaluate
    Predict = ChatbotPredict
    signatures = staticmethod(make_signatures)
    run_texts = staticmethod(generate_replies)
    smoke_args = ("--epochs", "1", "--limit", "200", "--units", "8", "--embedding-dim", "8",
                  "--decoding", "greedy")
    example_inputs = ("hello", "")
    # The sample's replies rarely repeat their prompts' words, so quick mode does
    # not copy (one run each: 60 of 100 corpus prompts answered without, 53 with).
    quick_args = ("--epochs", "20", "--learning-rate", "5e-3", "--dropout", "0", "--no-copy")

    def load_data(self, config: DataSettings) -> DialogSplits:
        return DialogSplits(config.data, *load_splits(config.data))

    def held_out(self, data: DialogSplits) -> NamedPairs:
        """The test split (`--decoding auto` chooses on the validation split)."""
        return NamedPairs(data.name, data.test)

    def evaluation_data(self, config: DataSettings) -> NamedPairs:
        return NamedPairs(config.data, evaluation_pairs(config.data))

    def train(self, config: ChatbotTrain, data: DialogSplits, fitting: Fitting) -> Trained:
        train = with_unconditioned(data.train.head(config.limit), config.unconditioned, config.seed)
        auto = config.decoding == "auto"
        # Room for the utterance, the separator and the turn before it.
        run = train_seq2seq(train, data.validation, config, fitting,
                            max_source_length=2 * config.max_length,
                            decoding_options=DECODING_CANDIDATES[0] if auto else None)
        server, choice = run.server, {}
        if auto:
            prompts = data.validation.head(REPLY_SAMPLE)
            results = measure_decodings(server, prompts)
            server = server.with_decoding(choose_decoding(results).options)
            choice = {"decoding choice": [result.record() for result in results]}
        serving = seq2seq_serving(server, make_signatures(server))
        serving.metadata.update(choice)
        return Trained(run.model, serving, run.epochs_run, {
            "training / validation / test pairs": f"{len(train)} / {len(data.validation)} / {len(data.test)}",
            "decoding": server.decoding.label + (" (chosen on the validation split)" if auto else "")})

    def evaluate(self, export: Export, data: NamedPairs, config: ChatbotEvaluate,
                 output_dir: Path | None) -> Evaluation:
        pairs = data.pairs.head(config.score_limit)
        sources = pairs.sources[:REPLY_SAMPLE]
        replies = self.generate(export, sources)
        score = export.signature("score")
        value = perplexity(score, pairs.sources, pairs.targets)
        distinct = (distinct_n(replies, 1), distinct_n(replies, 2))
        try:
            hits = hits_at_1(score, pairs)
            ranking = {
                f"hits@1 of {hits.candidates}": hits.value,
                "hits@1 by per-token / relative likelihood": f"{hits.per_token:.3f} / {hits.relative:.3f}",
            }
            ranked = (f"hits@1 of {hits.candidates} {hits.value:.3f} by {RANKING} (chance "
                      f"{hits.chance:.2f}; {hits.per_token:.3f} by per-token likelihood)")
        except InputError as error:
            ranking = {f"hits@1 of {HITS_CANDIDATES}": f"not measured: {error}"}
            ranked = f"hits@1 not measured ({error})"
        return Evaluation(
            "held-out perplexity", value,
            {**ranking,
             "distinct-1 / distinct-2": f"{distinct[0]:.3f} / {distinct[1]:.3f}", "pairs": len(pairs),
             "example": f"{sources[0]!r} -> {replies[0]!r}" if sources else ""},
            summary=f"perplexity {value:.2f} on {len(pairs)} pairs of {data.name}; {ranked}; "
            f"distinct-1 {distinct[0]:.3f}, distinct-2 {distinct[1]:.3f} "
            f"over {len(replies)} generated replies",
        )

    def page(self, page) -> None:
        chatbot_tab(page)

    def demo(self, export: Export) -> str:
        data = export.metadata.get("evaluation", {}).get("data", "sample")
        share, prompts = answer_share(export.signature(), all_pairs(data))
        replies = self.generate(export, DEMO_UTTERANCES)
        examples = "; ".join(f"{text!r} -> {reply!r}" for text, reply in zip(DEMO_UTTERANCES, replies))
        return (f"answers {share:.0%} of {prompts} {data} prompts with one of the corpus's "
                f"replies to them; {examples}")


CHATBOT = register_app(ChatbotApp())


def run_chat(args: argparse.Namespace) -> list[str]:
    """`gru-suite chat`: a conversation in the terminal (or over stdin lines)."""
    config = from_arguments(ChatConfig, args)
    export = load_export(CHATBOT, config.model)
    conversation = Conversation(
        export, config.decoding, config.temperature, config.top_k, config.top_p,
        use_context=not config.no_context,
    )
    interactive = sys.stdin.isatty()
    replies: list[str] = []
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())

        print("Type a message; /reset forgets the conversation, /quit (or Ctrl-D) leaves.")
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except EOFError:
            break
        if not interactive and not line:
            break
        text = line.strip()
        if not text:
            continue
        if text == "/quit":
            break
        if text == "/reset":
            conversation.reset()
            if interactive:
                print("(conversation reset)")
            continue
        answer = conversation.reply(text)
        replies.append(answer)
        print(f"bot> {answer}" if interactive else answer, flush=True)
    return replies


register(Command("chat", None, "talk with an exported chatbot in the terminal",
                 arguments_configurer(ChatConfig), run_chat))
