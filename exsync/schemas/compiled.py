"""A marshmallow schema compiled into plain Python checks that answer one question fast: is this
body certainly valid?

marshmallow stays the authority. The compiled check says True only where marshmallow's load would
succeed, by running the schema's own field objects (their `deserialize`, validators and the
schema's `validates_schema` hooks) without marshmallow's per-field bookkeeping; on any doubt
(a type it does not take fast, a value a field refuses, a hook it cannot run) it says False and
the caller asks marshmallow, which gives the errors. A schema using what the compiler does not
know (pre/post-load hooks, field-level `validates`, `only`/`exclude`, unknown=RAISE) compiles to
None: always ask marshmallow. Built once per schema: the webhook receiver checks every delivery,
and marshmallow's bookkeeping costs several times the checks themselves.
"""

from collections.abc import Callable
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, missing
from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA

__all__ = ["Check", "compile_check"]

Check = Callable[[Any], bool]


class _NotSure(Exception):
    """Raised inside a compiled check: marshmallow must decide."""


class _NotCompilable(Exception):
    """The schema uses something the compiler does not model."""


def compile_check(schema: Schema) -> Check | None:
    """`check(data)`: True only when `schema.validate(data)` would return no errors; None when the
    schema cannot be compiled (then every body goes to marshmallow)."""
    try:
        load = _schema_loader(schema)
    except _NotCompilable:
        return None

    def check(data: Any) -> bool:
        try:
            load(data)
        except (_NotSure, ValidationError):
            return False
        return True

    return check


def _schema_loader(schema: Schema) -> Callable[[Any], dict]:
    """A function turning a mapping into what `schema.load` would return, or raising."""
    hooks = schema._hooks  # marshmallow's own table of the schema's decorated methods
    if hooks[PRE_LOAD] or hooks[POST_LOAD] or hooks[VALIDATES] or schema.many or schema.partial:
        raise _NotCompilable(type(schema).__name__)
    if schema.unknown != EXCLUDE:
        raise _NotCompilable(f"{type(schema).__name__}: unknown={schema.unknown}")
    validators = []
    for attr_name, hook_many, hook_kwargs in hooks[VALIDATES_SCHEMA]:
        if hook_many or hook_kwargs.get("pass_original"):
            raise _NotCompilable(f"{type(schema).__name__}.{attr_name}")
        validators.append(getattr(schema, attr_name))
    steps = []
    for attr_name, field in schema.load_fields.items():
        key = field.attribute or attr_name
        if "." in key:
            raise _NotCompilable(f"{type(schema).__name__}.{attr_name}: dotted attribute")
        steps.append((field.data_key or attr_name, key, field.required, field.load_default,
                      _field_converter(field, field.data_key or attr_name)))

    def load(data: Any) -> dict:
        if type(data) is not dict:
            raise _NotSure
        result = {}
        for name, key, required, default, convert in steps:
            value = data.get(name, missing)
            if value is missing:
                if required:
                    raise _NotSure
                if default is not missing:
                    result[key] = default() if callable(default) else default
                continue
            result[key] = convert(value, data)
        for validator in validators:
            # The same call marshmallow makes (Schema._run_validator): a ValidationError means "not sure".
            validator(result, partial=None, many=False, unknown=EXCLUDE)
        return result

    return load


def _field_converter(field: fields.Field, name: str) -> Callable[[Any, dict], Any]:
    """A function turning a present value into what `field.deserialize` returns, or raising."""
    if getattr(field, "pre_load", None) or getattr(field, "post_load", None):
        raise _NotCompilable(f"{name}: field pre/post-load")
    allow_none = field.allow_none
    checks = tuple(field.validators)
    kind = type(field)
    # `type(field) is`, not `kind is`, so mypy narrows `field`; exact types, not isinstance: a subclass
    # may deserialize differently, and goes to the branches below.
    if type(field) is fields.Nested:
        if field.many or field.only or field.exclude or field.unknown not in (None, EXCLUDE):
            raise _NotCompilable(f"{name}: Nested options")
        inner = _schema_loader(field.schema)

        def convert_value(value: Any, data: dict) -> Any:
            return inner(value)
    elif type(field) is fields.List:
        item = _field_converter(field.inner, name)

        def convert_value(value: Any, data: dict) -> Any:
            if type(value) is not list:
                raise _NotSure
            return [item(each, data) for each in value]
    elif kind is fields.String and not checks:
        def convert_value(value: Any, data: dict) -> Any:
            if type(value) is not str:
                raise _NotSure
            return value
    elif kind is fields.Raw and not checks:
        def convert_value(value: Any, data: dict) -> Any:
            return value
    elif kind is fields.Boolean and not checks:
        def convert_value(value: Any, data: dict) -> Any:
            if value is not True and value is not False:
                raise _NotSure  # marshmallow's truthy/falsy strings and numbers: it decides
            return value
    elif type(field).deserialize is fields.Field.deserialize and type(field)._validate is fields.Field._validate:
        # Any other field (exsync's Money, Id, Quantity; a String with validators): its own
        # `_deserialize`, which is all Field.deserialize runs for a present value besides the
        # None rule and the validators (both kept here) and the field's pre/post-load (none).
        own = field._deserialize

        def convert_value(value: Any, data: dict) -> Any:
            return own(value, name, data)
    else:
        # A field with its own deserialize: called whole (it takes None and runs its validators).
        deserialize = field.deserialize

        def convert_value(value: Any, data: dict) -> Any:
            return deserialize(value, name, data)

        return convert_value
    if checks:
        return _none_first(_validated(convert_value, checks), allow_none)
    return _none_first(convert_value, allow_none)


def _validated(convert: Callable[[Any, dict], Any], checks: tuple) -> Callable[[Any, dict], Any]:
    def convert_value(value: Any, data: dict) -> Any:
        output = convert(value, data)
        for check in checks:
            if check(output) is False:  # marshmallow's Field._validate treats False as a failure too
                raise _NotSure
        return output

    return convert_value


def _none_first(convert: Callable[[Any, dict], Any], allow_none: bool) -> Callable[[Any, dict], Any]:
    """None as marshmallow takes it before the field's own code: None if allowed, else an error."""
    def convert_value(value: Any, data: dict) -> Any:
        if value is None:
            if allow_none:
                return None
            raise _NotSure
        return convert(value, data)

    return convert_value
