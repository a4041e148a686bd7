"""Transcribed-speech data: normalization, manifests, local folders and the LJ Speech and
LibriSpeech layouts, on tiny audio files written in the real formats."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apps.common.audio import SAMPLE_RATE
from apps.common.errors import InputError
from apps.transcriber.data import hashed_split, normalize_transcript
from apps.transcriber.datasets import load_transcription_data, TRANSCRIPTION_DATA_SETS
from apps.transcriber.readers import load_transcribed_folder, read_librispeech, read_ljspeech, read_manifest


def write_clip(
    path: Path, seconds: float = 0.1, rate: int = SAMPLE_RATE, channels: int = 1
) -> Path:
    """A quiet tone with a little noise, as 16-bit PCM in the format of `path`'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    time = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * time) + 0.01 * np.random.default_rng(0).standard_normal(
        time.size
    )
    audio = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    sf.write(path, audio.astype(np.float32), rate, subtype="PCM_16")
    return path


def names_in(split: str, template: str, count: int = 1) -> list[str]:
    """The first `count` names `template.format(i)` that `hashed_split` puts in `split`."""
    names = (template.format(i) for i in range(10_000))
    chosen = [name for name in names if hashed_split(name) == split][:count]
    assert len(chosen) == count
    return chosen


def all_splits(data):
    return {"train": data.train, "validation": data.validation, "test": data.test}


def split_of(data) -> dict[str, str]:
    """file -> the split it was put in."""
    return {file: split for split, part in all_splits(data).items() for file in part.files}


def transcripts_of(data) -> dict[str, str]:
    return {
        file: text
        for part in all_splits(data).values()
        for file, text in zip(part.files, part.transcripts)
    }


# ---------------------------------------------------------------------------
# normalize_transcript


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Café Müller, naïve façade", "cafe muller naive facade"),
        ("Call 911 now", "call nine one one now"),
        ("room 42b", "room four two b"),
        ("Hello, World! It's well-known; (really?)", "hello world it's well known really"),
        ("SHOUTING And MiXeD", "shouting and mixed"),
        ("  tabs\tand\nnew  lines  ", "tabs and new lines"),
        ("?!...", ""),
    ],
)
def test_normalize_transcript(text, expected):
    assert normalize_transcript(text) == expected


# ---------------------------------------------------------------------------
# read_manifest


def test_read_manifest_tsv_without_split_uses_the_hash_rule(tmp_path):
    for name in ("a.wav", "sub/b.flac"):
        write_clip(tmp_path / name)
    manifest = tmp_path / "list.tsv"
    # TSV is read unquoted: a quote character is part of the text.
    manifest.write_text('path\ttext\na.wav\t"Hi," he said\nsub/b.flac\tTwo, three\n')
    entries = read_manifest(manifest)
    assert entries == [
        (tmp_path / "a.wav", '"Hi," he said', hashed_split("a.wav")),
        (tmp_path / "sub/b.flac", "Two, three", hashed_split("sub/b.flac")),
    ]


def test_read_manifest_csv_with_split_and_quoted_text(tmp_path):
    for name in ("a.wav", "b.wav"):
        write_clip(tmp_path / name)
    manifest = tmp_path / "list.csv"
    # Written by a spreadsheet: a byte-order mark, CRLF lines, a quoted comma.
    manifest.write_bytes(
        '\ufeffpath,text,split\r\na.wav,"One, two",test\r\nb.wav,three,train\r\n'.encode()
    )
    assert read_manifest(manifest) == [
        (tmp_path / "a.wav", "One, two", "test"),
        (tmp_path / "b.wav", "three", "train"),
    ]


def test_read_manifest_rejects_a_bad_split_naming_its_line(tmp_path):
    for name in ("a.wav", "b.wav"):
        write_clip(tmp_path / name)
    manifest = tmp_path / "list.tsv"
    manifest.write_text("path\ttext\tsplit\na.wav\tone\ttrain\nb.wav\ttwo\ttraining\n")
    with pytest.raises(InputError, match=r"list\.tsv, line 3: split 'training' is not one of"):
        read_manifest(manifest)


def test_read_manifest_rejects_a_missing_column(tmp_path):
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,transcript\na.wav,one\n")
    with pytest.raises(InputError, match=r"columns path and text \(missing: text\)"):
        read_manifest(manifest)


def test_read_manifest_rejects_a_missing_audio_file(tmp_path):
    write_clip(tmp_path / "a.wav")
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,text\na.wav,one\nmissing.wav,two\n")
    with pytest.raises(InputError, match=r"list\.csv, line 3: .*missing\.wav is not an audio file"):
        read_manifest(manifest)


def test_read_manifest_rejects_text_that_is_not_utf8(tmp_path):
    manifest = tmp_path / "list.csv"
    manifest.write_bytes(b"path,text\na.wav,caf\xe9\n")
    with pytest.raises(InputError, match=r"list\.csv: not UTF-8 text"):
        read_manifest(manifest)


# ---------------------------------------------------------------------------
# load_transcribed_folder


def test_folder_with_a_txt_beside_each_clip_nested(tmp_path):
    # Names whose hashed split is known, so every split gets clips; some nested two deep.
    chosen = {
        "train": names_in("train", "a/b/clip{}.wav", 2) + names_in("train", "c/clip{}.flac"),
        "validation": names_in("validation", "c/clip{}.flac"),
        "test": names_in("test", "a/b/clip{}.wav"),
    }
    texts = {}
    for number, name in enumerate(sorted(sum(chosen.values(), []))):
        write_clip(tmp_path / name)
        texts[name] = f"Clip No. {number}!"
        (tmp_path / name).with_suffix(".txt").write_text(texts[name] + "\n")
    write_clip(tmp_path / "_background_noise_" / "hum.wav", seconds=1.5)  # noise, not a clip

    data = load_transcribed_folder(tmp_path, name="mine")
    assert data.name == "mine"
    assert split_of(data) == {name: split for split, names in chosen.items() for name in names}
    assert transcripts_of(data) == {name: normalize_transcript(t) for name, t in texts.items()}
    assert data.noise.shape == (int(1.5 * SAMPLE_RATE),)


def test_folder_clip_without_its_txt_is_named(tmp_path):
    write_clip(tmp_path / "a" / "one.wav")
    (tmp_path / "a" / "one.txt").write_text("one")
    write_clip(tmp_path / "a" / "b" / "two.wav")
    with pytest.raises(InputError, match=r"two\.wav: no transcript two\.txt beside it"):
        load_transcribed_folder(tmp_path)


def test_folder_without_clips(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(InputError, match="no audio files"):
        load_transcribed_folder(tmp_path)


def test_folder_split_by_train_dev_test_subfolders(tmp_path):
    layout = {
        "train/s1/x.wav": "train",
        "train/y.wav": "train",
        "dev/z.wav": "validation",
        "Test/w.wav": "test",
    }
    for name in layout:
        write_clip(tmp_path / name)
        (tmp_path / name).with_suffix(".txt").write_text("words")
    data = load_transcribed_folder(tmp_path)
    assert split_of(data) == layout

    write_clip(tmp_path / "other" / "v.wav")
    (tmp_path / "other" / "v.txt").write_text("words")
    with pytest.raises(InputError, match=r"v\.wav: not in a split folder \(dev, test, train\)"):
        load_transcribed_folder(tmp_path)


def test_folder_with_train_but_no_test_clips(tmp_path):
    write_clip(tmp_path / "train" / "x.wav")
    (tmp_path / "train" / "x.txt").write_text("words")
    with pytest.raises(InputError, match="no test utterances"):
        load_transcribed_folder(tmp_path)


def test_folder_with_a_manifest_and_the_manifest_as_path(tmp_path):
    for name in ("clips/a.wav", "clips/b.wav", "clips/c.wav"):
        write_clip(tmp_path / name)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "path,text,split\n"
        "clips/a.wav,Seven,train\nclips/b.wav,8,test\nclips/c.wav,nine,validation\n"
    )
    texts = {"clips/a.wav": "seven", "clips/b.wav": "eight", "clips/c.wav": "nine"}
    splits = {"clips/a.wav": "train", "clips/b.wav": "test", "clips/c.wav": "validation"}
    for path in (tmp_path, manifest):
        data = load_transcribed_folder(path)
        assert (transcripts_of(data), split_of(data)) == (texts, splits)
    assert load_transcription_data(str(manifest)).train.transcripts == ["seven"]

    (tmp_path / "manifest.csv").rename(tmp_path / "one.csv")
    (tmp_path / "two.tsv").write_text("path\ttext\n")
    with pytest.raises(InputError, match=r"several manifests \(one\.csv, two\.tsv\)"):
        load_transcribed_folder(tmp_path)


def test_multichannel_and_8khz_files_are_read_as_16khz_mono(tmp_path):
    write_clip(tmp_path / "train" / "stereo.wav", seconds=0.25, channels=2)
    write_clip(tmp_path / "test" / "narrowband.flac", seconds=0.5, rate=8000)
    for name in ("train/stereo", "test/narrowband"):
        (tmp_path / f"{name}.txt").write_text("a b c")
    data = load_transcribed_folder(tmp_path)
    (stereo,), (narrowband,) = data.train.waveforms, data.test.waveforms
    assert stereo.shape == (SAMPLE_RATE // 4,) and stereo.dtype == np.float32
    assert narrowband.shape == (SAMPLE_RATE // 2,) and narrowband.dtype == np.float32


# ---------------------------------------------------------------------------
# LJ Speech and LibriSpeech layouts


def write_ljspeech(root: Path, rows: list[tuple[str, str, str]]) -> Path:
    folder = root / "LJSpeech-1.1"
    for clip_id, _, _ in rows:
        write_clip(folder / "wavs" / f"{clip_id}.wav", rate=22050)
    (folder / "metadata.csv").write_text("".join(f"{a}|{b}|{c}\n" for a, b, c in rows))
    return folder


def test_read_ljspeech_uses_the_normalized_column(tmp_path):
    train_id, test_id = names_in("train", "LJ001-{:04d}")[0], names_in("test", "LJ002-{:04d}")[0]
    write_ljspeech(
        tmp_path,
        [
            (train_id, "In 1850 Mr. Smith", "In eighteen fifty Mister Smith"),
            # A lone quote character: metadata.csv is not quoted.
            (test_id, '"It was the 3rd," he said', '"It was the third," he said'),
        ],
    )
    data = read_ljspeech(tmp_path)
    assert data.name == "ljspeech"
    assert data.train.transcripts == ["in eighteen fifty mister smith"]
    assert data.test.transcripts == ["it was the third he said"]
    assert data.train.files == [f"wavs/{train_id}.wav"]
    # 0.1 s at 22,050 Hz, resampled to 16 kHz.
    assert data.test.waveforms[0].shape == (SAMPLE_RATE // 10,)
    # A local extracted copy is recognised as such.
    assert load_transcription_data(str(tmp_path)).test.transcripts == data.test.transcripts


def test_read_ljspeech_rejects_a_line_of_one_or_four_columns(tmp_path):
    folder = write_ljspeech(tmp_path, [("LJ001-0001", "One", "One")])
    for line in ("LJ001-0002", "LJ001-0002|Two|Two|2"):
        (folder / "metadata.csv").write_text(f"LJ001-0001|One|One\n\n{line}\n")
        with pytest.raises(InputError, match=r"metadata\.csv, line 3: expected id\|transcription"):
            read_ljspeech(folder)


def test_two_column_ljspeech_format_and_a_metadata_csv_manifest(tmp_path):
    # The format's two-column variant, as TTS data sets made like LJ Speech have it.
    train_id, test_id = names_in("train", "x{}")[0], names_in("test", "x{}")[0]
    for clip_id in (train_id, test_id):
        write_clip(tmp_path / "wavs" / f"{clip_id}.wav")
    (tmp_path / "metadata.csv").write_text(f"{train_id}|Four\n{test_id}|Five\n")
    data = load_transcribed_folder(tmp_path)
    assert (data.train.transcripts, data.test.transcripts) == (["four"], ["five"])
    # A path,text manifest that happens to be called metadata.csv beside wavs/ is a manifest.
    (tmp_path / "metadata.csv").write_text(
        f"path,text,split\nwavs/{train_id}.wav,Six,train\nwavs/{test_id}.wav,Seven,test\n"
    )
    data = load_transcribed_folder(tmp_path)
    assert (data.train.transcripts, data.test.transcripts) == (["six"], ["seven"])


def write_librispeech(root: Path, utterances: dict[str, list[str]]) -> None:
    """`utterances`: speaker -> their transcripts, in one chapter each, as in LibriSpeech."""
    for speaker, texts in utterances.items():
        chapter = root / "LibriSpeech" / "dev-clean" / speaker / "1000"
        lines = []
        for number, text in enumerate(texts):
            utterance = f"{speaker}-1000-{number:04d}"
            write_clip(chapter / f"{utterance}.flac")
            lines.append(f"{utterance} {text}\n")
        (chapter / f"{speaker}-1000.trans.txt").write_text("".join(lines))


def test_read_librispeech_splits_by_speaker(tmp_path):
    train_speaker, test_speaker = names_in("train", "{}")[0], names_in("test", "{}")[0]
    write_librispeech(
        tmp_path,
        {
            train_speaker: ["HE HOPED THERE WOULD BE STEW", "IT WASN'T THERE"],
            test_speaker: ["STUFF IT INTO YOU", "HIS BELLY COUNSELLED HIM"],
        },
    )
    data = read_librispeech(tmp_path, name="librispeech:dev-clean")
    assert data.name == "librispeech:dev-clean"
    assert data.train.transcripts == ["he hoped there would be stew", "it wasn't there"]
    assert data.test.transcripts == ["stuff it into you", "his belly counselled him"]
    assert len(data.validation) == 0
    speakers = {
        split: {Path(file).name.split("-")[0] for file in part.files}
        for split, part in all_splits(data).items()
    }
    assert speakers == {"train": {train_speaker}, "validation": set(), "test": {test_speaker}}
    chapter = f"LibriSpeech/dev-clean/{train_speaker}/1000"
    assert data.train.files[0] == f"{chapter}/{train_speaker}-1000-0000.flac"
    # A local extracted copy is recognised as such.
    assert load_transcription_data(str(tmp_path)).test.transcripts == data.test.transcripts


def test_read_librispeech_rejects_a_missing_flac(tmp_path):
    write_librispeech(tmp_path, {"19": ["ONE"]})
    chapter = tmp_path / "LibriSpeech" / "dev-clean" / "19" / "1000"
    with (chapter / "19-1000.trans.txt").open("a") as handle:
        handle.write("19-1000-0001 TWO\n")
    with pytest.raises(InputError, match=r"19-1000\.trans\.txt, line 2: .*-0001\.flac is not"):
        read_librispeech(tmp_path)


# ---------------------------------------------------------------------------
# load_transcription_data


def test_unknown_librispeech_subset_lists_the_known_ones():
    with pytest.raises(InputError, match=r"LibriSpeech subset 'dev-cleen' \(known: dev-clean, "):
        load_transcription_data("librispeech:dev-cleen")


@pytest.mark.parametrize("data", ["timit", "librispeech", ""])
def test_unknown_data_names_the_accepted_values(data):
    with pytest.raises(InputError) as error:
        load_transcription_data(data)
    assert (f"not one of {', '.join(TRANSCRIPTION_DATA_SETS)} (or digits:N, digits-espeak:N)"
            in str(error.value))


@pytest.mark.parametrize("data", ["digits:", "digits:ten", "digits:-5", "digits-espeak:1.5"])
def test_bad_digit_count(data):
    name = data.split(":")[0]
    with pytest.raises(InputError, match=f"'{data}': {name}:N needs a whole number N of strings"):
        load_transcription_data(data)


@pytest.mark.parametrize("data", ["digits:0", "digits:2", "digits-espeak:2"])
def test_too_few_digit_strings_to_split(data):
    with pytest.raises(InputError, match=f"^{data}: too few strings for a train, a validation and a test"):
        load_transcription_data(data)
