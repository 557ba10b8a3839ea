"""Built-in tasks: free-viewing, classification, detection, captioning.

Each task scores a model's output per stimulus (for the alignment-versus-task analysis) and over
the whole dataset (the numbers a paper reports). ``solved`` is the per-stimulus success flag the
analysis splits on.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Sequence

from harness.hookspecs import hookimpl


@hookimpl
def register_tasks(register):
    register("free-viewing", "plugins.tasks:FreeViewing", requires=("fixations",),
             description="Gaze alignment only; no task output is scored.")
    register("classification", "plugins.tasks:Classification", requires=("label",),
             description="Top-1 and top-5 accuracy against the dataset's class label.")
    register("detection", "plugins.tasks:Detection", requires=("objects",),
             description="COCO mAP and mAP@50 (pycocotools) against the dataset's boxes.")
    register("captioning", "plugins.tasks:Captioning", requires=("captions",),
             description="BLEU-4, CIDEr, ROUGE-L (pycocoevalcap) against the reference captions.")


class FreeViewing:
    name = "free-viewing"
    requires = ("fixations",)
    primary = None
    per_image_score = None

    def score_image(self, output: dict, record: dict) -> dict[str, float]:
        return {}

    def score_dataset(self, outputs, records) -> dict[str, float]:
        return {}


def _norm_label(s: Any) -> str:
    return re.sub(r"[\s_-]+", " ", str(s)).strip().lower()


def _synonyms(label: Any) -> set[str]:
    """A label and, for an ImageNet-style ``"tabby, tabby cat"``, each comma-separated synonym."""
    return {_norm_label(p) for p in str(label).split(",")} | {_norm_label(label)}


def _whole_name(label: Any) -> str:
    return ", ".join(_norm_label(p) for p in str(label).split(","))


@functools.lru_cache(maxsize=1)
def _imagenet_names() -> dict[str, frozenset[str]]:
    """Each ImageNet-1k whole name (as :func:`_whole_name` writes it) -> the wnids it names."""
    from harness.imagenet_classes import CLASSES

    names: dict[str, set[str]] = {}
    for wnid, name in CLASSES:
        names.setdefault(_whole_name(name), set()).add(wnid)
    return {k: frozenset(v) for k, v in names.items()}


def _imagenet_classes(label: Any) -> frozenset[str]:
    """The ImageNet-1k classes (wnids) whose whole name ``label`` is (case and separators ignored):
    usually one, two for the names two classes share ("crane"), none for anything else."""
    return _imagenet_names().get(_whole_name(label), frozenset())


def label_matches(predicted: Any, reference: Any, aliases: dict[str, Sequence[str]] | None = None) -> bool:
    """A prediction is right when it names the reference class: exactly (case and separators
    ignored), through a shared synonym of ImageNet-style comma-separated names (``"tabby"`` names
    ``"tabby, tabby cat"`` and the other way round), or through the dataset's ``label_aliases``
    (reference class -> model labels, matched the same way). Two whole names of different
    ImageNet-1k classes never match through a synonym: "Cardigan, Cardigan Welsh corgi" (the dog)
    is not "cardigan" (the sweater), although case is ignored."""
    predicted_names = _synonyms(predicted)
    if predicted_names & _synonyms(reference) and not _distinct_classes(predicted, reference):
        return True
    if aliases:  # the reference class found among the alias keys as labels are: case and separators ignored
        ref = _norm_label(reference)
        listed = [a for key, names in aliases.items() if _norm_label(key) == ref for a in names]
        return any(predicted_names & _synonyms(a) and not _distinct_classes(predicted, a) for a in listed)
    return False


def _distinct_classes(a: Any, b: Any) -> bool:
    """Both whole names of ImageNet-1k classes, and no class is named by both."""
    ca, cb = _imagenet_classes(a), _imagenet_classes(b)
    return bool(ca) and bool(cb) and not ca & cb


class Classification:
    name = "classification"
    requires = ("label",)
    primary = "top1"
    per_image_score = "top1"  # correlated with per-stimulus alignment
    #: of the scoring, in each run's ``task_params`` (runs scored otherwise are not reused nor compared):
    #: 2: top-5 counts the label whatever ``topk`` lists; ImageNet names of different classes that share
    #: a synonym ("Cardigan" the corgi, "cardigan" the sweater) no longer match. 3: a dataset's
    #: ``label_aliases`` keys are matched as labels are, case and separators ignored (an "Aeroplane"
    #: label missed the "aeroplane" key's aliases; found by QA)
    version = "3"

    def __init__(self, label_aliases: dict[str, Sequence[str]] | None = None):
        self.label_aliases = label_aliases

    def score_image(self, output: dict, record: dict) -> dict[str, float]:
        # an answer that is not a class name fails its stimulus: str(None) or str(42) could match
        label = output.get("label")
        if not isinstance(label, str):
            raise ValueError(f"'label' must be the predicted class name (a string), got {label!r}")
        topk = output.get("topk")
        if topk is not None and (not isinstance(topk, (list, tuple)) or not all(isinstance(t, str) for t in topk)):
            raise ValueError(f"'topk' must be a list of class names, got {_short(topk)}")
        ref = record.get("label")
        if ref is None:
            return {}
        top1 = float(label_matches(output.get("label", ""), ref, self.label_aliases))
        topk = output.get("topk") or [output.get("label", "")]
        # the label is the first answer whatever topk lists (a plugin's topk may not start with it)
        top5 = float(bool(top1) or any(label_matches(p, ref, self.label_aliases) for p in topk[:5]))
        return {"top1": top1, "top5": top5, "solved": top1}

    def score_dataset(self, outputs, records) -> dict[str, float]:
        scores = [self.score_image(o, r) for o, r in zip(outputs, records) if r.get("label") is not None]
        if not scores:
            return {}
        return {k: sum(s[k] for s in scores) / len(scores) for k in ("top1", "top5")}

    def notes(self, outputs, records) -> list[str]:
        """A run whose predicted labels never name a class of the dataset (ImageNet WordNet ids
        against bird species) scores top-1 0 whatever it sees: said, since that zero says nothing."""
        predicted = {str(v) for o in outputs for v in [o.get("label"), *(o.get("topk") or [])] if isinstance(v, str)}
        classes = {str(r["label"]) for r in records if r.get("label") is not None}
        if not predicted or not classes:
            return []
        # label_matches over every pair, as one intersection of names
        named = set().union(*map(_synonyms, predicted))
        aliases = self.label_aliases or {}
        if named & set().union(*(_synonyms(c) | set().union(*map(_synonyms, aliases.get(c, ()))) for c in classes)):
            return []
        return [f"none of the {len(predicted)} labels the model predicted names one of the dataset's "
                f"{len(classes)} classes (e.g. {sorted(predicted)[0]!r} against {sorted(classes)[0]!r}): its "
                "top-1 of 0 says nothing about the model; a dataset maps its classes to a model's labels with "
                "label_aliases (docs/plugins.md)"]


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _number(v: Any) -> bool:
    import math
    from numbers import Real

    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _listed(v: Any) -> Any:
    """A list as given, or an array's (numpy, torch) as a list; anything else as it is."""
    return v.tolist() if hasattr(v, "tolist") and not isinstance(v, (str, bytes)) else v


def check_detections(output: dict) -> None:
    """An output detection scores: ``boxes`` ([x, y, w, h], finite, w and h >= 0), ``scores``
    (finite) and ``categories`` (names), one of each per detection. Anything else fails its
    stimulus: a NaN box used to match every reference in pycocotools (``NaN < t`` is False), a
    missing key scored as no detections, lists of unequal length were cut to the shortest."""
    boxes, scores, cats = (_listed(output.get(k)) for k in ("boxes", "scores", "categories"))
    missing = [k for k, v in (("boxes", boxes), ("scores", scores), ("categories", cats)) if not isinstance(v, (list, tuple))]
    if missing:
        raise ValueError(f"a detection output needs lists 'boxes', 'scores' and 'categories'; "
                         f"{', '.join(repr(k) for k in missing)} missing or not a list")
    if not len(boxes) == len(scores) == len(cats):
        raise ValueError(f"{len(boxes)} boxes, {len(scores)} scores and {len(cats)} categories: one of each per detection")
    for box in boxes:
        if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_number(v) for v in box) \
                or box[2] < 0 or box[3] < 0:
            raise ValueError(f"a box must be [x, y, width, height], finite, width and height >= 0; got {_short(box)}")
    for score in scores:
        if not _number(score):
            raise ValueError(f"a detection score must be a finite number; got {_short(score)}")
    for cat in cats:
        if not isinstance(cat, str):
            raise ValueError(f"a detection category must be a class name (a string); got {_short(cat)}")


def _iou_xywh(a, b) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class Detection:
    """Dataset level: COCO mAP@[.5:.95] and mAP@50 from pycocotools' COCOeval. Per stimulus:
    recall at IoU 0.5, because AP of a single image is too unstable to correlate: the largest number
    of reference boxes that predictions of their category cover one to one at IoU >= 0.5 (a maximum
    matching, so the order of the boxes does not matter), over the number of references.
    A predicted category names a dataset category when :func:`label_matches` says so, through the
    dataset's ``label_aliases`` too (POET's ``aeroplane`` is a COCO detector's ``airplane``).
    On a dataset whose ``objects`` are not exhaustive (COCO-Search18: the target only; POET: the
    file's class only), each image's predictions count only for its annotated or searched-for
    categories."""

    name = "detection"
    requires = ("objects",)
    primary = "map"
    per_image_score = "recall50"  # correlated with per-stimulus alignment
    #: 2: recall50 a maximum matching (was greedy, in the order of the references), categories
    #: matched through label_aliases (harness.evaluation.runner._task_params records it)
    version = "2"

    def __init__(self, objects_exhaustive: bool = True, label_aliases: dict[str, Sequence[str]] | None = None):
        #: False: the dataset annotates only some categories per image (``GazeDataset.objects_exhaustive``);
        #: a prediction counts only for a category annotated in its image or the image's search target
        self.objects_exhaustive = objects_exhaustive
        #: dataset category -> the names models give it (``GazeDataset.label_aliases``)
        self.label_aliases = label_aliases
        self._memo: dict[tuple, str | None] = {}  # (predicted name, categories) -> category

    def _category(self, predicted: str, categories: Sequence[str]) -> str | None:
        """The dataset category (normalised) a predicted category names, of ``categories``
        (normalised): the same name first, else the first that :func:`label_matches` accepts.
        Memoised: a run asks it for each of up to 100 detections an image."""
        key = (predicted, tuple(categories))
        memo = self._memo
        if key not in memo:
            name = _norm_label(predicted)
            if name in categories:
                memo[key] = name
            else:
                aliases = {_norm_label(k): v for k, v in (self.label_aliases or {}).items()}
                memo[key] = next((c for c in categories if label_matches(predicted, c, aliases)), None)
        return memo[key]

    def _scored(self, category: str, record: dict) -> bool:
        if self.objects_exhaustive:
            return True
        allowed = {_norm_label(o["category"]) for o in (record.get("objects") or [])}
        if record.get("search_target"):
            allowed.add(_norm_label(record["search_target"]))
        return _norm_label(category) in allowed

    def score_image(self, output: dict, record: dict) -> dict[str, float]:
        import numpy as np
        from scipy.optimize import linear_sum_assignment

        check_detections(output)
        refs = record.get("objects") or []
        if not refs:
            return {}
        names = sorted({_norm_label(r["category"]) for r in refs})
        preds = [(box, self._category(cat, names))
                 for box, cat in zip(_listed(output["boxes"]), _listed(output["categories"]))]
        hit = 0
        for name in names:
            mine = [r["bbox"] for r in refs if _norm_label(r["category"]) == name]
            theirs = [box for box, cat in preds if cat == name]
            if not theirs:
                continue
            covers = np.array([[_iou_xywh(p, r) >= 0.5 for p in theirs] for r in mine])
            rows, cols = linear_sum_assignment(covers, maximize=True)
            hit += int(covers[rows, cols].sum())
        recall = hit / len(refs)
        return {"recall50": recall, "solved": float(recall >= 0.5)}

    def notes(self, outputs, records) -> list[str]:
        """A run none of whose predicted categories names a category of the dataset scores mAP 0
        whatever it sees: said, as classification says it."""
        predicted = {c for o in outputs for c in (_listed(o.get("categories")) or []) if isinstance(c, str)}
        categories = sorted({_norm_label(o["category"]) for r in records for o in (r.get("objects") or [])})
        if not predicted or not categories or any(self._category(c, categories) for c in predicted):
            return []
        return [f"none of the {len(predicted)} categories the model predicted names one of the dataset's "
                f"{len(categories)} categories (e.g. {sorted(predicted)[0]!r} against {categories[0]!r}): its mAP "
                "of 0 says nothing about the model; a dataset maps its categories to a model's names with "
                "label_aliases (docs/plugins.md)"]

    def score_dataset(self, outputs, records) -> dict[str, float]:
        import contextlib
        import io

        import numpy as np
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        cats = sorted({_norm_label(o["category"]) for r in records for o in (r.get("objects") or [])})
        if not cats:
            return {}
        cat_id = {c: i + 1 for i, c in enumerate(cats)}
        images, anns, dets = [], [], []
        for img_id, (out, rec) in enumerate(zip(outputs, records), start=1):
            images.append({"id": img_id, "width": int(rec["width"]), "height": int(rec["height"])})
            for o in rec.get("objects") or []:
                x, y, w, h = map(float, o["bbox"])
                anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat_id[_norm_label(o["category"])],
                             "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            for s, box, c in zip(out.get("scores", []), out.get("boxes", []), out.get("categories", [])):
                c = self._category(c, cats)
                if c is not None and self._scored(c, rec):
                    dets.append({"image_id": img_id, "category_id": cat_id[c], "bbox": [float(v) for v in box],
                                 "score": float(s)})
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": i, "name": c} for c, i in cat_id.items()]}
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
            if not dets:
                return {"map": 0.0, "map50": 0.0}
            dt = gt.loadRes(dets)
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = np.maximum(ev.stats, 0.0)  # COCOeval reports -1 where a category has no ground truth
        return {"map": float(stats[0]), "map50": float(stats[1])}


# What pycocoevalcap's PTBTokenizer gives (Stanford CoreNLP 3.4.1's PTBLexer, ``-lowerCase``, then
# the tokens ' '' ` `` . ? ! , : ; - -- ... -LRB- -RRB- -LCB- -RCB- dropped), rule by rule, each rule
# read off the real tokenizer's output (tests/data/ptb_golden.json: 879 captions; Java is not needed
# here). Units, in the order they are tried:
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"  # combining accents stay in words
_L = rf"[^\W_][{_MARKS}]*"  # a letter or digit with its combining marks
_LETTER = rf"[^\W\d_][{_MARKS}]*"
_ALNUM = rf"(?:{_L})+"
_UNIT = re.compile(
    rf"(?P<url>(?:https?://|www\.)[^\s()\[\]{{}}\"<>]*[^\s()\[\]{{}}\"<>.,;:!?'])"  # whole
    rf"|(?P<email>{_ALNUM}(?:[.+-]{_ALNUM})*@{_ALNUM}(?:[.-]{_ALNUM})*\.{_ALNUM})"
    rf"|(?P<tag>[#@]{_LETTER}(?:{_L})*)"  # #hashtag, @user (but '# 1')
    rf"|(?P<negative>(?<![^\s(\[{{])-\d+(?:[.,:]\d+)*)"  # -5
    rf"|(?P<code>[Cc]\+\+|[A-Za-z]#(?!\w))"  # C++, C#
    rf"|(?P<money>[A-Z]{{1,3}}\$(?=\d))"  # US$5 -> us$ 5
    rf"|(?P<mixed>\d+ \d+/\d+)"  # 5 1/2, joined by a no-break space
    rf"|(?P<amp>[A-Z]+&[A-Z]+)"  # AT&T (but b & w)
    rf"|(?P<acronym>(?:{_LETTER}\.){{2,}}(?:-{_ALNUM})*)(?P<acronym_s>'s)?"  # u.s., u.s.-mexico, u.k. 's
    rf"|(?P<number>\d+(?:[.,:]\d+)+(?:[-/]{_ALNUM})*)"  # 3.5, 1,000-piece, 10:30 (but 10:30 am)
    rf"|(?P<dotted>{_LETTER}(?:{_L})*(?:\.{_ALNUM})*\.{_LETTER}(?:{_L})*)(?P<dotted_period>\.)?"  # hello.world
    rf"|(?P<rnr>'n')"  # rock 'n' roll
    rf"|(?P<tis>'t(?=(?:is|was)\b))"  # 'tis -> 't is
    rf"|(?P<decade>'\d\ds\b)"  # '90s
    rf"|(?P<word>{_ALNUM}(?:[-'/]{_ALNUM})*)(?P<period>\.)?"  # t-shirt, o'clock, and/or; mr.
    rf"|(?P<repeat>[!?]{{2,}})"  # !! and ?! are tokens pycocoevalcap keeps
    rf"|(?P<other>\S)"
)
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_CURRENCY = {"\u20ac": "$", "\u00a3": "#"}  # PTB writes the euro and the pound as $ and #
_CLITIC = re.compile(r"(.+?)(n't|'s|'re|'ve|'ll|'d|'m)")
# PTB splits these words in two (cannot -> can not, gonna -> gon na)
_SPLIT = {"cannot": ("can", "not"), "gonna": ("gon", "na"), "gotta": ("got", "ta"), "wanna": ("wan", "na"),
          "lemme": ("lem", "me"), "gimme": ("gim", "me"), "y'all": ("y'", "all")}
# typographic apostrophes read as the ASCII one; an opening single quote is a quote, dropped
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "`", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})
# abbreviations whose period PTB keeps (mr. st. ave. jan. inc. ...), probed one by one in three cases;
# those in _CAPITALISED_ABBREVIATIONS only when not written in lower case (ark. del. are words)
_ABBREVIATIONS = frozenset(
    "adm al ala apr ariz aug ave blvd brig bros calif capt cf cmdr co col colo conn corp cos cpl ct dec dept dr est "
    "etc feb fla fri ft ga gen gov hon inc ind jan jr jul jun kan kans ky lt ltd maj mar md messrs mich minn mlle mme "
    "mo mon mont mr mrs ms mt neb nev nov oct okla plc pres prof rd rep rev sen sep sept sgt sq sr st tenn thu thurs "
    "tue tues va vs vt wed wis wyo".split())
_CAPITALISED_ABBREVIATIONS = frozenset("ark del ill la mass miss ore pa tex wash".split())
# abbreviations whose period PTB keeps before a number only (no. 5, pp. 12)
_NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "art", "pp", "fig", "tel", "ext", "p", "op"})


def _dropped(token: str) -> bool:
    """A symbol PTB rewrites into punctuation pycocoevalcap drops, or cannot tokenize: dashes and
    quotes of every script (-> ``--``, ````/''``), other brackets (``「``), the ellipsis."""
    import unicodedata

    return len(token) == 1 and (unicodedata.category(token) in {"Pd", "Pi", "Pf", "Ps", "Pe"} or token in ".,;:!?\u2026")


def _clitics(word: str) -> list[str]:
    """``she'd've`` -> ``she 'd 've``: PTB splits each clitic off the end."""
    tail: list[str] = []
    while (m := _CLITIC.fullmatch(word)) is not None:
        word = m.group(1)
        tail.insert(0, m.group(2))
    return [word, *tail]


def _keeps_period(word: str, before_number: bool) -> bool:
    low = word.lower()
    return (len(word) == 1 or low in _ABBREVIATIONS or (low in _CAPITALISED_ABBREVIATIONS and word != low)
            or (before_number and low in _NUMBER_ABBREVIATIONS)) and not word.isdigit()


def tokenize_caption(text: str) -> str:
    """PTB tokenization as pycocoevalcap's PTBTokenizer applies it (Stanford PTBTokenizer,
    ``-lowerCase``, then the punctuation tokens ``' '' ` `` . ? ! , : ; - -- ...`` dropped; brackets
    become ``-lrb- -rrb- -lsb- -rsb- -lcb- -rcb-``, which it keeps, because its list holds them in
    upper case), re-implemented without the Java it needs: every rule above was read off the real
    tokenizer, and ``tests/data/ptb_golden.json`` holds its output for 879 captions, which this
    matches but for 22 (URLs and e-mails glued to punctuation, emoticons, feet and inches, ``a!b``;
    marked there). Lower case; numbers whole across ``.,:`` (``3.5``, ``1,000``, ``10:30``) and their
    hyphenated compounds (``1,000-piece``); abbreviations keep their period (``mr.``, ``u.s.``, an
    initial ``f.``, ``no.`` before a number); words whole across inner hyphens, apostrophes and
    slashes (``t-shirt``, ``o'clock``, ``and/or``); clitics split off (``man 's``, ``do n't``,
    ``she 'd 've``) and ``cannot`` -> ``can not``; other symbols tokens of their own (``$ % & #``)."""
    tokens: list[str] = []
    text = str(text).translate(_QUOTES)
    for m in _UNIT.finditer(text):
        kind, unit = m.lastgroup, m.group(0)
        if kind in ("word", "period"):
            word = m.group("word")
            if m.group("period") and _keeps_period(word, re.match(r"\s*\d", text[m.end():]) is not None):
                tokens.append(word.lower() + ".")
                continue
            word = word.lower()
            if "'n'" in word:  # rock'n'roll -> rock 'n' roll
                for k, part in enumerate(word.split("'n'")):
                    tokens += (["'n'"] if k else []) + (_clitics(part) if part else [])
            else:
                tokens += list(_SPLIT[word]) if word in _SPLIT else _clitics(word)
        elif kind in ("acronym", "acronym_s"):
            tokens += [m.group("acronym").lower()] + (["'s"] if m.group("acronym_s") else [])
        elif kind in ("dotted", "dotted_period"):
            word = m.group("dotted")
            keep = m.group("dotted_period") and (word + ".").lower() == "ph.d."
            tokens.append(word.lower() + ("." if keep else ""))
        elif kind == "mixed":
            tokens.append(unit.replace(" ", "\u00a0"))
        elif kind == "tis":
            tokens.append("'t")
        elif kind == "other":
            if unit in _BRACKETS:
                tokens.append(_BRACKETS[unit])
            elif unit in _CURRENCY:
                tokens.append(_CURRENCY[unit])
            elif unit not in "'\"`" and not _dropped(unit):
                tokens.append(unit.lower())
        else:
            tokens.append(unit.lower())
    return " ".join(tokens)


class Captioning:
    """BLEU-4, CIDEr and ROUGE-L from pycocoevalcap over the whole dataset; per stimulus,
    ROUGE-L and sentence BLEU-4 (``sentence_bleu4``; CIDEr needs corpus statistics, so it has no
    per-stimulus form);
    a stimulus counts as solved at ROUGE-L >= 0.5. SPICE needs Java and is not computed."""

    name = "captioning"
    requires = ("captions",)
    primary = "cider"
    per_image_score = "rougeL"  # correlated with per-stimulus alignment
    #: 2: the tokenizer keeps $ % & # as tokens, abbreviations whole, splits cannot and typographic
    #: clitics; the per-stimulus BLEU-4 is sentence_bleu4 (harness.evaluation.runner._task_params
    #: records it). 3: the tokenizer follows PTB's output on 879 probed captions (brackets as -lrb- ...,
    #: 10:30 and 1,000-piece whole, mr. st. no. 5 keep their period, she 'd 've), and an empty
    #: caption is scored as empty (it was the token <empty>)
    version = "3"

    def _gts_res(self, outputs, records):
        gts, res = {}, {}
        for i, (o, r) in enumerate(zip(outputs, records)):
            refs = [tokenize_caption(c) for c in (r.get("captions") or []) if c]
            if not refs:
                continue
            gts[i] = refs
            # an empty caption as it is: pycocoevalcap's scorers take "" (a stand-in token made BLEU's
            # brevity penalty milder, so a model that said nothing scored higher; found by QA)
            res[i] = [tokenize_caption(o.get("caption", ""))]
        return gts, res

    def score_image(self, output: dict, record: dict) -> dict[str, float]:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.rouge.rouge import Rouge

        caption = output.get("caption")
        if not isinstance(caption, str):  # str() of a list scored as a caption; of None, as "none"
            raise ValueError(f"'caption' must be the generated text (a string), got {_short(caption)}")

        gts, res = self._gts_res([output], [record])
        if not gts:
            return {}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, _ = Rouge().compute_score(gts, res)
        # ROUGE-L is the per-stimulus score the alignment analysis uses (per_image_score): sentence
        # BLEU-4 is ~0 for most single captions (any missing 4-gram zeroes it)
        # sentence BLEU-4 is named apart from the dataset's corpus BLEU-4 (task:bleu4 of the summary):
        # their means differ, and a per-stimulus column of the same name read as the same quantity
        return {"rougeL": float(rouge), "sentence_bleu4": float(bleu[3]), "solved": float(rouge >= 0.5)}

    def score_dataset(self, outputs, records) -> dict[str, float]:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        gts, res = self._gts_res(outputs, records)
        if not gts:
            return {}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        cider, _ = Cider().compute_score(gts, res)
        rouge, _ = Rouge().compute_score(gts, res)
        return {"bleu4": float(bleu[3]), "cider": float(cider), "rougeL": float(rouge)}
