"""Every loader on a tiny generated tree in its real layout, and the bad inputs each must name."""

from pathlib import Path

import pytest

from emoref.config import build_config
from emoref.data.corpora import load_manifest
from emoref.data.manifest import DataError, Manifest


def corpus(name: str, root: Path, *overrides: str):
    return build_config("cpu", [f"corpus.name={name}", f"corpus.root={root}", *overrides]).corpus


# ---------------------------------------------------------------- EmoDB

def make_emodb(root: Path, tone, rows=None) -> Path:
    rows = rows or [("03a01Fa.wav", "90,00", "75,00"), ("03a01Wa.wav", "100,00", "80,00"),
                    ("08b02Tc.wav", "85,71", "60,00")]
    lines = ["Nr.\tSatz\terkannt\tnatuerlich"]
    for i, (name, rec, nat) in enumerate(rows, start=1):
        tone(root / "wav" / name)
        lines.append(f"{i}\xa0\xa0\t{name}\t{rec}\xa0\xa0\t{nat}\xa0\xa0")
    (root / "erkennung.txt").write_bytes("\n".join(lines).encode("latin-1"))
    return root


def test_emodb_layout(tmp_path, tone):
    manifest = load_manifest(corpus("emodb", make_emodb(tmp_path, tone)))
    by_id = manifest.by_id()
    assert manifest.classes == ("anger", "happiness", "sadness")
    assert by_id["03a01Fa"].label == "happiness" and by_id["03a01Fa"].agreement == pytest.approx(0.9)
    assert by_id["08b02Tc"].speaker == "08" and by_id["08b02Tc"].agreement == pytest.approx(0.8571)
    assert dict(by_id["03a01Wa"].extra)["naturalness"] == "0.8"
    assert by_id["03a01Wa"].duration == pytest.approx(0.3, abs=1e-3)


def test_emodb_unknown_code(tmp_path, tone):
    root = make_emodb(tmp_path, tone, [("03a01Xa.wav", "90,00", "75,00")])
    with pytest.raises(DataError, match=r"03a01Xa.wav: unknown emotion code 'X'"):
        load_manifest(corpus("emodb", root))


def test_emodb_malformed_rates_line(tmp_path, tone):
    root = make_emodb(tmp_path, tone)
    with open(root / "erkennung.txt", "ab") as handle:
        handle.write("\n4\t03a01Nc.wav\tninety\t75,00".encode("latin-1"))
    with pytest.raises(DataError, match=r"erkennung.txt:5: expected"):
        load_manifest(corpus("emodb", root))


def test_missing_root_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="corpus root not found"):
        load_manifest(corpus("emodb", tmp_path / "nowhere"))
    (tmp_path / "empty" / "wav").mkdir(parents=True)
    with pytest.raises(DataError, match="no audio files found"):
        load_manifest(corpus("emodb", tmp_path / "empty"))


def test_corrupt_and_empty_wav_error_then_skip(tmp_path, tone):
    root = make_emodb(tmp_path, tone, [("03a01Fa.wav", "90,00", "75,00"),
                                       ("03a01Wa.wav", "100,00", "80,00"),
                                       ("03a02Wa.wav", "100,00", "80,00")])
    (root / "wav" / "03a01Wa.wav").write_bytes(b"RIFF\x00\x00garbage")
    tone(root / "wav" / "03a02Wa.wav", seconds=0.0)
    with pytest.raises(DataError, match=r"03a01Wa.wav: unreadable audio"):
        load_manifest(corpus("emodb", root))
    manifest = load_manifest(corpus("emodb", root, "corpus.on_bad_audio=skip"))
    assert [u.id for u in manifest.utterances] == ["03a01Fa"]
    assert len(manifest.skipped) == 2
    assert any("03a01Wa.wav: unreadable" in s for s in manifest.skipped)
    assert any("03a02Wa.wav: no audio frames" in s for s in manifest.skipped)


# ---------------------------------------------------------------- IEMOCAP

EVAL_TEXT = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
C-E3:\tNeutral;\t()
C-E4:\tNeutral;\t()
C-F1:\tNeutral;\t()
A-E3:\tval 3; act 2; dom  2;\t()
A-E4:\tval 2; act 3; dom  3;\t(mildly aggravated)

[10.0100 - 11.3925]\tSes01F_impro01_M001\texc\t[3.0000, 3.5000, 3.0000]
C-E1:\tExcited;\t()
C-E2:\tHappiness; Excited;\t()
C-E3:\tFrustration; Anger;\t(comment)
C-E4:\tNeutral;\t()
C-M1:\tExcited;\t()

[14.8872 - 18.0175]\tSes01F_impro01_F002\tfru\t[2.0000, 3.5000, 3.5000]
C-E2:\tFrustration;\t()
C-E3:\tAnger; Frustration;\t()
C-E4:\tOther:  annoyed;\t()

[20.0000 - 21.5000]\tSes01F_impro01_F003\tang\t[1.5000, 4.0000, 4.0000]
C-E1:\tAnger;\t()
C-E2:\tAnger;\t()

[22.0000 - 23.5000]\tSes01F_impro01_M004\tsad\t[1.5000, 1.5000, 2.0000]
C-E1:\tSadness;\t()
C-E3:\tNeutral;\t()
"""


def make_iemocap(root: Path, tone, text: str = EVAL_TEXT) -> Path:
    session = root / "Session1"
    (session / "dialog" / "EmoEvaluation").mkdir(parents=True)
    (session / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt").write_text(text)
    for utt in ("Ses01F_impro01_F000", "Ses01F_impro01_M001", "Ses01F_impro01_F002",
                "Ses01F_impro01_F003", "Ses01F_impro01_M004"):
        tone(session / "sentences" / "wav" / "Ses01F_impro01" / f"{utt}.wav")
    return root


def test_iemocap_layout_four_class_merge(tmp_path, tone):
    root = make_iemocap(tmp_path, tone)
    manifest = load_manifest(corpus("iemocap", root))  # iemocap defaults: 4 classes, exc -> hap
    by_id = manifest.by_id()
    assert manifest.classes == ("anger", "happiness", "sadness", "neutral")
    assert "Ses01F_impro01_F002" not in by_id and len(by_id) == 4  # frustration dropped
    assert by_id["Ses01F_impro01_M004"].agreement == 0.5
    assert by_id["Ses01F_impro01_F000"].agreement == 1.0  # self-rating C-F1 excluded
    assert by_id["Ses01F_impro01_F000"].n_raters == 3
    happy = by_id["Ses01F_impro01_M001"]
    # 4 evaluators; E1 (Excited) and E2 (Happiness; Excited) include happiness after the merge.
    assert happy.label == "happiness" and happy.n_raters == 4 and happy.agreement == 0.5
    assert dict(happy.votes)["happiness"] == 2
    assert happy.speaker == "Ses01M"


def test_iemocap_self_ratings_and_all_classes(tmp_path, tone):
    root = make_iemocap(tmp_path, tone)
    manifest = load_manifest(corpus("iemocap", root, "corpus.classes=", "corpus.merge=",
                                    "corpus.include_self_ratings=true"))
    by_id = manifest.by_id()
    assert by_id["Ses01F_impro01_M001"].label == "excitement"
    assert by_id["Ses01F_impro01_M001"].agreement == pytest.approx(3 / 5)
    assert by_id["Ses01F_impro01_F002"].label == "frustration"
    assert by_id["Ses01F_impro01_F002"].agreement == pytest.approx(2 / 3)


def test_iemocap_malformed_line_names_file_and_line(tmp_path, tone):
    broken = EVAL_TEXT.replace("[10.0100 - 11.3925]\tSes01F", "[10.0100 to 11.3925]\tSes01F")
    root = make_iemocap(tmp_path, tone, broken)
    with pytest.raises(DataError, match=r"Ses01F_impro01.txt:11: expected '\[start - end\]"):
        load_manifest(corpus("iemocap", root))


def test_iemocap_unknown_code(tmp_path, tone):
    root = make_iemocap(tmp_path, tone, EVAL_TEXT.replace("\tneu\t", "\tzzz\t"))
    with pytest.raises(DataError, match=r"Ses01F_impro01.txt:3: unknown emotion code 'zzz'"):
        load_manifest(corpus("iemocap", root))


def test_iemocap_missing_wav(tmp_path, tone):
    root = make_iemocap(tmp_path, tone)
    missing = next(root.rglob("Ses01F_impro01_F000.wav"))
    missing.unlink()
    with pytest.raises(DataError, match=r"Ses01F_impro01_F000.wav: file not found"):
        load_manifest(corpus("iemocap", root))


# ---------------------------------------------------------------- SAVEE, CASIA, RAVDESS, CREMA-D

def test_savee_flat_and_original(tmp_path, tone):
    for name in ("DC_a01.wav", "DC_sa02.wav", "JE_su03.wav", "JE_n01.wav"):
        tone(tmp_path / "flat" / name)
    for name in ("DC/a01.wav", "DC/sa02.wav", "KL/h05.wav"):
        tone(tmp_path / "orig" / "AudioData" / name)
    flat = load_manifest(corpus("savee", tmp_path / "flat")).by_id()
    assert flat["DC_sa02"].label == "sadness" and flat["JE_su03"].label == "surprise"
    assert flat["DC_a01"].speaker == "DC"
    orig = load_manifest(corpus("savee", tmp_path / "orig")).by_id()
    assert set(orig) == {"DC_a01", "DC_sa02", "KL_h05"} and orig["KL_h05"].label == "happiness"
    tone(tmp_path / "flat" / "DC_x01.wav")
    with pytest.raises(DataError, match=r"DC_x01.wav: unknown emotion code"):
        load_manifest(corpus("savee", tmp_path / "flat"))


def test_casia(tmp_path, tone):
    for path in ("liuchang/angry/201.wav", "liuchang/happy/202.wav", "wangzhe/sad/201.wav"):
        tone(tmp_path / path)
    manifest = load_manifest(corpus("casia", tmp_path))
    assert {u.label for u in manifest.utterances} == {"anger", "happiness", "sadness"}
    assert manifest.speakers() == ("liuchang", "wangzhe")
    tone(tmp_path / "wangzhe" / "bored" / "1.wav")
    with pytest.raises(DataError, match="unknown emotion folder 'bored'"):
        load_manifest(corpus("casia", tmp_path))


def test_ravdess(tmp_path, tone):
    tone(tmp_path / "Actor_01" / "03-01-05-02-01-01-01.wav")
    tone(tmp_path / "Actor_02" / "03-01-02-01-02-02-02.wav")
    by_id = load_manifest(corpus("ravdess", tmp_path)).by_id()
    angry = by_id["03-01-05-02-01-01-01"]
    assert angry.label == "anger" and angry.speaker == "01"
    assert dict(angry.extra)["intensity"] == "strong"
    assert by_id["03-01-02-01-02-02-02"].label == "calm"
    tone(tmp_path / "Actor_02" / "03-01-09-01-02-02-02.wav")
    with pytest.raises(DataError, match="unknown emotion code '09'"):
        load_manifest(corpus("ravdess", tmp_path))


HEADER = ('"","A","D","F","H","N","S","fileName","numResponses","agreement","emoVote",'
          '"meanEmoResp"\n')


def test_cremad_with_and_without_votes(tmp_path, tone):
    for name in ("1001_DFA_ANG_XX", "1002_IEO_HAP_HI"):
        tone(tmp_path / "AudioWAV" / f"{name}.wav")
    no_votes = load_manifest(corpus("cremad", tmp_path)).by_id()
    assert no_votes["1001_DFA_ANG_XX"].agreement is None
    (tmp_path / "processedResults").mkdir()
    # The release's format: quoted header with "" for the id, quoted ids and names, one row per
    # clip and stimulus type (the id's first digit: 1 voice, 2 face, 3 audio-visual).
    (tmp_path / "processedResults" / "tabulatedVotes.csv").write_text(
        HEADER +
        '"100001",7,1,0,0,2,0,"1001_DFA_ANG_XX",10,0.7,"A",71.7\n'
        '"100002",0,0,0,4,6,0,"1002_IEO_HAP_HI",10,0.6,"N",62\n'
        '"200001",1,0,0,0,9,0,"1001_DFA_ANG_XX",10,0.9,"N",50\n'
        '"200002",0,0,0,9,1,0,"1002_IEO_HAP_HI",10,0.9,"H",62\n'
        '"300001",10,0,0,0,0,0,"1001_DFA_ANG_XX",10,1,"A",80\n'
        '"300002",0,0,0,8,2,0,"1002_IEO_HAP_HI",10,0.8,"H",62\n')
    manifest = load_manifest(corpus("cremad", tmp_path))
    by_id = manifest.by_id()
    assert by_id["1001_DFA_ANG_XX"].agreement == pytest.approx(0.7)  # the voice-only row
    assert by_id["1002_IEO_HAP_HI"].label == "happiness"
    assert by_id["1002_IEO_HAP_HI"].agreement == pytest.approx(0.4)
    assert by_id["1002_IEO_HAP_HI"].n_raters == 10
    assert by_id["1001_DFA_ANG_XX"].speaker == "1001"
    assert manifest.votes_from == "voice"
    from emoref.metrics import vote_distribution  # the voice raters' votes reach the metrics
    assert manifest.classes == ("anger", "happiness")
    assert vote_distribution(by_id["1002_IEO_HAP_HI"].votes, manifest.classes)[0].tolist() == [0, 1]
    p, outside = vote_distribution(by_id["1001_DFA_ANG_XX"].votes, manifest.classes)
    assert p.tolist() == [1.0, 0.0] and outside == 3  # one disgust and two neutral votes
    face = load_manifest(corpus("cremad", tmp_path, "corpus.cremad_votes=face")).by_id()
    assert face["1002_IEO_HAP_HI"].agreement == pytest.approx(0.9)
    both = load_manifest(corpus("cremad", tmp_path, "corpus.cremad_votes=all")).by_id()
    assert both["1001_DFA_ANG_XX"].agreement == pytest.approx((7 + 1 + 10) / 30)
    assert both["1001_DFA_ANG_XX"].n_raters == 30
    (tmp_path / "processedResults" / "tabulatedVotes.csv").write_text(
        HEADER + '"900001",7,1,0,0,2,0,"1001_DFA_ANG_XX",10,0.7,"A",71.7\n')
    with pytest.raises(DataError, match=r"tabulatedVotes.csv:2: the row id '900001' does not "
                                        r"start with a stimulus type"):
        load_manifest(corpus("cremad", tmp_path))
    (tmp_path / "processedResults" / "tabulatedVotes.csv").write_text("A,D,fileName\n1,2,x\n")
    with pytest.raises(DataError, match=r"tabulatedVotes.csv: missing columns"):
        load_manifest(corpus("cremad", tmp_path))


# ---------------------------------------------------------------- CSV manifest

def test_csv_manifest(tmp_path, tone):
    tone(tmp_path / "audio" / "a.wav", sr=44100, channels=2)
    tone(tmp_path / "audio" / "b.wav")
    (tmp_path / "m.csv").write_text("path,label,speaker,agreement\naudio/a.wav,anger,s1,0.8\n"
                                    f"{tmp_path / 'audio' / 'b.wav'},calm,s2,\n")
    manifest = load_manifest(corpus("csv", tmp_path / "m.csv"))
    by_id = manifest.by_id()
    assert by_id["a"].agreement == 0.8 and by_id["a"].speaker == "s1"
    assert by_id["b"].agreement is None and manifest.classes == ("anger", "calm")


def test_csv_missing_column_and_bad_agreement(tmp_path, tone):
    tone(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text("file,emotion\na.wav,anger\n")
    with pytest.raises(DataError, match=r"m.csv: missing column\(s\) \['path', 'label'\]"):
        load_manifest(corpus("csv", tmp_path / "m.csv"))
    (tmp_path / "m.csv").write_text("path,label,agreement\na.wav,anger,1.7\n")
    with pytest.raises(DataError, match=r"m.csv:2: agreement must be a number in \[0, 1\]"):
        load_manifest(corpus("csv", tmp_path / "m.csv"))


def test_class_mapping_unknown_class(tmp_path, tone):
    root = make_emodb(tmp_path, tone)
    with pytest.raises(DataError, match=r"corpus.classes names \['surprise'\]"):
        load_manifest(corpus("emodb", root, "corpus.classes=anger,surprise"))
    kept = load_manifest(corpus("emodb", root, "corpus.classes=sadness,anger"))
    assert kept.classes == ("sadness", "anger") and len(kept) == 2


def test_manifest_csv_round_trip(tmp_path, tone):
    manifest = load_manifest(corpus("emodb", make_emodb(tmp_path / "c", tone)))
    manifest.to_csv(tmp_path / "out.csv")
    again = Manifest.from_csv(tmp_path / "out.csv", manifest.corpus, manifest.classes)
    assert again == manifest
