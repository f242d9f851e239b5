"""The subject report's slice viewer: its data put every voxel where the template's affine says
(checked by decoding them here), and in headless Chromium it draws, a new heatmap changes its
pixels, and a click puts the crosshair on the voxel under it with that voxel's coordinates and
atlas region."""

import base64
import json
import re
import zlib

import numpy as np
from browser import evaluate
from conftest import RES

from bidsxai.group.atlas import Atlas, atlas_option
from bidsxai.reports.viewer import viewer_data
from bidsxai.template import load_template


def _volume(data, b64, dtype=np.uint8):
    return np.frombuffer(zlib.decompress(base64.b64decode(b64)), dtype).reshape(data["shape"])


def _voxel(template, data, cropped):
    """The template voxel of a voxel of the viewer's crop, through the two affines."""
    world = np.asarray(data["affine"]) @ [*cropped, 1]
    voxel = np.linalg.solve(template.affine[:3, :3], world - template.affine[:3, 3])
    return tuple(int(i) for i in np.rint(voxel))


def test_the_viewer_data_put_each_voxel_where_the_template_says():
    template = load_template(RES)
    rng = np.random.default_rng(0)
    image = rng.uniform(0.5, 2, template.shape).astype(np.float32)
    heat = rng.uniform(-1, 3, template.shape).astype(np.float32)
    labels = rng.integers(0, 300, template.shape).astype(np.int32)  # wider than a byte
    atlas = Atlas("toy", labels, {i: f"region {i}" for i in range(1, 300)}, {})
    mask = rng.uniform(size=template.shape) > 0.7
    data = viewer_data({"T1w": image}, {"m": heat}, {"lesion": mask}, template, atlas)
    brain = template.brain_mask
    shown = _volume(data, data["images"]["T1w"])
    scaled = _volume(data, data["maps"]["m"])
    mask_shown = _volume(data, data["masks"]["lesion"])
    labels_shown = _volume(data, data["atlas"]["labels"], np.uint16)
    top, peak = np.percentile(image[brain], 99.5), heat[brain].max()
    for cropped in rng.integers(0, data["shape"], (50, 3)):
        v = _voxel(template, data, cropped)
        c = tuple(cropped)
        expected = int(np.clip(np.rint(image[v] / top * 255), 0, 255)) if brain[v] else 0
        assert shown[c] == expected
        expected = int(np.clip(np.rint(heat[v] / peak * 255), 0, 255)) if brain[v] else 0
        assert scaled[c] == expected
        assert mask_shown[c] == mask[v] and labels_shown[c] == labels[v]
    assert shown.sum() > 0 and np.count_nonzero(shown) == brain.sum()  # the crop holds the brain
    assert data["atlas"]["names"][299] == "region 299" and data["atlas"]["bytes"] == 2


VIEWER = """(async function () {
  const root = document.querySelector('.viewer');
  for (let i = 0; i < 200 && root.dataset.ready !== '1'; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const pixels = () => Array.from(root.querySelectorAll('canvas')).map((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += d[i] + 2 * d[i + 1] + 3 * d[i + 2];
    return sum;
  });
  const drawn = pixels();
  const select = root.querySelector('.v-map');
  select.selectedIndex = select.options.length - 1;
  select.dispatchEvent(new Event('input'));
  const switched = pixels();
  const axial = root.querySelector('.v-axial');
  const box = axial.getBoundingClientRect();
  axial.dispatchEvent(new MouseEvent('mousedown', {clientX: box.left + 31, clientY: box.top + 20}));
  window.dispatchEvent(new MouseEvent('mouseup'));
  return {ready: root.dataset.ready, drawn: drawn, switched: switched,
          images: Array.from(root.querySelector('.v-image').options).map((o) => o.value),
          scale: axial.width / box.width, cursor: root.viewer.cursor,
          world: JSON.parse(root.dataset.world),
          readout: root.querySelector('.v-readout').textContent};
})()"""


def test_the_viewer_draws_switches_and_reads_the_voxel_under_a_click(pipeline):
    report = pipeline["out"] / "sub-01.html"
    html = report.read_text()
    data = json.loads(re.search(r'class="v-data">(.*?)</script>', html).group(1))
    assert set(data["images"]) == {"T1w", "FLAIR", "T2w"} and len(data["maps"]) == 3
    facts = evaluate(report, VIEWER)
    assert facts["ready"] == "1" and facts["images"][0] == "T1w"
    assert all(total > 0 for total in facts["drawn"])
    assert facts["switched"] != facts["drawn"]
    assert facts["scale"] == 1  # the canvas is drawn at its on-screen size
    px = data["scale"]
    nx, ny, nz = data["shape"]
    expected = [31 // px, ny - 1 - 20 // px, nz // 2]  # column 31, row 20 of the axial plane
    assert facts["cursor"] == expected
    template = load_template(RES)
    world = np.asarray(data["affine"]) @ [*expected, 1]
    assert np.allclose(facts["world"], world)
    assert f"x {world[0]:.0f}, y {world[1]:.0f}, z {world[2]:.0f} mm" in facts["readout"]
    atlas = atlas_option("auto", template)
    label = int(atlas.labels[_voxel(template, data, expected)])
    assert facts["readout"].endswith(atlas.names[label] if label else "unlabelled")
