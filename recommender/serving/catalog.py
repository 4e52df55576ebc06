"""The catalogue as serving holds it: every item's id, key, active flag, title and
categories as columns, read in full once and then patched from the rows changed since
(``Catalog.updated``), plus the cheap stamps that tell whether items or events changed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from django.db.models import Count, Max

from recommender.ids import IdArray, IdIndex
from recommender.models import Event, Item


def catalog_stamp() -> tuple[Any, int]:
    """Changes whenever an item is created, updated or deleted (``updated_at`` is indexed)."""
    stamp = Item.objects.aggregate(last=Max("updated_at"), n=Count("pk"))
    return stamp["last"], stamp["n"]


def events_stamp() -> Any:
    """Changes when events arrive (the newest primary key: an index lookup)."""
    return Event.objects.aggregate(last=Max("pk"))["last"]


@dataclass(frozen=True)
class Catalog:
    """The whole catalog as columns. Read in full once; after that a change reads only the
    rows updated since (:meth:`updated`) and patches a copy."""

    ids: IdArray
    pks: np.ndarray
    active: np.ndarray
    titles: list[str]
    categories: list[tuple[str, ...]]  # equal tuples are one object (few distinct ones)
    stamp: tuple[Any, int]
    rows_read: int = 0  # rows this catalog's build read from the database

    @classmethod
    def read(cls, stamp: tuple[Any, int]) -> Catalog:
        ids: list[str] = []
        pks: list[int] = []
        active: list[bool] = []
        titles: list[str] = []
        categories: list[tuple[str, ...]] = []
        interned: dict[tuple[str, ...], tuple[str, ...]] = {}
        rows = Item.objects.order_by("pk").values_list(
            "external_id", "pk", "active", "title", "categories"
        )
        for external_id, pk, is_active, title, cats in rows.iterator(chunk_size=20_000):
            ids.append(external_id)
            pks.append(pk)
            active.append(bool(is_active))
            titles.append(title)
            categories.append(categories_interned(cats, interned))
        return cls(
            IdArray.from_strings(ids),
            np.asarray(pks, dtype=np.int64),
            np.asarray(active, dtype=bool),
            titles,
            categories,
            stamp,
            rows_read=len(pks),
        )

    def updated(self, stamp: tuple[Any, int]) -> Catalog:
        """This catalog with the changes up to ``stamp``: only the rows whose
        ``updated_at`` is newer than this catalog's stamp are read (an indexed range);
        changed rows are patched, new ones appended. A deletion (the row count disagrees
        with ``stamp``'s afterwards) falls back to a full read: deleted rows cannot be
        told from a range of ``updated_at``."""
        since = self.stamp[0]
        if since is None or stamp[1] < len(self.titles):
            return Catalog.read(stamp)
        rows = list(
            Item.objects.filter(updated_at__gt=since)
            .order_by("pk")
            .values_list("external_id", "pk", "active", "title", "categories")
        )
        order = np.argsort(self.pks, kind="stable")
        sorted_pks = self.pks[order]
        changed = np.asarray([row[1] for row in rows], dtype=np.int64)
        at = np.minimum(np.searchsorted(sorted_pks, changed), max(sorted_pks.size - 1, 0))
        held = (sorted_pks[at] == changed) if sorted_pks.size else np.zeros(len(rows), bool)
        if len(self.titles) + int((~held).sum()) != stamp[1]:
            return Catalog.read(stamp)
        titles, categories, active = list(self.titles), list(self.categories), self.active.copy()
        # Interned per build from the rows in use: the table never outlives the build, so
        # category sets that no item has any more are not kept (issue 13.14).
        interned = {c: c for c in categories}
        new_ids: list[str] = []
        new_pks: list[int] = []
        new_active: list[bool] = []
        for (external_id, pk, is_active, title, cats), is_held, position in zip(
            rows, held.tolist(), at.tolist(), strict=True
        ):
            if is_held:
                row = int(order[position])
                active[row] = bool(is_active)
                titles[row] = title
                categories[row] = categories_interned(cats, interned)
                continue
            new_ids.append(external_id)
            new_pks.append(pk)
            new_active.append(bool(is_active))
            titles.append(title)
            categories.append(categories_interned(cats, interned))
        return Catalog(
            self.ids.concat(IdArray.from_strings(new_ids)),
            np.concatenate([self.pks, np.asarray(new_pks, dtype=np.int64)]),
            np.concatenate([active, np.asarray(new_active, dtype=bool)]),
            titles,
            categories,
            stamp,
            rows_read=len(rows),
        )

    @cached_property
    def index(self) -> IdIndex:
        return IdIndex(self.ids)

    @cached_property
    def rows_by_category(self) -> dict[str, np.ndarray]:
        return categories_to_rows(self.categories)

    @cached_property
    def category_matrix(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Every row's categories as CSR over a vocabulary: ``(names, indptr, indices)``,
        row ``r``'s being ``names[indices[indptr[r]:indptr[r + 1]]]``."""
        vocabulary: dict[str, int] = {}
        indices = [
            vocabulary.setdefault(name, len(vocabulary)) for c in self.categories for name in c
        ]
        indptr = np.zeros(len(self.categories) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in self.categories], out=indptr[1:])
        return list(vocabulary), indptr, np.asarray(indices, dtype=np.int64)


def categories_to_rows(categories: list[tuple[str, ...]]) -> dict[str, np.ndarray]:
    """Category -> the (ascending) rows holding it: built once per catalog read, so a
    model swap maps it to positions with numpy instead of looping over every item."""
    rows: dict[str, list[int]] = {}
    for row, names in enumerate(categories):
        for name in names:
            rows.setdefault(name, []).append(row)
    return {name: np.asarray(r, dtype=np.int64) for name, r in rows.items()}


def categories_interned(
    raw: Any, interned: dict[tuple[str, ...], tuple[str, ...]]
) -> tuple[str, ...]:
    """An item's categories as a tuple shared through ``interned`` (the table of one
    catalog build): 100k items hold a few hundred objects."""
    value = tuple(dict.fromkeys(str(c) for c in raw)) if isinstance(raw, list) else ()
    return interned.setdefault(value, value)
