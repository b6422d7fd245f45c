"""Typed arguments of a Merge Records call and the JSON body built from them.

The body follows Zoho CRM API "Merge Records" (v6 to v8) and the `mergeRecords`
operation of Zoho's OpenAPI file `find_and_merge.json` (repository zoho/crm-oas)::

    {"merge": [{"data": [{"id": "<child id>", "_fields": [{"api_name": "Email"}]}],
                "master_record_fields": [{"api_name": "Image_Upload_1", "_data": null}]}]}

Every limit Zoho documents for that body is checked here, before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._validation import check_id

MAX_CHILD_RECORDS = 2
"""Child records per merge: Zoho merges one master record with one or two others."""

MAX_FIELDS = 100
"""Fields per child record, and fields in `master_record_fields` (Zoho's maxItems)."""

MAX_ATTACHMENTS = 50
"""Attachment ids per file or image field (Zoho's maxItems for `_data`)."""

# Zoho field API names are ASCII letters, digits and underscores, start with a letter and
# have at most 100 characters.
_API_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")


@dataclass(frozen=True, slots=True)
class MergeField:
    """A field named in a merge request, by its API name.

    In a `ChildRecord`, the merged record takes the field's value from that
    child. In `master_record_fields`, it keeps the master record's value.

    `attachment_ids` matters only for file and image upload fields:

    - `()` (the default) sends no `_data`, as for an ordinary field. Zoho
      rejects a file or image field without `_data` (DEPENDENT_FIELD_MISSING),
      and keeps the master's files of a file field that is not named at all.
    - a sequence of attachment ids sends them as `_data`: the files to keep.
    - `None` sends `"_data": null`, which deletes every file of that field in
      the merged record.

    Raises `ValueError` for an invalid API name, an invalid or repeated
    attachment id, or more than `MAX_ATTACHMENTS` ids.
    """

    api_name: str
    attachment_ids: Sequence[str] | None = ()

    def __post_init__(self) -> None:
        if not isinstance(self.api_name, str) or not _API_NAME_PATTERN.fullmatch(self.api_name):
            raise ValueError(
                f"invalid field API name {self.api_name!r}: use the field's API name, such as "
                "'Last_Name' (ASCII letters, digits and underscores, starting with a letter, "
                "at most 100 characters)")
        if self.attachment_ids is not None:
            ids = _check_id_list(f"attachment_ids of field {self.api_name}",
                                 self.attachment_ids, "attachment id", MAX_ATTACHMENTS)
            object.__setattr__(self, "attachment_ids", ids)

    def to_json(self) -> dict[str, Any]:
        """Return the field as Zoho's `{"api_name": ..., "_data": ...}` object."""
        item: dict[str, Any] = {"api_name": self.api_name}
        if self.attachment_ids is None:
            item["_data"] = None
        elif self.attachment_ids:
            item["_data"] = [{"id": attachment} for attachment in self.attachment_ids]
        return item


@dataclass(frozen=True, slots=True)
class ChildRecord:
    """A record merged into the master record and then deleted by Zoho.

    `fields` names the fields whose values the merged record takes from this
    child: API names, or `MergeField` objects for file and image fields. The
    master record's values are kept for every other field.

    Raises `ValueError` for an invalid id, an invalid field, a field named
    twice, or more than `MAX_FIELDS` fields.
    """

    id: str
    fields: Sequence[str | MergeField] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", check_id("child record id", self.id))
        fields = _to_fields(f"fields of child record {self.id}", self.fields)
        object.__setattr__(self, "fields", fields)

    def to_json(self) -> dict[str, Any]:
        """Return the child as Zoho's `{"id": ..., "_fields": [...]}` object."""
        item: dict[str, Any] = {"id": self.id}
        if self.fields:
            item["_fields"] = [field.to_json() for field in self.merge_fields]
        return item

    @property
    def merge_fields(self) -> tuple[MergeField, ...]:
        """The `fields`, each as a `MergeField`."""
        return tuple(field if isinstance(field, MergeField) else MergeField(field)
                     for field in self.fields)


@dataclass(frozen=True, slots=True)
class MergeRequest:
    """A validated Merge Records request: the master record, its children and field choices.

    Raises `ValueError` for no child or more than `MAX_CHILD_RECORDS`, the
    master among the children, a child named twice, or a field named twice
    anywhere in the request, which Zoho rejects with DUPLICATE_DATA.
    """

    master_record_id: str
    children: tuple[ChildRecord, ...]
    master_record_fields: tuple[MergeField, ...] = ()

    def __post_init__(self) -> None:
        master = self.master_record_id
        if not self.children:
            raise ValueError(f"no child record given: pass one or two ids of records to merge "
                             f"into master record {master}")
        if len(self.children) > MAX_CHILD_RECORDS:
            raise ValueError(
                f"{len(self.children)} child records given: Zoho merges at most "
                f"{MAX_CHILD_RECORDS} into one master record, so split them over several "
                "merges")
        child_ids = [child.id for child in self.children]
        if master in child_ids:
            raise ValueError(f"master record {master} is also given as a child record: pass "
                             "only the records to merge into it")
        if len(set(child_ids)) < len(child_ids):
            repeated = next(child for child in child_ids if child_ids.count(child) > 1)
            raise ValueError(f"child record {repeated} is given twice: pass each child record "
                             "once")
        _check_fields_once(self.children, self.master_record_fields)

    def to_json(self) -> dict[str, Any]:
        """Return the request body."""
        merge: dict[str, Any] = {"data": [child.to_json() for child in self.children]}
        if self.master_record_fields:
            merge["master_record_fields"] = [field.to_json()
                                             for field in self.master_record_fields]
        return {"merge": [merge]}


def build_merge_request(
    master_record_id: str,
    children: object,
    master_record_fields: object,
) -> MergeRequest:
    """Convert the arguments of `merge_records` into a `MergeRequest`, or raise ValueError.

    `children` contains child ids or `ChildRecord` objects, and
    `master_record_fields` contains API names or `MergeField` objects.
    """
    if isinstance(children, str | bytes | int) or not isinstance(children, Iterable):
        raise ValueError(f"invalid children {children!r}: pass a list of one or two child "
                         "record ids (or ChildRecord objects), such as ['2378988000000509964']")
    records = tuple(item if isinstance(item, ChildRecord) else ChildRecord(_as_id(item))
                    for item in children)
    fields = _to_fields("master_record_fields", master_record_fields)
    return MergeRequest(master_record_id, records, fields)


def _as_id(value: object) -> str:
    return check_id("child record id", value)


def _to_fields(owner: str, fields: object) -> tuple[MergeField, ...]:
    if isinstance(fields, str | bytes) or not isinstance(fields, Iterable):
        raise ValueError(f"invalid {owner} {fields!r}: pass a list of field API names or "
                         "MergeField objects, such as ['Email']")
    result = tuple(field if isinstance(field, MergeField) else MergeField(field)
                   for field in fields)
    if len(result) > MAX_FIELDS:
        raise ValueError(f"{len(result)} {owner} given: Zoho accepts at most {MAX_FIELDS}")
    names = [field.api_name for field in result]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"field {name} is named twice in {owner}: name each field once")
    return result


def _check_id_list(owner: str, values: object, name: str, limit: int) -> tuple[str, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValueError(f"invalid {owner} {values!r}: pass a list of ids, or None to delete "
                         "every file of the field")
    ids = tuple(check_id(name, value) for value in values)
    if len(ids) > limit:
        raise ValueError(f"{len(ids)} {owner} given: Zoho accepts at most {limit}")
    if len(set(ids)) < len(ids):
        repeated = next(value for value in ids if ids.count(value) > 1)
        raise ValueError(f"{name} {repeated} is given twice in {owner}: give each id once")
    return ids


def _check_fields_once(children: Iterable[ChildRecord],
                       master_record_fields: Iterable[MergeField]) -> None:
    """Raise ValueError if a field API name occurs in two places of the request."""
    places: list[tuple[str, MergeField]] = [
        (f"child record {child.id}", field)
        for child in children for field in child.merge_fields]
    places += [("master_record_fields", field) for field in master_record_fields]

    seen: dict[str, str] = {}
    for place, field in places:
        if field.api_name in seen:
            raise ValueError(
                f"field {field.api_name} is named twice ({seen[field.api_name]} and {place}): "
                "Zoho takes each field from one record, so name it once")
        seen[field.api_name] = place
