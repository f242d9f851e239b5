"""Fetch the templates a container image ships, through TemplateFlow's API, at build time.

MNI152NLin2009cAsym (fMRIPrep's default output space): T1w, brain mask and GM/WM/CSF
probabilities at 1 and 2 mm. MNI152NLin2009aSym, bidsxai's default, is seeded from nilearn's copy
(no download). Run with TEMPLATEFLOW_HOME set to the image's home.
"""

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


def main():
    from templateflow import api

    from bidsxai.template import load_template
    from bidsxai.template_files import DEFAULT_SPACE

    for template, query in queries():
        print(api.get(template, **query), file=sys.stderr)
    load_template(1.0, DEFAULT_SPACE)  # seeds the home from nilearn
    for template in PREFETCH:
        load_template(2.0, template)


if __name__ == "__main__":
    main()
