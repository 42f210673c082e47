// The default resizer's decisions, with fake browser globals (no canvas in Node).
import { test } from "node:test";
import assert from "node:assert/strict";
import { planResize, resizeImage } from "../../gateway/static/imgsearch-client.js";

test("planResize: keeps aspect ratio, longest side = maxSide", () => {
  assert.deepEqual(planResize(4000, 3000, 512), { width: 512, height: 384 });
  assert.deepEqual(planResize(1000, 2000, 512), { width: 256, height: 512 });
  assert.deepEqual(planResize(5000, 10, 512), { width: 512, height: 1 });
});

test("planResize: null when already small (<= maxSide)", () => {
  assert.equal(planResize(512, 300, 512), null);
  assert.equal(planResize(100, 100), null);
});

/** Fake createImageBitmap + OffscreenCanvas recording what the resizer does. */
function fakeEnv(width, height, outBytes = 100) {
  const log = { closed: 0, canvases: [], drawn: [], encoded: [] };
  return {
    log,
    createImageBitmap: async (blob, opts) => {
      log.decodeOpts = opts;
      return { width, height, close() { log.closed++; } };
    },
    OffscreenCanvas: class {
      constructor(w, h) { this.w = w; this.h = h; log.canvases.push([w, h]); }
      getContext() {
        return { fillRect() {}, drawImage: (_b, x, y, w, h) => log.drawn.push([x, y, w, h]) };
      }
      async convertToBlob(opts) { log.encoded.push(opts); return new Blob([new Uint8Array(outBytes)], { type: opts.type }); }
    },
  };
}

const bigBlob = () => new Blob([new Uint8Array(50_000)], { type: "image/png" });

test("resizeImage: a large photo is drawn at 512 px and re-encoded as JPEG q=0.85", async () => {
  const env = fakeEnv(3000, 2000);
  const out = await resizeImage(bigBlob(), { maxSide: 512, quality: 0.85 }, env);
  assert.equal(out.type, "image/jpeg");
  assert.equal(out.size, 100);
  assert.deepEqual(env.log.canvases, [[512, 341]]);
  assert.deepEqual(env.log.drawn, [[0, 0, 512, 341]]);
  assert.deepEqual(env.log.encoded, [{ type: "image/jpeg", quality: 0.85 }]);
  assert.equal(env.log.decodeOpts.imageOrientation, "from-image");
  assert.equal(env.log.closed, 1);
});

test("resizeImage: skipped when the image is already small", async () => {
  const env = fakeEnv(400, 300);
  const input = bigBlob();
  assert.equal(await resizeImage(input, { maxSide: 512, quality: 0.85 }, env), input);
  assert.deepEqual(env.log.canvases, []);
  assert.equal(env.log.closed, 1);
});

test("resizeImage: keeps the original when re-encoding would not shrink it", async () => {
  const env = fakeEnv(3000, 2000, 60_000);
  const input = bigBlob();
  assert.equal(await resizeImage(input, { maxSide: 512, quality: 0.85 }, env), input);
});

test("resizeImage: undecodable images (e.g. HEIC here) go up unchanged for the gateway to judge", async () => {
  const env = { createImageBitmap: async () => { throw new DOMException("decode", "InvalidStateError"); } };
  const input = bigBlob();
  assert.equal(await resizeImage(input, { maxSide: 512, quality: 0.85 }, env), input);
});

test("resizeImage: falls back to a <canvas> when OffscreenCanvas is missing", async () => {
  const env = fakeEnv(1024, 1024);
  delete env.OffscreenCanvas;
  const made = [];
  env.document = {
    createElement: (tag) => {
      const c = { tag, getContext: () => ({ fillRect() {}, drawImage() {} }),
        toBlob: (cb, type, q) => { made.push([c.width, c.height, type, q]); cb(new Blob([new Uint8Array(10)], { type })); } };
      return c;
    },
  };
  const out = await resizeImage(bigBlob(), { maxSide: 512, quality: 0.8 }, env);
  assert.equal(out.size, 10);
  assert.deepEqual(made, [[512, 512, "image/jpeg", 0.8]]);
});

test("resizeImage: no createImageBitmap (Node) returns the input", async () => {
  const input = bigBlob();
  assert.equal(await resizeImage(input, { maxSide: 512, quality: 0.85 }, {}), input);
});
