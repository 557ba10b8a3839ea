"""Every scored stimulus' fixations in one columnar table, read straight from the Arrow column.

A run holds the fixations of all its stimuli for as long as it scores (the shuffled AUC's negatives
are every other stimulus' fixations). As one :class:`harness.schema.Fixations` per stimulus (four
float64/int64 arrays, plus a float64 copy of x and y for the negatives' pool and an owner per
fixation) that was 56 bytes per fixation and four Python objects per stimulus: 44 MB of a
5,000-stimulus run, and the reason its memory grew 16% over a 50-stimulus run's. Here a fixation
costs 16 bytes: x and y as the float32 the canonical schema stores (widened to float64 on access,
which is exact), the subject's index as int32, the duration as float32. Reading the column's
fields as arrays also avoids building a Python dict per fixation.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..schema import Fixations


class FixationTable(Sequence):
    """The fixations of ``n`` stimuli: stimulus i's are rows ``offsets[i]:offsets[i + 1]`` of the
    columns ``x``, ``y`` (pixels of stimulus i; float32 as the canonical schema stores them),
    ``subject`` (int32: the index of the subject's name among the names on stimulus i, sorted, as
    :meth:`Fixations.from_record` numbers them) and ``duration_ms`` (float32). ``table[i]`` is stimulus i's :class:`Fixations`, float64
    and int64 like :meth:`Fixations.from_record`'s, equal to it value for value."""

    def __init__(self, x: np.ndarray, y: np.ndarray, subject: np.ndarray, duration_ms: np.ndarray,
                 offsets: np.ndarray) -> None:
        self.x, self.y, self.subject, self.duration_ms = x, y, subject, duration_ms
        self.offsets = offsets

    @classmethod
    def from_dataset(cls, ds) -> "FixationTable":
        """The ``fixations`` column of a Hugging Face dataset in the canonical schema (its rows as
        selected: an indices mapping is applied), read chunk by chunk from the memory-mapped
        Arrow file: x, y and the durations without a copy until they are joined, the subjects'
        names encoded chunk by chunk."""
        import pyarrow as pa

        if len(ds) == 0:
            empty = np.zeros(0, np.float32)
            return cls(empty, empty, np.zeros(0, np.int32), empty, np.zeros(1, np.int64))
        column = ds.select_columns(["fixations"]).with_format("arrow")[:]["fixations"]
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        parts: dict[str, list] = {"lengths": [], "x": [], "y": [], "duration_ms": [], "subject": []}
        for lists in chunks:
            # a null list is an empty one (from_record: ``record["fixations"] or []``)
            parts["lengths"].append(lists.value_lengths().fill_null(0).to_numpy(zero_copy_only=False))
            fields = dict(zip([f.name for f in lists.type.value_type], lists.flatten().flatten()))
            for name in ("x", "y", "duration_ms"):
                # as stored (float32 in the canonical schema; a table written with wider floats keeps
                # them as float64, never rounded); a null field reads NaN, as np.asarray([None], float)
                field = fields[name]
                kind = pa.float32() if pa.types.is_float32(field.type) else pa.float64()
                parts[name].append(field.cast(kind).to_numpy(zero_copy_only=False))
            parts["subject"].append(fields["subject"])
        lengths = np.concatenate(parts["lengths"]).astype(np.int64)
        offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        x, y, duration = (np.concatenate(parts[k]) for k in ("x", "y", "duration_ms"))
        # chunk by chunk: a row (a stimulus) never spans two chunks, and the work arrays stay small
        # (arrays of the whole column, freed, would stay in the C heap: 40 MB for 700k fixations)
        subject = np.concatenate([_subject_indices(names, chunk_lengths)
                                  for names, chunk_lengths in zip(parts["subject"], parts["lengths"])]
                                 or [np.zeros(0, np.int32)])
        return cls(x, y, subject, duration, offsets)

    def __len__(self) -> int:
        return self.offsets.size - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"stimulus {i} of {len(self)}")
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return Fixations(x=self.x[a:b].astype(np.float64), y=self.y[a:b].astype(np.float64),
                         subject=self.subject[a:b].astype(np.int64),
                         duration_ms=self.duration_ms[a:b].astype(np.float64))

    def __iter__(self) -> Iterator[Fixations]:
        return (self[i] for i in range(len(self)))

    def counts(self) -> np.ndarray:
        """Fixations per stimulus."""
        return np.diff(self.offsets)

    @property
    def total(self) -> int:
        return int(self.offsets[-1])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.x, self.y, self.subject, self.duration_ms, self.offsets))


def _subject_indices(names, lengths: np.ndarray) -> np.ndarray:
    """Per fixation of ``names`` (an Arrow string array: the subjects of consecutive stimuli with
    ``lengths`` fixations each), the index of its subject's name among the distinct names on its
    stimulus, sorted as Python sorts them (:meth:`Fixations.from_record`), without a Python loop
    over fixations: the names are dictionary-encoded, each code replaced by the rank of its name
    among the dictionary's, and the ranks renumbered within each stimulus."""
    if names.null_count:
        raise ValueError("a fixation without a subject")
    if len(names) == 0:
        return np.zeros(0, np.int32)
    encoded = names.dictionary_encode()
    dictionary = encoded.dictionary.to_pylist()
    rank = np.empty(len(dictionary), np.int64)
    rank[sorted(range(len(dictionary)), key=dictionary.__getitem__)] = np.arange(len(dictionary))
    stimulus = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    key = stimulus * len(dictionary) + rank[encoded.indices.to_numpy(zero_copy_only=False)]
    distinct, inverse = np.unique(key, return_inverse=True)
    first = np.searchsorted(distinct // len(dictionary), np.arange(lengths.size))
    return (inverse.ravel() - first[stimulus]).astype(np.int32)
