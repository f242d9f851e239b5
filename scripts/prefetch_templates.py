"""Fetch the templates a container image ships, through TemplateFlow's API, at build time.

MNI152NLin2009cAsym (fMRIPrep's default output space): T1w, brain mask and GM/WM/CSF
probabilities at 1 and 2 mm. MNI152NLin2009aSym, bidsxai's default, is seeded from nilearn's copy
(no download). Run with TEMPLATEFLOW_HOME set to the image's home.

    python scripts/prefetch_templates.py [--templateflow 0|1]

``--templateflow 0`` seeds the default space only, for builds that cannot reach TemplateFlow's
storage.
"""

import argparse
import sys

PREFETCH = {
    "MNI152NLin2009cAsym": [
        {"suffix": "T1w", "desc": None},
        {"suffix": "T1w", "desc": "brain"},
        {"suffix": "mask", "desc": "brain"},
        {"suffix": "probseg", "label": "GM"},
        {"suffix": "probseg", "label": "WM"},
        {"suffix": "probseg", "label": "CSF"},
    ]
}
RESOLUTIONS = (1, 2)


def queries():
    """(template, keywords of templateflow.api.get) of every file to fetch."""
    return [
        (template, dict(query, resolution=res, extension=".nii.gz"))
        for template, wanted in PREFETCH.items()
        for query in wanted
        for res in RESOLUTIONS
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templateflow", type=int, choices=(0, 1), default=1)
    fetch = parser.parse_args(argv).templateflow

    from templateflow import api

    from bidsxai.template import load_template
    from bidsxai.template_files import DEFAULT_SPACE

    if fetch:
        for template, query in queries():
            print(api.get(template, **query), file=sys.stderr)
    load_template(1.0, DEFAULT_SPACE)  # seeds the home from nilearn
    for template in PREFETCH if fetch else ():
        load_template(2.0, template)


if __name__ == "__main__":
    main()
