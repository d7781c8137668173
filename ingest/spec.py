"""What a user asks of a campaign's file: the phone column, the text (a template or a column), the
operators, the split and the brand. Light to import (no Ray): the job's options build one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ingest.errors import TemplateError
from ingest.template import Template, match_column
from ulak import links
from ulak.quoting import quoted
from ulak.variants import Split


@dataclass(frozen=True)
class CampaignSpec:
    """What the user asked for: which column holds numbers, and the text (a template or a column)."""

    template: str | None = None
    text_column: str | None = None
    phone_column: str | None = None
    sheet: str | int | None = None
    encoding: str | None = None  # overrides ingest.csv_encoding
    operators: tuple[str, ...] | None = None  # allowed operators; None = all configured
    link: bool = False  # the job has a link_url: {link} in the template is each row's tracked link
    split: Split | None = None  # an A/B test and/or a holdout (ulak.variants)
    variant_templates: tuple[str | None, ...] = ()  # per variant of split, its own template or None
    brand: str | None = None  # its opt-out list is checked too (the global one always is)
    commercial: bool = False  # only numbers with consent on record; its text says how to opt out
    optouts: bool = True  # checked against the opt-out lists (not: opt-out confirmations)

    def __post_init__(self) -> None:
        if (self.template is None) == (self.text_column is None):
            raise TemplateError(
                "give either a message template or the name of a text column, not both or neither",
                field="template",
            )

    def variant_bound_templates(self, columns: Sequence[str]) -> tuple[Template | None, ...]:
        """Per variant, its own template bound to *columns* (as :meth:`bound_template`), or None
        where it has the job's."""
        bound: list[Template | None] = []
        for i, text in enumerate(self.variant_templates):
            try:
                bound.append(self.bound_template(columns, text) if text is not None else None)
            except TemplateError as exc:
                name = self.split.names[i] if self.split is not None else str(i)
                raise TemplateError(
                    f"variant {name}: {exc.message}", field=f"variants.{i}.template"
                ) from None
        return tuple(bound)

    def bound_template(self, columns: Sequence[str], text: str | None = None) -> Template | None:
        """The template (*text*, or the job's) with its fields matched to *columns*, and ``{link}``
        to the tracked link when the job has one (a template with ``{link}`` and no link_url, or the
        reverse, is refused, as is a file with a column of that name: which would it mean?)."""
        source = text if text is not None else self.template
        if source is None:
            if self.link:
                raise TemplateError("link_url needs a template with {link} in it", field="template")
            return None
        template = Template.parse(source)
        if links.LINK_FIELD not in template.fields:
            if self.link:
                raise TemplateError(
                    "link_url is set but the template has no {link}: put {link} where the link goes",
                    field="template",
                )
            return template.bind(columns)
        if not self.link:
            raise TemplateError(
                "the template uses {link} but the job has no link_url: give link_url, the page the "
                "links lead to",
                field="link_url",
            )
        if match_column(columns, links.LINK_FIELD) is not None:
            raise TemplateError(
                f"the file has a column named {quoted(links.LINK_FIELD)}, and {{link}} is the tracked "
                "link: rename that column",
                field="template",
            )
        return template.bind([*columns, links.LINK_FIELD])
