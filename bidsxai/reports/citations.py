"""The methods text in three forms: HTML with author-year citations linked to a reference list,
Markdown (as written, with ``[@key]`` citations for pandoc) and LaTeX (``\\citep{key}``)."""

import re
from dataclasses import dataclass, replace
from string import ascii_lowercase

from markupsafe import Markup, escape

_CITATION = re.compile(r"\[@([A-Za-z0-9_]+)\]")
_ENTRY = re.compile(r"@\w+\{([^,\s]+),(.*?)\n\}", re.S)
_FIELD = re.compile(r"(\w+)\s*=\s*\{(.*?)\}\s*(?:,|$)", re.S)


@dataclass(frozen=True)
class Reference:
    key: str
    authors: str  # "Tustison et al." or "Avci"
    year: str
    text: str  # the entry as a reference-list line
    title: str = ""

    @property
    def short(self):
        return f"{self.authors} {self.year}".strip()


def _authors(field):
    names = [n.strip() for n in field.replace("others", "").split(" and ") if n.strip()]
    surnames = [n.split(",")[0].strip() for n in names]
    if not surnames:
        return ""
    if len(surnames) > 2 or "others" in field:
        return f"{surnames[0]} et al."
    return " and ".join(surnames)


def parse_bibtex(text):
    """{key: Reference} of the entries of a BibTeX file such as bidsxai's references.bib."""
    references = {}
    for key, body in _ENTRY.findall(text):
        fields = {name.lower(): " ".join(value.split()) for name, value in _FIELD.findall(body)}
        authors = fields.get("author", "").replace(" and others", " et al").replace(" and ", "; ")
        venue = fields.get("journal") or fields.get("booktitle") or ""
        volume = f", {fields['volume']}" if fields.get("volume") else ""
        year = f" ({fields['year']})" if fields.get("year") else ""
        parts = [authors, fields.get("title", ""), f"{venue}{volume}{year}".strip()]
        references[key] = Reference(
            key,
            _authors(fields.get("author", "")) or key,
            fields.get("year", ""),
            ". ".join(p.rstrip(".") for p in parts if p) + ".",
            fields.get("title", ""),
        )
    return references


def _lettered(references, keys):
    """``references`` where those among ``keys`` (the cited ones) that share a label get letters
    after the year, in the order of their titles: Avants et al. 2011a, 2011b."""
    groups = {}
    for key in keys:
        if key in references:
            groups.setdefault(references[key].short, []).append(key)
    lettered = dict(references)
    for group in (g for g in groups.values() if len(g) > 1):
        for letter, key in zip(ascii_lowercase, sorted(group, key=lambda k: references[k].title)):
            ref = references[key]
            text = ref.text.replace(f"({ref.year})", f"({ref.year}{letter})")
            lettered[key] = replace(ref, year=ref.year + letter, text=text)
    return lettered


def cited(text):
    """The citation keys of a methods text, in order of first use."""
    return list(dict.fromkeys(_CITATION.findall(text)))


def methods_html(text, references):
    """Paragraphs with '(Author et al. year)' links, and the list of the references cited."""
    references = _lettered(references, cited(text))

    def cite(match):
        ref = references.get(match.group(1))
        label = escape(ref.short if ref else match.group(1))
        return f'(<a href="#ref-{escape(match.group(1))}">{label}</a>)'

    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    body = "".join(f"<p>{_CITATION.sub(cite, str(escape(p)))}</p>" for p in paragraphs)
    items = "".join(
        f'<li id="ref-{escape(key)}">{escape(references[key].text)}</li>'
        for key in cited(text)
        if key in references
    )
    return Markup(f'{body}<h3>References</h3><ol class="references">{items}</ol>')


def methods_latex(text):
    """The text as LaTeX paragraphs with natbib citations."""
    specials = {"%": r"\%", "&": r"\&", "_": r"\_", "#": r"\#", "$": r"\$", "±": r"$\pm$"}
    parts = _CITATION.split(text)  # text, key, text, key, ..., text
    return "".join(
        f"\\citep{{{part}}}" if i % 2 else re.sub(r"[%&_#$±]", lambda m: specials[m.group(0)], part)
        for i, part in enumerate(parts)
    )
