"""A report is an ordered list of sections. Each ``Section`` names its anchor, its title in the
navigation bar, the function that builds its variables from the report's context, and the template
part that draws it (under ``bidsxai/resources/reports/``). The page template
(``page.html.j2``) draws the header, the navigation and then every section in order, so adding a
section to a report is one builder, one template part and one entry in that report's list.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    id: str  # the anchor (``#id``); a repeated section's items bring their own
    title: str  # the navigation text
    build: Callable  # context -> the part's variables, or None to leave the section out
    template: str  # the template part that draws it, e.g. "group/comparison.html.j2"
    repeated: bool = False  # build returns [(anchor, title, variables)], one section each


def assemble(sections, context):
    """The sections of one report as the page template draws them: [{id, title, template,
    data}], in order, without those whose builder returned None (or no items)."""
    drawn = []
    for section in sections:
        built = section.build(context)
        if built is None:
            continue
        items = built if section.repeated else [(section.id, section.title, built)]
        drawn += [
            {"id": anchor, "title": title, "template": section.template, "data": data}
            for anchor, title, data in items
        ]
    return drawn


# Every report ends with its methods text; its builder reads the context's "methods" (the views
# of ``render.methods_views``).
METHODS = Section("methods", "Methods", lambda context: context["methods"], "methods.html.j2")
