"""The transcriber's data sets by name: what `--data` takes."""

from __future__ import annotations

import re
from pathlib import Path

from apps.common.errors import InputError
from apps.transcriber.data import TranscriptionData
from apps.transcriber.readers import load_librispeech, load_ljspeech, load_transcribed_folder
from apps.transcriber.digit_strings import load_digits, load_espeak_digits

TRANSCRIPTION_DATA_SETS = ("digits", "digits-espeak", "ljspeech", "librispeech:SUBSET")
DIGIT_SETS = {"digits": load_digits, "digits-espeak": load_espeak_digits}


def load_transcription_data(data: str, limit: int | None = None, seed: int = 0) -> TranscriptionData:
    """`digits` or `digits-espeak` (`NAME:N` for N strings), `ljspeech`, `librispeech:SUBSET`,
    or a local folder or manifest file (`load_transcribed_folder`).

    `limit` caps each split; `seed` draws that slice and, for the digit sets,
    the strings made (`digits-espeak` makes each seed's set once and caches it).
    """
    prefix, colon, rest = data.partition(":")
    if data in DIGIT_SETS:
        return DIGIT_SETS[data](limit=limit, seed=seed)
    if prefix in DIGIT_SETS and colon:
        if not re.fullmatch(r"[0-9]+", rest):
            raise InputError(f"{data!r}: {prefix}:N needs a whole number N of strings.")
        return DIGIT_SETS[prefix](int(rest), limit=limit, seed=seed)
    if data == "ljspeech":
        return load_ljspeech(limit, seed)
    if prefix == "librispeech" and colon:
        return load_librispeech(rest, limit, seed)
    if data.strip() and Path(data).exists():
        return load_transcribed_folder(data, None, limit, seed)
    raise InputError(
        f"{data!r}: not one of {', '.join(TRANSCRIPTION_DATA_SETS)} (or digits:N, digits-espeak:N), "
        "and no such file or folder."
    )
