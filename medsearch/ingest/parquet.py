"""Parquet files and Hugging Face `datasets` folders (`Dataset.save_to_disk`): records in, records out.

They are how sentence-transformers trainers and the Hugging Face Hub hold training data. Parquet is read
from bytes with pyarrow (no cache folder, no copy); folders are read and every file is written with the
`datasets` library, so its own loaders (`load_from_disk`, `load_dataset("parquet", ...)`) get the column
types back. Nothing here uses the network: `datasets` is imported with HF_DATASETS_OFFLINE=1.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medsearch.home import replace_folder
from medsearch.ingest.common import fail
from medsearch.limits import check_rows
from medsearch.records import MedSearchError

MAGIC = b"PAR1"
Table = tuple[list[str], list[dict[str, Any]]]


def is_parquet(data: bytes) -> bool:
    """True when `data` starts like a Parquet file."""
    return data[:4] == MAGIC


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def parquet_columns(data: bytes) -> list[str]:
    """The column names of a Parquet file ([] when it cannot be read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(pa.BufferReader(data)).names)
    except (pa.ArrowException, OSError):
        return []


def read_parquet(data: bytes, name: str) -> Table:
    """(columns, records) of a Parquet file, at most `limits.max_rows()` records."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as e:
        raise fail(name, "bad_parquet", why=_first_line(e)) from e
    check_rows(name, table.num_rows)
    return list(table.column_names), table.to_pylist()


def _datasets() -> Any:
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    return datasets


def read_dataset(folder: Path, name: str) -> Table:
    """(columns, records) of a folder saved by `datasets`; of a `DatasetDict`, its "train" split."""
    datasets = _datasets()
    try:
        found = datasets.load_from_disk(str(folder))
    except FileNotFoundError as e:
        raise fail(name, "not_dataset") from e
    except Exception as e:  # damaged arrow or JSON files inside: one line, never a traceback
        raise fail(name, "bad_dataset", why=_first_line(e)) from e
    if isinstance(found, datasets.DatasetDict):
        if "train" not in found:
            raise fail(name, "no_train_split", splits=", ".join(found) or "-")
        found = found["train"]
    check_rows(name, found.num_rows)
    return list(found.column_names), found.to_list()


def _string_dataset(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Any:
    datasets = _datasets()
    features = datasets.Features({c: datasets.Value("string") for c in columns})
    return datasets.Dataset.from_dict({c: [r.get(c) for r in rows] for c in columns}, features=features)


def parquet_bytes(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    """`columns` of `rows` as a Parquet file of string columns (None is null)."""
    out = io.BytesIO()
    _string_dataset(rows, columns).to_parquet(out)
    return out.getvalue()


def save_dataset(rows: Sequence[dict[str, Any]], columns: Sequence[str], folder: Path) -> None:
    """`columns` of `rows` saved as a `datasets` folder of string columns, replacing `folder`."""
    if not rows:  # datasets saves no data file for zero rows, and then cannot load the folder back
        raise MedSearchError(f"{Path(folder).name}: no rows to save as a datasets folder")
    dataset = _string_dataset(rows, columns)
    replace_folder(Path(folder), lambda tmp: dataset.save_to_disk(str(tmp)))
