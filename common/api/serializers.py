"""Serializer plumbing for viewsets: one serializer to read, one per write action to validate.

An update validates with the serializer of the service it calls, and nothing else: a body key
that the service would not change is refused with a 400 naming it (``UpdateSerializer``),
never passed on (a service called with a keyword it does not take is a 500) nor dropped
without a word.
"""

from collections.abc import Mapping

from django.core.exceptions import FieldDoesNotExist
from django.db.models import F
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.fields import SkipField, empty
from rest_framework.relations import PKOnlyObject
from rest_framework.response import Response


@extend_schema_field({"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2})?$", "example": "08:00"})
class WallClockTimeField(serializers.TimeField):
    """A time of day on the campus clock, "08:00" or "08:00:00". The schema says so with a pattern:
    OpenAPI's ``format: time`` is RFC 3339's, which requires an offset these times do not have."""


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-10"})
class YearMonthField(serializers.DateField):
    """A month, written "2026-10" (a date field would promise a whole date)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("format", "%Y-%m")
        super().__init__(**kwargs)


class UpdateSerializer(serializers.Serializer):
    """The body of a PUT or PATCH: exactly the keyword arguments its service takes.

    Unknown or read-only keys are refused, each named in ``detail``."""

    default_error_messages = {"not_writable": _("该字段不可修改。")}

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            refused = sorted(str(key) for key in data if key not in writable)
            if refused:
                message = self.error_messages["not_writable"]
                raise serializers.ValidationError({key: [message] for key in refused})
        return super().to_internal_value(data)


class ReadWriteSerializers:
    """Read with `serializer_class`; validate writes with `write_serializers[action]`.

    PUT (``update``) validates like PATCH (``partial_update``) unless it has a serializer of its
    own: the read serializer is never the one that validates a write."""

    write_serializers: dict = {}

    def get_serializer_class(self):
        action = self.action
        if action == "update" and "update" not in self.write_serializers:
            action = "partial_update"
        return self.write_serializers.get(action, self.serializer_class)

    def validated(self, data=None):
        serializer = self.get_serializer(data=self.request.data if data is None else data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def respond(self, instance, status_code=status.HTTP_200_OK):
        return Response(self.serializer_class(instance, context=self.get_serializer_context()).data, status=status_code)


@extend_schema_field(OpenApiTypes.STR)
class ChoiceLabelField(serializers.Field):
    """The label of a choices value, in the reader's language: what ``source="get_state_display"``
    gives, without Django building the choices dict and DRF inspecting the method's signature again
    for every row of a list (a tenth of a desktop page's time at 50 rows)."""

    def __init__(self, choices, **kwargs):
        self._labels = dict(choices)
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return str(self._labels.get(value, value))


# --- a read path without DRF's per-field machinery --------------------------------------------

_COLUMN, _RELATED, _KEY, _DRF, _JOINED, _METHOD, _BOUND = range(7)
_ABSENT = object()

# Fields whose reading depends on the value alone, not on the request or the serializer they are bound to:
# one instance of such a field serves every serializer of its class (see FastReadMixin._class_read_steps).
_SHAREABLE_MODULES = frozenset({"rest_framework.fields", "rest_framework.relations", __name__})
_UNSHAREABLE = (
    serializers.BaseSerializer,
    serializers.FileField,
    serializers.SerializerMethodField,
    serializers.HyperlinkedRelatedField,
    serializers.HiddenField,
)


def _shareable(field) -> bool:
    return type(field).__module__ in _SHAREABLE_MODULES and not isinstance(field, _UNSHAREABLE)


def _class_step(field, model) -> tuple:
    """``_read_step`` for a serializer class: a field that is not shareable is read through the
    serializer at hand, a method field by calling its method, any other by its own bound field."""
    if isinstance(field, serializers.SerializerMethodField):
        return (_METHOD, field.field_name, field.method_name, None)
    if not _shareable(field):
        return (_BOUND, field.field_name, None, None)
    return _read_step(field, model)


def _column_path(model, attrs: list[str]) -> str | None:
    """``desktop__state`` for the source ``desktop.state``: forward foreign keys to a concrete column
    that is never NULL (so a NULL read means the related row is missing); else None."""
    for attr in attrs[:-1]:
        try:
            hop = model._meta.get_field(attr)
        except FieldDoesNotExist:
            return None
        if not (hop.concrete and (hop.many_to_one or hop.one_to_one)):
            return None
        model = hop.related_model
    try:
        leaf = model._meta.get_field(attrs[-1])
    except FieldDoesNotExist:
        return None
    if not leaf.concrete or leaf.is_relation or leaf.null:
        return None
    return "__".join(attrs)


def _slug_path(field, model_field) -> str | None:
    """``tenant__slug`` for a SlugRelatedField naming a plain column of its related model; else None."""
    if not isinstance(field, serializers.SlugRelatedField):
        return None
    try:
        slug = model_field.related_model._meta.get_field(field.slug_field)
    except FieldDoesNotExist:
        return None
    if not slug.concrete or slug.is_relation:
        return None
    return f"{model_field.name}__{field.slug_field}"


def _joined(field, path: str, fallback: tuple, dotted: bool) -> tuple:
    """A step reading the column ``path`` annotated on the row (``FastReadMixin.read_queryset``), or
    ``fallback`` on a row read without it."""
    return (_JOINED, field.field_name, "_read_" + field.field_name, (fallback, field if dotted else None, path))


def _read_step(field, model) -> tuple:
    """How to read one field of a row: a column, a related row, a foreign key's value, a column of a
    related row joined into the row's query, or DRF's way."""
    attrs = field.source_attrs
    drf = (_DRF, field.field_name, field, None)
    model_field = None
    if len(attrs) == 1:
        try:
            model_field = model._meta.get_field(attrs[0])
        except FieldDoesNotExist:  # a property, a method, an annotation: DRF's way
            model_field = None
    elif len(attrs) > 1:
        path = _column_path(model, attrs)
        return drf if path is None else _joined(field, path, drf, dotted=True)
    if model_field is None or not model_field.concrete or model_field.many_to_many:
        return drf
    to_representation = field.to_representation
    if not model_field.is_relation:
        return (_COLUMN, field.field_name, attrs[0], to_representation)
    if isinstance(field, serializers.PrimaryKeyRelatedField) and field.pk_field is None:
        return (_KEY, field.field_name, model_field.attname, None)
    if isinstance(field, serializers.RelatedField) and not field.use_pk_only_optimization():
        related = (_RELATED, field.field_name, attrs[0], to_representation)
        path = _slug_path(field, model_field)
        return related if path is None else _joined(field, path, related, dotted=False)
    return drf


class FastReadMixin:
    """``to_representation`` of a ModelSerializer in a third of DRF's time, with DRF's output.

    DRF reads every field of every row through ``field.get_attribute`` (source lookups, callables,
    ``SkipField``) and a None check; a list page of 50 rows × 27 fields spends most of its CPU
    there. For a field that reads one concrete column, one related row (``SlugRelatedField``) or
    one foreign key's value (``PrimaryKeyRelatedField``), the step is worked out once per
    serializer class and the row read with a plain ``getattr``; a method field calls its method;
    every other field (dotted sources, properties, nested serializers) goes DRF's way. DRF's fields
    of a serializer are built only when a step needs one of its own. A row that fails on the short path (a related row
    that is gone) is read again wholly DRF's way, so errors and skips stay DRF's.

    A list reads its page with ``read_queryset``: what a row shows of another table (a tenant's
    slug, an owner's username, ``desktop.state``) comes as a column joined into the row's own query,
    so a page of 50 desktops builds 50 model instances instead of ~300 (tenant, owner, flavor,
    endpoint… for every row). A field read DRF's way that needs a related row names it in
    ``read_related``, which the list still joins as model instances.
    """

    read_related: tuple[str, ...] = ()
    # Columns of other tables that a method field reads, joined into a list's rows too: {name: path}, read
    # back with ``joined(row, name)`` (None on a row not read by read_queryset, or when the row is missing).
    read_columns: dict[str, str] = {}

    def joined(self, row, name: str):
        return row.__dict__.get("_read_" + name)

    @classmethod
    def read_queryset(cls, queryset):
        """``queryset`` as a list of this serializer reads it (see the class's docstring)."""
        annotations = cls._read_annotations()
        queryset = queryset.select_related(None)
        if cls.read_related:
            queryset = queryset.select_related(*cls.read_related)
        return queryset.annotate(**{name: F(path) for name, path in annotations.items()})

    @classmethod
    def reads_other_tables(cls) -> bool:
        """Whether a row's read joins other tables (else a page is read in one query, keys and all)."""
        return bool(cls.read_related or cls._read_annotations())

    @classmethod
    def _read_annotations(cls) -> dict[str, str]:
        steps = cls._class_read_steps()
        columns = {"_read_" + name: path for name, path in cls.read_columns.items()}
        return {**columns, **{source: extra[2] for kind, _, source, extra in steps if kind == _JOINED}}

    @classmethod
    def _class_read_steps(cls) -> list[tuple]:
        """The steps of a row's read, worked out once per class on a serializer of its own: DRF
        builds a ModelSerializer's ~30 fields afresh for every serializer (every request), which a
        read that needs none but method fields and shareable fields then skips."""
        steps = cls.__dict__.get("_class_steps")
        if steps is None:
            prototype = cls()
            model = cls.Meta.model
            steps = [_class_step(field, model) for field in prototype._readable_fields]
            cls._class_steps = steps
        return steps

    def _read_steps(self) -> list[tuple]:
        steps = self.__dict__.get("_fast_read_steps")
        if steps is None:
            steps = self._class_read_steps()
            if any(step[0] == _BOUND for step in steps):  # only now are this serializer's fields built
                fields = self.fields
                steps = [(_DRF, step[1], fields[step[1]], None) if step[0] == _BOUND else step for step in steps]
            self.__dict__["_fast_read_steps"] = steps
        return steps

    def to_representation(self, instance):
        try:
            return self._fast_representation(instance)
        except Exception:  # noqa: BLE001 -- DRF's way then raises (or skips) as DRF would
            return super().to_representation(instance)

    def _fast_representation(self, instance) -> dict:
        ret = {}
        row = instance.__dict__
        for step in self._read_steps():
            if step[0] == _JOINED:
                value = _joined_value(step, row)
                if value is not _ABSENT:
                    ret[step[1]] = value
                    continue
                step = step[3][0]  # noqa: PLW2901 -- not joined into this row: the step's own way
            kind, name, source, to_representation = step
            if kind == _METHOD:
                ret[name] = getattr(self, source)(instance)
            elif kind == _DRF:
                try:
                    attribute = source.get_attribute(instance)
                except SkipField:
                    continue
                value = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
                ret[name] = None if value is None else source.to_representation(attribute)
            else:
                value = getattr(instance, source)
                ret[name] = value if value is None or kind == _KEY else to_representation(value)
        return ret


def _joined_value(step: tuple, row: dict):
    """A field's value from the column ``read_queryset`` joined into the row; ``_ABSENT`` when the row
    was read without it (one desktop, not a list) or DRF would decide what a missing row gives."""
    _, _, annotation, (_, dotted, _) = step
    value = row.get(annotation, _ABSENT)
    if value is _ABSENT or dotted is None:  # a slug is the related row's column as it is, or None
        return value
    if value is not None:
        return dotted.to_representation(value)
    if dotted.default is empty:  # the related row is missing and the field has no default
        return _ABSENT
    default = dotted.get_default()
    return None if default is None else dotted.to_representation(default)
