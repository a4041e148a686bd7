"""Tests for apps.sentiment.data: every loader on small files in the real formats."""

from __future__ import annotations

import numpy as np
import pytest

from apps.common.errors import InputError
from apps.sentiment.data import load_data, read_review_folder, read_table
from apps.sentiment.sample import NEGATIVE_WORDS, POSITIVE_WORDS, generate_sample


def write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def test_glue_tsv_with_mixed_line_endings_bom_bad_bytes_and_blank_lines(tmp_path):
    # GLUE's header order; CRLF, bare CR and LF endings; a BOM; an invalid
    # UTF-8 byte; blank lines, one of them at the end.
    data = (
        b"\xef\xbb\xbfsentence\tlabel\r\n"
        b"hide new secretions from the parental units \t0\r\n"
        b"the greatest musicians \t1\r"
        b"\r\n"
        b"caf\xe9 \"quoted\" scene\t1\n"
        b"contains no wit , only labored gags \t0\r\n\r\n"
    )
    reviews = read_table(write_bytes(tmp_path / "train.tsv", data))
    assert reviews.texts == [
        "hide new secretions from the parental units ",
        "the greatest musicians ",
        "caf\ufffd \"quoted\" scene",
        "contains no wit , only labored gags ",
    ]
    np.testing.assert_array_equal(reviews.labels, [0, 1, 1, 0])


def test_columns_are_found_by_name_in_either_order(tmp_path):
    # The local SST-2 copy puts the label first; its dev.tsv calls the text "content".
    first = read_table(write_bytes(tmp_path / "a.tsv", b"label\tsentence\n1\tgood fun\n0\tdull\n"))
    second = read_table(write_bytes(tmp_path / "b.tsv", b"label\tcontent\n0\tone long string of cliches .\n"))
    assert first.texts == ["good fun", "dull"] and first.labels.tolist() == [1, 0]
    assert second.texts == ["one long string of cliches ."] and second.labels.tolist() == [0]


def test_csv_with_quotes_and_word_labels(tmp_path):
    data = (
        'id,Review,Sentiment\n'
        '1,"Slow at first, but worth it.",positive\n'
        '2,"Not good, and not even ""funny""",NEGATIVE\n'
        '3,Fine,pos\n'
        '4,Awful,neg\n'
    ).encode()
    reviews = read_table(write_bytes(tmp_path / "reviews.csv", data))
    assert reviews.texts == ["Slow at first, but worth it.", 'Not good, and not even "funny"', "Fine", "Awful"]
    assert reviews.labels.tolist() == [1, 0, 1, 0]


def test_columns_given_by_flags(tmp_path):
    path = write_bytes(tmp_path / "r.csv", b"body,stars_ok,text\nlovely,1,ignored\nbad,0,ignored\n")
    reviews = read_table(path, text_column="body", label_column="Stars_OK")
    assert reviews.texts == ["lovely", "bad"] and reviews.labels.tolist() == [1, 0]
    with pytest.raises(InputError, match=r"r\.csv: no text column named 'comment'"):
        read_table(path, text_column="comment", label_column="stars_ok")


def test_missing_column_names_the_file_and_the_columns(tmp_path):
    path = write_bytes(tmp_path / "scores.csv", b"text,score\ngood,5\n")
    with pytest.raises(InputError, match=r"scores\.csv: no label column .*columns: text, score"):
        read_table(path)


def test_unknown_label_names_the_file_line_column_and_value(tmp_path):
    path = write_bytes(tmp_path / "r.tsv", b"text\tlabel\ngood\t1\nmeh\tneutral\n")
    with pytest.raises(InputError, match=r"r\.tsv: line 3: column 'label' has unknown label 'neutral'"):
        read_table(path)


@pytest.mark.parametrize("content", [b"", b"\n\r\n  \n", b"\xef\xbb\xbf"])
def test_empty_file_is_an_input_error(tmp_path, content):
    with pytest.raises(InputError, match=r"empty\.tsv: the file is empty"):
        read_table(write_bytes(tmp_path / "empty.tsv", content))


def test_header_without_rows_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="header but no rows"):
        read_table(write_bytes(tmp_path / "h.csv", b"text,label\r\n"))


def test_short_row_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"line 2 has 1 field"):
        read_table(write_bytes(tmp_path / "s.tsv", b"text\tlabel\nno label here\n"))


def _write_review(folder, name, data: bytes):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def test_aclimdb_folder_with_train_and_test(tmp_path):
    root = tmp_path / "aclImdb"
    _write_review(root / "train" / "pos", "0_9.txt", b"Loved it.<br /><br />Great cast.")
    _write_review(root / "train" / "neg", "1_2.txt", b"\xef\xbb\xbfDreadful\r\nand slow \xff")
    _write_review(root / "train" / "neg", "0_1.txt", b"Awful.")
    _write_review(root / "train" / "unsup", "0_0.txt", b"not labelled")
    _write_review(root / "test" / "pos", "0_10.txt", b"A gem.")
    _write_review(root / "test" / "neg", "0_3.txt", b"A mess.")
    data = load_data(str(root))
    assert data.train.texts == ["Awful.", "Dreadful\nand slow \ufffd", "Loved it.  Great cast."]
    assert data.train.labels.tolist() == [0, 0, 1]
    assert data.test.texts == ["A mess.", "A gem."] and data.test.labels.tolist() == [0, 1]


def test_review_folder_without_a_class_is_an_input_error(tmp_path):
    _write_review(tmp_path / "pos", "a.txt", b"good")
    with pytest.raises(InputError, match="no neg/ folder"):
        read_review_folder(tmp_path)


def test_folder_of_train_and_dev_tables(tmp_path):
    write_bytes(tmp_path / "train.tsv", b"label\tsentence\r\n1\tfun\r\n0\tdull\r\n")
    write_bytes(tmp_path / "dev.tsv", b"label\tcontent\n1\tlively\n")
    data = load_data(str(tmp_path))
    assert data.train.texts == ["fun", "dull"] and data.test.texts == ["lively"]


def test_single_table_is_split_reproducibly(tmp_path):
    rows = "".join(f"review {i},{i % 2}\n" for i in range(50))
    path = write_bytes(tmp_path / "r.csv", ("text,label\n" + rows).encode())
    first, second = load_data(str(path), seed=3), load_data(str(path), seed=3)
    assert len(first.train) == 40 and len(first.test) == 10
    assert first.test.texts == second.test.texts
    assert sorted(first.train.texts + first.test.texts) == sorted(f"review {i}" for i in range(50))


def test_unknown_data_spec_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file or folder, and not a built-in data set"):
        load_data(str(tmp_path / "missing.csv"))


def test_sample_is_deterministic_balanced_and_needs_word_order():
    texts, labels = generate_sample(4000)
    assert (texts, labels) == generate_sample(4000)
    assert len(set(texts)) == 4000 and sum(labels) == 2000
    by_label = {0: " ".join(t for t, y in zip(texts, labels) if y == 0).split(),
                1: " ".join(t for t, y in zip(texts, labels) if y == 1).split()}
    # Every sentiment word and "not" occur in both classes: a bag of words cannot decide.
    for word in POSITIVE_WORDS + NEGATIVE_WORDS + ("not", "but"):
        assert word in by_label[0] and word in by_label[1], word
    assert any(" not bad at all" in t and y == 1 for t, y in zip(texts, labels))
    assert any("at first but worth it" in t and y == 1 for t, y in zip(texts, labels))


def test_sample_split_holds_out_a_fifth():
    data = load_data("sample")
    assert (len(data.train), len(data.test)) == (3200, 800)
    assert not set(data.train.texts) & set(data.test.texts)
