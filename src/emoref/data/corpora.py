"""Corpus loaders: each reads a corpus in the layout its distributor ships and returns Utterances.

`load_manifest(config.corpus)` is the entry point; LOADERS maps a corpus name to its reader. Every
reader checks each audio file's header (soundfile) so a missing, corrupt or empty file is caught here,
named, and either stops the load (on_bad_audio=error) or is listed in `Manifest.skipped` (skip).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import soundfile as sf

from emoref.config import CorpusConfig
from emoref.data.manifest import DataError, Manifest, Utterance, apply_class_mapping

AUDIO_SUFFIXES = (".wav", ".flac")


class _AudioCheck:
    """Reads each file's header once; applies the on_bad_audio policy and remembers what it skipped."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.skipped: list[str] = []

    def duration(self, path: Path) -> float | None:
        reason = None
        if not path.is_file():
            reason = "file not found"
        else:
            try:
                info = sf.info(str(path))
                if info.frames <= 0:
                    reason = "no audio frames (empty file)"
            except Exception as err:  # soundfile raises LibsndfileError/RuntimeError/TypeError
                reason = f"unreadable audio ({type(err).__name__}: {err})".replace("\n", " ")
        if reason is None:
            return info.frames / info.samplerate
        if self.policy == "error":
            raise DataError(f"{path}: {reason}; fix or remove the file, or set "
                            f"corpus.on_bad_audio=skip to leave it out")
        self.skipped.append(f"{path}: {reason}")
        return None


def _require_dir(root: Path, what: str) -> Path:
    if not root.exists():
        raise DataError(f"{root}: corpus root not found (expected {what})")
    if not root.is_dir():
        raise DataError(f"{root}: corpus root is not a folder (expected {what})")
    return root


def _no_audio(root: Path, layout: str) -> DataError:
    return DataError(f"{root}: no audio files found; expected the layout {layout}")


# ----------------------------------------------------------------------------------------------------
# EmoDB: wav/03a01Fa.wav + erkennung.txt
# ----------------------------------------------------------------------------------------------------

EMODB_CODES = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness",
               "T": "sadness", "N": "neutral"}
_EMODB_NAME = re.compile(r"^(\d\d)([a-z]\d\d)([A-Z])([a-z])$")


def _emodb_rates(path: Path) -> dict[str, tuple[float, float]]:
    """{file name: (recognition %, naturalness %)} from erkennung.txt (latin-1, tabs, decimal comma)."""
    if not path.is_file():
        raise DataError(f"{path}: not found; EmoDB's agreement comes from erkennung.txt beside wav/")
    rates = {}
    lines = path.read_text(encoding="latin-1").splitlines()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        # Cells are padded with non-breaking spaces (latin-1 0xA0) in the original release.
        cells = [c.replace("\xa0", "").strip() for c in line.split("\t")]
        try:
            name, recognised, natural = cells[1], cells[2], cells[3]
            rates[name] = (float(recognised.replace(",", ".")), float(natural.replace(",", ".")))
        except (IndexError, ValueError):
            raise DataError(f"{path}:{number}: expected 'Nr<TAB>file.wav<TAB>recognition %<TAB>"
                            f"naturalness %' with decimal commas, got {line!r}") from None
    return rates


def load_emodb(config: CorpusConfig, check: _AudioCheck) -> list[Utterance]:
    root = _require_dir(Path(config.root).expanduser(), "wav/ and erkennung.txt")
    wavs = sorted((root / "wav").glob("*.wav"))
    if not wavs:
        raise _no_audio(root, "wav/<speaker><text><emotion><version>.wav")
    rates = _emodb_rates(root / "erkennung.txt")
    out = []
    for path in wavs:
        match = _EMODB_NAME.match(path.stem)
        if not match:
            raise DataError(f"{path}: expected an EmoDB name such as 03a01Fa.wav")
        speaker, _, code, _ = match.groups()
        if code not in EMODB_CODES:
            raise DataError(f"{path}: unknown emotion code {code!r}; EmoDB codes are "
                            f"{sorted(EMODB_CODES)}")
        if path.name not in rates:
            raise DataError(f"{root / 'erkennung.txt'}: has no recognition rate for {path.name}")
        duration = check.duration(path)
        if duration is None:
            continue
        recognised, natural = rates[path.name]
        out.append(Utterance(id=path.stem, path=str(path.resolve()), speaker=speaker,
                             label=EMODB_CODES[code], agreement=recognised / 100.0,
                             duration=duration, corpus="emodb",
                             extra=(("naturalness", f"{natural / 100.0:g}"),)))
    return out


# ----------------------------------------------------------------------------------------------------
# IEMOCAP full release: Session*/sentences/wav/<dialog>/<utt>.wav, Session*/dialog/EmoEvaluation/*.txt
# ----------------------------------------------------------------------------------------------------

IEMOCAP_CODES = {"neu": "neutral", "ang": "anger", "hap": "happiness", "exc": "excitement",
                 "sad": "sadness", "fru": "frustration", "sur": "surprise", "fea": "fear",
                 "dis": "disgust", "oth": "other", "xxx": "undecided"}
IEMOCAP_RATER_NAMES = {"neutral": "neutral", "neutral state": "neutral", "anger": "anger",
                       "happiness": "happiness", "excited": "excitement", "sadness": "sadness",
                       "frustration": "frustration", "surprise": "surprise", "fear": "fear",
                       "disgust": "disgust", "other": "other"}
_IEMOCAP_HEADER = re.compile(r"^\[(\d+(?:\.\d+)?) - (\d+(?:\.\d+)?)\]\t(\S+)\t(\w+)\t\[(.*)\]\s*$")
_IEMOCAP_RATER = re.compile(r"^(C-[EFM]\d+):\t(.*?)\t")


@dataclass
class Evaluation:
    """One utterance's block of an EmoEvaluation file: its header and every annotator's line."""

    utterance: str
    label: str                                   # the consensus code, folded (xxx: undecided)
    votes: Counter = field(default_factory=Counter)  # folded label -> raters naming it
    raters: int = 0                              # raters behind `votes`
    extra: dict[str, str] = field(default_factory=dict)
    evaluators: list[tuple[str, ...]] = field(default_factory=list)   # C-E* label sets
    actors: list[tuple[str, ...]] = field(default_factory=list)       # C-F*, C-M* label sets
    dimensions: list[tuple[float, float, float]] = field(default_factory=list)  # A-* lines
    malformed_dimensions: int = 0                # A-* lines without three numbers


_IEMOCAP_DIMENSIONS = re.compile(r"^(A-[EFM]\d+):\t(.*?)(\t|$)")
_DIMENSION = re.compile(r"(val|act|dom)\s+(-?\d+(?:\.\d+)?)\s*(?:;|$)")


def parse_emo_evaluation(path: Path, fold: dict[str, str], include_self_ratings: bool
                         ) -> list[Evaluation]:
    """Every utterance block of one EmoEvaluation file, as the release writes it:

        [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
        C-E2:<TAB>Neutral;<TAB>()                     an evaluator's categories
        C-E3:<TAB>Frustration; Anger;<TAB>()          several categories, each counted once
        C-E4:<TAB>Other:annoyed;<TAB>(comment)        "Other" with the rater's words
        C-F1:<TAB>Neutral;<TAB>()                     an actor's own rating
        A-E3:<TAB>val 3; act 2; dom  2;<TAB>()        valence, activation, dominance
        A-F3:<TAB>val 6; act 6; dom ;<TAB>()          malformed: left out and counted

    A rater counts once for each distinct label their answer contains after folding (`fold`, e.g.
    excitement -> happiness). The actors' ratings count in `votes` only with
    `include_self_ratings`; they are kept apart in `actors` either way."""
    blocks: list[Evaluation] = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        if line.startswith("["):
            match = _IEMOCAP_HEADER.match(line)
            if not match:
                raise DataError(f"{path}:{number}: expected '[start - end]<TAB>utterance<TAB>code"
                                f"<TAB>[val, act, dom]', got {line!r}")
            _, _, utt, code, vad = match.groups()
            if code not in IEMOCAP_CODES:
                raise DataError(f"{path}:{number}: unknown emotion code {code!r}; IEMOCAP codes "
                                f"are {sorted(IEMOCAP_CODES)}")
            label = fold.get(IEMOCAP_CODES[code], IEMOCAP_CODES[code])
            blocks.append(Evaluation(utt, label, extra={"val_act_dom": vad.replace(" ", "")}))
        elif line.startswith("C-"):
            match = _IEMOCAP_RATER.match(line + ("\t" if line.count("\t") < 2 else ""))
            if not match or not blocks:
                raise DataError(f"{path}:{number}: expected 'C-E1:<TAB>Emotion;<TAB>(comment)' "
                                f"after an utterance header, got {line!r}")
            rater, answer = match.groups()
            labels = set()
            for item in answer.split(";"):
                name = item.split(":")[0].strip().lower()  # "Other:  comment" -> "other"
                if not name:
                    continue
                if name not in IEMOCAP_RATER_NAMES:
                    raise DataError(f"{path}:{number}: unknown rater emotion {name!r}; expected one "
                                    f"of {sorted(IEMOCAP_RATER_NAMES)}")
                canonical = IEMOCAP_RATER_NAMES[name]
                labels.add(fold.get(canonical, canonical))
            block = blocks[-1]
            (block.evaluators if rater[2] == "E" else block.actors).append(tuple(sorted(labels)))
            if rater[2] != "E" and not include_self_ratings:
                continue
            block.votes.update(labels)
            block.raters += 1
        elif line.startswith("A-") and blocks:
            match = _IEMOCAP_DIMENSIONS.match(line)
            values = dict((k, float(v)) for k, v, in _DIMENSION.findall(match.group(2))) \
                if match else {}
            if set(values) == {"val", "act", "dom"}:
                blocks[-1].dimensions.append((values["val"], values["act"], values["dom"]))
            else:
                blocks[-1].malformed_dimensions += 1
    return blocks


def load_iemocap(config: CorpusConfig, check: _AudioCheck) -> list[Utterance]:
    root = _require_dir(Path(config.root).expanduser(), "Session1..Session5")
    sessions = sorted(p for p in root.glob("Session[0-9]*") if p.is_dir())
    if not sessions:
        raise _no_audio(root, "Session{1..5}/sentences/wav/<dialog>/<utterance>.wav")
    fold = dict(pair.split(":") for pair in config.merge)
    out = []
    for session in sessions:
        evaluations = sorted((session / "dialog" / "EmoEvaluation").glob("*.txt"))
        if not evaluations:
            raise DataError(f"{session / 'dialog' / 'EmoEvaluation'}: no evaluation files")
        for evaluation in evaluations:
            for block in parse_emo_evaluation(evaluation, fold, config.include_self_ratings):
                utt, label, votes, raters = block.utterance, block.label, block.votes, block.raters
                dialog = utt.rsplit("_", 1)[0]
                path = session / "sentences" / "wav" / dialog / f"{utt}.wav"
                duration = check.duration(path)
                if duration is None:
                    continue
                # Speaker: session and the utterance's own gender letter (Ses01F_impro01_M000 -> Ses01M).
                speaker = utt[:5] + utt.rsplit("_", 1)[1][0]
                agreement = min(1.0, votes[label] / raters) if raters else None
                extra = dict(block.extra)
                if block.malformed_dimensions:
                    extra["malformed_dimension_lines"] = str(block.malformed_dimensions)
                out.append(Utterance(id=utt, path=str(path.resolve()), speaker=speaker, label=label,
                                     agreement=agreement, votes=tuple(votes.most_common()),
                                     n_raters=raters, duration=duration, corpus="iemocap",
                                     extra=tuple(extra.items()),
                                     evaluator_labels=tuple(block.evaluators),
                                     self_labels=tuple(block.actors),
                                     dimensions=tuple(block.dimensions)))
    if not out and not check.skipped:
        raise _no_audio(root, "Session{1..5}/sentences/wav/<dialog>/<utterance>.wav")
    return out


# ----------------------------------------------------------------------------------------------------
# SAVEE, CASIA, RAVDESS, CREMA-D: labels from names
# ----------------------------------------------------------------------------------------------------

SAVEE_CODES = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "n": "neutral",
               "sa": "sadness", "su": "surprise"}
_SAVEE_CODE = re.compile(r"^([a-z]+?)(\d+)$")


def load_savee(config: CorpusConfig, check: _AudioCheck) -> list[Utterance]:
    """Flat `DC_a01.wav` or the original `AudioData/DC/a01.wav` layout."""
    root = _require_dir(Path(config.root).expanduser(), "DC_a01.wav files or AudioData/DC/a01.wav")
    base = root / "AudioData" if (root / "AudioData").is_dir() else root
    found = []  # (speaker, stem, path)
    for path in sorted(base.rglob("*.wav")):
        if path.parent == base and "_" in path.stem:
            speaker, stem = path.stem.split("_", 1)
        elif path.parent.parent == base:
            speaker, stem = path.parent.name, path.stem
        else:
            continue
        found.append((speaker, stem, path))
    if not found:
        raise _no_audio(root, "DC_a01.wav (flat) or AudioData/DC/a01.wav")
    out = []
    for speaker, stem, path in found:
        match = _SAVEE_CODE.match(stem)
        if not match or match.group(1) not in SAVEE_CODES:
            raise DataError(f"{path}: unknown emotion code in {stem!r}; SAVEE codes are "
                            f"{sorted(SAVEE_CODES)}")
        duration = check.duration(path)
        if duration is not None:
            out.append(Utterance(id=f"{speaker}_{stem}", path=str(path.resolve()), speaker=speaker,
                                 label=SAVEE_CODES[match.group(1)], duration=duration,
                                 corpus="savee"))
    return out


CASIA_NAMES = {"angry": "anger", "fear": "fear", "happy": "happiness", "neutral": "neutral",
               "sad": "sadness", "surprise": "surprise"}


def load_casia(config: CorpusConfig, check: _AudioCheck) -> list[Utterance]:
    root = _require_dir(Path(config.root).expanduser(), "<speaker>/<emotion>/<n>.wav")
    paths = sorted(p for p in root.glob("*/*/*.wav"))
    if not paths:
        raise _no_audio(root, "<speaker>/<emotion>/<n>.wav")
    out = []
    for path in paths:
        speaker, emotion = path.parent.parent.name, path.parent.name
        if emotion.lower() not in CASIA_NAMES:
            raise DataError(f"{path}: unknown emotion folder {emotion!r}; CASIA folders are "
                            f"{sorted(CASIA_NAMES)}")
        duration = check.duration(path)
        if duration is not None:
            out.append(Utterance(id=f"{speaker}_{emotion}_{path.stem}", path=str(path.resolve()),
                                 speaker=speaker, label=CASIA_NAMES[emotion.lower()],
                                 duration=duration, corpus="casia"))
    return out


RAVDESS_CODES = {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness", "05": "anger",
                 "06": "fear", "07": "disgust", "08": "surprise"}
_RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def load_ravdess(config: CorpusConfig, check: _AudioCheck) -> list[Utterance]:
    root = _require_dir(Path(config.root).expanduser(), "Actor_NN/03-01-EE-II-SS-RR-AA.wav")
    paths = sorted(root.glob("Actor_*/*.wav"))
    if not paths:
        raise _no_audio(root, "Actor_NN/03-01-EE-II-SS-RR-AA.wav")
    out = []
    for path in paths:
        match = _RAVDESS_NAME.match(path.stem)
        if not match:
            raise DataError(f"{path}: expected a RAVDESS name such as 03-01-05-02-01-01-12.wav")
        modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
        if emotion not in RAVDESS_CODES:
            raise DataError(f"{path}: unknown emotion code {emotion!r}; RAVDESS codes are "
                            f"{sorted(RAVDESS_CODES)}")
        duration = check.duration(path)
        if duration is not None:
            out.append(Utterance(
                id=path.stem, path=str(path.resolve()), speaker=actor, label=RAVDESS_CODES[emotion],
                duration=duration, corpus="ravdess",
                extra=(("intensity", {"01": "normal", "02": "strong"}.get(intensity, intensity)),
                       ("channel", {"01": "speech", "02": "song"}.get(channel, channel)),
                       ("statement", statement), ("repetition", repetition))))
    return out


CREMAD_CODES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral",
                "SAD": "sadness"}
CREMAD_VOTE_COLUMNS = {"A": "anger", "D": "disgust", "F": "fear", "H": "happiness", "N": "neutral",
                       "S": "sadness"}
_CREMAD_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


# The row id's first digit in tabulatedVotes.csv: what the raters were shown (the release's
# queryType). corpus.cremad_votes picks one, or "all".
CREMAD_STIMULI = {"1": "voice", "2": "face", "3": "audiovisual"}


def _cremad_votes(path: Path, stimulus: str) -> dict[str, tuple[Counter[str], int]]:
    """{file name: (vote counts, responses)} from processedResults/tabulatedVotes.csv, as the
    release writes it (a header of quoted names, the first "" for the row id; one row per clip
    and stimulus type):

        "","A","D","F","H","N","S","fileName","numResponses","agreement","emoVote",...
        "100001",0,0,0,1,10,0,"1001_IEO_NEU_XX",11,0.909090909090909,"N",...

    Only the rows of `stimulus` (voice, face, audiovisual) are read; "all" sums a clip's rows.
    """
    table: dict[str, tuple[Counter[str], int]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        missing = [c for c in (*CREMAD_VOTE_COLUMNS, "fileName", "numResponses")
                   if c not in fields]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; expected A,D,F,H,N,S,fileName,"
                            f"numResponses")
        for number, row in enumerate(reader, start=2):
            kind = CREMAD_STIMULI.get(str(row[fields[0]]).strip()[:1])
            if kind is None:
                raise DataError(f"{path}:{number}: the row id {row[fields[0]]!r} does not start "
                                f"with a stimulus type {sorted(CREMAD_STIMULI)} (1 voice, 2 "
                                "face, 3 audio-visual)")
            if stimulus not in ("all", kind):
                continue
            try:
                counts = Counter({CREMAD_VOTE_COLUMNS[c]: int(float(row[c]))
                                  for c in CREMAD_VOTE_COLUMNS})
                responses = int(float(row["numResponses"]))
            except ValueError:
                raise DataError(f"{path}:{number}: vote counts must be numbers, got {row}") from None
            name = Path(row["fileName"]).stem
            before, total = table.get(name, (Counter(), 0))
            table[name] = (before + counts, total + responses)
    return table


def load_cremad(config: CorpusConfig, check: _AudioCheck) -> list[Utterance]:
    root = _require_dir(Path(config.root).expanduser(), "AudioWAV/1001_DFA_ANG_XX.wav")
    paths = sorted((root / "AudioWAV").glob("*.wav"))
    if not paths:
        raise _no_audio(root, "AudioWAV/1001_DFA_ANG_XX.wav")
    votes_file = root / "processedResults" / "tabulatedVotes.csv"
    votes = _cremad_votes(votes_file, config.cremad_votes) if votes_file.is_file() else {}
    fold = dict(pair.split(":") for pair in config.merge)
    out = []
    for path in paths:
        match = _CREMAD_NAME.match(path.stem)
        if not match:
            raise DataError(f"{path}: expected a CREMA-D name such as 1001_DFA_ANG_XX.wav")
        actor, sentence, emotion, level = match.groups()
        if emotion not in CREMAD_CODES:
            raise DataError(f"{path}: unknown emotion code {emotion!r}; CREMA-D codes are "
                            f"{sorted(CREMAD_CODES)}")
        duration = check.duration(path)
        if duration is None:
            continue
        label = fold.get(CREMAD_CODES[emotion], CREMAD_CODES[emotion])
        counts, responses = votes.get(path.stem, (Counter(), 0))
        folded: Counter[str] = Counter()
        for name, n in counts.items():
            folded[fold.get(name, name)] += n
        # Agreement: share of responses naming the acted (canonical) emotion.
        agreement = folded[label] / responses if responses else None
        out.append(Utterance(id=path.stem, path=str(path.resolve()), speaker=actor, label=label,
                             agreement=agreement, votes=tuple((k, n) for k, n in folded.most_common() if n > 0),
                             n_raters=responses, duration=duration, corpus="cremad",
                             extra=(("sentence", sentence), ("level", level))))
    return out


# ----------------------------------------------------------------------------------------------------
# Generic CSV manifest: path,label[,speaker][,agreement]
# ----------------------------------------------------------------------------------------------------

def load_csv(config: CorpusConfig, check: _AudioCheck) -> list[Utterance]:
    """Rows of path,label[,speaker][,agreement]; relative paths are relative to the CSV's folder."""
    manifest = Path(config.root).expanduser()
    if not manifest.is_file():
        raise DataError(f"{manifest}: manifest CSV not found (corpus.root names the CSV file)")
    with open(manifest, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            raise DataError(f"{manifest}: missing column(s) {missing}; expected a header "
                            f"path,label[,speaker][,agreement], got {columns}")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    if not rows:
        raise _no_audio(manifest, "one row per audio file under the header")
    out = []
    for number, row in enumerate(rows, start=2):
        if not row.get("path") or not row.get("label"):
            raise DataError(f"{manifest}:{number}: empty path or label")
        agreement = None
        if row.get("agreement"):
            try:
                agreement = float(row["agreement"])
            except ValueError:
                agreement = -1.0
            if not 0.0 <= agreement <= 1.0:
                raise DataError(f"{manifest}:{number}: agreement must be a number in [0, 1], got "
                                f"{row['agreement']!r}")
        path = Path(row["path"])
        path = path if path.is_absolute() else manifest.parent / path
        duration = check.duration(path)
        if duration is None:
            continue
        out.append(Utterance(id=row.get("id") or path.stem, path=str(path.resolve()),
                             speaker=row.get("speaker") or "unknown", label=row["label"],
                             agreement=agreement, duration=duration, corpus="csv"))
    return out


def load_synthetic(config: CorpusConfig, check: _AudioCheck) -> list[Utterance]:
    from emoref.data.synthetic import ensure_synthetic_corpus

    manifest = ensure_synthetic_corpus(config.synthetic, Path(config.cache_dir).expanduser())
    return list(manifest.utterances)


LOADERS: dict[str, Callable[[CorpusConfig, _AudioCheck], list[Utterance]]] = {
    "synthetic": load_synthetic,
    "emodb": load_emodb,
    "iemocap": load_iemocap,
    "savee": load_savee,
    "casia": load_casia,
    "ravdess": load_ravdess,
    "cremad": load_cremad,
    "csv": load_csv,
}


def load_manifest(config: CorpusConfig) -> Manifest:
    """Read the configured corpus, apply its class mapping, and check that something is left."""
    check = _AudioCheck(config.on_bad_audio)
    utterances = LOADERS[config.name](config, check)
    if not utterances:
        raise DataError(f"{config.root or config.name}: no usable utterances "
                        f"({len(check.skipped)} skipped: {check.skipped[:3]})")
    # The synthetic corpus keeps its own class order; others default to the sorted label set.
    wanted = config.classes or (config.synthetic.classes if config.name == "synthetic" else ())
    classes, kept = apply_class_mapping(config.name, utterances, wanted, config.merge)
    if not kept:
        raise DataError(f"{config.name}: no utterance has a label among {config.classes}")
    return Manifest(corpus=config.name, classes=classes, utterances=kept,
                    votes_from=config.cremad_votes if config.name == "cremad" else "",
                    skipped=tuple(check.skipped))
