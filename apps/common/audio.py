"""Audio shared by the speech apps: decoding files, clip lengths and noise for augmentation.

Every waveform in the suite is 16 kHz mono float32 (`SAMPLE_RATE`); a word
clip is one second (`CLIP_SAMPLES`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.errors import InputError

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # one second
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".m4a"})
NOISE_FOLDER = "_background_noise_"
SILENCE_PEAK = 1e-4  # a clip whose peak stays below this is reported as silent
# The largest sample magnitude the exports take: unscaled 16-bit audio still passes, and the
# spectrum of anything larger could overflow float32 (NaN features, NaN probabilities).
MAX_SAMPLE = 2**15


def load_audio(path: Path | str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decodes any file librosa reads into a 1-D float32 waveform at `sample_rate`, mono.

    Raises:
        InputError: naming the file, if it is missing, cannot be decoded,
            holds no samples, or holds samples that are not finite or beyond
            ±`MAX_SAMPLE`.
    """
    import librosa

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file.")
    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread for formats
            # soundfile does not read; the fallback's failure is reported below.
            warnings.simplefilter("ignore")
            audio, _ = librosa.load(path, sr=sample_rate, mono=True)
    except Exception as error:  # soundfile, audioread and resampling raise many types
        detail = str(error).strip() or type(error).__name__
        raise InputError(f"{path}: not a readable audio file ({detail}).") from None
    if audio.size == 0:
        raise InputError(f"{path}: the audio file holds no samples.")
    if not np.all(np.abs(audio) <= MAX_SAMPLE):  # false for NaN
        raise InputError(f"{path}: the audio holds NaN, infinite or out-of-range (beyond ±{MAX_SAMPLE}) samples.")
    return audio.astype(np.float32, copy=False)


def read_audio_files(
    paths: Sequence[Path], check: Callable[[Path, np.ndarray], None] | None = None
) -> tuple[list[dict[str, Any]], dict[int, np.ndarray]]:
    """Each of `paths` read with `load_audio`, then `check(path, waveform)` (which may raise
    `InputError`): a result per path, `{"file": ...}`, or `{"file": ..., "error": ...}` for a
    bad one, which is also reported on stderr; and the waveforms read, by index. A `predict`
    skips bad files and fails (an `InputError`) only when every one is bad.
    """
    results: list[dict[str, Any]] = []
    readable: dict[int, np.ndarray] = {}
    for index, path in enumerate(paths):
        try:
            waveform = load_audio(path)
            if check is not None:
                check(path, waveform)
        except InputError as error:
            print(f"skipped: {error}", file=sys.stderr)
            results.append({"file": str(path), "error": str(error)})
            continue
        readable[index] = waveform
        results.append({"file": str(path)})
    if not readable:
        raise InputError("no file could be read: " + "; ".join(result["error"] for result in results))
    return results, readable


def fix_length(audio: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Pads or trims a 1-D waveform to `length` samples.

    A shorter waveform is centred between zeros; a longer one keeps its
    loudest window (the one with the most energy, the first on ties), so a
    word inside a long recording is kept. `apps.common.speech_features.fix_length` does
    the same inside the serving graph.
    """
    size = audio.shape[0]
    if size < length:
        left = (length - size) // 2
        return np.pad(audio, (left, length - size - left)).astype(np.float32)
    energy = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    start = int(np.argmax(energy[length:] - energy[:-length]))
    return audio[start : start + length].astype(np.float32)

def synthetic_noise(size: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise or mains hum (chosen by `rng`), unit peak, float32."""
    kind = rng.integers(4)
    if kind == 3:
        time = np.arange(size) / SAMPLE_RATE
        base = rng.choice([50.0, 60.0])
        noise = sum(
            np.sin(2 * np.pi * base * k * time + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6)
        )
        noise = noise + 0.1 * rng.standard_normal(size)
    else:
        # White (0), pink (1) and brown (2) noise: power falling as 1/f^kind.
        spectrum = np.fft.rfft(rng.standard_normal(size))
        frequencies = np.maximum(np.fft.rfftfreq(size), 1.0 / size)
        noise = np.fft.irfft(spectrum / frequencies ** (kind / 2), n=size)
    return (noise / max(np.abs(noise).max(), 1e-9)).astype(np.float32)

def in_noise_at_random_level(speech: np.ndarray, rng: np.random.Generator,
                             snr_db: tuple[float, float]) -> np.ndarray:
    """`speech` scaled to a random peak of 0.3-0.9, with `synthetic_noise` mixed in at a random
    signal-to-noise ratio in `snr_db`, clipped to [-1, 1]: float32.

    Draws the level, the noise and the ratio from `rng`, in that order.
    """
    speech = speech * rng.uniform(0.3, 0.9) / max(np.abs(speech).max(), 1e-6)
    noise = synthetic_noise(len(speech), rng)
    ratio_db = rng.uniform(*snr_db)
    noise *= np.sqrt(np.mean(speech**2) / (np.mean(noise**2) * 10 ** (ratio_db / 10)))
    return np.clip(speech + noise, -1.0, 1.0).astype(np.float32)


def is_audio(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS

def synthetic_noise_bed() -> np.ndarray:
    """The augmentation noise of a data set without noise recordings: 40 s of `synthetic_noise`,
    5 s of each of eight seeded draws."""
    return np.concatenate(
        [synthetic_noise(5 * CLIP_SAMPLES, np.random.default_rng(kind)) for kind in range(8)]
    )


def load_noise(folder: Path) -> np.ndarray:
    """The audio in `folder` joined end to end, or `synthetic_noise_bed` when there is none."""
    paths = sorted(filter(is_audio, folder.iterdir())) if folder.is_dir() else []
    clips = [load_audio(path) for path in paths]
    noise = np.concatenate(clips) if clips else np.zeros(0, np.float32)
    return noise if noise.size >= CLIP_SAMPLES else synthetic_noise_bed()
