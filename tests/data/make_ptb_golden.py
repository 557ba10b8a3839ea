"""Regenerate ptb_golden.json's 'ptb' outputs with pycocoevalcap's real PTBTokenizer (needs Java):

    .venv/bin/python tests/data/make_ptb_golden.py

The captions stay; each one's 'ptb' becomes what the Java tokenizer gives now, and 'differs' marks
those plugins.tasks.tokenize_caption does not reproduce. Run it after changing tokenize_caption to
see what moved (git diff), or to add captions (append {"caption": ...} rows first)."""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer  # noqa: E402

from plugins.tasks import tokenize_caption  # noqa: E402

path = HERE / "ptb_golden.json"
doc = json.loads(path.read_text())
rows = doc["captions"]
out = PTBTokenizer().tokenize({i: [{"caption": r["caption"]}] for i, r in enumerate(rows)})
for i, row in enumerate(rows):
    row["ptb"] = out[i][0]
    row.pop("differs", None)
    if tokenize_caption(row["caption"]) != row["ptb"]:
        row["differs"] = True
path.write_text(json.dumps(doc, ensure_ascii=False, indent=1))
print(f"{len(rows)} captions, {sum(1 for r in rows if r.get('differs'))} that tokenize_caption does not reproduce")
