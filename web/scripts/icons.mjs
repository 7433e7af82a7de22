// Draws the volunteer app's icons into public/app/icons/ (run: node scripts/icons.mjs).
// No image library and no network: a few shapes, 4×4 supersampled, written as PNG with
// node:zlib. The PNGs are committed; rerun only to change the design.
//
// The design: ten households (a ring of ten dots) around a house with a red panic button,
// white on the app's navy. "any" icons are a rounded square; maskable ones fill the square
// and keep everything inside the central 80 % circle, which every launcher mask leaves.

import { writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

const OUT = path.join(path.dirname(fileURLToPath(import.meta.url)), "../public/app/icons");
const NAVY = [20, 33, 61];
const WHITE = [255, 255, 255];
const RED = [214, 40, 40];

const inRoundedSquare = (x, y, r) => {
  const dx = Math.max(Math.abs(x - 0.5) - (0.5 - r), 0);
  const dy = Math.max(Math.abs(y - 0.5) - (0.5 - r), 0);
  return dx * dx + dy * dy <= r * r;
};
const inCircle = (x, y, cx, cy, r) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
function inHouse(x, y) {
  if (x >= 0.36 && x <= 0.64 && y >= 0.46 && y <= 0.7) return true;
  // The roof: apex (0.5, 0.27), eaves at y 0.47 from x 0.29 to 0.71.
  if (y < 0.27 || y > 0.47) return false;
  const half = ((y - 0.27) / 0.2) * 0.21;
  return Math.abs(x - 0.5) <= half;
}
const RING = Array.from({ length: 10 }, (_, i) => {
  const a = (i / 10) * 2 * Math.PI - Math.PI / 2;
  return [0.5 + 0.36 * Math.cos(a), 0.5 + 0.36 * Math.sin(a)];
});

/** The colour at (x, y) of the unit square, or null (transparent). */
function sample(x, y, { maskable, scale }) {
  if (!maskable && !inRoundedSquare(x, y, 0.18)) return null;
  const cx = 0.5 + (x - 0.5) / scale;
  const cy = 0.5 + (y - 0.5) / scale;
  if (inCircle(cx, cy, 0.5, 0.585, 0.062)) return RED;
  if (inHouse(cx, cy)) return WHITE;
  if (RING.some(([rx, ry]) => inCircle(cx, cy, rx, ry, 0.036))) return WHITE;
  return NAVY;
}

function render(size, opts) {
  const N = 4;
  const rgba = Buffer.alloc(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let sy = 0; sy < N; sy++) {
        for (let sx = 0; sx < N; sx++) {
          const c = sample((px + (sx + 0.5) / N) / size, (py + (sy + 0.5) / N) / size, opts);
          if (!c) continue;
          r += c[0]; g += c[1]; b += c[2]; a += 1;
        }
      }
      const o = (py * size + px) * 4;
      if (a > 0) {
        rgba[o] = Math.round(r / a);
        rgba[o + 1] = Math.round(g / a);
        rgba[o + 2] = Math.round(b / a);
      }
      rgba[o + 3] = Math.round((a / (N * N)) * 255);
    }
  }
  return png(size, size, rgba);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
function png(width, height, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

mkdirSync(OUT, { recursive: true });
const icons = [
  ["icon-192.png", 192, { maskable: false, scale: 1 }],
  ["icon-512.png", 512, { maskable: false, scale: 1 }],
  ["maskable-192.png", 192, { maskable: true, scale: 0.8 }],
  ["maskable-512.png", 512, { maskable: true, scale: 0.8 }],
  // iOS rounds the corners itself and shows transparency as black: fill the square.
  ["apple-touch-icon.png", 180, { maskable: true, scale: 0.88 }],
];
for (const [name, size, opts] of icons) {
  writeFileSync(path.join(OUT, name), render(size, opts));
  console.log("wrote", path.join("public/app/icons", name));
}
