"""emoref.storage: what a node checks before it reads anything, and the one line it fails with."""

from pathlib import Path

import pytest

from emoref.storage import TOKEN, SharedStorage, StorageError, folder_token


def prepared(tmp_path: Path) -> SharedStorage:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    audio = []
    for i in range(20):
        path = corpus / f"{i:02d}.wav"
        path.write_bytes(b"x" * (100 + i))
        audio.append(str(path))
    return SharedStorage.prepare([("the sweep folder", "--storage-path", tmp_path / "sweep"),
                                  ("the feature cache", "corpus.cache_dir", tmp_path / "cache")],
                                 str(corpus), audio)


def test_the_driver_writes_a_token_once_and_its_own_view_passes(tmp_path):
    storage = prepared(tmp_path)
    assert (tmp_path / "cache" / TOKEN).is_file()
    assert folder_token(tmp_path / "cache") == storage.folders[1][3]  # read back, not rewritten
    assert len(storage.corpus) == 8  # a sample spread over the corpus, not every file
    assert storage.problems() == []
    storage.verify("head")


def test_a_node_with_other_storage_names_each_path_and_the_fix(tmp_path):
    storage = prepared(tmp_path)
    (tmp_path / "sweep" / TOKEN).unlink()                      # this node's own, empty folder
    (tmp_path / "cache" / TOKEN).write_text("another disk")    # an old local copy
    sample = Path(storage.corpus[3][0])
    sample.write_bytes(b"short")                               # another copy of the corpus
    found = storage.problems()
    assert found[0] == (f"the sweep folder {tmp_path / 'sweep'} (--storage-path) is not there or "
                        "holds no token the driver wrote")
    assert found[1].startswith(f"the feature cache {tmp_path / 'cache'} (corpus.cache_dir) is "
                               "another folder")
    assert found[2].startswith(f"the corpus {tmp_path / 'corpus'} (corpus.root): {sample} has "
                               "another size")
    with pytest.raises(StorageError) as err:
        storage.verify("10.0.0.7 (abcd1234)")
    text = str(err.value)
    assert "\n" not in text and text.startswith("node 10.0.0.7 (abcd1234) does not see")
    assert "/shared" in text and "on_bad_audio" not in text and "skipping files" in text


def test_a_missing_corpus_file_is_named(tmp_path):
    storage = prepared(tmp_path)
    Path(storage.corpus[0][0]).unlink()
    assert storage.problems() == [f"the corpus {tmp_path / 'corpus'} (corpus.root): "
                                  f"{storage.corpus[0][0]} is missing"]


def test_an_extraction_task_checks_before_it_reads(tmp_path):
    from emoref.data.opensmile_features import extract_checked
    storage = prepared(tmp_path)
    (tmp_path / "cache" / TOKEN).unlink()
    with pytest.raises(StorageError, match="the feature cache"):
        extract_checked(None, [("/nowhere.wav", "u", 0)], storage)


def test_the_sweep_reads_a_trials_storage_error_back_as_its_line():
    from runner.tune import storage_failure
    trace = ("Traceback (most recent call last):\n  File ...\nray.exceptions.RayTaskError("
             "StorageError): ...\nemoref.storage.StorageError: node 10.0.0.7 (ab) does not see "
             "the storage the driver prepared: x\n")
    assert storage_failure(trace) == ("node 10.0.0.7 (ab) does not see the storage the driver "
                                      "prepared: x")
    assert storage_failure("ValueError: something else") is None
