"""Every API serializer says null where its model may hold null: a related field (or a field read through a
relation) over a nullable foreign key must allow null, or the schema promises a string and the answer
gives null (found on a spare seat's `student`; the fuzz walk only sees the objects the demo has)."""

from django.db import models
from rest_framework import serializers

from portal.api.urls import router


def _serializers():
    seen = set()
    for _prefix, viewset, _basename in router.registry:
        for name in ("serializer_class",):
            cls = getattr(viewset, name, None)
            if cls is not None and cls not in seen:
                seen.add(cls)
                yield cls


def _model_field(model, source: str):
    """The model field a serializer field's ``source`` ends on, and whether a relation on the way may be null."""
    nullable = False
    for part in source.split("."):
        try:
            field = model._meta.get_field(part)
        except Exception:  # noqa: BLE001 - a property or method: not a column
            return None, nullable
        nullable = nullable or getattr(field, "null", False)
        if not field.is_relation:
            return field, nullable
        model = field.related_model
    return field, nullable


def _offenders(cls) -> list[str]:
    found = []
    meta = getattr(cls, "Meta", None)
    model = getattr(meta, "model", None)
    if model is None:
        return found
    for name, field in cls().fields.items():
        if isinstance(field, serializers.BaseSerializer) or field.source == "*" or not field.read_only:
            continue
        model_field, nullable = _model_field(model, field.source)
        if model_field is None or not nullable:
            continue
        if field.allow_null or field.default is not serializers.empty:
            continue
        if (
            isinstance(field, serializers.RelatedField)
            or isinstance(model_field, models.ForeignKey)
            or "." in field.source
        ):
            found.append(f"{cls.__module__}.{cls.__name__}.{name} (source {field.source!r})")
    return found


def test_every_read_only_field_over_a_nullable_relation_allows_null():
    offenders = [o for cls in _serializers() for o in _offenders(cls)]
    assert not offenders, "add allow_null=True (or a default):\n" + "\n".join(offenders)


def test_the_check_sees_a_nullable_relation_without_allow_null():
    from compute.classroom.models import Seat

    class Bad(serializers.ModelSerializer):
        student = serializers.SlugRelatedField(slug_field="username", read_only=True)

        class Meta:
            model = Seat
            fields = ["id", "student"]

    assert _offenders(Bad) == [f"{__name__}.Bad.student (source 'student')"]
