"""Remakes the `sample` data set: synthetic spoken words made with espeak-ng.

The clips in `apps/speech/sample_clips/` are committed, so nobody needs a
speech synthesizer to train on `sample`; this script documents how they were
made and remakes them bit for bit (the same espeak-ng version, 1.51 from
Debian, gives the same audio):

    apt-get update && apt-get install -y espeak-ng
    python -m apps.speech.make_sample [--clips-per-word 16] [--out DIR]

`--digits --voices many --clips-per-word 100 --out DIR` makes the larger set of
digits in 273 voices that `benchmarks/speech_quality.py --synthetic-speakers DIR`
trains on besides the real speakers.

`--digit-strings N --out DIR` makes the transcriber's `digits-espeak` data set
instead (`generate_digit_strings`; `apps.transcriber.digit_strings.load_espeak_digits`
makes it on first use): N strings of 1-7 digits spoken in the 273 voices.

The generators are `apps.speech.synthesis`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from apps.speech.data import SAMPLE_DIR
from apps.speech.synthesis import DIGITS, MANY_VOICES, VOICES, WORDS, generate, generate_digit_strings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLE_DIR)
    parser.add_argument("--clips-per-word", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits", action="store_true", help="only the words zero to nine")
    parser.add_argument("--voices", choices=("sample", "many"), default="sample",
                        help=f"the sample's {len(VOICES)} voices (default) or {len(MANY_VOICES)}: "
                             "every English dialect with every variant")
    parser.add_argument("--digit-strings", type=int, metavar="N",
                        help="make N spoken digit strings (the transcriber's digits set) instead")
    args = parser.parse_args()
    if args.digit_strings:
        if args.out == SAMPLE_DIR:
            parser.error("--digit-strings needs --out DIR (not the word sample's folder)")
        generate_digit_strings(args.out, args.digit_strings, args.seed)
        return
    generate(
        args.out, args.clips_per_word, args.seed,
        words=DIGITS if args.digits else WORDS,
        voices=MANY_VOICES if args.voices == "many" else VOICES,
    )


if __name__ == "__main__":
    main()
