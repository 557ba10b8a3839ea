"""The built-in tasks' scores, checked with numbers: by hand and against the reference scorers
(pycocotools' COCOeval for detection, pycocoevalcap for captioning) run directly on the same input."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from plugins.tasks import Captioning, Classification, Detection, FreeViewing, label_matches, tokenize_caption

# ------------------------------------------------------------------------------------ classification

TABBY = "n02123045"  # ImageNet-1k class 281, "tabby, tabby cat"
TIGER_CAT = "n02123159"  # class 282, "tiger cat"


def test_label_matches_imagenet_synonyms_wnids_and_aliases():
    assert label_matches("tabby, tabby cat", "tabby cat")
    assert label_matches("tabby, tabby cat", "Tabby")
    assert label_matches("tabby", "tabby, tabby cat")  # a dataset labelled with full ImageNet names
    assert label_matches("Black_footed_Albatross", "black-footed albatross")  # case and separators
    assert label_matches(TABBY, TABBY)
    assert not label_matches(TIGER_CAT, TABBY)
    assert not label_matches("tabby, tabby cat", "cat")  # a synonym must match whole, not a word of it
    assert not label_matches("tiger cat", "tabby cat")
    aliases = {"cat": ["tabby, tabby cat", "tiger cat"]}
    assert label_matches("tiger cat", "cat", aliases) and label_matches("tabby", "cat", aliases)
    assert not label_matches("lynx", "cat", aliases)


def test_imagenet_names_of_different_classes_never_match_through_a_synonym():
    """Case was ignored, so "Cardigan, Cardigan Welsh corgi" (the dog, n02113186) named "cardigan"
    (the sweater, n02963159): a corgi counted as a sweater."""
    corgi, sweater = "Cardigan, Cardigan Welsh corgi", "cardigan"
    assert not label_matches(corgi, sweater) and not label_matches(sweater, corgi)
    assert label_matches("Cardigan", sweater)  # case ignored: "Cardigan" alone is the sweater's whole name
    assert label_matches("Cardigan Welsh corgi", corgi) and label_matches(corgi, "cardigan welsh corgi")
    assert not label_matches(corgi, "dog", {"dog": [sweater]})  # nor through an alias
    # an alias key is matched as a label is: "Aeroplane" found the "aeroplane" key's aliases only in
    # lower case (found by QA)
    assert label_matches("Airliner", "Aeroplane", {"aeroplane": ["airliner"]})
    assert label_matches("airliner", "aero_plane", {"Aero-Plane": ["airliner"]})
    assert label_matches(corgi, "dog", {"dog": ["Cardigan Welsh corgi"]})
    # a name two classes share names both: a dataset labelled "crane" cannot tell them apart either
    assert label_matches("crane", "crane")
    task = Classification()
    assert task.version == "3"
    assert task.score_image({"label": corgi}, {"label": sweater}) == {"top1": 0.0, "top5": 0.0, "solved": 0.0}


def test_classification_top1_top5_by_hand():
    task = Classification()
    five = [TIGER_CAT, "n02124075", "n02127052", TABBY, "n02129604"]
    cases = [  # (output, label, expected top1, top5)
        ({"label": TABBY, "topk": [TABBY, *five[:4]]}, TABBY, 1.0, 1.0),
        ({"label": TIGER_CAT, "topk": five}, TABBY, 0.0, 1.0),  # 4th of five
        ({"label": TIGER_CAT, "topk": five[:4] + ["n02129604", TABBY]}, "n01440764", 0.0, 0.0),
        ({"label": TIGER_CAT, "topk": [TIGER_CAT, "a", "b", "c", "d", TABBY]}, TABBY, 0.0, 0.0),  # 6th is not top-5
        ({"label": "tabby, tabby cat"}, "tabby cat", 1.0, 1.0),  # no topk: the label alone
    ]
    outputs, records = [], []
    for output, label, top1, top5 in cases:
        record = {"label": label}
        assert task.score_image(output, record) == {"top1": top1, "top5": top5, "solved": top1}
        outputs.append(output)
        records.append(record)
    # a record without a label is not scored and does not count in the denominator
    outputs.append({"label": TABBY, "topk": [TABBY]})
    records.append({"label": None})
    assert task.score_image(outputs[-1], records[-1]) == {}
    assert task.score_dataset(outputs, records) == {"top1": 2 / 5, "top5": 3 / 5}
    assert task.score_dataset([outputs[-1]], [records[-1]]) == {}


def test_top5_is_never_below_top1():
    """A plugin's topk that does not start with its label: the label is still its first answer."""
    got = Classification().score_image({"label": "cat", "topk": ["dog", "cow"]}, {"label": "cat"})
    assert got == {"top1": 1.0, "top5": 1.0, "solved": 1.0}


def test_classification_aliases_map_dataset_classes_to_model_labels():
    task = Classification(label_aliases={"Cat": [TABBY, TIGER_CAT]})
    assert task.score_image({"label": TIGER_CAT, "topk": [TIGER_CAT]}, {"label": "Cat"})["top1"] == 1.0
    assert task.score_image({"label": "n02085620", "topk": ["n02085620", TABBY]}, {"label": "Cat"}) == {
        "top1": 0.0, "top5": 1.0, "solved": 0.0}


def test_free_viewing_scores_nothing():
    assert FreeViewing().score_image({"label": "x"}, {"label": "x"}) == {}
    assert FreeViewing().score_dataset([{}], [{}]) == {} and FreeViewing.primary is None


# ----------------------------------------------------------------------------------------- detection

GT = [0.0, 0.0, 100.0, 100.0]
BOX_62 = [0.0, 0.0, 100.0, 62.0]  # IoU with GT 0.62
BOX_83 = [0.0, 0.0, 100.0, 83.0]  # IoU with GT 0.83


def _rec(*objects, size=(200, 200)):
    return {"width": size[0], "height": size[1], "objects": [{"bbox": b, "category": c} for b, c in objects]}


def _det(*dets):
    return {"boxes": [d[0] for d in dets], "scores": [d[1] for d in dets], "categories": [d[2] for d in dets]}


def _cocoeval(outputs, records):
    """pycocotools run directly: categories as given (a category without ground truth is included,
    COCOeval leaves it out of the mean itself), image ids 1..n."""
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats = sorted({o["category"] for r in records for o in r["objects"]} | {c for o in outputs for c in o["categories"]})
    cid = {c: i + 1 for i, c in enumerate(cats)}
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i + 1, "width": r["width"], "height": r["height"]} for i, r in enumerate(records)],
        "annotations": [{"image_id": i + 1, "category_id": cid[o["category"]], "bbox": o["bbox"],
                         "area": o["bbox"][2] * o["bbox"][3], "iscrowd": 0}
                        for i, r in enumerate(records) for o in r["objects"]],
        "categories": [{"id": v, "name": k} for k, v in cid.items()],
    }
    for k, ann in enumerate(gt.dataset["annotations"]):
        ann["id"] = k + 1
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dets = [{"image_id": i + 1, "category_id": cid[c], "bbox": b, "score": s}
                for i, o in enumerate(outputs) for b, s, c in zip(o["boxes"], o["scores"], o["categories"])]
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(np.maximum(ev.stats[0], 0)), float(np.maximum(ev.stats[1], 0))


def test_detection_perfect_boxes_give_one():
    records = [_rec((GT, "cat"), ([120, 120, 50, 60], "dog")), _rec(([10, 20, 30, 40], "cat"))]
    outputs = [_det((GT, 0.9, "cat"), ([120, 120, 50, 60], 0.8, "dog")), _det(([10, 20, 30, 40], 0.7, "cat"))]
    assert Detection().score_dataset(outputs, records) == pytest.approx({"map": 1.0, "map50": 1.0})
    assert Detection().score_image(outputs[0], records[0]) == {"recall50": 1.0, "solved": 1.0}


def test_detection_on_partially_annotated_images_scores_annotated_and_searched_categories():
    """When a dataset annotates only some categories per image (objects_exhaustive False), a correct
    detection of an unannotated object is not a false positive; a detection of the searched-for
    category in a target-absent image still is.

    Image A: a cat (annotated), B: a dog (annotated) and an unannotated cat the model also finds
    (scored 0.95, above A's 0.9). Exhaustive: cat AP@50 = 1/2 (FP first, then TP), dog 1: mAP@50 3/4.
    Partial: B's cat is not scored: 1. Image C, target-absent search for a cat, gets a cat at 0.99:
    an FP above everything in both readings, so cat AP@50 = 1/2 again: 3/4."""
    a, b = _rec((GT, "cat")), _rec((GT, "dog"))
    out_a, out_b = _det((GT, 0.9, "cat")), _det((GT, 0.9, "dog"), ([10, 10, 50, 50], 0.95, "cat"))
    assert Detection().score_dataset([out_a, out_b], [a, b])["map50"] == pytest.approx(0.75)
    assert Detection().score_dataset([out_a, out_b], [a, b])["map50"] == pytest.approx(_cocoeval([out_a, out_b], [a, b])[1])
    partial = Detection(objects_exhaustive=False)
    assert partial.score_dataset([out_a, out_b], [a, b]) == pytest.approx({"map": 1.0, "map50": 1.0})
    c = {**_rec(), "search_target": "cat"}
    out_c = _det((GT, 0.99, "cat"))
    assert partial.score_dataset([out_a, out_b, out_c], [a, b, c])["map50"] == pytest.approx(0.75)
    # per image, recall is unchanged: it only ever looks at the annotated boxes
    assert partial.score_image(out_b, b) == Detection().score_image(out_b, b) == {"recall50": 1.0, "solved": 1.0}


def test_detection_one_gt_two_predictions_at_known_ious():
    """One ground-truth box, predictions at IoU 0.62 and 0.83. At each IoU threshold t of
    .50:.05:.95 COCO matches the highest-scoring prediction with IoU >= t:

    - 0.62 scored higher: t <= .60 -> TP first, AP 1; t in .65..80 -> FP then TP, precision 1/2 at
      recall 1, AP 0.5; t >= .85 -> AP 0. mAP = (3 * 1 + 4 * 0.5) / 10 = 0.5.
    - 0.83 scored higher: AP 1 for t <= .80 (7 thresholds), 0 above: mAP = 0.7.
    mAP@50 is 1 either way."""
    task = Detection()
    rec = _rec((GT, "cat"))
    low_first = _det((BOX_62, 0.9, "cat"), (BOX_83, 0.8, "cat"))
    high_first = _det((BOX_62, 0.8, "cat"), (BOX_83, 0.9, "cat"))
    assert task.score_dataset([low_first], [rec]) == pytest.approx({"map": 0.5, "map50": 1.0})
    assert task.score_dataset([high_first], [rec]) == pytest.approx({"map": 0.7, "map50": 1.0})
    for out in (low_first, high_first):
        assert tuple(task.score_dataset([out], [rec]).values()) == pytest.approx(_cocoeval([out], [rec]))
        assert task.score_image(out, rec) == {"recall50": 1.0, "solved": 1.0}


def test_detection_ap50_by_hand_over_two_images():
    """Ranked detections: TP (0.9, image 1), FP (0.8, image 2, IoU 0.36), TP (0.7, image 2).
    Precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1. COCO's 101-point interpolated AP: recall
    thresholds 0..0.50 (51 points) get max precision at recall >= r = 1, the 50 points above 0.5
    get 2/3: AP = (51 + 50 * 2/3) / 101. The boxes are exact, so mAP equals AP@50."""
    records = [_rec(([10, 10, 50, 50], "cat")), _rec(([100, 100, 50, 50], "cat"))]
    # the FP overlaps image 2's box by 25x50: IoU 1250 / (2500 + 2500 - 1250) = 1/3
    outputs = [_det(([10, 10, 50, 50], 0.9, "cat")),
               _det(([125, 100, 50, 50], 0.8, "cat"), ([100, 100, 50, 50], 0.7, "cat"))]
    expected = (51 + 50 * 2 / 3) / 101
    got = Detection().score_dataset(outputs, records)
    assert got == pytest.approx({"map": expected, "map50": expected})
    assert tuple(got.values()) == pytest.approx(_cocoeval(outputs, records))
    # per image, recall at IoU 0.5: image 2's reference is found by its second prediction
    assert Detection().score_image(outputs[1], records[1]) == {"recall50": 1.0, "solved": 1.0}


def test_detection_categories_and_per_image_recall():
    task = Detection()
    rec = _rec((GT, "cat"), ([120, 120, 60, 60], "dog"), ([150, 10, 40, 40], "dog"))
    # cat: only a "dog" prediction on its box -> missed; dog 1: IoU 60*45 / 60*60 = 0.75 -> found;
    # dog 2: the third prediction is nowhere near it -> missed
    out = _det((GT, 0.95, "dog"), ([120, 120, 60, 45], 0.9, "dog"), ([0, 150, 20, 20], 0.5, "Dog"))
    assert task.score_image(out, rec) == {"recall50": pytest.approx(1 / 3), "solved": 0.0}
    # two of three found -> solved (recall >= 0.5)
    out2 = _det((GT, 0.9, "Cat"), ([120, 120, 60, 45], 0.8, "dog"))
    assert task.score_image(out2, rec) == {"recall50": pytest.approx(2 / 3), "solved": 1.0}
    # one prediction cannot match two references
    rec_twice = _rec((GT, "cat"), ([0, 0, 100, 90], "cat"))
    assert task.score_image(_det((GT, 0.9, "cat")), rec_twice)["recall50"] == 0.5
    # the dataset numbers equal COCOeval's, with a predicted category that has no ground truth at all
    out3 = _det((GT, 0.9, "cat"), ([120, 120, 60, 45], 0.8, "dog"), ([0, 0, 10, 10], 0.99, "bird"))
    assert tuple(task.score_dataset([out, out3], [rec, rec]).values()) == pytest.approx(
        _cocoeval([out, out3], [rec, rec]))
    # no references: not scored per image
    assert task.score_image(out, _rec()) == {}


def test_detection_recall_is_a_maximum_matching_whatever_the_order_of_the_boxes():
    """One prediction covers both references (IoU 0.82 each), the other only A (IoU 0.54): matched
    in the order of the references, B first took the one that A needed and recall was 0.5 or 1
    depending on the order; a maximum matching finds both in either order."""
    a, b = [0, 0, 100, 100], [0, 20, 100, 100]
    out = _det(([0, 10, 100, 100], 0.9, "cat"), ([0, -30, 100, 100], 0.8, "cat"))
    for refs in ((a, b), (b, a)):
        rec = _rec(*((r, "cat") for r in refs), size=(300, 300))
        assert Detection().score_image(out, rec) == {"recall50": 1.0, "solved": 1.0}, refs


def test_detection_matches_categories_through_the_dataset_aliases():
    """POET calls them aeroplane, sofa, diningtable, motorbike; a COCO detector airplane, couch,
    dining table, motorcycle: perfect boxes scored 0 for those classes."""
    from plugins.datasets.poet import POET

    coco = {"aeroplane": "airplane", "sofa": "couch", "diningtable": "dining table", "motorbike": "motorcycle",
            "cat": "cat", "dog": "dog"}
    records = [_rec(([4, 4, 36, 26], voc), size=(60, 40)) for voc in coco]
    outputs = [_det(([4, 4, 36, 26], 0.9, name)) for name in coco.values()]
    from harness.evaluation.runner import _aliases

    task = Detection(objects_exhaustive=False, label_aliases=_aliases(POET(), "detection"))
    # classification's aliases (and so its runs' settings and ids) are what they were: ImageNet only
    assert "airplane" not in POET().label_aliases["aeroplane"] and _aliases(POET()) == _aliases(POET(), "classification")
    assert task.score_dataset(outputs, records) == pytest.approx({"map": 1.0, "map50": 1.0})
    assert [task.score_image(o, r)["recall50"] for o, r in zip(outputs, records)] == [1.0] * 6
    assert task.notes(outputs, records) == []
    # without the aliases: the four classes are never found, and a model naming none of the classes is said
    plain = Detection(objects_exhaustive=False)
    assert plain.score_dataset(outputs, records)["map50"] == pytest.approx(2 / 6)
    notes = plain.notes(outputs[:4], records)
    assert len(notes) == 1 and "none of the 4 categories the model predicted" in notes[0]


def test_detection_without_predictions_or_references():
    rec = _rec((GT, "cat"))
    assert Detection().score_dataset([_det()], [rec]) == {"map": 0.0, "map50": 0.0}
    assert Detection().score_image(_det(), rec) == {"recall50": 0.0, "solved": 0.0}
    assert Detection().score_dataset([_det((GT, 0.9, "cat"))], [_rec()]) == {}


# ---------------------------------------------------------------------------------------- captioning


def _direct(gts, res):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {"bleu4": bleu[3], "cider": Cider().compute_score(gts, res)[0], "rougeL": Rouge().compute_score(gts, res)[0]}


def test_tokenize_caption_follows_ptb():
    """What Stanford's PTBTokenizer (-lowerCase) gives, less the punctuation tokens pycocoevalcap drops."""
    cases = {
        "A dog, on the GRASS.": "a dog on the grass",
        "  The man's hat!  ": "the man 's hat",
        "Don't stop; it's 5 o'clock": "do n't stop it 's 5 o'clock",
        "A boy in a t-shirt holds a 3.5 inch fish (small)": "a boy in a t-shirt holds a 3.5 inch fish -lrb- small -rrb-",
        "the dogs' bowls": "the dogs bowls",
        "Un café": "un café",
        # PTB keeps symbols but its punctuation list, abbreviations whole, splits cannot and reads
        # typographic apostrophes as ASCII ones
        "50% off $5 & #1 + more": "50 % off $ 5 & # 1 + more",
        "the man\u2019s hat, don\u2019t": "the man 's hat do n't",
        "A U.S. flag, e.g. on a pole": "a u.s. flag e.g. on a pole",
        "You cannot see 1,000 birds and/or bats": "you can not see 1,000 birds and/or bats",
        # dashes, quotes and the ellipsis of any script become punctuation PTB drops; ASCII brackets
        # become -lsb- ..., which pycocoevalcap keeps (its list has them in upper case only)
        "A dog \u2014 running\u2026 fast, red\u2013blue \u00abflag\u00bb [x]": "a dog running fast red blue flag -lsb- x -rsb-",
    }
    for text, tokens in cases.items():
        assert tokenize_caption(text) == tokens, text


def test_tokenize_caption_gives_what_the_java_ptb_tokenizer_gave():
    """pycocoevalcap's own PTBTokenizer (Java) on 879 captions, recorded in tests/data/ptb_golden.json
    (tests/data/make_ptb_golden.py): the re-implementation dropped brackets (PTB keeps -lrb- ...),
    split 10:30, 1,000-piece and 3.14-inch, cut mr. st. no. 5 to mr st no, kept rock'n'roll whole:
    8 of 41 captions of a QA session tokenised otherwise, CIDEr 0.108 instead of 0.064 on captions
    with brackets. Every caption not marked 'differs' must come out as PTB's."""
    import json

    doc = json.loads((Path(__file__).parent / "data" / "ptb_golden.json").read_text())
    rows = doc["captions"]
    assert len(rows) >= 800
    wrong = [(r["caption"], tokenize_caption(r["caption"]), r["ptb"]) for r in rows
             if not r.get("differs") and tokenize_caption(r["caption"]) != r["ptb"]]
    assert wrong == []
    assert sum(1 for r in rows if r.get("differs")) <= 22  # the known ones (URLs glued to punctuation, emoticons...)
    for caption, expected in [("A 1,000-piece puzzle at 10:30 (Mr. Smith's)", "a 1,000-piece puzzle at 10:30 -lrb- mr. smith 's -rrb-"),
                              ("the No. 1 pick, she'd've said", "the no. 1 pick she 'd 've said")]:
        assert tokenize_caption(caption) == expected
        assert {"caption": caption, "ptb": expected} in rows


def test_captioning_identical_caption_scores_one():
    task = Captioning()
    out, rec = {"caption": "A dog runs on the green grass."}, {"captions": ["a dog runs on the green grass"]}
    got = task.score_image(out, rec)
    assert got["sentence_bleu4"] == pytest.approx(1.0) and got["rougeL"] == pytest.approx(1.0) and got["solved"] == 1.0


def test_captioning_by_hand():
    """'the cat sat on the mat' against 'the cat sat on a mat': clipped n-gram precisions 5/6, 3/5,
    2/4, 1/3 and equal lengths (brevity penalty 1), so BLEU-4 = (5/6 * 3/5 * 1/2 * 1/3)^(1/4) =
    12^(-1/4). Longest common subsequence 5 of 6 words both ways, so ROUGE-L = 5/6 (F with beta 1.2
    of P = R = 5/6). CIDEr-D of a caption identical to its only reference, on a corpus whose images
    share no n-gram (every idf = log 2 > 0): cosine 1 for n = 1..4, no length penalty -> 10."""
    task = Captioning()
    got = task.score_dataset([{"caption": "The cat sat on the mat."}], [{"captions": ["the cat sat on a mat"]}])
    assert got["bleu4"] == pytest.approx(12 ** -0.25, rel=1e-8)
    assert got["rougeL"] == pytest.approx(5 / 6)
    assert task.score_image({"caption": "The cat sat on the mat."}, {"captions": ["the cat sat on a mat"]}) == {
        "sentence_bleu4": pytest.approx(12 ** -0.25, rel=1e-8), "rougeL": pytest.approx(5 / 6), "solved": 1.0}
    outputs = [{"caption": "a small red boat floats"}, {"caption": "three people eat green apples"}]
    records = [{"captions": ["a small red boat floats"]}, {"captions": ["three people eat green apples"]}]
    assert task.score_dataset(outputs, records)["cider"] == pytest.approx(10.0)


def test_captioning_equals_pycocoevalcap_on_the_same_tokens():
    outputs = [{"caption": "A man riding a wave on top of a surfboard."},
               {"caption": "a plate of food with broccoli"},
               {"caption": ""},  # nothing generated: scored as empty (pycocoevalcap takes "")
               {"caption": "Two dogs playing in the snow"}]
    records = [{"captions": ["A surfer rides a large wave.", "a man on a surfboard riding a wave",
                             "Person surfing in the ocean"]},
               {"captions": ["A plate with broccoli and meat.", "food on a white plate"]},
               {"captions": ["a cat sleeping on a couch"]},
               {"captions": ["Two dogs play in the snow.", "dogs running through snow", "two brown dogs in snow"]}]
    gts = {i: [tokenize_caption(c) for c in r["captions"]] for i, r in enumerate(records)}
    res = {i: [tokenize_caption(o["caption"])] for i, o in enumerate(outputs)}
    expected = _direct(gts, res)
    got = Captioning().score_dataset(outputs, records)
    assert got == pytest.approx(expected)
    assert 0 < got["bleu4"] < 1 and got["cider"] > 0 and 0 < got["rougeL"] < 1
    # per image: sentence BLEU-4 and ROUGE-L, what the scorers give for that image alone
    for i in gts:
        one = _direct({0: gts[i]}, {0: res[i]})
        s = Captioning().score_image(outputs[i], records[i])
        assert s["sentence_bleu4"] == pytest.approx(one["bleu4"]) and s["rougeL"] == pytest.approx(one["rougeL"])
        assert s["solved"] == float(one["rougeL"] >= 0.5)
    # records without references are left out, not scored as zero
    assert Captioning().score_dataset(outputs + [{"caption": "x"}], records + [{"captions": None}]) == pytest.approx(
        expected)
    assert Captioning().score_image({"caption": "x"}, {"captions": []}) == {}


def test_every_task_is_registered_with_what_it_requires():
    from harness.plugins import get_registry

    reg = get_registry()
    for name, cls in {"free-viewing": FreeViewing, "classification": Classification, "detection": Detection,
                      "captioning": Captioning}.items():
        spec = reg.get("task", name)
        task = spec.load()
        assert isinstance(task, cls) and tuple(spec["requires"]) == tuple(task.requires)
    assert [Classification.primary, Detection.primary, Captioning.primary] == ["top1", "map", "cider"]
    # the alignment analysis correlates with the task's per_image_score, one of its per-stimulus scores
    tasks = (Classification(), Detection(), Captioning())
    scored = [tasks[0].score_image({"label": "a"}, {"label": "a"}), tasks[1].score_image(_det(), _rec((GT, "cat"))),
              tasks[2].score_image({"caption": "a dog"}, {"captions": ["a dog"]})]
    assert [t.per_image_score for t in tasks] == ["top1", "recall50", "rougeL"]
    assert all(t.per_image_score in s and "solved" in s for t, s in zip(tasks, scored))


# -------------------------------------------------------------------- a task the dataset cannot serve


def test_cli_refuses_a_task_the_dataset_cannot_serve(tmp_path):
    from test_e2e_tasks import write_cub_fixture

    data = write_cub_fixture(tmp_path / "cub-gha")
    r = CliRunner().invoke(main, ["eval", "--model", "uniform", "--dataset", "cub-gha", "--task", "captioning",
                                  "--data-dir", str(data), "--cache-dir", str(tmp_path / "cache"),
                                  "--output", str(tmp_path / "runs"), "--sigma-px", "10"])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert lines == ["Error: dataset 'cub-gha' cannot serve task 'captioning'; it serves: free-viewing, classification"]
    assert not (tmp_path / "runs").exists()  # refused before anything was written
    r = CliRunner().invoke(main, ["eval", "--model", "uniform", "--dataset", "cub-gha", "--task", "pose",
                                  "--data-dir", str(data), "--cache-dir", str(tmp_path / "cache"),
                                  "--output", str(tmp_path / "runs")])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert r.output.startswith("Error: unknown task 'pose'") and "classification" in r.output


NAN = float("nan")


@pytest.mark.parametrize("task, output, why", [
    (Classification(), {}, "'label' must be the predicted class name (a string), got None"),
    (Classification(), {"label": None}, "'label' must be the predicted class name (a string), got None"),
    (Classification(), {"label": 42}, "'label' must be the predicted class name (a string), got 42"),
    (Classification(), {"label": "cat", "topk": "cat"}, "'topk' must be a list of class names, got 'cat'"),
    (Detection(), {"boxes": [[1, 2, 3, 4]], "scores": [0.9]}, "'categories' missing or not a list"),
    (Detection(), {"boxes": [[NAN] * 4], "scores": [0.9], "categories": ["cat"]}, "got [nan, nan, nan, nan]"),
    (Detection(), {"boxes": [[1, 2, 3]], "scores": [0.9], "categories": ["cat"]}, "got [1, 2, 3]"),
    (Detection(), {"boxes": [[1, 2, -3, 4]], "scores": [0.9], "categories": ["cat"]}, "got [1, 2, -3, 4]"),
    (Detection(), {"boxes": [[1, 2, 3, 4]] * 2, "scores": [0.9], "categories": ["cat"] * 2},
     "2 boxes, 1 scores and 2 categories: one of each per detection"),
    (Detection(), {"boxes": [[1, 2, 3, 4]], "scores": [NAN], "categories": ["cat"]}, "a finite number; got nan"),
    (Detection(), {"boxes": [[1, 2, 3, 4]], "scores": [0.9], "categories": [3]}, "(a string); got 3"),
    (Captioning(), {}, "'caption' must be the generated text (a string), got None"),
    (Captioning(), {"caption": ["a", "dog"]}, "got ['a', 'dog']"),
    (Captioning(), {"caption": 42}, "got 42"),
])
def test_a_malformed_output_is_refused_not_scored(task, output, why):
    """Each of these was scored: a NaN box matched every reference (mAP 1.0), a list caption was
    turned into text, None became the caption "none" and the label "None"."""
    record = {"label": "cat", "objects": [{"bbox": [1, 2, 3, 4], "category": "cat"}], "captions": ["a cat"],
              "width": 10, "height": 10}
    with pytest.raises(ValueError) as exc:
        task.score_image(output, record)
    assert why in str(exc.value)


def test_detection_accepts_arrays_and_an_empty_caption_matches_nothing():
    import numpy as np

    record = {"objects": [{"bbox": [1, 2, 3, 4], "category": "cat"}], "captions": ["an empty room"],
              "width": 10, "height": 10}
    out = {"boxes": np.array([[1.0, 2, 3, 4]]), "scores": np.array([0.9]), "categories": ["cat"]}
    assert Detection().score_image(out, record)["recall50"] == 1.0
    # an empty caption used to become the word "empty", which a reference can hold
    assert Captioning().score_image({"caption": ""}, record)["rougeL"] == 0.0


def test_classification_says_when_no_predicted_label_can_name_a_class():
    """ImageNet WordNet ids against bird species: top-1 0 whatever the model sees, said as such."""
    task = Classification()
    records = [{"label": "Black footed Albatross"}, {"label": "Laysan Albatross"}]
    outputs = [{"label": "n01440764", "topk": ["n01440764", "n02085620"]}, {"label": "n02085620"}]
    (note,) = task.notes(outputs, records)
    assert note.startswith("none of the 2 labels the model predicted names one of the dataset's 2 classes "
                           "(e.g. 'n01440764' against 'Black footed Albatross')")
    # one label that names a class (a synonym, or through the dataset's aliases): nothing to say
    assert task.notes([*outputs, {"label": "laysan_albatross"}], [*records, records[1]]) == []
    aliased = Classification(label_aliases={"Laysan Albatross": ["n02085620"]})
    assert aliased.notes(outputs, records) == []
    assert task.notes([], records) == [] and task.notes(outputs, [{"label": None}]) == []


def test_a_task_the_dataset_cannot_serve_is_refused_before_its_data_is_fetched(tmp_path):
    """Without the data in --data-dir, OSIE would be downloaded and converted first, only to be
    refused for a task it never serves: the task is checked first, nothing is fetched or cached."""
    r = CliRunner().invoke(main, ["eval", "--model", "uniform", "--dataset", "osie", "--task", "classification",
                                  "--data-dir", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"),
                                  "--output", str(tmp_path / "runs")])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "Error: dataset 'osie' cannot serve task 'classification'; it serves: free-viewing"]
    assert not any(p.exists() for p in (tmp_path / "data" / "osie", tmp_path / "cache", tmp_path / "runs"))


def test_a_task_the_registered_model_does_not_do_is_refused_before_anything_is_fetched(tmp_path):
    """DETR asked to classify birds said it could not reach the Hub (its checkpoint is fetched
    first), a mouse model that it lacked its mouse data: the registry already lists their tasks."""
    from test_e2e_tasks import write_cub_fixture

    data = write_cub_fixture(tmp_path / "cub")
    for model, does in (("detr-resnet50", "free-viewing, detection"), ("mouse-amt", "free-viewing")):
        r = CliRunner().invoke(main, ["eval", "--model", model, "--dataset", "cub-gha", "--task", "classification",
                                      "--data-dir", str(data), "--cache-dir", str(tmp_path / "cache"),
                                      "--output", str(tmp_path / "runs"), "--no-references"])
        assert r.exit_code == 1
        assert r.output.strip().splitlines() == [
            f"Error: model '{model}' does not do task 'classification'; it does: {does}"], r.output
    assert not (tmp_path / "runs").exists()
