"""The base of every section's schema: a section loads as its frozen dataclass."""

from marshmallow import Schema, post_load

__all__ = ["SectionSchema"]


class SectionSchema(Schema):
    """A schema whose load is its section's frozen dataclass (exsync.schemas.sections)."""

    section: type = dict

    @post_load
    def _as_section(self, data: dict, **kwargs: object) -> object:
        return self.section(**data)
