"""Streaming readers for dataset files: MovieLens 100K, MovieLens 1M and a generic CSV.

Plain Python, no Django. Readers read one line at a time and yield ``Record``s whose
``data`` has the API's shape (events ``{"event_id", "user_id", "item_id", "type",
"timestamp", "weight"}``, items ``{"item_id", "title", "categories"}``, users
``{"user_id", "features"}``), so the same validators and ingest services check them,
and every problem can name ``file:line``.

Values are passed on as found (numbers converted when they look like numbers): the
ingest validators own the rules for ids, types, timestamps and weights. A reader only
rejects what it cannot split into fields. A malformed line raises
``DatasetLineInvalid``, or, when the caller passes ``on_malformed``, is handed to it and
skipped.

Event ids are deterministic, so importing the same file twice stores nothing new:
MovieLens ``ml:{user}:{item}:{unix_ts}``; CSV rows without an ``event_id`` column get
``csv:`` + a hash of the row's fields (not of the file name or line number, so a
renamed file, or an export overlapping an earlier one, does not duplicate events)."""

from __future__ import annotations

import csv
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.exceptions import DatasetLineInvalid, DatasetSourceInvalid

FORMATS = ("movielens", "csv")

CSV_EVENT_COLUMNS_REQUIRED = ("user_id", "item_id", "timestamp")
CSV_EVENT_COLUMNS_OPTIONAL = ("type", "weight", "event_id")
CSV_ITEM_COLUMNS_REQUIRED = ("item_id",)
CSV_ITEM_COLUMNS_OPTIONAL = ("title", "categories")
CSV_DEFAULT_EVENT_TYPE = "view"
CSV_CATEGORY_SEPARATOR = "|"

MOVIELENS_EVENT_TYPE = "rating"

# u.genre's names, used when a MovieLens 100K directory comes without u.genre.
ML_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

# MovieLens 1M codes its users' occupations (see its README).
ML_1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip

# MovieLens 1M's age groups, applied to 100K's exact ages too so both give the same features.
_AGE_GROUPS = (
    (18, "under-18"),
    (25, "18-24"),
    (35, "25-34"),
    (45, "35-44"),
    (50, "45-49"),
    (56, "50-55"),
)

# The longest line a reader accepts (bytes, line ending excluded); longer ones are
# malformed. Lines are read with this bound, so one huge line never sits in memory.
MAX_LINE_BYTES = 1 << 20
_SKIP_CHUNK = 1 << 16

OnMalformed = Callable[[DatasetLineInvalid], None]


@dataclass(frozen=True, slots=True)
class Record:
    """One row of a dataset file, in the API's shape, and where it came from."""

    file: str
    line: int
    data: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def age_group(age: int) -> str:
    for upper, label in _AGE_GROUPS:
        if age < upper:
            return label
    return "56+"


def _malformed(on_malformed: OnMalformed | None, file: str, line: int, reason: str) -> None:
    error = DatasetLineInvalid(file=file, line=line, reason=reason)
    if on_malformed is None:
        raise error
    on_malformed(error)


class Dataset(ABC):
    """A dataset on disk. ``bytes_read`` grows as the readers advance (for progress)."""

    layout: str

    def __init__(self) -> None:
        self.bytes_read = 0
        self.max_line_bytes = MAX_LINE_BYTES

    @property
    @abstractmethod
    def files(self) -> list[Path]:
        """Every file the readers will read."""

    def total_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)

    @abstractmethod
    def items(self, on_malformed: OnMalformed | None = None) -> Iterator[Record]: ...

    @abstractmethod
    def users(self, on_malformed: OnMalformed | None = None) -> Iterator[Record]: ...

    @abstractmethod
    def events(self, on_malformed: OnMalformed | None = None) -> Iterator[Record]: ...

    def _lines(
        self, path: Path, encoding: str, on_malformed: OnMalformed | None
    ) -> Iterator[tuple[int, str]]:
        """(line number, text with its line ending) for each line, counting bytes read.

        Binary reads, because a text file's position cannot be asked while iterating. A
        line longer than ``max_line_bytes`` or holding a NUL byte (which no database
        column can store) is malformed: reported with its file and line, or skipped."""
        limit = self.max_line_bytes
        with path.open("rb") as stream:
            number = 0
            while raw := stream.readline(limit + 2):
                number += 1
                self.bytes_read += len(raw)
                if len(raw.rstrip(b"\r\n")) > limit:
                    while not raw.endswith(b"\n") and (raw := stream.readline(_SKIP_CHUNK)):
                        self.bytes_read += len(raw)
                    _malformed(
                        on_malformed,
                        str(path),
                        number,
                        f"the line is longer than {limit:,} bytes (--max-line-bytes)",
                    )
                    continue
                if b"\x00" in raw:
                    _malformed(on_malformed, str(path), number, "the line contains a NUL byte")
                    continue
                try:
                    text = raw.decode(encoding)
                except UnicodeDecodeError as exc:
                    _malformed(on_malformed, str(path), number, f"not valid {encoding}: {exc}")
                    continue
                yield number, text


class _MovieLens(Dataset):
    """What the two MovieLens layouts share; subclasses name the files and separators."""

    ratings_name: str
    items_name: str
    users_name: str
    ratings_separator: str
    table_separator: str
    encoding = "latin-1"

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def _path(self, name: str) -> Path | None:
        path = self.directory / name
        return path if path.is_file() else None

    @property
    def files(self) -> list[Path]:
        names = (self.ratings_name, self.items_name, self.users_name)
        return [path for path in map(self._path, names) if path]

    def _fields(
        self,
        path: Path,
        separator: str,
        expected: int,
        what: str,
        on_malformed: OnMalformed | None,
    ) -> Iterator[tuple[int, list[str]]]:
        for number, text in self._lines(path, self.encoding, on_malformed):
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            fields = text.split(separator)
            if len(fields) != expected:
                _malformed(
                    on_malformed,
                    str(path),
                    number,
                    f"expected {expected} {separator!r}-separated fields ({what}), "
                    f"found {len(fields)}",
                )
                continue
            yield number, fields

    def events(self, on_malformed: OnMalformed | None = None) -> Iterator[Record]:
        path = self.directory / self.ratings_name
        rows = self._fields(
            path, self.ratings_separator, 4, "user, item, rating, timestamp", on_malformed
        )
        for number, (user, item, rating, timestamp) in rows:
            user, item = user.strip(), item.strip()
            try:
                weight = float(rating)
                seconds = int(timestamp)
            except ValueError:
                _malformed(
                    on_malformed,
                    str(path),
                    number,
                    f"rating {rating.strip()!r} must be a number and timestamp "
                    f"{timestamp.strip()!r} whole Unix seconds",
                )
                continue
            yield Record(
                str(path),
                number,
                {
                    "event_id": f"ml:{user}:{item}:{seconds}",
                    "user_id": user,
                    "item_id": item,
                    "type": MOVIELENS_EVENT_TYPE,
                    "timestamp": seconds,
                    "weight": weight,
                },
            )

    def _user(
        self,
        path: Path,
        number: int,
        user: str,
        gender: str,
        age: str,
        occupation: str,
        on_malformed: OnMalformed | None,
    ) -> Record | None:
        try:
            years = int(age)
        except ValueError:
            _malformed(on_malformed, str(path), number, f"age {age.strip()!r} is not a number")
            return None
        features = [f"age:{age_group(years)}"]
        if gender.strip():
            features.insert(0, f"gender:{gender.strip()}")
        if occupation.strip():
            features.append(f"occupation:{occupation.strip()}")
        return Record(str(path), number, {"user_id": user.strip(), "features": features})


class MovieLens100K(_MovieLens):
    """``u.data`` (TAB), ``u.item`` with genre flags named by ``u.genre``, ``u.user``."""

    layout = "movielens-100k"
    ratings_name = "u.data"
    items_name = "u.item"
    users_name = "u.user"
    ratings_separator = "\t"
    table_separator = "|"

    @property
    def files(self) -> list[Path]:
        genre = self._path("u.genre")
        return super().files + ([genre] if genre else [])

    def genres(self) -> list[str]:
        path = self._path("u.genre")
        if path is None:
            return list(ML_100K_GENRES)
        by_index: dict[int, str] = {}
        for number, text in self._lines(path, self.encoding, None):
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            name, _, index = text.rpartition("|")
            if not name or not index.strip().isdigit():
                raise DatasetLineInvalid(
                    file=str(path), line=number, reason="expected 'genre name|index'"
                )
            by_index[int(index)] = name
        if sorted(by_index) != list(range(len(by_index))):
            raise DatasetLineInvalid(
                file=str(path), line=1, reason="genre indexes must run 0, 1, 2, ... without gaps"
            )
        return [by_index[index] for index in range(len(by_index))]

    def items(self, on_malformed: OnMalformed | None = None) -> Iterator[Record]:
        path = self._path(self.items_name)
        if path is None:
            return
        genres = self.genres()
        rows = self._fields(
            path,
            self.table_separator,
            5 + len(genres),
            f"id, title, release date, video date, url, {len(genres)} genre flags",
            on_malformed,
        )
        for number, row in rows:
            flags = row[5:]
            if any(flag not in ("0", "1") for flag in flags):
                _malformed(on_malformed, str(path), number, "genre flags must be 0 or 1")
                continue
            categories = [genre for genre, flag in zip(genres, flags, strict=True) if flag == "1"]
            yield Record(
                str(path),
                number,
                {"item_id": row[0].strip(), "title": row[1].strip(), "categories": categories},
            )

    def users(self, on_malformed: OnMalformed | None = None) -> Iterator[Record]:
        path = self._path(self.users_name)
        if path is None:
            return
        rows = self._fields(
            path, self.table_separator, 5, "id, age, gender, occupation, zip", on_malformed
        )
        for number, (user, age, gender, occupation, _zip) in rows:
            record = self._user(path, number, user, gender, age, occupation, on_malformed)
            if record:
                yield record


class MovieLens1M(_MovieLens):
    """``ratings.dat``, ``movies.dat`` (``Genre1|Genre2``) and ``users.dat``, all ``::``."""

    layout = "movielens-1m"
    ratings_name = "ratings.dat"
    items_name = "movies.dat"
    users_name = "users.dat"
    ratings_separator = "::"
    table_separator = "::"

    def items(self, on_malformed: OnMalformed | None = None) -> Iterator[Record]:
        path = self._path(self.items_name)
        if path is None:
            return
        rows = self._fields(path, self.table_separator, 3, "id, title, genres", on_malformed)
        for number, (item, title, genres) in rows:
            categories = [name.strip() for name in genres.split("|") if name.strip()]
            yield Record(
                str(path),
                number,
                {"item_id": item.strip(), "title": title.strip(), "categories": categories},
            )

    def users(self, on_malformed: OnMalformed | None = None) -> Iterator[Record]:
        path = self._path(self.users_name)
        if path is None:
            return
        rows = self._fields(
            path, self.table_separator, 5, "id, gender, age, occupation, zip", on_malformed
        )
        for number, (user, gender, age, occupation, _zip) in rows:
            code = occupation.strip()
            if code.isdigit() and int(code) < len(ML_1M_OCCUPATIONS):
                occupation = ML_1M_OCCUPATIONS[int(code)]
            record = self._user(path, number, user, gender, age, occupation, on_malformed)
            if record:
                yield record


class _CsvLines:
    """Feeds a csv.reader line by line and remembers where the current record started,
    so a record spanning lines (a quoted newline) is reported at its first line."""

    def __init__(self, lines: Iterator[tuple[int, str]]) -> None:
        self._lines = lines
        self.record_start: int | None = None

    def __iter__(self) -> Iterator[str]:
        for number, text in self._lines:
            if self.record_start is None:
                self.record_start = number
            yield text

    def take_start(self) -> int:
        start, self.record_start = self.record_start or 0, None
        return start


class CsvDataset(Dataset):
    """Events CSV (UTF-8, a header naming the columns) and an optional items CSV.

    Events: ``user_id,item_id,timestamp`` required; ``type`` (default ``view``),
    ``weight`` and ``event_id`` optional; other columns are ignored. ``timestamp`` is
    ISO-8601 (naive means UTC) or Unix seconds. Items: ``item_id`` required, ``title``
    and ``categories`` (``|``-separated) optional. An empty cell counts as not given."""

    layout = "csv"

    def __init__(self, events_path: Path, items_path: Path | None = None) -> None:
        super().__init__()
        self.events_path = events_path
        self.items_path = items_path

    @property
    def files(self) -> list[Path]:
        return [self.events_path] + ([self.items_path] if self.items_path else [])

    def _rows(
        self,
        path: Path,
        required: tuple[str, ...],
        optional: tuple[str, ...],
        on_malformed: OnMalformed | None,
    ) -> Iterator[tuple[int, dict[str, str | None]]]:
        """(line, {column: stripped value or None when empty}) for each data row.

        A bad header stops the read whatever ``on_malformed`` says: no row can be read."""
        lines = _CsvLines(self._lines(path, "utf-8-sig", on_malformed))
        reader = csv.reader(lines)
        try:
            header = [name.strip().lower() for name in next(reader)]
        except (StopIteration, csv.Error) as exc:
            reason = "is empty" if isinstance(exc, StopIteration) else str(exc)
            raise DatasetLineInvalid(
                file=str(path),
                line=1,
                reason=f"{reason}; expected a header line naming the columns "
                + ",".join(required + optional),
            ) from None
        lines.take_start()
        missing = [name for name in required if name not in header]
        if missing:
            raise DatasetLineInvalid(
                file=str(path),
                line=1,
                reason=f"the header lacks the required column(s) {', '.join(missing)}; "
                f"found {', '.join(header) or 'none'}",
            )
        columns = {name: header.index(name) for name in required + optional if name in header}
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                _malformed(on_malformed, str(path), lines.take_start(), str(exc))
                continue
            number = lines.take_start()
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                _malformed(
                    on_malformed,
                    str(path),
                    number,
                    f"expected {len(header)} fields as in the header, found {len(row)}",
                )
                continue
            yield number, {name: row[index].strip() or None for name, index in columns.items()}

    def items(self, on_malformed: OnMalformed | None = None) -> Iterator[Record]:
        if self.items_path is None:
            return
        rows = self._rows(
            self.items_path, CSV_ITEM_COLUMNS_REQUIRED, CSV_ITEM_COLUMNS_OPTIONAL, on_malformed
        )
        for number, row in rows:
            data: dict[str, Any] = {"item_id": row["item_id"]}
            if row.get("title"):
                data["title"] = row["title"]
            if row.get("categories"):
                data["categories"] = [
                    name.strip()
                    for name in row["categories"].split(CSV_CATEGORY_SEPARATOR)
                    if name.strip()
                ]
            yield Record(str(self.items_path), number, data)

    def users(self, on_malformed: OnMalformed | None = None) -> Iterator[Record]:
        return iter(())

    def events(self, on_malformed: OnMalformed | None = None) -> Iterator[Record]:
        rows = self._rows(
            self.events_path, CSV_EVENT_COLUMNS_REQUIRED, CSV_EVENT_COLUMNS_OPTIONAL, on_malformed
        )
        for number, row in rows:
            event_type = row.get("type") or CSV_DEFAULT_EVENT_TYPE
            yield Record(
                str(self.events_path),
                number,
                {
                    "event_id": row.get("event_id") or csv_event_id(row, event_type),
                    "user_id": row["user_id"],
                    "item_id": row["item_id"],
                    "type": event_type,
                    "timestamp": _number_or_text(row["timestamp"]),
                    "weight": _number_or_text(row.get("weight")),
                },
            )


def csv_event_id(row: dict[str, str | None], event_type: str) -> str:
    """A stable id for a CSV row without ``event_id``: the same fields, the same id."""
    fields = (row["user_id"], row["item_id"], event_type, row["timestamp"], row.get("weight"))
    digest = hashlib.sha256("\x1f".join(value or "" for value in fields).encode()).hexdigest()
    return f"csv:{digest[:32]}"


def _digits_end(text: str, start: int) -> int:
    end = start
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    return end


def looks_numeric(text: str) -> bool:
    """``[+-]?(d+[.d*]|.d+)([eE][+-]?d+)?`` with ASCII digits, in one left-to-right pass
    (each character read once or twice). It replaces a regular expression whose
    backtracking took 12 s on one 20,000-digit cell."""
    position = 1 if text[:1] in ("+", "-") else 0
    end = _digits_end(text, position)
    whole = end - position
    fraction = 0
    if end < len(text) and text[end] == ".":
        start = end + 1
        end = _digits_end(text, start)
        fraction = end - start
    if whole == 0 and fraction == 0:
        return False
    if end < len(text) and text[end] in ("e", "E"):
        start = end + 1 + (text[end + 1 : end + 2] in ("+", "-"))
        end = _digits_end(text, start)
        if end == start:
            return False
    return end == len(text)


def _number_or_text(value: str | None) -> int | float | str | None:
    """Numbers as numbers (Unix seconds, weights); anything else as given, for the
    validators to accept (ISO-8601) or reject with their own message."""
    if value is None or not looks_numeric(value):
        return value
    number = float(value)
    return int(number) if number.is_integer() and "." not in value else number


def open_dataset(
    path: Path | str,
    *,
    format: str,
    items_path: Path | str | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Dataset:
    """The dataset at ``path``; for MovieLens, which layout is told by the files present."""
    dataset = _open(Path(path), format, items_path)
    dataset.max_line_bytes = max_line_bytes
    return dataset


def _open(path: Path, format: str, items_path: Path | str | None) -> Dataset:
    if format not in FORMATS:
        raise DatasetSourceInvalid(f"unknown format {format!r}; use one of: {', '.join(FORMATS)}")
    if not path.exists():
        raise DatasetSourceInvalid(f"{path} does not exist", path=str(path))
    if format == "csv":
        if not path.is_file():
            raise DatasetSourceInvalid(f"{path} is not a file; --format csv reads an events CSV")
        items = Path(items_path) if items_path is not None else None
        if items is not None and not items.is_file():
            raise DatasetSourceInvalid(f"items file {items} does not exist", path=str(items))
        return CsvDataset(path, items)
    if items_path is not None:
        raise DatasetSourceInvalid(
            "an items file only goes with --format csv; MovieLens has its own item file"
        )
    directory = path if path.is_dir() else path.parent
    for layout in (MovieLens100K, MovieLens1M):
        if (directory / layout.ratings_name).is_file():
            return layout(directory)
    raise DatasetSourceInvalid(
        f"{directory} holds neither u.data (MovieLens 100K) nor ratings.dat (MovieLens 1M)",
        path=str(directory),
    )
