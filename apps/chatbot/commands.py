"""The chatbot app: `gru-suite train|evaluate|predict chatbot`, and the interactive `chat`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import tensorflow as tf

from apps.chatbot.data import all_pairs, evaluation_pairs, load_splits, with_unconditioned
from apps.chatbot.model import APP, generate_replies, make_signatures
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
from apps.common.app import (
    App,
    Evaluation,
    Export,
    ExportConfig,
    Fitting,
    Splits,
    Trained,
    batch_size_setting,
    epochs_setting,
    load_export,
    register_app,
    units_setting,
)
from apps.common.config import (
    Config,
    DataSource,
    arguments_configurer,
    at_least,
    fraction,
    from_arguments,
    positive,
    setting,
)
from apps.common.errors import InputError
from apps.common.seq2seq.serving import STRATEGIES, DecodingOptions, seq2seq_serving
from apps.common.seq2seq.training import (
    Seq2SeqEvaluate,
    Seq2SeqTrain,
    decoding_setting,
    max_length_setting,
    train_seq2seq,
    vocabulary_size_setting,
)
from apps.registry import Command, register

DEMO_UTTERANCES = ["hello", "what is your name", "do you like music"]


@dataclasses.dataclass(frozen=True)
class DataSettings(Config):
    data: str = setting(
        "sample", "sample (the chatterbot-corpus English conversations), cornell (Cornell "
        "Movie-Dialogs), a tab-separated pairs file, PATH.enc (with PATH.dec), or "
        "UTTERANCES,REPLIES line-aligned files",
        check=DataSource(("sample", "cornell"), pairs=True), group="data")


@dataclasses.dataclass(frozen=True)
class ChatbotTrain(Seq2SeqTrain, DataSettings):
    epochs: int = epochs_setting(15)
    batch_size: int = batch_size_setting(32)
    units: int = units_setting(128)
    max_length: int = max_length_setting(24)
    vocabulary_size: int = vocabulary_size_setting(8000)
    unconditioned: float = setting(
        0.0, "add this share of the training replies again with an empty prompt, so the model "
        "also learns P(reply) alone, which the relative-likelihood ranking divides by",
        check=fraction(one=True), group="sequence to sequence")
    copy: bool = setting(
        True, "let the decoder copy prompt tokens (a pointer-generator); on movie dialog it "
        "raises how often the model prefers the true reply of 20 from about 0.09 to 0.15 (see README)",
        group="sequence to sequence")
    contrastive_weight: float = setting(
        0.0, "weight of a ranking term that makes each training reply likelier after its own "
        "prompt than after another pair's (0 = off; each batch then costs about twice as much)",
        check=at_least(0.0, float, maximum=100.0), group="sequence to sequence")
    decoding: str = decoding_setting(
        "auto", STRATEGIES + ("auto",),
        "decoding of the export; auto: the best of several on the validation split "
        "(see README), which ignores the beam and sampling flags")


@dataclasses.dataclass(frozen=True)
class ChatbotEvaluate(Seq2SeqEvaluate, DataSettings):
    pass


@dataclasses.dataclass(frozen=True)
class ChatbotPredict(ExportConfig):
    texts: tuple[str, ...] = setting((), "utterances to reply to", positional=True, nargs="+",
                                     metavar="TEXT")


@dataclasses.dataclass(frozen=True)
class ChatConfig(ExportConfig):
    decoding: str = setting("", "greedy, beam or sample (default: the export's own)",
                            choices=("",) + STRATEGIES)
    temperature: float | None = setting(None, "sampling temperature (default: the export's)",
                                        check=positive(100.0), group="sampling")
    top_k: int | None = setting(None, "top-k sampling, 0 = off (default: the export's)",
                                check=at_least(0), group="sampling")
    top_p: float | None = setting(None, "nucleus sampling mass (default: the export's)",
                                  check=fraction(zero=False, one=True), group="sampling")
    no_context: bool = setting(False, "do not give the bot's previous reply as context")


class ChatbotApp(App):
    """A GRU encoder-decoder that replies to an utterance (and the turn before it)."""

    name = APP
    help = {
        "train": "train a GRU encoder-decoder chatbot and export it",
        "evaluate": "test perplexity, hits@1 of 20 and distinct-1/2 of an exported chatbot",
        "predict": "reply to utterances with an exported chatbot",
    }
    Train = ChatbotTrain
    Evaluate = ChatbotEvaluate
    Predict = ChatbotPredict
    serving_inputs = ("text",)
    generates_text = True
    smoke_args = ("--epochs", "1", "--limit", "200", "--units", "8", "--embedding-dim", "8",
                  "--decoding", "greedy")
    example_inputs = ("hello", "")
    # The sample's replies rarely repeat their prompts' words, so quick mode does
    # not copy (one run each: 60 of 100 corpus prompts answered without, 53 with).
    quick_args = ("--epochs", "20", "--learning-rate", "5e-3", "--dropout", "0", "--no-copy")

    def load_data(self, config: DataSettings) -> Splits:
        return Splits(config.data, *load_splits(config.data))

    def evaluation_data(self, config: DataSettings) -> Splits:
        return Splits(config.data, None, None, evaluation_pairs(config.data))

    def train(self, config: ChatbotTrain, data: Splits, fitting: Fitting) -> Trained:
        train = with_unconditioned(data.train.head(config.limit), config.unconditioned, config.seed)
        auto = config.decoding == "auto"
        # Room for the utterance, the separator and the turn before it.
        run = train_seq2seq(train, data.validation, config, fitting,
                            max_source_length=2 * config.max_length,
                            decoding=DECODING_CANDIDATES[0] if auto else None,
                            contrastive_weight=config.contrastive_weight)
        server, choice = run.server, {}
        if auto:
            prompts = data.validation.head(REPLY_SAMPLE)
            results = measure_decodings(server, prompts)
            server = server.with_decoding(choose_decoding(results).options)
            choice = {"decoding choice": [result.record() for result in results]}
        serving = seq2seq_serving(server, make_signatures(server))
        serving.metadata.update(choice)
        return Trained(run.model, serving, run.epochs_run, {
            "training / validation / test pairs":
                f"{len(train)} / {len(data.validation)} / {len(data.test)}",
            "decoding": server.decoding.label + (" (chosen on the validation split)" if auto else ""),
            **({"stopped by --minutes": True} if run.stopped_early else {}),
        })

    def evaluate(self, export: Export, data: Splits, config: ChatbotEvaluate,
                 output_dir: Path | None) -> Evaluation:
        pairs = data.test.head(config.score_limit)
        sources = pairs.sources[:REPLY_SAMPLE]
        replies = generate_replies(export.signature(), sources)
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

    def predict(self, export: Export, config: ChatbotPredict) -> list[str]:
        replies = generate_replies(export.signature(), list(config.texts))
        for reply in replies:
            print(reply)
        return replies

    def page(self, page) -> None:
        import gradio as gr

        chat = gr.Chatbot(label="Conversation (each reply is the next turn's context)")
        message = gr.Textbox(label="Your message", placeholder="hello")
        with gr.Row():
            send = gr.Button("Send", variant="primary")
            reset = gr.Button("Reset the conversation")
        context = gr.State("")

        def respond(text: str, history: list, previous_reply: str):
            if not text.strip():
                raise InputError("Type a message first.")
            conversation = Conversation(page.export(), use_context=True)
            conversation.context = previous_reply
            answer = conversation.reply(text)
            history = list(history or []) + [{"role": "user", "content": text},
                                             {"role": "assistant", "content": answer}]
            return history, answer, ""

        for event in (send.click, message.submit):
            event(page.handler(respond), [message, chat, context], [chat, context, message])
        reset.click(lambda: ([], "", ""), None, [chat, context, message])

    def demo(self, export: Export) -> str:
        data = export.metadata.get("evaluation", {}).get("data", "sample")
        share, prompts = answer_share(export.signature(), all_pairs(data))
        replies = generate_replies(export.signature(), DEMO_UTTERANCES)
        examples = "; ".join(f"{text!r} -> {reply!r}" for text, reply in zip(DEMO_UTTERANCES, replies))
        return (f"answers {share:.0%} of {prompts} {data} prompts with one of the corpus's "
                f"replies to them; {examples}")


CHATBOT = register_app(ChatbotApp())


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

    def reset(self) -> None:
        self.context = ""

    def reply(self, text: str) -> str:
        result = self.converse(
            text=tf.constant([text]), context=tf.constant([self.context]), **self.settings
        )
        answer = result["reply"].numpy()[0].decode("utf-8")
        if self.use_context:
            self.context = answer
        return answer


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
