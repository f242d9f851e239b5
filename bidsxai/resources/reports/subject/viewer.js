// The subject report's slice viewer: three orthogonal planes of one session's images on the
// template grid, a heatmap over them, a reference mask's outline and the atlas region under the
// crosshair. Everything it shows is in the page (zlib-compressed, base64); it makes no request
// and needs no WebGL: each plane is a 2D canvas drawn voxel by voxel.
(function () {
  "use strict";

  async function inflate(b64, bytes) {
    const packed = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream("deflate"));
    const buffer = await new Response(stream).arrayBuffer();
    return bytes === 2 ? new Uint16Array(buffer) : new Uint8Array(buffer);
  }

  // Each plane: which axis the cursor fixes, and the volume axes along the canvas's columns and
  // rows (rows drawn top-down from the axis's far end: superior or anterior up, the subject's
  // left on the left, as in the report's figures).
  const PLANES = [
    { name: "sagittal", fixed: 0, col: 1, row: 2 },
    { name: "coronal", fixed: 1, col: 0, row: 2 },
    { name: "axial", fixed: 2, col: 0, row: 1 },
  ];

  class Viewer {
    constructor(root, data) {
      this.root = root;
      this.data = data;
      this.shape = data.shape;
      this.cursor = data.shape.map((n) => Math.floor(n / 2));
      this.scale = data.scale;
      this.controls = {};
      for (const name of ["image", "map", "mask", "opacity", "threshold"]) {
        this.controls[name] = root.querySelector(".v-" + name);
      }
      this.readout = root.querySelector(".v-readout");
      this.canvases = PLANES.map((plane) => root.querySelector(".v-" + plane.name));
    }

    async start() {
      const d = this.data;
      this.images = {};
      for (const [name, b64] of Object.entries(d.images)) this.images[name] = await inflate(b64, 1);
      this.maps = {};
      for (const [name, b64] of Object.entries(d.maps)) this.maps[name] = await inflate(b64, 1);
      this.masks = {};
      for (const [name, b64] of Object.entries(d.masks)) this.masks[name] = await inflate(b64, 1);
      this.atlas = d.atlas ? await inflate(d.atlas.labels, d.atlas.bytes) : null;
      for (const control of Object.values(this.controls)) {
        if (control) control.addEventListener("input", () => this.draw());
      }
      this.canvases.forEach((canvas, i) => {
        const plane = PLANES[i];
        const pick = (event) => {
          const box = canvas.getBoundingClientRect();
          const col = Math.floor(((event.clientX - box.left) / box.width) * this.extent(plane.col));
          const row = Math.floor(((event.clientY - box.top) / box.height) * this.extent(plane.row));
          this.cursor[plane.col] = this.clamp(col, plane.col);
          this.cursor[plane.row] = this.clamp(this.extent(plane.row) - 1 - row, plane.row);
          this.draw();
        };
        canvas.addEventListener("mousedown", (event) => {
          pick(event);
          const move = (e) => pick(e);
          const up = () => {
            window.removeEventListener("mousemove", move);
            window.removeEventListener("mouseup", up);
          };
          window.addEventListener("mousemove", move);
          window.addEventListener("mouseup", up);
        });
      });
      this.draw();
      this.root.dataset.ready = "1";
    }

    extent(axis) {
      return this.shape[axis];
    }

    clamp(value, axis) {
      return Math.max(0, Math.min(this.shape[axis] - 1, value));
    }

    index(v) {
      return (v[0] * this.shape[1] + v[1]) * this.shape[2] + v[2];
    }

    draw() {
      const image = this.images[this.controls.image.value];
      const map = this.controls.map ? this.maps[this.controls.map.value] : null;
      const mask = this.controls.mask ? this.masks[this.controls.mask.value] : null;
      const opacity = this.controls.opacity ? this.controls.opacity.value / 100 : 0;
      const threshold = this.controls.threshold ? (this.controls.threshold.value / 100) * 255 : 0;
      const lut = this.data.colours;
      PLANES.forEach((plane, i) => {
        const cols = this.extent(plane.col);
        const rows = this.extent(plane.row);
        const pixels = new ImageData(cols, rows);
        const v = this.cursor.slice();
        const inside = (c, r) => {
          if (c < 0 || r < 0 || c >= cols || r >= rows) return false;
          v[plane.col] = c;
          v[plane.row] = r;
          return mask[this.index(v)] > 0;
        };
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) {
            v[plane.fixed] = this.cursor[plane.fixed];
            v[plane.col] = c;
            v[plane.row] = r;
            const at = this.index(v);
            let red = image[at];
            let green = red;
            let blue = red;
            const value = map ? map[at] : 0;
            if (value > 0 && value >= threshold) {
              const alpha = (lut[value][3] / 255) * opacity;
              red = (1 - alpha) * red + alpha * lut[value][0];
              green = (1 - alpha) * green + alpha * lut[value][1];
              blue = (1 - alpha) * blue + alpha * lut[value][2];
            }
            if (mask && mask[at] > 0) {
              const edge = !inside(c - 1, r) || !inside(c + 1, r) || !inside(c, r - 1) || !inside(c, r + 1);
              v[plane.col] = c;
              v[plane.row] = r;
              if (edge) [red, green, blue] = [0, 255, 255];
            }
            const out = 4 * ((rows - 1 - r) * cols + c);
            pixels.data[out] = red;
            pixels.data[out + 1] = green;
            pixels.data[out + 2] = blue;
            pixels.data[out + 3] = 255;
          }
        }
        const canvas = this.canvases[i];
        canvas.width = cols * this.scale;
        canvas.height = rows * this.scale;
        const voxels = document.createElement("canvas");
        voxels.width = cols;
        voxels.height = rows;
        voxels.getContext("2d").putImageData(pixels, 0, 0);
        const context = canvas.getContext("2d");
        context.imageSmoothingEnabled = false;
        context.drawImage(voxels, 0, 0, canvas.width, canvas.height);
        context.strokeStyle = "rgba(0, 255, 0, 0.7)";
        context.lineWidth = 1;
        const x = (this.cursor[plane.col] + 0.5) * this.scale;
        const y = (rows - 1 - this.cursor[plane.row] + 0.5) * this.scale;
        context.beginPath();
        context.moveTo(x, 0);
        context.lineTo(x, canvas.height);
        context.moveTo(0, y);
        context.lineTo(canvas.width, y);
        context.stroke();
      });
      this.describe(map);
    }

    describe(map) {
      const a = this.data.affine;
      const v = this.cursor;
      const mm = [0, 1, 2].map((i) => a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2] + a[i][3]);
      const parts = ["x " + mm[0].toFixed(0), "y " + mm[1].toFixed(0), "z " + mm[2].toFixed(0) + " mm"];
      const at = this.index(v);
      let text = parts.join(", ");
      if (map) text += "; map " + (map[at] / 255).toFixed(2) + " of its maximum";
      if (this.atlas) {
        const label = this.atlas[at];
        text += "; " + (label ? this.data.atlas.names[label] || "label " + label : "unlabelled");
      }
      this.readout.textContent = text;
      this.root.dataset.world = JSON.stringify(mm);
    }
  }

  document.querySelectorAll(".viewer").forEach((root) => {
    const data = JSON.parse(root.querySelector("script.v-data").textContent);
    const viewer = new Viewer(root, data);
    root.viewer = viewer;
    viewer.start().catch((error) => {
      root.querySelector(".v-readout").textContent = "The viewer could not start: " + error;
      console.error(error);
    });
  });
})();
