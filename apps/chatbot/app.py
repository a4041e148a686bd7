"""The chatbot app: `gru-suite train|evaluate|predict chatbot`, and the interactive `chat`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apps.chatbot.conversation import Conversation
from apps.chatbot.data import DialogSplits, all_pairs, evaluation_pairs, load_splits, with_unconditioned
from apps.chatbot.model import (APP, generate_replies, make_retrieval_signatures, make_signatures,
                                replies_with_sources)
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
    rank_hits_at_1,
    tfidf_hits_at_1,
)
from apps.chatbot.retrieval import (
    GENERATED,
    RETRIEVED,
    RetrievalServer,
    read_replies,
    train_retriever,
    unique_replies,
    validation_threshold,
)
from apps.chatbot.settings import ChatbotEvaluate, ChatbotPredict, ChatbotTrain, ChatConfig, DataSettings
from apps.common.app import Evaluation, Export, Fitting, Serving, Trained
from apps.common.config import arguments_configurer, from_arguments
from apps.common.errors import InputError
from apps.common.running import load_export, register_app
from apps.common.seq2seq.app import Seq2SeqApp
from apps.common.seq2seq.pairs import NamedPairs
from apps.common.seq2seq.serving import seq2seq_serving
from apps.common.seq2seq.training import train_seq2seq
from apps.registry import Command, register

DEMO_UTTERANCES = ["hello", "what is your name", "do you like music"]
# A prompt is an utterance, the separator and the turn before it: twice a reply's room.
MAX_PROMPT_FACTOR = 2


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
    # The shared tiny exports are generative, the kind that converts to LiteRT and ONNX;
    # tests/test_chatbot_retrieval.py trains the other modes.
    smoke_args = ("--epochs", "1", "--limit", "200", "--units", "8", "--embedding-dim", "8",
                  "--decoding", "greedy", "--mode", "generative")
    example_inputs = ("hello", "")
    # Quick mode shows the generator memorizing the sample (`answer_share` over the whole corpus):
    # a dual encoder stops on its validation ranking and answered 5 of 100 corpus prompts with
    # their own replies, and the block split, which holds out whole files of the sample, 40
    # (2026-12-06), so it trains on the random split. The sample's replies rarely repeat their
    # prompts' words, so it does not copy (one run each: 60 of 100 answered without, 53 with).
    quick_args = ("--mode", "generative", "--split", "random", "--epochs", "20", "--learning-rate", "5e-3",
                  "--dropout", "0", "--no-copy")

    def load_data(self, config: DataSettings) -> DialogSplits:
        return DialogSplits(config.data, *load_splits(config.data, config.split))

    def held_out(self, data: DialogSplits) -> NamedPairs:
        """The test split (`--decoding auto` chooses on the validation split)."""
        return NamedPairs(data.name, data.test)

    def evaluation_data(self, config: DataSettings) -> NamedPairs:
        return NamedPairs(config.data, evaluation_pairs(config.data, config.split))

    def train(self, config: ChatbotTrain, data: DialogSplits, fitting: Fitting) -> Trained:
        counts = f"{len(data.train.head(config.limit))} / {len(data.validation)} / {len(data.test)}"
        extra = {"mode": config.mode}
        run = server = None
        if config.mode != "generative":  # read first, so a bad --replies file costs no training
            index_source = str(config.replies or "the training replies")
            candidates = unique_replies(read_replies(config.replies) if config.replies
                                        else data.train.head(config.limit).targets, index_source)
        choice = {}  # the decoding comparison, kept in the metadata
        if config.mode != "retrieval":
            run, server, choice = self._train_generator(config, data, fitting)
            extra["decoding"] = server.decoding.label + (" (chosen on the validation split)" if choice else "")
        if config.mode == "generative":
            serving = seq2seq_serving(server, make_signatures(server))
            serving.metadata.update(mode=config.mode, **choice)
            extra["training / validation / test pairs"] = counts
            return Trained(run.model, serving, run.epochs_run, extra)
        retriever, epochs = train_retriever(
            data.train.head(config.limit), data.validation, config,
            fitting if run is None else fitting.part("retrieval"), max_prompt=MAX_PROMPT_FACTOR * config.max_length)
        index = RetrievalServer(retriever, candidates)
        threshold = validation_threshold(retriever, data.validation, config.seed) if server else None
        signatures = make_retrieval_signatures(index, server, threshold)
        retrieval = {"index": index_source, "replies": len(candidates),
                     "threshold": threshold, "shared_encoder": not config.separate_encoders,
                     "temperature": config.retrieval_temperature}
        if server is None:
            serving = Serving(signatures, [index], metadata={})
        else:
            serving = seq2seq_serving(server, signatures)
            serving.tracked.append(index)
        serving.metadata.update(mode=config.mode, retrieval=retrieval, **choice)
        extra.update({"training / validation / test pairs": counts, "dual encoder epochs": epochs,
                      "dual encoder parameters": retriever.model.count_params(),
                      "reply index": f"{retrieval['replies']} replies from {retrieval['index']}"})
        if threshold is not None:
            extra["hybrid threshold (chosen on validation)"] = round(threshold, 4)
        return Trained(retriever.model if run is None else run.model, serving,
                       epochs if run is None else run.epochs_run, extra)

    def _train_generator(self, config: ChatbotTrain, data: DialogSplits, fitting: Fitting):
        """The encoder-decoder: (run, its server with the export's decoding, the metadata of
        `--decoding auto`'s comparison, empty for a fixed decoding)."""
        train = with_unconditioned(data.train.head(config.limit), config.unconditioned, config.seed)
        auto = config.decoding == "auto"
        # Room for the utterance, the separator and the turn before it.
        run = train_seq2seq(train, data.validation, config, fitting,
                            max_source_length=MAX_PROMPT_FACTOR * config.max_length,
                            decoding_options=DECODING_CANDIDATES[0] if auto else None)
        if not auto:
            return run, run.server, {}
        results = measure_decodings(run.server, data.validation.head(REPLY_SAMPLE))
        server = run.server.with_decoding(choose_decoding(results).options)
        return run, server, {"decoding choice": [result.record() for result in results]}

    def evaluate(self, export: Export, data: NamedPairs, config: ChatbotEvaluate,
                 output_dir: Path | None) -> Evaluation:
        pairs = data.pairs.head(config.score_limit)
        sources = pairs.sources[:REPLY_SAMPLE]
        replies, origins = replies_with_sources(export.signature(), sources)
        names = set(export.signatures)
        details: dict[str, object] = {"mode": export.metadata.get("mode", "generative")}
        value = None
        if "score" in names:
            value = perplexity(export.signature("score"), pairs.sources, pairs.targets)
            details["perplexity"] = value
        distinct = (distinct_n(replies, 1), distinct_n(replies, 2))
        try:
            floor = tfidf_hits_at_1(pairs)
            if "rank" in names:
                hits, how = rank_hits_at_1(export.signature("rank"), pairs), "the dual encoder"
            else:
                likelihood = hits_at_1(export.signature("score"), pairs)
                hits, how = likelihood.value, f"{RANKING} ({likelihood.per_token:.3f} by per-token likelihood)"
                details["hits@1 by per-token / relative likelihood"] = (
                    f"{likelihood.per_token:.3f} / {likelihood.relative:.3f}")
            details[f"hits@1 of {HITS_CANDIDATES}"] = hits
            details[f"hits@1 of {HITS_CANDIDATES}, TF-IDF"] = floor
            ranked = (f"hits@1 of {HITS_CANDIDATES} {hits:.3f} by {how}, TF-IDF {floor:.3f} on the same "
                      f"candidates (chance {1 / HITS_CANDIDATES:.2f})")
        except InputError as error:
            hits = None
            details[f"hits@1 of {HITS_CANDIDATES}"] = f"not measured: {error}"
            ranked = f"hits@1 not measured ({error})"
        if details["mode"] != "generative":
            details["replies retrieved / generated"] = f"{origins.count(RETRIEVED)} / {origins.count(GENERATED)}"
        details.update({"distinct-1 / distinct-2": f"{distinct[0]:.3f} / {distinct[1]:.3f}", "pairs": len(pairs),
                        "example": f"{sources[0]!r} -> {replies[0]!r}" if sources else ""})
        headline = ("held-out perplexity", value) if value is not None else (f"hits@1 of {HITS_CANDIDATES}", hits)
        return Evaluation(
            headline[0], headline[1], details,
            summary=(f"perplexity {value:.2f}; " if value is not None else "")
            + f"{ranked} on {len(pairs)} pairs of {data.name}; distinct-1 {distinct[0]:.3f}, "
            f"distinct-2 {distinct[1]:.3f} over {len(replies)} replies",
        )

    def portable_serving(self, export: Export) -> Serving:
        mode = export.metadata.get("mode", "generative")
        if mode != "generative":
            raise InputError(f"{export.path}: a {mode} chatbot answers from an index of replies, which LiteRT "
                             "and ONNX files do not hold; convert a --mode generative export")
        return super().portable_serving(export)

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
        print(f"bot> {answer}  ({conversation.source})" if interactive else f"{answer}\t{conversation.source}",
              flush=True)
    return replies


register(Command("chat", None, "talk with an exported chatbot in the terminal",
                 arguments_configurer(ChatConfig), run_chat))
