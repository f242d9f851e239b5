"""Render the HTML reports and the methods text from the templates packaged under
bidsxai/resources/ (reports/, boilerplate/)."""

from datetime import datetime, timezone
from importlib import resources

import jinja2

from bidsxai import __version__
from bidsxai.atomic import write_text
from bidsxai.outputs import citation_paths


def _environment(package):
    folder = resources.files(package)
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: folder.joinpath(name).read_text("utf-8")),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )


def methods_text(settings, model_meta=None, contrasts=None):
    """The methods paragraph (markdown) for the run's settings and inputs (``contrasts``: those
    found, else the model's, else T1w only): each method's name and citation from the explanation
    table, the architecture's from the registry."""
    from bidsxai.explain.methods import METHODS
    from bidsxai.models.registry import get_architecture
    from bidsxai.outputs import ANATOMY_DATASETS
    from bidsxai.template_files import describe

    env = _environment("bidsxai.resources.boilerplate")
    env.autoescape = False
    architecture = (
        get_architecture(model_meta["architecture"])
        if model_meta and "external" not in model_meta
        else None
    )
    reused = [name for name in settings.derivatives if name in ANATOMY_DATASETS]
    return env.get_template("methods.md.j2").render(
        anatomy={"smriprep": "sMRIPrep", "fmriprep": "fMRIPrep"}.get(next(iter(reused), None)),
        version=__version__,
        s=settings,
        contrasts=set(contrasts or (model_meta or {}).get("input", {}).get("contrasts") or ["T1w"]),
        template_name=describe(settings.output_space),
        model=model_meta,
        architecture=architecture,
        methods=[METHODS[m] for m in settings.methods],
    )


def methods_views(text):
    """The methods text as the reports show it: HTML with linked citations, Markdown, LaTeX."""
    from bidsxai.reports.citations import methods_html, methods_latex, parse_bibtex

    return {
        "methods": text,
        "methods_html": methods_html(text, parse_bibtex(references_bib())),
        "methods_latex": methods_latex(text),
    }


def references_bib():
    return (
        resources.files("bidsxai.resources.boilerplate")
        .joinpath("references.bib")
        .read_text("utf-8")
    )


def page_script(name):
    """The text of a script in ``resources/reports`` (e.g. ``qc_ratings.js``), for ``scripts``."""
    return resources.files("bidsxai.resources.reports").joinpath(name).read_text("utf-8")


def render_report(
    path, sections, context, *, title, heading, header, warning=None, scripts=(), **variables
):
    """Write one self-contained HTML report (CSS and ``scripts`` inlined, figures as data URIs):
    the page template draws ``sections`` (``reports.sections``) in order, each built from
    ``context``; ``header`` is the template part of the header line (or None), ``warning`` a
    (label, text) shown above every section; ``variables`` are seen by every part."""
    from bidsxai.reports.sections import assemble

    env = _environment("bidsxai.resources.reports")
    css = resources.files("bidsxai.resources.reports").joinpath("style.css").read_text("utf-8")
    html = env.get_template("page.html.j2").render(
        css=css,
        version=__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        title=title,
        heading=heading,
        header=header,
        warning=warning,
        sections=assemble(sections, context),
        scripts=list(scripts),
        **variables,
    )
    write_text(path, html)


def write_citation(out_dir, settings, model_meta=None, contrasts=None):
    """OUTPUT_DIR/logs/CITATION.md and .bib; returns their paths."""
    markdown, bibtex = citation_paths(out_dir)
    write_text(markdown, methods_text(settings, model_meta, contrasts))
    write_text(bibtex, references_bib())
    return markdown, bibtex
