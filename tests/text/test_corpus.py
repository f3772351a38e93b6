"""Text corpora: vocabulary, malformed lines, label-tab files, length limits, subsets, PTB."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from vaelab.data import DataConfig, DataError, load_dataset, resolve_data_root
from vaelab.data.text import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, TextSplit, Vocabulary


def _write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.txt").write_text(text)
    return folder


def test_vocabulary_size_limit_ties_and_unk():
    counts = Counter({"b": 3, "a": 3, "c": 2, "d": 1, "<unk>": 9})
    v = Vocabulary.from_counts(counts, max_size=6)
    assert v.itos == [*SPECIALS, "a", "b"]  # most frequent first, ties alphabetical; <unk> is the special
    assert v.encode(["a", "c", "zzz", "b"]) == [4, UNK_ID, UNK_ID, 5]
    assert v.decode([BOS_ID, 4, 5, EOS_ID, 4]) == ["a", "b"]  # stops at </s>, drops <s>
    assert v.decode([4, PAD_ID], strip=False) == ["a", "<pad>"]
    assert len(Vocabulary.from_counts(counts)) == 4 + 4  # a b c d
    # >= 5: the 4 special tokens and one word
    with pytest.raises(ValueError, match=r"data.vocab_size must be null or an integer >= 5, got 4"):
        Vocabulary.from_counts(counts, max_size=4)


def test_vocabulary_file(tmp_path):
    f = tmp_path / "vocab.txt"
    f.write_text("<unk>\nthe\ncat\n<pad>\nsat\n")
    v = Vocabulary.from_file(f)
    assert v.itos == [*SPECIALS, "the", "cat", "sat"]
    assert len(Vocabulary.from_file(f, max_size=5)) == 5
    v.write(tmp_path / "round.txt")
    assert Vocabulary.from_file(tmp_path / "round.txt") == v
    f.write_text("the\ncat\nthe\n")
    with pytest.raises(DataError, match=r"vocab.txt:3: token 'the' repeats line 1"):
        Vocabulary.from_file(f)
    f.write_text("the\n\ncat\n")
    with pytest.raises(DataError, match=r"vocab.txt:2"):
        Vocabulary.from_file(f)


def test_dataset_from_vocab_file_and_size_limit(tmp_path):
    d = _write(tmp_path / "c", train="a a a b b c\nc d\n", valid="a e\n", test="b\n")
    (d / "v.txt").write_text("b\na\n")
    ds = load_dataset(DataConfig(name="text", path=str(d), vocab_file="v.txt"))
    assert ds.vocab.itos == [*SPECIALS, "b", "a"]
    assert ds.train.sentence(1) == [UNK_ID, UNK_ID]  # c d unknown
    assert ds.info["unk_rate"]["valid"] == pytest.approx(0.5)
    ds = load_dataset(DataConfig(name="text", path=str(d), vocab_size=6))
    assert ds.vocab.itos == [*SPECIALS, "a", "b"] and ds.model_info()["vocab_size"] == 6


def test_tokens_and_counts(tiny_text):
    ds = tiny_text
    assert ds.info["counts"] == {"train": 160, "valid": 40, "test": 40}
    for role in ("train", "valid", "test"):
        s = ds.split(role)
        assert ds.info["tokens"][role] == s.num_words + len(s) == int((s.lengths + 1).sum())
    assert ds.decode(ds.train.sentence(0)) == (Path(ds.info["files"]["train"]["path"]).read_text().split("\n")[0])
    info = ds.model_info()
    assert (info["pad_id"], info["bos_id"], info["eos_id"], info["unk_id"]) == (PAD_ID, BOS_ID, EOS_ID, UNK_ID)
    assert info["vocab"][:4] == list(SPECIALS) and len(info["vocab"]) == info["vocab_size"]
    assert ds.num_classes is None and ds.train.y is None


@pytest.mark.parametrize(
    ("text", "fmt", "line", "problem"),
    [
        ("a b\n\nc\n", "plain", 2, "empty line"),
        ("a b\n   \n", "plain", 2, "empty line"),
        ("1\ta b\nx\tc d\n", "label_tab", 2, "bad label 'x'"),
        ("1\ta b\n-1\tc\n", "label_tab", 2, "bad label"),
        ("1\ta b\n2 c d\n", "label_tab", 2, "no TAB"),
        ("1\ta b\n0\t \n", "label_tab", 2, "empty sentence"),
        ("a b\n\u200b \u2060\n", "plain", 2, "empty sentence"),  # only zero-width characters: nothing to read
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, text, fmt, line, problem):
    d = _write(tmp_path / "c", train=text, valid="1\ta\n" if fmt == "label_tab" else "a\n", test=text)
    cfg = DataConfig(name="text", path=str(d), format=fmt)
    with pytest.raises(DataError, match=rf"train.txt:{line}: {problem}.*skip_malformed"):
        load_dataset(cfg)
    cfg.skip_malformed = True
    ds = load_dataset(cfg)
    assert ds.info["files"]["train"]["skipped_malformed"] == 1
    assert ds.info["files"]["train"]["skipped_lines"][0].startswith(f"{line}: ")
    n_lines = len(text.rstrip("\n").split("\n"))
    assert len(ds.train) == n_lines - 1 and line not in ds.train.line.tolist()


def test_label_tab_parsing(tmp_path):
    d = _write(
        tmp_path / "y",
        train="0\tthe food was bad\n4\tgreat place\r\n2\tok i guess\n",
        valid="3\tgreat food\n",
        test="1\tbad place\n",
    )
    ds = load_dataset(DataConfig(name="text", path=str(d), format="label_tab"))
    assert ds.train.y.tolist() == [0, 4, 2] and ds.num_classes == 5
    assert ds.decode(ds.train.sentence(1)) == "great place"  # \r stripped
    batch = next(iter(ds.loader("valid", 8, seed=0).epoch(0)))
    assert batch.y.tolist() == [3]


def test_lowercase_and_length_limits(tmp_path):
    words = " ".join(f"w{i}" for i in range(10))
    d = _write(tmp_path / "c", train=f"A B\n{words}\nx\n", valid="a x\n", test=f"{words}\na b x\n")
    ds = load_dataset(DataConfig(name="text", path=str(d), lowercase=True, max_length=4, length_policy="truncate"))
    assert ds.decode(ds.train.sentence(0)) == "a b" and ds.train.lengths.tolist() == [2, 4, 1]
    assert ds.info["length_limits"]["train"]["truncated"] == 1 and ds.info["length_limits"]["test"]["truncated"] == 1
    ds = load_dataset(DataConfig(name="text", path=str(d), max_length=4, min_length=2))
    assert len(ds.train) == 1 and ds.info["length_limits"]["train"] == {
        "dropped_short": 1,
        "dropped_long": 1,
        "truncated": 0,
    }
    assert ds.info["model_info"]["max_length"] == 2
    with pytest.raises(DataError, match=r"valid\.txt: all 1 sentences were dropped by the length limits"):
        load_dataset(DataConfig(name="text", path=str(d), max_length=10, min_length=3))  # an emptied split: refused


def test_train_size_is_nested_and_vocab_fixed(corpus_dir):
    full = load_dataset(DataConfig(name="text", path=str(corpus_dir)))
    small = load_dataset(DataConfig(name="text", path=str(corpus_dir), train_size=50))
    smaller = load_dataset(DataConfig(name="text", path=str(corpus_dir), train_size=20, eval_size=10))
    assert len(small.train) == 50 and small.vocab == full.vocab
    assert set(smaller.train.line.tolist()) <= set(small.train.line.tolist())
    assert len(smaller.valid) == 10 and len(smaller.test) == 10
    with pytest.raises(ValueError, match="train_size"):
        load_dataset(DataConfig(name="text", path=str(corpus_dir), train_size=1000))


def test_held_out_validation_and_missing_files(tmp_path, corpus_dir):
    ds = load_dataset(
        DataConfig(name="text", path=str(corpus_dir), files={"train": "train.txt", "test": "test.txt"}, valid_size=30)
    )
    assert len(ds.train) == 130 and len(ds.valid) == 30 and "valid_rule" in ds.info
    assert not set(ds.train.line.tolist()) & set(ds.valid.line.tolist())
    with pytest.raises(DataError, match=r"nope.txt: does not exist.*folder given by data.path"):
        load_dataset(DataConfig(name="text", path=str(corpus_dir), files={"train": "nope.txt", "test": "test.txt"}))
    with pytest.raises(ValueError, match="valid roles"):
        load_dataset(DataConfig(name="text", path=str(corpus_dir), files={"train": "a", "test": "b", "dev": "c"}))


def test_split_batch_layout():
    split = TextSplit.from_sentences([[5, 6, 7], [8], [9, 10]])
    x = split.batch(torch.tensor([1, 0]))
    assert x.tokens.tolist() == [[BOS_ID, 8, EOS_ID, PAD_ID, PAD_ID], [BOS_ID, 5, 6, 7, EOS_ID]]
    assert x.lengths.tolist() == [3, 5] and x.num_tokens == 2 + 4
    assert x.target_mask().tolist() == [[True, True, False, False], [True, True, True, True]]
    assert x.sentences() == [[8], [5, 6, 7]]
    assert split.subset([2, 0]).sentence(0) == [9, 10]


# ------------------------------------------------------------------------------------------------------------
# Penn Treebank (data folder needed)


def _ptb_root() -> Path:
    root, _ = resolve_data_root(DataConfig(name="ptb"))
    for cand in (root, Path(__file__).resolve().parents[3] / "shared" / "data"):
        if (cand / "ptb" / "ptb.train.txt").is_file():
            return cand
    pytest.skip("the PTB files (<data>/ptb/ptb.*.txt) are absent")


@pytest.mark.data
def test_ptb_standard_files():
    ds = load_dataset(DataConfig(name="ptb", root=str(_ptb_root())))
    assert ds.info["counts"] == {"train": 42068, "valid": 3370, "test": 3761}
    assert ds.info["tokens"] == {"train": 929589, "valid": 73760, "test": 82430}  # Mikolov et al. (2010)
    assert all(ds.info["files"][r]["standard"] for r in ("train", "valid", "test"))
    assert len(ds.vocab) == 10002  # 9,999 word types (incl. PTB's <unk>) + <pad> <s> </s>
    small = load_dataset(DataConfig(name="ptb", root=str(_ptb_root()), train_size=10000))
    assert len(small.train) == 10000 and small.vocab == ds.vocab
