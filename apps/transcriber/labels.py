"""What the transcriber's output frames choose between (`LabelSet`), and its decodings' names."""

from __future__ import annotations

from dataclasses import dataclass

from apps.transcriber.data import ALPHABET, DIGIT_WORDS

DECODINGS = ("greedy", "beam")


@dataclass(frozen=True)
class LabelSet:
    """What the transcriber's frames choose between: `tokens`, and the CTC blank after them.

    A transcript is its tokens joined by `separator`: "" for characters,
    " " for words.
    """

    name: str
    tokens: tuple[str, ...]
    separator: str

    @property
    def num_classes(self) -> int:
        return len(self.tokens) + 1

    def split(self, transcript: str) -> list[str]:
        return transcript.split(self.separator) if self.separator else list(transcript)

    def covers(self, transcripts: list[str]) -> bool:
        known = set(self.tokens)
        return all(set(self.split(text)) <= known for text in transcripts)

    def encode(self, transcripts: list[str]) -> list[list[int]]:
        """Normalized transcripts -> token ids."""
        ids = {token: index for index, token in enumerate(self.tokens)}
        try:
            return [[ids[token] for token in self.split(text)] for text in transcripts]
        except KeyError as error:
            raise ValueError(f"{error.args[0]!r} is not one of the {self.name} labels") from None


CHARACTERS = LabelSet("characters", tuple(ALPHABET), "")
DIGIT_LABELS = LabelSet("digit words", DIGIT_WORDS, " ")
LABEL_SETS = {"characters": CHARACTERS, "digits": DIGIT_LABELS}


def label_set_for(transcripts: list[str], choice: str = "auto") -> LabelSet:
    """`choice` ("characters", "digits") or, for "auto", digit words when every
    transcript is made of them, else characters."""
    if choice == "auto":
        return DIGIT_LABELS if DIGIT_LABELS.covers(transcripts) else CHARACTERS
    labels = LABEL_SETS[choice]
    if not labels.covers(transcripts):
        raise ValueError(f"the transcripts hold words other than the {labels.name}")
    return labels
